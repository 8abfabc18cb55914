//! Approval requests (X.1642 8.1.1(2)): a registration or a role change requested by one
//! administrator and approved or rejected by another (never by the requester, nor by the user
//! whose role changes), applied in the same transaction as the decision, with the history kept.
//! Whoever requests and whoever approves must each be allowed to grant the role themselves, so
//! delegated administration never grants more than the delegate holds (see `authz`).

use parapet_store::{
    ApprovalEffect, ApprovalKind, ApprovalRequest, AuditOutcome, StoreError, Tenant,
};
use parapet_types::{Role, TenantCtx, Username};
use serde_json::json;

use crate::authz::Action;
use crate::{IamError, IamResult, IamService, Principal, RequestMeta, event, policy};

impl IamService {
    /// Requests a new user of `tenant` with `role`; the password is checked and hashed now.
    #[allow(clippy::too_many_arguments)]
    pub async fn request_user(
        &self,
        p: &Principal,
        tenant: &str,
        username: &str,
        password: &str,
        role: Role,
        reason: &str,
        meta: &RequestMeta,
    ) -> IamResult<ApprovalRequest> {
        let username = Username::parse(username)?;
        let t = self.lookup(p, tenant).await?;
        if !role.fits(t.kind) {
            return Err(IamError::Invalid(format!(
                "role {role} cannot be held in a {} tenant",
                t.kind.as_str()
            )));
        }
        self.check(p, Action::UserCreate(role), &t, meta).await?;
        match self
            .store
            .get_user(TenantCtx::new(t.id), username.as_str())
            .await
        {
            Ok(_) => {
                return Err(IamError::Conflict(format!(
                    "a user named {:?} already exists in this tenant",
                    username.as_str()
                )));
            }
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let pol = self.effective_policy(&t).await?.policy;
        policy::check_password(&pol, username.as_str(), password)?;
        let hash = self.hash(password).await?;
        self.file_request(
            p,
            &t,
            ApprovalKind::UserCreate,
            username.as_str(),
            role,
            Some(hash),
            reason,
            meta,
        )
        .await
    }

    /// Requests another role for an existing user of `tenant`.
    pub async fn request_role(
        &self,
        p: &Principal,
        tenant: &str,
        username: &str,
        role: Role,
        reason: &str,
        meta: &RequestMeta,
    ) -> IamResult<ApprovalRequest> {
        let t = self.lookup(p, tenant).await?;
        if !role.fits(t.kind) {
            return Err(IamError::Invalid(format!(
                "role {role} cannot be held in a {} tenant",
                t.kind.as_str()
            )));
        }
        self.check(p, Action::UserCreate(role), &t, meta).await?;
        let u = self.user_in(&t, username).await?;
        if u.role == role {
            return Err(IamError::Invalid(format!(
                "{} has the role {role} already",
                u.username
            )));
        }
        self.file_request(
            p,
            &t,
            ApprovalKind::RoleChange,
            &u.username,
            role,
            None,
            reason,
            meta,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn file_request(
        &self,
        p: &Principal,
        t: &Tenant,
        kind: ApprovalKind,
        username: &str,
        role: Role,
        password_hash: Option<String>,
        reason: &str,
        meta: &RequestMeta,
    ) -> IamResult<ApprovalRequest> {
        self.file_request_for(
            p,
            t,
            kind,
            username,
            role,
            password_hash,
            reason,
            None,
            meta,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn file_request_for(
        &self,
        p: &Principal,
        t: &Tenant,
        kind: ApprovalKind,
        username: &str,
        role: Role,
        password_hash: Option<String>,
        reason: &str,
        duration_secs: Option<i64>,
        meta: &RequestMeta,
    ) -> IamResult<ApprovalRequest> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(IamError::Invalid(
                "give a reason of 1 to 500 characters".into(),
            ));
        }
        let req = ApprovalRequest {
            id: self.new_id()?.to_string(),
            tenant: t.id,
            kind,
            username: username.to_string(),
            role,
            password_hash,
            reason: reason.to_string(),
            requested_by: p.user.id,
            requested_by_name: p.login_name(),
            requested_at: self.env.now(),
            status: "pending".into(),
            decided_by_name: None,
            decided_at: None,
            comment: None,
            duration_secs,
            group: None,
        };
        let e = event(
            &self.env,
            Some(t),
            p.actor(),
            "approval.request",
            format!("approval:{}", req.id),
            meta,
            AuditOutcome::Success,
            json!({"kind": kind.as_str(), "user": username, "role": role, "reason": reason,
                   "duration_secs": duration_secs}),
        );
        self.store
            .create_approval(TenantCtx::new(t.id), &req, &e)
            .await?;
        Ok(req)
    }

    /// Files a request to add `username` to `group` (tenants that require approval).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn file_group_request(
        &self,
        p: &Principal,
        t: &Tenant,
        username: &str,
        group: &str,
        role: Role,
        reason: &str,
        meta: &RequestMeta,
    ) -> IamResult<ApprovalRequest> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(IamError::Invalid(
                "give a reason of 1 to 500 characters".into(),
            ));
        }
        let req = ApprovalRequest {
            id: self.new_id()?.to_string(),
            tenant: t.id,
            kind: ApprovalKind::GroupMember,
            username: username.to_string(),
            role,
            password_hash: None,
            reason: reason.to_string(),
            requested_by: p.user.id,
            requested_by_name: p.login_name(),
            requested_at: self.env.now(),
            status: "pending".into(),
            decided_by_name: None,
            decided_at: None,
            comment: None,
            duration_secs: None,
            group: Some(group.to_string()),
        };
        let e = event(
            &self.env,
            Some(t),
            p.actor(),
            "approval.request",
            format!("approval:{}", req.id),
            meta,
            AuditOutcome::Success,
            json!({"kind": req.kind.as_str(), "user": username, "group": group, "role": role,
                   "reason": reason}),
        );
        self.store
            .create_approval(TenantCtx::new(t.id), &req, &e)
            .await?;
        Ok(req)
    }

