-- The control plane's own task log lines (Terraform runs) wait here until ClickHouse has them, so an outage of
-- ClickHouse delays them instead of losing them. Agents keep their own lines until acknowledged instead.
CREATE TABLE task_log_outbox (
    id         bigserial PRIMARY KEY,
    line       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
