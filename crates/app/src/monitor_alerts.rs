//! Detection rules and alerts over HTTP (X.1642 8.3, 8.6.1, 7.2.2.6): Sigma rule upload (errors
//! name the file and line), enable/disable, test on a sample; the alert list (every tenant's for
//! the provider), acknowledgement, closing, suppression windows; the console's live alert list.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parapet_monitor::MonitorError;
use parapet_store::{Alert, AlertFilter, AlertStatus, Page, StoredRule, Tenant};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::console::{Chrome, ConsoleUser, failure, render};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta};

/// The largest rule upload or sample.
pub const RULES_LIMIT: usize = 4 * 1024 * 1024;

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/tenants/{tenant}/rules",
            get(list_rules)
                .post(upload_rules)
                .layer(axum::extract::DefaultBodyLimit::max(RULES_LIMIT)),
        )
        .route(
            "/tenants/{tenant}/rules-test",
            post(test_rules).layer(axum::extract::DefaultBodyLimit::max(RULES_LIMIT)),
        )
        .route("/tenants/{tenant}/rules/{rule}/{verb}", post(rule_verb))
        .route("/tenants/{tenant}/alerts", get(list_alerts))
        .route("/tenants/{tenant}/alerts/{id}", get(show_alert))
        .route("/tenants/{tenant}/alerts/{id}/{verb}", post(alert_verb))
        .route("/tenants/{tenant}/alert-suppressions", post(suppress))
}

pub fn console_routes() -> Router<AppState> {
    Router::new().route("/console/alerts", get(console_alerts))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_rules,
        upload_rules,
        test_rules,
        rule_verb,
        list_alerts,
        show_alert,
        alert_verb,
        suppress
    ),
    components(schemas(
        RuleView,
        MatchView,
        AlertView,
        AlertPage,
        AlertDetail,
        VerbInput,
        SuppressInput,
        SuppressionView
    ))
)]
pub struct AlertApi;

/// The problem of invalid rules (every one with file, line and reason).
pub(crate) fn rules_error(e: MonitorError) -> Response {
    error(e)
}

fn error(e: MonitorError) -> Response {
    match e {
        MonitorError::Rules(errors) => {
            let mut detail = format!("{} invalid rule(s); nothing was stored:", errors.len());
            for e in errors.iter().take(50) {
                detail.push_str(&format!(" [{}:{}] {};", e.file.display(), e.line, e.reason));
            }
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-rules", detail).into_response()
        }
        MonitorError::Iam(parapet_iam::IamError::Conflict(m)) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", m).into_response()
        }
        other => crate::monitor::monitor_error(other),
    }
}

/// A stored rule file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleView {
    pub tenant: String,
    pub rule_id: String,
    pub title: String,
    pub level: Option<String>,
    pub file: String,
    /// Rules (documents) in the file.
    pub rules: u32,
    pub enabled: bool,
    pub updated_at: String,
}

fn rule_view(t: &Tenant, r: &StoredRule) -> RuleView {
    RuleView {
        tenant: t.name.clone(),
        rule_id: r.rule_id.clone(),
        title: r.title.clone(),
        level: r.level.clone(),
        file: r.file.clone(),
        rules: r.rules,
        enabled: r.enabled,
        updated_at: r.updated_at.rfc3339(),
    }
}

