-- Issue 4 §5, the OpenID Connect provider (X.1642 8.1.1(1)): relying parties registered per
-- tenant (secrets stored as SHA-256 only), the tenant's token-signing keys (private parts sealed
-- by the service with AES-256-GCM; retired keys stay published until their tokens expire),
-- single-use authorization codes (by hash, with the PKCE challenge) and issued tokens with their
-- refresh-token families (a reused refresh token or code revokes its family).
CREATE TABLE oidc_clients (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    name               TEXT NOT NULL,
    public_client      BIGINT NOT NULL,
    secret_hash        TEXT,
    redirect_uris      TEXT NOT NULL,
    grants             TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    secret_rotated_at  BIGINT,
    UNIQUE (tenant_id, name)
);

CREATE TABLE oidc_keys (
    kid             TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    alg             TEXT NOT NULL,
    sealed_private  TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT
);
CREATE INDEX oidc_keys_tenant ON oidc_keys (tenant_id, created_at);

CREATE TABLE oidc_codes (
    code_hash       TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    scope           TEXT NOT NULL,
    nonce           TEXT,
    auth_time       BIGINT NOT NULL,
    family          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);

CREATE TABLE oidc_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    client_id    TEXT NOT NULL,
    user_id      TEXT,
    kind         TEXT NOT NULL,
    secret_hash  TEXT UNIQUE,
    family       TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    used_at      BIGINT
);
CREATE INDEX oidc_tokens_family ON oidc_tokens (tenant_id, family);
CREATE INDEX oidc_tokens_client ON oidc_tokens (tenant_id, client_id);
