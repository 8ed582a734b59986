//! Security with real processes: enrollment by token (and every way it is
//! refused), certificates of another CA, revoked hosts, operator roles,
//! renewal under a running rollout, and floods from one peer.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::path::Path;
use std::process::Output;
use std::time::Duration;
use tierwise_e2e::{
    binary, catalogue_path, wait_for, Agent, Controller, Fleet, FleetOptions, Plays, V263, V931,
};
use tierwise_proto::v1::agent_service_client::AgentServiceClient;
use tierwise_transport::client::{client_config, ControllerAddress, Identity, Trust};
use tierwise_transport::files;

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `tierwise-agent --enroll` for a host with its own state directory.
fn enroll(
    root: &Path,
    controller: &Controller,
    host: &str,
    token: &str,
    fingerprint: &str,
) -> Output {
    let dir = root.join(host);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "controller = {:?}\nenrollment_token = {token:?}\nca_fingerprint = {fingerprint:?}\n\
             installation = \"prod\"\nhost_id = {host:?}\nstate_dir = {:?}\n\n\
             [[component]]\nrole = \"client\"\nversion = {{ value = \"{V931}\" }}\n",
            controller.url(),
            dir.join("state").display().to_string()
        ),
    )
    .unwrap();
    std::process::Command::new(binary("tierwise-agent"))
        .arg("--config")
        .arg(&config)
        .arg("--enroll")
        .output()
        .unwrap()
}

fn fingerprint(controller: &Controller) -> String {
    controller
        .cli(&[
            "pki",
            "show",
            "--data-dir",
            controller.data_dir.to_str().unwrap(),
            "--fingerprint",
        ])
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn enrollment_refuses_reused_expired_forged_and_misdirected_tokens() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    let fp = fingerprint(&controller);
    let show = controller
        .cli(&[
            "pki",
            "show",
            "--data-dir",
            controller.data_dir.to_str().unwrap(),
        ])
        .unwrap();
    assert!(
        show.contains(&format!("SHA-256 fingerprint: {fp}")) && show.contains("BEGIN CERTIFICATE"),
        "{show}"
    );

    let single = controller
        .cli(&["tokens", "create", "--installation", "prod"])
        .unwrap();
    let single = single.trim();
    let first = enroll(root.path(), &controller, "cl-001", single, &fp);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("enrolled as cl-001"),
        "{}",
        text(&first)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = root.path().join("cl-001/state/identity/agent.pem");
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is the agent user's only");
    }

    // The same single-use token again.
    let reused = enroll(root.path(), &controller, "cl-002", single, &fp);
    assert!(!reused.status.success());
    assert!(
        text(&reused).contains("has been used 1 of 1 time(s)"),
        "{}",
        text(&reused)
    );

    // An expired token.
    let short = controller
        .cli(&["tokens", "create", "--expires", "1s"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let expired = enroll(root.path(), &controller, "cl-003", short.trim(), &fp);
    assert!(!expired.status.success());
    assert!(text(&expired).contains("expired at"), "{}", text(&expired));

    // A forged token: a real id with a made-up secret, and pure invention.
    let id = single.split('_').nth(1).unwrap();
    let forged = format!("twe_{id}_{}", "0".repeat(48));
    for token in [
        forged.as_str(),
        "twe_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        let refused = enroll(root.path(), &controller, "cl-004", token, &fp);
        assert!(!refused.status.success());
        assert!(
            text(&refused).contains("the enrollment token is not valid"),
            "{}",
            text(&refused)
        );
    }

    // A token for another installation.
    let other = controller
        .cli(&["tokens", "create", "--installation", "test"])
        .unwrap();
    let misdirected = enroll(root.path(), &controller, "cl-005", other.trim(), &fp);
    assert!(
        text(&misdirected).contains("is for installation `test`, not `prod`"),
        "{}",
        text(&misdirected)
    );

    // The right token, but a pinned fingerprint of another CA: the agent
    // refuses the controller before sending its token.
    let good = controller.cli(&["tokens", "create"]).unwrap();
    let wrong_pin = "AB".repeat(32);
    let unpinned = enroll(root.path(), &controller, "cl-006", good.trim(), &wrong_pin);
    assert!(!unpinned.status.success());
    assert!(
        text(&unpinned).contains("no CA with the pinned fingerprint"),
        "{}",
        text(&unpinned)
    );
    let list = controller.cli(&["tokens", "list", "--json"]).unwrap();
    let tokens: serde_json::Value = serde_json::from_str(&list).unwrap();
    let good_id = good.trim().split('_').nth(1).unwrap();
    let entry = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == good_id)
        .unwrap();
    assert_eq!(entry["uses"], 0, "a refused controller never saw the token");

    // Nothing refused was stored: one host enrolled, one enrollment audited.
    let audit = controller.cli(&["audit", "--json"]).unwrap();
    assert_eq!(audit.matches("\"host enroll\"").count(), 1, "{audit}");
    let log = controller.process.log_text();
    assert!(
        log.matches("session refused").count() >= 4,
        "every refusal is logged: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_ca_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    // A CA of the attacker's own, and a client certificate from it that
    // names a real host.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "srv-01");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let chain = vec![cert.der().clone(), ca_cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let trust = Trust::Ca(files::read_certificates(&controller.ca_path()).unwrap());
    let config = client_config(&trust, Some(Identity { chain, key })).unwrap();
    let address: ControllerAddress = controller.url().parse().unwrap();
    let attempt = async {
        let channel = address.connect(config, |e| e).await?;
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        AgentServiceClient::new(channel)
            .session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from)
    };
    let result = tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .unwrap();
    assert!(result.is_err(), "a foreign certificate got a session");
    tokio::task::block_in_place(|| {
        wait_for("the refusal in the log", Duration::from_secs(5), || {
            let log = controller.process.log_text();
            Ok(log.contains("TLS handshake refused").then_some(()))
        })
    })
    .unwrap();
    assert!(tokio::task::block_in_place(|| controller.hosts())
        .unwrap()
        .is_empty());
}

