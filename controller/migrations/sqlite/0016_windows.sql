-- Maintenance windows: at most one per installation and scope (server,
-- app_servers, web, clients), in the installation's IANA time zone.
CREATE TABLE maintenance_windows (
    installation  TEXT NOT NULL REFERENCES installations (name),
    scope         TEXT NOT NULL,
    days          TEXT NOT NULL,
    from_time     TEXT NOT NULL,
    to_time       TEXT NOT NULL,
    time_zone     TEXT NOT NULL,
    updated_ms    INTEGER NOT NULL,
    PRIMARY KEY (installation, scope)
);
