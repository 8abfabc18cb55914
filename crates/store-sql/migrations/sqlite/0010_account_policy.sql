-- Issue 4, account policies (X.1642 8.1.1(3)): a tenant's own policy (provider defaults apply
-- without one), each account's log-in state (lockout counters counted before a password is
-- checked, so that concurrent attempts never exceed the threshold), throttling windows per name
-- and per source address, password history, dormancy.
CREATE TABLE account_policies (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id),
    policy      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE account_state (
    user_id                TEXT PRIMARY KEY REFERENCES users (id),
    tenant_id              TEXT NOT NULL REFERENCES tenants (id),
    failures               BIGINT NOT NULL DEFAULT 0,
    mfa_failures           BIGINT NOT NULL DEFAULT 0,
    lockouts               BIGINT NOT NULL DEFAULT 0,
    locked_until           BIGINT,
    locked_permanently_at  BIGINT,
    password_changed_at    BIGINT,
    dormant_disabled_at    BIGINT,
    enabled_at             BIGINT
);
CREATE INDEX account_state_by_tenant ON account_state (tenant_id);

CREATE TABLE login_throttle (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    scope_key     TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    hits          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, scope_key)
);

CREATE TABLE password_history (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    user_id        TEXT NOT NULL REFERENCES users (id),
    password_hash  TEXT NOT NULL,
    replaced_at    BIGINT NOT NULL
);
CREATE INDEX password_history_by_user ON password_history (tenant_id, user_id, replaced_at);
