//! Just-in-time privileged access (X.1642 7.2.2.4(3), issue 4 §7). A user asks for a role for a
//! stated reason and duration; the request is an approval request of kind `elevation`, decided
//! by another administrator who may grant that role (never the requester: the approvals module's
//! rules); approval starts a grant. While a grant is in force the user's credentials act with the
//! lent role (looked up at authentication, so it ends by itself within the authentication cache
//! bound, and a cached principal is never served past its grant's expiry); every request made
//! with it is recorded (`access.elevated.use`). Grants can be revoked early by the user or by an
//! administrator who may grant the role.

use parapet_store::{AccessGrant, ApprovalKind, ApprovalRequest, AuditOutcome, StoreError, Tenant};
use parapet_types::{Role, TenantCtx, Timestamp};
use serde_json::json;

use crate::{Action, IamError, IamResult, IamService, Principal, RequestMeta, event};

/// Shortest and longest time a role may be lent.
pub const MIN_DURATION_SECS: i64 = 60;
pub const MAX_DURATION_SECS: i64 = 8 * 3600;

/// A grant in force on a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elevation {
    pub grant: String,
    /// The user's own role (what it falls back to).
    pub base_role: Role,
    pub role: Role,
    pub expires_at: Timestamp,
}

/// Parses a duration such as `90s`, `15m`, `2h` or a number of seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (s.get(..i)?, c),
        _ => (s, 's'),
    };
    let n: i64 = num.trim().parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

impl IamService {
    /// Puts the user's grant in force on `p`, if there is one.
    pub(crate) async fn apply_elevation(&self, p: &mut Principal, now: Timestamp) -> IamResult<()> {
        if let Some(g) = self
            .store
            .active_grant(TenantCtx::new(p.tenant.id), p.user.id, now)
            .await?
            && g.role.fits(p.tenant.kind)
        {
            p.elevation = Some(Elevation {
                grant: g.id,
                base_role: p.user.role,
                role: g.role,
                expires_at: g.expires_at,
            });
            p.user.role = g.role;
        }
        Ok(())
    }

    /// Asks for `role` for `duration_secs`, for `reason`; another administrator decides.
    pub async fn request_access(
        &self,
        p: &Principal,
        role: Role,
        reason: &str,
        duration_secs: i64,
        meta: &RequestMeta,
    ) -> IamResult<ApprovalRequest> {
        let t = p.tenant.clone();
        if !p.has_scope("write") {
            return Err(IamError::Forbidden(
                "this token lacks the 'write' scope".into(),
            ));
        }
        if !role.fits(t.kind) {
            return Err(IamError::Invalid(format!(
                "role {role} cannot be held in a {} tenant",
                t.kind.as_str()
            )));
        }
        let own = p.elevation.as_ref().map_or(p.user.role, |e| e.base_role);
        if role == own {
            return Err(IamError::Invalid(format!(
                "you hold the role {role} already"
            )));
        }
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&duration_secs) {
            return Err(IamError::Invalid(format!(
                "the duration must be between {MIN_DURATION_SECS} s and {} h",
                MAX_DURATION_SECS / 3600
            )));
        }
        self.file_request_for(
            p,
            &t,
            ApprovalKind::Elevation,
            &p.user.username,
            role,
            None,
            reason,
            Some(duration_secs),
            meta,
        )
        .await
    }

    /// The grants of `tenant`, newest first (administrators and auditors of the tenant).
    pub async fn list_grants(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, Vec<AccessGrant>)> {
        let t = self.resolve(p, tenant, Action::UserList, meta).await?;
        let list = self.store.list_grants(TenantCtx::new(t.id)).await?;
        Ok((t, list))
    }

    /// Ends a grant early: its holder, or an administrator who may grant its role.
    pub async fn revoke_grant(
        &self,
        p: &Principal,
        tenant: &str,
        id: &str,
        meta: &RequestMeta,
    ) -> IamResult<AccessGrant> {
        let t = self.lookup(p, tenant).await?;
        let ctx = TenantCtx::new(t.id);
        let g = match self.store.get_grant(ctx, id).await {
            Ok(g) => g,
            Err(StoreError::NotFound) => {
                return Err(IamError::NotFound(format!(
                    "no grant {id} in tenant {}",
                    t.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let holder = g.user == p.user.id && t.id == p.tenant.id;
        if !holder {
            self.check(p, Action::UserCreate(g.role), &t, meta).await?;
        } else if !p.has_scope("write") {
            return Err(IamError::Forbidden(
                "this token lacks the 'write' scope".into(),
            ));
        }
        let now = self.env.now();
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "access.revoke",
            format!("user:{}/{}", t.name, g.username),
            meta,
            AuditOutcome::Success,
            json!({"grant": g.id, "role": g.role, "revoked": g.role, "by_holder": holder}),
        );
        self.store
            .revoke_grant(ctx, &g.id, now, &p.login_name(), &e)
            .await?;
        self.forget_cached(None, Some(g.user));
        Ok(self.store.get_grant(ctx, &g.id).await?)
    }

    /// Records one use of a lent role (one request made while a grant is in force).
    pub async fn record_elevated_use(
        &self,
        p: &Principal,
        what: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let Some(el) = &p.elevation else {
            return Ok(());
        };
        let e = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            "access.elevated.use",
            format!("user:{}/{}", p.tenant.name, p.user.username),
            meta,
            AuditOutcome::Success,
            json!({"grant": el.grant, "role": el.role, "base_role": el.base_role,
                   "request": what.chars().take(300).collect::<String>()}),
        );
        self.store.append_audit(&e).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("2d"), None);
        assert_eq!(parse_duration("-5m"), None);
        assert_eq!(parse_duration("h"), None);
    }
}
