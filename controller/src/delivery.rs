//! How the controller reaches agents: one small interface in domain
//! terms, and the outbox reader that feeds it. The engine writes what must
//! reach a host into the store's outbox in the transaction that decides
//! it; every replica's reader takes the rows of the hosts whose streams it
//! holds and hands them to its sessions. The gRPC session registry
//! implements `Deliver` (and turns a delivery into a protobuf command);
//! tests record what would have gone out.

use crate::store::outbox::OutboxItem;
use crate::store::{Backend, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tierwise_common::rollout::Delivery;
use tokio::sync::{watch, Notify};
use tracing::{debug, warn};

/// Hands deliveries and session commands to the streams of connected
/// agents.
pub trait Deliver: Send + Sync + std::fmt::Debug {
    /// Queues one delivery on its host's session if the host is connected
    /// to this controller; false when it is not (it goes out on the host's
    /// next hello) or its queue is full.
    fn deliver(&self, delivery: &Delivery) -> bool;
    /// Asks the host's agent to report its inventory now.
    fn refresh(&self, host_id: &str) -> bool;
    /// Ends the host's session (its certificates were revoked).
    fn close(&self, host_id: &str) -> bool;
    /// Messages handed to this replica's streams that they have not sent
    /// yet (what the wire is behind by).
    fn queued(&self) -> usize;
}

/// Between the engine and this replica's outbox reader: wakes the reader,
/// and tells the engine when the reader has taken what was committed, so a
/// large wave goes out at the pace the streams take it instead of piling
/// up in the outbox and the stream queues (where every command waits).
#[derive(Debug)]
pub struct OutboxSignal {
    wake: Notify,
    /// Commits that queued something, counted by the engine.
    committed: AtomicU64,
    /// The `committed` count the reader had seen when it last took.
    taken: watch::Sender<u64>,
}

impl Default for OutboxSignal {
    fn default() -> Self {
        Self {
            wake: Notify::new(),
            committed: AtomicU64::new(0),
            taken: watch::Sender::new(0),
        }
    }
}

impl OutboxSignal {
    /// Wakes the reader (something was queued, by this replica or another).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Says that a commit queued something, wakes the reader, and returns
    /// the commit's number for `taken`.
    pub fn committed(&self) -> u64 {
        let number = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake();
        number
    }

    /// Waits until the reader has taken commit `number` (up to `limit`).
    pub async fn taken(&self, number: u64, limit: Duration) {
        let mut taken = self.taken.subscribe();
        let _ = tokio::time::timeout(limit, taken.wait_for(|t| *t >= number)).await;
    }
}

/// How often the reader looks even without a wake-up (a notification lost
/// with a connection, a row written by another replica on SQLite-less
/// setups).
const POLL: Duration = Duration::from_millis(500);

/// Takes this replica's outbox rows whenever woken (by the local engine,
/// by PostgreSQL's NOTIFY) and at least every `POLL`, and hands them over.
pub async fn run_outbox(store: Store, deliver: Arc<dyn Deliver>, signal: Arc<OutboxSignal>) {
    if store.backend() == Backend::Postgres {
        tokio::spawn(listen(store.clone(), signal.clone()));
    }
    loop {
        tokio::select! {
            _ = signal.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        // Every commit counted before this take is in what it reads.
        let seen = signal.committed.load(Ordering::SeqCst);
        let taken = store.take_outbox().await;
        signal.taken.send_if_modified(|taken| {
            let newer = seen > *taken;
            *taken = (*taken).max(seen);
            newer
        });
        match taken {
            Ok(items) => {
                for item in items {
                    let handed = match &item {
                        OutboxItem::Deliver(delivery) => deliver.deliver(delivery),
                        OutboxItem::Refresh { host_id } => deliver.refresh(host_id),
                        OutboxItem::Close { host_id } => deliver.close(host_id),
                    };
                    debug!(?item, handed, "outbox item handed over");
                }
            }
            Err(error) => warn!(%error, "could not read the outbox; trying again"),
        }
    }
}

/// Turns PostgreSQL's `tierwise_outbox` notifications into wake-ups; the
/// poll covers the time a lost connection takes to come back.
async fn listen(store: Store, signal: Arc<OutboxSignal>) {
    loop {
        match sqlx::postgres::PgListener::connect(store.connect_string()).await {
            Ok(mut listener) => {
                if let Err(error) = listener.listen("tierwise_outbox").await {
                    warn!(%error, "cannot listen for outbox notifications; polling");
                } else {
                    while listener.recv().await.is_ok() {
                        signal.wake();
                    }
                }
            }
            Err(error) => warn!(%error, "cannot listen for outbox notifications; polling"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
