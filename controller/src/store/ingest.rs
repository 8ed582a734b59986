//! Inventory reports written in batches: reports that arrive while one
//! transaction runs are written together in the next, so a burst (every
//! agent reporting after an update, a reconnect storm) costs a few commits,
//! not one each. Each caller still waits for its own report's commit and
//! gets its own answer; if a batch fails, its reports are written one by
//! one, so one bad report cannot fail the others.

use super::{inventory_in, StoreError};
use sqlx::AnyPool;
use tierwise_common::Inventory;
use tokio::sync::{mpsc, oneshot};

/// Reports written in one transaction at most.
const BATCH: usize = 256;

/// One inventory report to write.
#[derive(Debug)]
pub(super) struct Report {
    pub host_id: String,
    pub session_id: String,
    pub inventory: Inventory,
    pub now_ms: i64,
}

type Answer = oneshot::Sender<Result<bool, StoreError>>;

/// The handle to the writer task; the task ends when the last handle (the
/// last clone of the store) is gone.
#[derive(Clone, Debug)]
pub(super) struct Writer(mpsc::Sender<(Report, Answer)>);

impl Writer {
    pub fn start(pool: AnyPool) -> Self {
        let (tx, rx) = mpsc::channel(4 * BATCH);
        tokio::spawn(run(pool, rx));
        Self(tx)
    }

    /// Writes `report`; true when it was the host's current session's.
    pub async fn write(&self, report: Report) -> Result<bool, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.0
            .send((report, answer))
            .await
            .map_err(|_| StoreError::Closed)?;
        answered.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<(Report, Answer)>) {
    let mut batch: Vec<(Report, Answer)> = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let reports: Vec<&Report> = batch.iter().map(|(report, _)| report).collect();
        match write(&pool, &reports).await {
            Ok(written) => {
                for ((_, answer), current) in batch.drain(..).zip(written) {
                    let _ = answer.send(Ok(current));
                }
            }
            Err(_) => {
                for (report, answer) in batch.drain(..) {
                    let alone = write(&pool, &[&report]).await;
                    let _ = answer.send(alone.map(|written| written.first() == Some(&true)));
                }
            }
        }
    }
}

/// Writes `reports` in one transaction; for each, whether it was written.
async fn write(pool: &AnyPool, reports: &[&Report]) -> Result<Vec<bool>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut written = Vec::with_capacity(reports.len());
    for report in reports {
        written.push(
            inventory_in(
                &mut tx,
                &report.host_id,
                &report.session_id,
                &report.inventory,
                report.now_ms,
            )
            .await?,
        );
    }
    tx.commit().await?;
    Ok(written)
}
