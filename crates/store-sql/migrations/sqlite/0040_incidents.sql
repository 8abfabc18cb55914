-- Issue 7, security event processing (X.1642 8.6): one row per incident with the columns that
-- lists, boards, statistics and SLA timers read, and the whole incident (history, tasks, notes,
-- observables, SLA state) as a JSON document. Updates name the version they read.
CREATE TABLE incidents (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    title            TEXT NOT NULL,
    severity         TEXT NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    category         TEXT NOT NULL,
    step             TEXT NOT NULL CHECK (step IN ('detecting', 'analysing', 'disposing',
                                                   'checking', 'reporting', 'recorded')),
    responsible      TEXT NOT NULL,
    opened_at        INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    acknowledged_at  INTEGER,
    resolved_at      INTEGER,
    closed_at        INTEGER,
    next_due_at      INTEGER,
    breaches         INTEGER NOT NULL DEFAULT 0,
    version          INTEGER NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX incidents_by_tenant ON incidents (tenant_id, opened_at);
CREATE INDEX incidents_by_tenant_step ON incidents (tenant_id, step);
-- The timer scheduler's queue: only incidents with something pending.
CREATE INDEX incidents_due ON incidents (next_due_at) WHERE next_due_at IS NOT NULL;
