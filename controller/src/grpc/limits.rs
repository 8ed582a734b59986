//! The controller's rate limits and the coalescing of refused calls in the
//! audit log. Enrollment attempts are limited per source address and per
//! token, renewals per host; what is over a limit is refused with
//! RESOURCE_EXHAUSTED and when to try again (agents back off and retry).
//! A known operator's refused calls are audited once per method and
//! window, with the count of the rest: a flood cannot fill the audit log.
//! Failed dashboard logins are limited per source address (`ui_login`):
//! a burst of `UI_LOGIN_BURST`, then the configured rate; the dashboard
//! audits them coalesced the same way, by address.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tierwise_common::ratelimit::{Rate, RateLimiter};

/// Keys each limiter holds at most (see `RateLimiter`).
const MAX_KEYS: usize = 200_000;

/// Refusal windows open at once at most.
const MAX_WINDOWS: usize = 10_000;

/// Failed dashboard logins one address may make at once, before the rate
/// (`--ui-login-rate-per-address`) applies: enough for a person mistyping
/// or pasting the wrong token a few times.
pub const UI_LOGIN_BURST: u32 = 10;

/// The limits, as configured (`tierwise serve --enroll-rate-per-address`…).
#[derive(Clone, Copy, Debug)]
pub struct LimitSettings {
    pub enroll_per_address: Rate,
    pub enroll_per_token: Rate,
    pub renew_per_host: Rate,
    /// Failed dashboard logins per source address, after a burst of
    /// `UI_LOGIN_BURST`.
    pub ui_login_per_address: Rate,
    /// A refused call of an operator is audited once per method in this
    /// window; the rest are counted in one entry at its end.
    pub audit_refusal_window: Duration,
}

impl Default for LimitSettings {
    /// Loose enough for a fleet enrolling at once through one Group Policy
    /// token (the controller completes about 1,100 enrollments a second
    /// here) and for any reconnect storm (sessions are not limited here).
    fn default() -> Self {
        Self {
            enroll_per_address: Rate::per_second(20.0),
            enroll_per_token: Rate::per_second(500.0),
            renew_per_host: Rate::per_second(0.1),
            // One every 6 s: a guesser gets 14,400 tries a day from one
            // address against tokens of 256 random bits.
            ui_login_per_address: Rate::per_second(10.0 / 60.0),
            audit_refusal_window: Duration::from_secs(60),
        }
    }
}

/// The limiters of one controller process.
#[derive(Debug)]
pub struct Limits {
    enroll_per_address: Mutex<RateLimiter>,
    enroll_per_token: Mutex<RateLimiter>,
    renew_per_host: Mutex<RateLimiter>,
    ui_login_per_address: Mutex<RateLimiter>,
    refusals: Mutex<Refusals>,
}

/// Over a limit: what was limited and when to try again.
#[derive(Debug, thiserror::Error)]
#[error("too many {what}; try again in {retry_ms} ms")]
pub struct OverLimit {
    pub what: String,
    pub retry_ms: u64,
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            enroll_per_address: Mutex::new(RateLimiter::new(settings.enroll_per_address, MAX_KEYS)),
            enroll_per_token: Mutex::new(RateLimiter::new(settings.enroll_per_token, MAX_KEYS)),
            renew_per_host: Mutex::new(RateLimiter::new(settings.renew_per_host, MAX_KEYS)),
            ui_login_per_address: Mutex::new(RateLimiter::with_burst(
                settings.ui_login_per_address,
                f64::from(UI_LOGIN_BURST),
                MAX_KEYS,
            )),
            refusals: Mutex::new(Refusals::new(settings.audit_refusal_window)),
        }
    }

    /// One enrollment attempt from `address` (an IPv6 address counts by
    /// its /64, which one machine may fill).
    pub fn enroll_address(&self, address: std::net::IpAddr, now_ms: i64) -> Result<(), OverLimit> {
        let key = address_key(address);
        take(&self.enroll_per_address, &key, now_ms).map_err(|retry_ms| OverLimit {
            what: format!("enrollment attempts from {key}"),
            retry_ms,
        })
    }

    /// One enrollment attempt with token `token_id`, counted once its
    /// secret was found right: made-up secrets cannot use up a real
    /// token's rate.
    pub fn enroll_token(&self, token_id: &str, now_ms: i64) -> Result<(), OverLimit> {
        take(&self.enroll_per_token, token_id, now_ms).map_err(|retry_ms| OverLimit {
            what: format!("enrollment attempts with token {token_id}"),
            retry_ms,
        })
    }

    /// One renewal by `host_id`.
    pub fn renew(&self, host_id: &str, now_ms: i64) -> Result<(), OverLimit> {
        take(&self.renew_per_host, host_id, now_ms).map_err(|retry_ms| OverLimit {
            what: format!("certificate renewals by host {host_id}"),
            retry_ms,
        })
    }

    /// One dashboard login from `address` (counted by `address_key`),
    /// taken before its token is checked; `ui_login_succeeded` gives it
    /// back, so only failed logins use up the address's burst. Over the
    /// limit, the token is not checked at all.
    pub fn ui_login(&self, address: std::net::IpAddr, now_ms: i64) -> Result<(), OverLimit> {
        let key = address_key(address);
        take(&self.ui_login_per_address, &key, now_ms).map_err(|retry_ms| OverLimit {
            what: format!("failed dashboard logins from {key}"),
            retry_ms,
        })
    }

    /// The login `ui_login` counted for `address` succeeded: it does not
    /// count.
    pub fn ui_login_succeeded(&self, address: std::net::IpAddr) {
        self.ui_login_per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .give_back(&address_key(address));
    }

    /// A refused call by `actor` (an operator, an address) of `method`,
    /// audited as `action`: the audit entries to write now.
    pub fn refused(
        &self,
        actor: &str,
        action: &str,
        method: &str,
        reason: &str,
        now_ms: i64,
    ) -> Vec<Refusal> {
        self.refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .refused(actor, action, method, reason, now_ms)
    }

    /// Counts of windows that have ended, to write now.
    pub fn ended_refusals(&self, now_ms: i64) -> Vec<Refusal> {
        self.refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ended(now_ms)
    }
}

