//! Deploying the Web Application the way the vendor describes: check the
//! web server's prerequisites and that the package is the Web Application
//! of the target version, keep a copy of the document directory, empty it,
//! unzip the new Web Application into it, and on IIS delete every
//! generated `config.bat` without running it.
//!
//! What a package states about its version: the first four-part version in
//! the `version.txt` at the top of the archive. A package that states another version is refused
//! before anything is touched. One that states none is accepted only when
//! it is the controller's artifact, which was registered for the target
//! release and component (and verified by its SHA-256, and its signature
//! where a release root is pinned); a local `web_app` package that states
//! nothing is refused.

use crate::config::CheckProbe;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use tierwise_common::{Check, Version, WebServerKind};

/// What a deploy needs from the agent's configuration.
#[derive(Clone, Debug)]
pub struct WebDeploy {
    pub server: WebServerKind,
    pub docroot: PathBuf,
    pub websocket: Option<CheckProbe>,
    /// The package path, `{version}` filled in per step; not needed when the
    /// controller provides the package as an artifact.
    pub package: Option<String>,
}

/// The result of a deploy: a summary on success, the reason otherwise.
pub type DeployResult = Result<Vec<String>, String>;

/// Runs the deploy; the backup goes to `backup_dir`.
pub async fn deploy(
    spec: &WebDeploy,
    version: Version,
    backup_dir: &Path,
    artifact: Option<&Path>,
) -> DeployResult {
    // From 8.5.0.14896 on the Web Application needs WebSocket support.
    if version >= Version::new(8, 5, 0, 14896) {
        let needed = match spec.server {
            WebServerKind::Iis => "the IIS feature \"WebSocket Protocol\"",
            WebServerKind::Apache => "the Apache module proxy_wstunnel",
            WebServerKind::Nginx => "WebSocket proxying",
        };
        match &spec.websocket {
            Some(probe) => match crate::probe::check(probe).await {
                Check::Yes => {}
                Check::No => return Err(format!("prerequisite missing: {needed} is not enabled; nothing was changed")),
                Check::Unknown => {
                    return Err(format!("prerequisite unknown: the agent cannot tell whether {needed} is enabled; nothing was changed"))
                }
            },
            None if spec.server == WebServerKind::Nginx => {}
            None => {
                return Err(format!(
                    "prerequisite unknown: configure the `websocket` check so the agent can verify {needed}; nothing was changed"
                ))
            }
        }
    }
    let package = match (artifact, &spec.package) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(template)) => PathBuf::from(template.replace("{version}", &version.to_string())),
        (None, None) => {
            return Err("no Web Application package: add it to the controller (`tierwise artifacts add`) or set `web_app`".into())
        }
    };
    let spec = spec.clone();
    let backup_dir = backup_dir.to_path_buf();
    let registered = artifact.is_some();
    tokio::task::spawn_blocking(move || {
        deploy_files(&spec, &package, version, registered, &backup_dir)
    })
    .await
    .unwrap_or_else(|e| Err(format!("the deploy task failed: {e}")))
}

/// The largest `version.txt` read.
const VERSION_FILE_LIMIT: u64 = 4096;

/// What the package says about its version: (the entry, the version), or
/// `None` when it has no `version.txt` at its top.
fn stated_version<R: io::Read + io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    package: &Path,
) -> Result<Option<(String, Version)>, String> {
    use std::io::Read;
    // At the top only: that is where the files land in the document
    // directory (a folder around them would land as a folder).
    let found = (0..archive.len()).find(|&i| {
        archive
            .by_index(i)
            .ok()
            .and_then(|e| e.enclosed_name())
            .is_some_and(|n| {
                n.components().count() == 1
                    && n.file_name()
                        .is_some_and(|f| f.eq_ignore_ascii_case("version.txt"))
            })
    });
    let Some(index) = found else {
        return Ok(None);
    };
    let mut entry = archive.by_index(index).map_err(|e| {
        format!(
            "{}: entry {index}: {e}; nothing was changed",
            package.display()
        )
    })?;
    let shown = entry.name().to_owned();
    let mut text = String::new();
    entry
        .by_ref()
        .take(VERSION_FILE_LIMIT)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {shown}: {e}; nothing was changed", package.display()))?;
    let pattern = regex_lite::Regex::new(r"\d+\.\d+\.\d+\.\d+").map_err(|e| e.to_string())?;
    let version = pattern
        .find(&text)
        .and_then(|m| Version::parse(m.as_str()).ok())
        .ok_or_else(|| {
            format!(
                "{}: its {shown} holds no version such as 26.3.100.34058; nothing was changed",
                package.display()
            )
        })?;
    Ok(Some((shown, version)))
}

