//! Logging in to the web dashboard under attack: a real controller, its
//! dashboard reached over HTTPS with curl as a script would (the browser
//! tests show the pages themselves), from two loopback addresses
//! (127.0.0.1 and 127.0.0.2, curl's `--interface`).
//!
//! - Wrong tokens from one address: after the burst the answers are 429
//!   with `Retry-After`, without checking the token — also the right one
//!   from that address — while another address logs in; the audit holds a
//!   few coalesced entries with the counts, never a token.
//! - A viewer logging in again and again ends only their own oldest
//!   sessions: the admin's session lives on.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use serde_json::Value;
use std::time::{Duration, Instant};
use tierwise_e2e::{wait_for, Controller};

const SESSION_COOKIE: &str = "__Host-tierwise_session";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the dashboard answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    /// A header's value (names compared without case).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The session id the answer sets.
    fn session(&self) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            if !n.trim().eq_ignore_ascii_case("set-cookie") {
                return None;
            }
            let value = v.trim().strip_prefix(&format!("{SESSION_COOKIE}="))?;
            let id = value.split(';').next()?;
            (!id.is_empty()).then(|| id.to_owned())
        })
    }
}

/// One request with curl from local address `from`.
fn curl(from: &str, args: &[&str]) -> Answer {
    let out = std::process::Command::new("curl")
        .args(["-sk", "-i", "--interface", from])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text}"));
    Answer {
        status,
        headers: headers.to_owned(),
        body: body.to_owned(),
    }
}

fn login(base: &str, from: &str, token: &str) -> Answer {
    curl(
        from,
        &[
            "-X",
            "POST",
            "--data-urlencode",
            &format!("token={token}"),
            &format!("{base}/login"),
        ],
    )
}

fn page(base: &str, from: &str, session: &str) -> Answer {
    curl(
        from,
        &[
            "-H",
            &format!("Cookie: {SESSION_COOKIE}={session}"),
            &format!("{base}/"),
        ],
    )
}

fn start(root: &std::path::Path, flags: &[&str]) -> (Controller, String) {
    let ui = format!("127.0.0.1:{}", free_port());
    let mut all = vec!["--ui-listen", ui.as_str()];
    all.extend_from_slice(flags);
    let controller = Controller::start_with(&root.join("controller"), "127.0.0.1:0", &all).unwrap();
    (controller, format!("https://{ui}"))
}

fn audit(c: &Controller) -> Vec<Value> {
    let audit: Value = serde_json::from_str(&c.cli(&["audit", "--json"]).unwrap()).unwrap();
    audit.as_array().cloned().unwrap_or_default()
}

/// How many logins the entries of `action` stand for: one for the first of
/// a window, N for a count ("N more refused call(s) …").
fn logins_counted(entries: &[&Value], action: &str) -> u64 {
    entries
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| {
            let details = e["details"].as_str().unwrap_or_default();
            details
                .split_once(" more refused call(s)")
                .and_then(|(n, _)| n.parse().ok())
                .unwrap_or(1)
        })
        .sum()
}