/// A tenant's rule files (the provider tenant's apply to every tenant's events).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/rules", tag = "detection",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [RuleView]), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_rules(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> Response {
    match st.monitor.list_rules(&p, &tenant, &meta).await {
        Ok((t, rules)) => {
            Json(rules.iter().map(|r| rule_view(&t, r)).collect::<Vec<_>>()).into_response()
        }
        Err(e) => error(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// The file name (for error messages and the listing).
    pub file: Option<String>,
}

/// Upload Sigma rules: the body is one YAML file (one or more documents), or a JSON object
/// `{"files": [{"name": …, "yaml": …}, …]}` for several. All are checked first; an invalid rule
/// refuses the whole upload, naming the file, the line and the reason. A rule id already
/// present is replaced.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/rules", tag = "detection",
    params(("tenant" = String, Path), ("file" = Option<String>, Query)),
    request_body(content = String, content_type = "application/yaml"),
    responses((status = 201, body = [RuleView]), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn upload_rules(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<UploadParams>,
    body: Bytes,
) -> Response {
    #[derive(Deserialize)]
    struct Files {
        files: Vec<FileIn>,
    }
    #[derive(Deserialize)]
    struct FileIn {
        name: String,
        yaml: String,
    }
    let files: Vec<(String, String)> = if body.first() == Some(&b'{') {
        match serde_json::from_slice::<Files>(&body) {
            Ok(f) => f.files.into_iter().map(|f| (f.name, f.yaml)).collect(),
            Err(e) => {
                return ApiError::bad_request(format!("invalid JSON: {e}")).into_response();
            }
        }
    } else {
        match std::str::from_utf8(&body) {
            Ok(text) => vec![(
                q.file.unwrap_or_else(|| "upload.yml".into()),
                text.to_string(),
            )],
            Err(_) => return ApiError::bad_request("the rule file is not UTF-8").into_response(),
        }
    };
    match st.monitor.import_rules(&p, &tenant, &files, &meta).await {
        Ok(rules) => {
            let t = match st
                .iam
                .resolve(&p, &tenant, parapet_iam::Action::RuleRead, &meta)
                .await
            {
                Ok(t) => t,
                Err(e) => return ApiError::from(e).into_response(),
            };
            (
                StatusCode::CREATED,
                Json(rules.iter().map(|r| rule_view(&t, r)).collect::<Vec<_>>()),
            )
                .into_response()
        }
        Err(e) => error(e),
    }
}

/// One rule matching one event of a sample.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MatchView {
    pub event_index: usize,
    pub rule_id: String,
    pub title: String,
    pub level: Option<String>,
}

/// Test the tenant's enabled rules (and the provider's) on a sample of events (JSON array or
/// JSON lines); nothing is stored.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/rules-test", tag = "detection",
    params(("tenant" = String, Path)),
    request_body(content = String, content_type = "application/x-ndjson"),
    responses((status = 200, body = [MatchView]), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn test_rules(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    match st.monitor.test_rules(&p, &tenant, &body, &meta).await {
        Ok(m) => Json(
            m.into_iter()
                .map(|m| MatchView {
                    event_index: m.event_index,
                    rule_id: m.rule_id,
                    title: m.title,
                    level: m.level,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => error(e),
    }
}

/// Enable or disable a rule file (`verb` is `enable` or `disable`).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/rules/{rule}/{verb}", tag = "detection",
    params(("tenant" = String, Path), ("rule" = String, Path), ("verb" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn rule_verb(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, rule, verb)): Path<(String, String, String)>,
) -> Response {
    let enabled = match verb.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return ApiError::not_found("no such API endpoint").into_response(),
    };
    match st
        .monitor
        .set_rule_enabled(&p, &tenant, &rule, enabled, &meta)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

/// An alert.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    pub id: String,
    pub tenant: String,
    pub rule_id: String,
    /// Whether the rule is the provider's (else the tenant's own).
    pub provider_rule: bool,
    pub title: String,
    pub severity: String,
    pub group_key: String,
    pub asset: Option<String>,
    /// `open`, `acknowledged` or `closed`.
    pub status: String,
    pub count: u64,
    /// Time of the first and last matching event.
    pub first_event_at: String,
    pub last_event_at: String,
    /// When the alert was raised.
    pub alert_at: String,
    pub last_seen_at: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
    pub note: Option<String>,
}

fn alert_view(names: &std::collections::HashMap<String, String>, a: &Alert) -> AlertView {
    AlertView {
        id: a.id.to_string(),
        tenant: names
            .get(&a.tenant.to_string())
            .cloned()
            .unwrap_or_else(|| a.tenant.to_string()),
        rule_id: a.rule_id.clone(),
        provider_rule: a.rule_tenant != a.tenant,
        title: a.title.clone(),
        severity: a.severity.clone(),
        group_key: a.group_key.clone(),
        asset: a.asset.map(|x| x.to_string()),
        status: a.status.as_str().into(),
        count: a.count,
        first_event_at: a.first_event_at.rfc3339(),
        last_event_at: a.last_event_at.rfc3339(),
        alert_at: a.created_at.rfc3339(),
        last_seen_at: a.last_seen_at.rfc3339(),
        acknowledged_by: a.acknowledged_by.clone(),
        acknowledged_at: a.acknowledged_at.map(|t| t.rfc3339()),
        closed_by: a.closed_by.clone(),
        closed_at: a.closed_at.map(|t| t.rfc3339()),
        note: a.note.clone(),
    }
}

/// Tenant names by id, as the caller may see them.
async fn names(
    st: &AppState,
    p: &parapet_iam::Principal,
) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    out.insert(p.tenant.id.to_string(), p.tenant.name.clone());
    if let Ok(ts) = st.iam.list_tenants(p, None, 1000).await {
        for t in ts {
            out.insert(t.id.to_string(), t.name);
        }
    }
    out
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<AlertView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub rule: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn alert_filter(q: &AlertParams) -> Result<AlertFilter, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(AlertStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown status {s:?}; expected open, acknowledged or closed"
            ))
        })?),
    };
    Ok(AlertFilter {
        status,
        severity: q.severity.clone().filter(|s| !s.is_empty()),
        rule_id: q.rule.clone().filter(|s| !s.is_empty()),
    })
}

/// Alerts of a tenant, newest first; on the provider tenant, every tenant's.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/alerts", tag = "detection",
    params(("tenant" = String, Path), ("status" = Option<String>, Query),
        ("severity" = Option<String>, Query), ("rule" = Option<String>, Query),
        ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = AlertPage), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_alerts(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<AlertParams>,
) -> Response {
    let filter = match alert_filter(&q) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match st
        .monitor
        .list_alerts(
            &p,
            &tenant,
            &filter,
            &Page {
                after: q.cursor.clone(),
                limit: limit + 1,
            },
            &meta,
        )
        .await
    {
        Ok((_, mut list)) => {
            let more = list.len() > limit as usize;
            list.truncate(limit as usize);
            let next = if more {
                list.last().map(|a| format!("{}:{}", a.created_at.0, a.id))
            } else {
                None
            };
            let names = names(&st, &p).await;
            Json(AlertPage {
                items: list.iter().map(|a| alert_view(&names, a)).collect(),
                next_cursor: next,
            })
            .into_response()
        }
        Err(e) => error(e),
    }
}

