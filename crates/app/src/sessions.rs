//! Sessions over HTTP (X.1642 8.1.2(1)): one's own sessions and account history, and the
//! administrators' listing and revocation of a tenant's sessions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use parapet_store::{AuditRecord, SessionInfo};
use parapet_types::CredentialId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta};

/// A live session or API token with its activity (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub username: String,
    /// `session` or `api-token`.
    pub kind: String,
    pub name: String,
    pub created_at: String,
    pub expires_at: String,
    /// Last use, to the minute.
    pub last_used_at: String,
    /// Where it was opened (sessions).
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Whether this is the credential of the current request.
    pub current: bool,
}

pub fn session_view(s: &SessionInfo, current: Option<CredentialId>) -> SessionView {
    SessionView {
        id: s.credential.id.to_string(),
        username: s.username.clone(),
        kind: s.credential.kind.as_str().into(),
        name: s.credential.name.clone(),
        created_at: s.credential.created_at.rfc3339(),
        expires_at: s.credential.expires_at.rfc3339(),
        last_used_at: s.last_used_at.rfc3339(),
        source_ip: s.source_ip.clone(),
        user_agent: s.user_agent.clone(),
        current: Some(s.credential.id) == current,
    }
}

/// The caller's own live sessions and API tokens, with when and from where they were used.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "sessions",
    responses((status = 200, body = [SessionView])), security(("bearer" = [])))]
pub async fn own_sessions(
    State(st): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<Vec<SessionView>>> {
    let list = st.iam.own_sessions(&p).await?;
    Ok(Json(
        list.iter()
            .map(|s| session_view(s, Some(p.credential)))
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// At most this many records (1–1000, default 100).
    pub limit: Option<u32>,
}

/// The caller's own account history: log-ins (successful or not), log-outs and changes to the
/// account, newest first.
#[utoipa::path(get, path = "/api/v1/me/history", tag = "sessions",
    params(HistoryParams),
    responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn own_history(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<HistoryParams>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    Ok(Json(st.iam.own_history(&p, limit).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SessionsParams {
    /// Only this user's.
    pub user: Option<String>,
    /// Also list API tokens.
    pub all_kinds: Option<bool>,
}

/// The live sessions of a tenant's users (with `all_kinds=true`, API tokens too).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sessions", tag = "sessions",
    params(("tenant" = String, Path), SessionsParams),
    responses((status = 200, body = [SessionView]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn tenant_sessions(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<SessionsParams>,
) -> ApiResult<Json<Vec<SessionView>>> {
    let (_, list) = st
        .iam
        .list_sessions(
            &p,
            &tenant,
            q.user.as_deref(),
            q.all_kinds.unwrap_or(false),
            &meta,
        )
        .await?;
    Ok(Json(
        list.iter()
            .map(|s| session_view(s, Some(p.credential)))
            .collect(),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeSessions {
    /// Also revoke the user's API tokens.
    #[serde(default)]
    pub include_tokens: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

/// Ends every session of a user (and with `include_tokens`, revokes its API tokens).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{username}/revoke-sessions",
    tag = "sessions", params(("tenant" = String, Path), ("username" = String, Path)),
    request_body = RevokeSessions,
    responses((status = 200, body = Revoked), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_user_sessions(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, username)): Path<(String, String)>,
    ApiJson(req): ApiJson<RevokeSessions>,
) -> ApiResult<Json<Revoked>> {
    let revoked = st
        .iam
        .revoke_user_sessions(&p, &tenant, &username, req.include_tokens, &meta)
        .await?;
    Ok(Json(Revoked { revoked }))
}

/// Ends one session (or revokes one API token) of a tenant's user.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/sessions/{id}", tag = "sessions",
    params(("tenant" = String, Path), ("id" = String, Path, description = "credential id")),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn revoke_session(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = id
        .parse::<uuid::Uuid>()
        .map(CredentialId)
        .map_err(|_| ApiError::not_found("no such session"))?;
    st.iam.revoke_session(&p, &tenant, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