#[test]
fn a_revoked_host_is_refused_until_it_enrolls_with_a_newer_token() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    let mut agent = Agent::start(
        root.path(),
        &controller.url(),
        "cl-001",
        Plays::Client,
        V931,
    )
    .unwrap();
    controller
        .wait_online("cl-001", true, Duration::from_secs(20))
        .unwrap();

    let out = controller.cli(&["hosts", "revoke", "cl-001"]).unwrap();
    assert!(
        out.contains("1 certificate(s) revoked; its session was closed"),
        "{out}"
    );
    controller
        .wait_online("cl-001", false, Duration::from_secs(10))
        .unwrap();
    // It keeps trying with its certificate and keeps being refused, also
    // after a restart; the standing token cannot bring it back.
    agent.restart().unwrap();
    wait_for(
        "the refusal in the agent's log",
        Duration::from_secs(20),
        || {
            Ok(agent
                .process
                .log_text()
                .contains("was revoked at")
                .then_some(()))
        },
    )
    .unwrap();
    assert_eq!(controller.host("cl-001").unwrap().unwrap()["online"], false);
    let identity = agent.dir.join("state/identity");
    std::fs::remove_dir_all(&identity).unwrap();
    agent.restart().unwrap();
    wait_for("the re-enrollment refusal", Duration::from_secs(20), || {
        Ok(agent
            .process
            .log_text()
            .contains("was revoked after enrollment token")
            .then_some(()))
    })
    .unwrap();
    assert_eq!(controller.host("cl-001").unwrap().unwrap()["online"], false);

    // A newer token lets it back in.
    let fp = fingerprint(&controller);
    let token = controller.cli(&["tokens", "create"]).unwrap();
    agent.process.kill();
    let config = std::fs::read_to_string(&agent.config).unwrap();
    let start = config.find("enrollment_token = ").unwrap();
    let end = start + config[start..].find('\n').unwrap();
    let config = format!(
        "{}enrollment_token = {:?}{}",
        &config[..start],
        token.trim(),
        &config[end..]
    );
    assert!(config.contains(&fp));
    std::fs::write(&agent.config, config).unwrap();
    agent.restart().unwrap();
    controller
        .wait_online("cl-001", true, Duration::from_secs(20))
        .unwrap();
    let audit = controller.cli(&["audit"]).unwrap();
    assert!(
        audit.contains("host revoke") && audit.contains("admin"),
        "{audit}"
    );
}

