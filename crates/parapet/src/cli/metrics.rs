//! `parapet metrics …`: an asset's Prometheus scrape target, its metrics over time, and the
//! tenant's threshold and baseline rules.

use std::collections::BTreeMap;

use anyhow::bail;
use serde_json::{Value, json};

use super::output::{fields, json as print_json, out, rfc3339_millis, table};
use super::{CommonArgs, Session};

#[derive(Debug, clap::Subcommand)]
pub enum MetricsCommand {
    /// Where an asset's metrics are scraped from: set, show, rm, scrape (now).
    #[command(subcommand)]
    Target(TargetCommand),
    /// The metric names an asset has series of.
    Names(AssetArgs),
    /// A metric of an asset over time (every series, averaged into at most --points buckets),
    /// with the asset's alerts in the range.
    Query(QueryArgs),
    /// Threshold and baseline rules over metrics: list, add, set, rm.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum TargetCommand {
    /// Scrape ASSET from URL every --interval seconds. The URL's host must be the asset's name
    /// or one of its addresses.
    Set(TargetSetArgs),
    Show(AssetArgs),
    /// Stop scraping (the samples stay for the retention).
    Rm(AssetArgs),
    /// Scrape now and show what was stored.
    Scrape(AssetArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct AssetArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Asset name or id.
    pub asset: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TargetSetArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    pub asset: String,
    /// The exposition endpoint, e.g. http://10.0.0.5:9100/metrics.
    pub url: String,
    /// Seconds between scrapes (5 to 86400).
    #[arg(long, default_value_t = 60)]
    pub interval: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    pub asset: String,
    /// The metric name, e.g. node_load1.
    pub metric: String,
    /// RFC 3339 start (default: an hour before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// RFC 3339 end (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// At most this many points per series.
    #[arg(long)]
    pub points: Option<u32>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    List(TenantArgs),
    /// Add a rule: `--op '>' --value 5 --for 300` (threshold) or `--baseline --k 3` (learned
    /// EWMA baseline). Its alerts carry the rule id `parapet-metric-NAME`.
    Add(RuleArgs),
    /// Replace a rule by name (what it learned starts again).
    Set(RuleArgs),
    Rm(RuleNameArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TenantArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RuleNameArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RuleArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Lower-case letters, digits, '-' and '_'.
    pub name: String,
    /// The metric name.
    #[arg(long)]
    pub metric: String,
    /// Only this asset (default: every asset of the tenant).
    #[arg(long)]
    pub asset: Option<String>,
    /// A label the series must carry, NAME=VALUE (repeatable).
    #[arg(long = "label", value_name = "NAME=VALUE")]
    pub labels: Vec<String>,
    /// A learned baseline rule (|z| > --k) instead of a threshold.
    #[arg(long)]
    pub baseline: bool,
    /// Compare the per-second rate of a counter.
    #[arg(long)]
    pub rate: bool,
    /// `>`, `>=`, `<`, `<=`, `==` or `!=`.
    #[arg(long, default_value = ">")]
    pub op: String,
    #[arg(long, allow_hyphen_values = true)]
    pub value: Option<f64>,
    /// Seconds the condition must hold before an alert.
    #[arg(long = "for", value_name = "SECONDS")]
    pub for_secs: Option<u32>,
    #[arg(long)]
    pub k: Option<f64>,
    #[arg(long)]
    pub warmup: Option<u32>,
    #[arg(long)]
    pub alpha: Option<f64>,
    /// informational, low, medium, high or critical.
    #[arg(long)]
    pub severity: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn rule_body(a: &RuleArgs) -> anyhow::Result<Value> {
    let mut labels = BTreeMap::new();
    for l in &a.labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("--label {l:?} is not NAME=VALUE");
        };
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(json!({
        "name": a.name, "metric": a.metric, "asset": a.asset, "labels": labels,
        "kind": if a.baseline { "baseline" } else { "threshold" }, "rate": a.rate, "op": a.op,
        "value": a.value, "for_secs": a.for_secs, "k": a.k, "warmup": a.warmup, "alpha": a.alpha,
        "severity": a.severity, "enabled": !a.disabled,
    }))
}

/// A member of a JSON object (null when absent).
fn g<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&Value::Null)
}

