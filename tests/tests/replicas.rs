//! Controllers sharing a store: an SQLite store serves one controller;
//! on PostgreSQL, replicas share the work — one leads the engine, any holds
//! any agent's stream, and steps reach agents through whichever holds it.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::process::Command;
use std::time::Duration;
use tierwise_e2e::{binary, Agent, Controller, Database, Plays, V263, V931};

#[test]
fn a_second_controller_on_the_same_sqlite_file_is_refused() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("controller");
    let first = Controller::start(&data, "127.0.0.1:0")?;
    let second = Command::new(binary("tierwise"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()?;
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another controller already uses the SQLite database")
            && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
    // The first one is unaffected, and the lock goes with it.
    assert!(first.cli(&["whoami"])?.starts_with("admin"));
    drop(first);
    let again = Controller::start(&data, "127.0.0.1:0")?;
    assert!(again.cli(&["whoami"])?.starts_with("admin"));
    Ok(())
}

/// Replicas started at the same moment on a new database all find no
/// operator; exactly one creates `admin` and writes its token, and that
/// token is the one every replica accepts (before, a replica whose insert
/// lost could still write its own token into the file).
#[test]
fn replicas_started_together_on_a_new_database_agree_on_the_first_admin() -> anyhow::Result<()> {
    let Some(db) = Database::create()? else {
        return Ok(());
    };
    let root = tempfile::tempdir()?;
    // One data directory with its CA and audit key, as replicas share it
    // (made by a first start on SQLite; its token is not the database's).
    let data = root.path().join("controller");
    drop(Controller::start(&data, "127.0.0.1:0")?);
    std::fs::remove_file(data.join("admin.token"))?;
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let data = data.clone();
            let url = db.url.clone();
            std::thread::spawn(move || {
                Controller::start_with(&data, "127.0.0.1:0", &["--database-url", url.as_str()])
            })
        })
        .collect();
    let replicas = starts
        .into_iter()
        .map(|start| start.join().expect("the start thread panicked"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    tierwise_e2e::wait_for("the first admin's token", Duration::from_secs(20), || {
        Ok(data.join("admin.token").exists().then_some(()))
    })?;
    for replica in &replicas {
        assert!(
            replica.cli(&["whoami"])?.starts_with("admin"),
            "{}",
            replica.url()
        );
    }
    let created = replicas
        .iter()
        .filter(|r| r.process.log_text().contains("created the first operator"))
        .count();
    assert_eq!(created, 1, "exactly one replica creates the first admin");
    let leftovers: Vec<_> = std::fs::read_dir(&data)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".new"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    Ok(())
}

/// Two controllers on one PostgreSQL database and one data directory (the
/// same CA), the first started first (it takes the engine's leadership).
fn replicas(root: &std::path::Path, db: &Database) -> anyhow::Result<(Controller, Controller)> {
    Controller::replicas(
        &root.join("controller"),
        &["--database-url", db.url.as_str()],
    )
}

/// A server, a web host and clients of `prod`, each agent connected to the
/// URL given for it, all online (as `watch` shows them).
struct SplitFleet {
    server: Agent,
    _web: Agent,
    clients: Vec<Agent>,
}

impl SplitFleet {
    fn start(
        root: &std::path::Path,
        watch: &Controller,
        server_url: &str,
        web_url: &str,
        client_urls: &[String],
        client_delay: &str,
    ) -> anyhow::Result<Self> {
        let order = root.join("order.log");
        let mut server = Agent::start(
            root,
            server_url,
            "srv-01",
            Plays::Server(vec![("PSDB", true, V931)]),
            V931,
        )?;
        server.with_installers(&order, "0.2")?;
        let web = Agent::start(
            root,
            web_url,
            "web-01",
            Plays::Web { websocket: true },
            V931,
        )?;
        web.with_web_package(V263)?;
        let mut clients = Vec::new();
        for (i, url) in client_urls.iter().enumerate() {
            let mut client = Agent::start(root, url, &format!("cl-{i:03}"), Plays::Client, V931)?;
            client.with_installers(&order, client_delay)?;
            clients.push(client);
        }
        let expected = client_urls.len() + 2;
        tierwise_e2e::wait_for("every agent online", Duration::from_secs(30), || {
            let hosts = watch.hosts()?;
            Ok(
                (hosts.len() == expected && hosts.iter().all(|h| h["online"] == true))
                    .then_some(()),
            )
        })?;
        Ok(Self {
            server,
            _web: web,
            clients,
        })
    }

    /// Every installer ran exactly once.
    fn assert_installed_once(&self) {
        assert_eq!(self.server.installs(), 1, "{:?}", self.server.runs());
        for client in &self.clients {
            assert_eq!(
                client.installs(),
                1,
                "{}: {:?}",
                client.host_id,
                client.runs()
            );
        }
    }
}

/// Imports the catalogue, licenses `prod` and starts a rollout with these
/// client waves, all through `controller`.
fn start_rollout(controller: &Controller, waves: &str) -> anyhow::Result<()> {
    controller.cli(&["releases", "import", &tierwise_e2e::catalogue_path()])?;
    controller.license("prod")?;
    controller.rollout_start(&["--client-waves", waves])
}

/// Waits until a client's step runs (a kill then lands mid-rollout).
fn wait_client_steps_running(controller: &Controller) -> anyhow::Result<()> {
    tierwise_e2e::wait_for("client steps running", Duration::from_secs(60), || {
        let status = controller.rollout_status()?;
        Ok(status["running"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["host_id"].as_str().is_some_and(|h| h.starts_with("cl-")))
            .then_some(()))
    })?;
    Ok(())
}

fn wait_completed(controller: &Controller, limit: u64) -> anyhow::Result<serde_json::Value> {
    let (status, _) = tierwise_e2e::wait_for(
        "the rollout to complete",
        Duration::from_secs(limit),
        || {
            let status = controller.rollout_status()?;
            anyhow::ensure!(status["state"] != "failed", "the rollout failed: {status}");
            Ok((status["state"] == "completed").then_some(status))
        },
    )?;
    Ok(status)
}

#[test]
fn agents_split_over_two_replicas_finish_a_rollout_each_installer_once() -> anyhow::Result<()> {
    let Some(db) = Database::create()? else {
        return Ok(());
    };
    let root = tempfile::tempdir()?;
    let (a, b) = replicas(root.path(), &db)?;
    let fleet = SplitFleet::start(
        root.path(),
        &a,
        &a.url(),
        &b.url(),
        &[a.url(), b.url(), b.url(), a.url()],
        "0.2",
    )?;
    // Operators may use either replica.
    b.cli(&["releases", "import", &tierwise_e2e::catalogue_path()])?;
    a.license("prod")?;
    b.rollout_start(&["--client-waves", "50%,100%"])?;
    let done = wait_completed(&a, 90)?;
    assert!(done["failures"].as_array().unwrap().is_empty(), "{done}");
    fleet.assert_installed_once();
    Ok(())
}

#[test]
fn the_leader_killed_mid_rollout_another_replica_finishes_it() -> anyhow::Result<()> {
    let Some(db) = Database::create()? else {
        return Ok(());
    };
    let root = tempfile::tempdir()?;
    let (mut leader, other) = replicas(root.path(), &db)?;
    // Every agent on the replica that stays; slow clients, so the kill
    // lands while steps run.
    let fleet = SplitFleet::start(
        root.path(),
        &other,
        &other.url(),
        &other.url(),
        &vec![other.url(); 4],
        "1.5",
    )?;
    start_rollout(&other, "100%")?;
    wait_client_steps_running(&other)?;
    leader.process.kill();
    let killed = std::time::Instant::now();
    tierwise_e2e::wait_for("the other replica to lead", Duration::from_secs(30), || {
        Ok(other
            .process
            .log_text()
            .contains("this controller runs the rollout engine")
            .then_some(()))
    })?;
    eprintln!(
        "leader killed → another replica leads after {:.1} s",
        killed.elapsed().as_secs_f64()
    );
    let done = wait_completed(&other, 90)?;
    assert!(done["failures"].as_array().unwrap().is_empty(), "{done}");
    fleet.assert_installed_once();
    Ok(())
}

/// HAProxy in TCP mode in front of the replicas, as `deploy/compose/`
/// runs it; `None` (the test is skipped) where HAProxy is not installed,
/// unless `TIERWISE_REQUIRE_HAPROXY` says it must run.
struct Balancer {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Balancer {
    fn start(root: &std::path::Path, backends: &[&Controller]) -> anyhow::Result<Option<Self>> {
        if !haproxy_installed() {
            return Ok(None);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "    server replica{i} {} check inter 500ms fall 1 rise 2\n",
                    c.addr
                )
            })
            .collect();
        let config = root.join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n    maxconn 4096\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n\
                 frontend agents\n    bind 127.0.0.1:{port}\n    default_backend controllers\n\
                 backend controllers\n    balance roundrobin\n{servers}"
            ),
        )?;
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&config)
            .arg("-db")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(root.join("haproxy.log"))?)
            .spawn()?;
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        tierwise_e2e::wait_for("haproxy to listen", Duration::from_secs(10), || {
            Ok(std::net::TcpStream::connect(addr).ok().map(|_| ()))
        })?;
        Ok(Some(Self { child, addr }))
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_killed_replica_s_agents_come_back_through_another_and_get_their_steps() -> anyhow::Result<()> {
    let Some(db) = Database::create()? else {
        return Ok(());
    };
    let root = tempfile::tempdir()?;
    let (a, mut b) = replicas(root.path(), &db)?;
    let Some(balancer) = Balancer::start(root.path(), &[&a, &b])? else {
        return Ok(());
    };
    a.also_reached_at(&balancer.url());
    let via = balancer.url();
    let fleet = SplitFleet::start(root.path(), &a, &via, &via, &vec![via.clone(); 6], "2")?;
    // The balancer spread them: each replica holds some streams.
    let b_streams = || -> usize { b.process.log_text().matches("agent connected").count() };
    assert!(
        b_streams() > 0,
        "round robin gave the second replica no agent"
    );
    start_rollout(&a, "100%")?;
    wait_client_steps_running(&a)?;
    // The second replica dies with client steps sent through it.
    b.process.kill();
    let done = wait_completed(&a, 120)?;
    assert!(done["failures"].as_array().unwrap().is_empty(), "{done}");
    fleet.assert_installed_once();
    Ok(())
}

