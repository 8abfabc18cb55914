-- Issue 4, second factors (X.1642 8.1.2(1), 7.2.2.4(4)): a TOTP secret per user, sealed with
-- AES-256-GCM by the service (never stored in clear), the last time step accepted (replayed
-- codes are refused), and single-use recovery codes stored as SHA-256 hashes.
CREATE TABLE mfa_totp (
    user_id        TEXT PRIMARY KEY REFERENCES users (id),
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    sealed_secret  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    confirmed_at   BIGINT,
    last_step      BIGINT NOT NULL
);

CREATE TABLE mfa_recovery_codes (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
