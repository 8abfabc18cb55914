//! Incidents from monitoring alerts and SLA policies over HTTP (X.1642 8.6.1, 7.2.2.3):
//! `POST /api/v1/incidents/from-alerts`, `GET|PUT /api/v1/sla/policy`, the console's button on
//! the alert list and the SLA policy editor. Decisions are [`parapet_incident::IncidentService`]'s.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use parapet_incident::{FromAlerts, Playbook, PolicyPatch, PolicyView, Severity, TargetsPatch};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::AppState;
use crate::console::{
    Chrome, ConsoleUser, csrf_ok, failure, forbidden_form, form_error, render, see_other,
};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta};
use crate::incident::IncidentView;

/// The API routes (nested under `/api/v1`).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/incidents/from-alerts", post(from_alerts))
        .route("/sla/policy", get(show_policy).put(set_policy))
        .route("/playbooks", get(list_playbooks).post(put_playbook))
}

/// The console routes.
pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/incidents/from-alerts", post(console_from_alerts))
        .route("/console/sla", get(policy_page).post(policy_form))
}

#[derive(OpenApi)]
#[openapi(
    paths(from_alerts, show_policy, set_policy, list_playbooks, put_playbook),
    components(schemas(FromAlertsBody, PolicyBody))
)]
pub struct IncidentSlaApi;

/// What opening an incident from alerts takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromAlertsBody {
    /// Ids of one tenant's alerts (1 to 100), none yet part of an incident.
    pub alerts: Vec<String>,
    /// Default: the first alert's title.
    pub title: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Default: the highest severity of the alerts.
    pub severity: Option<String>,
    #[serde(default)]
    pub category: String,
    /// Responsible person of the detecting step (provider staff); the caller when absent.
    pub responsible: Option<String>,
}

fn severity(s: Option<&str>) -> ApiResult<Option<Severity>> {
    s.map(|s| {
        Severity::parse(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("unknown severity {s:?}; expected critical, high, medium or low"),
            )
        })
    })
    .transpose()
}

