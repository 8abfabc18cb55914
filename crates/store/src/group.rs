//! Groups of users per tenant (X.1642 8.1.2(2)): a group holds roles, and its members hold them
//! besides their own (effective roles = own role ∪ the roles of their groups).

use parapet_types::{Role, TenantCtx, TenantId, Timestamp, UserId};

use crate::{AuditEvent, StoreResult};

/// A group with its roles and members (user names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Made by the service (UUID v7 text).
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub roles: Vec<Role>,
    pub members: Vec<String>,
    pub created_at: Timestamp,
}

#[async_trait::async_trait]
pub trait GroupStore: Send + Sync {
    /// Creates a group (`Conflict` when the name is taken), with its audit record.
    async fn create_group(&self, ctx: TenantCtx, g: &Group, audit: &AuditEvent) -> StoreResult<()>;
    /// The tenant's groups by name, with their members.
    async fn list_groups(&self, ctx: TenantCtx) -> StoreResult<Vec<Group>>;
    /// Removes a group and its memberships (`NotFound`), with its audit record.
    async fn delete_group(&self, ctx: TenantCtx, name: &str, audit: &AuditEvent)
    -> StoreResult<()>;
    /// Adds `user` to the group (`NotFound` for no such group or user, `Conflict` when a member
    /// already), with its audit record.
    async fn add_group_member(
        &self,
        ctx: TenantCtx,
        name: &str,
        user: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Removes `user` from the group (`NotFound` when not a member), with its audit record.
    async fn remove_group_member(
        &self,
        ctx: TenantCtx,
        name: &str,
        user: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// The roles `user` holds through its groups.
    async fn group_roles_of(&self, ctx: TenantCtx, user: UserId) -> StoreResult<Vec<Role>>;
}
