-- Operator tasks: a step a person does keeps, as JSON, what they were told,
-- how it is checked, and who said it is done (NULL for a step an agent
-- runs). The server's agent says which actions it has a command for
-- (comma-separated; NULL: an agent from before tasks, all assumed).
ALTER TABLE rollout_steps ADD COLUMN task TEXT;
ALTER TABLE components ADD COLUMN server_commands TEXT;
-- Where the server's agent picks up generated Web Applications, and the
-- releases whose package a web host holds at its own `web_app` path
-- (comma-separated; NULL: none configured).
ALTER TABLE components ADD COLUMN web_app_output TEXT;
ALTER TABLE components ADD COLUMN web_packages TEXT;
-- Web Application packages made by a site's Server Manager: one per
-- release and kind of web server, with who handed it over.
CREATE TABLE web_packages (
    release     TEXT NOT NULL,
    web_server  TEXT NOT NULL CHECK (web_server IN ('iis', 'apache', 'nginx')),
    sha256      TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    size        BIGINT NOT NULL,
    added_by    TEXT NOT NULL,
    added_ms    BIGINT NOT NULL,
    PRIMARY KEY (release, web_server)
);
