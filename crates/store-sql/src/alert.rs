//! `AlertStore` over SQL: detection rules, alerts (grouped within a window), their events,
//! suppression windows.

use async_trait::async_trait;
use parapet_store::{
    Alert, AlertFilter, AlertStatus, AlertStore, AuditEvent, Page, StoreError, StoreResult,
    StoredRule, Suppression,
};
use parapet_types::{AssetId, TenantCtx, TenantId, Timestamp};
use serde::Deserialize;
use sqlx::Row;

use crate::audit::insert_audit;
use crate::rows::{Bind, bad, uuid};
use crate::{DbResult, SqlStore, with_pool, with_tx};

/// Applies alert hits of tenant `$ctx` on `$tx` (see `EventStore::ingest_events`); evaluates to
/// the `AlertCounts`.
macro_rules! apply_hits {
    ($tx:expr, $ctx:expr, $hits:expr, $window_start:expr, $now:expr) => {{
        let ctx: parapet_types::TenantCtx = $ctx;
        let hits: &[parapet_store::AlertHit] = $hits;
        let window_start: parapet_types::Timestamp = $window_start;
        let now: parapet_types::Timestamp = $now;
        let mut counts = parapet_store::AlertCounts::default();
        // Group hits by (rule owner, rule, group key), in order of first appearance.
        let mut groups: Vec<Vec<&parapet_store::AlertHit>> = Vec::new();
        for h in hits {
            match groups.iter_mut().find(|g| {
                g.first().is_some_and(|f| {
                    f.rule_id == h.rule_id
                        && f.rule_tenant == h.rule_tenant
                        && f.group_key == h.group_key
                })
            }) {
                Some(g) => g.push(h),
                None => groups.push(vec![h]),
            }
        }
        for g in &groups {
            let Some(first) = g.first() else { continue };
            let n = g.len() as i64;
            let suppressed = sqlx::query(
                "SELECT id FROM alert_suppressions WHERE tenant_id = $1 AND rule_id = $2 \
                 AND (group_key IS NULL OR group_key = $3) AND until > $4 LIMIT 1",
            )
            .bind(ctx.tenant.to_string())
            .bind(first.rule_id.clone())
            .bind(first.group_key.clone())
            .bind(now.0)
            .fetch_optional(&mut *$tx)
            .await
            .db()?;
            if suppressed.is_some() {
                counts.suppressed += n as u64;
                continue;
            }
            let min_t = g.iter().map(|h| h.event_time.0).min().unwrap_or(now.0);
            let max_t = g.iter().map(|h| h.event_time.0).max().unwrap_or(now.0);
            let existing = sqlx::query(
                "SELECT id, count FROM alerts WHERE tenant_id = $1 AND rule_id = $2 \
                 AND group_key = $3 AND rule_tenant_id = $4 AND status <> 'closed' \
                 AND last_seen_at >= $5 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(ctx.tenant.to_string())
            .bind(first.rule_id.clone())
            .bind(first.group_key.clone())
            .bind(first.rule_tenant.to_string())
            .bind(window_start.0)
            .fetch_optional(&mut *$tx)
            .await
            .db()?;
            let (alert_id, before): (String, i64) = match existing {
                Some(row) => {
                    let id: String = row.try_get("id").db()?;
                    let before: i64 = row.try_get("count").db()?;
                    sqlx::query(
                        "UPDATE alerts SET count = count + $3, \
                         first_event_at = CASE WHEN first_event_at > $4 THEN $4 \
                         ELSE first_event_at END, \
                         last_event_at = CASE WHEN last_event_at < $5 THEN $5 \
                         ELSE last_event_at END, last_seen_at = $6, updated_at = $6 \
                         WHERE id = $1 AND tenant_id = $2",
                    )
                    .bind(id.clone())
                    .bind(ctx.tenant.to_string())
                    .bind(n)
                    .bind(min_t)
                    .bind(max_t)
                    .bind(now.0)
                    .execute(&mut *$tx)
                    .await
                    .db()?;
                    counts.grouped += n as u64;
                    (id, before)
                }
                None => {
                    let id = first.new_alert_id.to_string();
                    sqlx::query(
                        "INSERT INTO alerts (id, tenant_id, rule_id, rule_tenant_id, title, \
                         severity, group_key, asset_id, status, count, first_event_at, \
                         last_event_at, created_at, last_seen_at, updated_at) VALUES ($1, $2, \
                         $3, $4, $5, $6, $7, $8, 'open', $9, $10, $11, $12, $12, $12)",
                    )
                    .bind(id.clone())
                    .bind(ctx.tenant.to_string())
                    .bind(first.rule_id.clone())
                    .bind(first.rule_tenant.to_string())
                    .bind(first.title.clone())
                    .bind(first.severity.clone())
                    .bind(first.group_key.clone())
                    .bind(first.asset.map(|a| a.to_string()))
                    .bind(n)
                    .bind(min_t)
                    .bind(max_t)
                    .bind(now.0)
                    .execute(&mut *$tx)
                    .await
                    .db()?;
                    counts.created += 1;
                    counts.raised.push(first.new_alert_id);
                    counts.grouped += (n - 1) as u64;
                    (id, 0)
                }
            };
            // The first events of an alert are kept by id (the count keeps the rest).
            let room = (crate::alert::MAX_ALERT_EVENTS - before).max(0) as usize;
            for h in g.iter().take(room) {
                sqlx::query(
                    "INSERT INTO alert_events (alert_id, tenant_id, event_id) VALUES ($1, $2, $3) \
                     ON CONFLICT (alert_id, event_id) DO NOTHING",
                )
                .bind(alert_id.clone())
                .bind(ctx.tenant.to_string())
                .bind(h.event.to_string())
                .execute(&mut *$tx)
                .await
                .db()?;
            }
        }
        counts
    }};
}
pub(crate) use apply_hits;

/// Events listed by id per alert; beyond, only the count grows.
pub(crate) const MAX_ALERT_EVENTS: i64 = 1000;

#[derive(Debug, Deserialize)]
pub(crate) struct RuleRow {
    pub tenant_id: String,
    pub rule_id: String,
    pub title: String,
    pub level: Option<String>,
    pub file: String,
    pub yaml: String,
    pub rules: i64,
    pub enabled: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const RULE_COLS: &[&str] = &[
    "tenant_id",
    "rule_id",
    "title",
    "level",
    "file",
    "yaml",
    "rules",
    "enabled",
    "created_at",
    "updated_at",
];

impl TryFrom<RuleRow> for StoredRule {
    type Error = StoreError;
    fn try_from(r: RuleRow) -> StoreResult<StoredRule> {
        Ok(StoredRule {
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            rule_id: r.rule_id,
            title: r.title,
            level: r.level,
            file: r.file,
            yaml: r.yaml,
            rules: u32::try_from(r.rules).map_err(|_| bad("rule count", &r.rules.to_string()))?,
            enabled: r.enabled != 0,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct AlertRow {
    pub id: String,
    pub tenant_id: String,
    pub rule_id: String,
    pub rule_tenant_id: String,
    pub title: String,
    pub severity: String,
    pub group_key: String,
    pub asset_id: Option<String>,
    pub status: String,
    pub count: i64,
    pub first_event_at: i64,
    pub last_event_at: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub updated_at: i64,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub closed_by: Option<String>,
    pub closed_at: Option<i64>,
    pub note: Option<String>,
}

const ALERT_COLS: &[&str] = &[
    "id",
    "tenant_id",
    "rule_id",
    "rule_tenant_id",
    "title",
    "severity",
    "group_key",
    "asset_id",
    "status",
    "count",
    "first_event_at",
    "last_event_at",
    "created_at",
    "last_seen_at",
    "updated_at",
    "acknowledged_by",
    "acknowledged_at",
    "closed_by",
    "closed_at",
    "note",
];

const ALERT_SELECT: &str = "SELECT id, tenant_id, rule_id, rule_tenant_id, title, severity, \
    group_key, asset_id, status, count, first_event_at, last_event_at, created_at, last_seen_at, \
    updated_at, acknowledged_by, acknowledged_at, closed_by, closed_at, note FROM alerts";

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;
    fn try_from(r: AlertRow) -> StoreResult<Alert> {
        Ok(Alert {
            id: uuid("alert id", &r.id)?,
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            rule_tenant: TenantId(uuid("tenant id", &r.rule_tenant_id)?),
            asset: match &r.asset_id {
                Some(a) => Some(AssetId(uuid("asset id", a)?)),
                None => None,
            },
            status: AlertStatus::parse(&r.status).ok_or_else(|| bad("alert status", &r.status))?,
            count: u64::try_from(r.count).unwrap_or(0),
            rule_id: r.rule_id,
            title: r.title,
            severity: r.severity,
            group_key: r.group_key,
            first_event_at: Timestamp(r.first_event_at),
            last_event_at: Timestamp(r.last_event_at),
            created_at: Timestamp(r.created_at),
            last_seen_at: Timestamp(r.last_seen_at),
            updated_at: Timestamp(r.updated_at),
            acknowledged_by: r.acknowledged_by,
            acknowledged_at: r.acknowledged_at.map(Timestamp),
            closed_by: r.closed_by,
            closed_at: r.closed_at.map(Timestamp),
            note: r.note,
        })
    }
}

fn cursor(after: Option<&str>) -> (i64, String) {
    match after.and_then(|a| a.split_once(':')) {
        Some((t, id)) => match t.parse::<i64>() {
            Ok(t) => (t, id.to_string()),
            Err(_) => (i64::MIN, String::new()),
        },
        None => (i64::MAX, String::new()),
    }
}

#[async_trait]
impl AlertStore for SqlStore {
    async fn put_rules(
        &self,
        ctx: TenantCtx,
        rules: &[StoredRule],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if rules.iter().any(|r| r.tenant != ctx.tenant) {
            return Err(StoreError::Other(
                "rules can only be written within their own tenant".into(),
            ));
        }
        with_tx!(self, |tx| {
            for r in rules {
                sqlx::query(
                    "INSERT INTO detection_rules (tenant_id, rule_id, title, level, file, yaml, \
                     rules, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                     $8, $9, $9) ON CONFLICT (tenant_id, rule_id) DO UPDATE SET title = $3, \
                     level = $4, file = $5, yaml = $6, rules = $7, updated_at = $9",
                )
                .bind(ctx.tenant.to_string())
                .bind(r.rule_id.clone())
                .bind(r.title.clone())
                .bind(r.level.clone())
                .bind(r.file.clone())
                .bind(r.yaml.clone())
                .bind(i64::from(r.rules))
                .bind(i64::from(r.enabled))
                .bind(r.updated_at.0)
                .execute(&mut *tx)
                .await
                .db()?;
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn list_rules(&self, ctx: TenantCtx, enabled_only: bool) -> StoreResult<Vec<StoredRule>> {
        let sql = "SELECT tenant_id, rule_id, title, level, file, yaml, rules, enabled, \
                   created_at, updated_at FROM detection_rules WHERE tenant_id = $1 \
                   AND enabled >= $2 ORDER BY rule_id";
        self.records::<RuleRow, StoredRule>(
            sql,
            RULE_COLS,
            "rule_id",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::I64(i64::from(enabled_only)),
            ],
        )
        .await
    }

    async fn rules_version(&self, ctx: TenantCtx) -> StoreResult<(i64, i64, i64)> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, COALESCE(SUM(enabled), 0) AS e, \
                 COALESCE(MAX(updated_at), 0) AS u FROM detection_rules WHERE tenant_id = $1",
            )
            .bind(ctx.tenant.to_string())
            .fetch_one(pool)
            .await
            .db()?;
            Ok((
                row.try_get::<i64, _>("n").db()?,
                row.try_get::<i64, _>("e").db()?,
                row.try_get::<i64, _>("u").db()?,
            ))
        })
    }

    async fn set_rule_enabled(
        &self,
        ctx: TenantCtx,
        rule_id: &str,
        enabled: bool,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE detection_rules SET enabled = $3, updated_at = $4 \
                 WHERE tenant_id = $1 AND rule_id = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(rule_id.to_string())
            .bind(i64::from(enabled))
            .bind(audit.time.0)
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

    async fn list_alerts(
        &self,
        ctx: TenantCtx,
        filter: &AlertFilter,
        page: &Page,
    ) -> StoreResult<Vec<Alert>> {
        let (t, id) = cursor(page.after.as_deref());
        let sql = format!(
            "{ALERT_SELECT} WHERE (tenant_id = $1 OR EXISTS (SELECT 1 FROM tenants p \
             WHERE p.id = $1 AND p.kind = 'provider')) AND ($2 = '' OR status = $2) \
             AND ($3 = '' OR severity = $3) AND ($4 = '' OR rule_id = $4) \
             AND (created_at < $5 OR (created_at = $5 AND id < $6)) \
             ORDER BY created_at DESC, id DESC LIMIT $7"
        );
        self.records::<AlertRow, Alert>(
            &sql,
            ALERT_COLS,
            "created_at DESC, id DESC",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::Text(filter.status.map(|s| s.as_str()).unwrap_or_default().into()),
                Bind::Text(filter.severity.clone().unwrap_or_default()),
                Bind::Text(filter.rule_id.clone().unwrap_or_default()),
                Bind::I64(t),
                Bind::Text(id),
                Bind::I64(i64::from(page.limit.clamp(1, 1001))),
            ],
        )
        .await
    }

    async fn get_alert(
        &self,
        ctx: TenantCtx,
        id: uuid::Uuid,
        max_events: u32,
    ) -> StoreResult<(Alert, Vec<uuid::Uuid>)> {
        let sql = format!("{ALERT_SELECT} WHERE tenant_id = $1 AND id = $2");
        let alert = self
            .records::<AlertRow, Alert>(
                &sql,
                ALERT_COLS,
                "id",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(id.to_string()),
                ],
            )
            .await?
            .into_iter()
            .next()
            .ok_or(StoreError::NotFound)?;
        let ids = with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT event_id FROM alert_events WHERE alert_id = $1 AND tenant_id = $2 \
                 ORDER BY event_id LIMIT $3",
            )
            .bind(id.to_string())
            .bind(ctx.tenant.to_string())
            .bind(i64::from(max_events))
            .fetch_all(pool)
            .await
            .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let e: String = r.try_get("event_id").db()?;
                out.push(uuid("event id", &e)?);
            }
            Ok::<_, StoreError>(out)
        })?;
        Ok((alert, ids))
    }

    async fn set_alert_status(
        &self,
        ctx: TenantCtx,
        id: uuid::Uuid,
        status: AlertStatus,
        by: &str,
        note: Option<&str>,
        audit: &AuditEvent,
    ) -> StoreResult<Alert> {
        let now = audit.time.0;
        with_tx!(self, |tx| {
            let row = sqlx::query("SELECT status FROM alerts WHERE id = $1 AND tenant_id = $2")
                .bind(id.to_string())
                .bind(ctx.tenant.to_string())
                .fetch_optional(&mut *tx)
                .await
                .db()?
                .ok_or(StoreError::NotFound)?;
            let cur: String = row.try_get("status").db()?;
            if cur == "closed" {
                return Err(StoreError::Conflict("the alert is closed".into()));
            }
            let sql = match status {
                AlertStatus::Acknowledged => {
                    "UPDATE alerts SET status = 'acknowledged', acknowledged_by = $3, \
                     acknowledged_at = $4, updated_at = $4, note = COALESCE($5, note) \
                     WHERE id = $1 AND tenant_id = $2"
                }
                AlertStatus::Closed => {
                    "UPDATE alerts SET status = 'closed', closed_by = $3, closed_at = $4, \
                     updated_at = $4, note = COALESCE($5, note) WHERE id = $1 AND tenant_id = $2"
                }
                AlertStatus::Open => {
                    return Err(StoreError::Other("an alert cannot be reopened".into()));
                }
            };
            sqlx::query(sql)
                .bind(id.to_string())
                .bind(ctx.tenant.to_string())
                .bind(by.to_string())
                .bind(now)
                .bind(note.map(str::to_string))
                .execute(&mut *tx)
                .await
                .db()?;
            insert_audit!(&mut *tx, audit);
        });
        self.get_alert(ctx, id, 0).await.map(|(a, _)| a)
    }

    async fn add_suppression(
        &self,
        ctx: TenantCtx,
        s: &Suppression,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if s.tenant != ctx.tenant {
            return Err(StoreError::Other(
                "a suppression can only be written within its own tenant".into(),
            ));
        }
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO alert_suppressions (id, tenant_id, rule_id, group_key, until, \
                 reason, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(s.id.to_string())
            .bind(ctx.tenant.to_string())
            .bind(s.rule_id.clone())
            .bind(s.group_key.clone())
            .bind(s.until.0)
            .bind(s.reason.clone())
            .bind(s.created_by.clone())
            .bind(s.created_at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn list_suppressions(
        &self,
        ctx: TenantCtx,
        now: Timestamp,
    ) -> StoreResult<Vec<Suppression>> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id, rule_id, group_key, until, reason, created_by, created_at \
                 FROM alert_suppressions WHERE tenant_id = $1 AND until > $2 ORDER BY until",
            )
            .bind(ctx.tenant.to_string())
            .bind(now.0)
            .fetch_all(pool)
            .await
            .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let id: String = r.try_get("id").db()?;
                out.push(Suppression {
                    id: uuid("suppression id", &id)?,
                    tenant: ctx.tenant,
                    rule_id: r.try_get("rule_id").db()?,
                    group_key: r.try_get("group_key").db()?,
                    until: Timestamp(r.try_get("until").db()?),
                    reason: r.try_get("reason").db()?,
                    created_by: r.try_get("created_by").db()?,
                    created_at: Timestamp(r.try_get("created_at").db()?),
                });
            }
            Ok(out)
        })
    }
}
