-- The latest progress line of a running step.
ALTER TABLE rollout_steps ADD COLUMN progress TEXT NOT NULL DEFAULT '';
