//! `stop_services` and `start_services` performed through the Service
//! Control Manager (`windows_services = [...]` in the configuration) rather
//! than by a command whose exit code is all the agent would learn: every
//! named service must exist, they are stopped dependents first and started
//! dependencies first (`order.rs`, from what the SCM says they depend on),
//! and each one must reach STOPPED or RUNNING within the step's time limit.
//! A service that does not fails the step, naming it and its last state;
//! the rollout halts on a failed step, so the installer never runs over a
//! server whose services are still up.
//!
//! The flow is plain code over the small [`Scm`] trait, so it builds and is
//! tested everywhere; `scm.rs` (Windows only) is the one place that calls
//! the real Service Control Manager, each call on the blocking pool.

pub mod order;
#[cfg(windows)]
mod scm;

pub use order::{DependencyGraph, OrderError};
#[cfg(windows)]
pub use scm::SystemScm;

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How often a service's state is read while the step waits for it: often
/// enough to notice within a fraction of a second, rarely enough to cost
/// nothing.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// The most services whose dependencies are read for one step (the named
/// ones and those they lead to); beyond that, dependencies count as leaves.
const MAX_SERVICES_READ: usize = 64;

/// Which way a step moves the services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Stop,
    Start,
}

impl Direction {
    /// The state every service must reach.
    pub fn target(self) -> ServiceState {
        match self {
            Direction::Stop => ServiceState::Stopped,
            Direction::Start => ServiceState::Running,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Direction::Stop => "stopping",
            Direction::Start => "starting",
        }
    }
}

/// A service's state as the Service Control Manager reports it, named as
/// `sc query` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    Stopped,
    StartPending,
    StopPending,
    Running,
    ContinuePending,
    PausePending,
    Paused,
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceState::Stopped => "STOPPED",
            ServiceState::StartPending => "START_PENDING",
            ServiceState::StopPending => "STOP_PENDING",
            ServiceState::Running => "RUNNING",
            ServiceState::ContinuePending => "CONTINUE_PENDING",
            ServiceState::PausePending => "PAUSE_PENDING",
            ServiceState::Paused => "PAUSED",
        })
    }
}

/// What a services step asks of the Service Control Manager. `scm.rs`
/// answers on Windows; elsewhere [`SystemScm`] refuses every call.
pub trait Scm: Sync {
    /// The service's state; `None` when there is no such service.
    fn state(
        &self,
        service: &str,
    ) -> impl Future<Output = Result<Option<ServiceState>, ScmError>> + Send;

    /// The services it depends on (load-order groups left out); `None`
    /// when there is no such service.
    fn dependencies(
        &self,
        service: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, ScmError>> + Send;

    /// Asks the service to stop or start. A service already there, or on
    /// its way, is no error: the step waits for its state either way.
    fn request(
        &self,
        service: &str,
        direction: Direction,
    ) -> impl Future<Output = Result<(), ScmError>> + Send;
}

/// A call to the Service Control Manager that did not work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScmError {
    #[error("the Windows Service Control Manager exists only on Windows")]
    NotWindows,
    #[error("{service}: cannot {what}: {reason}")]
    Call {
        service: String,
        what: &'static str,
        reason: String,
    },
    #[error("{service}: the Service Control Manager did not answer within the step's time limit")]
    NoAnswer { service: String },
}

/// Why a services step failed: each names the service and what was seen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServicesError {
    #[error("no service {} on this host; `windows_services` must name services as `sc query NAME` knows them", .0.join(", "))]
    Missing(Vec<String>),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error("{service} did not reach {target} within the step's time limit of {limit_s} s; its last state: {last}")]
    TimedOut {
        service: String,
        target: ServiceState,
        last: ServiceState,
        limit_s: u64,
    },
    #[error(
        "{service} went back to STOPPED while starting; its own log or the Event Log says why"
    )]
    StoppedWhileStarting { service: String },
    #[error(transparent)]
    Scm(#[from] ScmError),
}

/// What a services step did: a line per service (its states on the way,
/// how long it took), and whether every one got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Performed {
    pub lines: Vec<String>,
    pub result: Result<(), ServicesError>,
}

