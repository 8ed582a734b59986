-- Every file of the backup that protects a rollout: one per database its
-- server reported (database_name NULL: the server names no databases), in
-- the order its databases probe lists them. rollout_backups keeps the host
-- and the first file, as before, so older readers still find one.
CREATE TABLE rollout_backup_files (
    rollout_id     TEXT NOT NULL REFERENCES rollouts (id),
    position       INTEGER NOT NULL,
    database_name  TEXT,
    path           TEXT NOT NULL,
    size           INTEGER NOT NULL,
    modified_ms    INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, position)
);
