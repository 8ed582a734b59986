//! The agent's life between start and stop, the same in console and service
//! mode: start the probes, the step runner and the session with the
//! effective configuration; re-read the configuration on a timer and on
//! every reconnect and apply a change that validated and settled; on stop,
//! let a running step finish within what the stop allows.

use crate::logs::LogControl;
use crate::policy::{self, watch, Effective};
use crate::service::StopCause;
use crate::{identity, session, steps, watcher::InventoryWatcher};
use anyhow::Context;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;

/// What the agent was started with.
#[derive(Debug)]
pub struct Options {
    /// `--config`, if given (otherwise the default file, if any).
    pub config: Option<PathBuf>,
    pub log: LogControl,
    /// A service whose configuration lacks the enrollment settings waits
    /// for them (Group Policy may bring the token after the MSI brought the
    /// controller); in a console the agent stops and says what to add.
    pub wait_for_enrollment_settings: bool,
}

enum Next {
    Stop(StopCause),
    Reload(Box<Effective>),
    Fail(anyhow::Error),
}

/// Runs the agent until `stop` resolves. `progress` is called every few
/// seconds while a stop waits for a running step. An error is fatal (the
/// agent cannot enroll with what it was given).
pub async fn run(
    options: &Options,
    mut effective: Effective,
    stop: impl Future<Output = StopCause>,
    progress: &mut (dyn FnMut() + Send),
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let reread = Arc::new(Notify::new());
    loop {
        let settings = effective.settings.clone();
        options.log.set_level(settings.log_level.as_deref());
        for value in &effective.ignored {
            tracing::warn!(%value, "registry value not known to this agent; ignored");
        }
        // `logs` too: installers are told to write their logs there, and
        // msiexec fails (1622) when it cannot open its log file.
        tierwise_transport::files::private_dir(&settings.state_dir)
            .and_then(|_| tierwise_transport::files::private_dir(&settings.state_dir.join("logs")))
            .with_context(|| {
                format!(
                    "cannot create the state directory {}; set `state_dir` (policy StateDir)",
                    settings.state_dir.display()
                )
            })?;
        tracing::info!(
            host_id = %settings.host_id,
            installation = %settings.installation,
            controller = %settings.controller,
            components = settings.components.len(),
            "agent starting"
        );
        let watcher = InventoryWatcher::start(
            settings.components.clone(),
            settings.probe_interval,
            settings.state_dir.clone(),
        )
        .await;
        let executor = steps::Executor::new(&settings.state_dir, settings.components.clone())
            .with_context(|| {
                format!(
                    "cannot open the step journal in {}",
                    settings.state_dir.display()
                )
            })?;
        let downloader =
            steps::download::Downloader::new(&settings.controller, &settings.state_dir);
        let trust =
            steps::signed::ReleaseTrust::new(settings.release_root.clone(), &settings.state_dir);
        match &settings.release_root {
            Some(root) => tracing::info!(%root, "installers run only when signed release metadata from this root covers them"),
            None => tracing::warn!("no release_root_fingerprint: installers are checked by their SHA-256 only, not against signed release metadata"),
        }
        let (runner, runner_stop) =
            steps::StepRunner::spawn(executor, downloader.clone(), trust, watcher.refresh.clone());
        let connected = async {
            let error =
                connect_and_serve(settings, watcher, runner, downloader, reread.clone()).await;
            let not_enrolled = matches!(
                error.downcast_ref::<identity::IdentityError>(),
                Some(identity::IdentityError::NotEnrolled)
            );
            if not_enrolled && options.wait_for_enrollment_settings {
                tracing::error!(%error, "waiting for a configuration with enrollment settings");
                std::future::pending::<()>().await;
            }
            error
        };
        let next = tokio::select! {
            cause = &mut stop => Next::Stop(cause),
            new = changed_configuration(options.config.clone(), effective.fingerprint.clone(), &reread) => Next::Reload(Box::new(new)),
            error = connected => Next::Fail(error),
        };
        let cause = match &next {
            Next::Stop(cause) => *cause,
            // A new configuration waits for a running installer to end.
            Next::Reload(_) | Next::Fail(_) => StopCause::Stop,
        };
        runner_stop.drain(cause, progress).await;
        match next {
            Next::Stop(cause) => {
                tracing::info!(?cause, "agent stopped");
                return Ok(());
            }
            Next::Fail(error) => return Err(error),
            Next::Reload(new) => {
                tracing::info!("configuration changed; applying it");
                effective = *new;
            }
        }
    }
}

