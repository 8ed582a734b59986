-- Installers and the catalogue: who added each stored installer, as
-- `artifacts list` shows it. Installers stored before are given the actor
-- of their newest `artifact add` audit entry (empty if it is gone).
ALTER TABLE artifacts ADD COLUMN added_by TEXT NOT NULL DEFAULT '';
UPDATE artifacts SET added_by = COALESCE((
    SELECT a.actor FROM audit_log a
    WHERE a.action = 'artifact add' AND a.subject = artifacts.role || ' ' || artifacts.release
    ORDER BY a.seq DESC LIMIT 1
), '');
