//! What a request's body looks like: the payload itself (`json`), or the
//! message an incoming webhook of Microsoft Teams (an Adaptive Card, as a
//! Teams workflow's "post to a channel when a webhook request is received"
//! takes it) or Slack (`text` with `mrkdwn`) shows.

use super::payload::{bounded_body, Payload, MAX_BODY_BYTES};
use serde_json::json;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Teams,
    Slack,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lines of a chat message after its summary: the facts a person
/// acts on (hosts and the end of their output).
fn fact_lines(payload: &Payload) -> Vec<String> {
    let mut lines = Vec::new();
    for host in payload.hosts.iter().take(10) {
        let exit = host
            .exit_code
            .map_or_else(String::new, |c| format!(" (exit {c})"));
        let last = host.output_tail.lines().last().unwrap_or_default();
        lines.push(format!(
            "{} — {} {}{exit}: {last}",
            host.host, host.action, host.state
        ));
    }
    if payload.hosts.len() + payload.hosts_left_out > 10 {
        lines.push(format!(
            "… and {} more",
            payload.hosts.len() + payload.hosts_left_out - 10
        ));
    }
    if let Some(r) = &payload.rollout {
        lines.push(format!("`tierwise rollout status {}`", r.id));
    }
    lines
}

/// The request body for `format`, within [`MAX_BODY_BYTES`].
pub fn render(format: Format, payload: &Payload) -> Vec<u8> {
    let body = match format {
        Format::Json => return bounded_body(payload, MAX_BODY_BYTES),
        Format::Slack => {
            let mut text = format!("*{}*", payload.summary);
            for line in fact_lines(payload) {
                text.push_str("\n• ");
                text.push_str(&line);
            }
            if let Some(head) = &payload.audit_head {
                text.push_str(&format!("\n_audit head {head}_"));
            }
            json!({ "text": text, "mrkdwn": true })
        }
        Format::Teams => {
            let mut body = vec![json!({
                "type": "TextBlock", "text": payload.summary, "weight": "Bolder", "wrap": true
            })];
            body.extend(fact_lines(payload).into_iter().map(|line| {
                json!({ "type": "TextBlock", "text": line, "wrap": true, "spacing": "Small" })
            }));
            if let Some(head) = &payload.audit_head {
                body.push(json!({
                    "type": "TextBlock", "text": format!("audit head {head}"), "wrap": true,
                    "size": "Small", "isSubtle": true, "spacing": "Small"
                }));
            }
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": body,
                    }
                }]
            })
        }
    };
    let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
    // Ten lines of bounded facts never come near it; a summary with an
    // enormous reason might.
    bytes.truncate(MAX_BODY_BYTES);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::event::EventKind;
    use crate::notify::payload::PayloadHost;

    fn halted() -> Payload {
        let mut p = Payload::test("x", 0);
        p.event = EventKind::Halted;
        p.summary = "Rollout r1 of prod to 26.3.100 halted".into();
        p.hosts = vec![PayloadHost {
            host: "srv-01".into(),
            step: "r1.s3".into(),
            action: "install_component".into(),
            state: "failed".into(),
            exit_code: Some(1603),
            output_tail: "line one\nFatal error during installation".into(),
            reason: String::new(),
        }];
        p
    }

    #[test]
    fn slack_gets_text_with_the_facts() {
        let body: serde_json::Value =
            serde_json::from_slice(&render(Format::Slack, &halted())).unwrap_or_default();
        let text = body["text"].as_str().unwrap_or_default();
        assert!(
            text.starts_with("*Rollout r1 of prod to 26.3.100 halted*"),
            "{text}"
        );
        assert!(
            text.contains(
                "srv-01 — install_component failed (exit 1603): Fatal error during installation"
            ),
            "{text}"
        );
    }

    #[test]
    fn teams_gets_an_adaptive_card() {
        let body: serde_json::Value =
            serde_json::from_slice(&render(Format::Teams, &halted())).unwrap_or_default();
        let card = &body["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(
            card["content"]["body"][0]["text"],
            "Rollout r1 of prod to 26.3.100 halted"
        );
    }

    #[test]
    fn every_format_carries_the_audit_head() {
        let mut p = halted();
        let head = crate::audit::Head {
            seq: 42,
            sha256: "ab".repeat(32),
        };
        p.audit_head = Some(head.clone());
        let json: serde_json::Value =
            serde_json::from_slice(&render(Format::Json, &p)).unwrap_or_default();
        assert_eq!(json["audit_head"]["seq"], 42);
        assert_eq!(json["audit_head"]["sha256"], head.sha256.as_str());
        let slack = String::from_utf8_lossy(&render(Format::Slack, &p)).into_owned();
        assert!(slack.contains(&format!("audit head {head}")), "{slack}");
        let teams = String::from_utf8_lossy(&render(Format::Teams, &p)).into_owned();
        assert!(teams.contains(&format!("audit head {head}")), "{teams}");
        // An event stored before the field existed still reads.
        let old: Payload =
            serde_json::from_str(&serde_json::to_string(&halted()).unwrap_or_default())
                .unwrap_or_else(|_| Payload::test("", 1));
        assert_eq!(old.audit_head, None);
    }

    #[test]
    fn json_is_the_payload() {
        let p = halted();
        let back: Payload = serde_json::from_slice(&render(Format::Json, &p))
            .unwrap_or_else(|_| Payload::test("", 1));
        assert_eq!(back, p);
    }
}
