//! `tierwise rollout plan` end to end: a real controller, real agents, the
//! shipped catalogue imported through the real CLI.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::time::Duration;
use tierwise_e2e::{catalogue_path, wait_for, Agent, Controller, Plays, V263, V931};

#[test]
fn plan_against_live_inventory() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    let url = controller.url();
    let _server = Agent::start(
        root.path(),
        &url,
        "srv-01",
        Plays::Server(vec![("PSDB", true, V931), ("Archive", true, V931)]),
        V931,
    )?;
    let _web = Agent::start(
        root.path(),
        &url,
        "web-01",
        Plays::Web { websocket: true },
        V931,
    )?;
    let _clients: Vec<Agent> = (1..=3)
        .map(|i| Agent::start(root.path(), &url, &format!("cl-00{i}"), Plays::Client, V931))
        .collect::<Result<_, _>>()?;
    wait_for("five agents online", Duration::from_secs(20), || {
        let hosts = controller.hosts()?;
        Ok((hosts.len() == 5 && hosts.iter().all(|h| h["online"] == true)).then_some(()))
    })?;

    // Without a catalogue the plan says what to do.
    let out =
        controller.cli_output(&["rollout", "plan", "--installation", "prod", "--to", V263])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no release catalogue imported yet"));

    let imported = controller.cli(&["releases", "import", &catalogue_path()])?;
    assert!(imported.starts_with("Imported 14 release(s)"), "{imported}");
    let listed = controller.cli(&["releases", "list", "--json"])?;
    let releases: serde_json::Value = serde_json::from_str(&listed)?;
    assert_eq!(releases.as_array().unwrap().len(), 14);

    // No maintenance date recorded: blocked, exit status 3, the remedy named.
    let out =
        controller.cli_output(&["rollout", "plan", "--installation", "prod", "--to", V263])?;
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("BLOCKED"), "{text}");
    assert!(
        text.contains("tierwise license set --installation prod"),
        "{text}"
    );

    controller.cli(&[
        "license",
        "set",
        "--installation",
        "prod",
        "--maintenance-until",
        "2026-12-31",
    ])?;
    let shown: serde_json::Value =
        serde_json::from_str(&controller.cli(&["license", "show", "--json"])?)?;
    assert_eq!(shown[0]["maintenance_until"], "2026-12-31");

    let json = controller.cli(&[
        "rollout",
        "plan",
        "--installation",
        "prod",
        "--to",
        V263,
        "--json",
    ])?;
    let plan: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(plan["blocked"], false, "{json}");
    let kinds: Vec<&str> = plan["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[..5],
        ["backup", "server", "databases", "app_servers", "web"]
    );
    assert!(kinds[5..].iter().all(|k| *k == "client_wave"));
    let reactivation = plan["phases"][2]["steps"].as_array().unwrap();
    assert_eq!(reactivation.len(), 1, "one reactivation: {json}");
    assert_eq!(reactivation[0]["action"], "reactivate_databases");
    assert_eq!(
        reactivation[0]["databases"].as_array().unwrap().len(),
        2,
        "both databases"
    );
    assert_eq!(plan["counts"]["clients_to_update"], 3);
    assert_eq!(plan["counts"]["clients_locked_out"], 3);
    assert_eq!(
        plan["acks_required"],
        serde_json::json!(["breaking", "changelog", "server-manager-password"])
    );
    assert_eq!(plan["clients_immediately_after_web"], true);
    // The same inventory gives the same plan, byte for byte.
    let again = controller.cli(&[
        "rollout",
        "plan",
        "--installation",
        "prod",
        "--to",
        V263,
        "--json",
    ])?;
    assert_eq!(json, again);

    let text = controller.cli(&[
        "rollout",
        "plan",
        "--installation",
        "prod",
        "--to",
        V263,
        "--client-waves",
        "50%,100%",
    ])?;
    assert!(
        text.starts_with("Rollout plan: installation prod → 26.3.100.34058"),
        "{text}"
    );
    assert!(
        text.contains("Clients, wave 1 (to 50%) — 2 steps"),
        "{text}"
    );

    // 26.6.100.34161 is inside maintenance too; crossing it adds its PKCS#11 note.
    let json = controller.cli(&[
        "rollout",
        "plan",
        "--installation",
        "prod",
        "--to",
        "26.6.100.34161",
        "--json",
    ])?;
    let plan: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(
        plan["acks_required"],
        serde_json::json!(["breaking", "changelog", "pkcs11", "server-manager-password"])
    );
    Ok(())
}

#[test]
fn bad_requests_are_refused_and_change_nothing() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    let url = controller.url();
    let _web = Agent::start(
        root.path(),
        &url,
        "web-01",
        Plays::Web { websocket: false },
        V931,
    )?;
    controller.wait_online("web-01", true, Duration::from_secs(20))?;
    controller.cli(&["releases", "import", &catalogue_path()])?;
    let before = controller.cli(&["releases", "list", "--json"])?;

    let refused = |args: &[&str], expected: &str| -> anyhow::Result<()> {
        let out = controller.cli_output(args)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: wanted {expected:?} in {stderr}"
        );
        Ok(())
    };
    let plan = |to: &'static str, installation: &'static str, waves: &'static str| {
        vec![
            "rollout",
            "plan",
            "--installation",
            installation,
            "--to",
            to,
            "--client-waves",
            waves,
        ]
    };
    refused(
        &plan("26.3.100.99999", "prod", "100%"),
        "26.3.100.99999 is not in the catalogue",
    )?;
    refused(
        &plan(V263, "nope", "100%"),
        "no installation `nope`; known: prod",
    )?;
    refused(&plan("26.3", "prod", "100%"), "--to: `26.3` has 2 part(s)")?;
    refused(&plan(V263, "prod", "0%,100%"), "wave 0% is empty")?;
    refused(
        &plan(V263, "prod", "10%,150%"),
        "wave 150% is more than 100%",
    )?;
    refused(&plan(V263, "prod", "50%,10%,100%"), "waves must grow")?;
    refused(
        &[
            "license",
            "set",
            "--installation",
            "nope",
            "--maintenance-until",
            "2026-12-31",
        ],
        "no installation `nope`",
    )?;

    // A broken catalogue is refused whole, naming the file and the line.
    let broken = root.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[[release]]\nversion = \"9.3.1.33994\"\n\n[[release]]\nversion = \"26.3.100.34058\"\nreleased = \"2026-13\"\n",
    )?;
    refused(
        &["releases", "import", broken.to_str().unwrap()],
        &format!(
            "{}: line 6: `released`: `2026-13` is not a month",
            broken.display()
        ),
    )?;
    assert_eq!(
        controller.cli(&["releases", "list", "--json"])?,
        before,
        "nothing stored"
    );
    assert!(controller.cli(&["license", "show", "--json"])?.trim() == "[]");

    // An installation without a server, and a web host without WebSocket:
    // the plan is blocked (exit status 3) and says why.
    controller.cli(&[
        "license",
        "set",
        "--installation",
        "prod",
        "--maintenance-until",
        "2026-12-31",
    ])?;
    let out =
        controller.cli_output(&["rollout", "plan", "--installation", "prod", "--to", V263])?;
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout)?;
    assert!(
        text.contains("no host of this installation reports a `server` component"),
        "{text}"
    );
    assert!(
        text.contains("does not have the Apache module proxy_wstunnel"),
        "{text}"
    );
    Ok(())
}
