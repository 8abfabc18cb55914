//! The console's emergency response plan editor and business impact analysis graph (X.1642
//! 8.9): a plan's components drawn as an SVG graph by priority with their dependencies and
//! RTO/RPO, a JSON editor that saves a new version (older versions kept) or a new plan.

use askama::Template;
use axum::Form;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use parapet_incident::Severity;
use parapet_incident::plan::{Component, DiffLine, LaunchConditions, Member, PlanContent};
use serde::Deserialize;

use crate::AppState;
use crate::console::{
    Chrome, ConsoleUser, csrf_ok, escape, failure, forbidden_form, form_error, render, see_other,
};
use crate::error::ApiResult;
use crate::extract::{ApiQuery, Auth, Meta};

/// The console routes.
pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/plans/new", get(new_page).post(create_form))
        .route("/console/plans/{name}/edit", get(edit_page).post(edit_form))
        .route("/console/plans/{name}/diff", get(diff_page))
        .merge(crate::incident_drills::console_routes())
        .route(
            "/console/incidents/{id}/response-report.html",
            get(console_response_report),
        )
}

/// The business impact analysis as an SVG graph: one column per priority (1 = most critical,
/// left), a box per component with its RTO/RPO, an arrow from each component to what it
/// depends on.
pub fn bia_svg(components: &[Component]) -> String {
    const W: i64 = 190;
    const H: i64 = 46;
    const GAP_X: i64 = 70;
    const GAP_Y: i64 = 22;
    let mut prios: Vec<u32> = components.iter().map(|c| c.priority).collect();
    prios.sort_unstable();
    prios.dedup();
    let mut pos: Vec<(&Component, i64, i64)> = Vec::new();
    let mut rows = 0i64;
    for (col, p) in prios.iter().enumerate() {
        let col = i64::try_from(col).unwrap_or(0);
        let mut row = 0i64;
        for c in components.iter().filter(|c| c.priority == *p) {
            pos.push((c, 10 + col * (W + GAP_X), 30 + row * (H + GAP_Y)));
            row += 1;
        }
        rows = rows.max(row);
    }
    let cols = i64::try_from(prios.len()).unwrap_or(0);
    let width = (20 + cols * (W + GAP_X)).max(200);
    let height = 40 + rows.max(1) * (H + GAP_Y);
    let mut s = format!(
        "<svg class=\"chart\" id=\"bia-graph\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">\
         <title>Business impact analysis: components by priority and their dependencies</title>\
         <defs><marker id=\"bia-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\">\
         <path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>"
    );
    for (i, p) in prios.iter().enumerate() {
        let x = 10 + i64::try_from(i).unwrap_or(0) * (W + GAP_X);
        s.push_str(&format!(
            "<text x=\"{x}\" y=\"18\" font-size=\"12\" font-weight=\"bold\">priority {p}</text>"
        ));
    }
    for (c, x, y) in &pos {
        for d in &c.depends_on {
            if let Some((_, dx, dy)) = pos.iter().find(|(o, _, _)| o.name == *d) {
                let (x1, y1, x2, y2) = if dx > x {
                    (x + W, y + H / 2, *dx, dy + H / 2)
                } else if dx < x {
                    (*x, y + H / 2, dx + W, dy + H / 2)
                } else {
                    (
                        x + W / 2,
                        if dy > y { y + H } else { *y },
                        dx + W / 2,
                        if dy > y { *dy } else { dy + H },
                    )
                };
                s.push_str(&format!(
                    "<line class=\"dep\" x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" \
                     stroke=\"#555\" marker-end=\"url(#bia-arrow)\"><title>{} depends on {}</title></line>",
                    escape(&c.name),
                    escape(d)
                ));
            }
        }
    }
    for (c, x, y) in &pos {
        s.push_str(&format!(
            "<g class=\"component\"><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"6\" \
             fill=\"#eef3fb\" stroke=\"#36c\"/><text x=\"{}\" y=\"{}\" font-size=\"13\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">RTO {} min · RPO {} min</text></g>",
            x + 8,
            y + 18,
            escape(&c.name),
            x + 8,
            y + 36,
            c.rto_secs / 60,
            c.rpo_secs / 60
        ));
    }
    s.push_str("</svg>");
    s
}

/// Blank rows offered below the filled ones in each table of the editor.
const BLANK_ROWS: usize = 3;

/// A team row of the editor.
#[derive(Debug, Clone, Default)]
struct TeamRow {
    name: String,
    role: String,
    contact: String,
    deputy: String,
}

/// A business impact analysis row of the editor (times in minutes).
#[derive(Debug, Clone, Default)]
struct BiaRow {
    name: String,
    priority: String,
    depends_on: String,
    rto_min: String,
    rpo_min: String,
}

