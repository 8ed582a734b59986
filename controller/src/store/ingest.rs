//! Hellos and inventory reports written in batches: those that arrive
//! while one transaction runs are written together in the next, so a burst
//! (every agent reporting after an update, every agent saying hello again
//! after a restart) costs a few commits and holds one pool connection, not
//! one of each per agent (a reconnect storm of 14,000 agents on one replica
//! used to wait out the pool's timeout and fail hellos over and over). Each
//! caller still waits for its own write's commit and gets its own answer; if
//! a batch fails, its writes are done one by one, so one bad write cannot
//! fail the others.

use super::{hello_in, inventory_in, HostReport, StoreError};
use sqlx::AnyPool;
use std::sync::Arc;
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

/// What the writer writes.
#[derive(Debug)]
pub(super) enum Write {
    Inventory(Report),
    Hello(Hello),
}

impl Write {
    /// Does it within `tx`: for a report, whether it was the host's current
    /// session's; a hello is always written.
    async fn write_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Inventory(report) => {
                inventory_in(
                    tx,
                    &report.host_id,
                    &report.session_id,
                    &report.inventory,
                    report.now_ms,
                )
                .await
            }
            Self::Hello(hello) => hello_in(
                tx,
                &hello.report,
                &hello.session_id,
                &hello.replica,
                hello.now_ms,
            )
            .await
            .map(|()| true),
        }
    }
}

type Answer = oneshot::Sender<Result<bool, StoreError>>;

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

    /// Writes `write`; for a report, true when it was the host's current
    /// session's.
    pub async fn write(&self, write: Write) -> Result<bool, StoreError> {
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
                    let alone = write(&pool, &[&one]).await;
                    let _ = answer.send(alone.map(|written| written.first() == Some(&true)));
                }
            }
        }
    }
}

/// Does `writes` in one transaction; for each, its answer.
async fn write(pool: &AnyPool, writes: &[&Write]) -> Result<Vec<bool>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut written = Vec::with_capacity(writes.len());
    for one in writes {
        written.push(one.write_in(&mut tx).await?);
    }
    tx.commit().await?;
    Ok(written)
}
