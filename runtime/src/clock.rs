//! The wall clock, read in one place so everything stores the same unit.

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
}