/// `--max-session-age`: the controller closes a session after about that
/// long and the agent comes straight back (behind a load balancer, to
/// whichever replica it picks), online again, its steps level-triggered.
#[test]
fn sessions_close_at_their_age_limit_and_the_agent_comes_back() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let controller = Controller::start_with(
        &root.path().join("controller"),
        "127.0.0.1:0",
        &["--max-session-age", "10s"],
    )?;
    let agent = Agent::start(root.path(), &controller.url(), "cl-1", Plays::Client, V931)?;
    controller.wait_online("cl-1", true, Duration::from_secs(20))?;
    tierwise_e2e::wait_for(
        "the session to reach its age limit and the agent to return",
        Duration::from_secs(30),
        || {
            let log = controller.process.log_text();
            let closed = log.contains("the session reached its age limit");
            let connected = log.matches("agent connected").count();
            Ok((closed && connected >= 2).then_some(()))
        },
    )?;
    controller.wait_online("cl-1", true, Duration::from_secs(10))?;
    assert!(
        agent.process.log_text().contains("--max-session-age"),
        "the agent is told why: {}",
        agent.process.log_text()
    );
    // A lifetime below 10 s is refused with what to give.
    let refused = Command::new(binary("tierwise"))
        .args([
            "serve",
            "--max-session-age",
            "5s",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()?;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("at least 10 s"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    Ok(())
}

/// `pki init` makes the CA replicas share, once; a controller started on
/// that directory uses it.
#[test]
fn pki_init_makes_the_ca_once_and_serve_uses_it() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("shared");
    let init = || -> anyhow::Result<String> {
        let out = Command::new(binary("tierwise"))
            .args(["pki", "init", "--data-dir"])
            .arg(&data)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    let first = init()?;
    assert!(first.contains("BEGIN CERTIFICATE"), "{first}");
    assert_eq!(init()?, first, "the second run keeps the CA");
    let controller = Controller::start(&data, "127.0.0.1:0")?;
    let shown = controller.cli(&[
        "pki",
        "show",
        "--fingerprint",
        "--data-dir",
        data.to_str().unwrap(),
    ])?;
    assert!(first.contains(shown.trim()), "{first}\n{shown}");
    assert_eq!(
        tierwise_transport::Fingerprint::of(&controller.ca_certificate()?).to_string(),
        shown.trim(),
        "the controller serves with that CA"
    );
    Ok(())
}

/// The balancer configuration `deploy/compose/` ships is one HAProxy
/// accepts (its replicas' names resolve only inside Compose).
#[test]
fn the_compose_haproxy_configuration_is_valid() -> anyhow::Result<()> {
    if !haproxy_installed() {
        return Ok(());
    }
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/compose/haproxy.cfg");
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&config)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("Configuration file is valid"),
        "{text}"
    );
    assert!(
        std::fs::read_to_string(&config)?.contains("mode tcp"),
        "TLS passes through"
    );
    Ok(())
}

