-- How long steps that succeeded took on their hosts, summed by action,
-- role and release: what rollout plans and statuses expect.
CREATE TABLE step_durations (
    action    TEXT NOT NULL,
    role      TEXT NOT NULL,
    release   TEXT NOT NULL,
    count     INTEGER NOT NULL,
    total_ms  INTEGER NOT NULL,
    PRIMARY KEY (action, role, release)
);
