//! How the controller reaches agents: one small interface in domain
//! terms, and the outbox reader that feeds it. The engine writes what must
//! reach a host into the store's outbox in the transaction that decides
//! it; every replica's reader takes the rows of the hosts whose streams it
//! holds and hands them to its sessions. The gRPC session registry
//! implements `Deliver` (and turns a delivery into a protobuf command);
//! tests record what would have gone out.

use crate::store::outbox::OutboxItem;
use crate::store::{Backend, Store};
use std::sync::Arc;
use std::time::Duration;
use tierwise_common::rollout::Delivery;
use tokio::sync::Notify;
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
}

/// How often the reader looks even without a wake-up (a notification lost
/// with a connection, a row written by another replica on SQLite-less
/// setups).
const POLL: Duration = Duration::from_millis(500);

/// Takes this replica's outbox rows whenever woken (by the local engine,
/// by PostgreSQL's NOTIFY) and at least every `POLL`, and hands them over.
pub async fn run_outbox(store: Store, deliver: Arc<dyn Deliver>, wake: Arc<Notify>) {
    if store.backend() == Backend::Postgres {
        tokio::spawn(listen(store.clone(), wake.clone()));
    }
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        match store.take_outbox().await {
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
async fn listen(store: Store, wake: Arc<Notify>) {
    loop {
        match sqlx::postgres::PgListener::connect(store.connect_string()).await {
            Ok(mut listener) => {
                if let Err(error) = listener.listen("tierwise_outbox").await {
                    warn!(%error, "cannot listen for outbox notifications; polling");
                } else {
                    while listener.recv().await.is_ok() {
                        wake.notify_one();
                    }
                }
            }
            Err(error) => warn!(%error, "cannot listen for outbox notifications; polling"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
