//! Security events (X.1642 8.3(2), 7.2.2.6): what monitored assets and Parapet itself report,
//! normalized, attributed to a tenant and an asset, stored with a per-tenant retention.

use parapet_types::{AssetId, TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{AlertCounts, AlertHit, AuditEvent, Page, StoreResult};

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// UUID v7 (time-ordered).
    pub id: uuid::Uuid,
    pub tenant: TenantId,
    /// When the event happened (its own timestamp, else when it arrived).
    pub time: Timestamp,
    pub received_at: Timestamp,
    pub host: Option<String>,
    pub source: Option<String>,
    /// `informational`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    pub message: Option<String>,
    /// The asset of the inventory the event was attributed to (by host name or address).
    pub asset: Option<AssetId>,
    /// The ingestion batch that brought it.
    pub batch: uuid::Uuid,
    /// The event as it was sent (one JSON object).
    pub raw: String,
}

/// What to search for. Every given criterion must hold.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Events at or after this time.
    pub from: Option<Timestamp>,
    /// Events before this time.
    pub to: Option<Timestamp>,
    pub host: Option<String>,
    pub source: Option<String>,
    pub severity: Option<String>,
    pub asset: Option<AssetId>,
    pub batch: Option<uuid::Uuid>,
    /// Lower-case strings that must all occur in the lower-cased raw event.
    pub contains: Vec<String>,
}

/// What storing a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// The recorded response of an earlier batch with the same key (nothing was stored).
    pub replay: Option<String>,
    pub alerts: AlertCounts,
}

/// What a retention sweep did for one tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub events: u64,
    pub batches: u64,
    /// Closed alerts older than the retention (with their event links).
    pub alerts: u64,
}

/// Event storage.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Stores `events` (all of tenant `ctx`) and the alerts of `hits` with the batch record
    /// `audit`, in one transaction. A hit joins the alert of the same rule and group key that is
    /// not closed and saw an event since `window_start`, else raises a new alert; a hit under a
    /// running suppression raises nothing. With an idempotency `key`, the batch is recorded under
    /// it with `response`; when the tenant already has a batch under that key, nothing is stored
    /// and its recorded response is returned instead.
    #[allow(clippy::too_many_arguments)]
    async fn ingest_events(
        &self,
        ctx: TenantCtx,
        key: Option<&str>,
        response: &str,
        events: &[StoredEvent],
        hits: &[AlertHit],
        window_start: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<Ingested>;

    /// Events of `ctx` matching `filter`, newest first, after the cursor `page.after`
    /// (`<time>:<id>` of the last event of the previous page).
    async fn search_events(
        &self,
        ctx: TenantCtx,
        filter: &EventFilter,
        page: &Page,
    ) -> StoreResult<Vec<StoredEvent>>;

    /// One event of `ctx`.
    async fn get_event(&self, ctx: TenantCtx, id: uuid::Uuid) -> StoreResult<StoredEvent>;

    /// The tenant's retention in days, when it set one.
    async fn event_retention(&self, ctx: TenantCtx) -> StoreResult<Option<u32>>;

    async fn set_event_retention(
        &self,
        ctx: TenantCtx,
        days: u32,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Deletes the events of `ctx` older than `before`, its alerts closed before `before`, and
    /// idempotency records older than `keys_before`; when anything was deleted, writes `audit`
    /// (its details get the counts) in the same transaction.
    async fn purge_events(
        &self,
        ctx: TenantCtx,
        before: Timestamp,
        keys_before: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<Purged>;

    /// The recorded response of the tenant's batch sent under idempotency `key`, if any (read
    /// before a batch is evaluated, so a replay does not feed the correlation windows twice).
    async fn batch_response(&self, ctx: TenantCtx, key: &str) -> StoreResult<Option<String>>;

    /// The saved live correlation state of the rules owned by `ctx`: `(version, state)`.
    async fn correlation_state(&self, ctx: TenantCtx) -> StoreResult<Option<(i64, String)>>;

    /// Saves the live correlation state of the rules owned by `ctx` unless a state of a higher
    /// or equal `version` is saved already. This is the detection engine's working memory, not
    /// a change made by anyone: it carries no audit record (the alerts it leads to do).
    async fn save_correlation_state(
        &self,
        ctx: TenantCtx,
        version: i64,
        state: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
}