/// An element of a JSON array (null when absent).
fn gi(v: &Value, i: usize) -> &Value {
    v.get(i).unwrap_or(&Value::Null)
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            // 1000000.0 reads as 1000000.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn target_text(t: &Value) -> String {
    fields(&[
        ("asset", s(g(t, "asset"))),
        ("url", s(g(t, "url"))),
        ("interval", format!("{} s", s(g(t, "interval_secs")))),
        ("next due", s(g(t, "next_due_at"))),
        ("last scrape", s(g(t, "last_scrape_at"))),
        ("last samples", s(g(t, "last_samples"))),
        ("last error", s(g(t, "last_error"))),
    ])
}

fn rule_condition(r: &Value) -> String {
    let labels = g(r, "labels")
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let mut m = s(g(r, "metric"));
    if !labels.is_empty() {
        m = format!("{m}{{{labels}}}");
    }
    if g(r, "rate").as_bool() == Some(true) {
        m = format!("rate({m})");
    }
    if g(r, "kind").as_str() == Some("baseline") {
        format!(
            "|z({m})| > {} after {} samples",
            s(g(r, "k")),
            s(g(r, "warmup"))
        )
    } else {
        format!(
            "{m} {} {} for {} s",
            s(g(r, "op")),
            s(g(r, "value")),
            s(g(r, "for_secs"))
        )
    }
}

