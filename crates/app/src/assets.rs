//! The asset inventory over HTTP (X.1642 8.3(1)): assets of a tenant, bulk import, health, and
//! the provider's cross-tenant correlation query.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use parapet_iam::authz::Action;
use parapet_iam::{Principal, RequestMeta};
use parapet_inventory::{AssetSpec, Caller, InventoryError};
use parapet_store::{
    Asset, AssetFilter, AssetHealth, AssetKind, Criticality, ImportCounts, Page, Software, Tenant,
};
use parapet_types::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::{PageParams, PageView, page_of};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, Meta};

/// The largest import body (a CSV or JSON file of up to 100,000 assets).
pub const IMPORT_LIMIT: usize = 32 * 1024 * 1024;

impl From<InventoryError> for ApiError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            InventoryError::Rows(rows) => {
                let mut detail = format!(
                    "the import has {} invalid row(s); nothing was imported:",
                    rows.len()
                );
                for r in rows.iter().take(50) {
                    detail.push_str(&format!(" [line {}] {};", r.line, r.message));
                }
                if rows.len() > 50 {
                    detail.push_str(" …");
                }
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-rows", detail)
            }
            InventoryError::NotFound(m) => ApiError::not_found(m),
            InventoryError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            InventoryError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            InventoryError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError::unavailable("the database is unavailable; try again later")
            }
            InventoryError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

/// A piece of software and its version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftwareView {
    pub name: String,
    #[serde(default)]
    pub version: String,
}

impl From<&Software> for SoftwareView {
    fn from(s: &Software) -> Self {
        SoftwareView {
            name: s.name.clone(),
            version: s.version.clone(),
        }
    }
}

impl From<SoftwareView> for Software {
    fn from(s: SoftwareView) -> Self {
        Software {
            name: s.name,
            version: s.version,
        }
    }
}

/// An asset of the inventory.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssetView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub kind: String,
    pub os: Option<SoftwareView>,
    pub applications: Vec<SoftwareView>,
    pub addresses: Vec<String>,
    pub location: Option<String>,
    pub owner: Option<String>,
    pub criticality: String,
    pub tags: BTreeMap<String, String>,
    /// `unknown`, `healthy`, `degraded`, `down` or `silent`.
    pub health: String,
    pub last_seen_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub fn asset_view(t: &Tenant, a: &Asset) -> AssetView {
    AssetView {
        id: a.id.to_string(),
        tenant: t.name.clone(),
        name: a.name.clone(),
        kind: a.kind.as_str().into(),
        os: a.os.as_ref().map(SoftwareView::from),
        applications: a.applications.iter().map(SoftwareView::from).collect(),
        addresses: a.addresses.clone(),
        location: a.location.clone(),
        owner: a.owner.clone(),
        criticality: a.criticality.as_str().into(),
        tags: a.tags.clone(),
        health: a.health.as_str().into(),
        last_seen_at: a.last_seen_at.map(Timestamp::rfc3339),
        created_at: a.created_at.rfc3339(),
        updated_at: a.updated_at.rfc3339(),
    }
}

/// The attributes of an asset, to register or replace it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetInput {
    /// Unique within the tenant regardless of case.
    pub name: String,
    /// `physical-host`, `hypervisor`, `vm`, `container`, `image`, `network-device`,
    /// `security-device`, `database`, `application` or `platform`.
    pub kind: String,
    #[serde(default)]
    pub os: Option<SoftwareView>,
    #[serde(default)]
    pub applications: Vec<SoftwareView>,
    /// IP addresses, CIDR blocks or DNS names.
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// `low`, `medium` (default), `high` or `critical`.
    #[serde(default)]
    pub criticality: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl From<AssetInput> for AssetSpec {
    fn from(i: AssetInput) -> Self {
        AssetSpec {
            name: i.name,
            kind: i.kind,
            os: i.os.map(Software::from),
            applications: i.applications.into_iter().map(Software::from).collect(),
            addresses: i.addresses,
            location: i.location,
            owner: i.owner,
            criticality: i.criticality,
            tags: i.tags,
        }
    }
}

