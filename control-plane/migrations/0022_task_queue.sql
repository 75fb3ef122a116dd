-- The queue's open tasks in a narrow table of their own. Every lease, the lease expiry, the patrol and the
-- provisioner's lease look for open tasks; through the partial index `tasks_open` they walked the index entries
-- of every version of every task (three per task: pending, leased, running), and each entry's wide heap row,
-- as long as any snapshot could still see those versions (a transaction held open kept all of them). Here a
-- task has one row while it is open, about 100 bytes, and the row is deleted when the task finishes.
--
-- The row follows `tasks.state` through triggers rather than through every statement that changes a task, so
-- that no writer (the agent queue, the provisioner, cluster deletion, retention) can leave it behind. The
-- triggers fire only when a task is created open, moves between pending and held, or closes: an acceptance
-- (leased -> running), a renewal and progress call no function.
--
-- Lock order: writers lock the `tasks` row first (the triggers then touch this row), and the leases lock
-- `tasks` rows too (`FOR NO KEY UPDATE OF t`), never rows here, so the two tables cannot deadlock.
-- No task may be written between the copy below and the triggers' creation (replicas of the previous version
-- keep running during a rolling upgrade), or it would be missing here; the lock lets readers through.
LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE task_queue (
    task_id                uuid PRIMARY KEY,
    cluster_id             uuid NOT NULL,
    kind                   text NOT NULL,
    created_at             timestamptz NOT NULL,
    -- Leased or running: held by a runner under a lease (`TaskState::is_leased`); false while pending.
    held                   boolean NOT NULL
-- Room on each page for the one update a row gets (pending -> held, and back on a retry) to stay on its page
-- (a HOT update: no new index entry). A queue's rows are short-lived, so vacuum runs by count of dead rows
-- rather than by fraction of a table that is mostly dead.
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);
CREATE INDEX task_queue_cluster ON task_queue (cluster_id, created_at);

INSERT INTO task_queue (task_id, cluster_id, kind, created_at, held)
    SELECT id, cluster_id, kind, created_at, state <> 'pending' FROM tasks
    WHERE state IN ('pending', 'leased', 'running');

CREATE FUNCTION edgefleet_task_queue_follows_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_queue (task_id, cluster_id, kind, created_at, held)
            VALUES (NEW.id, NEW.cluster_id, NEW.kind, NEW.created_at, NEW.state <> 'pending');
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM task_queue WHERE task_id = OLD.id;
    ELSIF NEW.state IN ('pending', 'leased', 'running') THEN
        UPDATE task_queue SET held = (NEW.state <> 'pending') WHERE task_id = NEW.id;
    ELSE
        DELETE FROM task_queue WHERE task_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_enter_queue AFTER INSERT ON tasks FOR EACH ROW
    WHEN (NEW.state IN ('pending', 'leased', 'running'))
    EXECUTE FUNCTION edgefleet_task_queue_follows_task();
CREATE TRIGGER tasks_move_in_queue AFTER UPDATE OF state ON tasks FOR EACH ROW
    WHEN (OLD.state IN ('pending', 'leased', 'running')
          AND ((OLD.state = 'pending') <> (NEW.state = 'pending')
               OR NEW.state NOT IN ('pending', 'leased', 'running')))
    EXECUTE FUNCTION edgefleet_task_queue_follows_task();
CREATE TRIGGER tasks_leave_queue AFTER DELETE ON tasks FOR EACH ROW
    WHEN (OLD.state IN ('pending', 'leased', 'running'))
    EXECUTE FUNCTION edgefleet_task_queue_follows_task();

-- With the open tasks here, no index of `tasks` names `state`, so a lease or an acceptance (which change only
-- columns no index reads) can be a HOT update when its page has room; the fill factor leaves that room on new
-- pages (a task's row gets two such updates before the one that finishes it, which `tasks_finished_at` reads).
DROP INDEX tasks_open;
ALTER TABLE tasks SET (fillfactor = 70);
