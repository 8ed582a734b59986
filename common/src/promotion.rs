//! Promotion between installations: a release reaches an installation
//! (`prod`) only after the installation it is promoted from (`test`) has
//! completed a rollout to it at least the soak time ago, with nothing on
//! that installation failing at that release since. Pure: the history and
//! the clock are inputs.

use crate::rollout::RolloutState;
use crate::rules::{Finding, Rule, Severity, Subject};
use crate::Version;
use serde::Serialize;

/// The acknowledgement that starts a rollout although its promotion is
/// not done (`--ack skip-promotion`), audited with the operator's name.
pub const ACK_SKIP_PROMOTION: &str = "skip-promotion";

/// Where an installation's releases must come through first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Promotion {
    /// The installation promoted from.
    pub from: String,
    /// How long a release must have run there, completed, before.
    pub soak_ms: i64,
}

/// One rollout of the installation promoted from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRollout {
    pub id: String,
    pub target: Version,
    pub state: RolloutState,
    pub created_ms: i64,
    /// When it last changed: for an ended rollout, when it ended.
    pub updated_ms: i64,
}

/// Where a promotion stands for one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PromotionState {
    /// The installation names none: nothing to wait for.
    None,
    /// Soaked long enough, and nothing failed since.
    Ready {
        from: String,
        rollout: String,
        completed_ms: i64,
        soak_ended_ms: i64,
    },
    /// Completed there, still soaking.
    Soaking {
        from: String,
        rollout: String,
        completed_ms: i64,
        soak_ends_ms: i64,
    },
    /// Never completed there.
    NotRolledOut { from: String },
    /// A rollout to the target failed (or was aborted, which is how a
    /// failed one is cleared away, or completed with failed or skipped
    /// hosts) there after, or instead of, the one that completed.
    FailedThere {
        from: String,
        rollout: String,
        failed_ms: i64,
    },
}

impl PromotionState {
    pub fn is_blocking(&self) -> bool {
        !matches!(self, PromotionState::None | PromotionState::Ready { .. })
    }
}

/// Where a promotion of `target` stands at `now_ms`, from the rollouts of
/// the installation it is promoted from (any order).
pub fn evaluate(
    promotion: Option<&Promotion>,
    target: Version,
    history: &[SourceRollout],
    now_ms: i64,
) -> PromotionState {
    let Some(promotion) = promotion else {
        return PromotionState::None;
    };
    let from = promotion.from.clone();
    // In the order they were created (a stable sort keeps the store's
    // order for rollouts created in the same millisecond).
    let mut to_target: Vec<&SourceRollout> =
        history.iter().filter(|r| r.target == target).collect();
    to_target.sort_by_key(|r| r.created_ms);
    let position = |r: &SourceRollout| to_target.iter().position(|x| x.id == r.id);
    let completed = to_target
        .iter()
        .rev()
        .find(|r| r.state == RolloutState::Completed);
    // A failure at the target since the completed rollout (or ever, when
    // none completed) speaks against it. A rollout that completed with
    // failed or skipped hosts is no clean completion: it counts as one.
    let failed = to_target.iter().rev().find(|r| {
        matches!(
            r.state,
            RolloutState::Failed | RolloutState::Aborted | RolloutState::CompletedWithFailures
        ) && completed.is_none_or(|c| position(r) > position(c))
    });
    if let Some(failed) = failed {
        return PromotionState::FailedThere {
            from,
            rollout: failed.id.clone(),
            failed_ms: failed.updated_ms,
        };
    }
    let Some(completed) = completed else {
        return PromotionState::NotRolledOut { from };
    };
    let ends = completed.updated_ms.saturating_add(promotion.soak_ms);
    if now_ms >= ends {
        PromotionState::Ready {
            from,
            rollout: completed.id.clone(),
            completed_ms: completed.updated_ms,
            soak_ended_ms: ends,
        }
    } else {
        PromotionState::Soaking {
            from,
            rollout: completed.id.clone(),
            completed_ms: completed.updated_ms,
            soak_ends_ms: ends,
        }
    }
}

