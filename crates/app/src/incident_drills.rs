//! Drills of emergency response plans over HTTP (X.1642 8.9.2, 8.9.3): recording a drill with
//! participants, timed steps and findings, the drill schedule, what is due, review tasks and
//! the drill report (API and console).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parapet_incident::drill::{DrillRecord, Participant};
use parapet_incident::plan::DrillStep;
use parapet_incident::report;
use parapet_types::Timestamp;
use serde::Deserialize;

use crate::AppState;
use crate::console::{
    Chrome, ConsoleUser, csrf_ok, failure, forbidden_form, form_error, html_page, render, see_other,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta};
use crate::incident::{PlanOut, plan_out};

/// The API routes (nested under `/api/v1`).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/plans/{name}/drills", post(record))
        .route("/plans/{name}/drills/{n}/report", get(report_doc))
        .route("/plans/{name}/schedule", post(schedule))
        .route("/plans/{name}/review-tasks/{n}/done", post(task_done))
        .route("/drills/due", get(due))
}

/// The console routes.
pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console/plans/{name}/drills/new",
            get(record_page).post(record_form),
        )
        .route(
            "/console/plans/{name}/drills/{n}/report.html",
            get(console_report),
        )
        .route("/console/plans/{name}/schedule", post(schedule_form))
        .route(
            "/console/plans/{name}/review-tasks/{n}/done",
            post(task_done_form),
        )
}

