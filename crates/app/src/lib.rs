//! Parapet's HTTP layer: the REST API under `/api/v1`, the server-rendered console under
//! `/console`, health and metrics endpoints, security headers, and the listener (plain HTTP on
//! loopback or TLS with rustls). This is the only crate that knows HTTP.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use parapet_iam::IamService;
use parapet_store::Store;
use utoipa::OpenApi;

pub mod access;
pub mod account;
pub mod api;
pub mod approval;
pub mod assets;
pub mod auditlog;
pub mod backup;
pub mod backup_jobs;
pub mod console;
pub mod error;
pub mod extract;
pub mod group;
pub mod incident;
pub mod incident_drills;
pub mod incident_plans;
pub mod incident_sla;
pub mod kms;
pub mod kms_backup;
mod kms_console;
pub mod ldap;
pub mod mfa;
pub mod monitor;
pub mod monitor_alerts;
pub mod monitor_escalation;
pub mod monitor_health;
pub mod monitor_metrics;
pub mod notify;
pub mod oidc;
mod openapi;
pub mod sessions;
pub mod subaccount;
pub mod webauthn;
pub mod witness;

pub use error::{ApiError, Problem};

/// Largest request body accepted anywhere (JSON and forms).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Settings of the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct AppConfig {
    /// Whether the server is reached over TLS (cookies get `Secure`, responses get HSTS).
    pub tls: bool,
    /// The URL clients reach the server at (behind a proxy), e.g. `https://parapet.example`;
    /// OpenID Connect issuers are `<public_url>/oidc/<tenant>`. `None`: from the request's Host.
    pub public_url: Option<String>,
}

