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
    /// Read a tenant's asset inventory.
    AssetRead,
    /// Register, change, import, delete assets and set their health.
    AssetWrite,
    /// Search every tenant's inventory for the software an asset runs (X.1642 8.3): provider
    /// staff only, on the provider tenant.
    AssetCorrelate,
    /// Read a tenant's account policy.
    PolicyRead,
    /// Change a tenant's account policy.
    PolicyWrite,
    /// Unlock an account locked by failed log-ins.
    AccountUnlock,
    /// Run the dormant-account sweep over every tenant (provider only).
    DormancySweep,
    /// Initialize, unseal or seal the key service (key custodians, X.1642 8.2(2)).
    KmsSeal,
    /// Read key metadata in one's own tenant (key auditors).
    KmsKeyRead,
    /// Create, rotate, disable, delete keys and set their policies (key administrators).
    KmsKeyManage,
    /// Encrypt, decrypt, sign, MAC with keys (key users).
    KmsKeyUse,
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
    /// Set a tenant's SLA policy (targets, service hours, escalation; provider staff only).
    SlaPolicyManage,
    /// List a tenant's OpenID Connect clients and signing keys (never their secrets).
    OidcClientRead,
    /// Register, change and remove OpenID Connect clients, rotate the issuer's signing key.
    OidcClientManage,
    /// Read a tenant's notification channels, outbox and dead letters (X.1642 8.6.1).
    NotifyRead,
    /// Add, test and remove channels; retry or discard dead letters.
    NotifyManage,
    /// Send security events of a tenant (API tokens need the `ingest` or `write` scope).
    EventIngest,
    /// Search a tenant's security events.
    EventRead,
    /// Set a tenant's event retention.
    EventRetention,
    /// Read a tenant's detection rules.
    RuleRead,
    /// Upload, enable and disable a tenant's detection rules (the provider's apply to all).
    RuleManage,
    /// Read a tenant's alerts.
    AlertRead,
    /// Acknowledge, close and suppress a tenant's alerts.
    AlertHandle,
    /// Read a tenant's backup policies, run reports and compliance (X.1642 8.10).
    BackupRead,
    /// Set and remove a tenant's backup policies (provider staff).
    BackupPolicyWrite,
    /// Report backup runs, copies, verifications and restore tests of a tenant, and run its backup
    /// jobs as an agent (poll, claim, finish; API tokens need the `backup` or `write` scope).
    BackupReport,
    /// Read a tenant's LDAP directory settings (never the bind password).
    DirectoryRead,
    /// Set, test and remove a tenant's LDAP directory.
    DirectoryManage,
    /// Create and remove a tenant's groups and change their members (each role of the group must
    /// also be grantable: `UserCreate(role)`).
    GroupManage,
}

