-- Issue 4, LDAP v3 directories per tenant (X.1642 8.1.2(1)): one directory per tenant, its
-- settings as JSON (URL, StartTLS, search bases and filters, group-to-role rules) and the service
-- account's bind password sealed by the identity service (never in clear).
CREATE TABLE ldap_directories (
    tenant_id             TEXT PRIMARY KEY REFERENCES tenants (id),
    settings              TEXT NOT NULL,
    sealed_bind_password  TEXT NOT NULL,
    updated_at            BIGINT NOT NULL
);
