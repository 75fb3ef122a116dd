-- The W3C trace context (`traceparent`) of the request that created a task or a demo version, when traces are on:
-- the dispatcher, the planner and the agent continue that trace (docs/observability.md).
ALTER TABLE tasks ADD COLUMN trace_parent text
    CONSTRAINT tasks_trace_parent_w3c CHECK (trace_parent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$');
ALTER TABLE demo_versions ADD COLUMN trace_parent text
    CONSTRAINT demo_versions_trace_parent_w3c CHECK (trace_parent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$');