/// Shared state of every handler: one `Arc`, so that the per-request clones axum makes (one
/// per `State` extractor and stateful middleware) cost one reference count, not one per
/// service (measured: 3% of a key-service request's CPU went to cloning and dropping it).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    pub iam: Arc<IamService>,
    pub audit: Arc<parapet_audit::AuditLog>,
    pub inventory: Arc<parapet_inventory::Inventory>,
    pub kms: Arc<parapet_kms::KmsService>,
    pub store: Arc<dyn Store>,
    pub incident: Arc<parapet_incident::IncidentService>,
    pub notify: Arc<parapet_notify::NotifyService>,
    pub monitor: Arc<parapet_monitor::Monitor>,
    pub backup: Arc<parapet_backup_server::BackupService>,
    pub config: Arc<AppConfig>,
    pub metrics: Option<PrometheusHandle>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .clone()
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/auth/login", post(api::login))
        .route("/auth/logout", post(api::logout))
        .route("/auth/whoami", get(api::whoami))
        .route("/tenants", get(api::list_tenants).post(api::create_tenant))
        .route("/tenants/{tenant}", get(api::get_tenant))
        .route("/tenants/{tenant}/suspend", post(api::suspend_tenant))
        .route("/tenants/{tenant}/activate", post(api::activate_tenant))
        .route(
            "/tenants/{tenant}/users",
            get(api::list_users).post(api::create_user),
        )
        .route(
            "/tenants/{tenant}/users/{username}/disable",
            post(api::disable_user),
        )
        .route(
            "/tenants/{tenant}/users/{username}/enable",
            post(api::enable_user),
        )
        .route("/tenants/{tenant}/audit", get(api::list_audit))
        .route("/audit/public-key", get(auditlog::public_key))
        .route("/audit/checkpoint", get(auditlog::checkpoint))
        .route("/audit/checkpoints", get(auditlog::checkpoints))
        .route("/audit/tile/{*path}", get(auditlog::tile))
        .route("/audit/proofs/inclusion", get(auditlog::inclusion))
        .route("/audit/proofs/consistency", get(auditlog::consistency))
        .route("/audit/entries", get(auditlog::entries))
        .route(
            "/tenants/{tenant}/reports/access",
            get(auditlog::access_report_endpoint),
        )
        .route("/tokens", get(api::list_tokens).post(api::create_token))
        .route("/tokens/{id}", axum::routing::delete(api::revoke_token))
        .route("/me/sessions", get(sessions::own_sessions))
        .route("/me/history", get(sessions::own_history))
        .route("/tenants/{tenant}/sessions", get(sessions::tenant_sessions))
        .route(
            "/tenants/{tenant}/sessions/{id}",
            axum::routing::delete(sessions::revoke_session),
        )
        .route(
            "/tenants/{tenant}/users/{username}/revoke-sessions",
            post(sessions::revoke_user_sessions),
        )
        .route(
            "/tenants/{tenant}/assets",
            get(assets::list_assets).post(assets::create_asset),
        )
        .route(
            "/tenants/{tenant}/assets/import",
            post(assets::import).layer(DefaultBodyLimit::max(assets::IMPORT_LIMIT)),
        )
        .route("/tenants/{tenant}/assets-summary", get(assets::summary))
        .route(
            "/tenants/{tenant}/assets/{asset}",
            get(assets::get_asset)
                .put(assets::update_asset)
                .delete(assets::delete_asset),
        )
        .route(
            "/tenants/{tenant}/assets/{asset}/health",
            post(assets::set_health),
        )
        .route(
            "/tenants/{tenant}/assets/{asset}/related",
            get(assets::related),
        )
        .route("/auth/password", post(account::change_password))
        .route(
            "/tenants/{tenant}/account-policy",
            get(account::get_policy).put(account::set_policy),
        )
        .route("/tenants/{tenant}/accounts", get(account::list_accounts))
        .route(
            "/tenants/{tenant}/reports/accounts",
            get(account::account_report),
        )
        .route(
            "/tenants/{tenant}/users/{username}/unlock",
            post(account::unlock),
        )
        .route("/accounts/dormancy-sweep", post(account::dormancy_sweep))
        .route(
            "/tenants/{tenant}/approvals",
            get(approval::list).post(approval::create),
        )
        .route(
            "/tenants/{tenant}/approvals/{id}/approve",
            post(approval::approve),
        )
        .route(
            "/tenants/{tenant}/approvals/{id}/reject",
            post(approval::reject),
        )
        .route(
            "/tenants/{tenant}/users/{username}/role",
            post(approval::change_role),
        )
        .route("/me/mfa", get(mfa::status))
        .route("/me/mfa/totp", post(mfa::begin))
        .route("/me/mfa/totp/confirm", post(mfa::confirm))
        .route("/me/mfa/totp/remove", post(mfa::remove))
        .route(
            "/tenants/{tenant}/users/{username}/mfa/reset",
            post(mfa::reset),
        )
        .merge(incident::api_routes())
        .merge(notify::api_routes())
        .route("/openapi.json", get(openapi_json))
        .merge(kms::routes())
        .merge(kms_backup::routes())
        .merge(oidc::api_routes())
        .merge(access::api_routes())
        .merge(ldap::api_routes())
        .merge(group::api_routes())
        .merge(group::sub_account_routes())
        .merge(webauthn::api_routes())
        .merge(subaccount::api_routes())
        .merge(monitor::api_routes())
        .merge(monitor_health::api_routes())
        .merge(monitor_alerts::api_routes())
        .merge(monitor_metrics::api_routes())
        .merge(monitor_escalation::api_routes())
        .merge(backup::api_routes())
        .merge(backup_jobs::api_routes())
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_method_not_allowed);

    Router::new()
        .nest("/api/v1", api)
        .merge(console::routes())
        .merge(kms_console::routes())
        .merge(incident::console_routes())
        .merge(oidc::protocol_routes())
        .merge(access::console_routes())
        .merge(ldap::console_routes())
        .merge(webauthn::console_routes())
        .merge(subaccount::console_routes())
        .merge(group::console_routes())
        .merge(notify::console_routes())
        .merge(monitor::console_routes())
        .merge(monitor_health::console_routes())
        .merge(monitor_alerts::console_routes())
        .merge(monitor_metrics::console_routes())
        .merge(backup::console_routes())
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/console") }),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_endpoint))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .layer(middleware::from_fn(track_metrics))
        .with_state(state)
}

