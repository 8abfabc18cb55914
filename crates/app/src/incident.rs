//! Incidents over HTTP (X.1642 8.6, 7.2.2.3): the API under `/api/v1/incidents` and the console's
//! incident board, incident page and charts. Everything is decided by
//! [`parapet_incident::IncidentService`]; this module only translates.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parapet_iam::{IamError, Principal, RequestMeta};
use parapet_incident::{
    Command, Incident, ListFilter, MonthStats, NewIncident, Severity, Step, TaskStatus, report,
};
use parapet_store::IncidentRow;
use parapet_types::{TenantKind, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::AppState;
use crate::console::{
    Chrome, ConsoleUser, CsrfOnly, csrf_ok, failure, forbidden_form, form_error, render, see_other,
};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta};

/// The API routes (nested under `/api/v1`).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/incidents", get(list).post(open))
        .route("/incidents/stats", get(stats))
        .route("/incidents/{id}", get(show))
        .route("/incidents/{id}/report", get(report_doc))
        .route("/incidents/{id}/response-report", get(response_report_doc))
        .route("/incidents/{id}/{verb}", post(command))
        .route("/incidents/{id}/tasks/{n}/done", post(task_done))
        .merge(plan_routes())
        .merge(crate::incident_sla::api_routes())
}

/// The console routes.
pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/incidents", get(board).post(console_open))
        .route("/console/incidents/{id}", get(page))
        .route(
            "/console/incidents/{id}/report.html",
            get(console_report_html),
        )
        .route(
            "/console/incidents/{id}/report.pdf",
            get(console_report_pdf),
        )
        .route("/console/incidents/{id}/{verb}", post(console_command))
        .route(
            "/console/incidents/{id}/tasks/{n}/done",
            post(console_task_done),
        )
        .route("/console/plans", get(plans_page))
        .route("/console/plans/{name}/review", post(plan_review_form))
        .merge(crate::incident_sla::console_routes())
        .merge(crate::incident_plans::console_routes())
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list,
        open,
        stats,
        show,
        report_doc,
        response_report_doc,
        command,
        task_done
    ),
    components(schemas(IncidentSummary, OpenIncident, CommandBody, IncidentView))
)]
pub struct IncidentApi;

// ---------------------------------------------------------------------------------------------
// API

/// An incident in a listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentSummary {
    pub id: String,
    pub tenant_id: String,
    pub tenant: String,
    pub title: String,
    pub severity: String,
    pub category: String,
    pub step: String,
    /// Responsible person of the current step.
    pub responsible: String,
    pub opened_at: String,
    pub acknowledged_at: Option<String>,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
    /// When the next SLA timer or escalation falls due.
    pub next_due_at: Option<String>,
    pub breaches: i64,
}

fn summary(r: &IncidentRow, names: &HashMap<String, String>) -> IncidentSummary {
    let tid = r.tenant.to_string();
    IncidentSummary {
        tenant: names.get(&tid).cloned().unwrap_or_else(|| tid.clone()),
        id: r.id.to_string(),
        tenant_id: tid,
        title: r.title.clone(),
        severity: r.severity.clone(),
        category: r.category.clone(),
        step: r.step.clone(),
        responsible: r.responsible.clone(),
        opened_at: r.opened_at.rfc3339(),
        acknowledged_at: r.acknowledged_at.map(Timestamp::rfc3339),
        resolved_at: r.resolved_at.map(Timestamp::rfc3339),
        closed_at: r.closed_at.map(Timestamp::rfc3339),
        next_due_at: r.next_due_at.map(Timestamp::rfc3339),
        breaches: r.breaches,
    }
}

/// Names of the tenants `p` can see, by id.
async fn tenant_names(st: &AppState, p: &Principal) -> HashMap<String, String> {
    let mut m = HashMap::from([(p.tenant.id.to_string(), p.tenant.name.clone())]);
    if p.tenant.kind == TenantKind::Provider
        && let Ok(list) = st.iam.list_tenants(p, None, 1000).await
    {
        for t in list {
            m.insert(t.id.to_string(), t.name);
        }
    }
    m
}

/// A whole incident: its fields, the responsible person of each step, tasks, notes,
/// observables, SLA state and the full history (times are milliseconds since the epoch).
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentView {
    /// The tenant's name.
    pub tenant_name: String,
    /// What a person should know (e.g. remediation actions still open on a closed incident).
    pub warnings: Vec<String>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub incident: Incident,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this tenant's incidents (provider staff; tenants see only their own anyway).
    pub tenant: Option<String>,
    /// Only incidents in this step.
    pub step: Option<String>,
    /// Only incidents not yet recorded.
    pub open: Option<bool>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<u32>,
    /// The id of the last incident of the previous page.
    pub after: Option<String>,
}

fn parse_step(s: &str) -> ApiResult<Step> {
    Step::parse(s).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!(
                "unknown step {s:?}; expected one of: detecting, analysing, disposing, \
                 checking, reporting, recorded"
            ),
        )
    })
}

fn parse_severity(s: &str) -> ApiResult<Severity> {
    Severity::parse(s).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("unknown severity {s:?}; expected critical, high, medium or low"),
        )
    })
}

