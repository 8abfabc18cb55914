//! Sub-accounts (X.1642 8.1.1(4)): a main account creates accounts for its own use whose role
//! gives nothing it does not hold itself ([`crate::authz::holds_all_of`]), checked again whenever
//! the sub-account's role changes; disabling the main account disables its sub-accounts, and
//! when the main account's role changes, its sub-accounts lose in the same transaction whatever
//! it no longer holds (each to the highest role both cover, or disabled when none does). The
//! main account manages its sub-accounts itself: list, create, change their role (within its
//! own), disable.

use parapet_store::{AuditOutcome, StoreError, SubAccountChange, Tenant, User, UserStatus};
use parapet_types::{Actor, Role, TenantCtx, Username};
use serde_json::json;

use crate::authz::holds_all_of;
use crate::{IamError, IamResult, IamService, Principal, RequestMeta, event, policy};

impl IamService {
    /// Creates a sub-account of the caller in its own tenant.
    pub async fn create_sub_account(
        &self,
        p: &Principal,
        username: &str,
        password: &str,
        role: Role,
        meta: &RequestMeta,
    ) -> IamResult<User> {
        let username = Username::parse(username)?;
        let t = p.tenant.clone();
        if !role.fits(t.kind) {
            return Err(IamError::Invalid(format!(
                "role {role} cannot be held in a {} tenant",
                t.kind.as_str()
            )));
        }
        if p.elevation.is_some() {
            return Err(IamError::Forbidden(
                "sub-accounts are bounded by your own role, not a lent one".into(),
            ));
        }
        if !holds_all_of(p, role, &t) {
            self.record_denied(
                p,
                "user.sub-account.create",
                &format!("user:{}/{}", t.name, username.as_str()),
                "the role exceeds the main account's privileges",
                meta,
            )
            .await?;
            return Err(IamError::Forbidden(format!(
                "role {role} would give the sub-account privileges you do not hold"
            )));
        }
        if self
            .store
            .parent_of(TenantCtx::new(t.id), p.user.id)
            .await?
            .is_some()
        {
            return Err(IamError::Forbidden(
                "a sub-account cannot create sub-accounts".into(),
            ));
        }
        let pol = self.effective_policy(&t).await?.policy;
        policy::check_password(&pol, username.as_str(), password)?;
        let hash = self.hash(password).await?;
        let user = self.user_record(&t, username.as_str(), role, hash)?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "user.sub-account.create",
            format!("user:{}/{}", t.name, user.username),
            meta,
            AuditOutcome::Success,
            json!({"role": role, "id": user.id, "parent": p.user.username}),
        );
        self.store
            .create_sub_account(TenantCtx::new(t.id), &user, p.user.id, &e)
            .await?;
        Ok(user)
    }

    /// The caller's main account, when the caller is a sub-account.
    pub async fn main_account_of(&self, p: &Principal) -> IamResult<Option<User>> {
        Ok(self
            .store
            .parent_of(TenantCtx::new(p.tenant.id), p.user.id)
            .await?)
    }

    /// The caller's sub-accounts.
    pub async fn list_sub_accounts(&self, p: &Principal) -> IamResult<Vec<User>> {
        Ok(self
            .store
            .sub_accounts_of(TenantCtx::new(p.tenant.id), p.user.id)
            .await?)
    }

    /// Disables the sub-accounts of `parent` (called when the main account is disabled), each
    /// audited.
    pub(crate) async fn disable_sub_accounts(
        &self,
        p: &Principal,
        t: &Tenant,
        parent: &User,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let ctx = TenantCtx::new(t.id);
        for sub in self.store.sub_accounts_of(ctx, parent.id).await? {
            if sub.status != UserStatus::Active {
                continue;
            }
            let e = event(
                &self.env,
                Some(t),
                p.actor(),
                "user.disable",
                format!("user:{}/{}", t.name, sub.username),
                meta,
                AuditOutcome::Success,
                json!({"id": sub.id, "reason": "main account disabled", "parent": parent.username}),
            );
            self.store
                .set_user_status(ctx, sub.id, UserStatus::Disabled, &e)
                .await?;
            self.forget_cached(None, Some(sub.id));
        }
        Ok(())
    }

    /// What the sub-accounts of `parent` become when it takes `new_role`: the ones whose role
    /// `new_role` (with the parent's groups) no longer covers get the first role of
    /// [`Role::ALL`] (the most privileged first) covered by both the new role and their old one,
    /// or are disabled when none is. Each change carries its audit record.
    pub(crate) async fn sub_account_cascade(
        &self,
        t: &Tenant,
        parent: &User,
        new_role: Role,
        actor: &Actor,
        meta: &RequestMeta,
    ) -> IamResult<Vec<SubAccountChange>> {
        let ctx = TenantCtx::new(t.id);
        let subs = self.store.sub_accounts_of(ctx, parent.id).await?;
        if subs.is_empty() {
            return Ok(vec![]);
        }
        let groups = self.group_roles(t, parent).await?;
        let as_holder = |u: &User, role: Role, groups: Vec<Role>| Principal {
            tenant: t.clone(),
            user: User { role, ..u.clone() },
            credential: parapet_types::CredentialId(uuid::Uuid::nil()),
            kind: parapet_store::CredentialKind::Session,
            scopes: vec![],
            elevation: None,
            group_roles: groups,
        };
        let holder = as_holder(parent, new_role, groups);
        let mut out = Vec::new();
        for sub in subs {
            if sub.status != UserStatus::Active || holds_all_of(&holder, sub.role, t) {
                continue;
            }
            let old = as_holder(&sub, sub.role, vec![]);
            let lower = Role::ALL.into_iter().find(|r| {
                r.fits(t.kind) && holds_all_of(&holder, *r, t) && holds_all_of(&old, *r, t)
            });
            let target = format!("user:{}/{}", t.name, sub.username);
            let why = "its main account lost privileges";
            let audit = match lower {
                Some(r) => event(
                    &self.env,
                    Some(t),
                    actor.clone(),
                    "user.role.change",
                    target,
                    meta,
                    AuditOutcome::Success,
                    json!({"from": sub.role, "to": r, "granted": r, "revoked": sub.role,
                           "reason": why, "parent": parent.username, "parent_role": new_role}),
                ),
                None => event(
                    &self.env,
                    Some(t),
                    actor.clone(),
                    "user.disable",
                    target,
                    meta,
                    AuditOutcome::Success,
                    json!({"id": sub.id, "role": sub.role, "reason": why,
                           "parent": parent.username, "parent_role": new_role}),
                ),
            };
            out.push(SubAccountChange {
                user: sub.id,
                role: lower,
                audit,
            });
        }
        Ok(out)
    }

    /// Forgets the cached principals of the sub-accounts `changes` touched.
    pub(crate) fn forget_changed(&self, changes: &[SubAccountChange]) {
        for c in changes {
            self.forget_cached(None, Some(c.user));
        }
    }

    /// One of the caller's sub-accounts, by name.
    async fn own_sub_account(&self, p: &Principal, username: &str) -> IamResult<User> {
        let ctx = TenantCtx::new(p.tenant.id);
        let subs = self.store.sub_accounts_of(ctx, p.user.id).await?;
        subs.into_iter()
            .find(|u| u.username == username)
            .ok_or_else(|| IamError::NotFound(format!("you have no sub-account {username:?}")))
    }

    /// The main account changes one of its sub-accounts' role, within its own privileges.
    pub async fn set_sub_account_role(
        &self,
        p: &Principal,
        username: &str,
        role: Role,
        meta: &RequestMeta,
    ) -> IamResult<User> {
        if !p.has_scope("write") {
            return Err(IamError::Forbidden(
                "this token lacks the 'write' scope".into(),
            ));
        }
        let t = p.tenant.clone();
        let mut sub = self.own_sub_account(p, username).await?;
        if !role.fits(t.kind) {
            return Err(IamError::Invalid(format!(
                "role {role} cannot be held in a {} tenant",
                t.kind.as_str()
            )));
        }
        if p.elevation.is_some() || !holds_all_of(p, role, &t) {
            self.record_denied(
                p,
                "user.role.change",
                &format!("user:{}/{}", t.name, sub.username),
                "the role exceeds the main account's privileges",
                meta,
            )
            .await?;
            return Err(IamError::Forbidden(format!(
                "role {role} would give the sub-account privileges you do not hold"
            )));
        }
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "user.role.change",
            format!("user:{}/{}", t.name, sub.username),
            meta,
            AuditOutcome::Success,
            json!({"from": sub.role, "to": role, "granted": role, "revoked": sub.role,
                   "by": "main account"}),
        );
        self.store
            .set_user_role(TenantCtx::new(t.id), sub.id, role, &e, &[])
            .await?;
        self.forget_cached(None, Some(sub.id));
        sub.role = role;
        Ok(sub)
    }

    /// The main account disables one of its sub-accounts.
    pub async fn disable_sub_account(
        &self,
        p: &Principal,
        username: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        if !p.has_scope("write") {
            return Err(IamError::Forbidden(
                "this token lacks the 'write' scope".into(),
            ));
        }
        let t = p.tenant.clone();
        let sub = self.own_sub_account(p, username).await?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "user.disable",
            format!("user:{}/{}", t.name, sub.username),
            meta,
            AuditOutcome::Success,
            json!({"id": sub.id, "by": "main account"}),
        );
        match self
            .store
            .set_user_status(TenantCtx::new(t.id), sub.id, UserStatus::Disabled, &e)
            .await
        {
            Ok(()) => {}
            Err(StoreError::NotFound) => {
                return Err(IamError::NotFound("no such sub-account".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.forget_cached(None, Some(sub.id));
        Ok(())
    }

    /// Refuses a role for a sub-account that its main account does not cover (every later
    /// change of the sub-account's role goes through here).
    pub(crate) async fn check_sub_account_role(
        &self,
        t: &Tenant,
        user: &User,
        role: Role,
    ) -> IamResult<()> {
        let ctx = TenantCtx::new(t.id);
        let Some(parent) = self.store.parent_of(ctx, user.id).await? else {
            return Ok(());
        };
        let roles = self.group_roles(t, &parent).await?;
        let holder = Principal {
            tenant: t.clone(),
            user: parent.clone(),
            credential: parapet_types::CredentialId(uuid::Uuid::nil()),
            kind: parapet_store::CredentialKind::Session,
            scopes: vec![],
            elevation: None,
            group_roles: roles,
        };
        if holds_all_of(&holder, role, t) {
            Ok(())
        } else {
            Err(IamError::Forbidden(format!(
                "{} is a sub-account of {}: role {role} exceeds its main account's privileges",
                user.username, parent.username
            )))
        }
    }
}
