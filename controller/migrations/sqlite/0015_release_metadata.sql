-- Signed release metadata as imported (made offline by `tierwise keys`):
-- the newest row is in force, older rows are the history. `roots` is a
-- JSON array of root envelopes, oldest first; `release` the release
-- envelope. Agents that pin a root verify both themselves.
CREATE TABLE release_metadata (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    imported_ms      INTEGER NOT NULL,
    roots            TEXT NOT NULL,
    release          TEXT NOT NULL,
    root_version     INTEGER NOT NULL,
    release_version  INTEGER NOT NULL
);
