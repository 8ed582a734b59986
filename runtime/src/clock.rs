//! The wall clock, read in one place so everything stores the same unit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// A point in time (a file's modification time, say) in Unix milliseconds.
pub fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 in UTC with seconds, e.g. `2026-11-27T09:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    // humantime formats years up to 9999 only.
    const YEAR_9999_MS: u64 = 253_402_300_799_000;
    let Ok(ms) = u64::try_from(ms) else {
        return "1970-01-01T00:00:00Z".into();
    };
    let ms = ms.min(YEAR_9999_MS);
    let time = UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Whether times meant for people are shown in the local time zone; off
/// (RFC 3339 UTC, as `--json` has them) unless the CLI turns it on.
static LOCAL_TIMES: AtomicBool = AtomicBool::new(false);

/// Shows times meant for people in the local time zone (the `TZ`
/// environment variable, else the system's) or, `false`, in UTC as
/// RFC 3339 (`tierwise --utc`, and the controller's own pages).
pub fn show_local_times(local: bool) {
    LOCAL_TIMES.store(local, Ordering::Relaxed);
}

/// A time for people: `2026-11-27 10:00:00 CET` in the local time zone,
/// or RFC 3339 UTC (`2026-11-27T09:00:00Z`) when local times are off.
pub fn shown(ms: i64) -> String {
    if !LOCAL_TIMES.load(Ordering::Relaxed) {
        return rfc3339(ms);
    }
    in_zone(ms, local_zone())
}

/// An RFC 3339 time (as views carry them) shown as `shown` does; text
/// that is no such time is kept as it is.
pub fn shown_rfc3339(text: &str) -> String {
    match text.parse::<jiff::Timestamp>() {
        Ok(at) if LOCAL_TIMES.load(Ordering::Relaxed) => in_zone(at.as_millisecond(), local_zone()),
        _ => text.to_owned(),
    }
}

fn local_zone() -> &'static jiff::tz::TimeZone {
    static ZONE: OnceLock<jiff::tz::TimeZone> = OnceLock::new();
    ZONE.get_or_init(jiff::tz::TimeZone::system)
}

fn in_zone(ms: i64, zone: &jiff::tz::TimeZone) -> String {
    let at = jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(zone.clone());
    at.strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// "12s ago", "5m ago", "3h ago", "2d ago".
pub fn ago(ms: i64, now_ms: i64) -> String {
    let seconds = now_ms.saturating_sub(ms).max(0) / 1000;
    match seconds {
        s if s < 120 => format!("{s}s ago"),
        s if s < 2 * 3600 => format!("{}m ago", s / 60),
        s if s < 2 * 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_770_000_000), "2026-11-27T09:00:00Z");
        assert_eq!(ago(0, 5_000), "5s ago");
        assert_eq!(ago(0, 600_000), "10m ago");
        assert_eq!(ago(0, 4 * 3_600_000), "4h ago");
        assert_eq!(ago(0, 3 * 86_400_000), "3d ago");
        // Nonsense from a peer never panics.
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
        assert_eq!(
            ago(i64::MIN, i64::MAX),
            format!("{}d ago", i64::MAX / 1000 / 86_400)
        );
        assert_eq!(ago(i64::MAX, 0), "0s ago");
    }

    #[test]
    fn shows_times_in_a_zone() {
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").expect("bundled");
        assert_eq!(
            in_zone(1_795_770_000_000, &berlin),
            "2026-11-27 10:00:00 CET"
        );
        assert_eq!(
            in_zone(1_795_770_000_000, &jiff::tz::TimeZone::UTC),
            "2026-11-27 09:00:00 UTC"
        );
        // Off by default: RFC 3339 UTC, text that is no time kept.
        assert_eq!(shown(1_795_770_000_000), "2026-11-27T09:00:00Z");
        assert_eq!(
            shown_rfc3339("2026-11-27T09:00:00Z"),
            "2026-11-27T09:00:00Z"
        );
        assert_eq!(shown_rfc3339("soon"), "soon");
    }
}
