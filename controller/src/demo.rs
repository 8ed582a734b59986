//! `tierwise demo`: a controller and a small Password Secure installation of
//! real `tierwise-agent` processes on this machine. The "installed versions"
//! are files in a temporary directory, so the demo can change one and show the
//! controller noticing.

use crate::cli::{self, hosts};
use crate::server::{self, ServeSettings};
use crate::store::DatabaseUrl;
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tierwise_common::rollout::RolloutState;
use tierwise_common::{HostRecord, Role, Version};
use tierwise_runtime::clock::now_ms;
use tokio::process::{Child, Command};

#[derive(Debug)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub agent_bin: Option<PathBuf>,
    pub keep_running: bool,
    /// Where to serve the web dashboard, if anywhere.
    pub ui_listen: Option<SocketAddr>,
}

const INSTALLATION: &str = "demo";
const OLD: Version = Version::new(9, 2, 6, 33415);
const CURRENT: Version = Version::new(9, 3, 1, 33994);

/// One simulated host: its id, the role it plays and the version it starts at.
struct DemoHost {
    host_id: &'static str,
    role: Role,
    version: Version,
    /// Client only: "Can search for updates" on for normal users.
    update_check: bool,
}

fn fleet() -> Vec<DemoHost> {
    let host = |host_id, role, version, update_check| DemoHost {
        host_id,
        role,
        version,
        update_check,
    };
    let mut hosts = vec![
        host("srv-01", Role::Server, CURRENT, false),
        host("web-01", Role::Web, CURRENT, false),
    ];
    for (index, id) in CLIENTS.iter().enumerate() {
        let version = if index % 7 == 3 { OLD } else { CURRENT };
        hosts.push(host(id, Role::Client, version, index == 2));
    }
    hosts
}

const CLIENTS: [&str; 20] = [
    "cl-001", "cl-002", "cl-003", "cl-004", "cl-005", "cl-006", "cl-007", "cl-008", "cl-009",
    "cl-010", "cl-011", "cl-012", "cl-013", "cl-014", "cl-015", "cl-016", "cl-017", "cl-018",
    "cl-019", "cl-020",
];

/// The client whose stand-in installer fails (Windows Installer 1603,
/// "fatal error during installation"; exit statuses stop at 255 here, so it
/// exits 103), to show a failure within the wave's error threshold.
const FAILING_CLIENT: &str = "cl-013";
const TARGET: Version = Version::new(26, 3, 100, 34058);