#[test]
fn roles_limit_what_operators_can_do() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    let viewer = controller
        .cli(&["operators", "add", "vera", "--role", "viewer"])
        .unwrap();
    let operator = controller
        .cli(&["operators", "add", "otto", "--role", "operator"])
        .unwrap();
    let (viewer, operator) = (viewer.trim(), operator.trim());
    let as_ = |token: &str, args: &[&str]| controller.cli_output_as(token, args).unwrap();

    let who = as_(viewer, &["whoami"]);
    assert_eq!(String::from_utf8_lossy(&who.stdout), "vera (viewer)\n");
    assert!(as_(viewer, &["hosts", "list"]).status.success());
    assert!(as_(viewer, &["rollout", "list"]).status.success());
    for args in [
        &["rollout", "start", "--installation", "prod", "--to", V263][..],
        &["rollout", "pause", "r-1"][..],
        &["rollout", "abort", "r-1"][..],
        &["hosts", "refresh"][..],
    ] {
        let refused = as_(viewer, args);
        assert!(!refused.status.success(), "{args:?}");
        let said = text(&refused);
        assert!(
            said.contains("needs the operator role; operator `vera` has the role viewer"),
            "{args:?}: {said}"
        );
    }
    for args in [
        &["tokens", "create"][..],
        &["operators", "add", "eve", "--role", "admin"][..],
        &["releases", "import", &catalogue_path()][..],
        &["hosts", "revoke", "srv-01"][..],
    ] {
        let refused = as_(operator, args);
        assert!(!refused.status.success(), "{args:?}");
        let said = text(&refused);
        assert!(
            said.contains("needs the admin role; operator `otto` has the role operator"),
            "{args:?}: {said}"
        );
    }
    // The operator may run rollouts: refused here for a reason of the
    // rollout, not of the role.
    let start = as_(operator, &["rollout", "pause", "r-1"]);
    assert!(
        text(&start).contains("no rollout `r-1`"),
        "{}",
        text(&start)
    );

    // No token, a made-up token, a removed operator.
    let none = std::process::Command::new(binary("tierwise"))
        .args([
            "--controller",
            &controller.url(),
            "--ca-cert",
            controller.ca_path().to_str().unwrap(),
        ])
        .args(["--token-file", "/nonexistent/token", "hosts", "list"])
        .env_remove("TIERWISE_TOKEN")
        .output()
        .unwrap();
    assert!(
        text(&none).contains("cannot read /nonexistent/token"),
        "{}",
        text(&none)
    );
    let bogus = as_("two_0000", &["hosts", "list"]);
    assert!(
        text(&bogus).contains("the operator token is not valid"),
        "{}",
        text(&bogus)
    );
    controller.cli(&["operators", "remove", "vera"]).unwrap();
    let removed = as_(viewer, &["hosts", "list"]);
    assert!(
        text(&removed).contains("the operator token is not valid"),
        "{}",
        text(&removed)
    );
    let last = controller
        .cli_output(&["operators", "remove", "admin"])
        .unwrap();
    assert!(text(&last).contains("is the last admin"), "{}", text(&last));

    // The refusals of known operators and every change are audited by name.
    let audit = controller.cli(&["audit", "--json"]).unwrap();
    let entries: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let entries = entries.as_array().unwrap();
    let by = |actor: &str, action: &str| {
        entries
            .iter()
            .filter(|e| e["actor"] == actor && e["action"] == action)
            .count()
    };
    // pause and abort are one method (ChangeRollout): refused calls of one
    // method within the audit window are one entry.
    assert_eq!(by("vera", "denied"), 3, "{audit}");
    assert_eq!(by("otto", "denied"), 4, "{audit}");
    assert_eq!(by("admin", "operator add"), 2, "{audit}");
    assert_eq!(by("admin", "operator remove"), 1, "{audit}");
}

