//! Versions per role as the dashboard draws them: one bar per role, one
//! segment per version, oldest first. The installation's current release
//! (`current_release`) is green, the catalogue's newest (when beyond it)
//! blue, other versions a shade each, unknown and not installed their own.

use crate::rollout_view::RolloutStatus;
use tierwise_common::rollout::RolloutState;
use tierwise_common::Version;

/// The release an installation should be on now, and why: the target of
/// its newest rollout still under way (running, paused, waiting or halted),
/// else of its newest completed one; `None` before any completed.
pub fn current_release(
    rollouts: &[RolloutStatus],
    installation: &str,
) -> Option<(Version, String)> {
    let newest = |keep: &dyn Fn(RolloutState) -> bool| {
        rollouts
            .iter()
            .filter(|r| r.installation == installation && keep(r.state))
            .max_by(|a, b| a.created.cmp(&b.created))
    };
    let (rollout, why) = match newest(&|s| !s.is_final()) {
        Some(r) => (
            r,
            format!("the target of rollout {} ({})", r.id, r.state.as_str()),
        ),
        None => {
            let r = newest(&|s| s == RolloutState::Completed)?;
            (r, format!("completed by rollout {}", r.id))
        }
    };
    Some((Version::parse(&rollout.target).ok()?, why))
}

/// How many shades older versions cycle through (`older-0` … `older-3`).
const SHADES: usize = 4;

/// One segment of a bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub version: String,
    pub hosts: i64,
    /// Left edge and width, in percent of the bar.
    pub x: f64,
    pub width: f64,
    /// The CSS class that colours it.
    pub class: String,
}

/// One role's bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub role: String,
    pub hosts: i64,
    pub online: i64,
    pub segments: Vec<Segment>,
}

/// Bars for the roles in `counts` ((role, version or `unknown` /
/// `not_installed`, hosts)), in the roles' order; `online` gives agents
/// online per role, `current` the installation's current release, `newest`
/// the catalogue's newest.
pub fn bars(
    counts: &[(String, String, i64)],
    online: &[(String, i64)],
    current: Option<Version>,
    newest: Option<Version>,
) -> Vec<Bar> {
    let mut roles: Vec<&str> = counts.iter().map(|(r, _, _)| r.as_str()).collect();
    roles.sort_by_key(|r| role_rank(r));
    roles.dedup();
    roles
        .into_iter()
        .map(|role| {
            let mut versions: Vec<(&str, i64)> = counts
                .iter()
                .filter(|(r, _, n)| r == role && *n > 0)
                .map(|(_, v, n)| (v.as_str(), *n))
                .collect();
            // Oldest first; unknown and not installed at the end.
            versions.sort_by_key(|(v, _)| {
                let parsed = Version::parse(v).ok();
                (parsed.is_none(), parsed, v.to_string())
            });
            let total: i64 = versions.iter().map(|(_, n)| n).sum();
            let mut x = 0.0;
            let mut older = 0;
            let segments = versions
                .into_iter()
                .map(|(version, hosts)| {
                    let width = if total > 0 {
                        100.0 * hosts as f64 / total as f64
                    } else {
                        0.0
                    };
                    let class = match Version::parse(version).ok() {
                        Some(v) if Some(v) == current => "current".to_owned(),
                        Some(v) if Some(v) == newest => "newest".to_owned(),
                        Some(_) => {
                            older += 1;
                            format!("older-{}", (older - 1) % SHADES)
                        }
                        None if version == "not_installed" => "none".to_owned(),
                        None => "unknown".to_owned(),
                    };
                    let segment = Segment {
                        version: version.replace('_', " "),
                        hosts,
                        x,
                        width,
                        class,
                    };
                    x += width;
                    segment
                })
                .collect();
            Bar {
                role: role.to_owned(),
                hosts: total,
                online: online
                    .iter()
                    .find(|(r, _)| r == role)
                    .map_or(0, |(_, n)| *n),
                segments,
            }
        })
        .collect()
}