/// Incidents visible to the caller (a tenant's users see only their tenant's), newest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(ListParams),
    responses((status = 200, body = [IncidentSummary]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Vec<IncidentSummary>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let step = q.step.as_deref().map(parse_step).transpose()?;
    let rows = st
        .incident
        .list(
            &p,
            q.tenant.as_deref(),
            ListFilter {
                step,
                open_only: q.open.unwrap_or(false),
                opened_since: None,
                after: q.after,
                limit,
            },
            &meta,
        )
        .await?;
    let names = tenant_names(&st, &p).await;
    Ok(Json(rows.iter().map(|r| summary(r, &names)).collect()))
}

/// What opening an incident takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenIncident {
    /// The affected tenant (name or id); the caller's own when absent.
    pub tenant: Option<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// critical, high, medium (default) or low.
    pub severity: Option<String>,
    #[serde(default)]
    pub category: String,
    /// Responsible person of the detecting step (provider staff); the caller when absent.
    pub responsible: Option<String>,
    /// manual, api (default) or alerts.
    pub source: Option<String>,
    /// Ids of the alerts the incident is opened from (merged into one incident).
    #[serde(default)]
    pub alerts: Vec<String>,
}

pub(crate) fn view(tenant_name: &str, i: Incident) -> IncidentView {
    IncidentView {
        tenant_name: tenant_name.to_string(),
        warnings: i.action_warning().into_iter().collect(),
        incident: i,
    }
}

/// Opens an incident (by hand, by API, or from alerts).
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents", request_body = OpenIncident,
    responses((status = 201, body = IncidentView), (status = 422, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn open(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<OpenIncident>,
) -> ApiResult<(StatusCode, Json<IncidentView>)> {
    let severity = req.severity.as_deref().map(parse_severity).transpose()?;
    let tenant = req.tenant.unwrap_or_else(|| p.tenant.name.clone());
    let i = st
        .incident
        .open(
            &p,
            &tenant,
            NewIncident {
                title: req.title,
                description: req.description,
                severity,
                category: req.category,
                responsible: req.responsible,
                source: req.source.unwrap_or_else(|| "api".into()),
                alerts: req.alerts,
            },
            &meta,
        )
        .await?;
    let (t, i) = st.incident.get(&p, &i.id.to_string(), &meta).await?;
    Ok((StatusCode::CREATED, Json(view(&t.name, i))))
}

/// One incident with its full history and the responsible person of each step.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path)),
    responses((status = 200, body = IncidentView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn show(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> ApiResult<Json<IncidentView>> {
    let (t, i) = st.incident.get(&p, &id, &meta).await?;
    Ok(Json(view(&t.name, i)))
}

/// The body of an incident command; which fields are needed depends on the command.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// advance, reopen: the step to go to.
    pub to: Option<String>,
    /// assign: the step (the current one when absent).
    pub step: Option<String>,
    /// advance, reopen, assign: the responsible person (provider staff).
    pub responsible: Option<String>,
    pub reason: Option<String>,
    /// severity.
    pub severity: Option<String>,
    /// classify.
    pub category: Option<String>,
    #[serde(rename = "type")]
    pub incident_type: Option<String>,
    pub cause: Option<String>,
    /// notes: the text; notify: the message.
    pub text: Option<String>,
    pub message: Option<String>,
    /// notes: for the provider's staff only.
    #[serde(default)]
    pub internal: bool,
    /// tasks.
    pub title: Option<String>,
    pub owner: Option<String>,
    /// observables.
    pub kind: Option<String>,
    pub value: Option<String>,
    /// alerts.
    #[serde(default)]
    pub alerts: Vec<String>,
    /// activate-plan: the emergency response plan's name.
    pub plan: Option<String>,
    /// run-playbook: the playbook (the first that applies to the incident when absent).
    pub playbook: Option<String>,
    /// patch-action: the vulnerable package (or OS with `os`) and version.
    pub package: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub os: bool,
    /// config-fix: what is fixed, and the assets (default: the asset observables).
    pub subject: Option<String>,
    #[serde(default)]
    pub assets: Vec<String>,
    /// action-asset: the action's number, the asset, done (true) or not done (false).
    pub action: Option<u32>,
    pub asset: Option<String>,
    pub done: Option<bool>,
}

fn need(v: Option<String>, what: &str) -> ApiResult<String> {
    v.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("{what} is required"),
        )
    })
}

fn to_command(verb: &str, b: CommandBody) -> ApiResult<Command> {
    Ok(match verb {
        "advance" => Command::Advance {
            to: parse_step(&need(b.to, "to (the step)")?)?,
            responsible: need(b.responsible, "responsible")?,
            reason: need(b.reason, "reason")?,
        },
        "reopen" => Command::Reopen {
            to: b.to.as_deref().map(parse_step).transpose()?,
            responsible: need(b.responsible, "responsible")?,
            reason: need(b.reason, "reason")?,
        },
        "assign" => Command::Assign {
            step: b.step.as_deref().map(parse_step).transpose()?,
            responsible: need(b.responsible, "responsible")?,
            reason: b.reason.unwrap_or_default(),
        },
        "severity" => Command::Severity {
            to: parse_severity(&need(b.severity, "severity")?)?,
            reason: need(b.reason, "reason")?,
        },
        "classify" => Command::Classify {
            category: b.category.unwrap_or_default(),
            incident_type: b.incident_type.unwrap_or_default(),
            cause: b.cause.unwrap_or_default(),
        },
        "notes" => Command::Note {
            text: need(b.text, "text")?,
            internal: b.internal,
        },
        "tasks" => Command::AddTask {
            title: need(b.title, "title")?,
            owner: need(b.owner, "owner")?,
        },
        "observables" => Command::Observable {
            kind: need(b.kind, "kind")?,
            value: need(b.value, "value")?,
        },
        "alerts" => Command::MergeAlerts { alerts: b.alerts },
        "pause" => Command::PauseSla {
            reason: need(b.reason, "reason")?,
        },
        "resume" => Command::ResumeSla,
        "notify" => Command::NotifyTenant {
            message: need(b.message.or(b.text), "message")?,
        },
        "issue-report" => Command::IssueReport,
        "activate-plan" => Command::ActivatePlan {
            plan: need(b.plan, "plan")?,
        },
        "run-playbook" => Command::RunPlaybook {
            playbook: b.playbook.filter(|p| !p.trim().is_empty()),
        },
        "ack-page" => Command::AcknowledgePage {
            plan: b.plan.filter(|p| !p.trim().is_empty()),
        },
        "operations" => Command::LogOperation {
            plan: b.plan.unwrap_or_default(),
            text: need(b.text, "text (the operation)")?,
        },
        "response-report" => Command::SendResponseReport {
            plan: b.plan.filter(|p| !p.trim().is_empty()),
        },
        "patch-action" => Command::PatchAction {
            package: need(b.package, "package")?,
            version: need(b.version, "version")?,
            os: b.os,
        },
        "config-fix" => Command::ConfigFix {
            subject: need(b.subject.or(b.title), "subject")?,
            assets: b.assets,
        },
        "action-asset" => Command::ActionAsset {
            action: b.action.ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    "action (its number) is required",
                )
            })?,
            asset: need(b.asset, "asset")?,
            done: b.done.unwrap_or(true),
        },
        _ => return Err(ApiError::not_found("no such API endpoint")),
    })
}

