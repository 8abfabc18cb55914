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
    /// Read a tenant's incidents, their reports and statistics (X.1642 8.6).
    IncidentRead,
    /// Open (report) an incident of a tenant.
    IncidentOpen,
    /// Handle an incident: move its steps, name responsible persons, tasks, SLA clock.
    IncidentHandle,
    /// Add notes to an incident, inform its tenant.
    IncidentNote,
    /// Read the emergency response plans (X.1642 8.9).
    PlanRead,
    /// Write, revise and review plans, record drills.
    PlanManage,
}

impl Action {
    /// Whether the action changes state (API tokens need the `write` scope for it).
    pub fn writes(self) -> bool {
        !matches!(
            self,
            Action::TenantRead
                | Action::UserList
                | Action::AuditRead
                | Action::IncidentRead
                | Action::PlanRead
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
        (Role::KeyCustodian | Role::IncidentResponder | Role::ChangeApprover, TenantRead) => true,
        (Role::IncidentResponder, IncidentRead | IncidentOpen | IncidentHandle | IncidentNote) => {
            true
        }
        (Role::Operator, IncidentRead | IncidentOpen | IncidentNote) => true,
        (Role::Auditor, IncidentRead) => true,
        (Role::IncidentResponder, PlanRead | PlanManage) => target.kind == TenantKind::Provider,
        (Role::Operator | Role::Auditor, PlanRead) => target.kind == TenantKind::Provider,
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
        (Role::TenantAdmin, IncidentRead | IncidentOpen | IncidentNote) => true,
        (Role::TenantMember, IncidentRead | IncidentNote) => true,
        (Role::TenantAuditor, IncidentRead) => true,
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
        Action::IncidentRead => "read incidents".into(),
        Action::IncidentOpen => "open incidents".into(),
        Action::IncidentHandle => "handle incidents".into(),
        Action::IncidentNote => "add notes to incidents".into(),
        Action::PlanRead => "read emergency response plans".into(),
        Action::PlanManage => "manage emergency response plans".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_store::{CredentialKind, Tenant, TenantStatus, User, UserStatus};
    use parapet_types::{CredentialId, TenantId, Timestamp, UserId};

    fn tenant(kind: TenantKind, n: u128) -> Tenant {
        Tenant {
            id: TenantId(uuid::Uuid::from_u128(n)),
            name: format!("t{n}"),
            kind,
            status: TenantStatus::Active,
            created_at: Timestamp(0),
        }
    }

    fn principal(t: &Tenant, role: Role, kind: CredentialKind, scopes: &[&str]) -> Principal {
        Principal {
            tenant: t.clone(),
            user: User {
                id: UserId(uuid::Uuid::from_u128(99)),
                tenant: t.id,
                username: "u".into(),
                role,
                status: UserStatus::Active,
                password_hash: String::new(),
                created_at: Timestamp(0),
                last_login_at: None,
            },
            credential: CredentialId(uuid::Uuid::from_u128(7)),
            kind,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn actions() -> Vec<Action> {
        let mut v = vec![
            Action::TenantRead,
            Action::TenantCreate,
            Action::TenantSetStatus,
            Action::UserList,
            Action::UserDisable,
            Action::AuditRead,
            Action::TokenCreate,
            Action::IncidentRead,
            Action::IncidentOpen,
            Action::IncidentHandle,
            Action::IncidentNote,
            Action::PlanRead,
            Action::PlanManage,
        ];
        v.extend(Role::ALL.into_iter().map(Action::UserCreate));
        v
    }

    /// Exhaustive over every role, action, credential kind and target: the invariants of the
    /// access model hold in every combination.
    #[test]
    fn access_model_invariants_hold_everywhere() {
        let provider = tenant(TenantKind::Provider, 1);
        let acme = tenant(TenantKind::Customer, 2);
        let globex = tenant(TenantKind::Customer, 3);
        let mut allowed = 0;
        for home in [&provider, &acme] {
            for role in Role::ALL.into_iter().filter(|r| r.fits(home.kind)) {
                for (kind, scopes) in [
                    (CredentialKind::Session, &[][..]),
                    (CredentialKind::ApiToken, &["read"][..]),
                    (CredentialKind::ApiToken, &["read", "write"][..]),
                    (CredentialKind::ApiToken, &[][..]),
                ] {
                    let p = principal(home, role, kind, scopes);
                    for target in [&provider, &acme, &globex] {
                        for a in actions() {
                            let ok = authorize(&p, a, target).is_ok();
                            allowed += usize::from(ok);
                            // A customer never acts on another tenant.
                            if home.kind == TenantKind::Customer && target.id != home.id {
                                assert!(!ok, "{role} {a:?} on foreign tenant");
                            }
                            // A read-only token never changes anything.
                            if kind == CredentialKind::ApiToken && !scopes.contains(&"write") {
                                assert!(!ok || !a.writes(), "{role} {a:?} with {scopes:?}");
                            }
                            // No token without scopes does anything.
                            if kind == CredentialKind::ApiToken && scopes.is_empty() {
                                assert!(!ok);
                            }
                            // Nobody grants a role that does not fit the target tenant, and a
                            // customer never grants a provider role.
                            if let Action::UserCreate(r) = a {
                                assert!(!ok || r.fits(target.kind), "{role} grants {r}");
                            }
                            // Tenants are created and suspended only by provider security admins,
                            // and the provider is never suspended.
                            if matches!(a, Action::TenantCreate | Action::TenantSetStatus) && ok {
                                assert_eq!(
                                    (home.kind, role),
                                    (TenantKind::Provider, Role::SecurityAdmin)
                                );
                                assert!(
                                    a != Action::TenantSetStatus
                                        || target.kind == TenantKind::Customer
                                );
                            }
                            // Everyone may read its own tenant and make tokens for itself, given
                            // the scopes.
                            if target.id == home.id
                                && kind == CredentialKind::Session
                                && (a == Action::TenantRead || a == Action::TokenCreate)
                            {
                                assert!(ok, "{role} {a:?}");
                            }
                        }
                    }
                }
            }
        }
        assert!(allowed > 0);
    }
}
