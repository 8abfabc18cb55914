//! `parapet policy show|set`, `parapet user accounts|unlock|password|sweep-dormant`: account
//! policies and log-in state (X.1642 8.1.1(3)).

use anyhow::bail;
use parapet_client::{AccountInfo, AccountPolicyView};

use super::output::{clean, fields, json, out, table};
use super::{CommonArgs, Session, UserArgs, UserListArgs, read_password};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Show a tenant's account policy (its own, or the provider's defaults).
    Show(PolicyShowArgs),
    /// Change rules of a tenant's account policy; rules not given keep their values.
    Set(PolicySetArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct PolicyShowArgs {
    /// The tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PolicySetArgs {
    /// The tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Consecutive failed log-ins that lock an account (1–20).
    #[arg(long, value_name = "N")]
    pub lockout_threshold: Option<u32>,
    /// Wait of the first temporary lockout, in seconds.
    #[arg(long, value_name = "SECS")]
    pub lockout_base_secs: Option<u32>,
    /// Factor by which each further temporary lockout multiplies the wait.
    #[arg(long, value_name = "N")]
    pub lockout_multiplier: Option<u32>,
    /// Lock until an administrator unlocks after this many temporary lockouts (0: never).
    #[arg(long, value_name = "N")]
    pub permanent_after: Option<u32>,
    /// Log-in attempts per name and minute.
    #[arg(long, value_name = "N")]
    pub throttle_per_account: Option<u32>,
    /// Log-in attempts per source address and minute (effective in the provider's policy).
    #[arg(long, value_name = "N")]
    pub throttle_per_address: Option<u32>,
    /// Minimum password length (8–128).
    #[arg(long, value_name = "N")]
    pub password_min_length: Option<u32>,
    /// Character classes a password needs, of lower, upper, digit, other (0–4).
    #[arg(long, value_name = "N")]
    pub password_min_classes: Option<u32>,
    /// How many previous passwords may not be reused (0–24).
    #[arg(long, value_name = "N")]
    pub password_history: Option<u32>,
    /// Days after which a password must be changed (0: never).
    #[arg(long, value_name = "DAYS")]
    pub password_max_age_days: Option<u32>,
    /// Refuse common passwords.
    #[arg(long, value_name = "BOOL")]
    pub password_deny_common: Option<bool>,
    /// Days without log-in after which an account is disabled (0: never).
    #[arg(long, value_name = "DAYS")]
    pub dormant_days: Option<u32>,
    /// Days after a dormancy disabling after which the account is deleted (0: never).
    #[arg(long, value_name = "DAYS")]
    pub dormant_delete_days: Option<u32>,
    /// Consecutive wrong second-factor codes that lock an account.
    #[arg(long, value_name = "N")]
    pub mfa_lockout_threshold: Option<u32>,
    /// Every user must log in with a second factor (those without one may only enrol one).
    #[arg(long, value_name = "BOOL")]
    pub mfa_required: Option<bool>,
    /// New users and role changes go through approval requests.
    #[arg(long, value_name = "BOOL")]
    pub approval_required: Option<bool>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PasswordArgs {
    /// Your log-in name (`admin`, `alice@acme`); by default the stored log-in's.
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// Read the current and the new password from the first two lines of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn show(v: &AccountPolicyView) -> anyhow::Result<()> {
    let mut pairs = vec![("tenant", clean(&v.tenant)), ("source", clean(&v.source))];
    for (k, val) in &v.policy {
        pairs.push((k.as_str(), clean(&val.to_string())));
    }
    out(&fields(&pairs))
}

pub async fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Show(a) => {
            let s = Session::open(&a.common)?;
            let v = s
                .client
                .account_policy(&a.tenant)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&v);
            }
            show(&v)
        }
        PolicyCommand::Set(a) => {
            let mut changes = serde_json::Map::new();
            let numbers = [
                ("lockout_threshold", a.lockout_threshold),
                ("lockout_base_secs", a.lockout_base_secs),
                ("lockout_multiplier", a.lockout_multiplier),
                ("permanent_after", a.permanent_after),
                ("throttle_per_account", a.throttle_per_account),
                ("throttle_per_address", a.throttle_per_address),
                ("password_min_length", a.password_min_length),
                ("password_min_classes", a.password_min_classes),
                ("password_history", a.password_history),
                ("password_max_age_days", a.password_max_age_days),
                ("dormant_days", a.dormant_days),
                ("dormant_delete_days", a.dormant_delete_days),
                ("mfa_lockout_threshold", a.mfa_lockout_threshold),
            ];
            for (k, v) in numbers {
                if let Some(v) = v {
                    changes.insert(k.into(), v.into());
                }
            }
            if let Some(b) = a.password_deny_common {
                changes.insert("password_deny_common".into(), b.into());
            }
            if let Some(b) = a.mfa_required {
                changes.insert("mfa_required".into(), b.into());
            }
            if let Some(b) = a.approval_required {
                changes.insert("approval_required".into(), b.into());
            }
            if changes.is_empty() {
                bail!("nothing to change: give at least one rule, e.g. --lockout-threshold 5");
            }
            let s = Session::open(&a.common)?;
            let v = s
                .client
                .set_account_policy(&a.tenant, &changes)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&v);
            }
            show(&v)
        }
    }
}

