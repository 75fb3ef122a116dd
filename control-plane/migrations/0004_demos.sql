-- Demos (seed 001 Table 4.5, seed 000 Table 3-1): a template revision + image deployed to a region, with the
-- steps of its current deploy.

CREATE TABLE demos (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL,
    owner              text NOT NULL,
    template_id        uuid NOT NULL REFERENCES image_templates (id),
    image              text NOT NULL,
    -- A region id, or 'auto' (chosen by the planner; the choice and reason are recorded).
    requested_region   text NOT NULL,
    region_id          uuid REFERENCES regions (id),
    region_reason      text,
    cluster_id         uuid REFERENCES clusters (id),
    -- {"env": {...}, "replicas": n}
    config             jsonb NOT NULL,
    version            integer NOT NULL DEFAULT 1,
    status             text NOT NULL CHECK (status IN ('developing', 'online', 'offline', 'closed')),
    current_step       text,
    error              text,
    url                text,
    idempotency_key    text UNIQUE,
    planner_lease      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);
CREATE UNIQUE INDEX demos_live_name ON demos (name) WHERE deleted_at IS NULL;

CREATE TABLE demo_steps (
    id                 bigserial PRIMARY KEY,
    demo_id            uuid NOT NULL REFERENCES demos (id) ON DELETE CASCADE,
    version            integer NOT NULL,
    position           integer NOT NULL,
    name               text NOT NULL,
    state              text NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    message            text,
    task_id            uuid REFERENCES tasks (id),
    started_at         timestamptz,
    finished_at        timestamptz,
    UNIQUE (demo_id, version, position)
);
