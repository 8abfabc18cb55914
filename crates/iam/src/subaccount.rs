//! Sub-accounts (X.1642 8.1.1(4)): a main account creates accounts for its own use whose role
//! gives nothing it does not hold itself ([`crate::authz::holds_all_of`]), checked again whenever
//! the sub-account's role changes; disabling the main account disables its sub-accounts.

use parapet_store::{AuditOutcome, Tenant, User, UserStatus};
use parapet_types::{Role, TenantCtx, Username};
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
