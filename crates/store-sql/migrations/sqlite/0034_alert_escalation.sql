-- Alert escalation (X.1642 8.6.1): per tenant a policy (levels of channels, each after a delay,
-- repeated), and per alert the next step and when it is due. An acknowledged or closed alert
-- is no longer a candidate, so acknowledging stops its escalation.
CREATE TABLE alert_escalation_policies (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id),
    policy      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE alert_escalations (
    alert_id    TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    step        BIGINT NOT NULL,
    next_at     BIGINT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX alert_escalations_due ON alert_escalations (tenant_id, next_at);
