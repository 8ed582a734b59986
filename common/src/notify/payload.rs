//! The JSON every event carries (version 1), and how it is kept within the
//! size a receiver is sent.

use super::event::{EventKind, HostFact};
use serde::{Deserialize, Serialize};

/// Raised only when a field changes meaning or goes away; new fields are
/// added without raising it.
pub const PAYLOAD_VERSION: u32 = 1;
/// The largest body sent: output tails are cut, then hosts left out, to
/// stay within it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most of one step's output tail an event carries.
const MAX_TAIL_BYTES: usize = 2048;

/// One event, as sent (`json` format) and stored in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub version: u32,
    /// Unique per event, the same in every retry: a receiver that may see
    /// an event twice (a sender that died between sending and recording it)
    /// keeps the ids it has handled.
    pub id: String,
    pub event: EventKind,
    /// When the change was committed, RFC 3339 UTC (ms), and as Unix ms.
    pub at: String,
    pub at_ms: i64,
    /// One line for people: what happened.
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<PayloadRollout>,
    /// The steps the event is about (failed ones for a halt, failed and
    /// skipped ones for a completion, open tasks, an offline host's steps).
    #[serde(default)]
    pub hosts: Vec<PayloadHost>,
    /// Hosts with a failed step, and with a skipped step, in the rollout.
    #[serde(default)]
    pub failed_hosts: Vec<String>,
    #[serde(default)]
    pub skipped_hosts: Vec<String>,
    /// `host.offline`: the host that went offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Steps left out to stay within the size limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hosts_left_out: usize,
    /// The audit chain's head when the event was sent (filled in by the
    /// sender): a receiver that keeps it can later show, with `tierwise
    /// audit verify --expect SEQ:SHA256`, that no entry before it was
    /// removed or rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<crate::audit::Head>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadRollout {
    pub id: String,
    pub installation: String,
    pub release: String,
    pub state: String,
    pub phase: usize,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadHost {
    pub host: String,
    pub step: String,
    pub action: String,
    pub state: String,
    pub exit_code: Option<i64>,
    pub output_tail: String,
    pub reason: String,
}

impl From<&HostFact> for PayloadHost {
    fn from(s: &HostFact) -> Self {
        PayloadHost {
            host: s.host_id.clone(),
            step: s.step_id.clone(),
            action: s.action.clone(),
            state: s.state.as_str().to_owned(),
            exit_code: s.exit_code,
            output_tail: tail(&s.output_tail, MAX_TAIL_BYTES),
            reason: s.reason.clone(),
        }
    }
}

/// A time (Unix ms) as RFC 3339 UTC with its milliseconds.
pub(super) fn rfc3339_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// The last `max` bytes of `text` (on a character boundary), marked when cut.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

impl Payload {
    /// A test event, as `tierwise notify test` sends it.
    pub fn test(subscription: &str, at_ms: i64) -> Self {
        Payload {
            version: PAYLOAD_VERSION,
            id: format!("test.{subscription}.{at_ms}"),
            event: EventKind::Test,
            at: rfc3339_ms(at_ms),
            at_ms,
            summary: format!("Test notification for subscription {subscription} from Tierwise"),
            rollout: None,
            hosts: Vec::new(),
            failed_hosts: Vec::new(),
            skipped_hosts: Vec::new(),
            host: None,
            hosts_left_out: 0,
            audit_head: None,
        }
    }

