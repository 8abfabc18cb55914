//! `BackupStore` over SQL: policies as JSON documents updated by version, reports as evidence,
//! compliance findings with at most one open per policy and kind (a partial unique index).

use async_trait::async_trait;
use parapet_store::{
    AuditEvent, BackupFindingRow, BackupJobRow, BackupPolicyRow, BackupReportRow, BackupStore,
    StoreError, StoreResult,
};
use parapet_types::{TenantCtx, TenantId, Timestamp};
use serde::Deserialize;
use uuid::Uuid;

use crate::audit::insert_audit;
use crate::incident::VISIBLE;
use crate::rows::{Bind, uuid};
use crate::{DbResult, SqlStore, with_tx};

const POLICY_COLS: &[&str] = &["tenant_id", "name", "version", "updated_at", "body"];
const REPORT_COLS: &[&str] = &[
    "id",
    "tenant_id",
    "policy",
    "kind",
    "ok",
    "site",
    "at",
    "body",
];
const FINDING_COLS: &[&str] = &[
    "id",
    "tenant_id",
    "policy",
    "kind",
    "detail",
    "opened_at",
    "resolved_at",
];

const JOB_COLS: &[&str] = &[
    "tenant_id",
    "name",
    "agent",
    "policy",
    "version",
    "updated_at",
    "body",
    "state",
    "lease_id",
    "lease_agent",
    "lease_until",
];

#[derive(Debug, Deserialize)]
struct JobRow {
    tenant_id: String,
    name: String,
    agent: String,
    policy: String,
    version: i64,
    updated_at: i64,
    body: String,
    state: String,
    lease_id: Option<String>,
    lease_agent: Option<String>,
    lease_until: Option<i64>,
}

impl TryFrom<JobRow> for BackupJobRow {
    type Error = StoreError;
    fn try_from(r: JobRow) -> StoreResult<BackupJobRow> {
        Ok(BackupJobRow {
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            name: r.name,
            agent: r.agent,
            policy: r.policy,
            version: r.version,
            updated_at: Timestamp(r.updated_at),
            body: json_of("backup job", &r.body)?,
            state: json_of("backup job state", &r.state)?,
            lease_id: r
                .lease_id
                .as_deref()
                .map(|l| uuid("lease id", l))
                .transpose()?,
            lease_agent: r.lease_agent,
            lease_until: r.lease_until.map(Timestamp),
        })
    }
}

#[derive(Debug, Deserialize)]
struct PolicyRow {
    tenant_id: String,
    name: String,
    version: i64,
    updated_at: i64,
    body: String,
}

fn json_of(what: &str, s: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Other(format!("corrupt {what}: {e}")))
}

fn text_of(what: &str, v: &serde_json::Value) -> StoreResult<String> {
    serde_json::to_string(v)
        .map_err(|e| StoreError::Other(format!("cannot encode the {what}: {e}")))
}

