-- A renewal supersedes the certificate it replaces: from then on only the
-- new one is accepted.
ALTER TABLE agent_certificates ADD COLUMN superseded_ms INTEGER;