/// The vendor's order: server, application servers, web, clients.
fn role_rank(role: &str) -> usize {
    match role {
        "server" => 0,
        "app_server" => 1,
        "web" => 2,
        "client" => 3,
        _ => 4,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn count(role: &str, version: &str, n: i64) -> (String, String, i64) {
        (role.into(), version.into(), n)
    }

    #[test]
    fn a_bar_per_role_in_the_vendors_order_with_versions_oldest_first() {
        let bars = bars(
            &[
                count("client", "26.3.100.34058", 15),
                count("client", "unknown", 1),
                count("client", "9.3.1.33994", 3),
                count("client", "10.0.0.1", 1),
                count("server", "26.3.100.34058", 1),
            ],
            &[("client".into(), 18)],
            Version::parse("26.3.100.34058").ok(),
            Version::parse("26.3.100.34058").ok(),
        );
        assert_eq!(
            bars.iter().map(|b| b.role.as_str()).collect::<Vec<_>>(),
            ["server", "client"]
        );
        let client = &bars[1];
        assert_eq!(client.hosts, 20);
        assert_eq!(client.online, 18);
        let versions: Vec<(&str, &str)> = client
            .segments
            .iter()
            .map(|s| (s.version.as_str(), s.class.as_str()))
            .collect();
        assert_eq!(
            versions,
            [
                ("9.3.1.33994", "older-0"),
                ("10.0.0.1", "older-1"),
                ("26.3.100.34058", "current"),
                ("unknown", "unknown"),
            ]
        );
        // The segments tile the bar.
        let last = client.segments.last().expect("segments");
        assert!((last.x + last.width - 100.0).abs() < 1e-9);
        assert!((client.segments[2].width - 75.0).abs() < 1e-9);
        assert_eq!(bars[0].online, 0);
        // Without a catalogue or a rollout no version is called current.
        let bars = super::bars(&[count("server", "9.3.1.33994", 1)], &[], None, None);
        assert_eq!(bars[0].segments[0].class, "older-0");
        // The current release green, the catalogue's newer one blue.
        let bars = super::bars(
            &[
                count("client", "9.3.1.33994", 1),
                count("client", "26.3.100.34058", 1),
            ],
            &[],
            Version::parse("9.3.1.33994").ok(),
            Version::parse("26.3.100.34058").ok(),
        );
        let classes: Vec<&str> = bars[0].segments.iter().map(|s| s.class.as_str()).collect();
        assert_eq!(classes, ["current", "newest"]);
    }

    /// A rollout as the admin API reports it, with nothing under way.
    pub(in crate::ui) fn rollout(
        id: &str,
        installation: &str,
        target: &str,
        state: RolloutState,
    ) -> RolloutStatus {
        RolloutStatus {
            id: id.into(),
            installation: installation.into(),
            target: target.into(),
            state,
            current_phase: 0,
            reason: String::new(),
            // Ids are given in the order they were made.
            created: format!("2026-12-07T10:00:0{}Z", &id[1..]),
            updated: String::new(),
            phases: Vec::new(),
            failures: Vec::new(),
            waiting_for_offline: Vec::new(),
            running: Vec::new(),
            skipped_hosts: Vec::new(),
            awaiting_reports: Vec::new(),
            pending_restarts: Vec::new(),
            omitted: Default::default(),
            waiting_for_window: None,
            eta: None,
            backup: None,
            backups: Vec::new(),
            tasks: Vec::new(),
            step_histories: Vec::new(),
        }
    }

    #[test]
    fn the_current_release_is_the_running_target_else_the_last_completed() {
        use RolloutState::*;
        let v = |text: &str| Version::parse(text).expect("version");
        let mut rollouts = vec![
            rollout("r1", "prod", "9.3.1.33994", Completed),
            rollout("r2", "prod", "10.0.0.1", Aborted),
            rollout("r3", "test", "26.3.100.34058", Running),
        ];
        assert_eq!(
            current_release(&rollouts, "prod"),
            Some((v("9.3.1.33994"), "completed by rollout r1".into()))
        );
        rollouts.push(rollout("r4", "prod", "26.3.100.34058", Failed));
        assert_eq!(
            current_release(&rollouts, "prod"),
            Some((
                v("26.3.100.34058"),
                "the target of rollout r4 (failed)".into()
            ))
        );
        assert_eq!(current_release(&rollouts, "lab"), None);
        assert_eq!(
            current_release(&rollouts[1..2], "prod"),
            None,
            "an aborted rollout made nothing current"
        );
    }
}