impl Action {
    /// Whether the action changes state (API tokens need the `write` scope for it).
    pub fn writes(self) -> bool {
        !matches!(
            self,
            Action::TenantRead
                | Action::UserList
                | Action::AuditRead
                | Action::PolicyRead
                | Action::AssetRead
                | Action::AssetCorrelate
                | Action::KmsKeyRead
                | Action::IncidentRead
                | Action::PlanRead
                | Action::OidcClientRead
                | Action::NotifyRead
                | Action::EventRead
                | Action::RuleRead
                | Action::AlertRead
                | Action::BackupRead
                | Action::DirectoryRead
        )
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

/// Decides whether `p` may perform `action` on data of tenant `target`.
pub fn authorize(p: &Principal, action: Action, target: &Tenant) -> Result<(), Denied> {
    // Step-up: a session opened without the second factor its tenant requires may only enrol one
    // (the self-service factor endpoints do not ask for authorization).
    if p.kind == parapet_store::CredentialKind::Session
        && p.scopes.iter().any(|s| s == crate::mfa::ENROL_ONLY_SCOPE)
    {
        return Err(Denied(
            "this account must log in with a second factor: enrol one ('parapet mfa enrol') and \
             log in again"
                .into(),
        ));
    }
    if action == Action::EventIngest {
        // An ingest token (scope `ingest`) may send events and do nothing else.
        if !p.has_scope("ingest") && !p.has_scope("write") {
            return Err(Denied("this token lacks the 'ingest' scope".into()));
        }
    } else if action == Action::BackupReport {
        // A backup token (scope `backup`) may report backup runs and do nothing else.
        if !p.has_scope("backup") && !p.has_scope("write") {
            return Err(Denied("this token lacks the 'backup' scope".into()));
        }
    } else if action.writes() && !p.has_scope("write") {
        return Err(Denied("this token lacks the 'write' scope".into()));
    }
    if !action.writes() && !p.has_scope("read") && !p.has_scope("write") {
        return Err(Denied("this token lacks the 'read' scope".into()));
    }
    let own = p.tenant.id == target.id;
    let role = p.user.role;
    let kms = matches!(
        action,
        Action::KmsKeyRead | Action::KmsKeyManage | Action::KmsKeyUse | Action::KmsSeal
    );
    let allowed_for = |role: Role| {
        if kms {
            // Keys belong to one tenant and are invisible to every other, the provider
            // included; the key service itself (seal state) is the provider's.
            own && kms_rule(role, action)
        } else if p.tenant.kind == TenantKind::Provider {
            provider_rule(role, action, target)
        } else {
            own && customer_rule(role, action)
        }
    };
    // Effective roles: the user's own and those of its groups (only roles that fit its tenant).
    let allowed = allowed_for(role)
        || p.group_roles
            .iter()
            .any(|r| r.fits(p.tenant.kind) && allowed_for(*r));
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
        (_, AssetCorrelate) => {
            target.kind == TenantKind::Provider
                && matches!(
                    role,
                    Role::SecurityAdmin | Role::Operator | Role::IncidentResponder
                )
        }
        (Role::SecurityAdmin, DormancySweep) => target.kind == TenantKind::Provider,
        (Role::SecurityAdmin, _) => true,
        (Role::Operator, TenantRead | UserList | PolicyRead | AssetRead | AssetWrite) => true,
        (
            Role::Auditor,
            TenantRead | UserList | AuditRead | PolicyRead | AssetRead | OidcClientRead,
        ) => true,
        (Role::IncidentResponder | Role::ChangeApprover, TenantRead | AssetRead) => true,
        (Role::KeyCustodian, TenantRead) => true,
        (Role::IncidentResponder, IncidentRead | IncidentOpen | IncidentHandle | IncidentNote) => {
            true
        }
        (Role::Operator, IncidentRead | IncidentOpen | IncidentNote) => true,
        (Role::Auditor, IncidentRead) => true,
        (Role::IncidentResponder, PlanRead | PlanManage) => target.kind == TenantKind::Provider,
        (Role::Operator | Role::Auditor, PlanRead) => target.kind == TenantKind::Provider,
        (Role::Operator | Role::IncidentResponder, NotifyRead | NotifyManage) => true,
        (Role::Auditor, NotifyRead) => true,
        (Role::Operator, EventIngest | EventRead) => true,
        (Role::Auditor | Role::IncidentResponder, EventRead) => true,
        (Role::Operator | Role::IncidentResponder, RuleRead | AlertRead | AlertHandle) => true,
        (Role::Auditor, RuleRead | AlertRead) => true,
        (Role::Operator, BackupRead | BackupPolicyWrite | BackupReport) => true,
        (Role::Auditor, BackupRead) => true,
        (Role::Auditor, DirectoryRead) => true,
        _ => false,
    }
}

/// Key management (X.1642 8.2(1)): custodians, administrators, users and auditors of keys are
/// separate roles. A key custodian holds a share of the root and nothing else; operators and
/// members use keys without managing them; auditors only read. Administrators may do both by
/// role, and a key's policy separates them further (`authorize_key`).
fn kms_rule(role: Role, action: Action) -> bool {
    use Action::*;
    matches!(
        (role, action),
        (Role::KeyCustodian, KmsSeal)
            | (
                Role::SecurityAdmin | Role::TenantAdmin,
                KmsKeyRead | KmsKeyManage | KmsKeyUse
            )
            | (Role::Operator | Role::TenantMember, KmsKeyRead | KmsKeyUse)
            | (Role::Auditor | Role::TenantAuditor, KmsKeyRead)
    )
}

/// What one asks to do with one key, decided against its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOp {
    Read,
    Manage,
    Use,
}

