//! `tierwise keys`: the offline side of signed release metadata. Makes
//! keys, writes and signs root and release metadata, and checks metadata
//! exactly as an agent does (`common::trust`). Never talks to a controller.

use super::args::KeysCommand;
use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use tierwise_common::trust::{
    check_catalogue, check_installer, generate_key, public_key_id, trusted_root, verify_release,
    Envelope, KeyPair, Release, RoleKeys, Root, SignedInstaller,
};
use tierwise_runtime::clock::{now_ms, shown};
use tierwise_transport::files;

pub fn run(command: KeysCommand) -> anyhow::Result<String> {
    match command {
        KeysCommand::Create { file } => create(&file),
        KeysCommand::Root {
            out,
            version,
            expires,
            root_keys,
            root_publics,
            threshold,
            release_publics,
            release_threshold,
            sign_with,
        } => {
            let root_keys = read_keys(&root_keys)?;
            let sign_with = read_keys(&sign_with)?;
            let mut keys = BTreeMap::new();
            let mut root_ids = Vec::new();
            for public in root_keys
                .iter()
                .map(KeyPair::public_hex)
                .chain(root_publics.iter().map(|p| p.trim().to_ascii_lowercase()))
            {
                let id = public_key_id(&public)?;
                keys.insert(id.clone(), public);
                root_ids.push(id);
            }
            let mut release_ids = Vec::new();
            for public in &release_publics {
                let public = public.trim().to_ascii_lowercase();
                let id = public_key_id(&public)?;
                keys.insert(id.clone(), public);
                release_ids.push(id);
            }
            let root = Root {
                kind: "root".into(),
                version,
                expires_ms: now_ms() + millis(expires),
                keys,
                root: RoleKeys {
                    keyids: root_ids,
                    threshold,
                },
                release: RoleKeys {
                    keyids: release_ids,
                    threshold: release_threshold,
                },
            };
            let signers: Vec<&KeyPair> = root_keys.iter().chain(&sign_with).collect();
            let envelope = signed(&root, &signers)?;
            write_new(&out, &envelope)?;
            Ok(format!(
                "Wrote root version {version} to {} (expires {}), signed by {} key(s).\nFingerprint: {}\n",
                out.display(),
                shown(root.expires_ms),
                signers.len(),
                envelope.fingerprint()
            ))
        }
        KeysCommand::Release {
            out,
            version,
            expires,
            keys,
            catalogue,
            installers,
        } => {
            let keys = read_keys(&keys)?;
            let (catalogue_sha256, _) = hash_file(&catalogue)?;
            let mut signed_installers = Vec::new();
            for spec in &installers {
                let (path, release, component) = installer_spec(spec)?;
                let (sha256, length) = hash_file(&path)?;
                signed_installers.push(SignedInstaller {
                    release,
                    component,
                    sha256,
                    length,
                });
            }
            let release = Release {
                kind: "release".into(),
                version,
                expires_ms: now_ms() + millis(expires),
                catalogue_sha256,
                installers: signed_installers,
            };
            let signers: Vec<&KeyPair> = keys.iter().collect();
            write_new(&out, &signed(&release, &signers)?)?;
            Ok(format!(
                "Wrote release metadata version {version} to {} (expires {}): the catalogue and {} installer(s).\n",
                out.display(),
                shown(release.expires_ms),
                release.installers.len()
            ))
        }
        KeysCommand::Fingerprint { root } => {
            Ok(format!("{}\n", read_envelope(&root)?.fingerprint()))
        }
        KeysCommand::Verify {
            pin,
            roots,
            release,
            catalogue,
            installers,
        } => {
            let chain = roots
                .iter()
                .map(|path| read_envelope(path))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let now = now_ms();
            let root =
                trusted_root(&pin, &chain, now, None).context("the roots are not trusted")?;
            let mut out = format!(
                "Root version {} is trusted (expires {}).\n",
                root.version,
                shown(root.expires_ms)
            );
            let Some(release) = release else {
                return Ok(out);
            };
            let trusted = verify_release(&root, &read_envelope(&release)?, now, None)
                .context("the release metadata is not trusted")?;
            out.push_str(&format!(
                "Release metadata version {} is trusted (expires {}).\n",
                trusted.release.version,
                shown(trusted.release.expires_ms)
            ));
            if let Some(path) = catalogue {
                let (sha256, _) = hash_file(&path)?;
                check_catalogue(&trusted.release, &sha256)
                    .with_context(|| format!("{} is not trusted", path.display()))?;
                out.push_str(&format!("{} is the signed catalogue.\n", path.display()));
            }
            for spec in &installers {
                let (path, for_release, component) = installer_spec(spec)?;
                let (sha256, length) = hash_file(&path)?;
                check_installer(&trusted.release, &for_release, &component, &sha256, length)
                    .with_context(|| format!("{} is not trusted", path.display()))?;
                out.push_str(&format!(
                    "{} is signed for {component} {for_release}.\n",
                    path.display()
                ));
            }
            Ok(out)
        }
    }
}

fn create(file: &Path) -> anyhow::Result<String> {
    if file.exists() {
        bail!(
            "{} exists; a key file is never overwritten (choose another name)",
            file.display()
        );
    }
    let key = generate_key()?;
    files::write_private(file, format!("{}\n", key.to_pkcs8_hex()).as_bytes())?;
    Ok(format!(
        "Wrote a new signing key to {} (owner-only; keep it offline).\nKey id:     {}\nPublic key: {}\n",
        file.display(),
        key.key_id(),
        key.public_hex()
    ))
}

fn read_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<KeyPair>> {
    paths
        .iter()
        .map(|path| {
            KeyPair::from_pkcs8_hex(&files::read(path)?).with_context(|| {
                format!(
                    "{} is not a key made by `tierwise keys create`",
                    path.display()
                )
            })
        })
        .collect()
}

fn signed<T: serde::Serialize>(doc: &T, signers: &[&KeyPair]) -> anyhow::Result<Envelope> {
    let mut envelope = Envelope {
        payload: serde_json::to_string(doc)?,
        signatures: Vec::new(),
    };
    for key in signers {
        key.sign(&mut envelope);
    }
    Ok(envelope)
}

fn write_new(path: &Path, envelope: &Envelope) -> anyhow::Result<()> {
    files::write_public(path, format!("{}\n", envelope.to_json()).as_bytes())?;
    Ok(())
}

fn read_envelope(path: &Path) -> anyhow::Result<Envelope> {
    Envelope::parse(&files::read(path)?).with_context(|| format!("reading {}", path.display()))
}

/// `FILE=RELEASE:COMPONENT`.
fn installer_spec(spec: &str) -> anyhow::Result<(PathBuf, String, String)> {
    let wrong = || {
        format!("`{spec}`: write an installer as FILE=RELEASE:COMPONENT, e.g. PSClient.msi=26.3.100.34058:client")
    };
    let (file, rest) = spec.rsplit_once('=').with_context(wrong)?;
    let (release, component) = rest.split_once(':').with_context(wrong)?;
    // Written as agents and the controller print it (`26.03` → `26.3`), so
    // it compares equal to the step's release.
    let release = tierwise_common::Version::parse(release).with_context(wrong)?;
    component
        .parse::<tierwise_common::Role>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", wrong()))?;
    Ok((
        PathBuf::from(file),
        release.to_string(),
        component.to_owned(),
    ))
}

fn hash_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut length = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hash.update(&buffer[..n]);
        length += n as u64;
    }
    Ok((tierwise_common::hex(&hash.finalize()), length))
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
