-- Restart orchestration: where a succeeded step stands with the restart
-- its host needs (none, required, approved, requested), and each host's
-- last boot time as its agent reports it (NULL: not reported).
ALTER TABLE rollout_steps ADD COLUMN restart TEXT NOT NULL DEFAULT 'none';
ALTER TABLE hosts ADD COLUMN boot_ms BIGINT;
