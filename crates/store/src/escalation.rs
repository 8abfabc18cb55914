//! Alert escalation (X.1642 8.6.1): a tenant's policy (levels of channels with delays, repeated)
//! and, per open alert, the step it reached and when the next one is due.

use parapet_types::{TenantCtx, Timestamp};

use crate::{AuditEvent, StoreResult};

/// An open alert that may be due for escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationCandidate {
    pub alert: uuid::Uuid,
    pub created_at: Timestamp,
    /// The next step to fire (none before the first) and when it is due.
    pub step: Option<i64>,
    pub next_at: Option<Timestamp>,
}

/// Escalation storage.
#[async_trait::async_trait]
pub trait EscalationStore: Send + Sync {
    /// Sets (or, with `None`, removes) the tenant's policy document.
    async fn put_escalation_policy(
        &self,
        ctx: TenantCtx,
        policy: Option<&str>,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    async fn escalation_policy(&self, ctx: TenantCtx) -> StoreResult<Option<String>>;

    /// Open (unacknowledged) alerts of `ctx` whose next step is due at `now`: those without a
    /// step created at or before `now - first_delay_ms`, and those whose step is due.
    async fn escalation_candidates(
        &self,
        ctx: TenantCtx,
        now: Timestamp,
        first_delay_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<EscalationCandidate>>;

    /// Moves an alert from step `expected` (none: never escalated) to `step`, due at `next_at`
    /// (none: finished), with its audit record; false when another replica moved it first.
    async fn advance_escalation(
        &self,
        ctx: TenantCtx,
        alert: uuid::Uuid,
        expected: Option<i64>,
        step: i64,
        next_at: Option<Timestamp>,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
}
