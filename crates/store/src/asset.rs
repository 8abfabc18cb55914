//! The asset inventory (X.1642 8.3(1), 8.6.4, 8.7): the resources being monitored, each owned by
//! one tenant (or the provider), with the attributes that monitoring, incident checking and patch
//! matching need.

use std::collections::BTreeMap;

use parapet_types::{AssetId, TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{AuditEvent, Page, StoreResult};

/// What kind of resource an asset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum AssetKind {
    PhysicalHost,
    Hypervisor,
    Vm,
    Container,
    Image,
    NetworkDevice,
    SecurityDevice,
    Database,
    Application,
    Platform,
}

impl AssetKind {
    pub const ALL: [AssetKind; 10] = [
        AssetKind::PhysicalHost,
        AssetKind::Hypervisor,
        AssetKind::Vm,
        AssetKind::Container,
        AssetKind::Image,
        AssetKind::NetworkDevice,
        AssetKind::SecurityDevice,
        AssetKind::Database,
        AssetKind::Application,
        AssetKind::Platform,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::PhysicalHost => "physical-host",
            AssetKind::Hypervisor => "hypervisor",
            AssetKind::Vm => "vm",
            AssetKind::Container => "container",
            AssetKind::Image => "image",
            AssetKind::NetworkDevice => "network-device",
            AssetKind::SecurityDevice => "security-device",
            AssetKind::Database => "database",
            AssetKind::Application => "application",
            AssetKind::Platform => "platform",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        AssetKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How much the business depends on an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

impl Criticality {
    pub const ALL: [Criticality; 4] = [
        Criticality::Low,
        Criticality::Medium,
        Criticality::High,
        Criticality::Critical,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Criticality::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The health status of an asset (X.1642 8.3(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum AssetHealth {
    /// Nothing known yet.
    Unknown,
    Healthy,
    Degraded,
    Down,
    /// No data arrived within the expected interval.
    Silent,
}

impl AssetHealth {
    pub const ALL: [AssetHealth; 5] = [
        AssetHealth::Unknown,
        AssetHealth::Healthy,
        AssetHealth::Degraded,
        AssetHealth::Down,
        AssetHealth::Silent,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AssetHealth::Unknown => "unknown",
            AssetHealth::Healthy => "healthy",
            AssetHealth::Degraded => "degraded",
            AssetHealth::Down => "down",
            AssetHealth::Silent => "silent",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        AssetHealth::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A piece of software and its version (an operating system or an application).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct Software {
    pub name: String,
    pub version: String,
}

/// A resource of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    pub id: AssetId,
    pub tenant: TenantId,
    /// Unique within the tenant regardless of case.
    pub name: String,
    pub kind: AssetKind,
    pub os: Option<Software>,
    pub applications: Vec<Software>,
    pub addresses: Vec<String>,
    pub location: Option<String>,
    /// Who answers for it (a person or team).
    pub owner: Option<String>,
    pub criticality: Criticality,
    pub tags: BTreeMap<String, String>,
    pub health: AssetHealth,
    /// When data about the asset last arrived.
    pub last_seen_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Filters for listing assets.
#[derive(Debug, Clone, Default)]
pub struct AssetFilter {
    pub kind: Option<AssetKind>,
    pub health: Option<AssetHealth>,
    pub criticality: Option<Criticality>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
}

/// What a bulk import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    pub created: u64,
    pub updated: u64,
}

/// One tenant's count of assets matching a correlation query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantMatch {
    pub tenant: TenantId,
    pub tenant_name: String,
    pub assets: u64,
}

/// Asset inventory storage.
#[async_trait::async_trait]
pub trait AssetStore: Send + Sync {
    /// Creates an asset; `Conflict` when the tenant already has one of that name.
    async fn create_asset(
        &self,
        ctx: TenantCtx,
        asset: &Asset,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Replaces the attributes of an existing asset (matched by id within `ctx`).
    async fn update_asset(
        &self,
        ctx: TenantCtx,
        asset: &Asset,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Creates or updates (by name, regardless of case) every asset in one transaction with one
    /// audit event: all or nothing. Existing assets keep their id, creation time and health.
    async fn import_assets(
        &self,
        ctx: TenantCtx,
        assets: &[Asset],
        audit: &AuditEvent,
    ) -> StoreResult<ImportCounts>;

    /// An asset by id or by name (regardless of case).
    async fn get_asset(&self, ctx: TenantCtx, id_or_name: &str) -> StoreResult<Asset>;

    /// Assets of `ctx` ordered by name, after `page.after` (a name).
    async fn list_assets(
        &self,
        ctx: TenantCtx,
        filter: &AssetFilter,
        page: &Page,
    ) -> StoreResult<Vec<Asset>>;

    /// Number of assets of `ctx` per health status.
    async fn count_assets_by_health(&self, ctx: TenantCtx) -> StoreResult<Vec<(AssetHealth, u64)>>;

    async fn delete_asset(
        &self,
        ctx: TenantCtx,
        id: AssetId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Sets an asset's health (and, with `seen`, its last-seen time).
    async fn set_asset_health(
        &self,
        ctx: TenantCtx,
        id: AssetId,
        health: AssetHealth,
        seen: Option<Timestamp>,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Across every tenant: how many assets of each tenant run `software` (as their operating
    /// system when `os`, else as an application), names compared regardless of case. `ctx` must be
    /// the provider tenant; tenants with no match are left out.
    async fn tenants_running(
        &self,
        ctx: TenantCtx,
        software: &Software,
        os: bool,
    ) -> StoreResult<Vec<TenantMatch>>;
}