/// Decides whether `p` may perform `op` on a key of tenant `target` with `policy`: the role must
/// allow it ([`authorize`]) and, when the policy names people for that part, `p` must be named.
pub fn authorize_key(
    p: &Principal,
    op: KeyOp,
    target: &Tenant,
    policy: &parapet_store::KeyPolicy,
) -> Result<(), Denied> {
    let action = match op {
        KeyOp::Read => Action::KmsKeyRead,
        KeyOp::Manage => Action::KmsKeyManage,
        KeyOp::Use => Action::KmsKeyUse,
    };
    authorize(p, action, target)?;
    let (list, what) = match op {
        KeyOp::Read => {
            // Whoever the policy names in any part may read the key's metadata.
            let named = policy
                .users
                .iter()
                .chain(&policy.admins)
                .chain(&policy.auditors)
                .any(|u| u == &p.user.username);
            if policy.auditors.is_empty() || named {
                return Ok(());
            }
            (&policy.auditors, "auditors")
        }
        KeyOp::Manage => (&policy.admins, "administrators"),
        KeyOp::Use => (&policy.users, "users"),
    };
    if list.is_empty() || list.iter().any(|u| u == &p.user.username) {
        Ok(())
    } else {
        Err(Denied(format!(
            "{} is not among this key's {what}",
            p.user.username
        )))
    }
}

fn customer_rule(role: Role, action: Action) -> bool {
    use Action::*;
    match (role, action) {
        (_, TokenCreate | TenantRead) => true,
        (_, AssetCorrelate) => false,
        (
            Role::TenantAdmin,
            UserList | UserDisable | AuditRead | PolicyRead | PolicyWrite | AccountUnlock
            | AssetRead | AssetWrite,
        ) => true,
        (Role::TenantAdmin, UserCreate(r)) => !r.is_provider_role(),
        (Role::TenantAuditor, UserList | AuditRead | PolicyRead | AssetRead) => true,
        (Role::TenantAdmin, OidcClientRead | OidcClientManage) => true,
        (Role::TenantAuditor, OidcClientRead) => true,
        (Role::TenantMember, AssetRead) => true,
        (Role::TenantAdmin, IncidentRead | IncidentOpen | IncidentNote) => true,
        (Role::TenantMember, IncidentRead | IncidentNote) => true,
        (Role::TenantAuditor, IncidentRead) => true,
        (Role::TenantAdmin, NotifyRead | NotifyManage) => true,
        (Role::TenantAuditor, NotifyRead) => true,
        (Role::TenantAdmin, EventIngest | EventRead | EventRetention) => true,
        (Role::TenantAuditor | Role::TenantMember, EventRead) => true,
        (Role::TenantAdmin, RuleRead | RuleManage | AlertRead | AlertHandle) => true,
        (Role::TenantAuditor, RuleRead | AlertRead) => true,
        (Role::TenantMember, AlertRead) => true,
        (Role::TenantAdmin, BackupRead | BackupReport) => true,
        (Role::TenantAuditor | Role::TenantMember, BackupRead) => true,
        (Role::TenantAdmin, DirectoryRead | DirectoryManage | GroupManage) => true,
        (Role::TenantAuditor, DirectoryRead) => true,
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
        Action::AssetRead => "read the asset inventory".into(),
        Action::AssetWrite => "change the asset inventory".into(),
        Action::AssetCorrelate => "correlate assets across tenants".into(),
        Action::PolicyRead => "read account policies".into(),
        Action::PolicyWrite => "change account policies".into(),
        Action::AccountUnlock => "unlock accounts".into(),
        Action::DormancySweep => "run the dormant-account sweep".into(),
        Action::KmsSeal => "initialize, unseal or seal the key service".into(),
        Action::KmsKeyRead => "read keys".into(),
        Action::KmsKeyManage => "manage keys".into(),
        Action::KmsKeyUse => "use keys".into(),
        Action::IncidentRead => "read incidents".into(),
        Action::IncidentOpen => "open incidents".into(),
        Action::IncidentHandle => "handle incidents".into(),
        Action::IncidentNote => "add notes to incidents".into(),
        Action::PlanRead => "read emergency response plans".into(),
        Action::PlanManage => "manage emergency response plans".into(),
        Action::SlaPolicyManage => "set SLA policies".into(),
        Action::OidcClientRead => "read OpenID Connect clients".into(),
        Action::OidcClientManage => "manage OpenID Connect clients".into(),
        Action::NotifyRead => "read notification channels and messages".into(),
        Action::NotifyManage => "manage notification channels and messages".into(),
        Action::EventIngest => "send security events".into(),
        Action::EventRead => "search security events".into(),
        Action::EventRetention => "set the event retention".into(),
        Action::RuleRead => "read detection rules".into(),
        Action::RuleManage => "manage detection rules".into(),
        Action::AlertRead => "read alerts".into(),
        Action::AlertHandle => "acknowledge, close or suppress alerts".into(),
        Action::BackupRead => "read backup policies and reports".into(),
        Action::BackupPolicyWrite => "set backup policies".into(),
        Action::BackupReport => "report backups or run backup jobs".into(),
        Action::DirectoryRead => "read the LDAP directory settings".into(),
        Action::DirectoryManage => "manage the LDAP directory".into(),
        Action::GroupManage => "manage groups".into(),
    }
}

