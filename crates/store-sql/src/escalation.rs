//! `EscalationStore` over SQL.

use async_trait::async_trait;
use parapet_store::{AuditEvent, EscalationCandidate, EscalationStore, StoreError, StoreResult};
use parapet_types::{TenantCtx, Timestamp};
use serde::Deserialize;
use sqlx::Row;

use crate::audit::insert_audit;
use crate::rows::{Bind, uuid};
use crate::{DbResult, SqlStore, with_pool, with_tx};

#[derive(Debug, Deserialize)]
struct CandidateRow {
    id: String,
    created_at: i64,
    step: Option<i64>,
    next_at: Option<i64>,
}

impl TryFrom<CandidateRow> for EscalationCandidate {
    type Error = StoreError;
    fn try_from(r: CandidateRow) -> StoreResult<EscalationCandidate> {
        Ok(EscalationCandidate {
            alert: uuid("alert id", &r.id)?,
            created_at: Timestamp(r.created_at),
            step: r.step,
            next_at: r.next_at.map(Timestamp),
        })
    }
}

#[async_trait]
impl EscalationStore for SqlStore {
    async fn put_escalation_policy(
        &self,
        ctx: TenantCtx,
        policy: Option<&str>,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            match policy {
                Some(p) => {
                    sqlx::query(
                        "INSERT INTO alert_escalation_policies (tenant_id, policy, updated_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE SET policy = $2, \
                         updated_at = $3",
                    )
                    .bind(ctx.tenant.to_string())
                    .bind(p.to_string())
                    .bind(audit.time.0)
                    .execute(&mut *tx)
                    .await
                    .db()?;
                }
                None => {
                    sqlx::query("DELETE FROM alert_escalation_policies WHERE tenant_id = $1")
                        .bind(ctx.tenant.to_string())
                        .execute(&mut *tx)
                        .await
                        .db()?;
                }
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn escalation_policy(&self, ctx: TenantCtx) -> StoreResult<Option<String>> {
        with_pool!(self, |pool| {
            let row =
                sqlx::query("SELECT policy FROM alert_escalation_policies WHERE tenant_id = $1")
                    .bind(ctx.tenant.to_string())
                    .fetch_optional(pool)
                    .await
                    .db()?;
            match row {
                Some(r) => Ok(Some(r.try_get::<String, _>("policy").db()?)),
                None => Ok(None),
            }
        })
    }

    async fn escalation_candidates(
        &self,
        ctx: TenantCtx,
        now: Timestamp,
        first_delay_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<EscalationCandidate>> {
        self.records::<CandidateRow, EscalationCandidate>(
            "SELECT a.id AS id, a.created_at AS created_at, e.step AS step, e.next_at AS next_at \
             FROM alerts a LEFT JOIN alert_escalations e ON e.alert_id = a.id \
             AND e.tenant_id = a.tenant_id WHERE a.tenant_id = $1 AND a.status = 'open' \
             AND ((e.alert_id IS NULL AND a.created_at <= $2 - $3) \
             OR (e.next_at IS NOT NULL AND e.next_at <= $2)) \
             ORDER BY a.created_at, a.id LIMIT $4",
            &["id", "created_at", "step", "next_at"],
            "created_at, id",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::I64(now.0),
                Bind::I64(first_delay_ms),
                Bind::I64(i64::from(limit)),
            ],
        )
        .await
    }

    async fn advance_escalation(
        &self,
        ctx: TenantCtx,
        alert: uuid::Uuid,
        expected: Option<i64>,
        step: i64,
        next_at: Option<Timestamp>,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let moved = with_tx!(self, |tx| {
            let done = match expected {
                None => sqlx::query(
                    "INSERT INTO alert_escalations (alert_id, tenant_id, step, next_at, \
                     updated_at) SELECT id, tenant_id, $3, $4, $5 FROM alerts \
                     WHERE id = $1 AND tenant_id = $2 ON CONFLICT (alert_id) DO NOTHING",
                )
                .bind(alert.to_string())
                .bind(ctx.tenant.to_string())
                .bind(step)
                .bind(next_at.map(|t| t.0))
                .bind(audit.time.0)
                .execute(&mut *tx)
                .await
                .db()?,
                Some(e) => sqlx::query(
                    "UPDATE alert_escalations SET step = $3, next_at = $4, updated_at = $5 \
                     WHERE alert_id = $1 AND tenant_id = $2 AND step = $6",
                )
                .bind(alert.to_string())
                .bind(ctx.tenant.to_string())
                .bind(step)
                .bind(next_at.map(|t| t.0))
                .bind(audit.time.0)
                .bind(e)
                .execute(&mut *tx)
                .await
                .db()?,
            };
            let moved = done.rows_affected() == 1;
            if moved {
                insert_audit!(&mut *tx, audit);
            }
            moved
        });
        Ok(moved)
    }
}
