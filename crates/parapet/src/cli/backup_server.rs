//! `parapet backup policy|compliance|reports|findings` (the server's backup policies and evidence,
//! X.1642 8.10, 7.2.2.2(7)) and what the offline backup commands need to report to the server
//! (`--report-to`) and to respect a time window (`--window`).

use anyhow::{Context, anyhow, bail};
use parapet_client::{BackupPolicyInput, BackupReportInput, BackupRetention, Client};
use serde_json::Value;

use super::output::{fields, json, note, out, table};
use super::{CommonArgs, Session};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Set a tenant's backup policy (provider staff): creates it or makes a new version.
    Set(PolicySetArgs),
    /// Show one policy.
    Show(PolicyArgs),
    /// List a tenant's policies.
    List(TenantOnly),
    /// Remove a policy (its reports stay as evidence).
    Rm(PolicyArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TenantOnly {
    /// The tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// `default` (the whole tenant) or a service's name.
    #[arg(value_name = "NAME", default_value = "default")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PolicySetArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// `default` (the whole tenant) or a service's name.
    #[arg(value_name = "NAME", default_value = "default")]
    pub name: String,
    /// Recovery point objective, e.g. `24h`, `90m`, `7d` (or seconds).
    #[arg(long, value_name = "DURATION")]
    pub rpo: String,
    /// Recovery time objective, e.g. `4h`.
    #[arg(long, value_name = "DURATION")]
    pub rto: String,
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,
    /// How many copies of each backup (on-site and off-site together; default: one per site).
    #[arg(long, value_name = "N")]
    pub copies: Option<u32>,
    /// No on-site copy required.
    #[arg(long)]
    pub no_onsite: bool,
    /// An off-site copy (S3-compatible repository) is required.
    #[arg(long)]
    pub offsite: bool,
    /// Back up this often (default: every RPO).
    #[arg(long, value_name = "DURATION")]
    pub every: Option<String>,
    /// Backups only inside this daily window (UTC), e.g. `01:00-05:00`.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    pub window: Option<String>,
    /// A restore test is due this often, e.g. `30d`.
    #[arg(long, value_name = "DURATION")]
    pub restore_test_every: Option<String>,
    /// What is backed up, repeatable: `file` (file trees, the default), `vm-image` (virtual
    /// machines' disk images) and/or `vm-snapshot` (hypervisor snapshots: no backup on their
    /// own, so a policy of snapshots only is accepted with a warning, X.1642 8.10-20).
    #[arg(long = "level", value_name = "LEVEL", value_parser = ["file", "vm-image", "vm-snapshot"])]
    pub levels: Vec<String>,
    /// The version you read (refused if someone changed it meanwhile; 0: must be new).
    #[arg(long, value_name = "N")]
    pub version: Option<i64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ComplianceArgs {
    /// The tenant (provider staff: without it, every tenant).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReportsArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Only this policy's reports.
    #[arg(long, value_name = "NAME")]
    pub policy: Option<String>,
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FindingsArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Also the resolved ones.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Reporting a run to the server as evidence.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportTo {
    /// Report the result to this Parapet server (token from PARAPET_TOKEN: an API token with
    /// the `backup` scope).
    #[arg(long, value_name = "URL", requires = "report_tenant")]
    pub report_to: Option<String>,
    /// The tenant the backup belongs to.
    #[arg(long = "tenant", id = "report_tenant", value_name = "TENANT")]
    pub report_tenant: Option<String>,
    /// The tenant's policy this run carries out.
    #[arg(long = "policy", value_name = "NAME", default_value = "default")]
    pub report_policy: String,
    /// Where the repository is: `on-site` or `off-site` (default: off-site for s3:// URLs).
    #[arg(long, value_name = "SITE", value_parser = ["on-site", "off-site"])]
    pub site: Option<String>,
}

/// A daily time window backups must keep to.
#[derive(Debug, Clone, clap::Args)]
pub struct WindowArgs {
    /// Run only inside this daily window (UTC), e.g. `01:00-05:00`: refused outside it.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    pub window: Option<String>,
    /// Outside the window, wait for it to open instead of refusing.
    #[arg(long)]
    pub wait_for_window: bool,
}

/// Taking the terms of a run from the tenant's policy on the server.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyFrom {
    /// Take the time window from the tenant's policy (--tenant, --policy) on this Parapet
    /// server instead of --window (token from PARAPET_TOKEN, e.g. of scope `backup`).
    #[arg(
        long = "server",
        value_name = "URL",
        conflicts_with = "window",
        requires = "report_tenant"
    )]
    pub policy_server: Option<String>,
    /// After the backup, prune the repository by the policy's retention (needs --server).
    #[arg(long, requires = "policy_server")]
    pub prune: bool,
}

