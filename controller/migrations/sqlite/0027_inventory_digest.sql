-- A digest of the inventory a host's components and databases rows hold,
-- written with them (store/mod.rs, write_inventory): a hello that brings
-- the same inventory again (every agent after a restart of the
-- controllers) leaves those rows as they are. NULL until first written.
ALTER TABLE hosts ADD COLUMN inventory_sha256 TEXT;
