//! Backup jobs over HTTP (X.1642 8.10(1), 8.10(2)): provider staff assign a policy's sources and
//! repositories to an agent (`/api/v1/tenants/{tenant}/backup/jobs/{name}`); the agent, with a
//! token of scope `backup`, polls its jobs (`…/backup/agents/{agent}/jobs`), claims a due one
//! with a lease (`…/jobs/{name}/claim`: 409 while another agent holds it or nothing is due) and
//! ends the run with each step's outcome (`…/jobs/{name}/finish`). The provider sees every
//! tenant's jobs at `/api/v1/backup/jobs`. Decisions are
//! [`parapet_backup_server::BackupService`]'s after `authz`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use parapet_backup_server::{Claim, Job, JobSpec, StepOutcome};
use parapet_iam::IamError;
use parapet_types::{TenantKind, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};

/// The API routes (nested under `/api/v1`).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/backup/jobs", get(list_jobs))
        .route(
            "/tenants/{tenant}/backup/jobs/{name}",
            get(get_job).put(set_job).delete(delete_job),
        )
        .route(
            "/tenants/{tenant}/backup/jobs/{name}/claim",
            post(claim_job),
        )
        .route(
            "/tenants/{tenant}/backup/jobs/{name}/finish",
            post(finish_job),
        )
        .route(
            "/tenants/{tenant}/backup/jobs/{name}/renew",
            post(renew_job),
        )
        .route(
            "/tenants/{tenant}/backup/agents/{agent}/jobs",
            get(agent_jobs),
        )
        .route("/backup/jobs", get(jobs_overview))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_jobs,
        get_job,
        set_job,
        delete_job,
        agent_jobs,
        claim_job,
        renew_job,
        finish_job,
        jobs_overview
    ),
    components(schemas(
        JobView,
        JobInput,
        StepView,
        ClaimInput,
        ClaimView,
        FinishInput,
        RenewInput,
        RenewView
    ))
)]
pub struct BackupJobsApi;

/// How a step of a run went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepView {
    /// `backup`, `copy`, `prune` or `restore-test`.
    pub step: String,
    pub ok: bool,
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub error: Option<String>,
}

fn step_view(s: &StepOutcome) -> StepView {
    StepView {
        step: s.step.clone(),
        ok: s.ok,
        snapshot: s.snapshot.clone(),
        duration_ms: s.duration_ms,
        error: s.error.clone(),
    }
}

/// A backup job: what an agent backs up for a policy, where, its state and what is due.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub tenant: String,
    pub name: String,
    pub version: i64,
    /// The agent (host) that runs it.
    pub agent: String,
    pub policy: String,
    /// File trees (file-level backup).
    pub paths: Vec<String>,
    /// VM disk images (VM-level backup).
    pub vm_images: Vec<String>,
    pub onsite: Option<String>,
    pub offsite: Option<String>,
    /// `running`, `overdue`, `due`, `failed`, `ok`, `scheduled` or `no-policy`.
    pub status: String,
    pub last_run_at: Option<String>,
    pub last_run_ok: Option<bool>,
    pub last_backup_at: Option<String>,
    pub last_snapshot: Option<String>,
    pub last_restore_test_at: Option<String>,
    pub runs: u64,
    pub last_steps: Vec<StepView>,
    /// The steps due now.
    pub due_steps: Vec<String>,
    pub next_due_at: Option<String>,
    pub next_backup_at: Option<String>,
    pub next_restore_test_at: Option<String>,
    pub overdue: bool,
    pub lease_agent: Option<String>,
    pub lease_until: Option<String>,
    pub updated_at: String,
    pub updated_by: String,
}