    /// Fills in the one-line summary from the facts.
    pub(super) fn summarised(mut self) -> Self {
        let Some(r) = &self.rollout else {
            return self;
        };
        let what = format!("Rollout {} of {} to {}", r.id, r.installation, r.release);
        let hosts = |names: &[String]| names.join(", ");
        self.summary = match self.event {
            EventKind::Started => format!("{what} started"),
            EventKind::WaitingForApproval => format!("{what} waits for approval: {}", r.reason),
            EventKind::WaitingForOperator => {
                format!("{what} waits for an operator task: {}", r.reason)
            }
            EventKind::Halted => format!(
                "{what} halted: {} (failed: {})",
                r.reason,
                hosts(&self.failed_hosts)
            ),
            EventKind::Completed
                if self.failed_hosts.is_empty() && self.skipped_hosts.is_empty() =>
            {
                format!("{what} completed")
            }
            EventKind::Completed => format!(
                "{what} completed with failures (failed: {}; skipped: {})",
                hosts(&self.failed_hosts),
                hosts(&self.skipped_hosts)
            ),
            EventKind::Aborted => format!("{what} was aborted"),
            EventKind::HostOffline => format!(
                "{} went offline during {what}",
                self.host.as_deref().unwrap_or("a host")
            ),
            EventKind::Test => self.summary.clone(),
        };
        self
    }
}

/// The payload as JSON within `limit` bytes: output tails are shortened,
/// then the steps listed are cut (counted in `hosts_left_out`), then the
/// host name lists; what remains always fits a sane limit.
pub fn bounded_body(payload: &Payload, limit: usize) -> Vec<u8> {
    let encode = |p: &Payload| serde_json::to_vec(p).unwrap_or_default();
    let mut body = encode(payload);
    if body.len() <= limit {
        return body;
    }
    let mut p = payload.clone();
    for max in [512, 128, 0] {
        for host in &mut p.hosts {
            host.output_tail = tail(&host.output_tail, max);
            host.reason = tail(&host.reason, max.max(200));
        }
        body = encode(&p);
        if body.len() <= limit {
            return body;
        }
    }
    while body.len() > limit && !p.hosts.is_empty() {
        let keep = p.hosts.len() / 2;
        p.hosts_left_out += p.hosts.len() - keep;
        p.hosts.truncate(keep);
        body = encode(&p);
    }
    for list in [&mut p.failed_hosts, &mut p.skipped_hosts] {
        if body.len() > limit {
            list.truncate(100);
        }
    }
    encode(&p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::StepState;

    fn big(hosts: usize, tail_bytes: usize) -> Payload {
        let mut p = Payload::test("x", 0);
        p.event = EventKind::Halted;
        p.hosts = (0..hosts)
            .map(|i| PayloadHost {
                host: format!("cl-{i:04}"),
                step: format!("r1.s{i}"),
                action: "install_component".into(),
                state: StepState::Failed.as_str().into(),
                exit_code: Some(1603),
                output_tail: "é".repeat(tail_bytes / 2),
                reason: "failed".into(),
            })
            .collect();
        p.failed_hosts = p.hosts.iter().map(|h| h.host.clone()).collect();
        p
    }

    #[test]
    fn a_small_payload_is_sent_whole() {
        let p = big(2, 100);
        assert_eq!(
            bounded_body(&p, MAX_BODY_BYTES),
            serde_json::to_vec(&p).unwrap_or_default()
        );
    }

    #[test]
    fn long_tails_are_cut_first_and_the_result_still_parses() {
        let p = big(40, 4000);
        let body = bounded_body(&p, MAX_BODY_BYTES);
        assert!(body.len() <= MAX_BODY_BYTES, "{}", body.len());
        let back: Payload = serde_json::from_slice(&body).unwrap_or_else(|_| Payload::test("", 0));
        assert_eq!(back.hosts.len(), 40, "every host kept, tails shortened");
        assert_eq!(back.hosts_left_out, 0);
    }

    #[test]
    fn thousands_of_failed_hosts_fit_with_the_rest_counted() {
        let p = big(5000, 2000);
        let body = bounded_body(&p, MAX_BODY_BYTES);
        assert!(body.len() <= MAX_BODY_BYTES, "{}", body.len());
        let back: Payload = serde_json::from_slice(&body).unwrap_or_else(|_| Payload::test("", 0));
        assert_eq!(back.hosts.len() + back.hosts_left_out, 5000);
    }

    #[test]
    fn a_tail_keeps_its_end_on_a_character_boundary() {
        assert_eq!(tail("abcdef", 3), "…def");
        assert_eq!(tail("ééé", 3), "…é");
        assert_eq!(tail("short", 10), "short");
    }
}
