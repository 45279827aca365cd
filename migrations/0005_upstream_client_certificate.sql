-- An upstream's client certificate (`tls.client_certificate` in its spec,
-- mutual TLS to its targets) as a reference column, as routes.upstream_id:
-- RESTRICT makes deleting a certificate an upstream presents a 409 (the API
-- names the upstreams first; this is the database's guard).
ALTER TABLE upstreams
    ADD COLUMN client_certificate_id UUID REFERENCES certificates (id) ON DELETE RESTRICT;
CREATE INDEX upstreams_client_certificate_id ON upstreams (client_certificate_id);
