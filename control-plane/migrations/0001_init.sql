-- Initial schema: clouds, regions, clusters, agent PKI and bootstrap, tasks and their events, API tokens.

CREATE TABLE cloud_accounts (
    id                     uuid PRIMARY KEY,
    name                   text NOT NULL UNIQUE,
    provider               text NOT NULL CHECK (provider IN ('tencentcloud', 'aws', 'local', 'existing')),
    -- AES-256-GCM sealed JSON object of credential fields; NULL when the provider needs none.
    credentials_sealed     bytea,
    -- Names (never values) of the credential fields that are set, so the console can show what is configured.
    credential_fields      text[] NOT NULL DEFAULT '{}',
    tags                   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE regions (
    id                     uuid PRIMARY KEY,
    cloud_account_id       uuid NOT NULL REFERENCES cloud_accounts (id) ON DELETE RESTRICT,
    code                   text NOT NULL,
    display_name           text NOT NULL,
    enabled                boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (cloud_account_id, code)
);

CREATE TABLE clusters (
    id                     uuid PRIMARY KEY,
    region_id              uuid NOT NULL REFERENCES regions (id) ON DELETE RESTRICT,
    name                   text NOT NULL,
    role                   text NOT NULL CHECK (role IN ('management', 'user')),
    -- registered (waiting for its agent) | ready | degraded | deleted; provisioning states come with Terraform.
    status                 text NOT NULL,
    status_message         text,
    provisioning           text NOT NULL DEFAULT 'manual' CHECK (provisioning IN ('manual', 'terraform')),
    api_endpoint           text,
    external_ip            text,
    terraform_state_key    text,
    agent_version          text,
    kubernetes_version     text,
    node_count             integer,
    kubernetes_reachable   boolean,
    kubernetes_error       text,
    last_heartbeat_at      timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz
);
CREATE UNIQUE INDEX clusters_live_name ON clusters (name) WHERE deleted_at IS NULL;
CREATE INDEX clusters_region ON clusters (region_id);

-- The agent CA: one row, created by whichever control-plane process starts first.
CREATE TABLE pki_authority (
    id                     smallint PRIMARY KEY CHECK (id = 1),
    ca_cert_pem            text NOT NULL,
    ca_key_sealed          bytea NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bootstrap_tokens (
    id                     uuid PRIMARY KEY,
    cluster_id             uuid NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    token_sha256           text NOT NULL UNIQUE,
    created_by             text NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    expires_at             timestamptz NOT NULL,
    used_at                timestamptz
);

CREATE TABLE agent_certificates (
    serial                 text PRIMARY KEY,
    cluster_id             uuid NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    issued_via             text NOT NULL CHECK (issued_via IN ('bootstrap', 'renewal')),
    not_before             timestamptz NOT NULL,
    not_after              timestamptz NOT NULL,
    issued_at              timestamptz NOT NULL DEFAULT now(),
    revoked_at             timestamptz
);
CREATE INDEX agent_certificates_cluster ON agent_certificates (cluster_id);

-- One row per agent stream, so any control-plane process can tell whether a cluster's agent is connected.
CREATE TABLE agent_sessions (
    id                     uuid PRIMARY KEY,
    cluster_id             uuid NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    -- The control-plane process holding the stream (config `instance_name`).
    instance               text NOT NULL,
    certificate_serial     text NOT NULL,
    agent_version          text NOT NULL,
    peer_addr              text,
    connected_at           timestamptz NOT NULL DEFAULT now(),
    last_seen_at           timestamptz NOT NULL DEFAULT now(),
    disconnected_at        timestamptz
);
CREATE INDEX agent_sessions_open ON agent_sessions (cluster_id) WHERE disconnected_at IS NULL;

CREATE TABLE tasks (
    id                     uuid PRIMARY KEY,
    cluster_id             uuid NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    kind                   text NOT NULL,
    payload                jsonb NOT NULL,
    state                  text NOT NULL CHECK (state IN ('pending', 'leased', 'running', 'succeeded', 'failed', 'cancelled')),
    -- Why the task exists (user action, demo, retry), carried into every log line about it.
    reason                 text NOT NULL,
    idempotency_key        text,
    parent_id              uuid REFERENCES tasks (id),
    created_by             text NOT NULL,
    attempts               integer NOT NULL DEFAULT 0,
    max_attempts           integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 20),
    lease_id               uuid,
    lease_session_id       uuid,
    lease_expires_at       timestamptz,
    objects                jsonb NOT NULL DEFAULT '[]'::jsonb,
    error                  text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    started_at             timestamptz,
    finished_at            timestamptz,
    UNIQUE (cluster_id, idempotency_key)
);
CREATE INDEX tasks_open ON tasks (cluster_id, created_at) WHERE state IN ('pending', 'leased', 'running');
CREATE INDEX tasks_created ON tasks (created_at DESC);

CREATE TABLE task_events (
    id                     bigserial PRIMARY KEY,
    task_id                uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    at                     timestamptz NOT NULL DEFAULT now(),
    kind                   text NOT NULL,
    message                text NOT NULL
);
CREATE INDEX task_events_task ON task_events (task_id, id);

CREATE TABLE api_tokens (
    id                     uuid PRIMARY KEY,
    name                   text NOT NULL,
    token_sha256           text NOT NULL UNIQUE,
    role                   text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at             timestamptz NOT NULL DEFAULT now(),
    expires_at             timestamptz,
    revoked_at             timestamptz,
    last_used_at           timestamptz
);
