-- Issue 4, sub-accounts (X.1642 8.1.1(4)): an account created by a main account of the same
-- tenant, bounded by its privileges and disabled with it.
CREATE TABLE sub_accounts (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    parent_id  TEXT NOT NULL REFERENCES users (id)
);
CREATE INDEX sub_accounts_by_parent ON sub_accounts (tenant_id, parent_id);