/// Changes an incident. `verb` is one of: `advance` (to, responsible, reason), `reopen`,
/// `assign` (step, responsible), `severity` (severity, reason), `classify` (category, type,
/// cause), `notes` (text, internal), `tasks` (title, owner), `observables` (kind, value),
/// `alerts` (alerts), `pause` (reason) and `resume` of the SLA clock, `notify` (message: inform
/// the tenant), `issue-report`, `activate-plan` (plan: its checklist becomes tasks and its
/// response team is paged), `ack-page` (plan: the caller acknowledges their page),
/// `operations` (plan, text: an entry of the plan's operation log), `response-report` (plan:
/// send the response report to the tenant), `run-playbook` (playbook, else the first that
/// applies: its steps become tasks), `patch-action` (package, version, os: the tenant's assets
/// running it), `config-fix` (subject, assets), `action-asset` (action, asset, done).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/{verb}", tag = "incidents",
    params(("id" = String, Path), ("verb" = String, Path)), request_body = CommandBody,
    responses((status = 200, body = IncidentView), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn command(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((id, verb)): Path<(String, String)>,
    ApiJson(b): ApiJson<CommandBody>,
) -> ApiResult<Json<IncidentView>> {
    let cmd = to_command(&verb, b)?;
    let i = st.incident.apply(&p, &id, cmd, &meta).await?;
    let (t, i) = st.incident.get(&p, &i.id.to_string(), &meta).await?;
    Ok(Json(view(&t.name, i)))
}

/// Marks a task done.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/tasks/{n}/done", tag = "incidents",
    params(("id" = String, Path), ("n" = u32, Path)),
    responses((status = 200, body = IncidentView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn task_done(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((id, n)): Path<(String, String)>,
) -> ApiResult<Json<IncidentView>> {
    let number: u32 = n
        .parse()
        .map_err(|_| ApiError::not_found(format!("no task {n}")))?;
    st.incident
        .apply(&p, &id, Command::CompleteTask { number }, &meta)
        .await?;
    let (t, i) = st.incident.get(&p, &id, &meta).await?;
    Ok(Json(view(&t.name, i)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// `html` (default) or `pdf`.
    pub format: Option<String>,
}

async fn render_report(
    st: &AppState,
    p: &Principal,
    id: &str,
    format: &str,
    meta: &RequestMeta,
) -> ApiResult<Response> {
    let (t, i) = st.incident.get(p, id, meta).await?;
    let r = report::build(&i, &t.name, st.incident.env().now());
    let file = format!("incident-{}", i.id);
    Ok(match format {
        "html" => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"{file}.html\""),
                ),
            ],
            report::to_html(&r),
        )
            .into_response(),
        "pdf" => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file}.pdf\""),
                ),
            ],
            report::to_pdf(&r),
        )
            .into_response(),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}; expected html or pdf"
            )));
        }
    })
}

