//! Sessions (X.1642 8.1.2(1)): listing and revoking log-in sessions and tokens, by their owner
//! and by administrators, and a user's own account history.

use parapet_store::{
    AuditFilter, AuditOutcome, AuditRecord, CredentialKind, Page, SessionInfo, StoreError, Tenant,
    User,
};
use parapet_types::{CredentialId, TenantCtx};
use serde_json::json;

use crate::authz::Action;
use crate::{IamError, IamResult, IamService, Principal, RequestMeta, event};

impl IamService {
    /// The longest a session may go unused, in seconds.
    pub fn session_idle_secs(&self) -> i64 {
        self.config.session_idle_secs
    }

    async fn user_of(&self, t: &Tenant, username: &str) -> IamResult<User> {
        match self
            .store
            .get_user(TenantCtx::new(t.id), &username.to_ascii_lowercase())
            .await
        {
            Ok(u) => Ok(u),
            Err(StoreError::NotFound) => Err(IamError::NotFound(format!(
                "no such user in tenant {}",
                t.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The caller's own live sessions and tokens, with when and from where they were last used.
    pub async fn own_sessions(&self, p: &Principal) -> IamResult<Vec<SessionInfo>> {
        Ok(self
            .store
            .list_sessions(
                TenantCtx::new(p.tenant.id),
                Some(p.user.id),
                None,
                self.env.now(),
            )
            .await?)
    }

    /// Live sessions (and with `all_kinds`, API tokens) of tenant `tenant`, of one user or all.
    pub async fn list_sessions(
        &self,
        p: &Principal,
        tenant: &str,
        username: Option<&str>,
        all_kinds: bool,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, Vec<SessionInfo>)> {
        let t = self.resolve(p, tenant, Action::UserList, meta).await?;
        let user = match username {
            Some(u) => Some(self.user_of(&t, u).await?.id),
            None => None,
        };
        let kind = (!all_kinds).then_some(CredentialKind::Session);
        let list = self
            .store
            .list_sessions(TenantCtx::new(t.id), user, kind, self.env.now())
            .await?;
        Ok((t, list))
    }

    /// Ends every session (and with `include_tokens`, revokes every API token) of a user; the
    /// revocation reaches this replica at once and every other within the cache bound.
    pub async fn revoke_user_sessions(
        &self,
        p: &Principal,
        tenant: &str,
        username: &str,
        include_tokens: bool,
        meta: &RequestMeta,
    ) -> IamResult<u64> {
        let t = self.resolve(p, tenant, Action::UserDisable, meta).await?;
        let u = self.user_of(&t, username).await?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "session.revoke-all",
            format!("user:{}/{}", t.name, u.username),
            meta,
            AuditOutcome::Success,
            json!({"include_tokens": include_tokens}),
        );
        let kind = (!include_tokens).then_some(CredentialKind::Session);
        let n = self
            .store
            .revoke_user_credentials(TenantCtx::new(t.id), u.id, kind, e.time, &e)
            .await?;
        self.forget_cached(None, Some(u.id));
        Ok(n)
    }

    /// Ends one session (or revokes one API token) of a user of `tenant`.
    pub async fn revoke_session(
        &self,
        p: &Principal,
        tenant: &str,
        id: CredentialId,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let t = self.resolve(p, tenant, Action::UserDisable, meta).await?;
        let ctx = TenantCtx::new(t.id);
        let live = self
            .store
            .list_sessions(ctx, None, None, self.env.now())
            .await?;
        let Some(s) = live.iter().find(|s| s.credential.id == id) else {
            return Err(IamError::NotFound(format!(
                "no live session or token {id} in tenant {}",
                t.name
            )));
        };
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "session.revoke",
            format!("user:{}/{}", t.name, s.username),
            meta,
            AuditOutcome::Success,
            json!({"credential": id, "kind": s.credential.kind}),
        );
        self.store.revoke_credential(ctx, id, e.time, &e).await?;
        self.forget_cached(Some(id), None);
        Ok(())
    }

    /// The caller's own account history: log-ins (successful or not), log-outs and changes to
    /// the account, newest first.
    pub async fn own_history(&self, p: &Principal, limit: u32) -> IamResult<Vec<AuditRecord>> {
        let filter = AuditFilter {
            target: Some(format!("user:{}/{}", p.tenant.name, p.user.username)),
            ..AuditFilter::default()
        };
        Ok(self
            .store
            .list_audit(
                TenantCtx::new(p.tenant.id),
                &filter,
                &Page {
                    after: None,
                    limit: limit.clamp(1, 1000),
                },
            )
            .await?)
    }
}