/// Moves `services` to `direction`'s state in dependency order, all within
/// `limit`; `progress` hears each line as it happens. Nothing is asked of
/// any service until all of them were found and ordered.
pub async fn perform<S: Scm>(
    scm: &S,
    services: &[String],
    direction: Direction,
    limit: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Performed {
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    let result = perform_within(
        scm, services, direction, limit, deadline, &mut lines, progress,
    )
    .await;
    Performed { lines, result }
}

async fn perform_within<S: Scm>(
    scm: &S,
    services: &[String],
    direction: Direction,
    limit: Duration,
    deadline: Instant,
    lines: &mut Vec<String>,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), ServicesError> {
    let absent = within(deadline, "the named services", missing(scm, services)).await??;
    if !absent.is_empty() {
        return Err(ServicesError::Missing(absent));
    }
    let graph = dependency_graph(scm, services, deadline).await?;
    let ordered = order::order(services, &graph, direction)?;
    let plan = format!(
        "{} {} ({})",
        direction.verb(),
        ordered.join(", then "),
        match direction {
            Direction::Stop => "services that depend on others first",
            Direction::Start => "dependencies first",
        }
    );
    tracing::info!("{plan}");
    progress(&plan);
    lines.push(plan);
    for service in &ordered {
        let line = move_one(scm, service, direction, limit, deadline, progress).await?;
        // The agent's log keeps what each service did, whatever the step's
        // report is later reduced to.
        tracing::info!("{line}");
        progress(&line);
        lines.push(line);
    }
    Ok(())
}

/// Moves one service and waits for it; the line says how it went.
async fn move_one<S: Scm>(
    scm: &S,
    service: &str,
    direction: Direction,
    limit: Duration,
    deadline: Instant,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, ServicesError> {
    let target = direction.target();
    let begun = Instant::now();
    let state = || async {
        within(deadline, service, scm.state(service))
            .await??
            .ok_or_else(|| ServicesError::Missing(vec![service.to_owned()]))
    };
    let first = state().await?;
    if first == target {
        return Ok(format!("{service}: already {target}"));
    }
    within(deadline, service, scm.request(service, direction)).await??;
    let mut trail = vec![first];
    loop {
        let now = state().await?;
        if trail.last() != Some(&now) {
            trail.push(now);
        }
        let seen = trail
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" → ");
        if now == target {
            return Ok(format!(
                "{service}: {seen} in {:.1} s",
                begun.elapsed().as_secs_f64()
            ));
        }
        if direction == Direction::Start && now == ServiceState::Stopped && trail.len() > 1 {
            return Err(ServicesError::StoppedWhileStarting {
                service: service.to_owned(),
            });
        }
        if Instant::now() + POLL_EVERY > deadline {
            return Err(ServicesError::TimedOut {
                service: service.to_owned(),
                target,
                last: now,
                limit_s: limit.as_secs(),
            });
        }
        progress(&format!(
            "{service}: {seen} after {} s, waiting for {target}",
            begun.elapsed().as_secs()
        ));
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Which of `services` do not exist on this host, as named. A services
/// step checks this before it touches any of them; the inventory may ask
/// it too (on this host: [`missing_on_this_host`]).
pub async fn missing<S: Scm>(scm: &S, services: &[String]) -> Result<Vec<String>, ScmError> {
    let mut absent = Vec::new();
    for service in services {
        if scm.state(service).await?.is_none() {
            absent.push(service.clone());
        }
    }
    Ok(absent)
}

/// [`missing`] through this host's Service Control Manager.
pub async fn missing_on_this_host(services: &[String]) -> Result<Vec<String>, ScmError> {
    missing(&SystemScm, services).await
}

/// What the named services depend on, and what those depend on in turn, as
/// far as it can be read. A named service that has vanished meanwhile is
/// missing; a dependency that cannot be read is left as a leaf (it is not
/// the step's to stop or start, and Windows starts it by itself).
async fn dependency_graph<S: Scm>(
    scm: &S,
    services: &[String],
    deadline: Instant,
) -> Result<DependencyGraph, ServicesError> {
    let named = |name: &str| {
        services
            .iter()
            .any(|s| s.to_lowercase() == name.to_lowercase())
    };
    let mut graph = DependencyGraph::default();
    let mut queue: std::collections::VecDeque<String> = services.iter().cloned().collect();
    let mut asked = std::collections::BTreeSet::new();
    while let Some(service) = queue.pop_front() {
        if asked.len() >= MAX_SERVICES_READ || !asked.insert(service.to_lowercase()) {
            continue;
        }
        let answer = within(deadline, &service, scm.dependencies(&service)).await;
        match answer {
            Ok(Ok(Some(depends_on))) => {
                queue.extend(depends_on.iter().cloned());
                graph.insert(&service, depends_on);
            }
            Ok(Ok(None)) if named(&service) => {
                return Err(ServicesError::Missing(vec![service]));
            }
            Ok(Err(error)) if named(&service) => return Err(error.into()),
            Err(error) => return Err(error.into()),
            Ok(_) => {}
        }
    }
    Ok(graph)
}

/// `call`, unless the deadline passes first.
async fn within<T>(
    deadline: Instant,
    service: &str,
    call: impl Future<Output = T>,
) -> Result<T, ScmError> {
    tokio::time::timeout_at(deadline, call)
        .await
        .map_err(|_| ScmError::NoAnswer {
            service: service.to_owned(),
        })
}

/// Off Windows there is no Service Control Manager: every call says so.
/// (The configuration refuses `windows_services` there; this keeps the
/// step total.)
#[cfg(not(windows))]
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemScm;

#[cfg(not(windows))]
impl Scm for SystemScm {
    async fn state(&self, _service: &str) -> Result<Option<ServiceState>, ScmError> {
        Err(ScmError::NotWindows)
    }

    async fn dependencies(&self, _service: &str) -> Result<Option<Vec<String>>, ScmError> {
        Err(ScmError::NotWindows)
    }

    async fn request(&self, _service: &str, _direction: Direction) -> Result<(), ScmError> {
        Err(ScmError::NotWindows)
    }
}

#[cfg(test)]
mod tests;
