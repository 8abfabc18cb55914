-- Issue 7: incidents opened from monitoring alerts (X.1642 8.6.1) and SLA policies per tenant
-- (7.2.2.3).
-- An alert belongs to at most one incident (merged alerts link to the incident they joined).
CREATE TABLE incident_alerts (
    alert_id     TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    incident_id  TEXT NOT NULL REFERENCES incidents (id),
    linked_at    BIGINT NOT NULL
);
CREATE INDEX incident_alerts_by_incident ON incident_alerts (incident_id);
-- The SLA policy of a tenant; the provider tenant's row is the default of every tenant.
CREATE TABLE sla_policies (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id),
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    body        TEXT NOT NULL
);
-- A tenant's incidents newest first (the tenant's board and listings) without scanning the
-- other tenants' (bench/incident.sh board).
CREATE INDEX incidents_by_tenant_id ON incidents (tenant_id, id);
-- Playbooks (X.1642 8.6.3): the provider's disposal procedures chosen by incident category/type,
-- each a JSON document that the incident crate defines.
CREATE TABLE playbooks (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
