//! Property tests of the planner over random installations and catalogues.
//! Set PROPTEST_CASES to run more than the default 256 cases per property.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use proptest::prelude::*;
use std::collections::BTreeSet;
use tierwise_common::fixtures::{client, host, licence, release, server, web};
use tierwise_common::plan::{plan, PhaseKind, PlanRequest};
use tierwise_common::rules::{Severity, Subject};
use tierwise_common::{
    Catalogue, Check, ClientWaves, Component, Date, Facts, HostRecord, Inventory, ProbedVersion,
    ReleaseDate, Role, Version, VersionReq, WebServerKind,
};

/// Versions from a small pool so hosts and releases collide often.
fn version() -> impl Strategy<Value = Version> {
    (
        prop_oneof![Just(8u32), Just(9), Just(26)],
        0u32..4,
        0u32..3,
        30_000u32..30_004,
    )
        .prop_map(|(a, b, c, d)| Version::new(a, b, c, d))
}

fn check() -> impl Strategy<Value = Check> {
    prop_oneof![Just(Check::Yes), Just(Check::No), Just(Check::Unknown)]
}

fn probed() -> impl Strategy<Value = ProbedVersion> {
    prop_oneof![
        8 => version().prop_map(ProbedVersion::Installed),
        1 => Just(ProbedVersion::NotInstalled),
        1 => Just(ProbedVersion::Unknown("probe failed".into())),
    ]
}

fn catalogue() -> impl Strategy<Value = Catalogue> {
    prop::collection::btree_set(version(), 1..8).prop_flat_map(|versions| {
        let n = versions.len();
        (
            Just(versions),
            prop::collection::vec(
                (0u8..4, any::<bool>(), prop::option::of(version()), 0u8..3),
                n,
            ),
        )
            .prop_map(|(versions, extras)| {
                let releases = versions
                    .into_iter()
                    .zip(extras)
                    .map(|(v, (dated, breaking, oldest, from))| {
                        let mut r = release(v);
                        r.released = match dated {
                            0 => ReleaseDate::Undated,
                            1 => ReleaseDate::Month {
                                year: 2026,
                                month: 1 + (v.build() % 12) as u8,
                            },
                            _ => ReleaseDate::Day(
                                Date::new(2025 + (v.build() % 3) as u16, 6, 15).unwrap(),
                            ),
                        };
                        r.breaking = breaking.then(|| "breaking".to_owned());
                        r.oldest_client = oldest.filter(|o| *o <= v);
                        r.upgrade_from = match from {
                            0 => None,
                            1 => Some(VersionReq::parse(">=9").unwrap()),
                            _ => Some(VersionReq::parse(">=9.1, <26.2").unwrap()),
                        };
                        r
                    })
                    .collect();
                Catalogue::new(releases).unwrap()
            })
    })
}

fn installation() -> impl Strategy<Value = Vec<HostRecord>> {
    let servers = prop::collection::vec(
        (
            version(),
            prop::collection::vec((any::<bool>(), version()), 0..3),
        ),
        0..3,
    );
    let apps = prop::collection::vec(probed(), 0..3);
    let webs = prop::collection::vec((probed(), check(), any::<bool>()), 0..3);
    let clients = prop::collection::vec((probed(), check(), any::<bool>()), 0..60);
    (servers, apps, webs, clients).prop_map(|(servers, apps, webs, clients)| {
        let mut hosts = Vec::new();
        for (i, (v, dbs)) in servers.into_iter().enumerate() {
            let dbs: Vec<(String, bool, Version)> = dbs
                .into_iter()
                .enumerate()
                .map(|(j, (a, l))| (format!("db{j}"), a, l))
                .collect();
            let refs: Vec<(&str, bool, Version)> =
                dbs.iter().map(|(n, a, l)| (n.as_str(), *a, *l)).collect();
            hosts.push(server(&format!("srv-{i}"), "prod", v, &refs));
        }
        for (i, version) in apps.into_iter().enumerate() {
            let mut h = host(&format!("app-{i}"), "prod");
            h.inventory = Inventory::new(vec![Component {
                role: Role::AppServer,
                version,
                facts: Facts::None,
            }])
            .unwrap();
            hosts.push(h);
        }
        for (i, (version, ws, online)) in webs.into_iter().enumerate() {
            let mut h = web(
                &format!("web-{i}"),
                "prod",
                Version::new(9, 3, 1, 1),
                WebServerKind::Apache,
                ws,
            );
            let facts = h.inventory.component(Role::Web).unwrap().facts.clone();
            h.inventory = Inventory::new(vec![Component {
                role: Role::Web,
                version,
                facts,
            }])
            .unwrap();
            h.online = online;
            hosts.push(h);
        }
        for (i, (version, update_check, online)) in clients.into_iter().enumerate() {
            let mut h = client(&format!("cl-{i:03}"), "prod", version, update_check);
            h.online = online;
            hosts.push(h);
        }
        hosts
    })
}

