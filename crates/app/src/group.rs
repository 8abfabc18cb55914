//! Groups of a tenant over HTTP (X.1642 8.1.2(2)): a group holds roles, its members hold them
//! besides their own.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use parapet_iam::group::GroupChange;
use parapet_store::Group;
use parapet_types::Role;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};

#[derive(OpenApi)]
#[openapi(
    paths(list_groups, create_group, delete_group, add_member, remove_member),
    components(schemas(GroupOut, NewGroup, MemberBody))
)]
pub struct GroupApi;

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/tenants/{tenant}/groups",
            get(list_groups).post(create_group),
        )
        .route("/tenants/{tenant}/groups/{name}", delete(delete_group))
        .route("/tenants/{tenant}/groups/{name}/members", post(add_member))
        .route(
            "/tenants/{tenant}/groups/{name}/members/{username}",
            delete(remove_member),
        )
}

/// A group with its roles and members.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupOut {
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    pub members: Vec<String>,
    pub created_at: String,
}

fn out(g: &Group) -> GroupOut {
    GroupOut {
        name: g.name.clone(),
        roles: g.roles.clone(),
        members: g.members.clone(),
        created_at: g.created_at.rfc3339(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    /// Roles of the tenant's kind; the caller must be allowed to grant each.
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    pub username: String,
    /// Why, for the approval request filed in tenants that require approval.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The tenant's groups.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/groups", tag = "groups",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [GroupOut]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_groups(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<GroupOut>>> {
    let (_, list) = st.iam.list_groups(&p, &tenant, &meta).await?;
    Ok(Json(list.iter().map(out).collect()))
}

/// Creates a group holding roles.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/groups", tag = "groups",
    params(("tenant" = String, Path)), request_body = NewGroup,
    responses((status = 201, body = GroupOut), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_group(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewGroup>,
) -> ApiResult<(StatusCode, Json<GroupOut>)> {
    let g = st
        .iam
        .create_group(&p, &tenant, &body.name, &body.roles, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(out(&g))))
}

/// Removes a group (its members lose its roles).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/groups/{name}", tag = "groups",
    params(("tenant" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_group(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.iam.delete_group(&p, &tenant, &name, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a member (grants the group's roles, audited). In a tenant whose policy requires
/// approval, files an approval request instead (202 with the request).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/groups/{name}/members", tag = "groups",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = MemberBody,
    responses((status = 200, body = GroupOut),
        (status = 202, body = crate::approval::ApprovalView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_member(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<MemberBody>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let r = st
        .iam
        .set_group_member(
            &p,
            &tenant,
            &name,
            &body.username,
            true,
            body.reason.as_deref(),
            &meta,
        )
        .await?;
    Ok(match r {
        GroupChange::Applied(g) => Json(out(&g)).into_response(),
        GroupChange::Requested(req) => (
            StatusCode::ACCEPTED,
            Json(crate::approval::approval_view(&req)),
        )
            .into_response(),
    })
}

/// Removes a member (revokes the group's roles, audited).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/groups/{name}/members/{username}",
    tag = "groups",
    params(("tenant" = String, Path), ("name" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = GroupOut), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove_member(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name, username)): Path<(String, String, String)>,
) -> ApiResult<Json<GroupOut>> {
    match st
        .iam
        .set_group_member(&p, &tenant, &name, &username, false, None, &meta)
        .await?
    {
        GroupChange::Applied(g) => Ok(Json(out(&g))),
        GroupChange::Requested(_) => Err(crate::error::ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "a removal never needs approval",
        )),
    }
}

// -- console ---------------------------------------------------------------------------------

use askama::Template;
use axum::Form;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::console::{ConsoleUser, csrf_ok, failure, forbidden_form, form_error, render};

pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/groups", get(page).post(page_create))
        .route("/console/groups/member", post(page_member))
        .route("/console/groups/delete", post(page_delete))
}

#[derive(Template)]
#[template(path = "group_list.html")]
struct GroupsPage {
    c: crate::console::Chrome,
    tenant: String,
    groups: Vec<GroupOut>,
    can_manage: bool,
    roles: Vec<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
struct TenantQuery {
    #[serde(default)]
    tenant: Option<String>,
}

async fn view(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    error: Option<(StatusCode, String)>,
    notice: Option<String>,
) -> Response {
    let (t, list) = match st.iam.list_groups(&u.p, tenant, &u.meta).await {
        Ok(x) => x,
        Err(e) => return failure(e),
    };
    let can_manage = parapet_iam::authorize(&u.p, parapet_iam::Action::GroupManage, &t).is_ok();
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
        &GroupsPage {
            c,
            tenant: t.name.clone(),
            groups: list.iter().map(out).collect(),
            can_manage,
            roles: Role::ALL
                .iter()
                .filter(|r| r.fits(t.kind))
                .map(|r| r.as_str())
                .collect(),
        },
        u.set_csrf.clone(),
    )
}

fn tenant_or_own(u: &ConsoleUser, t: &str) -> String {
    if t.is_empty() {
        u.p.tenant.name.clone()
    } else {
        t.to_string()
    }
}

async fn page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Query(q): Query<TenantQuery>,
) -> Response {
    let t = tenant_or_own(&u, q.tenant.as_deref().unwrap_or(""));
    view(&st, &u, &t, None, None).await
}

async fn after(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    r: Result<String, parapet_iam::IamError>,
) -> Response {
    match r {
        Ok(notice) => view(st, u, tenant, None, Some(notice)).await,
        Err(e) => match form_error(&e) {
            Some(err) => view(st, u, tenant, Some(err), None).await,
            None => failure(e),
        },
    }
}

async fn page_create(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if !csrf_ok(&headers, &get("csrf")) {
        return forbidden_form();
    }
    let tenant = tenant_or_own(&u, &get("tenant"));
    let roles: Vec<Role> = f
        .iter()
        .filter(|(n, _)| n == "role")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let name = get("name");
    let r = st
        .iam
        .create_group(&u.p, &tenant, &name, &roles, &u.meta)
        .await
        .map(|g| format!("Created group {}.", g.name));
    after(&st, &u, &tenant, r).await
}

#[derive(Debug, Deserialize)]
struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    username: String,
    /// `add` or `remove`.
    #[serde(default)]
    op: String,
}

async fn page_member(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<MemberForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let tenant = tenant_or_own(&u, &f.tenant);
    let add = f.op != "remove";
    let r = st
        .iam
        .set_group_member(&u.p, &tenant, &f.group, &f.username, add, None, &u.meta)
        .await
        .map(|c| match c {
            GroupChange::Applied(g) => format!(
                "{} {} group {}.",
                f.username,
                if add { "joined" } else { "left" },
                g.name
            ),
            GroupChange::Requested(req) => format!(
                "This tenant requires approval: request {} to add {} to group {} awaits \
                 another administrator.",
                req.id, f.username, f.group
            ),
        });
    after(&st, &u, &tenant, r).await
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    group: String,
}

async fn page_delete(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<DeleteForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let tenant = tenant_or_own(&u, &f.tenant);
    let r = st
        .iam
        .delete_group(&u.p, &tenant, &f.group, &u.meta)
        .await
        .map(|()| format!("Removed group {}.", f.group));
    after(&st, &u, &tenant, r).await
}

// -- sub-accounts (X.1642 8.1.1(4)) -----------------------------------------------------------

#[derive(OpenApi)]
#[openapi(
    paths(create_sub_account, list_sub_accounts),
    components(schemas(NewSubAccount))
)]
pub struct SubAccountApi;

pub fn sub_account_routes() -> Router<AppState> {
    Router::new().route(
        "/me/sub-accounts",
        get(list_sub_accounts).post(create_sub_account),
    )
}

/// A sub-account of the caller: its role may give nothing the caller does not hold.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubAccount {
    pub username: String,
    pub password: String,
    #[schema(value_type = String)]
    pub role: Role,
}

/// Creates a sub-account of the caller in its tenant (disabled with the caller's account).
#[utoipa::path(post, path = "/api/v1/me/sub-accounts", tag = "users", request_body = NewSubAccount,
    responses((status = 201, body = crate::api::UserView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_sub_account(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<NewSubAccount>,
) -> ApiResult<(StatusCode, Json<crate::api::UserView>)> {
    let u = st
        .iam
        .create_sub_account(&p, &body.username, &body.password, body.role, &meta)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(crate::api::user_view(&p.tenant, &u)),
    ))
}

/// The caller's sub-accounts.
#[utoipa::path(get, path = "/api/v1/me/sub-accounts", tag = "users",
    responses((status = 200, body = [crate::api::UserView])),
    security(("bearer" = [])))]
pub async fn list_sub_accounts(
    State(st): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<Vec<crate::api::UserView>>> {
    let list = st.iam.list_sub_accounts(&p).await?;
    Ok(Json(
        list.iter()
            .map(|u| crate::api::user_view(&p.tenant, u))
            .collect(),
    ))
}
