//! `parapet incident open | show | list | assign | advance | reopen | note | task | observe |
//! pause | resume | notify | report | stats`: security event processing (X.1642 8.6).

use std::io::Write;

use anyhow::{Context, bail};
use parapet_client::{IncidentQuery, OpenIncident};
use serde_json::{Value, json};

use super::output::{clean, fields, json, out, rfc3339_millis, table};
use super::{CommonArgs, Session};

#[derive(Debug, clap::Subcommand)]
pub enum IncidentCommand {
    /// Open an incident for a tenant: by hand (--title), or from monitoring alerts
    /// (--from-alert ID..., merged into one incident whose SLA timers run from the first event).
    Open(OpenArgs),
    /// Attach further monitoring alerts to an incident.
    Attach(AttachArgs),
    /// Show an incident: its fields, the responsible person of each step, tasks and the full
    /// history (with --json, everything the server holds).
    Show(IdArgs),
    /// List incidents visible to you, newest first.
    List(ListArgs),
    /// Name the responsible person of a step (the current one unless --step).
    Assign(AssignArgs),
    /// Move an incident to a step (forward, skipping steps with a reason, or back to an earlier
    /// step), naming the step's responsible person.
    Advance(AdvanceArgs),
    /// Reopen a recorded incident (its history is kept).
    Reopen(ReopenArgs),
    /// Add a note (with --internal, for the provider's staff only).
    Note(NoteArgs),
    /// Add a task with its owner, or with --done N mark task N done.
    Task(TaskArgs),
    /// Record an observable (ip, domain, url, hash, account, asset, email, other).
    Observe(ObserveArgs),
    /// Pause the SLA clock while waiting for the tenant.
    Pause(ReasonArgs),
    /// Resume the SLA clock.
    Resume(IdArgs),
    /// Record that the tenant was informed of the progress.
    Notify(NotifyArgs),
    /// Download the incident report as HTML or PDF.
    Report(ReportArgs),
    /// Activate an emergency response plan for the incident: its checklist becomes tasks and
    /// its response team is paged (each member acknowledges; the deputy is paged after the
    /// plan's delay).
    Activate(ActivateArgs),
    /// Acknowledge your page of an activated plan (as the member, or as the deputy it
    /// escalated to).
    AckPage(PlanRefArgs),
    /// Enter an operation into the operation log of an activated plan.
    Operation(OperationArgs),
    /// Open a patch action: the tenant's assets running the vulnerable package (or OS) version,
    /// each to be marked done.
    Patch(PatchArgs),
    /// Open a configuration fix over assets (default: the incident's asset observables).
    ConfigFix(ConfigFixArgs),
    /// Mark an asset of a patch action or configuration fix done (--undo: not done).
    ActionDone(ActionDoneArgs),
    /// Show the response report of an activated plan (--send: send it to the tenant now; it
    /// goes by itself when the plan's last task is done).
    ResponseReport(ResponseReportArgs),
    /// Run a playbook on the incident (the first that applies to its category/type unless
    /// --name): its steps become linked tasks.
    Playbook(PlaybookArgs),
    /// Incidents, MTTA and MTTR (mean and median) per tenant and month.
    Stats(StatsArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct IdArgs {
    /// The incident's id.
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OpenArgs {
    /// The affected tenant (your own when not given).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// The title (from alerts: the first alert's when not given).
    #[arg(long, value_name = "TEXT", required_unless_present = "from_alert")]
    pub title: Option<String>,
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub description: String,
    /// critical, high, medium or low (default: medium; from alerts: the highest of theirs).
    #[arg(long, value_name = "SEVERITY")]
    pub severity: Option<String>,
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub category: String,
    /// Responsible person of the detecting step (provider staff); you when not given.
    #[arg(long, value_name = "USER")]
    pub responsible: Option<String>,
    /// Monitoring alerts (of one tenant) to open the incident from; they are linked to it.
    #[arg(long = "from-alert", visible_alias = "alert", value_name = "ID", num_args = 1..)]
    pub from_alert: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AttachArgs {
    /// The incident's id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The alerts to attach (of the incident's tenant, not yet part of an incident).
    #[arg(long = "alert", value_name = "ALERT", num_args = 1.., required = true)]
    pub alerts: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    #[arg(long, value_name = "STEP")]
    pub step: Option<String>,
    /// Only incidents not yet recorded.
    #[arg(long)]
    pub open: bool,
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AssignArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(long, value_name = "USER")]
    pub responsible: String,
    #[arg(long, value_name = "STEP")]
    pub step: Option<String>,
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AdvanceArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// detecting, analysing, disposing, checking, reporting or recorded.
    #[arg(long, value_name = "STEP")]
    pub to: String,
    /// The responsible person of that step (provider staff).
    #[arg(long, value_name = "USER")]
    pub responsible: String,
    /// Why (required; recorded in the history and the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReopenArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The step to reopen at (analysing when not given).
    #[arg(long, value_name = "STEP")]
    pub to: Option<String>,
    #[arg(long, value_name = "USER")]
    pub responsible: String,
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NoteArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The note's text.
    #[arg(value_name = "TEXT")]
    pub text: String,
    /// For the provider's staff only: the tenant never sees it.
    #[arg(long)]
    pub internal: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TaskArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(long, value_name = "TEXT", required_unless_present = "done")]
    pub title: Option<String>,
    #[arg(long, value_name = "USER", required_unless_present = "done")]
    pub owner: Option<String>,
    /// Mark task N done instead of adding one.
    #[arg(long, value_name = "N", conflicts_with_all = ["title", "owner"])]
    pub done: Option<u32>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ObserveArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(long, value_name = "KIND")]
    pub kind: String,
    #[arg(long, value_name = "VALUE")]
    pub value: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReasonArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NotifyArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(long, value_name = "TEXT")]
    pub message: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// html or pdf.
    #[arg(long, value_name = "FORMAT", default_value = "pdf",
          value_parser = ["html", "pdf"])]
    pub format: String,
    /// Where to write it (standard output when not given).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlanRefArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The plan (the latest activated when not given).
    #[arg(long, value_name = "NAME")]
    pub plan: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PatchArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The vulnerable package (or operating system with --os).
    #[arg(long, value_name = "NAME")]
    pub package: String,
    /// Its vulnerable version.
    #[arg(long, value_name = "VERSION")]
    pub version: String,
    #[arg(long)]
    pub os: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigFixArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// What is fixed.
    #[arg(long, value_name = "TEXT")]
    pub subject: String,
    /// An affected asset (repeatable; default: the incident's asset observables).
    #[arg(long = "asset", value_name = "ASSET")]
    pub assets: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ActionDoneArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The action's number.
    #[arg(value_name = "ACTION")]
    pub action: u32,
    /// The asset.
    #[arg(value_name = "ASSET")]
    pub asset: String,
    /// Mark it not done again.
    #[arg(long)]
    pub undo: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OperationArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The plan (the latest activated when not given).
    #[arg(long, value_name = "NAME")]
    pub plan: Option<String>,
    /// What was done.
    #[arg(long, value_name = "TEXT")]
    pub text: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ResponseReportArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The plan (the latest activated when not given).
    #[arg(long, value_name = "NAME")]
    pub plan: Option<String>,
    /// Send it to the tenant's security contact now instead of showing it.
    #[arg(long)]
    pub send: bool,
    /// html or pdf.
    #[arg(long, value_name = "FORMAT", default_value = "html",
          value_parser = ["html", "pdf"])]
    pub format: String,
    /// Where to write it (standard output when not given).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ActivateArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The plan's name.
    #[arg(long, value_name = "NAME")]
    pub plan: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlaybookArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The playbook's name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

