//! `tierwise releases metadata import|show`: hands the controller the
//! release metadata signed offline (`tierwise keys`), and shows what it
//! holds. The controller checks it as an agent would, from the first
//! root's own fingerprint; agents check it again from the root they pin.

use super::status_error;
use anyhow::Context;
use std::path::PathBuf;
use tierwise_proto::v1::{
    GetReleaseMetadataRequest, ImportReleaseMetadataRequest, ReleaseMetadataView,
};
use tierwise_runtime::clock::{rfc3339, shown};

type Client = crate::cli::AdminClient;

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub async fn import(
    client: &mut Client,
    roots: &[PathBuf],
    release: &PathBuf,
) -> anyhow::Result<String> {
    let request = ImportReleaseMetadataRequest {
        roots: roots.iter().map(read).collect::<Result<_, _>>()?,
        release: read(release)?,
    };
    let view = client
        .import_release_metadata(request)
        .await
        .map_err(status_error)?
        .into_inner();
    Ok(format!("Imported.\n{}", text(&view)))
}

pub async fn show(client: &mut Client, json: bool) -> anyhow::Result<String> {
    let view = client
        .get_release_metadata(GetReleaseMetadataRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    Ok(if json {
        format!("{}\n", serde_json::to_string_pretty(&to_json(&view))?)
    } else {
        text(&view)
    })
}

fn text(view: &ReleaseMetadataView) -> String {
    let mut out = String::new();
    if !view.pinned_root.is_empty() {
        out.push_str(&format!(
            "Accepted only from root {} (pinned by {}).\n",
            view.pinned_root, view.pinned_by
        ));
    }
    if !view.present {
        out.push_str("No signed release metadata imported.\n");
    } else {
        out.push_str(&format!(
            "Root:     version {}, fingerprint {} (expires {})\n",
            view.root_version,
            view.root_fingerprint,
            shown(view.root_expires_ms)
        ));
        out.push_str(&format!(
            "Release:  version {} (expires {}), imported {}\n",
            view.release_version,
            shown(view.release_expires_ms),
            shown(view.imported_ms)
        ));
        out.push_str(&format!(
            "Catalogue: {} ({})\n",
            view.catalogue_sha256,
            if view.catalogue_matches {
                "the one in force"
            } else {
                "NOT the one in force"
            }
        ));
        for installer in &view.installers {
            out.push_str(&format!(
                "  {:<10} {:<16} {} {} bytes\n",
                installer.component, installer.release, installer.sha256, installer.length
            ));
        }
        if !view.problem.is_empty() {
            out.push_str(&format!("PROBLEM: {}\n", view.problem));
        }
    }
    if view.allow_unsigned {
        out.push_str(
            "UNSIGNED RELEASES ALLOWED: this controller runs with --allow-unsigned-releases.\n",
        );
    }
    out
}

fn to_json(view: &ReleaseMetadataView) -> serde_json::Value {
    let ms = |ms: i64| (ms != 0).then(|| rfc3339(ms));
    serde_json::json!({
        "present": view.present,
        "root_fingerprint": (view.present).then_some(&view.root_fingerprint),
        "root_version": (view.present).then_some(view.root_version),
        "root_expires": ms(view.root_expires_ms),
        "release_version": (view.present).then_some(view.release_version),
        "release_expires": ms(view.release_expires_ms),
        "imported": ms(view.imported_ms),
        "catalogue_sha256": (view.present).then_some(&view.catalogue_sha256),
        "catalogue_matches": view.catalogue_matches,
        "installers": view.installers.iter().map(|i| serde_json::json!({
            "release": i.release,
            "component": i.component,
            "sha256": i.sha256,
            "length": i.length,
        })).collect::<Vec<_>>(),
        "problem": (!view.problem.is_empty()).then_some(&view.problem),
        "allow_unsigned": view.allow_unsigned,
        "pinned_root": (!view.pinned_root.is_empty()).then_some(&view.pinned_root),
        "pinned_by": (!view.pinned_by.is_empty()).then_some(&view.pinned_by),
    })
}
