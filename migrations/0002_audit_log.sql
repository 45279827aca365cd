-- Who changed what, when, and which config version it produced. Written in
-- the same transaction as the change, so the log and the config never
-- disagree.
CREATE TABLE audit_log (
    id           BIGSERIAL PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    entity       TEXT NOT NULL,
    entity_id    TEXT,
    entity_name  TEXT,
    version      BIGINT,
    summary      TEXT NOT NULL
);
CREATE INDEX audit_log_entity ON audit_log (entity, id);
