-- Notifications: where events go (one row per subscription, its secret
-- kept for signing and never shown), and the events waiting to be sent,
-- one row per subscription, written in the same transaction as the change
-- of the rollout they tell of. A replica leases a subscription to send its
-- rows in order; delivered and given-up rows are deleted and counted.
CREATE TABLE notification_subscriptions (
    name            TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    format          TEXT NOT NULL CHECK (format IN ('json', 'teams', 'slack')),
    secret          TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  BIGINT NOT NULL DEFAULT 0,
    delivered       BIGINT NOT NULL DEFAULT 0,
    given_up        BIGINT NOT NULL DEFAULT 0,
    last_delivered_ms BIGINT,
    last_error      TEXT NOT NULL DEFAULT '',
    last_error_ms   BIGINT
);

CREATE TABLE notification_outbox (
    seq             BIGSERIAL PRIMARY KEY,
    subscription    TEXT NOT NULL REFERENCES notification_subscriptions (name) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL
);
CREATE INDEX notification_outbox_by_subscription ON notification_outbox (subscription, seq);

-- When a host's silence (three missed heartbeats, however its session
-- ended) was last noticed for notifications: a host seen after it and
-- silent again is noticed again; a controller's restart, whose agents
-- reconnect within seconds, is not a silence.
ALTER TABLE hosts ADD COLUMN offline_noticed_ms BIGINT;
