//! When a host counts as offline.

/// A host that has missed this many heartbeat intervals is offline.
pub const MISSED_HEARTBEATS_BEFORE_OFFLINE: i64 = 3;

/// The moment (Unix ms) after which a host last heard from at `last_seen_ms`
/// is offline.
pub fn offline_after_ms(last_seen_ms: i64, heartbeat_seconds: u32) -> i64 {
    let grace = MISSED_HEARTBEATS_BEFORE_OFFLINE * i64::from(heartbeat_seconds.max(1)) * 1000;
    last_seen_ms.saturating_add(grace)
}

/// Whether a host marked online has missed too many heartbeats by `now_ms`.
pub fn is_overdue(last_seen_ms: i64, heartbeat_seconds: u32, now_ms: i64) -> bool {
    now_ms > offline_after_ms(last_seen_ms, heartbeat_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_after_three_missed_intervals() {
        assert!(!is_overdue(0, 10, 30_000));
        assert!(is_overdue(0, 10, 30_001));
        // A zero interval (bad data) still gets a grace period.
        assert!(!is_overdue(0, 0, 3_000));
        assert!(!is_overdue(i64::MAX - 5, 10, i64::MAX));
    }
}