/// A stand-in for the vendor's installers: takes time, changes what the
/// probes read, and exits like an installer.
fn installer_script(dir: &Path, delay: &str, fail_code: Option<u8>) -> String {
    let dir = dir.display();
    let fail = fail_code.map_or_else(String::new, |code| {
        format!("[ \"$action\" = install ] && {{ echo \"MSI error: fatal error during installation\" >&2; exit {code}; }}\n")
    });
    format!(
        "#!/bin/sh\n\
         # Tierwise demo: stands in for a Password Secure installer.\n\
         action=\"$1\"; version=\"$2\"\n\
         echo \"$action $version\" >> \"{dir}/runs.log\"\n\
         {fail}\
         case \"$action\" in\n\
           backup) sleep 0.5; mkdir -p \"{dir}/backups\"; n=$(date +%s)\n\
             for db in $(sed -n 's/.*\"name\": \"\\([^\"]*\\)\".*/\\1/p' \"{dir}/databases.json\"); do echo \"$db, $(date)\" > \"{dir}/backups/$db-$n.bak\"; done ;;\n\
           install) echo \"installing $version\"; sleep {delay}; echo \"$version\" > \"{dir}/VERSION.tmp\"; mv \"{dir}/VERSION.tmp\" \"{dir}/VERSION\" ;;\n\
           reactivate) sleep 1; sed -e \"s/\\\"patch_level\\\": \\\"[0-9.]*\\\"/\\\"patch_level\\\": \\\"$version\\\"/g\" \"{dir}/databases.json\" > \"{dir}/db.tmp\" && mv \"{dir}/db.tmp\" \"{dir}/databases.json\" ;;\n\
           *) sleep 0.5 ;;\n\
         esac\n\
         echo \"$action done\"\n"
    )
}

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let agent_bin = locate_agent(options.agent_bin)?;
    let workdir = tempfile::Builder::new()
        .prefix("tierwise-demo-")
        .tempdir()
        .context("cannot create a temporary directory for the demo")?;
    let root = workdir.path().to_path_buf();
    let started = Instant::now();

    let data_dir = root.join("controller");
    let settings = ServeSettings {
        listen: options.listen,
        database: DatabaseUrl::sqlite_file(&data_dir.join("tierwise.db")),
        data_dir,
        pki: crate::pki::PkiSettings::default(),
        agent_certificate_lifetime: server::DEFAULT_AGENT_CERTIFICATE_LIFETIME,
        max_handshakes_per_address: server::DEFAULT_HANDSHAKES_PER_ADDRESS,
        max_session_age: None,
        limits: crate::grpc::limits::LimitSettings::default(),
        health_listen: None,
        metrics_listen: None,
        ui_listen: options.ui_listen,
        allow_unsigned_releases: true,
        release_root: None,
    };
    let controller = server::start(&settings).await.with_context(|| {
        format!(
            "the demo's controller cannot start on {} (choose another address with --listen 127.0.0.1:0)",
            options.listen
        )
    })?;
    let url = format!("https://{}", controller.addr);
    let connection = cli::Connection {
        controller: url.clone(),
        ca_cert: Some(crate::pki::ca_cert_path(&settings.data_dir)),
        token: None,
        token_file: Some(server::admin_token_path(&settings.data_dir)),
    };
    println!(
        "Controller listening on {url} (TLS; CA fingerprint {}), store: SQLite in {}",
        controller.fingerprint,
        settings.data_dir.display()
    );
    if let Some(at) = controller.ui_addr {
        println!(
            "Web dashboard at https://{at}/ (the demo's own CA: your browser warns); log in with the token in {}",
            server::admin_token_path(&settings.data_dir).display()
        );
    }

    let hosts = fleet();
    // One enrollment token for the whole demo fleet, as Group Policy would
    // hand one to every machine of an installation.
    let token = cli::connect(&connection)
        .await?
        .create_token(tierwise_proto::v1::CreateTokenRequest {
            installation: INSTALLATION.to_owned(),
            uses: u32::try_from(hosts.len()).unwrap_or(u32::MAX),
            expires_seconds: 3600,
        })
        .await
        .map_err(cli::status_error)?
        .into_inner();
    println!(
        "Enrollment token {} for {} agents; each makes its own key and enrolls over TLS, pinning the CA.",
        token.id,
        hosts.len()
    );
    let enrollment = Enrollment {
        token: token.token,
        fingerprint: controller.fingerprint.to_string(),
    };
    let mut agents = Vec::new();
    for host in &hosts {
        agents.push(spawn_agent(&agent_bin, &root, &url, &enrollment, host).await?);
    }
    println!(
        "Started {} agents for installation `{INSTALLATION}` (1 server with 2 databases, 1 Apache web host, {} clients)\n",
        agents.len(),
        hosts.iter().filter(|h| h.role == Role::Client).count()
    );

    let result = tour(&connection, &root, &hosts).await;
    if result.is_ok() {
        println!("Demo ready after {:.1} s.", started.elapsed().as_secs_f64());
    }
    if result.is_ok() && !options.keep_running {
        println!(
            "Run `tierwise demo --keep-running` to keep the fleet up and try the CLI against it."
        );
    }
    if result.is_ok() && options.keep_running {
        println!(
            "\nThe fleet keeps running. In another terminal:\n  export TIERWISE_CONTROLLER={url} TIERWISE_CA_CERT={} TIERWISE_TOKEN_FILE={}\n  \
             tierwise hosts list\n  tierwise hosts show srv-01\nPress Ctrl-C to stop.",
            connection.ca_cert.as_deref().unwrap_or(Path::new("")).display(),
            connection.token_file.as_deref().unwrap_or(Path::new("")).display(),
        );
        tierwise_runtime::shutdown::signal().await;
    }
    if let Err(error) = &result {
        eprintln!(
            "The demo failed: {}\nAgent logs:",
            tierwise_runtime::report::error_chain(error.as_ref())
        );
        for host in &hosts {
            let log = root.join(host.host_id).join("agent.log");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            for line in tail.into_iter().rev() {
                eprintln!("  {}: {line}", host.host_id);
            }
        }
    }
    // Controller first, so its sessions end cleanly; then the agents, which
    // would otherwise keep trying to reconnect.
    controller.shutdown().await?;
    for mut agent in agents {
        let _ = agent.start_kill();
        let _ = agent.wait().await;
    }
    result
}