impl TryFrom<PolicyRow> for BackupPolicyRow {
    type Error = StoreError;
    fn try_from(r: PolicyRow) -> StoreResult<BackupPolicyRow> {
        Ok(BackupPolicyRow {
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            name: r.name,
            version: r.version,
            updated_at: Timestamp(r.updated_at),
            body: json_of("backup policy", &r.body)?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct ReportRow {
    id: String,
    tenant_id: String,
    policy: String,
    kind: String,
    ok: i64,
    site: String,
    at: i64,
    body: String,
}

impl TryFrom<ReportRow> for BackupReportRow {
    type Error = StoreError;
    fn try_from(r: ReportRow) -> StoreResult<BackupReportRow> {
        Ok(BackupReportRow {
            id: uuid("report id", &r.id)?,
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            policy: r.policy,
            kind: r.kind,
            ok: r.ok != 0,
            site: r.site,
            at: Timestamp(r.at),
            body: json_of("backup report", &r.body)?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct FindingRow {
    id: String,
    tenant_id: String,
    policy: String,
    kind: String,
    detail: String,
    opened_at: i64,
    resolved_at: Option<i64>,
}

impl TryFrom<FindingRow> for BackupFindingRow {
    type Error = StoreError;
    fn try_from(r: FindingRow) -> StoreResult<BackupFindingRow> {
        Ok(BackupFindingRow {
            id: uuid("finding id", &r.id)?,
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            policy: r.policy,
            kind: r.kind,
            detail: r.detail,
            opened_at: Timestamp(r.opened_at),
            resolved_at: r.resolved_at.map(Timestamp),
        })
    }
}

#[async_trait]
impl BackupStore for SqlStore {
    async fn put_backup_policy(
        &self,
        ctx: TenantCtx,
        row: &BackupPolicyRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = text_of("backup policy", &row.body)?;
        with_tx!(self, |tx| {
            if row.version == 1 {
                sqlx::query(
                    "INSERT INTO backup_policies (tenant_id, name, version, updated_at, body) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(ctx.tenant.to_string())
                .bind(&row.name)
                .bind(row.version)
                .bind(row.updated_at.0)
                .bind(&body)
                .execute(&mut *tx)
                .await
                .map_err(|e| match crate::map_err(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "a backup policy named {} exists; give the version you read to change it",
                        row.name
                    )),
                    e => e,
                })?;
            } else {
                let done = sqlx::query(
                    "UPDATE backup_policies SET version = $3, updated_at = $4, body = $5 \
                     WHERE tenant_id = $1 AND name = $2 AND version = $3 - 1",
                )
                .bind(ctx.tenant.to_string())
                .bind(&row.name)
                .bind(row.version)
                .bind(row.updated_at.0)
                .bind(&body)
                .execute(&mut *tx)
                .await
                .db()?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "the backup policy {} was changed by someone else meanwhile (or is gone); \
                         reload and try again",
                        row.name
                    )));
                }
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn get_backup_policy(&self, ctx: TenantCtx, name: &str) -> StoreResult<BackupPolicyRow> {
        let sql = format!(
            "SELECT {} FROM backup_policies WHERE tenant_id = $1 AND name = $2",
            POLICY_COLS.join(", ")
        );
        let rows: Vec<BackupPolicyRow> = self
            .records::<PolicyRow, BackupPolicyRow>(
                &sql,
                POLICY_COLS,
                "name",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(name.to_string()),
                ],
            )
            .await?;
        rows.into_iter().next().ok_or(StoreError::NotFound)
    }

    async fn delete_backup_policy(
        &self,
        ctx: TenantCtx,
        name: &str,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let done =
                sqlx::query("DELETE FROM backup_policies WHERE tenant_id = $1 AND name = $2")
                    .bind(ctx.tenant.to_string())
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn list_backup_policies(
        &self,
        ctx: TenantCtx,
        tenant: Option<TenantId>,
    ) -> StoreResult<Vec<BackupPolicyRow>> {
        let mut sql = format!(
            "SELECT {} FROM backup_policies WHERE {VISIBLE}",
            POLICY_COLS.join(", ")
        );
        let mut binds = vec![Bind::Text(ctx.tenant.to_string())];
        if let Some(t) = tenant {
            binds.push(Bind::Text(t.to_string()));
            sql.push_str(" AND tenant_id = $2");
        }
        sql.push_str(" ORDER BY tenant_id, name LIMIT 10000");
        self.records::<PolicyRow, BackupPolicyRow>(&sql, POLICY_COLS, "tenant_id, name", &binds)
            .await
    }

    async fn add_backup_report(
        &self,
        ctx: TenantCtx,
        row: &BackupReportRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = text_of("backup report", &row.body)?;
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO backup_reports (id, tenant_id, policy, kind, ok, site, at, body) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(row.id.to_string())
            .bind(ctx.tenant.to_string())
            .bind(&row.policy)
            .bind(&row.kind)
            .bind(i64::from(row.ok))
            .bind(&row.site)
            .bind(row.at.0)
            .bind(&body)
            .execute(&mut *tx)
            .await
            .db()?;
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn list_backup_reports(
        &self,
        ctx: TenantCtx,
        policy: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<BackupReportRow>> {
        let mut sql = format!(
            "SELECT {} FROM backup_reports WHERE tenant_id = $1",
            REPORT_COLS.join(", ")
        );
        let mut binds = vec![Bind::Text(ctx.tenant.to_string())];
        if let Some(p) = policy {
            binds.push(Bind::Text(p.to_string()));
            sql.push_str(" AND policy = $2");
        }
        let limit = limit.clamp(1, 100_000);
        sql.push_str(&format!(" ORDER BY at DESC, id DESC LIMIT {limit}"));
        self.records::<ReportRow, BackupReportRow>(&sql, REPORT_COLS, "at DESC, id DESC", &binds)
            .await
    }

    async fn open_backup_finding(
        &self,
        ctx: TenantCtx,
        row: &BackupFindingRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO backup_findings (id, tenant_id, policy, kind, detail, opened_at, \
                 resolved_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            )
            .bind(row.id.to_string())
            .bind(ctx.tenant.to_string())
            .bind(&row.policy)
            .bind(&row.kind)
            .bind(&row.detail)
            .bind(row.opened_at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn resolve_backup_finding(
        &self,
        ctx: TenantCtx,
        id: Uuid,
        at: Timestamp,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE backup_findings SET resolved_at = $3 WHERE tenant_id = $1 AND id = $2 \
                 AND resolved_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(id.to_string())
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn list_backup_findings(
        &self,
        ctx: TenantCtx,
        tenant: Option<TenantId>,
        open_only: bool,
        limit: u32,
    ) -> StoreResult<Vec<BackupFindingRow>> {
        let mut sql = format!(
            "SELECT {} FROM backup_findings WHERE {VISIBLE}",
            FINDING_COLS.join(", ")
        );
        let mut binds = vec![Bind::Text(ctx.tenant.to_string())];
        if let Some(t) = tenant {
            binds.push(Bind::Text(t.to_string()));
            sql.push_str(" AND tenant_id = $2");
        }
        if open_only {
            sql.push_str(" AND resolved_at IS NULL");
        }
        let limit = limit.clamp(1, 100_000);
        sql.push_str(&format!(" ORDER BY opened_at DESC, id DESC LIMIT {limit}"));
        self.records::<FindingRow, BackupFindingRow>(
            &sql,
            FINDING_COLS,
            "opened_at DESC, id DESC",
            &binds,
        )
        .await
    }

    async fn put_backup_job(
        &self,
        ctx: TenantCtx,
        row: &BackupJobRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = text_of("backup job", &row.body)?;
        let state = text_of("backup job state", &row.state)?;
        with_tx!(self, |tx| {
            if row.version == 1 {
                sqlx::query(
                    "INSERT INTO backup_jobs (tenant_id, name, agent, policy, version, updated_at, \
                     body, state, lease_id, lease_agent, lease_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL)",
                )
                .bind(ctx.tenant.to_string())
                .bind(&row.name)
                .bind(&row.agent)
                .bind(&row.policy)
                .bind(row.version)
                .bind(row.updated_at.0)
                .bind(&body)
                .bind(&state)
                .execute(&mut *tx)
                .await
                .map_err(|e| match crate::map_err(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!(
                        "a backup job named {} exists; give the version you read to change it",
                        row.name
                    )),
                    e => e,
                })?;
            } else {
                let done = sqlx::query(
                    "UPDATE backup_jobs SET version = $3, updated_at = $4, agent = $5, \
                     policy = $6, body = $7 \
                     WHERE tenant_id = $1 AND name = $2 AND version = $3 - 1",
                )
                .bind(ctx.tenant.to_string())
                .bind(&row.name)
                .bind(row.version)
                .bind(row.updated_at.0)
                .bind(&row.agent)
                .bind(&row.policy)
                .bind(&body)
                .execute(&mut *tx)
                .await
                .db()?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "the backup job {} was changed by someone else meanwhile (or is gone); \
                         reload and try again",
                        row.name
                    )));
                }
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn get_backup_job(&self, ctx: TenantCtx, name: &str) -> StoreResult<BackupJobRow> {
        let sql = format!(
            "SELECT {} FROM backup_jobs WHERE tenant_id = $1 AND name = $2",
            JOB_COLS.join(", ")
        );
        let rows: Vec<BackupJobRow> = self
            .records::<JobRow, BackupJobRow>(
                &sql,
                JOB_COLS,
                "name",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(name.to_string()),
                ],
            )
            .await?;
        rows.into_iter().next().ok_or(StoreError::NotFound)
    }

    async fn delete_backup_job(
        &self,
        ctx: TenantCtx,
        name: &str,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let done = sqlx::query("DELETE FROM backup_jobs WHERE tenant_id = $1 AND name = $2")
                .bind(ctx.tenant.to_string())
                .bind(name)
                .execute(&mut *tx)
                .await
                .db()?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn list_backup_jobs(
        &self,
        ctx: TenantCtx,
        tenant: Option<TenantId>,
        agent: Option<&str>,
    ) -> StoreResult<Vec<BackupJobRow>> {
        let mut sql = format!(
            "SELECT {} FROM backup_jobs WHERE {VISIBLE}",
            JOB_COLS.join(", ")
        );
        let mut binds = vec![Bind::Text(ctx.tenant.to_string())];
        if let Some(t) = tenant {
            binds.push(Bind::Text(t.to_string()));
            sql.push_str(&format!(" AND tenant_id = ${}", binds.len()));
        }
        if let Some(a) = agent {
            binds.push(Bind::Text(a.to_string()));
            sql.push_str(&format!(" AND agent = ${}", binds.len()));
        }
        sql.push_str(" ORDER BY tenant_id, name LIMIT 10000");
        self.records::<JobRow, BackupJobRow>(&sql, JOB_COLS, "tenant_id, name", &binds)
            .await
    }

    async fn claim_backup_job(
        &self,
        ctx: TenantCtx,
        name: &str,
        lease_id: Uuid,
        agent: &str,
        now: Timestamp,
        until: Timestamp,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE backup_jobs SET lease_id = $3, lease_agent = $4, lease_until = $6 \
                 WHERE tenant_id = $1 AND name = $2 AND (lease_until IS NULL OR lease_until <= $5)",
            )
            .bind(ctx.tenant.to_string())
            .bind(name)
            .bind(lease_id.to_string())
            .bind(agent)
            .bind(now.0)
            .bind(until.0)
            .execute(&mut *tx)
            .await
            .db()?;
            if done.rows_affected() != 1 {
                let exists: Option<(i64,)> = sqlx::query_as(
                    "SELECT version FROM backup_jobs WHERE tenant_id = $1 AND name = $2",
                )
                .bind(ctx.tenant.to_string())
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
                return Err(match exists {
                    None => StoreError::NotFound,
                    Some(_) => StoreError::Conflict(format!(
                        "the backup job {name} is being run by another agent"
                    )),
                });
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn renew_backup_job(
        &self,
        ctx: TenantCtx,
        name: &str,
        lease_id: Uuid,
        now: Timestamp,
        until: Timestamp,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE backup_jobs SET lease_until = $5 WHERE tenant_id = $1 AND name = $2 \
                 AND lease_id = $3 AND lease_until > $4",
            )
            .bind(ctx.tenant.to_string())
            .bind(name)
            .bind(lease_id.to_string())
            .bind(now.0)
            .bind(until.0)
            .execute(&mut *tx)
            .await
            .db()?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!(
                    "the lease on the backup job {name} is no longer held (it expired, or the \
                     job was removed)"
                )));
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn finish_backup_job(
        &self,
        ctx: TenantCtx,
        name: &str,
        lease_id: Uuid,
        state: &serde_json::Value,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let state = text_of("backup job state", state)?;
        with_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE backup_jobs SET state = $4, lease_id = NULL, lease_agent = NULL, \
                 lease_until = NULL WHERE tenant_id = $1 AND name = $2 AND lease_id = $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(name)
            .bind(lease_id.to_string())
            .bind(&state)
            .execute(&mut *tx)
            .await
            .db()?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!(
                    "the lease on the backup job {name} is no longer held (it expired, or the \
                     job was removed)"
                )));
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }
}