fn waves() -> impl Strategy<Value = ClientWaves> {
    prop_oneof![
        Just(ClientWaves::default()),
        prop::collection::btree_set(1u8..100, 0..4).prop_map(|set| {
            let mut text: Vec<String> = set.into_iter().map(|p| format!("{p}%")).collect();
            text.push("100%".into());
            ClientWaves::parse(&text.join(",")).unwrap()
        }),
    ]
}

fn order(kind: &PhaseKind) -> usize {
    match kind {
        PhaseKind::Backup => 0,
        PhaseKind::Server => 1,
        PhaseKind::Databases => 2,
        PhaseKind::AppServers => 3,
        PhaseKind::Web => 4,
        PhaseKind::ClientWave { wave, .. } => 4 + wave,
    }
}

proptest! {
    #[test]
    fn plans_keep_every_rule(
        hosts in installation(),
        catalogue in catalogue(),
        pick in any::<prop::sample::Index>(),
        until in prop_oneof![Just(None), Just(Some("2025-12-31")), Just(Some("2026-06-30")), Just(Some("2030-01-01"))],
        waves in waves(),
    ) {
        let target = catalogue.releases()[pick.index(catalogue.releases().len())].version;
        let licence = until.map(|u| licence("prod", u));
        let request = PlanRequest {
            installation: "prod",
            hosts: &hosts,
            catalogue: &catalogue,
            licence: licence.as_ref(),
            target,
            waves: &waves,
            web_packages: None,
        };
        // Never panics; the only errors are the documented ones.
        let result = plan(&request);
        if hosts.is_empty() {
            prop_assert!(result.is_err());
            return Ok(());
        }
        let plan = result.unwrap();

        // Phases in vendor order: no client step before the server phase, no
        // web step before the database phase.
        let orders: Vec<usize> = plan.phases.iter().map(|p| order(&p.kind)).collect();
        prop_assert!(orders.windows(2).all(|w| w[0] < w[1]), "{:?}", orders);

        // No client target above the server's target; nothing above the target.
        for (_, step) in plan.steps() {
            prop_assert!(step.to <= target);
            if let Some(from) = step.from {
                prop_assert!(from <= step.to, "never a downgrade: {:?}", step);
            }
        }

        // Never a plan that is not blocked with a target outside maintenance.
        let release = catalogue.get(target).unwrap();
        let inside = match (&licence, release.released.span()) {
            (Some(l), Some((_, last))) => last <= l.maintenance_until,
            _ => false,
        };
        if !inside {
            prop_assert!(plan.blocked, "target {} outside maintenance but not blocked", target);
        }

        // Every excluded host has a blocker naming it, and gets no step.
        let stepped: BTreeSet<&str> = plan.steps().map(|(_, s)| s.host_id.as_str()).collect();
        for id in &plan.excluded {
            prop_assert!(!stepped.contains(id.as_str()));
            let named = plan.findings.iter().any(|f| f.severity == Severity::Blocker
                && matches!(&f.subject, Subject::Host { host_id, .. } if host_id == id));
            prop_assert!(named, "excluded {} has no blocker", id);
        }
        // Every client is updated, at the target already, or excluded.
        let c = &plan.counts;
        prop_assert_eq!(c.clients, c.clients_to_update + c.clients_at_target + c.clients_excluded);
        let client_steps: usize = plan.phases.iter()
            .filter(|p| matches!(p.kind, PhaseKind::ClientWave { .. }))
            .map(|p| p.steps.len()).sum();
        prop_assert_eq!(client_steps, c.clients_to_update);

        // Deterministic.
        let again = plan_again(&request);
        prop_assert_eq!(serde_json::to_string(&plan).unwrap(), again);
    }

    #[test]
    fn waves_partition_every_fleet(total in 0usize..300_000, waves in waves()) {
        let sizes = waves.split(total);
        prop_assert_eq!(sizes.iter().map(|(_, n)| n).sum::<usize>(), total);
        prop_assert!(sizes.iter().all(|(_, n)| *n > 0));
        if waves == ClientWaves::default() {
            prop_assert!(sizes.first().is_none_or(|(_, n)| *n <= 100));
        }
    }

    #[test]
    fn parsers_never_panic(text in ".{0,80}") {
        let _ = Version::parse(&text);
        let _ = VersionReq::parse(&text);
        let _ = ClientWaves::parse(&text);
        let _ = Date::parse(&text);
        let _ = Catalogue::parse(&text, "fuzz.toml");
        let _ = Catalogue::parse(&format!("[[release]]\nversion = {text:?}\nreleased = {text:?}\nupgrade_from = {text:?}\n"), "fuzz.toml");
    }
}

fn plan_again(request: &PlanRequest<'_>) -> String {
    serde_json::to_string(&plan(request).unwrap()).unwrap()
}
