-- Issue 5, key management (X.1642 8.2). The root key is never stored: only how it is sealed and
-- a value sealed under it that proves an unseal recovered the right key. Tenant key-encryption
-- keys are wrapped by the root, key material by the tenant's KEK.
CREATE TABLE kms_root (
    provider_id TEXT PRIMARY KEY REFERENCES tenants (id),
    mode        TEXT NOT NULL,
    shares      BIGINT NOT NULL,
    threshold   BIGINT NOT NULL,
    check_blob  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE kms_tenant_keks (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants (id),
    wrapped    BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE kms_keys (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES tenants (id),
    name                   TEXT NOT NULL,
    key_type               TEXT NOT NULL,
    state                  TEXT NOT NULL,
    latest_version         BIGINT NOT NULL,
    min_decryption_version BIGINT NOT NULL,
    rotation_period_secs   BIGINT,
    next_rotation_at       BIGINT,
    exportable             BIGINT NOT NULL,
    policy                 TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    deletion_due_at        BIGINT,
    deletion_requested_by  TEXT,
    destroyed_at           BIGINT,
    receipt                TEXT,
    UNIQUE (tenant_id, name)
);
CREATE INDEX kms_keys_deletion ON kms_keys (deletion_due_at) WHERE state = 'pending-deletion';

CREATE TABLE kms_key_versions (
    key_id     TEXT NOT NULL REFERENCES kms_keys (id),
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    version    BIGINT NOT NULL,
    material   BYTEA,
    public_key BYTEA,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, version)
);
