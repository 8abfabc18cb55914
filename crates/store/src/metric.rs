//! Metrics (X.1642 7.2.2.6(1), 8.3): Prometheus exposition endpoints scraped per asset, the
//! samples kept per series (raw for a short time, then hourly roll-ups for the tenant's
//! retention, so a year of one series is 8,760 rows), threshold and learned-baseline rules, and
//! the rules' state per series (pending breach, EWMA mean and variance, last value for rates).

use std::collections::BTreeMap;

use parapet_types::{AssetId, TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{AuditEvent, StoreResult};

/// Where an asset's metrics are scraped from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricTarget {
    pub tenant: TenantId,
    pub asset: AssetId,
    /// `http(s)://host:port/metrics`.
    pub url: String,
    pub interval_secs: u32,
    pub next_due_at: Timestamp,
    pub last_scrape_at: Option<Timestamp>,
    /// Why the last scrape failed (none when it worked).
    pub last_error: Option<String>,
    /// Samples stored by the last scrape.
    pub last_samples: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One series: a metric name and its label set on one asset. `id` is a stable 64-bit hash of
/// tenant, asset, name and labels, so a sample is written without looking its series up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricSeries {
    pub id: i64,
    pub asset: AssetId,
    pub name: String,
    /// Canonical label text: `a="1",b="x"` sorted by name (empty when none).
    pub labels: String,
}

/// One sample of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    pub series: i64,
    pub t: Timestamp,
    pub value: f64,
}

/// What a threshold rule compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricRuleKind {
    /// `value <op> threshold` for at least `for_secs`.
    Threshold,
    /// `|z| > k` against the series' EWMA mean and variance, after `warmup` samples.
    Baseline,
}

impl MetricRuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricRuleKind::Threshold => "threshold",
            MetricRuleKind::Baseline => "baseline",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "threshold" => Some(MetricRuleKind::Threshold),
            "baseline" => Some(MetricRuleKind::Baseline),
            _ => None,
        }
    }
}

/// A rule over one metric of a tenant's assets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRule {
    pub id: uuid::Uuid,
    pub tenant: TenantId,
    /// Unique within the tenant; the alert's rule id is `parapet-metric-<name>`.
    pub name: String,
    /// Only this asset (else every asset of the tenant).
    pub asset: Option<AssetId>,
    pub metric: String,
    /// Labels the series must carry with these values.
    pub labels: BTreeMap<String, String>,
    pub kind: MetricRuleKind,
    /// Per-second rate of a counter instead of its value.
    pub rate: bool,
    /// `>`, `>=`, `<`, `<=`, `==`, `!=` (threshold rules).
    pub op: String,
    pub value: f64,
    pub for_secs: u32,
    /// Baseline: the |z| above which a sample is abnormal.
    pub k: f64,
    /// Baseline: samples learned before judging.
    pub warmup: u32,
    /// Baseline: EWMA weight of a new sample (0 < alpha < 1).
    pub alpha: f64,
    pub severity: String,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A rule's state for one series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricRuleState {
    pub rule: uuid::Uuid,
    pub series: i64,
    /// Since when a threshold has been breached (none when it is not).
    pub pending_since: Option<Timestamp>,
    pub mean: f64,
    pub var: f64,
    /// Samples learned.
    pub n: i64,
    pub last_value: Option<f64>,
    pub last_t: Option<Timestamp>,
}

/// One point of a series read back (a raw sample, or an hourly roll-up's mean).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub series: i64,
    pub t: Timestamp,
    pub value: f64,
}

/// What a metrics retention sweep did for one tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsPurged {
    /// Raw samples folded into hourly roll-ups and deleted.
    pub rolled_up: u64,
    /// Roll-ups older than the retention, deleted.
    pub expired: u64,
}

/// Metrics storage.
#[async_trait::async_trait]
pub trait MetricStore: Send + Sync {
    /// Creates or replaces the scrape target of an asset of `ctx`.
    async fn put_metric_target(
        &self,
        ctx: TenantCtx,
        target: &MetricTarget,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// `NotFound` when the asset has no target.
    async fn delete_metric_target(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    async fn get_metric_target(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
    ) -> StoreResult<Option<MetricTarget>>;

    /// Targets of `ctx` due at `now`, soonest first.
    async fn due_metric_targets(
        &self,
        ctx: TenantCtx,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<MetricTarget>>;

    /// Moves a target's next due time from `expected` to `next`; false when another replica
    /// moved it first (it scrapes this round).
    async fn claim_metric_target(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
        expected: Timestamp,
        next: Timestamp,
    ) -> StoreResult<bool>;

    /// Stores one scrape in one transaction: series seen for the first time, the samples, the
    /// rules' new states and the target's outcome. Samples of a series already stored at the same
    /// time are ignored (a replayed scrape stores nothing twice).
    #[allow(clippy::too_many_arguments)]
    async fn record_scrape(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
        new_series: &[MetricSeries],
        samples: &[MetricSample],
        states: &[MetricRuleState],
        at: Timestamp,
        error: Option<&str>,
    ) -> StoreResult<()>;

    /// The series of an asset of `ctx`, by name then labels.
    async fn list_metric_series(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
    ) -> StoreResult<Vec<MetricSeries>>;

    /// Points of the series of metric `name` on `asset` in `[from, to]`, by series then time:
    /// raw samples, and hourly means where the raw samples were rolled up.
    async fn metric_points(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
        name: &str,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<MetricPoint>>;

    /// `Conflict` when the tenant has a rule of that name.
    async fn create_metric_rule(
        &self,
        ctx: TenantCtx,
        rule: &MetricRule,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Replaces a rule (matched by id) and forgets its state; `NotFound` when missing.
    async fn update_metric_rule(
        &self,
        ctx: TenantCtx,
        rule: &MetricRule,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    async fn delete_metric_rule(
        &self,
        ctx: TenantCtx,
        id: uuid::Uuid,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Rules of `ctx` by name.
    async fn list_metric_rules(&self, ctx: TenantCtx) -> StoreResult<Vec<MetricRule>>;

    /// The states of the rules of `ctx` for the series of `asset`.
    async fn metric_rule_states(
        &self,
        ctx: TenantCtx,
        asset: AssetId,
    ) -> StoreResult<Vec<MetricRuleState>>;

    /// Folds raw samples before `raw_before` (an hour boundary) into hourly roll-ups (min, max,
    /// mean, count) and deletes them; deletes roll-ups before `keep_before`; one transaction
    /// with its audit record.
    async fn purge_metrics(
        &self,
        ctx: TenantCtx,
        raw_before: Timestamp,
        keep_before: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<MetricsPurged>;
}