/// Opens one incident from one or many alerts of a tenant (merged): the alerts are linked to
/// it, their ids, rules, hosts and first event times kept as observables and timeline; the SLA
/// timers run from the first event. `409` when an alert is part of an incident already (attach
/// further alerts with `POST /api/v1/incidents/{id}/alerts`).
#[utoipa::path(post, path = "/api/v1/incidents/from-alerts", tag = "incidents",
    request_body = FromAlertsBody,
    responses((status = 201, body = IncidentView), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn from_alerts(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(b): ApiJson<FromAlertsBody>,
) -> ApiResult<(StatusCode, Json<IncidentView>)> {
    let sev = severity(b.severity.as_deref())?;
    let i = st
        .incident
        .open_from_alerts(
            &p,
            FromAlerts {
                alerts: b.alerts,
                title: b.title,
                description: b.description,
                severity: sev,
                category: b.category,
                responsible: b.responsible,
            },
            &meta,
        )
        .await?;
    let (t, i) = st.incident.get(&p, &i.id.to_string(), &meta).await?;
    Ok((StatusCode::CREATED, Json(crate::incident::view(&t.name, i))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PolicyParams {
    /// The tenant (name or id); the caller's own when absent.
    pub tenant: Option<String>,
}

/// The SLA policy in force for a tenant (`source`: `tenant`, `provider` default or `built-in`):
/// targets per severity in seconds, service hours, escalation, auto-open severity.
#[utoipa::path(get, path = "/api/v1/sla/policy", tag = "incidents", params(PolicyParams),
    responses((status = 200, body = Object), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn show_policy(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiQuery(q): ApiQuery<PolicyParams>,
) -> ApiResult<Json<PolicyView>> {
    Ok(Json(
        st.incident
            .sla_policy(&p, q.tenant.as_deref(), &meta)
            .await?,
    ))
}

/// A change of a tenant's SLA policy; parts not given keep their value in force.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// The tenant (name or id); the provider's own policy is every tenant's default.
    pub tenant: Option<String>,
    /// Per severity: `{"acknowledge_secs", "notify_secs", "resolve_secs"}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub targets: BTreeMap<String, TargetsPatch>,
    /// `7x24` or `5x8` (Monday to Friday, 09:00–17:00 UTC).
    pub hours: Option<String>,
    /// `{"levels": [{"notify": [users], "delay_secs"}], "repeat"}`.
    #[schema(value_type = Option<Object>)]
    pub escalation: Option<parapet_incident::EscalationPolicy>,
    /// Alerts of at least this severity open an incident by themselves; `off` for none.
    pub auto_open: Option<String>,
}

/// Sets a tenant's SLA policy (provider staff); new incidents of the tenant take it.
#[utoipa::path(put, path = "/api/v1/sla/policy", tag = "incidents", request_body = PolicyBody,
    responses((status = 200, body = Object), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_policy(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(b): ApiJson<PolicyBody>,
) -> ApiResult<Json<PolicyView>> {
    let tenant = b.tenant.clone().unwrap_or_else(|| p.tenant.name.clone());
    let patch = PolicyPatch {
        targets: b.targets,
        hours: b.hours,
        escalation: b.escalation,
        auto_open: b.auto_open,
    };
    Ok(Json(
        st.incident
            .update_sla_policy(&p, &tenant, &patch, &meta)
            .await?,
    ))
}

/// The provider's playbooks (X.1642 8.6.3), by name.
#[utoipa::path(get, path = "/api/v1/playbooks", tag = "incidents",
    responses((status = 200, body = Object), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_playbooks(
    State(st): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<Vec<Playbook>>> {
    Ok(Json(st.incident.playbooks(&p).await?))
}

/// Creates or replaces a playbook: `{"name", "description", "categories": [..], "types": [..],
/// "steps": [{"kind": "activate-plan|patch|config-fix|inform-tenant|task", "title", "owner",
/// "plan"}]}`. Run it on an incident with `POST /api/v1/incidents/{id}/run-playbook`.
#[utoipa::path(post, path = "/api/v1/playbooks", tag = "incidents",
    request_body(content = Object),
    responses((status = 201, body = Object), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn put_playbook(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(pb): ApiJson<Playbook>,
) -> ApiResult<(StatusCode, Json<Playbook>)> {
    Ok((
        StatusCode::CREATED,
        Json(st.incident.put_playbook(&p, pb, &meta).await?),
    ))
}

// ---------------------------------------------------------------------------------------------
// Console

/// `application/x-www-form-urlencoded` pairs (repeated names kept, unlike `Form`).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = bytes
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(v) => {
                            out.push(v);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                _ => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// The alert list's button: one incident from the checked alerts.
async fn console_from_alerts(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    if !csrf_ok(&headers, field(&pairs, "csrf")) {
        return forbidden_form();
    }
    let alerts: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| k == "alert" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    let res = st
        .incident
        .open_from_alerts(
            &u.p,
            FromAlerts {
                alerts,
                ..FromAlerts::default()
            },
            &u.meta,
        )
        .await;
    match res {
        Ok(i) => see_other(&format!("/console/incidents/{}", i.id)),
        Err(e) => match form_error(&e) {
            Some((status, msg)) => {
                let mut c = u.chrome("Monitoring");
                c.error = Some(msg);
                render(status, &FromAlertsError { c }, u.set_csrf.clone())
            }
            None => failure(e),
        },
    }
}

#[derive(Template)]
#[template(path = "incident_from_alerts.html")]
struct FromAlertsError {
    c: Chrome,
}

struct TargetRow {
    severity: &'static str,
    acknowledge: i64,
    notify: i64,
    resolve: i64,
}

#[derive(Template)]
#[template(path = "incident_sla.html")]
struct PolicyPage {
    c: Chrome,
    tenant: String,
    tenants: Vec<String>,
    source: String,
    updated: String,
    hours: String,
    auto_open: String,
    rows: Vec<TargetRow>,
    escalation: Vec<String>,
    can_manage: bool,
}

#[derive(Debug, Default, Deserialize)]
struct PolicyQuery {
    #[serde(default)]
    tenant: String,
}

async fn policy_view(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let tenant = if tenant.is_empty() {
        u.p.tenant.name.clone()
    } else {
        tenant.to_string()
    };
    let v = match st.incident.sla_policy(&u.p, Some(&tenant), &u.meta).await {
        Ok(v) => v,
        Err(e) => return failure(e),
    };
    let can_manage = match st
        .iam
        .resolve(&u.p, &tenant, parapet_iam::Action::TenantRead, &u.meta)
        .await
    {
        Ok(t) => parapet_iam::authorize(&u.p, parapet_iam::Action::SlaPolicyManage, &t).is_ok(),
        Err(_) => false,
    };
    let mut tenants = vec![u.p.tenant.name.clone()];
    if u.p.tenant.kind == parapet_types::TenantKind::Provider
        && let Ok(list) = st.iam.list_tenants(&u.p, None, 1000).await
    {
        tenants = list.into_iter().map(|t| t.name).collect();
        tenants.sort();
    }
    let mut c = u.chrome("Incidents");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    let page = PolicyPage {
        c,
        tenant: v.tenant.clone(),
        tenants,
        source: v.source.clone(),
        updated: match (&v.updated_at, &v.updated_by) {
            (Some(at), Some(by)) => format!("{} by {by}", at.rfc3339()),
            _ => "-".into(),
        },
        hours: v.policy.hours.as_str().into(),
        auto_open: v
            .policy
            .auto_open
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "off".into()),
        rows: Severity::ALL
            .into_iter()
            .map(|s| {
                let t = v.policy.targets_for(s);
                TargetRow {
                    severity: s.as_str(),
                    acknowledge: t.acknowledge_secs / 60,
                    notify: t.notify_secs / 60,
                    resolve: t.resolve_secs / 60,
                }
            })
            .collect(),
        escalation: v
            .policy
            .escalation
            .levels
            .iter()
            .enumerate()
            .map(|(n, l)| {
                format!(
                    "level {}: page {} then wait {} min",
                    n + 1,
                    if l.notify.is_empty() {
                        "the provider's on-call staff".to_string()
                    } else {
                        l.notify.join(", ")
                    },
                    l.delay_secs / 60
                )
            })
            .chain(std::iter::once(format!(
                "repeated {} more times",
                v.policy.escalation.repeat
            )))
            .collect(),
        can_manage,
    };
    render(status, &page, u.set_csrf.clone())
}

async fn policy_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    axum::extract::Query(q): axum::extract::Query<PolicyQuery>,
) -> Response {
    policy_view(&st, &u, &q.tenant, None).await
}

async fn policy_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    if !csrf_ok(&headers, field(&pairs, "csrf")) {
        return forbidden_form();
    }
    let tenant = field(&pairs, "tenant").to_string();
    let mut targets = BTreeMap::new();
    for s in Severity::ALL {
        let minutes = |what: &str| -> Result<Option<i64>, String> {
            let v = field(&pairs, &format!("{}_{what}", s.as_str())).trim();
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<i64>()
                .map(|m| Some(m.saturating_mul(60)))
                .map_err(|_| format!("{} {what}: {v:?} is not a number of minutes", s.as_str()))
        };
        let t = match (
            minutes("acknowledge"),
            minutes("notify"),
            minutes("resolve"),
        ) {
            (Ok(a), Ok(n), Ok(r)) => TargetsPatch {
                acknowledge_secs: a,
                notify_secs: n,
                resolve_secs: r,
            },
            (Err(m), _, _) | (_, Err(m), _) | (_, _, Err(m)) => {
                return policy_view(
                    &st,
                    &u,
                    &tenant,
                    Some((StatusCode::UNPROCESSABLE_ENTITY, m)),
                )
                .await;
            }
        };
        targets.insert(s.as_str().to_string(), t);
    }
    let patch = PolicyPatch {
        targets,
        hours: Some(field(&pairs, "hours").to_string()).filter(|h| !h.is_empty()),
        escalation: None,
        auto_open: Some(field(&pairs, "auto_open").to_string()).filter(|h| !h.is_empty()),
    };
    let name = if tenant.is_empty() {
        u.p.tenant.name.clone()
    } else {
        tenant.clone()
    };
    match st
        .incident
        .update_sla_policy(&u.p, &name, &patch, &u.meta)
        .await
    {
        Ok(v) => see_other(&format!("/console/sla?tenant={}", v.tenant)),
        Err(e) => match form_error(&e) {
            Some(err) => policy_view(&st, &u, &tenant, Some(err)).await,
            None => failure(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_pairs_keep_repeated_names_and_decode() {
        let p = form_pairs(b"csrf=a%2Bb&alert=1&alert=2&title=two+words&empty");
        assert_eq!(field(&p, "csrf"), "a+b");
        assert_eq!(field(&p, "title"), "two words");
        let alerts: Vec<&str> = p
            .iter()
            .filter(|(k, _)| k == "alert")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(alerts, ["1", "2"]);
        assert_eq!(field(&p, "empty"), "");
    }
}
