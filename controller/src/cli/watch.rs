//! Following a rollout from a script or a terminal: `rollout status
//! [--watch]` and `rollout start --watch`. The exit status says how the
//! rollout ended (docs/cli.md lists the codes); Ctrl-C stops only the
//! watching, and says how to follow the rollout again; off a terminal only
//! what changed is printed, one line each.

use super::rollout::{fetch, phase_counts, phase_name, render};
use crate::rollout_view::RolloutStatus;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

type Client = crate::cli::AdminClient;

/// `completed_with_failures`: it ended, but some hosts failed or were
/// skipped and keep their old version.
pub const EXIT_COMPLETED_WITH_FAILURES: u8 = 4;
/// `failed`: the engine halted it (a failed server, database or web step,
/// a client wave over its error threshold, a task or backup too old); it
/// waits for `rollout resume` or `abort`.
pub const EXIT_FAILED: u8 = 5;
/// `aborted` by an operator.
pub const EXIT_ABORTED: u8 = 6;
/// Ctrl-C (or SIGTERM) while watching: the rollout itself goes on.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The exit status for a rollout in `state` (as its `--json` names it)
/// when watching ends there; `None` while it can still go on by itself
/// (running, paused, waiting for an approval or an operator).
pub fn exit_status(state: &str) -> Option<u8> {
    match state {
        "completed" => Some(0),
        "completed_with_failures" => Some(EXIT_COMPLETED_WITH_FAILURES),
        "failed" => Some(EXIT_FAILED),
        "aborted" => Some(EXIT_ABORTED),
        _ => None,
    }
}

/// `rollout status` without `--watch`: the status once, and the exit
/// status of its state (0 while it is not over).
pub async fn status_once(
    client: &mut Client,
    id: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let status = fetch(client, id).await?;
    print!(
        "{}",
        if json {
            serde_json::to_string_pretty(&status)? + "\n"
        } else {
            render(&status)
        }
    );
    Ok(ExitCode::from(
        exit_status(status.state.as_str()).unwrap_or(0),
    ))
}

/// Follows rollout `id` (the newest without one) until it ends, and
/// returns the exit status of how it ended. `again` is the command line
/// before `rollout status`, for the line said on Ctrl-C.
pub async fn watch(
    client: &mut Client,
    id: Option<&str>,
    json: bool,
    again: &str,
) -> anyhow::Result<ExitCode> {
    let mut followed = id.map(str::to_owned);
    let ended = {
        let following = follow(client, &mut followed, json);
        tokio::select! {
            ended = following => Some(ended?),
            () = tierwise_runtime::shutdown::signal() => None,
        }
    };
    if let Some(code) = ended {
        return Ok(ExitCode::from(code));
    }
    eprint!("{}", interrupted(followed.as_deref(), json, again));
    Ok(ExitCode::from(EXIT_INTERRUPTED))
}

/// What Ctrl-C says: watching stopped, the rollout did not.
pub fn interrupted(id: Option<&str>, json: bool, again: &str) -> String {
    let rollout = id.map_or_else(|| "The rollout".to_owned(), |id| format!("Rollout {id}"));
    format!(
        "\nStopped watching. {rollout} goes on on the controller; follow it again with:\n  {again} rollout status{} --watch{}\n",
        id.map(|id| format!(" {id}")).unwrap_or_default(),
        if json { " --json" } else { "" }
    )
}

