//! `parapet sla policy show | set`: the SLA policy of a tenant (X.1642 7.2.2.3) — incident timer
//! targets per severity, service hours (5x8 or 7x24), escalation, and which alerts open an
//! incident by themselves.

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use super::output::{clean, fields, json, out, table};
use super::{CommonArgs, Session};

#[derive(Debug, clap::Subcommand)]
pub enum SlaCommand {
    /// The SLA policy of a tenant: show or set it.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `parapet playbook list | set`: the provider's playbooks (X.1642 8.6.3).
#[derive(Debug, clap::Subcommand)]
pub enum PlaybookCommand {
    /// List the playbooks with the categories/types they apply to and their steps.
    List(PlaybookList),
    /// Create or replace a playbook from a JSON file: {"name", "description", "categories":
    /// [..], "types": [..], "steps": [{"kind": "activate-plan|patch|config-fix|inform-tenant|
    /// task", "title", "owner", "plan"}]}.
    Set(PlaybookSet),
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlaybookList {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlaybookSet {
    #[arg(long, value_name = "FILE")]
    pub file: std::path::PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run_playbook(cmd: PlaybookCommand) -> anyhow::Result<()> {
    match cmd {
        PlaybookCommand::List(a) => {
            let sess = Session::open(&a.common)?;
            let list = sess.client.playbooks().await.map_err(|e| sess.fail(e))?;
            if sess.json {
                return json(&list);
            }
            let list_of = |v: &Value, k: &str| {
                let items: Vec<String> = v
                    .get(k)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(clean).collect())
                    .unwrap_or_default();
                if items.is_empty() {
                    "any".to_string()
                } else {
                    items.join(",")
                }
            };
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|p| {
                    let steps: Vec<String> = p
                        .get("steps")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.get("kind").and_then(Value::as_str))
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    vec![
                        clean(p.get("name").and_then(Value::as_str).unwrap_or("-")),
                        list_of(p, "categories"),
                        list_of(p, "types"),
                        steps.join(" > "),
                    ]
                })
                .collect();
            out(&table(&["NAME", "CATEGORIES", "TYPES", "STEPS"], &rows))
        }
        PlaybookCommand::Set(a) => {
            let text = std::fs::read_to_string(&a.file)
                .with_context(|| format!("cannot read {}", a.file.display()))?;
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", a.file.display()))?;
            let sess = Session::open(&a.common)?;
            let v = sess
                .client
                .put_playbook(&body)
                .await
                .map_err(|e| sess.fail(e))?;
            if sess.json {
                return json(&v);
            }
            out(&format!(
                "Playbook {} saved.\n",
                clean(v.get("name").and_then(Value::as_str).unwrap_or("-"))
            ))
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Show the policy in force for a tenant (its own, the provider's default, or built-in).
    Show(ShowArgs),
    /// Change a tenant's policy (provider staff); what is not given keeps its value in force.
    Set(SetArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// The tenant (your own when not given; the provider's own is every tenant's default).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Targets of a severity: SEVERITY=ACK/NOTIFY/RESOLVE with durations such as 15m, 4h, 3d
    /// (a part left empty keeps its value, e.g. high=30m//); repeatable.
    #[arg(long = "target", value_name = "SEVERITY=ACK/NOTIFY/RESOLVE")]
    pub targets: Vec<String>,
    /// Service hours the timers count in: 7x24 or 5x8 (Monday to Friday, 09:00-17:00 UTC).
    #[arg(long, value_name = "HOURS", value_parser = ["7x24", "5x8"])]
    pub hours: Option<String>,
    /// Alerts of at least this severity open an incident by themselves (or off).
    #[arg(long, value_name = "SEVERITY", value_parser = ["critical", "high", "medium", "low", "off"])]
    pub auto_open: Option<String>,
    /// An escalation policy as JSON: {"levels": [{"notify": ["alice"], "delay_secs": 900}],
    /// "repeat": 2}.
    #[arg(long, value_name = "FILE")]
    pub escalation: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Seconds of a duration such as `90s`, `15m`, `4h`, `3d` (a bare number is minutes).
fn duration(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "m"),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a duration such as 15m, 4h or 3d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{s:?}: the unit must be s, m, h or d"),
    };
    Ok(n.saturating_mul(mult))
}

fn target(spec: &str) -> anyhow::Result<(String, Value)> {
    let Some((sev, rest)) = spec.split_once('=') else {
        bail!("--target {spec:?}: expected SEVERITY=ACK/NOTIFY/RESOLVE, e.g. critical=15m/1h/4h");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != 3 {
        bail!("--target {spec:?}: give three durations ACK/NOTIFY/RESOLVE (empty keeps one)");
    }
    let mut o = Map::new();
    for (name, p) in ["acknowledge_secs", "notify_secs", "resolve_secs"]
        .iter()
        .zip(parts)
    {
        if !p.trim().is_empty() {
            o.insert((*name).into(), duration(p)?.into());
        }
    }
    Ok((sev.trim().to_ascii_lowercase(), Value::Object(o)))
}

fn human(secs: i64) -> String {
    if secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

fn render(v: &Value) -> String {
    let g = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let p = g("policy");
    let text = |x: &Value| match x {
        Value::String(s) => clean(s),
        Value::Null => "-".into(),
        o => o.to_string(),
    };
    let mut o = fields(&[
        ("tenant", text(&g("tenant"))),
        ("source", text(&g("source"))),
        ("updated by", text(&g("updated_by"))),
        (
            "service hours",
            text(p.get("hours").unwrap_or(&Value::Null)),
        ),
        (
            "alerts open incidents from",
            match p.get("auto_open") {
                Some(Value::String(s)) => s.clone(),
                _ => "off".into(),
            },
        ),
    ]);
    o.push_str("\nTARGETS\n");
    let rows: Vec<Vec<String>> = ["critical", "high", "medium", "low"]
        .iter()
        .filter_map(|sev| {
            let t = p.get("targets")?.get(*sev)?;
            let d = |k: &str| {
                t.get(k)
                    .and_then(Value::as_i64)
                    .map(human)
                    .unwrap_or_default()
            };
            Some(vec![
                sev.to_string(),
                d("acknowledge_secs"),
                d("notify_secs"),
                d("resolve_secs"),
            ])
        })
        .collect();
    o.push_str(&table(
        &["SEVERITY", "ACKNOWLEDGE", "NOTIFY", "RESOLVE"],
        &rows,
    ));
    o
}

pub async fn run(cmd: SlaCommand) -> anyhow::Result<()> {
    match cmd {
        SlaCommand::Policy(PolicyCommand::Show(a)) => {
            let sess = Session::open(&a.common)?;
            let v = sess
                .client
                .sla_policy(a.tenant.as_deref())
                .await
                .map_err(|e| sess.fail(e))?;
            if sess.json {
                return json(&v);
            }
            out(&render(&v))
        }
        SlaCommand::Policy(PolicyCommand::Set(a)) => {
            let mut body = Map::new();
            if let Some(t) = a.tenant {
                body.insert("tenant".into(), t.into());
            }
            let mut targets = Map::new();
            for spec in &a.targets {
                let (sev, t) = target(spec)?;
                targets.insert(sev, t);
            }
            if !targets.is_empty() {
                body.insert("targets".into(), Value::Object(targets));
            }
            if let Some(h) = a.hours {
                body.insert("hours".into(), h.into());
            }
            if let Some(s) = a.auto_open {
                body.insert("auto_open".into(), s.into());
            }
            if let Some(f) = a.escalation {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                let e: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", f.display()))?;
                body.insert("escalation".into(), e);
            }
            if body.keys().all(|k| k == "tenant") {
                bail!("nothing to change: give --target, --hours, --auto-open or --escalation");
            }
            let sess = Session::open(&a.common)?;
            let v = sess
                .client
                .set_sla_policy(&json!(body))
                .await
                .map_err(|e| sess.fail(e))?;
            if sess.json {
                return json(&v);
            }
            out(&format!("SLA policy set.\n{}", render(&v)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_durations_parse() {
        assert_eq!(duration("15m").ok(), Some(900));
        assert_eq!(duration("4h").ok(), Some(14_400));
        assert_eq!(duration("2d").ok(), Some(172_800));
        assert_eq!(duration("30").ok(), Some(1800));
        assert!(duration("4w").is_err());
        let (sev, t) = target("High=30m//2d").unwrap();
        assert_eq!(sev, "high");
        assert_eq!(t, json!({"acknowledge_secs": 1800, "resolve_secs": 172800}));
        assert!(target("high=30m/1h").is_err());
        assert!(target("30m/1h/2h").is_err());
    }
}
