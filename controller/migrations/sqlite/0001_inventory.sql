-- Inventory: installations, hosts, their components and the primary server's
-- databases. Times are Unix milliseconds (INTEGER), flags are 0/1.
CREATE TABLE installations (
    name        TEXT PRIMARY KEY,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE hosts (
    host_id            TEXT PRIMARY KEY,
    hostname           TEXT NOT NULL,
    installation       TEXT NOT NULL REFERENCES installations (name),
    os                 TEXT NOT NULL,
    agent_version      TEXT NOT NULL,
    first_seen_ms      INTEGER NOT NULL,
    last_seen_ms       INTEGER NOT NULL,
    heartbeat_seconds  INTEGER NOT NULL CHECK (heartbeat_seconds > 0),
    online             INTEGER NOT NULL CHECK (online IN (0, 1)),
    -- The stream that last said hello; a stream that ends only marks the host
    -- offline while it is still the current one.
    session_id         TEXT
);
CREATE INDEX hosts_installation ON hosts (installation, host_id);

CREATE TABLE components (
    host_id              TEXT NOT NULL REFERENCES hosts (host_id) ON DELETE CASCADE,
    role                 TEXT NOT NULL CHECK (role IN ('server', 'app_server', 'web', 'client')),
    -- NULL: not installed (probe_error NULL) or unknown (probe_error set).
    version              TEXT,
    probe_error          TEXT,
    web_server_kind      TEXT CHECK (web_server_kind IN ('iis', 'apache', 'nginx')),
    web_docroot          TEXT,
    web_websocket        TEXT CHECK (web_websocket IN ('unknown', 'yes', 'no')),
    client_update_check  TEXT CHECK (client_update_check IN ('unknown', 'yes', 'no')),
    databases_error      TEXT,
    PRIMARY KEY (host_id, role)
);
CREATE INDEX components_role ON components (role, host_id);

CREATE TABLE databases (
    host_id      TEXT NOT NULL REFERENCES hosts (host_id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    active       INTEGER NOT NULL CHECK (active IN (0, 1)),
    patch_level  TEXT,
    PRIMARY KEY (host_id, name)
);
