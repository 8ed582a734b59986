//! A subscription: where events go, which of them, in which format, and
//! whether requests are signed. Checked once, before anything is stored.

use super::event::EventKind;
use super::format::Format;
use std::collections::BTreeSet;

/// Which events a subscription gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFilter {
    All,
    Only(BTreeSet<EventKind>),
}

impl EventFilter {
    pub fn wants(&self, kind: EventKind) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Only(kinds) => kind == EventKind::Test || kinds.contains(&kind),
        }
    }
}

impl std::fmt::Display for EventFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventFilter::All => f.write_str("all"),
            EventFilter::Only(kinds) => {
                let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("{0}")]
    Name(#[from] crate::name::NameError),
    #[error("`{0}` is not a URL Tierwise can send to: give http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH")]
    Url(String),
    #[error("`{0}` is not an event; choose from {list} or `all`", list = event_list())]
    Event(String),
    #[error("`{0}` is not a format; use json, teams or slack")]
    Format(String),
    #[error("the secret is empty; put at least 16 characters in the secret file (e.g. `openssl rand -hex 32 > FILE`)")]
    EmptySecret,
    #[error("the secret is {0} bytes long; use at least 16 (e.g. `openssl rand -hex 32 > FILE`)")]
    ShortSecret(usize),
}

fn event_list() -> String {
    EventKind::subscribable()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rollout.halted,rollout.completed`, `all`, or empty (all).
pub fn parse_events(text: &str) -> Result<EventFilter, SubscriptionError> {
    let mut kinds = BTreeSet::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "all" {
            return Ok(EventFilter::All);
        }
        let kind: EventKind = name
            .parse()
            .ok()
            .filter(|k| *k != EventKind::Test)
            .ok_or_else(|| SubscriptionError::Event(name.to_owned()))?;
        kinds.insert(kind);
    }
    Ok(if kinds.is_empty() {
        EventFilter::All
    } else {
        EventFilter::Only(kinds)
    })
}

/// A subscription as asked for, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub name: String,
    pub url: String,
    pub events: EventFilter,
    pub format: Format,
    /// Empty: requests are not signed.
    pub secret: String,
}

impl Subscription {
    pub fn new(
        name: &str,
        url: &str,
        events: &str,
        format: &str,
        secret: &str,
    ) -> Result<Self, SubscriptionError> {
        crate::validate_name("subscription", name)?;
        check_url(url)?;
        let format: Format = format
            .parse()
            .map_err(|_| SubscriptionError::Format(format.to_owned()))?;
        let secret = secret.trim();
        if secret.len() < 16 && !secret.is_empty() {
            return Err(SubscriptionError::ShortSecret(secret.len()));
        }
        Ok(Self {
            name: name.to_owned(),
            url: url.to_owned(),
            events: parse_events(events)?,
            format,
            secret: secret.to_owned(),
        })
    }
}

/// An http or https URL with a host, no user part, no spaces.
fn check_url(url: &str) -> Result<(), SubscriptionError> {
    let bad = || SubscriptionError::Url(url.to_owned());
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty()
        || authority.contains('@')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
        || url.len() > 2000
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_subscription_is_taken() {
        let s = Subscription::new("ops", "https://hooks.example.com/x?y=1", "", "slack", "")
            .map_err(|e| e.to_string());
        assert_eq!(
            s.map(|s| (s.events, s.format)),
            Ok((EventFilter::All, Format::Slack))
        );
    }

    #[test]
    fn bad_input_is_refused_with_what_to_fix() {
        let cases = [
            ("ops", "ftp://x/y", "", "json", "", "not a URL"),
            ("ops", "https:///y", "", "json", "", "not a URL"),
            ("ops", "https://u:p@x/y", "", "json", "", "not a URL"),
            (
                "ops",
                "http://x/",
                "rollout.halted,rollout.nope",
                "json",
                "",
                "`rollout.nope` is not an event",
            ),
            (
                "ops",
                "http://x/",
                "test",
                "json",
                "",
                "`test` is not an event",
            ),
            ("ops", "http://x/", "", "xml", "", "not a format"),
            ("ops", "http://x/", "", "json", "short", "at least 16"),
            ("o ps", "http://x/", "", "json", "", "subscription"),
        ];
        for (name, url, events, format, secret, expected) in cases {
            let error = Subscription::new(name, url, events, format, secret)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(expected), "{url} {events} {format}: {error}");
        }
    }

    #[test]
    fn a_filter_lets_through_what_it_names_and_tests() {
        let filter = parse_events("rollout.halted, rollout.completed").unwrap_or(EventFilter::All);
        assert!(filter.wants(EventKind::Halted));
        assert!(filter.wants(EventKind::Test));
        assert!(!filter.wants(EventKind::Started));
        assert_eq!(filter.to_string(), "rollout.halted,rollout.completed");
        assert_eq!(parse_events("all").ok(), Some(EventFilter::All));
    }
}
