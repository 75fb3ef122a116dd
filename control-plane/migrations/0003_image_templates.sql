-- Image templates loaded from images/templates/*/template.yaml. A template whose content changed is stored as a
-- new revision; demos keep pointing at the revision they were created from.

CREATE TABLE image_templates (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL,
    version            text NOT NULL,
    revision           integer NOT NULL,
    title              text NOT NULL,
    description        text NOT NULL,
    runtime            text NOT NULL,
    process            text NOT NULL,
    port               integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    health_check_path  text NOT NULL,
    env                jsonb NOT NULL,
    resources          jsonb NOT NULL,
    image_required     boolean NOT NULL,
    default_image      text,
    dockerfile         text,
    content_sha256     text NOT NULL,
    latest             boolean NOT NULL DEFAULT false,
    loaded_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version, revision),
    UNIQUE (name, content_sha256)
);
CREATE UNIQUE INDEX image_templates_latest ON image_templates (name) WHERE latest;
