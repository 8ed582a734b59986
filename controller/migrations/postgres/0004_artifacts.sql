-- Installers in the content-addressed store (files named by their SHA-256
-- under the data directory's artifacts/), per release and component role.
CREATE TABLE artifacts (
    release    TEXT NOT NULL,
    role       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    file_name  TEXT NOT NULL,
    size       BIGINT NOT NULL,
    added_ms   BIGINT NOT NULL,
    PRIMARY KEY (release, role)
);
