//! `NotifyStore` over SQL: notification channels and the outbox.

use async_trait::async_trait;
use parapet_store::{
    AttemptResult, AuditEvent, ChannelRecord, IncidentRow, NotifyStore, OutboxItem, OutboxStatus,
    Page, StoreError, StoreResult,
};
use parapet_types::{TenantCtx, TenantId, Timestamp};
use serde::Deserialize;
use uuid::Uuid;

use crate::audit::insert_audit;
use crate::incident::update_incident_row;
use crate::rows::{Bind, bad, uuid};
use crate::{DbResult, SqlStore, with_pool, with_tx};

/// Rows of `ctx`'s own tenant, or of every tenant when `ctx` is the provider.
const VISIBLE: &str = "(tenant_id = $1 OR EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 AND \
    p.kind = 'provider'))";

#[derive(Debug, Deserialize)]
struct ChannelRow {
    id: String,
    tenant_id: String,
    name: String,
    kind: String,
    config: String,
    sealed_secret: Option<String>,
    created_at: i64,
}

const CHANNEL_COLS: &[&str] = &[
    "id",
    "tenant_id",
    "name",
    "kind",
    "config",
    "sealed_secret",
    "created_at",
];

impl TryFrom<ChannelRow> for ChannelRecord {
    type Error = StoreError;
    fn try_from(r: ChannelRow) -> StoreResult<Self> {
        Ok(ChannelRecord {
            id: uuid("channel id", &r.id)?,
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            config: serde_json::from_str(&r.config)
                .map_err(|_| bad("channel config", &r.config))?,
            name: r.name,
            kind: r.kind,
            sealed_secret: r.sealed_secret,
            created_at: Timestamp(r.created_at),
        })
    }
}

#[derive(Debug, Deserialize)]
struct OutboxRow {
    id: String,
    tenant_id: String,
    channel_id: String,
    source: String,
    severity: Option<String>,
    subject: String,
    body: String,
    event_at: i64,
    created_at: i64,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    delivered_at: Option<i64>,
}

const OUTBOX_COLS: &[&str] = &[
    "id",
    "tenant_id",
    "channel_id",
    "source",
    "severity",
    "subject",
    "body",
    "event_at",
    "created_at",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "delivered_at",
];

impl TryFrom<OutboxRow> for OutboxItem {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> StoreResult<Self> {
        Ok(OutboxItem {
            id: uuid("outbox id", &r.id)?,
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            channel: uuid("channel id", &r.channel_id)?,
            status: OutboxStatus::parse(&r.status)
                .ok_or_else(|| bad("outbox status", &r.status))?,
            attempts: u32::try_from(r.attempts)
                .map_err(|_| bad("attempts", &r.attempts.to_string()))?,
            source: r.source,
            severity: r.severity,
            subject: r.subject,
            body: r.body,
            event_at: Timestamp(r.event_at),
            created_at: Timestamp(r.created_at),
            next_attempt_at: Timestamp(r.next_attempt_at),
            last_error: r.last_error,
            delivered_at: r.delivered_at.map(Timestamp),
        })
    }
}

