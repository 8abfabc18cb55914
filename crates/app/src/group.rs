//! Groups of a tenant over HTTP (X.1642 8.1.2(2)): a group holds roles, its members hold them
//! besides their own.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
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

/// Adds a member (grants the group's roles, audited).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/groups/{name}/members", tag = "groups",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = MemberBody,
    responses((status = 200, body = GroupOut), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_member(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<MemberBody>,
) -> ApiResult<Json<GroupOut>> {
    let g = st
        .iam
        .set_group_member(&p, &tenant, &name, &body.username, true, &meta)
        .await?;
    Ok(Json(out(&g)))
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
    let g = st
        .iam
        .set_group_member(&p, &tenant, &name, &username, false, &meta)
        .await?;
    Ok(Json(out(&g)))
}
