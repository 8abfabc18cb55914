//! `parapet rules …` (detection rules stored on the server) and `parapet alerts …`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parapet_client::{AlertInfo, RuleInfo};

use super::output::{fields, json, out, table};
use super::{CommonArgs, Session};

#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Upload every Sigma rule (.yml/.yaml) under a directory, searched recursively. Every file
    /// is checked first; an invalid rule is reported with its file, line and reason, and nothing
    /// is uploaded.
    Import(ImportArgs),
    /// Upload one Sigma rule file.
    Add(AddArgs),
    /// List a tenant's rule files (the provider tenant's apply to every tenant).
    List(TenantArgs),
    /// Enable a rule file (by its first rule's id).
    Enable(RuleArgs),
    /// Disable a rule file: it raises no more alerts.
    Disable(RuleArgs),
    /// Evaluate the tenant's enabled rules (and the provider's) on a JSON-lines sample; nothing
    /// is stored.
    Test(TestArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TenantArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    pub dir: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    pub file: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RuleArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The rule id.
    pub rule: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Events, one JSON object a line.
    #[arg(long, value_name = "FILE")]
    pub sample: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first (on the provider tenant, every tenant's).
    List(ListArgs),
    /// Show one alert with the ids of its events.
    Show(AlertArgs),
    /// Acknowledge an alert.
    Ack(AlertArgs),
    /// Close an alert.
    Close(AlertArgs),
    /// Raise no alert for a rule (and a group key, when given) for some minutes.
    Suppress(SuppressArgs),
    /// A tenant's monitoring health: per asset when data last arrived, whether it is silent
    /// (no data for longer than its interval) and its open alerts.
    Health(HealthArgs),
    /// The tenant's escalation policy: who is paged, level after level, while an alert stays
    /// unacknowledged.
    #[command(subcommand)]
    Escalation(super::metrics::EscalationCommand),
}

#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// open, acknowledged or closed.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub severity: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AlertArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    pub id: String,
    /// A note recorded with the change.
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SuppressArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The rule id.
    #[arg(long)]
    pub rule: String,
    /// Only this group key (the host name).
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long, value_name = "MINUTES")]
    pub minutes: u32,
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if meta.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out)?;
        } else if p
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("yml") || x.eq_ignore_ascii_case("yaml"))
        {
            out.push(p);
        }
    }
    Ok(())
}

fn rules_table(rules: &[RuleInfo]) -> String {
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            vec![
                r.rule_id.clone(),
                r.title.clone(),
                r.level.clone().unwrap_or_default(),
                if r.enabled { "yes" } else { "no" }.into(),
                r.file.clone(),
            ]
        })
        .collect();
    table(&["RULE", "TITLE", "LEVEL", "ENABLED", "FILE"], &rows)
}

