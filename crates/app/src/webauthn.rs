//! WebAuthn security keys over HTTP and in the console (X.1642 7.2.2.4(4), 8.1.2(1)): one's
//! own keys (register, list, rename, remove), administrators' listing and removal, and the
//! log-in with password + key (API: two calls; console: the log-in form, then a page whose
//! script asks the browser for the key's signature). The relying party is `--public-url`, or
//! else the origin this request reached (scheme of the listener, `Host` header).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use parapet_iam::webauthn::{KeyResponse, PendingKey, RelyingParty};
use parapet_iam::{IamError, IssuedCredential, LoginStep};
use parapet_store::WebAuthnCredential;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::api::{LoginResponse, principal_view, session_cookie};
use crate::console::{
    Chrome, ConsoleUser, csrf_ok, failure, forbidden_form, form_error, render, see_other,
};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};

#[derive(OpenApi)]
#[openapi(
    paths(
        list_own,
        register_begin,
        register_finish,
        rename_own,
        remove_own,
        list_of,
        remove_of,
        login_begin,
        login_finish
    ),
    components(schemas(
        KeyView,
        Challenge,
        RegisterFinish,
        Rename,
        KeyLoginBegin,
        KeyLoginFinish,
        KeyLoginAnswer
    ))
)]
pub struct WebAuthnApi;

/// The relying party of this request: `--public-url`, else the request's own origin.
pub(crate) fn relying_party(st: &AppState, headers: &HeaderMap) -> Result<RelyingParty, IamError> {
    if let Some(u) = &st.config.public_url {
        let u = u.trim_end_matches('/');
        let origin = match u.find("://") {
            Some(i) => {
                let rest = u.get(i + 3..).unwrap_or("");
                let host = rest.split('/').next().unwrap_or("");
                format!("{}{}", u.get(..i + 3).unwrap_or(""), host)
            }
            None => u.to_string(),
        };
        return RelyingParty::from_origin(&origin);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255)
        .ok_or_else(|| IamError::Invalid("missing Host header".into()))?;
    let scheme = if st.config.tls { "https" } else { "http" };
    RelyingParty::from_origin(&format!("{scheme}://{host}"))
}

/// A registered security key (its public key stays on the server).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    /// The credential id (base64url).
    pub id: String,
    pub name: String,
    /// COSE algorithm: -7 ES256, -8 EdDSA, -257 RS256.
    pub alg: i64,
    pub sign_count: i64,
    /// The authenticator model (hex), zeros when undisclosed.
    pub aaguid: String,
    /// `none` or `packed` (self-attestation).
    pub attestation: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

fn key_view(k: &WebAuthnCredential) -> KeyView {
    KeyView {
        id: k.id.clone(),
        name: k.name.clone(),
        alg: k.alg,
        sign_count: k.sign_count,
        aaguid: k.aaguid.clone(),
        attestation: k.attestation.clone(),
        created_at: k.created_at.rfc3339(),
        last_used_at: k.last_used_at.map(|t| t.rfc3339()),
    }
}

/// A started ceremony: pass `publicKey` (base64url fields decoded) to
/// `navigator.credentials.create` / `get`, then send the answer with `handle`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Challenge {
    pub handle: String,
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

fn challenge(p: PendingKey) -> Challenge {
    Challenge {
        handle: p.handle,
        public_key: p.options,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterFinish {
    pub handle: String,
    /// A name for the key (unique per user).
    pub name: String,
    /// The `PublicKeyCredential` in its JSON form (binary fields in base64url).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyLoginBegin {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyLoginFinish {
    pub username: String,
    pub handle: String,
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// The first log-in step's answer: a challenge for the key, or (for an account without one)
/// the session itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyLoginAnswer {
    pub challenge: Option<Challenge>,
    pub session: Option<LoginResponse>,
}

fn parse_credential(v: serde_json::Value) -> Result<KeyResponse, ApiError> {
    serde_json::from_value(v).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("credential is not a PublicKeyCredential in JSON form: {e}"),
        )
    })
}

fn login_failed() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "login-failed",
        "wrong user name or password, or the account is disabled",
    )
}

fn session_response(
    st: &AppState,
    issued: &IssuedCredential,
) -> (LoginResponse, Option<HeaderValue>) {
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
    let cookie =
        HeaderValue::from_str(&session_cookie(&issued.secret, max_age, st.config.tls)).ok();
    (body, cookie)
}

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/me/webauthn", get(list_own))
        .route("/me/webauthn/register", post(register_begin))
        .route("/me/webauthn/register/finish", post(register_finish))
        .route(
            "/me/webauthn/{id}",
            axum::routing::patch(rename_own).delete(remove_own),
        )
        .route("/tenants/{tenant}/users/{username}/webauthn", get(list_of))
        .route(
            "/tenants/{tenant}/users/{username}/webauthn/{id}",
            axum::routing::delete(remove_of),
        )
        .route("/auth/login/webauthn", post(login_begin))
        .route("/auth/login/webauthn/finish", post(login_finish))
}

