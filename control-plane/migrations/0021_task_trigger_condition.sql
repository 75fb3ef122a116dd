-- Only tasks of a demo step wake a demo; the condition moves from the trigger function into the trigger, so
-- that an update of any other task (every lease, acceptance and result of agent work) calls no function.
DROP TRIGGER tasks_wake_demo ON tasks;
CREATE TRIGGER tasks_wake_demo AFTER UPDATE ON tasks FOR EACH ROW
    WHEN (NEW.demo_step_id IS NOT NULL)
    EXECUTE FUNCTION edgefleet_task_wakes_demo();
