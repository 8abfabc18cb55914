//! Detection rules and alerts (X.1642 8.3, 8.6.1, 7.2.2.6): Sigma rules stored per tenant (the
//! provider's apply to every tenant's events), alerts grouped by rule and group key, suppression
//! windows, acknowledgement and closing.

use parapet_types::{AssetId, TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{AuditEvent, Page, StoreResult};

/// An uploaded Sigma rule file, named by its first rule's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRule {
    pub tenant: TenantId,
    pub rule_id: String,
    pub title: String,
    pub level: Option<String>,
    /// The name of the file it was uploaded from.
    pub file: String,
    pub yaml: String,
    /// How many rules (documents) the file holds.
    pub rules: u32,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One rule matching one event, to become (or join) an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertHit {
    pub rule_id: String,
    /// The tenant that owns the rule (the provider, or the event's tenant).
    pub rule_tenant: TenantId,
    pub title: String,
    pub severity: String,
    /// What makes matches the same alert besides the rule (the host, else `-`).
    pub group_key: String,
    pub asset: Option<AssetId>,
    pub event: uuid::Uuid,
    pub event_time: Timestamp,
    /// The id the alert gets when this hit raises a new one.
    pub new_alert_id: uuid::Uuid,
}

/// What the hits of a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertCounts {
    pub created: u64,
    /// The ids of the alerts raised.
    pub raised: Vec<uuid::Uuid>,
    /// Hits added to an existing alert.
    pub grouped: u64,
    /// Hits dropped by a suppression window.
    pub suppressed: u64,
}

/// Alert states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Closed,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::Closed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        AlertStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: uuid::Uuid,
    pub tenant: TenantId,
    pub rule_id: String,
    pub rule_tenant: TenantId,
    pub title: String,
    pub severity: String,
    pub group_key: String,
    pub asset: Option<AssetId>,
    pub status: AlertStatus,
    /// Matching events so far.
    pub count: u64,
    /// Time of the first and last matching event (the events' own time).
    pub first_event_at: Timestamp,
    pub last_event_at: Timestamp,
    /// When the alert was raised.
    pub created_at: Timestamp,
    /// When a matching event last arrived.
    pub last_seen_at: Timestamp,
    pub updated_at: Timestamp,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<Timestamp>,
    pub closed_by: Option<String>,
    pub closed_at: Option<Timestamp>,
    pub note: Option<String>,
}

/// Filters of an alert listing.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    pub severity: Option<String>,
    pub rule_id: Option<String>,
}

/// A suppression window: hits of `rule_id` (and `group_key`, when given) raise nothing until
/// `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub id: uuid::Uuid,
    pub tenant: TenantId,
    pub rule_id: String,
    pub group_key: Option<String>,
    pub until: Timestamp,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// Rule and alert storage.
#[async_trait::async_trait]
pub trait AlertStore: Send + Sync {
    /// Creates or replaces (same rule id) rule files of `ctx`, all or nothing.
    async fn put_rules(
        &self,
        ctx: TenantCtx,
        rules: &[StoredRule],
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Rules of `ctx` by rule id (with their YAML only when `yaml`).
    async fn list_rules(&self, ctx: TenantCtx, enabled_only: bool) -> StoreResult<Vec<StoredRule>>;

    /// A value that changes whenever the rules of `ctx` change (count, enabled count, latest
    /// update), to tell whether compiled rules are still current without reading them.
    async fn rules_version(&self, ctx: TenantCtx) -> StoreResult<(i64, i64, i64)>;

    async fn set_rule_enabled(
        &self,
        ctx: TenantCtx,
        rule_id: &str,
        enabled: bool,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Alerts visible within `ctx` (every tenant's for the provider), newest first, after the
    /// cursor `<created_at>:<id>`.
    async fn list_alerts(
        &self,
        ctx: TenantCtx,
        filter: &AlertFilter,
        page: &Page,
    ) -> StoreResult<Vec<Alert>>;

    /// An alert of `ctx` with (up to `max_events`) the ids of its events.
    async fn get_alert(
        &self,
        ctx: TenantCtx,
        id: uuid::Uuid,
        max_events: u32,
    ) -> StoreResult<(Alert, Vec<uuid::Uuid>)>;

    /// Moves an alert of `ctx` to `status` as `by`; `NotFound` when absent, `Conflict` when it is
    /// closed already.
    async fn set_alert_status(
        &self,
        ctx: TenantCtx,
        id: uuid::Uuid,
        status: AlertStatus,
        by: &str,
        note: Option<&str>,
        audit: &AuditEvent,
    ) -> StoreResult<Alert>;

    async fn add_suppression(
        &self,
        ctx: TenantCtx,
        s: &Suppression,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Suppressions of `ctx` still running at `now`.
    async fn list_suppressions(
        &self,
        ctx: TenantCtx,
        now: Timestamp,
    ) -> StoreResult<Vec<Suppression>>;
}
