-- What the engine has to look at again: a row per change of a host or of a
-- step that `decide` reads, written by triggers in the same transaction as
-- the change, so no writer can forget it. The leader's engine keeps running
-- rollouts in memory and, each round, takes these rows and reloads only the
-- hosts they name. A heartbeat (only `last_seen_ms` moves) and a progress
-- line are not changes `decide` reads. Steps are inserted only with their
-- rollout, which the engine loads whole when it first sees it.
ALTER TABLE hosts ADD COLUMN inventory_rev INTEGER NOT NULL DEFAULT 0;

CREATE TABLE engine_inbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id  TEXT NOT NULL
);

CREATE TRIGGER hosts_inserted_engine AFTER INSERT ON hosts
BEGIN
    INSERT INTO engine_inbox (host_id) VALUES (NEW.host_id);
END;

CREATE TRIGGER hosts_deleted_engine AFTER DELETE ON hosts
BEGIN
    INSERT INTO engine_inbox (host_id) VALUES (OLD.host_id);
END;

CREATE TRIGGER hosts_changed_engine AFTER UPDATE ON hosts
WHEN OLD.online IS NOT NEW.online
  OR OLD.inventory_rev IS NOT NEW.inventory_rev
  OR OLD.installation IS NOT NEW.installation
  OR OLD.claimed_installation IS NOT NEW.claimed_installation
  OR OLD.placement_note IS NOT NEW.placement_note
  OR OLD.boot_ms IS NOT NEW.boot_ms
  OR OLD.hostname IS NOT NEW.hostname
  OR OLD.os IS NOT NEW.os
  OR OLD.agent_version IS NOT NEW.agent_version
  OR OLD.heartbeat_seconds IS NOT NEW.heartbeat_seconds
BEGIN
    INSERT INTO engine_inbox (host_id) VALUES (NEW.host_id);
END;

CREATE TRIGGER steps_changed_engine AFTER UPDATE ON rollout_steps
WHEN OLD.state IS NOT NEW.state
  OR OLD.attempts IS NOT NEW.attempts
  OR OLD.changed_ms IS NOT NEW.changed_ms
  OR OLD.outcome IS NOT NEW.outcome
  OR OLD.reason IS NOT NEW.reason
  OR OLD.restart IS NOT NEW.restart
  OR OLD.phase IS NOT NEW.phase
  OR OLD.action IS NOT NEW.action
BEGIN
    INSERT INTO engine_inbox (host_id) VALUES (NEW.host_id);
END;
