//! A tenant's LDAP v3 directory over HTTP and in the console (X.1642 8.1.2(1)): settings (the
//! bind password is accepted, sealed, and never returned), a connection test, removal.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parapet_iam::IamError;
use parapet_iam::ldap::{DirectoryTest, DirectoryView, answer_name};
use parapet_store::{LdapRoleMapping, LdapSettings};
use parapet_types::Role;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::console::{ConsoleUser, CsrfOnly, csrf_ok, failure, forbidden_form, form_error, render};
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};

#[derive(OpenApi)]
#[openapi(
    paths(get_directory, set_directory, delete_directory, test_directory),
    components(schemas(DirectoryBody, DirectoryOut, TestBody, TestOut, MappingBody))
)]
pub struct LdapApi;

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/tenants/{tenant}/ldap",
            get(get_directory)
                .put(set_directory)
                .delete(delete_directory),
        )
        .route("/tenants/{tenant}/ldap/test", post(test_directory))
}

pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/ldap", get(page).post(page_set))
        .route("/console/ldap/test", post(page_test))
        .route("/console/ldap/delete", post(page_delete))
}

/// A group-to-role rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingBody {
    /// The group's DN (compared case-insensitively).
    pub group: String,
    /// A role of the tenant's kind, e.g. `tenant-admin`.
    #[schema(value_type = String)]
    pub role: Role,
}

/// A directory's settings. `bind_password` is required the first time; omitted later, the stored
/// one is kept. It is sealed at rest and never returned.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectoryBody {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    pub bind_dn: String,
    #[serde(default)]
    pub bind_password: Option<String>,
    pub user_base: String,
    /// Contains `{username}`, replaced by the typed name escaped per RFC 4515.
    pub user_filter: String,
    #[serde(default)]
    pub group_base: Option<String>,
    /// Contains `{dn}` (the user's DN) or `{username}`.
    #[serde(default)]
    pub group_filter: Option<String>,
    /// An attribute listing the user's groups (`memberOf`), if the directory keeps one.
    #[serde(default)]
    pub member_of_attribute: Option<String>,
    /// First match wins.
    #[serde(default)]
    pub role_mappings: Vec<MappingBody>,
    /// The role of a directory user in no mapped group (none: such users may not log in).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub default_role: Option<Role>,
    /// Create the account at the first successful bind.
    #[serde(default)]
    pub provision: bool,
    #[serde(default)]
    pub timeout_secs: Option<u32>,
}

impl DirectoryBody {
    fn settings(self) -> (LdapSettings, Option<String>) {
        (
            LdapSettings {
                url: self.url,
                starttls: self.starttls,
                bind_dn: self.bind_dn,
                user_base: self.user_base,
                user_filter: self.user_filter,
                group_base: self.group_base.filter(|s| !s.trim().is_empty()),
                group_filter: self.group_filter.filter(|s| !s.trim().is_empty()),
                member_of_attribute: self.member_of_attribute.filter(|s| !s.trim().is_empty()),
                role_mappings: self
                    .role_mappings
                    .into_iter()
                    .map(|m| LdapRoleMapping {
                        group: m.group,
                        role: m.role,
                    })
                    .collect(),
                default_role: self.default_role,
                provision: self.provision,
                timeout_secs: self.timeout_secs.unwrap_or(5),
            },
            self.bind_password,
        )
    }
}

/// A directory as stored (never the bind password).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DirectoryOut {
    pub tenant: String,
    pub url: String,
    pub starttls: bool,
    pub bind_dn: String,
    pub user_base: String,
    pub user_filter: String,
    pub group_base: Option<String>,
    pub group_filter: Option<String>,
    pub member_of_attribute: Option<String>,
    pub role_mappings: Vec<MappingBody>,
    #[schema(value_type = Option<String>)]
    pub default_role: Option<Role>,
    pub provision: bool,
    pub timeout_secs: u32,
    pub updated_at: String,
    /// `kms` when the bind password is sealed by the key service, else `local-key`.
    pub bind_password_sealed_by: String,
}

fn out(v: &DirectoryView) -> DirectoryOut {
    let s = &v.settings;
    DirectoryOut {
        tenant: v.tenant.name.clone(),
        url: s.url.clone(),
        starttls: s.starttls,
        bind_dn: s.bind_dn.clone(),
        user_base: s.user_base.clone(),
        user_filter: s.user_filter.clone(),
        group_base: s.group_base.clone(),
        group_filter: s.group_filter.clone(),
        member_of_attribute: s.member_of_attribute.clone(),
        role_mappings: s
            .role_mappings
            .iter()
            .map(|m| MappingBody {
                group: m.group.clone(),
                role: m.role,
            })
            .collect(),
        default_role: s.default_role,
        provision: s.provision,
        timeout_secs: s.timeout_secs,
        updated_at: v.updated_at.rfc3339(),
        bind_password_sealed_by: if v.sealed_by_kms { "kms" } else { "local-key" }.into(),
    }
}