#[test]
fn certificates_renew_under_a_running_rollout_without_dropping_it() {
    let fleet = Fleet::start(&FleetOptions {
        clients: 3,
        server_delay: "5",
        client_delay: "3",
        controller_flags: vec!["--agent-cert-lifetime", "10s"],
    })
    .unwrap();
    let (controller, server, clients) = (&fleet.controller, &fleet.server, &fleet.clients);
    controller.rollout_start(&["--ack", "pkcs11"]).unwrap();
    let (done, took) = wait_for("the rollout to end", Duration::from_secs(120), || {
        let status = controller.rollout_status()?;
        Ok((status["state"] != "running").then_some(status))
    })
    .unwrap();
    assert_eq!(done["state"], "completed", "{done:#}");
    assert_eq!(
        done["failures"].as_array().map(Vec::len),
        Some(0),
        "{done:#}"
    );
    assert!(
        took > Duration::from_secs(10),
        "the rollout outlived a certificate ({took:?})"
    );
    // Every agent renewed at least once while it ran, and reconnected.
    for agent in std::iter::once(server).chain(clients) {
        let log = agent.process.log_text();
        assert!(
            log.contains("certificate renewed"),
            "{}: {log}",
            agent.host_id
        );
        assert!(
            log.contains("reconnecting with the renewed certificate"),
            "{}: {log}",
            agent.host_id
        );
    }
    // Each step ran exactly once, renewal or not.
    for client in clients {
        assert_eq!(
            client
                .runs()
                .iter()
                .filter(|r| r.contains("install"))
                .count(),
            1
        );
    }
    assert!(controller
        .process
        .log_text()
        .contains("agent certificate renewed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_peer_does_not_stop_other_agents() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    let url = controller.url();
    let _good = Agent::start(root.path(), &url, "cl-good", Plays::Client, V931).unwrap();
    tokio::task::block_in_place(|| {
        controller.wait_online("cl-good", true, Duration::from_secs(20))
    })
    .unwrap();

    // Another machine (127.0.0.2) opens 300 connections and never speaks TLS…
    let mut idle = Vec::new();
    for _ in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        if let Ok(stream) = socket.connect(controller.addr).await {
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 64, "only {} connections opened", idle.len());
    // …and, enrolled, opens 500 session streams on one connection that
    // never say hello.
    let flood = controller.agent_channel("cl-flood").await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..500 {
        let mut client = AgentServiceClient::new(flood.clone());
        streams.push(tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<tierwise_proto::v1::AgentMessage>(1);
            let result = client
                .session(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
            (tx, result.is_ok())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Meanwhile a new agent enrolls and comes online, and the good one keeps
    // heartbeating.
    let _late = Agent::start(root.path(), &url, "cl-late", Plays::Client, V931).unwrap();
    let took = tokio::task::block_in_place(|| {
        controller.wait_online("cl-late", true, Duration::from_secs(15))
    })
    .unwrap();
    let seen = |c: &Controller| c.host("cl-good").map(|h| h.unwrap()["last_seen"].clone());
    let before = tokio::task::block_in_place(|| seen(&controller)).unwrap();
    tokio::task::block_in_place(|| {
        wait_for(
            "a new heartbeat of the good agent",
            Duration::from_secs(10),
            || Ok((seen(&controller)? != before).then_some(())),
        )
    })
    .unwrap();
    eprintln!("under the flood a new agent came online in {took:?}");
    drop(idle);
    for stream in streams {
        stream.abort();
    }
}

#[test]
fn an_agent_whose_certificate_expired_while_the_controller_was_down_enrolls_again() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("controller");
    let lifetime = ["--agent-cert-lifetime", "10s"];
    let mut controller = Controller::start_with(&data_dir, "127.0.0.1:0", &lifetime).unwrap();
    let agent = Agent::start(
        root.path(),
        &controller.url(),
        "cl-001",
        Plays::Client,
        V931,
    )
    .unwrap();
    controller
        .wait_online("cl-001", true, Duration::from_secs(20))
        .unwrap();

    // Down for longer than a whole certificate lifetime.
    let addr = controller.addr.to_string();
    controller.process.kill();
    std::thread::sleep(Duration::from_secs(12));
    controller = Controller::start_with(&data_dir, &addr, &lifetime).unwrap();
    controller
        .wait_online("cl-001", true, Duration::from_secs(30))
        .unwrap();
    let audit = controller.cli(&["audit", "--json"]).unwrap();
    let entries: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let enrollments = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "host enroll" && e["subject"] == "cl-001")
        .count();
    assert_eq!(enrollments, 2, "enrolled again with its token: {audit}");
    assert!(agent
        .process
        .log_text()
        .contains("enrolled: the agent has its certificate"));
}

#[cfg(unix)]
#[test]
fn the_data_directory_and_the_database_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("controller");
    // Made by someone else with the usual umask: open to every local user.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let controller = Controller::start(&data, "127.0.0.1:0").unwrap();
    controller.cli(&["hosts", "list"]).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for file in [
        "tierwise.db",
        "tierwise.db-wal",
        "tierwise.db-shm",
        "admin.token",
    ] {
        let path = data.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    assert!(data.join("tierwise.db").exists());
    assert!(controller
        .process
        .log_text()
        .contains("the data directory was open to other users; it is owner-only now"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_floods_are_limited_and_refused_calls_are_audited_coalesced() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start_with(
        &root.path().join("controller"),
        "127.0.0.1:0",
        &[
            "--enroll-rate-per-address",
            "1/s",
            "--audit-refusal-window",
            "2s",
        ],
    )
    .unwrap();

    // Well-formed attempts with a made-up token from one address: five
    // seconds' worth are checked (and refused for the token), then the
    // address is told to slow down.
    let ca = controller.ca_certificate().unwrap();
    let address: ControllerAddress = controller.url().parse().unwrap();
    let channel = address
        .connect(client_config(&Trust::Ca(vec![ca]), None).unwrap(), |e| e)
        .await
        .unwrap();
    let (_key, csr) = tierwise_transport::key_and_request("cl-flood").unwrap();
    let mut codes = Vec::new();
    for _ in 0..8 {
        let status = AgentServiceClient::new(channel.clone())
            .enroll(tierwise_proto::v1::EnrollRequest {
                token: format!("twe_{}_{}", "0".repeat(16), "0".repeat(48)),
                host_id: "cl-flood".into(),
                installation: "prod".into(),
                csr_der: csr.clone(),
            })
            .await
            .unwrap_err();
        if status.code() == tonic::Code::ResourceExhausted {
            assert!(
                status
                    .message()
                    .contains("too many enrollment attempts from 127.0.0.1; try again in"),
                "{status:?}"
            );
        }
        codes.push(status.code());
    }
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == tonic::Code::Unauthenticated)
            .count(),
        5,
        "{codes:?}"
    );
    assert_eq!(codes[5..], [tonic::Code::ResourceExhausted; 3], "{codes:?}");

    // Thirty refused calls of a viewer: one audit entry at once, one count
    // when the window ends.
    let viewer = tokio::task::block_in_place(|| {
        controller.cli(&["operators", "add", "vera", "--role", "viewer"])
    })
    .unwrap();
    let denied = || -> Vec<serde_json::Value> {
        let audit = controller.cli(&["audit", "--json"]).unwrap();
        let entries: serde_json::Value = serde_json::from_str(&audit).unwrap();
        entries
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"] == "vera" && e["action"] == "denied")
            .cloned()
            .collect()
    };
    tokio::task::block_in_place(|| {
        for _ in 0..30 {
            let refused = controller
                .cli_output_as(viewer.trim(), &["hosts", "refresh"])
                .unwrap();
            assert!(!refused.status.success());
        }
        assert_eq!(denied().len(), 1);
        let counted = wait_for("the count of the others", Duration::from_secs(20), || {
            let denied = denied();
            Ok((denied.len() == 2).then_some(denied))
        })
        .unwrap()
        .0;
        assert!(
            counted.iter().any(|e| e["details"]
                .as_str()
                .unwrap_or_default()
                .starts_with("29 more refused call(s) within 2 s")),
            "{counted:?}"
        );
    });
}

#[test]
fn operator_tokens_expire_rotate_and_show_their_last_use() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("controller");
    let mut controller = Controller::start(&data, "127.0.0.1:0").unwrap();
    let short = controller
        .cli(&[
            "operators",
            "add",
            "sam",
            "--role",
            "viewer",
            "--expires",
            "3s",
        ])
        .unwrap();
    let vera = controller
        .cli(&["operators", "add", "vera", "--role", "viewer"])
        .unwrap();
    let (short, vera) = (short.trim().to_owned(), vera.trim().to_owned());
    let as_ = |token: &str, args: &[&str]| controller.cli_output_as(token, args).unwrap();
    assert!(as_(&short, &["hosts", "list"]).status.success());

    // A viewer rotates their own token, not anyone else's.
    let other = as_(&vera, &["operators", "rotate", "sam"]);
    assert!(
        text(&other).contains("operator `vera` may rotate only their own token"),
        "{}",
        text(&other)
    );
    let forever = as_(
        &vera,
        &["operators", "rotate", "vera", "--expires", "never"],
    );
    assert!(
        text(&forever).contains("only an admin issues tokens that never expire"),
        "{}",
        text(&forever)
    );
    let rotated = as_(&vera, &["operators", "rotate", "vera", "--expires", "30d"]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    let new_vera = String::from_utf8_lossy(&rotated.stdout).trim().to_owned();
    assert!(text(&as_(&vera, &["hosts", "list"])).contains("the operator token is not valid"));
    assert!(as_(&new_vera, &["whoami"]).status.success());

    // The list shows expiry and last use.
    let list: serde_json::Value =
        serde_json::from_str(&controller.cli(&["operators", "list", "--json"]).unwrap()).unwrap();
    let sam = list
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "sam")
        .unwrap()
        .clone();
    assert!(sam["expires_ms"].as_i64().is_some(), "{sam}");
    wait_for("sam's last call recorded", Duration::from_secs(10), || {
        let list: serde_json::Value =
            serde_json::from_str(&controller.cli(&["operators", "list", "--json"])?)?;
        Ok(list
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "sam" && o["last_used_ms"].as_i64().is_some())
            .then_some(()))
    })
    .unwrap();
    assert!(controller
        .cli(&["operators", "list"])
        .unwrap()
        .contains("LAST USED"));

    // Expired: refused, saying how to get a new one.
    std::thread::sleep(Duration::from_secs(3));
    let expired = as_(&short, &["hosts", "list"]);
    assert!(
        text(&expired).contains("the token of operator `sam` expired at")
            && text(&expired).contains("tierwise operators rotate sam"),
        "{}",
        text(&expired)
    );

    // Every admin token expired: the next start writes a new one for the
    // admin into the data directory.
    let admin_rotated = controller
        .cli_output(&["operators", "rotate", "admin", "--expires", "1s"])
        .unwrap();
    assert!(admin_rotated.status.success());
    std::thread::sleep(Duration::from_millis(1500));
    let stale = controller.cli_output(&["hosts", "list"]).unwrap();
    assert!(!stale.status.success());
    controller.process.kill();
    controller = Controller::start(&data, "127.0.0.1:0").unwrap();
    assert!(controller.cli(&["hosts", "list"]).is_ok());
    assert!(controller
        .process
        .log_text()
        .contains("every admin token had expired"));
    let audit = controller.cli(&["audit"]).unwrap();
    assert!(audit.contains("operator rotate"), "{audit}");
}

#[test]
fn rotating_ones_own_token_keeps_its_expiry_and_expiries_are_bounded() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    let expires = |name: &str| -> Option<i64> {
        let list: serde_json::Value =
            serde_json::from_str(&controller.cli(&["operators", "list", "--json"]).unwrap())
                .unwrap();
        let operator = list.as_array().unwrap().iter().find(|o| o["name"] == name);
        operator.unwrap()["expires_ms"].as_i64()
    };
    let hour = 3_600_000;

    // A viewer with a 1-hour token rotates it, by default and asking for
    // 90 days: the new token still expires within the hour.
    let mut vera = controller
        .cli(&[
            "operators",
            "add",
            "vera",
            "--role",
            "viewer",
            "--expires",
            "1h",
        ])
        .unwrap()
        .trim()
        .to_owned();
    let issued = expires("vera").unwrap();
    for args in [
        &["operators", "rotate", "vera"][..],
        &["operators", "rotate", "vera", "--expires", "90d"],
    ] {
        let rotated = controller.cli_output_as(&vera, args).unwrap();
        assert!(rotated.status.success(), "{}", text(&rotated));
        vera = String::from_utf8_lossy(&rotated.stdout).trim().to_owned();
        assert!(
            expires("vera").unwrap() <= issued,
            "{args:?} moved the expiry later"
        );
    }
    assert!(controller
        .cli_output_as(&vera, &["whoami"])
        .unwrap()
        .status
        .success());

    // An admin rotating someone else's token sets a new expiry.
    controller
        .cli(&["operators", "rotate", "vera", "--expires", "30d"])
        .unwrap();
    assert!(expires("vera").unwrap() > issued + 29 * 24 * hour);

    // More than ten years ahead is refused unless `never`; nothing changes.
    for args in [
        &[
            "operators",
            "add",
            "tom",
            "--role",
            "viewer",
            "--expires",
            "4000d",
        ][..],
        &["operators", "rotate", "vera", "--expires", "4000d"],
    ] {
        let refused = controller.cli_output(args).unwrap();
        assert!(!refused.status.success(), "{args:?}");
        assert!(
            text(&refused).contains("a token may work at most 3653 days")
                && text(&refused).contains("--expires never"),
            "{}",
            text(&refused)
        );
    }
    assert!(!controller
        .cli(&["operators", "list"])
        .unwrap()
        .contains("tom"));
    assert!(expires("vera").unwrap() < issued + 31 * 24 * hour);
    controller
        .cli(&[
            "operators",
            "add",
            "tom",
            "--role",
            "viewer",
            "--expires",
            "never",
        ])
        .unwrap();
    assert_eq!(expires("tom"), None);
}
