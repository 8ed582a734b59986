//! The planner's output, pinned: seeded random installations (servers with
//! and without commands, databases, web hosts with and without packages,
//! clients offline, unknown, ahead of their server, duplicated, from another
//! installation) are planned and each plan's JSON is compared by digest with
//! what the planner produced when these digests were taken. A change to how
//! a plan is built must not change a byte of what it says; a change to what
//! it says updates the digests on purpose (the failure prints the new ones).

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use tierwise_common::fixtures::{
    client, host, licence, password_secure_catalogue, release, server, web,
};
use tierwise_common::plan::{plan, PlanRequest, WebPackages};
use tierwise_common::{
    Catalogue, Check, ClientWaves, Component, Facts, HostRecord, Inventory, ProbedVersion,
    ReleaseDate, Role, Version, VersionReq, WebServerKind,
};

/// SplitMix64: the same numbers on every platform and every run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// 0..n
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True once in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

/// The real releases plus a few the hosts may be at or beyond.
fn versions() -> Vec<Version> {
    [
        "9.1.0.32000",
        "9.2.6.33415",
        "9.3.0.33526",
        "9.3.1.33994",
        "26.3.100.34058",
        "26.4.10.34111",
        "26.6.100.34161",
        "27.0.0.40000",
    ]
    .iter()
    .map(|t| t.parse().unwrap())
    .collect()
}

fn probed(rng: &mut Seeded) -> ProbedVersion {
    match rng.below(20) {
        0 => ProbedVersion::NotInstalled,
        1 => ProbedVersion::Unknown("the probe's pattern did not match".into()),
        _ => ProbedVersion::Installed(rng.pick(&versions())),
    }
}

fn check(rng: &mut Seeded) -> Check {
    rng.pick(&[Check::Yes, Check::No, Check::Unknown])
}

fn catalogue(rng: &mut Seeded) -> Catalogue {
    if rng.below(3) > 0 {
        return password_secure_catalogue();
    }
    let mut releases = Vec::new();
    for version in versions() {
        if rng.one_in(3) {
            continue;
        }
        let mut r = release(version);
        r.released = if rng.one_in(2) {
            ReleaseDate::Undated
        } else {
            ReleaseDate::Month {
                year: 2026,
                month: 1 + (version.build() % 12) as u8,
            }
        };
        r.breaking = rng.one_in(3).then(|| "breaking".to_owned());
        r.oldest_client = rng
            .one_in(3)
            .then(|| rng.pick(&versions()))
            .filter(|o| *o <= version);
        r.upgrade_from = match rng.below(4) {
            0 => Some(VersionReq::parse(">=9.2").unwrap()),
            1 => Some(VersionReq::parse(">=9.3, <26.5").unwrap()),
            _ => None,
        };
        if rng.one_in(4) {
            r.requires.clear();
        }
        releases.push(r);
    }
    if releases.is_empty() {
        return password_secure_catalogue();
    }
    Catalogue::new(releases).unwrap()
}

fn primary(rng: &mut Seeded, host_id: &str) -> HostRecord {
    let databases: Vec<(String, bool, Version)> = (0..rng.below(4))
        .map(|i| (format!("PSDB-{i}"), !rng.one_in(4), rng.pick(&versions())))
        .collect();
    let refs: Vec<(&str, bool, Version)> = databases
        .iter()
        .map(|(n, a, l)| (n.as_str(), *a, *l))
        .collect();
    let mut h = server(host_id, "prod", rng.pick(&versions()), &refs);
    let mut components = h.inventory.into_components();
    for component in &mut components {
        component.version = probed(rng);
        if let Facts::Server(facts) = &mut component.facts {
            if rng.one_in(6) {
                facts.databases.clear();
                facts.databases_error = Some("login failed".into());
            }
            if rng.one_in(3) {
                facts.backup_location = Some("D:\\Backup (*.bak)".into());
            }
            if rng.one_in(2) {
                let keys = [
                    "backup",
                    "install",
                    "reactivate_databases",
                    "generate_web_app",
                    "stop_services",
                    "start_services",
                ];
                let commands: BTreeSet<String> = keys
                    .iter()
                    .filter(|_| !rng.one_in(3))
                    .map(|k| (*k).to_owned())
                    .collect();
                facts.commands = Some(commands);
            }
            if rng.one_in(3) {
                facts.web_app_output = Some("D:\\WebApp".into());
            }
            if rng.one_in(8) {
                facts.missing_services = vec!["PSServer".into()];
            }
        }
    }
    h.inventory = Inventory::new(components).unwrap();
    h
}

