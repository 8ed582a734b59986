//! `tierwise rollout start|list|status|pause|resume|abort|approve` and
//! `tierwise audit`.

use super::{status_error, table};
use crate::rollout_view::RolloutStatus;
use tierwise_common::plan::PhaseKind;
use tierwise_common::rollout::{Command, ErrorThreshold};
use tierwise_common::{thousands, ClientWaves, Version};
use tierwise_proto::v1::{
    ChangeRolloutRequest, GetRolloutRequest, ListRolloutsRequest, RolloutChange,
    StartRolloutRequest,
};
use tierwise_runtime::clock::shown_rfc3339;

type Client = crate::cli::AdminClient;

/// What `rollout start` asks for.
#[derive(Debug, Default)]
pub struct StartOptions {
    pub installation: String,
    pub to: String,
    pub client_waves: Option<String>,
    pub error_threshold: Option<String>,
    pub approve_phases: bool,
    /// The acknowledgements given, by name (`breaking`, `changelog`, …).
    pub acks: Vec<String>,
    /// `install=20m`, … (see `rollout::parse_verify_timeouts`).
    pub verify_timeouts: Vec<String>,
    /// `server=ask`, … (see `rollout::parse_restart_policies`).
    pub restarts: Vec<String>,
    /// `24h`, … (see `rollout::parse_duration_ms`).
    pub task_timeout: Option<String>,
    pub max_backup_age: Option<String>,
}

/// Starts a rollout and says how to follow it.
pub async fn start(client: &mut Client, options: StartOptions) -> anyhow::Result<String> {
    let status = start_rollout(client, options).await?;
    Ok(format!(
        "{}\nFollow it with: tierwise rollout status {} --watch\n",
        started_line(&status),
        status.id
    ))
}

/// The line that says a rollout started.
pub fn started_line(status: &RolloutStatus) -> String {
    format!(
        "Started rollout {} of installation {} to {}.",
        status.id, status.installation, status.target
    )
}

