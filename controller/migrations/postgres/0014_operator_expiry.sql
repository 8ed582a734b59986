-- Operator tokens expire (NULL: never; tokens issued before this
-- migration keep working until rotated), and each operator's last call
-- is kept (to the minute).
ALTER TABLE operators ADD COLUMN expires_ms BIGINT;
ALTER TABLE operators ADD COLUMN last_used_ms BIGINT;
