//! The web console: server-rendered HTML (askama), CSRF-protected forms, and one script of our
//! own (`verify.js`, which checks an audit record's inclusion proof in the browser).
//!
//! Forms use a double-submit token: a random `parapet_csrf` cookie (SameSite=Strict) whose value
//! each form repeats in a hidden field; a POST whose field does not match the cookie, or whose
//! Origin names another site, is refused.

use askama::Template;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use parapet_iam::{Action, IamError, Principal, authorize};
use parapet_store::{AuditFilter, AuditRecord, TenantStatus, UserStatus};
use parapet_types::{Role, TenantKind, Timestamp};
use serde::Deserialize;

use crate::AppState;
use crate::api::{TenantView, UserView, clear_session_cookie, session_cookie, user_view};
use crate::extract::{Meta, SESSION_COOKIE, cookie, same_origin};

mod assets;

const CSRF_COOKIE: &str = "parapet_csrf";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(dashboard))
        .route("/console/login", get(login_page).post(login_submit))
        .route("/console/logout", post(logout))
        .route("/console/tenants", get(tenants_page).post(tenant_create))
        .route("/console/tenants/{tenant}/suspend", post(tenant_suspend))
        .route("/console/tenants/{tenant}/activate", post(tenant_activate))
        .route(
            "/console/tenants/{tenant}/users",
            get(users_page).post(user_create),
        )
        .route(
            "/console/tenants/{tenant}/users/{user}/disable",
            post(user_disable),
        )
        .route(
            "/console/tenants/{tenant}/users/{user}/enable",
            post(user_enable),
        )
        .route("/console/users", get(own_users))
        .route("/console/sessions", get(sessions_page))
        .route("/console/sessions/{id}/revoke", post(session_end))
        .route(
            "/console/tenants/{tenant}/users/{username}/revoke-sessions",
            post(user_sessions_end),
        )
        .merge(crate::account::console_routes())
        .merge(crate::mfa::console_routes())
        .merge(crate::approval::console_routes())
        .route("/console/audit", get(audit_page))
        .route("/console/audit/report", get(access_report_page))
        .route("/console/audit/{index}", get(audit_record_page))
        .route("/console/assets", get(assets::own_assets))
        .route(
            "/console/tenants/{tenant}/assets",
            get(assets::assets_page).post(assets::asset_create),
        )
        .route(
            "/console/tenants/{tenant}/assets/import",
            post(assets::asset_import).layer(axum::extract::DefaultBodyLimit::max(4 * 1024 * 1024)),
        )
        .route(
            "/console/tenants/{tenant}/assets/{asset}",
            get(assets::asset_page),
        )
        .route(
            "/console/tenants/{tenant}/assets/{asset}/health",
            post(assets::asset_health),
        )
        .route(
            "/console/tenants/{tenant}/assets/{asset}/delete",
            post(assets::asset_delete),
        )
        .route("/console/static/parapet.css", get(css))
        .route("/console/static/verify.js", get(verify_js))
}

async fn verify_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/verify.js"),
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/parapet.css"),
    )
        .into_response()
}

/// An entry of the navigation: the modules of DESIGN.md §1 with their X.1642 clauses. Modules not
/// in this version are listed without a link.
pub struct NavItem {
    pub label: &'static str,
    pub href: Option<&'static str>,
    pub clause: &'static str,
}

