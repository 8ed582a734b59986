-- The dashboard's sessions, kept in the database so that any replica serves
-- a browser logged in through another, and a restart logs nobody out. Only
-- digests are kept: of the id in the browser's cookie, and of the operator
-- token the session acts with (checked again on every page).
CREATE TABLE dashboard_sessions (
    id_sha256     TEXT PRIMARY KEY,
    token_sha256  TEXT NOT NULL,
    started_ms    INTEGER NOT NULL,
    used_ms       INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_started ON dashboard_sessions (started_ms);