/// Every action (each `UserCreate` role included), for checks over the whole model.
pub fn all_actions() -> Vec<Action> {
    let mut v = vec![
        Action::TenantRead,
        Action::TenantCreate,
        Action::TenantSetStatus,
        Action::UserList,
        Action::UserDisable,
        Action::AuditRead,
        Action::TokenCreate,
        Action::AssetRead,
        Action::AssetWrite,
        Action::AssetCorrelate,
        Action::PolicyRead,
        Action::PolicyWrite,
        Action::AccountUnlock,
        Action::DormancySweep,
        Action::KmsSeal,
        Action::KmsKeyRead,
        Action::KmsKeyManage,
        Action::KmsKeyUse,
        Action::IncidentRead,
        Action::IncidentOpen,
        Action::IncidentHandle,
        Action::IncidentNote,
        Action::PlanRead,
        Action::PlanManage,
        Action::SlaPolicyManage,
        Action::OidcClientRead,
        Action::OidcClientManage,
        Action::NotifyRead,
        Action::NotifyManage,
        Action::EventIngest,
        Action::EventRead,
        Action::EventRetention,
        Action::RuleRead,
        Action::RuleManage,
        Action::AlertRead,
        Action::AlertHandle,
        Action::DirectoryRead,
        Action::DirectoryManage,
        Action::GroupManage,
        Action::BackupRead,
        Action::BackupPolicyWrite,
        Action::BackupReport,
    ];
    v.extend(Role::ALL.into_iter().map(Action::UserCreate));
    v
}

