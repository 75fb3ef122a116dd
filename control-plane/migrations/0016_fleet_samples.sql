-- Per-region samples of the fleet for the console's charts (docs/console.md#overview): agents connected and their
-- round trip, tasks finished and failed, demos by state and log lines, one row per region per sampling interval.
-- `at` is the start of the interval, so replicas sampling the same interval write one row (the first wins).
CREATE TABLE fleet_samples (
    region_id uuid NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    at timestamptz NOT NULL,
    clusters integer NOT NULL,
    agents_connected integer NOT NULL,
    rtt_ms double precision,
    tasks_succeeded integer NOT NULL,
    tasks_failed integer NOT NULL,
    demos_online integer NOT NULL,
    demos_failed integer NOT NULL,
    log_lines bigint NOT NULL,
    PRIMARY KEY (region_id, at)
);
CREATE INDEX fleet_samples_at ON fleet_samples (at);
-- The sampler counts the tasks that ended in each interval.
CREATE INDEX tasks_finished_at ON tasks (finished_at) WHERE finished_at IS NOT NULL;