static NULL: Value = Value::Null;

/// The value at `path` (`null` when absent).
fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().try_fold(v, |v, k| v.get(*k)).unwrap_or(&NULL)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn t(v: &Value) -> String {
    v.as_i64().map(rfc3339_millis).unwrap_or_else(|| "-".into())
}

/// The human view of an incident.
fn render(i: &Value) -> String {
    let mut o = fields(&[
        ("id", s(at(i, &["id"]))),
        ("tenant", s(at(i, &["tenant_name"]))),
        ("title", s(at(i, &["title"]))),
        ("step", s(at(i, &["step"]))),
        ("severity", s(at(i, &["severity"]))),
        ("category", s(at(i, &["category"]))),
        ("opened", t(at(i, &["opened_at"]))),
        ("detected", t(at(i, &["detected_at"]))),
        ("alerts", {
            let n = at(i, &["alerts"]).as_array().map(Vec::len).unwrap_or(0);
            if n == 0 {
                "-".to_string()
            } else {
                n.to_string()
            }
        }),
        ("acknowledged", t(at(i, &["acknowledged_at"]))),
        ("tenant notified", t(at(i, &["notified_at"]))),
        ("resolved", t(at(i, &["resolved_at"]))),
        ("recorded", t(at(i, &["closed_at"]))),
    ]);
    o.push_str("\nRESPONSIBLE PERSONS\n");
    let steps = [
        "detecting",
        "analysing",
        "disposing",
        "checking",
        "reporting",
        "recorded",
    ];
    let rows: Vec<Vec<String>> = steps
        .iter()
        .filter_map(|st| {
            at(i, &["responsible"])
                .get(*st)
                .map(|r| vec![st.to_string(), s(r)])
        })
        .collect();
    o.push_str(&table(&["STEP", "RESPONSIBLE"], &rows));
    if let Some(tasks) = at(i, &["tasks"]).as_array().filter(|t| !t.is_empty()) {
        o.push_str("\nTASKS\n");
        let rows: Vec<Vec<String>> = tasks
            .iter()
            .map(|x| {
                vec![
                    s(at(x, &["number"])),
                    s(at(x, &["title"])),
                    s(at(x, &["owner"])),
                    s(at(x, &["step"])),
                    s(at(x, &["status"])),
                ]
            })
            .collect();
        o.push_str(&table(&["#", "TASK", "OWNER", "STEP", "STATUS"], &rows));
    }
    o.push_str("\nHISTORY\n");
    let rows: Vec<Vec<String>> = at(i, &["history"])
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| {
                    let mut what = s(at(e, &["kind"]));
                    if let (Some(from), Some(to)) =
                        (at(e, &["from"]).as_str(), at(e, &["to"]).as_str())
                    {
                        what = format!("{what} {from} -> {to}");
                    }
                    if let Some(r) = at(e, &["responsible"]).as_str() {
                        what = format!("{what} (responsible {r})");
                    }
                    vec![
                        t(at(e, &["at"])),
                        s(at(e, &["actor"])),
                        what,
                        at(e, &["reason"]).as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    o.push_str(&table(&["TIME", "ACTOR", "CHANGE", "REASON"], &rows));
    o
}

/// Writes a document to `output`, else to standard output.
fn write_doc(
    as_json: bool,
    bytes: &[u8],
    output: Option<&std::path::Path>,
    format: &str,
    what: &str,
) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if as_json {
                return json(&json!({"written": path, "bytes": bytes.len()}));
            }
            out(&format!(
                "Wrote the {format} {what} ({} bytes) to {}\n",
                bytes.len(),
                path.display()
            ))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(e).context("cannot write to standard output"),
            }
        }
    }
}