/// Writes refusal entries to the audit log (a failure is logged: the call
/// was refused either way).
pub async fn audit_refusals(store: &crate::store::Store, refusals: Vec<Refusal>) {
    for refusal in refusals {
        let now = tierwise_runtime::clock::now_ms();
        if let Err(error) = store
            .audit(
                &refusal.actor,
                &refusal.action,
                &refusal.method,
                &refusal.details,
                now,
            )
            .await
        {
            tracing::warn!(%error, "could not record refused calls in the audit log");
        }
    }
}

/// How limits per source address count `address`: an IPv4 address (also
/// one mapped into IPv6) as itself, an IPv6 address by its /64, which one
/// machine may fill.
pub fn address_key(address: std::net::IpAddr) -> String {
    match address.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        v4 => v4.to_string(),
    }
}

fn take(limiter: &Mutex<RateLimiter>, key: &str, now_ms: i64) -> Result<(), u64> {
    limiter
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .allow(key, now_ms)
}

/// An audit entry for refused calls: the first of a window, or the count
/// of the others at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub actor: String,
    pub action: String,
    pub method: String,
    pub details: String,
}

#[derive(Debug)]
struct Window {
    started_ms: i64,
    more: u64,
    action: String,
    reason: String,
}

/// Refused calls by (operator, method), one window each.
#[derive(Debug)]
struct Refusals {
    window_ms: i64,
    open: HashMap<(String, String), Window>,
}

impl Refusals {
    fn new(window: Duration) -> Self {
        Self {
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            open: HashMap::new(),
        }
    }

    /// A refusal: written at once when it opens a window for its actor and
    /// method (after the count of that pair's previous window, if it ended
    /// with more), counted otherwise. Only this pair's window is looked at:
    /// `ended` writes the others, every few seconds.
    fn refused(
        &mut self,
        actor: &str,
        action: &str,
        method: &str,
        reason: &str,
        now_ms: i64,
    ) -> Vec<Refusal> {
        let key = (actor.to_owned(), method.to_owned());
        let mut write = Vec::new();
        if self
            .open
            .get(&key)
            .is_some_and(|window| now_ms - window.started_ms >= self.window_ms)
        {
            if let Some(ended) = self.open.remove(&key).and_then(|w| self.count(&key, w)) {
                write.push(ended);
            }
        }
        let full = self.open.len() >= MAX_WINDOWS;
        match self.open.get_mut(&key) {
            Some(window) => window.more += 1,
            // So many actors refused at once: the rest are logged, not
            // audited, and memory stays bounded.
            None if full => {}
            None => {
                write.push(Refusal {
                    actor: actor.to_owned(),
                    action: action.to_owned(),
                    method: method.to_owned(),
                    details: reason.to_owned(),
                });
                self.open.insert(
                    key,
                    Window {
                        started_ms: now_ms,
                        more: 0,
                        action: action.to_owned(),
                        reason: reason.to_owned(),
                    },
                );
            }
        }
        write
    }

    /// The windows that have ended: the counts of those with more.
    fn ended(&mut self, now_ms: i64) -> Vec<Refusal> {
        let window_ms = self.window_ms;
        let ended: Vec<_> = self
            .open
            .iter()
            .filter(|(_, window)| now_ms - window.started_ms >= window_ms)
            .map(|(key, _)| key.clone())
            .collect();
        let mut write: Vec<Refusal> = ended
            .into_iter()
            .filter_map(|key| {
                let window = self.open.remove(&key)?;
                self.count(&key, window)
            })
            .collect();
        write.sort_by(|a, b| (&a.actor, &a.method).cmp(&(&b.actor, &b.method)));
        write
    }