/// A policy of tenant `tenant` read from `server` with the token of PARAPET_TOKEN.
pub fn fetch_policy(server: &str, tenant: &str, policy: &str) -> anyhow::Result<Value> {
    let token = std::env::var("PARAPET_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| anyhow!("--server needs a token in PARAPET_TOKEN"))?;
    let client = Client::new(server)?.with_token(token.trim().to_string());
    tokio::runtime::Handle::current()
        .block_on(client.backup_policy(tenant, policy))
        .with_context(|| {
            format!("cannot read the backup policy {policy} of {tenant} from {server}")
        })
}

/// The `prune` retention of a policy as the server shows it.
pub fn keep_of(policy: &Value) -> parapet_backup::KeepPolicy {
    let n = |k: &str| {
        policy
            .get("retention")
            .and_then(|r| r.get(k))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    parapet_backup::KeepPolicy {
        last: n("last"),
        hourly: n("hourly"),
        daily: n("daily"),
        weekly: n("weekly"),
        monthly: n("monthly"),
        yearly: n("yearly"),
        within_secs: 0,
    }
}

impl WindowArgs {
    /// Refuses, or waits, when outside the window.
    pub fn enforce(&self) -> anyhow::Result<()> {
        self.enforce_window(self.window.as_deref())
    }

    /// Refuses, or waits, when outside `window` (none: any time).
    pub fn enforce_window(&self, window: Option<&str>) -> anyhow::Result<()> {
        let Some(w) = window else {
            return Ok(());
        };
        let w = parapet_backup_server::Window::parse(w).map_err(|e| anyhow!(e))?;
        let env = parapet_types::Env::system();
        let wait = w.wait_ms(env.now());
        if wait == 0 {
            return Ok(());
        }
        if !self.wait_for_window {
            bail!(
                "outside the backup window {w} (UTC): the window opens in {} min; run it then, \
                 or add --wait-for-window",
                wait / 60_000 + 1
            );
        }
        note(&format!(
            "waiting {} min for the backup window {w} (UTC) to open",
            wait / 60_000 + 1
        ));
        std::thread::sleep(std::time::Duration::from_millis(
            u64::try_from(wait).unwrap_or(0),
        ));
        Ok(())
    }
}

impl ReportTo {
    /// Sends `input` (filled with the tenant's policy and site) to the server, if asked.
    pub fn send(&self, mut input: BackupReportInput) -> anyhow::Result<()> {
        let (Some(url), Some(tenant)) = (&self.report_to, &self.report_tenant) else {
            return Ok(());
        };
        let token = std::env::var("PARAPET_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                anyhow!("--report-to needs a token in PARAPET_TOKEN (scope 'backup')")
            })?;
        input.policy = Some(self.report_policy.clone());
        input.site = self.site.clone();
        let client = Client::new(url)?.with_token(token.trim().to_string());
        let handle = tokio::runtime::Handle::current();
        handle
            .block_on(client.report_backup(tenant, &input))
            .with_context(|| format!("cannot report the {} to {url}", input.kind))?;
        Ok(())
    }
}

/// Seconds of `30s`, `15m`, `24h`, `7d` or a plain number of seconds.
pub fn duration_secs(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (s.get(..i).unwrap_or(""), c),
        _ => (s, 's'),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("invalid duration {s:?}: expected e.g. 30s, 15m, 24h or 7d"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => bail!("invalid duration {s:?}: the unit must be s, m, h or d"),
    };
    Ok(n.saturating_mul(mult))
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}

fn policy_fields(p: &Value) -> String {
    fields(&[
        ("tenant", s(p, "tenant")),
        ("policy", s(p, "name")),
        ("version", s(p, "version")),
        ("RPO", format!("{} s", s(p, "rpo_secs"))),
        ("RTO", format!("{} s", s(p, "rto_secs"))),
        ("retention", s(p, "prune")),
        ("copies", s(p, "copies")),
        ("on-site", s(p, "onsite")),
        ("off-site", s(p, "offsite")),
        ("encryption", s(p, "encryption")),
        ("every", format!("{} s", s(p, "schedule_secs"))),
        ("window (UTC)", s(p, "window")),
        (
            "levels",
            p.get("levels")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
        ),
        (
            "restore test every",
            format!("{} s", s(p, "restore_test_secs")),
        ),
        (
            "updated",
            format!("{} by {}", s(p, "updated_at"), s(p, "updated_by")),
        ),
    ])
}

/// The policy's warnings on standard error (they stay in the JSON too).
fn warn_policy(p: &Value) {
    for w in p
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        note(&format!("warning: {w}"));
    }
}

