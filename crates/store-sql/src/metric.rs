//! `MetricStore` over SQL: scrape targets, series and samples (multi-row inserts), hourly
//! roll-ups, threshold/baseline rules and their per-series state.

use async_trait::async_trait;
use parapet_store::{
    AuditEvent, MetricPoint, MetricRule, MetricRuleKind, MetricRuleState, MetricSample,
    MetricSeries, MetricStore, MetricTarget, MetricsPurged, StoreError, StoreResult,
};
use parapet_types::{AssetId, TenantCtx, TenantId, Timestamp};
use serde::Deserialize;
use sqlx::AssertSqlSafe;

use crate::audit::insert_audit;
use crate::rows::{Bind, bad, uuid};
use crate::{DbResult, SqlStore, with_pool, with_tx};

/// Rows per multi-row insert (4–10 parameters each, far below either backend's limit).
const CHUNK: usize = 400;

#[derive(Debug, Deserialize)]
struct TargetRow {
    asset_id: String,
    tenant_id: String,
    url: String,
    interval_secs: i64,
    next_due_at: i64,
    last_scrape_at: Option<i64>,
    last_error: Option<String>,
    last_samples: i64,
    created_at: i64,
    updated_at: i64,
}

const TARGET_COLS: &[&str] = &[
    "asset_id",
    "tenant_id",
    "url",
    "interval_secs",
    "next_due_at",
    "last_scrape_at",
    "last_error",
    "last_samples",
    "created_at",
    "updated_at",
];

const TARGET_SELECT: &str = "SELECT asset_id, tenant_id, url, interval_secs, next_due_at, \
    last_scrape_at, last_error, last_samples, created_at, updated_at FROM metric_targets";

