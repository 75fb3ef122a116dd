-- Finished tasks are deleted once older than `tasks.retention_days`. Deleting a task checks what still points
-- at it (a follow-up task, a demo step); these indexes keep those checks from scanning whole tables.
CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX demo_steps_task ON demo_steps (task_id) WHERE task_id IS NOT NULL;
