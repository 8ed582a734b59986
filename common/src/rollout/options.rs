//! How a rollout runs: error threshold, approvals, attempts and deadlines.

use crate::action::StepAction;
use crate::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many failed clients a wave tolerates before the rollout halts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorThreshold {
    Percent(u8),
    Count(usize),
}

impl ErrorThreshold {
    /// `5%` or `3`: digits only (no sign, no space before `%`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if let Some(percent) = text.strip_suffix('%') {
            let value: u8 = Some(percent)
                .filter(|p| digits(p))
                .and_then(|p| p.parse().ok())
                .filter(|p| *p <= 100)
                .ok_or_else(|| format!("`{text}` is not a share from 0% to 100%"))?;
            return Ok(ErrorThreshold::Percent(value));
        }
        Some(text)
            .filter(|t| digits(t))
            .and_then(|t| t.parse::<usize>().ok())
            .map(ErrorThreshold::Count)
            .ok_or_else(|| format!("`{text}` is neither a share (5%) nor a number of hosts (3)"))
    }

    /// Failures allowed among `total` steps.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            ErrorThreshold::Percent(p) => total * usize::from(p) / 100,
            ErrorThreshold::Count(n) => n,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutOptions {
    pub error_threshold: ErrorThreshold,
    /// Each phase after the first waits for `rollout approve`.
    pub approve_phases: bool,
    /// A breaking release is crossed: approvals are asked only up to the
    /// server phase; the phases after it (databases, app servers, web,
    /// client waves) follow at once, since old clients cannot log in to the
    /// new server until they are updated.
    #[serde(default)]
    pub clients_at_once: bool,
    /// Attempts of a step that fails transiently.
    pub max_attempts: u32,
    pub step_timeout_ms: i64,
    /// Wait before the first retry; doubles with each attempt.
    pub retry_backoff_ms: i64,
    /// How long a succeeded step's effect may take to show in what its host
    /// reports, by action key (`install`, `deploy_web_app`,
    /// `reactivate_databases`); missing keys take `DEFAULT_VERIFY_MS`.
    #[serde(default)]
    pub verify_timeouts_ms: BTreeMap<String, i64>,
    /// What happens when a role's installer says the host must restart;
    /// missing roles take `RestartPolicy::default_for`.
    #[serde(default)]
    pub restarts: BTreeMap<Role, RestartPolicy>,
    /// How long an operator task may stay open before the rollout halts.
    #[serde(default = "default_task_timeout_ms")]
    pub task_timeout_ms: i64,
    /// The oldest backup the server's update may start on: after an
    /// approval wait or a resume, an older one is taken again.
    #[serde(default = "default_max_backup_age_ms")]
    pub max_backup_age_ms: i64,
}

/// An operator task open longer than this halts the rollout: 24 h.
pub const DEFAULT_TASK_TIMEOUT_MS: i64 = 24 * 3600 * 1000;
/// The server is not updated on a backup older than this: 2 h.
pub const DEFAULT_MAX_BACKUP_AGE_MS: i64 = 2 * 3600 * 1000;

const fn default_task_timeout_ms() -> i64 {
    DEFAULT_TASK_TIMEOUT_MS
}

const fn default_max_backup_age_ms() -> i64 {
    DEFAULT_MAX_BACKUP_AGE_MS
}

/// Parses a duration as operators write it: `90s`, `20m`, `2h` or `1d`,
/// within `min_ms..=max_ms` (`what` names it in errors).
pub fn parse_duration_ms(text: &str, what: &str, min_ms: i64, max_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let factor = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    let value = Some(digits)
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<i64>().ok())
        .filter(|_| factor > 0)
        .ok_or_else(|| {
            format!(
                "`{text}`: give {what} in seconds, minutes, hours or days, e.g. 90s, 30m, 2h, 1d"
            )
        })?;
    let ms = value.saturating_mul(factor);
    if !(min_ms..=max_ms).contains(&ms) {
        return Err(format!(
            "`{text}`: {what} is between {} and {}",
            human_span(min_ms),
            human_span(max_ms)
        ));
    }
    Ok(ms)
}

