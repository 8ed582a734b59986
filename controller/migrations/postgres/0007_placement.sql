-- Clients whose agents say `installation = "auto"` are placed by the server
-- their database profiles name. `claimed_installation` is what the agent
-- said (NULL for rows older than this migration: the same as
-- `installation`); for an `auto` host `installation` is where it was placed,
-- or `auto` while it is unassigned, and `placement_note` says how, or why not.
ALTER TABLE hosts ADD COLUMN claimed_installation TEXT;
ALTER TABLE hosts ADD COLUMN placement_note TEXT;
-- A client's database profiles, as JSON [{"host": ..., "database": ...}].
ALTER TABLE components ADD COLUMN client_profiles TEXT;
-- The operator's word on which installation a server address belongs to.
CREATE TABLE installation_maps (
    address       TEXT PRIMARY KEY,
    installation  TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    created_by    TEXT NOT NULL
);
