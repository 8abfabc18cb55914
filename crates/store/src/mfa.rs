//! Second factors (X.1642 8.1.2(1), 7.2.2.4(4)): TOTP secrets (stored encrypted by the service)
//! with the last time step used, and single-use recovery codes (stored as hashes).

use parapet_types::{TenantCtx, Timestamp, UserId};

use crate::{AuditEvent, StoreResult};

/// A user's TOTP factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// The secret as the service sealed it (never the plain secret).
    pub sealed_secret: String,
    pub created_at: Timestamp,
    /// When enrolment was confirmed with a first code; `None` while pending.
    pub confirmed_at: Option<Timestamp>,
    /// The last time step accepted (codes of this step or earlier are refused).
    pub last_step: i64,
}

#[async_trait::async_trait]
pub trait MfaStore: Send + Sync {
    async fn get_totp(&self, ctx: TenantCtx, user: UserId) -> StoreResult<Option<TotpRecord>>;

    /// Starts (or restarts) a pending enrolment; fails with `Conflict` when a confirmed factor
    /// exists. The event is written in the same transaction.
    async fn begin_totp(
        &self,
        ctx: TenantCtx,
        user: UserId,
        sealed_secret: &str,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Confirms a pending enrolment with the step of its first code and replaces the recovery
    /// codes by `code_hashes`. The event is written in the same transaction.
    async fn confirm_totp(
        &self,
        ctx: TenantCtx,
        user: UserId,
        step: i64,
        code_hashes: &[String],
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Accepts time step `step` for a confirmed factor unless it or a later one was used already
    /// (atomic: two requests with the same code cannot both succeed).
    async fn use_totp_step(&self, ctx: TenantCtx, user: UserId, step: i64) -> StoreResult<bool>;

    /// Marks the unused recovery code with hash `hash` as used; false when there is none.
    async fn use_recovery_code(
        &self,
        ctx: TenantCtx,
        user: UserId,
        hash: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;

    /// Unused recovery codes of `user`.
    async fn recovery_codes_left(&self, ctx: TenantCtx, user: UserId) -> StoreResult<u32>;

    /// Removes the TOTP factor and the recovery codes. The event is written in the same
    /// transaction; `NotFound` when there was none.
    async fn remove_totp(
        &self,
        ctx: TenantCtx,
        user: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
}
