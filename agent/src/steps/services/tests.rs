//! The services step's flow over a scripted Service Control Manager: the
//! order it asks in, what it waits for, and what a failure names. The real
//! SCM is exercised under Wine (`tests/tests/windows.rs`).

use super::*;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What a scripted service does when asked to move.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Passes through the pending state for two reads, then gets there.
    Obeys,
    /// Ignores the request, as a hung service does.
    Ignores,
    /// Starts, then stops again.
    DiesStarting,
}

struct Scripted {
    state: ServiceState,
    depends_on: Vec<String>,
    behaviour: Behaviour,
    /// Reads left in a pending state, and the state after them.
    pending: Option<(u32, ServiceState)>,
}

#[derive(Default)]
struct ScriptedScm {
    services: Mutex<BTreeMap<String, Scripted>>,
    requests: Mutex<Vec<String>>,
}

impl ScriptedScm {
    fn with(
        self,
        name: &str,
        state: ServiceState,
        depends_on: &[&str],
        behaviour: Behaviour,
    ) -> Self {
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                name.to_lowercase(),
                Scripted {
                    state,
                    depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
                    behaviour,
                    pending: None,
                },
            );
        self
    }

    fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Scm for ScriptedScm {
    async fn state(&self, service: &str) -> Result<Option<ServiceState>, ScmError> {
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let Some(scripted) = services.get_mut(&service.to_lowercase()) else {
            return Ok(None);
        };
        if let Some((left, then)) = scripted.pending {
            if left == 0 {
                scripted.state = then;
                scripted.pending = None;
            } else {
                scripted.pending = Some((left - 1, then));
            }
        }
        Ok(Some(scripted.state))
    }

    async fn dependencies(&self, service: &str) -> Result<Option<Vec<String>>, ScmError> {
        let services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        Ok(services
            .get(&service.to_lowercase())
            .map(|s| s.depends_on.clone()))
    }

    async fn request(&self, service: &str, direction: Direction) -> Result<(), ScmError> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{direction:?} {service}").to_lowercase());
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let Some(scripted) = services.get_mut(&service.to_lowercase()) else {
            return Err(ScmError::Call {
                service: service.to_owned(),
                what: "open it",
                reason: "no such service".into(),
            });
        };
        let (pending, then) = match (direction, scripted.behaviour) {
            (_, Behaviour::Ignores) => return Ok(()),
            (Direction::Stop, _) => (ServiceState::StopPending, ServiceState::Stopped),
            (Direction::Start, Behaviour::Obeys) => {
                (ServiceState::StartPending, ServiceState::Running)
            }
            (Direction::Start, Behaviour::DiesStarting) => {
                (ServiceState::StartPending, ServiceState::Stopped)
            }
        };
        scripted.state = pending;
        scripted.pending = Some((2, then));
        Ok(())
    }
}

