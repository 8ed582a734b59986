//! Maintenance windows: when the steps of a phase may start, in the
//! installation's IANA time zone (daylight saving included, which fixed UTC
//! offsets get wrong twice a year). Pure: the clock is an input.

use crate::plan::PhaseKind;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use std::fmt;
use std::str::FromStr;

/// Which phases a window governs.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
pub enum WindowScope {
    /// The backup, the server and the databases' reactivation (the primary
    /// server's phases).
    Server,
    AppServers,
    Web,
    /// Every client wave.
    Clients,
}

impl WindowScope {
    pub const ALL: [WindowScope; 4] = [
        WindowScope::Server,
        WindowScope::AppServers,
        WindowScope::Web,
        WindowScope::Clients,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The scope whose window governs a phase.
    pub fn of(kind: PhaseKind) -> Self {
        match kind {
            PhaseKind::Backup | PhaseKind::Server | PhaseKind::Databases => WindowScope::Server,
            PhaseKind::AppServers => WindowScope::AppServers,
            PhaseKind::Web => WindowScope::Web,
            PhaseKind::ClientWave { .. } => WindowScope::Clients,
        }
    }
}

impl fmt::Display for WindowScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a window cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("unknown scope `{0}`; expected server, app_servers, web or clients")]
    Scope(String),
    #[error("`{0}` are no days: write mon-fri, sat, sat,sun or daily")]
    Days(String),
    #[error("`{0}` is no time of day: write HH:MM, e.g. 02:00")]
    Time(String),
    #[error("a window from {0} to {0} is empty; give two different times (to before from runs past midnight)")]
    Empty(String),
    #[error("`{0}` is no IANA time zone, e.g. Europe/Berlin or America/New_York")]
    TimeZone(String),
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A set of weekdays (bit 0: Monday).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Weekdays(u8);

impl Weekdays {
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }
}

impl FromStr for Weekdays {
    type Err = WindowError;
    /// `daily`, `mon-fri`, `sat`, `sat,sun`, `mon-wed,fri`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || WindowError::Days(text.to_owned());
        let lower = text.trim().to_ascii_lowercase();
        if lower == "daily" {
            return Ok(Self(0x7f));
        }
        let day = |name: &str| DAY_NAMES.iter().position(|d| *d == name.trim());
        let mut bits = 0u8;
        for part in lower.split(',') {
            match part.split_once('-') {
                Some((from, to)) => {
                    // `fri-mon` runs over the weekend.
                    let (from, to) = (day(from).ok_or_else(wrong)?, day(to).ok_or_else(wrong)?);
                    let mut d = from;
                    loop {
                        bits |= 1 << d;
                        if d == to {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => bits |= 1 << day(part).ok_or_else(wrong)?,
            }
        }
        if bits == 0 {
            return Err(wrong());
        }
        Ok(Self(bits))
    }
}

impl fmt::Display for Weekdays {
    /// Ranges where the days run on: `mon-fri`, `sat,sun`, `daily`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0x7f {
            return f.write_str("daily");
        }
        let mut parts = Vec::new();
        let mut d = 0;
        while d < 7 {
            if self.0 & (1 << d) == 0 {
                d += 1;
                continue;
            }
            let start = d;
            while d + 1 < 7 && self.0 & (1 << (d + 1)) != 0 {
                d += 1;
            }
            parts.push(if d - start >= 2 {
                format!("{}-{}", DAY_NAMES[start], DAY_NAMES[d])
            } else if d > start {
                format!("{},{}", DAY_NAMES[start], DAY_NAMES[d])
            } else {
                DAY_NAMES[start].to_owned()
            });
            d += 1;
        }
        f.write_str(&parts.join(","))
    }
}

/// A time of day, to the minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    pub hour: i8,
    pub minute: i8,
}

impl FromStr for TimeOfDay {
    type Err = WindowError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || WindowError::Time(text.to_owned());
        let (h, m) = text.trim().split_once(':').ok_or_else(wrong)?;
        let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(wrong());
        }
        let hour: i8 = h.parse().map_err(|_| wrong())?;
        let minute: i8 = m.parse().map_err(|_| wrong())?;
        if !(0..24).contains(&hour) || !(0..60).contains(&minute) {
            return Err(wrong());
        }
        Ok(Self { hour, minute })
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// When the phases of one scope may start steps: on `days`, from `from` to
/// `to` (past midnight when `to` is not after `from`), local time of
/// `time_zone`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub scope: WindowScope,
    pub days: Weekdays,
    pub from: TimeOfDay,
    pub to: TimeOfDay,
    pub time_zone: String,
}

/// One occurrence of a window, in Unix ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrence {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Whether a step of a scope may start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// No window governs the scope.
    Free,
    /// Open, and the step's time limit fits before it closes.
    Open { closes_ms: i64 },
    /// Wait until `opens_ms` (the next occurrence long enough for the step).
    Wait { opens_ms: i64, reason: String },
    /// No occurrence in the coming week is long enough for the step.
    Never { reason: String },
}

