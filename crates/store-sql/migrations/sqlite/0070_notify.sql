-- Notification (X.1642 8.6.1, 7.2.2.6(2)): channels of each tenant and the durable outbox.
-- `name_key` is the lower-cased name; `config` the kind's settings as JSON; `sealed_secret` the
-- webhook signing secret sealed under the server's secrets key.
CREATE TABLE notify_channels (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    name           TEXT NOT NULL,
    name_key       TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('email', 'webhook', 'sms')),
    config         TEXT NOT NULL,
    sealed_secret  TEXT,
    created_at     INTEGER NOT NULL,
    UNIQUE (tenant_id, name_key)
);

-- One row per message and channel. The worker picks pending rows by due time.
CREATE TABLE notify_outbox (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    channel_id       TEXT NOT NULL,
    source           TEXT NOT NULL,
    severity         TEXT,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    event_at         INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead', 'discarded')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    delivered_at     INTEGER
);
CREATE INDEX notify_outbox_due ON notify_outbox (status, next_attempt_at);
CREATE INDEX notify_outbox_by_tenant ON notify_outbox (tenant_id, id);