pub const NAV: &[NavItem] = &[
    NavItem {
        label: "Dashboard",
        href: Some("/console"),
        clause: "",
    },
    NavItem {
        label: "Tenants",
        href: Some("/console/tenants"),
        clause: "8.1",
    },
    NavItem {
        label: "Users",
        href: Some("/console/users"),
        clause: "8.1",
    },
    NavItem {
        label: "Identity federation",
        href: Some("/console/oidc"),
        clause: "8.1",
    },
    NavItem {
        label: "Groups",
        href: Some("/console/groups"),
        clause: "8.1.2",
    },
    NavItem {
        label: "Directory (LDAP)",
        href: Some("/console/ldap"),
        clause: "8.1.2",
    },
    NavItem {
        label: "Privileged access",
        href: Some("/console/access"),
        clause: "7.2.2.4",
    },
    NavItem {
        label: "Audit",
        href: Some("/console/audit"),
        clause: "8.11",
    },
    NavItem {
        label: "SLA",
        href: None,
        clause: "7.1, 7.2",
    },
    NavItem {
        label: "Keys",
        href: Some("/console/kms"),
        clause: "8.2",
    },
    NavItem {
        label: "Assets",
        href: Some("/console/assets"),
        clause: "8.3",
    },
    NavItem {
        label: "Monitoring",
        href: Some("/console/events"),
        clause: "8.3",
    },
    NavItem {
        label: "Disaster recovery",
        href: None,
        clause: "8.4",
    },
    NavItem {
        label: "Configuration",
        href: None,
        clause: "8.5",
    },
    NavItem {
        label: "Incidents",
        href: Some("/console/incidents"),
        clause: "8.6",
    },
    NavItem {
        label: "Notifications",
        href: Some("/console/notify"),
        clause: "8.6.1",
    },
    NavItem {
        label: "Patches",
        href: None,
        clause: "8.7",
    },
    NavItem {
        label: "CMDB",
        href: None,
        clause: "8.8",
    },
    NavItem {
        label: "Emergency plans",
        href: Some("/console/plans"),
        clause: "8.9",
    },
    NavItem {
        label: "Backup",
        href: Some("/console/backup"),
        clause: "8.10",
    },
];

/// What every page of the layout shows.
pub struct Chrome {
    pub me: String,
    pub role: String,
    pub tenant: String,
    pub csrf: String,
    pub nav: &'static [NavItem],
    pub active: &'static str,
    pub error: Option<String>,
    pub notice: Option<String>,
}

/// The signed-in console user, with the CSRF token to put in forms (and a cookie to set when the
/// browser had none).
pub struct ConsoleUser {
    pub p: Principal,
    pub csrf: String,
    pub set_csrf: Option<HeaderValue>,
    pub meta: parapet_iam::RequestMeta,
}

impl ConsoleUser {
    pub(crate) fn chrome(&self, active: &'static str) -> Chrome {
        Chrome {
            me: self.p.login_name(),
            role: self.p.user.role.to_string(),
            tenant: self.p.tenant.name.clone(),
            csrf: self.csrf.clone(),
            nav: NAV,
            active,
            error: None,
            notice: None,
        }
    }
}

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let secret = cookie(&parts.headers, SESSION_COOKIE)
            .ok_or_else(|| Redirect::to("/console/login").into_response())?;
        let p = match st.iam.authenticate(secret).await {
            Ok(p) => p,
            Err(IamError::Unauthenticated) => {
                return Err(Redirect::to("/console/login").into_response());
            }
            Err(e) => return Err(failure(e)),
        };
        let (csrf, set_csrf) = csrf_token(st, &parts.headers);
        let Meta(meta) = match Meta::from_request_parts(parts, st).await {
            Ok(m) => m,
            Err(never) => match never {},
        };
        if p.elevation.is_some() {
            let path = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| parts.uri.path().to_string(), |u| u.0.path().to_string());
            let what = format!("{} {path}", parts.method);
            if let Err(e) = st.iam.record_elevated_use(&p, &what, &meta).await {
                return Err(failure(e));
            }
        }
        Ok(ConsoleUser {
            p,
            csrf,
            set_csrf,
            meta,
        })
    }
}

/// The browser's CSRF token, or a new one with the cookie that carries it.
fn csrf_token(st: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(c) = cookie(headers, CSRF_COOKIE).filter(|c| c.len() == 43) {
        return (c.to_string(), None);
    }
    let bytes: [u8; 32] = st.iam.env().random().unwrap_or([0; 32]);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let secure = if st.config.tls { "; Secure" } else { "" };
    let v = HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok();
    (token, v)
}