/// Whether HAProxy is here; without it the test is skipped, unless
/// `TIERWISE_REQUIRE_HAPROXY` says it must run.
fn haproxy_installed() -> bool {
    if Command::new("haproxy").arg("-v").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("TIERWISE_REQUIRE_HAPROXY").is_err(),
        "TIERWISE_REQUIRE_HAPROXY is set but haproxy is not installed (scripts/install-test-tools)"
    );
    eprintln!("skipping: haproxy is not installed (scripts/install-test-tools)");
    false
}

fn free_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// The dashboard behind a load balancer without stickiness: a browser
/// logged in through one replica is served by the other, the session
/// outlives a restart of the replica that opened it, and logging out
/// through either ends it on both.
#[test]
fn a_dashboard_session_is_served_by_every_replica_and_outlives_a_restart() -> anyhow::Result<()> {
    let Some((chromium, driver)) = tierwise_e2e::webdriver::tools_or_skip() else {
        return Ok(());
    };
    let Some(db) = Database::create()? else {
        return Ok(());
    };
    let root = tempfile::tempdir()?;
    let data = root.path().join("controller");
    let (ui_a, ui_b) = (free_address()?, free_address()?);
    let flags = |ui: &str| -> Vec<String> {
        ["--database-url", db.url.as_str(), "--ui-listen", ui]
            .map(str::to_owned)
            .to_vec()
    };
    let start = |ui: &str| {
        let flags = flags(ui);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Controller::start_with(&data, "127.0.0.1:0", &flags)
    };
    let mut first = start(&ui_a)?;
    let _second = start(&ui_b)?;
    let browser = tierwise_e2e::webdriver::Browser::start(&chromium, &driver)?;
    let (a, b) = (format!("https://{ui_a}"), format!("https://{ui_b}"));

    browser.goto(&format!("{a}/login"))?;
    browser.type_into("#token", first.admin_token()?.trim())?;
    browser.click("#login")?;
    browser.text_when("#operator", |t| t == "admin (admin)")?;

    // The other replica knows the session.
    browser.goto(&format!("{b}/hosts"))?;
    assert_eq!(browser.url()?, format!("{b}/hosts"));
    assert_eq!(browser.text("#operator")?, "admin (admin)");

    // The replica that opened it is killed and started again: still in.
    first.process.kill();
    let _first = start(&ui_a)?;
    browser.goto(&format!("{a}/rollouts"))?;
    assert_eq!(browser.url()?, format!("{a}/rollouts"));
    assert_eq!(browser.text("#operator")?, "admin (admin)");

    // Out through the second replica: out on the first as well, even with
    // the old cookie put back.
    browser.goto(&format!("{b}/"))?;
    assert_eq!(
        browser.run("return document.cookie")?,
        "",
        "the session cookie is HttpOnly"
    );
    let cookie = browser.cookie("__Host-tierwise_session")?;
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    browser.click("form.who button")?;
    tierwise_e2e::wait_for("the login page", Duration::from_secs(20), || {
        Ok(browser.url()?.ends_with("/login").then_some(()))
    })?;
    browser.goto(&format!("{a}/hosts"))?;
    assert!(browser.url()?.ends_with("/login"), "{}", browser.url()?);
    browser.add_cookie(cookie)?;
    browser.goto(&format!("{a}/hosts"))?;
    assert_eq!(
        browser.text("#login-error")?,
        "Your session ended; log in again."
    );
    Ok(())
}
