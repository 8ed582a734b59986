//! Small builders of hosts, catalogues and licences for tests, property
//! tests and benchmarks (here, not in a test module, because the planner's
//! tests, the controller's snapshot tests and the benchmark all use them).

use crate::{
    Catalogue, Check, ClientFacts, Component, Database, Date, Facts, HostRecord, Inventory,
    Licence, ProbedVersion, Release, ReleaseDate, Requirement, Role, ServerFacts, Version,
    WebFacts, WebServerKind,
};

/// A host with no components, online, in `installation`.
pub fn host(host_id: &str, installation: &str) -> HostRecord {
    HostRecord {
        host_id: host_id.to_owned(),
        hostname: host_id.to_owned(),
        installation: installation.to_owned(),
        os: "Windows Server 2022".to_owned(),
        agent_version: "0.1.0".to_owned(),
        online: true,
        first_seen_ms: 1_800_000_000_000,
        last_seen_ms: 1_800_000_000_000,
        heartbeat_seconds: 10,
        inventory: Inventory::default(),
        placement: None,
        boot_ms: Some(1_700_000_000_000),
    }
}

fn with(mut host: HostRecord, component: Component) -> HostRecord {
    let mut components = host.inventory.into_components();
    components.retain(|c| c.role != component.role);
    components.push(component);
    host.inventory = Inventory::new(components).expect("fixture facts match their roles");
    host
}

/// The primary server at `version` with databases (name, active, patch level).
pub fn server(
    host_id: &str,
    installation: &str,
    version: Version,
    databases: &[(&str, bool, Version)],
) -> HostRecord {
    with(
        host(host_id, installation),
        Component {
            role: Role::Server,
            version: ProbedVersion::Installed(version),
            facts: Facts::Server(ServerFacts {
                databases: databases
                    .iter()
                    .map(|(name, active, level)| Database {
                        name: (*name).to_owned(),
                        active: *active,
                        patch_level: Some(*level),
                    })
                    .collect(),
                databases_error: None,
                backup_location: None,
                commands: None,
                web_app_output: None,
            }),
        },
    )
}

pub fn app_server(host_id: &str, installation: &str, version: Version) -> HostRecord {
    with(
        host(host_id, installation),
        Component {
            role: Role::AppServer,
            version: ProbedVersion::Installed(version),
            facts: Facts::None,
        },
    )
}

pub fn web(
    host_id: &str,
    installation: &str,
    version: Version,
    kind: WebServerKind,
    websocket: Check,
) -> HostRecord {
    with(
        host(host_id, installation),
        Component {
            role: Role::Web,
            version: ProbedVersion::Installed(version),
            facts: Facts::Web(WebFacts {
                server_kind: kind,
                docroot: "/var/www/passwordsecure".to_owned(),
                websocket,
                packages: None,
            }),
        },
    )
}

pub fn client(
    host_id: &str,
    installation: &str,
    version: ProbedVersion,
    update_check: Check,
) -> HostRecord {
    with(
        host(host_id, installation),
        Component {
            role: Role::Client,
            version,
            facts: Facts::Client(ClientFacts {
                update_check_enabled: update_check,
                ..ClientFacts::default()
            }),
        },
    )
}

pub fn offline(mut host: HostRecord) -> HostRecord {
    host.online = false;
    host
}

/// A release with no date, no rules, WebSocket required.
pub fn release(version: Version) -> Release {
    Release {
        version,
        released: ReleaseDate::Undated,
        breaking: None,
        oldest_client: None,
        upgrade_from: None,
        requires: vec![Requirement::WebWebsocket],
        notes: Vec::new(),
        artifacts: Default::default(),
        changelog: None,
    }
}

/// The real releases and the vendor's rules, with 9.x dated for tests
/// (2025-06-01 onwards) since the vendor publishes no dates for them.
pub fn password_secure_catalogue() -> Catalogue {
    let v = |text: &str| text.parse::<Version>().expect("fixture versions are valid");
    let mut releases = Vec::new();
    for (index, text) in ["9.2.6.33415", "9.3.0.33526", "9.3.1.33994"]
        .iter()
        .enumerate()
    {
        let mut r = release(v(text));
        let month = 6 + u8::try_from(index).expect("three releases");
        r.released = ReleaseDate::Day(Date::new(2025, month, 1).expect("a valid day"));
        releases.push(r);
    }
    let mut r263 = release(v("26.3.100.34058"));
    r263.released = ReleaseDate::Month {
        year: 2026,
        month: 3,
    };
    r263.breaking = Some("All clients need to be upgraded as soon as the server is upgraded. Older clients aren't able to connect.".into());
    r263.oldest_client = Some(r263.version);
    releases.push(r263);
    let mut r264 = release(v("26.4.10.34111"));
    r264.released = ReleaseDate::Month {
        year: 2026,
        month: 4,
    };
    releases.push(r264);
    let mut r266 = release(v("26.6.100.34161"));
    r266.released = ReleaseDate::Month {
        year: 2026,
        month: 6,
    };
    r266.breaking = Some("A configured PKCS#11 library must be on a local path with a valid code-signing certificate before upgrading.".into());
    r266.notes.push(crate::Note {
        id: "pkcs11".into(),
        text: "If a PKCS#11 library is configured, it must be on a local path and carry a valid code-signing certificate.".into(),
    });
    releases.push(r266);
    Catalogue::new(releases).expect("fixture versions are unique")
}

/// A licence; `until` must be a valid `YYYY-MM-DD` (fixtures are test input).
pub fn licence(installation: &str, until: &str) -> Licence {
    Licence {
        installation: installation.to_owned(),
        maintenance_until: Date::parse(until).expect("fixture dates are valid"),
    }
}
