-- Issue 4, approval requests (X.1642 8.1.1(2)): registrations and role changes decided by
-- another administrator; rows are never deleted (the history).
CREATE TABLE approval_requests (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    kind               TEXT NOT NULL CHECK (kind IN ('user-create', 'role-change')),
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
    comment            TEXT
);
CREATE INDEX approval_requests_by_tenant ON approval_requests (tenant_id, requested_at);
