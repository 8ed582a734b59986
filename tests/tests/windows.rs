//! The Windows agent end to end, as central IT deploys it, on the real
//! Windows binary under Wine: a fresh Wine prefix, the agent's MSI installed
//! with `msiexec /qn`, settings written under the policy key as Group Policy
//! would, the service started by the installer; the Linux controller lists
//! the host with the client version the registry probe reads from an
//! Uninstall entry; a rollout updates that client by running `msiexec` on a
//! stand-in vendor MSI; a newer agent MSI installed over the old one keeps
//! the host's identity.
//!
//! Needs the cross-built agent (`cargo build --profile agent --target
//! x86_64-pc-windows-gnu -p tierwise-agent`, or TIERWISE_WINDOWS_AGENT_EXE)
//! and Wine, wixl and msitools (`scripts/install-windows-toolchain`). Without
//! them it says so and passes, unless TIERWISE_REQUIRE_WINDOWS_TOOLS=1 (CI).

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tierwise_e2e::{
    catalogue_path, component, keys, public_key, wait_for, Agent, Controller, Plays, V263, V931,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The agent exe, or why the test cannot run here.
fn prerequisites() -> std::result::Result<PathBuf, String> {
    let exe = std::env::var_os("TIERWISE_WINDOWS_AGENT_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/x86_64-pc-windows-gnu/agent/tierwise-agent.exe"));
    let missing: Vec<&str> = [
        "wine",
        "wineserver",
        "wixl",
        "msiinfo",
        "x86_64-w64-mingw32-gcc",
    ]
    .into_iter()
    .filter(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
    })
    .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} not found (scripts/install-windows-toolchain)",
            missing.join(", ")
        ));
    }
    if !exe.is_file() {
        return Err(format!(
            "no Windows agent at {} (cargo build --profile agent --target x86_64-pc-windows-gnu -p tierwise-agent)",
            exe.display()
        ));
    }
    Ok(exe)
}

/// The agent exe; `None` (the test then passes, saying it skipped) when
/// the Windows tools or the cross-built agent are missing, unless
/// TIERWISE_REQUIRE_WINDOWS_TOOLS is set (CI), which makes that a failure.
fn windows_agent() -> Result<Option<PathBuf>> {
    match prerequisites() {
        Ok(exe) => Ok(Some(exe)),
        Err(why) if std::env::var_os("TIERWISE_REQUIRE_WINDOWS_TOOLS").is_none() => {
            eprintln!("skipped: {why}");
            Ok(None)
        }
        Err(why) => bail!("TIERWISE_REQUIRE_WINDOWS_TOOLS is set but {why}"),
    }
}

/// A Wine prefix of its own, with one ordinary process kept alive so that
/// Wine does not end the services when the last one exits.
struct Wine {
    prefix: PathBuf,
    keepalive: Child,
}

impl Wine {
    fn new(prefix: &Path) -> Result<Self> {
        // Output through a file, for the reason `run` gives.
        let log = tempfile::NamedTempFile::new()?;
        let status = Command::new(repo().join("scripts/wine-prefix"))
            .arg(prefix)
            .stdin(Stdio::null())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?)
            .status()?;
        if !status.success() {
            bail!(
                "wine-prefix failed: {}",
                std::fs::read_to_string(log.path())?
            );
        }
        let keepalive = Self::command_in(prefix, "wine")
            .args(["ping", "-n", "3600", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self {
            prefix: prefix.to_path_buf(),
            keepalive,
        })
    }

