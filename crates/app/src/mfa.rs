//! Second factors over HTTP and in the console (X.1642 8.1.2(1), 7.2.2.4(4)): one's TOTP
//! enrolment, confirmation with recovery codes, removal; administrators' reset.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::console::{Chrome, ConsoleUser, csrf_ok, failure, forbidden_form, form_error, render};
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};

/// The caller's second factors.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MfaView {
    /// `none`, `pending` or `enabled`.
    pub totp: String,
    pub recovery_codes_left: u32,
    /// Whether the tenant's policy makes a second factor mandatory.
    pub required: bool,
}

/// A started TOTP enrolment: put the secret (or the URI, as a QR code) in an authenticator
/// app, then confirm with a first code. Shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// Base32, as authenticator apps take it.
    pub secret: String,
    /// `otpauth://totp/…`
    pub uri: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTotp {
    /// A current 6-digit code from the authenticator.
    pub code: String,
}

/// Recovery codes, each usable once instead of a code. Shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveTotp {
    /// The caller's password.
    pub password: String,
}

/// The caller's second factors.
#[utoipa::path(get, path = "/api/v1/me/mfa", tag = "mfa",
    responses((status = 200, body = MfaView)), security(("bearer" = [])))]
pub async fn status(State(st): State<AppState>, Auth(p): Auth) -> ApiResult<Json<MfaView>> {
    let s = st.iam.mfa_status(&p).await?;
    Ok(Json(MfaView {
        totp: s.totp.into(),
        recovery_codes_left: s.recovery_codes_left,
        required: s.required,
    }))
}

/// Starts a TOTP enrolment (replacing one not yet confirmed).
#[utoipa::path(post, path = "/api/v1/me/mfa/totp", tag = "mfa",
    responses((status = 200, body = TotpEnrolmentView), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn begin(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> ApiResult<Json<TotpEnrolmentView>> {
    let e = st.iam.totp_begin(&p, &meta).await?;
    Ok(Json(TotpEnrolmentView {
        secret: e.secret_base32,
        uri: e.uri,
    }))
}

/// Confirms the TOTP enrolment with a first code; returns the recovery codes.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp/confirm", tag = "mfa",
    request_body = ConfirmTotp,
    responses((status = 200, body = RecoveryCodes), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn confirm(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<ConfirmTotp>,
) -> ApiResult<Json<RecoveryCodes>> {
    let codes = st.iam.totp_confirm(&p, &req.code, &meta).await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Removes the caller's TOTP factor and recovery codes (needs the password).
#[utoipa::path(post, path = "/api/v1/me/mfa/totp/remove", tag = "mfa",
    request_body = RemoveTotp,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<RemoveTotp>,
) -> ApiResult<StatusCode> {
    st.iam.totp_remove(&p, &req.password, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user's second factors (for a lost device).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{username}/mfa/reset", tag = "mfa",
    params(("tenant" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn reset(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.iam.reset_mfa(&p, &tenant, &username, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

// -- console ---------------------------------------------------------------------------------

pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/mfa", get(page))
        .route("/console/mfa/totp", post(page_begin))
        .route("/console/mfa/totp/confirm", post(page_confirm))
        .route("/console/mfa/totp/remove", post(page_remove))
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage {
    c: Chrome,
    totp: &'static str,
    required: bool,
    recovery_codes_left: u32,
    enrolment: Option<(String, String)>,
    recovery_codes: Vec<String>,
}

async fn view(
    st: &AppState,
    u: &ConsoleUser,
    enrolment: Option<(String, String)>,
    recovery_codes: Vec<String>,
    error: Option<(StatusCode, String)>,
    notice: Option<String>,
) -> Response {
    let s = match st.iam.mfa_status(&u.p).await {
        Ok(s) => s,
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
    render(
        status,
        &MfaPage {
            c,
            totp: s.totp,
            required: s.required,
            recovery_codes_left: s.recovery_codes_left,
            enrolment,
            recovery_codes,
        },
        u.set_csrf.clone(),
    )
}

async fn page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    view(&st, &u, None, vec![], None, None).await
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

async fn page_begin(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<CodeForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st.iam.totp_begin(&u.p, &u.meta).await {
        Ok(e) => view(&st, &u, Some((e.secret_base32, e.uri)), vec![], None, None).await,
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, None, vec![], Some(err), None).await,
            None => failure(e),
        },
    }
}

async fn page_confirm(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<CodeForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st.iam.totp_confirm(&u.p, &f.code, &u.meta).await {
        Ok(codes) => {
            view(
                &st,
                &u,
                None,
                codes,
                None,
                Some(
                    "Authenticator enabled. Store the recovery codes now: they are shown once."
                        .into(),
                ),
            )
            .await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, None, vec![], Some(err), None).await,
            None => failure(e),
        },
    }
}

async fn page_remove(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<CodeForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st.iam.totp_remove(&u.p, &f.password, &u.meta).await {
        Ok(()) => {
            view(
                &st,
                &u,
                None,
                vec![],
                None,
                Some("Authenticator removed.".into()),
            )
            .await
        }
        Err(e) => match form_error(&e) {
            Some(err) => view(&st, &u, None, vec![], Some(err), None).await,
            None => failure(e),
        },
    }
}