    /// The approval requests of `tenant`, newest first.
    pub async fn list_approvals(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, Vec<ApprovalRequest>)> {
        let t = self.resolve(p, tenant, Action::UserList, meta).await?;
        let list = self.store.list_approvals(TenantCtx::new(t.id)).await?;
        Ok((t, list))
    }

    /// Approves (applying the change) or rejects a pending request. The decider must be another
    /// administrator than the requester, not the user concerned, and allowed to grant the role.
    pub async fn decide_approval(
        &self,
        p: &Principal,
        tenant: &str,
        id: &str,
        approve: bool,
        comment: Option<&str>,
        meta: &RequestMeta,
    ) -> IamResult<ApprovalRequest> {
        let t = self.lookup(p, tenant).await?;
        let ctx = TenantCtx::new(t.id);
        let req = match self.store.get_approval(ctx, id).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => {
                return Err(IamError::NotFound(format!(
                    "no approval request {id} in tenant {}",
                    t.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.check(p, Action::UserCreate(req.role), &t, meta)
            .await?;
        if req.status != "pending" {
            return Err(IamError::Conflict(format!(
                "the request is {} already",
                req.status
            )));
        }
        let target = format!("approval:{}", req.id);
        if let Err(reason) = decision_allowed(p, &req) {
            self.record_denied(p, "approval.decide", &target, &reason, meta)
                .await?;
            return Err(IamError::Forbidden(reason));
        }
        let comment = comment.map(str::trim).filter(|c| !c.is_empty());
        if comment.is_some_and(|c| c.chars().count() > 500) {
            return Err(IamError::Invalid(
                "the comment may have at most 500 characters".into(),
            ));
        }
        let effect = if !approve {
            None
        } else {
            Some(match req.kind {
                ApprovalKind::UserCreate => {
                    let hash = req.password_hash.clone().ok_or_else(|| {
                        IamError::Internal("registration request without a password".into())
                    })?;
                    ApprovalEffect::CreateUser(self.user_record(
                        &t,
                        &req.username,
                        req.role,
                        hash,
                    )?)
                }
                ApprovalKind::RoleChange => {
                    let u = self.user_in(&t, &req.username).await?;
                    self.check_sub_account_role(&t, &u, req.role).await?;
                    let subs = self
                        .sub_account_cascade(&t, &u, req.role, &p.actor(), meta)
                        .await?;
                    ApprovalEffect::SetRole(u.id, req.role, subs)
                }
                ApprovalKind::GroupMember => {
                    let name = req.group.clone().unwrap_or_default();
                    let g = self.group_in(&t, &name).await?;
                    self.may_grant_all(p, &t, &g.roles, meta).await?;
                    let u = self.user_in(&t, &req.username).await?;
                    ApprovalEffect::AddGroupMember(g.name, u.id)
                }
                ApprovalKind::Elevation => {
                    let u = self.user_in(&t, &req.username).await?;
                    let now = self.env.now();
                    ApprovalEffect::Elevate(parapet_store::AccessGrant {
                        id: self.new_id()?.to_string(),
                        tenant: t.id,
                        user: u.id,
                        username: u.username.clone(),
                        role: req.role,
                        reason: req.reason.clone(),
                        approval_id: req.id.clone(),
                        granted_by_name: p.login_name(),
                        starts_at: now,
                        expires_at: now.plus_secs(req.duration_secs.unwrap_or(3600)),
                        revoked_at: None,
                        revoked_by_name: None,
                    })
                }
            })
        };
        let (action, applied) = match (&effect, approve) {
            (Some(ApprovalEffect::CreateUser(_)), _) => ("approval.approve", "user.create"),
            (Some(ApprovalEffect::SetRole(..)), _) => ("approval.approve", "user.role.change"),
            (Some(ApprovalEffect::Elevate(..)), _) => ("approval.approve", "access.grant"),
            (Some(ApprovalEffect::AddGroupMember(..)), _) => {
                ("approval.approve", "group.member.add")
            }
            (None, _) => ("approval.reject", ""),
        };
        let now = self.env.now();
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            action,
            target,
            meta,
            AuditOutcome::Success,
            json!({"kind": req.kind.as_str(), "user": format!("user:{}/{}", t.name, req.username),
                   "role": req.role, "group": req.group, "requested_by": req.requested_by_name,
                   "applied": applied, "comment": comment}),
        );
        self.store
            .decide_approval(
                ctx,
                &req.id,
                approve,
                &p.login_name(),
                now,
                comment,
                effect.as_ref(),
                &e,
            )
            .await?;
        match &effect {
            Some(ApprovalEffect::SetRole(u, _, subs)) => {
                self.forget_cached(None, Some(*u));
                self.forget_changed(subs);
            }
            Some(ApprovalEffect::Elevate(g)) => self.forget_cached(None, Some(g.user)),
            Some(ApprovalEffect::AddGroupMember(_, u)) => self.forget_cached(None, Some(*u)),
            _ => {}
        }
        Ok(self.store.get_approval(ctx, &req.id).await?)
    }

    /// Changes a user's role at once (tenants whose policy does not require approval).
    pub async fn change_role(
        &self,
        p: &Principal,
        tenant: &str,
        username: &str,
        role: Role,
        meta: &RequestMeta,
    ) -> IamResult<parapet_store::User> {
        let t = self.lookup(p, tenant).await?;
        if !role.fits(t.kind) {
            return Err(IamError::Invalid(format!(
                "role {role} cannot be held in a {} tenant",
                t.kind.as_str()
            )));
        }
        self.check(p, Action::UserCreate(role), &t, meta).await?;
        if self.effective_policy(&t).await?.policy.approval_required {
            return Err(IamError::Forbidden(
                "this tenant's policy requires an approval request for role changes \
                 ('parapet approval request-role')"
                    .into(),
            ));
        }
        let mut u = self.user_in(&t, username).await?;
        if u.id == p.user.id {
            return Err(IamError::Forbidden(
                "you cannot change your own role".into(),
            ));
        }
        self.check_sub_account_role(&t, &u, role).await?;
        let subs = self
            .sub_account_cascade(&t, &u, role, &p.actor(), meta)
            .await?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "user.role.change",
            format!("user:{}/{}", t.name, u.username),
            meta,
            AuditOutcome::Success,
            json!({"from": u.role, "to": role, "granted": role, "revoked": u.role}),
        );
        self.store
            .set_user_role(TenantCtx::new(t.id), u.id, role, &e, &subs)
            .await?;
        self.forget_cached(None, Some(u.id));
        self.forget_changed(&subs);
        u.role = role;
        Ok(u)
    }
}

impl IamService {
    /// The tenant `id_or_name` if `p` may see it at all.
    pub async fn visible_tenant(&self, p: &Principal, id_or_name: &str) -> IamResult<Tenant> {
        self.lookup(p, id_or_name).await
    }
}

/// Whether `p` may decide `req` (apart from holding the role it grants): not the requester,
/// and not the user concerned.
pub fn decision_allowed(p: &Principal, req: &ApprovalRequest) -> Result<(), String> {
    if req.requested_by == p.user.id {
        return Err("no self-approval: another administrator must decide this request".into());
    }
    if req.username == p.user.username && req.tenant == p.tenant.id {
        return Err("nobody decides a change of their own account".into());
    }
    Ok(())
}
