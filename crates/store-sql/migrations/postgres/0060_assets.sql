-- Asset inventory (X.1642 8.3(1), 8.6.4, 8.7): the monitored resources of each tenant.
-- `name_key` is the lower-cased name (unique per tenant); `os_key` the lower-cased OS name.
-- Applications are kept twice: as JSON on the asset (what the API returns) and one row each in
-- `asset_software` (what the cross-tenant correlation query searches by index).
CREATE TABLE assets (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    os_name       TEXT,
    os_version    TEXT,
    os_key        TEXT,
    applications  TEXT NOT NULL,
    addresses     TEXT NOT NULL,
    location      TEXT,
    owner         TEXT,
    criticality   TEXT NOT NULL CHECK (criticality IN ('low', 'medium', 'high', 'critical')),
    tags          TEXT NOT NULL,
    health        TEXT NOT NULL CHECK (health IN ('unknown', 'healthy', 'degraded', 'down', 'silent')),
    last_seen_at  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, name_key)
);
CREATE INDEX assets_by_os ON assets (os_key, os_version, tenant_id);

CREATE TABLE asset_software (
    asset_id   TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name_key   TEXT NOT NULL,
    version    TEXT NOT NULL,
    PRIMARY KEY (asset_id, name_key, version)
);
CREATE INDEX asset_software_by_name ON asset_software (name_key, version, tenant_id);
