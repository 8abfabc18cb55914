//! Groups per tenant (X.1642 8.1.2(2)): a group holds roles and its members hold them besides
//! their own; [`crate::authorize`] allows an action when any effective role allows it.
//!
//! Delegation is bounded: creating a group with a role, or changing the members of a group, needs
//! the right to grant each of its roles (`UserCreate(role)`), and whoever may grant a role holds
//! every permission of it (`authz::tests::nobody_grants_more_than_it_holds`), so a delegated
//! administrator never hands out more than it holds through a group either.

use parapet_store::{AuditOutcome, Group, StoreError, Tenant, User};
use parapet_types::{Role, TenantCtx, Username};
use serde_json::json;

use crate::authz::Action;
use crate::{IamError, IamResult, IamService, Principal, RequestMeta, event};

impl IamService {
    /// The roles `u` holds through its groups (only those that fit its tenant).
    pub(crate) async fn group_roles(&self, t: &Tenant, u: &User) -> IamResult<Vec<Role>> {
        Ok(self
            .store
            .group_roles_of(TenantCtx::new(t.id), u.id)
            .await?
            .into_iter()
            .filter(|r| r.fits(t.kind) && *r != u.role)
            .collect())
    }

    /// Checks that `p` may grant every role of `roles` in `t` (recording a refusal).
    pub(crate) async fn may_grant_all(
        &self,
        p: &Principal,
        t: &Tenant,
        roles: &[Role],
        meta: &RequestMeta,
    ) -> IamResult<()> {
        for r in roles {
            self.check(p, Action::UserCreate(*r), t, meta).await?;
        }
        Ok(())
    }

    pub async fn list_groups(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, Vec<Group>)> {
        let t = self.resolve(p, tenant, Action::UserList, meta).await?;
        let list = self.store.list_groups(TenantCtx::new(t.id)).await?;
        Ok((t, list))
    }

    /// Creates a group holding `roles`.
    pub async fn create_group(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        roles: &[Role],
        meta: &RequestMeta,
    ) -> IamResult<Group> {
        let name = Username::parse(name)
            .map_err(|e| IamError::Invalid(e.to_string().replace("user name", "group name")))?;
        let t = self.resolve(p, tenant, Action::GroupManage, meta).await?;
        if roles.is_empty() {
            return Err(IamError::Invalid("a group holds at least one role".into()));
        }
        if let Some(r) = roles.iter().find(|r| !r.fits(t.kind)) {
            return Err(IamError::Invalid(format!(
                "role {r} cannot be held in a {} tenant",
                t.kind.as_str()
            )));
        }
        self.may_grant_all(p, &t, roles, meta).await?;
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let g = Group {
            id: self.new_id()?.to_string(),
            tenant: t.id,
            name: name.as_str().to_string(),
            roles,
            members: vec![],
            created_at: self.env.now(),
        };
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "group.create",
            format!("group:{}/{}", t.name, g.name),
            meta,
            AuditOutcome::Success,
            json!({"roles": g.roles}),
        );
        self.store
            .create_group(TenantCtx::new(t.id), &g, &e)
            .await?;
        Ok(g)
    }

    pub(crate) async fn group_in(&self, t: &Tenant, name: &str) -> IamResult<Group> {
        self.store
            .list_groups(TenantCtx::new(t.id))
            .await?
            .into_iter()
            .find(|g| g.name == name.to_ascii_lowercase())
            .ok_or_else(|| IamError::NotFound(format!("no group {name} in tenant {}", t.name)))
    }

    /// Removes a group: its members lose its roles.
    pub async fn delete_group(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let t = self.resolve(p, tenant, Action::GroupManage, meta).await?;
        let g = self.group_in(&t, name).await?;
        self.may_grant_all(p, &t, &g.roles, meta).await?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "group.delete",
            format!("group:{}/{}", t.name, g.name),
            meta,
            AuditOutcome::Success,
            json!({"roles": g.roles, "members": g.members}),
        );
        self.store
            .delete_group(TenantCtx::new(t.id), &g.name, &e)
            .await?;
        self.forget_group_members(&t, &g).await;
        Ok(())
    }

    async fn forget_group_members(&self, t: &Tenant, g: &Group) {
        for m in &g.members {
            if let Ok(u) = self.store.get_user(TenantCtx::new(t.id), m).await {
                self.forget_cached(None, Some(u.id));
            }
        }
    }

    /// Adds (`add`) or removes a member: a privilege grant or revocation, audited with the roles.
    /// In a tenant whose policy requires approval, an addition files an approval request
    /// (`reason`, else a generated one) that another administrator decides.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_group_member(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        username: &str,
        add: bool,
        reason: Option<&str>,
        meta: &RequestMeta,
    ) -> IamResult<GroupChange> {
        let t = self.resolve(p, tenant, Action::GroupManage, meta).await?;
        let g = self.group_in(&t, name).await?;
        self.may_grant_all(p, &t, &g.roles, meta).await?;
        let u = self.user_in(&t, username).await?;
        if add && self.effective_policy(&t).await?.policy.approval_required {
            if g.members.contains(&u.username) {
                return Err(IamError::Conflict("already a member of this group".into()));
            }
            // A privilege grant: another administrator must approve it.
            let top = Role::ALL
                .into_iter()
                .find(|r| g.roles.contains(r))
                .ok_or_else(|| IamError::Internal("a group without roles".into()))?;
            let reason = reason.map(str::trim).filter(|r| !r.is_empty()).map_or_else(
                || format!("add {} to group {}", u.username, g.name),
                String::from,
            );
            let req = self
                .file_group_request(p, &t, &u.username, &g.name, top, &reason, meta)
                .await?;
            return Ok(GroupChange::Requested(Box::new(req)));
        }
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            if add {
                "group.member.add"
            } else {
                "group.member.remove"
            },
            format!("user:{}/{}", t.name, u.username),
            meta,
            AuditOutcome::Success,
            json!({"group": g.name, if add { "granted" } else { "revoked" }: g.roles}),
        );
        let ctx = TenantCtx::new(t.id);
        let r = if add {
            self.store.add_group_member(ctx, &g.name, u.id, &e).await
        } else {
            self.store.remove_group_member(ctx, &g.name, u.id, &e).await
        };
        match r {
            Ok(()) => {}
            Err(StoreError::NotFound) => {
                return Err(IamError::NotFound(format!(
                    "{} is not a member of group {}",
                    u.username, g.name
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.forget_cached(None, Some(u.id));
        Ok(GroupChange::Applied(self.group_in(&t, &g.name).await?))
    }
}

/// What a change of a group's members did.
#[derive(Debug, Clone)]
pub enum GroupChange {
    Applied(Group),
    /// The tenant requires approval: a request was filed instead.
    Requested(Box<parapet_store::ApprovalRequest>),
}
