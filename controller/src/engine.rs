//! The rollout engine: level-triggered. For each running rollout it loads a
//! snapshot from the store, asks the pure `decide` what to do, and applies
//! the decisions in one transaction, which also puts what was dispatched in
//! the outbox (`delivery::run_outbox` hands it to whichever replica holds
//! the host's stream). Only the leader evaluates (on SQLite, the one
//! controller). Delivery is level-triggered too: on every hello a host is
//! given everything it has outstanding (`outstanding`), through the
//! `Deliver` interface (domain types, no protobuf), and its journal answers
//! what it already ran. It wakes on every step result and inventory change,
//! and on a short tick; a restarted controller just carries on.

use crate::delivery::Deliver;
use crate::store::{HostFilter, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tierwise_common::rollout::{decide, outstanding, Decision, RolloutSnapshot};
use tierwise_runtime::clock::now_ms;
use tokio::sync::Notify;
use tracing::{info, warn};

/// Also re-evaluate without a wake-up (timeouts, retry backoff).
const TICK: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct Engine {
    store: Store,
    deliver: Arc<dyn Deliver>,
    wake: Arc<Notify>,
    /// Wakes this replica's outbox reader after a commit that queued.
    outbox: Arc<Notify>,
}

impl Engine {
    pub fn new(store: Store, deliver: Arc<dyn Deliver>) -> Self {
        Self {
            store,
            deliver,
            wake: Arc::new(Notify::new()),
            outbox: Arc::new(Notify::new()),
        }
    }

    /// Wakes this replica's outbox reader (something was queued).
    pub fn wake_outbox(&self) {
        self.outbox.notify_one();
    }

    /// Runs this replica's outbox reader, handing rows to the sessions.
    pub async fn run_outbox(self) {
        crate::delivery::run_outbox(
            self.store.clone(),
            self.deliver.clone(),
            self.outbox.clone(),
        )
        .await;
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
            // Only the leader decides (on SQLite, the one controller).
            if self.store.epoch() == 0 {
                continue;
            }
            if let Err(error) = self.evaluate_all().await {
                warn!(%error, "rollout evaluation failed; trying again");
            }
        }
    }

    /// Evaluates every running rollout until nothing changes (what the run
    /// loop does on each wake-up).
    pub async fn evaluate_all(&self) -> Result<(), StoreError> {
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
        if !dispatched.is_empty() {
            self.outbox.notify_one();
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
                Decision::Restart { step_id } => {
                    info!(rollout = %id, %step_id, "restarting the host to finish a step")
                }
                Decision::AwaitRestart { hosts } => {
                    info!(rollout = %id, ?hosts, "restarts wait for approval")
                }
            }
        }
        Ok(decisions
            .iter()
            .any(|d| matches!(d, Decision::EnterPhase { .. } | Decision::Retry { .. })))
    }

    /// Hands a host that just said hello everything it has outstanding:
    /// the current attempt of each dispatched step (their timeout starts
    /// again: the host may have been away for long) and each requested
    /// restart it has not done (it booted at `boot_ms`). Returns how many.
    pub async fn hello(&self, host_id: &str, boot_ms: Option<i64>) -> Result<usize, StoreError> {
        // What the outbox held for it is outstanding, handed over below.
        self.store.clear_outbox(host_id).await?;
        self.store.touch_dispatched(host_id, now_ms()).await?;
        let mut sent = 0;
        for (step, nonce) in self.store.outstanding_steps(host_id).await? {
            if let Some(delivery) = outstanding(&step, &nonce, boot_ms) {
                self.deliver.deliver(&delivery);
                sent += 1;
            }
        }
        Ok(sent)
    }
}
