//! The REST API under `/api/v1`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parapet_iam::{Principal, display_login};
use parapet_store::{AuditFilter, AuditRecord, Tenant, TenantStatus, User, UserStatus};
use parapet_types::{Role, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta, SESSION_COOKIE};

/// A tenant: the provider or one of its customers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    /// `provider` or `customer`.
    pub kind: String,
    /// `active` or `suspended`.
    pub status: String,
    pub created_at: String,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        TenantView {
            id: t.id.to_string(),
            name: t.name.clone(),
            kind: t.kind.as_str().into(),
            status: t.status.as_str().into(),
            created_at: t.created_at.rfc3339(),
        }
    }
}

/// A user (never with its password hash).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub tenant_id: String,
    pub tenant: String,
    pub username: String,
    /// The name to log in with: `name` for provider staff, `name@tenant` for tenant users.
    pub login: String,
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

pub fn user_view(t: &Tenant, u: &User) -> UserView {
    UserView {
        id: u.id.to_string(),
        tenant_id: t.id.to_string(),
        tenant: t.name.clone(),
        username: u.username.clone(),
        login: display_login(t, u),
        role: u.role.as_str().into(),
        status: u.status.as_str().into(),
        created_at: u.created_at.rfc3339(),
        last_login_at: u.last_login_at.map(Timestamp::rfc3339),
    }
}

pub(crate) fn principal_view(p: &Principal) -> UserView {
    user_view(&p.tenant, &p.user)
}

/// A page of results; pass `next_cursor` as `cursor` to get the next one.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Cursor pagination parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// How many items (1 to 1000, default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub(crate) fn limit(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

/// Builds a page from `limit + 1` fetched items.
pub(crate) fn page_of<S, T>(
    mut items: Vec<S>,
    limit: u32,
    key: impl Fn(&S) -> String,
    view: impl Fn(&S) -> T,
) -> PageView<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(&key) } else { None };
    PageView {
        items: items.iter().map(view).collect(),
        next_cursor,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// `admin` (provider staff) or `alice@acme` (a tenant's user).
    pub username: String,
    pub password: String,
    /// A TOTP code (or a recovery code), for accounts with a second factor.
    #[serde(default)]
    pub otp: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token of the new session.
    pub token: String,
    pub expires_at: String,
    pub user: UserView,
    /// The account must enrol a second factor (`POST /api/v1/me/mfa/totp`) and log in again:
    /// until then this session may do nothing else.
    pub mfa_enrolment_required: bool,
}

