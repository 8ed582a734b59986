//! The rollout engine: level-triggered. For each running rollout it loads a
//! snapshot from the store, asks the pure `decide` what to do, applies the
//! decisions in one transaction and only then sends the dispatched steps to
//! the connected agents. It wakes on every step result and inventory change,
//! and on a short tick; a restarted controller just carries on.

use crate::grpc::sessions::Sessions;
use crate::store::{HostFilter, Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tierwise_common::action::StepAction;
use tierwise_common::rollout::{decide, dispatch_id, Decision, ExecStep, RolloutSnapshot};
use tierwise_proto::v1::{controller_message, ControllerMessage};
use tierwise_runtime::clock::now_ms;
use tokio::sync::Notify;
use tracing::{info, warn};

/// Also re-evaluate without a wake-up (timeouts, retry backoff).
const TICK: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct Engine {
    store: Store,
    sessions: Sessions,
    wake: Arc<Notify>,
}

impl Engine {
    pub fn new(store: Store, sessions: Sessions) -> Self {
        Self {
            store,
            sessions,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Asks for an evaluation as soon as possible.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn run(self) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            if let Err(error) = self.evaluate_all().await {
                warn!(%error, "rollout evaluation failed; trying again");
            }
        }
    }

    async fn evaluate_all(&self) -> Result<(), StoreError> {
        for id in self.store.running_rollout_ids().await? {
            // Phases can complete one after another within one wake-up.
            for _ in 0..16 {
                if !self.evaluate(&id).await? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// One decide-and-apply round; true when the rollout changed phase or
    /// state and should be looked at again at once.
    async fn evaluate(&self, id: &str) -> Result<bool, StoreError> {
        let Some((rollout, steps)) = self.store.rollout(id).await? else {
            return Ok(false);
        };
        let now = now_ms();
        let hosts = self
            .store
            .list_hosts(
                &HostFilter {
                    installation: Some(rollout.installation.clone()),
                    role: None,
                },
                now,
            )
            .await?;
        let decisions = decide(
            &RolloutSnapshot {
                state: rollout.state,
                current_phase: rollout.current_phase,
                options: &rollout.options,
                phases: &rollout.phases,
                steps: &steps,
                hosts: &hosts,
            },
            now,
        );
        if decisions.is_empty() {
            return Ok(false);
        }
        let Some(dispatched) = self
            .store
            .apply_decisions(&rollout, &decisions, now)
            .await?
        else {
            return Ok(false);
        };
        // Only what the store really moved to dispatched goes out, with the
        // attempt number it recorded.
        let by_id: HashMap<&str, &ExecStep> =
            steps.iter().map(|s| (s.step_id.as_str(), s)).collect();
        for (step_id, attempt) in &dispatched {
            if let Some(step) = by_id.get(step_id.as_str()) {
                self.send(
                    &step.host_id,
                    &dispatch_id(step_id, *attempt, &rollout.nonce),
                    &step.action,
                );
            }
        }
        for decision in &decisions {
            match decision {
                Decision::Dispatch { .. } => {}
                Decision::EnterPhase { phase } => {
                    info!(rollout = %id, phase, "phase complete; next phase starts")
                }
                Decision::AwaitApproval { phase } => {
                    info!(rollout = %id, phase, "phase complete; the next waits for approval")
                }
                Decision::Halt { reason } => warn!(rollout = %id, %reason, "rollout halted"),
                Decision::Complete => info!(rollout = %id, "rollout completed"),
                Decision::TimedOut { step_id } => warn!(rollout = %id, %step_id, "step timed out"),
                Decision::Unverified { step_id, reason } => {
                    warn!(rollout = %id, %step_id, %reason, "step not verified in time")
                }
                Decision::Retry { step_id } => info!(rollout = %id, %step_id, "retrying a step"),
            }
        }
        Ok(decisions
            .iter()
            .any(|d| matches!(d, Decision::EnterPhase { .. } | Decision::Retry { .. })))
    }

    /// Sends one attempt of a step (its dispatch id) to its host if it is connected here; otherwise the step
    /// stays dispatched and goes out when the host says hello.
    pub fn send(&self, host_id: &str, step_id: &str, action: &StepAction) {
        let Some(outbound) = self.sessions.outbound(host_id) else {
            return;
        };
        let message = ControllerMessage {
            body: Some(controller_message::Body::Command(
                tierwise_proto::convert::command_to_wire(step_id, action),
            )),
        };
        tracing::debug!(%host_id, %step_id, "step sent");
        if outbound.try_send(Ok(message)).is_err() {
            warn!(%host_id, %step_id, "the agent's queue is full; the step goes out when it reconnects");
        }
    }

    /// Sends every unanswered step of a rollout again (after `resume`: a
    /// result may have been lost while it was paused).
    pub async fn resend_rollout(&self, rollout_id: &str) -> Result<(), StoreError> {
        if let Some((rollout, steps)) = self.store.rollout(rollout_id).await? {
            for step in steps
                .iter()
                .filter(|s| s.state == tierwise_common::rollout::StepState::Dispatched)
            {
                self.send_step(step, &rollout.nonce);
            }
        }
        Ok(())
    }

    /// Sends a dispatched step's current attempt.
    fn send_step(&self, step: &ExecStep, nonce: &str) {
        self.send(
            &step.host_id,
            &dispatch_id(&step.step_id, step.attempts, nonce),
            &step.action,
        );
    }

    /// Sends again what a host was given and has not answered, after it
    /// (re)connects. The agent's journal makes this safe.
    pub async fn redeliver(&self, host_id: &str) -> Result<(), StoreError> {
        // Their timeout starts again: the host may have been away for long.
        self.store.touch_dispatched(host_id, now_ms()).await?;
        for (step, nonce) in self.store.dispatched_steps(host_id).await? {
            self.send_step(&step, &nonce);
        }
        Ok(())
    }
}
