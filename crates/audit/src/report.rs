//! Account and access reports drawn from the audit log (X.1642 8.1.1(5)): log-ins and log-outs
//! per account, failed attempts, accounts without a log-in for N days, privilege grants and
//! revocations, refused requests. Pure: the caller gathers the records and the accounts.

use std::collections::BTreeMap;

use parapet_store::{AuditOutcome, AuditRecord};
use parapet_types::Timestamp;
use serde::Serialize;

/// Actions that grant or take away privileges.
pub const PRIVILEGE_ACTIONS: &[&str] = &[
    "user.create",
    "user.disable",
    "user.enable",
    "user.role",
    "token.create",
    "token.revoke",
    "tenant.suspend",
    "tenant.activate",
];

/// An account the report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `user:<tenant>/<username>`, the target of its log-in records.
    pub target: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: Timestamp,
    /// The last log-in the account itself remembers (kept when the window holds none).
    pub last_login_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountActivity {
    pub account: String,
    pub role: String,
    pub disabled: bool,
    pub logins: u64,
    pub logouts: u64,
    pub failed_logins: u64,
    pub denied_requests: u64,
    pub last_login: Option<String>,
    pub last_failed_login: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InactiveAccount {
    pub account: String,
    pub role: String,
    /// `None`: never logged in.
    pub last_login: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrivilegeChange {
    /// Log index of the record.
    pub index: i64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: &'static str,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessReport {
    pub since: Option<String>,
    pub until: Option<String>,
    pub generated_at: String,
    pub inactive_days: u32,
    pub accounts: Vec<AccountActivity>,
    /// Failed log-ins naming no known account, by the name tried.
    pub unknown_login_attempts: BTreeMap<String, u64>,
    pub inactive: Vec<InactiveAccount>,
    pub privilege_changes: Vec<PrivilegeChange>,
}

/// Builds the report over `records` (the window's records of the tenant, any order) for
/// `accounts`.
pub fn access_report(
    accounts: &[Account],
    records: &[AuditRecord],
    window: (Option<Timestamp>, Option<Timestamp>),
    now: Timestamp,
    inactive_days: u32,
) -> AccessReport {
    let mut by_target: BTreeMap<&str, (AccountActivity, Option<Timestamp>)> = accounts
        .iter()
        .map(|a| {
            (
                a.target.as_str(),
                (
                    AccountActivity {
                        account: a.target.clone(),
                        role: a.role.clone(),
                        disabled: a.disabled,
                        logins: 0,
                        logouts: 0,
                        failed_logins: 0,
                        denied_requests: 0,
                        last_login: None,
                        last_failed_login: None,
                    },
                    a.last_login_at,
                ),
            )
        })
        .collect();
    let mut unknown: BTreeMap<String, u64> = BTreeMap::new();
    let mut changes = Vec::new();
    let mut last_failed: BTreeMap<String, Timestamp> = BTreeMap::new();
    for r in records {
        let e = &r.event;
        match (e.action.as_str(), e.outcome) {
            ("auth.login", AuditOutcome::Success) => {
                if let Some((a, last)) = by_target.get_mut(e.target.as_str()) {
                    a.logins += 1;
                    *last = Some(last.map_or(e.time, |l| l.max(e.time)));
                }
            }
            ("auth.login", _) => match by_target.get_mut(e.target.as_str()) {
                Some((a, _)) => {
                    a.failed_logins += 1;
                    let t = last_failed.entry(a.account.clone()).or_insert(e.time);
                    *t = (*t).max(e.time);
                }
                None => {
                    let name = e.target.strip_prefix("login:").unwrap_or(&e.target);
                    *unknown.entry(name.to_string()).or_default() += 1;
                }
            },
            ("auth.logout", _) => {
                if let Some((a, _)) = by_target.get_mut(e.target.as_str()) {
                    a.logouts += 1;
                }
            }
            _ => {}
        }
        if e.outcome == AuditOutcome::Denied
            && let parapet_types::Actor::User { .. } = &e.actor
        {
            let label = e.actor.label();
            if let Some((a, _)) = by_target
                .values_mut()
                .find(|(a, _)| a.account.rsplit('/').next() == Some(label.as_str()))
            {
                a.denied_requests += 1;
            }
        }
        if PRIVILEGE_ACTIONS.contains(&e.action.as_str()) {
            changes.push(PrivilegeChange {
                index: r.id,
                time: e.time.rfc3339(),
                actor: e.actor.label(),
                action: e.action.clone(),
                target: e.target.clone(),
                outcome: e.outcome.as_str(),
                details: e.details.clone(),
            });
        }
    }
    changes.sort_by_key(|c| c.index);
    let cutoff = Timestamp(now.0.saturating_sub(i64::from(inactive_days) * 86_400_000));
    let mut inactive = Vec::new();
    let mut activity = Vec::new();
    for (target, (mut a, last)) in by_target {
        a.last_login = last.map(|t| t.rfc3339());
        a.last_failed_login = last_failed.get(target).map(|t| t.rfc3339());
        let created = accounts
            .iter()
            .find(|x| x.target == target)
            .map(|x| x.created_at);
        if !a.disabled && last.is_none_or(|l| l < cutoff) && created.is_some_and(|c| c < cutoff) {
            inactive.push(InactiveAccount {
                account: a.account.clone(),
                role: a.role.clone(),
                last_login: a.last_login.clone(),
                created_at: created.map(|c| c.rfc3339()).unwrap_or_default(),
            });
        }
        activity.push(a);
    }
    AccessReport {
        since: window.0.map(|t| t.rfc3339()),
        until: window.1.map(|t| t.rfc3339()),
        generated_at: now.rfc3339(),
        inactive_days,
        accounts: activity,
        unknown_login_attempts: unknown,
        inactive,
        privilege_changes: changes,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use parapet_store::AuditEvent;
    use parapet_types::{Actor, TenantId, UserId};

    const DAY: i64 = 86_400_000;

    fn rec(id: i64, t: i64, action: &str, target: &str, outcome: AuditOutcome) -> AuditRecord {
        AuditRecord {
            id,
            event: AuditEvent {
                time: Timestamp(t),
                tenant: None,
                actor: Actor::User {
                    tenant: TenantId(uuid_nil()),
                    user: UserId(uuid_nil()),
                    username: "alice".into(),
                },
                action: action.into(),
                target: target.into(),
                source_ip: None,
                user_agent: None,
                outcome,
                details: serde_json::json!({}),
            },
        }
    }

    fn uuid_nil() -> uuid::Uuid {
        uuid::Uuid::nil()
    }

    fn account(name: &str, created: i64) -> Account {
        Account {
            target: format!("user:acme/{name}"),
            role: "tenant-member".into(),
            disabled: false,
            created_at: Timestamp(created),
            last_login_at: None,
        }
    }

    #[test]
    fn counts_log_ins_failures_inactivity_and_privilege_changes() {
        let now = 100 * DAY;
        let accounts = [
            account("alice", 0),
            account("bob", 0),
            account("new", now - DAY),
        ];
        let records = [
            rec(
                1,
                now - 2 * DAY,
                "auth.login",
                "user:acme/alice",
                AuditOutcome::Success,
            ),
            rec(
                2,
                now - 2 * DAY + 5,
                "auth.logout",
                "user:acme/alice",
                AuditOutcome::Success,
            ),
            rec(
                3,
                now - DAY,
                "auth.login",
                "user:acme/alice",
                AuditOutcome::Failure,
            ),
            rec(
                4,
                now - DAY,
                "auth.login",
                "login:mallory@acme",
                AuditOutcome::Failure,
            ),
            rec(
                5,
                now - DAY,
                "user.create",
                "user:acme/new",
                AuditOutcome::Success,
            ),
            rec(
                6,
                now - DAY,
                "tenant.create",
                "tenant:x",
                AuditOutcome::Denied,
            ),
        ];
        let r = access_report(&accounts, &records, (None, None), Timestamp(now), 30);
        let alice = r
            .accounts
            .iter()
            .find(|a| a.account.ends_with("alice"))
            .unwrap();
        assert_eq!(
            (
                alice.logins,
                alice.logouts,
                alice.failed_logins,
                alice.denied_requests
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(r.unknown_login_attempts.get("mallory@acme"), Some(&1));
        // bob never logged in and is older than 30 days; "new" is too young to count.
        let inactive: Vec<&str> = r.inactive.iter().map(|i| i.account.as_str()).collect();
        assert_eq!(inactive, vec!["user:acme/bob"]);
        assert_eq!(r.privilege_changes.len(), 1);
        assert_eq!(r.privilege_changes[0].index, 5);
    }
}
