-- Promotion: the installation whose completed, soaked rollouts a release
-- must come through before it reaches this one.
ALTER TABLE installations ADD COLUMN promote_from TEXT;
ALTER TABLE installations ADD COLUMN soak_ms BIGINT;