/// The audit identity of a request (API and console alike).
pub(crate) fn caller(p: &Principal, meta: &RequestMeta) -> Caller {
    Caller {
        actor: p.actor(),
        source_ip: meta.source_ip.clone(),
        user_agent: meta.user_agent.clone(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AssetListParams {
    pub kind: Option<String>,
    pub health: Option<String>,
    pub criticality: Option<String>,
    /// Only assets whose name contains this (regardless of case).
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl AssetListParams {
    pub fn filter(&self) -> ApiResult<AssetFilter> {
        fn parse<T>(
            what: &str,
            v: &Option<String>,
            f: impl Fn(&str) -> Option<T>,
        ) -> ApiResult<Option<T>> {
            match v.as_deref() {
                None | Some("") => Ok(None),
                Some(s) => f(s)
                    .map(Some)
                    .ok_or_else(|| ApiError::bad_request(format!("unknown {what} {s:?}"))),
            }
        }
        Ok(AssetFilter {
            kind: parse("kind", &self.kind, AssetKind::parse)?,
            health: parse("health", &self.health, AssetHealth::parse)?,
            criticality: parse("criticality", &self.criticality, Criticality::parse)?,
            name_contains: self.q.clone().filter(|q| !q.is_empty()),
        })
    }
}

/// The assets of a tenant, by name.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/assets", tag = "assets",
    params(("tenant" = String, Path), AssetListParams),
    responses((status = 200, body = PageView<AssetView>), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_assets(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<AssetListParams>,
) -> ApiResult<Json<PageView<AssetView>>> {
    let filter = q.filter()?;
    let limit = PageParams {
        limit: q.limit,
        cursor: None,
    }
    .limit();
    let t = st
        .iam
        .resolve(&p, &tenant, Action::AssetRead, &meta)
        .await?;
    let items = st
        .inventory
        .list(
            &t,
            &filter,
            &Page {
                after: q.cursor.clone(),
                limit: limit + 1,
            },
        )
        .await?;
    Ok(Json(page_of(
        items,
        limit,
        |a| a.name.to_ascii_lowercase(),
        |a| asset_view(&t, a),
    )))
}

/// Register an asset.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/assets", tag = "assets",
    params(("tenant" = String, Path)), request_body = AssetInput,
    responses((status = 201, body = AssetView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_asset(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<AssetInput>,
) -> ApiResult<(StatusCode, Json<AssetView>)> {
    let spec = AssetSpec::from(body);
    spec.validate()
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m))?;
    let t = st
        .iam
        .resolve(&p, &tenant, Action::AssetWrite, &meta)
        .await?;
    let a = st.inventory.create(&t, &caller(&p, &meta), &spec).await?;
    Ok((StatusCode::CREATED, Json(asset_view(&t, &a))))
}

/// An asset, by id or name.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/assets/{asset}", tag = "assets",
    params(("tenant" = String, Path), ("asset" = String, Path)),
    responses((status = 200, body = AssetView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_asset(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset)): Path<(String, String)>,
) -> ApiResult<Json<AssetView>> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::AssetRead, &meta)
        .await?;
    let a = st.inventory.get(&t, &asset).await?;
    Ok(Json(asset_view(&t, &a)))
}

/// Replace an asset's attributes (its health and history stay).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/assets/{asset}", tag = "assets",
    params(("tenant" = String, Path), ("asset" = String, Path)), request_body = AssetInput,
    responses((status = 200, body = AssetView), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update_asset(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset)): Path<(String, String)>,
    ApiJson(body): ApiJson<AssetInput>,
) -> ApiResult<Json<AssetView>> {
    let spec = AssetSpec::from(body);
    spec.validate()
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m))?;
    let t = st
        .iam
        .resolve(&p, &tenant, Action::AssetWrite, &meta)
        .await?;
    let a = st
        .inventory
        .update(&t, &caller(&p, &meta), &asset, &spec)
        .await?;
    Ok(Json(asset_view(&t, &a)))
}

/// Remove an asset from the inventory.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/assets/{asset}", tag = "assets",
    params(("tenant" = String, Path), ("asset" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_asset(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::AssetWrite, &meta)
        .await?;
    st.inventory.delete(&t, &caller(&p, &meta), &asset).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthInput {
    /// `unknown`, `healthy`, `degraded`, `down` or `silent`.
    pub health: String,
    pub reason: Option<String>,
    /// Also record that data about the asset arrived now.
    #[serde(default)]
    pub seen: bool,
}

/// Set an asset's health.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/assets/{asset}/health", tag = "assets",
    params(("tenant" = String, Path), ("asset" = String, Path)), request_body = HealthInput,
    responses((status = 200, body = AssetView), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_health(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset)): Path<(String, String)>,
    ApiJson(body): ApiJson<HealthInput>,
) -> ApiResult<Json<AssetView>> {
    let health = AssetHealth::parse(&body.health).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!(
                "unknown health {:?}; expected one of: {}",
                body.health,
                AssetHealth::ALL.map(AssetHealth::as_str).join(", ")
            ),
        )
    })?;
    let t = st
        .iam
        .resolve(&p, &tenant, Action::AssetWrite, &meta)
        .await?;
    let a = st
        .inventory
        .set_health(
            &t,
            &caller(&p, &meta),
            &asset,
            health,
            body.reason.as_deref(),
            body.seen,
        )
        .await?;
    Ok(Json(asset_view(&t, &a)))
}

