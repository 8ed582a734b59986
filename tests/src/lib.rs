//! A harness for end-to-end tests: starts the real `tierwise` controller and
//! real `tierwise-agent` processes on loopback, drives the real CLI, and
//! waits for conditions (never for fixed sleeps).
//!
//! The binaries come from the same target directory as the test itself;
//! `cargo test --workspace` builds them, because the controller and agent
//! packages have integration tests of their own.

pub mod webdriver;
pub mod wire;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tierwise_transport::client::{client_config, ControllerAddress, Identity, Trust};
use tierwise_transport::{files, CertificateDer, Fingerprint};

/// Enrollment token and CA fingerprint of each controller this test process
/// started, by URL: agents started for a URL enroll with them.
fn enrollments() -> MutexGuard<'static, HashMap<String, (String, String)>> {
    static ENROLLMENTS: OnceLock<Mutex<HashMap<String, (String, String)>>> = OnceLock::new();
    ENROLLMENTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The last release of the old version scheme and the first of the new.
pub const V931: &str = "9.3.1.33994";
pub const V263: &str = "26.3.100.34058";

/// The catalogue the project ships.
pub fn catalogue_path() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/catalogue/password-secure.toml"
    )
    .to_owned()
}

/// The shipped catalogue with a client installer (file name `file`,
/// checksum `sha256`) for 26.3.100.34058, as an operator would add it.
pub fn catalogue_with_client_artifact(file: &str, sha256: &str) -> Result<String> {
    let shipped = std::fs::read_to_string(catalogue_path())?;
    let anchor = "requires = [\"web_websocket\"]\n\n[[release]]\nversion = \"26.4.10.34111\"";
    if !shipped.contains(anchor) {
        bail!("the shipped catalogue changed shape; update catalogue_with_client_artifact");
    }
    Ok(shipped.replace(
        anchor,
        &format!(
            "requires = [\"web_websocket\"]\n\n[release.artifact.client]\nfile = {file:?}\nsha256 = {sha256:?}\n\n[[release]]\nversion = \"26.4.10.34111\""
        ),
    ))
}

/// `tierwise keys ARGS` in `dir`, whatever its exit status (offline: it
/// never talks to a controller).
pub fn keys_output(dir: &Path, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(binary("tierwise"))
        .current_dir(dir)
        .arg("keys")
        .args(args)
        .output()?)
}

