-- Issue 4 §7, just-in-time privileged access (X.1642 7.2.2.4(3)): an approval request of kind
-- `elevation` carries the duration asked for; once approved, a grant lends the role to the user
-- from its start until it expires (or is revoked). Grants are kept (history).
-- SQLite cannot change a CHECK constraint: the approvals table is rebuilt with the new kind.
CREATE TABLE approval_requests_v2 (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    kind               TEXT NOT NULL CHECK (kind IN ('user-create', 'role-change', 'elevation')),
    username           TEXT NOT NULL,
    role               TEXT NOT NULL,
    password_hash      TEXT,
    reason             TEXT NOT NULL,
    requested_by       TEXT NOT NULL,
    requested_by_name  TEXT NOT NULL,
    requested_at       BIGINT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by_name    TEXT,
    decided_at         BIGINT,
    comment            TEXT,
    duration_secs      BIGINT
);
INSERT INTO approval_requests_v2 (id, tenant_id, kind, username, role, password_hash, reason,
    requested_by, requested_by_name, requested_at, status, decided_by_name, decided_at, comment)
    SELECT id, tenant_id, kind, username, role, password_hash, reason, requested_by,
    requested_by_name, requested_at, status, decided_by_name, decided_at, comment
    FROM approval_requests;
DROP TABLE approval_requests;
ALTER TABLE approval_requests_v2 RENAME TO approval_requests;
CREATE INDEX approval_requests_by_tenant ON approval_requests (tenant_id, requested_at);

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
