//! The OpenID Connect provider over HTTP (issue 4 §5, X.1642 8.1.1(1)).
//!
//! Protocol endpoints, one issuer per tenant at `/oidc/{tenant}` (errors in the RFC 6749 JSON
//! form, not problem+json, as relying parties expect): discovery, JWKS, authorize (the console
//! log-in, second factor included, then back), token, userinfo, revoke (RFC 7009), introspect
//! (RFC 7662). Client registration under `/api/v1/tenants/{tenant}/oidc/…` (problem+json) and the
//! console page `/console/oidc`.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use parapet_iam::IamError;
use parapet_iam::oidc::{
    AuthorizeOutcome, AuthorizeRequest, ClientAuth, NewClient, OAuthError, TokenRequest, set_claim,
    urlencode,
};
use parapet_store::{OidcClient, OidcKey};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::console::{
    Chrome, ConsoleUser, csrf_ok, failure, forbidden_form, form_error, render, see_other,
};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta, SESSION_COOKIE, cookie};

#[derive(OpenApi)]
#[openapi(
    paths(
        list_clients,
        add_client,
        rotate_secret,
        remove_client,
        list_keys,
        rotate_key
    ),
    components(schemas(ClientView, NewClientBody, RegisteredClient, KeyView))
)]
pub struct OidcApi;

/// Protocol endpoints (outside `/api/v1`).
pub fn protocol_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/oidc/{tenant}/.well-known/openid-configuration",
            get(discovery),
        )
        .route(
            "/oidc/{tenant}/.well-known/oauth-authorization-server",
            get(discovery),
        )
        .route("/oidc/{tenant}/jwks", get(jwks))
        .route("/oidc/{tenant}/authorize", get(authorize))
        .route("/oidc/{tenant}/token", post(token))
        .route("/oidc/{tenant}/userinfo", get(userinfo).post(userinfo))
        .route("/oidc/{tenant}/revoke", post(revoke))
        .route("/oidc/{tenant}/introspect", post(introspect))
        .route("/console/oidc", get(page).post(page_add))
        .route("/console/oidc/{id}/rotate-secret", post(page_rotate))
        .route("/console/oidc/{id}/delete", post(page_delete))
        .route("/console/oidc/keys/rotate", post(page_rotate_key))
}

/// Client registration, relative to `/api/v1`.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/tenants/{tenant}/oidc/clients",
            get(list_clients).post(add_client),
        )
        .route(
            "/tenants/{tenant}/oidc/clients/{id}",
            axum::routing::delete(remove_client),
        )
        .route(
            "/tenants/{tenant}/oidc/clients/{id}/rotate-secret",
            post(rotate_secret),
        )
        .route("/tenants/{tenant}/oidc/keys", get(list_keys))
        .route("/tenants/{tenant}/oidc/keys/rotate", post(rotate_key))
}

// -- the issuer ------------------------------------------------------------------------------

