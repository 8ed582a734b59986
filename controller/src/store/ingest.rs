//! Hellos, inventory reports, step results and step durations written in
//! batches: those that arrive while one transaction runs are written
//! together in the next, so a burst (every agent reporting after an update,
//! every agent saying hello again after a restart, a wave of clients
//! finishing) costs a few commits and holds one pool connection, not one of
//! each per agent, and its writers do not queue behind each other's locks
//! (on SQLite they slept in its busy handler, up to 100 ms at a time, and
//! that was the tail of every delivery). Before this, one per agent (a reconnect storm of 14,000 agents on one replica
//! used to wait out the pool's timeout and fail hellos over and over). Each
//! caller still waits for its own write's commit and gets its own answer; if
//! a batch fails, its writes are done one by one, so one bad write cannot
//! fail the others.

use super::rollouts::{step_result_in, StepResultRecord};
use super::stats::duration_in;
use super::{hello_in, inventory_in, HostReport, StoreError};
use sqlx::AnyPool;
use std::sync::Arc;
use tierwise_common::action::StepAction;
use tierwise_common::Inventory;
use tokio::sync::{mpsc, oneshot};

/// Writes done in one transaction at most.
const BATCH: usize = 256;

/// One inventory report to write.
#[derive(Debug)]
pub(super) struct Report {
    pub host_id: String,
    pub session_id: String,
    pub inventory: Inventory,
    pub now_ms: i64,
}

/// One hello to record.
#[derive(Debug)]
pub(super) struct Hello {
    pub report: HostReport,
    pub session_id: String,
    pub replica: Arc<str>,
    pub now_ms: i64,
}

/// One step result to record.
#[derive(Debug)]
pub(super) struct Outcome {
    pub host_id: String,
    pub record: StepResultRecord,
    pub now_ms: i64,
}

/// One measured step duration to add.
#[derive(Debug)]
pub(super) struct StepDuration {
    pub action: StepAction,
    pub release: String,
    pub ms: i64,
}

/// What the writer writes.
#[derive(Debug)]
pub(super) enum Write {
    Inventory(Report),
    Hello(Hello),
    Result(Outcome),
    Duration(StepDuration),
}

/// What a write answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Written {
    /// A report: whether it was the host's current session's (a hello or a
    /// duration: always).
    Current(bool),
    /// A result: the rollout it changed, if any.
    Rollout(Option<String>),
}

impl Written {
    /// A report's answer.
    pub fn current(self) -> bool {
        matches!(self, Self::Current(true))
    }

    /// A result's answer.
    pub fn rollout(self) -> Option<String> {
        match self {
            Self::Rollout(rollout) => rollout,
            Self::Current(_) => None,
        }
    }
}

impl Write {
    /// Does it within `tx`.
    async fn write_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<Written, StoreError> {
        match self {
            Self::Inventory(report) => inventory_in(
                tx,
                &report.host_id,
                &report.session_id,
                &report.inventory,
                report.now_ms,
            )
            .await
            .map(Written::Current),
            Self::Hello(hello) => hello_in(
                tx,
                &hello.report,
                &hello.session_id,
                &hello.replica,
                hello.now_ms,
            )
            .await
            .map(|()| Written::Current(true)),
            Self::Result(outcome) => {
                step_result_in(tx, &outcome.host_id, &outcome.record, outcome.now_ms)
                    .await
                    .map(Written::Rollout)
            }
            Self::Duration(duration) => {
                duration_in(tx, &duration.action, &duration.release, duration.ms)
                    .await
                    .map(|()| Written::Current(true))
            }
        }
    }
}

type Answer = oneshot::Sender<Result<Written, StoreError>>;

/// The handle to the writer task; the task ends when the last handle (the
/// last clone of the store) is gone.
#[derive(Clone, Debug)]
pub(super) struct Writer(mpsc::Sender<(Write, Answer)>);

impl Writer {
    pub fn start(pool: AnyPool) -> Self {
        let (tx, rx) = mpsc::channel(4 * BATCH);
        tokio::spawn(run(pool, rx));
        Self(tx)
    }

    /// Writes `write`, once its transaction has committed.
    pub async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.0
            .send((write, answer))
            .await
            .map_err(|_| StoreError::Closed)?;
        answered.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<(Write, Answer)>) {
    let mut batch: Vec<(Write, Answer)> = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let writes: Vec<&Write> = batch.iter().map(|(write, _)| write).collect();
        match write(&pool, &writes).await {
            Ok(written) => {
                for ((_, answer), current) in batch.drain(..).zip(written) {
                    let _ = answer.send(Ok(current));
                }
            }
            Err(_) => {
                for (one, answer) in batch.drain(..) {
                    let alone = write(&pool, &[&one])
                        .await
                        .and_then(|mut written| written.pop().ok_or(StoreError::Closed));
                    let _ = answer.send(alone);
                }
            }
        }
    }
}

/// Does `writes` in one transaction; for each, its answer.
async fn write(pool: &AnyPool, writes: &[&Write]) -> Result<Vec<Written>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut written = Vec::with_capacity(writes.len());
    for one in writes {
        written.push(one.write_in(&mut tx).await?);
    }
    tx.commit().await?;
    Ok(written)
}
