//! The vendor's update instructions kept with real processes: a Web
//! Application package of another version is refused before the document
//! directory is touched.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use tierwise_e2e::{wait_for, Fleet, FleetOptions, V263};

/// Every file under `dir` with its contents.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn a_web_package_of_another_version_is_refused_and_the_document_directory_is_unchanged() {
    let fleet = Fleet::start(&FleetOptions {
        clients: 1,
        ..FleetOptions::default()
    })
    .unwrap();
    // The package where the web host looks for 26.3.100.34058 is another
    // release's.
    let path = fleet.web.dir.join(format!("WebApp-{V263}.zip"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for (name, text) in [
        ("version.txt", "26.9.100.34193\n"),
        (
            "index.html",
            "<!doctype html><title>Password Secure</title>",
        ),
    ] {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    let docroot = fleet.web.dir.join("docroot");
    let before = tree(&docroot);

    let c = &fleet.controller;
    c.rollout_start(&[]).unwrap();
    let (status, _) = wait_for("the rollout to halt", Duration::from_secs(60), || {
        let s = c.rollout_status()?;
        Ok(matches!(s["state"].as_str(), Some("failed" | "completed")).then_some(s))
    })
    .unwrap();
    assert_eq!(status["state"], "failed", "{status}");
    let failure = &status["failures"][0];
    assert_eq!(failure["host_id"], "web-01");
    assert_eq!(failure["action"], "deploy_web_app");
    let reason = failure["reason"].as_str().unwrap();
    assert!(
        reason.contains("is the Web Application of 26.9.100.34193 (its version.txt says so), not of 26.3.100.34058; nothing was changed"),
        "{reason}"
    );
    assert_eq!(
        tree(&docroot),
        before,
        "the document directory is untouched"
    );
    assert!(fleet.clients.iter().all(|a| a.installs() == 0));
}