/// The editor's fields, as shown and as typed.
#[derive(Debug, Clone, Default)]
struct Fields {
    scenario: String,
    notification: String,
    min_severity: String,
    categories: String,
    ack_min: String,
    team: Vec<TeamRow>,
    bia: Vec<BiaRow>,
    checklist: Vec<String>,
    review: String,
    data_access: String,
}

fn minutes(secs: i64) -> String {
    if secs % 60 == 0 {
        (secs / 60).to_string()
    } else {
        format!("{:.2}", secs as f64 / 60.0)
    }
}

impl Fields {
    fn of(c: &PlanContent) -> Fields {
        Fields {
            scenario: c.scenario.clone(),
            notification: c.notification.clone(),
            min_severity: c.launch.min_severity.as_str().into(),
            categories: c.launch.categories.join(", "),
            ack_min: if c.ack_within_secs > 0 {
                minutes(c.ack_within_secs)
            } else {
                String::new()
            },
            team: c
                .team
                .iter()
                .map(|m| TeamRow {
                    name: m.name.clone(),
                    role: m.role.clone(),
                    contact: m.contact.clone(),
                    deputy: m.deputy.clone(),
                })
                .collect(),
            bia: c
                .bia
                .iter()
                .map(|b| BiaRow {
                    name: b.name.clone(),
                    priority: b.priority.to_string(),
                    depends_on: b.depends_on.join(", "),
                    rto_min: minutes(b.rto_secs),
                    rpo_min: minutes(b.rpo_secs),
                })
                .collect(),
            checklist: c.checklist.clone(),
            review: c.post_disposal_review.clone(),
            data_access: c.tenant_data_access.clone(),
        }
    }

    fn blank() -> Fields {
        Fields {
            min_severity: "high".into(),
            data_access: "only with the tenant's recorded authorization".into(),
            ..Fields::default()
        }
    }

    /// The fields of a submitted form: `team_name_3`, `bia_rto_0`, `check_2`, ….
    fn from_form(pairs: &[(String, String)]) -> Fields {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let rows = |prefix: &str| {
            pairs
                .iter()
                .filter_map(|(k, _)| k.strip_prefix(prefix))
                .filter_map(|n| n.rsplit('_').next())
                .filter_map(|n| n.parse::<usize>().ok())
                .max()
                .map(|m| m + 1)
                .unwrap_or(0)
                .min(200)
        };
        let team = (0..rows("team_"))
            .map(|i| TeamRow {
                name: get(&format!("team_name_{i}")),
                role: get(&format!("team_role_{i}")),
                contact: get(&format!("team_contact_{i}")),
                deputy: get(&format!("team_deputy_{i}")),
            })
            .collect();
        let bia = (0..rows("bia_"))
            .map(|i| BiaRow {
                name: get(&format!("bia_name_{i}")),
                priority: get(&format!("bia_priority_{i}")),
                depends_on: get(&format!("bia_depends_{i}")),
                rto_min: get(&format!("bia_rto_{i}")),
                rpo_min: get(&format!("bia_rpo_{i}")),
            })
            .collect();
        let checklist = (0..rows("check_"))
            .map(|i| get(&format!("check_{i}")))
            .collect();
        Fields {
            scenario: get("scenario"),
            notification: get("notification"),
            min_severity: get("min_severity"),
            categories: get("categories"),
            ack_min: get("ack_min"),
            team,
            bia,
            checklist,
            review: get("review"),
            data_access: get("data_access"),
        }
    }

