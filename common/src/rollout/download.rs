//! Downloads follow dispatches: whether an agent may download an installer
//! (or a Web Application package) from the controller's store. An agent
//! gets a file only for a step of a rollout of its host's installation (the
//! one it is in now: for a client that said `auto`, where it was placed)
//! that names the file, was dispatched to it and has not finished — or finished
//! a short while ago, so a download cut by the step's end (a timeout, a
//! result racing the last chunks) can still be resumed. Nothing else: not
//! another host's step, not a step still pending, not any other stored file,
//! and nothing of an aborted rollout.
//!
//! The controller reads the asking host's steps that name the file (one
//! indexed query) and asks `may_download`; the reason of a refusal goes to
//! the audit log and the controller's log, never to the agent, which gets
//! the answer of a file that does not exist.

use super::{RolloutState, StepState};
use crate::action::StepAction;

/// How long after a step ended its host may still fetch the step's file.
pub const ENDED_STEP_GRACE_MS: i64 = 10 * 60 * 1000;

/// A step of the asking host whose action may name the file (the store
/// narrows by host and by the file's digest in the action's text), with its
/// rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStep {
    pub step_id: String,
    pub action: StepAction,
    pub state: StepState,
    /// When the step last changed state (for an ended step: when it ended).
    pub changed_ms: i64,
    pub rollout_id: String,
    pub rollout_state: RolloutState,
    /// The installation the rollout is of.
    pub installation: String,
    /// The installation the host is in now (for a client whose agent said
    /// `auto`, the one it was placed in).
    pub host_installation: String,
}

/// Why a step lets its host download a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadGrant {
    pub step_id: String,
    pub rollout_id: String,
}

/// The step that lets the host download the file, or why none does (for
/// the audit log, after the file's name: the agent only learns that there
/// is no such file).
pub fn may_download(
    sha256: &str,
    steps: &[HostStep],
    now_ms: i64,
) -> Result<DownloadGrant, String> {
    let naming: Vec<&HostStep> = steps
        .iter()
        .filter(|s| s.action.artifact() == Some(sha256))
        .collect();
    if let Some(step) = naming.iter().find(|s| grants(s, now_ms)) {
        return Ok(DownloadGrant {
            step_id: step.step_id.clone(),
            rollout_id: step.rollout_id.clone(),
        });
    }
    // Why not, from the step that came closest (the newest).
    let Some(step) = naming.iter().max_by_key(|s| s.changed_ms) else {
        return Err("no step dispatched to this host names it".to_owned());
    };
    let why = if step.installation != step.host_installation {
        format!(
            "its rollout {} is of installation {}, and the host is in {} now",
            step.rollout_id, step.installation, step.host_installation
        )
    } else if step.rollout_state == RolloutState::Aborted {
        format!("its rollout {} was aborted", step.rollout_id)
    } else {
        match step.state {
            StepState::Pending => "it has not been dispatched yet".to_owned(),
            StepState::Skipped => "it was skipped".to_owned(),
            StepState::Dispatched | StepState::Succeeded | StepState::Failed => format!(
                "it ended {} s ago, more than the {} s a download may still resume",
                now_ms.saturating_sub(step.changed_ms) / 1000,
                ENDED_STEP_GRACE_MS / 1000
            ),
        }
    };
    Err(format!("its step {} names it, but {why}", step.step_id))
}

