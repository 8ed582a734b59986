//! A running rollout as the engine keeps it between rounds: its steps and
//! the hosts they run on, replaced host by host as the inbox names them,
//! and its `RolloutDecider`, told of each host replaced. Bookkeeping only;
//! what to do is the decider's (equal to `decide`'s).

use crate::store::rollouts::RolloutRecord;
use std::collections::{BTreeSet, HashMap};
use tierwise_common::rollout::{Decision, ExecStep, HostLookup, RolloutDecider, RolloutSnapshot};
use tierwise_common::HostRecord;

#[derive(Debug)]
pub(super) struct LiveRollout {
    pub record: RolloutRecord,
    /// In rollout order (the order `decide` walks).
    steps: Vec<ExecStep>,
    step_at: HashMap<String, usize>,
    /// The hosts of the installation that have steps here.
    hosts: Vec<HostRecord>,
    host_at: HashMap<String, usize>,
    step_hosts: BTreeSet<String>,
    /// Something changed since `decide` last looked.
    pub dirty: bool,
    /// When `decide` last looked (Unix ms): time alone can change its
    /// answer (timeouts, deadlines), so it looks again now and then.
    pub decided_ms: i64,
    /// The installation's maintenance windows, read again at most every
    /// second (Unix ms of the last read in `windows_read_ms`).
    pub windows: Vec<tierwise_common::window::MaintenanceWindow>,
    pub windows_read_ms: i64,
    /// The Web Application packages that count for the target, read again
    /// at most every second while the rollout generates one.
    pub web_packages: Option<tierwise_common::plan::WebPackages>,
    pub packages_read_ms: i64,
    /// What `decide` would say, kept up to date host by host.
    decider: RolloutDecider,
}

/// The kept hosts by id, as the decider looks them up.
struct KeptHosts<'a> {
    hosts: &'a [HostRecord],
    at: &'a HashMap<String, usize>,
}

impl HostLookup for KeptHosts<'_> {
    fn host(&self, host_id: &str) -> Option<&HostRecord> {
        self.at.get(host_id).map(|&at| &self.hosts[at])
    }
}

