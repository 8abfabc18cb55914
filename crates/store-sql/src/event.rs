//! `EventStore` over SQL: security events, ingestion batches (idempotency) and retention.

use async_trait::async_trait;
use parapet_store::{
    AlertHit, AuditEvent, EventFilter, EventStore, Ingested, Page, Purged, StoreError, StoreResult,
    StoredEvent,
};
use parapet_types::{AssetId, TenantCtx, TenantId, Timestamp};
use serde::Deserialize;
use sqlx::Row;

use crate::audit::insert_audit;
use crate::rows::{Bind, uuid};
use crate::{DbResult, SqlStore, with_pool, with_tx};

#[derive(Debug, Deserialize)]
pub(crate) struct EventRow {
    pub id: String,
    pub tenant_id: String,
    pub time: i64,
    pub received_at: i64,
    pub host: Option<String>,
    pub source: Option<String>,
    pub severity: String,
    pub message: Option<String>,
    pub asset_id: Option<String>,
    pub batch_id: String,
    pub raw: String,
}

const COLS: &[&str] = &[
    "id",
    "tenant_id",
    "time",
    "received_at",
    "host",
    "source",
    "severity",
    "message",
    "asset_id",
    "batch_id",
    "raw",
];

const SELECT: &str = "SELECT id, tenant_id, time, received_at, host, source, severity, message, \
    asset_id, batch_id, raw FROM events";

impl TryFrom<EventRow> for StoredEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> StoreResult<StoredEvent> {
        Ok(StoredEvent {
            id: uuid("event id", &r.id)?,
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            time: Timestamp(r.time),
            received_at: Timestamp(r.received_at),
            host: r.host,
            source: r.source,
            severity: r.severity,
            message: r.message,
            asset: match r.asset_id {
                Some(a) => Some(AssetId(uuid("asset id", &a)?)),
                None => None,
            },
            batch: uuid("batch id", &r.batch_id)?,
            raw: r.raw,
        })
    }
}

/// Rows per multi-row `INSERT` (11 parameters each, well under both backends' limits).
const CHUNK: usize = 500;

/// `INSERT INTO events … VALUES ($1, …), (…)` for `n` rows.
fn insert_sql(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO events (id, tenant_id, time, received_at, host, source, severity, message, \
         asset_id, batch_id, raw) VALUES ",
    );
    for row in 0..n {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..COLS.len() {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", row * COLS.len() + col + 1));
        }
        sql.push(')');
    }
    sql
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Parses a search cursor `<time>:<id>`.
fn cursor(after: Option<&str>) -> (i64, String) {
    match after.and_then(|a| a.split_once(':')) {
        Some((t, id)) => match t.parse::<i64>() {
            Ok(t) => (t, id.to_string()),
            Err(_) => (i64::MIN, String::new()),
        },
        None => (i64::MAX, String::new()),
    }
}

fn check_tenant(ctx: TenantCtx, events: &[StoredEvent]) -> StoreResult<()> {
    if events.iter().all(|e| e.tenant == ctx.tenant) {
        Ok(())
    } else {
        Err(StoreError::Other(
            "events can only be written within their own tenant".into(),
        ))
    }
}

