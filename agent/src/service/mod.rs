//! The agent as a Windows service. What the Service Control Manager asks and
//! what the agent answers is plain code here (`Lifecycle`), tested on every
//! platform; `windows.rs` only moves it to and from the SCM.
//!
//! Rules the SCM imposes and this code keeps: report Running before any
//! network I/O (enrollment and connecting come after, or the SCM gives up
//! with error 1053); while stopping, report StopPending with a rising
//! checkpoint and a wait hint, or the SCM decides the service hung; accept
//! no further controls once stopping.

#[cfg(windows)]
pub mod windows;

use std::time::Duration;

/// The service's name in the SCM (the MSI installs it under this name).
pub const SERVICE_NAME: &str = "TierwiseAgent";
/// The name people see in `services.msc`.
pub const DISPLAY_NAME: &str = "Tierwise Agent";
pub const DESCRIPTION: &str =
    "Reports Netwrix Password Secure components to the Tierwise controller and runs the update steps it sends.";
/// The Windows Event Log source (registered by the MSI).
pub const EVENT_SOURCE: &str = "Tierwise Agent";

/// Restart after a failure: 5 s, then 30 s, then 60 s; the count resets
/// after a day without failure. Set by the agent itself on every service
/// start, since an MSI built by wixl cannot write the failure actions.
pub const RESTART_DELAYS: [Duration; 3] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(60),
];
pub const FAILURE_RESET: Duration = Duration::from_secs(24 * 60 * 60);

/// How long Windows waits for the agent at shutdown when it asks for it
/// (preshutdown): time for a running installer to finish, bounded so a
/// machine never hangs on its way down.
pub const PRESHUTDOWN_TIMEOUT: Duration = Duration::from_secs(180);
/// At plain shutdown (no preshutdown first) Windows grants only seconds.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(4);
/// The wait hint sent with each StopPending report; the agent reports
/// progress well within it.
pub const STOP_WAIT_HINT: Duration = Duration::from_secs(15);
/// How often a draining agent reports progress.
pub const STOP_CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// A control request from the SCM, as far as the agent cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Stop,
    Preshutdown,
    Shutdown,
    Interrogate,
    Other,
}

/// Why the agent is stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// `net stop`, `sc stop`, the MSI stopping it for an upgrade or removal.
    Stop,
    /// The machine is going down and granted `PRESHUTDOWN_TIMEOUT`.
    Preshutdown,
    /// The machine is going down now.
    Shutdown,
    /// Console mode: Ctrl-C or SIGTERM.
    Signal,
}

impl StopCause {
    /// How long a running step may still take before it is ended and
    /// journaled as interrupted. A plain stop waits for the step's own time
    /// limit: an installer is never cut off by an upgrade of the agent.
    pub fn drain_budget(self, step_time_left: Duration) -> Duration {
        match self {
            StopCause::Stop | StopCause::Signal => step_time_left,
            StopCause::Preshutdown => step_time_left.min(PRESHUTDOWN_TIMEOUT - STOP_WAIT_HINT),
            StopCause::Shutdown => step_time_left.min(SHUTDOWN_BUDGET),
        }
    }
}

/// The state the SCM is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    StartPending,
    Running,
    StopPending,
    Stopped,
}

/// One status report for the SCM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// Controls the SCM may send now.
    pub accepts_stop: bool,
    pub accepts_preshutdown: bool,
    pub checkpoint: u32,
    pub wait_hint: Duration,
    /// 0, or the Win32 exit code when stopped after a failure.
    pub exit_code: u32,
}

/// What the control handler answers the SCM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    Handled,
    NotImplemented,
}

/// The service's life, from StartPending to Stopped.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    state: State,
    checkpoint: u32,
    stopping: Option<StopCause>,
    exit_code: u32,
}

