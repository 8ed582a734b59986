-- Several controllers on one database: which replica holds each host's
-- stream, the outbox through which any replica reaches it, and the
-- leadership epoch every engine transaction checks.
ALTER TABLE hosts ADD COLUMN replica TEXT;
CREATE TABLE outbox (
    seq BIGSERIAL PRIMARY KEY,
    host_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    dispatch_id TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL
);
CREATE INDEX outbox_host ON outbox (host_id);
CREATE INDEX hosts_replica ON hosts (replica);
CREATE TABLE leadership (
    id INTEGER PRIMARY KEY,
    epoch BIGINT NOT NULL,
    holder TEXT NOT NULL,
    since_ms BIGINT NOT NULL
);
INSERT INTO leadership (id, epoch, holder, since_ms) VALUES (1, 0, '', 0);
