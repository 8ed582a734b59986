-- What the engine has to look at again: a row per change of a host or of a
-- step that `decide` reads, written by triggers in the same transaction as
-- the change, so no writer (on any replica) can forget it. The leader's
-- engine keeps running rollouts in memory and, each round, takes the rows
-- committed so far and reloads only the hosts they name; a row of a
-- transaction still open is taken in a later round, so rows are never
-- merged (no ON CONFLICT). A heartbeat (only `last_seen_ms` moves) and a
-- progress line are not changes `decide` reads. Steps are inserted only
-- with their rollout, which the engine loads whole when it first sees it.
ALTER TABLE hosts ADD COLUMN inventory_rev BIGINT NOT NULL DEFAULT 0;

CREATE TABLE engine_inbox (
    seq      BIGSERIAL PRIMARY KEY,
    host_id  TEXT NOT NULL
);

CREATE FUNCTION tierwise_engine_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO engine_inbox (host_id) VALUES (OLD.host_id);
    ELSE
        INSERT INTO engine_inbox (host_id) VALUES (NEW.host_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER hosts_inserted_engine AFTER INSERT OR DELETE ON hosts
    FOR EACH ROW EXECUTE FUNCTION tierwise_engine_note();

CREATE TRIGGER hosts_changed_engine AFTER UPDATE ON hosts
    FOR EACH ROW WHEN (
        OLD.online IS DISTINCT FROM NEW.online
        OR OLD.inventory_rev IS DISTINCT FROM NEW.inventory_rev
        OR OLD.installation IS DISTINCT FROM NEW.installation
        OR OLD.claimed_installation IS DISTINCT FROM NEW.claimed_installation
        OR OLD.placement_note IS DISTINCT FROM NEW.placement_note
        OR OLD.boot_ms IS DISTINCT FROM NEW.boot_ms
        OR OLD.hostname IS DISTINCT FROM NEW.hostname
        OR OLD.os IS DISTINCT FROM NEW.os
        OR OLD.agent_version IS DISTINCT FROM NEW.agent_version
        OR OLD.heartbeat_seconds IS DISTINCT FROM NEW.heartbeat_seconds
    ) EXECUTE FUNCTION tierwise_engine_note();

CREATE TRIGGER steps_changed_engine AFTER UPDATE ON rollout_steps
    FOR EACH ROW WHEN (
        OLD.state IS DISTINCT FROM NEW.state
        OR OLD.attempts IS DISTINCT FROM NEW.attempts
        OR OLD.changed_ms IS DISTINCT FROM NEW.changed_ms
        OR OLD.outcome IS DISTINCT FROM NEW.outcome
        OR OLD.reason IS DISTINCT FROM NEW.reason
        OR OLD.restart IS DISTINCT FROM NEW.restart
        OR OLD.phase IS DISTINCT FROM NEW.phase
        OR OLD.action IS DISTINCT FROM NEW.action
    ) EXECUTE FUNCTION tierwise_engine_note();
