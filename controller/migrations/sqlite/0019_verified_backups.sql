-- The backup that protects a rollout, as its server's agent found it; and
-- where a server's backups land (empty: verified by exit code alone).
CREATE TABLE rollout_backups (
    rollout_id   TEXT PRIMARY KEY REFERENCES rollouts (id),
    host_id      TEXT NOT NULL,
    path         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    modified_ms  INTEGER NOT NULL,
    recorded_ms  INTEGER NOT NULL
);
ALTER TABLE components ADD COLUMN backup_location TEXT;
