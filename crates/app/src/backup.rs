//! Server-side backup management over HTTP (X.1642 8.10, 7.2.2.2(7)): a tenant's backup policies,
//! the reports of its backup runs and restore tests (evidence), its compliance and findings under
//! `/api/v1/tenants/{tenant}/backup/…`, the provider's overview at `/api/v1/backup/compliance`,
//! and the console pages `/console/backup` (provider: every tenant's compliance) and
//! `/console/tenants/{tenant}/backup` (policy editor, compliance, runs with an SVG chart of size
//! and duration, restore tests, findings). Decisions are [`parapet_backup_server::BackupService`]'s
//! after `authz` (`BackupRead`, `BackupPolicyWrite`, `BackupReport`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use parapet_backup_server::{
    FindingView as DomainFinding, Policy, PolicyCompliance, PolicySpec, Report, ReportInput,
    Retention,
};
use parapet_iam::IamError;
use parapet_iam::authz::{Action, authorize};
use parapet_types::{TenantKind, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::AppState;
use crate::console::{Chrome, ConsoleUser, csrf_ok, failure, forbidden_form, form_error, render};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta};

/// The API routes (nested under `/api/v1`).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/backup/policies", get(list_policies))
        .route(
            "/tenants/{tenant}/backup/policies/{name}",
            get(get_policy).put(set_policy).delete(delete_policy),
        )
        .route(
            "/tenants/{tenant}/backup/reports",
            get(list_reports).post(add_report),
        )
        .route("/tenants/{tenant}/backup/compliance", get(compliance))
        .route("/tenants/{tenant}/backup/findings", get(findings))
        .route("/backup/compliance", get(overview))
}

/// The console routes.
pub fn console_routes() -> Router<AppState> {
    Router::new()
        .route("/console/backup", get(own_page))
        .route(
            "/console/tenants/{tenant}/backup",
            get(page).post(console_set),
        )
        .route(
            "/console/tenants/{tenant}/backup/jobs",
            axum::routing::post(console_set_job),
        )
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_policies,
        get_policy,
        set_policy,
        delete_policy,
        list_reports,
        add_report,
        compliance,
        findings,
        overview
    ),
    components(schemas(
        PolicyView,
        PolicyInput,
        RetentionView,
        ReportView,
        ReportBody,
        ComplianceView,
        FindingView
    ))
)]
pub struct BackupApi;

/// How many snapshots prune keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionView {
    #[serde(default)]
    pub last: u32,
    #[serde(default)]
    pub hourly: u32,
    #[serde(default)]
    pub daily: u32,
    #[serde(default)]
    pub weekly: u32,
    #[serde(default)]
    pub monthly: u32,
    #[serde(default)]
    pub yearly: u32,
}

impl From<&Retention> for RetentionView {
    fn from(r: &Retention) -> Self {
        RetentionView {
            last: r.last,
            hourly: r.hourly,
            daily: r.daily,
            weekly: r.weekly,
            monthly: r.monthly,
            yearly: r.yearly,
        }
    }
}

impl From<RetentionView> for Retention {
    fn from(r: RetentionView) -> Self {
        Retention {
            last: r.last,
            hourly: r.hourly,
            daily: r.daily,
            weekly: r.weekly,
            monthly: r.monthly,
            yearly: r.yearly,
        }
    }
}

/// A backup policy: the terms agreed for a tenant (`default`) or one of its services.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub tenant: String,
    pub name: String,
    pub version: i64,
    pub rpo_secs: u64,
    pub rto_secs: u64,
    pub retention: RetentionView,
    /// The `parapet backup prune` options that enforce the retention.
    pub prune: String,
    pub copies: u32,
    pub onsite: bool,
    pub offsite: bool,
    pub encryption: bool,
    /// Seconds between scheduled backups (the RPO when 0 was given).
    pub schedule_secs: u64,
    /// Daily window (UTC) in which backups may run, `HH:MM-HH:MM`.
    pub window: Option<String>,
    /// Seconds between required restore tests (0: none).
    pub restore_test_secs: u64,
    /// What is backed up: `file`, `vm-image`, `vm-snapshot` (X.1642 8.10-13).
    pub levels: Vec<String>,
    /// Unwise terms, e.g. VM snapshots only (X.1642 8.10-20: a snapshot is not a backup).
    pub warnings: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub updated_by: String,
}

