//! Notification (X.1642 8.6.1, 7.2.2.6(2)): per-tenant channels (e-mail, webhook, SMS) and the
//! durable outbox a delivery worker drains, with retries and a dead-letter list.

use parapet_types::{TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AuditEvent, IncidentRow, Page, StoreResult};

/// A channel of a tenant. `config` is the kind's settings (addresses, URL, format); the webhook
/// signing secret is kept apart, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub id: Uuid,
    pub tenant: TenantId,
    pub name: String,
    /// `email`, `webhook` or `sms`.
    pub kind: String,
    pub config: serde_json::Value,
    /// The sealed signing secret (webhooks), never shown after creation.
    pub sealed_secret: Option<String>,
    pub created_at: Timestamp,
}

/// Where an outbox message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutboxStatus {
    /// Waiting for its (next) delivery attempt.
    Pending,
    Delivered,
    /// Every attempt failed: on the dead-letter list until retried or discarded.
    Dead,
    Discarded,
}

impl OutboxStatus {
    pub const ALL: [OutboxStatus; 4] = [
        OutboxStatus::Pending,
        OutboxStatus::Delivered,
        OutboxStatus::Dead,
        OutboxStatus::Discarded,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
            OutboxStatus::Discarded => "discarded",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        OutboxStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One message to deliver over one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: Uuid,
    pub tenant: TenantId,
    pub channel: Uuid,
    /// What caused it (`test`, `incident:<id>`, `alert:<id>`, …).
    pub source: String,
    pub severity: Option<String>,
    pub subject: String,
    pub body: String,
    /// When the event that causes the message happened (for the notification-time SLA).
    pub event_at: Timestamp,
    pub created_at: Timestamp,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
}

/// What one delivery attempt changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
}

/// Channels and the outbox.
#[async_trait::async_trait]
pub trait NotifyStore: Send + Sync {
    /// Creates a channel; `Conflict` when the tenant has one of that name (regardless of case).
    async fn create_channel(
        &self,
        ctx: TenantCtx,
        channel: &ChannelRecord,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// The channels of `ctx`, by name.
    async fn list_channels(&self, ctx: TenantCtx) -> StoreResult<Vec<ChannelRecord>>;

    /// A channel by id or name (regardless of case).
    async fn get_channel(&self, ctx: TenantCtx, id_or_name: &str) -> StoreResult<ChannelRecord>;

    async fn delete_channel(&self, ctx: TenantCtx, id: Uuid, audit: &AuditEvent)
    -> StoreResult<()>;

    /// Webhook secrets of every tenant still sealed by the local key (not `kms:`), by channel id
    /// after `after` (`ctx` must be the provider): `(tenant, channel, sealed)`.
    async fn notify_local_secrets(
        &self,
        ctx: TenantCtx,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<(TenantId, Uuid, String)>>;

    /// Replaces a channel's sealed secret if it is still `old`, with its audit record, in the
    /// channel's tenant (`ctx`); false if it changed meanwhile.
    async fn notify_reseal_secret(
        &self,
        ctx: TenantCtx,
        channel: Uuid,
        old: &str,
        new: &str,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;

    /// Adds messages to the outbox with the audit events of what caused them, in one
    /// transaction. Every item must belong to `ctx`.
    async fn enqueue(
        &self,
        ctx: TenantCtx,
        items: &[OutboxItem],
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Across every tenant (`ctx` must be the provider): pending messages due at `now`, oldest
    /// due first.
    async fn due_outbox(
        &self,
        ctx: TenantCtx,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>>;

    /// Claims a pending message for one attempt by moving its due time from `seen` to `until`;
    /// `false` when another worker claimed or changed it first.
    async fn claim_outbox(
        &self,
        ctx: TenantCtx,
        id: Uuid,
        seen: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool>;

    /// Records the result of an attempt (or a retry / discard by a person).
    async fn update_outbox(
        &self,
        ctx: TenantCtx,
        id: Uuid,
        result: &AttemptResult,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    async fn get_outbox(&self, ctx: TenantCtx, id: Uuid) -> StoreResult<OutboxItem>;

    /// Messages of `ctx`, newest first (after `page.after`, an id), optionally of one status.
    async fn list_outbox(
        &self,
        ctx: TenantCtx,
        status: Option<OutboxStatus>,
        page: &Page,
    ) -> StoreResult<Vec<OutboxItem>>;

    /// Replaces an incident (as [`crate::IncidentStore::update_incident`]) and adds `outbox`
    /// messages in the same transaction, so a page or notice is queued exactly when the change
    /// that causes it commits. Messages of other tenants than `ctx`'s need `ctx` to be the
    /// provider.
    async fn update_incident_with_outbox(
        &self,
        ctx: TenantCtx,
        row: &IncidentRow,
        audit: &[AuditEvent],
        outbox: &[OutboxItem],
    ) -> StoreResult<()>;

    /// Replaces an emergency response plan (as [`crate::IncidentStore::update_plan`]) and adds
    /// `outbox` messages of `ctx`'s tenant in the same transaction (drill and review reminders).
    async fn update_plan_with_outbox(
        &self,
        ctx: TenantCtx,
        row: &crate::PlanRow,
        audit: &[AuditEvent],
        outbox: &[OutboxItem],
    ) -> StoreResult<()>;
}