/// Inserts outbox item `$i` on `$tx`.
macro_rules! insert_outbox {
    ($tx:expr, $i:expr) => {{
        let i: &OutboxItem = $i;
        sqlx::query(
            "INSERT INTO notify_outbox (id, tenant_id, channel_id, source, severity, subject, \
             body, event_at, created_at, status, attempts, next_attempt_at, last_error, \
             delivered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(i.id.to_string())
        .bind(i.tenant.to_string())
        .bind(i.channel.to_string())
        .bind(i.source.clone())
        .bind(i.severity.clone())
        .bind(i.subject.clone())
        .bind(i.body.clone())
        .bind(i.event_at.0)
        .bind(i.created_at.0)
        .bind(i.status.as_str())
        .bind(i64::from(i.attempts))
        .bind(i.next_attempt_at.0)
        .bind(i.last_error.clone())
        .bind(i.delivered_at.map(|t| t.0))
        .execute(&mut *$tx)
        .await
        .db()?;
    }};
}

fn outbox_select() -> String {
    format!("SELECT {} FROM notify_outbox", OUTBOX_COLS.join(", "))
}

#[async_trait]
impl NotifyStore for SqlStore {
    async fn create_channel(
        &self,
        ctx: TenantCtx,
        c: &ChannelRecord,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if c.tenant != ctx.tenant {
            return Err(StoreError::Other(
                "a channel can only be written within its own tenant".into(),
            ));
        }
        let config = serde_json::to_string(&c.config)
            .map_err(|e| StoreError::Other(format!("cannot encode channel: {e}")))?;
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO notify_channels (id, tenant_id, name, name_key, kind, config, \
                 sealed_secret, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(c.id.to_string())
            .bind(c.tenant.to_string())
            .bind(c.name.clone())
            .bind(c.name.to_lowercase())
            .bind(c.kind.clone())
            .bind(config.clone())
            .bind(c.sealed_secret.clone())
            .bind(c.created_at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn notify_local_secrets(
        &self,
        ctx: TenantCtx,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<(TenantId, Uuid, String)>> {
        let rows: Vec<(String, String, String)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT c.tenant_id, c.id, c.sealed_secret FROM notify_channels c \
                 WHERE EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 AND p.kind = 'provider') \
                 AND c.sealed_secret IS NOT NULL AND c.sealed_secret NOT LIKE 'kms:%' \
                 AND c.id > $2 ORDER BY c.id LIMIT $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(after.map(|a| a.to_string()).unwrap_or_default())
            .bind(limit)
            .fetch_all(pool)
            .await
            .db()?
        });
        rows.into_iter()
            .map(|(t, c, sealed)| {
                Ok((
                    TenantId(uuid("tenant id", &t)?),
                    uuid("channel id", &c)?,
                    sealed,
                ))
            })
            .collect()
    }

    async fn notify_reseal_secret(
        &self,
        ctx: TenantCtx,
        channel: Uuid,
        old: &str,
        new: &str,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let changed = with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE notify_channels SET sealed_secret = $4 WHERE tenant_id = $1 AND id = $2 \
                 AND sealed_secret = $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(channel.to_string())
            .bind(old)
            .bind(new)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n == 1 {
                insert_audit!(&mut *tx, audit);
            }
            n == 1
        });
        Ok(changed)
    }

    async fn list_channels(&self, ctx: TenantCtx) -> StoreResult<Vec<ChannelRecord>> {
        let sql = format!(
            "SELECT {} FROM notify_channels WHERE tenant_id = $1 ORDER BY name_key",
            CHANNEL_COLS.join(", ")
        );
        self.records::<ChannelRow, ChannelRecord>(
            &sql,
            CHANNEL_COLS,
            "name",
            &[Bind::Text(ctx.tenant.to_string())],
        )
        .await
    }

    async fn get_channel(&self, ctx: TenantCtx, id_or_name: &str) -> StoreResult<ChannelRecord> {
        let sql = format!(
            "SELECT {} FROM notify_channels WHERE tenant_id = $1 AND (id = $2 OR name_key = $3)",
            CHANNEL_COLS.join(", ")
        );
        let rows: Vec<ChannelRecord> = self
            .records::<ChannelRow, ChannelRecord>(
                &sql,
                CHANNEL_COLS,
                "name",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(id_or_name.to_string()),
                    Bind::Text(id_or_name.to_lowercase()),
                ],
            )
            .await?;
        rows.into_iter().next().ok_or(StoreError::NotFound)
    }

    async fn delete_channel(
        &self,
        ctx: TenantCtx,
        id: Uuid,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let done = sqlx::query("DELETE FROM notify_channels WHERE id = $1 AND tenant_id = $2")
                .bind(id.to_string())
                .bind(ctx.tenant.to_string())
                .execute(&mut *tx)
                .await
                .db()?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn enqueue(
        &self,
        ctx: TenantCtx,
        items: &[OutboxItem],
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        if items.iter().any(|i| i.tenant != ctx.tenant) {
            return Err(StoreError::Other(
                "an outbox message can only be written within its own tenant".into(),
            ));
        }
        with_tx!(self, |tx| {
            for i in items {
                insert_outbox!(tx, i);
            }
            for a in audit {
                insert_audit!(&mut *tx, a);
            }
        });
        Ok(())
    }

    async fn due_outbox(
        &self,
        ctx: TenantCtx,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        let limit = limit.clamp(1, 10_000);
        let sql = format!(
            "{} WHERE status = 'pending' AND next_attempt_at <= $2 AND {VISIBLE} \
             ORDER BY next_attempt_at LIMIT {limit}",
            outbox_select()
        );
        self.records::<OutboxRow, OutboxItem>(
            &sql,
            OUTBOX_COLS,
            "next_attempt_at",
            &[Bind::Text(ctx.tenant.to_string()), Bind::I64(now.0)],
        )
        .await
    }

    async fn claim_outbox(
        &self,
        ctx: TenantCtx,
        id: Uuid,
        seen: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE notify_outbox SET next_attempt_at = $4 WHERE id = $2 AND status = 'pending' \
             AND next_attempt_at = $3 AND {VISIBLE}"
        );
        let n = with_tx!(self, |tx| {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(ctx.tenant.to_string())
                .bind(id.to_string())
                .bind(seen.0)
                .bind(until.0)
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected()
        });
        Ok(n == 1)
    }

    async fn update_outbox(
        &self,
        ctx: TenantCtx,
        id: Uuid,
        r: &AttemptResult,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let sql = format!(
            "UPDATE notify_outbox SET status = $3, attempts = $4, next_attempt_at = $5, \
             last_error = $6, delivered_at = $7 WHERE id = $2 AND {VISIBLE}"
        );
        with_tx!(self, |tx| {
            let done = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(ctx.tenant.to_string())
                .bind(id.to_string())
                .bind(r.status.as_str())
                .bind(i64::from(r.attempts))
                .bind(r.next_attempt_at.0)
                .bind(r.last_error.clone())
                .bind(r.delivered_at.map(|t| t.0))
                .execute(&mut *tx)
                .await
                .db()?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn get_outbox(&self, ctx: TenantCtx, id: Uuid) -> StoreResult<OutboxItem> {
        let sql = format!("{} WHERE id = $2 AND tenant_id = $1", outbox_select());
        let rows: Vec<OutboxItem> = self
            .records::<OutboxRow, OutboxItem>(
                &sql,
                OUTBOX_COLS,
                "id",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(id.to_string()),
                ],
            )
            .await?;
        rows.into_iter().next().ok_or(StoreError::NotFound)
    }

    async fn list_outbox(
        &self,
        ctx: TenantCtx,
        status: Option<OutboxStatus>,
        page: &Page,
    ) -> StoreResult<Vec<OutboxItem>> {
        let limit = page.limit.clamp(1, 1001);
        let mut binds = vec![Bind::Text(ctx.tenant.to_string())];
        let mut sql = format!("{} WHERE tenant_id = $1", outbox_select());
        if let Some(s) = status {
            binds.push(Bind::Text(s.as_str().into()));
            sql.push_str(&format!(" AND status = ${}", binds.len()));
        }
        if let Some(after) = &page.after {
            binds.push(Bind::Text(after.clone()));
            sql.push_str(&format!(" AND id < ${}", binds.len()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        self.records::<OutboxRow, OutboxItem>(&sql, OUTBOX_COLS, "id DESC", &binds)
            .await
    }

    async fn update_incident_with_outbox(
        &self,
        ctx: TenantCtx,
        row: &IncidentRow,
        audit: &[AuditEvent],
        outbox: &[OutboxItem],
    ) -> StoreResult<()> {
        let body = crate::incident::body_text(row)?;
        let foreign = outbox.iter().any(|i| i.tenant != ctx.tenant);
        with_tx!(self, |tx| {
            if foreign {
                let kind: Option<String> =
                    sqlx::query_scalar("SELECT kind FROM tenants WHERE id = $1")
                        .bind(ctx.tenant.to_string())
                        .fetch_optional(&mut *tx)
                        .await
                        .db()?;
                if kind.as_deref() != Some("provider") {
                    return Err(StoreError::Other(
                        "only the provider queues messages for other tenants".into(),
                    ));
                }
            }
            let done = update_incident_row!(tx, ctx, row, &body);
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(
                    "the incident was changed by someone else meanwhile; reload and try again"
                        .into(),
                ));
            }
            for i in outbox {
                insert_outbox!(tx, i);
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn update_plan_with_outbox(
        &self,
        ctx: TenantCtx,
        row: &parapet_store::PlanRow,
        audit: &[AuditEvent],
        outbox: &[OutboxItem],
    ) -> StoreResult<()> {
        if outbox.iter().any(|i| i.tenant != ctx.tenant) {
            return Err(StoreError::Other(
                "a plan's messages belong to the plan's tenant".into(),
            ));
        }
        let body = crate::incident::plan_body(row)?;
        with_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE emergency_plans SET version = $3, review_due_at = $4, updated_at = $5, \
                 body = $6 WHERE tenant_id = $1 AND name = $2 AND version = $3 - 1",
            )
            .bind(ctx.tenant.to_string())
            .bind(&row.name)
            .bind(row.version)
            .bind(row.review_due_at.0)
            .bind(row.updated_at.0)
            .bind(&body)
            .execute(&mut *tx)
            .await
            .db()?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(
                    "the plan was changed by someone else meanwhile; reload and try again".into(),
                ));
            }
            for i in outbox {
                insert_outbox!(tx, i);
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }
}
