//! Security events over HTTP (X.1642 8.3(2), 7.2.2.6): batch ingestion with idempotency keys and
//! back-pressure, event search, retention; the console's event search page. Everything is decided
//! by [`parapet_monitor::Monitor`]; this module only translates.

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parapet_monitor::{Found, MonitorError, Receipt, Search};
use parapet_store::{StoredEvent, Tenant};
use parapet_types::Timestamp;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::console::{Chrome, ConsoleUser, failure, render};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta};

/// The largest ingestion body.
pub const INGEST_LIMIT: usize = 16 * 1024 * 1024;

/// The API routes (nested under `/api/v1`).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/tenants/{tenant}/events",
            get(search)
                .post(ingest)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/tenants/{tenant}/events/{id}", get(show))
        .route(
            "/tenants/{tenant}/event-retention",
            get(get_retention).put(set_retention),
        )
}

/// The console routes.
pub fn console_routes() -> Router<AppState> {
    Router::new().route("/console/events", get(console_events))
}

#[derive(OpenApi)]
#[openapi(
    paths(ingest, search, show, get_retention, set_retention),
    components(schemas(ReceiptView, EventView, EventPage, RetentionView, RetentionInput))
)]
pub struct MonitorApi;

pub(crate) fn monitor_error(e: MonitorError) -> Response {
    match e {
        MonitorError::Iam(e) => ApiError::from(e).into_response(),
        MonitorError::BadEvent(b) => {
            let status = if b.too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let slug = if b.too_large {
                "payload-too-large"
            } else {
                "invalid-event"
            };
            ApiError::new(
                status,
                slug,
                format!(
                    "line {}: {}; nothing of the batch was stored",
                    b.line, b.message
                ),
            )
            .into_response()
        }
        MonitorError::Invalid(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m).into_response()
        }
        MonitorError::Busy(secs) => busy(secs, "the ingestion queue is full"),
        e @ MonitorError::Rules(_) => crate::monitor_alerts::rules_error(e),
    }
}

fn busy(secs: u32, why: &str) -> Response {
    let mut res = ApiError::unavailable(format!("{why}; retry in {secs} s")).into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// What an ingested batch gave.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReceiptView {
    /// The batch id (search with `batch=`).
    pub batch: String,
    pub accepted: u64,
    /// Events attributed to an asset of the inventory.
    pub attributed: u64,
    /// Alerts the batch raised (0 in a replayed answer).
    pub alerts_raised: u64,
    /// Rule matches in the batch (new alerts and matches joining open alerts).
    pub alert_matches: u64,
    /// Whether this answer is the recorded one of an earlier request with the same key.
    pub replayed: bool,
}

impl From<Receipt> for ReceiptView {
    fn from(r: Receipt) -> Self {
        ReceiptView {
            batch: r.batch,
            accepted: r.accepted,
            attributed: r.attributed,
            alerts_raised: r.alerts_raised,
            alert_matches: r.alert_matches,
            replayed: r.replayed,
        }
    }
}

