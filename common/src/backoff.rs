//! Reconnect delays: exponential, capped, with jitter so that thousands of
//! agents that lost the controller at the same moment do not return together.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt; `random` is uniform in [0, 1).
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let delay = delay(self.base, self.max, self.attempt, random);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// After a session that worked for a while, start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// "Equal jitter": half of the capped exponential delay is fixed, the other
/// half random, so no agent retries in a tight loop and the herd spreads out.
pub fn delay(base: Duration, max: Duration, attempt: u32, random: f64) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(20));
    let cap = base.saturating_mul(factor).min(max);
    let half = cap / 2;
    half + half.mul_f64(random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap_with_jitter() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(delay(base, max, 0, 0.0), Duration::from_millis(500));
        assert_eq!(delay(base, max, 0, 1.0), Duration::from_secs(1));
        assert_eq!(delay(base, max, 3, 0.0), Duration::from_secs(4));
        assert_eq!(delay(base, max, 3, 0.5), Duration::from_secs(6));
        assert_eq!(delay(base, max, 10, 0.0), Duration::from_secs(30));
        assert_eq!(delay(base, max, 10, 1.0), Duration::from_secs(60));
        assert_eq!(delay(base, max, u32::MAX, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..5 {
            backoff.next_delay(0.0);
        }
        assert_eq!(backoff.next_delay(0.0), Duration::from_secs(16));
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), Duration::from_millis(500));
    }
}
