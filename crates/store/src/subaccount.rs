//! Sub-accounts (X.1642 8.1.1(4)): accounts created by a main account, whose privileges never
//! exceed their main account's, and which are disabled with it.

use parapet_types::{Role, TenantCtx, UserId};

use crate::{AuditEvent, StoreResult, User};

/// What happens to a sub-account when its main account loses privileges: a lower role, or
/// (`None`) disabled when no role fits under both. Written in the main account's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct SubAccountChange {
    pub user: UserId,
    pub role: Option<Role>,
    pub audit: AuditEvent,
}

#[async_trait::async_trait]
pub trait SubAccountStore: Send + Sync {
    /// Creates `user` as a sub-account of `parent` (`Conflict` when the name is taken), with its
    /// audit record, in one transaction.
    async fn create_sub_account(
        &self,
        ctx: TenantCtx,
        user: &User,
        parent: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// The main account of `user`, if it is a sub-account.
    async fn parent_of(&self, ctx: TenantCtx, user: UserId) -> StoreResult<Option<User>>;
    /// The sub-accounts of `parent`.
    async fn sub_accounts_of(&self, ctx: TenantCtx, parent: UserId) -> StoreResult<Vec<User>>;
}
