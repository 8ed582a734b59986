//! Keeps the current inventory: probes at start, every `probe_interval`, and
//! whenever asked. Sessions subscribe to changes, so a change reaches the
//! controller as soon as a probe sees it, and probing never delays a heartbeat.

use crate::config::ComponentSpec;
use crate::probe;
use std::time::Duration;
use tierwise_common::Inventory;
use tokio::sync::{mpsc, watch};

#[derive(Debug)]
pub struct InventoryWatcher {
    pub inventory: watch::Receiver<Inventory>,
    /// Ask for a probe now; the result is published even if unchanged.
    pub refresh: mpsc::Sender<()>,
}

impl InventoryWatcher {
    /// Probes once, then keeps probing in the background; `state_dir` is
    /// where installers are downloaded (its free space is reported).
    pub async fn start(
        components: Vec<ComponentSpec>,
        probe_interval: Duration,
        state_dir: std::path::PathBuf,
    ) -> Self {
        let probe_all = move |components: Vec<ComponentSpec>, state_dir: std::path::PathBuf| async move {
            let inventory = probe::inventory(&components).await?;
            let volumes =
                tokio::task::spawn_blocking(move || probe::volumes(&state_dir, &components))
                    .await
                    .unwrap_or_default();
            inventory.with_volumes(volumes)
        };
        let first = probe_all(components.clone(), state_dir.clone()).await.unwrap_or_else(|error| {
            tracing::error!(%error, "probing produced an invalid inventory; reporting none until it is fixed");
            Inventory::default()
        });
        let (publish, inventory) = watch::channel(first);
        let (refresh, mut requests) = mpsc::channel::<()>(4);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(probe_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                let forced = tokio::select! {
                    _ = tick.tick() => false,
                    request = requests.recv() => {
                        if request.is_none() {
                            return;
                        }
                        true
                    }
                };
                let current = match probe_all(components.clone(), state_dir.clone()).await {
                    Ok(current) => current,
                    Err(error) => {
                        tracing::error!(%error, "probing produced an invalid inventory; keeping the last one");
                        continue;
                    }
                };
                if forced {
                    publish.send_replace(current);
                } else {
                    publish.send_if_modified(|old| {
                        if *old == current {
                            false
                        } else {
                            tracing::info!("inventory changed");
                            *old = current;
                            true
                        }
                    });
                }
                if publish.is_closed() {
                    return;
                }
            }
        });
        Self { inventory, refresh }
    }
}
