//! The rollout engine: level-triggered. It keeps each running rollout in
//! memory (`live`), and each round takes the inbox of changed hosts (written
//! by store triggers with every change `decide` reads, on whichever replica
//! made it), reloads only those hosts and their steps, asks the rollout's
//! `RolloutDecider` what to do (the pure `decide`'s answer, at the cost of
//! the hosts that changed: it is told of each host reloaded, and starts
//! again from the whole rollout after a restart, an error or a new
//! leadership), and applies the decisions in one transaction, which
//! also puts what was dispatched in the outbox (`delivery::run_outbox` hands it to whichever replica holds
//! the host's stream). Only the leader evaluates (on SQLite, the one
//! controller). Delivery is level-triggered too: on every hello a host is
//! given everything it has outstanding (`outstanding`), through the
//! `Deliver` interface (domain types, no protobuf), and its journal answers
//! what it already ran. It wakes on every step result and inventory change,
//! and on a short tick. The store stays the source of truth: a restarted
//! controller, or a new leader, loads the running rollouts whole and
//! carries on.

mod live;

use crate::delivery::{Deliver, OutboxSignal};
use crate::store::{Store, StoreError};
use live::LiveRollout;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tierwise_common::rollout::{outstanding, Decision};
use tierwise_runtime::clock::now_ms;
use tokio::sync::Notify;
use tracing::{info, warn};

/// Also re-evaluate without a wake-up (changes made on other replicas,
/// timeouts).
const TICK: Duration = Duration::from_millis(250);

/// How often `decide` looks at a rollout in which nothing changed: only
/// time moved (step timeouts, verification deadlines).
const RECHECK_MS: i64 = 1_000;

/// At most this many steps are dispatched per transaction.
const DISPATCH_BATCH: usize = 100;

/// The longest the engine waits for the wire between two parts of a wave
/// (a stalled stream must not hold the rollout).
const PACE_LIMIT: Duration = Duration::from_secs(1);

/// Splits one round's decisions, in order, into parts that hold at most
/// `max` dispatches each (the other decisions stay where they were).
fn dispatch_batches(decisions: &[Decision], max: usize) -> Vec<&[Decision]> {
    let mut parts = Vec::new();
    let (mut start, mut count) = (0, 0);
    for (i, decision) in decisions.iter().enumerate() {
        if matches!(decision, Decision::Dispatch { .. }) {
            if count == max.max(1) {
                parts.push(&decisions[start..i]);
                (start, count) = (i, 0);
            }
            count += 1;
        }
    }
    if start < decisions.len() {
        parts.push(&decisions[start..]);
    }
    parts
}

/// The running rollouts this replica keeps while it leads.
#[derive(Debug, Default)]
struct Live {
    /// The leadership they were read under.
    epoch: i64,
    rollouts: BTreeMap<String, LiveRollout>,
}

#[derive(Clone, Debug)]
pub struct Engine {
    store: Store,
    deliver: Arc<dyn Deliver>,
    wake: Arc<Notify>,
    /// Wakes this replica's outbox reader after a commit that queued.
    outbox: Arc<OutboxSignal>,
    live: Arc<tokio::sync::Mutex<Live>>,
    /// Which Web Application packages count (signed, where releases must be).
    trust: crate::web_packages::ReleaseTrust,
}

impl Engine {
    pub fn new(store: Store, deliver: Arc<dyn Deliver>) -> Self {
        Self {
            store,
            deliver,
            wake: Arc::new(Notify::new()),
            outbox: Arc::default(),
            live: Arc::default(),
            trust: crate::web_packages::ReleaseTrust::default(),
        }
    }

    /// Trusts releases as the controller was told to (the default trusts
    /// only signed ones).
    pub fn trusting(mut self, trust: crate::web_packages::ReleaseTrust) -> Self {
        self.trust = trust;
        self
    }