#[test]
fn failed_logins_are_throttled_per_address_unchecked_and_audited_coalesced() {
    let root = tempfile::tempdir().unwrap();
    // No refill during the test (the burst of 10 stays used up); counts
    // written 20 s after a window's first refusal.
    let window = Duration::from_secs(20);
    let (c, base) = start(
        root.path(),
        &[
            "--ui-login-rate-per-address",
            "1/h",
            "--audit-refusal-window",
            "20s",
        ],
    );
    let admin = c.admin_token().unwrap();
    let wrong = |i: usize| format!("tw-guessed-token-{i:04}");
    let flood = Instant::now();

    // Ten wrong tokens are checked and refused with the reason.
    for i in 0..10 {
        let answer = login(&base, "127.0.0.1", &wrong(i));
        assert_eq!(answer.status, 401, "{answer:?}");
        assert!(answer.body.contains("not valid"), "{}", answer.body);
    }
    // Then the address is throttled: 429, when to try again, unchecked.
    for i in 10..30 {
        let answer = login(&base, "127.0.0.1", &wrong(i));
        assert_eq!(answer.status, 429, "{answer:?}");
        let retry: u64 = answer
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After: {answer:?}"));
        assert!(retry >= 1, "{retry}");
        assert!(
            answer
                .body
                .contains("Too many failed logins from 127.0.0.1")
                && answer.body.contains("Try again in"),
            "{}",
            answer.body
        );
        assert!(answer.session().is_none());
    }
    // The right token from that address is not even checked…
    let answer = login(&base, "127.0.0.1", &admin);
    assert_eq!(answer.status, 429, "{answer:?}");
    assert!(answer.session().is_none(), "{answer:?}");
    let flood = flood.elapsed();
    // …while from another address it logs in.
    let answer = login(&base, "127.0.0.2", &admin);
    assert_eq!(answer.status, 303, "{answer:?}");
    let session = answer.session().expect("a session cookie");
    let fleet = page(&base, "127.0.0.2", &session);
    assert_eq!(fleet.status, 200, "{fleet:?}");
    assert!(fleet.body.contains("admin (admin)"), "{}", fleet.body);

    // The audit: the first failure and the first throttled login of a
    // window at once, the others as counts at its end — 10 failures and
    // 21 throttled logins in a few entries.
    let (entries, _) = wait_for("the audit's counts", Duration::from_secs(120), || {
        let all = audit(&c);
        let ours: Vec<&Value> = all
            .iter()
            .filter(|e| e["actor"] == "address 127.0.0.1")
            .collect();
        let failed = logins_counted(&ours, "ui login failed");
        let throttled = logins_counted(&ours, "ui login throttled");
        Ok((failed == 10 && throttled == 21)
            .then(|| ours.into_iter().cloned().collect::<Vec<Value>>()))
    })
    .unwrap();
    // At most two entries per kind and window the flood spanned.
    let windows = flood.as_secs() / window.as_secs() + 2;
    assert!(
        entries.len() as u64 <= 4 * windows && entries.len() < 31,
        "{entries:#?}"
    );
    if flood < window {
        // All in one window: one entry and one count per kind.
        let details: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or_default(),
                    e["details"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(details.len(), 4, "{details:#?}");
        for (action, more) in [("ui login failed", 9), ("ui login throttled", 20)] {
            assert!(
                details.iter().any(|(a, d)| *a == action
                    && d.starts_with(&format!("{more} more refused call(s) within 20 s"))),
                "{details:#?}"
            );
        }
    }
    for entry in &entries {
        assert!(
            entry["subject"]
                .as_str()
                .unwrap_or_default()
                .starts_with("dashboard login"),
            "{entry}"
        );
    }
    // The successful login is audited as before, with its address.
    let login_entry = c
        .audit_entry("ui login")
        .unwrap()
        .expect("a ui login entry");
    assert_eq!(login_entry["actor"], "admin");
    assert!(
        login_entry["details"]
            .as_str()
            .unwrap_or_default()
            .contains("from 127.0.0.2"),
        "{login_entry}"
    );
    // No token text in the audit, ever.
    let everything = c.cli(&["audit", "--json"]).unwrap();
    assert!(!everything.contains("tw-guessed-token"), "{everything}");
    assert!(!everything.contains(&admin), "{everything}");
}

#[test]
fn a_viewer_logging_in_again_and_again_never_ends_the_admins_session() {
    let root = tempfile::tempdir().unwrap();
    let (c, base) = start(root.path(), &[]);
    let admin = login(&base, "127.0.0.1", &c.admin_token().unwrap())
        .session()
        .expect("the admin's session");
    let viewer = c
        .cli(&["operators", "add", "vera", "--role", "viewer"])
        .unwrap();
    // More logins than an operator may hold sessions (10).
    let sessions: Vec<String> = (0..13)
        .map(|_| {
            let answer = login(&base, "127.0.0.1", viewer.trim());
            assert_eq!(answer.status, 303, "{answer:?}");
            answer.session().expect("a session cookie")
        })
        .collect();

    // The admin is still in.
    let answer = page(&base, "127.0.0.1", &admin);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.contains("admin (admin)"), "{}", answer.body);
    // The viewer's three oldest sessions ended, the ten newest live.
    for (i, session) in sessions.iter().enumerate() {
        let answer = page(&base, "127.0.0.1", session);
        if i < 3 {
            assert_eq!(answer.status, 401, "session {i}: {answer:?}");
            assert!(
                answer.body.contains("Your session ended"),
                "{}",
                answer.body
            );
        } else {
            assert_eq!(answer.status, 200, "session {i}: {answer:?}");
            assert!(answer.body.contains("vera (viewer)"), "{}", answer.body);
        }
    }
    // Successful logins never count against the address.
    let answer = login(&base, "127.0.0.1", viewer.trim());
    assert_eq!(answer.status, 303, "{answer:?}");
}
