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
    /// Steps received and not yet answered, over the whole swarm.
    running: AtomicI64,
    /// When the latest step result was sent (µs since `started`).
    last_result_us: AtomicU64,
    /// For each command: ms from when the controller queued it, just
    /// before the commit (the time in the command), until it arrived here.
    delivery_ms: Mutex<Vec<u64>>,
    /// For each command that arrived while no step ran anywhere in the
    /// swarm: µs since the latest result (a phase handoff, or the next step
    /// of the same host).
    handoff_us: Mutex<Vec<u64>>,
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
            running: AtomicI64::new(0),
            last_result_us: AtomicU64::new(0),
            delivery_ms: Mutex::new(Vec::new()),
            handoff_us: Mutex::new(Vec::new()),
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
        self.running.fetch_sub(1, Ordering::Relaxed);
        self.last_result_us.store(self.now_us(), Ordering::Relaxed);
    }

    /// A command arrived that the controller queued at `dispatched_ms`
    /// (Unix ms; 0 from a controller that does not say).
    pub fn command_received(&self, dispatched_ms: i64) {
        self.commands.fetch_add(1, Ordering::Relaxed);
        if dispatched_ms > 0 {
            let took = tierwise_runtime::clock::now_ms().saturating_sub(dispatched_ms);
            lock(&self.delivery_ms).push(u64::try_from(took).unwrap_or(0));
        }
        let idle = self.running.fetch_add(1, Ordering::Relaxed) == 0;
        let last = self.last_result_us.load(Ordering::Relaxed);
        if idle && last > 0 {
            lock(&self.handoff_us).push(self.now_us().saturating_sub(last));
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

    /// p50, p99 and max of delivery latency (queued → arrival), in ms.
    pub fn delivery_ms(&self) -> Option<Quantiles> {
        Quantiles::of(
            lock(&self.delivery_ms)
                .iter()
                .map(|&ms| ms as f64)
                .collect(),
        )
    }

    /// p50, p99 and max of handoffs (latest result → next command while
    /// nothing ran), in ms, with their count.
    pub fn handoff_ms(&self) -> Option<Quantiles> {
        Quantiles::of(
            lock(&self.handoff_us)
                .iter()
                .map(|&us| us as f64 / 1000.0)
                .collect(),
        )
    }
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
