//! When a failed delivery is tried again: exponential from 2 s, at most
//! every 5 min, for at least an hour; then the event is given up.

/// A delivery still failing this long after its event is given up.
pub const GIVE_UP_AFTER_MS: i64 = 65 * 60 * 1000;
const FIRST_DELAY_MS: i64 = 2_000;
const MAX_DELAY_MS: i64 = 5 * 60 * 1000;

/// What to do after a delivery's `attempts`-th attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryVerdict {
    /// Try again at this time (Unix ms).
    At(i64),
    /// Stop: the event waited longer than [`GIVE_UP_AFTER_MS`].
    GiveUp,
}

/// The next attempt of an event created at `created_ms` whose
/// `attempts`-th attempt failed at `now_ms`.
pub fn next_attempt(created_ms: i64, attempts: u32, now_ms: i64) -> RetryVerdict {
    if now_ms - created_ms >= GIVE_UP_AFTER_MS {
        return RetryVerdict::GiveUp;
    }
    let factor = 1i64 << attempts.saturating_sub(1).min(20);
    let delay = FIRST_DELAY_MS.saturating_mul(factor).min(MAX_DELAY_MS);
    RetryVerdict::At(now_ms + delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_five_minutes() {
        let delays: Vec<i64> = (1..=10)
            .map(|n| match next_attempt(0, n, 0) {
                RetryVerdict::At(at) => at / 1000,
                RetryVerdict::GiveUp => -1,
            })
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    #[test]
    fn retries_last_more_than_an_hour_then_stop() {
        // Simulate a receiver that is always down.
        let (mut now, mut attempts) = (0i64, 0u32);
        loop {
            attempts += 1;
            match next_attempt(0, attempts, now) {
                RetryVerdict::At(at) => now = at,
                RetryVerdict::GiveUp => break,
            }
        }
        assert!(now >= 60 * 60 * 1000, "gave up after {now} ms");
        assert!(now < 75 * 60 * 1000, "gave up after {now} ms");
        assert!(attempts > 15, "{attempts} attempts");
    }
}
