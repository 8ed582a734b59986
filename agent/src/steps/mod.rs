//! Executing typed steps: each action maps to the command the agent's own
//! configuration defines for it; nothing the controller sends is ever run as
//! a command. Every step id is journaled before and after it runs.

pub mod backup;
pub mod download;
pub mod journal;
pub mod services;
pub mod signed;
pub mod web;

use crate::config::{ComponentSpec, ConfiguredAction, WindowsServicesAction};
use journal::{Journal, JournalEntry, JournalError, StepReport};
use std::path::Path;
use std::process::Stdio;
use tierwise_common::action::{interpret_exit_code, StepAction, StepOutcome};
use tierwise_runtime::clock::now_ms;
use tokio::io::AsyncReadExt;

/// How much of a command's output a report carries.
pub const OUTPUT_TAIL_BYTES: usize = 4096;

/// Runs steps for one agent, one at a time.
#[derive(Debug)]
pub struct Executor {
    journal: Journal,
    state_dir: std::path::PathBuf,
    components: Vec<ComponentSpec>,
}

/// The last `max` bytes of `bytes` as text, starting at a line if possible.
fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    let mut text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    if start > 0 {
        if let Some(newline) = text.find('\n') {
            text = text[newline + 1..].to_owned();
        }
    }
    text
}

/// Reads a pipe to its end, keeping only the last `OUTPUT_TAIL_BYTES`
/// (however much an installer prints).
async fn read_tail<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Vec<u8> {
    let mut kept: Vec<u8> = Vec::new();
    if let Some(mut pipe) = pipe {
        let mut buffer = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&kept);
            if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                progress(line.trim());
            }
            if kept.len() > 2 * OUTPUT_TAIL_BYTES {
                kept.drain(..kept.len() - OUTPUT_TAIL_BYTES);
            }
        }
    }
    kept
}

impl Executor {
    pub fn new(state_dir: &Path, components: Vec<ComponentSpec>) -> Result<Self, JournalError> {
        Ok(Self {
            journal: Journal::open(state_dir)?,
            state_dir: state_dir.to_path_buf(),
            components,
        })
    }

    /// Whether this attempt id is already in the journal (then `execute`
    /// answers from it without running anything).
    pub fn known(&self, step_id: &str) -> Result<bool, JournalError> {
        Ok(self.journal.get(step_id)?.is_some())
    }

    /// Records an attempt that failed before its command could run (e.g. its
    /// installer did not verify), so a redelivery answers the same.
    pub fn fail(
        &self,
        step_id: &str,
        action: &StepAction,
        outcome: StepOutcome,
        reason: String,
    ) -> Result<StepReport, JournalError> {
        let now = now_ms();
        let report = StepReport {
            step_id: step_id.to_owned(),
            outcome,
            exit_code: None,
            output_tail: String::new(),
            reason,
            started_ms: now,
            finished_ms: now,
            backups: Vec::new(),
        };
        self.journal.put(&JournalEntry {
            step_id: step_id.to_owned(),
            action: action.clone(),
            started_ms: now,
            finished: Some(report.clone()),
        })?;
        Ok(report)
    }

    fn web_deploy(&self) -> Option<web::WebDeploy> {
        self.components.iter().find_map(|c| match &c.facts {
            crate::config::FactsSpec::Web {
                server,
                docroot,
                websocket,
                web_app,
            } => Some(web::WebDeploy {
                server: *server,
                docroot: docroot.clone(),
                websocket: websocket.clone(),
                package: web_app.clone(),
            }),
            _ => None,
        })
    }

    /// Executes a step at most once. A step id already finished returns its
    /// recorded report; one that was running when the agent stopped is
    /// reported as interrupted and not run again.
    pub async fn execute(
        &self,
        step_id: &str,
        action: &StepAction,
        artifact: Option<&Path>,
    ) -> Result<StepReport, JournalError> {
        self.execute_reporting(step_id, action, artifact, &|_: &str| {})
            .await
    }

