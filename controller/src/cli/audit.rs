//! `tierwise audit`: the log, following it, and verifying its hash chain
//! on the operator's side (the controller's answer is checked, not
//! trusted).

use super::{sorted_json, status_error, table};
use crate::store::rollouts::AuditEntry;
use std::io::Write;
use std::time::Duration;
use tierwise_common::audit::Verifier;
use tierwise_proto::v1::ListAuditRequest;
use tierwise_runtime::clock::shown;

type Client = crate::cli::AdminClient;

/// Entries per request when paging.
const PAGE: u32 = 10_000;

async fn fetch(
    client: &mut Client,
    limit: u32,
    after_seq: i64,
    from_start: bool,
) -> anyhow::Result<Vec<AuditEntry>> {
    let log = client
        .list_audit(ListAuditRequest {
            limit,
            after_seq,
            from_start,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    Ok(log.entries.iter().map(AuditEntry::from).collect())
}

/// The newest entries, oldest first.
pub async fn list(client: &mut Client, json: bool) -> anyhow::Result<String> {
    let entries = fetch(client, 0, 0, false).await?;
    if json {
        return sorted_json(&entry_json(&entries)?);
    }
    if entries.is_empty() {
        return Ok("The audit log is empty.\n".into());
    }
    Ok(render(entries))
}

/// Entries as `--json` shows them: with `at` (RFC 3339) beside `at_ms`.
fn entry_json<T: serde::Serialize + ?Sized>(entries: &T) -> serde_json::Result<serde_json::Value> {
    Ok(super::with_time_twins(
        serde_json::to_value(entries)?,
        &["at_ms"],
    ))
}

fn render(entries: Vec<AuditEntry>) -> String {
    let rows: Vec<Vec<String>> = entries
        .into_iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                shown(e.at_ms),
                e.actor,
                e.action,
                e.subject,
                e.details,
            ]
        })
        .collect();
    table::render(&["#", "AT", "WHO", "ACTION", "SUBJECT", "DETAILS"], &rows)
}

/// Prints the newest entries, then every new one as it is written, until
/// stopped. With `json`, one object per line (for a SIEM).
pub async fn follow(client: &mut Client, json: bool) -> anyhow::Result<()> {
    let mut entries = fetch(client, 0, 0, false).await?;
    let mut last = 0;
    loop {
        if let Some(newest) = entries.last() {
            last = newest.seq;
        }
        match write_entries(&entries, json) {
            Ok(()) => {}
            // The reader went away (`| head`): following ends, quietly.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        entries = fetch(client, PAGE, last, true).await?;
    }
}

/// Writes entries to standard output, a line each.
fn write_entries(entries: &[AuditEntry], json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for entry in entries {
        if json {
            writeln!(out, "{}", serde_json::to_string(&entry_json(entry)?)?)?;
        } else {
            writeln!(
                out,
                "#{} {} {} {} {}: {}",
                entry.seq,
                shown(entry.at_ms),
                entry.actor,
                entry.action,
                entry.subject,
                entry.details
            )?;
        }
    }
    out.flush()
}

/// Fetches the whole log page by page and recomputes its hash chain.
pub async fn verify(client: &mut Client, json: bool) -> anyhow::Result<String> {
    let mut verifier = Verifier::default();
    let mut after = 0;
    loop {
        let page = fetch(client, PAGE, after, true).await?;
        let Some(newest) = page.last() else { break };
        after = newest.seq;
        for entry in &page {
            if let Err(broken) = verifier.push(&entry.link()) {
                if json {
                    print!(
                        "{}",
                        sorted_json(&serde_json::json!({
                            "verified": false,
                            "error": broken.to_string(),
                        }))?
                    );
                }
                anyhow::bail!("the audit log does not verify: {broken}");
            }
        }
    }
    let total = verifier.finish();
    if json {
        return sorted_json(&serde_json::json!({
            "verified": true,
            "chained": total.chained,
            "unchained": total.unchained,
            "head_seq": total.head.as_ref().map(|(seq, _)| *seq),
            "head_sha256": total.head.as_ref().map(|(_, sha)| sha.clone()),
        }));
    }
    let mut text = format!(
        "The audit log verifies: {} chained entr(y/ies) hold their hashes",
        total.chained
    );
    if total.unchained > 0 {
        text.push_str(&format!(
            "; {} older one(s) from before the log was chained cannot be verified",
            total.unchained
        ));
    }
    text.push_str(".\n");
    if let Some((seq, sha)) = &total.head {
        text.push_str(&format!(
            "Head: entry {seq}, sha256 {sha}. Keep it: a later verify must still contain it.\n"
        ));
    }
    Ok(text)
}
