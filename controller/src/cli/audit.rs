//! `tierwise audit`: the log, following it, and verifying its hash chain:
//! the links and unkeyed hashes on the operator's side (the controller's
//! answer is checked, not trusted), the keyed hashes by the controller,
//! which alone holds the chain's key.

use super::{sorted_json, status_error, table};
use crate::store::rollouts::AuditEntry;
use std::io::Write;
use std::time::Duration;
use tierwise_common::audit::{Head, Rules, Start, Verifier};
use tierwise_proto::v1::{ListAuditRequest, VerifyAuditRequest};
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

/// Fetches the whole log page by page and checks its hash chain here (the
/// links, where the chain begins, the unkeyed hashes and the heads kept in
/// `expected`); the controller, which holds the chain's key, checks the
/// keyed hashes and the chain's records. Both must hold.
pub async fn verify(
    client: &mut Client,
    json: bool,
    expected: Vec<Head>,
) -> anyhow::Result<String> {
    let server = client
        .verify_audit(VerifyAuditRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let start = Start {
        chained_from: server.chained_from,
        keyed_from: server.keyed_from,
    };
    let mut verifier = Verifier::new(Rules {
        start,
        key: None,
        expected: expected.clone(),
    });
    let mut after = 0;
    let mut broken = None;
    'pages: loop {
        let page = fetch(client, PAGE, after, true).await?;
        let Some(newest) = page.last() else { break };
        after = newest.seq;
        for entry in &page {
            if let Err(found) = verifier.push(&entry.link()) {
                broken = Some(found.to_string());
                break 'pages;
            }
        }
    }
    let total = match broken {
        Some(error) => Err(error),
        None => verifier.finish().map_err(|e| e.to_string()),
    };
    let total = match total {
        Ok(_) if !server.verified => Err(format!(
            "{} (found by the controller, with the chain's key)",
            server.error
        )),
        other => other,
    };
    let total = match total {
        Ok(total) => total,
        Err(error) => {
            if json {
                print!(
                    "{}",
                    sorted_json(&serde_json::json!({
                        "verified": false,
                        "error": error,
                    }))?
                );
            }
            anyhow::bail!("the audit log does not verify: {error}");
        }
    };
    let head = total.head();
    if json {
        return sorted_json(&serde_json::json!({
            "verified": true,
            "chained": total.chained,
            "unchained": total.unchained,
            "keyed": total.keyed,
            "chained_from": start.chained_from,
            "keyed_from": start.keyed_from,
            "head": head.as_ref().map(Head::to_string),
            "head_seq": head.as_ref().map(|h| h.seq),
            "head_sha256": head.as_ref().map(|h| h.sha256.clone()),
            "expected": expected.iter().map(Head::to_string).collect::<Vec<_>>(),
        }));
    }
    let mut text = if total.chained == 1 {
        "The audit log verifies: 1 chained entry holds its hash".to_owned()
    } else {
        format!(
            "The audit log verifies: {} chained entries hold their hashes",
            total.chained
        )
    };
    if total.keyed > 0 {
        text.push_str(&format!(
            " ({} keyed from entry {}, checked by the controller with its audit key)",
            total.keyed, start.keyed_from
        ));
    }
    if total.unchained > 0 {
        text.push_str(&format!(
            "; {} older {} from before the log was chained (at entry {}) cannot be verified",
            total.unchained,
            if total.unchained == 1 { "one" } else { "ones" },
            start.chained_from
        ));
    }
    text.push_str(".\n");
    for kept in &expected {
        text.push_str(&format!("The kept head {kept} is in the log.\n"));
    }
    if let Some(head) = &head {
        text.push_str(&format!(
            "Head: {head}\nKeep it: `tierwise audit verify --expect {head}` fails later if that entry was removed or rewritten.\n"
        ));
    }
    Ok(text)
}