/// Send a batch of security events: a JSON array of objects or JSON lines (one object a line),
/// at most 10,000 events and 16 MiB, each event at most 64 KiB. With an `Idempotency-Key`
/// header, a repeated request returns the first answer and stores nothing twice. A bad event
/// refuses the whole batch (the problem names its line). When the server is saturated it
/// answers 503 with `Retry-After`. Needs a token with the `ingest` (or `write`) scope.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/events", tag = "events",
    params(("tenant" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe")),
    request_body(content = String, content_type = "application/x-ndjson"),
    responses((status = 200, body = ReceiptView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 413, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn ingest(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let t = match st.monitor.ingest_tenant(&p, &tenant, &meta).await {
        Ok(t) => t,
        Err(e) => return monitor_error(e),
    };
    let key = match headers.get("idempotency-key").map(HeaderValue::to_str) {
        None => None,
        Some(Ok(k)) => Some(k.trim().to_string()),
        Some(Err(_)) => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "the Idempotency-Key must be printable ASCII",
            )
            .into_response();
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > INGEST_LIMIT) {
        return too_large();
    }
    // Reserve memory for the body before reading it: a saturated server refuses at once.
    let _reservation = match st.monitor.reserve(declared.unwrap_or(INGEST_LIMIT)) {
        Ok(r) => r,
        Err(e) => return monitor_error(e),
    };
    let bytes = match axum::body::to_bytes(body, INGEST_LIMIT).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    match st
        .monitor
        .ingest(&t, p.actor(), &meta, &bytes, key.as_deref())
        .await
    {
        Ok(r) => {
            let replayed = r.replayed;
            let mut res = Json(ReceiptView::from(r)).into_response();
            if replayed {
                res.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            res
        }
        Err(MonitorError::Iam(parapet_iam::IamError::Unavailable(m))) => {
            tracing::warn!(error = %m, "event store busy");
            busy(1, "the event store is busy")
        }
        Err(e) => monitor_error(e),
    }
}

fn too_large() -> Response {
    metrics::counter!("parapet_events_rejected_total", "reason" => "too-large").increment(1);
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        format!(
            "a batch is at most {} MiB; split it (parapet ingest does)",
            INGEST_LIMIT / 1024 / 1024
        ),
    )
    .into_response()
}

/// A stored event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: String,
    pub tenant: String,
    pub time: String,
    pub received_at: String,
    pub host: Option<String>,
    pub source: Option<String>,
    pub severity: String,
    pub message: Option<String>,
    /// The asset of the inventory the event was attributed to.
    pub asset: Option<String>,
    pub batch: String,
    /// The event as it was sent.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

pub fn event_view(t: &Tenant, e: &StoredEvent) -> EventView {
    EventView {
        id: e.id.to_string(),
        tenant: t.name.clone(),
        time: e.time.rfc3339(),
        received_at: e.received_at.rfc3339(),
        host: e.host.clone(),
        source: e.source.clone(),
        severity: e.severity.clone(),
        message: e.message.clone(),
        asset: e.asset.map(|a| a.to_string()),
        batch: e.batch.to_string(),
        event: serde_json::from_str(&e.raw).unwrap_or(serde_json::Value::Null),
    }
}

/// A page of events.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    pub next_cursor: Option<String>,
}

fn parse_time(what: &str, s: &str) -> ApiResult<Timestamp> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(Timestamp::from_datetime)
        .map_err(|_| ApiError::bad_request(format!("{what} {s:?} is not an RFC 3339 time")))
}

/// Reads a search from query pairs (`field` may repeat).
pub(crate) fn search_of(pairs: &[(String, String)]) -> ApiResult<Search> {
    let mut q = Search {
        limit: 100,
        ..Search::default()
    };
    for (k, v) in pairs {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "from" => q.from = Some(parse_time("from", v)?),
            "to" => q.to = Some(parse_time("to", v)?),
            "host" => q.host = Some(v.into()),
            "source" => q.source = Some(v.into()),
            "severity" => q.severity = Some(v.into()),
            "asset" => q.asset = Some(v.into()),
            "batch" => q.batch = Some(v.into()),
            "q" => q.text = Some(v.into()),
            "field" => {
                let (path, value) = v.split_once('=').ok_or_else(|| {
                    ApiError::bad_request(format!("field {v:?} must be PATH=VALUE"))
                })?;
                q.fields.push((path.trim().into(), value.into()));
            }
            "limit" => {
                q.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=1000).contains(l))
                    .ok_or_else(|| ApiError::bad_request("limit must be 1 to 1000"))?;
            }
            "cursor" => q.cursor = Some(v.into()),
            "tenant" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown search parameter {other:?}"
                )));
            }
        }
    }
    Ok(q)
}

/// Search a tenant's events, newest first. Parameters: `from`, `to` (RFC 3339), `host`,
/// `source`, `severity`, `asset` (id or name), `batch`, `field=PATH=VALUE` (repeatable; dotted
/// paths into the event), `q` (free text), `limit` (1–1000, default 100), `cursor`.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/events", tag = "events",
    params(("tenant" = String, Path),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query),
        ("host" = Option<String>, Query), ("source" = Option<String>, Query),
        ("severity" = Option<String>, Query), ("asset" = Option<String>, Query),
        ("batch" = Option<String>, Query), ("field" = Option<Vec<String>>, Query),
        ("q" = Option<String>, Query), ("limit" = Option<u32>, Query),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = EventPage), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn search(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Response {
    let q = match search_of(&pairs) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match st.monitor.search(&p, &tenant, &q, &meta).await {
        Ok((t, Found { events, next })) => Json(EventPage {
            items: events.iter().map(|e| event_view(&t, e)).collect(),
            next_cursor: next,
        })
        .into_response(),
        Err(e) => monitor_error(e),
    }
}

/// One event.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/events/{id}", tag = "events",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = EventView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn show(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
) -> Response {
    match st.monitor.get(&p, &tenant, &id, &meta).await {
        Ok((t, e)) => Json(event_view(&t, &e)).into_response(),
        Err(e) => monitor_error(e),
    }
}

