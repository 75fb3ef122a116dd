-- A demo's name is free as soon as its deletion is requested: a new demo of that name can be deployed at once,
-- while the old one's objects are still being removed (its namespace may stay Terminating for a while; the
-- agent waits for it to be gone before creating it again, or adopts objects the new version applies first).
DROP INDEX demos_live_name;
CREATE UNIQUE INDEX demos_live_name ON demos (name) WHERE deleted_at IS NULL AND delete_requested_at IS NULL;
