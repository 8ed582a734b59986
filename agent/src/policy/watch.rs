//! When a changed configuration is applied. Group Policy refreshes by
//! deleting a key's values and writing them again, so a read in between
//! sees values vanish for a moment. A new configuration is applied only when
//! it validates and two reads `settle` apart agree; one that does not
//! validate keeps the running configuration, and its error is logged once.

use std::time::{Duration, Instant};

/// How long a new configuration must stay the same before it is applied.
pub const SETTLE: Duration = Duration::from_secs(10);
/// How often the agent re-reads its configuration (also on every reconnect).
pub const REREAD_EVERY: Duration = Duration::from_secs(60);

/// What one read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// A configuration that validated, by its fingerprint.
    Valid(String),
    /// One that did not, with the message.
    Invalid(String),
}

/// What to do after a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed (or a change is still settling).
    Keep,
    /// Read again after this long to confirm a change.
    Confirm(Duration),
    /// Apply the configuration just read.
    Apply,
    /// Say once that the configuration is wrong; keep the running one.
    Refuse(String),
}

/// The watcher's memory between reads.
#[derive(Clone, Debug)]
pub struct Watch {
    running: String,
    candidate: Option<(String, Instant)>,
    last_error: Option<String>,
}

impl Watch {
    pub fn new(running_fingerprint: String) -> Self {
        Self {
            running: running_fingerprint,
            candidate: None,
            last_error: None,
        }
    }

    /// Decides on one read at `now`.
    pub fn observe(&mut self, observation: Observation, now: Instant) -> Verdict {
        match observation {
            Observation::Invalid(message) => {
                // A value vanishing mid-refresh looks like this too: wait for
                // the next read before settling on anything.
                self.candidate = None;
                if self.last_error.as_deref() == Some(message.as_str()) {
                    Verdict::Keep
                } else {
                    self.last_error = Some(message.clone());
                    Verdict::Refuse(message)
                }
            }
            Observation::Valid(fingerprint) => {
                self.last_error = None;
                if fingerprint == self.running {
                    self.candidate = None;
                    return Verdict::Keep;
                }
                match &self.candidate {
                    Some((seen, since)) if *seen == fingerprint => {
                        if now.duration_since(*since) >= SETTLE {
                            self.running = fingerprint;
                            self.candidate = None;
                            Verdict::Apply
                        } else {
                            Verdict::Confirm(SETTLE - now.duration_since(*since))
                        }
                    }
                    _ => {
                        self.candidate = Some((fingerprint, now));
                        Verdict::Confirm(SETTLE)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_applied_after_it_settles() {
        let t0 = Instant::now();
        let mut watch = Watch::new("a".into());
        assert_eq!(
            watch.observe(Observation::Valid("a".into()), t0),
            Verdict::Keep
        );
        assert_eq!(
            watch.observe(Observation::Valid("b".into()), t0),
            Verdict::Confirm(SETTLE)
        );
        assert_eq!(
            watch.observe(Observation::Valid("b".into()), t0 + Duration::from_secs(4)),
            Verdict::Confirm(Duration::from_secs(6))
        );
        assert_eq!(
            watch.observe(Observation::Valid("b".into()), t0 + SETTLE),
            Verdict::Apply
        );
        assert_eq!(
            watch.observe(Observation::Valid("b".into()), t0 + SETTLE * 2),
            Verdict::Keep
        );
    }

    #[test]
    fn a_value_vanishing_for_a_moment_changes_nothing() {
        let t0 = Instant::now();
        let mut watch = Watch::new("full".into());
        // Mid-refresh: the controller value is gone, so the read is invalid,
        // or valid but different (a value with a default).
        assert!(matches!(
            watch.observe(Observation::Invalid("no controller".into()), t0),
            Verdict::Refuse(_)
        ));
        assert_eq!(
            watch.observe(
                Observation::Valid("full".into()),
                t0 + Duration::from_secs(1)
            ),
            Verdict::Keep
        );
        assert_eq!(
            watch.observe(
                Observation::Valid("partial".into()),
                t0 + Duration::from_secs(2)
            ),
            Verdict::Confirm(SETTLE)
        );
        assert_eq!(
            watch.observe(
                Observation::Valid("full".into()),
                t0 + Duration::from_secs(3)
            ),
            Verdict::Keep
        );
        // The partial read, seen again much later, starts over.
        assert_eq!(
            watch.observe(
                Observation::Valid("partial".into()),
                t0 + Duration::from_secs(60)
            ),
            Verdict::Confirm(SETTLE)
        );
    }

    #[test]
    fn a_bad_configuration_is_reported_once_and_never_applied() {
        let t0 = Instant::now();
        let mut watch = Watch::new("good".into());
        assert_eq!(
            watch.observe(Observation::Invalid("HeartbeatSeconds: 0".into()), t0),
            Verdict::Refuse("HeartbeatSeconds: 0".into())
        );
        assert_eq!(
            watch.observe(
                Observation::Invalid("HeartbeatSeconds: 0".into()),
                t0 + SETTLE * 3
            ),
            Verdict::Keep
        );
        assert_eq!(
            watch.observe(Observation::Invalid("other".into()), t0 + SETTLE * 4),
            Verdict::Refuse("other".into())
        );
    }
}
