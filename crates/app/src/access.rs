//! Just-in-time privileged access over HTTP (X.1642 7.2.2.4(3)): ask for a role for a time,
//! list and revoke grants; requests are decided with the approvals endpoints.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parapet_store::AccessGrant;
use parapet_types::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::approval::{ApprovalView, approval_view};
use crate::console::{Chrome, ConsoleUser, csrf_ok, failure, forbidden_form, form_error, render};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};

#[derive(OpenApi)]
#[openapi(
    paths(request, list, revoke),
    components(schemas(AccessRequestBody, GrantView))
)]
pub struct AccessApi;

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/access/requests", post(request))
        .route("/tenants/{tenant}/access-grants", get(list))
        .route("/tenants/{tenant}/access-grants/{id}/revoke", post(revoke))
}

pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/access", get(page).post(page_request))
        .route("/console/access/{id}/revoke", post(page_revoke))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRequestBody {
    /// The role asked for, e.g. `security-admin`.
    pub role: String,
    pub reason: String,
    /// How long, in seconds (60 to 28800).
    pub duration_secs: i64,
}

/// A role lent for a time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    pub id: String,
    pub username: String,
    pub role: String,
    pub reason: String,
    pub approval_id: String,
    pub granted_by: String,
    pub starts_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

fn grant_view(g: &AccessGrant, now: Timestamp) -> GrantView {
    let state = if g.revoked_at.is_some() {
        "revoked"
    } else if g.expires_at.0 <= now.0 {
        "expired"
    } else {
        "active"
    };
    GrantView {
        id: g.id.clone(),
        username: g.username.clone(),
        role: g.role.as_str().into(),
        reason: g.reason.clone(),
        approval_id: g.approval_id.clone(),
        granted_by: g.granted_by_name.clone(),
        starts_at: g.starts_at.rfc3339(),
        expires_at: g.expires_at.rfc3339(),
        revoked_at: g.revoked_at.map(Timestamp::rfc3339),
        revoked_by: g.revoked_by_name.clone(),
        state: state.into(),
    }
}

fn parse_role(s: &str) -> Result<parapet_types::Role, ApiError> {
    s.parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("unknown role {s:?}"),
        )
    })
}

/// Asks for a role for a limited time; another administrator approves it
/// (`POST /api/v1/tenants/{tenant}/approvals/{id}/approve`).
#[utoipa::path(post, path = "/api/v1/access/requests", tag = "access",
    request_body = AccessRequestBody,
    responses((status = 201, body = ApprovalView), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn request(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(b): ApiJson<AccessRequestBody>,
) -> ApiResult<(StatusCode, Json<ApprovalView>)> {
    let role = parse_role(&b.role)?;
    let r = st
        .iam
        .request_access(&p, role, &b.reason, b.duration_secs, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(approval_view(&r))))
}

/// The tenant's just-in-time grants (active, expired, revoked), newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/access-grants", tag = "access",
    params(("tenant" = String, Path)), responses((status = 200, body = [GrantView])),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<GrantView>>> {
    let (_, list) = st.iam.list_grants(&p, &tenant, &meta).await?;
    let now = st.iam.env().now();
    Ok(Json(list.iter().map(|g| grant_view(g, now)).collect()))
}

/// Ends a grant early (its holder, or an administrator who may grant its role).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/access-grants/{id}/revoke", tag = "access",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = GrantView), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<GrantView>> {
    let g = st.iam.revoke_grant(&p, &tenant, &id, &meta).await?;
    Ok(Json(grant_view(&g, st.iam.env().now())))
}

// -- console ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "access_grants.html")]
struct AccessPage {
    c: Chrome,
    grants: Vec<GrantView>,
    /// The caller's role in force and, when lent, until when.
    elevated_until: Option<String>,
    roles: Vec<&'static str>,
}

async fn view(
    st: &AppState,
    u: &ConsoleUser,
    error: Option<(StatusCode, String)>,
    notice: Option<String>,
) -> Response {
    let tenant = u.p.tenant.name.clone();
    let now = st.iam.env().now();
    // Administrators and auditors see the tenant's grants; others only their own.
    let grants = match st.iam.list_grants(&u.p, &tenant, &u.meta).await {
        Ok((_, list)) => list,
        Err(parapet_iam::IamError::Forbidden(_)) => vec![],
        Err(e) => return failure(e),
    };
    let mut c = u.chrome("Privileged access");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    c.notice = notice;
    let roles = parapet_types::Role::ALL
        .into_iter()
        .filter(|r| r.fits(u.p.tenant.kind))
        .map(|r| r.as_str())
        .collect();
    render(
        status,
        &AccessPage {
            c,
            grants: grants.iter().map(|g| grant_view(g, now)).collect(),
            elevated_until: u.p.elevation.as_ref().map(|e| e.expires_at.rfc3339()),
            roles,
        },
        u.set_csrf.clone(),
    )
}

async fn page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    view(&st, &u, None, None).await
}

#[derive(Debug, Deserialize)]
struct RequestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    reason: String,
    /// Minutes.
    #[serde(default)]
    minutes: String,
}

async fn page_request(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<RequestForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let bad = |m: &str| Some((StatusCode::UNPROCESSABLE_ENTITY, m.to_string()));
    let Ok(role) = f.role.parse::<parapet_types::Role>() else {
        return view(&st, &u, bad("choose a role"), None).await;
    };
    let Some(minutes) = f.minutes.trim().parse::<i64>().ok() else {
        return view(&st, &u, bad("give the duration in minutes"), None).await;
    };
    match st
        .iam
        .request_access(&u.p, role, &f.reason, minutes.saturating_mul(60), &u.meta)
        .await
    {
        Ok(r) => {
            let n = format!(
                "Request {} filed: another administrator approves it on the Approvals page.",
                r.id
            );
            view(&st, &u, None, Some(n)).await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, Some(err), None).await,
            None => failure(e),
        },
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn page_revoke(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let tenant = u.p.tenant.name.clone();
    match st.iam.revoke_grant(&u.p, &tenant, &id, &u.meta).await {
        Ok(_) => view(&st, &u, None, Some("Grant revoked.".into())).await,
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, Some(err), None).await,
            None => failure(e),
        },
    }
}
