-- Consumers with their credentials, plugins and certificates. As for
-- upstreams and routes, the validated spec is JSONB and the columns beside
-- it are what Postgres must enforce: unique keys, references, cascades.

CREATE TABLE consumers (
    id          UUID PRIMARY KEY,
    username    TEXT NOT NULL UNIQUE,
    spec        JSONB NOT NULL,
    tags        TEXT[] NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Secrets are stored sealed: key-auth keys as HMAC-SHA256 digests (the
-- pepper is in cluster_settings), basic-auth passwords as Argon2id PHC
-- strings. JWT HS* secrets and public keys are stored as given: data planes
-- verify with them.
CREATE TABLE credentials (
    id          UUID PRIMARY KEY,
    -- CASCADE: deleting a consumer deletes its credentials, in the same version.
    consumer_id UUID NOT NULL REFERENCES consumers (id) ON DELETE CASCADE,
    type        TEXT NOT NULL CHECK (type IN ('key-auth', 'basic-auth', 'jwt')),
    -- What a data plane finds the credential by: the key digest, the
    -- basic-auth username, or the JWT `iss`/`kid`. One consumer per lookup.
    lookup      TEXT NOT NULL,
    spec        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT credentials_lookup UNIQUE (type, lookup)
);
CREATE INDEX credentials_consumer_id ON credentials (consumer_id);

CREATE TABLE plugins (
    id          UUID PRIMARY KEY,
    -- Not unique: several rate-limit plugins may exist, one per scope.
    name        TEXT NOT NULL,
    -- RESTRICT: deleting a route or consumer a plugin is scoped to is a 409.
    route_id    UUID REFERENCES routes (id) ON DELETE RESTRICT,
    consumer_id UUID REFERENCES consumers (id) ON DELETE RESTRICT,
    spec        JSONB NOT NULL,
    tags        TEXT[] NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
-- At most one plugin of a name per scope (global, route, consumer, or both);
-- COALESCE because NULLs are distinct in a plain unique index.
CREATE UNIQUE INDEX plugins_scope ON plugins (
    name,
    COALESCE(route_id, '00000000-0000-0000-0000-000000000000'::uuid),
    COALESCE(consumer_id, '00000000-0000-0000-0000-000000000000'::uuid)
);
CREATE INDEX plugins_route_id ON plugins (route_id);
CREATE INDEX plugins_consumer_id ON plugins (consumer_id);

-- The private key is in `spec`: data planes need it to terminate TLS.
CREATE TABLE certificates (
    id          UUID PRIMARY KEY,
    spec        JSONB NOT NULL,
    tags        TEXT[] NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- One row per SNI, so an SNI belongs to at most one certificate.
CREATE TABLE certificate_snis (
    sni            TEXT PRIMARY KEY,
    certificate_id UUID NOT NULL REFERENCES certificates (id) ON DELETE CASCADE
);
CREATE INDEX certificate_snis_certificate_id ON certificate_snis (certificate_id);
