-- Operator tasks: a step a person does keeps, as JSON, what they were told,
-- how it is checked, and who said it is done (NULL for a step an agent
-- runs). The server's agent says which actions it has a command for
-- (comma-separated; NULL: an agent from before tasks, all assumed).
ALTER TABLE rollout_steps ADD COLUMN task TEXT;
ALTER TABLE components ADD COLUMN server_commands TEXT;
