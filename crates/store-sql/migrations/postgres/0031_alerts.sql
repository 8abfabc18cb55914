-- Detection rules (Sigma YAML) per tenant; the provider tenant's rules see every tenant's events.
-- One row per uploaded file, named by its first rule's id.
CREATE TABLE detection_rules (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    rule_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    level       TEXT,
    file        TEXT NOT NULL,
    yaml        TEXT NOT NULL,
    rules       INTEGER NOT NULL,
    enabled     INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, rule_id)
);

-- Alerts: matches of a rule, grouped by (rule, group key) while open and within the window.
CREATE TABLE alerts (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    rule_id          TEXT NOT NULL,
    rule_tenant_id   TEXT NOT NULL,
    title            TEXT NOT NULL,
    severity         TEXT NOT NULL,
    group_key        TEXT NOT NULL,
    asset_id         TEXT,
    status           TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'closed')),
    count            BIGINT NOT NULL,
    first_event_at   BIGINT NOT NULL,
    last_event_at    BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    acknowledged_by  TEXT,
    acknowledged_at  BIGINT,
    closed_by        TEXT,
    closed_at        BIGINT,
    note             TEXT
);
CREATE INDEX alerts_by_group ON alerts (tenant_id, rule_id, group_key, status);
CREATE INDEX alerts_by_time ON alerts (tenant_id, created_at, id);

CREATE TABLE alert_events (
    alert_id   TEXT NOT NULL REFERENCES alerts (id),
    tenant_id  TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    PRIMARY KEY (alert_id, event_id)
);

CREATE TABLE alert_suppressions (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    rule_id     TEXT NOT NULL,
    group_key   TEXT,
    until       BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX alert_suppressions_by_rule ON alert_suppressions (tenant_id, rule_id, until);