/// The caller's security keys.
#[utoipa::path(get, path = "/api/v1/me/webauthn", tag = "mfa",
    responses((status = 200, body = [KeyView])), security(("bearer" = [])))]
pub async fn list_own(State(st): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<KeyView>>> {
    Ok(Json(
        st.iam
            .webauthn_list(&p)
            .await?
            .iter()
            .map(key_view)
            .collect(),
    ))
}

/// Starts registering a security key (from a log-in session).
#[utoipa::path(post, path = "/api/v1/me/webauthn/register", tag = "mfa",
    responses((status = 200, body = Challenge), (status = 403, body = Problem),
        (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn register_begin(
    State(st): State<AppState>,
    headers: HeaderMap,
    Auth(p): Auth,
) -> ApiResult<Json<Challenge>> {
    let rp = relying_party(&st, &headers)?;
    Ok(Json(challenge(
        st.iam.webauthn_register_begin(&p, &rp).await?,
    )))
}

/// Ends a registration with the authenticator's answer.
#[utoipa::path(post, path = "/api/v1/me/webauthn/register/finish", tag = "mfa",
    request_body = RegisterFinish,
    responses((status = 201, body = KeyView), (status = 409, body = Problem),
        (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn register_finish(
    State(st): State<AppState>,
    headers: HeaderMap,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(b): ApiJson<RegisterFinish>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let rp = relying_party(&st, &headers)?;
    let resp = parse_credential(b.credential)?;
    let k = st
        .iam
        .webauthn_register_finish(&p, &rp, &b.handle, &b.name, &resp, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(key_view(&k))))
}

/// Renames one of the caller's keys.
#[utoipa::path(patch, path = "/api/v1/me/webauthn/{id}", tag = "mfa", request_body = Rename,
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn rename_own(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Rename>,
) -> ApiResult<StatusCode> {
    st.iam.webauthn_rename(&p, &id, &b.name, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes one of the caller's keys.
#[utoipa::path(delete, path = "/api/v1/me/webauthn/{id}", tag = "mfa",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove_own(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.iam.webauthn_remove(&p, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's security keys (administrators).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/users/{username}/webauthn", tag = "mfa",
    params(("tenant" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = [KeyView]), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_of(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, username)): Path<(String, String)>,
) -> ApiResult<Json<Vec<KeyView>>> {
    let list = st
        .iam
        .webauthn_list_of(&p, &tenant, &username, &meta)
        .await?;
    Ok(Json(list.iter().map(key_view).collect()))
}

/// Removes a user's security key (administrators, for a lost or stolen key).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/users/{username}/webauthn/{id}",
    tag = "mfa",
    params(("tenant" = String, Path), ("username" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove_of(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, username, id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    st.iam
        .webauthn_remove_of(&p, &tenant, &username, &id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log-in, first step: the password. An account with a security key gets a challenge for it.
#[utoipa::path(post, path = "/api/v1/auth/login/webauthn", tag = "auth",
    request_body = KeyLoginBegin,
    responses((status = 200, body = KeyLoginAnswer), (status = 401, body = Problem)))]
pub async fn login_begin(
    State(st): State<AppState>,
    headers: HeaderMap,
    Meta(meta): Meta,
    ApiJson(b): ApiJson<KeyLoginBegin>,
) -> ApiResult<Response> {
    if b.username.len() > 200 || b.password.len() > 4096 {
        return Err(login_failed());
    }
    let rp = relying_party(&st, &headers)?;
    match st
        .iam
        .login_step(&b.username, &b.password, None, Some(&rp), &meta)
        .await
    {
        Ok(LoginStep::SecurityKey(p)) => Ok(Json(KeyLoginAnswer {
            challenge: Some(challenge(p)),
            session: None,
        })
        .into_response()),
        Ok(LoginStep::Done(issued)) => {
            let (body, cookie) = session_response(&st, &issued);
            let mut res = Json(KeyLoginAnswer {
                challenge: None,
                session: Some(body),
            })
            .into_response();
            if let Some(v) = cookie {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(res)
        }
        Err(IamError::Unauthenticated) => Err(login_failed()),
        Err(e) => Err(e.into()),
    }
}

/// Log-in, second step: the key's assertion for the challenge.
#[utoipa::path(post, path = "/api/v1/auth/login/webauthn/finish", tag = "auth",
    request_body = KeyLoginFinish,
    responses((status = 200, body = LoginResponse), (status = 401, body = Problem)))]
pub async fn login_finish(
    State(st): State<AppState>,
    headers: HeaderMap,
    Meta(meta): Meta,
    ApiJson(b): ApiJson<KeyLoginFinish>,
) -> ApiResult<Response> {
    let rp = relying_party(&st, &headers)?;
    let resp = parse_credential(b.credential)?;
    let issued = match st
        .iam
        .webauthn_login_finish(&b.username, &rp, &b.handle, &resp, &meta)
        .await
    {
        Ok(i) => i,
        Err(IamError::Unauthenticated) => return Err(login_failed()),
        Err(e) => return Err(e.into()),
    };
    let (body, cookie) = session_response(&st, &issued);
    let mut res = Json(body).into_response();
    if let Some(v) = cookie {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

// -- console ---------------------------------------------------------------------------------

pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/webauthn", get(page))
        .route("/console/webauthn/begin", post(page_begin))
        .route("/console/webauthn/finish", post(page_finish))
        .route("/console/webauthn/{id}/rename", post(page_rename))
        .route("/console/webauthn/{id}/delete", post(page_delete))
        .route("/console/login/webauthn", post(page_login))
        .route("/console/static/webauthn.js", get(script))
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/webauthn.js"),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "webauthn_keys.html")]
struct KeysPage {
    c: Chrome,
    keys: Vec<KeyView>,
    /// A started registration: (handle, `publicKey` options as JSON, name).
    pending: Option<(String, String, String)>,
}

async fn view(
    st: &AppState,
    u: &ConsoleUser,
    error: Option<(StatusCode, String)>,
    notice: Option<String>,
) -> Response {
    view_with(st, u, error, notice, None).await
}

async fn view_with(
    st: &AppState,
    u: &ConsoleUser,
    error: Option<(StatusCode, String)>,
    notice: Option<String>,
    pending: Option<(String, String, String)>,
) -> Response {
    let keys = match st.iam.webauthn_list(&u.p).await {
        Ok(k) => k.iter().map(key_view).collect(),
        Err(e) => return failure(e),
    };
    let mut c = u.chrome("Second factor");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    c.notice = notice;
    render(status, &KeysPage { c, keys, pending }, u.set_csrf.clone())
}

async fn page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    view(&st, &u, None, None).await
}

#[derive(Debug, Deserialize)]
struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    handle: String,
    #[serde(default)]
    credential: String,
}

/// Starts a registration: the page then carries the challenge for the script.
async fn page_begin(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<KeyForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let r = match relying_party(&st, &headers) {
        Ok(rp) => st.iam.webauthn_register_begin(&u.p, &rp).await,
        Err(e) => Err(e),
    };
    let name = f.name.trim().to_string();
    match r {
        Ok(p) => {
            let pending = Some((p.handle, p.options.to_string(), name));
            view_with(&st, &u, None, None, pending).await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, Some(err), None).await,
            None => failure(e),
        },
    }
}

async fn page_finish(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<KeyForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let resp: KeyResponse = match serde_json::from_str(&f.credential) {
        Ok(r) => r,
        Err(_) => {
            return view(
                &st,
                &u,
                Some((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "The browser gave no usable answer from the security key.".into(),
                )),
                None,
            )
            .await;
        }
    };
    let r = match relying_party(&st, &headers) {
        Ok(rp) => {
            st.iam
                .webauthn_register_finish(&u.p, &rp, &f.handle, &f.name, &resp, &u.meta)
                .await
        }
        Err(e) => Err(e),
    };
    match r {
        Ok(k) => {
            view(
                &st,
                &u,
                None,
                Some(format!(
                    "Security key {} registered: it is now asked for at log-in.",
                    k.name
                )),
            )
            .await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, Some(err), None).await,
            None => failure(e),
        },
    }
}

async fn page_rename(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(id): Path<String>,
    Form(f): Form<KeyForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st.iam.webauthn_rename(&u.p, &id, &f.name, &u.meta).await {
        Ok(()) => view(&st, &u, None, Some("Security key renamed.".into())).await,
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, Some(err), None).await,
            None => failure(e),
        },
    }
}

async fn page_delete(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(id): Path<String>,
    Form(f): Form<KeyForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st.iam.webauthn_remove(&u.p, &id, &u.meta).await {
        Ok(()) => view(&st, &u, None, Some("Security key removed.".into())).await,
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, Some(err), None).await,
            None => failure(e),
        },
    }
}