/// The issuer URL of `tenant` as this request reached the server (scheme from the listener,
/// host from the `Host` header, which must look like a host name).
fn issuer(st: &AppState, headers: &HeaderMap, tenant: &str) -> Result<String, OAuthError> {
    if let Some(u) = &st.config.public_url {
        return Ok(format!("{}/oidc/{tenant}", u.trim_end_matches('/')));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
        .ok_or_else(|| OAuthError {
            error: "invalid_request",
            description: "missing or malformed Host header".into(),
        })?;
    let scheme = if st.config.tls { "https" } else { "http" };
    Ok(format!("{scheme}://{host}/oidc/{tenant}"))
}

/// An OAuth error response: 401 for client authentication, 503 when unavailable, 500 for our
/// faults, 400 otherwise.
fn oauth_error(e: &OAuthError) -> Response {
    let status = match e.error {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "invalid_token" => StatusCode::UNAUTHORIZED,
        "insufficient_scope" => StatusCode::FORBIDDEN,
        "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut res = (
        status,
        Json(serde_json::json!({"error": e.error, "error_description": e.description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        let v = if e.error == "invalid_token" {
            "Bearer error=\"invalid_token\""
        } else {
            "Basic realm=\"parapet\""
        };
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
    }
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// The tenant of an issuer path, as an OAuth error when unknown.
async fn tenant_of(st: &AppState, name: &str) -> Result<parapet_store::Tenant, Response> {
    match st.iam.oidc_tenant(name).await {
        Ok(t) => Ok(t),
        Err(IamError::NotFound(_)) => Err(ApiError::not_found("no such issuer").into_response()),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

fn cacheable_json(v: serde_json::Value, max_age: u32) -> Response {
    let mut res = Json(v).into_response();
    if let Ok(h) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        res.headers_mut().insert(header::CACHE_CONTROL, h);
    }
    res.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

async fn discovery(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Response {
    let t = match tenant_of(&st, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match issuer(&st, &headers, &t.name) {
        Ok(iss) => cacheable_json(parapet_iam::oidc::discovery(&iss), 300),
        Err(e) => oauth_error(&e),
    }
}

async fn jwks(State(st): State<AppState>, Path(tenant): Path<String>) -> Response {
    let t = match tenant_of(&st, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match st.iam.oidc_jwks(&t).await {
        // Short: relying parties must see a new key soon after a rotation.
        Ok(v) => cacheable_json(v, 60),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
}

/// A page for an authorization request that cannot be sent back to the client.
fn authorize_failure(msg: &str) -> Response {
    crate::console::html_page(
        StatusCode::BAD_REQUEST,
        format!(
            "<!doctype html><title>Parapet</title><link rel=\"stylesheet\" \
             href=\"/console/static/parapet.css\"><main><h1>Sign-in request refused</h1>\
             <p class=\"error\">{}</p><p>The application that sent you here is not set up \
             correctly; tell its administrator.</p></main>",
            crate::console::escape(msg)
        ),
        None,
    )
}

async fn authorize(
    State(st): State<AppState>,
    headers: HeaderMap,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    uri: axum::http::Uri,
    q: Result<Query<AuthorizeQuery>, QueryRejection>,
) -> Response {
    let t = match tenant_of(&st, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Ok(Query(q)) = q else {
        return authorize_failure("the authorization request is malformed");
    };
    let iss = match issuer(&st, &headers, &t.name) {
        Ok(i) => i,
        Err(e) => return oauth_error(&e),
    };
    let session = match cookie(&headers, SESSION_COOKIE) {
        Some(s) => st.iam.authenticate(s).await.ok(),
        None => None,
    };
    let req = AuthorizeRequest {
        response_type: q.response_type,
        client_id: q.client_id,
        redirect_uri: q.redirect_uri,
        scope: q.scope,
        state: q.state,
        nonce: q.nonce,
        code_challenge: q.code_challenge,
        code_challenge_method: q.code_challenge_method,
        prompt: q.prompt,
    };
    match st
        .iam
        .oidc_authorize(&t, &iss, session.as_ref(), &req, &meta)
        .await
    {
        Ok(AuthorizeOutcome::Redirect(to)) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        }
        Ok(AuthorizeOutcome::LoginRequired) => {
            let back = uri
                .path_and_query()
                .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
            see_other(&format!("/console/login?next={}", urlencode(&back)))
        }
        Err(IamError::Invalid(m)) => authorize_failure(&m),
        Err(e) => failure(e),
    }
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    #[serde(default)]
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// For revocation and introspection.
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// Percent-decodes `s` (for the Basic credentials of RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The client's credentials: HTTP Basic (RFC 6749 §2.3.1) or the form's fields, never both.
fn client_auth(headers: &HeaderMap, f: &TokenForm) -> Result<ClientAuth, OAuthError> {
    let bad = |d: &str| OAuthError {
        error: "invalid_client",
        description: d.into(),
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "));
    match basic {
        Some(b) => {
            if f.client_secret.is_some() {
                return Err(bad("use one client authentication method, not two"));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|_| bad("malformed Basic credentials"))?;
            let s = String::from_utf8(raw).map_err(|_| bad("malformed Basic credentials"))?;
            let (id, secret) = s
                .split_once(':')
                .ok_or_else(|| bad("malformed Basic credentials"))?;
            let id = form_decode(id).ok_or_else(|| bad("malformed Basic credentials"))?;
            let secret = form_decode(secret).ok_or_else(|| bad("malformed Basic credentials"))?;
            if f.client_id.as_deref().is_some_and(|c| c != id) {
                return Err(bad("client_id differs from the authenticated client"));
            }
            Ok(ClientAuth {
                client_id: Some(id),
                secret: Some(secret),
            })
        }
        None => Ok(ClientAuth {
            client_id: f.client_id.clone(),
            secret: f.client_secret.clone(),
        }),
    }
}

fn form_or_error(f: Result<Form<TokenForm>, FormRejection>) -> Result<TokenForm, OAuthError> {
    f.map(|Form(f)| f).map_err(|e| OAuthError {
        error: "invalid_request",
        description: format!("the request must be an application/x-www-form-urlencoded form: {e}"),
    })
}

async fn token(
    State(st): State<AppState>,
    headers: HeaderMap,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    f: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let t = match tenant_of(&st, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let f = match form_or_error(f) {
        Ok(f) => f,
        Err(e) => return oauth_error(&e),
    };
    let iss = match issuer(&st, &headers, &t.name) {
        Ok(i) => i,
        Err(e) => return oauth_error(&e),
    };
    let auth = match client_auth(&headers, &f) {
        Ok(a) => a,
        Err(e) => return oauth_error(&e),
    };
    let req = TokenRequest {
        grant_type: f.grant_type,
        code: f.code,
        redirect_uri: f.redirect_uri,
        code_verifier: f.code_verifier,
        refresh_token: f.refresh_token,
        scope: f.scope,
    };
    match st.iam.oidc_token(&t, &iss, &auth, &req, &meta).await {
        Ok(r) => {
            let mut body = serde_json::json!({
                "access_token": r.access_token,
                "token_type": "Bearer",
                "expires_in": r.expires_in,
                "scope": r.scope,
            });
            if let Some(rt) = r.refresh_token {
                set_claim(&mut body, "refresh_token", serde_json::json!(rt));
            }
            if let Some(it) = r.id_token {
                set_claim(&mut body, "id_token", serde_json::json!(it));
            }
            let mut res = Json(body).into_response();
            res.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            res
        }
        Err(e) => oauth_error(&e),
    }
}

async fn userinfo(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Response {
    let t = match tenant_of(&st, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let iss = match issuer(&st, &headers, &t.name) {
        Ok(i) => i,
        Err(e) => return oauth_error(&e),
    };
    let Some(tok) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return oauth_error(&OAuthError {
            error: "invalid_token",
            description: "send the access token as a Bearer token".into(),
        });
    };
    match st.iam.oidc_userinfo(&t, &iss, tok.trim()).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => oauth_error(&e),
    }
}

/// What revocation (RFC 7009) and introspection (RFC 7662) requests share: the issuer's tenant,
/// the issuer URL, the authenticated client and the token the request names.
async fn token_request(
    st: &AppState,
    headers: &HeaderMap,
    tenant: &str,
    f: Result<Form<TokenForm>, FormRejection>,
) -> Result<(parapet_store::Tenant, String, ClientAuth, String), Response> {
    let t = tenant_of(st, tenant).await?;
    let f = form_or_error(f).map_err(|e| oauth_error(&e))?;
    let iss = issuer(st, headers, &t.name).map_err(|e| oauth_error(&e))?;
    let auth = client_auth(headers, &f).map_err(|e| oauth_error(&e))?;
    let tok = f.token.ok_or_else(|| {
        oauth_error(&OAuthError {
            error: "invalid_request",
            description: "token is missing".into(),
        })
    })?;
    Ok((t, iss, auth, tok))
}

async fn revoke(
    State(st): State<AppState>,
    headers: HeaderMap,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    f: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let (t, iss, auth, tok) = match token_request(&st, &headers, &tenant, f).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match st.iam.oidc_revoke(&t, &iss, &auth, &tok, &meta).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => oauth_error(&e),
    }
}

async fn introspect(
    State(st): State<AppState>,
    headers: HeaderMap,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    f: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let (t, iss, auth, tok) = match token_request(&st, &headers, &tenant, f).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match st.iam.oidc_introspect(&t, &iss, &auth, &tok, &meta).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => oauth_error(&e),
    }
}

// -- client registration API -----------------------------------------------------------------

/// A registered client (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub tenant: String,
    pub name: String,
    /// `confidential` or `public`.
    pub client_type: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub created_at: String,
    pub secret_rotated_at: Option<String>,
    /// The algorithm of its ID tokens: `ES256` or `RS256`.
    pub id_token_signed_response_alg: String,
    /// The issuer path relative to the server (`/oidc/{tenant}`).
    pub issuer_path: String,
}

/// A client just registered, or whose secret was just rotated: the secret is shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisteredClient {
    #[serde(flatten)]
    pub client: ClientView,
    pub client_secret: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    pub name: String,
    /// A public client (browser, native app) has no secret and must use PKCE.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Defaults: authorization_code and refresh_token (and client_credentials when confidential).
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// The algorithm of its ID tokens: `ES256` (default) or `RS256`.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
}

/// A signing key of the tenant's issuer (public part only).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub kid: String,
    pub alg: String,
    pub created_at: String,
    pub retired_at: Option<String>,
}

fn client_view(tenant: &str, c: &OidcClient) -> ClientView {
    ClientView {
        client_id: c.id.clone(),
        tenant: tenant.to_string(),
        name: c.name.clone(),
        client_type: if c.public { "public" } else { "confidential" }.into(),
        redirect_uris: c.redirect_uris.clone(),
        grant_types: c.grants.clone(),
        created_at: c.created_at.rfc3339(),
        secret_rotated_at: c.secret_rotated_at.map(|t| t.rfc3339()),
        id_token_signed_response_alg: c.id_token_alg.clone(),
        issuer_path: format!("/oidc/{tenant}"),
    }
}

fn key_view(k: &OidcKey) -> KeyView {
    KeyView {
        kid: k.kid.clone(),
        alg: k.alg.clone(),
        created_at: k.created_at.rfc3339(),
        retired_at: k.retired_at.map(|t| t.rfc3339()),
    }
}

/// The tenant's OpenID Connect clients.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/oidc/clients", tag = "oidc",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [ClientView]), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_clients(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<ClientView>>> {
    let (t, list) = st.iam.oidc_client_list(&p, &tenant, &meta).await?;
    Ok(Json(list.iter().map(|c| client_view(&t.name, c)).collect()))
}

/// Registers a client; a confidential client's secret is in the answer, once.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/oidc/clients", tag = "oidc",
    params(("tenant" = String, Path)), request_body = NewClientBody,
    responses((status = 201, body = RegisteredClient), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_client(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(b): ApiJson<NewClientBody>,
) -> ApiResult<(StatusCode, Json<RegisteredClient>)> {
    let req = NewClient {
        name: b.name,
        public: b.public,
        redirect_uris: b.redirect_uris,
        grants: b.grant_types,
        id_token_alg: b.id_token_signed_response_alg,
    };
    let (c, secret) = st.iam.oidc_client_add(&p, &tenant, &req, &meta).await?;
    let t = st
        .iam
        .resolve(&p, &tenant, parapet_iam::Action::OidcClientRead, &meta)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredClient {
            client: client_view(&t.name, &c),
            client_secret: secret,
        }),
    ))
}

/// Gives a confidential client a new secret (in the answer, once); the old one stops working.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/oidc/clients/{id}/rotate-secret",
    tag = "oidc", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = RegisteredClient), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<RegisteredClient>> {
    let (c, secret) = st
        .iam
        .oidc_client_rotate_secret(&p, &tenant, &id, &meta)
        .await?;
    let t = st
        .iam
        .resolve(&p, &tenant, parapet_iam::Action::OidcClientRead, &meta)
        .await?;
    Ok(Json(RegisteredClient {
        client: client_view(&t.name, &c),
        client_secret: Some(secret),
    }))
}

/// Removes a client and revokes every token issued to it.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/oidc/clients/{id}", tag = "oidc",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn remove_client(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.iam.oidc_client_remove(&p, &tenant, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The issuer's signing keys (public metadata).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/oidc/keys", tag = "oidc",
    params(("tenant" = String, Path)), responses((status = 200, body = [KeyView])),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<KeyView>>> {
    let keys = st.iam.oidc_keys(&p, &tenant, &meta).await?;
    Ok(Json(keys.iter().map(key_view).collect()))
}

/// Replaces the issuer's signing keys (ES256 and RS256); the old keys stay in the JWKS until
/// their tokens expire. The answer is the new ES256 key (the one that signs access tokens).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/oidc/keys/rotate", tag = "oidc",
    params(("tenant" = String, Path)), responses((status = 200, body = KeyView)),
    security(("bearer" = [])))]
pub async fn rotate_key(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<KeyView>> {
    let kid = st.iam.oidc_rotate_key(&p, &tenant, &meta).await?;
    let keys = st.iam.oidc_keys(&p, &tenant, &meta).await?;
    let k = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| ApiError::not_found("the new key is not visible yet"))?;
    Ok(Json(key_view(k)))
}

// -- console ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "oidc_clients.html")]
struct ClientsPage {
    c: Chrome,
    issuer_path: String,
    clients: Vec<ClientView>,
    keys: Vec<KeyView>,
    can_manage: bool,
    /// (client id, secret) just issued, shown once.
    secret: Option<(String, String)>,
}

async fn view(
    st: &AppState,
    u: &ConsoleUser,
    secret: Option<(String, String)>,
    error: Option<(StatusCode, String)>,
    notice: Option<String>,
) -> Response {
    let tenant = u.p.tenant.name.clone();
    let (clients, keys) = match (
        st.iam.oidc_client_list(&u.p, &tenant, &u.meta).await,
        st.iam.oidc_keys(&u.p, &tenant, &u.meta).await,
    ) {
        (Ok((t, list)), Ok(keys)) => (
            list.iter().map(|c| client_view(&t.name, c)).collect(),
            keys.iter().map(key_view).collect(),
        ),
        (Err(e), _) | (_, Err(e)) => return failure(e),
    };
    let can_manage =
        parapet_iam::authorize(&u.p, parapet_iam::Action::OidcClientManage, &u.p.tenant).is_ok();
    let mut c = u.chrome("Identity federation");
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
        &ClientsPage {
            c,
            issuer_path: format!("/oidc/{tenant}"),
            clients,
            keys,
            can_manage,
            secret,
        },
        u.set_csrf.clone(),
    )
}

async fn page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    view(&st, &u, None, None, None).await
}

#[derive(Debug, Deserialize)]
struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// `confidential` or `public`.
    #[serde(default)]
    client_type: String,
    /// One per line.
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    client_credentials: Option<String>,
    /// `ES256` or `RS256`.
    #[serde(default)]
    id_token_alg: Option<String>,
}