    /// The plan content the fields describe; rows left blank are dropped.
    fn content(&self) -> Result<PlanContent, String> {
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        let secs = |what: &str, v: &str| -> Result<i64, String> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(0);
            }
            v.parse::<f64>()
                .ok()
                .filter(|m| m.is_finite() && *m >= 0.0 && *m <= 1.0e7)
                .map(|m| (m * 60.0).round() as i64)
                .ok_or_else(|| format!("{what} must be a number of minutes, not {v:?}"))
        };
        let min_severity = Severity::parse(&self.min_severity).ok_or_else(|| {
            format!(
                "unknown severity {:?}; expected critical, high, medium or low",
                self.min_severity
            )
        })?;
        let team = self
            .team
            .iter()
            .filter(|m| !(m.name.trim().is_empty() && m.role.trim().is_empty()))
            .map(|m| Member {
                name: m.name.trim().into(),
                role: m.role.trim().into(),
                contact: m.contact.trim().into(),
                deputy: m.deputy.trim().into(),
            })
            .collect();
        let mut bia = Vec::new();
        for b in self.bia.iter().filter(|b| !b.name.trim().is_empty()) {
            let name = b.name.trim().to_string();
            let priority = b.priority.trim().parse::<u32>().map_err(|_| {
                format!(
                    "the priority of component {name} must be a whole number (1 = most critical)"
                )
            })?;
            bia.push(Component {
                rto_secs: secs(&format!("the RTO of {name}"), &b.rto_min)?,
                rpo_secs: secs(&format!("the RPO of {name}"), &b.rpo_min)?,
                depends_on: list(&b.depends_on),
                priority,
                name,
            });
        }
        Ok(PlanContent {
            scenario: self.scenario.trim().into(),
            notification: self.notification.trim().into(),
            launch: LaunchConditions {
                min_severity,
                categories: list(&self.categories),
            },
            team,
            bia,
            checklist: self
                .checklist
                .iter()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
            post_disposal_review: self.review.trim().into(),
            tenant_data_access: self.data_access.trim().into(),
            ack_within_secs: secs("the acknowledgement delay", &self.ack_min)?,
        })
    }

    /// With blank rows to add more.
    fn padded(mut self) -> Fields {
        self.team
            .extend(std::iter::repeat_n(TeamRow::default(), BLANK_ROWS));
        self.bia
            .extend(std::iter::repeat_n(BiaRow::default(), BLANK_ROWS));
        self.checklist
            .extend(std::iter::repeat_n(String::new(), BLANK_ROWS));
        self
    }
}

#[derive(Template)]
#[template(path = "incident_plan_edit.html")]
struct EditPage {
    c: Chrome,
    /// Empty for a new plan.
    name: String,
    version: u32,
    f: Fields,
    reason: String,
    new_name: String,
    severities: [&'static str; 4],
}

async fn edit_view(
    st: &AppState,
    u: &ConsoleUser,
    name: Option<&str>,
    draft: Option<(Fields, String, String)>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let (plan_name, version, current) = match name {
        Some(name) => match st.incident.get_plan(&u.p, name, &u.meta).await {
            Ok(v) => (
                v.plan.name.clone(),
                v.plan.version(),
                v.plan
                    .current()
                    .map(Fields::of)
                    .unwrap_or_else(Fields::blank),
            ),
            Err(e) => return failure(e),
        },
        None => {
            // Only those who may manage plans get the form.
            if let Err(e) = st.incident.list_plans(&u.p, &u.meta).await {
                return failure(e);
            }
            (String::new(), 0, Fields::blank())
        }
    };
    let (f, reason, new_name) = draft.unwrap_or((current, String::new(), String::new()));
    let mut c = u.chrome("Incidents");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    let page = EditPage {
        c,
        name: plan_name,
        version,
        f: f.padded(),
        reason,
        new_name,
        severities: ["critical", "high", "medium", "low"],
    };
    render(status, &page, u.set_csrf.clone())
}

async fn edit_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(name): Path<String>,
) -> Response {
    edit_view(&st, &u, Some(&name), None, None).await
}

async fn new_page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    edit_view(&st, &u, None, None, None).await
}

fn field(pairs: &[(String, String)], k: &str) -> String {
    pairs
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn parse_content(text: &str) -> Result<PlanContent, (StatusCode, String)> {
    serde_json::from_str(text).map_err(|e| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the plan is not valid JSON of a plan: {e}"),
        )
    })
}

/// The content a form gives: the fields, or (from scripts) a JSON `content`.
fn submitted(pairs: &[(String, String)]) -> (Fields, Result<PlanContent, (StatusCode, String)>) {
    let json = field(pairs, "content");
    if !json.trim().is_empty() {
        let c = parse_content(&json);
        let f = c
            .as_ref()
            .map(Fields::of)
            .unwrap_or_else(|_| Fields::blank());
        return (f, c);
    }
    let f = Fields::from_form(pairs);
    let c = f
        .content()
        .map_err(|m| (StatusCode::UNPROCESSABLE_ENTITY, m));
    (f, c)
}

async fn edit_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(name): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&headers, &field(&pairs, "csrf")) {
        return forbidden_form();
    }
    let reason = field(&pairs, "reason");
    let (f, content) = submitted(&pairs);
    let draft = Some((f, reason.clone(), String::new()));
    let content = match content {
        Ok(c) => c,
        Err(err) => return edit_view(&st, &u, Some(&name), draft, Some(err)).await,
    };
    match st
        .incident
        .revise_plan(&u.p, &name, content, &reason, &u.meta)
        .await
    {
        Ok(v) => see_other(&format!(
            "/console/plans/{name}/diff?to={}",
            v.plan.version()
        )),
        Err(e) => match form_error(&e) {
            Some(err) => edit_view(&st, &u, Some(&name), draft, Some(err)).await,
            None => failure(e),
        },
    }
}