fn account_rows(list: &[AccountInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let locked = if a.locked_permanently {
                "until unlocked".to_string()
            } else {
                a.locked_until.clone().unwrap_or_else(|| "no".into())
            };
            vec![
                clean(&a.login),
                clean(&a.role),
                clean(&a.status),
                clean(a.last_login_at.as_deref().unwrap_or("never")),
                a.failures.to_string(),
                a.lockouts.to_string(),
                clean(&locked),
                clean(&a.password_changed_at),
            ]
        })
        .collect();
    table(
        &[
            "LOGIN",
            "ROLE",
            "STATUS",
            "LAST LOGIN",
            "FAILURES",
            "LOCKOUTS",
            "LOCKED",
            "PASSWORD SET",
        ],
        &rows,
    )
}

/// `parapet user accounts --tenant T`.
pub async fn accounts(a: UserListArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let list = s.client.accounts(&a.tenant).await.map_err(|e| s.fail(e))?;
    if s.json {
        return json(&list);
    }
    out(&account_rows(&list))
}

/// `parapet user unlock --tenant T NAME`.
pub async fn unlock(a: UserArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let acc = s
        .client
        .unlock_user(&a.tenant, &a.name)
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&acc);
    }
    out(&format!("Unlocked {}\n", clean(&acc.login)))
}

/// `parapet user password`: changes your own password with the current one.
pub async fn password(a: PasswordArgs) -> anyhow::Result<()> {
    let s = Session::open_anonymous(&a.common)?;
    let username = match a.username {
        Some(u) => u,
        None => match s.client.whoami().await {
            Ok(me) => me.login,
            Err(_) => bail!("give --username NAME (no usable stored log-in)"),
        },
    };
    let current = read_password(a.password_stdin, "Current password: ", false)?;
    let new = read_password(a.password_stdin, "New password: ", true)?;
    s.client
        .change_password(&username, &current, &new)
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&serde_json::json!({ "changed": true, "username": username }));
    }
    out(&format!("Password of {} changed\n", clean(&username)))
}

/// `parapet user sweep-dormant`.
pub async fn sweep(common: CommonArgs) -> anyhow::Result<()> {
    let s = Session::open(&common)?;
    let r = s.client.dormancy_sweep().await.map_err(|e| s.fail(e))?;
    if s.json {
        return json(&r);
    }
    let mut text = String::new();
    for u in &r.disabled {
        text.push_str(&format!("disabled {}\n", clean(u)));
    }
    for u in &r.deleted {
        text.push_str(&format!("deleted {}\n", clean(u)));
    }
    if text.is_empty() {
        text.push_str("No dormant accounts\n");
    }
    out(&text)
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The period in days.
    #[arg(long, value_name = "DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `parapet user report --tenant T [--days N]`.
pub async fn report(a: ReportArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let r = s
        .client
        .account_report(&a.tenant, a.days)
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&r);
    }
    let mut rows = Vec::new();
    for (finding, list) in [
        ("dormant", &r.dormant),
        ("over-privileged", &r.over_privileged),
        ("orphaned", &r.orphaned),
        ("locked", &r.locked),
    ] {
        for f in list {
            rows.push(vec![
                finding.to_string(),
                clean(&f.login),
                clean(&f.role),
                clean(&f.detail),
            ]);
        }
    }
    out(&table(&["FINDING", "LOGIN", "ROLE", "DETAIL"], &rows))
}
