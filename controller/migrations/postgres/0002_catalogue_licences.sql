-- Release catalogues as imported (the newest row is the catalogue in force;
-- older rows are the history) and each installation's maintenance end date.
CREATE TABLE catalogues (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    imported_ms  BIGINT NOT NULL,
    source       TEXT NOT NULL,
    document     TEXT NOT NULL
);

CREATE TABLE licences (
    installation       TEXT PRIMARY KEY REFERENCES installations (name),
    maintenance_until  TEXT NOT NULL,
    updated_ms         BIGINT NOT NULL
);
