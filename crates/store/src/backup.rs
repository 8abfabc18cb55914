//! Server-side backup management (X.1642 8.10, 7.2.2.2(7)): backup policies per tenant or
//! service (a JSON document the backup-server crate defines, updated optimistically by version),
//! the reports of runs, copies, verifications and restore tests kept as evidence, and the
//! compliance findings opened and resolved by the compliance job.

use parapet_types::{TenantCtx, TenantId, Timestamp};
use uuid::Uuid;

use crate::{AuditEvent, StoreResult};

/// A backup policy as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupPolicyRow {
    pub tenant: TenantId,
    /// `default` (the whole tenant) or the service it covers.
    pub name: String,
    /// 1 for a new policy; incremented by every update.
    pub version: i64,
    pub updated_at: Timestamp,
    pub body: serde_json::Value,
}

/// The report of one backup run, copy, verification or restore test.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupReportRow {
    pub id: Uuid,
    pub tenant: TenantId,
    pub policy: String,
    /// `backup`, `copy`, `verify` or `restore-test`.
    pub kind: String,
    pub ok: bool,
    /// `on-site` or `off-site`.
    pub site: String,
    pub at: Timestamp,
    pub body: serde_json::Value,
}

/// A compliance finding: a policy's terms not met (RPO exceeded, restore test overdue…).
#[derive(Debug, Clone, PartialEq)]
pub struct BackupFindingRow {
    pub id: Uuid,
    pub tenant: TenantId,
    pub policy: String,
    pub kind: String,
    pub detail: String,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// A backup job: a policy's sources and repositories assigned to an agent, with the state the
/// agent's runs left and the lease of the agent running it now.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupJobRow {
    pub tenant: TenantId,
    pub name: String,
    /// The agent (host) that runs it.
    pub agent: String,
    /// The policy it carries out.
    pub policy: String,
    /// 1 for a new job; incremented by every change of its definition.
    pub version: i64,
    pub updated_at: Timestamp,
    /// The definition (sources, repositories), a JSON document of the backup-server crate.
    pub body: serde_json::Value,
    /// What its runs did (last run, last backup, last restore test…), JSON.
    pub state: serde_json::Value,
    pub lease_id: Option<Uuid>,
    pub lease_agent: Option<String>,
    pub lease_until: Option<Timestamp>,
}

#[async_trait::async_trait]
pub trait BackupStore: Send + Sync {
    /// Stores a policy of `ctx`'s tenant: inserts it when `row.version` is 1 (`Conflict` if the
    /// name is taken), else replaces it if it is still at `row.version - 1` (`Conflict`
    /// otherwise). The events are written in the same transaction.
    async fn put_backup_policy(
        &self,
        ctx: TenantCtx,
        row: &BackupPolicyRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// A policy of `ctx`'s tenant by name.
    async fn get_backup_policy(&self, ctx: TenantCtx, name: &str) -> StoreResult<BackupPolicyRow>;

    /// Removes a policy of `ctx`'s tenant (`NotFound` if there is none).
    async fn delete_backup_policy(
        &self,
        ctx: TenantCtx,
        name: &str,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Policies visible within `ctx` (its tenant's, or every tenant's for the provider),
    /// optionally of one tenant only, by tenant and name.
    async fn list_backup_policies(
        &self,
        ctx: TenantCtx,
        tenant: Option<TenantId>,
    ) -> StoreResult<Vec<BackupPolicyRow>>;

    /// Stores a report of `ctx`'s tenant with its audit record.
    async fn add_backup_report(
        &self,
        ctx: TenantCtx,
        row: &BackupReportRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Reports of `ctx`'s tenant, newest first, optionally of one policy, at most `limit`.
    async fn list_backup_reports(
        &self,
        ctx: TenantCtx,
        policy: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<BackupReportRow>>;

    /// Opens a finding of `ctx`'s tenant; `Conflict` if one of the same policy and kind is open.
    async fn open_backup_finding(
        &self,
        ctx: TenantCtx,
        row: &BackupFindingRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Marks an open finding of `ctx`'s tenant resolved at `at`.
    async fn resolve_backup_finding(
        &self,
        ctx: TenantCtx,
        id: Uuid,
        at: Timestamp,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Findings visible within `ctx` (every tenant's for the provider), optionally of one tenant
    /// and only the open ones, newest first, at most `limit`.
    async fn list_backup_findings(
        &self,
        ctx: TenantCtx,
        tenant: Option<TenantId>,
        open_only: bool,
        limit: u32,
    ) -> StoreResult<Vec<BackupFindingRow>>;

    /// Stores a job of `ctx`'s tenant: inserts it when `row.version` is 1 (`Conflict` if the name
    /// is taken; its state and lease as given), else replaces its definition (agent, policy,
    /// body; state and lease kept) if it is still at `row.version - 1` (`Conflict` otherwise).
    async fn put_backup_job(
        &self,
        ctx: TenantCtx,
        row: &BackupJobRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// A job of `ctx`'s tenant by name.
    async fn get_backup_job(&self, ctx: TenantCtx, name: &str) -> StoreResult<BackupJobRow>;

    /// Removes a job of `ctx`'s tenant (`NotFound` if there is none).
    async fn delete_backup_job(
        &self,
        ctx: TenantCtx,
        name: &str,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Jobs visible within `ctx` (every tenant's for the provider), optionally of one tenant
    /// and of one agent, by tenant and name.
    async fn list_backup_jobs(
        &self,
        ctx: TenantCtx,
        tenant: Option<TenantId>,
        agent: Option<&str>,
    ) -> StoreResult<Vec<BackupJobRow>>;

    /// Gives the job a lease (`lease_id` held by `agent` until `until`) if it has none in force
    /// at `now`; `Conflict` if another lease is in force, `NotFound` if there is no such job.
    #[allow(clippy::too_many_arguments)]
    async fn claim_backup_job(
        &self,
        ctx: TenantCtx,
        name: &str,
        lease_id: Uuid,
        agent: &str,
        now: Timestamp,
        until: Timestamp,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Extends the lease `lease_id` to `until` if it still holds the job at `now` (`Conflict`
    /// otherwise).
    async fn renew_backup_job(
        &self,
        ctx: TenantCtx,
        name: &str,
        lease_id: Uuid,
        now: Timestamp,
        until: Timestamp,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Stores the state a run left and ends its lease, if `lease_id` still holds the job
    /// (`Conflict` otherwise: the lease expired and another agent may have claimed it).
    async fn finish_backup_job(
        &self,
        ctx: TenantCtx,
        name: &str,
        lease_id: Uuid,
        state: &serde_json::Value,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;
}