fn policy_view(p: &Policy) -> PolicyView {
    PolicyView {
        tenant: p.tenant.clone(),
        name: p.name.clone(),
        version: p.version,
        rpo_secs: p.spec.rpo_secs,
        rto_secs: p.spec.rto_secs,
        retention: (&p.spec.retention).into(),
        prune: p.spec.retention.prune_args(),
        copies: p.spec.copies,
        onsite: p.spec.onsite,
        offsite: p.spec.offsite,
        encryption: p.spec.encryption,
        schedule_secs: p.spec.interval_secs(),
        window: p.spec.window.clone(),
        restore_test_secs: p.spec.restore_test_secs,
        levels: p.spec.levels.clone(),
        warnings: p.spec.warnings(),
        created_at: p.created_at.rfc3339(),
        updated_at: p.updated_at.rfc3339(),
        updated_by: p.updated_by.clone(),
    }
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}

/// The terms of a policy. `version`, when given, must be the version read (0: new).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub rpo_secs: u64,
    pub rto_secs: u64,
    #[serde(default)]
    pub retention: RetentionView,
    #[serde(default = "one")]
    pub copies: u32,
    #[serde(default = "yes")]
    pub onsite: bool,
    #[serde(default)]
    pub offsite: bool,
    #[serde(default = "yes")]
    pub encryption: bool,
    #[serde(default)]
    pub schedule_secs: u64,
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub restore_test_secs: u64,
    /// What is backed up: `file`, `vm-image`, `vm-snapshot` (default: `file`).
    #[serde(default = "file_levels")]
    pub levels: Vec<String>,
    #[serde(default)]
    pub version: Option<i64>,
}

fn file_levels() -> Vec<String> {
    vec!["file".into()]
}

impl PolicyInput {
    fn split(self) -> (PolicySpec, Option<i64>) {
        (
            PolicySpec {
                rpo_secs: self.rpo_secs,
                rto_secs: self.rto_secs,
                retention: self.retention.into(),
                copies: self.copies,
                onsite: self.onsite,
                offsite: self.offsite,
                encryption: self.encryption,
                schedule_secs: self.schedule_secs,
                window: self.window.filter(|w| !w.trim().is_empty()),
                restore_test_secs: self.restore_test_secs,
                levels: self.levels,
            },
            self.version,
        )
    }
}

/// A report of a backup run, copy, verification or restore test.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// The policy it carries out (`default` when absent).
    #[serde(default)]
    pub policy: Option<String>,
    /// `backup`, `copy`, `verify` or `restore-test`.
    pub kind: String,
    pub ok: bool,
    /// `on-site` or `off-site` (default: off-site for URLs, on-site for paths).
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub snapshot: Option<String>,
    /// The repository (secrets in it are removed).
    pub repository: String,
    #[serde(default)]
    pub bytes_added: u64,
    #[serde(default)]
    pub total_bytes: u64,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub duration_ms: u64,
    /// The operator key that signed the snapshot (`ed25519:…`).
    #[serde(default)]
    pub signer: Option<String>,
    #[serde(default = "yes")]
    pub encrypted: bool,
    #[serde(default)]
    pub error: Option<String>,
}

/// A stored report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportView {
    pub id: String,
    pub policy: String,
    pub kind: String,
    pub ok: bool,
    pub site: String,
    pub at: String,
    pub snapshot: Option<String>,
    pub repository: String,
    pub bytes_added: u64,
    pub total_bytes: u64,
    pub files: u64,
    pub duration_ms: u64,
    pub signer: Option<String>,
    pub encrypted: bool,
    pub error: Option<String>,
    pub reporter: String,
}

fn report_view(r: &Report) -> ReportView {
    ReportView {
        id: r.id.clone(),
        policy: r.policy.clone(),
        kind: r.kind.clone(),
        ok: r.ok,
        site: r.site.clone(),
        at: r.at.rfc3339(),
        snapshot: r.snapshot.clone(),
        repository: r.repository.clone(),
        bytes_added: r.bytes_added,
        total_bytes: r.total_bytes,
        files: r.files,
        duration_ms: r.duration_ms,
        signer: r.signer.clone(),
        encrypted: r.encrypted,
        error: r.error.clone(),
        reporter: r.reporter.clone(),
    }
}