/// Uploads files in chunks of about 2 MiB, after checking every one locally.
async fn upload(
    s: &Session,
    tenant: &str,
    root: &Path,
    files: &[PathBuf],
) -> anyhow::Result<Vec<RuleInfo>> {
    let mut texts = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let name = f.strip_prefix(root).unwrap_or(f).display().to_string();
        let name = if name.is_empty() {
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            name
        };
        if let Err(e) = parapet_monitor::parse_rule_file(
            parapet_types::TenantId(Default::default()),
            &f.display().to_string(),
            &text,
            parapet_types::Timestamp(0),
        ) {
            errors.extend(e);
        }
        texts.push((name, text));
    }
    if !errors.is_empty() {
        let mut msg = format!("{} invalid rule(s); nothing was uploaded:", errors.len());
        for e in errors.iter().take(20) {
            msg.push_str(&format!("\n  {e}"));
        }
        bail!(msg);
    }
    let bar = ProgressBar::with_draw_target(Some(texts.len() as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rule files ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut stored = Vec::new();
    let mut chunk: Vec<(String, String)> = Vec::new();
    let mut size = 0usize;
    for (n, t) in texts {
        size += n.len() + t.len();
        chunk.push((n, t));
        if size > 2 * 1024 * 1024 {
            stored.extend(
                s.client
                    .upload_rules(tenant, &chunk)
                    .await
                    .map_err(|e| s.fail(e))?,
            );
            bar.inc(chunk.len() as u64);
            chunk.clear();
            size = 0;
        }
    }
    if !chunk.is_empty() {
        stored.extend(
            s.client
                .upload_rules(tenant, &chunk)
                .await
                .map_err(|e| s.fail(e))?,
        );
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(stored)
}

pub async fn rules(cmd: RulesCommand) -> anyhow::Result<()> {
    match cmd {
        RulesCommand::Import(a) => {
            let s = Session::open(&a.common)?;
            let mut files = Vec::new();
            collect(&a.dir, &mut files)?;
            if files.is_empty() {
                bail!("no .yml or .yaml file under {}", a.dir.display());
            }
            let stored = upload(&s, &a.tenant, &a.dir, &files).await?;
            if s.json {
                return json(&stored);
            }
            out(&format!(
                "Uploaded {} rule files to {}.\n",
                stored.len(),
                a.tenant
            ))
        }
        RulesCommand::Add(a) => {
            let s = Session::open(&a.common)?;
            let root = a.file.parent().unwrap_or(Path::new("")).to_path_buf();
            let stored = upload(&s, &a.tenant, &root, std::slice::from_ref(&a.file)).await?;
            if s.json {
                return json(&stored);
            }
            out(&rules_table(&stored))
        }
        RulesCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let rules = s
                .client
                .list_rules(&a.tenant)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&rules);
            }
            out(&rules_table(&rules))
        }
        RulesCommand::Enable(a) | RulesCommand::Disable(a) if a.rule.is_empty() => {
            bail!("give the rule id")
        }
        RulesCommand::Enable(a) => {
            let s = Session::open(&a.common)?;
            s.client
                .set_rule_enabled(&a.tenant, &a.rule, true)
                .await
                .map_err(|e| s.fail(e))?;
            out(&format!("Rule {} is enabled.\n", a.rule))
        }
        RulesCommand::Disable(a) => {
            let s = Session::open(&a.common)?;
            s.client
                .set_rule_enabled(&a.tenant, &a.rule, false)
                .await
                .map_err(|e| s.fail(e))?;
            out(&format!("Rule {} is disabled.\n", a.rule))
        }
        RulesCommand::Test(a) => {
            let s = Session::open(&a.common)?;
            let sample = std::fs::read(&a.sample)
                .with_context(|| format!("cannot read {}", a.sample.display()))?;
            let matches = s
                .client
                .test_rules(&a.tenant, sample)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                let mut text = String::new();
                for m in &matches {
                    text.push_str(&serde_json::to_string(m).context("cannot encode")?);
                    text.push('\n');
                }
                return out(&text);
            }
            let rows: Vec<Vec<String>> = matches
                .iter()
                .map(|m| {
                    vec![
                        m.event_index.to_string(),
                        m.rule_id.clone(),
                        m.title.clone(),
                        m.level.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            out(&table(&["EVENT", "RULE", "TITLE", "LEVEL"], &rows))
        }
    }
}

fn alerts_table(alerts: &[AlertInfo]) -> String {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                a.alert_at.clone(),
                a.tenant.clone(),
                a.severity.clone(),
                a.title.clone(),
                a.group_key.clone(),
                a.count.to_string(),
                a.status.clone(),
                a.id.clone(),
            ]
        })
        .collect();
    table(
        &[
            "RAISED", "TENANT", "SEVERITY", "RULE", "GROUP", "EVENTS", "STATUS", "ID",
        ],
        &rows,
    )
}