/// ERROR_SERVICE_SPECIFIC_ERROR: the agent stopped because of an error (so
/// the SCM applies the failure actions).
pub const EXIT_FAILED: u32 = 1066;

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    pub fn new() -> Self {
        Self {
            state: State::StartPending,
            checkpoint: 0,
            stopping: None,
            exit_code: 0,
        }
    }

    /// The agent is up (before any network I/O).
    pub fn running(&mut self) {
        if self.state == State::StartPending {
            self.state = State::Running;
            self.checkpoint = 0;
        }
    }

    /// A control from the SCM: the reply, and the stop to begin, if this
    /// control begins one.
    pub fn control(&mut self, control: Control) -> (Reply, Option<StopCause>) {
        let cause = match control {
            Control::Interrogate => return (Reply::Handled, None),
            Control::Other => return (Reply::NotImplemented, None),
            Control::Stop => StopCause::Stop,
            Control::Preshutdown => StopCause::Preshutdown,
            Control::Shutdown => StopCause::Shutdown,
        };
        match self.state {
            State::StartPending | State::Running => {
                self.state = State::StopPending;
                self.stopping = Some(cause);
                self.checkpoint = 1;
                (Reply::Handled, Some(cause))
            }
            // Already stopping: a shutdown during a stop shortens nothing
            // the drain has not already bounded; say it was seen.
            State::StopPending | State::Stopped => (Reply::Handled, None),
        }
    }

    /// The agent stops on its own (a configuration error, a fatal fault).
    pub fn fail(&mut self) {
        if matches!(self.state, State::StartPending | State::Running) {
            self.state = State::StopPending;
            self.checkpoint = 1;
        }
        self.exit_code = EXIT_FAILED;
    }

    /// A draining agent is still making progress.
    pub fn progress(&mut self) {
        if self.state == State::StopPending {
            self.checkpoint = self.checkpoint.saturating_add(1);
        }
    }

    pub fn stopped(&mut self) {
        self.state = State::Stopped;
        self.checkpoint = 0;
    }

    pub fn stopping(&self) -> Option<StopCause> {
        self.stopping
    }

    /// The report for the SCM now.
    pub fn status(&self) -> Status {
        let running = self.state == State::Running;
        Status {
            state: self.state,
            accepts_stop: running,
            accepts_preshutdown: running,
            checkpoint: self.checkpoint,
            wait_hint: match self.state {
                State::StartPending => Duration::from_secs(10),
                State::StopPending => STOP_WAIT_HINT,
                State::Running | State::Stopped => Duration::ZERO,
            },
            exit_code: if self.state == State::Stopped {
                self.exit_code
            } else {
                0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_is_reported_before_anything_else_and_accepts_stop() {
        let mut life = Lifecycle::new();
        assert_eq!(life.status().state, State::StartPending);
        assert!(!life.status().accepts_stop);
        life.running();
        let status = life.status();
        assert_eq!(status.state, State::Running);
        assert!(status.accepts_stop && status.accepts_preshutdown);
        assert_eq!(status.wait_hint, Duration::ZERO);
    }

    #[test]
    fn stop_begins_once_and_then_accepts_nothing() {
        let mut life = Lifecycle::new();
        life.running();
        assert_eq!(life.control(Control::Interrogate), (Reply::Handled, None));
        assert_eq!(life.control(Control::Other), (Reply::NotImplemented, None));
        assert_eq!(
            life.control(Control::Preshutdown),
            (Reply::Handled, Some(StopCause::Preshutdown))
        );
        let status = life.status();
        assert_eq!(status.state, State::StopPending);
        assert!(!status.accepts_stop && !status.accepts_preshutdown);
        assert_eq!(status.wait_hint, STOP_WAIT_HINT);
        assert_eq!(life.control(Control::Shutdown), (Reply::Handled, None));
        assert_eq!(life.stopping(), Some(StopCause::Preshutdown));
    }

    #[test]
    fn draining_reports_a_rising_checkpoint_then_stopped() {
        let mut life = Lifecycle::new();
        life.running();
        life.control(Control::Stop);
        let first = life.status().checkpoint;
        life.progress();
        life.progress();
        assert_eq!(life.status().checkpoint, first + 2);
        life.stopped();
        assert_eq!(
            life.status(),
            Status {
                state: State::Stopped,
                accepts_stop: false,
                accepts_preshutdown: false,
                checkpoint: 0,
                wait_hint: Duration::ZERO,
                exit_code: 0,
            }
        );
    }

    #[test]
    fn a_failure_stops_with_an_exit_code_for_the_failure_actions() {
        let mut life = Lifecycle::new();
        life.running();
        life.fail();
        assert_eq!(life.status().state, State::StopPending);
        life.stopped();
        assert_eq!(life.status().exit_code, EXIT_FAILED);
    }

    #[test]
    fn drain_budgets_follow_the_cause() {
        let long = Duration::from_secs(1800);
        let short = Duration::from_secs(2);
        assert_eq!(StopCause::Stop.drain_budget(long), long);
        assert_eq!(StopCause::Signal.drain_budget(long), long);
        assert_eq!(
            StopCause::Preshutdown.drain_budget(long),
            PRESHUTDOWN_TIMEOUT - STOP_WAIT_HINT
        );
        assert_eq!(StopCause::Preshutdown.drain_budget(short), short);
        assert_eq!(StopCause::Shutdown.drain_budget(long), SHUTDOWN_BUDGET);
    }
}
