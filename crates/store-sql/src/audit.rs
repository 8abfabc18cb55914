//! `AuditStore` over SQL. The table is append-only (enforced by triggers on both backends).

use async_trait::async_trait;
use parapet_store::{
    AuditEvent, AuditFilter, AuditLogStore, AuditRecord, AuditStore, Integration, LogHead, Page,
    StoreError, StoreResult, StoredCheckpoint, StoredTile,
};
use parapet_types::TenantCtx;
use parapet_types::Timestamp;
use sqlx::{AssertSqlSafe, Row};

use crate::rows::{AUDIT_COLS, AuditRow, Bind};
use crate::{DbResult, SqlStore, with_pool, with_tx};

pub(crate) const NEXT_SEQ: &str =
    "UPDATE audit_head SET next_seq = next_seq + $1 WHERE one = 1 RETURNING next_seq - $1";

pub(crate) const INSERT: &str = "INSERT INTO audit_events (seq, time, tenant_id, actor, actor_label, \
    action, target, source_ip, user_agent, outcome, details) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Binds the ten event columns of [`INSERT`] after the index.
macro_rules! bind_event {
    ($q:expr, $e:expr) => {{
        let e: &parapet_store::AuditEvent = $e;
        $q.bind(e.time.0)
            .bind(e.tenant.map(|t| t.to_string()))
            .bind(serde_json::to_string(&e.actor).unwrap_or_default())
            .bind(e.actor.label())
            .bind(e.action.clone())
            .bind(e.target.clone())
            .bind(e.source_ip.clone())
            .bind(e.user_agent.clone())
            .bind(e.outcome.as_str())
            .bind(e.details.to_string())
    }};
}
pub(crate) use bind_event;

/// Takes `$n` log indexes from the counter on the executor `$exec` of an open transaction and
/// yields the first. The counter row stays locked until the transaction ends, so indexes commit
/// in order and a rollback gives them back.
macro_rules! next_seq {
    ($exec:expr, $n:expr) => {{
        let n: i64 = $n;
        let row = sqlx::query($crate::audit::NEXT_SEQ)
            .bind(n)
            .fetch_one($exec)
            .await
            .db()?;
        let first: i64 = sqlx::Row::try_get(&row, 0usize).db()?;
        first
    }};
}
pub(crate) use next_seq;

/// Inserts the event `$e` on the executor `$exec` of an open transaction and yields its log
/// index. Every state change calls this within its own transaction, so the change and its record
/// commit or roll back together.
macro_rules! insert_audit {
    ($exec:expr, $e:expr) => {{
        let e: &parapet_store::AuditEvent = $e;
        let seq = $crate::audit::next_seq!(&mut *$exec, 1);
        $crate::audit::bind_event!(sqlx::query($crate::audit::INSERT).bind(seq), e)
            .execute(&mut *$exec)
            .await
            .db()?;
        seq
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
            "SELECT seq AS id, time, tenant_id, actor, action, target, source_ip, user_agent, \
             outcome, details FROM audit_events WHERE (tenant_id = $1 OR EXISTS (SELECT 1 FROM \
             tenants p WHERE p.id = $1 AND p.kind = 'provider'))",
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
            push("seq <", Bind::I64(after));
        }
        if let Some(t) = filter.tenant {
            push("tenant_id =", Bind::Text(t.to_string()));
        }
        if let Some(a) = &filter.target {
            push("target =", Bind::Text(a.clone()));
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
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", binds.len()));

        self.records::<AuditRow, AuditRecord>(&sql, AUDIT_COLS, "id DESC", &binds)
            .await
    }
}

/// Rows per statement of a batch append (11 parameters a row, under both backends' limits).
const BATCH_ROWS: usize = 500;

/// Key of the PostgreSQL advisory lock held by the one sequencer.
const SEQUENCER_LOCK: i64 = 0x7061_7261_7065_7403;

const HEAD_COLS: &str = "SELECT origin, vkey, size, root, updated_at FROM audit_log WHERE one = 1";

fn u64_of(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Other(format!("negative {what} {v}")))
}

fn i64_of(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Other(format!("{v} is out of range")))
}

fn hash_of(v: Vec<u8>) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(v.as_slice())
        .map_err(|_| StoreError::Other(format!("a stored hash has {} bytes", v.len())))
}

fn head_from<R: Row>(r: &R) -> StoreResult<LogHead>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(LogHead {
        origin: r.try_get("origin").db()?,
        vkey: r.try_get("vkey").db()?,
        size: u64_of(r.try_get("size").db()?, "size")?,
        root: hash_of(r.try_get("root").db()?)?,
        updated_at: Timestamp(r.try_get("updated_at").db()?),
    })
}

