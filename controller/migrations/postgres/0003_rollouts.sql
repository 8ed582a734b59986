-- Rollouts, their steps, and the audit log of operator actions.
CREATE TABLE rollouts (
    id             TEXT PRIMARY KEY,
    seq            BIGINT NOT NULL UNIQUE,
    installation   TEXT NOT NULL REFERENCES installations (name),
    target         TEXT NOT NULL,
    state          TEXT NOT NULL,
    current_phase  BIGINT NOT NULL,
    options        TEXT NOT NULL,
    phases         TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    created_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL
);

CREATE TABLE rollout_steps (
    step_id      TEXT PRIMARY KEY,
    rollout_id   TEXT NOT NULL REFERENCES rollouts (id),
    ordinal      BIGINT NOT NULL,
    phase        BIGINT NOT NULL,
    host_id      TEXT NOT NULL,
    action       TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    changed_ms   BIGINT NOT NULL,
    outcome      TEXT,
    exit_code    BIGINT,
    output_tail  TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX rollout_steps_rollout ON rollout_steps (rollout_id, ordinal);
CREATE INDEX rollout_steps_host ON rollout_steps (host_id, state);

CREATE TABLE audit_log (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms    BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    details  TEXT NOT NULL
);