/// The incident report (behaviour, causes, handling measures, timeline, impact) in HTML or PDF;
/// it never includes internal notes or another tenant's data.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/report", tag = "incidents",
    params(("id" = String, Path), ReportParams),
    responses((status = 200, content_type = "text/html"), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn report_doc(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<Response> {
    render_report(&st, &p, &id, q.format.as_deref().unwrap_or("html"), &meta).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ResponseReportParams {
    /// The activated plan (the latest activated when absent).
    pub plan: Option<String>,
    /// `html` (default) or `pdf`.
    pub format: Option<String>,
}

/// The response report of an emergency response plan's activation (8.9.2): the plan, the team
/// by role, the recovery steps with their times and the operation log; never internal notes
/// or another tenant's data.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/response-report", tag = "incidents",
    params(("id" = String, Path), ResponseReportParams),
    responses((status = 200, content_type = "text/html"), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn response_report_doc(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ResponseReportParams>,
) -> ApiResult<Response> {
    let (_, r) = st
        .incident
        .response_report(&p, &id, q.plan.as_deref(), &meta)
        .await?;
    let file = format!("response-report-{}", id.trim());
    Ok(match q.format.as_deref().unwrap_or("html") {
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8".to_string())],
            report::to_html(&r),
        )
            .into_response(),
        "pdf" => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file}.pdf\""),
                ),
            ],
            report::to_pdf(&r),
        )
            .into_response(),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}; expected html or pdf"
            )));
        }
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    /// Only this tenant (provider staff).
    pub tenant: Option<String>,
}