/// An alert with the ids of its events.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertView,
    /// The first (up to 1,000) matching events.
    pub event_ids: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/alerts/{id}", tag = "detection",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = AlertDetail), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn show_alert(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
) -> Response {
    match st.monitor.get_alert(&p, &tenant, &id, &meta).await {
        Ok((t, a, ids)) => {
            let mut names = std::collections::HashMap::new();
            names.insert(t.id.to_string(), t.name.clone());
            Json(AlertDetail {
                alert: alert_view(&names, &a),
                event_ids: ids.iter().map(ToString::to_string).collect(),
            })
            .into_response()
        }
        Err(e) => error(e),
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerbInput {
    pub note: Option<String>,
}

/// Acknowledge (`ack`) or close (`close`) an alert.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/alerts/{id}/{verb}", tag = "detection",
    params(("tenant" = String, Path), ("id" = String, Path), ("verb" = String, Path)),
    request_body = VerbInput,
    responses((status = 200, body = AlertView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn alert_verb(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id, verb)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let status = match verb.as_str() {
        "ack" => AlertStatus::Acknowledged,
        "close" => AlertStatus::Closed,
        _ => return ApiError::not_found("no such API endpoint").into_response(),
    };
    let input: VerbInput = if body.iter().all(u8::is_ascii_whitespace) {
        VerbInput::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return ApiError::bad_request(format!("invalid JSON: {e}")).into_response(),
        }
    };
    match st
        .monitor
        .handle_alert(&p, &tenant, &id, status, input.note.as_deref(), &meta)
        .await
    {
        Ok((t, a)) => {
            let mut names = std::collections::HashMap::new();
            names.insert(t.id.to_string(), t.name.clone());
            Json(alert_view(&names, &a)).into_response()
        }
        Err(e) => error(e),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressInput {
    pub rule_id: String,
    /// Only this group key (the host); all when absent.
    pub group_key: Option<String>,
    pub minutes: u32,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SuppressionView {
    pub id: String,
    pub rule_id: String,
    pub group_key: Option<String>,
    pub until: String,
    pub reason: String,
    pub created_by: String,
}

/// Suppress new alerts of a rule (for one group key, or all) for some minutes.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/alert-suppressions", tag = "detection",
    params(("tenant" = String, Path)), request_body = SuppressInput,
    responses((status = 201, body = SuppressionView), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn suppress(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(b): ApiJson<SuppressInput>,
) -> Response {
    match st
        .monitor
        .suppress(
            &p,
            &tenant,
            &b.rule_id,
            b.group_key.as_deref(),
            b.minutes,
            &b.reason,
            &meta,
        )
        .await
    {
        Ok(s) => (
            StatusCode::CREATED,
            Json(SuppressionView {
                id: s.id.to_string(),
                rule_id: s.rule_id,
                group_key: s.group_key,
                until: s.until.rfc3339(),
                reason: s.reason,
                created_by: s.created_by,
            }),
        )
            .into_response(),
        Err(e) => error(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Console: the live alert list (the page refreshes itself every 10 s).

#[derive(Template)]
#[template(path = "monitor_alerts.html")]
struct AlertsPage {
    c: Chrome,
    tenant: String,
    tenants: Vec<String>,
    alerts: Vec<AlertView>,
    status: String,
}

#[derive(Debug, Default, Deserialize)]
struct ConsoleQuery {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    status: String,
}

async fn console_alerts(
    State(st): State<AppState>,
    u: ConsoleUser,
    axum::extract::Query(cq): axum::extract::Query<ConsoleQuery>,
) -> Response {
    let tenant = if cq.tenant.is_empty() {
        u.p.tenant.name.clone()
    } else {
        cq.tenant.clone()
    };
    let status = AlertStatus::parse(&cq.status);
    let filter = AlertFilter {
        status,
        ..AlertFilter::default()
    };
    let list = match st
        .monitor
        .list_alerts(
            &u.p,
            &tenant,
            &filter,
            &Page {
                after: None,
                limit: 200,
            },
            &u.meta,
        )
        .await
    {
        Ok((_, l)) => l,
        Err(MonitorError::Iam(e)) => return failure(e),
        Err(e) => return failure(parapet_iam::IamError::Internal(e.to_string())),
    };
    let names = names(&st, &u.p).await;
    let page = AlertsPage {
        c: u.chrome("Monitoring"),
        tenants: {
            let mut v: Vec<String> = names.values().cloned().collect();
            v.sort();
            v
        },
        tenant,
        alerts: list.iter().map(|a| alert_view(&names, a)).collect(),
        status: status.map(|s| s.as_str().to_string()).unwrap_or_default(),
    };
    render(StatusCode::OK, &page, u.set_csrf.clone())
}
