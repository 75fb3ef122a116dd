-- The domain's closed sets are enforced here too (control-plane/src/domain), and a task names the demo step it
-- runs for by a foreign key instead of through its `created_by` text.

ALTER TABLE clusters ADD CONSTRAINT clusters_status_known CHECK (status IN
    ('registered', 'pending', 'planned', 'provisioning', 'bootstrapping', 'ready', 'degraded', 'failed',
     'destroying', 'deleted'));
ALTER TABLE tasks ADD CONSTRAINT tasks_kind_known CHECK (kind IN
    ('apply', 'delete', 'terraform_plan', 'terraform_apply', 'terraform_destroy', 'terraform_drift'));
ALTER TABLE demo_steps ADD CONSTRAINT demo_steps_name_known CHECK (name IN
    ('ensure_cluster', 'ensure_agent', 'render', 'apply', 'wait_ready', 'publish_url', 'prune', 'close'));
-- The API used to store a region id as the user spelled it (any form a UUID parser takes); now one spelling.
UPDATE demos SET requested_region = regexp_replace(requested_region, '^urn:uuid:', '', 'i')::uuid::text
 WHERE requested_region <> 'auto';
ALTER TABLE demos ADD CONSTRAINT demos_requested_region_known CHECK (requested_region = 'auto'
    OR requested_region ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$');

-- `update` did not check environment values, so a number or boolean may be stored; a demo's config now holds text
-- values only (DemoConfig), as the renderer always used them.
CREATE FUNCTION edgefleet_text_env(config jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_set(config, '{env}', coalesce(
        (SELECT jsonb_object_agg(key, CASE WHEN jsonb_typeof(value) = 'string' THEN value
                                           ELSE to_jsonb(coalesce(value #>> '{}', '')) END)
           FROM jsonb_each(CASE WHEN jsonb_typeof(config -> 'env') = 'object' THEN config -> 'env'
                                ELSE '{}'::jsonb END)),
        '{}'::jsonb))
$$;
UPDATE demos SET config = edgefleet_text_env(config) WHERE config ? 'env';
UPDATE demo_versions SET config = edgefleet_text_env(config) WHERE config ? 'env';
DROP FUNCTION edgefleet_text_env(jsonb);

ALTER TABLE tasks ADD COLUMN demo_step_id bigint REFERENCES demo_steps (id) ON DELETE SET NULL;
CREATE INDEX tasks_demo_step ON tasks (demo_step_id) WHERE demo_step_id IS NOT NULL;

-- Tasks a step recorded as its own.
UPDATE tasks t SET demo_step_id = s.id FROM demo_steps s WHERE s.task_id = t.id;
-- Clusters the planner provisioned for a demo: the `ensure_cluster` step of the demo's version that was current
-- when the task was created (the step itself was marked running only after the task was queued).
UPDATE tasks t SET demo_step_id = (
        SELECT s.id FROM demo_steps s JOIN demo_versions v ON v.demo_id = s.demo_id AND v.version = s.version
         WHERE s.demo_id = substring(t.created_by FROM 14)::uuid AND s.name = 'ensure_cluster'
           AND v.created_at <= t.created_at
         ORDER BY s.version DESC LIMIT 1)
 WHERE t.demo_step_id IS NULL AND t.created_by LIKE 'planner:demo:%';

CREATE OR REPLACE FUNCTION edgefleet_task_wakes_demo() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.demo_step_id IS NOT NULL
       AND (NEW.state IS DISTINCT FROM OLD.state OR NEW.objects IS DISTINCT FROM OLD.objects) THEN
        PERFORM edgefleet_wake_demos(ARRAY(SELECT demo_id FROM demo_steps WHERE id = NEW.demo_step_id));
    END IF;
    RETURN NULL;
END $$;