impl TryFrom<TargetRow> for MetricTarget {
    type Error = StoreError;
    fn try_from(r: TargetRow) -> StoreResult<MetricTarget> {
        Ok(MetricTarget {
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            asset: AssetId(uuid("asset id", &r.asset_id)?),
            url: r.url,
            interval_secs: u32::try_from(r.interval_secs)
                .map_err(|_| bad("interval", &r.interval_secs.to_string()))?,
            next_due_at: Timestamp(r.next_due_at),
            last_scrape_at: r.last_scrape_at.map(Timestamp),
            last_error: r.last_error,
            last_samples: u64::try_from(r.last_samples).unwrap_or(0),
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

#[derive(Debug, Deserialize)]
struct SeriesRow {
    id: i64,
    asset_id: String,
    name: String,
    labels: String,
}

impl TryFrom<SeriesRow> for MetricSeries {
    type Error = StoreError;
    fn try_from(r: SeriesRow) -> StoreResult<MetricSeries> {
        Ok(MetricSeries {
            id: r.id,
            asset: AssetId(uuid("asset id", &r.asset_id)?),
            name: r.name,
            labels: r.labels,
        })
    }
}

#[derive(Debug, Deserialize)]
struct PointRow {
    series: i64,
    t: i64,
    value: f64,
}

impl TryFrom<PointRow> for MetricPoint {
    type Error = StoreError;
    fn try_from(r: PointRow) -> StoreResult<MetricPoint> {
        Ok(MetricPoint {
            series: r.series,
            t: Timestamp(r.t),
            value: r.value,
        })
    }
}

#[derive(Debug, Deserialize)]
struct RuleRow {
    id: String,
    tenant_id: String,
    name: String,
    asset_id: Option<String>,
    metric: String,
    labels: String,
    kind: String,
    rate: i64,
    op: String,
    value: f64,
    for_secs: i64,
    k: f64,
    warmup: i64,
    alpha: f64,
    severity: String,
    enabled: i64,
    created_at: i64,
    updated_at: i64,
}

const RULE_COLS: &[&str] = &[
    "id",
    "tenant_id",
    "name",
    "asset_id",
    "metric",
    "labels",
    "kind",
    "rate",
    "op",
    "value",
    "for_secs",
    "k",
    "warmup",
    "alpha",
    "severity",
    "enabled",
    "created_at",
    "updated_at",
];

impl TryFrom<RuleRow> for MetricRule {
    type Error = StoreError;
    fn try_from(r: RuleRow) -> StoreResult<MetricRule> {
        Ok(MetricRule {
            id: uuid("rule id", &r.id)?,
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            asset: match &r.asset_id {
                Some(a) => Some(AssetId(uuid("asset id", a)?)),
                None => None,
            },
            labels: serde_json::from_str(&r.labels).map_err(|_| bad("labels", &r.labels))?,
            kind: MetricRuleKind::parse(&r.kind).ok_or_else(|| bad("rule kind", &r.kind))?,
            rate: r.rate != 0,
            for_secs: u32::try_from(r.for_secs).unwrap_or(0),
            warmup: u32::try_from(r.warmup).unwrap_or(0),
            enabled: r.enabled != 0,
            name: r.name,
            metric: r.metric,
            op: r.op,
            value: r.value,
            k: r.k,
            alpha: r.alpha,
            severity: r.severity,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

#[derive(Debug, Deserialize)]
struct StateRow {
    rule_id: String,
    series_id: i64,
    pending_since: Option<i64>,
    mean: f64,
    var: f64,
    n: i64,
    last_value: Option<f64>,
    last_t: Option<i64>,
}

impl TryFrom<StateRow> for MetricRuleState {
    type Error = StoreError;
    fn try_from(r: StateRow) -> StoreResult<MetricRuleState> {
        Ok(MetricRuleState {
            rule: uuid("rule id", &r.rule_id)?,
            series: r.series_id,
            pending_since: r.pending_since.map(Timestamp),
            mean: r.mean,
            var: r.var,
            n: r.n,
            last_value: r.last_value,
            last_t: r.last_t.map(Timestamp),
        })
    }
}

fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn labels_json(rule: &MetricRule) -> StoreResult<String> {
    serde_json::to_string(&rule.labels).map_err(|e| StoreError::Other(e.to_string()))
}

/// Binds the columns of `metric_rules` after `id, tenant_id` ($3 …).
macro_rules! bind_rule {
    ($q:expr, $r:expr, $labels:expr) => {
        $q.bind($r.name.clone())
            .bind($r.asset.map(|a| a.to_string()))
            .bind($r.metric.clone())
            .bind($labels)
            .bind($r.kind.as_str())
            .bind(i64::from($r.rate))
            .bind($r.op.clone())
            .bind($r.value)
            .bind(i64::from($r.for_secs))
            .bind($r.k)
            .bind(i64::from($r.warmup))
            .bind($r.alpha)
            .bind($r.severity.clone())
            .bind(i64::from($r.enabled))
            .bind($r.updated_at.0)
    };
}

#[async_trait]
impl MetricStore for SqlStore {
    async fn put_metric_target(
        &self,
        ctx: TenantCtx,
        target: &MetricTarget,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if target.tenant != ctx.tenant {
            return Err(StoreError::Other(
                "a target can only be written within its own tenant".into(),
            ));
        }
        with_tx!(self, |tx| {
            let done = sqlx::query(
                "INSERT INTO metric_targets (asset_id, tenant_id, url, interval_secs, \
                 next_due_at, created_at, updated_at) SELECT id, tenant_id, $3, $4, $5, $6, $6 \
                 FROM assets WHERE id = $1 AND tenant_id = $2 \
                 ON CONFLICT (asset_id) DO UPDATE SET url = $3, interval_secs = $4, \
                 next_due_at = $5, updated_at = $6, last_error = NULL",
            )
            .bind(target.asset.to_string())
            .bind(ctx.tenant.to_string())
            .bind(target.url.clone())
            .bind(i64::from(target.interval_secs))
            .bind(target.next_due_at.0)
            .bind(target.updated_at.0)
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

    async fn delete_metric_target(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let done =
                sqlx::query("DELETE FROM metric_targets WHERE asset_id = $1 AND tenant_id = $2")
                    .bind(asset.to_string())
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

    async fn get_metric_target(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
    ) -> StoreResult<Option<MetricTarget>> {
        let sql = format!("{TARGET_SELECT} WHERE tenant_id = $1 AND asset_id = $2");
        Ok(self
            .records::<TargetRow, MetricTarget>(
                &sql,
                TARGET_COLS,
                "asset_id",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(asset.to_string()),
                ],
            )
            .await?
            .into_iter()
            .next())
    }

    async fn due_metric_targets(
        &self,
        ctx: TenantCtx,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<MetricTarget>> {
        let sql = format!(
            "{TARGET_SELECT} WHERE tenant_id = $1 AND next_due_at <= $2 \
             AND EXISTS (SELECT 1 FROM assets a WHERE a.id = metric_targets.asset_id \
             AND a.tenant_id = $1) ORDER BY next_due_at, asset_id LIMIT $3"
        );
        self.records::<TargetRow, MetricTarget>(
            &sql,
            TARGET_COLS,
            "next_due_at, asset_id",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::I64(now.0),
                Bind::I64(i64::from(limit)),
            ],
        )
        .await
    }

    async fn claim_metric_target(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
        expected: Timestamp,
        next: Timestamp,
    ) -> StoreResult<bool> {
        with_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE metric_targets SET next_due_at = $4 \
                 WHERE asset_id = $1 AND tenant_id = $2 AND next_due_at = $3",
            )
            .bind(asset.to_string())
            .bind(ctx.tenant.to_string())
            .bind(expected.0)
            .bind(next.0)
            .execute(pool)
            .await
            .db()?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn record_scrape(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
        new_series: &[MetricSeries],
        samples: &[MetricSample],
        states: &[MetricRuleState],
        at: Timestamp,
        error: Option<&str>,
    ) -> StoreResult<()> {
        let tenant = ctx.tenant.to_string();
        let asset_s = asset.to_string();
        with_tx!(self, |tx| {
            for chunk in new_series.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO metric_series (id, tenant_id, asset_id, name, labels) VALUES {} \
                     ON CONFLICT (id) DO NOTHING",
                    placeholders(chunk.len(), 5)
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for s in chunk {
                    q = q
                        .bind(s.id)
                        .bind(tenant.clone())
                        .bind(asset_s.clone())
                        .bind(s.name.clone())
                        .bind(s.labels.clone());
                }
                q.execute(&mut *tx).await.db()?;
            }
            for chunk in samples.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO metric_samples (series_id, tenant_id, t, value) VALUES {} \
                     ON CONFLICT (series_id, t) DO NOTHING",
                    placeholders(chunk.len(), 4)
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for s in chunk {
                    q = q
                        .bind(s.series)
                        .bind(tenant.clone())
                        .bind(s.t.0)
                        .bind(s.value);
                }
                q.execute(&mut *tx).await.db()?;
            }
            for chunk in states.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO metric_rule_state (rule_id, series_id, tenant_id, asset_id, \
                     pending_since, mean, var, n, last_value, last_t) SELECT v.* FROM (VALUES {}) \
                     AS v WHERE EXISTS (SELECT 1 FROM metric_rules r WHERE r.tenant_id = $1 \
                     AND r.id = v.column1) ON CONFLICT (rule_id, series_id) DO UPDATE SET \
                     pending_since = excluded.pending_since, mean = excluded.mean, \
                     var = excluded.var, n = excluded.n, last_value = excluded.last_value, \
                     last_t = excluded.last_t",
                    values_from(chunk.len())
                );
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(tenant.clone());
                for s in chunk {
                    q = q
                        .bind(s.rule.to_string())
                        .bind(s.series)
                        .bind(tenant.clone())
                        .bind(asset_s.clone())
                        .bind(s.pending_since.map(|t| t.0))
                        .bind(s.mean)
                        .bind(s.var)
                        .bind(s.n)
                        .bind(s.last_value)
                        .bind(s.last_t.map(|t| t.0));
                }
                q.execute(&mut *tx).await.db()?;
            }
            sqlx::query(
                "UPDATE metric_targets SET last_scrape_at = $3, last_error = $4, \
                 last_samples = $5 WHERE asset_id = $1 AND tenant_id = $2",
            )
            .bind(asset_s.clone())
            .bind(tenant.clone())
            .bind(at.0)
            .bind(error.map(str::to_string))
            .bind(i64::try_from(samples.len()).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .db()?;
        });
        Ok(())
    }

    async fn list_metric_series(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
    ) -> StoreResult<Vec<MetricSeries>> {
        self.records::<SeriesRow, MetricSeries>(
            "SELECT id, asset_id, name, labels FROM metric_series \
             WHERE tenant_id = $1 AND asset_id = $2 ORDER BY name, labels",
            &["id", "asset_id", "name", "labels"],
            "name, labels",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::Text(asset.to_string()),
            ],
        )
        .await
    }

    async fn metric_points(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
        name: &str,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<MetricPoint>> {
        let sql = "SELECT series, t, value FROM ( \
             SELECT series_id AS series, t, value FROM metric_samples WHERE tenant_id = $1 \
             AND t >= $4 AND t <= $5 AND series_id IN (SELECT id FROM metric_series \
             WHERE tenant_id = $1 AND asset_id = $2 AND name = $3) \
             UNION ALL SELECT series_id AS series, t, mean AS value FROM metric_rollups \
             WHERE tenant_id = $1 AND t >= $4 AND t <= $5 AND series_id IN (SELECT id \
             FROM metric_series WHERE tenant_id = $1 AND asset_id = $2 AND name = $3)) AS p \
             ORDER BY series, t LIMIT $6";
        self.records::<PointRow, MetricPoint>(
            sql,
            &["series", "t", "value"],
            "series, t",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::Text(asset.to_string()),
                Bind::Text(name.to_string()),
                Bind::I64(from.0),
                Bind::I64(to.0),
                Bind::I64(i64::from(limit)),
            ],
        )
        .await
    }

    async fn create_metric_rule(
        &self,
        ctx: TenantCtx,
        rule: &MetricRule,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if rule.tenant != ctx.tenant {
            return Err(StoreError::Other(
                "a rule can only be written within its own tenant".into(),
            ));
        }
        let labels = labels_json(rule)?;
        with_tx!(self, |tx| {
            let q = sqlx::query(
                "INSERT INTO metric_rules (id, tenant_id, name, asset_id, metric, labels, kind, \
                 rate, op, value, for_secs, k, warmup, alpha, severity, enabled, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                 $14, $15, $16, $17, $17)",
            )
            .bind(rule.id.to_string())
            .bind(ctx.tenant.to_string());
            bind_rule!(q, rule, labels.clone())
                .execute(&mut *tx)
                .await
                .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn update_metric_rule(
        &self,
        ctx: TenantCtx,
        rule: &MetricRule,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let labels = labels_json(rule)?;
        with_tx!(self, |tx| {
            let q = sqlx::query(
                "UPDATE metric_rules SET name = $3, asset_id = $4, metric = $5, labels = $6, \
                 kind = $7, rate = $8, op = $9, value = $10, for_secs = $11, k = $12, \
                 warmup = $13, alpha = $14, severity = $15, enabled = $16, updated_at = $17 \
                 WHERE id = $1 AND tenant_id = $2",
            )
            .bind(rule.id.to_string())
            .bind(ctx.tenant.to_string());
            let done = bind_rule!(q, rule, labels.clone())
                .execute(&mut *tx)
                .await
                .db()?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM metric_rule_state WHERE rule_id = $1 AND tenant_id = $2")
                .bind(rule.id.to_string())
                .bind(ctx.tenant.to_string())
                .execute(&mut *tx)
                .await
                .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn delete_metric_rule(
        &self,
        ctx: TenantCtx,
        id: uuid::Uuid,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            sqlx::query("DELETE FROM metric_rule_state WHERE rule_id = $1 AND tenant_id = $2")
                .bind(id.to_string())
                .bind(ctx.tenant.to_string())
                .execute(&mut *tx)
                .await
                .db()?;
            let done = sqlx::query("DELETE FROM metric_rules WHERE id = $1 AND tenant_id = $2")
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

    async fn list_metric_rules(&self, ctx: TenantCtx) -> StoreResult<Vec<MetricRule>> {
        self.records::<RuleRow, MetricRule>(
            "SELECT id, tenant_id, name, asset_id, metric, labels, kind, rate, op, value, \
             for_secs, k, warmup, alpha, severity, enabled, created_at, updated_at \
             FROM metric_rules WHERE tenant_id = $1 ORDER BY name",
            RULE_COLS,
            "name",
            &[Bind::Text(ctx.tenant.to_string())],
        )
        .await
    }

    async fn metric_rule_states(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
    ) -> StoreResult<Vec<MetricRuleState>> {
        self.records::<StateRow, MetricRuleState>(
            "SELECT rule_id, series_id, pending_since, mean, var, n, last_value, last_t \
             FROM metric_rule_state WHERE tenant_id = $1 AND asset_id = $2 \
             ORDER BY rule_id, series_id",
            &[
                "rule_id",
                "series_id",
                "pending_since",
                "mean",
                "var",
                "n",
                "last_value",
                "last_t",
            ],
            "rule_id, series_id",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::Text(asset.to_string()),
            ],
        )
        .await
    }

    async fn purge_metrics(
        &self,
        ctx: TenantCtx,
        raw_before: Timestamp,
        keep_before: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<MetricsPurged> {
        let tenant = ctx.tenant.to_string();
        let out = with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO metric_rollups (series_id, tenant_id, t, min_value, max_value, \
                 mean, n) SELECT series_id, tenant_id, (t / 3600000) * 3600000, MIN(value), \
                 MAX(value), AVG(value), COUNT(*) FROM metric_samples WHERE tenant_id = $1 \
                 AND t < $2 GROUP BY series_id, tenant_id, (t / 3600000) * 3600000 \
                 ON CONFLICT (series_id, t) DO UPDATE SET \
                 min_value = CASE WHEN excluded.min_value < metric_rollups.min_value \
                 THEN excluded.min_value ELSE metric_rollups.min_value END, \
                 max_value = CASE WHEN excluded.max_value > metric_rollups.max_value \
                 THEN excluded.max_value ELSE metric_rollups.max_value END, \
                 mean = (metric_rollups.mean * metric_rollups.n + excluded.mean * excluded.n) \
                 / (metric_rollups.n + excluded.n), n = metric_rollups.n + excluded.n",
            )
            .bind(tenant.clone())
            .bind(raw_before.0)
            .execute(&mut *tx)
            .await
            .db()?;
            let rolled = sqlx::query("DELETE FROM metric_samples WHERE tenant_id = $1 AND t < $2")
                .bind(tenant.clone())
                .bind(raw_before.0)
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            let expired = sqlx::query("DELETE FROM metric_rollups WHERE tenant_id = $1 AND t < $2")
                .bind(tenant.clone())
                .bind(keep_before.0)
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            let out = MetricsPurged {
                rolled_up: rolled,
                expired,
            };
            if out != MetricsPurged::default() {
                insert_audit!(&mut *tx, audit);
            }
            out
        });
        Ok(out)
    }
}

/// `VALUES` rows for the state upsert; parameters start at $2 ($1 is the tenant).
fn values_from(rows: usize) -> String {
    (0..rows)
        .map(|r| {
            let p: Vec<String> = (0..10).map(|c| format!("${}", 2 + r * 10 + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