    /// As `execute`, calling `progress` with the latest line the command
    /// prints while it runs.
    pub async fn execute_reporting(
        &self,
        step_id: &str,
        action: &StepAction,
        artifact: Option<&Path>,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<StepReport, JournalError> {
        if let Some(entry) = self.journal.get(step_id)? {
            if let Some(report) = entry.finished {
                return Ok(report);
            }
            let report = StepReport::without_output(
                step_id,
                StepOutcome::Interrupted,
                "the agent stopped while this step ran; its effect is unknown — check the host, \
                 then retry or skip the step"
                    .into(),
                entry.started_ms,
            );
            self.journal.put(&JournalEntry {
                finished: Some(report.clone()),
                ..entry
            })?;
            return Ok(report);
        }
        let started_ms = now_ms();
        let entry = JournalEntry {
            step_id: step_id.to_owned(),
            action: action.clone(),
            started_ms,
            finished: None,
        };
        self.journal.put(&entry)?;
        let report = self
            .run(step_id, action, artifact, started_ms, progress)
            .await;
        self.journal.put(&JournalEntry {
            finished: Some(report.clone()),
            ..entry
        })?;
        Ok(report)
    }

    /// How long a step of this action may run: its command's or services'
    /// time limit (a web deployment has the default one), plus the wait of
    /// the health checks that follow it.
    pub fn time_limit(&self, action: &StepAction) -> std::time::Duration {
        let own = self.action_for(action).map_or(
            std::time::Duration::from_secs(u64::from(
                crate::config::DEFAULT_ACTION_TIMEOUT_SECONDS,
            )),
            ConfiguredAction::timeout,
        );
        own + self
            .health_for(action)
            .map_or(std::time::Duration::ZERO, |h| h.wait)
    }

    /// Where a backup step's backups land, when the server configures it.
    fn backup_location(&self, action: &StepAction) -> Option<&crate::config::BackupLocation> {
        (*action == StepAction::Backup)
            .then(|| {
                self.components
                    .iter()
                    .find(|c| c.role == tierwise_common::Role::Server)
            })
            .flatten()
            .and_then(|c| c.backup_location.as_ref())
    }

    /// The server's databases probe, which says what a backup must cover.
    fn databases_probe(&self) -> Option<&crate::config::DatabasesProbe> {
        self.components.iter().find_map(|c| match &c.facts {
            crate::config::FactsSpec::Server { databases } => databases.as_ref(),
            _ => None,
        })
    }

    /// The health checks that follow a step of this action, if any.
    fn health_for(&self, action: &StepAction) -> Option<&crate::config::HealthChecks> {
        action
            .health_checked()
            .and_then(|role| self.components.iter().find(|c| c.role == role))
            .and_then(|component| component.health.as_ref())
    }

    /// Journals a step that was still running when the agent had to stop
    /// before it ended, so it is reported as interrupted, never forgotten.
    pub fn interrupt(&self, step_id: &str, reason: String) -> Result<(), JournalError> {
        if let Some(entry) = self.journal.get(step_id)? {
            if entry.finished.is_none() {
                let report = StepReport::without_output(
                    step_id,
                    StepOutcome::Interrupted,
                    reason,
                    entry.started_ms,
                );
                self.journal.put(&JournalEntry {
                    finished: Some(report),
                    ..entry
                })?;
            }
        }
        Ok(())
    }

    fn action_for(&self, action: &StepAction) -> Result<&ConfiguredAction, String> {
        let role = action.role().ok_or("this action runs no command")?;
        let component = self
            .components
            .iter()
            .find(|c| c.role == role)
            .ok_or_else(|| format!("this host has no `{role}` component configured"))?;
        component.actions.get(action.config_key()).ok_or_else(|| {
            format!(
                "the agent's configuration defines no `{}` action for the `{role}` component; \
                 add [component.actions] {} = {{ command = [...] }}",
                action.config_key(),
                action.config_key()
            )
        })
    }

    /// Performs the step, then, when it left a component running again,
    /// that component's health checks: the step succeeds only if they pass.
    async fn run(
        &self,
        step_id: &str,
        action: &StepAction,
        artifact: Option<&Path>,
        started_ms: i64,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> StepReport {
        let mut report = self
            .perform(step_id, action, artifact, started_ms, progress)
            .await;
        if let Some(location) = self.backup_location(action) {
            // Whatever its exit code says, success needs the files.
            if report.outcome.succeeded() {
                verify_backup(&mut report, location, self.databases_probe(), started_ms).await;
            }
            return report;
        }
        let Some(checks) = self.health_for(action) else {
            return report;
        };
        match report.outcome {
            StepOutcome::Succeeded => {}
            StepOutcome::SucceededRestartRequired => {
                report.output_tail = with_health(
                    &report.output_tail,
                    &[
                        "health checks not run: the component is whole only after the restart"
                            .to_owned(),
                    ],
                );
                return report;
            }
            _ => return report,
        }
        tracing::info!(%step_id, "running health checks");
        let verdict = crate::health::verify(checks, progress).await;
        tracing::info!(
            %step_id,
            passed = verdict.passed,
            "health checks: {}",
            verdict.lines.join("; ")
        );
        report.output_tail = with_health(&report.output_tail, &verdict.lines);
        report.finished_ms = now_ms();
        if !verdict.passed {
            report.outcome = StepOutcome::Failed;
            report.reason = format!(
                "health check failed after {} s: {}",
                verdict.waited.as_secs(),
                verdict
                    .first_failure()
                    .unwrap_or("a check failed")
                    .trim_start_matches("FAIL ")
            );
        }
        report
    }

    async fn perform(
        &self,
        step_id: &str,
        action: &StepAction,
        artifact: Option<&Path>,
        started_ms: i64,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> StepReport {
        let report = |outcome, exit_code, output_tail: String, reason: String| StepReport {
            step_id: step_id.to_owned(),
            outcome,
            exit_code,
            output_tail,
            reason,
            started_ms,
            finished_ms: now_ms(),
            backups: Vec::new(),
        };
        if let StepAction::DeployWebApp { version, .. } = action {
            let Some(spec) = self.web_deploy() else {
                return report(
                    StepOutcome::Failed,
                    None,
                    String::new(),
                    "this host has no `web` component with a `web_app` package path configured"
                        .into(),
                );
            };
            let backup = self.state_dir.join("web-backups").join(step_id);
            return match web::deploy(&spec, *version, &backup, artifact).await {
                Ok(summary) => report(
                    StepOutcome::Succeeded,
                    None,
                    summary.join("\n"),
                    String::new(),
                ),
                Err(reason) => report(StepOutcome::Failed, None, String::new(), reason),
            };
        }
        let command = match self.action_for(action) {
            Ok(ConfiguredAction::Command(command)) => command,
            Ok(ConfiguredAction::WindowsServices(services)) => {
                let (outcome, output, reason) = move_services(action, services, progress).await;
                return report(outcome, None, output, reason);
            }
            Err(reason) => return report(StepOutcome::Failed, None, String::new(), reason),
        };
        let fill = |arg: &str| -> Result<String, String> {
            let mut out = arg.replace("{step}", step_id);
            if let Some(role) = action.role() {
                out = out.replace("{role}", role.as_str());
            }
            if out.contains("{version}") {
                let version = action
                    .version()
                    .ok_or("`{version}` is not known for this action")?;
                out = out.replace("{version}", &version.to_string());
            }
            if out.contains("{artifact}") {
                let path = artifact
                    .ok_or("the command needs `{artifact}` but the step brings no installer")?;
                out = out.replace("{artifact}", &path.display().to_string());
            }
            Ok(out)
        };
        let argv = match command
            .argv
            .iter()
            .map(|a| fill(a))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(argv) => argv,
            Err(reason) => return report(StepOutcome::Failed, None, String::new(), reason),
        };
        let (program, args) = match argv.split_first() {
            Some(split) => split,
            None => {
                return report(
                    StepOutcome::Failed,
                    None,
                    String::new(),
                    "empty command".into(),
                )
            }
        };
        let mut child = match tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                return report(
                    StepOutcome::Failed,
                    None,
                    String::new(),
                    format!("cannot run `{program}`: {e}"),
                )
            }
        };
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let run = async {
            let (out, err) = tokio::join!(
                read_tail(stdout.take(), progress),
                read_tail(stderr.take(), &|_: &str| {})
            );
            (out, err, child.wait().await)
        };
        match tokio::time::timeout(command.timeout, run).await {
            Err(_) => report(
                StepOutcome::Failed,
                None,
                String::new(),
                format!(
                    "`{program}` did not finish within {} s and was stopped",
                    command.timeout.as_secs()
                ),
            ),
            Ok((out, err, status)) => {
                let mut combined = out;
                combined.extend_from_slice(&err);
                let output_tail = tail(&combined, OUTPUT_TAIL_BYTES);
                match status {
                    Err(e) => report(
                        StepOutcome::Failed,
                        None,
                        output_tail,
                        format!("`{program}` failed: {e}"),
                    ),
                    Ok(status) => {
                        let code = status.code();
                        let outcome = interpret_exit_code(
                            code,
                            &command.transient_exit_codes,
                            &command.restart_exit_codes,
                        );
                        let reason = match (outcome, code) {
                            (StepOutcome::Succeeded, _) => String::new(),
                            (StepOutcome::SucceededRestartRequired, Some(c)) => {
                                format!("exit code {c}: succeeded, the host must restart to finish")
                            }
                            (StepOutcome::FailedTransient, Some(c)) => {
                                format!("exit code {c}: may succeed when retried (another installation running?)")
                            }
                            (_, Some(c)) => format!("`{program}` exited with code {c}"),
                            (_, None) => format!("`{program}` was ended by a signal"),
                        };
                        report(outcome, code, output_tail, reason)
                    }
                }
            }
        }
    }
}