/// Reads a Web Application package and checks it before anything is
/// touched: a readable ZIP, only files and folders inside the document
/// directory, and the Web Application of `version` (`registered`: the
/// controller's artifact, which may state no version). Returns the archive
/// to unzip and what the checks found. Reads only; `package` names the
/// package in messages.
pub fn check_package<R: io::Read + io::Seek>(
    reader: R,
    package: &Path,
    version: Version,
    registered: bool,
) -> Result<(zip::ZipArchive<R>, Vec<String>), String> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| {
        format!(
            "{} is not a readable ZIP: {e}; nothing was changed",
            package.display()
        )
    })?;
    // Check every entry before touching the document directory.
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|e| {
            format!(
                "{}: entry {index}: {e}; nothing was changed",
                package.display()
            )
        })?;
        if entry.enclosed_name().is_none() {
            return Err(format!(
                "{} contains `{}`, a path outside the document directory; nothing was changed",
                package.display(),
                entry.name()
            ));
        }
        // A Web Application is files and folders. A link could point
        // anywhere on the host (`/etc/passwd`, `/`) and be served or
        // written through.
        if entry.is_symlink() {
            return Err(format!(
                "{} contains `{}`, a symbolic link; a Web Application package holds only files and folders; nothing was changed",
                package.display(),
                entry.name()
            ));
        }
    }
    let mut summary = Vec::new();
    // The package must be the Web Application of the target version.
    match stated_version(&mut archive, package)? {
        Some((entry, stated)) if stated == version => {
            summary.push(format!("the package states {stated} ({entry})"));
        }
        Some((entry, stated)) => {
            return Err(format!(
                "{} is the Web Application of {stated} (its {entry} says so), not of {version}; nothing was changed",
                package.display()
            ))
        }
        None if registered => summary.push(format!(
            "the package states no version (no version.txt); accepted as the Web Application the controller registered for {version}"
        )),
        None => {
            return Err(format!(
                "{} states no version (no version.txt at its top), so the agent cannot tell it is the Web Application of {version}; add a version.txt holding {version}, or give the package to the controller (`tierwise artifacts add FILE --release {version} --component web`); nothing was changed",
                package.display()
            ))
        }
    }
    Ok((archive, summary))
}

fn deploy_files(
    spec: &WebDeploy,
    package: &Path,
    version: Version,
    registered: bool,
    backup_dir: &Path,
) -> DeployResult {
    let io = |what: &str, e: io::Error| format!("{what}: {e}");
    let file = fs::File::open(package).map_err(|e| {
        io(
            &format!(
                "cannot open the Web Application package {}",
                package.display()
            ),
            e,
        )
    })?;
    let (mut archive, mut summary) = check_package(file, package, version, registered)?;
    if !spec.docroot.is_dir() {
        return Err(format!(
            "the document directory {} does not exist",
            spec.docroot.display()
        ));
    }
    // 1. Keep a copy.
    let copied = copy_tree(&spec.docroot, backup_dir)
        .map_err(|e| io("keeping a copy of the document directory", e))?;
    summary.push(format!(
        "kept a copy of {copied} file(s) in {}",
        backup_dir.display()
    ));
    // 2. Empty the document directory (the directory itself stays).
    let mut removed = 0;
    for entry in fs::read_dir(&spec.docroot).map_err(|e| io("reading the document directory", e))? {
        let path = entry
            .map_err(|e| io("reading the document directory", e))?
            .path();
        if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        }
        .map_err(|e| {
            io(
                &format!("emptying the document directory ({})", path.display()),
                e,
            )
        })?;
        removed += 1;
    }
    summary.push(format!(
        "emptied {} ({removed} entr(y/ies))",
        spec.docroot.display()
    ));
    // 3. Unzip the new Web Application.
    archive.extract(&spec.docroot).map_err(|e| {
        format!(
            "unzipping into {}: {e}; the copy in {} can be put back",
            spec.docroot.display(),
            backup_dir.display()
        )
    })?;
    summary.push(format!(
        "unzipped {} entr(y/ies) from {}",
        archive.len(),
        package.display()
    ));
    // 4. IIS: a generated config.bat must not run for an update; delete
    // every one, wherever it sits.
    if spec.server == WebServerKind::Iis {
        let mut found = Vec::new();
        find_config_bat(&spec.docroot, &mut found).map_err(|e| io("looking for config.bat", e))?;
        for path in found {
            fs::remove_file(&path).map_err(|e| io(&format!("deleting {}", path.display()), e))?;
            summary.push(format!(
                "deleted the generated {} without running it",
                path.display()
            ));
        }
    }
    // 5. Verify: something is there.
    let present = fs::read_dir(&spec.docroot).map(|d| d.count()).unwrap_or(0);
    if present == 0 {
        return Err(format!(
            "the document directory {} is empty after unzipping",
            spec.docroot.display()
        ));
    }
    Ok(summary)
}

/// Every file named `config.bat` (in any case) under `dir`.
fn find_config_bat(dir: &Path, found: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            find_config_bat(&entry.path(), found)?;
        } else if entry.file_name().eq_ignore_ascii_case("config.bat") {
            found.push(entry.path());
        }
    }
    Ok(())
}

/// Copies a directory tree; returns the number of files copied.
fn copy_tree(from: &Path, to: &Path) -> io::Result<usize> {
    fs::create_dir_all(to)?;
    let mut count = 0;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            count += copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
            count += 1;
        }
    }
    Ok(count)
}
