-- The audit log as a hash chain (see common/src/audit.rs). Entries written
-- before this migration keep their number but no hash: they come first and
-- are reported as not verifiable.
ALTER TABLE audit_log ADD COLUMN seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN sha256 TEXT NOT NULL DEFAULT '';
UPDATE audit_log SET seq = id;
CREATE UNIQUE INDEX audit_log_seq ON audit_log (seq);

-- The chain's head, one row: every audited transaction takes its lock to
-- append, so entries are numbered and linked in commit order.
CREATE TABLE audit_head (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    seq     BIGINT NOT NULL,
    sha256  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, sha256)
SELECT 1, COALESCE(MAX(id), 0), '0000000000000000000000000000000000000000000000000000000000000000' FROM audit_log;
