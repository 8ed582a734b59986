//! Numbers an agent reports, checked against a sane range where they enter
//! the controller: a wall-clock time (when the host booted, when a backup or
//! a Web Application package was written) and a size in bytes (free space, a
//! backup file). An enrolled agent can send any 64-bit value; what it says
//! must not decide a restart (a boot "in the year 292 million"), overflow a
//! sum or a comparison, or be shown to people as if it were true.
//! Step durations have their own bound (`rollout::step_duration_ms`).

/// The earliest wall-clock time an agent may report: 2000-01-01T00:00:00Z.
/// No host running Password Secure booted, and no backup of it was written,
/// before that; an earlier figure is an unset clock or a lie.
pub const EARLIEST_MS: i64 = 946_684_800_000;

/// How far ahead of the controller's clock a reported time may be: one day.
/// Clocks of a domain agree to minutes; a time a day ahead is not a time.
pub const CLOCK_AHEAD_MS: i64 = 24 * 3600 * 1000;

/// The largest size in bytes an agent may report: 1 PiB (2^50). No disk,
/// share or backup file of a Password Secure host comes near it, and a
/// thousand such figures still sum within a signed 64-bit column.
pub const MAX_BYTES: u64 = 1 << 50;

/// A reported wall-clock time, or `None` when it lies outside
/// `EARLIEST_MS ..= now_ms + CLOCK_AHEAD_MS`.
pub fn wall_time(ms: i64, now_ms: i64) -> Option<i64> {
    (EARLIEST_MS..=now_ms.saturating_add(CLOCK_AHEAD_MS))
        .contains(&ms)
        .then_some(ms)
}

/// A reported size in bytes, or `None` above [`MAX_BYTES`].
pub fn bytes(size: u64) -> Option<u64> {
    (size <= MAX_BYTES).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000_000; // 2026-11-30

    #[test]
    fn plausible_times_are_kept() {
        assert_eq!(wall_time(NOW, NOW), Some(NOW));
        assert_eq!(wall_time(EARLIEST_MS, NOW), Some(EARLIEST_MS));
        assert_eq!(wall_time(NOW - 3_600_000, NOW), Some(NOW - 3_600_000));
        // A clock a few minutes (and up to a day) ahead of the controller's.
        assert_eq!(
            wall_time(NOW + CLOCK_AHEAD_MS, NOW),
            Some(NOW + CLOCK_AHEAD_MS)
        );
    }

    #[test]
    fn absurd_times_are_dropped() {
        for absurd in [
            i64::MAX,
            i64::MIN,
            -1,
            0,
            1,
            EARLIEST_MS - 1,
            NOW + CLOCK_AHEAD_MS + 1,
        ] {
            assert_eq!(wall_time(absurd, NOW), None, "{absurd}");
        }
        // A controller clock at the end of time does not overflow.
        assert_eq!(wall_time(i64::MAX, i64::MAX), Some(i64::MAX));
    }

    #[test]
    fn sizes_are_bounded() {
        assert_eq!(bytes(0), Some(0));
        assert_eq!(bytes(64 << 20), Some(64 << 20));
        assert_eq!(bytes(MAX_BYTES), Some(MAX_BYTES));
        assert_eq!(bytes(MAX_BYTES + 1), None);
        assert_eq!(bytes(u64::MAX), None);
        // A thousand of the largest still sum within a signed column.
        assert!(MAX_BYTES
            .checked_mul(1000)
            .is_some_and(|sum| i64::try_from(sum).is_ok()));
    }
}