/// The `Set-Cookie` value of a session.
pub fn session_cookie(secret: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_session_cookie(secure: bool) -> String {
    session_cookie("", 0, secure)
}

/// Log in with a password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = Problem)))]
pub async fn login(
    State(st): State<AppState>,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    if req.username.len() > 200 || req.password.len() > 4096 {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login-failed",
            "wrong user name or password, or the account is disabled",
        ));
    }
    let issued = match st
        .iam
        .login_with_otp(&req.username, &req.password, req.otp.as_deref(), &meta)
        .await
    {
        Ok(i) => i,
        Err(parapet_iam::IamError::Unauthenticated) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "login-failed",
                "wrong user name or password, or the account is disabled",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let max_age = (issued.expires_at.0 - st.iam.env().now().0) / 1000;
    let body = LoginResponse {
        token: issued.secret.clone(),
        expires_at: issued.expires_at.rfc3339(),
        user: principal_view(&issued.principal),
        mfa_enrolment_required: issued
            .principal
            .scopes
            .iter()
            .any(|s| s == parapet_iam::mfa::ENROL_ONLY_SCOPE),
    };
    let mut res = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&issued.secret, max_age, st.config.tls)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// End the current session (or revoke the API token used).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn logout(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> ApiResult<Response> {
    st.iam.logout(&p, &meta).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&clear_session_cookie(st.config.tls)) {
        headers.insert(header::SET_COOKIE, v);
    }
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/auth/whoami", tag = "auth",
    responses((status = 200, body = UserView), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn whoami(Auth(p): Auth) -> Json<UserView> {
    Json(principal_view(&p))
}

/// Tenants the caller may see (all of them for provider staff, its own for a tenant's user).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(PageParams),
    responses((status = 200, body = PageView<TenantView>), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_tenants(
    State(st): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<PageView<TenantView>>> {
    let limit = q.limit();
    let items = st.iam.list_tenants(&p, q.cursor.clone(), limit + 1).await?;
    Ok(Json(page_of(
        items,
        limit,
        |t| t.id.to_string(),
        |t| TenantView::from(t),
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// A DNS label: lower-case letters, digits and hyphens.
    pub name: String,
}

/// Create a customer tenant (provider security administrators).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = TenantView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_tenant(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<CreateTenant>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    let t = st.iam.create_tenant(&p, &req.name, &meta).await?;
    Ok((StatusCode::CREATED, Json(TenantView::from(&t))))
}

/// One tenant, by name or id.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant name or id")),
    responses((status = 200, body = TenantView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_tenant(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<TenantView>> {
    let t = st
        .iam
        .resolve(&p, &tenant, parapet_iam::Action::TenantRead, &meta)
        .await?;
    Ok(Json(TenantView::from(&t)))
}

/// Suspend a customer tenant: its users can no longer log in or use their tokens.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/suspend", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant name or id")),
    responses((status = 200, body = TenantView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn suspend_tenant(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<TenantView>> {
    set_tenant_status(&st, &p, &meta, &tenant, TenantStatus::Suspended).await
}

/// Reactivate a suspended tenant.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/activate", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant name or id")),
    responses((status = 200, body = TenantView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn activate_tenant(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<TenantView>> {
    set_tenant_status(&st, &p, &meta, &tenant, TenantStatus::Active).await
}

async fn set_tenant_status(
    st: &AppState,
    p: &Principal,
    meta: &parapet_iam::RequestMeta,
    tenant: &str,
    status: TenantStatus,
) -> ApiResult<Json<TenantView>> {
    let t = st.iam.set_tenant_status(p, tenant, status, meta).await?;
    Ok(Json(TenantView::from(&t)))
}

/// The users of a tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/users", tag = "users",
    params(("tenant" = String, Path, description = "tenant name or id"), PageParams),
    responses((status = 200, body = PageView<UserView>), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<PageView<UserView>>> {
    let limit = q.limit();
    let (t, users) = st
        .iam
        .list_users(&p, &tenant, q.cursor.clone(), limit + 1, &meta)
        .await?;
    Ok(Json(page_of(
        users,
        limit,
        |u| u.id.to_string(),
        |u| user_view(&t, u),
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    /// One of the provider roles (in the provider tenant) or tenant roles (in a customer tenant).
    pub role: String,
}

/// Create a user in a tenant.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users", tag = "users",
    params(("tenant" = String, Path, description = "tenant name or id")), request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(req): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let role: Role = req.role.parse().map_err(|e: parapet_types::UnknownRole| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
    })?;
    let (t, u) = st
        .iam
        .create_user(&p, &tenant, &req.username, &req.password, role, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(user_view(&t, &u))))
}

async fn set_user_status(
    st: AppState,
    p: Principal,
    meta: parapet_iam::RequestMeta,
    tenant: String,
    username: String,
    status: UserStatus,
) -> ApiResult<Json<UserView>> {
    let u = st
        .iam
        .set_user_status(&p, &tenant, &username, status, &meta)
        .await?;
    let t = st
        .iam
        .resolve(&p, &tenant, parapet_iam::Action::TenantRead, &meta)
        .await?;
    Ok(Json(user_view(&t, &u)))
}

/// Disable a user: it can no longer log in, and its sessions and tokens are revoked.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{username}/disable", tag = "users",
    params(("tenant" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn disable_user(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, username)): Path<(String, String)>,
) -> ApiResult<Json<UserView>> {
    set_user_status(st, p, meta, tenant, username, UserStatus::Disabled).await
}

/// Enable a disabled user.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{username}/enable", tag = "users",
    params(("tenant" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn enable_user(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, username)): Path<(String, String)>,
) -> ApiResult<Json<UserView>> {
    set_user_status(st, p, meta, tenant, username, UserStatus::Active).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// `read` and/or `write` (default both); never more than the caller holds.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Lifetime in seconds (default 90 days).
    pub expires_in_secs: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    pub id: String,
    /// The secret, shown once.
    pub token: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: String,
}

/// Create an API token for the caller.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "auth", request_body = CreateToken,
    responses((status = 201, body = TokenCreated), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let issued = st
        .iam
        .create_token(&p, &req.name, &req.scopes, req.expires_in_secs, &meta)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: issued.id.to_string(),
            token: issued.secret,
            name: req.name.trim().to_string(),
            scopes: issued.principal.scopes,
            expires_at: issued.expires_at.rfc3339(),
        }),
    ))
}

/// Audit search parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Exact action, e.g. `auth.login`.
    pub action: Option<String>,
    /// Actor label (user name).
    pub actor: Option<String>,
    /// Exact target, e.g. `user:acme/alice`.
    pub target: Option<String>,
    /// RFC 3339 lower bound (inclusive).
    pub since: Option<String>,
    /// RFC 3339 upper bound (exclusive).
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub(crate) fn parse_time(what: &str, s: &Option<String>) -> ApiResult<Option<Timestamp>> {
    match s {
        None => Ok(None),
        Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(|t| Some(Timestamp::from_datetime(t)))
            .map_err(|_| ApiError::bad_request(format!("{what} must be an RFC 3339 time"))),
    }
}

/// The audit trail of a tenant, newest first (provider staff see every tenant's records under
/// the provider tenant).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/audit", tag = "audit",
    params(("tenant" = String, Path), AuditParams),
    responses((status = 200, body = Object), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_audit(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<PageView<AuditRecord>>> {
    let filter = AuditFilter {
        tenant: None,
        target: q.target.clone(),
        action: q.action.clone(),
        actor: q.actor.clone(),
        since: parse_time("since", &q.since)?,
        until: parse_time("until", &q.until)?,
    };
    if let Some(c) = &q.cursor
        && c.parse::<i64>().is_err()
    {
        return Err(ApiError::bad_request("invalid cursor"));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = st
        .iam
        .list_audit(&p, &tenant, &filter, q.cursor.clone(), limit + 1, &meta)
        .await?;
    Ok(Json(page_of(
        items,
        limit,
        |r| r.id.to_string(),
        Clone::clone,
    )))
}

/// A live session or API token of the caller (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    pub id: String,
    /// `session` or `api-token`.
    pub kind: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: String,
    /// Whether this is the credential of the current request.
    pub current: bool,
}

/// The caller's live sessions and API tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "auth",
    responses((status = 200, body = PageView<CredentialView>), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(st): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<PageView<CredentialView>>> {
    let list = st.iam.list_own_credentials(&p).await?;
    Ok(Json(PageView {
        items: list
            .iter()
            .map(|c| CredentialView {
                id: c.id.to_string(),
                kind: c.kind.as_str().into(),
                name: c.name.clone(),
                scopes: if c.kind == parapet_store::CredentialKind::Session {
                    vec!["read".into(), "write".into()]
                } else {
                    c.scopes.clone()
                },
                created_at: c.created_at.rfc3339(),
                expires_at: c.expires_at.rfc3339(),
                current: c.id == p.credential,
            })
            .collect(),
        next_cursor: None,
    }))
}

/// Revoke one of the caller's sessions or API tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "auth",
    params(("id" = String, Path, description = "credential id")),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn revoke_token(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: parapet_types::CredentialId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such live session or token of yours"))?;
    st.iam.revoke_own_credential(&p, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