/// A tenant's event retention.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionView {
    pub tenant: String,
    pub days: u32,
    /// Whether the tenant uses the server's default.
    pub default: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionInput {
    /// 1 to 3650.
    pub days: u32,
}

/// A tenant's event retention (days).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/event-retention", tag = "events",
    params(("tenant" = String, Path)),
    responses((status = 200, body = RetentionView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_retention(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> Response {
    match st.monitor.retention(&p, &tenant, &meta).await {
        Ok((t, days, default)) => Json(RetentionView {
            tenant: t.name,
            days,
            default,
        })
        .into_response(),
        Err(e) => monitor_error(e),
    }
}

/// Set a tenant's event retention; older events are deleted by the hourly retention job.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/event-retention", tag = "events",
    params(("tenant" = String, Path)), request_body = RetentionInput,
    responses((status = 200, body = RetentionView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_retention(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<RetentionInput>,
) -> Response {
    match st
        .monitor
        .set_retention(&p, &tenant, body.days, &meta)
        .await
    {
        Ok(t) => Json(RetentionView {
            tenant: t.name,
            days: body.days,
            default: false,
        })
        .into_response(),
        Err(e) => monitor_error(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Console.

struct Row {
    id: String,
    time: String,
    host: String,
    source: String,
    severity: String,
    asset: String,
    message: String,
}

#[derive(Template)]
#[template(path = "monitor_events.html")]
struct EventsPage {
    c: Chrome,
    tenant: String,
    tenants: Vec<String>,
    rows: Vec<Row>,
    host: String,
    severity: String,
    text: String,
    field: String,
    next: Option<String>,
    severities: Vec<&'static str>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ConsoleQuery {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    field: String,
    #[serde(default)]
    cursor: String,
}

async fn console_events(
    State(st): State<AppState>,
    u: ConsoleUser,
    axum::extract::Query(cq): axum::extract::Query<ConsoleQuery>,
) -> Response {
    let tenant = if cq.tenant.is_empty() {
        u.p.tenant.name.clone()
    } else {
        cq.tenant.clone()
    };
    let tenants = match st.iam.list_tenants(&u.p, None, 200).await {
        Ok(ts) => ts.into_iter().map(|t| t.name).collect(),
        Err(e) => return failure(e),
    };
    let pairs: Vec<(String, String)> = [
        ("host", &cq.host),
        ("severity", &cq.severity),
        ("q", &cq.q),
        ("field", &cq.field),
        ("cursor", &cq.cursor),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    let mut error = None;
    let mut rows = Vec::new();
    let mut next = None;
    match search_of(&pairs) {
        Err(e) => error = Some(e.detail),
        Ok(q) => match st.monitor.search(&u.p, &tenant, &q, &u.meta).await {
            Ok((_, found)) => {
                next = found.next;
                rows = found
                    .events
                    .iter()
                    .map(|e| Row {
                        id: e.id.to_string(),
                        time: e.time.rfc3339(),
                        host: e.host.clone().unwrap_or_default(),
                        source: e.source.clone().unwrap_or_default(),
                        severity: e.severity.clone(),
                        asset: e.asset.map(|a| a.to_string()).unwrap_or_default(),
                        message: e
                            .message
                            .clone()
                            .unwrap_or_else(|| e.raw.chars().take(200).collect()),
                    })
                    .collect();
            }
            Err(MonitorError::Iam(e)) => return failure(e),
            Err(e) => error = Some(e.to_string()),
        },
    }
    let page = EventsPage {
        c: u.chrome("Monitoring"),
        tenant,
        tenants,
        rows,
        host: cq.host,
        severity: cq.severity,
        text: cq.q,
        field: cq.field,
        next,
        severities: vec!["informational", "low", "medium", "high", "critical"],
        error,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(status, &page, u.set_csrf.clone())
}
