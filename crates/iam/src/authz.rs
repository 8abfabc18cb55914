//! Authorization, decided here and nowhere else. Default deny: an action is allowed only when a
//! rule below allows it.

use parapet_store::Tenant;
use parapet_types::{Role, TenantKind};

use crate::Principal;

/// What a principal asks to do, and to which tenant's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read a tenant's record (and list the tenants one may see).
    TenantRead,
    /// Create a customer tenant.
    TenantCreate,
    /// Suspend or reactivate a customer tenant.
    TenantSetStatus,
    UserList,
    /// Create a user holding `role` in the target tenant.
    UserCreate(Role),
    UserDisable,
    AuditRead,
    /// Create an API token for oneself.
    TokenCreate,
}

impl Action {
    /// Whether the action changes state (API tokens need the `write` scope for it).
    pub fn writes(self) -> bool {
        !matches!(
            self,
            Action::TenantRead | Action::UserList | Action::AuditRead
        )
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

/// Decides whether `p` may perform `action` on data of tenant `target`.
pub fn authorize(p: &Principal, action: Action, target: &Tenant) -> Result<(), Denied> {
    if action.writes() && !p.has_scope("write") {
        return Err(Denied("this token lacks the 'write' scope".into()));
    }
    if !action.writes() && !p.has_scope("read") && !p.has_scope("write") {
        return Err(Denied("this token lacks the 'read' scope".into()));
    }
    let own = p.tenant.id == target.id;
    let role = p.user.role;
    let allowed = if p.tenant.kind == TenantKind::Provider {
        provider_rule(role, action, target)
    } else {
        own && customer_rule(role, action)
    };
    if allowed {
        Ok(())
    } else {
        Err(Denied(format!(
            "role {role} may not {} in tenant {}",
            describe(action),
            target.name
        )))
    }
}

fn provider_rule(role: Role, action: Action, target: &Tenant) -> bool {
    use Action::*;
    match (role, action) {
        (_, TokenCreate) => true,
        (Role::SecurityAdmin, UserCreate(r)) => r.fits(target.kind),
        (Role::SecurityAdmin, TenantSetStatus) => target.kind == TenantKind::Customer,
        (Role::SecurityAdmin, _) => true,
        (Role::Operator, TenantRead | UserList) => true,
        (Role::Auditor, TenantRead | UserList | AuditRead) => true,
        (
            Role::KeyCustodian | Role::IncidentResponder | Role::ChangeApprover,
            TenantRead,
        ) => true,
        _ => false,
    }
}

fn customer_rule(role: Role, action: Action) -> bool {
    use Action::*;
    match (role, action) {
        (_, TokenCreate | TenantRead) => true,
        (Role::TenantAdmin, UserList | UserDisable | AuditRead) => true,
        (Role::TenantAdmin, UserCreate(r)) => !r.is_provider_role(),
        (Role::TenantAuditor, UserList | AuditRead) => true,
        _ => false,
    }
}

fn describe(a: Action) -> String {
    match a {
        Action::TenantRead => "read tenants".into(),
        Action::TenantCreate => "create tenants".into(),
        Action::TenantSetStatus => "suspend or reactivate tenants".into(),
        Action::UserList => "list users".into(),
        Action::UserCreate(r) => format!("create users with role {r}"),
        Action::UserDisable => "disable users".into(),
        Action::AuditRead => "read the audit trail".into(),
        Action::TokenCreate => "create API tokens".into(),
    }
}