/// `stop_services` or `start_services` through the Service Control
/// Manager: the outcome, a line per service, and the reason of a failure.
async fn move_services(
    action: &StepAction,
    services: &WindowsServicesAction,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> (StepOutcome, String, String) {
    let direction = match action {
        StepAction::StopServices { .. } => services::Direction::Stop,
        StepAction::StartServices { .. } => services::Direction::Start,
        // The configuration allows `windows_services` for nothing else.
        other => {
            return (
                StepOutcome::Failed,
                String::new(),
                format!(
                    "`windows_services` stops and starts services; it cannot perform `{}`",
                    other.config_key()
                ),
            )
        }
    };
    let done = services::perform(
        &services::SystemScm,
        &services.services,
        direction,
        services.timeout,
        progress,
    )
    .await;
    let output = tail(done.lines.join("\n").as_bytes(), OUTPUT_TAIL_BYTES);
    match done.result {
        Ok(()) => (StepOutcome::Succeeded, output, String::new()),
        Err(error) => {
            tracing::warn!(%error, "the services did not get there");
            (StepOutcome::Failed, output, error.to_string())
        }
    }
}

/// A backup command that exited 0 counts only when a new, non-empty backup
/// file of every database the server reports now (asked once the command
/// finished, so a database it just added counts) is where the
/// configuration says backups land.
async fn verify_backup(
    report: &mut StepReport,
    location: &crate::config::BackupLocation,
    databases: Option<&crate::config::DatabasesProbe>,
    started_ms: i64,
) {
    let found = match backup::databases(databases).await {
        Ok(databases) => settled_backups(location, databases, started_ms).await,
        Err(reason) => Err(reason),
    };
    report.finished_ms = now_ms();
    match found {
        Ok(files) => {
            let lines: Vec<String> = files
                .iter()
                .map(|file| {
                    format!(
                        "backup verified: {}{} ({} bytes, written {})",
                        file.database
                            .as_deref()
                            .map_or_else(String::new, |d| format!("{d}: ")),
                        file.path,
                        file.size,
                        tierwise_runtime::clock::rfc3339(file.modified_ms)
                    )
                })
                .collect();
            report.output_tail = tail(
                format!("{}\n{}\n", report.output_tail.trim_end(), lines.join("\n")).as_bytes(),
                OUTPUT_TAIL_BYTES,
            );
            report.backups = files;
        }
        Err(reason) => {
            report.outcome = StepOutcome::Failed;
            report.reason = reason;
        }
    }
}

/// The backups found, then found again unchanged a moment later: a file
/// still being written by a job the command only started is not a backup
/// yet.
async fn settled_backups(
    location: &crate::config::BackupLocation,
    databases: Vec<String>,
    started_ms: i64,
) -> Result<Vec<tierwise_common::action::BackupFile>, String> {
    let databases = std::sync::Arc::new(databases);
    let look = || {
        let location = location.clone();
        let databases = std::sync::Arc::clone(&databases);
        async move {
            tokio::task::spawn_blocking(move || backup::found(&location, &databases, started_ms))
                .await
                .unwrap_or_else(|e| Err(format!("the backup check failed: {e}")))
        }
    };
    let first = look().await?;
    tokio::time::sleep(backup::SETTLE).await;
    let second = look().await?;
    match first.iter().zip(&second).find(|(a, b)| a != b) {
        None => Ok(second),
        Some((a, b)) => Err(format!(
            "the backup command exited 0, but its backup{} is still being written ({}: {} bytes, then {} bytes as {})",
            a.database
                .as_deref()
                .map_or_else(String::new, |d| format!(" of `{d}`")),
            a.path,
            a.size,
            b.size,
            b.path
        )),
    }
}

/// A step's output followed by its health checks' lines, kept within
/// `OUTPUT_TAIL_BYTES` (the checks' lines are the ones kept).
fn with_health(output: &str, lines: &[String]) -> String {
    let mut text = String::new();
    if !output.is_empty() {
        text.push_str(output.trim_end());
        text.push('\n');
    }
    text.push_str("health checks:\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    tail(text.as_bytes(), OUTPUT_TAIL_BYTES)
}

/// The agent's queue of steps: commands in, reports out, one step at a time.
#[derive(Debug)]
pub struct StepRunner {
    pub commands: tokio::sync::mpsc::Sender<(String, StepAction)>,
    pub reports: tokio::sync::mpsc::Receiver<StepReport>,
    /// (step id, latest output line) of the running step, at most once a second.
    pub progress: tokio::sync::mpsc::Receiver<(String, String)>,
}

/// Ends a runner cleanly: no new step starts, a running one finishes within
/// the time the stop allows or is ended and journaled as interrupted.
#[derive(Debug)]
pub struct RunnerStop {
    drain: tokio::sync::watch::Sender<Option<crate::service::StopCause>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunnerStop {
    /// Stops the runner for `cause` and waits until it has. `progress` is
    /// called every few seconds while a step still runs (a service reports
    /// it to the SCM so it is not thought hung).
    pub async fn drain(
        self,
        cause: crate::service::StopCause,
        progress: &mut (dyn FnMut() + Send),
    ) {
        let _ = self.drain.send(Some(cause));
        let mut task = self.task;
        let mut tick = tokio::time::interval(crate::service::STOP_CHECKPOINT_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut task => return,
                _ = tick.tick() => progress(),
            }
        }
    }
}

impl StepRunner {
    /// Runs steps in the background; after each, asks `refresh` for a probe
    /// so the new version is reported at once.
    pub fn spawn(
        executor: Executor,
        downloader: download::Downloader,
        trust: signed::ReleaseTrust,
        refresh: tokio::sync::mpsc::Sender<()>,
    ) -> (Self, RunnerStop) {
        let (commands, mut queue) = tokio::sync::mpsc::channel::<(String, StepAction)>(256);
        let (report_tx, reports) = tokio::sync::mpsc::channel(256);
        let (progress_tx, progress) = tokio::sync::mpsc::channel(16);
        let (drain, mut stop) = tokio::sync::watch::channel(None::<crate::service::StopCause>);
        let task = tokio::spawn(async move {
            loop {
                let (step_id, action) = tokio::select! {
                    biased;
                    _ = stop.wait_for(Option::is_some) => return,
                    next = queue.recv() => match next {
                        Some(next) => next,
                        None => return,
                    },
                };
                let started_ms = now_ms();
                let limit = executor.time_limit(&action);
                let started = tokio::time::Instant::now();
                let run = async {
                    if action == StepAction::Reprobe {
                        return Ok(StepReport::without_output(
                            &step_id,
                            StepOutcome::Succeeded,
                            String::new(),
                            started_ms,
                        ));
                    }
                    tracing::info!(%step_id, action = action.config_key(), "running step");
                    let progress = reporter(&step_id, &progress_tx);
                    // A journal that cannot be read fails the step (below),
                    // never skips the checks.
                    let new_attempt = !executor.known(&step_id)?;
                    if !new_attempt || (action.artifact().is_none() && !trust.applies(&action)) {
                        return executor
                            .execute_reporting(&step_id, &action, None, &progress)
                            .await;
                    }
                    // A new attempt that needs an installer: fetch it, verify
                    // its SHA-256 and, where a release root is pinned, its
                    // signed metadata — all before anything runs.
                    let path = match action.artifact() {
                        Some(sha256) => match downloader.fetch(sha256).await {
                            Ok(path) => Some(path),
                            Err((outcome, reason)) => {
                                return executor.fail(&step_id, &action, outcome, reason)
                            }
                        },
                        None => None,
                    };
                    if let Err((outcome, reason)) =
                        trust.check(&downloader, &action, path.as_deref()).await
                    {
                        tracing::error!(%step_id, %reason, "installer refused");
                        return executor.fail(&step_id, &action, outcome, reason);
                    }
                    executor
                        .execute_reporting(&step_id, &action, path.as_deref(), &progress)
                        .await
                };
                let cut_off = async {
                    let cause = stop.wait_for(Option::is_some).await.ok().and_then(|c| *c);
                    let Some(cause) = cause else {
                        return std::future::pending().await;
                    };
                    let left = limit.saturating_sub(started.elapsed());
                    let budget = cause.drain_budget(left);
                    tracing::warn!(%step_id, wait_s = budget.as_secs(), "stopping: waiting for the running step");
                    tokio::time::sleep(budget).await;
                    (cause, started.elapsed())
                };
                let report = tokio::select! {
                    report = run => report,
                    (cause, ran) = cut_off => {
                        // Dropping the run ended its command (kill on drop).
                        let reason = format!(
                            "the agent had to stop ({cause:?}) after the step ran {} s; its command was ended and its effect is unknown — check the host, then retry or skip the step",
                            ran.as_secs()
                        );
                        tracing::error!(%step_id, %reason, "step interrupted");
                        if let Err(error) = executor.interrupt(&step_id, reason) {
                            tracing::error!(%step_id, %error, "cannot journal the interrupted step");
                        }
                        return;
                    }
                };
                let report = report.unwrap_or_else(|error| {
                    StepReport::without_output(
                        &step_id,
                        StepOutcome::Failed,
                        error.to_string(),
                        started_ms,
                    )
                });
                tracing::info!(%step_id, outcome = ?report.outcome, "step ended");
                let _ = refresh.try_send(());
                if report_tx.send(report).await.is_err() {
                    return;
                }
            }
        });
        (
            Self {
                commands,
                reports,
                progress,
            },
            RunnerStop { drain, task },
        )
    }
}

/// A progress callback that forwards at most one line a second.
fn reporter(
    step_id: &str,
    sink: &tokio::sync::mpsc::Sender<(String, String)>,
) -> impl Fn(&str) + Send + Sync {
    let step_id = step_id.to_owned();
    let sink = sink.clone();
    let last = std::sync::Mutex::new(None::<std::time::Instant>);
    move |line: &str| {
        let mut last = last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let line: String = line.chars().take(300).collect();
        let _ = sink.try_send((step_id.clone(), line));
    }
}