#[async_trait]
impl EventStore for SqlStore {
    async fn ingest_events(
        &self,
        ctx: TenantCtx,
        key: Option<&str>,
        response: &str,
        events: &[StoredEvent],
        hits: &[AlertHit],
        window_start: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<Ingested> {
        check_tenant(ctx, events)?;
        let batch = events.first().map(|e| e.batch.to_string());
        let full_sql = insert_sql(CHUNK);
        let replay = with_tx!(self, |tx| {
            let mut replay = None;
            if let Some(key) = key {
                let done = sqlx::query(
                    "INSERT INTO event_batches (tenant_id, idempotency_key, batch_id, response, \
                     created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
                )
                .bind(ctx.tenant.to_string())
                .bind(key.to_string())
                .bind(batch.clone().unwrap_or_default())
                .bind(response.to_string())
                .bind(audit.time.0)
                .execute(&mut *tx)
                .await
                .db()?;
                if done.rows_affected() == 0 {
                    let row = sqlx::query(
                        "SELECT response FROM event_batches \
                         WHERE tenant_id = $1 AND idempotency_key = $2",
                    )
                    .bind(ctx.tenant.to_string())
                    .bind(key.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .db()?;
                    replay = Some(row.try_get::<String, _>("response").db()?);
                }
            }
            if replay.is_none() {
                for chunk in events.chunks(CHUNK) {
                    let sql = if chunk.len() == CHUNK {
                        full_sql.clone()
                    } else {
                        insert_sql(chunk.len())
                    };
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for e in chunk {
                        q = q
                            .bind(e.id.to_string())
                            .bind(e.tenant.to_string())
                            .bind(e.time.0)
                            .bind(e.received_at.0)
                            .bind(e.host.clone())
                            .bind(e.source.clone())
                            .bind(e.severity.clone())
                            .bind(e.message.clone())
                            .bind(e.asset.map(|a| a.to_string()))
                            .bind(e.batch.to_string())
                            .bind(e.raw.clone());
                    }
                    q.execute(&mut *tx).await.db()?;
                }
                // When data last arrived from each asset of the batch (the health view and the
                // silent-asset check read it).
                let mut assets: Vec<AssetId> = events.iter().filter_map(|e| e.asset).collect();
                assets.sort_unstable_by_key(|a| a.0);
                assets.dedup();
                for a in assets {
                    sqlx::query(
                        "UPDATE assets SET last_seen_at = $3, health = CASE WHEN health = \
                         'silent' THEN 'unknown' ELSE health END WHERE tenant_id = $1 AND id = $2 \
                         AND (last_seen_at IS NULL OR last_seen_at < $3)",
                    )
                    .bind(ctx.tenant.to_string())
                    .bind(a.to_string())
                    .bind(audit.time.0)
                    .execute(&mut *tx)
                    .await
                    .db()?;
                }
                let alerts = crate::alert::apply_hits!(tx, ctx, hits, window_start, audit.time);
                let mut audit = audit.clone();
                if let Some(d) = audit.details.as_object_mut() {
                    d.insert("alerts_raised".into(), alerts.created.into());
                }
                insert_audit!(&mut *tx, &audit);
                Ingested {
                    replay: None,
                    alerts,
                }
            } else {
                Ingested {
                    replay,
                    alerts: Default::default(),
                }
            }
        });
        Ok(replay)
    }

    async fn search_events(
        &self,
        ctx: TenantCtx,
        filter: &EventFilter,
        page: &Page,
    ) -> StoreResult<Vec<StoredEvent>> {
        let (after_time, after_id) = cursor(page.after.as_deref());
        let mut sql = format!(
            "{SELECT} WHERE tenant_id = $1 AND time >= $2 AND time < $3 \
             AND ($4 = '' OR host = $4) AND ($5 = '' OR source = $5) \
             AND ($6 = '' OR severity = $6) AND ($7 = '' OR asset_id = $7) \
             AND ($8 = '' OR batch_id = $8) \
             AND (time < $9 OR (time = $9 AND id < $10))"
        );
        let mut binds = vec![
            Bind::Text(ctx.tenant.to_string()),
            Bind::I64(filter.from.map_or(i64::MIN, |t| t.0)),
            Bind::I64(filter.to.map_or(i64::MAX, |t| t.0)),
            Bind::Text(filter.host.clone().unwrap_or_default()),
            Bind::Text(filter.source.clone().unwrap_or_default()),
            Bind::Text(filter.severity.clone().unwrap_or_default()),
            Bind::Text(filter.asset.map(|a| a.to_string()).unwrap_or_default()),
            Bind::Text(filter.batch.map(|b| b.to_string()).unwrap_or_default()),
            Bind::I64(after_time),
            Bind::Text(after_id),
        ];
        for c in filter.contains.iter().take(8) {
            binds.push(Bind::Text(format!("%{}%", like_escape(&c.to_lowercase()))));
            sql.push_str(&format!(
                " AND lower(raw) LIKE ${} ESCAPE '\\'",
                binds.len()
            ));
        }
        binds.push(Bind::I64(i64::from(page.limit.clamp(1, 5001))));
        sql.push_str(&format!(
            " ORDER BY time DESC, id DESC LIMIT ${}",
            binds.len()
        ));
        self.records::<EventRow, StoredEvent>(&sql, COLS, "time DESC, id DESC", &binds)
            .await
    }

    async fn get_event(&self, ctx: TenantCtx, id: uuid::Uuid) -> StoreResult<StoredEvent> {
        let sql = format!("{SELECT} WHERE tenant_id = $1 AND id = $2");
        let rows: Vec<StoredEvent> = self
            .records::<EventRow, StoredEvent>(
                &sql,
                COLS,
                "id",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(id.to_string()),
                ],
            )
            .await?;
        rows.into_iter().next().ok_or(StoreError::NotFound)
    }

    async fn event_retention(&self, ctx: TenantCtx) -> StoreResult<Option<u32>> {
        with_pool!(self, |pool| {
            let row = sqlx::query("SELECT days FROM event_retention WHERE tenant_id = $1")
                .bind(ctx.tenant.to_string())
                .fetch_optional(pool)
                .await
                .db()?;
            match row {
                Some(r) => {
                    let d: i32 = r.try_get("days").db()?;
                    Ok(u32::try_from(d).ok())
                }
                None => Ok(None),
            }
        })
    }

    async fn set_event_retention(
        &self,
        ctx: TenantCtx,
        days: u32,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let days =
            i32::try_from(days).map_err(|_| StoreError::Other("retention out of range".into()))?;
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO event_retention (tenant_id, days, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET days = $2, updated_at = $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(days)
            .bind(audit.time.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn purge_events(
        &self,
        ctx: TenantCtx,
        before: Timestamp,
        keys_before: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<Purged> {
        let purged = with_tx!(self, |tx| {
            let events = sqlx::query("DELETE FROM events WHERE tenant_id = $1 AND time < $2")
                .bind(ctx.tenant.to_string())
                .bind(before.0)
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            let batches =
                sqlx::query("DELETE FROM event_batches WHERE tenant_id = $1 AND created_at < $2")
                    .bind(ctx.tenant.to_string())
                    .bind(keys_before.0)
                    .execute(&mut *tx)
                    .await
                    .db()?
                    .rows_affected();
            sqlx::query(
                "DELETE FROM alert_events WHERE tenant_id = $1 AND alert_id IN \
                 (SELECT id FROM alerts WHERE tenant_id = $1 AND status = 'closed' \
                 AND closed_at < $2)",
            )
            .bind(ctx.tenant.to_string())
            .bind(before.0)
            .execute(&mut *tx)
            .await
            .db()?;
            let alerts = sqlx::query(
                "DELETE FROM alerts WHERE tenant_id = $1 AND status = 'closed' AND closed_at < $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(before.0)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if events > 0 || batches > 0 || alerts > 0 {
                let mut a = audit.clone();
                if let Some(d) = a.details.as_object_mut() {
                    d.insert("events_deleted".into(), events.into());
                    d.insert("idempotency_keys_deleted".into(), batches.into());
                    d.insert("closed_alerts_deleted".into(), alerts.into());
                }
                insert_audit!(&mut *tx, &a);
            }
            Purged {
                events,
                batches,
                alerts,
            }
        });
        Ok(purged)
    }

    async fn batch_response(&self, ctx: TenantCtx, key: &str) -> StoreResult<Option<String>> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT response FROM event_batches WHERE tenant_id = $1 AND idempotency_key = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(key.to_string())
            .fetch_optional(pool)
            .await
            .db()?;
            match row {
                Some(r) => Ok(Some(r.try_get::<String, _>("response").db()?)),
                None => Ok(None),
            }
        })
    }

    async fn correlation_state(&self, ctx: TenantCtx) -> StoreResult<Option<(i64, String)>> {
        with_pool!(self, |pool| {
            let row =
                sqlx::query("SELECT version, state FROM correlation_state WHERE tenant_id = $1")
                    .bind(ctx.tenant.to_string())
                    .fetch_optional(pool)
                    .await
                    .db()?;
            match row {
                Some(r) => Ok(Some((
                    r.try_get::<i64, _>("version").db()?,
                    r.try_get::<String, _>("state").db()?,
                ))),
                None => Ok(None),
            }
        })
    }

    async fn save_correlation_state(
        &self,
        ctx: TenantCtx,
        version: i64,
        state: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO correlation_state (tenant_id, version, state, updated_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id) DO UPDATE SET version = $2, state = $3, updated_at = $4 \
                 WHERE correlation_state.version < $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(version)
            .bind(state.to_string())
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .db()?;
        });
        Ok(())
    }
}
