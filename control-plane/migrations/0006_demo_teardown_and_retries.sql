-- Deleting a demo first prunes its objects from the cluster (steps `prune`, `close`), and only then marks it
-- deleted; a failed step can be retried, each retry being a new attempt with its own task.

ALTER TABLE demos ADD COLUMN delete_requested_at timestamptz;
ALTER TABLE demo_steps ADD COLUMN attempt integer NOT NULL DEFAULT 1;