async fn command(
    common: &CommonArgs,
    id: &str,
    verb: &str,
    body: Value,
    done: &str,
) -> anyhow::Result<()> {
    let sess = Session::open(common)?;
    let i = sess
        .client
        .incident_command(id, verb, &body)
        .await
        .map_err(|e| sess.fail(e))?;
    if sess.json {
        return json(&i);
    }
    for w in at(&i, &["warnings"]).as_array().into_iter().flatten() {
        eprintln!("warning: {}", clean(w.as_str().unwrap_or("")));
    }
    out(&format!(
        "{done}: incident {} is in step {} (responsible {})\n",
        s(at(&i, &["id"])),
        s(at(&i, &["step"])),
        clean(
            at(&i, &["responsible"])
                .get(at(&i, &["step"]).as_str().unwrap_or(""))
                .and_then(Value::as_str)
                .unwrap_or("-")
        )
    ))
}

pub async fn run(cmd: IncidentCommand) -> anyhow::Result<()> {
    match cmd {
        IncidentCommand::Open(a) if !a.from_alert.is_empty() => {
            let sess = Session::open(&a.common)?;
            let mut body = json!({
                "alerts": a.from_alert,
                "description": a.description,
                "category": a.category,
            });
            for (k, v) in [
                ("title", a.title),
                ("severity", a.severity),
                ("responsible", a.responsible),
            ] {
                if let (Some(v), Some(o)) = (v, body.as_object_mut()) {
                    o.insert(k.into(), v.into());
                }
            }
            let i = sess
                .client
                .open_incident_from_alerts(&body)
                .await
                .map_err(|e| sess.fail(e))?;
            if sess.json {
                return json(&i);
            }
            out(&format!(
                "Opened incident {} for tenant {} from {} alert(s) (severity {}, detected {}, \
                 responsible {})\n",
                s(at(&i, &["id"])),
                s(at(&i, &["tenant_name"])),
                at(&i, &["alerts"]).as_array().map(Vec::len).unwrap_or(0),
                s(at(&i, &["severity"])),
                t(at(&i, &["detected_at"])),
                s(at(&i, &["responsible", "detecting"]))
            ))
        }
        IncidentCommand::Playbook(a) => {
            command(
                &a.common,
                &a.id,
                "run-playbook",
                json!({"playbook": a.name}),
                "Playbook run",
            )
            .await
        }
        IncidentCommand::Attach(a) => {
            command(
                &a.common,
                &a.id,
                "alerts",
                json!({"alerts": a.alerts}),
                "Attached",
            )
            .await
        }
        IncidentCommand::Open(a) => {
            let sess = Session::open(&a.common)?;
            let i = sess
                .client
                .open_incident(&OpenIncident {
                    tenant: a.tenant,
                    title: a.title.unwrap_or_default(),
                    description: a.description,
                    severity: Some(a.severity.unwrap_or_else(|| "medium".into())),
                    category: a.category,
                    responsible: a.responsible,
                    source: Some("manual".into()),
                    alerts: Vec::new(),
                })
                .await
                .map_err(|e| sess.fail(e))?;
            if sess.json {
                return json(&i);
            }
            out(&format!(
                "Opened incident {} for tenant {} (step detecting, responsible {})\n",
                s(at(&i, &["id"])),
                s(at(&i, &["tenant_name"])),
                s(at(&i, &["responsible", "detecting"]))
            ))
        }
        IncidentCommand::Show(a) => {
            let sess = Session::open(&a.common)?;
            let i = sess
                .client
                .get_incident(&a.id)
                .await
                .map_err(|e| sess.fail(e))?;
            if sess.json {
                return json(&i);
            }
            out(&render(&i))
        }
        IncidentCommand::List(a) => {
            let sess = Session::open(&a.common)?;
            let list = sess
                .client
                .list_incidents(&IncidentQuery {
                    tenant: a.tenant,
                    step: a.step,
                    open: a.open,
                    limit: Some(a.limit),
                })
                .await
                .map_err(|e| sess.fail(e))?;
            if sess.json {
                return json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    vec![
                        i.id.clone(),
                        i.tenant.clone(),
                        i.severity.clone(),
                        i.step.clone(),
                        i.responsible.clone(),
                        i.opened_at.clone(),
                        i.breaches.to_string(),
                        i.title.clone(),
                    ]
                })
                .collect();
            out(&table(
                &[
                    "ID",
                    "TENANT",
                    "SEVERITY",
                    "STEP",
                    "RESPONSIBLE",
                    "OPENED",
                    "BREACHES",
                    "TITLE",
                ],
                &rows,
            ))
        }
        IncidentCommand::Assign(a) => {
            let body = json!({"responsible": a.responsible, "step": a.step, "reason": a.reason});
            command(&a.common, &a.id, "assign", body, "Assigned").await
        }
        IncidentCommand::Advance(a) => {
            let body = json!({"to": a.to, "responsible": a.responsible, "reason": a.reason});
            command(&a.common, &a.id, "advance", body, "Moved").await
        }
        IncidentCommand::Reopen(a) => {
            let body = json!({"to": a.to, "responsible": a.responsible, "reason": a.reason});
            command(&a.common, &a.id, "reopen", body, "Reopened").await
        }
        IncidentCommand::Note(a) => {
            let body = json!({"text": a.text, "internal": a.internal});
            command(&a.common, &a.id, "notes", body, "Note added").await
        }
        IncidentCommand::Task(a) => match (a.done, a.title, a.owner) {
            (Some(n), _, _) => {
                let sess = Session::open(&a.common)?;
                let i = sess
                    .client
                    .complete_incident_task(&a.id, n)
                    .await
                    .map_err(|e| sess.fail(e))?;
                if sess.json {
                    return json(&i);
                }
                out(&format!("Task {n} done\n"))
            }
            (None, Some(title), Some(owner)) => {
                let body = json!({"title": title, "owner": owner});
                command(&a.common, &a.id, "tasks", body, "Task added").await
            }
            _ => bail!("give --title and --owner to add a task, or --done N"),
        },
        IncidentCommand::Observe(a) => {
            let body = json!({"kind": a.kind, "value": a.value});
            command(&a.common, &a.id, "observables", body, "Observable recorded").await
        }
        IncidentCommand::Pause(a) => {
            let body = json!({"reason": a.reason});
            command(&a.common, &a.id, "pause", body, "SLA clock paused").await
        }
        IncidentCommand::Activate(a) => {
            let body = json!({"plan": a.plan});
            command(&a.common, &a.id, "activate-plan", body, "Plan activated").await
        }
        IncidentCommand::Resume(a) => {
            command(&a.common, &a.id, "resume", json!({}), "SLA clock resumed").await
        }
        IncidentCommand::Notify(a) => {
            let body = json!({"message": a.message});
            command(&a.common, &a.id, "notify", body, "Tenant notified").await
        }
        IncidentCommand::AckPage(a) => {
            command(
                &a.common,
                &a.id,
                "ack-page",
                json!({"plan": a.plan}),
                "Page acknowledged",
            )
            .await
        }
        IncidentCommand::Operation(a) => {
            command(
                &a.common,
                &a.id,
                "operations",
                json!({"plan": a.plan, "text": a.text}),
                "Operation logged",
            )
            .await
        }
        IncidentCommand::Patch(a) => {
            command(
                &a.common,
                &a.id,
                "patch-action",
                json!({"package": a.package, "version": a.version, "os": a.os}),
                "Patch action opened",
            )
            .await
        }
        IncidentCommand::ConfigFix(a) => {
            command(
                &a.common,
                &a.id,
                "config-fix",
                json!({"subject": a.subject, "assets": a.assets}),
                "Configuration fix opened",
            )
            .await
        }
        IncidentCommand::ActionDone(a) => {
            command(
                &a.common,
                &a.id,
                "action-asset",
                json!({"action": a.action, "asset": a.asset, "done": !a.undo}),
                "Action updated",
            )
            .await
        }
        IncidentCommand::ResponseReport(a) if a.send => {
            command(
                &a.common,
                &a.id,
                "response-report",
                json!({"plan": a.plan}),
                "Response report sent",
            )
            .await
        }
        IncidentCommand::ResponseReport(a) => {
            let sess = Session::open(&a.common)?;
            let bytes = sess
                .client
                .incident_response_report(&a.id, a.plan.as_deref(), &a.format)
                .await
                .map_err(|e| sess.fail(e))?;
            write_doc(
                sess.json,
                &bytes,
                a.output.as_deref(),
                &a.format,
                "response report",
            )
        }
        IncidentCommand::Report(a) => {
            let sess = Session::open(&a.common)?;
            let bytes = sess
                .client
                .incident_report(&a.id, &a.format)
                .await
                .map_err(|e| sess.fail(e))?;
            match &a.output {
                Some(path) => {
                    std::fs::write(path, &bytes)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    if sess.json {
                        return json(&json!({"written": path, "bytes": bytes.len()}));
                    }
                    out(&format!(
                        "Wrote the {} report ({} bytes) to {}\n",
                        a.format,
                        bytes.len(),
                        path.display()
                    ))
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                        Err(e) => Err(e).context("cannot write to standard output"),
                    }
                }
            }
        }
        IncidentCommand::Stats(a) => {
            let sess = Session::open(&a.common)?;
            let st = sess
                .client
                .incident_stats(a.tenant.as_deref())
                .await
                .map_err(|e| sess.fail(e))?;
            if sess.json {
                return json(&st);
            }
            let secs = |v: &Value| {
                v.as_f64()
                    .map(|x| format!("{:.1} min", x / 60.0))
                    .unwrap_or_else(|| "-".into())
            };
            let rows: Vec<Vec<String>> = st
                .iter()
                .map(|m| {
                    vec![
                        s(at(m, &["tenant_name"])),
                        s(at(m, &["month"])),
                        s(at(m, &["opened"])),
                        secs(at(m, &["mtta_mean_secs"])),
                        secs(at(m, &["mtta_median_secs"])),
                        secs(at(m, &["mttr_mean_secs"])),
                        secs(at(m, &["mttr_median_secs"])),
                        s(at(m, &["breaches"])),
                    ]
                })
                .collect();
            out(&table(
                &[
                    "TENANT",
                    "MONTH",
                    "OPENED",
                    "MTTA MEAN",
                    "MTTA MEDIAN",
                    "MTTR MEAN",
                    "MTTR MEDIAN",
                    "BREACHES",
                ],
                &rows,
            ))
        }
    }
}
