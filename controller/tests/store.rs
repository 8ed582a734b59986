//! The store's test suite, run against SQLite and against the real local
//! PostgreSQL. Set `TIERWISE_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`) to run the PostgreSQL half;
//! each run creates and drops a database of its own. With
//! `TIERWISE_REQUIRE_POSTGRES=1` (as in CI) a missing URL is a failure.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

#[path = "support/postgres.rs"]
mod postgres;

use tierwise_common::promotion::Promotion;
use tierwise_common::{
    Check, ClientFacts, Component, Database, DatabaseProfile, Facts, Inventory, ProbedVersion,
    Role, ServerFacts, Version, WebFacts, WebServerKind,
};
use tierwise_controller::store::promotion::PromotionError;
use tierwise_controller::store::sessions::{SessionOpened, SessionTerms};
use tierwise_controller::store::{HostFilter, HostReport, Store};

const V931: Version = Version::new(9, 3, 1, 33994);
const V263: Version = Version::new(26, 3, 100, 34058);

fn server_inventory(version: Version, active: bool) -> Inventory {
    Inventory::new(vec![Component {
        role: Role::Server,
        version: ProbedVersion::Installed(version),
        facts: Facts::Server(ServerFacts {
            databases: vec![
                Database {
                    name: "PSDB-Archive".into(),
                    active,
                    patch_level: Some(version),
                },
                Database {
                    name: "PSDB-Prod".into(),
                    active: true,
                    patch_level: None,
                },
            ],
            databases_error: None,
            backup_location: None,
            commands: None,
            web_app_output: None,
            missing_services: Vec::new(),
        }),
    }])
    .unwrap()
}

fn report(host_id: &str, installation: &str, inventory: Inventory) -> HostReport {
    HostReport {
        host_id: host_id.into(),
        hostname: format!("{host_id}.corp.example"),
        installation: installation.into(),
        os: "Windows Server 2022".into(),
        agent_version: "0.1.0".into(),
        heartbeat_seconds: 10,
        inventory,
        boot_ms: Some(1_700_000_000_000),
    }
}

fn web_and_client() -> Inventory {
    Inventory::new(vec![
        Component {
            role: Role::Web,
            version: ProbedVersion::Unknown("pattern did not match".into()),
            facts: Facts::Web(WebFacts {
                server_kind: WebServerKind::Iis,
                docroot: r"C:\inetpub\psweb".into(),
                websocket: Check::No,
                packages: None,
            }),
        },
        Component {
            role: Role::Client,
            version: ProbedVersion::NotInstalled,
            facts: Facts::Client(ClientFacts {
                update_check_enabled: Check::Yes,
                profiles: vec![DatabaseProfile {
                    host: "PS-SRV.corp.example".into(),
                    database: "PSDB".into(),
                }],
            }),
        },
    ])
    .unwrap()
}