impl MaintenanceWindow {
    /// Checks every part; the time zone must be in the IANA database.
    pub fn new(
        scope: &str,
        days: &str,
        from: &str,
        to: &str,
        time_zone: &str,
    ) -> Result<Self, WindowError> {
        let scope =
            WindowScope::from_str(scope).map_err(|_| WindowError::Scope(scope.to_owned()))?;
        let (from, to) = (from.parse::<TimeOfDay>()?, to.parse::<TimeOfDay>()?);
        if from == to {
            return Err(WindowError::Empty(from.to_string()));
        }
        TimeZone::get(time_zone).map_err(|_| WindowError::TimeZone(time_zone.to_owned()))?;
        Ok(Self {
            scope,
            days: days.parse()?,
            from,
            to,
            time_zone: time_zone.to_owned(),
        })
    }

    /// How long the window is on a day without a clock change, in minutes.
    pub fn nominal_minutes(&self) -> i64 {
        let minutes = |t: TimeOfDay| i64::from(t.hour) * 60 + i64::from(t.minute);
        (minutes(self.to) - minutes(self.from)).rem_euclid(24 * 60)
    }

    /// `sat 02:00–06:00 Europe/Berlin`.
    pub fn describe(&self) -> String {
        format!("{} {}–{} {}", self.days, self.from, self.to, self.time_zone)
    }

    fn zone(&self) -> Option<TimeZone> {
        TimeZone::get(&self.time_zone).ok()
    }

    /// The occurrences that end after `now_ms`, in order, over the next
    /// eight days. A local time that does not exist (the hour skipped in
    /// spring) counts from the moment it would have been (02:30 → 03:30);
    /// one that exists twice (autumn), from its first.
    pub fn occurrences(&self, now_ms: i64) -> Vec<Occurrence> {
        let (Some(tz), Ok(now)) = (self.zone(), Timestamp::from_millisecond(now_ms)) else {
            return Vec::new();
        };
        let today = now.to_zoned_datetime(tz.clone()).date();
        let at = |day: Date, time: TimeOfDay| -> Option<i64> {
            day.at(time.hour, time.minute, 0, 0)
                .to_zoned_datetime(tz.clone())
                .ok()
                .map(|z| z.timestamp().as_millisecond())
        };
        let mut found = Vec::new();
        for offset in -1i64..=8 {
            let Ok(day) = today.checked_add(Span::new().days(offset)) else {
                continue;
            };
            if !self.days.contains(day.weekday()) {
                continue;
            }
            let end_day = if self.to > self.from {
                Some(day)
            } else {
                day.tomorrow().ok()
            };
            let (Some(start_ms), Some(end_ms)) =
                (at(day, self.from), end_day.and_then(|d| at(d, self.to)))
            else {
                continue;
            };
            if end_ms > now_ms && end_ms > start_ms {
                found.push(Occurrence { start_ms, end_ms });
            }
        }
        found
    }

    /// `Sat 02:00 CET` for a moment, in the window's time zone.
    pub fn local(&self, ms: i64) -> String {
        match (self.zone(), Timestamp::from_millisecond(ms)) {
            (Some(tz), Ok(t)) => t
                .to_zoned_datetime(tz)
                .strftime("%a %Y-%m-%d %H:%M %Z")
                .to_string(),
            _ => ms.to_string(),
        }
    }
}

/// Whether a step of `scope` that may run `duration_ms` can start at
/// `now_ms`: only when its time limit fits in the rest of an open window.
pub fn gate(
    windows: &[MaintenanceWindow],
    scope: WindowScope,
    now_ms: i64,
    duration_ms: i64,
) -> Gate {
    let Some(window) = windows.iter().find(|w| w.scope == scope) else {
        return Gate::Free;
    };
    let occurrences = window.occurrences(now_ms);
    if let Some(open) = occurrences
        .iter()
        .find(|o| o.start_ms <= now_ms && now_ms + duration_ms <= o.end_ms)
    {
        return Gate::Open {
            closes_ms: open.end_ms,
        };
    }
    let minutes = duration_ms / 60_000;
    match occurrences
        .iter()
        .find(|o| o.start_ms > now_ms && o.end_ms - o.start_ms >= duration_ms)
    {
        Some(next) => Gate::Wait {
            opens_ms: next.start_ms,
            reason: format!(
                "waiting for the {scope} window ({}), opens {}",
                window.describe(),
                window.local(next.start_ms)
            ),
        },
        None => Gate::Never {
            reason: format!(
                "the {scope} window ({}) is never open for the {minutes} min a step may take; widen it or shorten the step's time limit",
                window.describe()
            ),
        },
    }
}

#[cfg(test)]
mod tests;
