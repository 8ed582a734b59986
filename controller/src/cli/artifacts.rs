//! `tierwise artifacts …`: send an installer to the controller's store
//! (with a progress bar on a terminal), list what it holds, remove some.

use super::args::ArtifactsCommand;
use super::{status_error, table, AdminClient};
use anyhow::Context;
use std::io::IsTerminal;
use std::path::Path;
use tierwise_common::{thousands, Role, Version, WebServerKind};
use tierwise_proto::convert::role_from_wire;
use tierwise_proto::v1::{
    ArtifactView, ListArtifactsRequest, RemoveArtifactsRequest, Role as WireRole,
    UploadArtifactChunk,
};
use tierwise_runtime::clock::{rfc3339, shown};
use tokio::io::AsyncReadExt;

/// Carries out one `artifacts` subcommand.
pub async fn run(
    connection: &super::Connection,
    command: ArtifactsCommand,
) -> anyhow::Result<String> {
    match command {
        ArtifactsCommand::Add {
            file,
            release,
            component,
            web_server,
        } => {
            if web_server.is_some() && component != Role::Web {
                anyhow::bail!("--web-server goes with --component web");
            }
            let mut client = super::connect(connection).await?;
            add(&mut client, &file, &release, component, web_server).await
        }
        ArtifactsCommand::List { json } => list(&mut super::connect(connection).await?, json).await,
        ArtifactsCommand::Remove {
            sha256,
            release,
            component,
            web_server,
        } => {
            let request = removal(sha256, release, component, web_server)?;
            remove(&mut super::connect(connection).await?, request).await
        }
    }
}

/// The upload's progress on stderr, only when a person watches both
/// outputs (nothing in scripts, pipes or logs).
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if !(std::io::stderr().is_terminal() && std::io::stdout().is_terminal()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("#>."));
    }
    bar.set_message("Uploading");
    bar
}

pub async fn add(
    client: &mut AdminClient,
    file: &Path,
    release: &str,
    role: Role,
    web_server: Option<WebServerKind>,
) -> anyhow::Result<String> {
    let release = Version::parse(release).map_err(|e| anyhow::anyhow!("--release: {e}"))?;
    let mut reader = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let total = reader.metadata().await.map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(total);
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let sent = bar.clone();
    let reading = tokio::spawn(async move {
        let mut buffer = vec![0u8; crate::artifacts::CHUNK_BYTES];
        let mut first = Some(UploadArtifactChunk {
            release: release.to_string(),
            role: WireRole::from(role).into(),
            file_name,
            data: Vec::new(),
            web_server: web_server
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
        });
        loop {
            let n = reader.read(&mut buffer).await?;
            let mut chunk = first.take().unwrap_or_default();
            chunk.data = buffer[..n].to_vec();
            if tx.send(chunk).await.is_err() || n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            sent.inc(n as u64);
        }
    });
    let response = client
        .upload_artifact(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|status| {
            bar.abandon();
            status_error(status)
        })?
        .into_inner();
    bar.finish_and_clear();
    reading.await.context("reading the file")??;
    if let Some(kind) = web_server {
        return Ok(format!(
            "Stored {} as the Web Application of {release} for {} web servers: SHA-256 {}, {} bytes. Each {} web host gets it; where releases are signed, it counts once signed metadata covers it.\n",
            file.display(),
            kind.as_str(),
            response.sha256,
            response.size,
            kind.as_str()
        ));
    }
    Ok(format!(
        "Stored {} as the {role} installer of {release}: SHA-256 {}, {} bytes{}.\n",
        file.display(),
        response.sha256,
        response.size,
        if response.checked_against_catalogue {
            ", matching the catalogue"
        } else {
            " (the catalogue names no checksum for it)"
        }
    ))
}

/// An installer as `list --json` shows it.
fn json_view(a: &ArtifactView) -> serde_json::Value {
    serde_json::json!({
        "sha256": a.sha256,
        "size": a.size,
        "release": a.release,
        "component": role_from_wire(a.role).map(|r| r.as_str()),
        "web_server": (!a.web_server.is_empty()).then_some(&a.web_server),
        "file_name": a.file_name,
        "added_by": (!a.added_by.is_empty()).then_some(&a.added_by),
        "added_at": rfc3339(a.added_ms),
        "added_at_ms": a.added_ms,
        "signed": a.signed,
    })
}

/// "client", or "web (iis)" for a package made for one kind.
fn component(a: &ArtifactView) -> String {
    let role = role_from_wire(a.role).map_or("?", |r| r.as_str());
    if a.web_server.is_empty() {
        role.to_owned()
    } else {
        format!("{role} ({})", a.web_server)
    }
}

pub async fn list(client: &mut AdminClient, json: bool) -> anyhow::Result<String> {
    let artifacts = client
        .list_artifacts(ListArtifactsRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .artifacts;
    if json {
        let views: Vec<serde_json::Value> = artifacts.iter().map(json_view).collect();
        return Ok(serde_json::to_string_pretty(&views)? + "\n");
    }
    if artifacts.is_empty() {
        return Ok("No installers stored. Add one with `tierwise artifacts add FILE --release VERSION --component ROLE`.\n".into());
    }
    let rows: Vec<Vec<String>> = artifacts
        .iter()
        .map(|a| {
            vec![
                a.sha256.chars().take(12).collect(),
                thousands(usize::try_from(a.size).unwrap_or(usize::MAX)),
                a.release.clone(),
                component(a),
                if a.signed { "yes" } else { "no" }.to_owned(),
                if a.added_by.is_empty() {
                    "?".to_owned()
                } else {
                    a.added_by.clone()
                },
                shown(a.added_ms),
                a.file_name.clone(),
            ]
        })
        .collect();
    Ok(table::render(
        &[
            "SHA256",
            "SIZE",
            "RELEASE",
            "COMPONENT",
            "SIGNED",
            "ADDED BY",
            "ADDED",
            "FILE",
        ],
        &rows,
    ))
}

/// What `artifacts remove` asks for: files by SHA-256, or the installer of
/// a release and component.
fn removal(
    sha256: Vec<String>,
    release: Option<String>,
    component: Option<Role>,
    web_server: Option<WebServerKind>,
) -> anyhow::Result<RemoveArtifactsRequest> {
    let Some(release) = release else {
        anyhow::ensure!(
            !sha256.is_empty(),
            "name what to remove: SHA256 … or --release VERSION --component ROLE"
        );
        return Ok(RemoveArtifactsRequest {
            sha256,
            ..Default::default()
        });
    };
    let role = component.context("--release goes with --component")?;
    if web_server.is_some() && role != Role::Web {
        anyhow::bail!("--web-server goes with --component web");
    }
    let release = Version::parse(&release).map_err(|e| anyhow::anyhow!("--release: {e}"))?;
    Ok(RemoveArtifactsRequest {
        sha256: Vec::new(),
        release: release.to_string(),
        role: WireRole::from(role).into(),
        web_server: web_server
            .map(|k| k.as_str().to_owned())
            .unwrap_or_default(),
    })
}

pub async fn remove(
    client: &mut AdminClient,
    request: RemoveArtifactsRequest,
) -> anyhow::Result<String> {
    let removed = client
        .remove_artifacts(request)
        .await
        .map_err(status_error)?
        .into_inner()
        .artifacts;
    Ok(removed
        .iter()
        .map(|a| {
            format!(
                "Removed the {} installer of {}: {} (SHA-256 {}, {} bytes).\n",
                component(a),
                a.release,
                a.file_name,
                a.sha256,
                thousands(usize::try_from(a.size).unwrap_or(usize::MAX))
            )
        })
        .collect())
}