/// The suite every backend must pass.
async fn suite(store: &Store) {
    let t0 = 1_800_000_000_000_i64;

    // A hello creates the host with its full inventory.
    store
        .record_hello(
            &report("srv-01", "prod", server_inventory(V931, false)),
            "s1",
            t0,
        )
        .await
        .unwrap();
    let host = store.get_host("srv-01", t0).await.unwrap().unwrap();
    assert!(host.online);
    assert_eq!(host.first_seen_ms, t0);
    assert_eq!(host.hostname, "srv-01.corp.example");
    assert_eq!(host.inventory, server_inventory(V931, false));

    // Every kind of fact survives the round trip.
    store
        .record_hello(&report("web-01", "prod", web_and_client()), "w1", t0)
        .await
        .unwrap();
    let web = store.get_host("web-01", t0).await.unwrap().unwrap();
    assert_eq!(web.inventory, web_and_client());

    // Inventory changes replace the old one, on the current session only.
    assert!(store
        .record_inventory("srv-01", "s1", server_inventory(V263, true), t0 + 1000)
        .await
        .unwrap());
    assert!(!store
        .record_inventory("srv-01", "stale", server_inventory(V931, false), t0 + 1500)
        .await
        .unwrap());
    let host = store.get_host("srv-01", t0 + 2000).await.unwrap().unwrap();
    assert_eq!(host.inventory, server_inventory(V263, true));
    assert_eq!(host.last_seen_ms, t0 + 1000);

    // The fleet as metrics count it, on either database.
    let stats = store.fleet_stats().await.unwrap();
    assert!(
        stats
            .connected
            .contains(&("prod".into(), "server".into(), 1)),
        "{stats:?}"
    );
    assert!(
        stats
            .versions
            .contains(&("prod".into(), "server".into(), V263.to_string(), 1)),
        "{stats:?}"
    );
    assert_eq!(store.step_facts("nothing").await.unwrap(), None);
    // Maintenance windows, on either database.
    let window = tierwise_common::window::MaintenanceWindow::new(
        "server",
        "sat",
        "02:00",
        "06:00",
        "Europe/Berlin",
    )
    .unwrap();
    assert!(store
        .set_window("prod", &window, "alice", t0)
        .await
        .unwrap());
    assert!(!store
        .set_window("nowhere", &window, "alice", t0)
        .await
        .unwrap());
    assert_eq!(
        store.windows(Some("prod")).await.unwrap(),
        [("prod".to_owned(), window.clone())]
    );
    assert_eq!(store.windows(None).await.unwrap().len(), 1);
    assert!(store
        .remove_window("prod", "server", "alice", t0)
        .await
        .unwrap());
    assert!(!store
        .remove_window("prod", "server", "alice", t0)
        .await
        .unwrap());
    assert!(store.windows(None).await.unwrap().is_empty());
    assert_eq!(store.durations().await.unwrap(), Default::default());

    // A reconnect is the same host: same row, first_seen kept, new session.
    store
        .record_hello(
            &report("srv-01", "prod", server_inventory(V263, true)),
            "s2",
            t0 + 5000,
        )
        .await
        .unwrap();
    let all = store
        .list_hosts(&HostFilter::default(), t0 + 5000)
        .await
        .unwrap();
    assert_eq!(all.iter().filter(|h| h.host_id == "srv-01").count(), 1);
    let host = store.get_host("srv-01", t0 + 5000).await.unwrap().unwrap();
    assert_eq!(host.first_seen_ms, t0);
    assert_eq!(host.last_seen_ms, t0 + 5000);

    // The old stream ending does not take the host offline; the current one does.
    assert!(!store.record_disconnect("srv-01", "s1").await.unwrap());
    assert!(
        store
            .get_host("srv-01", t0 + 5000)
            .await
            .unwrap()
            .unwrap()
            .online
    );
    // Heartbeats are noted in memory and written together; one from a
    // replaced session changes nothing.
    store.note_heartbeat("srv-01", "s1", t0 + 6000);
    assert_eq!(store.flush_heartbeats().await.unwrap(), 0);
    store.note_heartbeat("srv-01", "s2", t0 + 6000);
    assert_eq!(store.flush_heartbeats().await.unwrap(), 1);
    assert_eq!(store.flush_heartbeats().await.unwrap(), 0, "flushed once");
    assert!(store.record_disconnect("srv-01", "s2").await.unwrap());
    assert!(
        !store
            .get_host("srv-01", t0 + 6000)
            .await
            .unwrap()
            .unwrap()
            .online
    );

    // Three missed heartbeat intervals (10 s each) make a host offline: it
    // reads offline at once and the sweep writes it down.
    let web_seen = t0;
    assert!(
        store
            .get_host("web-01", web_seen + 30_000)
            .await
            .unwrap()
            .unwrap()
            .online
    );
    assert!(store
        .sweep_offline(web_seen + 30_000)
        .await
        .unwrap()
        .is_empty());
    assert!(
        !store
            .get_host("web-01", web_seen + 30_001)
            .await
            .unwrap()
            .unwrap()
            .online
    );
    assert_eq!(
        store.sweep_offline(web_seen + 30_001).await.unwrap(),
        ["web-01"]
    );
    assert!(store
        .sweep_offline(web_seen + 60_000)
        .await
        .unwrap()
        .is_empty());
    // A late agent whose session is still open comes back with its next heartbeat.
    store.note_heartbeat("web-01", "w1", web_seen + 61_000);
    assert_eq!(store.flush_heartbeats().await.unwrap(), 1);
    assert!(
        store
            .get_host("web-01", web_seen + 61_000)
            .await
            .unwrap()
            .unwrap()
            .online
    );
    assert_eq!(
        store.sweep_offline(web_seen + 100_000).await.unwrap(),
        ["web-01"]
    );

    // Filters: installation, role, both; ordered by host id.
    store
        .record_hello(&report("cl-001", "test", web_and_client()), "c1", t0)
        .await
        .unwrap();
    let ids = |hosts: Vec<tierwise_common::HostRecord>| -> Vec<String> {
        hosts.into_iter().map(|h| h.host_id).collect()
    };
    let filter = |installation: Option<&str>, role: Option<Role>| HostFilter {
        installation: installation.map(str::to_owned),
        role,
    };
    assert_eq!(
        ids(store.list_hosts(&filter(None, None), t0).await.unwrap()),
        ["cl-001", "srv-01", "web-01"]
    );
    assert_eq!(
        ids(store
            .list_hosts(&filter(Some("prod"), None), t0)
            .await
            .unwrap()),
        ["srv-01", "web-01"]
    );
    assert_eq!(
        ids(store
            .list_hosts(&filter(None, Some(Role::Client)), t0)
            .await
            .unwrap()),
        ["cl-001", "web-01"]
    );
    assert_eq!(
        ids(store
            .list_hosts(&filter(Some("test"), Some(Role::Server)), t0)
            .await
            .unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(store
            .list_hosts(&filter(Some("nope"), None), t0)
            .await
            .unwrap()),
        Vec::<String>::new()
    );
    assert!(store.get_host("nope", t0).await.unwrap().is_none());
    // Page by page, the same hosts with the same inventories.
    let all = store.list_hosts(&filter(None, None), t0).await.unwrap();
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let page = store
            .list_hosts_page(&filter(None, None), &after, 2, t0)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = last.host_id.clone();
        paged.extend(page);
    }
    assert_eq!(paged, all);
    let clients = store
        .list_hosts_page(&filter(None, Some(Role::Client)), "cl-001", 10, t0)
        .await
        .unwrap();
    assert_eq!(ids(clients), ["web-01"]);

    // A host that moves to another installation keeps its row.
    store
        .record_hello(
            &report("cl-001", "prod", Inventory::default()),
            "c2",
            t0 + 100,
        )
        .await
        .unwrap();
    let moved = store.get_host("cl-001", t0 + 100).await.unwrap().unwrap();
    assert_eq!(moved.installation, "prod");
    assert!(moved.inventory.components().is_empty());
    assert_eq!(store.installations().await.unwrap(), ["prod", "test"]);

    // Catalogues: the newest import is the one in force.
    assert_eq!(store.current_catalogue().await.unwrap(), None);
    store
        .import_catalogue(
            "a.toml",
            "[[release]]\nversion = \"9.3.1.33994\"\n",
            "test",
            t0,
        )
        .await
        .unwrap();
    store
        .import_catalogue("b.toml", "# second\n", "test", t0 + 1)
        .await
        .unwrap();
    let current = store.current_catalogue().await.unwrap().unwrap();
    assert_eq!(
        (current.source.as_str(), current.imported_ms),
        ("b.toml", t0 + 1)
    );
    assert_eq!(current.document, "# second\n");

    // Licences: only for known installations; setting again replaces.
    let date = |text: &str| tierwise_common::Date::parse(text).unwrap();
    assert!(!store
        .set_licence("nope", date("2026-12-31"), "test", t0)
        .await
        .unwrap());
    assert!(store
        .set_licence("prod", date("2026-06-30"), "test", t0)
        .await
        .unwrap());
    assert!(store
        .set_licence("prod", date("2026-12-31"), "test", t0 + 1)
        .await
        .unwrap());
    let licences = store.licences().await.unwrap();
    assert_eq!(licences.len(), 1);
    assert_eq!(licences[0].installation, "prod");
    assert_eq!(licences[0].maintenance_until, date("2026-12-31"));
    rollouts(store, t0).await;
    backups(store, t0).await;
    engine_inbox(store, t0).await;
    security(store, t0).await;
    token_uses_under_concurrent_enrollments(store, t0).await;
    renewal_and_moves(store, t0).await;
    audit_chain(store, t0).await;
    placement(store, t0).await;
    promotion(store, t0).await;
    dashboard_sessions(store, t0).await;
    installers(store, t0).await;
    heartbeats_in_parts(store, t0).await;
    the_same_inventory_again(store, t0).await;
}

/// A hello with the inventory the store holds leaves its rows alone; one
/// that differs from what a report stored since rewrites them, even if it
/// equals what an earlier hello brought.
async fn the_same_inventory_again(store: &Store, t0: i64) {
    let hello = |inventory: Inventory, session: &'static str| {
        let report = report("again-01", "prod", inventory);
        async move { store.record_hello(&report, session, t0 + 50).await.unwrap() }
    };
    let stored = || async {
        store
            .get_host("again-01", t0 + 60)
            .await
            .unwrap()
            .unwrap()
            .inventory
    };
    hello(web_and_client(), "a1").await;
    assert_eq!(stored().await, web_and_client());
    assert!(store
        .record_inventory("again-01", "a1", server_inventory(V931, true), t0 + 51)
        .await
        .unwrap());
    assert_eq!(stored().await, server_inventory(V931, true));
    hello(web_and_client(), "a2").await;
    assert_eq!(
        stored().await,
        web_and_client(),
        "the report's rows were replaced"
    );
    hello(web_and_client(), "a3").await;
    assert_eq!(stored().await, web_and_client());
    hello(server_inventory(V263, false), "a4").await;
    assert_eq!(stored().await, server_inventory(V263, false));
}

/// Beats of many hosts are written in parts (512, then powers of two):
/// every part counts, and in each only the current session's beat, and
/// only a newer one, moves a host.
async fn heartbeats_in_parts(store: &Store, t0: i64) {
    let hosts = 700;
    for i in 0..hosts {
        store
            .record_hello(
                &report(&format!("beat-{i:03}"), "beats", web_and_client()),
                &format!("b{i}"),
                t0,
            )
            .await
            .unwrap();
    }
    for i in 0..hosts {
        let session = if i % 2 == 0 {
            format!("b{i}")
        } else {
            "replaced".to_owned()
        };
        store.note_heartbeat(&format!("beat-{i:03}"), &session, t0 + 5_000 + i64::from(i));
    }
    assert_eq!(
        store.flush_heartbeats().await.unwrap(),
        350,
        "the current sessions' beats"
    );
    for i in [0, 1, 510, 511, 512, 513, 698, 699] {
        let host = store
            .get_host(&format!("beat-{i:03}"), t0 + 6_000)
            .await
            .unwrap()
            .unwrap();
        let expected = if i % 2 == 0 {
            t0 + 5_000 + i64::from(i)
        } else {
            t0
        };
        assert_eq!(host.last_seen_ms, expected, "beat-{i:03}");
    }
    // An older beat (one that waited behind a newer flush) moves nothing.
    store.note_heartbeat("beat-000", "b0", t0 + 4_000);
    store.note_heartbeat("beat-002", "b2", t0 + 9_000);
    assert_eq!(store.flush_heartbeats().await.unwrap(), 1);
    assert_eq!(
        store
            .get_host("beat-000", t0 + 9_000)
            .await
            .unwrap()
            .unwrap()
            .last_seen_ms,
        t0 + 5_000
    );
    assert_eq!(
        store
            .get_host("beat-002", t0 + 9_000)
            .await
            .unwrap()
            .unwrap()
            .last_seen_ms,
        t0 + 9_000
    );
}

