-- Enrollment tokens: the secret is never stored, only its SHA-256 (hex).
CREATE TABLE enrollment_tokens (
    id             TEXT PRIMARY KEY,
    secret_sha256  TEXT NOT NULL,
    installation   TEXT,
    uses_allowed   BIGINT NOT NULL,
    uses           BIGINT NOT NULL DEFAULT 0,
    expires_ms     BIGINT NOT NULL,
    created_ms     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    revoked_ms     BIGINT
);

-- Every client certificate issued to an agent. An agent is identified by the
-- serial of the certificate it presents; a revoked row refuses it.
CREATE TABLE agent_certificates (
    serial             TEXT PRIMARY KEY,
    host_id            TEXT NOT NULL,
    installation       TEXT NOT NULL,
    public_key_sha256  TEXT NOT NULL,
    token_id           TEXT,
    certificate_pem    TEXT NOT NULL,
    issued_ms          BIGINT NOT NULL,
    not_after_ms       BIGINT NOT NULL,
    revoked_ms         BIGINT
);
CREATE INDEX agent_certificates_host ON agent_certificates (host_id);

-- Operators of the CLI: a role and the SHA-256 (hex) of their token.
CREATE TABLE operators (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    token_sha256  TEXT NOT NULL UNIQUE,
    created_ms    BIGINT NOT NULL,
    created_by    TEXT NOT NULL
);
