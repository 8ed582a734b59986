//! Notification subscriptions and their outbox. Events are written by
//! [`record_rollout_events_in`] and [`record_host_offline_in`] inside the
//! transaction that changes the rollout or the host, one row per
//! subscription that wants them; a sender leases a subscription (a
//! conditional update: one replica at a time, on SQLite and PostgreSQL
//! alike) and sends its rows oldest first. Delivered and given-up rows are
//! deleted and counted on the subscription.

use super::{audit_in, Store, StoreError};
use sqlx::Row;
use tierwise_common::notify::{
    events_for, host_offline_event, parse_events, EventFilter, HostFact, Payload, RolloutFacts,
    Subscription,
};
use tierwise_common::rollout::{RolloutState, StepState};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// A subscription as `notify list` shows it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionStatus {
    pub name: String,
    pub url: String,
    pub events: String,
    pub format: String,
    pub signed: bool,
    pub created_by: String,
    pub created_ms: i64,
    pub pending: i64,
    pub delivered: i64,
    pub given_up: i64,
    pub last_delivered_ms: Option<i64>,
    pub last_error: String,
    pub last_error_ms: Option<i64>,
}

/// The oldest event waiting for a subscription, with where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingNotification {
    pub seq: i64,
    pub subscription: String,
    pub url: String,
    pub format: String,
    pub secret: String,
    pub payload: String,
    pub created_ms: i64,
    pub attempts: u32,
    pub next_attempt_ms: i64,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// The subscriptions and what each wants (read in the writing transaction).
async fn wanted(tx: &mut Tx<'_>) -> Result<Vec<(String, EventFilter)>, StoreError> {
    let rows = sqlx::query("SELECT name, events FROM notification_subscriptions ORDER BY name")
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get("name")?;
            let events: String = row.try_get("events")?;
            let filter = parse_events(&events).map_err(|e| corrupt(&name, e))?;
            Ok((name, filter))
        })
        .collect()
}