/// Installers and Web Application packages as one list, with who added
/// them; a removal audits each and names the files nobody refers to.
async fn installers(store: &Store, t0: i64) {
    use tierwise_controller::store::web_packages::NewWebPackage;
    use tierwise_controller::store::NewArtifact;
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    for (release, role) in [
        ("26.3.100.34058", Role::Client),
        ("9.3.1.33994", Role::Server),
    ] {
        let artifact = NewArtifact {
            release,
            role,
            sha256: &a,
            file_name: "setup.msi",
            size: 10,
        };
        store.record_artifact(&artifact, "alice", t0).await.unwrap();
    }
    let package = NewWebPackage {
        release: "26.3.100.34058",
        web_server: WebServerKind::Iis,
        sha256: &b,
        file_name: "web.zip",
        size: 5,
    };
    store
        .record_web_package(&package, "agent srv-01", t0 + 1)
        .await
        .unwrap();
    let listed = store.stored_artifacts().await.unwrap();
    let seen: Vec<(&str, Role, Option<WebServerKind>, &str)> = listed
        .iter()
        .map(|x| {
            (
                x.release.as_str(),
                x.role,
                x.web_server,
                x.added_by.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("26.3.100.34058", Role::Client, None, "alice"),
            (
                "26.3.100.34058",
                Role::Web,
                Some(WebServerKind::Iis),
                "agent srv-01"
            ),
            ("9.3.1.33994", Role::Server, None, "alice"),
        ]
    );
    assert_eq!((listed[1].size, listed[1].added_ms), (5, t0 + 1));
    // The first record of file a goes; the file stays (the server's
    // installer is the same file), and goes with the last record.
    let unused = store
        .remove_artifacts(&listed[..2], "bob", t0 + 2)
        .await
        .unwrap();
    assert_eq!(unused, vec![b]);
    let unused = store
        .remove_artifacts(&listed[2..], "bob", t0 + 3)
        .await
        .unwrap();
    assert_eq!(unused, vec![a]);
    assert!(store.stored_artifacts().await.unwrap().is_empty());
    let audit = store.audit_log(10).await.unwrap();
    let mut removals: Vec<&str> = audit
        .iter()
        .filter(|e| e.action == "artifact remove" && e.actor == "bob")
        .map(|e| e.subject.as_str())
        .collect();
    removals.sort_unstable();
    assert_eq!(
        removals,
        [
            "client 26.3.100.34058",
            "server 9.3.1.33994",
            "web iis 26.3.100.34058"
        ]
    );
}

/// Dashboard sessions: read back by id, ended when idle, past their
/// lifetime or closed; an operator's oldest go beyond their limit, never
/// another's, and a login when others hold all sessions is refused.
async fn dashboard_sessions(store: &Store, t0: i64) {
    let terms = SessionTerms {
        idle_ms: 60_000,
        lifetime_ms: 600_000,
        max_per_operator: 3,
        max_sessions: 4,
    };
    let opened = store
        .open_dashboard_session("s-a", "token-a", terms, t0)
        .await
        .unwrap();
    assert_eq!(opened, SessionOpened::Opened);
    let read = |id: &'static str, at: i64| store.dashboard_session(id, terms, at);
    assert_eq!(
        read("s-a", t0 + 1).await.unwrap().as_deref(),
        Some("token-a")
    );
    assert_eq!(read("s-unknown", t0).await.unwrap(), None);
    // Used every 50 s it stays open past the idle limit, not past its
    // lifetime; once ended it is gone even for an earlier clock.
    let mut at = t0;
    while at + 50_000 < t0 + 600_000 {
        at += 50_000;
        assert!(read("s-a", at).await.unwrap().is_some(), "at {at}");
    }
    assert_eq!(read("s-a", t0 + 600_000).await.unwrap(), None);
    assert_eq!(read("s-a", t0).await.unwrap(), None);
    // Idle too long.
    let opened = store
        .open_dashboard_session("s-b", "token-b", terms, t0)
        .await
        .unwrap();
    assert_eq!(opened, SessionOpened::Opened);
    assert_eq!(read("s-b", t0 + 60_000).await.unwrap(), None);
    // Closed.
    let opened = store
        .open_dashboard_session("s-c", "token-c", terms, t0)
        .await
        .unwrap();
    assert_eq!(opened, SessionOpened::Opened);
    store.close_dashboard_session("s-c").await.unwrap();
    assert_eq!(read("s-c", t0).await.unwrap(), None);
    // Another operator's session, then a fourth login of one operator
    // ends the oldest of their three, not the other's (older) one.
    let _ = store
        .open_dashboard_session("s-admin", "token-admin", terms, t0)
        .await
        .unwrap();
    for (i, id) in ["s-1", "s-2", "s-3", "s-4"].into_iter().enumerate() {
        let opened = store
            .open_dashboard_session(id, "token", terms, t0 + 1 + i as i64)
            .await
            .unwrap();
        assert_eq!(opened, SessionOpened::Opened, "{id}");
    }
    assert_eq!(read("s-1", t0 + 10).await.unwrap(), None);
    for id in ["s-2", "s-3", "s-4", "s-admin"] {
        assert!(read(id, t0 + 10).await.unwrap().is_some(), "{id}");
    }
    // Four held (admin, 2, 3, 4): a third operator is refused and
    // nobody's session ends; an operator at their own limit still logs in,
    // ending their own oldest.
    for _ in 0..3 {
        let opened = store
            .open_dashboard_session("s-x", "token-x", terms, t0 + 20)
            .await
            .unwrap();
        assert_eq!(opened, SessionOpened::Full);
    }
    assert_eq!(read("s-x", t0 + 21).await.unwrap(), None);
    for id in ["s-admin", "s-2", "s-3", "s-4"] {
        assert!(read(id, t0 + 21).await.unwrap().is_some(), "{id}");
    }
    let opened = store
        .open_dashboard_session("s-5", "token", terms, t0 + 22)
        .await
        .unwrap();
    assert_eq!(opened, SessionOpened::Opened);
    assert_eq!(read("s-2", t0 + 23).await.unwrap(), None);
    for id in ["s-admin", "s-3", "s-4", "s-5"] {
        assert!(read(id, t0 + 23).await.unwrap().is_some(), "{id}");
    }
}

/// Where releases come from: unknown names and cycles are refused, also
/// when two admins close a cycle at the same moment from both ends.
async fn promotion(store: &Store, t0: i64) {
    let from = |name: &str| Promotion {
        from: name.to_owned(),
        soak_ms: 60_000,
    };
    assert_eq!(
        store
            .set_promotion("nowhere", Some(&from("test")), "admin", t0)
            .await
            .unwrap(),
        Err(PromotionError::Unknown("nowhere".into()))
    );
    assert_eq!(
        store
            .set_promotion("prod", Some(&from("nowhere")), "admin", t0)
            .await
            .unwrap(),
        Err(PromotionError::Unknown("nowhere".into()))
    );
    store
        .set_promotion("prod", Some(&from("test")), "admin", t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.promotion("prod").await.unwrap(),
        Ok(Some(from("test")))
    );
    assert!(matches!(
        store
            .set_promotion("test", Some(&from("prod")), "admin", t0)
            .await
            .unwrap(),
        Err(PromotionError::Cycle(..))
    ));
    store
        .set_promotion("prod", None, "admin", t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.promotion("prod").await.unwrap(), Ok(None));

    // East from west and west from east, set at once: one wins, the other
    // is refused as a cycle, and what is stored has no cycle.
    let (from_west, from_east) = (from("west"), from("east"));
    for _ in 0..5 {
        let (first, second) = tokio::join!(
            store.set_promotion("east", Some(&from_west), "ada", t0),
            store.set_promotion("west", Some(&from_east), "alan", t0)
        );
        let outcomes = [first.unwrap(), second.unwrap()];
        assert_eq!(
            outcomes.iter().filter(|o| o.is_ok()).count(),
            1,
            "{outcomes:?}"
        );
        let east = store.promotion("east").await.unwrap().unwrap();
        let west = store.promotion("west").await.unwrap().unwrap();
        assert!(east.is_none() || west.is_none(), "{east:?} {west:?}");
        for name in ["east", "west"] {
            store
                .set_promotion(name, None, "admin", t0)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

fn auto_client(profile_hosts: &[&str]) -> Inventory {
    Inventory::new(vec![Component {
        role: Role::Client,
        version: ProbedVersion::Installed(V931),
        facts: Facts::Client(ClientFacts {
            update_check_enabled: Check::No,
            profiles: profile_hosts
                .iter()
                .map(|h| DatabaseProfile {
                    host: (*h).into(),
                    database: "PSDB".into(),
                })
                .collect(),
        }),
    }])
    .unwrap()
}

/// Clients whose agents say `auto`: placed by the server they name, or by an
/// operator's mapping; unassigned (installation `auto`) with the reason.
async fn placement(store: &Store, t0: i64) {
    use tierwise_common::Placement;
    use tierwise_controller::store::placement::MappingError;
    let t = t0 + 100_000;
    for (host, installation) in [("east-srv", "east"), ("west-srv", "west")] {
        store
            .record_hello(
                &report(host, installation, server_inventory(V931, true)),
                host,
                t,
            )
            .await
            .unwrap();
    }
    // By the server's host name (the profile's fully qualified form).
    store
        .record_hello(
            &report("auto-1", "auto", auto_client(&["EAST-SRV.corp.example"])),
            "a1",
            t,
        )
        .await
        .unwrap();
    let placed = store.get_host("auto-1", t).await.unwrap().unwrap();
    assert_eq!(placed.installation, "east");
    assert_eq!(
        placed.placement,
        Some(Placement::Placed {
            installation: "east".into(),
            by: "server east-srv".into()
        })
    );
    // An address nobody knows: unassigned, with what to run.
    store
        .record_hello(
            &report("auto-2", "auto", auto_client(&["10.9.9.9"])),
            "a2",
            t,
        )
        .await
        .unwrap();
    let unassigned = store.get_host("auto-2", t).await.unwrap().unwrap();
    assert_eq!(unassigned.installation, "auto");
    match &unassigned.placement {
        Some(Placement::Unassigned { reason }) => {
            assert!(
                reason.contains("tierwise installations map 10.9.9.9 INSTALLATION"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(!store
        .installations()
        .await
        .unwrap()
        .contains(&"auto".to_owned()));
    let east = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .list_hosts(
                    &HostFilter {
                        installation: Some("east".into()),
                        role: None,
                    },
                    t,
                )
                .await
                .unwrap()
                .into_iter()
                .map(|h| h.host_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(east(store).await, vec!["auto-1", "east-srv"]);

    // Mappings: refused for `auto` and unknown installations; a mapping
    // places the client at once, and removing it unplaces it.
    assert!(matches!(
        store.map_address("10.9.9.9", "auto", "admin", t).await,
        Err(MappingError::Auto)
    ));
    assert!(matches!(
        store.map_address("10.9.9.9", "nowhere", "admin", t).await,
        Err(MappingError::UnknownInstallation(..))
    ));
    assert!(matches!(
        store.map_address("  ", "west", "admin", t).await,
        Err(MappingError::EmptyAddress)
    ));
    store
        .map_address(" 10.9.9.9 ", "west", "admin", t)
        .await
        .unwrap();
    let mapped = store.get_host("auto-2", t).await.unwrap().unwrap();
    assert_eq!(
        mapped.placement,
        Some(Placement::Placed {
            installation: "west".into(),
            by: "mapping 10.9.9.9".into()
        })
    );
    let mappings = store.address_mappings().await.unwrap();
    assert_eq!(mappings.len(), 1);
    assert_eq!(
        (
            mappings[0].address.as_str(),
            mappings[0].installation.as_str()
        ),
        ("10.9.9.9", "west")
    );
    // A mapping wins over a matching server host, and moves a placed client.
    store
        .map_address("east-srv.corp.example", "west", "admin", t)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_host("auto-1", t)
            .await
            .unwrap()
            .unwrap()
            .installation,
        "west"
    );
    store
        .unmap_address("EAST-SRV.corp.example", "admin", t)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_host("auto-1", t)
            .await
            .unwrap()
            .unwrap()
            .installation,
        "east"
    );
    store.unmap_address("10.9.9.9", "admin", t).await.unwrap();
    assert_eq!(
        store
            .get_host("auto-2", t)
            .await
            .unwrap()
            .unwrap()
            .installation,
        "auto"
    );
    assert!(matches!(
        store.unmap_address("10.9.9.9", "admin", t).await,
        Err(MappingError::NoMapping(_))
    ));
    // A reconnect keeps the placement; a new inventory naming another
    // server moves the client.
    store
        .record_hello(
            &report("auto-1", "auto", auto_client(&["east-srv"])),
            "a1b",
            t + 1,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_host("auto-1", t + 1)
            .await
            .unwrap()
            .unwrap()
            .installation,
        "east"
    );
    assert!(store
        .record_inventory("auto-1", "a1b", auto_client(&["west-srv"]), t + 2)
        .await
        .unwrap());
    assert_eq!(
        store
            .get_host("auto-1", t + 2)
            .await
            .unwrap()
            .unwrap()
            .installation,
        "west"
    );
    // A new server host that the unassigned client names places it.
    store
        .record_hello(
            &report("ninenine", "east", server_inventory(V931, true)),
            "n",
            t + 3,
        )
        .await
        .unwrap();
    store
        .record_inventory(
            "auto-2",
            "a2",
            auto_client(&["ninenine.corp.example"]),
            t + 4,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_host("auto-2", t + 4)
            .await
            .unwrap()
            .unwrap()
            .installation,
        "east"
    );
    // A placed client that reports no profile (its user logged off) keeps
    // its placement.
    store
        .record_inventory("auto-2", "a2", auto_client(&[]), t + 4)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_host("auto-2", t + 4)
            .await
            .unwrap()
            .unwrap()
            .installation,
        "east"
    );
    // An agent that names its installation again is fixed there.
    store
        .record_hello(&report("auto-2", "west", auto_client(&[])), "a2b", t + 5)
        .await
        .unwrap();
    let fixed = store.get_host("auto-2", t + 5).await.unwrap().unwrap();
    assert_eq!(
        (fixed.installation.as_str(), fixed.placement.clone()),
        ("west", None)
    );
}

/// Rollouts: creation, decisions, results by attempt, operator changes, audit.
async fn rollouts(store: &Store, t0: i64) {
    use tierwise_common::action::{StepAction, StepOutcome};
    use tierwise_common::plan::PhaseKind;
    use tierwise_common::rollout::{
        Command, Decision, ExecPhase, ExecStep, Refusal, RolloutOptions, RolloutState, StepState,
    };
    use tierwise_controller::store::rollouts::{RolloutError, StepResultRecord};
    // Engine transactions write only for the leader.
    let _leader = store.claim_leadership(t0).await.unwrap().expect("leads");

    let make = |id: &str| {
        let step = |n: usize, host: &str| ExecStep {
            step_id: format!("{id}-{n}"),
            phase: 0,
            host_id: host.into(),
            action: StepAction::Backup,
            state: StepState::Pending,
            attempts: 0,
            changed_ms: t0,
            outcome: None,
            reason: String::new(),
            restart: Default::default(),
            task: None,
        };
        (
            vec![ExecPhase {
                kind: PhaseKind::Backup,
            }],
            vec![step(1, "srv-01"), step(2, "srv-01")],
        )
    };
    let options = RolloutOptions::default();
    let id = store
        .create_rollout("prod", V263, &options, make, "tester", "start", t0)
        .await
        .unwrap();
    assert_eq!(id, "r1");
    let again = store
        .create_rollout("prod", V263, &options, make, "tester", "start", t0)
        .await;
    assert!(matches!(again, Err(RolloutError::AlreadyActive { .. })));

    let (rollout, steps) = store.rollout("r1").await.unwrap().unwrap();
    assert_eq!((rollout.state, steps.len()), (RolloutState::Running, 2));
    let dispatch = [Decision::Dispatch {
        step_id: "r1-1".into(),
    }];
    assert_eq!(
        store
            .apply_decisions(&rollout, &dispatch, t0 + 1)
            .await
            .unwrap(),
        Some(vec![("r1-1".to_owned(), 1)])
    );
    // Dispatching it again moves nothing: nothing may be sent.
    assert_eq!(
        store
            .apply_decisions(&rollout, &dispatch, t0 + 1)
            .await
            .unwrap(),
        Some(vec![])
    );
    let pending = store.outstanding_steps("srv-01").await.unwrap();
    assert_eq!((pending.len(), pending[0].0.attempts), (1, 1));
    // Every rollout has a random tag of its own in its dispatch ids.
    let nonce = rollout.nonce.clone();
    assert_eq!((nonce.len(), pending[0].1.as_str()), (12, nonce.as_str()));
    let attempt = |n: u32| tierwise_common::rollout::dispatch_id("r1-1", n, &nonce);

    let result = |id: &str| StepResultRecord {
        step_id: id.into(),
        outcome: StepOutcome::Succeeded,
        exit_code: Some(0),
        output_tail: "ok".into(),
        reason: String::new(),
    };
    assert_eq!(
        store
            .record_step_result("srv-01", &result(&attempt(0)), t0 + 2)
            .await
            .unwrap(),
        None,
        "an older attempt"
    );
    assert_eq!(
        store
            .record_step_result("other", &result(&attempt(1)), t0 + 2)
            .await
            .unwrap(),
        None,
        "another host"
    );
    assert_eq!(
        store
            .record_step_result("srv-01", &result("r1-1.1.000000000000"), t0 + 2)
            .await
            .unwrap(),
        None,
        "the same step id of another rollout (another database, a restore)"
    );
    assert_eq!(
        store
            .record_step_result("srv-01", &result("r1-1.1"), t0 + 2)
            .await
            .unwrap(),
        None,
        "without the tag"
    );
    assert_eq!(
        store
            .record_step_result("srv-01", &result(&attempt(1)), t0 + 2)
            .await
            .unwrap(),
        Some("r1".into())
    );
    assert_eq!(
        store
            .record_step_result("srv-01", &result(&attempt(1)), t0 + 3)
            .await
            .unwrap(),
        None,
        "once only"
    );
    let (_, steps) = store.rollout("r1").await.unwrap().unwrap();
    assert_eq!(steps[0].state, StepState::Succeeded);
    assert_eq!(
        store.step_outputs("r1").await.unwrap(),
        [("r1-1".to_owned(), Some(0), "ok".to_owned())]
    );

    // Decisions made for an outdated state are not applied.
    let (paused, _) = store
        .apply_command("r1", &Command::Pause, "tester", t0 + 4)
        .await
        .unwrap();
    assert_eq!(paused.state, RolloutState::Paused);
    assert_eq!(
        store
            .apply_decisions(&rollout, &[Decision::Complete], t0 + 5)
            .await
            .unwrap(),
        None
    );
    let wrong = store
        .apply_command("r1", &Command::Approve, "tester", t0 + 6)
        .await;
    assert!(matches!(
        wrong,
        Err(RolloutError::Refused {
            refusal: Refusal::WrongState { .. },
            ..
        })
    ));
    let audit = store.audit_log(10).await.unwrap();
    let rollout_entries: Vec<_> = audit
        .iter()
        .filter(|a| a.action.starts_with("rollout"))
        .collect();
    let actions: Vec<&str> = rollout_entries.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["rollout start", "rollout pause"]);
    assert_eq!(rollout_entries[1].actor, "tester");
}

/// The backup protecting a rollout: every file in the server's order,
/// replaced whole when a retried backup finds others, each in the audit
/// entry.
async fn backups(store: &Store, t0: i64) {
    use tierwise_common::action::BackupFile;
    assert_eq!(store.rollout_backup("r1").await.unwrap(), None);
    let file = |database: Option<&str>, path: &str, size: u64| BackupFile {
        database: database.map(Into::into),
        path: path.into(),
        size,
        modified_ms: t0,
    };
    // A size past 32 bits: the columns are 64-bit on both stores.
    let two = [
        file(Some("PSDB-Prod"), "/b/PSDB-Prod_1.bak", 5_000_000_000),
        file(Some("PSDB-Archive"), "/b/PSDB-Archive_1.bak", 10),
    ];
    store
        .record_backup("r1", "srv-01", &two, t0 + 10)
        .await
        .unwrap();
    let backup = store.rollout_backup("r1").await.unwrap().unwrap();
    assert_eq!(backup.host_id, "srv-01");
    assert_eq!(backup.files, two);

    // A retried backup's files replace every earlier one.
    let one = [file(None, "/b/server.bak", 7)];
    store
        .record_backup("r1", "srv-01", &one, t0 + 20)
        .await
        .unwrap();
    assert_eq!(
        store.rollout_backup("r1").await.unwrap().unwrap().files,
        one
    );
    store
        .record_backup("r1", "srv-01", &two, t0 + 30)
        .await
        .unwrap();
    assert_eq!(
        store.rollout_backup("r1").await.unwrap().unwrap().files,
        two
    );
    // Nothing found records nothing.
    store
        .record_backup("r1", "srv-01", &[], t0 + 40)
        .await
        .unwrap();
    assert_eq!(
        store.rollout_backup("r1").await.unwrap().unwrap().files,
        two
    );

    let audit = store.audit_log(100).await.unwrap();
    let verified: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "backup verified")
        .map(|a| (a.actor.as_str(), a.subject.as_str(), a.details.as_str()))
        .collect();
    assert_eq!(
        verified,
        [
            (
                "agent srv-01",
                "r1",
                "PSDB-Prod: /b/PSDB-Prod_1.bak (5000000000 bytes, written 2027-01-15T08:00:00Z); \
                 PSDB-Archive: /b/PSDB-Archive_1.bak (10 bytes, written 2027-01-15T08:00:00Z)"
            ),
            (
                "agent srv-01",
                "r1",
                "/b/server.bak (7 bytes, written 2027-01-15T08:00:00Z)"
            ),
            (
                "agent srv-01",
                "r1",
                "PSDB-Prod: /b/PSDB-Prod_1.bak (5000000000 bytes, written 2027-01-15T08:00:00Z); \
                 PSDB-Archive: /b/PSDB-Archive_1.bak (10 bytes, written 2027-01-15T08:00:00Z)"
            ),
        ]
    );
}

/// A backup recorded before there was one file per database (a row in
/// `rollout_backups` alone) still reads as its one file, of no database.
/// `raw` runs SQL on the store's database behind its back.
async fn backup_from_before_files_per_database(store: &Store, raw: impl sqlx::Executor<'_>) {
    raw.execute("DELETE FROM rollout_backup_files WHERE rollout_id = 'r1'")
        .await
        .unwrap();
    let backup = store.rollout_backup("r1").await.unwrap().unwrap();
    assert_eq!(backup.host_id, "srv-01");
    assert_eq!(
        backup.files,
        [tierwise_common::action::BackupFile {
            database: None,
            path: "/b/PSDB-Prod_1.bak".into(),
            size: 5_000_000_000,
            modified_ms: 1_800_000_000_000,
        }]
    );
}

/// The inbox tells the engine which hosts changed in what `decide` reads,
/// whoever wrote the change; heartbeats and progress lines are not changes.
async fn engine_inbox(store: &Store, t0: i64) {
    use tierwise_controller::store::rollouts::StepResultRecord;
    let taken = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let take = || async {
        store
            .take_changed_hosts()
            .await
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>()
    };
    take().await;
    assert_eq!(take().await, taken(&[]), "taken rows are gone");

    store
        .record_hello(&report("inbox-01", "prod", web_and_client()), "i1", t0)
        .await
        .unwrap();
    assert_eq!(take().await, taken(&["inbox-01"]), "a new host");

    store.note_heartbeat("inbox-01", "i1", t0 + 10_000);
    assert_eq!(store.flush_heartbeats().await.unwrap(), 1);
    assert_eq!(take().await, taken(&[]), "a heartbeat is not a change");

    assert!(store
        .record_inventory("inbox-01", "i1", web_and_client(), t0 + 11_000)
        .await
        .unwrap());
    assert_eq!(
        take().await,
        taken(&["inbox-01"]),
        "every report, even the same"
    );

    assert!(store.record_disconnect("inbox-01", "i1").await.unwrap());
    assert_eq!(take().await, taken(&["inbox-01"]), "offline");
    store
        .record_hello(
            &report("inbox-01", "prod", web_and_client()),
            "i2",
            t0 + 12_000,
        )
        .await
        .unwrap();
    let swept = store.sweep_offline(t0 + 10_000_000).await.unwrap();
    assert!(swept.contains(&"inbox-01".to_owned()));
    let changed = take().await;
    assert!(
        changed.contains(&"inbox-01".to_owned()),
        "swept offline: {changed:?}"
    );

    // The step of r1 that is still pending, dispatched: its host changed;
    // a progress line of it is not a change.
    let (rollout, _) = store.rollout("r1").await.unwrap().unwrap();
    let resumed = store
        .apply_command(
            "r1",
            &tierwise_common::rollout::Command::Resume,
            "tester",
            t0 + 20,
        )
        .await
        .unwrap()
        .0;
    assert_eq!(take().await, taken(&[]), "a command that changes no step");
    let dispatched = store
        .apply_decisions(
            &resumed,
            &[tierwise_common::rollout::Decision::Dispatch {
                step_id: "r1-2".into(),
            }],
            t0 + 21,
        )
        .await
        .unwrap();
    assert_eq!(dispatched, Some(vec![("r1-2".to_owned(), 1)]));
    assert_eq!(take().await, taken(&["srv-01"]), "a dispatch");
    let id = tierwise_common::rollout::dispatch_id("r1-2", 1, &rollout.nonce);
    store
        .record_progress("srv-01", &id, "copying", t0 + 22)
        .await
        .unwrap();
    assert_eq!(take().await, taken(&[]), "a progress line is not a change");
    let result = StepResultRecord {
        step_id: id,
        outcome: tierwise_common::action::StepOutcome::Succeeded,
        exit_code: Some(0),
        output_tail: String::new(),
        reason: String::new(),
    };
    assert!(store
        .record_step_result("srv-01", &result, t0 + 23)
        .await
        .unwrap()
        .is_some());
    assert_eq!(take().await, taken(&["srv-01"]), "a result");
}

/// Enrollments racing for a token's last uses: exactly as many win as the
/// token allows, the rest are told it is used up, and the count is exact.
async fn token_uses_under_concurrent_enrollments(store: &Store, t0: i64) {
    use tierwise_controller::store::security::{
        AgentCertificate, EnrollError, Enrollment, NewToken,
    };
    let token = NewToken {
        id: "race",
        secret_sha256: "cc",
        installation: None,
        uses_allowed: 5,
        expires_ms: t0 + 60_000,
    };
    store.create_token(&token, "admin", t0).await.unwrap();
    let hosts: Vec<String> = (0..20).map(|i| format!("race-{i:02}")).collect();
    let mut attempts = tokio::task::JoinSet::new();
    for host in hosts {
        let store = store.clone();
        attempts.spawn(async move {
            let enrollment = Enrollment {
                token_id: "race",
                secret_sha256: "cc",
                host_id: &host,
                installation: "prod",
                certificate: AgentCertificate {
                    serial: format!("serial-{host}"),
                    host_id: host.clone(),
                    installation: "prod".into(),
                    public_key_sha256: format!("key-{host}"),
                    certificate_pem: "PEM".into(),
                    not_after_ms: t0 + 3_600_000,
                    revoked_ms: None,
                    superseded_ms: None,
                },
            };
            store.enroll(&enrollment, t0 + 1).await
        });
    }
    let results = attempts.join_all().await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let used_up = results
        .iter()
        .filter(|r| matches!(r, Err(EnrollError::UsedUp { .. })))
        .count();
    assert_eq!((won, used_up), (5, 15), "{results:?}");
    let uses = store
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == "race")
        .unwrap()
        .uses;
    assert_eq!(uses, 5);
    for result in results.iter().filter_map(|r| r.as_ref().ok()) {
        assert!(store
            .agent_certificate(&result.serial)
            .await
            .unwrap()
            .is_some());
    }
}

/// Tokens, enrollment, revocation and operators, the same on both backends.
async fn security(store: &Store, t0: i64) {
    use tierwise_controller::store::security::{
        AgentCertificate, EnrollError, Enrollment, NewToken, RemoveOperator,
    };
    let token = NewToken {
        id: "t1",
        secret_sha256: "aa",
        installation: Some("prod"),
        uses_allowed: 1,
        expires_ms: t0 + 60_000,
    };
    store.create_token(&token, "admin", t0).await.unwrap();
    let certificate = |serial: &str, key: &str| AgentCertificate {
        serial: serial.into(),
        host_id: "cl-9".into(),
        installation: "prod".into(),
        public_key_sha256: key.into(),
        certificate_pem: "PEM".into(),
        not_after_ms: t0 + 3_600_000,
        revoked_ms: None,
        superseded_ms: None,
    };
    let enrollment = |secret: &'static str, serial: &str, key: &str| Enrollment {
        token_id: "t1",
        secret_sha256: secret,
        host_id: "cl-9",
        installation: "prod",
        certificate: certificate(serial, key),
    };
    assert!(matches!(
        store.enroll(&enrollment("bb", "s0", "k1"), t0).await,
        Err(EnrollError::Invalid)
    ));
    let issued = store
        .enroll(&enrollment("aa", "s1", "k1"), t0 + 1)
        .await
        .unwrap();
    assert_eq!(issued.serial, "s1");
    // A retry with the same key gets the same certificate, without a use.
    let again = store
        .enroll(&enrollment("aa", "s2", "k1"), t0 + 2)
        .await
        .unwrap();
    assert_eq!(again.serial, "s1");
    assert!(matches!(
        store.enroll(&enrollment("aa", "s3", "k2"), t0 + 3).await,
        Err(EnrollError::UsedUp { .. })
    ));
    assert_eq!(store.tokens().await.unwrap()[0].uses, 1);
    assert_eq!(
        store
            .agent_certificate("s1")
            .await
            .unwrap()
            .unwrap()
            .host_id,
        "cl-9"
    );
    assert_eq!(store.revoke_host("cl-9", "admin", t0 + 4).await.unwrap(), 1);
    assert!(store
        .agent_certificate("s1")
        .await
        .unwrap()
        .unwrap()
        .revoked_ms
        .is_some());

    assert!(store
        .add_operator("vera", "viewer", "h1", Some(t0 + 60_000), "admin", t0)
        .await
        .unwrap());
    assert!(!store
        .add_operator("vera", "admin", "h2", None, "admin", t0)
        .await
        .unwrap());
    let vera = store.operator_by_token("h1").await.unwrap().unwrap();
    assert_eq!((vera.name.as_str(), vera.role.as_str()), ("vera", "viewer"));
    assert_eq!(vera.expires_ms, Some(t0 + 60_000));
    assert!(!vera.expired(t0 + 59_999) && vera.expired(t0 + 60_000));
    // A rotation replaces the token at once and sets a new expiry.
    assert!(store
        .rotate_operator("vera", "h3", None, "vera", t0 + 1)
        .await
        .unwrap());
    assert_eq!(store.operator_by_token("h1").await.unwrap(), None);
    let vera = store.operator_by_token("h3").await.unwrap().unwrap();
    assert_eq!(vera.expires_ms, None);
    assert!(!store
        .rotate_operator("nobody", "h4", None, "admin", t0)
        .await
        .unwrap());
    store.touch_operator("vera", t0 + 2).await.unwrap();
    assert_eq!(
        store
            .operator_by_token("h3")
            .await
            .unwrap()
            .unwrap()
            .last_used_ms,
        Some(t0 + 2)
    );
    assert!(matches!(
        store.remove_operator("vera", "admin", t0).await.unwrap(),
        RemoveOperator::Removed(_)
    ));
    assert_eq!(
        store.remove_operator("vera", "admin", t0).await.unwrap(),
        RemoveOperator::NotFound
    );
    // The last admin stays, also when two admins remove each other at the
    // same moment: exactly one removal wins.
    for name in ["ada", "alan"] {
        assert!(store
            .add_operator(name, "admin", &format!("h-{name}"), None, "admin", t0)
            .await
            .unwrap());
    }
    let (first, second) = tokio::join!(
        store.remove_operator("ada", "alan", t0),
        store.remove_operator("alan", "ada", t0)
    );
    let outcomes = [first.unwrap(), second.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, RemoveOperator::Removed(_)))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&RemoveOperator::LastAdmin),
        "{outcomes:?}"
    );
    assert_eq!(store.operator_by_token("h3").await.unwrap(), None);
    let audit = store.audit_log(100).await.unwrap();
    for action in [
        "token create",
        "host enroll",
        "host revoke",
        "operator add",
        "operator rotate",
        "operator remove",
    ] {
        assert!(
            audit.iter().any(|a| a.action == action),
            "{action} not audited"
        );
    }
}