async fn create_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if !csrf_ok(&headers, &field(&pairs, "csrf")) {
        return forbidden_form();
    }
    let name = field(&pairs, "name");
    let (f, content) = submitted(&pairs);
    let from_json = !field(&pairs, "content").trim().is_empty();
    let result = match content {
        Ok(content) => st
            .incident
            .create_plan(&u.p, &name, content, &u.meta)
            .await
            .map_err(|e| form_error(&e).ok_or(e)),
        Err(err) => Err(Ok(err)),
    };
    match result {
        Ok(v) => see_other(&format!("/console/plans#plan-{}", v.plan.name)),
        Err(Ok((status, msg))) if from_json => {
            let mut c = u.chrome("Incidents");
            c.error = Some(msg);
            render(status, &PlanError { c }, u.set_csrf.clone())
        }
        Err(Ok(err)) => edit_view(&st, &u, None, Some((f, String::new(), name)), Some(err)).await,
        Err(Err(e)) => failure(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiffParams {
    from: Option<u32>,
    to: Option<u32>,
}

#[derive(Template)]
#[template(path = "incident_plan_diff.html")]
struct DiffPage {
    c: Chrome,
    name: String,
    from: u32,
    to: u32,
    versions: Vec<(u32, String)>,
    /// (class, sign, text)
    lines: Vec<(&'static str, &'static str, String)>,
    changed: usize,
}

async fn diff_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(name): Path<String>,
    Query(q): Query<DiffParams>,
) -> Response {
    let (from, to, d) = match st
        .incident
        .plan_diff(&u.p, &name, q.from, q.to, &u.meta)
        .await
    {
        Ok(x) => x,
        Err(e) => return failure(e),
    };
    let versions = match st.incident.get_plan(&u.p, &name, &u.meta).await {
        Ok(v) => v
            .plan
            .revisions
            .iter()
            .map(|r| {
                (
                    r.version,
                    format!("{} by {} ({})", r.at.rfc3339(), r.by, r.reason),
                )
            })
            .collect(),
        Err(e) => return failure(e),
    };
    let lines: Vec<(&'static str, &'static str, String)> = d
        .into_iter()
        .map(|l| match l {
            DiffLine::Same(t) => ("same", " ", t),
            DiffLine::Removed(t) => ("removed", "−", t),
            DiffLine::Added(t) => ("added", "+", t),
        })
        .collect();
    let changed = lines.iter().filter(|l| l.0 != "same").count();
    let page = DiffPage {
        c: u.chrome("Incidents"),
        name,
        from,
        to,
        versions,
        lines,
        changed,
    };
    render(StatusCode::OK, &page, u.set_csrf.clone())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    plan: Option<String>,
}

/// The response report of an activated plan, in the console.
async fn console_response_report(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Response {
    match st
        .incident
        .response_report(&u.p, &id, q.plan.as_deref(), &u.meta)
        .await
    {
        Ok((_, r)) => crate::console::html_page(
            StatusCode::OK,
            parapet_incident::report::to_html(&r),
            u.set_csrf.clone(),
        ),
        Err(e) => failure(e),
    }
}

/// `GET /api/v1/plans/{name}/diff?from=&to=`: two versions compared line by line.
pub(crate) async fn plan_diff_api(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<DiffParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let (from, to, lines) = st
        .incident
        .plan_diff(&p, &name, q.from, q.to, &meta)
        .await?;
    Ok(Json(
        serde_json::json!({"plan": name, "from": from, "to": to, "lines": lines}),
    ))
}

#[derive(Template)]
#[template(path = "incident_plan_error.html")]
struct PlanError {
    c: Chrome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bia_graph_draws_components_and_dependencies() {
        let c = |name: &str, priority, deps: &[&str]| Component {
            name: name.into(),
            priority,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            rto_secs: 3600,
            rpo_secs: 300,
        };
        let svg = bia_svg(&[
            c("web <1>", 1, &["db"]),
            c("db", 2, &[]),
            c("cache", 2, &["db"]),
        ]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"component\"").count(), 3);
        assert_eq!(svg.matches("class=\"dep\"").count(), 2);
        assert!(svg.contains("web &lt;1&gt; depends on db"));
        assert!(svg.contains("priority 1") && svg.contains("priority 2"));
        assert!(svg.contains("RTO 60 min · RPO 5 min"));
        assert!(bia_svg(&[]).contains("</svg>"));
    }
}