fn show(a: &AlertInfo) -> String {
    fields(&[
        ("id", a.id.clone()),
        ("tenant", a.tenant.clone()),
        ("rule", format!("{} ({})", a.title, a.rule_id)),
        ("severity", a.severity.clone()),
        ("group", a.group_key.clone()),
        ("status", a.status.clone()),
        ("events", a.count.to_string()),
        ("first event", a.first_event_at.clone()),
        ("last event", a.last_event_at.clone()),
        ("raised", a.alert_at.clone()),
        (
            "acknowledged",
            a.acknowledged_by
                .as_ref()
                .map(|b| format!("{b} at {}", a.acknowledged_at.clone().unwrap_or_default()))
                .unwrap_or_default(),
        ),
        (
            "closed",
            a.closed_by
                .as_ref()
                .map(|b| format!("{b} at {}", a.closed_at.clone().unwrap_or_default()))
                .unwrap_or_default(),
        ),
    ])
}

pub async fn alerts(cmd: AlertsCommand) -> anyhow::Result<()> {
    match cmd {
        AlertsCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let mut found: Vec<AlertInfo> = Vec::new();
            let mut cursor: Option<String> = None;
            while found.len() < a.limit as usize {
                let page = s
                    .client
                    .list_alerts(
                        &a.tenant,
                        a.status.as_deref(),
                        a.severity.as_deref(),
                        Some((a.limit - found.len() as u32).min(1000)),
                        cursor.as_deref(),
                    )
                    .await
                    .map_err(|e| s.fail(e))?;
                found.extend(page.items);
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            if s.json {
                return json(&found);
            }
            out(&alerts_table(&found))
        }
        AlertsCommand::Show(a) => {
            let s = Session::open(&a.common)?;
            let alert = s
                .client
                .get_alert(&a.tenant, &a.id)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&alert);
            }
            out(&show(&alert))
        }
        AlertsCommand::Ack(a) | AlertsCommand::Close(a) if a.id.is_empty() => bail!("give the id"),
        AlertsCommand::Ack(a) => verb(a, "ack").await,
        AlertsCommand::Escalation(c) => super::metrics::escalation(c).await,
        AlertsCommand::Health(a) => {
            let s = Session::open(&a.common)?;
            let h = s
                .client
                .monitoring_health(&a.tenant)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&h);
            }
            let rows: Vec<Vec<String>> = h
                .items
                .iter()
                .map(|i| {
                    vec![
                        i.name.clone(),
                        if i.silent {
                            "SILENT".into()
                        } else {
                            i.health.clone()
                        },
                        i.last_data_at.clone().unwrap_or_else(|| "never".into()),
                        format!("{} min", i.silent_after_minutes),
                        i.open_alerts.to_string(),
                    ]
                })
                .collect();
            out(&format!(
                "{}: {} assets, {} silent, {} open alerts\n{}",
                h.tenant,
                h.assets,
                h.silent,
                h.open_alerts,
                crate::cli::output::table(
                    &[
                        "ASSET",
                        "HEALTH",
                        "LAST DATA",
                        "SILENT AFTER",
                        "OPEN ALERTS"
                    ],
                    &rows
                )
            ))
        }
        AlertsCommand::Close(a) => verb(a, "close").await,
        AlertsCommand::Suppress(a) => {
            let s = Session::open(&a.common)?;
            let r = s
                .client
                .suppress_alerts(&a.tenant, &a.rule, a.group.as_deref(), a.minutes, &a.reason)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&r);
            }
            out(&format!(
                "Alerts of rule {}{} are suppressed until {}.\n",
                r.rule_id,
                r.group_key
                    .as_ref()
                    .map(|g| format!(" on {g}"))
                    .unwrap_or_default(),
                r.until
            ))
        }
    }
}

async fn verb(a: AlertArgs, verb: &str) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let alert = s
        .client
        .alert_verb(&a.tenant, &a.id, verb, a.note.as_deref())
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&alert);
    }
    out(&format!("Alert {} is {}.\n", alert.id, alert.status))
}