pub(crate) fn job_view(j: &Job) -> JobView {
    let status = if j.lease_until.is_some() {
        "running"
    } else if j.due.is_none() {
        "no-policy"
    } else if j.overdue {
        "overdue"
    } else if j.due.as_ref().is_some_and(|d| !d.steps.is_empty()) {
        "due"
    } else if j.state.last_run_ok == Some(false) {
        "failed"
    } else if j.state.last_run_ok == Some(true) {
        "ok"
    } else {
        "scheduled"
    };
    JobView {
        tenant: j.tenant.clone(),
        name: j.name.clone(),
        version: j.version,
        agent: j.spec.agent.clone(),
        policy: j.spec.policy.clone(),
        paths: j.spec.paths.clone(),
        vm_images: j.spec.vm_images.clone(),
        onsite: j.spec.onsite.clone(),
        offsite: j.spec.offsite.clone(),
        status: status.into(),
        last_run_at: j.state.last_run_at.map(Timestamp::rfc3339),
        last_run_ok: j.state.last_run_ok,
        last_backup_at: j.state.last_backup_at.map(Timestamp::rfc3339),
        last_snapshot: j.state.last_snapshot.clone(),
        last_restore_test_at: j.state.last_restore_test_at.map(Timestamp::rfc3339),
        runs: j.state.runs,
        last_steps: j.state.last_steps.iter().map(step_view).collect(),
        due_steps: j.due.as_ref().map(|d| d.steps.clone()).unwrap_or_default(),
        next_due_at: j.due.as_ref().map(|d| d.next_due_at.rfc3339()),
        next_backup_at: j.due.as_ref().map(|d| d.next_backup_at.rfc3339()),
        next_restore_test_at: j
            .due
            .as_ref()
            .and_then(|d| d.next_restore_test_at)
            .map(Timestamp::rfc3339),
        overdue: j.overdue,
        lease_agent: j.lease_agent.clone(),
        lease_until: j.lease_until.map(Timestamp::rfc3339),
        updated_at: j.updated_at.rfc3339(),
        updated_by: j.updated_by.clone(),
    }
}

/// A job's definition. `version`, when given, must be the version read (0: new).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    pub agent: String,
    #[serde(default = "default_policy")]
    pub policy: String,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub vm_images: Vec<String>,
    #[serde(default)]
    pub onsite: Option<String>,
    #[serde(default)]
    pub offsite: Option<String>,
    #[serde(default)]
    pub version: Option<i64>,
}

fn default_policy() -> String {
    "default".into()
}

/// An agent claims a due job.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimInput {
    pub agent: String,
    /// How long the lease lasts (60 s to 7 days; default 2 hours).
    #[serde(default)]
    pub lease_secs: Option<u64>,
}

/// A claimed job: the steps to run and the policy's terms they follow.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClaimView {
    pub job: JobView,
    pub lease: String,
    pub lease_until: String,
    /// The steps to run, in order: `backup`, `copy`, `prune`, `restore-test`.
    pub steps: Vec<String>,
    /// The `parapet backup prune` options of the policy's retention.
    pub prune: String,
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    pub window: Option<String>,
    pub rto_secs: u64,
}

fn claim_view(c: &Claim) -> ClaimView {
    let r = &c.policy.retention;
    ClaimView {
        job: job_view(&c.job),
        lease: c.lease.clone(),
        lease_until: c.lease_until.rfc3339(),
        steps: c.steps.clone(),
        prune: r.prune_args(),
        keep_last: r.last,
        keep_hourly: r.hourly,
        keep_daily: r.daily,
        keep_weekly: r.weekly,
        keep_monthly: r.monthly,
        keep_yearly: r.yearly,
        window: c.policy.window.clone(),
        rto_secs: c.policy.rto_secs,
    }
}

/// The end of a run: the lease and each step's outcome.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishInput {
    pub lease: String,
    pub steps: Vec<StepView>,
}

