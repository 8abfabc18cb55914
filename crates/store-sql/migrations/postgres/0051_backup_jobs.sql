-- Issue 8, the server carries out the backup strategy (X.1642 8.10(1), 8.10(2)): a backup job is
-- a policy's sources and repositories assigned to an agent (a host running 'parapet backup
-- agent'); the server decides when each job is due, an agent claims a due job with a lease so
-- that two agents never run it at once, and reports how each step went (the state, as JSON).
CREATE TABLE backup_jobs (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    agent        TEXT NOT NULL,
    policy       TEXT NOT NULL,
    version      BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    body         TEXT NOT NULL,
    state        TEXT NOT NULL,
    lease_id     TEXT,
    lease_agent  TEXT,
    lease_until  BIGINT,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX backup_jobs_by_agent ON backup_jobs (tenant_id, agent);