/// Whether this step (which names the file) lets its host have it now.
fn grants(step: &HostStep, now_ms: i64) -> bool {
    if step.installation != step.host_installation || step.rollout_state == RolloutState::Aborted {
        return false;
    }
    match step.state {
        StepState::Dispatched => true,
        StepState::Succeeded | StepState::Failed => {
            now_ms.saturating_sub(step.changed_ms) <= ENDED_STEP_GRACE_MS
        }
        StepState::Pending | StepState::Skipped => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Role, Version};

    const NOW: i64 = 1_800_000_000_000;

    fn sha(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn install(sha256: &str) -> StepAction {
        StepAction::InstallComponent {
            role: Role::Client,
            version: Version::new(26, 3, 100, 34058),
            artifact_sha256: Some(sha256.to_owned()),
        }
    }

    fn step(action: StepAction, state: StepState) -> HostStep {
        HostStep {
            step_id: "r1-3".into(),
            action,
            state,
            changed_ms: NOW - 1000,
            rollout_id: "r1".into(),
            rollout_state: RolloutState::Running,
            installation: "prod".into(),
            host_installation: "prod".into(),
        }
    }

    #[test]
    fn a_dispatched_step_lets_its_host_have_its_file() {
        let a = sha('a');
        let grant =
            may_download(&a, &[step(install(&a), StepState::Dispatched)], NOW).expect("granted");
        assert_eq!(grant.step_id, "r1-3");
        assert_eq!(grant.rollout_id, "r1");
        // Whatever state a rollout that can still go on is in: a step sent
        // before a pause or a halt still runs on its host.
        for state in RolloutState::ALL {
            let mut s = step(install(&a), StepState::Dispatched);
            s.rollout_state = state;
            assert_eq!(
                may_download(&a, &[s], NOW).is_ok(),
                state != RolloutState::Aborted,
                "{state:?}"
            );
        }
        // A Web Application deployment names its package the same way.
        let web = StepAction::DeployWebApp {
            version: Version::new(26, 3, 100, 34058),
            artifact_sha256: Some(a.clone()),
        };
        assert!(may_download(&a, &[step(web, StepState::Dispatched)], NOW).is_ok());
    }

    #[test]
    fn no_step_naming_the_file_is_a_refusal() {
        let a = sha('a');
        let b = sha('b');
        for steps in [
            vec![],
            vec![step(install(&b), StepState::Dispatched)],
            vec![step(StepAction::Reprobe, StepState::Dispatched)],
            vec![step(
                StepAction::InstallComponent {
                    role: Role::Client,
                    version: Version::new(26, 3, 100, 34058),
                    artifact_sha256: None,
                },
                StepState::Dispatched,
            )],
        ] {
            let why = may_download(&a, &steps, NOW).expect_err("refused");
            assert_eq!(why, "no step dispatched to this host names it");
        }
    }

    #[test]
    fn a_step_not_yet_sent_or_skipped_gives_nothing() {
        let a = sha('a');
        let why =
            may_download(&a, &[step(install(&a), StepState::Pending)], NOW).expect_err("refused");
        assert!(why.contains("not been dispatched yet"), "{why}");
        let why =
            may_download(&a, &[step(install(&a), StepState::Skipped)], NOW).expect_err("refused");
        assert!(why.contains("skipped"), "{why}");
    }

    #[test]
    fn an_ended_step_lets_a_download_resume_for_a_while() {
        let a = sha('a');
        for state in [StepState::Succeeded, StepState::Failed] {
            let mut s = step(install(&a), state);
            s.changed_ms = NOW - ENDED_STEP_GRACE_MS;
            assert!(may_download(&a, &[s.clone()], NOW).is_ok(), "{state:?}");
            // A rollout that completed with it still counts within the grace.
            s.rollout_state = RolloutState::Completed;
            assert!(may_download(&a, &[s.clone()], NOW).is_ok(), "{state:?}");
            s.changed_ms = NOW - ENDED_STEP_GRACE_MS - 1;
            let why = may_download(&a, &[s], NOW).expect_err("too late");
            assert!(why.contains("ended 600 s ago"), "{why}");
        }
    }

    #[test]
    fn another_installation_or_an_aborted_rollout_gives_nothing() {
        let a = sha('a');
        // A host placed elsewhere since (a client that said `auto`).
        let mut moved = step(install(&a), StepState::Dispatched);
        moved.host_installation = "branch".into();
        let why = may_download(&a, &[moved], NOW).expect_err("refused");
        assert!(
            why.contains("of installation prod, and the host is in branch now"),
            "{why}"
        );
        let mut aborted = step(install(&a), StepState::Dispatched);
        aborted.rollout_state = RolloutState::Aborted;
        let why = may_download(&a, &[aborted], NOW).expect_err("refused");
        assert!(why.contains("rollout r1 was aborted"), "{why}");
    }

    #[test]
    fn any_step_that_grants_is_enough() {
        let a = sha('a');
        let mut old = step(install(&a), StepState::Succeeded);
        old.step_id = "r0-3".into();
        old.rollout_id = "r0".into();
        old.changed_ms = NOW - 30 * 24 * 3_600_000;
        old.rollout_state = RolloutState::Completed;
        let current = step(install(&a), StepState::Dispatched);
        let grant = may_download(&a, &[old.clone(), current], NOW).expect("granted");
        assert_eq!(grant.rollout_id, "r1");
        let why = may_download(&a, &[old], NOW).expect_err("refused");
        assert!(
            why.starts_with("its step r0-3 names it, but it ended"),
            "{why}"
        );
    }
}
