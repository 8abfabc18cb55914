//! Incidents (X.1642 8.6): the storage of the incident service. An incident is kept as a row of
//! the columns lists and timers need, plus its whole document (history, tasks, notes…) as JSON
//! that the incident crate defines. Updates are optimistic: they name the version they read.

use parapet_types::{TenantCtx, TenantId, Timestamp};
use uuid::Uuid;

use crate::{AuditEvent, Page, StoreResult};

/// An incident as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    pub id: Uuid,
    pub tenant: TenantId,
    pub title: String,
    pub severity: String,
    pub category: String,
    pub step: String,
    /// Responsible person of the current step.
    pub responsible: String,
    pub opened_at: Timestamp,
    pub updated_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    /// When the next SLA timer or escalation falls due (None: nothing pending).
    pub next_due_at: Option<Timestamp>,
    pub breaches: i64,
    /// Incremented by every update.
    pub version: i64,
    /// The whole incident (JSON). `Null` in listings.
    pub body: serde_json::Value,
}

/// An emergency response plan as stored (X.1642 8.9): its document is JSON that the incident
/// crate defines.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub tenant: TenantId,
    pub name: String,
    /// Incremented by every update.
    pub version: i64,
    pub review_due_at: Timestamp,
    pub updated_at: Timestamp,
    pub body: serde_json::Value,
}

/// A monitoring alert as incidents see it: its tenant and the incident it is linked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertLink {
    pub alert: Uuid,
    pub tenant: TenantId,
    pub incident: Option<Uuid>,
}

/// A tenant's stored SLA policy (the provider's is every tenant's default).
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicyRow {
    pub tenant: TenantId,
    pub updated_at: Timestamp,
    pub updated_by: String,
    /// The policy document (JSON) that the incident crate defines.
    pub body: serde_json::Value,
}

/// Which incidents a listing returns.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// Only this tenant's (the provider may name any).
    pub tenant: Option<TenantId>,
    /// Only incidents in this step.
    pub step: Option<String>,
    /// Only incidents not recorded (closed).
    pub open_only: bool,
    /// Only incidents opened at or after this time.
    pub opened_since: Option<Timestamp>,
}

#[async_trait::async_trait]
pub trait IncidentStore: Send + Sync {
    /// Stores a new incident of `ctx`'s tenant (or, for the provider, of any tenant).
    async fn create_incident(
        &self,
        ctx: TenantCtx,
        row: &IncidentRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// An incident visible within `ctx` (its tenant's, or any for the provider).
    async fn get_incident(&self, ctx: TenantCtx, id: Uuid) -> StoreResult<IncidentRow>;

    /// Replaces an incident if it is still at `row.version - 1`; `Conflict` if someone changed it
    /// meanwhile. The events are written in the same transaction.
    async fn update_incident(
        &self,
        ctx: TenantCtx,
        row: &IncidentRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Incidents visible within `ctx` (bodies left `Null`), newest first. `page.after` is the id
    /// of the last incident of the previous page.
    async fn list_incidents(
        &self,
        ctx: TenantCtx,
        filter: &IncidentFilter,
        page: &Page,
    ) -> StoreResult<Vec<IncidentRow>>;

    /// Ids (with tenant and due time) of incidents visible within `ctx` whose next timer is due
    /// at or before `now`, earliest first.
    async fn due_incidents(
        &self,
        ctx: TenantCtx,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(TenantId, Uuid, Timestamp)>>;

    /// Stores a new incident like [`IncidentStore::create_incident`] and links the monitoring
    /// `alerts` (of the incident's tenant) to it in the same transaction; `Conflict` when one of
    /// them is linked to an incident already.
    async fn create_incident_from_alerts(
        &self,
        ctx: TenantCtx,
        row: &IncidentRow,
        alerts: &[Uuid],
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Updates an incident like [`IncidentStore::update_incident`] and links `alerts` to it in
    /// the same transaction (`Conflict` when one is linked already).
    async fn update_incident_with_alerts(
        &self,
        ctx: TenantCtx,
        row: &IncidentRow,
        alerts: &[Uuid],
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// The alerts among `ids` visible within `ctx` (their tenant's, or any for the provider),
    /// with the incident each is linked to. Absent ids are left out.
    async fn alert_links(&self, ctx: TenantCtx, ids: &[Uuid]) -> StoreResult<Vec<AlertLink>>;

    /// The SLA policy stored for `ctx`'s tenant, if any.
    async fn get_sla_policy(&self, ctx: TenantCtx) -> StoreResult<Option<SlaPolicyRow>>;

    /// Creates or replaces the SLA policy of `row.tenant` (the provider may set any tenant's).
    async fn put_sla_policy(
        &self,
        ctx: TenantCtx,
        row: &SlaPolicyRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Creates or replaces the playbook `name` of `ctx`'s tenant (its document is JSON).
    async fn put_playbook(
        &self,
        ctx: TenantCtx,
        name: &str,
        updated_at: Timestamp,
        body: &serde_json::Value,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// The playbooks of `ctx`'s tenant by name.
    async fn list_playbooks(&self, ctx: TenantCtx) -> StoreResult<Vec<serde_json::Value>>;

    /// Stores a new plan of `ctx`'s tenant; `Conflict` if the name is taken.
    async fn create_plan(
        &self,
        ctx: TenantCtx,
        row: &PlanRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// A plan of `ctx`'s tenant by name.
    async fn get_plan(&self, ctx: TenantCtx, name: &str) -> StoreResult<PlanRow>;

    /// Replaces a plan if it is still at `row.version - 1` (`Conflict` otherwise).
    async fn update_plan(
        &self,
        ctx: TenantCtx,
        row: &PlanRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// The plans of `ctx`'s tenant by name (with their documents).
    async fn list_plans(&self, ctx: TenantCtx) -> StoreResult<Vec<PlanRow>>;
}
