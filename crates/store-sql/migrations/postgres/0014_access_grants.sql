-- Issue 4 §7, just-in-time privileged access (X.1642 7.2.2.4(3)): an approval request of kind
-- `elevation` carries the duration asked for; once approved, a grant lends the role to the user
-- from its start until it expires (or is revoked). Grants are kept (history).
ALTER TABLE approval_requests DROP CONSTRAINT approval_requests_kind_check;
ALTER TABLE approval_requests ADD CONSTRAINT approval_requests_kind_check
    CHECK (kind IN ('user-create', 'role-change', 'elevation'));
ALTER TABLE approval_requests ADD COLUMN duration_secs BIGINT;

CREATE TABLE access_grants (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    user_id          TEXT NOT NULL REFERENCES users (id),
    username         TEXT NOT NULL,
    role             TEXT NOT NULL,
    reason           TEXT NOT NULL,
    approval_id      TEXT NOT NULL UNIQUE,
    granted_by_name  TEXT NOT NULL,
    starts_at        BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    revoked_at       BIGINT,
    revoked_by_name  TEXT
);
CREATE INDEX access_grants_user ON access_grants (tenant_id, user_id, expires_at);
