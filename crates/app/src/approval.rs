//! Approval requests over HTTP and in the console (X.1642 8.1.1(2)), and direct role changes.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parapet_store::{ApprovalKind, ApprovalRequest};
use parapet_types::{Role, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::{UserView, user_view};
use crate::console::{Chrome, ConsoleUser, csrf_ok, failure, forbidden_form, form_error, render};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};

/// An approval request (never with the requested password).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    pub id: String,
    /// `user-create`, `role-change`, `elevation` or `group-member`.
    pub kind: String,
    pub username: String,
    pub role: String,
    /// For `group-member`: the group the user would join (`role`: its most privileged role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub comment: Option<String>,
}

pub fn approval_view(r: &ApprovalRequest) -> ApprovalView {
    ApprovalView {
        id: r.id.clone(),
        kind: r.kind.as_str().into(),
        username: r.username.clone(),
        role: r.role.as_str().into(),
        group: r.group.clone(),
        reason: r.reason.clone(),
        requested_by: r.requested_by_name.clone(),
        requested_at: r.requested_at.rfc3339(),
        status: r.status.clone(),
        decided_by: r.decided_by_name.clone(),
        decided_at: r.decided_at.map(Timestamp::rfc3339),
        comment: r.comment.clone(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApproval {
    /// `user-create` or `role-change`.
    pub kind: String,
    pub username: String,
    pub role: String,
    /// For `user-create`: the new user's password.
    #[serde(default)]
    pub password: Option<String>,
    pub reason: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: String,
}

fn role(s: &str) -> Result<Role, ApiError> {
    s.parse::<Role>().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("unknown role {s:?}"),
        )
    })
}

/// The approval requests of a tenant, newest first, decided ones included (the history).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/approvals", tag = "approvals",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [ApprovalView]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<ApprovalView>>> {
    let (_, list) = st.iam.list_approvals(&p, &tenant, &meta).await?;
    Ok(Json(list.iter().map(approval_view).collect()))
}

/// Files a request for a new user or a role change; another administrator decides it.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/approvals", tag = "approvals",
    params(("tenant" = String, Path)), request_body = NewApproval,
    responses((status = 201, body = ApprovalView), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(req): ApiJson<NewApproval>,
) -> ApiResult<(StatusCode, Json<ApprovalView>)> {
    let r = role(&req.role)?;
    let filed = match ApprovalKind::parse(&req.kind) {
        Some(ApprovalKind::UserCreate) => {
            let pw = req.password.as_deref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    "a user-create request needs the new user's password",
                )
            })?;
            st.iam
                .request_user(&p, &tenant, &req.username, pw, r, &req.reason, &meta)
                .await?
        }
        Some(ApprovalKind::RoleChange) => {
            st.iam
                .request_role(&p, &tenant, &req.username, r, &req.reason, &meta)
                .await?
        }
        Some(ApprovalKind::Elevation | ApprovalKind::GroupMember) | None => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "kind must be user-create or role-change (ask for just-in-time access with \
                 POST /api/v1/access/requests; group memberships are requested by adding the \
                 member to the group)",
            ));
        }
    };
    Ok((StatusCode::CREATED, Json(approval_view(&filed))))
}

async fn decide(
    st: &AppState,
    p: &parapet_iam::Principal,
    meta: &parapet_iam::RequestMeta,
    tenant: &str,
    id: &str,
    approve: bool,
    d: &Decision,
) -> ApiResult<Json<ApprovalView>> {
    let r = st
        .iam
        .decide_approval(p, tenant, id, approve, d.comment.as_deref(), meta)
        .await?;
    Ok(Json(approval_view(&r)))
}

/// Approves a pending request (not one's own) and applies it.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/approvals/{id}/approve", tag = "approvals",
    params(("tenant" = String, Path), ("id" = String, Path)), request_body = Decision,
    responses((status = 200, body = ApprovalView), (status = 403, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn approve(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
    ApiJson(d): ApiJson<Decision>,
) -> ApiResult<Json<ApprovalView>> {
    decide(&st, &p, &meta, &tenant, &id, true, &d).await
}

/// Rejects a pending request (not one's own).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/approvals/{id}/reject", tag = "approvals",
    params(("tenant" = String, Path), ("id" = String, Path)), request_body = Decision,
    responses((status = 200, body = ApprovalView), (status = 403, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn reject(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
    ApiJson(d): ApiJson<Decision>,
) -> ApiResult<Json<ApprovalView>> {
    decide(&st, &p, &meta, &tenant, &id, false, &d).await
}

/// Changes a user's role at once (when the tenant's policy does not require approval); the
/// user's sessions and tokens end.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{username}/role", tag = "approvals",
    params(("tenant" = String, Path), ("username" = String, Path)), request_body = RoleChange,
    responses((status = 200, body = UserView), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn change_role(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, username)): Path<(String, String)>,
    ApiJson(req): ApiJson<RoleChange>,
) -> ApiResult<Json<UserView>> {
    let r = role(&req.role)?;
    let u = st.iam.change_role(&p, &tenant, &username, r, &meta).await?;
    let t = st.iam.visible_tenant(&p, &tenant).await?;
    Ok(Json(user_view(&t, &u)))
}

// -- console ---------------------------------------------------------------------------------

pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/tenants/{tenant}/approvals", get(page))
        .route(
            "/console/tenants/{tenant}/approvals/{id}/{decision}",
            post(page_decide),
        )
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    c: Chrome,
    tenant: String,
    requests: Vec<ApprovalView>,
}

async fn view(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let (t, list) = match st.iam.list_approvals(&u.p, tenant, &u.meta).await {
        Ok(x) => x,
        Err(e) => return failure(e),
    };
    let mut c = u.chrome("Users");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    render(
        status,
        &ApprovalsPage {
            c,
            tenant: t.name,
            requests: list.iter().map(approval_view).collect(),
        },
        u.set_csrf.clone(),
    )
}

async fn page(State(st): State<AppState>, u: ConsoleUser, Path(tenant): Path<String>) -> Response {
    view(&st, &u, &tenant, None).await
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    comment: String,
}

async fn page_decide(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((tenant, id, decision)): Path<(String, String, String)>,
    Form(f): Form<DecisionForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let approve = match decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return failure(parapet_iam::IamError::NotFound("no such decision".into())),
    };
    let comment = Some(f.comment.as_str()).filter(|c| !c.trim().is_empty());
    match st
        .iam
        .decide_approval(&u.p, &tenant, &id, approve, comment, &u.meta)
        .await
    {
        Ok(_) => view(&st, &u, &tenant, None).await,
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, &tenant, Some(err)).await,
            None => failure(e),
        },
    }
}
