//! The Service Control Manager's side: the dispatcher and control handler
//! (which only translate to and from `Lifecycle`), the failure actions the
//! agent sets on itself, and `tierwise-agent service install|uninstall|start|stop`.

use super::{
    Control, Lifecycle, Reply, State, Status, StopCause, DESCRIPTION, DISPLAY_NAME, FAILURE_RESET,
    PRESHUTDOWN_TIMEOUT, RESTART_DELAYS, SERVICE_NAME,
};
use crate::logs::{self, Sink};
use crate::{app, policy};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tierwise_runtime::logging::LogFormat;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

/// What `main` was given, for the service's main function, which the SCM
/// calls without it.
static START: OnceLock<(Option<PathBuf>, LogFormat)> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

/// `--service`: hands the thread to the SCM until the service stops.
pub fn run(config: Option<PathBuf>, format: LogFormat) -> ExitCode {
    let _ = START.set((config, format));
    match service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "error: cannot reach the Service Control Manager ({error}); --service is for the installed service \"{SERVICE_NAME}\" — in a console run the agent without it"
            );
            ExitCode::FAILURE
        }
    }
}

/// `%ProgramData%\Tierwise\Agent\logs`.
pub fn log_dir() -> PathBuf {
    crate::config::default_state_dir().join("logs")
}

fn to_scm(status: Status) -> ServiceStatus {
    let mut accepted = ServiceControlAccept::empty();
    if status.accepts_stop {
        accepted |= ServiceControlAccept::STOP;
    }
    if status.accepts_preshutdown {
        accepted |= ServiceControlAccept::PRESHUTDOWN | ServiceControlAccept::SHUTDOWN;
    }
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: match status.state {
            State::StartPending => ServiceState::StartPending,
            State::Running => ServiceState::Running,
            State::StopPending => ServiceState::StopPending,
            State::Stopped => ServiceState::Stopped,
        },
        controls_accepted: accepted,
        exit_code: if status.exit_code == 0 {
            ServiceExitCode::NO_ERROR
        } else {
            ServiceExitCode::ServiceSpecific(1)
        },
        checkpoint: status.checkpoint,
        wait_hint: status.wait_hint,
        process_id: None,
    }
}

/// Tells the SCM where the service is.
#[derive(Clone)]
struct Reporter {
    life: Arc<Mutex<Lifecycle>>,
    handle: Arc<OnceLock<ServiceStatusHandle>>,
}

impl Reporter {
    fn with<T>(&self, change: impl FnOnce(&mut Lifecycle) -> T) -> T {
        let mut life = self
            .life
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let out = change(&mut life);
        if let Some(handle) = self.handle.get() {
            if let Err(error) = handle.set_service_status(to_scm(life.status())) {
                tracing::warn!(%error, "cannot report the service status");
            }
        }
        out
    }
}