pub async fn run(c: MetricsCommand) -> anyhow::Result<()> {
    match c {
        MetricsCommand::Target(TargetCommand::Set(a)) => {
            let ses = Session::open(&a.common)?;
            let t = ses
                .client
                .set_metrics_target(&a.tenant, &a.asset, &a.url, a.interval)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&t);
            }
            out(&target_text(&t))
        }
        MetricsCommand::Target(TargetCommand::Show(a)) => {
            let ses = Session::open(&a.common)?;
            let t = ses
                .client
                .metrics_target(&a.tenant, &a.asset)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&t);
            }
            out(&target_text(&t))
        }
        MetricsCommand::Target(TargetCommand::Rm(a)) => {
            let ses = Session::open(&a.common)?;
            ses.client
                .remove_metrics_target(&a.tenant, &a.asset)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&json!({"removed": a.asset}));
            }
            out(&format!("{} is no longer scraped", a.asset))
        }
        MetricsCommand::Target(TargetCommand::Scrape(a)) => {
            let ses = Session::open(&a.common)?;
            let r = ses
                .client
                .scrape_now(&a.tenant, &a.asset)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&r);
            }
            if let Some(e) = g(&r, "error").as_str() {
                bail!("scrape of {} failed: {e}", a.asset);
            }
            out(&format!(
                "{} samples stored ({} bad lines, {} series dropped), {} alerts raised",
                s(g(&r, "samples")),
                s(g(&r, "bad_lines")),
                s(g(&r, "dropped")),
                s(g(&r, "alerts_raised"))
            ))
        }
        MetricsCommand::Names(a) => {
            let ses = Session::open(&a.common)?;
            let v = ses
                .client
                .metric_names(&a.tenant, &a.asset)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|n| vec![s(g(n, "name")), s(g(n, "series"))])
                        .collect()
                })
                .unwrap_or_default();
            out(&table(&["METRIC", "SERIES"], &rows))
        }
        MetricsCommand::Query(a) => {
            let ses = Session::open(&a.common)?;
            let q = ses
                .client
                .metric_query(
                    &a.tenant,
                    &a.asset,
                    &a.metric,
                    a.from.clone(),
                    a.to.clone(),
                    a.points,
                )
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&q);
            }
            let mut rows = Vec::new();
            for series in g(&q, "series").as_array().into_iter().flatten() {
                for p in g(series, "points").as_array().into_iter().flatten() {
                    rows.push(vec![
                        gi(p, 0).as_i64().map(rfc3339_millis).unwrap_or_default(),
                        s(g(series, "labels")),
                        s(gi(p, 1)),
                    ]);
                }
            }
            let mut text = format!(
                "{} on {} from {} to {}\n{}",
                s(g(&q, "metric")),
                s(g(&q, "asset")),
                s(g(&q, "from")),
                s(g(&q, "to")),
                table(&["TIME", "LABELS", "VALUE"], &rows)
            );
            for al in g(&q, "alerts").as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "\nalert {} {} {}: {}",
                    g(al, "at").as_i64().map(rfc3339_millis).unwrap_or_default(),
                    s(g(al, "severity")),
                    s(g(al, "rule_id")),
                    s(g(al, "title"))
                ));
            }
            out(&text)
        }
        MetricsCommand::Rules(RulesCommand::List(a)) => {
            let ses = Session::open(&a.common)?;
            let v = ses
                .client
                .metric_rules(&a.tenant)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            vec![
                                s(g(r, "name")),
                                s(g(r, "kind")),
                                g(r, "asset").as_str().unwrap_or("all").to_string(),
                                rule_condition(r),
                                s(g(r, "severity")),
                                s(g(r, "enabled")),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            out(&table(
                &["NAME", "KIND", "ASSET", "CONDITION", "SEVERITY", "ENABLED"],
                &rows,
            ))
        }
        MetricsCommand::Rules(RulesCommand::Add(a))
        | MetricsCommand::Rules(RulesCommand::Set(a))
            if a.name.is_empty() =>
        {
            bail!("give the rule's name")
        }
        MetricsCommand::Rules(RulesCommand::Add(a)) => {
            let ses = Session::open(&a.common)?;
            let r = ses
                .client
                .create_metric_rule(&a.tenant, &rule_body(&a)?)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&r);
            }
            out(&format!(
                "rule {} added: {} (alerts as {})",
                s(g(&r, "name")),
                rule_condition(&r),
                s(g(&r, "alert_rule_id"))
            ))
        }
        MetricsCommand::Rules(RulesCommand::Set(a)) => {
            let ses = Session::open(&a.common)?;
            let r = ses
                .client
                .update_metric_rule(&a.tenant, &a.name, &rule_body(&a)?)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&r);
            }
            out(&format!(
                "rule {} replaced: {}",
                s(g(&r, "name")),
                rule_condition(&r)
            ))
        }
        MetricsCommand::Rules(RulesCommand::Rm(a)) => {
            let ses = Session::open(&a.common)?;
            ses.client
                .delete_metric_rule(&a.tenant, &a.name)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&json!({"deleted": a.name}));
            }
            out(&format!("rule {} deleted", a.name))
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum EscalationCommand {
    Show(TenantArgs),
    /// Set the policy: `--level 300:oncall --level 900:manager,sms --repeat 1` pages the channel
    /// `oncall` 300 s after an alert is raised, then `manager` and `sms` 900 s later, and goes
    /// through the levels once more, while the alert stays unacknowledged.
    Set(EscalationSetArgs),
    /// Remove the policy (alerts no longer escalate).
    Rm(TenantArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct EscalationSetArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// SECONDS:CHANNEL[,CHANNEL…] (repeatable, in order).
    #[arg(long = "level", value_name = "SECONDS:CHANNELS", required = true)]
    pub levels: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub repeat: u32,
    /// Only alerts at or above this severity escalate.
    #[arg(long)]
    pub min_severity: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn policy_text(p: &Value) -> String {
    let mut lines = Vec::new();
    for (i, l) in g(p, "levels").as_array().into_iter().flatten().enumerate() {
        let chans: Vec<String> = g(l, "channels")
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        lines.push(format!(
            "level {}: after {} s -> {}",
            i + 1,
            s(g(l, "after_secs")),
            chans.join(", ")
        ));
    }
    lines.push(format!(
        "repeat {} time(s); severity at least {}",
        s(g(p, "repeat")),
        g(p, "min_severity").as_str().unwrap_or("any")
    ));
    lines.join("\n")
}

pub async fn escalation(c: EscalationCommand) -> anyhow::Result<()> {
    match c {
        EscalationCommand::Show(a) => {
            let ses = Session::open(&a.common)?;
            let p = ses
                .client
                .alert_escalation(&a.tenant)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&p);
            }
            out(&policy_text(&p))
        }
        EscalationCommand::Set(a) => {
            let mut levels = Vec::new();
            for l in &a.levels {
                let Some((secs, chans)) = l.split_once(':') else {
                    bail!("--level {l:?} is not SECONDS:CHANNEL[,CHANNEL...]");
                };
                let Ok(secs) = secs.trim().parse::<u32>() else {
                    bail!("--level {l:?}: {secs:?} is not a number of seconds");
                };
                let channels: Vec<&str> = chans
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect();
                levels.push(json!({"after_secs": secs, "channels": channels}));
            }
            let ses = Session::open(&a.common)?;
            let p = ses
                .client
                .set_alert_escalation(
                    &a.tenant,
                    &json!({"levels": levels, "repeat": a.repeat, "min_severity": a.min_severity}),
                )
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&p);
            }
            out(&policy_text(&p))
        }
        EscalationCommand::Rm(a) => {
            let ses = Session::open(&a.common)?;
            ses.client
                .remove_alert_escalation(&a.tenant)
                .await
                .map_err(|e| ses.fail(e))?;
            if ses.json {
                return print_json(&json!({"removed": true}));
            }
            out("escalation policy removed")
        }
    }
}