fn checkpoint_from<R: Row>(r: &R) -> StoreResult<StoredCheckpoint>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredCheckpoint {
        size: u64_of(r.try_get("size").db()?, "size")?,
        root: hash_of(r.try_get("root").db()?)?,
        time: Timestamp(r.try_get("time").db()?),
        signed: r.try_get("signed").db()?,
    })
}

fn tile_from<R: Row>(r: &R) -> StoreResult<StoredTile>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let level: i32 = r.try_get("level").db()?;
    let width: i32 = r.try_get("width").db()?;
    Ok(StoredTile {
        level: u8::try_from(level).map_err(|_| StoreError::Other(format!("tile level {level}")))?,
        index: u64_of(r.try_get("idx").db()?, "tile index")?,
        width: u16::try_from(width)
            .map_err(|_| StoreError::Other(format!("tile width {width}")))?,
        hashes: r.try_get("hashes").db()?,
    })
}

#[async_trait]
impl AuditLogStore for SqlStore {
    async fn append_audit_batch(&self, events: &[AuditEvent]) -> StoreResult<u64> {
        let n =
            i64::try_from(events.len()).map_err(|_| StoreError::Other("too many events".into()))?;
        // SQLite gets anonymous `?` parameters: sqlx looks every parameter's name up with
        // `sqlite3_bind_parameter_name`, a linear search over the statement's named parameters,
        // so 5,500 `$N` parameters cost 15 million steps a statement (perf: 80% of the CPU of a
        // batch append, 12,000 records/s); anonymous ones have no name to search for.
        let anonymous = matches!(self.db, crate::Db::Sqlite(_));
        let first = with_tx!(self, |tx| {
            let first = next_seq!(&mut *tx, n);
            let mut seq = first;
            for chunk in events.chunks(BATCH_ROWS) {
                let mut sql = String::from(
                    "INSERT INTO audit_events (seq, time, tenant_id, actor, actor_label, action, \
                     target, source_ip, user_agent, outcome, details) VALUES ",
                );
                for i in 0..chunk.len() {
                    let b = i * 11;
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    if anonymous {
                        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
                        continue;
                    }
                    sql.push('(');
                    sql.push_str(
                        &(1..=11)
                            .map(|k| format!("${}", b + k))
                            .collect::<Vec<_>>()
                            .join(", "),
                    );
                    sql.push(')');
                }
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for e in chunk {
                    q = bind_event!(q.bind(seq), e);
                    seq += 1;
                }
                q.execute(&mut *tx).await.db()?;
            }
            first
        });
        u64_of(first, "log index")
    }

