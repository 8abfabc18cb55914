//! The asset inventory: `/api/v1/tenants/{tenant}/assets…`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError, Page, collect_pages};

/// A piece of software and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Software {
    pub name: String,
    #[serde(default)]
    pub version: String,
}

/// An asset as the server returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Asset {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub kind: String,
    pub os: Option<Software>,
    pub applications: Vec<Software>,
    pub addresses: Vec<String>,
    pub location: Option<String>,
    pub owner: Option<String>,
    pub criticality: String,
    pub tags: BTreeMap<String, String>,
    pub health: String,
    pub last_seen_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The attributes of an asset to register or replace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AssetInput {
    pub name: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<Software>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<Software>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criticality: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Filters of an asset listing.
#[derive(Debug, Clone, Default)]
pub struct AssetQuery {
    pub kind: Option<String>,
    pub health: Option<String>,
    pub criticality: Option<String>,
    pub q: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    pub created: u64,
    pub updated: u64,
}

/// A tenant's assets counted by health.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthSummary {
    pub tenant: String,
    pub total: u64,
    pub by_health: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantCount {
    pub tenant: String,
    pub assets: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoftwareMatch {
    pub software: Software,
    pub os: bool,
    pub other_tenants: Vec<TenantCount>,
}

/// Other tenants running the same software as an asset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Related {
    pub asset: Asset,
    pub tenants_affected: usize,
    pub matches: Vec<SoftwareMatch>,
}

#[derive(Serialize)]
struct HealthBody<'a> {
    health: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    seen: bool,
}

impl Client {
    /// `GET /api/v1/tenants/{tenant}/assets`: one page.
    pub async fn list_assets(
        &self,
        tenant: &str,
        query: &AssetQuery,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<Asset>, ClientError> {
        self.get(self.url(
            &["tenants", tenant, "assets"],
            &[
                ("kind", query.kind.clone()),
                ("health", query.health.clone()),
                ("criticality", query.criticality.clone()),
                ("q", query.q.clone()),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor.map(str::to_string)),
            ],
        ))
        .await
    }

    /// Every asset of `tenant` matching `query`, following cursors.
    pub async fn all_assets(
        &self,
        tenant: &str,
        query: &AssetQuery,
    ) -> Result<Vec<Asset>, ClientError> {
        collect_pages(None, |c| async move {
            self.list_assets(tenant, query, Some(1000), c.as_deref())
                .await
        })
        .await
    }

    /// `POST /api/v1/tenants/{tenant}/assets`.
    pub async fn create_asset(&self, tenant: &str, a: &AssetInput) -> Result<Asset, ClientError> {
        self.post(self.url(&["tenants", tenant, "assets"], &[]), a)
            .await
    }

    /// `GET /api/v1/tenants/{tenant}/assets/{asset}`.
    pub async fn get_asset(&self, tenant: &str, asset: &str) -> Result<Asset, ClientError> {
        self.get(self.url(&["tenants", tenant, "assets", asset], &[]))
            .await
    }

    /// `PUT /api/v1/tenants/{tenant}/assets/{asset}`.
    pub async fn update_asset(
        &self,
        tenant: &str,
        asset: &str,
        a: &AssetInput,
    ) -> Result<Asset, ClientError> {
        self.json(
            self.http
                .put(self.url(&["tenants", tenant, "assets", asset], &[]))
                .json(a),
        )
        .await
    }

    /// `DELETE /api/v1/tenants/{tenant}/assets/{asset}`.
    pub async fn delete_asset(&self, tenant: &str, asset: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "assets", asset], &[])),
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/tenants/{tenant}/assets/{asset}/health`.
    pub async fn set_asset_health(
        &self,
        tenant: &str,
        asset: &str,
        health: &str,
        reason: Option<&str>,
        seen: bool,
    ) -> Result<Asset, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "assets", asset, "health"], &[]),
            &HealthBody {
                health,
                reason,
                seen,
            },
        )
        .await
    }

    /// `GET /api/v1/tenants/{tenant}/assets-summary`.
    pub async fn asset_summary(&self, tenant: &str) -> Result<HealthSummary, ClientError> {
        self.get(self.url(&["tenants", tenant, "assets-summary"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/assets/import` with a CSV (`format` = `csv`) or JSON
    /// (`json`: an array or JSON lines) body.
    pub async fn import_assets(
        &self,
        tenant: &str,
        format: &str,
        body: Vec<u8>,
    ) -> Result<ImportCounts, ClientError> {
        let content_type = if format == "csv" {
            "text/csv"
        } else {
            "application/json"
        };
        let req = self
            .http
            .post(self.url(
                &["tenants", tenant, "assets", "import"],
                &[("format", Some(format.to_string()))],
            ))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .timeout(std::time::Duration::from_secs(600))
            .body(body);
        self.json(req).await
    }

    /// `GET /api/v1/tenants/{tenant}/assets/{asset}/related` (provider staff).
    pub async fn related_assets(&self, tenant: &str, asset: &str) -> Result<Related, ClientError> {
        self.get(self.url(&["tenants", tenant, "assets", asset, "related"], &[]))
            .await
    }
}