pub async fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Set(a) => {
            let sess = Session::open(&a.common)?;
            let copies = a
                .copies
                .unwrap_or(u32::from(!a.no_onsite) + u32::from(a.offsite));
            let input = BackupPolicyInput {
                rpo_secs: duration_secs(&a.rpo)?,
                rto_secs: duration_secs(&a.rto)?,
                retention: BackupRetention {
                    last: a.keep_last,
                    hourly: a.keep_hourly,
                    daily: a.keep_daily,
                    weekly: a.keep_weekly,
                    monthly: a.keep_monthly,
                    yearly: a.keep_yearly,
                },
                copies: copies.max(1),
                onsite: !a.no_onsite,
                offsite: a.offsite,
                encryption: true,
                schedule_secs: a
                    .every
                    .as_deref()
                    .map(duration_secs)
                    .transpose()?
                    .unwrap_or(0),
                window: a.window.clone(),
                restore_test_secs: a
                    .restore_test_every
                    .as_deref()
                    .map(duration_secs)
                    .transpose()?
                    .unwrap_or(0),
                levels: if a.levels.is_empty() {
                    vec!["file".into()]
                } else {
                    a.levels.clone()
                },
                version: a.version,
            };
            let p = sess
                .client
                .set_backup_policy(&a.tenant, &a.name, &input)
                .await?;
            warn_policy(&p);
            if a.common.json {
                return json(&p);
            }
            out(&policy_fields(&p))
        }
        PolicyCommand::Show(a) => {
            let sess = Session::open(&a.common)?;
            let p = sess.client.backup_policy(&a.tenant, &a.name).await?;
            warn_policy(&p);
            if a.common.json {
                return json(&p);
            }
            out(&policy_fields(&p))
        }
        PolicyCommand::List(a) => {
            let sess = Session::open(&a.common)?;
            let list = sess.client.backup_policies(&a.tenant).await?;
            if a.common.json {
                return json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|p| {
                    vec![
                        s(p, "name"),
                        s(p, "version"),
                        s(p, "rpo_secs"),
                        s(p, "rto_secs"),
                        s(p, "prune"),
                        s(p, "copies"),
                        s(p, "offsite"),
                        s(p, "window"),
                    ]
                })
                .collect();
            out(&table(
                &[
                    "NAME",
                    "VERSION",
                    "RPO_S",
                    "RTO_S",
                    "RETENTION",
                    "COPIES",
                    "OFFSITE",
                    "WINDOW",
                ],
                &rows,
            ))
        }
        PolicyCommand::Rm(a) => {
            let sess = Session::open(&a.common)?;
            sess.client.delete_backup_policy(&a.tenant, &a.name).await?;
            if a.common.json {
                return json(&serde_json::json!({"removed": a.name}));
            }
            out(&format!(
                "removed backup policy {} of {}\n",
                a.name, a.tenant
            ))
        }
    }
}

pub async fn compliance(a: ComplianceArgs) -> anyhow::Result<()> {
    let sess = Session::open(&a.common)?;
    let list = match &a.tenant {
        Some(t) => sess.client.backup_compliance(t).await?,
        None => sess.client.backup_compliance_overview().await?,
    };
    if a.common.json {
        json(&list)?;
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|c| {
                let kinds: Vec<String> = c
                    .get("findings")
                    .and_then(Value::as_array)
                    .map(|f| f.iter().map(|f| s(f, "kind")).collect())
                    .unwrap_or_default();
                vec![
                    s(c, "tenant"),
                    s(c, "policy"),
                    if c.get("compliant") == Some(&Value::Bool(true)) {
                        "yes".into()
                    } else {
                        "NO".into()
                    },
                    s(c, "last_backup_at"),
                    s(c, "achieved_rto_ms"),
                    kinds.join(","),
                    c.get("warnings")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                        .to_string(),
                ]
            })
            .collect();
        out(&table(
            &[
                "TENANT",
                "POLICY",
                "COMPLIANT",
                "LAST_BACKUP",
                "ACHIEVED_RTO_MS",
                "FINDINGS",
                "WARNINGS",
            ],
            &rows,
        ))?;
        for c in &list {
            for w in c
                .get("warnings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                out(&format!(
                    "warning ({}/{}): {w}\n",
                    s(c, "tenant"),
                    s(c, "policy")
                ))?;
            }
        }
    }
    Ok(())
}

pub async fn reports(a: ReportsArgs) -> anyhow::Result<()> {
    let sess = Session::open(&a.common)?;
    let list = sess
        .client
        .backup_reports(&a.tenant, a.policy.as_deref(), a.limit.clamp(1, 1000))
        .await?;
    if a.common.json {
        return json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                s(r, "at"),
                s(r, "policy"),
                s(r, "kind"),
                if r.get("ok") == Some(&Value::Bool(true)) {
                    "ok".into()
                } else {
                    "FAILED".into()
                },
                s(r, "site"),
                s(r, "snapshot"),
                s(r, "duration_ms"),
                s(r, "repository"),
            ]
        })
        .collect();
    out(&table(
        &[
            "AT",
            "POLICY",
            "KIND",
            "RESULT",
            "SITE",
            "SNAPSHOT",
            "DURATION_MS",
            "REPOSITORY",
        ],
        &rows,
    ))
}

pub async fn findings(a: FindingsArgs) -> anyhow::Result<()> {
    let sess = Session::open(&a.common)?;
    let list = sess.client.backup_findings(&a.tenant, a.all).await?;
    if a.common.json {
        return json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            vec![
                s(f, "opened_at"),
                s(f, "policy"),
                s(f, "kind"),
                s(f, "resolved_at"),
                s(f, "detail"),
            ]
        })
        .collect();
    out(&table(
        &["OPENED", "POLICY", "KIND", "RESOLVED", "DETAIL"],
        &rows,
    ))
}