impl LiveRollout {
    /// From a whole load: the rollout, its steps in order, and hosts that
    /// may include others (only those with steps here are kept).
    pub fn new(record: RolloutRecord, steps: Vec<ExecStep>, hosts: Vec<HostRecord>) -> Self {
        let step_hosts: BTreeSet<String> = steps.iter().map(|s| s.host_id.clone()).collect();
        let step_at = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.step_id.clone(), i))
            .collect();
        let mut live = Self {
            record,
            steps,
            step_at,
            hosts: Vec::new(),
            host_at: HashMap::new(),
            step_hosts,
            dirty: true,
            decided_ms: 0,
            windows: Vec::new(),
            windows_read_ms: 0,
            web_packages: None,
            packages_read_ms: 0,
            decider: RolloutDecider::default(),
        };
        for host in hosts {
            live.put_host(host);
        }
        live
    }

    /// Of `changed`, the hosts this rollout has steps on.
    pub fn concerned<'a>(&self, changed: &'a BTreeSet<String>) -> Vec<&'a str> {
        changed
            .iter()
            .filter(|id| self.step_hosts.contains(*id))
            .map(String::as_str)
            .collect()
    }

    /// Replaces the steps read again (steps are never added or removed
    /// after the rollout is created).
    pub fn update_steps(&mut self, steps: Vec<ExecStep>) {
        for step in steps {
            if let Some(&at) = self.step_at.get(&step.step_id) {
                self.decider.changed(&step.host_id);
                self.steps[at] = step;
                self.dirty = true;
            }
        }
    }

    /// Replaces the hosts read again for `asked`: one that is gone or now
    /// belongs to another installation drops out, as a whole load would
    /// leave it out.
    pub fn update_hosts(&mut self, asked: &[&str], found: Vec<HostRecord>) {
        for id in asked {
            self.decider.changed(id);
            self.remove_host(id);
        }
        for host in found {
            self.put_host(host);
        }
        self.dirty = true;
    }

    pub fn snapshot(&self) -> RolloutSnapshot<'_> {
        RolloutSnapshot {
            state: self.record.state,
            current_phase: self.record.current_phase,
            options: &self.record.options,
            phases: &self.record.phases,
            steps: &self.steps,
            hosts: &self.hosts,
            windows: &self.windows,
            web_packages: self.web_packages.as_ref(),
        }
    }

    /// The next decisions (those `decide` gives on the kept snapshot),
    /// from the decider: its round costs the hosts replaced since the last.
    pub fn decide(&mut self, now_ms: i64) -> Vec<Decision> {
        // Out of `self` while it reads the snapshot; a default decider left
        // behind by a panic rebuilds at its first round.
        let mut decider = std::mem::take(&mut self.decider);
        let hosts = KeptHosts {
            hosts: &self.hosts,
            at: &self.host_at,
        };
        let decisions = decider.decide(&self.snapshot(), &hosts, now_ms);
        self.decider = decider;
        decisions
    }

    /// Whether a step of the current phase waits for a Web Application
    /// made during the rollout.
    pub fn generates_web_app(&self) -> bool {
        // Only the web phase generates one: no walk over a client wave.
        let web = self
            .record
            .phases
            .get(self.record.current_phase)
            .is_some_and(|p| p.kind == tierwise_common::plan::PhaseKind::Web);
        web && self.steps.iter().any(|s| {
            s.phase == self.record.current_phase
                && matches!(
                    s.action,
                    tierwise_common::action::StepAction::GenerateWebApp { .. }
                )
        })
    }

    fn put_host(&mut self, host: HostRecord) {
        if host.installation != self.record.installation || !self.step_hosts.contains(&host.host_id)
        {
            return;
        }
        match self.host_at.get(&host.host_id) {
            Some(&at) => self.hosts[at] = host,
            None => {
                self.host_at.insert(host.host_id.clone(), self.hosts.len());
                self.hosts.push(host);
            }
        }
    }

    fn remove_host(&mut self, host_id: &str) {
        let Some(at) = self.host_at.remove(host_id) else {
            return;
        };
        self.hosts.swap_remove(at);
        if let Some(moved) = self.hosts.get(at) {
            self.host_at.insert(moved.host_id.clone(), at);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_fixtures::{step, wave_rollout};
    use tierwise_common::fixtures::client;
    use tierwise_common::rollout::StepState;
    use tierwise_common::{Check, ProbedVersion, Version};

    const FROM: Version = Version::new(9, 3, 0, 1);

    fn host(id: &str, installation: &str) -> HostRecord {
        client(id, installation, ProbedVersion::Installed(FROM), Check::No)
    }

    fn live() -> LiveRollout {
        let pending = |n, host| step(n, host, StepState::Pending);
        LiveRollout::new(
            wave_rollout(),
            vec![pending(1, "a"), pending(2, "b"), pending(3, "c")],
            // "x" has no step here; "c" is in another installation.
            vec![
                host("a", "prod"),
                host("b", "prod"),
                host("c", "test"),
                host("x", "prod"),
            ],
        )
    }
    fn ids(live: &LiveRollout) -> Vec<&str> {
        let mut ids: Vec<&str> = live
            .snapshot()
            .hosts
            .iter()
            .map(|h| h.host_id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn keeps_the_installation_s_hosts_that_have_steps() {
        assert_eq!(ids(&live()), ["a", "b"]);
    }

    #[test]
    fn a_host_read_again_replaces_moves_in_or_drops_out() {
        let mut live = live();
        live.dirty = false;
        let changed: BTreeSet<String> = ["a", "c", "x"].map(String::from).into();
        assert_eq!(live.concerned(&changed), ["a", "c"]);
        // "a" moved to another installation (dropped), "c" moved in.
        live.update_hosts(&["a", "c"], vec![host("a", "test"), host("c", "prod")]);
        assert!(live.dirty);
        assert_eq!(ids(&live), ["b", "c"]);
        // "b" is gone from the store; "c" read again stays once.
        live.update_hosts(&["b", "c"], vec![host("c", "prod")]);
        assert_eq!(ids(&live), ["c"]);
        live.update_hosts(&["a"], vec![host("a", "prod")]);
        assert_eq!(ids(&live), ["a", "c"]);
    }

    #[test]
    fn the_kept_decider_answers_as_decide_on_the_kept_snapshot() {
        use tierwise_common::rollout::decide;
        let mut live = live();
        let full = |live: &mut LiveRollout| {
            let expected = decide(&live.snapshot(), 0);
            assert_eq!(live.decide(0), expected);
            expected.len()
        };
        assert_eq!(full(&mut live), 2, "a and b are dispatched");
        live.update_steps(vec![step(1, "a", StepState::Dispatched)]);
        assert_eq!(full(&mut live), 1);
        // "b" goes offline, "c" moves into the installation.
        let mut b = host("b", "prod");
        b.online = false;
        live.update_hosts(&["b", "c"], vec![b, host("c", "prod")]);
        assert_eq!(full(&mut live), 1, "only c is dispatched");
    }

    #[test]
    fn steps_read_again_replace_in_place_and_keep_their_order() {
        let mut live = live();
        let done = step(2, "b", StepState::Succeeded);
        live.update_steps(vec![done, step(9, "z", StepState::Pending)]);
        let steps = live.snapshot().steps;
        let order: Vec<&str> = steps.iter().map(|s| s.step_id.as_str()).collect();
        assert_eq!(order, ["r1-1", "r1-2", "r1-3"]);
        assert_eq!(steps[1].state, StepState::Succeeded);
    }
}
