//! Certificates and keys on disk, as PEM. Private keys are written readable
//! by their owner only (mode 0600 on Unix; on Windows the directory's ACL,
//! set by the installer, decides) and every write replaces the file
//! atomically, so a killed process leaves the old file or the new one.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`)")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a PEM private key (expected `-----BEGIN PRIVATE KEY-----` or an EC/RSA key): {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    BadPem { path: PathBuf, reason: String },
}

/// Every certificate in a PEM file, in order (leaf first for a chain).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let text = read(path)?;
    certificates_from_pem(text.as_bytes()).map_err(|reason| match reason {
        None => FileError::NoCertificate {
            path: path.to_owned(),
        },
        Some(reason) => FileError::BadPem {
            path: path.to_owned(),
            reason,
        },
    })
}

/// Every certificate in PEM text; `Err(None)` when there is none.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Option<String>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Some(e.to_string()))?;
    if certs.is_empty() {
        return Err(None);
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    let text = read(path)?;
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| FileError::BadKey {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The file's text, with an error naming it.
pub fn read(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes a private key: owner-only, replaced atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    write_atomically(path, contents, true)
}

/// Writes a public file (a certificate), replaced atomically.
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    write_atomically(path, contents, false)
}

/// Creates a directory only its owner may enter (0700 on Unix), or makes
/// an existing one so; returns true when an existing one had to be
/// tightened. Its parents are created as usual.
pub fn private_dir(path: &Path) -> Result<bool, FileError> {
    let error = |source| FileError::Write {
        path: path.to_owned(),
        source,
    };
    if !path.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(path).map_err(error)?;
        return Ok(false);
    }
    restrict(path, 0o700).map_err(error)
}

/// Makes an existing file owner-only (0600 on Unix), or creates it empty
/// so; returns true when an existing one had to be tightened.
pub fn private_file(path: &Path) -> Result<bool, FileError> {
    let error = |source| FileError::Write {
        path: path.to_owned(),
        source,
    };
    if !path.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(path).map_err(error)?;
        return Ok(false);
    }
    restrict(path, 0o600).map_err(error)
}

/// Takes group and other permissions away (Unix; elsewhere a no-op).
fn restrict(path: &Path, mode: u32) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let current = std::fs::metadata(path)?.permissions().mode();
        if current & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            return Ok(true);
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(false)
}

fn write_atomically(path: &Path, contents: &[u8], private: bool) -> Result<(), FileError> {
    let error = |source| FileError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let temporary = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&temporary).map_err(error)?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(error)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable (best effort; not on Windows).
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_files_and_directories_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = root.path().join("a/data");
        assert!(!private_dir(&dir).unwrap());
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("tierwise.db");
        assert!(!private_file(&file).unwrap());
        assert_eq!(mode(&file), 0o600);
        // Existing ones with looser permissions are tightened, and said so.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&file, b"kept").unwrap();
        assert!(private_dir(&dir).unwrap());
        assert!(private_file(&file).unwrap());
        assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
        assert_eq!(std::fs::read(&file).unwrap(), b"kept");
        assert!(!private_file(&file).unwrap());
    }

    #[test]
    fn a_private_key_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/agent.key");
        let key = rcgen::KeyPair::generate().unwrap();
        write_private(&path, key.serialize_pem().as_bytes()).unwrap();
        read_key(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn errors_name_the_file_and_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let error = read_certificates(&path).unwrap_err().to_string();
        assert!(
            error.contains("ca.pem") && error.contains("BEGIN CERTIFICATE"),
            "{error}"
        );
        let error = read_key(&path).unwrap_err().to_string();
        assert!(
            error.contains("ca.pem") && error.contains("private key"),
            "{error}"
        );
        let missing = dir.path().join("missing.pem");
        assert!(read_certificates(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.pem"));
    }
}
