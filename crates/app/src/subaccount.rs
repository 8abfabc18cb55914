//! A main account's sub-accounts (X.1642 8.1.1(4)) beyond creation and listing
//! (`group.rs`): changing their role within the main account's own privileges, disabling them,
//! and the console page that does all of it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parapet_types::Role;
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::api::{UserView, user_view};
use crate::console::{Chrome, ConsoleUser, csrf_ok, failure, forbidden_form, form_error, render};
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};

#[derive(OpenApi)]
#[openapi(paths(set_role, disable), components(schemas(SubAccountRole)))]
pub struct SubAccountManageApi;

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/me/sub-accounts/{username}/role", post(set_role))
        .route("/me/sub-accounts/{username}/disable", post(disable))
}

pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/sub-accounts", get(page).post(page_create))
        .route("/console/sub-accounts/{username}/role", post(page_role))
        .route(
            "/console/sub-accounts/{username}/disable",
            post(page_disable),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubAccountRole {
    #[schema(value_type = String)]
    pub role: Role,
}

/// Changes the role of one of the caller's sub-accounts (never beyond the caller's own).
#[utoipa::path(post, path = "/api/v1/me/sub-accounts/{username}/role", tag = "users",
    params(("username" = String, Path)), request_body = SubAccountRole,
    responses((status = 200, body = UserView), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_role(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
    ApiJson(b): ApiJson<SubAccountRole>,
) -> ApiResult<Json<UserView>> {
    let u = st
        .iam
        .set_sub_account_role(&p, &username, b.role, &meta)
        .await?;
    Ok(Json(user_view(&p.tenant, &u)))
}

/// Disables one of the caller's sub-accounts (its sessions and tokens end).
#[utoipa::path(post, path = "/api/v1/me/sub-accounts/{username}/disable", tag = "users",
    params(("username" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn disable(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    st.iam.disable_sub_account(&p, &username, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Template)]
#[template(path = "subaccount_list.html")]
struct SubAccountsPage {
    c: Chrome,
    subs: Vec<UserView>,
    /// Roles that fit the tenant (the server refuses those the main account does not hold).
    roles: Vec<&'static str>,
    is_sub_account: bool,
}

async fn view(
    st: &AppState,
    u: &ConsoleUser,
    error: Option<(StatusCode, String)>,
    notice: Option<String>,
) -> Response {
    let subs = match st.iam.list_sub_accounts(&u.p).await {
        Ok(list) => list.iter().map(|s| user_view(&u.p.tenant, s)).collect(),
        Err(e) => return failure(e),
    };
    let is_sub_account = match st.iam.main_account_of(&u.p).await {
        Ok(m) => m.is_some(),
        Err(e) => return failure(e),
    };
    let roles = Role::ALL
        .into_iter()
        .filter(|r| r.fits(u.p.tenant.kind))
        .map(Role::as_str)
        .collect();
    let mut c = u.chrome("Users");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    c.notice = notice;
    render(
        status,
        &SubAccountsPage {
            c,
            subs,
            roles,
            is_sub_account,
        },
        u.set_csrf.clone(),
    )
}

async fn page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    view(&st, &u, None, None).await
}

#[derive(Debug, Deserialize)]
struct SubForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

async fn after(
    st: &AppState,
    u: &ConsoleUser,
    r: Result<String, parapet_iam::IamError>,
) -> Response {
    match r {
        Ok(notice) => view(st, u, None, Some(notice)).await,
        Err(e) => match form_error(&e) {
            Some(err) => view(st, u, Some(err), None).await,
            None => failure(e),
        },
    }
}

fn parse_role(s: &str) -> Result<Role, parapet_iam::IamError> {
    s.parse::<Role>()
        .map_err(|_| parapet_iam::IamError::Invalid(format!("unknown role {s:?}")))
}

async fn page_create(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<SubForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let r = match parse_role(&f.role) {
        Ok(role) => st
            .iam
            .create_sub_account(&u.p, f.username.trim(), &f.password, role, &u.meta)
            .await
            .map(|s| format!("Sub-account {} created with role {}.", s.username, s.role)),
        Err(e) => Err(e),
    };
    after(&st, &u, r).await
}

async fn page_role(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(username): Path<String>,
    Form(f): Form<SubForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let r = match parse_role(&f.role) {
        Ok(role) => st
            .iam
            .set_sub_account_role(&u.p, &username, role, &u.meta)
            .await
            .map(|s| format!("{} now has role {}.", s.username, s.role)),
        Err(e) => Err(e),
    };
    after(&st, &u, r).await
}

async fn page_disable(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(username): Path<String>,
    Form(f): Form<SubForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let r = st
        .iam
        .disable_sub_account(&u.p, &username, &u.meta)
        .await
        .map(|()| format!("{username} disabled."));
    after(&st, &u, r).await
}
