-- Security events (X.1642 8.3(2), 7.2.2.6): normalized columns for search and retention, the
-- event as it was sent in `raw`. Times are milliseconds since the epoch. `asset_id` is not a
-- foreign key: an event outlives the asset it was attributed to.
CREATE TABLE events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    time         BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    host         TEXT,
    source       TEXT,
    severity     TEXT NOT NULL,
    message      TEXT,
    asset_id     TEXT,
    batch_id     TEXT NOT NULL,
    raw          TEXT NOT NULL
);
CREATE INDEX events_by_time ON events (tenant_id, time, id);
CREATE INDEX events_by_host ON events (tenant_id, host, time);

-- Ingestion batches sent with an idempotency key: a replay returns `response` and stores nothing.
CREATE TABLE event_batches (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    idempotency_key  TEXT NOT NULL,
    batch_id         TEXT NOT NULL,
    response         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX event_batches_by_time ON event_batches (tenant_id, created_at);

-- Per-tenant event retention (days); tenants without a row keep the server's default.
CREATE TABLE event_retention (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id),
    days        INTEGER NOT NULL CHECK (days > 0),
    updated_at  BIGINT NOT NULL
);