/// As `keys_output`, failing unless it succeeded; what it printed.
pub fn keys(dir: &Path, args: &[&str]) -> Result<String> {
    let out = keys_output(dir, args)?;
    if !out.status.success() {
        bail!("keys {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The public key `tierwise keys create` printed.
pub fn public_key(created: &str) -> Result<String> {
    created
        .lines()
        .find_map(|l| l.strip_prefix("Public key: "))
        .map(|k| k.trim().to_owned())
        .ok_or_else(|| anyhow!("no public key in {created:?}"))
}

/// `target/<profile>/<name>`, next to the test executable's `deps/` folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// Kills the process when dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `tierwise serve`.
#[derive(Debug)]
pub struct Controller {
    pub process: Process,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl Controller {
    /// Starts `tierwise serve` on `listen` (port 0: any free port) with its
    /// SQLite store in `data_dir`, and waits until it listens.
    pub fn start(data_dir: &Path, listen: &str) -> Result<Self> {
        Self::start_with(data_dir, listen, &[])
    }

    /// As `start`, with more flags for `tierwise serve`. Tests of
    /// everything but signing run with `--allow-unsigned-releases`.
    pub fn start_with(data_dir: &Path, listen: &str, flags: &[&str]) -> Result<Self> {
        let mut all = vec!["--allow-unsigned-releases"];
        all.extend_from_slice(flags);
        Self::start_exactly(data_dir, listen, &all)
    }

    /// Starts `tierwise serve` with exactly these flags (unsigned releases
    /// are refused unless they allow them).
    pub fn start_exactly(data_dir: &Path, listen: &str, flags: &[&str]) -> Result<Self> {
        Self::start_in_command(Command::new(binary("tierwise")), data_dir, listen, flags)
    }

    /// As `start_with`, with the controller allowed `open_files` open files
    /// (soft and hard limit; `prlimit`, Linux).
    pub fn start_with_open_files(
        data_dir: &Path,
        listen: &str,
        flags: &[&str],
        open_files: u32,
    ) -> Result<Self> {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={open_files}:{open_files}"))
            .arg("--")
            .arg(binary("tierwise"));
        let mut all = vec!["--allow-unsigned-releases"];
        all.extend_from_slice(flags);
        Self::start_in_command(command, data_dir, listen, &all)
    }

    /// Starts `tierwise serve` as `command` (the binary, or a program that
    /// runs it with the arguments that follow).
    fn start_in_command(
        mut command: Command,
        data_dir: &Path,
        listen: &str,
        flags: &[&str],
    ) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let log = data_dir.join(format!("controller-{}.log", unique()));
        let mut child = command
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start tierwise serve")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("tierwise controller listening on ")
            .ok_or_else(|| {
                anyhow!(
                    "tierwise serve did not start: {line:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })?
            .parse()?;
        let controller = Self {
            process: Process { child, log },
            addr,
            data_dir: data_dir.to_path_buf(),
        };
        // Agents started for this address enroll with one shared token.
        let token = controller.cli(&["tokens", "create", "--uses", "100000", "--expires", "2h"])?;
        let fingerprint = Fingerprint::of(&controller.ca_certificate()?);
        enrollments().insert(
            controller.url(),
            (token.trim().to_owned(), fingerprint.to_string()),
        );
        Ok(controller)
    }

    /// Two replicas on one database (`flags` name it, with any other
    /// `serve` flags) and one data directory (the same CA and keys), the
    /// first started first, so it takes the rollout engine's leadership.
    pub fn replicas(data_dir: &Path, flags: &[&str]) -> Result<(Self, Self)> {
        let first = Self::start_with(data_dir, "127.0.0.1:0", flags)?;
        wait_for("the first replica to lead", Duration::from_secs(20), || {
            Ok(first
                .process
                .log_text()
                .contains("this controller runs the rollout engine")
                .then_some(()))
        })?;
        let second = Self::start_with(data_dir, "127.0.0.1:0", flags)?;
        Ok((first, second))
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Lets agents started for `url` (a load balancer in front of this
    /// controller) enroll as agents of this controller do.
    pub fn also_reached_at(&self, url: &str) {
        let known = enrollments().get(&self.url()).cloned();
        if let Some(enrollment) = known {
            enrollments().insert(url.to_owned(), enrollment);
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.data_dir.join("pki").join("ca.pem")
    }

    /// The controller's CA certificate (DER).
    pub fn ca_certificate(&self) -> Result<CertificateDer<'static>> {
        let chain = files::read_certificates(&self.ca_path())?;
        Ok(chain[0].clone())
    }

    /// The first administrator's token.
    pub fn admin_token(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.data_dir.join("admin.token"))?
            .trim()
            .to_owned())
    }

    /// Runs the real CLI against this controller as its first admin,
    /// whatever its exit status.
    pub fn cli_output(&self, args: &[&str]) -> Result<std::process::Output> {
        self.cli_output_as(&self.admin_token()?, args)
    }

    /// Runs the real CLI with an operator's token.
    pub fn cli_output_as(&self, token: &str, args: &[&str]) -> Result<std::process::Output> {
        Ok(Command::new(binary("tierwise"))
            .arg("--controller")
            .arg(self.url())
            .arg("--ca-cert")
            .arg(self.ca_path())
            .env("TIERWISE_TOKEN", token)
            .env_remove("TIERWISE_TOKEN_FILE")
            .args(args)
            .output()?)
    }

    /// A TLS channel to this controller as an enrolled agent with `host_id`
    /// (enrolled now, with a token of its own), for tests that speak the
    /// agent protocol themselves.
    pub async fn agent_channel(&self, host_id: &str) -> Result<tonic::transport::Channel> {
        self.agent_channel_in(host_id, "prod").await
    }

    /// As `agent_channel`, for a host of `installation`.
    pub async fn agent_channel_in(
        &self,
        host_id: &str,
        installation: &str,
    ) -> Result<tonic::transport::Channel> {
        let config = self.agent_config_in(host_id, installation).await?;
        let address: ControllerAddress = self.url().parse()?;
        Ok(address.connect(config, |e| e).await?)
    }

    /// Enrolls `host_id` in `installation` and returns its TLS client
    /// configuration (its certificate, the controller's CA), which keeps its
    /// session tickets across connections as an agent's does.
    pub async fn agent_config_in(
        &self,
        host_id: &str,
        installation: &str,
    ) -> Result<std::sync::Arc<rustls::ClientConfig>> {
        let token = self.cli(&["tokens", "create"])?;
        let (key_pem, csr) = tierwise_transport::key_and_request(host_id)?;
        let ca = self.ca_certificate()?;
        let address: ControllerAddress = self.url().parse()?;
        let plain = client_config(&Trust::Ca(vec![ca.clone()]), None)?;
        let channel = address.connect(plain, |e| e).await?;
        let certificate =
            tierwise_proto::v1::agent_service_client::AgentServiceClient::new(channel)
                .enroll(tierwise_proto::v1::EnrollRequest {
                    token: token.trim().to_owned(),
                    host_id: host_id.to_owned(),
                    installation: installation.to_owned(),
                    csr_der: csr,
                })
                .await?
                .into_inner();
        let chain = files::certificates_from_pem(certificate.certificate_pem.as_bytes())
            .map_err(|_| anyhow!("no certificate in the answer"))?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| anyhow!("{e}"))?;
        Ok(client_config(
            &Trust::Ca(vec![ca]),
            Some(Identity { chain, key }),
        )?)
    }

    /// Runs the real CLI against this controller; stdout on success (for
    /// `rollout status` and `--watch`, also the exit statuses that say how
    /// the rollout ended: 4, 5 and 6, see docs/cli.md).
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = self.cli_output(args)?;
        let reports_an_end = args.first() == Some(&"rollout")
            && (args.get(1) == Some(&"status") || args.contains(&"--watch"))
            && matches!(out.status.code(), Some(4..=6));
        if !out.status.success() && !reports_an_end {
            bail!(
                "tierwise {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// `tierwise rollout start --installation prod --to 26.3.100.34058` with
    /// the acknowledgements that release needs (breaking, the Server Manager
    /// password, the changelogs) and `extra` flags, whatever its exit status.
    pub fn rollout_start_output(&self, extra: &[&str]) -> Result<std::process::Output> {
        let mut args = vec![
            "rollout",
            "start",
            "--installation",
            "prod",
            "--to",
            V263,
            "--ack-breaking",
            "--ack-server-manager-password",
            "--ack",
            "changelog",
        ];
        args.extend_from_slice(extra);
        self.cli_output(&args)
    }

    /// As `rollout_start_output`, failing unless it started.
    pub fn rollout_start(&self, extra: &[&str]) -> Result<()> {
        let out = self.rollout_start_output(extra)?;
        if !out.status.success() {
            bail!(
                "rollout start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Records that `installation`'s maintenance runs until the end of 2026.
    pub fn license(&self, installation: &str) -> Result<()> {
        self.cli(&[
            "license",
            "set",
            "--installation",
            installation,
            "--maintenance-until",
            "2026-12-31",
        ])
        .map(|_| ())
    }

    /// The newest audit entry of `action` (`tierwise audit --json`).
    pub fn audit_entry(&self, action: &str) -> Result<Option<Value>> {
        let audit: Value = serde_json::from_str(&self.cli(&["audit", "--json"])?)?;
        Ok(audit
            .as_array()
            .into_iter()
            .flatten()
            .rev()
            .find(|e| e["action"] == action)
            .cloned())
    }

    /// Waits until `rollout plan --installation prod --to TO` names an
    /// operator task: the server's agent has reported which commands it has.
    pub fn wait_for_planned_task(&self, to: &str) -> Result<()> {
        wait_for("the plan to name the task", Duration::from_secs(20), || {
            let plan: Value = serde_json::from_str(&self.cli(&[
                "rollout",
                "plan",
                "--installation",
                "prod",
                "--to",
                to,
                "--json",
            ])?)?;
            Ok(plan["tasks"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
                .then_some(()))
        })?;
        Ok(())
    }

    /// `tierwise rollout status --json`.
    pub fn rollout_status(&self) -> Result<Value> {
        Ok(serde_json::from_str(
            &self.cli(&["rollout", "status", "--json"])?,
        )?)
    }

    /// `tierwise hosts list --json`.
    pub fn hosts(&self) -> Result<Vec<Value>> {
        let text = self.cli(&["hosts", "list", "--json"])?;
        let value: Value = serde_json::from_str(&text)?;
        value
            .as_array()
            .cloned()
            .ok_or_else(|| anyhow!("hosts list --json is not an array: {text}"))
    }

    pub fn host(&self, host_id: &str) -> Result<Option<Value>> {
        Ok(self.hosts()?.into_iter().find(|h| h["host_id"] == host_id))
    }

    /// Waits until the controller shows `host_id` online (or offline);
    /// returns how long that took.
    pub fn wait_online(&self, host_id: &str, online: bool, limit: Duration) -> Result<Duration> {
        let what = format!("{host_id} {}", if online { "online" } else { "offline" });
        let ((), took) = wait_for(&what, limit, || {
            Ok(self
                .host(host_id)?
                .filter(|h| h["online"] == online)
                .map(|_| ()))
        })?;
        Ok(took)
    }
}

/// One simulated host: an agent process and the files its probes read.
#[derive(Debug)]
pub struct Agent {
    pub process: Process,
    pub host_id: String,
    pub dir: PathBuf,
    pub config: PathBuf,
}

/// What the agent's configuration declares for its one component.
#[derive(Debug, Clone)]
pub enum Plays {
    /// A primary server with these databases (name, active, patch level).
    Server(Vec<(&'static str, bool, &'static str)>),
    /// An Apache web host; `websocket`: whether proxy_wstunnel is loaded.
    Web {
        websocket: bool,
    },
    Client,
}

impl Agent {
    /// Writes the host's files and configuration, then starts the agent,
    /// which re-probes every second.
    pub fn start(
        root: &Path,
        controller: &str,
        host_id: &str,
        plays: Plays,
        version: &str,
    ) -> Result<Self> {
        Self::start_probing_every(root, controller, host_id, plays, version, 1)
    }

    /// As `start`, for a host of `installation` instead of `prod`.
    pub fn start_in(
        installation: &str,
        root: &Path,
        controller: &str,
        host_id: &str,
        plays: Plays,
        version: &str,
    ) -> Result<Self> {
        Self::start_with(installation, root, controller, host_id, plays, version, 1)
    }

    /// As `start`, with the agent's re-probe interval in seconds.
    pub fn start_probing_every(
        root: &Path,
        controller: &str,
        host_id: &str,
        plays: Plays,
        version: &str,
        probe_seconds: u32,
    ) -> Result<Self> {
        Self::start_with(
            "prod",
            root,
            controller,
            host_id,
            plays,
            version,
            probe_seconds,
        )
    }

    fn start_with(
        installation: &str,
        root: &Path,
        controller: &str,
        host_id: &str,
        plays: Plays,
        version: &str,
        probe_seconds: u32,
    ) -> Result<Self> {
        let dir = root.join(host_id);
        std::fs::create_dir_all(&dir)?;
        set_file(&dir.join("VERSION"), &format!("{version}\n"))?;
        let quoted = |name: &str| format!("{:?}", dir.join(name).display().to_string());
        let (token, fingerprint) = enrollments()
            .get(controller)
            .cloned()
            .ok_or_else(|| anyhow!("no controller was started at {controller}"))?;
        let mut config = format!(
            "controller = {controller:?}\nenrollment_token = {token:?}\nca_fingerprint = {fingerprint:?}\n\
             installation = {installation:?}\nhost_id = {host_id:?}\n\
             heartbeat_seconds = 1\nprobe_seconds = {probe_seconds}\nreconnect_max_seconds = 2\nstate_dir = {}\n\n\
             [[component]]\nrole = \"{}\"\nversion = {{ file = {} }}\n",
            quoted("state"),
            match plays {
                Plays::Server(_) => "server",
                Plays::Web { .. } => "web",
                Plays::Client => "client",
            },
            quoted("VERSION"),
        );
        match &plays {
            Plays::Server(databases) => {
                let entries: Vec<String> = databases
                    .iter()
                    .map(|(name, active, level)| {
                        format!("{{\"name\": {name:?}, \"active\": {active}, \"patch_level\": {level:?}}}")
                    })
                    .collect();
                set_file(
                    &dir.join("databases.json"),
                    &format!("[{}]", entries.join(", ")),
                )?;
                config.push_str(&format!(
                    "databases = {{ file = {} }}\n",
                    quoted("databases.json")
                ));
            }
            Plays::Web { websocket } => {
                let modules = if *websocket {
                    "proxy_module\nproxy_wstunnel_module\n"
                } else {
                    "proxy_module\n"
                };
                set_file(&dir.join("modules.txt"), modules)?;
                // The Web Application's version lives in its document directory.
                std::fs::create_dir_all(dir.join("docroot"))?;
                set_file(
                    &dir.join("docroot").join("version.txt"),
                    &format!("{version}\n"),
                )?;
                config = config.replace(
                    &format!("version = {{ file = {} }}", quoted("VERSION")),
                    &format!("version = {{ file = {} }}", quoted("docroot/version.txt")),
                );
                config.push_str(&format!(
                    "server = \"apache\"\ndocroot = {}\nwebsocket = {{ file = {}, pattern = \"proxy_wstunnel_module\" }}\nweb_app = {}\n",
                    quoted("docroot"),
                    quoted("modules.txt"),
                    quoted("WebApp-{version}.zip"),
                ));
            }
            Plays::Client => {}
        }
        let config_path = dir.join("agent.toml");
        set_file(&config_path, &config)?;
        Ok(Self {
            process: spawn_agent(&config_path, &dir)?,
            host_id: host_id.to_owned(),
            dir,
            config: config_path,
        })
    }

    /// What in the agent's state directory others could read or enter:
    /// every directory there must be 0700 and every file 0600 (Unix;
    /// docs/security.md), whatever the umask the agent started with.
    /// Each offender as `path mode`.
    #[cfg(unix)]
    pub fn open_to_others(&self) -> Result<Vec<String>> {
        use std::os::unix::fs::PermissionsExt;
        let mut offenders = Vec::new();
        let mut pending = vec![self.dir.join("state")];
        while let Some(path) = pending.pop() {
            let meta = std::fs::symlink_metadata(&path)?;
            let mode = meta.permissions().mode() & 0o777;
            let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
            if mode != wanted {
                offenders.push(format!("{} {mode:o}", path.display()));
            }
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    pending.push(entry?.path());
                }
            }
        }
        Ok(offenders)
    }

    /// A TLS channel to `controller` with this agent's own certificate (as
    /// it keeps it in `state/identity/`): the test speaks the agent
    /// protocol as this host, as a tampered-with agent would.
    pub async fn channel(&self, controller: &Controller) -> Result<tonic::transport::Channel> {
        let identity = self.dir.join("state").join("identity");
        let chain = files::read_certificates(&identity.join("agent.pem"))?;
        let key = files::read_key(&identity.join("agent.pem"))?;
        let ca = files::read_certificates(&identity.join("ca.pem"))?;
        let address: ControllerAddress = controller.url().parse()?;
        let config = client_config(&Trust::Ca(ca), Some(Identity { chain, key }))?;
        Ok(address.connect(config, |e| e).await?)
    }

    /// Makes the agent pin a release root (`release_root_fingerprint`)
    /// and restarts it: from now on it runs only installers that signed
    /// release metadata from that root covers.
    pub fn pin_release_root(&mut self, fingerprint: &str) -> Result<()> {
        let config = std::fs::read_to_string(&self.config)?;
        set_file(
            &self.config,
            &format!("release_root_fingerprint = {fingerprint:?}\n{config}"),
        )?;
        self.restart()
    }

    /// Starts the agent process again with the same configuration.
    pub fn restart(&mut self) -> Result<()> {
        self.process.kill();
        self.process = spawn_agent(&self.config, &self.dir)?;
        Ok(())
    }

    /// Stands in for a restart of the machine, which cannot happen here:
    /// the agent stops and starts again reporting a boot time of now.
    pub fn reboot(&mut self) -> Result<()> {
        set_file(
            &self.dir.join("boot_ms"),
            &std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
                .to_string(),
        )?;
        self.restart()
    }

    /// Adds stand-in installers to the agent's configuration and restarts
    /// it. Each action appends "<host> <action> <version>" to `order_log`
    /// (shared by all hosts) and to the host's own `runs.log`; `install`
    /// takes `delay` and then changes the version file, `reactivate` marks
    /// every database active at the new patch level, `restart` marks the file
    /// `restart-requested` (the harness then calls `reboot`). A file `fail`
    /// in the host's directory makes the next action exit with the code it
    /// holds; a file `exit-after-ACTION` makes that action's next run do its
    /// work and then exit with the code it holds (30: restart required, as
    /// the stand-ins' `restart_exit_codes` say; a Unix exit code cannot be
    /// 3010).
    pub fn with_installers(&mut self, order_log: &Path, delay: &str) -> Result<()> {
        self.with_installers_using(order_log, delay, false)
    }

    /// As `with_installers`; with `artifact`, `install` also gets the
    /// installer file (`{artifact}`) and fails (exit 100) when it is absent.
    pub fn with_installers_using(
        &mut self,
        order_log: &Path,
        delay: &str,
        artifact: bool,
    ) -> Result<()> {
        let script = self.dir.join("installer.sh");
        let dir = self.dir.display().to_string();
        set_file(
            &script,
            &format!(
                r#"#!/bin/sh
# Stand-in for the vendor's installers: same exit codes, takes time, changes what the probes read.
action="$1"; version="$2"; installer="$3"
if [ -n "$installer" ] && [ ! -f "$installer" ]; then echo "no installer at $installer" >&2; exit 100; fi
if [ -f "{dir}/fail" ]; then code=$(cat "{dir}/fail"); rm -f "{dir}/fail"; echo "installer error $code" >&2; exit "$code"; fi
echo "{host} $action $version${{installer:+ $installer}}" >> "{dir}/runs.log"
echo "{host}: $action $version in progress"
echo "{host} $action $version" >> "{order}"
case "$action" in
  install) sleep {delay}; echo "$version" > "{dir}/VERSION.tmp"; mv "{dir}/VERSION.tmp" "{dir}/VERSION" ;;
  restart) touch "{dir}/restart-requested" ;;
  backup)
    if [ -d "{dir}/backups" ] && [ ! -f "{dir}/backup-writes-nothing" ]; then
      n=$(date +%s%N)
      grep -o '"name": "[^"]*"' "{dir}/databases.json" | sed -e 's/^"name": "//' -e 's/"$//' | while read -r db; do
        grep -qxF "$db" "{dir}/backup-skips" 2>/dev/null || echo "backup of $db, $(date)" > "{dir}/backups/${{db}}_$n.bak"
      done
    fi ;;
  reactivate)
    sed -e 's/"active": false/"active": true/g' -e "s/\"patch_level\": \"[0-9.]*\"/\"patch_level\": \"$version\"/g" "{dir}/databases.json" > "{dir}/db.tmp" && mv "{dir}/db.tmp" "{dir}/databases.json" ;;
esac
echo "done: $action $version"
if [ -f "{dir}/exit-after-$action" ]; then code=$(cat "{dir}/exit-after-$action"); rm -f "{dir}/exit-after-$action"; exit "$code"; fi
exit 0
"#,
                host = self.host_id,
                order = order_log.display(),
            ),
        )?;
        let sh = |action: &str, version: bool| {
            format!(
                "{{ command = [\"sh\", {:?}, \"{action}\"{}], timeout_seconds = 60, restart_exit_codes = [30] }}",
                script.display().to_string(),
                if version { ", \"{version}\"" } else { "" }
            )
        };
        let mut config = std::fs::read_to_string(&self.config)?;
        let install = if artifact {
            sh("install", true).replace("\"{version}\"]", "\"{version}\", \"{artifact}\"]")
        } else {
            sh("install", true)
        };
        config.push_str("\n[component.actions]\n");
        config.push_str(&format!("install = {install}\n"));
        config.push_str(&format!("stop_services = {}\n", sh("stop", false)));
        config.push_str(&format!("start_services = {}\n", sh("start", false)));
        config.push_str(&format!("restart = {}\n", sh("restart", false)));
        if config.contains("role = \"server\"") {
            config.push_str(&format!("backup = {}\n", sh("backup", false)));
            config.push_str(&format!(
                "reactivate_databases = {}\n",
                sh("reactivate", true)
            ));
        }
        set_file(&self.config, &config)?;
        self.restart()
    }

    /// Takes the command for `action` (e.g. `reactivate_databases`) out of
    /// the agent's configuration and restarts it: on this host that step
    /// becomes an operator task.
    pub fn without_action(&mut self, action: &str) -> Result<()> {
        let config = std::fs::read_to_string(&self.config)?;
        let prefix = format!("{action} = ");
        if !config.lines().any(|l| l.starts_with(&prefix)) {
            bail!("{} has no `{action}` action", self.config.display());
        }
        let kept: Vec<&str> = config.lines().filter(|l| !l.starts_with(&prefix)).collect();
        set_file(&self.config, &(kept.join("\n") + "\n"))?;
        self.restart()
    }

    /// Gives the agent's component post-update health checks (the body of
    /// `[component.health]`, e.g. `tcp = ["127.0.0.1:11011"]`) and
    /// restarts it.
    pub fn with_health(&mut self, body: &str) -> Result<()> {
        let mut config = std::fs::read_to_string(&self.config)?;
        config.push_str(&format!("\n[component.health]\n{body}\n"));
        set_file(&self.config, &config)?;
        self.restart()
    }

    /// Makes the server's backup action name where its backups land
    /// (`DIR/backups`, `{database}_*.bak`: the stand-in backup writes one
    /// file there per database in `databases.json`, but none with the file
    /// `backup-writes-nothing`, and none for a database named on a line of
    /// the file `backup-skips`) and restarts it.
    pub fn with_backup_location(&mut self) -> Result<()> {
        let backups = self.dir.join("backups");
        std::fs::create_dir_all(&backups)?;
        let config = std::fs::read_to_string(&self.config)?;
        let Some(at) = config.find("\nbackup = {") else {
            bail!("{} has no backup action", self.config.display());
        };
        let end = at + config[at..].find(" }\n").context("the backup line ends")?;
        let config = format!(
            "{}, backup_directory = {:?}, backup_pattern = \"{{database}}_*.bak\"{}",
            &config[..end],
            backups.display().to_string(),
            &config[end..]
        );
        set_file(&self.config, &config)?;
        self.restart()
    }

    /// Writes the Web Application package of `version` (a ZIP with its
    /// `version.txt` and an `index.html`) where the web agent looks for it.
    pub fn with_web_package(&self, version: &str) -> Result<()> {
        use std::io::Write;
        let path = self.dir.join(format!("WebApp-{version}.zip"));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
        let files = [
            ("version.txt", format!("{version}\n")),
            (
                "index.html",
                "<!doctype html><title>Password Secure</title>".to_owned(),
            ),
        ];
        for (name, text) in files {
            zip.start_file(name, zip::write::SimpleFileOptions::default())?;
            zip.write_all(text.as_bytes())?;
        }
        zip.finish()?;
        Ok(())
    }

    /// Lines of this host's `runs.log` (one per executed action).
    pub fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("runs.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// How many times an installer ran on this host.
    pub fn installs(&self) -> usize {
        self.runs()
            .iter()
            .filter(|l| l.contains(" install "))
            .count()
    }

    /// Changes what the version probe will read.
    pub fn set_version(&self, version: &str) -> Result<()> {
        set_file(&self.dir.join("VERSION"), &format!("{version}\n"))
    }
}

fn spawn_agent(config: &Path, dir: &Path) -> Result<Process> {
    let log = dir.join("agent.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let mut command = Command::new(binary("tierwise-agent"));
    if let Ok(boot) = std::fs::read_to_string(dir.join("boot_ms")) {
        command.env("TIERWISE_AGENT_BOOT_MS", boot.trim());
    }
    let child = command
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .context("start tierwise-agent")?;
    Ok(Process { child, log })
}

/// Replaces a file atomically, as an installer finishing would.
pub fn set_file(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", unique()));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `limit`
/// with the last state seen.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<(T, Duration)> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match check() {
            Ok(Some(value)) => return Ok((value, start.elapsed())),
            Ok(None) => {}
            Err(error) => last = format!("{error:#}"),
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}; last error: {last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The component of `role` in a host's JSON.
pub fn component<'a>(host: &'a Value, role: &str) -> Option<&'a Value> {
    host["components"]
        .as_array()?
        .iter()
        .find(|c| c["role"] == role)
}

/// A small installation for rollouts: a server with two databases, an
/// Apache web host and `clients` clients, all with stand-in installers
/// logging to `order`; the shipped catalogue imported and a licence set.
#[derive(Debug)]
pub struct Fleet {
    pub controller: Controller,
    pub server: Agent,
    pub web: Agent,
    pub clients: Vec<Agent>,
    pub order: PathBuf,
    pub root: tempfile::TempDir,
}

/// What a [`Fleet`] is made of.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub clients: usize,
    /// How long the server's stand-in install takes (`sleep` argument).
    pub server_delay: &'static str,
    /// How long a client's stand-in install takes.
    pub client_delay: &'static str,
    /// More flags for `tierwise serve`.
    pub controller_flags: Vec<&'static str>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            clients: 2,
            server_delay: "0.3",
            client_delay: "0.1",
            controller_flags: Vec::new(),
        }
    }
}

impl Fleet {
    /// Starts everything and waits until every agent is online.
    pub fn start(options: &FleetOptions) -> Result<Self> {
        let root = tempfile::tempdir()?;
        let controller = Controller::start_with(
            &root.path().join("controller"),
            "127.0.0.1:0",
            &options.controller_flags,
        )?;
        let url = controller.url();
        let order = root.path().join("order.log");
        let mut server = Agent::start(
            root.path(),
            &url,
            "srv-01",
            Plays::Server(vec![("PSDB", true, V931), ("Archive", true, V931)]),
            V931,
        )?;
        server.with_installers(&order, options.server_delay)?;
        let web = Agent::start(
            root.path(),
            &url,
            "web-01",
            Plays::Web { websocket: true },
            V931,
        )?;
        web.with_web_package(V263)?;
        let mut clients = Vec::new();
        for i in 1..=options.clients {
            let mut agent = Agent::start(
                root.path(),
                &url,
                &format!("cl-{i:03}"),
                Plays::Client,
                V931,
            )?;
            agent.with_installers(&order, options.client_delay)?;
            clients.push(agent);
        }
        let expected = options.clients + 2;
        wait_for("agents online", Duration::from_secs(30), || {
            let hosts = controller.hosts()?;
            Ok(
                (hosts.len() == expected && hosts.iter().all(|h| h["online"] == true))
                    .then_some(()),
            )
        })?;
        controller.cli(&["releases", "import", &catalogue_path()])?;
        controller.license("prod")?;
        Ok(Self {
            controller,
            server,
            web,
            clients,
            order,
            root,
        })
    }
}

/// A fresh PostgreSQL database for one test, dropped at the end; `None`
/// (the test is skipped) without `TIERWISE_TEST_POSTGRES_URL`, unless
/// `TIERWISE_REQUIRE_POSTGRES` says it must run.
#[derive(Debug)]
pub struct Database {
    admin: String,
    name: String,
    /// The database's connect string, for `--database-url`.
    pub url: String,
}

impl Database {
    /// Creates the database (see the type).
    pub fn create() -> anyhow::Result<Option<Self>> {
        let Ok(admin) = std::env::var("TIERWISE_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("TIERWISE_REQUIRE_POSTGRES").is_err(),
                "TIERWISE_REQUIRE_POSTGRES is set but TIERWISE_TEST_POSTGRES_URL is not"
            );
            eprintln!("skipping: set TIERWISE_TEST_POSTGRES_URL to run this on PostgreSQL");
            return Ok(None);
        };
        let name = format!("tw_e2e_{:08x}", std::process::id() ^ rand_part());
        psql(&admin, &format!("CREATE DATABASE {name}"))?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Ok(Some(Self {
            url: format!("{base}/{name}"),
            admin,
            name,
        }))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE {} WITH (FORCE)", self.name),
        );
    }
}

fn rand_part() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// Runs one SQL statement with `psql`.
pub fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