/// The page that asks the browser for the key after a correct password.
#[derive(Template)]
#[template(path = "webauthn_login.html")]
pub(crate) struct KeyLoginPage {
    pub(crate) csrf: String,
    pub(crate) username: String,
    pub(crate) next: String,
    pub(crate) handle: String,
    /// The `publicKey` options as JSON (in a data attribute).
    pub(crate) options: String,
    pub(crate) error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct KeyLoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    handle: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    next: String,
}

async fn page_login(
    State(st): State<AppState>,
    headers: HeaderMap,
    Meta(meta): Meta,
    Form(f): Form<KeyLoginForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let again = || see_other("/console/login?key=failed");
    let Ok(resp) = serde_json::from_str::<KeyResponse>(&f.credential) else {
        return again();
    };
    let Ok(rp) = relying_party(&st, &headers) else {
        return again();
    };
    match st
        .iam
        .webauthn_login_finish(f.username.trim(), &rp, &f.handle, &resp, &meta)
        .await
    {
        Ok(issued) => {
            let max_age = (issued.expires_at.0 - st.iam.env().now().0) / 1000;
            let to = crate::console::safe_next(&f.next).unwrap_or("/console");
            let mut res = see_other(to);
            if let Ok(v) =
                HeaderValue::from_str(&session_cookie(&issued.secret, max_age, st.config.tls))
            {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
        Err(IamError::Unauthenticated) => again(),
        Err(e) => failure(e),
    }
}
