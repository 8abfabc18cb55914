//! Monitoring health over HTTP (X.1642 8.3(1), 7.2.2.3): per tenant and per asset, when data
//! last arrived, silence, open alerts; the console page. Decided by
//! [`parapet_monitor::Monitor::health`]; this module only translates.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parapet_monitor::health::{AssetHealthView, TenantHealth};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::console::{Chrome, ConsoleUser, failure, render};
use crate::error::Problem;
use crate::extract::{Auth, Meta};
use crate::monitor::monitor_error;

pub fn api_routes() -> Router<AppState> {
    Router::new().route("/tenants/{tenant}/monitoring-health", get(health))
}

pub fn console_routes() -> Router<AppState> {
    Router::new().route("/console/health", get(console_health))
}

#[derive(OpenApi)]
#[openapi(
    paths(health),
    components(schemas(HealthView, AssetHealthRow, SeverityCount))
)]
pub struct HealthApi;

/// One asset's monitoring health.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssetHealthRow {
    pub name: String,
    pub kind: String,
    pub criticality: String,
    /// The inventory's health (`silent` while the asset is silent).
    pub health: String,
    /// When data about the asset last arrived (RFC 3339), if ever.
    pub last_data_at: Option<String>,
    pub silent_after_minutes: u32,
    pub silent: bool,
    pub open_alerts: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeverityCount {
    pub severity: String,
    pub count: u64,
}

/// A tenant's monitoring health.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    pub tenant: String,
    pub assets: u64,
    pub silent: u64,
    pub open_alerts: u64,
    pub open_by_severity: Vec<SeverityCount>,
    pub items: Vec<AssetHealthRow>,
}

fn row(a: AssetHealthView) -> AssetHealthRow {
    AssetHealthRow {
        name: a.name,
        kind: a.kind,
        criticality: a.criticality,
        health: a.health,
        last_data_at: a.last_data_at,
        silent_after_minutes: a.silent_after_minutes,
        silent: a.silent,
        open_alerts: a.open_alerts,
    }
}

fn view(h: TenantHealth) -> HealthView {
    HealthView {
        tenant: h.tenant,
        assets: h.assets,
        silent: h.silent,
        open_alerts: h.open_alerts,
        open_by_severity: h
            .open_by_severity
            .into_iter()
            .map(|(severity, count)| SeverityCount { severity, count })
            .collect(),
        items: h.items.into_iter().map(row).collect(),
    }
}

/// A tenant's monitoring health: per asset when data last arrived, whether it is silent (no
/// data for longer than its interval) and its open alerts.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/monitoring-health", tag = "alerts",
    params(("tenant" = String, Path)),
    responses((status = 200, body = HealthView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn health(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> Response {
    match st.monitor.health(&p, &tenant, &meta).await {
        Ok(h) => Json(view(h)).into_response(),
        Err(e) => monitor_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct ConsoleQuery {
    #[serde(default)]
    tenant: String,
}

#[derive(Template)]
#[template(path = "monitor_health.html")]
struct HealthPage {
    c: Chrome,
    tenant: String,
    tenants: Vec<String>,
    h: HealthView,
}

async fn console_health(
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
    match st.monitor.health(&u.p, &tenant, &u.meta).await {
        Ok(h) => {
            let page = HealthPage {
                c: u.chrome("Monitoring"),
                tenant,
                tenants,
                h: view(h),
            };
            render(StatusCode::OK, &page, u.set_csrf.clone())
        }
        Err(parapet_monitor::MonitorError::Iam(e)) => failure(e),
        Err(e) => monitor_error(e),
    }
}
