-- Deleting a demo first prunes its objects from the cluster (steps `prune`, `close`), and only then marks it
-- deleted; a failed step can be retried, each retry being a new attempt with its own task.

ALTER TABLE demos ADD COLUMN delete_requested_at timestamptz;
ALTER TABLE demo_steps ADD COLUMN attempt integer NOT NULL DEFAULT 1;

-- The planner revisits a waiting demo at `planner_revisit_at` at the latest; whatever it waits for (its tasks,
-- its cluster, new steps) wakes it sooner: the triggers below clear the time, count the wake (so a planner
-- releasing the demo does not push the time back out over a wake it did not see) and NOTIFY.
ALTER TABLE demos ADD COLUMN planner_revisit_at timestamptz;
ALTER TABLE demos ADD COLUMN planner_wakes bigint NOT NULL DEFAULT 0;

CREATE FUNCTION edgefleet_wake_demos(demo_ids uuid[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE demos SET planner_wakes = planner_wakes + 1, planner_revisit_at = NULL
     WHERE id = ANY (demo_ids) AND deleted_at IS NULL;
    IF cardinality(demo_ids) > 0 THEN
        PERFORM pg_notify('edgefleet_demo_wake', '');
    END IF;
END $$;

-- Tasks the planner queued for a demo (created_by `planner:demo:<id>`): a new state or object report.
CREATE FUNCTION edgefleet_task_wakes_demo() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.created_by LIKE 'planner:demo:%'
       AND (NEW.state IS DISTINCT FROM OLD.state OR NEW.objects IS DISTINCT FROM OLD.objects) THEN
        PERFORM edgefleet_wake_demos(ARRAY[substring(NEW.created_by FROM 14)::uuid]);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tasks_wake_demo AFTER UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION edgefleet_task_wakes_demo();

-- A cluster changing status (provisioned, agent connected, degraded) matters to the demos placed on it.
CREATE FUNCTION edgefleet_cluster_wakes_demos() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM edgefleet_wake_demos(ARRAY(SELECT id FROM demos WHERE cluster_id = NEW.id));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER clusters_wake_demos AFTER UPDATE ON clusters FOR EACH ROW EXECUTE FUNCTION edgefleet_cluster_wakes_demos();

-- New steps (a new demo, version or delete) and retried ones are work at once.
CREATE FUNCTION edgefleet_step_wakes_demo() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'pending' AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM 'pending') THEN
        PERFORM edgefleet_wake_demos(ARRAY[NEW.demo_id]);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER demo_steps_wake_demo AFTER INSERT OR UPDATE ON demo_steps FOR EACH ROW EXECUTE FUNCTION edgefleet_step_wakes_demo();
