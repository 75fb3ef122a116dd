-- What an agent did while it could not reach the control plane (edge autonomy): one row per period offline,
-- sent by the agent once it is back and recorded once by id.
CREATE TABLE agent_offline_reports (
    id                      text PRIMARY KEY,
    cluster_id              uuid NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    offline_since           timestamptz NOT NULL,
    back_at                 timestamptz NOT NULL,
    checks                  integer NOT NULL,
    objects                 integer NOT NULL,
    corrections             jsonb NOT NULL,
    corrections_not_listed  integer NOT NULL,
    received_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_offline_reports_cluster ON agent_offline_reports (cluster_id, back_at DESC);