/// How many assets of a tenant are in each health state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthSummary {
    pub tenant: String,
    pub total: u64,
    pub by_health: BTreeMap<String, u64>,
}

/// A tenant's assets counted by health state.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/assets-summary", tag = "assets",
    params(("tenant" = String, Path)),
    responses((status = 200, body = HealthSummary), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn summary(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
) -> ApiResult<Json<HealthSummary>> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::AssetRead, &meta)
        .await?;
    let counts = st.inventory.health_summary(&t).await?;
    Ok(Json(HealthSummary {
        tenant: t.name.clone(),
        total: counts.iter().map(|(_, n)| n).sum(),
        by_health: counts
            .into_iter()
            .map(|(h, n)| (h.as_str().to_string(), n))
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// `csv` or `json` (an array or JSON lines); by default from the Content-Type.
    pub format: Option<String>,
}

/// Import assets in bulk from CSV or JSON: all rows are validated first and nothing is written
/// unless every row is valid; assets that exist (same name) are updated.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/assets/import", tag = "assets",
    params(("tenant" = String, Path), ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = Object), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn import(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<ImportParams>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<ImportCounts>> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                format!(
                    "the import is larger than {} MiB; split it",
                    IMPORT_LIMIT / 1024 / 1024
                ),
            )
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let format = match q.format.as_deref() {
        Some("csv") => "csv",
        Some("json") => "json",
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}; expected csv or json"
            )));
        }
        None => match content_type.as_str() {
            "text/csv" => "csv",
            "application/json" | "application/x-ndjson" | "application/jsonl" => "json",
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "send text/csv, application/json or application/x-ndjson (or ?format=csv|json)",
                ));
            }
        },
    };
    let t = st
        .iam
        .resolve(&p, &tenant, Action::AssetWrite, &meta)
        .await?;
    let rows = if format == "csv" {
        parapet_inventory::parse_csv(&body)
    } else {
        parapet_inventory::parse_json(&body)
    }
    .map_err(|rows| ApiError::from(InventoryError::Rows(rows)))?;
    let counts = st
        .inventory
        .import(&t, &caller(&p, &meta), &rows, format)
        .await?;
    Ok(Json(counts))
}

/// Other tenants running the same software as an asset.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RelatedView {
    pub asset: AssetView,
    pub tenants_affected: usize,
    pub matches: Vec<SoftwareMatchView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SoftwareMatchView {
    pub software: SoftwareView,
    /// Whether the software is the operating system.
    pub os: bool,
    pub other_tenants: Vec<TenantCount>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantCount {
    pub tenant: String,
    pub assets: u64,
}

/// Which other tenants run the same operating system version or application versions as this
/// asset (X.1642 8.3): provider staff only; tenants never see each other.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/assets/{asset}/related", tag = "assets",
    params(("tenant" = String, Path), ("asset" = String, Path)),
    responses((status = 200, body = RelatedView), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn related(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path((tenant, asset)): Path<(String, String)>,
) -> ApiResult<Json<RelatedView>> {
    let t = st
        .iam
        .resolve(&p, &tenant, Action::AssetRead, &meta)
        .await?;
    let own = p.tenant.id.to_string();
    let provider = st
        .iam
        .resolve(&p, &own, Action::AssetCorrelate, &meta)
        .await?;
    let r = st.inventory.related(&provider, &t, &asset).await?;
    Ok(Json(RelatedView {
        asset: asset_view(&t, &r.asset),
        tenants_affected: r.tenants_affected,
        matches: r
            .matches
            .iter()
            .map(|m| SoftwareMatchView {
                software: SoftwareView::from(&m.software),
                os: m.os,
                other_tenants: m
                    .other_tenants
                    .iter()
                    .map(|o| TenantCount {
                        tenant: o.tenant_name.clone(),
                        assets: o.assets,
                    })
                    .collect(),
            })
            .collect(),
    }))
}
