//! The tamper-evident audit log over HTTP (issue 3): public key, signed checkpoints, C2SP tiles,
//! inclusion and consistency proofs, and tenant-scoped exports.
//!
//! Everything but the public key needs a credential. Tiles, checkpoints and proofs hold only
//! hashes; records (exports and the entry of a proof) are shown only within the caller's audit
//! scope: a tenant's own records, every record for provider staff allowed to read the audit
//! trail.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parapet_audit::{Hash, LogError, leaf_hash};
use parapet_iam::{Action, Principal, RequestMeta};
use parapet_store::AuditRecord;
use parapet_types::TenantCtx;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiQuery, Auth, Meta};

/// Largest page of an export.
const MAX_EXPORT_PAGE: u32 = 10_000;

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Store(s) => parapet_iam::IamError::from(s).into(),
            LogError::NotFound(m) => ApiError::not_found(m),
            LogError::BadRequest(m) => ApiError::bad_request(m),
            LogError::Integrity(m) => {
                tracing::error!(error = %m, "audit log integrity failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "integrity", m)
            }
            LogError::Key(m) => {
                tracing::error!(error = %m, "audit log key failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn b64(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(Hash::to_base64).collect()
}

/// The tenant context whose records `p` may read: `tenant` (name or id) or the caller's own.
async fn scope(
    st: &AppState,
    p: &Principal,
    tenant: Option<&str>,
    meta: &RequestMeta,
) -> ApiResult<TenantCtx> {
    let id = p.tenant.id.to_string();
    let t = st
        .iam
        .resolve(p, tenant.unwrap_or(&id), Action::AuditRead, meta)
        .await?;
    Ok(TenantCtx::new(t.id))
}

/// The log's signed-note verifier key (`<origin>+<key id>+<base64 key>`). Needs no credential:
/// auditors pin it once and verify offline.
#[utoipa::path(get, path = "/api/v1/audit/public-key", tag = "audit-log",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn public_key(State(st): State<AppState>) -> Response {
    text(format!("{}\n", st.audit.public_key()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CheckpointParams {
    /// A past tree size; the latest checkpoint when absent.
    pub size: Option<u64>,
}

/// The latest signed checkpoint (C2SP tlog-checkpoint), or that of a past tree size.
#[utoipa::path(get, path = "/api/v1/audit/checkpoint", tag = "audit-log",
    params(CheckpointParams),
    responses((status = 200, content_type = "text/plain", body = String),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn checkpoint(
    State(st): State<AppState>,
    Auth(_p): Auth,
    ApiQuery(q): ApiQuery<CheckpointParams>,
) -> ApiResult<Response> {
    Ok(text(st.audit.checkpoint(q.size).await?.signed))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsParams {
    /// Only checkpoints of a larger tree size.
    pub after: Option<u64>,
    pub limit: Option<u32>,
}

/// A signed checkpoint with its time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckpointView {
    pub size: u64,
    pub time: String,
    /// The signed note.
    pub checkpoint: String,
}

/// Signed checkpoints, oldest first (for witnesses and for `verify` over a series).
#[utoipa::path(get, path = "/api/v1/audit/checkpoints", tag = "audit-log",
    params(CheckpointsParams),
    responses((status = 200, body = [CheckpointView])),
    security(("bearer" = [])))]
pub async fn checkpoints(
    State(st): State<AppState>,
    Auth(_p): Auth,
    ApiQuery(q): ApiQuery<CheckpointsParams>,
) -> ApiResult<Json<Vec<CheckpointView>>> {
    let list = st
        .store
        .checkpoints_after(q.after.unwrap_or(0), q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(LogError::from)?;
    Ok(Json(
        list.into_iter()
            .map(|c| CheckpointView {
                size: c.size,
                time: c.time.rfc3339(),
                checkpoint: c.signed,
            })
            .collect(),
    ))
}

/// A hash tile of the latest tree, at its C2SP tlog-tiles path (`tile/<L>/<N>[.p/<W>]`).
/// Entry bundles are not served: they would show every tenant's records.
#[utoipa::path(get, path = "/api/v1/audit/tile/{path}", tag = "audit-log",
    params(("path" = String, Path, description = "`<L>/<N>[.p/<W>]`")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn tile(
    State(st): State<AppState>,
    Auth(_p): Auth,
    Path(path): Path<String>,
) -> ApiResult<Response> {
    if path.starts_with("entries") {
        return Err(ApiError::not_found(
            "entry bundles are not served; export your records with /api/v1/audit/entries",
        ));
    }
    let body = st.audit.tile(&format!("tile/{path}")).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=60"),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    /// Log index of the record.
    pub index: u64,
    /// Tree size to prove against; the latest checkpoint's when absent.
    pub size: Option<u64>,
}

/// An inclusion proof (RFC 9162 §2.1.3), hashes in base64.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    /// The record's entry: the exact bytes hashed into the log.
    pub entry: String,
    pub leaf_hash: String,
    /// Sibling hashes, nearest the leaf first.
    pub proof: Vec<String>,
}

/// The inclusion proof of a record the caller may read.
#[utoipa::path(get, path = "/api/v1/audit/proofs/inclusion", tag = "audit-log",
    params(InclusionParams),
    responses((status = 200, body = InclusionProof), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn inclusion(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiQuery(q): ApiQuery<InclusionParams>,
) -> ApiResult<Json<InclusionProof>> {
    let ctx = scope(&st, &p, None, &meta).await?;
    let (size, proof) = st.audit.inclusion_proof(q.index, q.size).await?;
    let record = record_at(&st, ctx, q.index).await?;
    let entry = record.canonical_json();
    Ok(Json(InclusionProof {
        index: q.index,
        size,
        leaf_hash: leaf_hash(entry.as_bytes()).to_base64(),
        entry,
        proof: b64(&proof),
    }))
}

async fn record_at(st: &AppState, ctx: TenantCtx, index: u64) -> ApiResult<AuditRecord> {
    st.store
        .audit_range(ctx, index, index.saturating_add(1), 1)
        .await
        .map_err(LogError::from)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("no record {index} that you may read")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    pub from: u64,
    /// The latest checkpoint's size when absent.
    pub to: Option<u64>,
}

/// A consistency proof (RFC 9162 §2.1.4), hashes in base64.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub proof: Vec<String>,
}

/// The consistency proof between two tree sizes: the larger tree extends the smaller.
#[utoipa::path(get, path = "/api/v1/audit/proofs/consistency", tag = "audit-log",
    params(ConsistencyParams),
    responses((status = 200, body = ConsistencyProof), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn consistency(
    State(st): State<AppState>,
    Auth(_p): Auth,
    ApiQuery(q): ApiQuery<ConsistencyParams>,
) -> ApiResult<Json<ConsistencyProof>> {
    let (to, proof) = st.audit.consistency_proof(q.from, q.to).await?;
    Ok(Json(ConsistencyProof {
        from: q.from,
        to,
        proof: b64(&proof),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EntriesParams {
    /// First log index (inclusive).
    pub from: Option<u64>,
    /// Last log index (exclusive); capped at the latest checkpoint's size.
    pub to: Option<u64>,
    pub limit: Option<u32>,
    /// A tenant (name or id) within the caller's audit scope; the caller's own by default.
    pub tenant: Option<String>,
    /// Also give each record's inclusion proof against the tree of `size`.
    pub proofs: Option<bool>,
    /// The tree size of the proofs; the latest checkpoint's when absent.
    pub size: Option<u64>,
}

/// One line of an export with proofs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProvenEntry {
    pub index: u64,
    pub entry: String,
    pub proof: Vec<String>,
}

/// Records in index order as JSON lines, each exactly the bytes hashed into the log; with
/// `proofs=true`, one `ProvenEntry` a line. Headers: `Parapet-Tree-Size` (the checkpoint the
/// page is cut at or proven against) and `Parapet-Next-From` (absent on the last page).
#[utoipa::path(get, path = "/api/v1/audit/entries", tag = "audit-log",
    params(EntriesParams),
    responses((status = 200, content_type = "application/x-ndjson", body = String),
        (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn entries(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiQuery(q): ApiQuery<EntriesParams>,
) -> ApiResult<Response> {
    let ctx = scope(&st, &p, q.tenant.as_deref(), &meta).await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, MAX_EXPORT_PAGE);
    let from = q.from.unwrap_or(0);
    let latest = st.audit.size().await?;
    let size = match q.size {
        Some(s) if s > latest => {
            return Err(ApiError::bad_request(format!(
                "size {s} is beyond the latest checkpoint ({latest})"
            )));
        }
        Some(s) => s,
        None => latest,
    };
    let to = q.to.map_or(size, |t| t.min(size));
    let records = if from < to {
        st.store
            .audit_range(ctx, from, to, limit)
            .await
            .map_err(LogError::from)?
    } else {
        Vec::new()
    };
    let mut body = String::new();
    for r in &records {
        let line = r.canonical_json();
        if q.proofs.unwrap_or(false) {
            let index = u64::try_from(r.id).unwrap_or(0);
            let proof = st.audit.inclusion_proof_within(index, size).await?;
            let proven = ProvenEntry {
                index,
                entry: line,
                proof: b64(&proof),
            };
            body.push_str(&serde_json::to_string(&proven).unwrap_or_default());
        } else {
            body.push_str(&line);
        }
        body.push('\n');
    }
    let mut res = ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    let headers = res.headers_mut();
    headers.insert("parapet-tree-size", HeaderValue::from(size));
    if records.len() == limit as usize
        && let Some(last) = records.last()
    {
        let next = u64::try_from(last.id).unwrap_or(0).saturating_add(1);
        if next < to {
            headers.insert("parapet-next-from", HeaderValue::from(next));
        }
    }
    Ok(res)
}

/// Most records an access report reads.
const REPORT_MAX_RECORDS: usize = 1_000_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// RFC 3339 start of the window (inclusive); the whole log when absent.
    pub since: Option<String>,
    /// RFC 3339 end of the window (exclusive).
    pub until: Option<String>,
    /// Accounts without a log-in for this many days are listed as inactive [default: 90].
    pub inactive_days: Option<u32>,
}

/// The account and access report of `tenant` (X.1642 8.1.1(5)), for whoever may read its audit
/// trail.
pub async fn access_report(
    st: &AppState,
    p: &Principal,
    tenant: &str,
    q: &ReportParams,
    meta: &RequestMeta,
) -> ApiResult<parapet_audit::AccessReport> {
    let since = crate::api::parse_time("since", &q.since)?;
    let until = crate::api::parse_time("until", &q.until)?;
    let inactive_days = q.inactive_days.unwrap_or(90).min(36_500);
    let t = st.iam.resolve(p, tenant, Action::AuditRead, meta).await?;
    let ctx = TenantCtx::new(t.id);
    let mut accounts = Vec::new();
    let mut page = parapet_store::Page {
        after: None,
        limit: 1000,
    };
    loop {
        let users = st
            .store
            .list_users(ctx, &page)
            .await
            .map_err(LogError::from)?;
        let Some(last) = users.last() else { break };
        page.after = Some(last.id.to_string());
        let full = users.len() == 1000;
        accounts.extend(users.iter().map(|u| parapet_audit::Account {
            target: format!("user:{}/{}", t.name, u.username),
            role: u.role.as_str().to_string(),
            disabled: u.status == parapet_store::UserStatus::Disabled,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }));
        if !full {
            break;
        }
    }
    let filter = parapet_store::AuditFilter {
        since,
        until,
        ..Default::default()
    };
    let mut records = Vec::new();
    let mut page = parapet_store::Page {
        after: None,
        limit: 1000,
    };
    loop {
        let batch = st
            .store
            .list_audit(ctx, &filter, &page)
            .await
            .map_err(LogError::from)?;
        let Some(last) = batch.last() else { break };
        page.after = Some(last.id.to_string());
        let full = batch.len() == 1000;
        records.extend(batch);
        if !full || records.len() >= REPORT_MAX_RECORDS {
            break;
        }
    }
    Ok(parapet_audit::access_report(
        &accounts,
        &records,
        (since, until),
        st.iam.env().now(),
        inactive_days,
    ))
}

/// Account and access report: log-ins and log-outs per account, failed attempts, accounts
/// without a log-in for N days, privilege grants and revocations.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/reports/access", tag = "audit-log",
    params(("tenant" = String, Path), ReportParams),
    responses((status = 200, body = Object), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn access_report_endpoint(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<Json<parapet_audit::AccessReport>> {
    Ok(Json(access_report(&st, &p, &tenant, &q, &meta).await?))
}
