-- Version history of demos: every deploy (create, update, rollback, stop, start) is a version.

CREATE TABLE demo_versions (
    demo_id            uuid NOT NULL REFERENCES demos (id) ON DELETE CASCADE,
    version            integer NOT NULL,
    template_id        uuid NOT NULL REFERENCES image_templates (id),
    image              text NOT NULL,
    config             jsonb NOT NULL,
    reason             text NOT NULL,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (demo_id, version)
);
