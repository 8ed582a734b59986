//! `tierwise demo`: a controller and a small Password Secure installation of
//! real `tierwise-agent` processes on this machine. The "installed versions"
//! are files in a temporary directory, so the demo can change one and show the
//! controller noticing.

use crate::cli::{self, hosts};
use crate::clock::now_ms;
use crate::server::{self, ServeSettings};
use crate::store::DatabaseUrl;
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tierwise_common::{HostRecord, Role, Version};
use tokio::process::{Child, Command};

#[derive(Debug)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub agent_bin: Option<PathBuf>,
    pub keep_running: bool,
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
    vec![
        host("srv-01", Role::Server, CURRENT, false),
        host("web-01", Role::Web, CURRENT, false),
        host("cl-001", Role::Client, CURRENT, false),
        host("cl-002", Role::Client, CURRENT, false),
        host("cl-003", Role::Client, CURRENT, true),
        host("cl-004", Role::Client, OLD, false),
        host("cl-005", Role::Client, OLD, false),
    ]
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
    };
    let controller = server::start(&settings).await.with_context(|| {
        format!(
            "the demo's controller cannot start on {} (choose another address with --listen 127.0.0.1:0)",
            options.listen
        )
    })?;
    let url = format!("http://{}", controller.addr);
    println!(
        "Controller listening on {url}, store: SQLite in {}",
        settings.data_dir.display()
    );

    let hosts = fleet();
    let mut agents = Vec::new();
    for host in &hosts {
        agents.push(spawn_agent(&agent_bin, &root, &url, host).await?);
    }
    println!(
        "Started {} agents for installation `{INSTALLATION}` (1 server with 2 databases, 1 web host, {} clients)\n",
        agents.len(),
        hosts.iter().filter(|h| h.role == Role::Client).count()
    );

    let result = tour(&url, &root, &hosts).await;
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
            "\nThe fleet keeps running. In another terminal:\n  tierwise --controller {url} hosts list\n  \
             tierwise --controller {url} hosts show srv-01\nPress Ctrl-C to stop."
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

async fn tour(url: &str, root: &Path, hosts: &[DemoHost]) -> anyhow::Result<()> {
    let mut client = cli::connect(url).await?;
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
    Ok(())
}

/// Polls the controller's host list until `done` holds or `limit` passes.
async fn wait_until(
    client: &mut tierwise_proto::v1::admin_service_client::AdminServiceClient<
        tonic::transport::Channel,
    >,
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

async fn spawn_agent(
    agent_bin: &Path,
    root: &Path,
    url: &str,
    host: &DemoHost,
) -> anyhow::Result<Child> {
    let dir = root.join(host.host_id);
    let path = |name: &str| toml_str(&dir.join(name).display().to_string());
    write(&dir.join("VERSION"), &format!("{}\n", host.version))?;
    let mut config = format!(
        "# Demo agent {id}: versions are files in {dir}.\n\
         controller = {url}\n\
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
        state = path("state"),
        role = host.role,
        version = path("VERSION"),
    );
    match host.role {
        Role::Server => {
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
            // What `apache2ctl -M` prints on a host with the module loaded.
            write(
                &dir.join("apache-modules.txt"),
                "Loaded Modules:\n proxy_module (shared)\n proxy_http_module (shared)\n proxy_wstunnel_module (shared)\n",
            )?;
            config.push_str(&format!(
                "server = \"apache\"\ndocroot = {}\nwebsocket = {{ file = {}, pattern = 'proxy_wstunnel_module' }}\n",
                path("docroot"),
                path("apache-modules.txt"),
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
        }
        Role::AppServer => {}
    }
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