/// A tenant's backup jobs with their state and what is due.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/backup/jobs", tag = "backup",
    params(("tenant" = String, Path)),
    responses((status = 200, body = [JobView]), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_jobs(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<JobView>>> {
    let list = st.backup.list_jobs(&p, &tenant, &meta).await?;
    Ok(Json(list.iter().map(job_view).collect()))
}

/// One backup job.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/backup/jobs/{name}", tag = "backup",
    params(("tenant" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_job(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult<Json<JobView>> {
    let j = st.backup.get_job(&p, &tenant, &name, &meta).await?;
    Ok(Json(job_view(&j)))
}

/// Assign a policy's sources and repositories to an agent (provider staff): creates the job or
/// changes it (its state is kept). Repository passwords never come here: they stay with the
/// agent.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/backup/jobs/{name}", tag = "backup",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = JobInput,
    responses((status = 200, body = JobView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_job(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
    ApiJson(b): ApiJson<JobInput>,
) -> ApiResult<Json<JobView>> {
    let spec = JobSpec {
        agent: b.agent,
        policy: b.policy,
        paths: b.paths,
        vm_images: b.vm_images,
        onsite: b.onsite.filter(|s| !s.trim().is_empty()),
        offsite: b.offsite.filter(|s| !s.trim().is_empty()),
    };
    let j = st
        .backup
        .set_job(&p, &tenant, &name, spec, b.version, &meta)
        .await?;
    Ok(Json(job_view(&j)))
}

/// Remove a backup job (its reports stay as evidence).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/backup/jobs/{name}", tag = "backup",
    params(("tenant" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_job(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.backup.delete_job(&p, &tenant, &name, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The jobs of one agent, with what is due now (the agent's poll; token scope `backup`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/backup/agents/{agent}/jobs", tag = "backup",
    params(("tenant" = String, Path), ("agent" = String, Path)),
    responses((status = 200, body = [JobView]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn agent_jobs(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, agent)): Path<(String, String)>,
) -> ApiResult<Json<Vec<JobView>>> {
    let list = st.backup.agent_jobs(&p, &tenant, &agent, &meta).await?;
    Ok(Json(list.iter().map(job_view).collect()))
}

/// Claim a due job with a lease (token scope `backup`): 409 while another agent holds it, or
/// when nothing of it is due.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/backup/jobs/{name}/claim", tag = "backup",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = ClaimInput,
    responses((status = 200, body = ClaimView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn claim_job(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
    ApiJson(b): ApiJson<ClaimInput>,
) -> ApiResult<Json<ClaimView>> {
    let c = st
        .backup
        .claim_job(
            &p,
            &tenant,
            &name,
            &b.agent,
            b.lease_secs.unwrap_or(7200),
            &meta,
        )
        .await?;
    Ok(Json(claim_view(&c)))
}

/// Extend a running job's lease.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewInput {
    pub lease: String,
    /// How long from now (60 s to 7 days; default 2 hours).
    #[serde(default)]
    pub lease_secs: Option<u64>,
}

/// The lease's new end.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RenewView {
    pub lease_until: String,
}

/// Extend the lease of a running job (token scope `backup`; the agent does it between steps):
/// 409 if the lease is no longer held.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/backup/jobs/{name}/renew", tag = "backup",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = RenewInput,
    responses((status = 200, body = RenewView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn renew_job(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
    ApiJson(b): ApiJson<RenewInput>,
) -> ApiResult<Json<RenewView>> {
    let until = st
        .backup
        .renew_job(
            &p,
            &tenant,
            &name,
            &b.lease,
            b.lease_secs.unwrap_or(7200),
            &meta,
        )
        .await?;
    Ok(Json(RenewView {
        lease_until: until.rfc3339(),
    }))
}

/// End a run of a claimed job with each step's outcome (token scope `backup`): 409 if the lease
/// is no longer held.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/backup/jobs/{name}/finish", tag = "backup",
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = FinishInput,
    responses((status = 200, body = JobView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn finish_job(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, name)): Path<(String, String)>,
    ApiJson(b): ApiJson<FinishInput>,
) -> ApiResult<Json<JobView>> {
    let steps = b
        .steps
        .into_iter()
        .map(|s| StepOutcome {
            step: s.step,
            ok: s.ok,
            snapshot: s.snapshot,
            duration_ms: s.duration_ms,
            error: s.error,
        })
        .collect();
    let j = st
        .backup
        .finish_job(&p, &tenant, &name, &b.lease, steps, &meta)
        .await?;
    Ok(Json(job_view(&j)))
}

/// Every tenant's backup jobs (provider staff).
#[utoipa::path(get, path = "/api/v1/backup/jobs", tag = "backup",
    responses((status = 200, body = [JobView]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn jobs_overview(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> ApiResult<Json<Vec<JobView>>> {
    if p.tenant.kind != TenantKind::Provider {
        return Err(ApiError::from(IamError::Forbidden(
            "the jobs of every tenant are for provider staff".into(),
        )));
    }
    let list = st.backup.jobs_overview(&p, &meta).await?;
    Ok(Json(list.iter().map(job_view).collect()))
}