async fn tour(connection: &cli::Connection, root: &Path, hosts: &[DemoHost]) -> anyhow::Result<()> {
    let mut client = cli::connect(connection).await?;
    let expected: Vec<&str> = hosts.iter().map(|h| h.host_id).collect();
    let fleet = wait_until(&mut client, Duration::from_secs(30), |fleet| {
        expected
            .iter()
            .all(|id| fleet.iter().any(|h| h.host_id == *id && h.online))
    })
    .await
    .context("not every demo agent came online within 30 s")?;
    println!("$ tierwise hosts list");
    print!("{}", hosts::render_list(&fleet, now_ms()));

    if let Some(server) = fleet.iter().find(|h| h.host_id == "srv-01") {
        println!("\n$ tierwise hosts show srv-01");
        print!("{}", hosts::render_show(server, now_ms()));
    }

    // An installer "ran" on cl-005: its version file changes, the agent
    // notices on its next probe and the controller shows the new version.
    let changed = "cl-005";
    println!("\nUpdating {changed} to {CURRENT} (its version file changes)…");
    write(&root.join(changed).join("VERSION"), &format!("{CURRENT}\n"))?;
    let since = Instant::now();
    wait_until(&mut client, Duration::from_secs(15), |fleet| {
        fleet.iter().any(|h| {
            h.host_id == changed
                && h.inventory
                    .component(Role::Client)
                    .and_then(|c| c.version.installed())
                    == Some(CURRENT)
        })
    })
    .await
    .context("the controller did not see the changed version within 15 s")?;
    println!(
        "The controller reports {changed} at {CURRENT} after {:.1} s.\n",
        since.elapsed().as_secs_f64()
    );
    rollout_tour(&mut client, root).await
}