fn installation(rng: &mut Seeded, max_clients: u64) -> Vec<HostRecord> {
    let mut hosts = Vec::new();
    let servers = match rng.below(12) {
        0 => 0,
        1 => 2,
        _ => 1,
    };
    for i in 0..servers {
        hosts.push(primary(rng, &format!("srv-{i:02}")));
    }
    for i in 0..rng.below(4) {
        let mut h = host(&format!("app-{i:02}"), "prod");
        h.inventory = Inventory::new(vec![Component {
            role: Role::AppServer,
            version: probed(rng),
            facts: Facts::None,
        }])
        .unwrap();
        h.online = !rng.one_in(5);
        hosts.push(h);
    }
    for i in 0..rng.below(6) {
        let kind = rng.pick(&[
            WebServerKind::Iis,
            WebServerKind::Apache,
            WebServerKind::Nginx,
        ]);
        let mut h = web(
            &format!("web-{i:02}"),
            "prod",
            Version::new(9, 3, 1, 33994),
            kind,
            check(rng),
        );
        let mut components = h.inventory.into_components();
        for component in &mut components {
            component.version = probed(rng);
            if let Facts::Web(facts) = &mut component.facts {
                if rng.one_in(3) {
                    facts.packages = Some(vec![rng.pick(&versions()), rng.pick(&versions())]);
                }
            }
        }
        h.inventory = Inventory::new(components).unwrap();
        h.online = !rng.one_in(5);
        hosts.push(h);
    }
    let prefixes = ["CL-", "cl-", "WS", "nb-hr-", "Z"];
    for _ in 0..rng.below(max_clients + 1) {
        let prefix = rng.pick(&prefixes);
        let id = format!("{prefix}{:05}", rng.below(max_clients * 4 + 10));
        let mut h = client(&id, "prod", probed(rng), check(rng));
        h.online = !rng.one_in(10);
        if rng.one_in(25) {
            h.installation = "other".into();
        }
        // A host with two components: a client beside a web host.
        if rng.one_in(200) {
            let mut components = h.inventory.into_components();
            components.push(Component {
                role: Role::Web,
                version: probed(rng),
                facts: Facts::Web(tierwise_common::WebFacts {
                    server_kind: WebServerKind::Nginx,
                    docroot: "/srv/www".into(),
                    websocket: check(rng),
                    packages: None,
                }),
            });
            h.inventory = Inventory::new(components).unwrap();
        }
        hosts.push(h);
    }
    // Any order: the plan must not depend on it.
    for i in (1..hosts.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        hosts.swap(i, j);
    }
    hosts
}

/// The JSON of the plan (or the error) of one seeded installation.
fn planned(seed: u64) -> String {
    let mut rng = Seeded(seed);
    let max_clients = if seed % 8 == 7 { 3_000 } else { 120 };
    let hosts = installation(&mut rng, max_clients);
    let catalogue = catalogue(&mut rng);
    let mut targets: Vec<Version> = catalogue.releases().iter().map(|r| r.version).collect();
    if rng.one_in(20) {
        targets.push(Version::new(1, 0, 0, 1));
    }
    let target = rng.pick(&targets);
    let licence = match rng.below(4) {
        0 => None,
        1 => Some(licence("prod", "2025-12-31")),
        _ => Some(licence("prod", "2030-01-01")),
    };
    let waves = match rng.below(3) {
        0 => ClientWaves::default(),
        1 => ClientWaves::breaking_default(),
        _ => ClientWaves::parse("5%,30%,100%").unwrap(),
    };
    let packages = WebPackages {
        generic: rng.one_in(4),
        kinds: [
            WebServerKind::Iis,
            WebServerKind::Apache,
            WebServerKind::Nginx,
        ]
        .into_iter()
        .filter(|_| rng.one_in(2))
        .collect(),
    };
    let with_packages = !rng.one_in(3);
    let request = PlanRequest {
        installation: if rng.one_in(40) { "nowhere" } else { "prod" },
        hosts: &hosts,
        catalogue: &catalogue,
        licence: licence.as_ref(),
        target,
        waves: &waves,
        web_packages: with_packages.then_some(&packages),
    };
    match plan(&request) {
        Ok(plan) => serde_json::to_string_pretty(&plan).unwrap(),
        Err(error) => format!("error: {error}"),
    }
}

fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digests of seeds 0.. when they were pinned.
const PINNED: &[&str] = &[
    "5715b5474c40ae35",
    "585d00eb2ac73bcf",
    "06dab7e5cf339e1a",
    "5f81618e2e5143da",
    "3f34bb66e60bb5fc",
    "2ce3ef89dfb6a861",
    "9cd28652379eeb65",
    "c52f2fbfa3ac6d11",
    "1c3d60c9ddc5b6bf",
    "3bcd506ab3036950",
    "e40c6a525a161f26",
    "0ea4a95c078b37da",
    "470d9b8b78a0487f",
    "8604c68b86db6315",
    "0acb3029c8756330",
    "5ae4cf5ff74ee206",
    "8f550d789ca98cca",
    "14c02cc9fb3331b3",
    "d8620578ffd7e680",
    "bf69f3a51cea7c79",
    "d99dd2420768a856",
    "7f9c7779cb7df043",
    "5736ba25df633abe",
    "0acb3029c8756330",
    "057f824c361a9255",
    "23525577c6a97d7b",
    "4e94aa0a1227e99d",
    "0acb3029c8756330",
    "021d6fb6d752ba3f",
    "73c1f5040bf7c6e0",
    "caefbc8ced991f25",
    "abd6ada6c5eea6f2",
    "9aaa981393ddd2da",
    "224bcd9d97a1bde8",
    "cdc19d75094b9c99",
    "2e27de43158c807d",
    "83143a378967756f",
    "fc231d67321ad3f0",
    "520b89379b1eda66",
    "0acb3029c8756330",
    "f0935e732b3aa0da",
    "26ee931268af116c",
    "95b39ad3a617c200",
    "74466e6d017086f6",
    "925a60a70eabe174",
    "089e3a6a5f69d1e3",
    "3ddfa09de9428829",
    "ff6b0a2649ecaf19",
];

#[test]
fn plans_of_seeded_installations_say_what_they_said_when_pinned() {
    let seeds = 48;
    let now: Vec<String> = (0..seeds).map(|seed| digest(&planned(seed))).collect();
    let differing: Vec<u64> = (0..seeds)
        .filter(|&seed| PINNED.get(seed as usize).copied() != Some(now[seed as usize].as_str()))
        .collect();
    assert!(
        differing.is_empty(),
        "the plans of seeds {differing:?} changed; if that is meant, pin:\n{now:?}"
    );
}

/// The pinned plans are real ones: between them they hold every kind of
/// step, offline hosts, tasks, exclusions, acknowledgements and errors.
#[test]
fn the_seeded_installations_cover_what_the_planner_does() {
    let all: Vec<String> = (0..48).map(planned).collect();
    for expected in [
        "\"install_client\"",
        "\"reactivate_databases\"",
        "\"generate_web_app\"",
        "\"deploy_web_app\"",
        "\"stop_services\"",
        "\"backup\"",
        "\"offline\": true",
        "\"tasks\": [\n    {",
        "\"excluded\": [\n    \"",
        "\"blocked\": true",
        "\"blocked\": false",
        "\"ack\":",
        "error: ",
    ] {
        assert!(
            all.iter().any(|p| p.contains(expected)),
            "no seeded plan contains {expected}"
        );
    }
}
