-- History that keeps every failure: when the current attempt of a step
-- went out, and every ended attempt of a step (its result, exit code,
-- output tail and times), kept after a retry or a skip.
ALTER TABLE rollout_steps ADD COLUMN started_ms BIGINT;
CREATE TABLE step_attempts (
    step_id      TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    rollout_id   TEXT NOT NULL,
    host_id      TEXT NOT NULL,
    -- succeeded or failed
    result       TEXT NOT NULL,
    outcome      TEXT NOT NULL DEFAULT '',
    exit_code    BIGINT,
    output_tail  TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL DEFAULT '',
    started_ms   BIGINT,
    finished_ms  BIGINT NOT NULL,
    PRIMARY KEY (step_id, attempt)
);
CREATE INDEX step_attempts_rollout ON step_attempts (rollout_id);
CREATE INDEX step_attempts_host ON step_attempts (host_id);
-- The last attempt of each step that ended before attempts were kept.
INSERT INTO step_attempts (step_id, attempt, rollout_id, host_id, result, outcome, exit_code, output_tail, reason, finished_ms)
SELECT step_id, attempts, rollout_id, host_id,
       CASE WHEN state = 'failed' OR outcome NOT LIKE 'succeeded%' THEN 'failed' ELSE 'succeeded' END,
       outcome, exit_code, output_tail, reason, changed_ms
FROM rollout_steps WHERE outcome IS NOT NULL AND attempts > 0;
