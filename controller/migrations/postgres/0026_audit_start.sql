-- Where the audit chain begins, and where its keying began (see
-- common/src/audit.rs). A log created chained begins at entry 1; a log
-- upgraded from before the chain, at its first hashed entry (or the next
-- one written, if none is hashed yet). Keying begins when a controller
-- with an audit key first starts (keyed_from 0 until then); start_mac
-- binds both numbers to that key, so they cannot be moved without it.
ALTER TABLE audit_head ADD COLUMN chained_from BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_head ADD COLUMN keyed_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_head ADD COLUMN start_mac TEXT NOT NULL DEFAULT '';
UPDATE audit_head SET chained_from = COALESCE(
    (SELECT MIN(a.seq) FROM audit_log a WHERE a.sha256 <> ''),
    audit_head.seq + 1
);