    async fn audit_record_count(&self) -> StoreResult<u64> {
        let n: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT next_seq FROM audit_head WHERE one = 1")
                .fetch_one(pool)
                .await
                .db()?
        });
        u64_of(n, "record count")
    }

    async fn audit_range(
        &self,
        ctx: TenantCtx,
        from: u64,
        to: u64,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        let sql = "SELECT seq AS id, time, tenant_id, actor, action, target, source_ip, \
             user_agent, outcome, details FROM audit_events WHERE (tenant_id = $1 OR EXISTS \
             (SELECT 1 FROM tenants p WHERE p.id = $1 AND p.kind = 'provider')) AND seq >= $2 \
             AND seq < $3 ORDER BY seq LIMIT $4";
        let binds = [
            Bind::Text(ctx.tenant.to_string()),
            Bind::I64(i64_of(from)?),
            Bind::I64(i64_of(to.min(i64::MAX as u64))?),
            Bind::I64(i64::from(limit.clamp(1, 100_000))),
        ];
        self.records::<AuditRow, AuditRecord>(sql, AUDIT_COLS, "id", &binds)
            .await
    }

    async fn log_head(&self) -> StoreResult<Option<LogHead>> {
        with_pool!(self, |pool| {
            match sqlx::query(HEAD_COLS).fetch_optional(pool).await.db()? {
                Some(r) => Ok(Some(head_from(&r)?)),
                None => Ok(None),
            }
        })
    }

    async fn init_log(&self, head: &LogHead) -> StoreResult<LogHead> {
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO audit_log (one, origin, vkey, size, root, updated_at) \
                 VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (one) DO NOTHING",
            )
            .bind(head.origin.clone())
            .bind(head.vkey.clone())
            .bind(i64_of(head.size)?)
            .bind(head.root.to_vec())
            .bind(head.updated_at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            let r = sqlx::query(HEAD_COLS).fetch_one(&mut *tx).await.db()?;
            head_from(&r)
        })
    }

    async fn integrate(&self, step: &Integration) -> StoreResult<()> {
        let lock = match self.db {
            crate::Db::Sqlite(_) => "SELECT size FROM audit_log WHERE one = 1",
            crate::Db::Pg(_) => "SELECT size FROM audit_log WHERE one = 1 FOR UPDATE",
        };
        let cp = &step.checkpoint;
        with_tx!(self, |tx| {
            let size: Option<i64> = sqlx::query_scalar(lock)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
            match size {
                None => return Err(StoreError::Other("the audit log is not registered".into())),
                Some(s) if s != i64_of(step.old_size)? => {
                    return Err(StoreError::Conflict(format!(
                        "the log has size {s}, not {}: another sequencer integrated",
                        step.old_size
                    )));
                }
                Some(_) => {}
            }
            for t in &step.tiles {
                sqlx::query(
                    "INSERT INTO audit_tiles (level, idx, width, hashes) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (level, idx) DO UPDATE SET width = excluded.width, \
                     hashes = excluded.hashes WHERE audit_tiles.width <= excluded.width",
                )
                .bind(i32::from(t.level))
                .bind(i64_of(t.index)?)
                .bind(i32::from(t.width))
                .bind(t.hashes.clone())
                .execute(&mut *tx)
                .await
                .db()?;
            }
            sqlx::query(
                "INSERT INTO audit_checkpoints (size, root, time, signed) VALUES ($1, $2, $3, $4)",
            )
            .bind(i64_of(cp.size)?)
            .bind(cp.root.to_vec())
            .bind(cp.time.0)
            .bind(cp.signed.clone())
            .execute(&mut *tx)
            .await
            .db()?;
            sqlx::query("UPDATE audit_log SET size = $1, root = $2, updated_at = $3 WHERE one = 1")
                .bind(i64_of(cp.size)?)
                .bind(cp.root.to_vec())
                .bind(cp.time.0)
                .execute(&mut *tx)
                .await
                .db()?;
        });
        Ok(())
    }

    async fn read_tiles(&self, tiles: &[(u8, u64)]) -> StoreResult<Vec<StoredTile>> {
        let mut out = Vec::with_capacity(tiles.len());
        for chunk in tiles.chunks(200) {
            let mut sql = String::from("SELECT level, idx, width, hashes FROM audit_tiles WHERE ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                sql.push_str(&format!(
                    "(level = ${} AND idx = ${})",
                    2 * i + 1,
                    2 * i + 2
                ));
            }
            with_pool!(self, |pool| {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for (level, index) in chunk {
                    q = q.bind(i32::from(*level)).bind(i64_of(*index)?);
                }
                for r in q.fetch_all(pool).await.db()? {
                    out.push(tile_from(&r)?);
                }
            });
        }
        Ok(out)
    }

    async fn checkpoint(&self, size: Option<u64>) -> StoreResult<Option<StoredCheckpoint>> {
        with_pool!(self, |pool| {
            let row = match size {
                Some(s) => sqlx::query(
                    "SELECT size, root, time, signed FROM audit_checkpoints WHERE size = $1",
                )
                .bind(i64_of(s)?)
                .fetch_optional(pool)
                .await
                .db()?,
                None => sqlx::query(
                    "SELECT size, root, time, signed FROM audit_checkpoints \
                     ORDER BY size DESC LIMIT 1",
                )
                .fetch_optional(pool)
                .await
                .db()?,
            };
            match row {
                Some(r) => Ok(Some(checkpoint_from(&r)?)),
                None => Ok(None),
            }
        })
    }

    async fn checkpoints_after(
        &self,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredCheckpoint>> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT size, root, time, signed FROM audit_checkpoints WHERE size > $1 \
                 ORDER BY size LIMIT $2",
            )
            .bind(i64_of(after)?)
            .bind(i64::from(limit.clamp(1, 10_000)))
            .fetch_all(pool)
            .await
            .db()?;
            rows.iter().map(checkpoint_from).collect()
        })
    }

    async fn lead_sequencer(&self) -> StoreResult<bool> {
        let crate::Db::Pg(pool) = &self.db else {
            // One process writes a SQLite database; `integrate` still refuses a stale step.
            return Ok(true);
        };
        let mut held = self.sequencer_lock.lock().await;
        if let Some(conn) = held.as_mut() {
            if sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok() {
                return Ok(true);
            }
            // The session (and its lock) is gone.
            *held = None;
        }
        let mut conn = pool.acquire().await.db()?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SEQUENCER_LOCK)
            .fetch_one(&mut *conn)
            .await
            .db()?;
        if got {
            *held = Some(conn.detach());
        }
        Ok(got)
    }
}
