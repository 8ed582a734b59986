//! `tierwise hosts history HOST`, and the history part of `rollout status`:
//! steps that failed at least once, with each failed attempt's exit code
//! and output, kept after a skip or a successful retry.

use super::{status_error, table};
use crate::history_view::{AttemptView, HostHistoryView, StepHistoryView};
use crate::rollout_view::RolloutStatus;
use tierwise_proto::v1::GetHostHistoryRequest;
use tierwise_runtime::clock::shown_rfc3339;

type Client = crate::cli::AdminClient;

/// Output lines of an attempt shown in text (the JSON has up to 20).
const TEXT_TAIL_LINES: usize = 5;

pub async fn show(
    client: &mut Client,
    host: &str,
    limit: u32,
    json: bool,
) -> anyhow::Result<String> {
    let history = client
        .get_host_history(GetHostHistoryRequest {
            host_id: host.to_owned(),
            limit,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let view = crate::grpc::admin::history::host_history_from_wire(&history);
    if json {
        return Ok(serde_json::to_string_pretty(&view)? + "\n");
    }
    Ok(render(&view))
}

/// A host's history as text: one block per step, newest first.
pub fn render(view: &HostHistoryView) -> String {
    if view.steps.is_empty() {
        return format!("{} has taken part in no rollout yet.\n", view.host_id);
    }
    let mut out = vec![format!(
        "Steps of {} across rollouts, newest first ({}):",
        view.host_id,
        view.steps.len()
    )];
    for step in &view.steps {
        out.push(format!(
            "  {} {} → {}: {} {} — {} (last change {})",
            step.rollout_id,
            step.installation,
            step.release,
            step.step.step_id,
            step.step.action,
            result(&step.step),
            shown_rfc3339(&step.changed_at)
        ));
        for attempt in &step.step.attempts {
            out.extend(attempt_lines(attempt));
        }
    }
    out.join("\n") + "\n"
}

/// What became of a step: its state, or how it came through a failure.
fn result(step: &StepHistoryView) -> String {
    if step.summary.is_empty() {
        step.state.clone()
    } else {
        step.summary.clone()
    }
}

/// An attempt: its result, exit code, times and reason, then the end of
/// its output.
fn attempt_lines(a: &AttemptView) -> Vec<String> {
    let code = a
        .exit_code
        .map(|c| format!(", exit {c}"))
        .unwrap_or_default();
    let started = a
        .started_at
        .as_ref()
        .map(|s| format!("{} → ", shown_rfc3339(s)))
        .unwrap_or_default();
    let reason = if a.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", table::printable(&a.reason))
    };
    let mut lines = vec![format!(
        "      attempt {} {}{code} ({started}{}){reason}",
        a.attempt,
        a.result,
        shown_rfc3339(&a.finished_at)
    )];
    let tail: Vec<&str> = a.output_tail.lines().collect();
    lines.extend(
        tail[tail.len().saturating_sub(TEXT_TAIL_LINES)..]
            .iter()
            .map(|line| format!("        | {}", table::printable(line))),
    );
    lines
}

/// The part of `rollout status` that keeps failures: each step that failed
/// at least once, how it came through, and its failed attempts.
pub fn status_lines(status: &RolloutStatus) -> Vec<String> {
    if status.step_histories.is_empty() {
        return Vec::new();
    }
    let mut out = vec![
        String::new(),
        "Failed attempts (kept after a skip or a retry)".into(),
    ];
    for step in &status.step_histories {
        out.push(format!(
            "  {} {} on {}: {}",
            step.step_id,
            step.action,
            step.host_id,
            result(step)
        ));
        for attempt in &step.attempts {
            out.extend(attempt_lines(attempt));
        }
    }
    if let Some(more) = status.omitted.get("step_histories") {
        out.push(format!("  … and {more} more"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history_view::HostStepView;
    use tierwise_common::rollout::Recovery;

    fn attempt() -> AttemptView {
        AttemptView {
            attempt: 1,
            result: "failed".into(),
            outcome: "failed".into(),
            exit_code: Some(43),
            output_tail: "a\nb\nc\nd\ne\ninstaller error 43\n".into(),
            reason: "installer error \u{1b}[2J".into(),
            started_at: Some("2026-12-07T12:00:00Z".into()),
            started_ms: Some(0),
            finished_at: "2026-12-07T12:00:02Z".into(),
            finished_ms: 0,
        }
    }

    #[test]
    fn a_host_history_names_each_failed_attempt_and_how_the_step_ended() {
        let view = HostHistoryView {
            host_id: "cl-013".into(),
            steps: vec![HostStepView {
                rollout_id: "r2".into(),
                installation: "prod".into(),
                release: "26.3.100.34058".into(),
                step: StepHistoryView {
                    step_id: "r2-9".into(),
                    host_id: "cl-013".into(),
                    action: "install".into(),
                    state: "skipped".into(),
                    recovery: Some(Recovery::FailedThenSkipped),
                    summary: "failed, then skipped".into(),
                    attempts: vec![attempt()],
                },
                changed_at: "2026-12-07T12:05:00Z".into(),
                changed_ms: 0,
            }],
        };
        let text = render(&view);
        assert!(
            text.contains("r2 prod → 26.3.100.34058: r2-9 install — failed, then skipped"),
            "{text}"
        );
        assert!(
            text.contains(
                "attempt 1 failed, exit 43 (2026-12-07T12:00:00Z → 2026-12-07T12:00:02Z): installer error \u{fffd}[2J"
            ),
            "{text}"
        );
        assert!(
            text.contains("| installer error 43") && !text.contains("| a\n"),
            "{text}"
        );
        let empty = HostHistoryView {
            host_id: "cl-1".into(),
            steps: Vec::new(),
        };
        assert_eq!(render(&empty), "cl-1 has taken part in no rollout yet.\n");
    }
}