/// Polls once a second and prints: on a terminal the whole status, redrawn;
/// otherwise the lines that changed (or, with `--json`, the document when
/// something but the estimate changed). Sets `followed` to the rollout's
/// id at the first answer, so a newer rollout never takes its place.
async fn follow(
    client: &mut Client,
    followed: &mut Option<String>,
    json: bool,
) -> anyhow::Result<u8> {
    let terminal = std::io::stdout().is_terminal();
    let mut last_json = None;
    let mut last_facts = Vec::new();
    loop {
        let status = fetch(client, followed.as_deref()).await?;
        *followed = Some(status.id.clone());
        if json {
            let mut value = serde_json::to_value(&status)?;
            if let Some(object) = value.as_object_mut() {
                object.remove("eta");
            }
            if last_json.as_ref() != Some(&value) {
                println!("{}", serde_json::to_string(&status)?);
                last_json = Some(value);
            }
        } else if terminal {
            print!("\x1b[2J\x1b[H{}", render(&status));
        } else {
            let now = tierwise_runtime::clock::rfc3339(tierwise_runtime::clock::now_ms());
            let current = facts(&status);
            for line in changed(&last_facts, &current) {
                println!("{now} {line}");
            }
            last_facts = current;
        }
        if let Some(code) = exit_status(status.state.as_str()) {
            return Ok(code);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The lines of `current` that `previous` did not have, in their order.
pub fn changed<'a>(previous: &[String], current: &'a [String]) -> Vec<&'a str> {
    current
        .iter()
        .filter(|line| !previous.contains(line))
        .map(String::as_str)
        .collect()
}

/// A rollout's status as one line per fact that can change: its state, each
/// phase's counts, each running step, task, wait and failure. The estimate
/// is left out: it moves every second.
pub fn facts(status: &RolloutStatus) -> Vec<String> {
    let id = &status.id;
    let mut out = vec![format!(
        "rollout {id} ({} → {}): {}{}",
        status.installation,
        status.target,
        status.state.as_str(),
        if status.reason.is_empty() {
            String::new()
        } else {
            format!(" — {}", super::table::printable(&status.reason))
        }
    )];
    for (index, phase) in status.phases.iter().enumerate() {
        let counts = phase_counts(phase);
        out.push(format!(
            "phase {}. {} ({}): {counts}",
            index + 1,
            phase_name(&phase.kind),
            phase.state
        ));
    }
    out.extend(status.running.iter().map(|step| {
        let progress = if step.progress.is_empty() {
            String::new()
        } else {
            format!(" — {}", super::table::printable(&step.progress))
        };
        format!(
            "running {} {} on {}{progress}",
            step.step_id, step.action, step.host_id
        )
    }));
    out.extend(status.tasks.iter().map(|task| {
        format!(
            "task {} {} on {}: {}",
            task.id, task.kind, task.host_id, task.state
        )
    }));
    out.extend(status.waiting_for_window.iter().cloned());
    if !status.waiting_for_offline.is_empty() {
        out.push(format!(
            "waiting for offline host(s): {}",
            status.waiting_for_offline.join(", ")
        ));
    }
    out.extend(status.awaiting_reports.iter().map(|a| {
        format!(
            "waiting for {} to report {} (reports {})",
            a.host_id,
            a.expected,
            super::table::printable(&a.reported)
        )
    }));
    out.extend(
        status
            .pending_restarts
            .iter()
            .map(|p| format!("restart of {} ({}): {}", p.host_id, p.step_id, p.state)),
    );
    if !status.skipped_hosts.is_empty() {
        out.push(format!("skipped: {}", status.skipped_hosts.join(", ")));
    }
    out.extend(status.failures.iter().map(|f| {
        format!(
            "failed {} {} on {}: {}{}",
            f.step_id,
            f.action,
            f.host_id,
            super::table::printable(&f.reason),
            f.exit_code
                .filter(|c| !f.reason.contains(&format!("code {c}")))
                .map(|c| format!(" (exit {c})"))
                .unwrap_or_default()
        )
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_a_rollout_ends_has_its_own_exit_status() {
        assert_eq!(exit_status("completed"), Some(0));
        let ended: Vec<u8> = ["completed_with_failures", "failed", "aborted"]
            .into_iter()
            .filter_map(exit_status)
            .collect();
        assert_eq!(ended, [4, 5, 6]);
        for going_on in [
            "running",
            "paused",
            "waiting_for_approval",
            "waiting_for_operator",
        ] {
            assert_eq!(exit_status(going_on), None, "{going_on}");
        }
    }

    #[test]
    fn only_new_lines_are_changes() {
        let before = vec!["a".to_owned(), "b".to_owned()];
        let after = vec!["a".to_owned(), "c".to_owned(), "d".to_owned()];
        assert_eq!(changed(&before, &after), ["c", "d"]);
        assert_eq!(changed(&after, &after), Vec::<&str>::new());
        assert_eq!(changed(&[], &before), ["a", "b"]);
    }

    #[test]
    fn ctrl_c_says_the_rollout_goes_on_and_how_to_follow_it_again() {
        let said = interrupted(Some("r-7"), false, "tierwise --controller https://ctl:7700");
        assert!(
            said.contains("Rollout r-7 goes on on the controller"),
            "{said}"
        );
        assert!(
            said.contains("tierwise --controller https://ctl:7700 rollout status r-7 --watch\n"),
            "{said}"
        );
        assert!(interrupted(None, true, "tierwise").contains("rollout status --watch --json"));
    }
}
