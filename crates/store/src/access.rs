//! Just-in-time privileged access (X.1642 7.2.2.4(3)): a role lent to a user for a limited time
//! after another administrator approved the request (an approval request of kind `elevation`).

use parapet_types::{Role, TenantCtx, TenantId, Timestamp, UserId};

use crate::{AuditEvent, StoreResult};

/// A role lent to a user from `starts_at` until `expires_at` (or its revocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    pub id: String,
    pub tenant: TenantId,
    pub user: UserId,
    pub username: String,
    pub role: Role,
    pub reason: String,
    /// The approval request that granted it.
    pub approval_id: String,
    pub granted_by_name: String,
    pub starts_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub revoked_by_name: Option<String>,
}

#[async_trait::async_trait]
pub trait AccessStore: Send + Sync {
    /// The user's grant in force at `now` (the latest to expire), if any.
    async fn active_grant(
        &self,
        ctx: TenantCtx,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<Option<AccessGrant>>;
    /// The tenant's grants, newest first (at most 1000).
    async fn list_grants(&self, ctx: TenantCtx) -> StoreResult<Vec<AccessGrant>>;
    async fn get_grant(&self, ctx: TenantCtx, id: &str) -> StoreResult<AccessGrant>;
    /// Ends a grant early (`Conflict` when it was revoked already).
    async fn revoke_grant(
        &self,
        ctx: TenantCtx,
        id: &str,
        at: Timestamp,
        by_name: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
}