fn service_main(_arguments: Vec<OsString>) {
    let (config, format) = START.get().cloned().unwrap_or((None, LogFormat::Pretty));
    let log = logs::init(&Sink::Service(log_dir()), format, None);
    let reporter = Reporter {
        life: Arc::new(Mutex::new(Lifecycle::new())),
        handle: Arc::new(OnceLock::new()),
    };
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(None::<StopCause>);
    let handler = {
        let reporter = reporter.clone();
        move |control: ServiceControl| -> ServiceControlHandlerResult {
            let control = match control {
                ServiceControl::Stop => Control::Stop,
                ServiceControl::Preshutdown => Control::Preshutdown,
                ServiceControl::Shutdown => Control::Shutdown,
                ServiceControl::Interrogate => Control::Interrogate,
                _ => Control::Other,
            };
            let (reply, cause) = reporter.with(|life| life.control(control));
            if let Some(cause) = cause {
                tracing::info!(?cause, "the Service Control Manager asks the agent to stop");
                let _ = stop_tx.send(Some(cause));
            }
            match reply {
                Reply::Handled => ServiceControlHandlerResult::NoError,
                Reply::NotImplemented => ServiceControlHandlerResult::NotImplemented,
            }
        }
    };
    let handle = match service_control_handler::register(SERVICE_NAME, handler) {
        Ok(handle) => handle,
        Err(error) => {
            tracing::error!(%error, "cannot register with the Service Control Manager");
            return;
        }
    };
    let _ = reporter.handle.set(handle);
    // Running before any network I/O: enrollment and connecting come after.
    reporter.with(Lifecycle::running);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "service running");
    if let Err(error) = set_recovery() {
        tracing::warn!(error = %tierwise_runtime::report::error_chain(error.as_ref()), "cannot configure the service's recovery");
    }
    // One thread, as in console mode (`main.rs`): the footprint stays small.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            reporter.with(Lifecycle::fail);
            reporter.with(Lifecycle::stopped);
            return;
        }
    };
    let result = runtime.block_on(async {
        let Some(effective) = first_configuration(config.clone(), &mut stop_rx).await else {
            return Ok(());
        };
        // The state directory holds the agent's private key.
        let state_dir = &effective.settings.state_dir;
        if let Err(error) = std::fs::create_dir_all(state_dir)
            .and_then(|()| crate::acl::restrict_to_owners(state_dir))
        {
            tracing::warn!(%error, dir = %state_dir.display(), "cannot restrict the state directory to SYSTEM and Administrators");
        }
        let options = app::Options {
            config,
            log,
            wait_for_enrollment_settings: true,
        };
        let stop = async move {
            match stop_rx.wait_for(Option::is_some).await {
                Ok(cause) => cause.unwrap_or(StopCause::Stop),
                Err(_) => StopCause::Stop,
            }
        };
        let progress_reporter = reporter.clone();
        app::run(&options, effective, stop, &mut move || {
            progress_reporter.with(Lifecycle::progress);
        })
        .await
    });
    if let Err(error) = result {
        tracing::error!(error = %tierwise_runtime::report::error_chain(error.as_ref()), "the agent stops");
        reporter.with(Lifecycle::fail);
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    reporter.with(Lifecycle::stopped);
}

/// The configuration to start with. At first boot the MSI may install the
/// service before Group Policy has written its values: the service stays
/// running and reads again every minute until the configuration validates
/// (each new error is logged once). `None` when asked to stop meanwhile.
async fn first_configuration(
    config: Option<PathBuf>,
    stop: &mut tokio::sync::watch::Receiver<Option<StopCause>>,
) -> Option<policy::Effective> {
    let mut last_error = String::new();
    loop {
        let path = config.clone();
        let read = tokio::task::spawn_blocking(move || policy::load(path.as_deref())).await;
        match read {
            Ok(Ok(effective)) => return Some(effective),
            Ok(Err(error)) => {
                let message = error.to_string();
                if message != last_error {
                    tracing::error!(%message, "no usable configuration yet; reading again every minute");
                    last_error = message;
                }
            }
            Err(error) => tracing::error!(%error, "reading the configuration failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(policy::watch::REREAD_EVERY) => {}
            _ = stop.wait_for(Option::is_some) => return None,
        }
    }
}

/// Restart after 5 s, 30 s, 60 s; reset after a day; also when the agent
/// stops itself with an error; a preshutdown time for running installers.
fn set_recovery() -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)?;
    let service = manager.open_service(
        SERVICE_NAME,
        ServiceAccess::CHANGE_CONFIG | ServiceAccess::START,
    )?;
    apply_recovery(&service)
}

/// The failure actions are required; the preshutdown time and applying the
/// actions to stops with an error are worth a warning when the system does
/// not take them (Wine implements neither).
fn apply_recovery(service: &windows_service::service::Service) -> anyhow::Result<()> {
    use anyhow::Context;
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(FAILURE_RESET),
            reboot_msg: None,
            command: None,
            actions: Some(
                RESTART_DELAYS
                    .iter()
                    .map(|delay| ServiceAction {
                        action_type: ServiceActionType::Restart,
                        delay: *delay,
                    })
                    .collect(),
            ),
        })
        .context("setting the failure actions (restart after 5 s, 30 s, 60 s)")?;
    if let Err(error) = service.set_preshutdown_timeout(PRESHUTDOWN_TIMEOUT) {
        tracing::warn!(%error, "the system did not take the preshutdown time; a running step gets only the plain shutdown time");
    }
    if let Err(error) = service.set_failure_actions_on_non_crash_failures(true) {
        tracing::warn!(%error, "the system did not apply the failure actions to stops with an error; only crashes restart the service");
    }
    Ok(())
}

