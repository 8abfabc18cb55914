-- Issue 8, server-side backup management (X.1642 8.10, 7.2.2.2(7)): backup policies per tenant
-- or per service (the policy document as JSON, updates name the version they read), the reports
-- of backup runs, copies, verifications and restore tests (evidence), and the compliance findings
-- the compliance job opens and resolves (one open finding per policy and kind).
CREATE TABLE backup_policies (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE backup_reports (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    policy      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    site        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX backup_reports_by_policy ON backup_reports (tenant_id, policy, at);

CREATE TABLE backup_findings (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    policy       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    detail       TEXT NOT NULL,
    opened_at    INTEGER NOT NULL,
    resolved_at  INTEGER
);
CREATE UNIQUE INDEX backup_findings_open ON backup_findings (tenant_id, policy, kind)
    WHERE resolved_at IS NULL;