/// Whether a form POST carries the browser's CSRF token and comes from our own origin.
pub(crate) fn csrf_ok(headers: &HeaderMap, field: &str) -> bool {
    let Some(c) = cookie(headers, CSRF_COOKIE) else {
        return false;
    };
    same_origin(headers) && c.len() == field.len() && constant_eq(c.as_bytes(), field.as_bytes())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn forbidden_form() -> Response {
    html_page(
        StatusCode::FORBIDDEN,
        "<!doctype html><title>Form expired</title><p>This form has expired or did not come \
         from this site. <a href=\"/console\">Go back</a> and try again.</p>"
            .to_string(),
        None,
    )
}

pub(crate) fn html_page(
    status: StatusCode,
    body: String,
    set_cookie: Option<HeaderValue>,
) -> Response {
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

pub(crate) fn render<T: Template>(
    status: StatusCode,
    t: &T,
    set_cookie: Option<HeaderValue>,
) -> Response {
    match t.render() {
        Ok(body) => html_page(status, body, set_cookie),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            html_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><p>Internal error.</p>".into(),
                None,
            )
        }
    }
}

pub(crate) fn failure(e: IamError) -> Response {
    let (status, msg) = match &e {
        IamError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable; try again later.".to_string(),
        ),
        IamError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
        IamError::Forbidden(m) => (StatusCode::FORBIDDEN, format!("Forbidden: {m}")),
        _ => {
            tracing::error!(error = %e, "console request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error; it has been logged.".into(),
            )
        }
    };
    html_page(
        status,
        format!(
            "<!doctype html><title>Parapet</title><link rel=\"stylesheet\" \
             href=\"/console/static/parapet.css\"><main><p class=\"error\">{}</p>\
             <p><a href=\"/console\">Back to the console</a></p></main>",
            escape(&msg)
        ),
        None,
    )
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Status and message of a failed form action, shown on the re-rendered page.
pub(crate) fn form_error(e: &IamError) -> Option<(StatusCode, String)> {
    match e {
        IamError::Invalid(m) => Some((StatusCode::UNPROCESSABLE_ENTITY, m.clone())),
        IamError::Conflict(m) => Some((StatusCode::CONFLICT, m.clone())),
        IamError::Forbidden(m) => Some((StatusCode::FORBIDDEN, format!("Forbidden: {m}"))),
        IamError::NotFound(m) => Some((StatusCode::NOT_FOUND, m.clone())),
        _ => None,
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
    username: String,
    /// Where to go after logging in (an OpenID Connect authorization request), if anywhere.
    next: String,
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: String,
    /// `failed` after a refused security key.
    #[serde(default)]
    key: String,
}

/// The `next` target when it is one of ours to return to: an authorization request of the
/// OpenID Connect provider (never another site).
pub(crate) fn safe_next(next: &str) -> Option<&str> {
    (next.starts_with("/oidc/")
        && next.len() <= 4096
        && !next.contains("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control))
    .then_some(next)
}

async fn login_page(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<axum::extract::Query<NextQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (csrf, set) = csrf_token(&st, &headers);
    let q = q.ok().map(|axum::extract::Query(q)| q);
    let next = q
        .as_ref()
        .and_then(|q| safe_next(&q.next).map(String::from))
        .unwrap_or_default();
    let error = q
        .filter(|q| q.key == "failed")
        .map(|_| "The security key was not accepted; log in again.".to_string());
    render(
        StatusCode::OK,
        &LoginPage {
            csrf,
            error,
            username: String::new(),
            next,
        },
        set,
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    csrf: String,
    /// A second-factor code, for accounts that have one.
    #[serde(default)]
    otp: String,
    #[serde(default)]
    next: String,
}

async fn login_submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    Meta(meta): Meta,
    Form(f): Form<LoginForm>,
) -> Response {
    let (csrf, set) = csrf_token(&st, &headers);
    let page = |status, error: &str| {
        render(
            status,
            &LoginPage {
                csrf: csrf.clone(),
                error: Some(error.to_string()),
                username: f.username.clone(),
                next: safe_next(&f.next).unwrap_or_default().to_string(),
            },
            set.clone(),
        )
    };
    if !csrf_ok(&headers, &f.csrf) {
        return page(
            StatusCode::FORBIDDEN,
            "The form expired; please log in again.",
        );
    }
    if f.username.len() > 200 || f.password.len() > 4096 {
        return page(StatusCode::UNAUTHORIZED, "Wrong user name or password.");
    }
    let otp = Some(f.otp.trim()).filter(|o| !o.is_empty());
    // Security keys work where the browser can reach a relying party (a host name).
    let rp = crate::webauthn::relying_party(&st, &headers).ok();
    match st
        .iam
        .login_step(f.username.trim(), &f.password, otp, rp.as_ref(), &meta)
        .await
    {
        Ok(parapet_iam::LoginStep::SecurityKey(p)) => render(
            StatusCode::OK,
            &crate::webauthn::KeyLoginPage {
                csrf: csrf.clone(),
                username: f.username.trim().to_string(),
                next: safe_next(&f.next).unwrap_or_default().to_string(),
                handle: p.handle,
                options: p.options.to_string(),
                error: None,
            },
            set.clone(),
        ),
        Ok(parapet_iam::LoginStep::Done(issued)) => {
            let max_age = (issued.expires_at.0 - st.iam.env().now().0) / 1000;
            let enrol = issued
                .principal
                .scopes
                .iter()
                .any(|s| s == parapet_iam::mfa::ENROL_ONLY_SCOPE);
            // An account that must enrol a second factor goes straight to the enrolment page.
            let to = if enrol {
                "/console/mfa"
            } else {
                safe_next(&f.next).unwrap_or("/console")
            };
            let mut res = Redirect::to(to).into_response();
            *res.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) =
                HeaderValue::from_str(&session_cookie(&issued.secret, max_age, st.config.tls))
            {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
        Err(IamError::Unauthenticated) => {
            page(StatusCode::UNAUTHORIZED, "Wrong user name or password.")
        }
        Err(IamError::Unavailable(_)) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable; try again later.",
        ),
        Err(IamError::DirectoryUnavailable(m)) => page(StatusCode::SERVICE_UNAVAILABLE, &m),
        Err(IamError::Throttled(secs)) => page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many log-in attempts; try again in {secs} seconds."),
        ),
        Err(IamError::MfaRequired) => page(
            StatusCode::UNAUTHORIZED,
            "Enter the code of your authenticator app (or a recovery code) with your password \
             (security keys need the server to be reached by a host name).",
        ),
        Err(IamError::PasswordExpired) => page(
            StatusCode::FORBIDDEN,
            "Your password has expired: change it with `parapet user password` (or POST \
             /api/v1/auth/password), then log in again.",
        ),
        Err(e) => failure(e),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    pub(crate) csrf: String,
}

pub(crate) fn see_other(to: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    *res.status_mut() = StatusCode::SEE_OTHER;
    res
}

async fn logout(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    if let Err(e) = st.iam.logout(&u.p, &u.meta).await {
        return failure(e);
    }
    let mut res = see_other("/console/login");
    if let Ok(v) = HeaderValue::from_str(&clear_session_cookie(st.config.tls)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// An audit record as a table row.
struct AuditRow {
    id: i64,
    time: String,
    actor: String,
    action: String,
    target: String,
    source: String,
    outcome: &'static str,
}

fn audit_row(r: &AuditRecord) -> AuditRow {
    AuditRow {
        id: r.id,
        time: r.event.time.rfc3339(),
        actor: r.event.actor.label(),
        action: r.event.action.clone(),
        target: r.event.target.clone(),
        source: r.event.source_ip.clone().unwrap_or_default(),
        outcome: r.event.outcome.as_str(),
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    c: Chrome,
    tenants: usize,
    users: String,
    backend: &'static str,
    recent: Vec<AuditRow>,
    activity_svg: String,
}

async fn dashboard(State(st): State<AppState>, u: ConsoleUser) -> Response {
    let tenants = match st.iam.list_tenants(&u.p, None, 1000).await {
        Ok(t) => t.len(),
        Err(e) => return failure(e),
    };
    let own = u.p.tenant.name.clone();
    let users = match st.iam.list_users(&u.p, &own, None, 1000, &u.meta).await {
        Ok((_, list)) => list.len().to_string(),
        Err(IamError::Forbidden(_)) => "–".into(),
        Err(e) => return failure(e),
    };
    let records = match st
        .iam
        .list_audit(&u.p, &own, &AuditFilter::default(), None, 500, &u.meta)
        .await
    {
        Ok(r) => r,
        Err(IamError::Forbidden(_)) => Vec::new(),
        Err(e) => return failure(e),
    };
    let now = st.iam.env().now();
    let page = DashboardPage {
        c: u.chrome("Dashboard"),
        tenants,
        users,
        backend: st.store.backend(),
        activity_svg: activity_svg(&records, now),
        recent: records.iter().take(15).map(audit_row).collect(),
    };
    render(StatusCode::OK, &page, u.set_csrf)
}

#[derive(Template)]
#[template(path = "tenants.html")]
struct TenantsPage {
    c: Chrome,
    tenants: Vec<TenantView>,
    can_manage: bool,
}

async fn tenants_view(
    st: &AppState,
    u: &ConsoleUser,
    error: Option<String>,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        match st.iam.list_tenants(&u.p, after.clone(), 1000).await {
            Ok(list) => {
                let done = list.len() < 1000;
                after = list.last().map(|t| t.id.to_string());
                all.extend(list);
                if done {
                    break;
                }
            }
            Err(e) => return failure(e),
        }
    }
    let mut c = u.chrome("Tenants");
    c.error = error;
    c.notice = notice;
    let page = TenantsPage {
        c,
        tenants: all.iter().map(TenantView::from).collect(),
        can_manage: authorize(&u.p, Action::TenantCreate, &u.p.tenant).is_ok(),
    };
    render(status, &page, u.set_csrf.clone())
}

#[derive(Debug, Deserialize)]
struct Done {
    done: Option<String>,
}

fn notice(done: &Option<String>) -> Option<String> {
    match done.as_deref() {
        Some("created") => Some("Created.".into()),
        Some("updated") => Some("Updated.".into()),
        _ => None,
    }
}

async fn tenants_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    axum::extract::Query(d): axum::extract::Query<Done>,
) -> Response {
    tenants_view(&st, &u, None, notice(&d.done), StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
struct TenantForm {
    name: String,
    #[serde(default)]
    csrf: String,
}

async fn tenant_create(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Form(f): Form<TenantForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st.iam.create_tenant(&u.p, f.name.trim(), &u.meta).await {
        Ok(_) => see_other("/console/tenants?done=created"),
        Err(e) => match form_error(&e) {
            Some((status, msg)) => tenants_view(&st, &u, Some(msg), None, status).await,
            None => failure(e),
        },
    }
}

async fn tenant_status(
    st: AppState,
    headers: HeaderMap,
    u: ConsoleUser,
    tenant: String,
    csrf: String,
    status: TenantStatus,
) -> Response {
    if !csrf_ok(&headers, &csrf) {
        return forbidden_form();
    }
    match st
        .iam
        .set_tenant_status(&u.p, &tenant, status, &u.meta)
        .await
    {
        Ok(_) => see_other("/console/tenants?done=updated"),
        Err(e) => match form_error(&e) {
            Some((status, msg)) => tenants_view(&st, &u, Some(msg), None, status).await,
            None => failure(e),
        },
    }
}

async fn tenant_suspend(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    tenant_status(st, headers, u, tenant, f.csrf, TenantStatus::Suspended).await
}

async fn tenant_activate(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    tenant_status(st, headers, u, tenant, f.csrf, TenantStatus::Active).await
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    c: Chrome,
    tenant: String,
    users: Vec<UserView>,
    roles: Vec<&'static str>,
    can_manage: bool,
}

async fn users_view(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    error: Option<String>,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let (t, users) = match st.iam.list_users(&u.p, tenant, None, 1000, &u.meta).await {
        Ok(x) => x,
        Err(e) => return failure(e),
    };
    let mut c = u.chrome("Users");
    c.error = error;
    c.notice = notice;
    let roles = Role::ALL
        .into_iter()
        .filter(|r| r.fits(t.kind))
        .filter(|r| authorize(&u.p, Action::UserCreate(*r), &t).is_ok())
        .map(Role::as_str)
        .collect::<Vec<_>>();
    let page = UsersPage {
        c,
        tenant: t.name.clone(),
        users: users.iter().map(|x| user_view(&t, x)).collect(),
        can_manage: !roles.is_empty() && authorize(&u.p, Action::UserDisable, &t).is_ok(),
        roles,
    };
    render(status, &page, u.set_csrf.clone())
}

async fn users_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    axum::extract::Query(d): axum::extract::Query<Done>,
) -> Response {
    users_view(&st, &u, &tenant, None, notice(&d.done), StatusCode::OK).await
}

async fn own_users(u: ConsoleUser) -> Response {
    Redirect::to(&format!("/console/tenants/{}/users", u.p.tenant.name)).into_response()
}

#[derive(Debug, Deserialize)]
struct UserForm {
    username: String,
    password: String,
    role: String,
    #[serde(default)]
    csrf: String,
}

async fn user_create(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    Form(f): Form<UserForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let result = match f.role.parse::<Role>() {
        Ok(role) => {
            st.iam
                .create_user(&u.p, &tenant, f.username.trim(), &f.password, role, &u.meta)
                .await
        }
        Err(e) => Err(IamError::Invalid(e.to_string())),
    };
    match result {
        Ok((t, _)) => see_other(&format!("/console/tenants/{}/users?done=created", t.name)),
        Err(e) => match form_error(&e) {
            Some((status, msg)) => users_view(&st, &u, &tenant, Some(msg), None, status).await,
            None => failure(e),
        },
    }
}

async fn user_status(
    st: AppState,
    headers: HeaderMap,
    u: ConsoleUser,
    (tenant, user): (String, String),
    csrf: String,
    status: UserStatus,
) -> Response {
    if !csrf_ok(&headers, &csrf) {
        return forbidden_form();
    }
    match st
        .iam
        .set_user_status(&u.p, &tenant, &user, status, &u.meta)
        .await
    {
        Ok(_) => see_other(&format!("/console/tenants/{tenant}/users?done=updated")),
        Err(e) => match form_error(&e) {
            Some((status, msg)) => users_view(&st, &u, &tenant, Some(msg), None, status).await,
            None => failure(e),
        },
    }
}

async fn user_disable(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(path): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    user_status(st, headers, u, path, f.csrf, UserStatus::Disabled).await
}

async fn user_enable(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(path): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    user_status(st, headers, u, path, f.csrf, UserStatus::Active).await
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Chrome,
    tenant: String,
    action: String,
    actor: String,
    since: String,
    until: String,
    records: Vec<AuditRow>,
    activity_svg: String,
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    tenant: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (a `datetime-local` input), read as UTC.
    since: Option<String>,
    until: Option<String>,
}

/// A `datetime-local` value (`YYYY-MM-DDTHH:MM[:SS]`) read as UTC; empty is none.
fn form_time(s: &Option<String>) -> Result<Option<Timestamp>, String> {
    let Some(s) = s.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let full = if s.len() == 16 {
        format!("{s}:00Z")
    } else {
        format!("{s}Z")
    };
    time::OffsetDateTime::parse(&full, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(Timestamp::from_datetime(t)))
        .map_err(|_| format!("{s:?} is not a date and time (YYYY-MM-DDTHH:MM)"))
}

async fn audit_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
) -> Response {
    let tenant = q
        .tenant
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| u.p.tenant.name.clone());
    let (since, until) = match (form_time(&q.since), form_time(&q.until)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(m), _) | (_, Err(m)) => {
            return api_failure(crate::error::ApiError::bad_request(m));
        }
    };
    let filter = AuditFilter {
        action: q.action.clone().filter(|s| !s.is_empty()),
        actor: q.actor.clone().filter(|s| !s.is_empty()),
        since,
        until,
        ..AuditFilter::default()
    };
    let records = match st
        .iam
        .list_audit(&u.p, &tenant, &filter, None, 500, &u.meta)
        .await
    {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    let now = st.iam.env().now();
    let page = AuditPage {
        c: u.chrome("Audit"),
        tenant,
        action: q.action.unwrap_or_default(),
        actor: q.actor.unwrap_or_default(),
        since: q.since.unwrap_or_default(),
        until: q.until.unwrap_or_default(),
        activity_svg: activity_svg(&records, now),
        records: records.iter().map(audit_row).collect(),
    };
    render(StatusCode::OK, &page, u.set_csrf)
}

/// A bar chart (SVG) of the records per hour over the 24 hours up to `now`.
pub fn activity_svg(records: &[AuditRecord], now: Timestamp) -> String {
    const HOURS: usize = 24;
    const W: usize = 24;
    let mut bins = [0u32; HOURS];
    let hour = 3_600_000i64;
    for r in records {
        let age = now.0 - r.event.time.0;
        if (0..hour * HOURS as i64).contains(&age) {
            let i = HOURS - 1 - (age / hour) as usize;
            if let Some(b) = bins.get_mut(i) {
                *b += 1;
            }
        }
    }
    let max = bins.iter().copied().max().unwrap_or(0).max(1);
    let height = 80.0;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"activity per hour, last 24 hours\" \
         width=\"{}\" height=\"110\" viewBox=\"0 0 {} 110\" xmlns=\"http://www.w3.org/2000/svg\">",
        HOURS * W + 40,
        HOURS * W + 40
    );
    svg.push_str(&format!(
        "<text x=\"2\" y=\"12\">{max}</text><text x=\"2\" y=\"92\">0</text>"
    ));
    for (i, n) in bins.iter().enumerate() {
        let h = f64::from(*n) / f64::from(max) * height;
        let x = 30 + i * W;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"{}\" height=\"{h:.1}\"><title>{n} events</title></rect>",
            90.0 - h,
            W - 4
        ));
    }
    svg.push_str(&format!(
        "<text x=\"30\" y=\"105\">−24 h</text><text x=\"{}\" y=\"105\">now</text></svg>",
        HOURS * W + 10
    ));
    let _ = TenantKind::Provider;
    svg
}

