-- Issue 5, key management (X.1642 8.2). The root key is never stored: only how it is sealed and
-- a value sealed under it that proves an unseal recovered the right key. Tenant key-encryption
-- keys are wrapped by the root, key material by the tenant's KEK.
CREATE TABLE kms_root (
    provider_id TEXT PRIMARY KEY REFERENCES tenants (id),
    mode        TEXT NOT NULL,
    shares      INTEGER NOT NULL,
    threshold   INTEGER NOT NULL,
    check_blob  BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE kms_tenant_keks (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants (id),
    wrapped    BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE kms_keys (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES tenants (id),
    name                   TEXT NOT NULL,
    key_type               TEXT NOT NULL,
    state                  TEXT NOT NULL,
    latest_version         INTEGER NOT NULL,
    min_decryption_version INTEGER NOT NULL,
    rotation_period_secs   INTEGER,
    next_rotation_at       INTEGER,
    exportable             INTEGER NOT NULL,
    policy                 TEXT NOT NULL,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    deletion_due_at        INTEGER,
    deletion_requested_by  TEXT,
    destroyed_at           INTEGER,
    receipt                TEXT,
    UNIQUE (tenant_id, name)
);
CREATE INDEX kms_keys_deletion ON kms_keys (deletion_due_at) WHERE state = 'pending-deletion';

CREATE TABLE kms_key_versions (
    key_id     TEXT NOT NULL REFERENCES kms_keys (id),
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    version    INTEGER NOT NULL,
    material   BLOB,
    public_key BLOB,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (key_id, version)
);