/// Every entry the suite wrote, and entries written at the same moment by
/// concurrent transactions, form one unbroken hash chain.
async fn audit_chain(store: &Store, t0: i64) {
    let writes = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .audit("admin", "test", &format!("s{i}"), "concurrent", t0)
                .await
        })
    });
    for write in writes.collect::<Vec<_>>() {
        write.await.unwrap().unwrap();
    }
    let entries = store.audit_after(0, 100_000).await.unwrap();
    let links: Vec<_> = entries.iter().map(|e| e.link()).collect();
    let verified = tierwise_common::audit::verify(&links).unwrap();
    assert_eq!(verified.chained, entries.len());
    assert_eq!(verified.unchained, 0);
    assert!(entries.len() > 20);
    assert_eq!(
        verified.head.unwrap().0,
        entries.last().unwrap().seq,
        "numbered without gaps from 1"
    );
    assert_eq!(entries[0].seq, 1);

    // Keyed from the next entry on: concurrent appends stay one chain, and
    // only the key verifies its keyed part.
    use tierwise_common::audit::{Key, KEY_BYTES};
    use tierwise_controller::store::audit::{use_key, Keying};
    let key = Key::new(&[5; KEY_BYTES]);
    use_key(key.clone());
    let head = store.audit_head().await.unwrap();
    let keyed_from = head.seq + 1;
    assert_eq!(
        store.key_audit_chain(&key).await.unwrap(),
        Keying::Began { keyed_from }
    );
    assert_eq!(
        store.key_audit_chain(&key).await.unwrap(),
        Keying::Holds { keyed_from }
    );
    let writes = (0..10).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .audit("admin", "test", &format!("k{i}"), "keyed", t0)
                .await
        })
    });
    for write in writes.collect::<Vec<_>>() {
        write.await.unwrap().unwrap();
    }
    let verdict = store.verify_audit(Some(&key)).await.unwrap();
    assert_eq!(verdict.start.chained_from, 1);
    assert_eq!(verdict.start.keyed_from, keyed_from);
    let verified = verdict.result.unwrap();
    assert_eq!(verified.keyed, 10);
    assert_eq!(verified.chained, entries.len() + 10);
    let other = Key::new(&[6; KEY_BYTES]);
    assert!(store
        .verify_audit(Some(&other))
        .await
        .unwrap()
        .result
        .is_err());
    assert!(matches!(
        store.key_audit_chain(&other).await.unwrap(),
        Keying::Differs { .. }
    ));
}

