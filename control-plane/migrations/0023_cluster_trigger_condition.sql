-- Only a change of a cluster's status wakes its demos; the condition moves from the trigger function into the
-- trigger (as 0021 did for tasks), so that a heartbeat, which rewrites the cluster's row without changing its
-- status, calls no function and queues no trigger event.
DROP TRIGGER clusters_wake_demos ON clusters;
CREATE TRIGGER clusters_wake_demos AFTER UPDATE OF status ON clusters FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION edgefleet_cluster_wakes_demos();
