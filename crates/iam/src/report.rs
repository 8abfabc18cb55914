//! The account audit report (X.1642 8.1.1(5), 8.1.1(10)): dormant, over-privileged, orphaned
//! and locked accounts of a tenant.

use parapet_store::{AuditFilter, Page, Tenant, UserStatus};
use parapet_types::{Actor, Role, TenantCtx, Timestamp};

use crate::authz::Action;
use crate::{IamResult, IamService, Principal, RequestMeta};

/// One account the report flags, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaggedAccount {
    pub login: String,
    pub role: Role,
    pub status: UserStatus,
    pub last_login_at: Option<Timestamp>,
    pub detail: String,
}

/// The account audit report of a tenant over the last `days` days.
#[derive(Debug, Clone, Default)]
pub struct AccountReport {
    pub days: u32,
    /// Active accounts without a log-in (or, never logged in, created) in `days`.
    pub dormant: Vec<FlaggedAccount>,
    /// Accounts holding a role that can change things, but that changed nothing in `days`.
    pub over_privileged: Vec<FlaggedAccount>,
    /// Disabled accounts that are kept (neither re-enabled nor deleted), and active accounts that
    /// never logged in.
    pub orphaned: Vec<FlaggedAccount>,
    /// Accounts locked now by failed log-ins.
    pub locked: Vec<FlaggedAccount>,
}

/// Roles that can change state somewhere (the others only read).
fn writes(role: Role) -> bool {
    !matches!(
        role,
        Role::Auditor | Role::TenantAuditor | Role::TenantMember
    )
}

impl IamService {
    /// The account audit report of `tenant` over the last `days` days (1–3650).
    pub async fn account_report(
        &self,
        p: &Principal,
        tenant: &str,
        days: u32,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, AccountReport)> {
        if !(1..=3650).contains(&days) {
            return Err(crate::IamError::Invalid(
                "days must be between 1 and 3650".into(),
            ));
        }
        let t = self.resolve(p, tenant, Action::AuditRead, meta).await?;
        let ctx = TenantCtx::new(t.id);
        let now = self.env.now();
        let since = Timestamp(now.0 - i64::from(days) * 86_400_000);
        let rows = self.store.list_accounts(ctx).await?;
        let mut report = AccountReport {
            days,
            ..AccountReport::default()
        };
        for r in &rows {
            let u = &r.user;
            let flag = |detail: String| FlaggedAccount {
                login: crate::display_login(&t, u),
                role: u.role,
                status: u.status,
                last_login_at: u.last_login_at,
                detail,
            };
            if r.state.is_locked(now) {
                report.locked.push(flag(match r.state.locked_until {
                    _ if r.state.locked_permanently_at.is_some() => {
                        "locked until an administrator unlocks it".into()
                    }
                    Some(until) => format!("locked until {}", until.rfc3339()),
                    None => "locked".into(),
                }));
            }
            if u.status == UserStatus::Disabled {
                report.orphaned.push(flag("disabled but kept".into()));
                continue;
            }
            let active_since = u
                .last_login_at
                .unwrap_or(u.created_at)
                .max(r.state.enabled_at.unwrap_or(Timestamp(0)));
            if active_since < since {
                report.dormant.push(flag(match u.last_login_at {
                    Some(l) => format!("last log-in {}", l.rfc3339()),
                    None => format!("never logged in; created {}", u.created_at.rfc3339()),
                }));
            } else if u.last_login_at.is_none() {
                report
                    .orphaned
                    .push(flag("active but never logged in".into()));
            }
            if writes(u.role) {
                let recent = self
                    .store
                    .list_audit(
                        ctx,
                        &AuditFilter {
                            actor: Some(u.username.clone()),
                            since: Some(since),
                            ..AuditFilter::default()
                        },
                        &Page {
                            after: None,
                            limit: 1000,
                        },
                    )
                    .await?;
                let changed = recent.iter().any(|rec| {
                    matches!(&rec.event.actor, Actor::User { user, .. } if *user == u.id)
                        && !rec.event.action.starts_with("auth.")
                        && rec.event.outcome == parapet_store::AuditOutcome::Success
                });
                if !changed {
                    report.over_privileged.push(flag(format!(
                        "role {} but no change made in {days} days",
                        u.role
                    )));
                }
            }
        }
        Ok((t, report))
    }
}