fn parse_time(what: &str, s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    // `datetime-local` inputs give no zone: UTC.
    let full = if s.len() == 16 {
        format!("{s}:00Z")
    } else {
        s.to_string()
    };
    time::OffsetDateTime::parse(&full, &time::format_description::well_known::Rfc3339)
        .map(Timestamp::from_datetime)
        .map_err(|_| format!("{what} must be an RFC 3339 time, not {s:?}"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepIn {
    pub step: String,
    pub ok: bool,
    #[serde(default)]
    pub note: String,
    /// When it was carried out (RFC 3339).
    pub at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDrill {
    pub steps: Vec<StepIn>,
    #[serde(default)]
    pub report: String,
    /// drill (default), test or training.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub participants: Vec<Participant>,
    /// Each becomes a review task of the plan.
    #[serde(default)]
    pub findings: Vec<String>,
}

fn invalid(m: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
}

async fn record(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<NewDrill>,
) -> ApiResult<Json<PlanOut>> {
    let mut steps = Vec::with_capacity(req.steps.len());
    for s in req.steps {
        let at = match s.at.as_deref() {
            Some(t) => Some(parse_time("a step's time", t).map_err(invalid)?),
            None => None,
        };
        steps.push(DrillStep {
            step: s.step,
            ok: s.ok,
            note: s.note,
            at,
        });
    }
    let v = st
        .incident
        .record_drill_full(
            &p,
            &name,
            DrillRecord {
                kind: req.kind,
                participants: req.participants,
                steps,
                findings: req.findings,
                report: req.report,
            },
            &meta,
        )
        .await?;
    Ok(Json(plan_out(v)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleIn {
    pub every_days: u32,
    /// The first drill (RFC 3339; now when absent).
    pub first_at: Option<String>,
}

async fn schedule(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ScheduleIn>,
) -> ApiResult<Json<PlanOut>> {
    let first = match req.first_at.as_deref() {
        Some(t) => Some(parse_time("first_at", t).map_err(invalid)?),
        None => None,
    };
    let v = st
        .incident
        .schedule_drills(&p, &name, req.every_days, first, &meta)
        .await?;
    Ok(Json(plan_out(v)))
}

async fn task_done(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((name, n)): Path<(String, String)>,
) -> ApiResult<Json<PlanOut>> {
    let n: u32 = n
        .parse()
        .map_err(|_| ApiError::not_found(format!("no review task {n}")))?;
    let v = st.incident.review_task_done(&p, &name, n, &meta).await?;
    Ok(Json(plan_out(v)))
}

async fn due(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> ApiResult<Json<Vec<parapet_incident::drill::Due>>> {
    Ok(Json(st.incident.due_plans(&p, &meta).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// html (default) or pdf.
    pub format: Option<String>,
}

async fn report_doc(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((name, n)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<Response> {
    let n: u32 = n
        .parse()
        .map_err(|_| ApiError::not_found(format!("plan {name} has no drill {n}")))?;
    let r = st.incident.drill_report(&p, &name, n, &meta).await?;
    Ok(match q.format.as_deref().unwrap_or("html") {
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            report::to_html(&r),
        )
            .into_response(),
        "pdf" => (
            [(header::CONTENT_TYPE, "application/pdf")],
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

// ---------------------------------------------------------------------------------------------
// Console

const ROWS: usize = 6;

#[derive(Debug, Clone, Default)]
struct StepRow {
    step: String,
    at: String,
    ok: bool,
    note: String,
}

#[derive(Debug, Clone, Default)]
struct PersonRow {
    name: String,
    role: String,
    attended: bool,
}

#[derive(Template)]
#[template(path = "incident_drill_record.html")]
struct RecordPage {
    c: Chrome,
    name: String,
    version: u32,
    kind: String,
    people: Vec<PersonRow>,
    steps: Vec<StepRow>,
    findings: Vec<String>,
    report: String,
}

fn field(pairs: &[(String, String)], k: &str) -> String {
    pairs
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn has(pairs: &[(String, String)], k: &str) -> bool {
    pairs.iter().any(|(n, _)| n == k)
}

async fn record_view(
    st: &AppState,
    u: &ConsoleUser,
    name: &str,
    draft: Option<RecordPage>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let v = match st.incident.get_plan(&u.p, name, &u.meta).await {
        Ok(v) => v,
        Err(e) => return failure(e),
    };
    let mut page = match draft {
        Some(d) => d,
        None => {
            let c = v.plan.current();
            RecordPage {
                c: u.chrome("Incidents"),
                name: v.plan.name.clone(),
                version: v.plan.version(),
                kind: "drill".into(),
                // The team is invited; the checklist is what the drill runs through.
                people: c
                    .map(|c| {
                        c.team
                            .iter()
                            .map(|m| PersonRow {
                                name: m.name.clone(),
                                role: m.role.clone(),
                                attended: true,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                steps: c
                    .map(|c| {
                        c.checklist
                            .iter()
                            .map(|s| StepRow {
                                step: s.clone(),
                                ok: true,
                                ..StepRow::default()
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                findings: Vec::new(),
                report: String::new(),
            }
        }
    };
    page.version = v.plan.version();
    page.people
        .extend(std::iter::repeat_n(PersonRow::default(), 2));
    page.steps
        .extend(std::iter::repeat_n(StepRow::default(), 2));
    page.findings
        .extend(std::iter::repeat_n(String::new(), ROWS / 2));
    let status = match error {
        Some((s, m)) => {
            page.c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    render(status, &page, u.set_csrf.clone())
}

async fn record_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(name): Path<String>,
) -> Response {
    // Only those who may manage plans record drills.
    if parapet_iam::authorize(&u.p, parapet_iam::Action::PlanManage, &u.p.tenant).is_err() {
        return failure(parapet_iam::IamError::Forbidden(
            "recording drills needs the right to manage plans".into(),
        ));
    }
    record_view(&st, &u, &name, None, None).await
}

fn count(pairs: &[(String, String)], prefix: &str) -> usize {
    pairs
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(prefix))
        .filter_map(|n| n.rsplit('_').next())
        .filter_map(|n| n.parse::<usize>().ok())
        .max()
        .map(|m| m + 1)
        .unwrap_or(0)
        .min(200)
}

async fn record_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(name): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&headers, &field(&pairs, "csrf")) {
        return forbidden_form();
    }
    let people: Vec<PersonRow> = (0..count(&pairs, "person_"))
        .map(|i| PersonRow {
            name: field(&pairs, &format!("person_name_{i}")),
            role: field(&pairs, &format!("person_role_{i}")),
            attended: has(&pairs, &format!("person_attended_{i}")),
        })
        .filter(|p| !(p.name.trim().is_empty() && p.role.trim().is_empty()))
        .collect();
    let steps: Vec<StepRow> = (0..count(&pairs, "step_"))
        .map(|i| StepRow {
            step: field(&pairs, &format!("step_name_{i}")),
            at: field(&pairs, &format!("step_at_{i}")),
            ok: has(&pairs, &format!("step_ok_{i}")),
            note: field(&pairs, &format!("step_note_{i}")),
        })
        .filter(|s| !s.step.trim().is_empty())
        .collect();
    let findings: Vec<String> = (0..count(&pairs, "finding_"))
        .map(|i| field(&pairs, &format!("finding_{i}")))
        .filter(|f| !f.trim().is_empty())
        .collect();
    let draft = RecordPage {
        c: u.chrome("Incidents"),
        name: name.clone(),
        version: 0,
        kind: field(&pairs, "kind"),
        people: people.clone(),
        steps: steps.clone(),
        findings: findings.clone(),
        report: field(&pairs, "report"),
    };
    let mut timed = Vec::with_capacity(steps.len());
    for s in &steps {
        let at = if s.at.trim().is_empty() {
            None
        } else {
            match parse_time(&format!("the time of step {:?}", s.step), &s.at) {
                Ok(t) => Some(t),
                Err(m) => {
                    return record_view(
                        &st,
                        &u,
                        &name,
                        Some(draft),
                        Some((StatusCode::UNPROCESSABLE_ENTITY, m)),
                    )
                    .await;
                }
            }
        };
        timed.push(DrillStep {
            step: s.step.clone(),
            ok: s.ok,
            note: s.note.clone(),
            at,
        });
    }
    let rec = DrillRecord {
        kind: draft.kind.clone(),
        participants: people
            .iter()
            .map(|p| Participant {
                name: p.name.clone(),
                role: p.role.clone(),
                attended: p.attended,
            })
            .collect(),
        steps: timed,
        findings,
        report: draft.report.clone(),
    };
    match st
        .incident
        .record_drill_full(&u.p, &name, rec, &u.meta)
        .await
    {
        Ok(v) => see_other(&format!(
            "/console/plans/{name}/drills/{}/report.html",
            v.plan.drills.len()
        )),
        Err(e) => match form_error(&e) {
            Some(err) => record_view(&st, &u, &name, Some(draft), Some(err)).await,
            None => failure(e),
        },
    }
}

async fn console_report(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path((name, n)): Path<(String, u32)>,
) -> Response {
    match st.incident.drill_report(&u.p, &name, n, &u.meta).await {
        Ok(r) => html_page(StatusCode::OK, report::to_html(&r), u.set_csrf.clone()),
        Err(e) => failure(e),
    }
}

#[derive(Debug, Deserialize)]
struct ScheduleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    every_days: String,
    #[serde(default)]
    first_at: String,
}

async fn schedule_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(name): Path<String>,
    Form(f): Form<ScheduleForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let bad = |m: String| failure(parapet_iam::IamError::Invalid(m));
    let Ok(days) = f.every_days.trim().parse::<u32>() else {
        return bad("the drill period is a whole number of days".into());
    };
    let first = if f.first_at.trim().is_empty() {
        None
    } else {
        match parse_time("the first drill", &f.first_at) {
            Ok(t) => Some(t),
            Err(m) => return bad(m),
        }
    };
    match st
        .incident
        .schedule_drills(&u.p, &name, days, first, &u.meta)
        .await
    {
        Ok(_) => see_other(&format!("/console/plans#plan-{name}")),
        Err(e) => failure(e),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn task_done_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((name, n)): Path<(String, u32)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st.incident.review_task_done(&u.p, &name, n, &u.meta).await {
        Ok(_) => see_other(&format!("/console/plans#plan-{name}")),
        Err(e) => failure(e),
    }
}
