-- Turnpike's control-plane schema: entities, the config version history,
-- admin tokens, cluster settings and the data-plane fleet.

-- One sequence for the global config version. Writers take
-- pg_advisory_xact_lock(CONFIG_WRITE_LOCK) before nextval, so versions commit
-- in the order they are drawn.
CREATE SEQUENCE config_version_seq AS BIGINT START 1;

CREATE TABLE config_versions (
    version     BIGINT PRIMARY KEY,
    hash        TEXT NOT NULL,
    -- prost encoding of turnpike.config.v1.Config, canonical order.
    snapshot    BYTEA NOT NULL,
    author      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Entities keep what the operator wrote (the validated spec) as JSONB, with
-- the columns the database must enforce (unique names, references) beside it.
CREATE TABLE upstreams (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    spec        JSONB NOT NULL,
    tags        TEXT[] NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE routes (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- RESTRICT: deleting an upstream a route still uses is a 409.
    upstream_id UUID NOT NULL REFERENCES upstreams (id) ON DELETE RESTRICT,
    spec        JSONB NOT NULL,
    tags        TEXT[] NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX routes_upstream_id ON routes (upstream_id);

-- Admin API tokens, stored as SHA-256 digests (the tokens are 256-bit random
-- values, so a fast digest is enough; no password stretching needed).
CREATE TABLE admin_tokens (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_hash  TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'read-only')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE cluster_settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);

-- The fleet view. Rows persist so every control-plane replica sees the
-- whole fleet; `session_id` tells a live stream from one that was replaced.
CREATE TABLE data_planes (
    node_id            TEXT PRIMARY KEY,
    hostname           TEXT NOT NULL,
    software_version   TEXT NOT NULL,
    labels             JSONB NOT NULL DEFAULT '{}',
    session_id         UUID NOT NULL,
    connected          BOOLEAN NOT NULL,
    connected_at       TIMESTAMPTZ NOT NULL,
    last_seen          TIMESTAMPTZ NOT NULL,
    config_version     BIGINT NOT NULL DEFAULT 0,
    config_hash        TEXT NOT NULL DEFAULT '',
    last_error         TEXT,
    last_error_version BIGINT,
    last_error_at      TIMESTAMPTZ
);
