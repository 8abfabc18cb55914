-- Issue 4, groups per tenant (X.1642 8.1.2(2)): a group holds roles (comma-separated role
-- names), its members hold them besides their own.
CREATE TABLE user_groups (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    roles       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE user_group_members (
    group_id   TEXT NOT NULL REFERENCES user_groups (id),
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX user_group_members_by_user ON user_group_members (tenant_id, user_id);
