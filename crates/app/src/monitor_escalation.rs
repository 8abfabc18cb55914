//! Alert escalation over HTTP (X.1642 8.6.1): a tenant's policy — levels of notification
//! channels reached one after the other while an alert stays unacknowledged. Decided by
//! [`parapet_monitor::Monitor`]; this module only translates.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parapet_monitor::escalation::{Level, Policy};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, Auth, Meta};
use crate::monitor::monitor_error;

pub fn api_routes() -> Router<AppState> {
    Router::new().route(
        "/tenants/{tenant}/alert-escalation",
        get(get_policy).put(set_policy).delete(delete_policy),
    )
}

#[derive(OpenApi)]
#[openapi(
    paths(get_policy, set_policy, delete_policy),
    components(schemas(EscalationBody, LevelBody))
)]
pub struct EscalationApi;

/// One level: the tenant's notification channels (by name) reached `after_secs` after the
/// previous level (the first: after the alert was raised).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelBody {
    pub after_secs: u32,
    pub channels: Vec<String>,
}

/// An escalation policy: while an alert is open (not acknowledged), each level is reached in
/// turn; the levels are gone through `1 + repeat` times. Acknowledging stops it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationBody {
    pub levels: Vec<LevelBody>,
    #[serde(default)]
    pub repeat: u32,
    /// Only alerts at or above this severity escalate.
    #[serde(default)]
    pub min_severity: Option<String>,
}

fn body(p: Policy) -> EscalationBody {
    EscalationBody {
        levels: p
            .levels
            .into_iter()
            .map(|l| LevelBody {
                after_secs: l.after_secs,
                channels: l.channels,
            })
            .collect(),
        repeat: p.repeat,
        min_severity: p.min_severity,
    }
}

/// A tenant's escalation policy.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/alert-escalation", tag = "alerts",
    params(("tenant" = String, Path)),
    responses((status = 200, body = EscalationBody), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_policy(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> Response {
    match st.monitor.escalation(&p, &tenant, &meta).await {
        Ok(Some(pol)) => Json(body(pol)).into_response(),
        Ok(None) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "the tenant has no escalation policy",
        )
        .into_response(),
        Err(e) => monitor_error(e),
    }
}

/// Sets a tenant's escalation policy.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/alert-escalation", tag = "alerts",
    params(("tenant" = String, Path)), request_body = EscalationBody,
    responses((status = 200, body = EscalationBody), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_policy(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(b): ApiJson<EscalationBody>,
) -> Response {
    let policy = Policy {
        levels: b
            .levels
            .into_iter()
            .map(|l| Level {
                after_secs: l.after_secs,
                channels: l.channels,
            })
            .collect(),
        repeat: b.repeat,
        min_severity: b.min_severity,
    };
    match st
        .monitor
        .set_escalation(&p, &tenant, Some(&policy), &meta)
        .await
    {
        Ok(_) => Json(body(policy)).into_response(),
        Err(e) => monitor_error(e),
    }
}

/// Removes a tenant's escalation policy.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/alert-escalation", tag = "alerts",
    params(("tenant" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_policy(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> Response {
    match st.monitor.set_escalation(&p, &tenant, None, &meta).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => monitor_error(e),
    }
}