    /// The entry that counts a window's other refusals, if there were any.
    fn count(&self, (actor, method): &(String, String), window: Window) -> Option<Refusal> {
        (window.more > 0).then(|| Refusal {
            actor: actor.clone(),
            action: window.action,
            method: method.clone(),
            details: format!(
                "{} more refused call(s) within {} s: {}",
                window.more,
                self.window_ms / 1000,
                window.reason
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_is_one_entry_and_a_count_per_window() {
        let mut refusals = Refusals::new(Duration::from_secs(60));
        let first = refusals.refused("vera", "denied", "StartRollout", "role too low", 0);
        assert_eq!(first.len(), 1);
        for t in 1..1000 {
            assert!(refusals
                .refused("vera", "denied", "StartRollout", "role too low", t)
                .is_empty());
        }
        // Another method has its own window.
        assert_eq!(
            refusals
                .refused("vera", "denied", "AbortRollout", "role too low", 5)
                .len(),
            1
        );
        assert!(refusals.ended(59_999).is_empty());
        let ended = refusals.ended(60_000);
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert_eq!(ended[0].method, "StartRollout");
        assert!(ended[0]
            .details
            .starts_with("999 more refused call(s) within 60 s"));
        // A window without more refusals ends without an entry.
        assert!(refusals.ended(60_005).is_empty());
        // The next refusal after the window is written again.
        assert_eq!(
            refusals
                .refused("vera", "denied", "StartRollout", "role too low", 61_000)
                .len(),
            1
        );
    }

    #[test]
    fn enrollment_is_limited_per_address_and_per_token() {
        let limits = Limits::new(&LimitSettings {
            enroll_per_address: Rate::per_second(1.0),
            enroll_per_token: Rate::per_second(2.0),
            ..LimitSettings::default()
        });
        let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
        for _ in 0..5 {
            limits.enroll_address(ip("10.0.0.1"), 0).unwrap();
        }
        let over = limits.enroll_address(ip("10.0.0.1"), 0).unwrap_err();
        assert!(over.to_string().contains("from 10.0.0.1"), "{over}");
        limits.enroll_address(ip("10.0.0.2"), 0).unwrap();
        // One IPv6 /64 is one address.
        for i in 0..5 {
            limits
                .enroll_address(ip(&format!("2001:db8:1:2::{i}")), 0)
                .unwrap();
        }
        let over = limits
            .enroll_address(ip("2001:db8:1:2::ffff"), 0)
            .unwrap_err();
        assert!(
            over.to_string().contains("from 2001:db8:1:2::/64"),
            "{over}"
        );
        for _ in 0..10 {
            limits.enroll_token("t1", 0).unwrap();
        }
        let over = limits.enroll_token("t1", 0).unwrap_err();
        assert!(over.to_string().contains("with token t1"), "{over}");
        for _ in 0..3 {
            assert!(limits.renew("cl-1", 0).is_ok());
        }
        assert!(limits.renew("cl-1", 0).is_err());
    }

    #[test]
    fn failed_dashboard_logins_are_limited_per_address_and_successes_are_free() {
        let limits = Limits::new(&LimitSettings::default());
        let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
        // Logins that succeed do not count.
        for _ in 0..100 {
            limits.ui_login(ip("10.0.0.1"), 0).unwrap();
            limits.ui_login_succeeded(ip("10.0.0.1"));
        }
        for _ in 0..UI_LOGIN_BURST {
            limits.ui_login(ip("10.0.0.1"), 0).unwrap();
        }
        let over = limits.ui_login(ip("10.0.0.1"), 0).unwrap_err();
        assert!(
            over.to_string()
                .contains("failed dashboard logins from 10.0.0.1"),
            "{over}"
        );
        assert!((5_999..=6_001).contains(&over.retry_ms), "{over:?}");
        limits.ui_login(ip("10.0.0.2"), 0).unwrap();
        // Refilled: one every 6 s.
        limits.ui_login(ip("10.0.0.1"), 6_001).unwrap();
        assert!(limits.ui_login(ip("10.0.0.1"), 6_001).is_err());
        // An IPv4 address mapped into IPv6 is the same address; a /64 one.
        assert!(limits.ui_login(ip("::ffff:10.0.0.1"), 6_001).is_err());
        for i in 0..UI_LOGIN_BURST {
            limits
                .ui_login(ip(&format!("2001:db8:1:2::{i}")), 0)
                .unwrap();
        }
        assert!(limits.ui_login(ip("2001:db8:1:2:ffff::1"), 0).is_err());
    }
}