/// Checks what can be checked here, then asks the controller to start the
/// rollout; its first status.
pub async fn start_rollout(
    client: &mut Client,
    options: StartOptions,
) -> anyhow::Result<RolloutStatus> {
    Version::parse(&options.to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    if let Some(waves) = &options.client_waves {
        ClientWaves::parse(waves).map_err(|e| anyhow::anyhow!("--client-waves: {e}"))?;
    }
    if let Some(threshold) = &options.error_threshold {
        ErrorThreshold::parse(threshold).map_err(|e| anyhow::anyhow!("--error-threshold: {e}"))?;
    }
    tierwise_common::rollout::parse_verify_timeouts(&options.verify_timeouts)
        .map_err(|e| anyhow::anyhow!("--verify-timeout: {e}"))?;
    tierwise_common::rollout::parse_restart_policies(&options.restarts)
        .map_err(|e| anyhow::anyhow!("--restart: {e}"))?;
    for (flag, value) in [
        ("--task-timeout", &options.task_timeout),
        ("--max-backup-age", &options.max_backup_age),
    ] {
        if let Some(text) = value {
            tierwise_common::rollout::parse_duration_ms(text, flag, 10_000, 7 * 86_400_000)
                .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
        }
    }
    let json = client
        .start_rollout(StartRolloutRequest {
            installation: options.installation,
            target: options.to,
            client_waves: options.client_waves.unwrap_or_default(),
            error_threshold: options.error_threshold.unwrap_or_default(),
            approve_phases: options.approve_phases,
            // Sent as `acks` only: the controller reads both forms alike.
            ack_breaking: false,
            ack_server_manager_password: false,
            acks: options.acks,
            verify_timeouts: options.verify_timeouts,
            restarts: options.restarts,
            task_timeout: options.task_timeout.unwrap_or_default(),
            max_backup_age: options.max_backup_age.unwrap_or_default(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    Ok(RolloutStatus::try_from(&json)?)
}

pub async fn list(client: &mut Client, json: bool) -> anyhow::Result<String> {
    let list = client
        .list_rollouts(ListRolloutsRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let rollouts = list
        .rollouts
        .iter()
        .map(RolloutStatus::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    if json {
        return Ok(serde_json::to_string_pretty(&rollouts)? + "\n");
    }
    if rollouts.is_empty() {
        return Ok(
            "No rollouts yet: tierwise rollout start --installation N --to VERSION\n".into(),
        );
    }
    let rows: Vec<Vec<String>> = rollouts
        .iter()
        .map(|r| {
            let phase = r
                .phases
                .get(r.current_phase)
                .map_or_else(|| "-".to_owned(), |p| phase_name(&p.kind));
            vec![
                r.id.clone(),
                r.installation.clone(),
                r.target.clone(),
                r.state.as_str().to_owned(),
                phase,
                shown_rfc3339(&r.created),
            ]
        })
        .collect();
    Ok(table::render(
        &[
            "ROLLOUT",
            "INSTALLATION",
            "TARGET",
            "STATE",
            "PHASE",
            "STARTED",
        ],
        &rows,
    ))
}

pub async fn fetch(client: &mut Client, id: Option<&str>) -> anyhow::Result<RolloutStatus> {
    let json = client
        .get_rollout(GetRolloutRequest {
            id: id.unwrap_or_default().to_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    Ok(RolloutStatus::try_from(&json)?)
}

pub async fn change(client: &mut Client, id: &str, command: &Command) -> anyhow::Result<String> {
    let (change, host_id) = match command {
        Command::Pause => (RolloutChange::Pause, None),
        Command::Resume => (RolloutChange::Resume, None),
        Command::Abort => (RolloutChange::Abort, None),
        Command::Approve => (RolloutChange::Approve, None),
        Command::Skip { host_id } => (RolloutChange::SkipHost, Some(host_id.as_str())),
        Command::Done { .. } => (RolloutChange::Done, None),
    };
    let (task, note) = match command {
        Command::Done { task, note } => (task.clone(), note.clone()),
        _ => Default::default(),
    };
    let json = client
        .change_rollout(ChangeRolloutRequest {
            id: id.to_owned(),
            change: change.into(),
            host_id: host_id.unwrap_or_default().to_owned(),
            task: task.clone(),
            note,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let status = RolloutStatus::try_from(&json)?;
    if let Command::Done { .. } = command {
        let done = status
            .tasks
            .iter()
            .find(|t| t.id == task || (t.kind == task && t.done_at.is_some()));
        let checks = done.map_or_else(String::new, |t| {
            format!(" The rollout now checks: {}.", t.verification)
        });
        return Ok(format!(
            "Task {} of rollout {} is done.{checks} The rollout is {}.\n",
            done.map_or(task.as_str(), |t| t.id.as_str()),
            status.id,
            status.state.as_str()
        ));
    }
    if let Some(host) = host_id {
        return Ok(format!(
            "Rollout {} goes on without {host}, which keeps its old version; it is {}.\n",
            status.id,
            status.state.as_str()
        ));
    }
    Ok(format!(
        "Rollout {} is now {}.\n",
        status.id,
        status.state.as_str()
    ))
}

/// The first 8 items, one line each, then "… and N more".
/// The first few `items`, and how many more there are (`omitted`: those
/// the controller did not send).
fn listed<T>(out: &mut Vec<String>, items: &[T], omitted: u64, line: impl Fn(&T) -> String) {
    const SHOWN: usize = 8;
    out.extend(items.iter().take(SHOWN).map(line));
    let more = items.len().saturating_sub(SHOWN) as u64 + omitted;
    if more > 0 {
        out.push(format!("  … and {} more", thousands(more as usize)));
    }
}

/// One line on what is expected: the work per phase and, for a running
/// rollout, when it should end.
pub fn eta_line(eta: &crate::rollout_view::EtaView, times: bool) -> String {
    use tierwise_common::rollout::duration_text;
    let phases: Vec<String> = eta
        .phases
        .iter()
        .filter_map(|p| {
            let work = p.work_ms.map_or_else(|| "?".to_owned(), duration_text);
            let waits = match (&p.starts, p.waits_for_window) {
                (Some(starts), true) => format!(" from {} (its window)", shown_rfc3339(starts)),
                (None, true) => " (its window never fits a step)".to_owned(),
                _ => String::new(),
            };
            (p.work_ms != Some(0) || p.waits_for_window)
                .then(|| format!("{}. {work}{waits}", p.phase))
        })
        .collect();
    let unmeasured = if eta.unmeasured.is_empty() {
        String::new()
    } else {
        format!("; never measured yet: {}", eta.unmeasured.join(", "))
    };
    let work = eta
        .work_ms
        .map_or_else(|| "unknown".to_owned(), duration_text);
    let head = match (&eta.expected_end, times) {
        (Some(end), true) => format!("Expected end: {} ({work} of work left", shown_rfc3339(end)),
        (None, true) => format!("Expected end: unknown ({work} of work left"),
        _ => format!("Expected work: {work} (measured durations"),
    };
    format!(
        "{head}; by phase: {}{unmeasured}).",
        if phases.is_empty() {
            "none left".to_owned()
        } else {
            phases.join(", ")
        }
    )
}

pub fn phase_name(kind: &PhaseKind) -> String {
    match kind {
        PhaseKind::Backup => "backup".into(),
        PhaseKind::Server => "server".into(),
        PhaseKind::Databases => "databases".into(),
        PhaseKind::AppServers => "app servers".into(),
        PhaseKind::Web => "web".into(),
        PhaseKind::ClientWave { wave, percent } => format!("clients wave {wave} ({percent}%)"),
    }
}

/// A phase's progress in words: `3/5 done, 1 running, 1 failed`.
pub(super) fn phase_counts(phase: &crate::rollout_view::PhaseStatus) -> String {
    let mut counts = format!(
        "{}/{} done",
        thousands(phase.succeeded),
        thousands(phase.steps)
    );
    if phase.dispatched > 0 {
        counts.push_str(&format!(", {} running", thousands(phase.dispatched)));
    }
    if phase.failed > 0 {
        counts.push_str(&format!(", {} failed", thousands(phase.failed)));
    }
    counts
}

fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(WIDTH - filled))
}

/// The lines naming the backup that protects the rollout: one file on
/// one line, as always; several, one line per database.
pub fn protected_by(status: &RolloutStatus) -> Vec<String> {
    let details = |b: &crate::rollout_view::BackupView| {
        format!(
            "({} bytes, written {})",
            thousands(usize::try_from(b.size).unwrap_or(usize::MAX)),
            shown_rfc3339(&b.time)
        )
    };
    match status.backups.as_slice() {
        [] | [_] => status
            .backup
            .iter()
            .map(|b| {
                format!(
                    "Protected by the backup {} on {} {}",
                    table::printable(&b.path),
                    b.host_id,
                    details(b)
                )
            })
            .collect(),
        several => std::iter::once(format!(
            "Protected by the backups on {} of its {} databases:",
            several[0].file.host_id,
            several.len()
        ))
        .chain(several.iter().map(|b| {
            format!(
                "  {}: {} {}",
                table::printable(b.database.as_deref().unwrap_or("(server)")),
                table::printable(&b.file.path),
                details(&b.file)
            )
        }))
        .collect(),
    }
}

pub fn render(status: &RolloutStatus) -> String {
    let omitted = |list: &str| status.omitted.get(list).copied().unwrap_or(0);
    let and_more = |list: &str| match omitted(list) {
        0 => String::new(),
        n => format!(" and {} more", thousands(n as usize)),
    };
    let mut out = vec![format!(
        "Rollout {}: installation {} → {} — {}",
        status.id,
        status.installation,
        status.target,
        status.state.as_str().replace('_', " ")
    )];
    if !status.reason.is_empty() {
        out.push(format!("  {}", table::printable(&status.reason)));
    }
    out.push(format!(
        "Started {}, last change {}",
        shown_rfc3339(&status.created),
        shown_rfc3339(&status.updated)
    ));
    out.extend(protected_by(status));
    out.push(String::new());
    for (index, phase) in status.phases.iter().enumerate() {
        let marker = match phase.state.as_str() {
            "done" => "✓",
            "current" => "▶",
            _ => " ",
        };
        let counts = phase_counts(phase);
        out.push(format!(
            " {marker} {}. {:<24} {} {counts}",
            index + 1,
            phase_name(&phase.kind),
            bar(phase.succeeded, phase.steps)
        ));
    }
    if !status.running.is_empty() {
        out.push(String::new());
        out.push(format!(
            "Running ({})",
            thousands(status.running.len() + omitted("running") as usize)
        ));
        listed(&mut out, &status.running, omitted("running"), |step| {
            let progress = if step.progress.is_empty() {
                String::new()
            } else {
                format!(" — {}", table::printable(&step.progress))
            };
            format!(
                "  {} {} on {}{progress}",
                step.step_id, step.action, step.host_id
            )
        });
    }
    if !status.tasks.is_empty() {
        out.push(String::new());
        out.push("Operator tasks".into());
        for task in &status.tasks {
            let by = match (&task.done_by, &task.done_at) {
                (Some(by), Some(at)) => format!(" by {by} at {}", shown_rfc3339(at)),
                _ => String::new(),
            };
            out.push(format!(
                "  {} {} on {}: {}{by}",
                task.id,
                task.kind,
                task.host_id,
                task.state.to_uppercase()
            ));
            if let Some(note) = task.note.as_ref().filter(|n| !n.is_empty()) {
                out.push(format!("      note: {}", table::printable(note)));
            }
            if task.state == "open" {
                out.push(format!("      {}", table::printable(&task.instructions)));
            }
            if matches!(task.state.as_str(), "open" | "done") {
                out.push(format!("      then checked: {}", task.verification));
            }
        }
    }
    if let Some(window) = &status.waiting_for_window {
        out.push(String::new());
        // "Waiting for the server window (…), opens …."
        let mut said = window.clone();
        if let Some(first) = said.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        out.push(format!("{said}."));
    }
    if let Some(eta) = &status.eta {
        out.push(String::new());
        out.push(eta_line(eta, true));
    }
    if !status.waiting_for_offline.is_empty() {
        out.push(String::new());
        out.push(format!(
            "Waiting for offline host(s): {}{} — their steps go out when they reconnect.",
            status.waiting_for_offline.join(", "),
            and_more("waiting_for_offline")
        ));
    }
    if !status.awaiting_reports.is_empty() {
        out.push(String::new());
        out.push("Waiting for hosts to report the result".into());
        listed(
            &mut out,
            &status.awaiting_reports,
            omitted("awaiting_reports"),
            |awaited| {
                format!(
                    "  waiting for {} to report {} (reports {}; since {})",
                    awaited.host_id,
                    awaited.expected,
                    table::printable(&awaited.reported),
                    shown_rfc3339(&awaited.since)
                )
            },
        );
    }
    if !status.pending_restarts.is_empty() {
        out.push(String::new());
        out.push("Hosts pending a restart".into());
        listed(
            &mut out,
            &status.pending_restarts,
            omitted("pending_restarts"),
            |pending| {
                let what = match (pending.state.as_str(), pending.policy.as_str()) {
                    ("requested", _) => "restart sent, waiting for it to come back",
                    ("approved", _) => "restart approved, sent when it is online",
                    (_, "ask") => "waits for `tierwise rollout approve`",
                    (_, "never") => "restart it yourself; the rollout goes on when it is back",
                    _ => "restart goes out when it is online",
                };
                format!(
                    "  {} ({}): {what} (since {})",
                    pending.host_id,
                    pending.step_id,
                    shown_rfc3339(&pending.since)
                )
            },
        );
    }
    if !status.skipped_hosts.is_empty() {
        out.push(String::new());
        out.push(format!(
            "Skipped by an operator (still on their old version): {}{}",
            status.skipped_hosts.join(", "),
            and_more("skipped_hosts")
        ));
    }
    if !status.failures.is_empty() {
        out.push(String::new());
        out.push("Failures".into());
        for failure in &status.failures {
            out.push(format!(
                "  {} {} on {}: {}{}",
                failure.step_id,
                failure.action,
                failure.host_id,
                table::printable(&failure.reason),
                failure
                    .exit_code
                    // Said once: a reason that names the code stands alone.
                    .filter(|c| !failure.reason.contains(&format!("code {c}")))
                    .map(|c| format!(" (exit {c})"))
                    .unwrap_or_default()
            ));
            for line in failure
                .output_tail
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                out.push(format!("      | {}", table::printable(line)));
            }
        }
        if omitted("failures") > 0 {
            out.push(format!(
                "  … and {} more failures",
                thousands(omitted("failures") as usize)
            ));
        }
    }
    out.extend(super::history::status_lines(status));
    let mut text = out.join("\n");
    text.push('\n');
    text
}