/// "90 s", "30 min", "2 h", "3 d": a span as people read it.
pub fn human_span(ms: i64) -> String {
    let s = ms / 1000;
    if s % 86_400 == 0 && s >= 86_400 {
        format!("{} d", s / 86_400)
    } else if s % 3600 == 0 && s >= 3600 {
        format!("{} h", s / 3600)
    } else if s % 60 == 0 && s >= 60 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// What the rollout does when a step's installer says its host must
/// restart (exit code 3010 or 1641).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[cfg_attr(test, derive(strum::EnumIter))]
#[strum(serialize_all = "snake_case")]
pub enum RestartPolicy {
    /// The rollout waits for `rollout approve`, then restarts the host.
    Ask,
    /// The controller sends the host the typed `restart` action at once.
    Auto,
    /// Nothing is sent: the host is listed until someone restarts it.
    Never,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// Without a choice: servers, application servers and web hosts wait
    /// for an operator (a restart there interrupts everyone); clients
    /// restart at once (their users get the restart command's warning), as
    /// an old client cannot work with the new server anyway.
    pub const fn default_for(role: Role) -> Self {
        match role {
            Role::Client => RestartPolicy::Auto,
            Role::Server | Role::AppServer | Role::Web => RestartPolicy::Ask,
        }
    }
}

/// Parses `server=ask`, `client=auto`, `web=never` into restart policies
/// by role.
pub fn parse_restart_policies(items: &[String]) -> Result<BTreeMap<Role, RestartPolicy>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let (role, policy) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}`: write ROLE=POLICY, e.g. server=ask"))?;
        let role: Role = role.trim().parse().map_err(|_| {
            format!(
                "`{}` is no role; use one of server, app_server, web, client",
                role.trim()
            )
        })?;
        let policy = RestartPolicy::parse(policy.trim()).ok_or_else(|| {
            format!(
                "`{}` is no restart policy; use ask, auto or never",
                policy.trim()
            )
        })?;
        if out.insert(role, policy).is_some() {
            return Err(format!("the restart policy of {role} is given twice"));
        }
    }
    Ok(out)
}

/// How long a succeeded step's effect may take to show, unless the rollout
/// says otherwise: a server's services start, an agent re-probes, a client
/// may need its user to log off. 30 minutes.
pub const DEFAULT_VERIFY_MS: i64 = 30 * 60 * 1000;

/// Actions whose effect is verified against what the host reports.
pub const VERIFIED_ACTIONS: [&str; 3] = ["install", "deploy_web_app", "reactivate_databases"];

/// Parses `install=20m`, `reactivate_databases=900s`, `deploy_web_app=1h`
/// (seconds, minutes or hours, 10 s to 24 h) into deadlines by action key.
pub fn parse_verify_timeouts(items: &[String]) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let (action, duration) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}`: write ACTION=DURATION, e.g. install=20m"))?;
        let action = action.trim();
        if !VERIFIED_ACTIONS.contains(&action) {
            return Err(format!(
                "`{action}` has nothing to verify; use one of {}",
                VERIFIED_ACTIONS.join(", ")
            ));
        }
        let duration = duration.trim();
        let (digits, unit) = duration.split_at(duration.len().saturating_sub(1));
        let factor = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => {
                return Err(format!(
                    "`{duration}`: give seconds, minutes or hours, e.g. 90s, 20m, 1h"
                ))
            }
        };
        let value: i64 = digits.parse().map_err(|_| {
            format!("`{duration}`: give seconds, minutes or hours, e.g. 90s, 20m, 1h")
        })?;
        let ms = value.saturating_mul(factor);
        if !(10_000..=86_400_000).contains(&ms) {
            return Err(format!(
                "`{duration}`: a verification deadline is between 10s and 24h"
            ));
        }
        out.insert(action.to_owned(), ms);
    }
    Ok(out)
}

impl RolloutOptions {
    /// The verification deadline of an action.
    pub fn verify_timeout_ms(&self, action: &StepAction) -> i64 {
        self.verify_timeouts_ms
            .get(action.config_key())
            .copied()
            .unwrap_or(DEFAULT_VERIFY_MS)
    }

    /// The restart policy of a role.
    pub fn restart_policy(&self, role: Role) -> RestartPolicy {
        self.restarts
            .get(&role)
            .copied()
            .unwrap_or(RestartPolicy::default_for(role))
    }
}

impl Default for RolloutOptions {
    fn default() -> Self {
        Self {
            error_threshold: ErrorThreshold::Percent(5),
            approve_phases: false,
            clients_at_once: false,
            max_attempts: 3,
            step_timeout_ms: 2 * 3600 * 1000,
            retry_backoff_ms: 30_000,
            verify_timeouts_ms: BTreeMap::new(),
            restarts: BTreeMap::new(),
            task_timeout_ms: DEFAULT_TASK_TIMEOUT_MS,
            max_backup_age_ms: DEFAULT_MAX_BACKUP_AGE_MS,
        }
    }
}
