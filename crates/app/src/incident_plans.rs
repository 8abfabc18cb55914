//! The console's emergency response plan editor and business impact analysis graph (X.1642
//! 8.9): a plan's components drawn as an SVG graph by priority with their dependencies and
//! RTO/RPO, a JSON editor that saves a new version (older versions kept) or a new plan.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use parapet_incident::plan::{Component, PlanContent};
use serde::Deserialize;

use crate::AppState;
use crate::console::{
    Chrome, ConsoleUser, csrf_ok, escape, failure, forbidden_form, form_error, render, see_other,
};

/// The console routes.
pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/plans/new", post(create_form))
        .route("/console/plans/{name}/edit", get(edit_page).post(edit_form))
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

#[derive(Template)]
#[template(path = "incident_plan_edit.html")]
struct EditPage {
    c: Chrome,
    name: String,
    version: u32,
    content: String,
    reason: String,
}

async fn edit_view(
    st: &AppState,
    u: &ConsoleUser,
    name: &str,
    draft: Option<(String, String)>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let v = match st.incident.get_plan(&u.p, name, &u.meta).await {
        Ok(v) => v,
        Err(e) => return failure(e),
    };
    let current = v
        .plan
        .current()
        .and_then(|c| serde_json::to_string_pretty(c).ok())
        .unwrap_or_default();
    let (content, reason) = draft.unwrap_or((current, String::new()));
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
        name: v.plan.name.clone(),
        version: v.plan.version(),
        content,
        reason,
    };
    render(status, &page, u.set_csrf.clone())
}

async fn edit_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(name): Path<String>,
) -> Response {
    edit_view(&st, &u, &name, None, None).await
}

#[derive(Debug, Deserialize)]
struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    reason: String,
}

fn parse_content(text: &str) -> Result<PlanContent, (StatusCode, String)> {
    serde_json::from_str(text).map_err(|e| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the plan is not valid JSON of a plan: {e}"),
        )
    })
}

async fn edit_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(name): Path<String>,
    Form(f): Form<EditForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let draft = Some((f.content.clone(), f.reason.clone()));
    let content = match parse_content(&f.content) {
        Ok(c) => c,
        Err(err) => return edit_view(&st, &u, &name, draft, Some(err)).await,
    };
    match st
        .incident
        .revise_plan(&u.p, &name, content, &f.reason, &u.meta)
        .await
    {
        Ok(_) => see_other(&format!("/console/plans#plan-{name}")),
        Err(e) => match form_error(&e) {
            Some(err) => edit_view(&st, &u, &name, draft, Some(err)).await,
            None => failure(e),
        },
    }
}

async fn create_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<EditForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let result = match parse_content(&f.content) {
        Ok(content) => st
            .incident
            .create_plan(&u.p, &f.name, content, &u.meta)
            .await
            .map_err(|e| form_error(&e).ok_or(e)),
        Err(err) => Err(Ok(err)),
    };
    match result {
        Ok(v) => see_other(&format!("/console/plans#plan-{}", v.plan.name)),
        Err(Ok((status, msg))) => {
            let mut c = u.chrome("Incidents");
            c.error = Some(msg);
            render(status, &PlanError { c }, u.set_csrf.clone())
        }
        Err(Err(e)) => failure(e),
    }
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
