-- The last traffic counters each data plane reported on its config stream
-- (proto `Stats`): requests and 5xx answers since it started, the same over
-- the last interval, its p99 (a latency bucket bound) and the interval's
-- length, as JSONB; and when the control plane received them. NULL until
-- its first report (data planes older than the report send none). One
-- UPDATE per report, so every control plane's fleet view shows them.
ALTER TABLE data_planes
    ADD COLUMN stats    JSONB,
    ADD COLUMN stats_at TIMESTAMPTZ;