/// Puts `payloads` in the outbox of every subscription that wants them.
async fn enqueue(
    tx: &mut Tx<'_>,
    subscriptions: &[(String, EventFilter)],
    payloads: &[Payload],
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut written = 0;
    for payload in payloads {
        let text = serde_json::to_string(payload).map_err(|e| corrupt("event", e))?;
        for (name, _) in subscriptions.iter().filter(|(_, f)| f.wants(payload.event)) {
            sqlx::query(
                "INSERT INTO notification_outbox (subscription, event, payload, created_ms, next_attempt_ms) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(name.as_str())
            .bind(payload.event.as_str())
            .bind(text.as_str())
            .bind(now_ms)
            .execute(&mut **tx)
            .await?;
            written += 1;
        }
    }
    Ok(written)
}

/// A rollout and its steps as events tell them.
async fn rollout_facts(tx: &mut Tx<'_>, id: &str) -> Result<Option<RolloutFacts>, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT installation, target, state, current_phase, reason FROM rollouts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let state: String = row.try_get("state")?;
    let steps = sqlx::query(
        "SELECT step_id, host_id, action, state, task, exit_code, output_tail, reason \
         FROM rollout_steps WHERE rollout_id = $1 ORDER BY ordinal",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(Some(RolloutFacts {
        id: id.to_owned(),
        installation: row.try_get("installation")?,
        release: row.try_get("target")?,
        state: RolloutState::parse(&state).ok_or_else(|| corrupt(id, &state))?,
        phase: usize::try_from(row.try_get::<i64, _>("current_phase")?).unwrap_or(0),
        reason: row.try_get("reason")?,
        steps: steps.iter().map(host_fact).collect::<Result<_, _>>()?,
    }))
}

fn host_fact(row: &sqlx::any::AnyRow) -> Result<HostFact, StoreError> {
    let step_id: String = row.try_get("step_id")?;
    let state: String = row.try_get("state")?;
    let action: String = row.try_get("action")?;
    let action = serde_json::from_str::<serde_json::Value>(&action)
        .ok()
        .and_then(|v| v["action"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(HostFact {
        host_id: row.try_get("host_id")?,
        state: StepState::parse(&state).ok_or_else(|| corrupt(&step_id, &state))?,
        action,
        task: row.try_get::<Option<String>, _>("task")?.is_some(),
        exit_code: row.try_get("exit_code")?,
        output_tail: row
            .try_get::<Option<String>, _>("output_tail")?
            .unwrap_or_default(),
        reason: row.try_get("reason")?,
        step_id,
    })
}

/// The hook of every change of a rollout's state: the events the change
/// makes (`common::notify::events_for`, from the state `before` it and the
/// rollout as it now stands in `tx`) go into the outbox in the same
/// transaction. Nothing is read when nobody subscribed.
pub(crate) async fn record_rollout_events_in(
    tx: &mut Tx<'_>,
    rollout_id: &str,
    before: Option<RolloutState>,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let subscriptions = wanted(tx).await?;
    if subscriptions.is_empty() {
        return Ok(0);
    }
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM rollouts WHERE id = $1")
        .bind(rollout_id)
        .fetch_optional(&mut **tx)
        .await?;
    if state.is_none() || state.as_deref() == before.map(RolloutState::as_str) {
        return Ok(0);
    }
    let Some(after) = rollout_facts(tx, rollout_id).await? else {
        return Ok(0);
    };
    enqueue(
        tx,
        &subscriptions,
        &events_for(before, &after, now_ms),
        now_ms,
    )
    .await
}

/// Hosts that just went offline: an event for each rollout not over in
/// which the host still has a step to run.
async fn record_host_offline_in(
    tx: &mut Tx<'_>,
    host_ids: &[String],
    now_ms: i64,
) -> Result<usize, StoreError> {
    if host_ids.is_empty() {
        return Ok(0);
    }
    let subscriptions = wanted(tx).await?;
    if subscriptions.is_empty() {
        return Ok(0);
    }
    let mut written = 0;
    for host_id in host_ids {
        let rollouts: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT r.id FROM rollouts r JOIN rollout_steps s ON s.rollout_id = r.id \
             WHERE s.host_id = $1 AND s.state IN ('pending', 'dispatched', 'failed') \
               AND r.state NOT IN ('completed', 'aborted') ORDER BY r.id",
        )
        .bind(host_id.as_str())
        .fetch_all(&mut **tx)
        .await?;
        for id in rollouts {
            if let Some(facts) = rollout_facts(tx, &id).await? {
                let event = host_offline_event(&facts, host_id, now_ms);
                written += enqueue(tx, &subscriptions, &[event], now_ms).await?;
            }
        }
    }
    Ok(written)
}

/// Notices hosts silent for three heartbeat intervals since they were
/// last seen (once per silence: the update matches a host in one replica's
/// sweep only) and records a `host.offline` event for each rollout they
/// still have steps in.
pub(crate) async fn notice_offline_in(tx: &mut Tx<'_>, now_ms: i64) -> Result<usize, StoreError> {
    let mut silent: Vec<String> = sqlx::query_scalar(
        "UPDATE hosts SET offline_noticed_ms = $1 \
         WHERE (offline_noticed_ms IS NULL OR offline_noticed_ms < last_seen_ms) \
           AND last_seen_ms + $2 * heartbeat_seconds * 1000 < $1 \
         RETURNING host_id",
    )
    .bind(now_ms)
    .bind(tierwise_common::liveness::MISSED_HEARTBEATS_BEFORE_OFFLINE)
    .fetch_all(&mut **tx)
    .await?;
    silent.sort();
    record_host_offline_in(tx, &silent, now_ms).await
}

/// Where a subscription sends, as shown: scheme and host only, since the
/// path of a Teams or Slack webhook is its key.
pub fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if rest.len() > host.len() {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

impl Store {
    /// Adds a subscription; `false` when the name is taken. Audited,
    /// without the secret or the URL's path.
    pub async fn add_subscription(
        &self,
        s: &Subscription,
        actor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(
            "INSERT INTO notification_subscriptions (name, url, events, format, secret, created_by, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
        )
        .bind(s.name.as_str())
        .bind(s.url.as_str())
        .bind(s.events.to_string())
        .bind(s.format.as_str())
        .bind(s.secret.as_str())
        .bind(actor)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 0 {
            return Ok(false);
        }
        let details = format!(
            "{} events {} format {}{}",
            shown_url(&s.url),
            s.events,
            s.format,
            if s.secret.is_empty() {
                ", unsigned"
            } else {
                ", signed"
            }
        );
        audit_in(&mut tx, now_ms, actor, "notify add", &s.name, &details).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a subscription and the events still waiting for it;
    /// `false` when there is none by that name. Audited.
    pub async fn remove_subscription(
        &self,
        name: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let dropped = sqlx::query("DELETE FROM notification_outbox WHERE subscription = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let removed = sqlx::query("DELETE FROM notification_subscriptions WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Ok(false);
        }
        let details = format!("{dropped} undelivered event(s) dropped");
        audit_in(&mut tx, now_ms, actor, "notify remove", name, &details).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Queues a test event for one subscription; `false` when there is
    /// none by that name. Audited.
    pub async fn queue_test_notification(
        &self,
        name: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM notification_subscriptions WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(false);
        }
        let only = [(name.to_owned(), EventFilter::All)];
        enqueue(&mut tx, &only, &[Payload::test(name, now_ms)], now_ms).await?;
        audit_in(
            &mut tx,
            now_ms,
            actor,
            "notify test",
            name,
            "test event queued",
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every subscription with its delivery counts, by name.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionStatus>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.name, s.url, s.events, s.format, s.secret, s.created_by, s.created_ms, s.delivered, \
                    s.given_up, s.last_delivered_ms, s.last_error, s.last_error_ms, \
                    (SELECT COUNT(*) FROM notification_outbox o WHERE o.subscription = s.name) AS pending \
             FROM notification_subscriptions s ORDER BY s.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SubscriptionStatus {
                    name: row.try_get("name")?,
                    url: shown_url(&row.try_get::<String, _>("url")?),
                    events: row.try_get("events")?,
                    format: row.try_get("format")?,
                    signed: !row.try_get::<String, _>("secret")?.is_empty(),
                    created_by: row.try_get("created_by")?,
                    created_ms: row.try_get("created_ms")?,
                    pending: row.try_get("pending")?,
                    delivered: row.try_get("delivered")?,
                    given_up: row.try_get("given_up")?,
                    last_delivered_ms: row.try_get("last_delivered_ms")?,
                    last_error: row.try_get("last_error")?,
                    last_error_ms: row.try_get("last_error_ms")?,
                })
            })
            .collect()
    }
}
