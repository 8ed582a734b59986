-- Each rollout's random tag, part of every dispatch id, so that a rollout
-- id that repeats (a restored or new database, another controller) never
-- meets an old rollout's steps in an agent's journal. NULL: created before.
ALTER TABLE rollouts ADD COLUMN nonce TEXT;
