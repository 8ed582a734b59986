//! Rate limits by key (a source address, a token, a host): token buckets
//! that hold `burst` calls and refill at `rate`. Pure: the caller passes
//! the time. Memory stays bounded however many keys appear: when there are
//! more than `max_keys`, buckets that have refilled completely (the same
//! as no bucket) are dropped, and if that is not enough, all of them.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Calls per second, as an operator writes it: `20/s`, `6/min`, `100/h`,
/// or `off`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    per_second: f64,
}

impl Rate {
    pub const OFF: Rate = Rate { per_second: 0.0 };

    pub fn per_second(per_second: f64) -> Self {
        Self { per_second }
    }

    pub fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }

    /// How many calls may come at once: five seconds' worth, at least
    /// three (a slow rate still lets a retry or two through).
    pub fn burst(&self) -> f64 {
        (self.per_second * 5.0).max(3.0)
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "off" {
            return Ok(Rate::OFF);
        }
        let wrong = || {
            format!(
                "`{text}` is not a rate; write calls per unit (`20/s`, `6/min`, `100/h`) or `off`"
            )
        };
        let (count, unit) = text.split_once('/').ok_or_else(wrong)?;
        let count: f64 = count.trim().parse().map_err(|_| wrong())?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(wrong()),
        };
        if !count.is_finite() || count <= 0.0 {
            return Err(format!(
                "`{text}`: the count must be above 0 (or write `off`)"
            ));
        }
        Ok(Rate::per_second(count / seconds))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            f.write_str("off")
        } else if self.per_second >= 1.0 {
            write!(f, "{}/s", self.per_second)
        } else {
            write!(f, "{}/min", self.per_second * 60.0)
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// Token buckets by key.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    burst: f64,
    max_keys: usize,
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    /// Buckets that hold the rate's own burst (`Rate::burst`).
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self::with_burst(rate, rate.burst(), max_keys)
    }

    /// Buckets that hold `burst` calls (at least one), refilled at `rate`.
    pub fn with_burst(rate: Rate, burst: f64, max_keys: usize) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one call for `key` at `now_ms`: `Ok` when allowed, else how
    /// many milliseconds until the next call would be.
    pub fn allow(&mut self, key: &str, now_ms: i64) -> Result<(), u64> {
        if self.rate.is_off() {
            return Ok(());
        }
        let (rate, burst) = (self.rate.per_second, self.burst);
        if self.buckets.len() >= self.max_keys && !self.buckets.contains_key(key) {
            self.buckets
                .retain(|_, b| refilled(*b, now_ms, rate, burst) < burst);
            // Still full: a flood of distinct keys at once. Starting over
            // keeps memory bounded; it lets those keys in again, and the
            // listener's own limits (handshakes in flight, per address)
            // still hold.
            if self.buckets.len() >= self.max_keys {
                self.buckets.clear();
            }
        }
        let bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at_ms: now_ms,
        });
        bucket.tokens = refilled(*bucket, now_ms, rate, burst);
        bucket.at_ms = now_ms.max(bucket.at_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate * 1000.0).ceil() as u64)
        }
    }

    /// Gives back the call `allow` took for `key` (it turned out not to
    /// count, as a login that succeeded); never beyond the burst.
    pub fn give_back(&mut self, key: &str) {
        let burst = self.burst;
        if let Some(bucket) = self.buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(burst);
        }
    }

    /// Keys held now (for tests and figures).
    pub fn keys(&self) -> usize {
        self.buckets.len()
    }
}

fn refilled(bucket: Bucket, now_ms: i64, rate: f64, burst: f64) -> f64 {
    let elapsed = (now_ms - bucket.at_ms).max(0) as f64 / 1000.0;
    (bucket.tokens + elapsed * rate).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_operators_write_them() {
        assert_eq!("20/s".parse::<Rate>().unwrap(), Rate::per_second(20.0));
        assert_eq!("6/min".parse::<Rate>().unwrap(), Rate::per_second(0.1));
        assert_eq!("3600/h".parse::<Rate>().unwrap(), Rate::per_second(1.0));
        assert!("off".parse::<Rate>().unwrap().is_off());
        for bad in ["20", "20/day", "-1/s", "0/s", "x/s", ""] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert_eq!(Rate::per_second(0.1).to_string(), "6/min");
    }

    #[test]
    fn a_burst_then_the_rate_per_key() {
        let mut limits = RateLimiter::new(Rate::per_second(2.0), 100);
        // Five seconds' worth at once, then one every 500 ms.
        for _ in 0..10 {
            assert_eq!(limits.allow("10.0.0.1", 0), Ok(()));
        }
        assert_eq!(limits.allow("10.0.0.1", 0), Err(500));
        assert_eq!(
            limits.allow("10.0.0.2", 0),
            Ok(()),
            "another key has its own"
        );
        assert_eq!(limits.allow("10.0.0.1", 499), Err(2));
        assert_eq!(limits.allow("10.0.0.1", 500), Ok(()));
        assert!(limits.allow("10.0.0.1", 500).is_err());
        // A clock that goes back takes nothing extra.
        assert!(limits.allow("10.0.0.1", 0).is_err());
    }

    #[test]
    fn a_burst_of_its_own_and_calls_given_back() {
        // Ten at once, then one a minute.
        let mut limits = RateLimiter::with_burst(Rate::per_second(1.0 / 60.0), 10.0, 100);
        for _ in 0..10 {
            assert_eq!(limits.allow("10.0.0.1", 0), Ok(()));
        }
        assert_eq!(limits.allow("10.0.0.1", 0), Err(60_000));
        limits.give_back("10.0.0.1");
        assert_eq!(limits.allow("10.0.0.1", 0), Ok(()));
        assert!(limits.allow("10.0.0.1", 0).is_err());
        // Given back, never beyond the burst.
        for _ in 0..20 {
            limits.give_back("10.0.0.2");
            limits.give_back("10.0.0.1");
        }
        assert_eq!(
            (0..20)
                .filter(|_| limits.allow("10.0.0.1", 0).is_ok())
                .count(),
            10
        );
        assert_eq!(limits.allow("10.0.0.1", 60_000), Ok(()));
    }

    #[test]
    fn memory_stays_bounded_and_off_allows_all() {
        let mut limits = RateLimiter::new(Rate::per_second(1.0), 100);
        for i in 0..10_000 {
            let _ = limits.allow(&format!("k{i}"), i64::from(i) * 10_000);
        }
        assert!(limits.keys() <= 100, "{}", limits.keys());
        for i in 0..1_000 {
            let _ = limits.allow(&format!("at-once-{i}"), 1);
        }
        assert!(limits.keys() <= 100, "{}", limits.keys());
        let mut off = RateLimiter::new(Rate::OFF, 1);
        assert!((0..1000).all(|_| off.allow("k", 0).is_ok()));
        assert_eq!(off.keys(), 0);
    }
}
