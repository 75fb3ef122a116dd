-- The admin console: people (argon2id password hashes), their server-side sessions, and the audit log of every
-- state-changing request (console and API alike).

CREATE TABLE users (
    id                 uuid PRIMARY KEY,
    username           text NOT NULL UNIQUE,
    password_hash      text NOT NULL,
    role               text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled           boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_login_at      timestamptz
);

-- The cookie holds a random token; only its SHA-256 is stored. A session ends at `expires_at` (absolute) or
-- after `idle_timeout` without a request (sliding), or when revoked.
CREATE TABLE console_sessions (
    id                 uuid PRIMARY KEY,
    token_sha256       text NOT NULL UNIQUE,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_seen_at       timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    ip                 text,
    user_agent         text
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);

CREATE TABLE audit_log (
    id                 bigserial PRIMARY KEY,
    at                 timestamptz NOT NULL DEFAULT now(),
    actor              text NOT NULL,
    action             text NOT NULL,
    target             text NOT NULL,
    ip                 text,
    status             integer NOT NULL,
    detail             text
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_actor ON audit_log (actor, at DESC);

ALTER TABLE api_tokens ADD COLUMN created_by text;
