//! Approval requests (X.1642 8.1.1(2)): registrations and privilege changes that a different
//! administrator approves or rejects, with the full history kept.

use parapet_types::{Role, TenantCtx, TenantId, Timestamp, UserId};

use crate::{AuditEvent, StoreResult, User};

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalKind {
    /// Register a new user with a role.
    UserCreate,
    /// Give an existing user another role.
    RoleChange,
    /// Lend a user a (privileged) role for a limited time: just-in-time access.
    Elevation,
    /// Add a user to a group (whose roles it then holds).
    GroupMember,
}

impl ApprovalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalKind::UserCreate => "user-create",
            ApprovalKind::RoleChange => "role-change",
            ApprovalKind::Elevation => "elevation",
            ApprovalKind::GroupMember => "group-member",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user-create" => Some(ApprovalKind::UserCreate),
            "role-change" => Some(ApprovalKind::RoleChange),
            "elevation" => Some(ApprovalKind::Elevation),
            "group-member" => Some(ApprovalKind::GroupMember),
            _ => None,
        }
    }
}

/// An approval request and, once decided, its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub id: String,
    pub tenant: TenantId,
    pub kind: ApprovalKind,
    pub username: String,
    pub role: Role,
    /// For registrations: the new user's password hash (never shown to clients).
    pub password_hash: Option<String>,
    pub reason: String,
    pub requested_by: UserId,
    pub requested_by_name: String,
    pub requested_at: Timestamp,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub decided_by_name: Option<String>,
    pub decided_at: Option<Timestamp>,
    pub comment: Option<String>,
    /// For elevations: how long the role is lent once approved, in seconds.
    pub duration_secs: Option<i64>,
    /// For group memberships: the group (`role` is then the most privileged of its roles).
    pub group: Option<String>,
}

/// What an approval applies, in the same transaction as the decision.
#[derive(Debug, Clone)]
pub enum ApprovalEffect {
    CreateUser(User),
    /// A new role, with what it does to the user's sub-accounts.
    SetRole(UserId, Role, Vec<crate::SubAccountChange>),
    /// Starts a just-in-time grant.
    Elevate(crate::access::AccessGrant),
    /// Adds the user to the group (by name).
    AddGroupMember(String, UserId),
}

#[async_trait::async_trait]
pub trait ApprovalStore: Send + Sync {
    async fn create_approval(
        &self,
        ctx: TenantCtx,
        req: &ApprovalRequest,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// The requests of `ctx`, newest first (at most 1000).
    async fn list_approvals(&self, ctx: TenantCtx) -> StoreResult<Vec<ApprovalRequest>>;

    async fn get_approval(&self, ctx: TenantCtx, id: &str) -> StoreResult<ApprovalRequest>;

    /// Decides a pending request (`Conflict` when it is decided already) and applies `effect`,
    /// all in one transaction with the event.
    #[allow(clippy::too_many_arguments)]
    async fn decide_approval(
        &self,
        ctx: TenantCtx,
        id: &str,
        approved: bool,
        decided_by_name: &str,
        at: Timestamp,
        comment: Option<&str>,
        effect: Option<&ApprovalEffect>,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Changes a user's role (revoking its sessions and tokens, which carry the old privileges),
    /// and applies `subs` to its sub-accounts, in one transaction.
    async fn set_user_role(
        &self,
        ctx: TenantCtx,
        user: UserId,
        role: Role,
        audit: &AuditEvent,
        subs: &[crate::SubAccountChange],
    ) -> StoreResult<()>;
}
