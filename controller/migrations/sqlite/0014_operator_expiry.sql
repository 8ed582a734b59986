-- Operator tokens expire (NULL: never; tokens issued before this
-- migration keep working until rotated), and each operator's last call
-- is kept (to the minute).
ALTER TABLE operators ADD COLUMN expires_ms INTEGER;
ALTER TABLE operators ADD COLUMN last_used_ms INTEGER;
