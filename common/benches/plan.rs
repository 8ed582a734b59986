//! Plans a 100,000-host installation (1 server with 4 databases, 2 further
//! application servers, 10 web hosts, 99,987 clients) from a snapshot and
//! prints the time per plan and the peak memory while planning; then the time of
//! one rollout decision (`decide`, what the engine runs every 500 ms) while
//! the largest client wave is being dispatched; then, beside the full
//! `decide` on the same wave, the engine's incremental round
//! (`RolloutDecider`): its first round (which marks the whole phase), and
//! rounds in which 1, 100 and 1,000 hosts changed (their steps succeeded).
//!
//!     cargo bench -p tierwise-common --bench plan
//!
//! Figures, not assertions: this machine is shared and noisy.

use std::time::{Duration, Instant};
use tierwise_common::fixtures::{
    app_server, client, licence, password_secure_catalogue, server, web,
};
use tierwise_common::plan::{plan, PlanRequest};
use tierwise_common::rollout::{
    decide, steps_from_plan, ExecPhase, ExecStep, Observed, RolloutDecider, RolloutOptions,
    RolloutSnapshot, RolloutState, StepState,
};
use tierwise_common::{Check, ClientWaves, HostRecord, ProbedVersion, Version, WebServerKind};

const RUNS: usize = 10;

fn main() {
    let v931 = Version::new(9, 3, 1, 33994);
    let v926 = Version::new(9, 2, 6, 33415);
    let target = Version::new(26, 3, 100, 34058);
    let rss_start = peak_rss_kib();

    let mut hosts: Vec<HostRecord> = Vec::with_capacity(100_000);
    let dbs = [
        ("PSDB", true, v931),
        ("PSDB-HR", true, v931),
        ("PSDB-IT", true, v931),
        ("Archive", false, v931),
    ];
    hosts.push(server("srv-01", "prod", v931, &dbs));
    hosts.push(app_server("app-01", "prod", v931));
    hosts.push(app_server("app-02", "prod", v931));
    for i in 0..10 {
        hosts.push(web(
            &format!("web-{i:02}"),
            "prod",
            v931,
            WebServerKind::Iis,
            Check::Yes,
        ));
    }
    for i in 0..99_987 {
        let version = if i % 7 == 0 { v926 } else { v931 };
        let update_check = if i % 997 == 0 { Check::Yes } else { Check::No };
        hosts.push(client(
            &format!("CL-{i:06}"),
            "prod",
            ProbedVersion::Installed(version),
            update_check,
        ));
    }
    let catalogue = password_secure_catalogue();
    let licence = licence("prod", "2026-12-31");
    let waves = ClientWaves::default();
    let request = PlanRequest {
        installation: "prod",
        hosts: &hosts,
        catalogue: &catalogue,
        licence: Some(&licence),
        target,
        waves: &waves,
        web_packages: None,
    };
    let rss_snapshot = peak_rss_kib();
    // From here the peak is the snapshot plus what planning holds at most.
    let reset = reset_peak_rss();

    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut steps = 0;
    let mut last = None;
    for _ in 0..RUNS {
        // One plan held at a time, as the controller does.
        drop(last.take());
        let started = Instant::now();
        let result = plan(&request);
        times.push(started.elapsed());
        match result {
            Ok(plan) => {
                steps = plan.steps().count();
                last = Some(plan);
            }
            Err(error) => {
                eprintln!("planning failed: {error}");
                std::process::exit(1);
            }
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "plan of {} hosts ({} steps), {RUNS} runs:",
        hosts.len(),
        steps
    );
    println!(
        "  min {:.1} ms, median {:.1} ms, max {:.1} ms",
        ms(times[0]),
        ms(times[RUNS / 2]),
        ms(times[RUNS - 1])
    );
    let rss_planned = peak_rss_kib().filter(|_| reset);
    match (rss_start, rss_snapshot, rss_planned) {
        (Some(start), Some(snapshot), Some(peak)) => println!(
            "  peak RSS while planning {:.1} MiB: the snapshot {:.1} MiB (process start {:.1} MiB), planning {:.1} MiB more",
            peak as f64 / 1024.0,
            snapshot as f64 / 1024.0,
            start as f64 / 1024.0,
            peak.saturating_sub(snapshot) as f64 / 1024.0
        ),
        _ => println!("  peak RSS: not available on this platform"),
    }
    if let Some(plan) = &last {
        decide_in_largest_wave(plan, &hosts);
        incremental_rounds(plan, &hosts);
    }
    if let Some(peak) = peak_rss_kib() {
        println!(
            "  peak RSS of the whole run {:.1} MiB",
            peak as f64 / 1024.0
        );
    }
}

/// Times `decide` in the phase with the most steps, every step pending and
/// every host online: it then dispatches the whole wave.
fn decide_in_largest_wave(plan: &tierwise_common::plan::Plan, hosts: &[HostRecord]) {
    let (phases, steps) = steps_from_plan("r1", plan, 0);
    let phase = (0..phases.len())
        .max_by_key(|p| steps.iter().filter(|s| s.phase == *p).count())
        .unwrap_or(0);
    let wave = steps.iter().filter(|s| s.phase == phase).count();
    let options = RolloutOptions::default();
    let snapshot = RolloutSnapshot {
        state: RolloutState::Running,
        current_phase: phase,
        options: &options,
        phases: &phases,
        steps: &steps,
        hosts,
        windows: &[],
        web_packages: None,
    };
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut dispatched = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        dispatched = decide(&snapshot, 0).len();
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "decide in the largest wave ({wave} steps, {dispatched} dispatched), {RUNS} runs:\n  min {:.1} ms, median {:.1} ms, max {:.1} ms",
        times[0].as_secs_f64() * 1000.0,
        times[RUNS / 2].as_secs_f64() * 1000.0,
        times[RUNS - 1].as_secs_f64() * 1000.0
    );
}