/// A term of a policy not met now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FindingView {
    pub id: Option<String>,
    pub tenant: String,
    pub policy: String,
    /// `rpo-exceeded`, `offsite-missing`, `onsite-missing`, `copies-missing`,
    /// `restore-test-overdue`, `restore-test-failed`, `rto-exceeded`, `unencrypted`.
    pub kind: String,
    pub detail: String,
    pub opened_at: Option<String>,
    pub resolved_at: Option<String>,
}

fn finding_view(f: &DomainFinding) -> FindingView {
    FindingView {
        id: Some(f.id.clone()),
        tenant: f.tenant.clone(),
        policy: f.policy.clone(),
        kind: f.kind.clone(),
        detail: f.detail.clone(),
        opened_at: Some(f.opened_at.rfc3339()),
        resolved_at: f.resolved_at.map(Timestamp::rfc3339),
    }
}

/// A policy's compliance now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ComplianceView {
    pub tenant: String,
    pub policy: String,
    pub compliant: bool,
    pub findings: Vec<FindingView>,
    pub last_backup_at: Option<String>,
    pub last_restore_test_at: Option<String>,
    /// The measured duration of the last successful restore test (the achieved RTO).
    pub achieved_rto_ms: Option<u64>,
    pub rpo_secs: u64,
    pub rto_secs: u64,
    /// The policy's backup levels.
    pub levels: Vec<String>,
    /// Unwise terms of the policy (X.1642 8.10-20).
    pub warnings: Vec<String>,
}

fn compliance_view(c: &PolicyCompliance) -> ComplianceView {
    ComplianceView {
        tenant: c.tenant.clone(),
        policy: c.policy.clone(),
        compliant: c.compliant,
        findings: c
            .findings
            .iter()
            .map(|f| FindingView {
                id: None,
                tenant: c.tenant.clone(),
                policy: c.policy.clone(),
                kind: f.kind.clone(),
                detail: f.detail.clone(),
                opened_at: None,
                resolved_at: None,
            })
            .collect(),
        last_backup_at: c.last_backup_at.map(Timestamp::rfc3339),
        last_restore_test_at: c.last_restore_test_at.map(Timestamp::rfc3339),
        achieved_rto_ms: c.achieved_rto_ms,
        rpo_secs: c.rpo_secs,
        rto_secs: c.rto_secs,
        levels: c.levels.clone(),
        warnings: c.warnings.clone(),
    }
}

/// A tenant's backup policies, by name.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/backup/policies", tag = "backup",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [PolicyView]), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_policies(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<PolicyView>>> {
    let list = st.backup.list_policies(&p, &tenant, &meta).await?;
    Ok(Json(list.iter().map(policy_view).collect()))
}

