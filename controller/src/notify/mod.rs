//! The notification sender: a task of its own that takes events from the
//! store's notification outbox and POSTs them to their subscriptions. The
//! engine only writes outbox rows; a receiver that is down or slow holds
//! up nothing but its own subscription's later events (kept in order).

mod client;

use crate::store::notifications::PendingNotification;
use crate::store::{Store, StoreError};
use client::WebhookClient;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tierwise_common::audit::Head;
use tierwise_common::notify::{
    next_attempt, render, signature_header, Format, Payload, RetryVerdict, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};
use tierwise_runtime::clock::now_ms;
use tracing::{info, warn};

/// How often the outbox is looked at for due events.
const POLL: Duration = Duration::from_millis(200);

/// Sends notifications until the task is dropped.
pub async fn run(store: Store) {
    let client = match WebhookClient::new() {
        Ok(client) => client,
        Err(error) => {
            warn!(%error, "no HTTP client for notifications; none will be sent");
            return;
        }
    };
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due = match store.due_subscriptions(now_ms()).await {
            Ok(due) => due,
            Err(error) => {
                warn!(%error, "could not read the notification outbox");
                continue;
            }
        };
        for name in due {
            // One sender per subscription in this process: its events go
            // out one after the other, in order.
            if !busy
                .lock()
                .map(|mut b| b.insert(name.clone()))
                .unwrap_or(false)
            {
                continue;
            }
            let (store, client, busy) = (store.clone(), client.clone(), busy.clone());
            tokio::spawn(async move {
                if let Err(error) = drain(&store, &client, &name).await {
                    warn!(subscription = %name, %error, "sending notifications failed");
                }
                if let Ok(mut busy) = busy.lock() {
                    busy.remove(&name);
                }
            });
        }
    }
}

/// Sends a subscription's due events oldest first while this replica holds
/// its lease; stops at the first failure (the rest wait behind it).
async fn drain(store: &Store, client: &WebhookClient, name: &str) -> Result<(), StoreError> {
    while store.lease_subscription(name, now_ms()).await? {
        let Some(event) = store.oldest_notification(name).await? else {
            break;
        };
        if event.next_attempt_ms > now_ms() {
            break;
        }
        // The chain's head as it is now goes out with the event.
        let head = match store.audit_head().await {
            Ok(head) => Some(head),
            Err(error) => {
                warn!(%error, "could not read the audit chain's head for a notification");
                None
            }
        };
        if let Err(error) = deliver(client, &event, head).await {
            let verdict = next_attempt(event.created_ms, event.attempts + 1, now_ms());
            let outcome = match verdict {
                RetryVerdict::At(_) => "failed",
                RetryVerdict::GiveUp => "given_up",
            };
            crate::metrics::metrics().notification(outcome);
            warn!(subscription = %name, %error, outcome, attempts = event.attempts + 1, "notification not delivered");
            store
                .notification_failed(&event, &error, verdict, now_ms())
                .await?;
            break;
        }
        crate::metrics::metrics().notification("sent");
        store.notification_delivered(&event, now_ms()).await?;
    }
    store.release_subscription(name).await
}

/// One attempt: the body in the subscription's format (with the audit
/// chain's head), signed when it has a secret.
async fn deliver(
    client: &WebhookClient,
    event: &PendingNotification,
    audit_head: Option<Head>,
) -> Result<(), String> {
    let mut payload: Payload = serde_json::from_str(&event.payload)
        .map_err(|e| format!("the stored event cannot be read: {e}"))?;
    payload.audit_head = audit_head;
    let format: Format = event.format.parse().unwrap_or_default();
    let body = render(format, &payload);
    let timestamp = now_ms() / 1000;
    let mut headers = vec![(TIMESTAMP_HEADER, timestamp.to_string())];
    if !event.secret.is_empty() {
        headers.push((
            SIGNATURE_HEADER,
            signature_header(event.secret.as_bytes(), timestamp, &body),
        ));
    }
    let status = client
        .post(&event.url, &headers, "application/json", body)
        .await?;
    info!(subscription = %event.subscription, event = %payload.event, status, "notification delivered");
    Ok(())
}
