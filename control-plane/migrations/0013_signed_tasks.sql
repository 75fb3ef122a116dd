-- Signed tasks (docs/security.md#signed-tasks): what the agent runs is the signed body, not the JSON payload,
-- which stays for people and for the idempotency check.
ALTER TABLE tasks
    ADD COLUMN body bytea,
    ADD COLUMN signature bytea,
    ADD COLUMN signing_key_id text;

-- A code path that forgets to sign fails loudly here. NOT VALID: tasks queued before signing existed are left to
-- fail at delivery with a message saying why.
ALTER TABLE tasks ADD CONSTRAINT agent_tasks_are_signed
    CHECK (kind NOT IN ('apply', 'delete')
           OR (body IS NOT NULL AND signature IS NOT NULL AND signing_key_id IS NOT NULL)) NOT VALID;
