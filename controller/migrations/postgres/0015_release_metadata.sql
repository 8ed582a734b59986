-- Signed release metadata as imported (made offline by `tierwise keys`):
-- the newest row is in force, older rows are the history. `roots` is a
-- JSON array of root envelopes, oldest first; `release` the release
-- envelope. Agents that pin a root verify both themselves.
CREATE TABLE release_metadata (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    imported_ms      BIGINT NOT NULL,
    roots            TEXT NOT NULL,
    release          TEXT NOT NULL,
    root_version     BIGINT NOT NULL,
    release_version  BIGINT NOT NULL
);
