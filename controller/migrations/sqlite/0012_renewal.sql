-- A renewal names the certificate that replaces the one it renewed
-- (renewed_to); the old one is superseded (refused from then on) once the
-- new one is first used, so an agent that lost the renewal's answer keeps
-- working with the old one and renews again.
ALTER TABLE agent_certificates ADD COLUMN superseded_ms INTEGER;
ALTER TABLE agent_certificates ADD COLUMN renewed_to TEXT;
ALTER TABLE agent_certificates ADD COLUMN first_used_ms INTEGER;
-- Renewals before this migration left older certificates valid: of each
-- host's unrevoked certificates only the newest stays.
UPDATE agent_certificates SET superseded_ms = CAST(strftime('%s','now') AS INTEGER) * 1000
WHERE revoked_ms IS NULL AND issued_ms < (
    SELECT MAX(c2.issued_ms) FROM agent_certificates c2
    WHERE c2.host_id = agent_certificates.host_id AND c2.revoked_ms IS NULL
);
CREATE INDEX agent_certificates_renewed_to ON agent_certificates (renewed_to);