/// Whether `p` holds every permission a holder of `role` in `tenant` would have (everywhere),
/// key management aside (separation of duties: the key service's own rules cover it).
pub fn holds_all_of(p: &Principal, role: Role, tenant: &Tenant) -> bool {
    let holder = Principal {
        tenant: tenant.clone(),
        user: parapet_store::User {
            role,
            ..p.user.clone()
        },
        group_roles: vec![],
        elevation: None,
        ..p.clone()
    };
    all_actions()
        .into_iter()
        .filter(|a| {
            !matches!(
                a,
                Action::KmsSeal | Action::KmsKeyRead | Action::KmsKeyManage | Action::KmsKeyUse
            )
        })
        .all(|a| authorize(&holder, a, tenant).is_err() || authorize(p, a, tenant).is_ok())
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
            elevation: None,
            group_roles: vec![],
        }
    }

    fn actions() -> Vec<Action> {
        all_actions()
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
                    (CredentialKind::ApiToken, &["ingest"][..]),
                    (CredentialKind::ApiToken, &["backup"][..]),
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
                                assert!(
                                    !ok || !a.writes()
                                        || (a == Action::EventIngest && scopes == ["ingest"])
                                        || (a == Action::BackupReport && scopes == ["backup"]),
                                    "{role} {a:?} with {scopes:?}"
                                );
                            }
                            // An ingest token sends events and does nothing else.
                            if scopes == ["ingest"] {
                                assert!(!ok || a == Action::EventIngest, "{role} {a:?} ingest");
                            }
                            // A backup token reports backups and does nothing else.
                            if scopes == ["backup"] {
                                assert!(!ok || a == Action::BackupReport, "{role} {a:?} backup");
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
                            // Only provider staff correlate assets across tenants, and only
                            // acting on the provider tenant itself.
                            if a == Action::AssetCorrelate && ok {
                                assert_eq!(home.kind, TenantKind::Provider);
                                assert_eq!(target.kind, TenantKind::Provider);
                            }
                            // Only provider security administrators sweep dormant accounts,
                            // and only from the provider.
                            if a == Action::DormancySweep && ok {
                                assert_eq!(
                                    (home.kind, role, target.kind),
                                    (
                                        TenantKind::Provider,
                                        Role::SecurityAdmin,
                                        TenantKind::Provider
                                    )
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

    /// Delegated administration never grants more than it holds: whoever may give a role in a
    /// tenant holds, there, every permission of that role (exhaustive over roles, actions,
    /// tenants and credential kinds).
    #[test]
    fn nobody_grants_more_than_it_holds() {
        let provider = tenant(TenantKind::Provider, 1);
        let acme = tenant(TenantKind::Customer, 2);
        let globex = tenant(TenantKind::Customer, 3);
        let mut grants = 0;
        for home in [&provider, &acme] {
            for granter in Role::ALL.into_iter().filter(|r| r.fits(home.kind)) {
                let p = principal(home, granter, CredentialKind::Session, &[]);
                for target in [&provider, &acme, &globex] {
                    for granted in Role::ALL {
                        if authorize(&p, Action::UserCreate(granted), target).is_err() {
                            continue;
                        }
                        grants += 1;
                        let holder = principal(target, granted, CredentialKind::Session, &[]);
                        // Key custody and the use of a tenant's keys are withheld from the
                        // administrators who hand out those roles on purpose (separation of
                        // duties, X.1642 8.2(1); a tenant's keys are invisible to the
                        // provider): the key service's own invariants cover them.
                        for a in actions().into_iter().filter(|a| {
                            !matches!(
                                a,
                                Action::KmsSeal
                                    | Action::KmsKeyRead
                                    | Action::KmsKeyManage
                                    | Action::KmsKeyUse
                            )
                        }) {
                            for t in [&provider, &acme, &globex] {
                                if authorize(&holder, a, t).is_ok() {
                                    assert!(
                                        authorize(&p, a, t).is_ok(),
                                        "{granter} grants {granted}, which may {a:?} in {}",
                                        t.name
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(grants > 0);
    }

    fn with_groups(mut p: Principal, groups: &[Role]) -> Principal {
        p.group_roles = groups.to_vec();
        p
    }

    proptest::proptest! {
        /// Effective roles: a user with groups may do exactly what one of its roles (own, or a
        /// group's role that fits its tenant) may do alone.
        #[test]
        fn group_roles_add_exactly_their_own_permissions(
            customer in proptest::bool::ANY,
            own in 0..Role::ALL.len(),
            groups in proptest::collection::vec(0..Role::ALL.len(), 0..4),
            target in 0..3usize,
        ) {
            let provider = tenant(TenantKind::Provider, 1);
            let acme = tenant(TenantKind::Customer, 2);
            let globex = tenant(TenantKind::Customer, 3);
            let home = if customer { &acme } else { &provider };
            let roles: Vec<Role> = groups.iter().filter_map(|i| Role::ALL.get(*i).copied()).collect();
            let own = Role::ALL.get(own).copied().unwrap_or(Role::TenantMember);
            proptest::prop_assume!(own.fits(home.kind));
            let p = with_groups(principal(home, own, CredentialKind::Session, &[]), &roles);
            let t = [&provider, &acme, &globex][target];
            for a in actions() {
                let alone = std::iter::once(own)
                    .chain(roles.iter().copied().filter(|r| r.fits(home.kind)))
                    .any(|r| authorize(&principal(home, r, CredentialKind::Session, &[]), a, t).is_ok());
                proptest::prop_assert_eq!(authorize(&p, a, t).is_ok(), alone, "{:?} in {}", a, t.name);
            }
        }

        /// Delegation through groups: whatever set of roles an administrator holds (its own and
        /// its groups'), every role it may grant (directly or into a group) gives nothing it does
        /// not hold itself.
        #[test]
        fn a_delegated_admin_never_grants_more_than_it_holds(
            customer in proptest::bool::ANY,
            own in 0..Role::ALL.len(),
            groups in proptest::collection::vec(0..Role::ALL.len(), 0..4),
        ) {
            let provider = tenant(TenantKind::Provider, 1);
            let acme = tenant(TenantKind::Customer, 2);
            let globex = tenant(TenantKind::Customer, 3);
            let home = if customer { &acme } else { &provider };
            let roles: Vec<Role> = groups.iter().filter_map(|i| Role::ALL.get(*i).copied()).collect();
            let own = Role::ALL.get(own).copied().unwrap_or(Role::TenantMember);
            proptest::prop_assume!(own.fits(home.kind));
            let p = with_groups(principal(home, own, CredentialKind::Session, &[]), &roles);
            for target in [&provider, &acme, &globex] {
                for granted in Role::ALL {
                    if authorize(&p, Action::UserCreate(granted), target).is_err() {
                        continue;
                    }
                    let holder = principal(target, granted, CredentialKind::Session, &[]);
                    for a in actions().into_iter().filter(|a| {
                        !matches!(
                            a,
                            Action::KmsSeal | Action::KmsKeyRead | Action::KmsKeyManage | Action::KmsKeyUse
                        )
                    }) {
                        for t in [&provider, &acme, &globex] {
                            if authorize(&holder, a, t).is_ok() {
                                proptest::prop_assert!(
                                    authorize(&p, a, t).is_ok(),
                                    "{:?} grants {} which may {:?} in {}", roles, granted, a, t.name
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