/// Plans and runs a rollout of the demo installation to 26.3.100.34058,
/// printing each change of progress, then the final fleet.
async fn rollout_tour(client: &mut cli::AdminClient, root: &Path) -> anyhow::Result<()> {
    let catalogue = root.join("password-secure.toml");
    write(
        &catalogue,
        include_str!("../../deploy/catalogue/password-secure.toml"),
    )?;
    println!("$ tierwise releases import password-secure.toml");
    print!(
        "{}",
        cli::policy::import(client, &catalogue, false, false).await?
    );
    println!(
        "\n$ tierwise license set --installation {INSTALLATION} --maintenance-until 2026-12-31"
    );
    print!(
        "{}",
        cli::policy::licence_set(client, INSTALLATION, "2026-12-31").await?
    );
    println!("\n$ tierwise rollout plan --installation {INSTALLATION} --to {TARGET}");
    let (plan, _) =
        cli::policy::plan(client, INSTALLATION, &TARGET.to_string(), None, false).await?;
    print!("{plan}");
    println!(
        "\n$ tierwise rollout start --installation {INSTALLATION} --to {TARGET} --ack breaking \\\n    --ack server-manager-password --ack changelog --error-threshold 1"
    );
    let started = cli::rollout::start(
        client,
        cli::rollout::StartOptions {
            installation: INSTALLATION.into(),
            to: TARGET.to_string(),
            error_threshold: Some("1".into()),
            acks: vec![
                "breaking".into(),
                "server-manager-password".into(),
                "changelog".into(),
            ],
            ..Default::default()
        },
    )
    .await?;
    print!("{started}");
    println!("(installers take a few seconds each; {FAILING_CLIENT}'s installer fails, within the threshold of 1)\n");

    let began = Instant::now();
    let mut last = String::new();
    let status = loop {
        let status = cli::rollout::fetch(client, None).await?;
        let line = progress_line(&status);
        if line != last {
            println!("[{:>5.1} s] {line}", began.elapsed().as_secs_f64());
            last = line;
        }
        if status.state.is_settled() {
            break status;
        }
        if began.elapsed() > Duration::from_secs(180) {
            bail!("the rollout did not finish within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("\n$ tierwise rollout status");
    print!("{}", cli::rollout::render(&status));
    let fleet = hosts::fetch_hosts(client, Some(INSTALLATION), None).await?;
    println!("\n$ tierwise hosts list");
    print!("{}", hosts::render_list(&fleet, now_ms()));
    // The failing client is the demo's point: it ends with that failure
    // kept, within the threshold.
    if !matches!(
        status.state,
        RolloutState::Completed | RolloutState::CompletedWithFailures
    ) {
        bail!("the rollout ended {}", status.state.as_str());
    }
    Ok(())
}

fn progress_line(status: &crate::rollout_view::RolloutStatus) -> String {
    let phase = status.phases.get(status.current_phase);
    let current = phase.map_or_else(
        || "all phases".to_owned(),
        |p| {
            format!(
                "{}: {}/{} done, {} running, {} failed",
                cli::rollout::phase_name(&p.kind),
                p.succeeded,
                p.steps,
                p.dispatched,
                p.failed
            )
        },
    );
    format!("{} — {current}", status.state.as_str().replace('_', " "))
}

/// Polls the controller's host list until `done` holds or `limit` passes.
async fn wait_until(
    client: &mut cli::AdminClient,
    limit: Duration,
    done: impl Fn(&[HostRecord]) -> bool,
) -> anyhow::Result<Vec<HostRecord>> {
    let deadline = Instant::now() + limit;
    loop {
        let fleet = hosts::fetch_hosts(client, Some(INSTALLATION), None).await?;
        if done(&fleet) {
            return Ok(fleet);
        }
        if Instant::now() > deadline {
            bail!(
                "timed out; the controller sees:\n{}",
                hosts::render_list(&fleet, now_ms())
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Web Application package: the ZIP the Server Manager would generate.
fn web_package(path: &Path, version: Version) -> anyhow::Result<()> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    let files = [
        ("version.txt", format!("{version}\n")),
        (
            "index.html",
            format!("<!doctype html><title>Password Secure {version}</title>\n"),
        ),
    ];
    for (name, text) in files {
        zip.start_file(name, zip::write::SimpleFileOptions::default())?;
        zip.write_all(text.as_bytes())?;
    }
    zip.finish()?;
    Ok(())
}

fn locate_agent(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(path) => path,
        None => std::env::current_exe()
            .context("cannot find this program's own path")?
            .with_file_name(format!("tierwise-agent{}", std::env::consts::EXE_SUFFIX)),
    };
    if !path.is_file() {
        bail!(
            "the agent binary {} does not exist: build both binaries with `cargo build --release`, \
             or point to it with --agent-bin",
            path.display()
        );
    }
    Ok(path)
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // Write then rename, so an agent never reads a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// TOML string literal (basic string with escapes), for paths in configs.
fn toml_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What every demo agent needs to enroll.
#[derive(Debug)]
struct Enrollment {
    token: String,
    fingerprint: String,
}

async fn spawn_agent(
    agent_bin: &Path,
    root: &Path,
    url: &str,
    enrollment: &Enrollment,
    host: &DemoHost,
) -> anyhow::Result<Child> {
    let dir = root.join(host.host_id);
    let path = |name: &str| toml_str(&dir.join(name).display().to_string());
    write(&dir.join("VERSION"), &format!("{}\n", host.version))?;
    let mut config = format!(
        "# Demo agent {id}: versions are files in {dir}.\n\
         controller = {url}\n\
         enrollment_token = {token}\n\
         ca_fingerprint = {fingerprint}\n\
         installation = \"{INSTALLATION}\"\n\
         host_id = \"{id}\"\n\
         heartbeat_seconds = 2\n\
         probe_seconds = 1\n\
         state_dir = {state}\n\n\
         [[component]]\n\
         role = \"{role}\"\n\
         version = {{ file = {version} }}\n",
        id = host.host_id,
        dir = dir.display(),
        url = toml_str(url),
        token = toml_str(&enrollment.token),
        fingerprint = toml_str(&enrollment.fingerprint),
        state = path("state"),
        role = host.role,
        version = path("VERSION"),
    );
    let script = dir.join("installer.sh");
    // An action running the stand-in script; `more`: further keys.
    let action_with = |name: &str, with_version: bool, more: &str| {
        format!(
            "{{ command = [\"sh\", {}, \"{name}\"{}], timeout_seconds = 120{more} }}",
            toml_str(&script.display().to_string()),
            if with_version { ", \"{version}\"" } else { "" }
        )
    };
    let action = |name: &str, with_version: bool| action_with(name, with_version, "");
    let mut actions = String::new();
    match host.role {
        Role::Server => {
            write(&script, &installer_script(&dir, "3", None))?;
            actions = format!(
                "\n[component.actions]\nbackup = {}\nstop_services = {}\ninstall = {}\nstart_services = {}\nreactivate_databases = {}\n",
                // The backup is verified: a file for each database (its
                // name in the file's) must appear.
                action_with(
                    "backup",
                    false,
                    &format!(
                        ", backup_directory = {}, backup_pattern = \"PSDB-*.bak\"",
                        path("backups")
                    ),
                ),
                action("stop", false),
                action("install", true),
                action("start", false),
                action("reactivate", true),
            );
            let databases = format!(
                "[\n  {{ \"name\": \"PSDB-Prod\", \"active\": true, \"patch_level\": \"{v}\" }},\n  \
                 {{ \"name\": \"PSDB-Archive\", \"active\": true, \"patch_level\": \"{v}\" }}\n]\n",
                v = host.version
            );
            write(&dir.join("databases.json"), &databases)?;
            config.push_str(&format!(
                "databases = {{ file = {} }}\n",
                path("databases.json")
            ));
        }
        Role::Web => {
            std::fs::create_dir_all(dir.join("docroot"))?;
            write(
                &dir.join("docroot").join("index.html"),
                "<!doctype html><title>Password Secure</title>\n",
            )?;
            // The Web Application's version lives in its document directory,
            // and the site keeps the package of the new version ready.
            write(
                &dir.join("docroot").join("version.txt"),
                &format!("{}\n", host.version),
            )?;
            config = config.replace(
                &format!("version = {{ file = {} }}", path("VERSION")),
                &format!("version = {{ file = {} }}", path("docroot/version.txt")),
            );
            web_package(&dir.join(format!("WebApp-{TARGET}.zip")), TARGET)?;
            // What `apache2ctl -M` prints on a host with the module loaded.
            write(
                &dir.join("apache-modules.txt"),
                "Loaded Modules:\n proxy_module (shared)\n proxy_http_module (shared)\n proxy_wstunnel_module (shared)\n",
            )?;
            config.push_str(&format!(
                "server = \"apache\"\ndocroot = {}\nwebsocket = {{ file = {}, pattern = 'proxy_wstunnel_module' }}\nweb_app = {}\n",
                path("docroot"),
                path("apache-modules.txt"),
                path("WebApp-{version}.zip"),
            ));
        }
        Role::Client => {
            write(
                &dir.join("user-settings.ini"),
                &format!("CanSearchForUpdates={}\n", u8::from(host.update_check)),
            )?;
            config.push_str(&format!(
                "update_check = {{ file = {}, pattern = '(?m)^CanSearchForUpdates=1$' }}\n",
                path("user-settings.ini"),
            ));
            let delay = format!(
                "{}.{}",
                1 + host.host_id.len() % 2,
                host.host_id.bytes().last().unwrap_or(b'0') % 10
            );
            let fail = (host.host_id == FAILING_CLIENT).then_some(103);
            write(&script, &installer_script(&dir, &delay, fail))?;
            actions = format!(
                "\n[component.actions]\ninstall = {}\n",
                action("install", true)
            );
        }
        Role::AppServer => {}
    }
    config.push_str(&actions);
    let config_path = dir.join("agent.toml");
    write(&config_path, &config)?;
    let log = std::fs::File::create(dir.join("agent.log"))?;
    let child = Command::new(agent_bin)
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", agent_bin.display()))?;
    Ok(child)
}