    /// Wakes this replica's outbox reader (something was queued).
    pub fn wake_outbox(&self) {
        self.outbox.wake();
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
    /// loop does on each wake-up). Rollouts are kept in memory between
    /// calls; each round reloads only the rollout rows and the hosts the
    /// inbox names. After an error nothing kept is trusted: the next call
    /// loads whole again.
    pub async fn evaluate_all(&self) -> Result<(), StoreError> {
        let mut live = self.live.lock().await;
        // A new leadership starts from the store.
        let epoch = self.store.epoch();
        if live.epoch != epoch {
            live.rollouts.clear();
            live.epoch = epoch;
        }
        let result = self.rounds(&mut live.rollouts).await;
        if result.is_err() {
            live.rollouts.clear();
        }
        result
    }

    async fn rounds(&self, live: &mut BTreeMap<String, LiveRollout>) -> Result<(), StoreError> {
        // Phases can complete one after another within one wake-up.
        for _ in 0..16 {
            // Taken before anything is read: what changes after the reads
            // below is in the next take.
            let changed = self.store.take_changed_hosts().await?;
            let running = self.store.running_rollout_ids().await?;
            live.retain(|id, _| running.contains(id));
            let mut again = false;
            for id in &running {
                let rollout = match live.entry(id.clone()) {
                    Entry::Occupied(entry) => {
                        let rollout = entry.into_mut();
                        if !self.refresh(rollout, &changed).await? {
                            live.remove(id);
                            continue;
                        }
                        rollout
                    }
                    Entry::Vacant(entry) => match self.load(id).await? {
                        Some(rollout) => entry.insert(rollout),
                        None => continue,
                    },
                };
                again |= self.evaluate(rollout).await?;
            }
            if !again {
                break;
            }
        }
        Ok(())
    }

    /// A running rollout read whole: its steps and the hosts they run on.
    async fn load(&self, id: &str) -> Result<Option<LiveRollout>, StoreError> {
        let Some((record, steps)) = self.store.rollout(id).await? else {
            return Ok(None);
        };
        let ids: BTreeSet<&str> = steps.iter().map(|s| s.host_id.as_str()).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        let hosts = self.store.hosts_as_stored(&ids).await?;
        Ok(Some(LiveRollout::new(record, steps, hosts)))
    }

    /// Reads the rollout's row again and the hosts and steps `changed`
    /// names; false when the rollout is gone.
    async fn refresh(
        &self,
        rollout: &mut LiveRollout,
        changed: &BTreeSet<String>,
    ) -> Result<bool, StoreError> {
        let Some(record) = self.store.rollout_record(&rollout.record.id).await? else {
            return Ok(false);
        };
        if record != rollout.record {
            rollout.record = record;
            rollout.dirty = true;
        }
        let concerned = rollout.concerned(changed);
        if !concerned.is_empty() {
            let steps = self
                .store
                .steps_of_hosts(&rollout.record.id, &concerned)
                .await?;
            rollout.update_steps(steps);
            let hosts = self.store.hosts_as_stored(&concerned).await?;
            rollout.update_hosts(&concerned, hosts);
        }
        Ok(true)
    }

    /// One decide-and-apply round; true when the rollout changed phase or
    /// state and should be looked at again at once. `decide` runs when
    /// something changed, and otherwise every `RECHECK` (timeouts).
    async fn evaluate(&self, rollout: &mut LiveRollout) -> Result<bool, StoreError> {
        let now = now_ms();
        if !rollout.dirty && now - rollout.decided_ms < RECHECK_MS {
            return Ok(false);
        }
        rollout.dirty = false;
        rollout.decided_ms = now;
        // Windows change seldom: read at most once a second, so an
        // operator's change counts within a second, not on every change of
        // a large wave. One that cannot be read holds this rollout only.
        if now - rollout.windows_read_ms >= RECHECK_MS {
            match self.store.windows(Some(&rollout.record.installation)).await {
                Ok(windows) => {
                    rollout.windows = windows.into_iter().map(|(_, w)| w).collect();
                    rollout.windows_read_ms = now;
                }
                Err(error) => {
                    warn!(rollout = %rollout.record.id, %error, "cannot read the maintenance windows; the rollout waits");
                    return Ok(false);
                }
            }
        }
        if rollout.generates_web_app() && now - rollout.packages_read_ms >= RECHECK_MS {
            let packages = self
                .trust
                .web_packages(&self.store, rollout.record.target)
                .await?;
            rollout.web_packages = Some(packages);
            rollout.packages_read_ms = now;
        }
        let decisions = rollout.decide(now);
        if decisions.is_empty() {
            return Ok(false);
        }
        let id = rollout.record.id.as_str();
        // A wave of thousands goes out in several commits. Each part is
        // handed to the outbox at once, and the next is committed when the
        // outbox reader has taken it and the streams have sent most of it:
        // the first hosts start while the rest are still being written, and
        // no command waits behind thousands of others. A part the store
        // refuses (the rollout moved on under it) ends the round.
        let mut last_commit = None;
        for part in dispatch_batches(&decisions, DISPATCH_BATCH) {
            if let Some(commit) = last_commit {
                self.paced(commit).await;
            }
            let Some(dispatched) = self
                .store
                .apply_decisions(&rollout.record, part, now)
                .await?
            else {
                return Ok(false);
            };
            // What was applied comes back through the inbox; until then the
            // rollout is looked at again next round.
            rollout.dirty = true;
            if !dispatched.is_empty() {
                last_commit = Some(self.outbox.committed());
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
                Decision::CompleteWithFailures {
                    failed_hosts,
                    skipped_hosts,
                } => warn!(
                    rollout = %id,
                    failed = failed_hosts.len(),
                    skipped = skipped_hosts.len(),
                    "rollout completed with failed or skipped hosts"
                ),
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
                Decision::AwaitOperator { open, reason } => {
                    info!(rollout = %id, ?open, %reason, "waiting for an operator")
                }
                Decision::TaskExpired { step_id, reason } => {
                    warn!(rollout = %id, %step_id, %reason, "an operator task was not done in time")
                }
                Decision::StaleBackup {
                    step_id, reason, ..
                } => {
                    warn!(rollout = %id, %step_id, %reason, "the backup is too old for the server's update")
                }
            }
        }
        Ok(decisions
            .iter()
            .any(|d| matches!(d, Decision::EnterPhase { .. } | Decision::Retry { .. })))
    }

    /// Waits (at most `PACE_LIMIT`) until the outbox reader has taken
    /// commit `commit` and this replica's streams are behind by less than
    /// one part.
    async fn paced(&self, commit: u64) {
        let deadline = tokio::time::Instant::now() + PACE_LIMIT;
        self.outbox.taken(commit, PACE_LIMIT).await;
        while self.deliver.queued() >= DISPATCH_BATCH && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Hands a host that just said hello everything it has outstanding:
    /// the current attempt of each dispatched step (their timeout starts
    /// again: the host may have been away for long) and each requested
    /// restart it has not done (it booted at `boot_ms`). Returns how many.
    pub async fn hello(&self, host_id: &str, boot_ms: Option<i64>) -> Result<usize, StoreError> {
        // Its hello dropped what the outbox held for it and restarted its
        // steps' timeouts (`Store::record_hello`): all of it is below.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatch(n: usize) -> Decision {
        Decision::Dispatch {
            step_id: format!("s{n}"),
        }
    }

    #[test]
    fn dispatches_are_split_and_nothing_is_lost_or_reordered() {
        let mut decisions: Vec<Decision> = (0..7).map(dispatch).collect();
        decisions.insert(
            3,
            Decision::TimedOut {
                step_id: "t".into(),
            },
        );
        decisions.push(Decision::Complete);
        let parts = dispatch_batches(&decisions, 3);
        let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(sizes, vec![4, 3, 2]);
        assert!(parts.iter().all(|p| p
            .iter()
            .filter(|d| matches!(d, Decision::Dispatch { .. }))
            .count()
            <= 3));
        assert_eq!(parts.concat(), decisions);
    }

    #[test]
    fn a_round_without_dispatches_is_one_part() {
        let decisions = vec![Decision::EnterPhase { phase: 2 }];
        assert_eq!(dispatch_batches(&decisions, 250), vec![&decisions[..]]);
        assert!(dispatch_batches(&[], 250).is_empty());
    }
}
