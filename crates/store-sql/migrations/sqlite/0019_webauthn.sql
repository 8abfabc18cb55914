-- Issue 4 §3, X.1642 7.2.2.4(4) and 8.1.2(1): WebAuthn passkeys and security keys as a second
-- factor. A credential is the public key (COSE, base64url) an authenticator made for one user;
-- its signature counter only grows (a counter that goes back reveals a cloned authenticator).
-- Challenges are single use, expire after a few minutes, and are stored by their hash.
CREATE TABLE webauthn_credentials (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    name          TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    alg           BIGINT NOT NULL,
    sign_count    BIGINT NOT NULL,
    aaguid        TEXT NOT NULL,
    attestation   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    UNIQUE (tenant_id, user_id, name)
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (tenant_id, user_id);

CREATE TABLE webauthn_challenges (
    id_hash     TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    purpose     TEXT NOT NULL,
    challenge   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);

-- Issue 4 §1: in tenants whose policy requires approval for privilege changes, adding a member
-- to a group is an approval request (kind `group-member`) naming the group.
-- SQLite cannot change a CHECK constraint: the table is rebuilt with the new kind.
CREATE TABLE approval_requests_v3 (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    kind               TEXT NOT NULL
        CHECK (kind IN ('user-create', 'role-change', 'elevation', 'group-member')),
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
    comment            TEXT,
    duration_secs      BIGINT,
    group_name         TEXT
);
INSERT INTO approval_requests_v3 (id, tenant_id, kind, username, role, password_hash, reason,
    requested_by, requested_by_name, requested_at, status, decided_by_name, decided_at, comment,
    duration_secs)
    SELECT id, tenant_id, kind, username, role, password_hash, reason, requested_by,
    requested_by_name, requested_at, status, decided_by_name, decided_at, comment, duration_secs
    FROM approval_requests;
DROP TABLE approval_requests;
ALTER TABLE approval_requests_v3 RENAME TO approval_requests;
CREATE INDEX approval_requests_by_tenant ON approval_requests (tenant_id, requested_at);