/// A `tierwise-agent service …` command.
#[derive(Debug)]
pub enum Manage {
    Install { config: Option<PathBuf> },
    Uninstall,
    Start,
    Stop,
}

/// Carries out a `service` command and says what happened.
pub fn manage(manage: Manage) -> anyhow::Result<String> {
    use anyhow::Context;
    let access = match manage {
        Manage::Install { .. } => {
            ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE
        }
        _ => ServiceManagerAccess::CONNECT,
    };
    let manager = ServiceManager::local_computer(None::<&str>, access)
        .context("cannot open the Service Control Manager (run as Administrator)")?;
    match manage {
        Manage::Install { config } => {
            let mut launch_arguments = vec![OsString::from("--service")];
            if let Some(config) = config {
                let absolute = std::path::absolute(&config).unwrap_or(config);
                launch_arguments.push("--config".into());
                launch_arguments.push(absolute.into_os_string());
            }
            let info = ServiceInfo {
                name: SERVICE_NAME.into(),
                display_name: DISPLAY_NAME.into(),
                service_type: ServiceType::OWN_PROCESS,
                start_type: ServiceStartType::AutoStart,
                error_control: ServiceErrorControl::Normal,
                executable_path: std::env::current_exe().context("cannot find this executable")?,
                launch_arguments,
                dependencies: vec![],
                account_name: None,
                account_password: None,
            };
            let service = manager
                .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
                .with_context(|| format!("cannot install the service {SERVICE_NAME} (is it installed already? `tierwise-agent service uninstall` removes it)"))?;
            service.set_description(DESCRIPTION)?;
            apply_recovery(&service)?;
            Ok(format!(
                "installed the service {SERVICE_NAME} ({DISPLAY_NAME}) as LocalSystem, automatic start; start it with `tierwise-agent service start`"
            ))
        }
        Manage::Start => {
            let service = manager
                .open_service(SERVICE_NAME, ServiceAccess::START)
                .with_context(|| format!("no service {SERVICE_NAME}; install it first"))?;
            service.start::<&OsStr>(&[])?;
            Ok(format!("started {SERVICE_NAME}"))
        }
        Manage::Stop => {
            let service = manager
                .open_service(
                    SERVICE_NAME,
                    ServiceAccess::STOP | ServiceAccess::QUERY_STATUS,
                )
                .with_context(|| format!("no service {SERVICE_NAME}"))?;
            stop_and_wait(&service)
        }
        Manage::Uninstall => {
            let service = manager
                .open_service(
                    SERVICE_NAME,
                    ServiceAccess::STOP | ServiceAccess::QUERY_STATUS | ServiceAccess::DELETE,
                )
                .with_context(|| format!("no service {SERVICE_NAME} to remove"))?;
            let stopped = stop_and_wait(&service)?;
            service.delete()?;
            Ok(format!("{stopped}; removed {SERVICE_NAME} (its state in %ProgramData%\\Tierwise\\Agent is kept)"))
        }
    }
}

/// Asks the service to stop and waits while it drains (a running installer
/// may take a while); says how it ended.
fn stop_and_wait(service: &windows_service::service::Service) -> anyhow::Result<String> {
    if service.query_status()?.current_state == ServiceState::Stopped {
        return Ok(format!("{SERVICE_NAME} was not running"));
    }
    service.stop()?;
    let deadline = std::time::Instant::now() + PRESHUTDOWN_TIMEOUT;
    while std::time::Instant::now() < deadline {
        if service.query_status()?.current_state == ServiceState::Stopped {
            return Ok(format!("stopped {SERVICE_NAME}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(format!(
        "asked {SERVICE_NAME} to stop; it is still finishing a running step"
    ))
}