/// The finding a plan of `installation` to `target` carries: a blocker
/// while the promotion is not done (or, with `skipped_by`, a warning that
/// names who skipped it), a warning-free nothing otherwise.
pub fn finding(
    installation: &str,
    target: Version,
    state: &PromotionState,
    skipped_by: Option<&str>,
) -> Option<Finding> {
    let (reason, remedy) = match state {
        PromotionState::None | PromotionState::Ready { .. } => return None,
        PromotionState::NotRolledOut { from } => (
            format!("{target} has not completed a rollout on {from}, which {installation} is promoted from"),
            format!("roll {from} to {target} first and let it soak"),
        ),
        PromotionState::Soaking {
            from,
            rollout,
            completed_ms,
            soak_ends_ms,
        } => (
            format!(
                "{target} completed on {from} ({rollout}) at {}; its soak ends at {}",
                crate::date::utc(*completed_ms),
                crate::date::utc(*soak_ends_ms)
            ),
            format!("wait until {}", crate::date::utc(*soak_ends_ms)),
        ),
        PromotionState::FailedThere {
            from,
            rollout,
            failed_ms,
        } => (
            format!(
                "a rollout of {from} to {target} ({rollout}) failed, or completed with failed or skipped hosts, at {}",
                crate::date::utc(*failed_ms)
            ),
            format!("complete a rollout of {from} to {target} and let it soak"),
        ),
    };
    let subject = Subject::Installation {
        name: installation.to_owned(),
    };
    Some(match skipped_by {
        Some(operator) => Finding::new(
            Severity::Warning,
            Rule::Promotion,
            subject,
            format!("promotion skipped by {operator} (--ack {ACK_SKIP_PROMOTION}): {reason}"),
            "watch this rollout closely".to_owned(),
        ),
        None => Finding::new(
            Severity::Blocker,
            Rule::Promotion,
            subject,
            reason,
            format!(
                "{remedy}; in an emergency, --ack {ACK_SKIP_PROMOTION} starts it anyway (audited)"
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_790_000_000_000;

    fn v(text: &str) -> Version {
        text.parse().expect("version")
    }

    fn rollout(id: &str, target: &str, state: RolloutState, at: i64) -> SourceRollout {
        SourceRollout {
            id: id.into(),
            target: v(target),
            state,
            created_ms: at,
            updated_ms: at + HOUR,
        }
    }

    fn promotion(soak_hours: i64) -> Promotion {
        Promotion {
            from: "test".into(),
            soak_ms: soak_hours * HOUR,
        }
    }

    #[test]
    fn a_release_waits_for_its_soak_on_the_installation_before() {
        let target = v("26.3.100.34058");
        assert_eq!(evaluate(None, target, &[], T0), PromotionState::None);
        let p = promotion(72);
        assert_eq!(
            evaluate(Some(&p), target, &[], T0),
            PromotionState::NotRolledOut {
                from: "test".into()
            }
        );
        // Completed at T0 + 1 h: soaking for 72 h from then.
        let history = [
            rollout(
                "r1",
                "26.1.0.34001",
                RolloutState::Completed,
                T0 - 100 * HOUR,
            ),
            rollout("r2", "26.3.100.34058", RolloutState::Completed, T0),
        ];
        let soaking = evaluate(Some(&p), target, &history, T0 + 2 * HOUR);
        assert_eq!(
            soaking,
            PromotionState::Soaking {
                from: "test".into(),
                rollout: "r2".into(),
                completed_ms: T0 + HOUR,
                soak_ends_ms: T0 + 73 * HOUR,
            }
        );
        assert!(soaking.is_blocking());
        let blocker = finding("prod", target, &soaking, None).expect("a blocker");
        assert_eq!(blocker.severity, Severity::Blocker);
        assert!(
            blocker.reason.contains("completed on test (r2)")
                && blocker
                    .reason
                    .ends_with("its soak ends at 2026-09-24T15:13:20Z"),
            "{}",
            blocker.reason
        );
        assert!(blocker.remedy.contains("--ack skip-promotion"));
        // The moment the soak ends it is ready.
        let ready = evaluate(Some(&p), target, &history, T0 + 73 * HOUR);
        assert!(!ready.is_blocking());
        assert_eq!(finding("prod", target, &ready, None), None);
    }

    #[test]
    fn a_failure_there_since_the_completed_rollout_blocks() {
        let target = v("26.3.100.34058");
        let p = promotion(1);
        let history = [
            rollout("r2", "26.3.100.34058", RolloutState::Completed, T0),
            rollout("r3", "26.3.100.34058", RolloutState::Failed, T0 + 5 * HOUR),
        ];
        let state = evaluate(Some(&p), target, &history, T0 + 100 * HOUR);
        assert_eq!(
            state,
            PromotionState::FailedThere {
                from: "test".into(),
                rollout: "r3".into(),
                failed_ms: T0 + 6 * HOUR,
            }
        );
        // Aborting the failed rollout (the only way to start another) does
        // not clear it.
        let history = [
            rollout("r2", "26.3.100.34058", RolloutState::Completed, T0),
            rollout("r3", "26.3.100.34058", RolloutState::Aborted, T0 + 5 * HOUR),
        ];
        assert!(matches!(
            evaluate(Some(&p), target, &history, T0 + 100 * HOUR),
            PromotionState::FailedThere { .. }
        ));
        // A failure before the completed one is history.
        let history = [
            rollout("r1", "26.3.100.34058", RolloutState::Failed, T0 - 10 * HOUR),
            rollout("r2", "26.3.100.34058", RolloutState::Completed, T0),
        ];
        assert!(!evaluate(Some(&p), target, &history, T0 + 100 * HOUR).is_blocking());
        // Completed with failed or skipped hosts: no clean completion, and
        // a failure after the clean one.
        let history = [rollout(
            "r1",
            "26.3.100.34058",
            RolloutState::CompletedWithFailures,
            T0,
        )];
        let state = evaluate(Some(&p), target, &history, T0 + 100 * HOUR);
        assert!(matches!(state, PromotionState::FailedThere { .. }));
        let blocker = finding("prod", target, &state, None).expect("a blocker");
        assert!(
            blocker
                .reason
                .contains("completed with failed or skipped hosts"),
            "{}",
            blocker.reason
        );
        let history = [
            rollout("r2", "26.3.100.34058", RolloutState::Completed, T0),
            rollout(
                "r3",
                "26.3.100.34058",
                RolloutState::CompletedWithFailures,
                T0 + 5 * HOUR,
            ),
        ];
        assert!(evaluate(Some(&p), target, &history, T0 + 100 * HOUR).is_blocking());
        // A failure with nothing completed.
        let history = [rollout("r1", "26.3.100.34058", RolloutState::Failed, T0)];
        assert!(matches!(
            evaluate(Some(&p), target, &history, T0 + 100 * HOUR),
            PromotionState::FailedThere { .. }
        ));
    }

    #[test]
    fn skipping_turns_the_blocker_into_a_warning_naming_the_operator() {
        let target = v("26.3.100.34058");
        let state = PromotionState::NotRolledOut {
            from: "test".into(),
        };
        let warning = finding("prod", target, &state, Some("alice")).expect("a warning");
        assert_eq!(warning.severity, Severity::Warning);
        assert!(warning.reason.starts_with(
            "promotion skipped by alice (--ack skip-promotion): 26.3.100.34058 has not completed"
        ));
    }
}
