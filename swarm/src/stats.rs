//! What the swarm counts, and the figures of a process read from `/proc`.
//!
//! Every process of a swarm counts its own agents (`Stats`); its raw
//! samples (`Samples`: delivery times, and the moments commands arrived and
//! results left) merge over processes, and the figures are computed over
//! the merged samples, never averaged.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters shared by every simulated agent of one process.
#[derive(Debug)]
pub struct Stats {
    attempts: AtomicU64,
    failed: AtomicU64,
    /// Agents connected now, for each controller URL (in the order given).
    connected: Vec<AtomicI64>,
    commands: AtomicU64,
    /// Agents that reported the rollout's target version.
    updated: AtomicU64,
    samples: Mutex<Samples>,
}

/// What one process saw of the rollout, to merge with the others'.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Samples {
    /// For each command: ms from when the controller queued it, just
    /// before the commit (the time in the command), until it arrived.
    pub delivery_ms: Vec<u64>,
    /// When each command arrived (`true`) and each result left (`false`),
    /// in µs since the Unix epoch (one clock: the swarm runs on one machine).
    pub events: Vec<(u64, bool)>,
}

/// A snapshot of the counters, as a child process reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub connected: Vec<i64>,
    pub attempts: u64,
    pub failed: u64,
    pub commands: u64,
    pub updated: u64,
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Stats {
    /// Counters for agents spread over `controllers` controllers.
    pub fn new(controllers: usize) -> Self {
        Self {
            attempts: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            connected: (0..controllers.max(1)).map(|_| AtomicI64::new(0)).collect(),
            commands: AtomicU64::new(0),
            updated: AtomicU64::new(0),
            samples: Mutex::new(Samples::default()),
        }
    }

    pub fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn handshake_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// An agent of controller `at` (its index in the URLs) is connected.
    pub fn connected(&self, at: usize) {
        if let Some(count) = self.connected.get(at) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn disconnected(&self, at: usize) {
        if let Some(count) = self.connected.get(at) {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// An agent reported the rollout's target version for the first time.
    pub fn updated(&self) {
        self.updated.fetch_add(1, Ordering::Relaxed);
    }

    pub fn result_sent(&self) {
        let now = now_us();
        lock(&self.samples).events.push((now, false));
    }

    /// A command arrived that the controller queued at `dispatched_ms`
    /// (Unix ms; 0 from a controller that does not say).
    pub fn command_received(&self, dispatched_ms: i64) {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let now = now_us();
        let mut samples = lock(&self.samples);
        if dispatched_ms > 0 {
            let took = tierwise_runtime::clock::now_ms().saturating_sub(dispatched_ms);
            samples.delivery_ms.push(u64::try_from(took).unwrap_or(0));
        }
        samples.events.push((now, true));
    }

    pub fn counts(&self) -> Counts {
        Counts {
            connected: self
                .connected
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            attempts: self.attempts.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            updated: self.updated.load(Ordering::Relaxed),
        }
    }

    pub fn samples(&self) -> Samples {
        lock(&self.samples).clone()
    }
}

impl Counts {
    pub fn connected_now(&self) -> i64 {
        self.connected.iter().sum()
    }

    /// The counts of several processes together.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Counts>) -> Counts {
        let mut total = Counts::default();
        for counts in all {
            if total.connected.len() < counts.connected.len() {
                total.connected.resize(counts.connected.len(), 0);
            }
            for (sum, count) in total.connected.iter_mut().zip(&counts.connected) {
                *sum += count;
            }
            total.attempts += counts.attempts;
            total.failed += counts.failed;
            total.commands += counts.commands;
            total.updated += counts.updated;
        }
        total
    }

    pub fn to_json(&self) -> Value {
        json!([
            self.connected,
            self.attempts,
            self.failed,
            self.commands,
            self.updated
        ])
    }

    pub fn from_json(value: &Value) -> Option<Self> {
        let number = |i: usize| value.get(i)?.as_u64();
        Some(Self {
            connected: value
                .get(0)?
                .as_array()?
                .iter()
                .map(Value::as_i64)
                .collect::<Option<_>>()?,
            attempts: number(1)?,
            failed: number(2)?,
            commands: number(3)?,
            updated: number(4)?,
        })
    }
}

impl Samples {
    /// The samples of several processes together.
    pub fn merge(all: impl IntoIterator<Item = Samples>) -> Samples {
        let mut merged = Samples::default();
        for samples in all {
            merged.delivery_ms.extend(samples.delivery_ms);
            merged.events.extend(samples.events);
        }
        merged
    }

    /// p50, p99 and max of delivery latency (queued → arrival), in ms.
    pub fn delivery_ms(&self) -> Option<Quantiles> {
        Quantiles::of(self.delivery_ms.iter().map(|&ms| ms as f64).collect())
    }

    /// p50, p99 and max of handoffs, in ms, with their count: for each
    /// command that arrived while no step ran anywhere in the swarm (in any
    /// process), the time since the latest result (a phase handoff, or the
    /// next step of the same host).
    pub fn handoff_ms(&self) -> Option<Quantiles> {
        Quantiles::of(
            handoffs_us(&self.events)
                .into_iter()
                .map(|us| us as f64 / 1000.0)
                .collect(),
        )
    }

    pub fn to_json(&self) -> Value {
        let events: Vec<i64> = self
            .events
            .iter()
            .map(|&(us, command)| {
                let us = i64::try_from(us).unwrap_or(i64::MAX);
                if command {
                    us
                } else {
                    -us
                }
            })
            .collect();
        json!({ "delivery_ms": self.delivery_ms, "events": events })
    }

    pub fn from_json(value: &Value) -> Option<Self> {
        let delivery_ms = value
            .get("delivery_ms")?
            .as_array()?
            .iter()
            .map(Value::as_u64)
            .collect::<Option<_>>()?;
        let events = value
            .get("events")?
            .as_array()?
            .iter()
            .map(|v| {
                let signed = v.as_i64()?;
                Some((signed.unsigned_abs(), signed > 0))
            })
            .collect::<Option<_>>()?;
        Some(Self {
            delivery_ms,
            events,
        })
    }
}

/// Handoffs over events of any processes, replayed in time order: a command
/// that arrives while no step runs (results and commands balance) counts
/// the µs since the latest result.
fn handoffs_us(events: &[(u64, bool)]) -> Vec<u64> {
    let mut sorted = events.to_vec();
    // At one instant a result goes before a command: its step ended first.
    sorted.sort_unstable_by_key(|&(us, command)| (us, command));
    let (mut running, mut last_result) = (0_i64, None::<u64>);
    let mut handoffs = Vec::new();
    for (us, command) in sorted {
        if command {
            if running <= 0 {
                if let Some(last) = last_result {
                    handoffs.push(us.saturating_sub(last));
                }
            }
            running += 1;
        } else {
            running -= 1;
            last_result = Some(us);
        }
    }
    handoffs
}

/// p50, p99 and max of some samples, and how many there were.
#[derive(Clone, Copy, Debug)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub count: usize,
}

impl Quantiles {
    fn of(mut samples: Vec<f64>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Some(Self {
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
            count: samples.len(),
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The ids of every process on this machine whose command is `name`
/// (`/proc/PID/comm`), e.g. PostgreSQL's server and backends.
pub fn processes_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .collect()
}

/// A process's resident memory (bytes) and CPU time (seconds), from
/// `/proc/PID/status` and `/proc/PID/stat` (clock ticks of 1/100 s).
pub fn process(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((rss_kib * 1024, ticks as f64 / 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handoffs_are_counted_over_the_events_of_every_process_in_time_order() {
        // Process A: a command at 0, its result at 10; process B: a command
        // at 5 (A's step still runs), its result at 20; then a command at 25
        // with nothing running: a handoff of 5 µs after B's result.
        let a = Samples {
            delivery_ms: vec![1],
            events: vec![(100, true), (110, false)],
        };
        let b = Samples {
            delivery_ms: vec![2, 3],
            events: vec![(105, true), (120, false), (125, true)],
        };
        let merged = Samples::merge([a, b]);
        assert_eq!(handoffs_us(&merged.events), vec![5]);
        assert_eq!(merged.delivery_ms().unwrap().count, 3);
        let again = Samples::from_json(&merged.to_json()).unwrap();
        assert_eq!(again, merged);
    }

    #[test]
    fn counts_add_up_per_controller() {
        let one = Counts {
            connected: vec![2, 3],
            attempts: 5,
            failed: 1,
            commands: 4,
            updated: 2,
        };
        let total = Counts::sum([&one, &Counts::from_json(&one.to_json()).unwrap()]);
        assert_eq!(total.connected, vec![4, 6]);
        assert_eq!(total.connected_now(), 10);
        assert_eq!(total.failed, 2);
    }
}
