-- Log-in profiles (X.1642 8.3(2)): per account, the source addresses and the UTC hours of its
-- successful log-ins to the management platform, learned by the audit event source and read by
-- key at every log-in (instead of a substring search over the provider's audit events).
CREATE TABLE login_profiles (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    account     TEXT NOT NULL,
    sources     TEXT NOT NULL,
    hours       TEXT NOT NULL,
    logins      BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, account)
);