#[derive(Template)]
#[template(path = "audit_record.html")]
struct AuditRecordPage {
    c: Chrome,
    index: u64,
    row: AuditRow,
    user_agent: String,
    entry: String,
    leaf_hash: String,
    /// 0 while the record is not yet in a checkpoint.
    size: u64,
    origin: String,
    proof_len: usize,
    proof_lines: String,
    proof_attr: String,
    checkpoint: String,
    public_key: String,
}

/// One record within the caller's audit scope, its inclusion proof and the signed checkpoint,
/// with "Verify in browser".
async fn audit_record_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    Path(index): Path<u64>,
) -> Response {
    let own = u.p.tenant.id.to_string();
    let scope = match st.iam.resolve(&u.p, &own, Action::AuditRead, &u.meta).await {
        Ok(t) => parapet_types::TenantCtx::new(t.id),
        Err(e) => return failure(e),
    };
    let record = match st
        .store
        .audit_range(scope, index, index.saturating_add(1), 1)
        .await
    {
        Ok(r) => r.into_iter().next(),
        Err(e) => return failure(e.into()),
    };
    let Some(record) = record else {
        return failure(IamError::NotFound(format!(
            "no audit record {index} that you may read"
        )));
    };
    let entry = record.canonical_json();
    let mut page = AuditRecordPage {
        c: u.chrome("Audit"),
        index,
        row: audit_row(&record),
        user_agent: record.event.user_agent.clone().unwrap_or_default(),
        leaf_hash: parapet_audit::leaf_hash(entry.as_bytes()).to_base64(),
        entry,
        size: 0,
        origin: st.audit.origin().to_string(),
        proof_len: 0,
        proof_lines: String::new(),
        proof_attr: String::new(),
        checkpoint: String::new(),
        public_key: st.audit.public_key(),
    };
    let size = match st.audit.size().await {
        Ok(s) => s,
        Err(e) => return log_failure(e),
    };
    if index < size {
        let proven = async {
            let (size, proof) = st.audit.inclusion_proof(index, Some(size)).await?;
            let cp = st.audit.checkpoint(Some(size)).await?;
            Ok::<_, parapet_audit::LogError>((size, proof, cp))
        };
        match proven.await {
            Ok((size, proof, cp)) => {
                let hashes: Vec<String> = proof.iter().map(|h| h.to_base64()).collect();
                page.size = size;
                page.proof_len = hashes.len();
                page.proof_lines = hashes.join("\n");
                page.proof_attr = hashes.join(" ");
                page.checkpoint = cp.signed;
            }
            Err(e) => return log_failure(e),
        }
    }
    render(StatusCode::OK, &page, u.set_csrf)
}