/// Times the engine's incremental round in the largest wave, every step
/// dispatched (nothing due): the first round, then rounds after `k` hosts'
/// steps succeeded, beside the full `decide` on the same snapshot.
fn incremental_rounds(plan: &tierwise_common::plan::Plan, hosts: &[HostRecord]) {
    let (phases, mut steps) = steps_from_plan("r1", plan, 0);
    let phase = (0..phases.len())
        .max_by_key(|p| steps.iter().filter(|s| s.phase == *p).count())
        .unwrap_or(0);
    let wave: Vec<usize> = (0..steps.len())
        .filter(|&at| steps[at].phase == phase)
        .collect();
    for &at in &wave {
        steps[at].state = StepState::Dispatched;
        steps[at].attempts = 1;
    }
    let options = RolloutOptions::default();
    let by_id = Observed::new(hosts, None).hosts;
    let now = 1_000;
    let full = time(|| decide(&wave_snapshot(phase, &phases, &options, &steps, hosts), now).len());
    let mut decider = RolloutDecider::default();
    let mut firsts = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        // Dropped before the clock starts.
        decider.reset();
        let started = Instant::now();
        decider.decide(
            &wave_snapshot(phase, &phases, &options, &steps, hosts),
            &by_id,
            now,
        );
        firsts.push(started.elapsed());
    }
    firsts.sort();
    let first = format!("{:.1} ms", firsts[RUNS / 2].as_secs_f64() * 1000.0);
    println!(
        "in the largest wave, every step dispatched ({} steps), {RUNS} runs each (median):",
        wave.len()
    );
    println!("  full decide {full}; the decider's first round (marks the phase) {first}");
    let mut next = 0;
    for k in [1, 100, 1_000] {
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let changed = &wave[next..next + k];
            next += k;
            for &at in changed {
                steps[at].state = StepState::Succeeded;
            }
            let started = Instant::now();
            for &at in changed {
                decider.changed(&steps[at].host_id);
            }
            let decisions = decider.decide(
                &wave_snapshot(phase, &phases, &options, &steps, hosts),
                &by_id,
                now,
            );
            times.push(started.elapsed());
            if decisions != decide(&wave_snapshot(phase, &phases, &options, &steps, hosts), now) {
                eprintln!("the incremental round differs from decide");
                std::process::exit(1);
            }
        }
        times.sort();
        println!(
            "  incremental round, {k} host(s) changed: median {:.3} ms, max {:.3} ms",
            times[RUNS / 2].as_secs_f64() * 1000.0,
            times[RUNS - 1].as_secs_f64() * 1000.0
        );
    }
}

fn wave_snapshot<'a>(
    phase: usize,
    phases: &'a [ExecPhase],
    options: &'a RolloutOptions,
    steps: &'a [ExecStep],
    hosts: &'a [HostRecord],
) -> RolloutSnapshot<'a> {
    RolloutSnapshot {
        state: RolloutState::Running,
        current_phase: phase,
        options,
        phases,
        steps,
        hosts,
        windows: &[],
        web_packages: None,
    }
}

/// The median of `RUNS` runs of `run`, and what it returned, as text.
fn time(mut run: impl FnMut() -> usize) -> String {
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut decisions = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        decisions = run();
        times.push(started.elapsed());
    }
    times.sort();
    format!(
        "{:.1} ms ({decisions} decisions)",
        times[RUNS / 2].as_secs_f64() * 1000.0
    )
}

/// Sets VmHWM back to the memory held now (Linux: `clear_refs` 5), so that
/// the next peak is that of what follows; false where that is not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// VmHWM from /proc (Linux): the most memory this process has held.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