/// Incidents, MTTA and MTTR (mean and median, seconds) per tenant and month.
#[utoipa::path(get, path = "/api/v1/incidents/stats", tag = "incidents", params(StatsParams),
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn stats(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiQuery(q): ApiQuery<StatsParams>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let s = st
        .incident
        .stats(&p, q.tenant.as_deref(), None, &meta)
        .await?;
    let names = tenant_names(&st, &p).await;
    Ok(Json(
        s.iter()
            .map(|m| {
                let mut v = serde_json::to_value(m).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    let id = m.tenant.to_string();
                    o.insert(
                        "tenant_name".into(),
                        names.get(&id).cloned().unwrap_or(id).into(),
                    );
                }
                v
            })
            .collect(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Console

struct Card {
    id: String,
    title: String,
    tenant: String,
    severity: String,
    responsible: String,
    opened: String,
    breaches: i64,
}

struct Column {
    step: &'static str,
    cards: Vec<Card>,
}

#[derive(Template)]
#[template(path = "incident_board.html")]
struct BoardPage {
    c: Chrome,
    columns: Vec<Column>,
    total: usize,
    can_open: bool,
    tenants: Vec<String>,
    chart: String,
    stats: Vec<StatRow>,
}

struct StatRow {
    tenant: String,
    month: String,
    opened: u64,
    mtta: String,
    mttr: String,
    breaches: u64,
}

fn minutes(v: Option<f64>) -> String {
    v.map(|s| format!("{:.1} min", s / 60.0))
        .unwrap_or_else(|| "-".into())
}

/// Bars of incidents opened per month with the MTTR (mean, minutes) as a line, all tenants
/// visible to the viewer together.
pub fn incidents_svg(stats: &[MonthStats]) -> String {
    let mut months: std::collections::BTreeMap<&str, (u64, f64, u64)> = Default::default();
    for m in stats {
        let e = months.entry(m.month.as_str()).or_insert((0, 0.0, 0));
        e.0 += m.opened;
        if let Some(r) = m.mttr_mean_secs {
            e.1 += r * m.resolved as f64;
            e.2 += m.resolved;
        }
    }
    let months: Vec<(&str, u64, Option<f64>)> = months
        .into_iter()
        .rev()
        .take(12)
        .rev()
        .map(|(k, (n, sum, res))| (k, n, (res > 0).then(|| sum / res as f64 / 60.0)))
        .collect();
    let w = 48usize;
    let width = months.len() * w + 60;
    let max_n = months.iter().map(|m| m.1).max().unwrap_or(0).max(1);
    let max_r = months
        .iter()
        .filter_map(|m| m.2)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let mut svg = format!(
        "<svg class=\"chart\" id=\"incident-chart\" role=\"img\" aria-label=\"incidents per month \
         and mean time to resolve\" width=\"{width}\" height=\"140\" viewBox=\"0 0 {width} 140\" \
         xmlns=\"http://www.w3.org/2000/svg\"><text x=\"2\" y=\"12\">{max_n}</text>\
         <text x=\"2\" y=\"112\">0</text>"
    );
    let mut points = Vec::new();
    for (i, (month, n, mttr)) in months.iter().enumerate() {
        let h = *n as f64 / max_n as f64 * 90.0;
        let x = 30 + i * w;
        svg.push_str(&format!(
            "<rect class=\"incidents\" x=\"{x}\" y=\"{:.1}\" width=\"{}\" height=\"{h:.1}\">\
             <title>{month}: {n} incidents</title></rect><text x=\"{x}\" y=\"128\">{}</text>",
            110.0 - h,
            w - 8,
            month.get(2..).unwrap_or(month)
        ));
        if let Some(r) = mttr {
            let y = 110.0 - r / max_r * 90.0;
            points.push(format!("{:.1},{y:.1}", x as f64 + (w - 8) as f64 / 2.0));
            svg.push_str(&format!(
                "<circle class=\"mttr\" cx=\"{:.1}\" cy=\"{y:.1}\" r=\"3\"><title>{month}: MTTR \
                 {r:.1} min</title></circle>",
                x as f64 + (w - 8) as f64 / 2.0
            ));
        }
    }
    if points.len() > 1 {
        svg.push_str(&format!(
            "<polyline class=\"mttr\" fill=\"none\" stroke=\"currentColor\" points=\"{}\"/>",
            points.join(" ")
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"12\">MTTR max {max_r:.0} min</text></svg>",
        width.saturating_sub(130)
    ));
    svg
}

async fn board_view(
    st: &AppState,
    u: &ConsoleUser,
    error: Option<(StatusCode, String)>,
) -> Response {
    let rows = match st
        .incident
        .list(
            &u.p,
            None,
            ListFilter {
                limit: 1000,
                ..ListFilter::default()
            },
            &u.meta,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    let names = tenant_names(st, &u.p).await;
    let mut columns: Vec<Column> = Step::ALL
        .into_iter()
        .map(|s| Column {
            step: s.as_str(),
            cards: Vec::new(),
        })
        .collect();
    for r in &rows {
        if let Some(col) = columns.iter_mut().find(|c| c.step == r.step) {
            let s = summary(r, &names);
            col.cards.push(Card {
                id: s.id,
                title: s.title,
                tenant: s.tenant,
                severity: s.severity,
                responsible: s.responsible,
                opened: s.opened_at,
                breaches: s.breaches,
            });
        }
    }
    let stats = st
        .incident
        .stats(&u.p, None, None, &u.meta)
        .await
        .unwrap_or_default();
    let can_open =
        parapet_iam::authorize(&u.p, parapet_iam::Action::IncidentOpen, &u.p.tenant).is_ok();
    let mut tenants: Vec<String> = names.values().cloned().collect();
    tenants.sort();
    let mut c = u.chrome("Incidents");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    let page = BoardPage {
        c,
        total: rows.len(),
        columns,
        can_open,
        tenants,
        chart: incidents_svg(&stats),
        stats: stats
            .iter()
            .map(|m| StatRow {
                tenant: names
                    .get(&m.tenant.to_string())
                    .cloned()
                    .unwrap_or_else(|| m.tenant.to_string()),
                month: m.month.clone(),
                opened: m.opened,
                mtta: minutes(m.mtta_median_secs),
                mttr: minutes(m.mttr_median_secs),
                breaches: m.breaches,
            })
            .collect(),
    };
    render(status, &page, u.set_csrf.clone())
}

async fn board(State(st): State<AppState>, u: ConsoleUser) -> Response {
    board_view(&st, &u, None).await
}

#[derive(Debug, Deserialize)]
struct OpenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    responsible: String,
}

async fn console_open(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<OpenForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let Some(severity) = Severity::parse(&f.severity) else {
        return board_view(
            &st,
            &u,
            Some((
                StatusCode::UNPROCESSABLE_ENTITY,
                "choose a severity".to_string(),
            )),
        )
        .await;
    };
    let tenant = if f.tenant.is_empty() {
        u.p.tenant.name.clone()
    } else {
        f.tenant.clone()
    };
    let res = st
        .incident
        .open(
            &u.p,
            &tenant,
            NewIncident {
                title: f.title,
                description: f.description,
                severity: Some(severity),
                category: f.category,
                responsible: Some(f.responsible).filter(|r| !r.trim().is_empty()),
                source: "manual".into(),
                alerts: Vec::new(),
            },
            &u.meta,
        )
        .await;
    match res {
        Ok(i) => see_other(&format!("/console/incidents/{}", i.id)),
        Err(e) => match form_error(&e) {
            Some(err) => board_view(&st, &u, Some(err)).await,
            None => failure(e),
        },
    }
}

struct HistoryLine {
    at: String,
    actor: String,
    what: String,
    reason: String,
}

struct TaskLine {
    number: u32,
    title: String,
    owner: String,
    step: String,
    done: bool,
}

/// A remediation action on the incident page: number, kind, subject, (asset, status, done).
type ActionLine = (u32, String, String, Vec<(String, String, bool)>);

#[derive(Template)]
#[template(path = "incident_page.html")]
struct IncidentPage {
    c: Chrome,
    id: String,
    tenant: String,
    title: String,
    description: String,
    severity: String,
    category: String,
    step: String,
    opened: String,
    responsible: Vec<(String, String)>,
    sla: Vec<(String, String)>,
    paused: bool,
    steps: Vec<&'static str>,
    tasks: Vec<TaskLine>,
    notes: Vec<(String, String, String, bool)>,
    observables: Vec<(String, String)>,
    history: Vec<HistoryLine>,
    can_handle: bool,
    can_note: bool,
    is_staff: bool,
    /// Response team pages: (plan, member, role, paged, acknowledged, deputy state).
    pages: Vec<(String, String, String, String, String, String)>,
    /// The caller has an unacknowledged page.
    my_page: bool,
    /// Activated plans (for the response report links).
    plans: Vec<String>,
    /// Remediation actions: (number, kind, subject, [(asset, status, done)]).
    actions: Vec<ActionLine>,
    warning: String,
}

async fn page_view(
    st: &AppState,
    u: &ConsoleUser,
    id: &str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let (t, i) = match st.incident.get(&u.p, id, &u.meta).await {
        Ok(x) => x,
        Err(e) => return failure(e),
    };
    let now = st.incident.env().now();
    let can_handle = parapet_iam::authorize(&u.p, parapet_iam::Action::IncidentHandle, &t).is_ok();
    let can_note = parapet_iam::authorize(&u.p, parapet_iam::Action::IncidentNote, &t).is_ok();
    let sla = parapet_incident::SlaTimer::ALL
        .into_iter()
        .map(|tm| {
            let status = match (
                i.timer_met(tm),
                i.sla.breaches.iter().any(|b| b.timer == tm),
            ) {
                (Some(at), b) => format!(
                    "met at {}{}",
                    at.rfc3339(),
                    if b { " (breached)" } else { "" }
                ),
                (None, true) => "BREACHED".into(),
                (None, false) => match i.deadline(tm) {
                    Some(d) if d.0 >= now.0 => format!("due {}", d.rfc3339()),
                    Some(d) => format!("overdue since {}", d.rfc3339()),
                    None => "paused".into(),
                },
            };
            (tm.as_str().to_string(), status)
        })
        .collect();
    let mut c = u.chrome("Incidents");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    let page = IncidentPage {
        c,
        id: i.id.to_string(),
        tenant: t.name.clone(),
        title: i.title.clone(),
        description: i.description.clone(),
        severity: i.severity.to_string(),
        category: i.category.clone(),
        step: i.step.to_string(),
        opened: i.opened_at.rfc3339(),
        responsible: Step::ALL
            .into_iter()
            .filter_map(|s| i.responsible.get(&s).map(|r| (s.to_string(), r.clone())))
            .collect(),
        sla,
        paused: i.sla.paused_since.is_some(),
        steps: Step::ALL.into_iter().map(Step::as_str).collect(),
        tasks: i
            .tasks
            .iter()
            .map(|t| TaskLine {
                number: t.number,
                title: t.title.clone(),
                owner: t.owner.clone(),
                step: t.step.to_string(),
                done: t.status == TaskStatus::Done,
            })
            .collect(),
        notes: i
            .notes
            .iter()
            .map(|n| (n.at.rfc3339(), n.author.clone(), n.text.clone(), n.internal))
            .collect(),
        observables: i
            .observables
            .iter()
            .map(|o| (o.kind.clone(), o.value.clone()))
            .collect(),
        history: i
            .history
            .iter()
            .map(|h| HistoryLine {
                at: h.at.rfc3339(),
                actor: h.actor.clone(),
                what: h.change.describe(),
                reason: h.reason.clone().unwrap_or_default(),
            })
            .collect(),
        can_handle,
        can_note,
        is_staff: u.p.tenant.kind == TenantKind::Provider,
        pages: i
            .pages
            .iter()
            .map(|pg| {
                (
                    pg.plan.clone(),
                    pg.member.clone(),
                    pg.role.clone(),
                    pg.paged_at.rfc3339(),
                    match (&pg.acknowledged_at, &pg.acknowledged_by) {
                        (Some(t), Some(by)) => format!("{} by {by}", t.rfc3339()),
                        _ => "not yet".into(),
                    },
                    match (&pg.escalated_at, pg.deputy.is_empty(), pg.escalate_at) {
                        (Some(t), _, _) => format!("{} paged at {}", pg.deputy, t.rfc3339()),
                        (None, false, Some(at)) => {
                            format!("{} at {} unless acknowledged", pg.deputy, at.rfc3339())
                        }
                        (None, false, None) => pg.deputy.clone(),
                        (None, true, _) => "-".into(),
                    },
                )
            })
            .collect(),
        my_page: u.p.tenant.kind == TenantKind::Provider
            && i.pages.iter().any(|pg| {
                pg.acknowledged_at.is_none()
                    && (pg.member == u.p.user.username
                        || (pg.escalated_at.is_some() && pg.deputy == u.p.user.username))
            }),
        plans: {
            let mut v: Vec<String> = i
                .history
                .iter()
                .filter_map(|h| match &h.change {
                    parapet_incident::Change::PlanActivated { plan, .. } => Some(plan.clone()),
                    _ => None,
                })
                .collect();
            v.dedup();
            v
        },
        actions: i
            .actions
            .iter()
            .map(|a| {
                (
                    a.number,
                    a.kind.clone(),
                    a.subject.clone(),
                    a.assets
                        .iter()
                        .map(|x| {
                            (
                                x.asset.clone(),
                                match (&x.done_at, &x.done_by) {
                                    (Some(t), Some(by)) => {
                                        format!("done {} by {by}", t.rfc3339())
                                    }
                                    _ => "not done".into(),
                                },
                                x.done_at.is_some(),
                            )
                        })
                        .collect(),
                )
            })
            .collect(),
        warning: i.action_warning().unwrap_or_default(),
    };
    render(status, &page, u.set_csrf.clone())
}

async fn page(State(st): State<AppState>, u: ConsoleUser, Path(id): Path<String>) -> Response {
    page_view(&st, &u, &id, None).await
}

#[derive(Debug, Deserialize)]
struct CommandForm {
    #[serde(default)]
    csrf: String,
    to: Option<String>,
    responsible: Option<String>,
    reason: Option<String>,
    text: Option<String>,
    internal: Option<String>,
    title: Option<String>,
    owner: Option<String>,
    kind: Option<String>,
    value: Option<String>,
    message: Option<String>,
    playbook: Option<String>,
    package: Option<String>,
    version: Option<String>,
    os: Option<String>,
    subject: Option<String>,
    /// config-fix: asset names, comma-separated.
    assets: Option<String>,
    action: Option<u32>,
    asset: Option<String>,
    /// action-asset: `yes` (done) or `no`.
    done: Option<String>,
}

async fn console_command(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((id, verb)): Path<(String, String)>,
    Form(f): Form<CommandForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let body = CommandBody {
        to: f.to,
        responsible: f.responsible,
        reason: f.reason,
        text: f.text,
        internal: f.internal.is_some(),
        title: f.title,
        owner: f.owner,
        kind: f.kind,
        value: f.value,
        message: f.message,
        playbook: f.playbook,
        package: f.package,
        version: f.version,
        os: f.os.is_some(),
        subject: f.subject,
        assets: f
            .assets
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        action: f.action,
        asset: f.asset,
        done: f.done.map(|d| d != "no"),
        ..CommandBody::default()
    };
    let cmd = match to_command(&verb, body) {
        Ok(c) => c,
        Err(e) => return page_view(&st, &u, &id, Some((e.status, e.detail))).await,
    };
    match st.incident.apply(&u.p, &id, cmd, &u.meta).await {
        Ok(_) => see_other(&format!("/console/incidents/{id}")),
        Err(e) => match form_error(&e) {
            Some(err) if !matches!(e, IamError::NotFound(_)) => {
                page_view(&st, &u, &id, Some(err)).await
            }
            _ => failure(e),
        },
    }
}

async fn console_task_done(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((id, n)): Path<(String, u32)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st
        .incident
        .apply(&u.p, &id, Command::CompleteTask { number: n }, &u.meta)
        .await
    {
        Ok(_) => see_other(&format!("/console/incidents/{id}")),
        Err(e) => match form_error(&e) {
            Some(err) => page_view(&st, &u, &id, Some(err)).await,
            None => failure(e),
        },
    }
}

async fn console_report(st: &AppState, u: &ConsoleUser, id: &str, format: &str) -> Response {
    match render_report(st, &u.p, id, format, &u.meta).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn console_report_html(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    console_report(&st, &u, &id, "html").await
}

async fn console_report_pdf(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    console_report(&st, &u, &id, "pdf").await
}

// ---------------------------------------------------------------------------------------------
// Emergency response plans (X.1642 8.9)

/// The plan routes (nested under `/api/v1`).
pub fn plan_routes() -> Router<AppState> {
    Router::new()
        .route("/plans", get(plans_list).post(plan_create))
        .route("/plans/{name}", get(plan_show).put(plan_revise))
        .merge(crate::incident_drills::api_routes())
        .route("/plans/{name}/review", post(plan_review))
        .route("/plans/{name}/changes", post(plan_change))
        .route(
            "/plans/{name}/diff",
            get(crate::incident_plans::plan_diff_api),
        )
}

/// A plan: every revision (the last is current), drills, and whether its review is due.
#[derive(Debug, Serialize)]
pub struct PlanOut {
    pub review_due: bool,
    pub version: u32,
    #[serde(flatten)]
    pub plan: parapet_incident::plan::Plan,
}

pub(crate) fn plan_out(v: parapet_incident::PlanView) -> PlanOut {
    PlanOut {
        review_due: v.review_due,
        version: v.plan.version(),
        plan: v.plan,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    pub name: String,
    pub content: parapet_incident::plan::PlanContent,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisePlan {
    pub content: parapet_incident::plan::PlanContent,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanChange {
    pub change: String,
}

async fn plans_list(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> ApiResult<Json<Vec<PlanOut>>> {
    let list = st.incident.list_plans(&p, &meta).await?;
    Ok(Json(list.into_iter().map(plan_out).collect()))
}

async fn plan_create(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<NewPlan>,
) -> ApiResult<(StatusCode, Json<PlanOut>)> {
    let v = st
        .incident
        .create_plan(&p, &req.name, req.content, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(plan_out(v))))
}

async fn plan_show(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(name): Path<String>,
) -> ApiResult<Json<PlanOut>> {
    Ok(Json(plan_out(
        st.incident.get_plan(&p, &name, &meta).await?,
    )))
}

async fn plan_revise(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<RevisePlan>,
) -> ApiResult<Json<PlanOut>> {
    let v = st
        .incident
        .revise_plan(&p, &name, req.content, &req.reason, &meta)
        .await?;
    Ok(Json(plan_out(v)))
}

async fn plan_review(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(name): Path<String>,
) -> ApiResult<Json<PlanOut>> {
    Ok(Json(plan_out(
        st.incident.review_plan(&p, &name, &meta).await?,
    )))
}

async fn plan_change(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<PlanChange>,
) -> ApiResult<Json<PlanOut>> {
    let v = st
        .incident
        .plan_change_occurred(&p, &name, &req.change, &meta)
        .await?;
    Ok(Json(plan_out(v)))
}

struct PlanCard {
    name: String,
    version: u32,
    scenario: String,
    review_due_at: String,
    review_due: bool,
    launch: String,
    team: Vec<String>,
    checklist: Vec<String>,
    bia: Vec<String>,
    bia_svg: String,
    drills: Vec<String>,
    revisions: Vec<String>,
    /// The drill schedule, and whether a drill is due now.
    schedule: String,
    drill_due: bool,
    /// Review tasks: (number, title, drill, done).
    review_tasks: Vec<(u32, String, u32, String)>,
}

#[derive(Template)]
#[template(path = "incident_plans.html")]
struct PlansPage {
    c: Chrome,
    plans: Vec<PlanCard>,
    can_manage: bool,
}

async fn plans_page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    let list = match st.incident.list_plans(&u.p, &u.meta).await {
        Ok(l) => l,
        Err(e) => return failure(e),
    };
    let can_manage =
        parapet_iam::authorize(&u.p, parapet_iam::Action::PlanManage, &u.p.tenant).is_ok();
    let plans = list
        .iter()
        .map(|v| {
            let p = &v.plan;
            let c = p.current();
            PlanCard {
                name: p.name.clone(),
                version: p.version(),
                scenario: c.map(|c| c.scenario.clone()).unwrap_or_default(),
                review_due_at: p.review_due_at.rfc3339(),
                review_due: v.review_due,
                launch: c
                    .map(|c| {
                        format!(
                            "severity {} or worse{}",
                            c.launch.min_severity,
                            if c.launch.categories.is_empty() {
                                String::new()
                            } else {
                                format!(", category {}", c.launch.categories.join(" or "))
                            }
                        )
                    })
                    .unwrap_or_default(),
                team: c
                    .map(|c| {
                        c.team
                            .iter()
                            .map(|m| {
                                let deputy = if m.deputy.is_empty() {
                                    String::new()
                                } else {
                                    format!(", deputy {}", m.deputy)
                                };
                                format!("{} ({}, {}{deputy})", m.name, m.role, m.contact)
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                checklist: c.map(|c| c.checklist.clone()).unwrap_or_default(),
                bia_svg: crate::incident_plans::bia_svg(
                    c.map(|c| c.bia.as_slice()).unwrap_or_default(),
                ),
                bia: c
                    .map(|c| {
                        c.bia
                            .iter()
                            .map(|x| {
                                format!(
                                    "{} (priority {}, RTO {} min, RPO {} min{})",
                                    x.name,
                                    x.priority,
                                    x.rto_secs / 60,
                                    x.rpo_secs / 60,
                                    if x.depends_on.is_empty() {
                                        String::new()
                                    } else {
                                        format!(", depends on {}", x.depends_on.join(", "))
                                    }
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                drills: p
                    .drills
                    .iter()
                    .map(|d| {
                        format!(
                            "{} by {} (v{}): {}/{} steps ok. {}",
                            d.at.rfc3339(),
                            d.by,
                            d.version,
                            d.steps.iter().filter(|s| s.ok).count(),
                            d.steps.len(),
                            d.report
                        )
                    })
                    .collect(),
                revisions: p
                    .revisions
                    .iter()
                    .map(|r| {
                        format!(
                            "v{} {} by {}: {}",
                            r.version,
                            r.at.rfc3339(),
                            r.by,
                            r.reason
                        )
                    })
                    .collect(),
                schedule: p
                    .schedule
                    .as_ref()
                    .map(|sc| {
                        format!(
                            "every {} days, next at {}",
                            sc.every_days,
                            sc.next_at.rfc3339()
                        )
                    })
                    .unwrap_or_else(|| "not scheduled".into()),
                drill_due: p.drill_due(st.incident.env().now()).is_some(),
                review_tasks: p
                    .review_tasks
                    .iter()
                    .map(|t| {
                        (
                            t.number,
                            t.title.clone(),
                            t.drill,
                            t.done_at
                                .map(|d| {
                                    format!(
                                        "done {} by {}",
                                        d.rfc3339(),
                                        t.done_by.clone().unwrap_or_default()
                                    )
                                })
                                .unwrap_or_default(),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    let page = PlansPage {
        c: u.chrome("Emergency plans"),
        plans,
        can_manage,
    };
    render(StatusCode::OK, &page, u.set_csrf.clone())
}

async fn plan_review_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(name): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st.incident.review_plan(&u.p, &name, &u.meta).await {
        Ok(_) => see_other("/console/plans"),
        Err(e) => failure(e),
    }
}
