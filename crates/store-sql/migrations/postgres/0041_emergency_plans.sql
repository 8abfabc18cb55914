-- Issue 7, emergency response plans (X.1642 8.9): one row per plan of a tenant (the provider),
-- the whole plan (every revision, drills, reviews) as a JSON document; review_due_at for the
-- review reminders. Updates name the version they read.
CREATE TABLE emergency_plans (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    name           TEXT NOT NULL,
    version        BIGINT NOT NULL,
    review_due_at  BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    body           TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
