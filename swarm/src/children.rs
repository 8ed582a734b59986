//! The swarm in several processes: each child process (this program again,
//! with the hidden `--swarm-child FIRST,COUNT`) enrolls and runs its share of
//! the agents under its own open-file limit; the parent steers them over
//! their standard input and reads their counters and raw samples from their
//! standard output, one line each:
//!
//! - child → parent: `enrolled N`; `counts JSON` every 200 ms once its
//!   agents run; `samples JSON` when asked;
//! - parent → child: `connect` (start the agents), `ingest`, `samples`.
//!
//! A child ends when its standard input closes (the parent ended, however
//! it ended); the parent ends every child when it ends or one of them fails.

use crate::stats::{Counts, Samples};
use anyhow::Context;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that carries the enrollment token to a child
/// (not its command line, which every user of the machine can read).
pub const TOKEN_ENV: &str = "TIERWISE_SWARM_ENROLL_TOKEN";

#[derive(Debug, Default)]
struct Shared {
    enrolled: Vec<Option<usize>>,
    counts: Vec<Counts>,
    /// Why a child ended early, if one did.
    ended: Option<String>,
}

/// The child processes of one swarm.
pub struct Children {
    processes: Vec<Child>,
    inputs: Vec<ChildStdin>,
    shared: Arc<Mutex<Shared>>,
    samples: mpsc::Receiver<Samples>,
}

impl Children {
    /// Starts `processes` children for `agents` agents, each child this
    /// program with `args` and its share.
    pub fn start(
        processes: usize,
        agents: usize,
        args: &[String],
        token: &str,
    ) -> anyhow::Result<Self> {
        let program = std::env::current_exe()?;
        let shared = Arc::new(Mutex::new(Shared {
            enrolled: vec![None; processes],
            counts: vec![Counts::default(); processes],
            ended: None,
        }));
        let (samples_tx, samples) = mpsc::channel();
        let mut children = Self {
            processes: Vec::new(),
            inputs: Vec::new(),
            shared: shared.clone(),
            samples,
        };
        let mut first = 0;
        for index in 0..processes {
            let count = agents / processes + usize::from(index < agents % processes);
            let mut child = Command::new(&program)
                .args(args)
                .arg(format!("--swarm-child={first},{count}"))
                .env(TOKEN_ENV, token)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("start {}", program.display()))?;
            first += count;
            let stdout = child.stdout.take().context("no stdout")?;
            children
                .inputs
                .push(child.stdin.take().context("no stdin")?);
            children.processes.push(child);
            let (shared, samples_tx) = (shared.clone(), samples_tx.clone());
            std::thread::spawn(move || read(index, stdout, &shared, &samples_tx));
        }
        Ok(children)
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn healthy(&self) -> anyhow::Result<()> {
        match &self.shared().ended {
            Some(why) => anyhow::bail!("{why}"),
            None => Ok(()),
        }
    }

    /// Waits until every child enrolled its agents; how many they are.
    pub async fn enrolled(&self) -> anyhow::Result<usize> {
        loop {
            self.healthy()?;
            let enrolled: Option<usize> = self.shared().enrolled.iter().copied().sum();
            if let Some(total) = enrolled {
                return Ok(total);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn tell(&mut self, line: &str) -> anyhow::Result<()> {
        for (index, input) in self.inputs.iter_mut().enumerate() {
            writeln!(input, "{line}")
                .and_then(|()| input.flush())
                .with_context(|| format!("swarm process {index} ended"))?;
        }
        Ok(())
    }

    /// Starts every child's agents.
    pub fn connect(&mut self) -> anyhow::Result<()> {
        self.tell("connect")
    }

    /// Asks every agent for its ingest reports.
    pub fn ingest(&mut self) -> anyhow::Result<()> {
        self.tell("ingest")
    }

    /// The children's latest counters, added up; an error once a child
    /// ended.
    pub fn counts(&self) -> anyhow::Result<Counts> {
        self.healthy()?;
        Ok(Counts::sum(&self.shared().counts))
    }

    /// Every child's raw samples, merged.
    pub fn samples(&mut self) -> anyhow::Result<Samples> {
        while self.samples.try_recv().is_ok() {}
        self.tell("samples")?;
        let mut all = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while all.len() < self.processes.len() {
            self.healthy()?;
            match self.samples.recv_timeout(Duration::from_millis(100)) {
                Ok(samples) => all.push(samples),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => anyhow::bail!("the swarm processes did not send their samples"),
            }
        }
        Ok(Samples::merge(all))
    }

    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(Child::id).collect()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.shared().ended = Some("the swarm ended".into());
        self.inputs.clear();
        for child in &mut self.processes {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Reads one child's lines until it ends.
fn read(
    index: usize,
    stdout: std::process::ChildStdout,
    shared: &Mutex<Shared>,
    samples: &mpsc::Sender<Samples>,
) {
    let lock = || {
        shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let (word, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let json = || serde_json::from_str::<serde_json::Value>(rest).ok();
        match word {
            "enrolled" => lock().enrolled[index] = rest.trim().parse().ok(),
            "counts" => {
                if let Some(counts) = json().as_ref().and_then(Counts::from_json) {
                    lock().counts[index] = counts;
                }
            }
            "samples" => {
                if let Some(parsed) = json().as_ref().and_then(Samples::from_json) {
                    let _ = samples.send(parsed);
                }
            }
            _ => println!("swarm process {index}: {line}"),
        }
    }
    let mut shared = lock();
    if shared.ended.is_none() {
        shared.ended = Some(format!(
            "swarm process {index} ended early (any error it printed is above)"
        ));
    }
}

/// What a child reads from its parent.
pub enum Order {
    Connect,
    Ingest,
    Samples,
}

/// The parent's orders, read from standard input on a thread of their own;
/// the channel closes when the parent closes it (or ends).
pub fn orders() -> tokio::sync::mpsc::UnboundedReceiver<Order> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let order = match line.trim() {
                "connect" => Order::Connect,
                "ingest" => Order::Ingest,
                "samples" => Order::Samples,
                _ => continue,
            };
            if tx.send(order).is_err() {
                break;
            }
        }
    });
    rx
}
