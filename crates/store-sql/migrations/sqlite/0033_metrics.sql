-- Metrics (X.1642 7.2.2.6(1), 8.3): Prometheus exposition endpoints scraped per asset.
-- Raw samples are kept a short time, then folded into hourly roll-ups kept for the tenant's
-- retention (a year of one series is 8,760 roll-up rows). A series id is a stable 64-bit hash
-- of tenant, asset, name and labels, so samples are written without a lookup. Assets come in
-- migration 60, so asset ids are not foreign keys here: a deleted asset's target and rules are
-- skipped by the queries (and its samples expire with the retention).
CREATE TABLE metric_targets (
    asset_id        TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    url             TEXT NOT NULL,
    interval_secs   BIGINT NOT NULL,
    next_due_at     BIGINT NOT NULL,
    last_scrape_at  BIGINT,
    last_error      TEXT,
    last_samples    BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX metric_targets_due ON metric_targets (tenant_id, next_due_at);

CREATE TABLE metric_series (
    id         BIGINT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    asset_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    labels     TEXT NOT NULL
);
CREATE INDEX metric_series_by_asset ON metric_series (tenant_id, asset_id, name);

CREATE TABLE metric_samples (
    series_id  BIGINT NOT NULL,
    tenant_id  TEXT NOT NULL,
    t          BIGINT NOT NULL,
    value      REAL NOT NULL,
    PRIMARY KEY (series_id, t)
);
CREATE INDEX metric_samples_by_time ON metric_samples (tenant_id, t);

CREATE TABLE metric_rollups (
    series_id  BIGINT NOT NULL,
    tenant_id  TEXT NOT NULL,
    t          BIGINT NOT NULL,
    min_value  REAL NOT NULL,
    max_value  REAL NOT NULL,
    mean       REAL NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (series_id, t)
);
CREATE INDEX metric_rollups_by_time ON metric_rollups (tenant_id, t);

CREATE TABLE metric_rules (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    asset_id    TEXT,
    metric      TEXT NOT NULL,
    labels      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('threshold', 'baseline')),
    rate        BIGINT NOT NULL,
    op          TEXT NOT NULL,
    value       REAL NOT NULL,
    for_secs    BIGINT NOT NULL,
    k           REAL NOT NULL,
    warmup      BIGINT NOT NULL,
    alpha       REAL NOT NULL,
    severity    TEXT NOT NULL,
    enabled     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE metric_rule_state (
    rule_id        TEXT NOT NULL REFERENCES metric_rules (id) ON DELETE CASCADE,
    series_id      BIGINT NOT NULL,
    tenant_id      TEXT NOT NULL,
    asset_id       TEXT NOT NULL,
    pending_since  BIGINT,
    mean           REAL NOT NULL,
    var            REAL NOT NULL,
    n              BIGINT NOT NULL,
    last_value     REAL,
    last_t         BIGINT,
    PRIMARY KEY (rule_id, series_id)
);
CREATE INDEX metric_rule_state_by_asset ON metric_rule_state (tenant_id, asset_id);