async fn openapi_json() -> Response {
    let mut doc = openapi::ApiDoc::openapi();
    doc.merge(incident::IncidentApi::openapi());
    doc.merge(incident_sla::IncidentSlaApi::openapi());
    doc.merge(oidc::OidcApi::openapi());
    doc.merge(webauthn::WebAuthnApi::openapi());
    doc.merge(subaccount::SubAccountManageApi::openapi());
    doc.merge(access::AccessApi::openapi());
    doc.merge(ldap::LdapApi::openapi());
    doc.merge(group::GroupApi::openapi());
    doc.merge(group::SubAccountApi::openapi());
    doc.merge(notify::NotifyApi::openapi());
    doc.merge(monitor::MonitorApi::openapi());
    doc.merge(monitor_health::HealthApi::openapi());
    doc.merge(monitor_alerts::AlertApi::openapi());
    doc.merge(monitor_metrics::MetricsApi::openapi());
    doc.merge(monitor_escalation::EscalationApi::openapi());
    doc.merge(backup::BackupApi::openapi());
    doc.merge(backup_jobs::BackupJobsApi::openapi());
    match doc.to_json() {
        Ok(s) => ([(header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot render the OpenAPI document: {e}"),
        )
        .into_response(),
    }
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

async fn api_method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not accept that method",
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such page")
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the database answers within two seconds and the key service, once initialized,
/// is unsealed.
async fn readyz(State(st): State<AppState>) -> Response {
    let ping = tokio::time::timeout(Duration::from_secs(2), st.store.ping()).await;
    let kms = st.kms.status();
    let kms_state = match (kms.initialized, kms.sealed) {
        (false, _) => "uninitialized",
        (true, true) => "sealed",
        (true, false) => "unsealed",
    };
    match ping {
        Ok(Ok(())) if kms.initialized && kms.sealed => ApiError::unavailable(format!(
            "the key service is sealed ({} of {} shares given): key custodians must unseal it \
             with 'parapet kms unseal'; key operations are refused until then",
            kms.progress, kms.threshold
        ))
        .into_response(),
        Ok(Ok(())) => axum::Json(serde_json::json!({
            "status": "ready",
            "database": st.store.backend(),
            "kms": kms_state,
        }))
        .into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::unavailable("the database is unavailable").into_response()
        }
        Err(_) => ApiError::unavailable("the database did not answer in time").into_response(),
    }
}

async fn metrics_endpoint(State(st): State<AppState>) -> Response {
    match &st.metrics {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => ApiError::unavailable("metrics are not enabled in this process").into_response(),
    }
}

/// Counts requests and their latency per route, method and status.
async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("parapet_http_requests_total", &labels).increment(1);
    metrics::histogram!("parapet_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    res
}

/// Content-Security-Policy of every response: only our own scripts (no inline code), no
/// framing, forms to ourselves only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` on our
    // own form posts, which the CSRF check must refuse. Other sites still get no referrer.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if st.config.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    res
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    /// PEM certificate chain and private key; plain HTTP when `None`.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the TLS certificate or key: {0}")]
    Tls(String),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound listener, not yet serving; `local_addr` is known (useful with port 0).
pub struct Bound {
    listener: std::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    pub local_addr: SocketAddr,
}

impl Bound {
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }
}

/// Binds the listener and loads TLS material.
pub async fn bind(listen: &Listen) -> Result<Bound, ServeError> {
    let listener = std::net::TcpListener::bind(listen.addr).map_err(|source| ServeError::Bind {
        addr: listen.addr,
        source,
    })?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let tls = match &listen.tls {
        None => None,
        Some((cert, key)) => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(|e| ServeError::Tls(e.to_string()))?,
            )
        }
    };
    Ok(Bound {
        listener,
        tls,
        local_addr,
    })
}

/// Serves `app` until `shutdown` completes, then drains in-flight requests (up to 30 s).
pub async fn serve(
    bound: Bound,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    match bound.tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(bound.listener)?;
            axum::serve(listener, make)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        Some(cfg) => {
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                h.graceful_shutdown(Some(Duration::from_secs(30)));
            });
            axum_server::from_tcp_rustls(bound.listener, cfg)?
                .handle(handle)
                .serve(make)
                .await?;
        }
    }
    Ok(())
}
