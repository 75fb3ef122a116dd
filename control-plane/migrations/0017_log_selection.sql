-- Which namespaces' pod logs and events each cluster's agent collects, besides demo namespaces and what opts in by
-- label (docs/logs.md#what-is-collected). Heartbeats return it, so a change reaches the agent within one interval.
ALTER TABLE clusters
    ADD COLUMN log_all_namespaces boolean NOT NULL DEFAULT false,
    ADD COLUMN log_namespaces text[] NOT NULL DEFAULT '{}';