/// One backup policy.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/backup/policies/{name}", tag = "backup",
    params(("tenant" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = PolicyView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_policy(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult<Json<PolicyView>> {
    let pol = st.backup.get_policy(&p, &tenant, &name, &meta).await?;
    Ok(Json(policy_view(&pol)))
}

/// Set a backup policy (provider staff): creates it or replaces it with a new version.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/backup/policies/{name}", tag = "backup",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = PolicyInput,
    responses((status = 200, body = PolicyView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_policy(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<PolicyInput>,
) -> ApiResult<Json<PolicyView>> {
    let (spec, version) = body.split();
    let pol = st
        .backup
        .set_policy(&p, &tenant, &name, spec, version, &meta)
        .await?;
    Ok(Json(policy_view(&pol)))
}

/// Remove a backup policy (its reports stay as evidence).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/backup/policies/{name}", tag = "backup",
    params(("tenant" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_policy(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.backup.delete_policy(&p, &tenant, &name, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    pub policy: Option<String>,
    pub limit: Option<u32>,
}

/// A tenant's reports, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/backup/reports", tag = "backup",
    params(("tenant" = String, Path), ReportParams),
    responses((status = 200, body = [ReportView]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_reports(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<Json<Vec<ReportView>>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let list = st
        .backup
        .reports(&p, &tenant, q.policy.as_deref(), limit, &meta)
        .await?;
    Ok(Json(list.iter().map(report_view).collect()))
}

/// Report a backup run, copy, verification or restore test (tokens with the `backup` scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/backup/reports", tag = "backup",
    params(("tenant" = String, Path)), request_body = ReportBody,
    responses((status = 201, body = ReportView), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_report(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(b): ApiJson<ReportBody>,
) -> ApiResult<(StatusCode, Json<ReportView>)> {
    let input = ReportInput {
        policy: b.policy,
        kind: b.kind,
        ok: b.ok,
        site: b.site,
        snapshot: b.snapshot,
        repository: b.repository,
        bytes_added: b.bytes_added,
        total_bytes: b.total_bytes,
        files: b.files,
        duration_ms: b.duration_ms,
        signer: b.signer,
        encrypted: b.encrypted,
        error: b.error,
    };
    let r = st.backup.report(&p, &tenant, input, &meta).await?;
    Ok((StatusCode::CREATED, Json(report_view(&r))))
}

/// A tenant's compliance with each of its backup policies now.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/backup/compliance", tag = "backup",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [ComplianceView]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn compliance(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<ComplianceView>>> {
    let list = st.backup.compliance(&p, &tenant, &meta).await?;
    Ok(Json(list.iter().map(compliance_view).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FindingParams {
    /// Also resolved findings.
    #[serde(default)]
    pub all: bool,
}

/// Findings the compliance job opened for a tenant (open ones unless `all`), newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/backup/findings", tag = "backup",
    params(("tenant" = String, Path), FindingParams),
    responses((status = 200, body = [FindingView]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn findings(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<FindingParams>,
) -> ApiResult<Json<Vec<FindingView>>> {
    let list = st.backup.findings(&p, &tenant, !q.all, &meta).await?;
    Ok(Json(list.iter().map(finding_view).collect()))
}

/// Every tenant's backup compliance (provider staff).
#[utoipa::path(get, path = "/api/v1/backup/compliance", tag = "backup",
    responses((status = 200, body = [ComplianceView]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn overview(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> ApiResult<Json<Vec<ComplianceView>>> {
    if p.tenant.kind != TenantKind::Provider {
        return Err(ApiError::from(IamError::Forbidden(
            "the overview of every tenant is for provider staff".into(),
        )));
    }
    let list = st.backup.compliance_overview(&p, &meta).await?;
    Ok(Json(list.iter().map(compliance_view).collect()))
}

// ---------------------------------------------------------------------------------------------
// Console.

#[derive(Template)]
#[template(path = "backup_overview.html")]
struct OverviewPage {
    c: Chrome,
    rows: Vec<ComplianceView>,
    tenants: Vec<String>,
}

#[derive(Template)]
#[template(path = "backup_page.html")]
struct TenantPage {
    c: Chrome,
    tenant: String,
    policies: Vec<PolicyView>,
    compliance: Vec<ComplianceView>,
    runs: Vec<ReportView>,
    tests: Vec<ReportView>,
    findings: Vec<FindingView>,
    jobs: Vec<crate::backup_jobs::JobView>,
    can_manage: bool,
    chart_svg: String,
}

async fn own_page(State(st): State<AppState>, u: ConsoleUser) -> Response {
    if u.p.tenant.kind != TenantKind::Provider {
        return Redirect::to(&format!("/console/tenants/{}/backup", u.p.tenant.name))
            .into_response();
    }
    let rows = match st.backup.compliance_overview(&u.p, &u.meta).await {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    let tenants = match st.iam.list_tenants(&u.p, None, 1000).await {
        Ok(list) => list.into_iter().map(|t| t.name).collect(),
        Err(e) => return failure(e),
    };
    let page = OverviewPage {
        c: u.chrome("Backup"),
        rows: rows.iter().map(compliance_view).collect(),
        tenants,
    };
    render(StatusCode::OK, &page, u.set_csrf.clone())
}

/// Bars of the size added (top) and the duration (bottom) of each backup run, oldest left.
fn runs_svg(runs: &[ReportView]) -> String {
    let points: Vec<&ReportView> = runs.iter().rev().filter(|r| r.kind == "backup").collect();
    if points.is_empty() {
        return String::new();
    }
    let max_size = points
        .iter()
        .map(|r| r.total_bytes)
        .max()
        .unwrap_or(1)
        .max(1);
    let max_ms = points
        .iter()
        .map(|r| r.duration_ms)
        .max()
        .unwrap_or(1)
        .max(1);
    let w = 14usize;
    let width = points.len() * w + 70;
    let mut svg = format!(
        "<svg class=\"chart backup\" role=\"img\" aria-label=\"backup size and duration per run\" \
         width=\"{width}\" height=\"240\" viewBox=\"0 0 {width} 240\" \
         xmlns=\"http://www.w3.org/2000/svg\"><text x=\"0\" y=\"10\" font-size=\"10\">{:.1} MiB</text>\
         <text x=\"0\" y=\"130\" font-size=\"10\">{:.1} s</text>",
        max_size as f64 / 1_048_576.0,
        max_ms as f64 / 1000.0
    );
    for (i, r) in points.iter().enumerate() {
        let x = 60 + i * w;
        let hs = ((r.total_bytes as f64 / max_size as f64) * 100.0)
            .round()
            .max(1.0);
        let hd = ((r.duration_ms as f64 / max_ms as f64) * 100.0)
            .round()
            .max(1.0);
        let class = if r.ok { "ok" } else { "failed" };
        svg.push_str(&format!(
            "<rect class=\"size {class}\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{hs}\"><title>{}: \
             {} bytes</title></rect><rect class=\"duration {class}\" x=\"{x}\" y=\"{}\" width=\"{}\" \
             height=\"{hd}\"><title>{}: {:.3} s</title></rect>",
            110.0 - hs,
            w - 2,
            crate::console::escape(&r.at),
            r.total_bytes,
            230.0 - hd,
            w - 2,
            crate::console::escape(&r.at),
            r.duration_ms as f64 / 1000.0
        ));
    }
    svg.push_str(
        "<line x1=\"58\" y1=\"110\" x2=\"100%\" y2=\"110\" stroke=\"currentColor\"/>\
         <line x1=\"58\" y1=\"230\" x2=\"100%\" y2=\"230\" stroke=\"currentColor\"/></svg>",
    );
    svg
}

async fn page_view(
    st: &AppState,
    u: &ConsoleUser,
    tenant: &str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let t = match st
        .iam
        .resolve(&u.p, tenant, Action::BackupRead, &u.meta)
        .await
    {
        Ok(t) => t,
        Err(e) => return failure(e),
    };
    let name = t.name.clone();
    let (policies, compliance, reports, findings) = match (
        st.backup.list_policies(&u.p, &name, &u.meta).await,
        st.backup.compliance(&u.p, &name, &u.meta).await,
        st.backup.reports(&u.p, &name, None, 200, &u.meta).await,
        st.backup.findings(&u.p, &name, false, &u.meta).await,
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return failure(e),
    };
    let jobs = match st.backup.list_jobs(&u.p, &name, &u.meta).await {
        Ok(j) => j,
        Err(e) => return failure(e),
    };
    let mut c = u.chrome("Backup");
    let status = match error {
        Some((s, m)) => {
            c.error = Some(m);
            s
        }
        None => StatusCode::OK,
    };
    let reports: Vec<ReportView> = reports.iter().map(report_view).collect();
    let page = TenantPage {
        c,
        tenant: name,
        chart_svg: runs_svg(&reports),
        policies: policies.iter().map(policy_view).collect(),
        compliance: compliance.iter().map(compliance_view).collect(),
        tests: reports
            .iter()
            .filter(|r| r.kind == "restore-test")
            .map(clone_view)
            .collect(),
        runs: reports
            .into_iter()
            .filter(|r| r.kind != "restore-test")
            .collect(),
        findings: findings.iter().map(finding_view).collect(),
        jobs: jobs.iter().map(crate::backup_jobs::job_view).collect(),
        can_manage: authorize(&u.p, Action::BackupPolicyWrite, &t).is_ok(),
    };
    render(status, &page, u.set_csrf.clone())
}

fn clone_view(r: &ReportView) -> ReportView {
    ReportView {
        id: r.id.clone(),
        policy: r.policy.clone(),
        kind: r.kind.clone(),
        ok: r.ok,
        site: r.site.clone(),
        at: r.at.clone(),
        snapshot: r.snapshot.clone(),
        repository: r.repository.clone(),
        bytes_added: r.bytes_added,
        total_bytes: r.total_bytes,
        files: r.files,
        duration_ms: r.duration_ms,
        signer: r.signer.clone(),
        encrypted: r.encrypted,
        error: r.error.clone(),
        reporter: r.reporter.clone(),
    }
}

async fn page(State(st): State<AppState>, u: ConsoleUser, Path(tenant): Path<String>) -> Response {
    page_view(&st, &u, &tenant, None).await
}

fn num<T: std::str::FromStr + Default>(s: &str) -> Result<T, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(T::default());
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not a whole number"))
}

#[derive(Debug, Deserialize)]
struct PolicyForm {
    #[serde(default)]
    csrf: String,
    name: String,
    /// Hours.
    rpo_hours: String,
    /// Minutes.
    rto_minutes: String,
    #[serde(default)]
    keep_last: String,
    #[serde(default)]
    keep_daily: String,
    #[serde(default)]
    keep_weekly: String,
    #[serde(default)]
    keep_monthly: String,
    #[serde(default)]
    keep_yearly: String,
    #[serde(default)]
    copies: String,
    #[serde(default)]
    onsite: Option<String>,
    #[serde(default)]
    offsite: Option<String>,
    #[serde(default)]
    window: String,
    /// Days.
    #[serde(default)]
    restore_test_days: String,
    #[serde(default)]
    level_file: Option<String>,
    #[serde(default)]
    level_vm_image: Option<String>,
    #[serde(default)]
    level_vm_snapshot: Option<String>,
}

fn spec_of(f: &PolicyForm) -> Result<PolicySpec, String> {
    let hours: u64 = num(&f.rpo_hours)?;
    let minutes: u64 = num(&f.rto_minutes)?;
    let days: u64 = num(&f.restore_test_days)?;
    let copies: u32 = num(&f.copies)?;
    Ok(PolicySpec {
        rpo_secs: hours.saturating_mul(3600),
        rto_secs: minutes.saturating_mul(60),
        retention: Retention {
            last: num(&f.keep_last)?,
            hourly: 0,
            daily: num(&f.keep_daily)?,
            weekly: num(&f.keep_weekly)?,
            monthly: num(&f.keep_monthly)?,
            yearly: num(&f.keep_yearly)?,
        },
        copies: copies.max(1),
        onsite: f.onsite.is_some(),
        offsite: f.offsite.is_some(),
        encryption: true,
        schedule_secs: 0,
        window: Some(f.window.trim().to_string()).filter(|w| !w.is_empty()),
        restore_test_secs: days.saturating_mul(86_400),
        levels: {
            let l: Vec<String> = [
                (&f.level_file, "file"),
                (&f.level_vm_image, "vm-image"),
                (&f.level_vm_snapshot, "vm-snapshot"),
            ]
            .iter()
            .filter(|(on, _)| on.is_some())
            .map(|(_, l)| (*l).to_string())
            .collect();
            // A form without level boxes (an older page) backs up files.
            if l.is_empty() { vec!["file".into()] } else { l }
        },
    })
}

async fn console_set(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    Form(f): Form<PolicyForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let spec = match spec_of(&f) {
        Ok(s) => s,
        Err(m) => {
            return page_view(
                &st,
                &u,
                &tenant,
                Some((StatusCode::UNPROCESSABLE_ENTITY, m)),
            )
            .await;
        }
    };
    match st
        .backup
        .set_policy(&u.p, &tenant, &f.name, spec, None, &u.meta)
        .await
    {
        Ok(_) => page_view(&st, &u, &tenant, None).await,
        Err(e) => match form_error(&e) {
            Some(err) => page_view(&st, &u, &tenant, Some(err)).await,
            None => failure(e),
        },
    }
}

#[derive(Debug, Deserialize)]
struct JobForm {
    #[serde(default)]
    csrf: String,
    name: String,
    agent: String,
    #[serde(default)]
    policy: String,
    /// One path per line.
    #[serde(default)]
    paths: String,
    /// One image per line.
    #[serde(default)]
    vm_images: String,
    #[serde(default)]
    onsite: String,
    #[serde(default)]
    offsite: String,
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

async fn console_set_job(
    State(st): State<AppState>,
    headers: HeaderMap,
    u: ConsoleUser,
    Path(tenant): Path<String>,
    Form(f): Form<JobForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return forbidden_form();
    }
    let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let spec = parapet_backup_server::JobSpec {
        agent: f.agent.clone(),
        policy: opt(&f.policy).unwrap_or_else(|| "default".into()),
        paths: lines(&f.paths),
        vm_images: lines(&f.vm_images),
        onsite: opt(&f.onsite),
        offsite: opt(&f.offsite),
    };
    match st
        .backup
        .set_job(&u.p, &tenant, &f.name, spec, None, &u.meta)
        .await
    {
        Ok(_) => page_view(&st, &u, &tenant, None).await,
        Err(e) => match form_error(&e) {
            Some(err) => page_view(&st, &u, &tenant, Some(err)).await,
            None => failure(e),
        },
    }
}
