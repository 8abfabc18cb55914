//! `parapet plan create | list | show | revise | drill | review | change | diff |
//! review-task-done` and `parapet drill record | list | schedule | due | report`: emergency
//! response plans (X.1642 8.9). Plans are JSON documents (see `parapet plan create --help`).

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::output::{clean, json, out, rfc3339_millis, table};
use super::{CommonArgs, Session};

#[derive(Debug, clap::Subcommand)]
pub enum PlanCommand {
    /// Create a plan from a JSON file: {"scenario", "notification", "launch":
    /// {"min_severity", "categories"}, "team": [{"name", "role", "contact", "deputy"}], "bia":
    /// [{"name", "priority", "depends_on", "rto_secs", "rpo_secs"}], "checklist": [..],
    /// "post_disposal_review", "tenant_data_access", "ack_within_secs"}.
    Create(FileArgs),
    /// List the plans, with their version and whether a review is due.
    List(Plain),
    /// Show a plan with every revision and drill.
    Show(NameArgs),
    /// Write a new version of a plan from a JSON file (older versions are kept).
    Revise(ReviseArgs),
    /// Record a drill or test step by step: a JSON file [{"step", "ok", "note"}].
    Drill(DrillArgs),
    /// Record a review of the plan without change (the next is due in a year).
    Review(NameArgs),
    /// Record a change that calls for a review (SLA, critical configuration, significant patch,
    /// team member): the review falls due at once.
    Change(ChangeArgs),
    /// Compare two versions of a plan field by field (default: the current one against the
    /// one before).
    Diff(DiffArgs),
    /// Mark a review task (from a drill finding) done.
    ReviewTaskDone(TaskArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TaskArgs {
    #[arg(value_name = "NAME")]
    pub name: String,
    #[arg(value_name = "TASK")]
    pub task: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The older version (default: the one before --to).
    #[arg(long, value_name = "VERSION")]
    pub from: Option<u32>,
    /// The newer version (default: the current one).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<u32>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Plain {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NameArgs {
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FileArgs {
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The plan's content (JSON).
    #[arg(long, value_name = "FILE")]
    pub file: std::path::PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReviseArgs {
    #[arg(value_name = "NAME")]
    pub name: String,
    #[arg(long, value_name = "FILE")]
    pub file: std::path::PathBuf,
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The drill: a JSON list of steps [{"step", "ok", "note", "at"}], or an object
    /// {"kind", "participants": [{"name", "role", "attended"}], "steps", "findings", "report"}
    /// (times RFC 3339; each finding becomes a review task of the plan).
    #[arg(long, value_name = "FILE")]
    pub steps: std::path::PathBuf,
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub report: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ChangeArgs {
    #[arg(value_name = "NAME")]
    pub name: String,
    /// What changed.
    #[arg(long, value_name = "TEXT")]
    pub change: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn read_json(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn field<'a>(v: &'a Value, k: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    v.get(k).unwrap_or(&NULL)
}

fn summary(p: &Value) -> String {
    format!(
        "plan {} version {}{}\n",
        clean(field(p, "name").as_str().unwrap_or("-")),
        field(p, "version"),
        if field(p, "review_due").as_bool() == Some(true) {
            " (review due)"
        } else {
            ""
        }
    )
}

async fn done(
    common: &CommonArgs,
    r: Result<Value, parapet_client::ClientError>,
    s: &Session,
) -> anyhow::Result<()> {
    let p = r.map_err(|e| s.fail(e))?;
    if common.json {
        return json(&p);
    }
    out(&summary(&p))
}

pub async fn run(cmd: PlanCommand) -> anyhow::Result<()> {
    match cmd {
        PlanCommand::Create(a) => {
            let s = Session::open(&a.common)?;
            let content = read_json(&a.file)?;
            let r = s
                .client
                .create_plan(&json!({"name": a.name, "content": content}))
                .await;
            done(&a.common, r, &s).await
        }
        PlanCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let list = s.client.list_plans().await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|p| {
                    vec![
                        field(p, "name").as_str().unwrap_or("-").to_string(),
                        field(p, "version").to_string(),
                        field(p, "review_due_at")
                            .as_i64()
                            .map(rfc3339_millis)
                            .unwrap_or_default(),
                        if field(p, "review_due").as_bool() == Some(true) {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                        field(p, "drills")
                            .as_array()
                            .map(Vec::len)
                            .unwrap_or(0)
                            .to_string(),
                    ]
                })
                .collect();
            out(&table(
                &["NAME", "VERSION", "REVIEW BY", "REVIEW DUE", "DRILLS"],
                &rows,
            ))
        }
        PlanCommand::Show(a) => {
            let s = Session::open(&a.common)?;
            let p = s.client.get_plan(&a.name).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&p);
            }
            let mut o = summary(&p);
            if let Some(c) = field(&p, "revisions")
                .as_array()
                .and_then(|r| r.last())
                .map(|r| field(r, "content"))
            {
                o.push_str(&format!(
                    "scenario: {}\nchecklist:\n",
                    clean(field(c, "scenario").as_str().unwrap_or("-"))
                ));
                for item in field(c, "checklist").as_array().into_iter().flatten() {
                    o.push_str(&format!("  - {}\n", clean(item.as_str().unwrap_or(""))));
                }
            }
            out(&o)
        }
        PlanCommand::Revise(a) => {
            let s = Session::open(&a.common)?;
            let content = read_json(&a.file)?;
            let r = s
                .client
                .revise_plan(&a.name, &json!({"content": content, "reason": a.reason}))
                .await;
            done(&a.common, r, &s).await
        }
        PlanCommand::Drill(a) => {
            let s = Session::open(&a.common)?;
            let given = read_json(&a.steps)?;
            let body = match given {
                Value::Array(_) => json!({"steps": given, "report": a.report}),
                Value::Object(mut o) => {
                    if !a.report.is_empty() {
                        o.insert("report".into(), a.report.clone().into());
                    }
                    Value::Object(o)
                }
                _ => bail!(
                    "{} holds neither a list of steps nor a drill",
                    a.steps.display()
                ),
            };
            let r = s.client.plan_action(&a.name, "drills", &body).await;
            done(&a.common, r, &s).await
        }
        PlanCommand::Review(a) => {
            let s = Session::open(&a.common)?;
            let r = s.client.plan_action(&a.name, "review", &json!({})).await;
            done(&a.common, r, &s).await
        }
        PlanCommand::Diff(a) => {
            let s = Session::open(&a.common)?;
            let d = s
                .client
                .plan_diff(&a.name, a.from, a.to)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&d);
            }
            let mut o = format!(
                "plan {}: version {} -> {}\n",
                clean(field(&d, "plan").as_str().unwrap_or("-")),
                field(&d, "from"),
                field(&d, "to")
            );
            for l in field(&d, "lines").as_array().into_iter().flatten() {
                let sign = match field(l, "op").as_str() {
                    Some("added") => "+",
                    Some("removed") => "-",
                    _ => " ",
                };
                o.push_str(&format!(
                    "{sign} {}\n",
                    clean(field(l, "line").as_str().unwrap_or(""))
                ));
            }
            out(&o)
        }
        PlanCommand::ReviewTaskDone(a) => {
            let s = Session::open(&a.common)?;
            let r = s.client.plan_review_task_done(&a.name, a.task).await;
            done(&a.common, r, &s).await
        }
        PlanCommand::Change(a) => {
            let s = Session::open(&a.common)?;
            let r = s
                .client
                .plan_action(&a.name, "changes", &json!({"change": a.change}))
                .await;
            done(&a.common, r, &s).await
        }
    }
}

/// `parapet drill record | list`: drills and tests of the emergency response plans (X.1642
/// 8.9.2), recorded step by step with a report.
#[derive(Debug, clap::Subcommand)]
pub enum DrillCommand {
    /// Record a drill of a plan step by step: a JSON file [{"step", "ok", "note"}].
    Record(DrillArgs),
    /// List the drills of every plan (or of one), newest first, with how many steps went well.
    List(DrillList),
    /// Hold drills of a plan every N days (the team is reminded when one falls due).
    Schedule(ScheduleArgs),
    /// Drills and plan reviews due now.
    Due(Plain),
    /// A drill's report (participants, timed steps, findings) as HTML or PDF.
    Report(DrillReportArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    /// The plan.
    #[arg(value_name = "PLAN")]
    pub plan: String,
    #[arg(long, value_name = "DAYS")]
    pub every_days: u32,
    /// The first drill (RFC 3339; now when not given).
    #[arg(long, value_name = "TIME")]
    pub first: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DrillReportArgs {
    #[arg(value_name = "PLAN")]
    pub plan: String,
    /// The drill's number (1 is the first recorded).
    #[arg(value_name = "N")]
    pub number: u32,
    #[arg(long, value_name = "FORMAT", default_value = "html", value_parser = ["html", "pdf"])]
    pub format: String,
    /// Where to write it (standard output when not given).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DrillList {
    /// Only this plan's drills.
    #[arg(long, value_name = "NAME")]
    pub plan: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run_drill(cmd: DrillCommand) -> anyhow::Result<()> {
    match cmd {
        DrillCommand::Record(a) => run(PlanCommand::Drill(a)).await,
        DrillCommand::Schedule(a) => {
            let s = Session::open(&a.common)?;
            let r = s
                .client
                .plan_action(
                    &a.plan,
                    "schedule",
                    &json!({"every_days": a.every_days, "first_at": a.first}),
                )
                .await;
            done(&a.common, r, &s).await
        }
        DrillCommand::Due(a) => {
            let s = Session::open(&a.common)?;
            let due = s.client.drills_due().await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&due);
            }
            let rows: Vec<Vec<String>> = due
                .iter()
                .map(|d| {
                    vec![
                        clean(field(d, "plan").as_str().unwrap_or("-")),
                        clean(field(d, "what").as_str().unwrap_or("-")),
                        field(d, "due_at")
                            .as_i64()
                            .map(rfc3339_millis)
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            out(&table(&["PLAN", "DUE", "SINCE"], &rows))
        }
        DrillCommand::Report(a) => {
            let s = Session::open(&a.common)?;
            let bytes = s
                .client
                .drill_report(&a.plan, a.number, &a.format)
                .await
                .map_err(|e| s.fail(e))?;
            match &a.output {
                Some(path) => {
                    std::fs::write(path, &bytes)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    if s.json {
                        return json(&json!({"written": path, "bytes": bytes.len()}));
                    }
                    out(&format!(
                        "Wrote the drill report ({} bytes) to {}\n",
                        bytes.len(),
                        path.display()
                    ))
                }
                None => {
                    use std::io::Write;
                    let mut stdout = std::io::stdout().lock();
                    match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                        Err(e) => Err(e).context("cannot write to standard output"),
                    }
                }
            }
        }
        DrillCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let plans = s.client.list_plans().await.map_err(|e| s.fail(e))?;
            let mut drills: Vec<Value> = Vec::new();
            for p in &plans {
                let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                if a.plan.as_deref().is_some_and(|only| only != name) {
                    continue;
                }
                for d in p
                    .get("drills")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let mut d = d.clone();
                    if let Some(o) = d.as_object_mut() {
                        o.insert("plan".into(), name.into());
                    }
                    drills.push(d);
                }
            }
            if let Some(only) = &a.plan
                && !plans
                    .iter()
                    .any(|p| p.get("name").and_then(Value::as_str) == Some(only))
            {
                anyhow::bail!("no plan named {only}");
            }
            drills.sort_by_key(|d| std::cmp::Reverse(d.get("at").and_then(Value::as_i64)));
            if s.json {
                return json(&drills);
            }
            let rows: Vec<Vec<String>> = drills
                .iter()
                .map(|d| {
                    let steps = d.get("steps").and_then(Value::as_array);
                    let ok = steps
                        .map(|v| {
                            v.iter()
                                .filter(|x| x.get("ok") == Some(&Value::Bool(true)))
                                .count()
                        })
                        .unwrap_or(0);
                    vec![
                        clean(d.get("plan").and_then(Value::as_str).unwrap_or("-")),
                        d.get("at")
                            .and_then(Value::as_i64)
                            .map(rfc3339_millis)
                            .unwrap_or_default(),
                        clean(d.get("by").and_then(Value::as_str).unwrap_or("-")),
                        d.get("version").map(|v| v.to_string()).unwrap_or_default(),
                        format!("{ok}/{}", steps.map(Vec::len).unwrap_or(0)),
                        clean(d.get("report").and_then(Value::as_str).unwrap_or("")),
                    ]
                })
                .collect();
            out(&table(
                &["PLAN", "AT", "BY", "VERSION", "STEPS OK", "REPORT"],
                &rows,
            ))
        }
    }
}