fn log_failure(e: parapet_audit::LogError) -> Response {
    match e {
        parapet_audit::LogError::Store(s) => failure(s.into()),
        parapet_audit::LogError::NotFound(m) => failure(IamError::NotFound(m)),
        e => failure(IamError::Internal(e.to_string())),
    }
}

#[derive(Template)]
#[template(path = "access_report.html")]
struct AccessReportPage {
    c: Chrome,
    tenant: String,
    r: parapet_audit::AccessReport,
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    tenant: Option<String>,
    inactive_days: Option<u32>,
}

async fn access_report_page(
    State(st): State<AppState>,
    u: ConsoleUser,
    axum::extract::Query(q): axum::extract::Query<ReportQuery>,
) -> Response {
    let tenant = q
        .tenant
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| u.p.tenant.name.clone());
    let params = crate::auditlog::ReportParams {
        since: None,
        until: None,
        inactive_days: q.inactive_days,
    };
    match crate::auditlog::access_report(&st, &u.p, &tenant, &params, &u.meta).await {
        Ok(r) => {
            let page = AccessReportPage {
                c: u.chrome("Audit"),
                tenant,
                r,
            };
            render(StatusCode::OK, &page, u.set_csrf)
        }
        Err(e) => api_failure(e),
    }
}

fn api_failure(e: crate::error::ApiError) -> Response {
    html_page(
        e.status,
        format!(
            "<!doctype html><title>Parapet</title><link rel=\"stylesheet\" \
             href=\"/console/static/parapet.css\"><main><p class=\"error\">{}</p>\
             <p><a href=\"/console\">Back to the console</a></p></main>",
            escape(&e.detail)
        ),
        None,
    )
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage {
    c: Chrome,
    idle_minutes: i64,
    sessions: Vec<crate::sessions::SessionView>,
    history: Vec<HistoryRow>,
}

struct HistoryRow {
    time: String,
    action: String,
    outcome: &'static str,
    source: String,
    user_agent: String,
}

/// The signed-in user's sessions and tokens, and their account history.
async fn sessions_page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    let sessions = match st.iam.own_sessions(&u.p).await {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let history = match st.iam.own_history(&u.p, 100).await {
        Ok(h) => h,
        Err(e) => return failure(e),
    };
    let page = SessionsPage {
        c: u.chrome("Sessions"),
        idle_minutes: st.iam.session_idle_secs() / 60,
        sessions: sessions
            .iter()
            .map(|s| crate::sessions::session_view(s, Some(u.p.credential)))
            .collect(),
        history: history
            .iter()
            .map(|r| HistoryRow {
                time: r.event.time.rfc3339(),
                action: r.event.action.clone(),
                outcome: r.event.outcome.as_str(),
                source: r.event.source_ip.clone().unwrap_or_default(),
                user_agent: r.event.user_agent.clone().unwrap_or_default(),
            })
            .collect(),
    };
    render(StatusCode::OK, &page, u.set_csrf)
}

/// Ends one of the signed-in user's own sessions or tokens.
async fn session_end(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let Ok(id) = id.parse::<uuid::Uuid>() else {
        return failure(IamError::NotFound("no such session".into()));
    };
    match st
        .iam
        .revoke_own_credential(&u.p, parapet_types::CredentialId(id), &u.meta)
        .await
    {
        Ok(()) => see_other("/console/sessions"),
        Err(e) => failure(e),
    }
}

/// Ends every session of a tenant's user (administrators).
async fn user_sessions_end(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path((tenant, user)): Path<(String, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    match st
        .iam
        .revoke_user_sessions(&u.p, &tenant, &user, false, &u.meta)
        .await
    {
        Ok(_) => see_other(&format!("/console/tenants/{tenant}/users?done=updated")),
        Err(e) => failure(e),
    }
}