async fn page_add(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<AddForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let public = f.client_type == "public";
    let mut grants = vec![
        parapet_iam::oidc::GRANT_CODE.to_string(),
        parapet_iam::oidc::GRANT_REFRESH.to_string(),
    ];
    if f.client_credentials.is_some() && !public {
        grants.push(parapet_iam::oidc::GRANT_CLIENT_CREDENTIALS.to_string());
    }
    let req = NewClient {
        name: f.name,
        public,
        redirect_uris: f
            .redirect_uris
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        grants,
        id_token_alg: f.id_token_alg.filter(|a| !a.is_empty()),
    };
    let tenant = u.p.tenant.name.clone();
    match st.iam.oidc_client_add(&u.p, &tenant, &req, &u.meta).await {
        Ok((c, secret)) => {
            let notice = format!("Client {} registered: its id is {}.", c.name, c.id);
            view(&st, &u, secret.map(|s| (c.id, s)), None, Some(notice)).await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, None, Some(err), None).await,
            None => failure(e),
        },
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn page_rotate(
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
    match st
        .iam
        .oidc_client_rotate_secret(&u.p, &tenant, &id, &u.meta)
        .await
    {
        Ok((c, s)) => {
            let notice = format!("New secret for {}: the old one no longer works.", c.name);
            view(&st, &u, Some((c.id, s)), None, Some(notice)).await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, None, Some(err), None).await,
            None => failure(e),
        },
    }
}

async fn page_delete(
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
    match st.iam.oidc_client_remove(&u.p, &tenant, &id, &u.meta).await {
        Ok(()) => {
            view(
                &st,
                &u,
                None,
                None,
                Some("Client removed; its tokens are revoked.".into()),
            )
            .await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, None, Some(err), None).await,
            None => failure(e),
        },
    }
}

async fn page_rotate_key(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let tenant = u.p.tenant.name.clone();
    match st.iam.oidc_rotate_key(&u.p, &tenant, &u.meta).await {
        Ok(kid) => view(
            &st,
            &u,
            None,
            None,
            Some(format!(
                "New signing key {kid}; the previous key stays published until its tokens expire."
            )),
        )
        .await,
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, None, Some(err), None).await,
            None => failure(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }
}
