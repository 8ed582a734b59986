-- Rollouts, their steps, and the audit log of operator actions.
CREATE TABLE rollouts (
    id             TEXT PRIMARY KEY,
    seq            INTEGER NOT NULL UNIQUE,
    installation   TEXT NOT NULL REFERENCES installations (name),
    target         TEXT NOT NULL,
    state          TEXT NOT NULL,
    current_phase  INTEGER NOT NULL,
    options        TEXT NOT NULL,
    phases         TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
);

CREATE TABLE rollout_steps (
    step_id      TEXT PRIMARY KEY,
    rollout_id   TEXT NOT NULL REFERENCES rollouts (id),
    ordinal      INTEGER NOT NULL,
    phase        INTEGER NOT NULL,
    host_id      TEXT NOT NULL,
    action       TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    changed_ms   INTEGER NOT NULL,
    outcome      TEXT,
    exit_code    INTEGER,
    output_tail  TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX rollout_steps_rollout ON rollout_steps (rollout_id, ordinal);
CREATE INDEX rollout_steps_host ON rollout_steps (host_id, state);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    details  TEXT NOT NULL
);
