//! `AuditStore` over SQL. The table is append-only (enforced by triggers on both backends).

use async_trait::async_trait;
use parapet_store::{
    AuditEvent, AuditFilter, AuditRecord, AuditStore, Page, StoreError, StoreResult,
};
use parapet_types::TenantCtx;

use crate::rows::{AUDIT_COLS, AuditRow, Bind};
use crate::{DbResult, SqlStore, with_tx};

pub(crate) const INSERT: &str = "INSERT INTO audit_events (time, tenant_id, actor, actor_label, action, \
    target, source_ip, user_agent, outcome, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    RETURNING id";

/// Inserts the event `$e` on the executor `$exec` of an open transaction and yields its id.
/// Every state change calls this within its own transaction, so the change and its record commit
/// or roll back together.
macro_rules! insert_audit {
    ($exec:expr, $e:expr) => {{
        let e: &parapet_store::AuditEvent = $e;
        let row = sqlx::query($crate::audit::INSERT)
            .bind(e.time.0)
            .bind(e.tenant.map(|t| t.to_string()))
            .bind(serde_json::to_string(&e.actor).unwrap_or_default())
            .bind(e.actor.label())
            .bind(e.action.clone())
            .bind(e.target.clone())
            .bind(e.source_ip.clone())
            .bind(e.user_agent.clone())
            .bind(e.outcome.as_str())
            .bind(e.details.to_string())
            .fetch_one($exec)
            .await
            .db()?;
        let id: i64 = sqlx::Row::try_get(&row, 0usize).db()?;
        id
    }};
}
pub(crate) use insert_audit;

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<i64> {
        let id = with_tx!(self, |tx| { insert_audit!(&mut *tx, event) });
        Ok(id)
    }

    async fn list_audit(
        &self,
        ctx: TenantCtx,
        filter: &AuditFilter,
        page: &Page,
    ) -> StoreResult<Vec<AuditRecord>> {
        let mut sql = String::from(
            "SELECT id, time, tenant_id, actor, action, target, source_ip, user_agent, outcome, \
             details FROM audit_events WHERE (tenant_id = $1 OR EXISTS (SELECT 1 FROM tenants p \
             WHERE p.id = $1 AND p.kind = 'provider'))",
        );
        let mut binds = vec![Bind::Text(ctx.tenant.to_string())];
        let mut push = |cond: &str, b: Bind| {
            binds.push(b);
            sql.push_str(&format!(" AND {cond} ${}", binds.len()));
        };
        if let Some(after) = page.after.as_deref().filter(|a| !a.is_empty()) {
            let after: i64 = after
                .parse()
                .map_err(|_| StoreError::Other(format!("invalid cursor {after:?}")))?;
            push("id <", Bind::I64(after));
        }
        if let Some(a) = &filter.action {
            push("action =", Bind::Text(a.clone()));
        }
        if let Some(a) = &filter.actor {
            push("actor_label =", Bind::Text(a.clone()));
        }
        if let Some(t) = filter.since {
            push("time >=", Bind::I64(t.0));
        }
        if let Some(t) = filter.until {
            push("time <", Bind::I64(t.0));
        }
        binds.push(Bind::I64(i64::from(page.limit.clamp(1, 1000))));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", binds.len()));

        self.records::<AuditRow, AuditRecord>(&sql, AUDIT_COLS, "id DESC", &binds)
            .await
    }
}
