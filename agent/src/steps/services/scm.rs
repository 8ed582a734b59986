//! The real Service Control Manager, through `windows-service` (and, for
//! dependencies, the registry key where the SCM keeps them): the only code
//! of the services step that talks to Windows. Each call opens what it
//! needs and runs on tokio's blocking pool, so a slow SCM never stalls the
//! agent's runtime (heartbeats go on while a service takes its time).

use super::{Direction, Scm, ScmError, ServiceState};
use windows_service::service::{ServiceAccess, ServiceDependency};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

/// Win32 errors the step reads as answers rather than failures.
const ERROR_DEPENDENT_SERVICES_RUNNING: i32 = 1051;
const ERROR_SERVICE_REQUEST_TIMEOUT: i32 = 1053;
const ERROR_SERVICE_ALREADY_RUNNING: i32 = 1056;
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
const ERROR_SERVICE_CANNOT_ACCEPT_CTRL: i32 = 1061;
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
const ERROR_INVALID_NAME: i32 = 123;

/// This host's Service Control Manager.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemScm;

impl Scm for SystemScm {
    async fn state(&self, service: &str) -> Result<Option<ServiceState>, ScmError> {
        let name = service.to_owned();
        blocking(service, "read its state", move || {
            let Some(opened) = open(&name, ServiceAccess::QUERY_STATUS)? else {
                return Ok(None);
            };
            let status = opened.query_status().map_err(|e| reason(&e))?;
            Ok(Some(state_of(status.current_state)))
        })
        .await
    }

    async fn dependencies(&self, service: &str) -> Result<Option<Vec<String>>, ScmError> {
        let name = service.to_owned();
        blocking(service, "read its dependencies", move || {
            let Some(opened) = open(&name, ServiceAccess::QUERY_CONFIG)? else {
                return Ok(None);
            };
            let config = opened.query_config().map_err(|e| reason(&e))?;
            let mut names: Vec<String> = config
                .dependencies
                .into_iter()
                .filter_map(|dependency| match dependency {
                    ServiceDependency::Service(name) => Some(name.to_string_lossy().into_owned()),
                    // A load-order group is started by Windows before any
                    // service that needs it; nothing to order.
                    ServiceDependency::Group(_) => None,
                })
                .collect();
            for also in registered_dependencies(&name) {
                if !names
                    .iter()
                    .any(|n| n.to_lowercase() == also.to_lowercase())
                {
                    names.push(also);
                }
            }
            Ok(Some(names))
        })
        .await
    }

    async fn request(&self, service: &str, direction: Direction) -> Result<(), ScmError> {
        let name = service.to_owned();
        let what = match direction {
            Direction::Stop => "ask it to stop",
            Direction::Start => "start it",
        };
        blocking(service, what, move || {
            let access = match direction {
                Direction::Stop => ServiceAccess::STOP,
                Direction::Start => ServiceAccess::START,
            };
            let Some(opened) = open(&name, access)? else {
                return Err("there is no such service".into());
            };
            let answer = match direction {
                Direction::Stop => opened.stop().map(drop),
                Direction::Start => opened.start::<&std::ffi::OsStr>(&[]),
            };
            let Err(error) = answer else {
                return Ok(());
            };
            match os_error(&error) {
                // Already there, or on its way: the step waits for the state.
                Some(
                    ERROR_SERVICE_NOT_ACTIVE
                    | ERROR_SERVICE_CANNOT_ACCEPT_CTRL
                    | ERROR_SERVICE_ALREADY_RUNNING,
                ) => Ok(()),
                Some(ERROR_DEPENDENT_SERVICES_RUNNING) => Err(
                    "services that depend on it are still running; name them in `windows_services` too"
                        .into(),
                ),
                Some(ERROR_SERVICE_REQUEST_TIMEOUT) => Err(
                    "it did not answer the Service Control Manager in time (error 1053)".into(),
                ),
                _ => Err(reason(&error)),
            }
        })
        .await
    }
}

/// `DependOnService` of the service's key, where the Service Control
/// Manager keeps its configuration (`HKLM\SYSTEM\CurrentControlSet\Services\NAME`),
/// load-order groups (`+NAME`) left out. On Windows it says what
/// QueryServiceConfig says; Wine's SCM answers that query without any
/// dependencies, so without this the order could not be shown there. A key
/// or value that cannot be read adds nothing.
fn registered_dependencies(service: &str) -> Vec<String> {
    use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_READ};
    use winreg::RegKey;
    let path = format!(r"SYSTEM\CurrentControlSet\Services\{service}");
    RegKey::predef(HKEY_LOCAL_MACHINE)
        .open_subkey_with_flags(path, KEY_READ)
        .and_then(|key| key.get_value::<Vec<String>, _>("DependOnService"))
        .unwrap_or_default()
        .into_iter()
        .filter(|name| !name.is_empty() && !name.starts_with('+'))
        .collect()
}

/// The service, or `None` when there is none of that name.
fn open(
    name: &str,
    access: ServiceAccess,
) -> Result<Option<windows_service::service::Service>, String> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(|e| format!("cannot reach the Service Control Manager: {}", reason(&e)))?;
    match manager.open_service(name, access) {
        Ok(service) => Ok(Some(service)),
        Err(error)
            if matches!(
                os_error(&error),
                Some(ERROR_SERVICE_DOES_NOT_EXIST | ERROR_INVALID_NAME)
            ) =>
        {
            Ok(None)
        }
        Err(error) => Err(reason(&error)),
    }
}

/// Runs one SCM call on the blocking pool.
async fn blocking<T: Send + 'static>(
    service: &str,
    what: &'static str,
    call: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, ScmError> {
    let failed = |reason: String| ScmError::Call {
        service: service.to_owned(),
        what,
        reason,
    };
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(failed)
}

fn os_error(error: &windows_service::Error) -> Option<i32> {
    match error {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    }
}

/// The Windows error's own words (`windows-service` says only "IO error in
/// winapi call").
fn reason(error: &windows_service::Error) -> String {
    match error {
        windows_service::Error::Winapi(io) => io.to_string(),
        other => other.to_string(),
    }
}

fn state_of(state: windows_service::service::ServiceState) -> ServiceState {
    use windows_service::service::ServiceState as Scm;
    match state {
        Scm::Stopped => ServiceState::Stopped,
        Scm::StartPending => ServiceState::StartPending,
        Scm::StopPending => ServiceState::StopPending,
        Scm::Running => ServiceState::Running,
        Scm::ContinuePending => ServiceState::ContinuePending,
        Scm::PausePending => ServiceState::PausePending,
        Scm::Paused => ServiceState::Paused,
    }
}