/// The tenant's directory.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/ldap", tag = "ldap",
    params(("tenant" = String, Path)),
    responses((status = 200, body = DirectoryOut), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_directory(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<DirectoryOut>> {
    match st.iam.get_directory(&p, &tenant, &meta).await?.1 {
        Some(v) => Ok(Json(out(&v))),
        None => Err(IamError::NotFound(format!("tenant {tenant} has no directory")).into()),
    }
}

/// Sets (creates or replaces) the tenant's directory.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/ldap", tag = "ldap",
    params(("tenant" = String, Path)), request_body = DirectoryBody,
    responses((status = 200, body = DirectoryOut), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_directory(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<DirectoryBody>,
) -> ApiResult<Json<DirectoryOut>> {
    let (settings, pw) = body.settings();
    let v = st
        .iam
        .set_directory(&p, &tenant, settings, pw.as_deref(), &meta)
        .await?;
    Ok(Json(out(&v)))
}

/// Removes the tenant's directory (its directory accounts can no longer log in).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/ldap", tag = "ldap",
    params(("tenant" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_directory(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<StatusCode> {
    st.iam.delete_directory(&p, &tenant, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A connection test: the service bind, and with a user name and password that user's bind,
/// groups and mapped role.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestOut {
    /// The service account bound and searched.
    pub connected: bool,
    /// `authenticated`, `unknown-user`, `ambiguous` or `wrong-password` (with a user).
    pub answer: Option<String>,
    pub dn: Option<String>,
    pub groups: Vec<String>,
    /// The role the groups give.
    pub role: Option<String>,
}

fn test_out(t: &DirectoryTest) -> TestOut {
    let (dn, groups) = match &t.answer {
        Some(parapet_iam::ldap::DirectoryAnswer::Authenticated { dn, groups }) => {
            (Some(dn.clone()), groups.clone())
        }
        _ => (None, vec![]),
    };
    TestOut {
        connected: true,
        answer: t.answer.as_ref().map(|a| answer_name(a).to_string()),
        dn,
        groups,
        role: t.role.map(|r| r.to_string()),
    }
}

/// Tests the tenant's directory (503 with the reason when it cannot be used).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/ldap/test", tag = "ldap",
    params(("tenant" = String, Path)), request_body = TestBody,
    responses((status = 200, body = TestOut), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn test_directory(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<TestBody>,
) -> ApiResult<Json<TestOut>> {
    let user = match (&body.username, &body.password) {
        (Some(u), Some(pw)) => Some((u.as_str(), pw.as_str())),
        (None, None) => None,
        _ => {
            return Err(crate::error::ApiError::bad_request(
                "give both username and password, or neither",
            ));
        }
    };
    let t = st.iam.test_directory(&p, &tenant, user, &meta).await?;
    Ok(Json(test_out(&t)))
}

// -- console ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ldap_directory.html")]
struct DirectoryPage {
    c: crate::console::Chrome,
    tenant: String,
    dir: Option<DirectoryOut>,
    /// The role mappings as lines `group DN = role`.
    mappings: String,
    can_manage: bool,
    test: Option<TestOut>,
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
    test: Option<TestOut>,
    error: Option<(StatusCode, String)>,
    notice: Option<String>,
) -> Response {
    let (target, dir) = match st.iam.get_directory(&u.p, tenant, &u.meta).await {
        Ok(d) => d,
        Err(e) => return failure(e),
    };
    let can_manage =
        parapet_iam::authorize(&u.p, parapet_iam::Action::DirectoryManage, &target).is_ok();
    let mut c = u.chrome("Directory (LDAP)");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    c.notice = notice;
    let dir = dir.as_ref().map(out);
    let mappings = dir
        .as_ref()
        .map(|d| {
            d.role_mappings
                .iter()
                .map(|m| format!("{} = {}", m.group, m.role))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    render(
        status,
        &DirectoryPage {
            c,
            tenant: target.name.clone(),
            dir,
            mappings,
            can_manage,
            test,
            roles: Role::ALL
                .iter()
                .filter(|r| r.fits(target.kind))
                .map(|r| r.as_str())
                .collect(),
        },
        u.set_csrf.clone(),
    )
}

fn tenant_of(u: &ConsoleUser, q: &TenantQuery) -> String {
    q.tenant
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| u.p.tenant.name.clone())
}

async fn page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Query(q): Query<TenantQuery>,
) -> Response {
    let t = tenant_of(&u, &q);
    view(&st, &u, &t, None, None, None).await
}

#[derive(Debug, Deserialize)]
struct SetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    starttls: Option<String>,
    #[serde(default)]
    bind_dn: String,
    #[serde(default)]
    bind_password: String,
    #[serde(default)]
    user_base: String,
    #[serde(default)]
    user_filter: String,
    #[serde(default)]
    group_base: String,
    #[serde(default)]
    group_filter: String,
    #[serde(default)]
    member_of_attribute: String,
    /// One `group DN = role` per line.
    #[serde(default)]
    mappings: String,
    #[serde(default)]
    default_role: String,
    #[serde(default)]
    provision: Option<String>,
    #[serde(default)]
    timeout_secs: String,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::ALL
        .iter()
        .copied()
        .find(|r| r.as_str() == s.trim())
        .ok_or_else(|| format!("unknown role '{}'", s.trim()))
}

fn form_settings(f: &SetForm) -> Result<LdapSettings, String> {
    let mut role_mappings = vec![];
    for (i, line) in f.mappings.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (group, role) = line
            .rsplit_once('=')
            .ok_or_else(|| format!("role mapping line {}: write 'group DN = role'", i + 1))?;
        role_mappings.push(LdapRoleMapping {
            group: group.trim().to_string(),
            role: parse_role(role).map_err(|e| format!("role mapping line {}: {e}", i + 1))?,
        });
    }
    let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    Ok(LdapSettings {
        url: f.url.trim().to_string(),
        starttls: f.starttls.is_some(),
        bind_dn: f.bind_dn.trim().to_string(),
        user_base: f.user_base.trim().to_string(),
        user_filter: f.user_filter.trim().to_string(),
        group_base: opt(&f.group_base),
        group_filter: opt(&f.group_filter),
        member_of_attribute: opt(&f.member_of_attribute),
        role_mappings,
        default_role: match opt(&f.default_role) {
            Some(r) => Some(parse_role(&r)?),
            None => None,
        },
        provision: f.provision.is_some(),
        timeout_secs: match opt(&f.timeout_secs) {
            Some(t) => t
                .parse()
                .map_err(|_| "timeout: a whole number of seconds".to_string())?,
            None => 5,
        },
    })
}

async fn page_set(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<SetForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let tenant = if f.tenant.is_empty() {
        u.p.tenant.name.clone()
    } else {
        f.tenant.clone()
    };
    let settings = match form_settings(&f) {
        Ok(s) => s,
        Err(m) => {
            return view(
                &st,
                &u,
                &tenant,
                None,
                Some((StatusCode::UNPROCESSABLE_ENTITY, m)),
                None,
            )
            .await;
        }
    };
    let pw = Some(f.bind_password.as_str()).filter(|p| !p.is_empty());
    match st
        .iam
        .set_directory(&u.p, &tenant, settings, pw, &u.meta)
        .await
    {
        Ok(_) => {
            view(
                &st,
                &u,
                &tenant,
                None,
                None,
                Some("Directory saved.".into()),
            )
            .await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, &tenant, None, Some(err), None).await,
            None => failure(e),
        },
    }
}

#[derive(Debug, Deserialize)]
struct TestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn page_test(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<TestForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let tenant = if f.tenant.is_empty() {
        u.p.tenant.name.clone()
    } else {
        f.tenant.clone()
    };
    let user = (!f.username.is_empty()).then_some((f.username.as_str(), f.password.as_str()));
    match st.iam.test_directory(&u.p, &tenant, user, &u.meta).await {
        Ok(t) => view(&st, &u, &tenant, Some(test_out(&t)), None, None).await,
        Err(IamError::DirectoryUnavailable(m)) => {
            view(
                &st,
                &u,
                &tenant,
                None,
                Some((StatusCode::SERVICE_UNAVAILABLE, m)),
                None,
            )
            .await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, &tenant, None, Some(err), None).await,
            None => failure(e),
        },
    }
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    #[serde(flatten)]
    csrf: CsrfOnly,
    #[serde(default)]
    tenant: String,
}

async fn page_delete(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<DeleteForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf.csrf) {
        return forbidden_form();
    }
    let tenant = if f.tenant.is_empty() {
        u.p.tenant.name.clone()
    } else {
        f.tenant.clone()
    };
    match st.iam.delete_directory(&u.p, &tenant, &u.meta).await {
        Ok(()) => {
            view(
                &st,
                &u,
                &tenant,
                None,
                None,
                Some("Directory removed.".into()),
            )
            .await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, &tenant, None, Some(err), None).await,
            None => failure(e),
        },
    }
}
