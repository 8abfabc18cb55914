-- Live Sigma correlation state (X.1642 8.3): the windows of one rule owner's correlation rules
-- (a tenant's, or the provider's, which see every tenant's events), saved so that a restart in
-- the middle of a window still fires. `version` only grows: an older snapshot never replaces a
-- newer one.
CREATE TABLE correlation_state (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id),
    version     BIGINT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
