//! Snapshots of `tierwise rollout plan`'s human output for realistic
//! installations. After an intended change of the output, review the new
//! text and accept it with `INSTA_UPDATE=always cargo test -p tierwise-controller`.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use tierwise_common::fixtures::{
    app_server, client, licence, offline, password_secure_catalogue, server, web,
};
use tierwise_common::plan::{plan, PlanRequest};
use tierwise_common::{Check, ClientWaves, HostRecord, ProbedVersion, Version, WebServerKind};
use tierwise_controller::cli::plan::render;

fn v(text: &str) -> Version {
    text.parse().unwrap()
}

fn render_plan(
    hosts: &[HostRecord],
    target: &str,
    until: Option<&str>,
    waves: ClientWaves,
) -> String {
    let catalogue = password_secure_catalogue();
    let licence = until.map(|u| licence("prod", u));
    let plan = plan(&PlanRequest {
        installation: "prod",
        hosts,
        catalogue: &catalogue,
        licence: licence.as_ref(),
        target: v(target),
        waves: &waves,
        web_packages: None,
    })
    .unwrap();
    render(&plan)
}

#[test]
fn breaking_update_of_a_small_office() {
    let mut hosts = vec![
        server(
            "ps-app-01",
            "prod",
            v("9.3.1.33994"),
            &[
                ("PSDB", true, v("9.3.1.33994")),
                ("PSDB-Archive", false, v("9.3.1.33994")),
            ],
        ),
        web(
            "ps-web-01",
            "prod",
            v("9.3.1.33994"),
            WebServerKind::Apache,
            Check::Yes,
        ),
    ];
    for i in 1..=12 {
        let version = if i % 5 == 0 {
            "9.2.6.33415"
        } else {
            "9.3.1.33994"
        };
        hosts.push(client(
            &format!("PC-{i:03}"),
            "prod",
            ProbedVersion::Installed(v(version)),
            Check::No,
        ));
    }
    insta::assert_snapshot!(render_plan(
        &hosts,
        "26.3.100.34058",
        Some("2026-12-31"),
        ClientWaves::default()
    ));
}

#[test]
fn blocked_by_maintenance_websocket_and_a_stranded_app_server() {
    let hosts = vec![
        server(
            "ps-app-01",
            "prod",
            v("9.3.1.33994"),
            &[("PSDB", true, v("9.3.1.33994"))],
        ),
        app_server("ps-app-02", "prod", v("26.4.10.34111")),
        web(
            "ps-web-01",
            "prod",
            v("9.3.1.33994"),
            WebServerKind::Iis,
            Check::Unknown,
        ),
        web(
            "ps-web-02",
            "prod",
            v("9.3.1.33994"),
            WebServerKind::Apache,
            Check::No,
        ),
        client(
            "PC-001",
            "prod",
            ProbedVersion::Installed(v("9.3.1.33994")),
            Check::No,
        ),
        client(
            "PC-002",
            "prod",
            ProbedVersion::Unknown("`psclient --version` exited with exit status: 1".into()),
            Check::No,
        ),
    ];
    insta::assert_snapshot!(render_plan(
        &hosts,
        "26.3.100.34058",
        Some("2026-02-28"),
        ClientWaves::default()
    ));
}

#[test]
fn large_estate_summarises_long_lists() {
    let mut hosts = vec![
        server(
            "ps-app-01",
            "prod",
            v("26.3.100.34058"),
            &[("PSDB", true, v("26.3.100.34058"))],
        ),
        app_server("ps-app-02", "prod", v("26.3.100.34058")),
        web(
            "ps-web-01",
            "prod",
            v("26.3.100.34058"),
            WebServerKind::Nginx,
            Check::Yes,
        ),
    ];
    for i in 0..2_400 {
        let version = if i % 3 == 0 {
            "26.3.100.34058"
        } else {
            "9.3.1.33994"
        };
        let update_check = if i % 200 == 0 { Check::Yes } else { Check::No };
        let host = client(
            &format!("CL-{i:05}"),
            "prod",
            ProbedVersion::Installed(v(version)),
            update_check,
        );
        hosts.push(if i % 500 == 7 { offline(host) } else { host });
    }
    let waves = ClientWaves::parse("5%,25%,100%").unwrap();
    insta::assert_snapshot!(render_plan(
        &hosts,
        "26.6.100.34161",
        Some("2026-06-30"),
        waves
    ));
}
