//! What the swarm counts, and the figures of a process read from `/proc`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Counters shared by every simulated agent.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    attempts: AtomicU64,
    failed: AtomicU64,
    connected: AtomicI64,
    commands: AtomicU64,
    results: AtomicU64,
    /// When the latest step result was sent (µs since `started`).
    last_result_us: AtomicU64,
    /// For each command: µs since the latest result before it.
    reaction_us: Mutex<Vec<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            attempts: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            connected: AtomicI64::new(0),
            commands: AtomicU64::new(0),
            results: AtomicU64::new(0),
            last_result_us: AtomicU64::new(0),
            reaction_us: Mutex::new(Vec::new()),
        }
    }
}

impl Stats {
    fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn handshake_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connected(&self) {
        self.connected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn disconnected(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn result_sent(&self) {
        self.results.fetch_add(1, Ordering::Relaxed);
        self.last_result_us.store(self.now_us(), Ordering::Relaxed);
    }

    pub fn command_received(&self) {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let last = self.last_result_us.load(Ordering::Relaxed);
        if last > 0 {
            let since = self.now_us().saturating_sub(last);
            self.reaction_us
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(since);
        }
    }

    pub fn connected_now(&self) -> i64 {
        self.connected.load(Ordering::Relaxed)
    }

    /// (connection attempts, failed ones) so far.
    pub fn handshakes(&self) -> (u64, u64) {
        (
            self.attempts.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// p50, p99 and max of "latest result → next command", in ms.
    pub fn reaction_ms(&self) -> Option<(f64, f64, f64)> {
        let mut samples = self
            .reaction_us
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let index = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[index] as f64 / 1000.0
        };
        Some((at(0.5), at(0.99), at(1.0)))
    }
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