/// Password Secure as field scripts describe it: the backup service
/// depends on the server service.
fn password_secure(
    server: ServiceState,
    backup: ServiceState,
    behaviour: Behaviour,
) -> ScriptedScm {
    ScriptedScm::default()
        .with("PsrServer", server, &[], Behaviour::Obeys)
        .with("PsrBackupService", backup, &["PsrServer"], behaviour)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn run(scm: &ScriptedScm, list: &[&str], direction: Direction, limit_s: u64) -> Performed {
    perform(
        scm,
        &names(list),
        direction,
        Duration::from_secs(limit_s),
        &|_: &str| {},
    )
    .await
}

#[tokio::test]
async fn stopping_stops_the_dependent_service_first_and_says_how_each_went() {
    use ServiceState::Running;
    let scm = password_secure(Running, Running, Behaviour::Obeys);
    let done = run(
        &scm,
        &["PsrServer", "PsrBackupService"],
        Direction::Stop,
        10,
    )
    .await;
    assert_eq!(done.result, Ok(()));
    assert_eq!(scm.requests(), ["stop psrbackupservice", "stop psrserver"]);
    assert_eq!(
        done.lines[0],
        "stopping PsrBackupService, then PsrServer (services that depend on others first)"
    );
    for (line, service) in done.lines[1..]
        .iter()
        .zip(["PsrBackupService", "PsrServer"])
    {
        assert!(
            line.starts_with(&format!("{service}: RUNNING → STOP_PENDING → STOPPED in ")),
            "{line}"
        );
        assert!(line.ends_with(" s"), "{line}");
    }
}

#[tokio::test]
async fn starting_starts_the_dependency_first_and_a_running_service_counts_as_done() {
    use ServiceState::{Running, Stopped};
    let scm = password_secure(Running, Stopped, Behaviour::Obeys);
    let done = run(
        &scm,
        &["PsrBackupService", "PsrServer"],
        Direction::Start,
        10,
    )
    .await;
    assert_eq!(done.result, Ok(()));
    assert_eq!(scm.requests(), ["start psrbackupservice"]);
    assert_eq!(done.lines[1], "PsrServer: already RUNNING");
    assert!(
        done.lines[2].starts_with("PsrBackupService: STOPPED → START_PENDING → RUNNING in "),
        "{:?}",
        done.lines
    );
}

#[tokio::test]
async fn a_missing_service_fails_the_step_before_any_service_is_touched() {
    use ServiceState::Running;
    let scm = password_secure(Running, Running, Behaviour::Obeys);
    let done = run(&scm, &["PsrBackupServce", "PsrServer"], Direction::Stop, 10).await;
    assert_eq!(
        done.result,
        Err(ServicesError::Missing(names(&["PsrBackupServce"])))
    );
    assert!(scm.requests().is_empty());
    let reason = done.result.unwrap_err().to_string();
    assert!(
        reason.starts_with("no service PsrBackupServce on this host"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_service_that_will_not_stop_fails_the_step_naming_it_and_its_last_state() {
    use ServiceState::Running;
    let scm = password_secure(Running, Running, Behaviour::Ignores);
    let started = std::time::Instant::now();
    let done = run(&scm, &["PsrServer", "PsrBackupService"], Direction::Stop, 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let error = done.result.unwrap_err();
    assert_eq!(
        error,
        ServicesError::TimedOut {
            service: "PsrBackupService".into(),
            target: ServiceState::Stopped,
            last: Running,
            limit_s: 1,
        }
    );
    assert_eq!(
        error.to_string(),
        "PsrBackupService did not reach STOPPED within the step's time limit of 1 s; its last state: RUNNING"
    );
    // The server service, which the backup service depends on, was never
    // asked to stop.
    assert_eq!(scm.requests(), ["stop psrbackupservice"]);
}

#[tokio::test]
async fn a_service_that_stops_again_while_starting_fails_the_step() {
    use ServiceState::Stopped;
    let scm = password_secure(Stopped, Stopped, Behaviour::DiesStarting);
    let done = run(
        &scm,
        &["PsrServer", "PsrBackupService"],
        Direction::Start,
        10,
    )
    .await;
    assert_eq!(
        done.result,
        Err(ServicesError::StoppedWhileStarting {
            service: "PsrBackupService".into()
        })
    );
    assert!(done.lines[1].starts_with("PsrServer: STOPPED → START_PENDING → RUNNING"));
}

#[tokio::test]
async fn missing_names_the_services_this_host_does_not_have() {
    let scm = password_secure(
        ServiceState::Running,
        ServiceState::Running,
        Behaviour::Obeys,
    );
    assert_eq!(
        missing(&scm, &names(&["PsrServer", "psrbackupservice", "W3SVC"])).await,
        Ok(names(&["W3SVC"]))
    );
    assert_eq!(missing(&scm, &names(&["PsrServer"])).await, Ok(Vec::new()));
}

#[cfg(not(windows))]
#[tokio::test]
async fn off_windows_the_system_scm_says_it_does_not_exist() {
    assert_eq!(
        missing_on_this_host(&names(&["PsrServer"])).await,
        Err(ScmError::NotWindows)
    );
    let done = perform(
        &SystemScm,
        &names(&["PsrServer"]),
        Direction::Stop,
        Duration::from_secs(1),
        &|_: &str| {},
    )
    .await;
    assert_eq!(done.result, Err(ServicesError::Scm(ScmError::NotWindows)));
}