/// Enrolls if needed, then holds sessions with the controller forever; ends
/// only with an error that retrying cannot fix.
async fn connect_and_serve(
    settings: crate::config::Settings,
    watcher: InventoryWatcher,
    runner: steps::StepRunner,
    downloader: steps::download::Downloader,
    reread: Arc<Notify>,
) -> anyhow::Error {
    let credentials = match obtain_identity(&settings).await {
        Ok(credentials) => credentials,
        Err(error) => return error,
    };
    let identity = identity::start_renewer(settings.clone(), credentials);
    downloader.set_identity(identity.clone());
    // The primary server hands over the Web Application its Server Manager
    // generates; the task ends with this session loop's.
    let handing_over = settings
        .components
        .iter()
        .find_map(|c| c.web_app_output.clone())
        .map(|output| {
            tokio::spawn(crate::web_output::run(
                output,
                downloader.clone(),
                settings.probe_interval,
            ))
        });
    session::run_forever(settings, watcher, runner, identity, reread).await;
    if let Some(task) = handing_over {
        task.abort();
    }
    anyhow::anyhow!("the session loop ended")
}

/// The stored identity, or a new one by enrollment. A refusal or an
/// unreachable controller is retried with backoff (an administrator may fix
/// the token meanwhile); a configuration without enrollment settings stops
/// the agent with what to add.
async fn obtain_identity(
    settings: &crate::config::Settings,
) -> anyhow::Result<identity::Credentials> {
    let mut backoff =
        crate::backoff::Backoff::new(std::time::Duration::from_secs(1), settings.reconnect_max);
    loop {
        match identity::obtain(settings).await {
            Ok(credentials) => return Ok(credentials),
            Err(error @ identity::IdentityError::NotEnrolled) => return Err(error.into()),
            Err(error) => {
                let delay = backoff.next_delay(fastrand::f64());
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "no certificate yet");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Re-reads every source every `REREAD_EVERY` and when `reread` is
/// notified (a reconnect); returns a changed configuration once it has
/// validated and settled.
async fn changed_configuration(
    config: Option<PathBuf>,
    running: String,
    reread: &Notify,
) -> Effective {
    let mut decide = watch::Watch::new(running);
    let mut delay = watch::REREAD_EVERY;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = reread.notified() => {}
        }
        let path = config.clone();
        let read = tokio::task::spawn_blocking(move || policy::load(path.as_deref()))
            .await
            .unwrap_or_else(|e| {
                Err(crate::config::ConfigError {
                    path: "configuration".into(),
                    message: format!("reading it failed: {e}"),
                })
            });
        let (observation, effective) = match read {
            Ok(effective) => (
                watch::Observation::Valid(effective.fingerprint.clone()),
                Some(effective),
            ),
            Err(error) => (watch::Observation::Invalid(error.to_string()), None),
        };
        match decide.observe(observation, std::time::Instant::now()) {
            watch::Verdict::Keep => delay = watch::REREAD_EVERY,
            watch::Verdict::Confirm(wait) => delay = wait,
            watch::Verdict::Apply => {
                if let Some(effective) = effective {
                    return effective;
                }
            }
            watch::Verdict::Refuse(message) => {
                tracing::error!(%message, "the configuration read now is not valid; keeping the running one");
                delay = watch::REREAD_EVERY;
            }
        }
    }
}
