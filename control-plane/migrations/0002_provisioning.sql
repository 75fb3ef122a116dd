-- Terraform provisioning: what a cluster was provisioned from, its outputs, drift, and task outputs.

ALTER TABLE clusters
    -- {"stack": "<provider>", "variables": {...}} for clusters the control plane provisions.
    ADD COLUMN provision_spec       jsonb,
    ADD COLUMN ca_certificate       text,
    -- AES-256-GCM sealed kubeconfig from the cluster module's output, used to install the agent.
    ADD COLUMN kubeconfig_sealed    bytea,
    ADD COLUMN drift_status         text CHECK (drift_status IN ('in_sync', 'drifted', 'unknown')),
    ADD COLUMN drift_checked_at     timestamptz;

-- Structured result of a task (a plan's resource changes, Terraform outputs without secrets).
ALTER TABLE tasks ADD COLUMN output jsonb;
