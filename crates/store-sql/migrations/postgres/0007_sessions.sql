-- Issue 4, SSO sessions: when and from where each credential was last used, so that sessions end
-- after a maximum idle time and users and administrators see their sessions. Kept beside
-- `credentials` (one row per credential, written at log-in and at most once a minute after).
CREATE TABLE credential_activity (
    credential_id TEXT PRIMARY KEY REFERENCES credentials (id),
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    last_used_at  BIGINT NOT NULL,
    source_ip     TEXT,
    user_agent    TEXT
);