/// Renewals: only past half of a certificate's life, each supersedes the
/// certificate it replaces, and a revocation between the handler's check
/// and the renewal's transaction wins. Enrollments are checked before
/// anything is signed, and a host stays in its installation.
async fn renewal_and_moves(store: &Store, t0: i64) {
    use tierwise_controller::store::security::{
        AgentCertificate, EnrollError, Enrollment, NewToken, RenewError,
    };
    let hour = 3_600_000;
    let certificate =
        |serial: &str, host: &str, installation: &str, issued: i64| AgentCertificate {
            serial: serial.into(),
            host_id: host.into(),
            installation: installation.into(),
            public_key_sha256: format!("key-{serial}"),
            certificate_pem: "PEM".into(),
            not_after_ms: issued + 2 * hour,
            revoked_ms: None,
            superseded_ms: None,
        };
    for id in ["r-prod", "r-test"] {
        let token = NewToken {
            id,
            secret_sha256: "aa",
            installation: None,
            uses_allowed: 10,
            expires_ms: t0 + 100 * hour,
        };
        store.create_token(&token, "admin", t0).await.unwrap();
    }
    let enroll = |serial: &'static str,
                  host: &'static str,
                  installation: &'static str,
                  token: &'static str,
                  at: i64| {
        let certificate = certificate(serial, host, installation, at);
        async move {
            let enrollment = Enrollment {
                token_id: token,
                secret_sha256: "aa",
                host_id: host,
                installation,
                certificate,
            };
            store.enroll(&enrollment, at).await
        }
    };
    enroll("rn-1", "rn-host", "prod", "r-prod", t0)
        .await
        .unwrap();

    // Not before half of its life (one hour of two).
    assert!(matches!(
        store.check_renewal("rn-1", t0 + hour - 1).await,
        Err(RenewError::TooEarly { .. })
    ));
    assert!(matches!(
        store
            .renew(
                "rn-1",
                &certificate("rn-2", "rn-host", "prod", t0),
                t0 + hour - 1
            )
            .await,
        Err(RenewError::TooEarly { .. })
    ));
    assert!(store.agent_certificate("rn-2").await.unwrap().is_none());
    // Past it: the new one is stored. Until it is used the old one still
    // works (its agent may have lost the answer, and renews again: the
    // unused successor is then discarded).
    store.check_renewal("rn-1", t0 + hour).await.unwrap();
    let renew = |old: &'static str, new: &'static str, at: i64| {
        let certificate = certificate(new, "rn-host", "prod", at);
        async move { store.renew(old, &certificate, at).await }
    };
    renew("rn-1", "rn-2", t0 + hour).await.unwrap();
    assert_eq!(
        store.certificate_refusal("rn-1", t0 + hour).await.unwrap(),
        None
    );
    renew("rn-1", "rn-2b", t0 + hour + 1).await.unwrap();
    let discarded = store
        .certificate_refusal("rn-2", t0 + hour + 1)
        .await
        .unwrap();
    assert!(discarded.unwrap().contains("replaced by a renewal"));
    // The new one's first use supersedes the old one.
    store.first_use("rn-2b", t0 + hour + 2).await.unwrap();
    let refusal = store
        .certificate_refusal("rn-1", t0 + hour + 2)
        .await
        .unwrap();
    assert!(refusal.unwrap().contains("replaced by a renewal"));
    assert_eq!(
        store
            .certificate_refusal("rn-2b", t0 + hour + 2)
            .await
            .unwrap(),
        None
    );
    // The old certificate renews no more.
    assert!(matches!(
        renew("rn-1", "rn-3", t0 + hour + 3).await,
        Err(RenewError::Superseded(_))
    ));

    // The race: the handler checked, then the host was revoked, then the
    // renewal is recorded. The revocation wins; nothing new is valid.
    let later = t0 + 2 * hour + 10;
    store.check_renewal("rn-2b", later).await.unwrap();
    store.revoke_host("rn-host", "admin", later).await.unwrap();
    assert!(matches!(
        renew("rn-2b", "rn-4", later).await,
        Err(RenewError::Revoked(_))
    ));
    assert!(store.agent_certificate("rn-4").await.unwrap().is_none());
    let refusal = store.certificate_refusal("rn-2b", later).await.unwrap();
    assert!(refusal.unwrap().contains("was revoked"));
    let audit = store.audit_log(1000).await.unwrap();
    assert!(audit
        .iter()
        .any(|a| a.action == "host renew" && a.details.contains("rn-1 replaced by rn-2b")));

    // A host whose certificate expired does not move to another
    // installation with another installation's token...
    enroll("mv-1", "mv-host", "prod", "r-prod", t0)
        .await
        .unwrap();
    let expired = t0 + 3 * hour;
    let moved = enroll("mv-2", "mv-host", "test", "r-test", expired).await;
    assert!(
        matches!(&moved, Err(EnrollError::OtherInstallation { was, .. }) if was == "prod"),
        "{moved:?}"
    );
    assert!(store.agent_certificate("mv-2").await.unwrap().is_none());
    // ...it comes back to its own with a token,
    enroll("mv-3", "mv-host", "prod", "r-prod", expired)
        .await
        .unwrap();
    // and moves only once an administrator revoked it (and with a token
    // created after that).
    store
        .revoke_host("mv-host", "admin", expired)
        .await
        .unwrap();
    let token = NewToken {
        id: "r-test-2",
        secret_sha256: "aa",
        installation: None,
        uses_allowed: 1,
        expires_ms: t0 + 100 * hour,
    };
    store
        .create_token(&token, "admin", expired + 1)
        .await
        .unwrap();
    enroll("mv-4", "mv-host", "test", "r-test-2", expired + 2)
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite_store_suite_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tierwise.db").display());
    let store = Store::open(&url).await.unwrap();
    suite(&store).await;
    store.close().await;

    // A restarted controller finds everything as it was; migrating again is a no-op.
    let store = Store::open(&url).await.unwrap();
    let host = store.get_host("srv-01", 0).await.unwrap().unwrap();
    assert_eq!(host.inventory, server_inventory(V263, true));
    assert_eq!(
        store
            .list_hosts(&HostFilter::default(), 0)
            .await
            .unwrap()
            .len(),
        710,
        "three hosts of the main suite, one of the inbox part, five of the placement part, 700 of the heartbeat part, one of the inventory part"
    );
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(mode.0, "wal");
    backup_from_before_files_per_database(&store, &raw).await;
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    assert!(store
        .list_hosts(&HostFilter::default(), 0)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn postgres_store_suite_and_reopen() {
    let Some(database) = postgres::ScratchDatabase::create("store").await else {
        return;
    };
    let url = database.url.clone();

    let store = Store::open(&url).await.unwrap();
    suite(&store).await;
    store.close().await;
    let store = Store::open(&url).await.unwrap();
    let host = store.get_host("srv-01", 0).await.unwrap().unwrap();
    assert_eq!(host.inventory, server_inventory(V263, true));
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    backup_from_before_files_per_database(&store, &raw).await;
    raw.close().await;
    store.close().await;

    // Two replicas: one leads; once its lock is gone another does, and the
    // ex-leader's engine transactions are refused by the epoch.
    let a = Store::open(&url).await.unwrap();
    let b = Store::open(&url).await.unwrap();
    let held = a.claim_leadership(1).await.unwrap().expect("a leads");
    assert!(b.claim_leadership(2).await.unwrap().is_none(), "one leader");
    let (rollout, _) = a.rollout("r1").await.unwrap().unwrap();
    drop(held);
    let mut taken = None;
    for _ in 0..50 {
        taken = b.claim_leadership(3).await.unwrap();
        if taken.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(taken.is_some(), "b leads once a's lock is gone");
    assert!(b.epoch() > a.epoch() && a.epoch() > 0);
    let decisions = [tierwise_common::rollout::Decision::Complete];
    assert_eq!(
        a.apply_decisions(&rollout, &decisions, 4).await.unwrap(),
        None,
        "an ex-leader cannot write"
    );
    assert!(b
        .apply_decisions(&rollout, &decisions, 5)
        .await
        .unwrap()
        .is_some());
    a.close().await;
    b.close().await;
    database.drop().await;
}
