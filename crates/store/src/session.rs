//! Sessions (X.1642 8.1.2(1) single sign-on parameters): when and from where a credential was
//! last used, for the maximum idle time and for listing sessions to users and administrators.

use parapet_types::{CredentialId, TenantCtx, Timestamp, UserId};

use crate::{AuditEvent, Credential, CredentialKind, StoreResult};

/// A live credential with its user and its activity.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub credential: Credential,
    pub username: String,
    /// Last use (to the minute); the creation time if never used since.
    pub last_used_at: Timestamp,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Records that credential `id` of `ctx` was used at `at` (from `source_ip` / `user_agent`
    /// when known, which are kept otherwise).
    async fn touch_credential(
        &self,
        ctx: TenantCtx,
        id: CredentialId,
        at: Timestamp,
        source_ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> StoreResult<()>;

    /// The live credentials of `kind` in `ctx`, of one user or of all, newest first.
    async fn list_sessions(
        &self,
        ctx: TenantCtx,
        user: Option<UserId>,
        kind: Option<CredentialKind>,
        now: Timestamp,
    ) -> StoreResult<Vec<SessionInfo>>;

    /// Revokes every live credential of `kind` (all kinds with `None`) of `user`; returns how
    /// many. The event is written in the same transaction.
    async fn revoke_user_credentials(
        &self,
        ctx: TenantCtx,
        user: UserId,
        kind: Option<CredentialKind>,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<u64>;
}