    fn command_in(prefix: &Path, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("WINEPREFIX", prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("DISPLAY")
            .stdin(Stdio::null());
        command
    }

    /// `wine ARGS`, its output through files: Wine may start its services
    /// from this very command, and they inherit its standard handles and
    /// live on, so a pipe would never reach its end.
    fn run(&self, args: &[&str]) -> Result<Output> {
        let out = tempfile::NamedTempFile::new()?;
        let err = tempfile::NamedTempFile::new()?;
        let status = Self::command_in(&self.prefix, "wine")
            .args(args)
            .stdout(out.reopen()?)
            .stderr(err.reopen()?)
            .status()?;
        Ok(Output {
            status,
            stdout: std::fs::read(out.path())?,
            stderr: std::fs::read(err.path())?,
        })
    }

    /// `wine ARGS` that must succeed.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!(
                "wine {args:?} exited with {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Writes a registry value as Group Policy would. Wine's `reg.exe` has
    /// been seen, once in CI under load, to exit 1 without a word on a value
    /// it wrote fine every other time; the write is idempotent (`/f`) and
    /// stands in for Group Policy rather than being under test, so a failed
    /// attempt is reported and tried again, twice at most, before the test
    /// fails with every attempt's output.
    fn reg_add(&self, key: &str, name: &str, kind: &str, data: &str) -> Result<()> {
        let args = ["reg", "add", key, "/v", name, "/t", kind, "/d", data, "/f"];
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            let out = self.run(&args)?;
            if out.status.success() {
                return Ok(());
            }
            let said = format!(
                "attempt {attempt}: {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("wine {args:?} failed, {said}");
            failures.push(said);
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!("wine {args:?} failed: {}", failures.join("; "))
    }

    /// A path inside the prefix's C: drive.
    fn c(&self, path: &str) -> PathBuf {
        self.prefix.join("drive_c").join(path)
    }

    /// The resident memory of the running service process, in KiB.
    fn service_rss_kib(&self) -> Option<u64> {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("tierwise-agent.exe") && cmdline.contains("--service") {
                let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
                if !String::from_utf8_lossy(&environ)
                    .contains(&format!("WINEPREFIX={}", self.prefix.display()))
                {
                    continue;
                }
                let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
                return status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            }
        }
        None
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = self.keepalive.kill();
        let _ = self.keepalive.wait();
        let _ = Self::command_in(&self.prefix, "wineserver")
            .arg("-k")
            .status();
    }
}

const POLICY: &str = r"HKLM\SOFTWARE\Policies\Tierwise\Agent";
const UNINSTALL: &str =
    r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\NetwrixPasswordSecureClient";

fn build_msi(exe: &Path, version: &str, out: &Path) -> Result<()> {
    let status = Command::new(repo().join("scripts/build-msi"))
        .arg("--exe")
        .arg(exe)
        .args(["--version", version, "--out"])
        .arg(out)
        .status()?;
    anyhow::ensure!(status.success(), "build-msi {version} failed");
    Ok(())
}

fn sha256(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(path).output()?;
    Ok(String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .context("sha256sum printed nothing")?
        .to_owned())
}

fn client_version(controller: &Controller, host: &str) -> Result<Option<String>> {
    Ok(controller.host(host)?.and_then(|h| {
        component(&h, "client").and_then(|c| c["version"].as_str().map(str::to_owned))
    }))
}

#[test]
fn the_windows_agent_is_deployed_by_msi_and_policy_and_updates_its_client() -> Result<()> {
    let Some(exe) = windows_agent()? else {
        return Ok(());
    };
    let started = Instant::now();
    let root = tempfile::tempdir()?;

    // The installation's server on Linux, and the catalogue with the
    // stand-in vendor client MSI as the client artifact of 26.3.100.
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    let url = controller.url();
    let order = root.path().join("order.log");
    let mut server = Agent::start(
        root.path(),
        &url,
        "srv-01",
        Plays::Server(vec![("PSDB", true, V931)]),
        V931,
    )?;
    server.with_installers(&order, "0.1")?;
    controller.wait_online("srv-01", true, Duration::from_secs(30))?;
    controller.license("prod")?;
    let vendor_msi = root.path().join("PasswordSecure_Client_26.3.100.msi");
    let out = Command::new("wixl")
        .args(["-a", "x64", "-D", &format!("Version={V263}"), "-o"])
        .arg(&vendor_msi)
        .arg(repo().join("deploy/windows/test/password-secure-client.wxs"))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "wixl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha = sha256(&vendor_msi)?;
    let catalogue =
        tierwise_e2e::catalogue_with_client_artifact("PasswordSecure_Client_26.3.100.msi", &sha)?;
    let catalogue_file = root.path().join("catalogue.toml");
    std::fs::write(&catalogue_file, catalogue)?;
    controller.cli(&["releases", "import", catalogue_file.to_str().unwrap()])?;
    controller.cli(&[
        "artifacts",
        "add",
        vendor_msi.to_str().unwrap(),
        "--release",
        V263,
        "--component",
        "client",
    ])?;
    // Signed offline: a root, a release key, and the metadata for this
    // catalogue and the vendor's client MSI.
    let offline = root.path().join("offline");
    std::fs::create_dir_all(&offline)?;
    keys(&offline, &["create", "root.key"])?;
    let release_public = public_key(&keys(&offline, &["create", "release.key"])?)?;
    keys(
        &offline,
        &[
            "root",
            "--out",
            "root-1.json",
            "--version",
            "1",
            "--root-key",
            "root.key",
            "--release-public",
            &release_public,
        ],
    )?;
    let release_root = keys(&offline, &["fingerprint", "root-1.json"])?
        .trim()
        .to_owned();
    keys(
        &offline,
        &[
            "release",
            "--out",
            "release-1.json",
            "--version",
            "1",
            "--key",
            "release.key",
            "--catalogue",
            catalogue_file.to_str().unwrap(),
            "--installer",
            &format!("{}={V263}:client", vendor_msi.display()),
        ],
    )?;
    controller.cli(&[
        "releases",
        "metadata",
        "import",
        "--root",
        offline.join("root-1.json").to_str().unwrap(),
        "--release",
        offline.join("release-1.json").to_str().unwrap(),
    ])?;

    // The agent's MSI twice: the version to deploy and the next one.
    let msi_old = root.path().join("tierwise-agent-0.1.0.msi");
    let msi_new = root.path().join("tierwise-agent-0.1.1.msi");
    build_msi(&exe, "0.1.0", &msi_old)?;
    build_msi(&exe, "0.1.1", &msi_new)?;
    let msi_bytes = std::fs::metadata(&msi_old)?.len();

    // A fresh Windows: the Password Secure client 9.3.1 is installed, and
    // Group Policy has written the agent's settings.
    let prefix_started = Instant::now();
    let wine = Wine::new(&root.path().join("wine"))?;
    let prefix_took = prefix_started.elapsed();
    wine.reg_add(
        UNINSTALL,
        "DisplayName",
        "REG_SZ",
        "Netwrix Password Secure",
    )?;
    wine.reg_add(UNINSTALL, "DisplayVersion", "REG_SZ", V931)?;
    let token = controller.cli(&[
        "tokens",
        "create",
        "--installation",
        "prod",
        "--uses",
        "50",
        "--expires",
        "1h",
    ])?;
    let fingerprint = controller.cli(&["pki", "show", "--fingerprint"])?;
    wine.reg_add(POLICY, "Controller", "REG_SZ", &url)?;
    wine.reg_add(POLICY, "CaFingerprint", "REG_SZ", fingerprint.trim())?;
    // Only installers signed from this root run on the client.
    wine.reg_add(POLICY, "ReleaseRootFingerprint", "REG_SZ", &release_root)?;
    wine.reg_add(POLICY, "Installation", "REG_SZ", "prod")?;
    wine.reg_add(POLICY, "EnrollmentToken", "REG_SZ", token.trim())?;
    wine.reg_add(POLICY, "HostId", "REG_SZ", "win-cl-01")?;
    wine.reg_add(POLICY, "HeartbeatSeconds", "REG_DWORD", "5")?;
    wine.reg_add(POLICY, "ProbeSeconds", "REG_DWORD", "2")?;
    let client = format!(r"{POLICY}\Components\Client");
    wine.reg_add(
        &client,
        "VersionRegistry",
        "REG_SZ",
        "^Netwrix Password Secure$",
    )?;
    // After its install the client's health: the agent's own service runs
    // and the controller (standing in for the application server) answers.
    wine.reg_add(&client, "HealthServices", "REG_MULTI_SZ", "TierwiseAgent")?;
    let controller_port = url.rsplit(':').next().context("port")?;
    wine.reg_add(
        &client,
        "HealthTcp",
        "REG_MULTI_SZ",
        &format!("127.0.0.1:{controller_port}"),
    )?;
    wine.reg_add(
        &client,
        "InstallCommand",
        "REG_MULTI_SZ",
        r"msiexec\0/i\0{artifact}\0/qn\0/norestart\0/l*v\0C:\ProgramData\Tierwise\Agent\logs\client-{version}.log\0INSTALL_WIN_APP=1\0INSTALL_AUTOFILL_ADDON=0",
    )?;

    // Install the agent as Group Policy Software Installation would.
    let installing = Instant::now();
    wine.ok(&["msiexec", "/i", msi_old.to_str().unwrap(), "/qn"])?;
    let took = controller.wait_online("win-cl-01", true, Duration::from_secs(60))?;
    let to_online = installing.elapsed();
    let state = wine.ok(&["sc", "query", "TierwiseAgent"])?;
    assert!(state.contains("RUNNING"), "{state}");
    let host = controller.host("win-cl-01")?.context("listed")?;
    assert_eq!(host["installation"], "prod");
    // The service reports when the machine started (restarts are verified
    // by it).
    assert!(
        host["boot_time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{host}"
    );
    assert_eq!(
        client_version(&controller, "win-cl-01")?.as_deref(),
        Some(V931),
        "{host}"
    );
    let log_file = wine.c(r"ProgramData/Tierwise/Agent/logs/agent.log");
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(
        log.contains("service running"),
        "the service logs to its file:\n{log}"
    );
    let rss = wine.service_rss_kib();
    let acl = if log.contains("cannot restrict the state directory") {
        "refused"
    } else {
        "set"
    };

    // Roll the installation out; the Windows client runs the vendor MSI.
    let rollout_started = Instant::now();
    controller.rollout_start(&[])?;
    let wait = wait_for("the rollout to complete", Duration::from_secs(180), || {
        let status = controller.rollout_status()?;
        match status["state"].as_str() {
            Some("completed") => Ok(Some(())),
            Some("failed") | Some("aborted") => bail!("rollout ended: {status}"),
            _ => Ok(None),
        }
    });
    if let Err(error) = wait {
        let status = controller.cli(&["rollout", "status"]).unwrap_or_default();
        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
        bail!("{error}\n{status}\nagent log:\n{log}");
    }
    let rollout_took = rollout_started.elapsed();
    assert_eq!(
        client_version(&controller, "win-cl-01")?.as_deref(),
        Some(V263)
    );
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(
        log.contains("installer verified against signed release metadata"),
        "the Windows agent checked the signed metadata before msiexec ran:\n{log}"
    );
    assert!(wine
        .c("ProgramData/Tierwise/Agent/release-trust.json")
        .is_file());
    assert!(
        log.contains("ok   service TierwiseAgent: running")
            && log.contains(&format!("ok   tcp 127.0.0.1:{controller_port}")),
        "the client's health checks, set by Group Policy, ran after its install:\n{log}"
    );
    let entry = wine.ok(&["reg", "query", UNINSTALL])?;
    assert!(
        entry.contains("INSTALL_WIN_APP=1 INSTALL_AUTOFILL_ADDON=0"),
        "the vendor properties reached the installer: {entry}"
    );
    assert!(
        wine.c(&format!(
            "ProgramData/Tierwise/Agent/logs/client-{V263}.log"
        ))
        .is_file(),
        "msiexec wrote its verbose log where the command said"
    );

    // A newer agent MSI over the old one: same identity, no new enrollment.
    let identity = wine.c("ProgramData/Tierwise/Agent/identity/agent.pem");
    let certificate_before = std::fs::read(&identity)?;
    let uses = |c: &Controller| -> Result<u64> {
        let tokens: serde_json::Value =
            serde_json::from_str(&c.cli(&["tokens", "list", "--json"])?)?;
        Ok(tokens
            .as_array()
            .context("tokens")?
            .iter()
            .filter(|t| t["installation"] == "prod")
            .map(|t| t["uses"].as_u64().unwrap_or(0))
            .sum())
    };
    let uses_before = uses(&controller)?;
    let sessions_before = log_count(&controller, "win-cl-01");
    wine.ok(&["msiexec", "/i", msi_new.to_str().unwrap(), "/qn"])?;
    wait_for(
        "the upgraded agent back online",
        Duration::from_secs(60),
        || {
            Ok((log_count(&controller, "win-cl-01") > sessions_before
                && controller
                    .host("win-cl-01")?
                    .is_some_and(|h| h["online"] == true))
            .then_some(()))
        },
    )?;
    assert!(wine
        .ok(&["sc", "query", "TierwiseAgent"])?
        .contains("RUNNING"));
    assert_eq!(
        std::fs::read(&identity)?,
        certificate_before,
        "the certificate is kept"
    );
    assert_eq!(uses(&controller)?, uses_before, "no second enrollment");
    assert_eq!(count_lines(&controller, "win-cl-01", "agent enrolled"), 1);
    let products = wine.ok(&[
        "reg",
        "query",
        r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
        "/s",
    ])?;
    assert!(
        products.contains("0.1.1") && !products.contains("DisplayVersion    REG_SZ    0.1.0"),
        "{products}"
    );

    // Stopping the service drains and says so.
    wine.ok(&["net", "stop", "TierwiseAgent"])?;
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(log.contains("agent stopped"), "{log}");

    eprintln!(
        "windows figures: MSI {msi_bytes} bytes; fresh Wine prefix {:.1} s; msiexec to online {:.1} s (controller saw it after {:.1} s of waiting); service RSS under Wine {} KiB; state directory ACL {acl}; rollout (server, databases, Windows client) {:.1} s; whole test {:.1} s",
        prefix_took.as_secs_f64(),
        to_online.as_secs_f64(),
        took.as_secs_f64(),
        rss.map_or("unknown".into(), |r| r.to_string()),
        rollout_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How many sessions the controller opened for `host` (its log says so once
/// per session).
fn log_count(controller: &Controller, host: &str) -> usize {
    count_lines(controller, host, "agent connected")
}

fn count_lines(controller: &Controller, host: &str, what: &str) -> usize {
    controller
        .process
        .log_text()
        .lines()
        .filter(|l| l.contains(&format!("host_id={host}")) && l.contains(what))
        .count()
}

/// Zero-touch: an agent with no components configured and `installation =
/// "auto"` finds the Password Secure client itself, reports the server its
/// database profile names, and the controller places it — first by the
/// operator's mapping, then by the server host it names — and only a placed
/// client is part of a plan.
#[test]
fn a_discovered_client_is_placed_by_the_server_it_names() -> Result<()> {
    let Some(exe) = windows_agent()? else {
        return Ok(());
    };
    let root = tempfile::tempdir()?;
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    let url = controller.url();
    let _server = Agent::start(
        root.path(),
        &url,
        "srv-01",
        Plays::Server(vec![("PSDB", true, V931)]),
        V931,
    )?;
    controller.wait_online("srv-01", true, Duration::from_secs(30))?;
    controller.cli(&["releases", "import", &catalogue_path()])?;
    controller.license("prod")?;
    let msi = root.path().join("tierwise-agent-0.1.0.msi");
    build_msi(&exe, "0.1.0", &msi)?;

    let wine = Wine::new(&root.path().join("wine"))?;
    wine.reg_add(
        UNINSTALL,
        "DisplayName",
        "REG_SZ",
        "Netwrix Password Secure",
    )?;
    wine.reg_add(UNINSTALL, "DisplayVersion", "REG_SZ", V931)?;
    wine.reg_add(UNINSTALL, "Publisher", "REG_SZ", "Netwrix Corporation")?;
    let profile = r"HKLM\SOFTWARE\MATESO\Password Safe and Repository 8\DatabaseProfiles\Prod";
    wine.reg_add(profile, "HostIP", "REG_SZ", "ps-elsewhere.corp.example")?;
    wine.reg_add(profile, "DatabaseName", "REG_SZ", "PSDB")?;
    // One token for the whole OU, not bound to an installation; no component.
    let token = controller.cli(&["tokens", "create", "--uses", "50", "--expires", "1h"])?;
    let fingerprint = controller.cli(&["pki", "show", "--fingerprint"])?;
    wine.reg_add(POLICY, "Controller", "REG_SZ", &url)?;
    wine.reg_add(POLICY, "CaFingerprint", "REG_SZ", fingerprint.trim())?;
    wine.reg_add(POLICY, "Installation", "REG_SZ", "auto")?;
    wine.reg_add(POLICY, "EnrollmentToken", "REG_SZ", token.trim())?;
    wine.reg_add(POLICY, "HostId", "REG_SZ", "win-auto-01")?;
    wine.reg_add(POLICY, "ProbeSeconds", "REG_DWORD", "1")?;
    wine.ok(&["msiexec", "/i", msi.to_str().unwrap(), "/qn"])?;
    controller.wait_online("win-auto-01", true, Duration::from_secs(60))?;

    // Its server is unknown: unassigned, with the reason, in no plan.
    let host = controller.host("win-auto-01")?.context("listed")?;
    assert_eq!(host["placement"], "unassigned", "{host}");
    assert!(
        host["placement_note"]
            .as_str()
            .unwrap_or_default()
            .contains("tierwise installations map ps-elsewhere.corp.example INSTALLATION"),
        "{host}"
    );
    let client = component(&host, "client").context("client discovered")?;
    assert_eq!(client["version"], V931);
    assert_eq!(
        client["database_profiles"][0]["host"],
        "ps-elsewhere.corp.example"
    );
    let listed = controller.cli(&["hosts", "list"])?;
    assert!(listed.contains("unassigned"), "{listed}");
    let plan = |c: &Controller| -> Result<String> {
        let out = c.cli_output(&[
            "rollout",
            "plan",
            "--installation",
            "prod",
            "--to",
            V263,
            "--json",
        ])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert!(
        !plan(&controller)?.contains("win-auto-01"),
        "an unassigned client is in no plan"
    );

    // The operator maps the address: placed at once.
    controller.cli(&["installations", "map", "PS-Elsewhere.corp.example", "prod"])?;
    let host = controller.host("win-auto-01")?.context("listed")?;
    assert_eq!(
        (host["installation"].as_str(), host["placement"].as_str()),
        (Some("prod"), Some("placed"))
    );
    assert_eq!(host["placement_note"], "mapping ps-elsewhere.corp.example");
    assert!(
        plan(&controller)?.contains("win-auto-01"),
        "a placed client is planned"
    );
    let maps: serde_json::Value =
        serde_json::from_str(&controller.cli(&["installations", "maps", "--json"])?)?;
    assert_eq!(maps[0]["installation"], "prod");

    // Without the mapping, the profile now names the server host itself.
    controller.cli(&["installations", "unmap", "ps-elsewhere.corp.example"])?;
    wine.reg_add(profile, "HostIP", "REG_SZ", "SRV-01")?;
    let (placed, _) = wait_for(
        "placement by the server host",
        Duration::from_secs(30),
        || {
            let host = controller.host("win-auto-01")?.context("listed")?;
            Ok((host["placement_note"] == "server srv-01").then_some(host))
        },
    )?;
    assert_eq!(placed["installation"], "prod");
    Ok(())
}

/// `tierwise-agent service install|start|stop|uninstall`, for installs
/// without the MSI, on the real Service Control Manager of Wine.
#[test]
fn the_service_commands_install_run_stop_and_remove_the_service() -> Result<()> {
    let Some(exe) = windows_agent()? else {
        return Ok(());
    };
    let root = tempfile::tempdir()?;
    let wine = Wine::new(&root.path().join("wine"))?;
    std::fs::create_dir_all(wine.c("tw"))?;
    std::fs::copy(&exe, wine.c("tw/tierwise-agent.exe"))?;
    // No controller answers here: the service runs and keeps retrying.
    std::fs::write(
        wine.c("tw/agent.toml"),
        format!(
            "controller = \"https://127.0.0.1:9\"\ninstallation = \"prod\"\nhost_id = \"svc-01\"\n\
             enrollment_token = \"twe_0123456789abcdef_0123\"\nca_fingerprint = \"{}\"\n",
            ["AB"; 32].join(":")
        ),
    )?;
    let agent = r"C:\tw\tierwise-agent.exe";
    let said = wine.ok(&[agent, "service", "install", "--config", r"C:\tw\agent.toml"])?;
    assert!(
        said.contains("installed the service TierwiseAgent"),
        "{said}"
    );
    let again = wine.run(&[agent, "service", "install"])?;
    assert!(!again.status.success(), "a second install is refused");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("service uninstall"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    wine.ok(&[agent, "service", "start"])?;
    wait_for("the service running", Duration::from_secs(30), || {
        Ok(wine
            .ok(&["sc", "query", "TierwiseAgent"])?
            .contains("RUNNING")
            .then_some(()))
    })?;
    let log_file = wine.c("ProgramData/Tierwise/Agent/logs/agent.log");
    wait_for(
        "the agent retrying enrollment",
        Duration::from_secs(30),
        || {
            let log = std::fs::read_to_string(&log_file).unwrap_or_default();
            Ok(log.contains("no certificate yet").then_some(()))
        },
    )?;
    let stopped = wine.ok(&[agent, "service", "stop"])?;
    assert!(stopped.contains("stopped TierwiseAgent"), "{stopped}");
    assert!(std::fs::read_to_string(&log_file)?.contains("agent stopped cause=Stop"));
    let removed = wine.ok(&[agent, "service", "uninstall"])?;
    assert!(removed.contains("removed TierwiseAgent"), "{removed}");
    assert!(!wine
        .run(&["sc", "query", "TierwiseAgent"])?
        .status
        .success());
    Ok(())
}

/// A Windows program started under Wine (here the agent in a console), ended
/// when the test ends however it ends.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server's actions in `C:\ps`, standing in for the vendor's: each run
/// appends "ACTION VERSION" to `events.log` (where the stand-in services
/// also write when they change state, so the log is one timeline); install
/// sets the version the probe reads and leaves the marker `installed-VERSION`;
/// reactivate marks the database active at the new patch level. A space
/// stands before each `>`: in cmd a digit right before it would name a handle.
const SERVER_STEPS_CMD: &str = "@echo off\r\n\
echo %1 %2 >> C:\\ps\\events.log\r\n\
if \"%1\"==\"install\" (\r\n\
  echo %2 > C:\\ps\\VERSION\r\n\
  echo %2 > C:\\ps\\installed-%2\r\n\
)\r\n\
if \"%1\"==\"reactivate\" (\r\n\
  echo [{\"name\": \"PSDB\", \"active\": true, \"patch_level\": \"%2\"}] > C:\\ps\\databases.json\r\n\
)\r\n\
exit /b 0\r\n";

/// `stop_services` and `start_services` as `windows_services`, on Wine's real
/// Service Control Manager (and `deploy/agent/server-windows.toml` accepted
/// by the Windows agent): two services made with `sc create` as field
/// scripts name Password Secure's (the backup service depending on the
/// server service), run by a stand-in service program
/// (`deploy/windows/test/password-secure-service.c`), and the Windows agent
/// as the primary server. Its configuration lists them the wrong way round
/// for both steps; the agent asks the SCM for their dependencies, stops the
/// backup service first and starts it last, the installer running in
/// between with both stopped, and the rollout completes. Then the backup
/// service hangs (it ignores stop requests): the next rollout's
/// `stop_services` fails within its time limit naming it and its state, the
/// server service is left running, and the rollout halts before its
/// installer runs.
#[test]
fn windows_services_stop_in_dependency_order_and_one_that_hangs_halts_the_rollout() -> Result<()> {
    let Some(exe) = windows_agent()? else {
        return Ok(());
    };
    let started = Instant::now();
    let root = tempfile::tempdir()?;
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    controller.cli(&["releases", "import", &catalogue_path()])?;
    let wine = Wine::new(&root.path().join("wine"))?;

    // The primary server: its version and databases, its actions, and the
    // two services, running.
    let ps = wine.c("ps");
    std::fs::create_dir_all(&ps)?;
    std::fs::create_dir_all(wine.c("tw"))?;
    std::fs::copy(&exe, wine.c("tw/tierwise-agent.exe"))?;
    let out = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(ps.join("password-secure-service.exe"))
        .arg(repo().join("deploy/windows/test/password-secure-service.c"))
        .arg("-ladvapi32")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the stand-in service did not compile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(ps.join("VERSION"), format!("{V931}\n"))?;
    std::fs::write(
        ps.join("databases.json"),
        format!(r#"[{{"name": "PSDB", "active": true, "patch_level": "{V931}"}}]"#),
    )?;
    std::fs::write(ps.join("steps.cmd"), SERVER_STEPS_CMD)?;
    let binary_path = |name: &str| {
        format!(r"C:\ps\password-secure-service.exe {name} C:\ps\events.log C:\ps\hold-{name}")
    };
    wine.ok(&[
        "sc",
        "create",
        "PsrServer",
        "binpath=",
        &binary_path("PsrServer"),
    ])?;
    // Wine's sc.exe hands `depend=`'s value to CreateService as it is, without
    // the second NUL that ends a list of dependencies (Windows' sc.exe builds
    // the list from names separated by `/`); the empty argument after it is
    // that NUL, or the list would run on into whatever follows in memory.
    wine.ok(&[
        "sc",
        "create",
        "PsrBackupService",
        "binpath=",
        &binary_path("PsrBackupService"),
        "depend=",
        "PsrServer",
        "",
    ])?;
    for name in ["PsrServer", "PsrBackupService"] {
        wine.ok(&["sc", "start", name])?;
    }
    // The shipped example for such a server is what the Windows agent takes.
    let example = repo()
        .join("deploy/agent/server-windows.toml")
        .canonicalize()?;
    let example = format!("Z:{}", example.display()).replace('/', "\\");
    let checked: serde_json::Value = serde_json::from_str(&wine.ok(&[
        r"C:\tw\tierwise-agent.exe",
        "--check",
        "--config",
        &example,
    ])?)?;
    let stop = checked["settings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["key"] == "component.server.actions.stop_services")
        .with_context(|| format!("{checked}"))?;
    assert_eq!(
        stop["value"],
        r#"{ timeout_seconds = 300, windows_services = ["PsrBackupService", "PsrServer"] }"#
    );
    let running =
        |name: &str| -> Result<bool> { Ok(wine.ok(&["sc", "query", name])?.contains("RUNNING")) };
    wait_for("both services running", Duration::from_secs(30), || {
        Ok((running("PsrServer")? && running("PsrBackupService")?).then_some(()))
    })?;

    let token = controller.cli(&[
        "tokens",
        "create",
        "--installation",
        "prod",
        "--uses",
        "1",
        "--expires",
        "1h",
    ])?;
    let fingerprint = controller.cli(&["pki", "show", "--fingerprint"])?;
    let steps = |action: &str, version: bool| {
        format!(
            r#"{{ command = ["cmd", "/c", 'C:\ps\steps.cmd', "{action}"{}], timeout_seconds = 60 }}"#,
            if version { r#", "{version}""# } else { "" }
        )
    };
    // Both lists the wrong way round: the order must come from the SCM.
    let config = format!(
        "controller = {url:?}\nenrollment_token = {token:?}\nca_fingerprint = {fingerprint:?}\n\
         installation = \"prod\"\nhost_id = \"win-srv-01\"\nheartbeat_seconds = 1\nprobe_seconds = 1\n\
         reconnect_max_seconds = 2\nstate_dir = 'C:\\ps\\state'\n\n\
         [[component]]\nrole = \"server\"\nversion = {{ file = 'C:\\ps\\VERSION' }}\n\
         databases = {{ file = 'C:\\ps\\databases.json' }}\n\n\
         [component.actions]\nbackup = {backup}\n\
         stop_services = {{ windows_services = [\"PsrServer\", \"PsrBackupService\"], timeout_seconds = 10 }}\n\
         install = {install}\n\
         start_services = {{ windows_services = [\"PsrBackupService\", \"PsrServer\"], timeout_seconds = 30 }}\n\
         reactivate_databases = {reactivate}\n\n\
         [component.health]\nservices = [\"PsrServer\", \"PsrBackupService\"]\nwait_seconds = 30\n",
        url = controller.url(),
        token = token.trim(),
        fingerprint = fingerprint.trim(),
        backup = steps("backup", false),
        install = steps("install", true),
        reactivate = steps("reactivate", true),
    );
    std::fs::write(ps.join("agent.toml"), config)?;
    let agent_log = root.path().join("agent.log");
    let log = std::fs::File::create(&agent_log)?;
    let _agent = Started(
        Wine::command_in(&wine.prefix, "wine")
            .args([r"C:\tw\tierwise-agent.exe", "--config", r"C:\ps\agent.toml"])
            .env("RUST_LOG", "info")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let agent_said = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    controller
        .wait_online("win-srv-01", true, Duration::from_secs(60))
        .with_context(agent_said)?;
    // The installation exists now that its server reported.
    controller.license("prod")?;
    let events = || -> Vec<String> {
        std::fs::read_to_string(ps.join("events.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let wait_for_state = |what: &str, state: &str| -> Result<serde_json::Value> {
        let waited = wait_for(what, Duration::from_secs(120), || {
            let status = controller.rollout_status()?;
            match status["state"].as_str() {
                Some(s) if s == state => Ok(Some(status)),
                Some("completed" | "failed" | "aborted") => bail!("rollout ended: {status}"),
                _ => Ok(None),
            }
        });
        waited.map(|(status, _)| status).map_err(|error| {
            let text = controller.cli(&["rollout", "status"]).unwrap_or_default();
            anyhow::anyhow!(
                "{error}\n{text}\nevents: {:?}\nagent log:\n{}",
                events(),
                agent_said()
            )
        })
    };

    // 1. The update: backup, the services stopped dependents first, the
    // installer, the services started dependencies first, the databases.
    let rollout_started = Instant::now();
    controller.rollout_start(&[])?;
    wait_for_state("the rollout to complete", "completed")?;
    let rollout_took = rollout_started.elapsed();
    let timeline = events();
    let at = |line: &str| {
        timeline
            .iter()
            .rposition(|l| l == line)
            .with_context(|| format!("no {line:?} in {timeline:?}"))
    };
    let expected = [
        "PsrBackupService stopping",
        "PsrBackupService stopped",
        "PsrServer stopping",
        "PsrServer stopped",
        &format!("install {V263}"),
        "PsrServer running",
        "PsrBackupService running",
        &format!("reactivate {V263}"),
    ];
    let positions = expected.iter().map(|l| at(l)).collect::<Result<Vec<_>>>()?;
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "in this order {expected:?}: {timeline:?}\nagent log:\n{}",
        agent_said()
    );
    assert!(ps.join(format!("installed-{V263}")).is_file());
    let log = agent_said();
    for line in [
        "stopping PsrBackupService, then PsrServer (services that depend on others first)",
        "PsrBackupService: RUNNING → STOP_PENDING → STOPPED in ",
        "PsrServer: RUNNING → STOP_PENDING → STOPPED in ",
        "starting PsrServer, then PsrBackupService (dependencies first)",
        "PsrBackupService: STOPPED → START_PENDING → RUNNING in ",
        "ok   service PsrBackupService: running",
    ] {
        assert!(log.contains(line), "{line:?} in the agent's log:\n{log}");
    }

    // 2. The backup service hangs: it ignores stop requests from now on.
    std::fs::write(ps.join("hold-PsrBackupService"), "")?;
    let halting = Instant::now();
    let out = controller.cli_output(&[
        "rollout",
        "start",
        "--installation",
        "prod",
        "--to",
        "26.4.10.34111",
        "--ack-server-manager-password",
        "--ack",
        "changelog",
    ])?;
    anyhow::ensure!(
        out.status.success(),
        "rollout start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = wait_for_state("the rollout to halt", "failed")?;
    let halted_after = halting.elapsed();
    let failure = &status["failures"][0];
    assert_eq!(failure["host_id"], "win-srv-01", "{status}");
    assert_eq!(failure["action"], "stop_services", "{status}");
    assert_eq!(
        failure["reason"],
        "PsrBackupService did not reach STOPPED within the step's time limit of 10 s; its last state: RUNNING",
        "{status}"
    );
    let output = failure["output_tail"].as_str().unwrap_or_default();
    assert!(
        output.contains("stopping PsrBackupService, then PsrServer"),
        "{output}"
    );
    // The installer never ran, and the server service was never asked to
    // stop while the service that depends on it still ran.
    assert!(!ps.join("installed-26.4.10.34111").exists());
    let timeline = events();
    assert!(
        !timeline.iter().any(|l| l.starts_with("install 26.4.10")),
        "{timeline:?}"
    );
    assert_eq!(
        timeline.last().map(String::as_str),
        Some("PsrBackupService ignored a stop request"),
        "{timeline:?}"
    );
    assert!(running("PsrServer")? && running("PsrBackupService")?);
    let text = controller.cli(&["rollout", "status"])?;
    assert!(
        text.contains("PsrBackupService did not reach STOPPED"),
        "{text}"
    );

    eprintln!(
        "windows services figures: rollout with both services stopped and started {:.1} s; halted on the hung service after {:.1} s; whole test {:.1} s",
        rollout_took.as_secs_f64(),
        halted_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
