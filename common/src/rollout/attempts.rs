//! A step's attempts as history keeps them: each ended attempt (its result,
//! exit code, output tail and times) stays after a retry or a skip, and a
//! step that failed before it was skipped or succeeded says so.

use super::StepState;
use serde::{Deserialize, Serialize};

/// One ended attempt of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Its number, from 1 (the step's `attempts` when it went out).
    pub attempt: u32,
    /// `succeeded` or `failed`.
    pub result: StepState,
    /// The outcome as the agent (or the engine) said it, e.g. `failed_transient`.
    pub outcome: String,
    pub exit_code: Option<i64>,
    pub output_tail: String,
    pub reason: String,
    /// When it went out (Unix ms); `None` for attempts from before this
    /// was kept.
    pub started_ms: Option<i64>,
    /// When its result was recorded (Unix ms).
    pub finished_ms: i64,
}

/// How a step that failed at least once ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum Recovery {
    /// It failed, and an operator let the rollout go on without it.
    FailedThenSkipped,
    /// It failed, and a later attempt succeeded.
    FailedThenSucceededOnRetry,
    /// It failed and has not been retried or skipped (yet).
    Failed,
}

impl Recovery {
    /// Its name in `--json` and on the wire.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// What `status` and the dashboard say.
    pub const fn text(self) -> &'static str {
        match self {
            Recovery::FailedThenSkipped => "failed, then skipped",
            Recovery::FailedThenSucceededOnRetry => "failed, then succeeded on retry",
            Recovery::Failed => "failed",
        }
    }
}

/// How a step in `state` with these ended `attempts` came through its
/// failures; `None` when none of its attempts failed. A step that waits
/// for (or runs) a new attempt after a failure is still `Failed`.
pub fn recovery(state: StepState, attempts: &[Attempt]) -> Option<Recovery> {
    if !attempts.iter().any(|a| a.result == StepState::Failed) {
        return None;
    }
    Some(match state {
        StepState::Skipped => Recovery::FailedThenSkipped,
        StepState::Succeeded => Recovery::FailedThenSucceededOnRetry,
        StepState::Pending | StepState::Dispatched | StepState::Failed => Recovery::Failed,
    })
}

/// The end of a command's output, bounded for a status or a page: at most
/// `max_lines` lines and `max_chars` characters, cut at the front (the
/// end of an installer's output says why it failed).
pub fn bounded_tail(text: &str, max_lines: usize, max_chars: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let kept = lines[lines.len().saturating_sub(max_lines)..].join("\n");
    let count = kept.chars().count();
    if count <= max_chars {
        return kept;
    }
    let cut: String = kept.chars().skip(count - max_chars).collect();
    format!("…{cut}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: u32, result: StepState) -> Attempt {
        Attempt {
            attempt: n,
            result,
            outcome: result.as_str().to_owned(),
            exit_code: (result == StepState::Failed).then_some(3),
            output_tail: String::new(),
            reason: String::new(),
            started_ms: Some(1_000 * i64::from(n)),
            finished_ms: 1_000 * i64::from(n) + 500,
        }
    }

    #[test]
    fn a_failure_then_a_skip_or_a_successful_retry_is_named() {
        let failed = [attempt(1, StepState::Failed)];
        assert_eq!(
            recovery(StepState::Skipped, &failed),
            Some(Recovery::FailedThenSkipped)
        );
        let retried = [
            attempt(1, StepState::Failed),
            attempt(2, StepState::Succeeded),
        ];
        assert_eq!(
            recovery(StepState::Succeeded, &retried),
            Some(Recovery::FailedThenSucceededOnRetry)
        );
        assert_eq!(
            Recovery::FailedThenSucceededOnRetry.text(),
            "failed, then succeeded on retry"
        );
        assert_eq!(Recovery::FailedThenSkipped.text(), "failed, then skipped");
        for r in [
            Recovery::FailedThenSkipped,
            Recovery::FailedThenSucceededOnRetry,
            Recovery::Failed,
        ] {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
            assert_eq!(Recovery::parse(r.as_str()), Some(r));
        }
        for waiting in [StepState::Failed, StepState::Pending, StepState::Dispatched] {
            assert_eq!(recovery(waiting, &failed), Some(Recovery::Failed));
        }
    }

    #[test]
    fn a_step_that_never_failed_has_no_story() {
        assert_eq!(
            recovery(StepState::Succeeded, &[attempt(1, StepState::Succeeded)]),
            None
        );
        // Skipped while offline, never tried.
        assert_eq!(recovery(StepState::Skipped, &[]), None);
        assert_eq!(recovery(StepState::Pending, &[]), None);
    }

    #[test]
    fn tails_keep_the_end_within_their_bounds() {
        let text = (1..=30)
            .map(|n| format!("line {n}"))
            .collect::<Vec<_>>()
            .join("\n");
        let tail = bounded_tail(&text, 3, 1_000);
        assert_eq!(tail, "line 28\nline 29\nline 30");
        let short = bounded_tail(&text, 3, 10);
        assert_eq!(short, "…29\nline 30");
        assert_eq!(short.chars().count(), 11);
        assert_eq!(bounded_tail("", 5, 100), "");
        assert_eq!(bounded_tail("é".repeat(50).as_str(), 5, 4), "…éééé");
    }
}
