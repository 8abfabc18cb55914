//! Metrics (X.1642 7.2.2.6(1) "monitoring objects such as CPU, memory, disk", 8.3 "threshold or
//! even baseline value alerts"): an asset's Prometheus exposition endpoint (for example
//! `prometheus-node-exporter`) is scraped at its interval by a background job (bounded
//! concurrency, a timeout, a size limit, time from the injected clock); samples are stored per
//! series; **threshold rules** (metric, labels, comparison, value, for-duration) and **learned
//! baselines** (EWMA mean and variance per asset and series, abnormal when |z| > k after a
//! warm-up) raise alerts through [`Monitor::raise_internal`].
//!
//! The fetch is behind [`MetricsFetcher`] (the outbound transport; [`HttpFetcher`] in the
//! server). A target's host must be the asset's name or one of its addresses, so a tenant points
//! the scraper only at what it declared as its own (and redirects are not followed).
//! Scrapes are data, not changes: like events they write no audit record each; setting targets
//! and rules does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parapet_iam::authz::Action;
use parapet_iam::{Principal, RequestMeta};
use parapet_store::{
    AlertFilter, Asset, AuditEvent, AuditOutcome, MetricPoint, MetricRule, MetricRuleKind,
    MetricRuleState, MetricSample, MetricSeries, MetricTarget, Page, Tenant,
};
use parapet_types::{Actor, AssetId, TenantCtx, Timestamp};
use serde::Serialize;
use serde_json::json;

use crate::exposition;
use crate::internal::InternalAlert;
use crate::{Monitor, MonitorError, MonitorResult, SEVERITIES, store_err};

/// Fetches an exposition page.
#[async_trait::async_trait]
pub trait MetricsFetcher: Send + Sync {
    /// The body of `url`, or why not (one line).
    async fn fetch(&self, url: &str, timeout: Duration, max_bytes: usize)
    -> Result<String, String>;
}

/// [`MetricsFetcher`] over HTTP(S) with reqwest (no redirects, no compression).
pub struct HttpFetcher {
    client: reqwest::Client,
}

impl HttpFetcher {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("parapet-scraper/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpFetcher { client })
    }
}

#[async_trait::async_trait]
impl MetricsFetcher for HttpFetcher {
    async fn fetch(
        &self,
        url: &str,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<String, String> {
        let mut res = self
            .client
            .get(url)
            .timeout(timeout)
            .header("accept", "text/plain;version=0.0.4")
            .send()
            .await
            .map_err(|e| fetch_error(&e))?;
        if !res.status().is_success() {
            return Err(format!(
                "the endpoint answered HTTP {}",
                res.status().as_u16()
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| fetch_error(&e))? {
            if body.len() + chunk.len() > max_bytes {
                return Err(format!("the page is larger than {max_bytes} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| "the page is not UTF-8 text".into())
    }
}

fn fetch_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the endpoint did not answer in time".into()
    } else if e.is_connect() {
        "cannot connect to the endpoint".into()
    } else {
        "the request to the endpoint failed".into()
    }
}

/// A scrape target as shown to users.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    pub asset: String,
    pub url: String,
    pub interval_secs: u32,
    pub next_due_at: String,
    pub last_scrape_at: Option<String>,
    pub last_error: Option<String>,
    pub last_samples: u64,
}

/// What one scrape did.
#[derive(Debug, Clone, Serialize)]
pub struct ScrapeReport {
    pub tenant: String,
    pub asset: String,
    pub samples: u64,
    /// Lines of the page that were not valid samples.
    pub bad_lines: u64,
    /// Series beyond the per-target cap, dropped.
    pub dropped: u64,
    pub error: Option<String>,
    /// Alerts raised (new ones; a breach joining an open alert adds to it).
    pub alerts_raised: u64,
}

/// One series of a query.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesPoints {
    pub labels: String,
    /// `(time in ms, value)`, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// An alert of the asset within a queried range (to mark on a chart).
#[derive(Debug, Clone, Serialize)]
pub struct AlertMark {
    pub id: String,
    pub rule_id: String,
    pub title: String,
    pub severity: String,
    pub at: i64,
}

/// A metric of an asset over a time range.
#[derive(Debug, Clone, Serialize)]
pub struct MetricQuery {
    pub asset: String,
    pub metric: String,
    pub from: i64,
    pub to: i64,
    /// Points were averaged into buckets of this many ms (0: raw).
    pub step_ms: i64,
    pub series: Vec<SeriesPoints>,
    pub alerts: Vec<AlertMark>,
}

/// A metric name of an asset and how many series it has.
#[derive(Debug, Clone, Serialize)]
pub struct MetricName {
    pub name: String,
    pub series: u64,
}

/// What a user gives for a rule.
#[derive(Debug, Clone, Default)]
pub struct RuleInput {
    pub name: String,
    pub asset: Option<String>,
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    /// `threshold` (default) or `baseline`.
    pub kind: Option<String>,
    pub rate: bool,
    pub op: Option<String>,
    pub value: Option<f64>,
    pub for_secs: Option<u32>,
    pub k: Option<f64>,
    pub warmup: Option<u32>,
    pub alpha: Option<f64>,
    pub severity: Option<String>,
    pub enabled: Option<bool>,
}

/// A rule as shown to users.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub id: String,
    pub name: String,
    /// The alert's rule id.
    pub alert_rule_id: String,
    pub asset: Option<String>,
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub kind: String,
    pub rate: bool,
    pub op: String,
    pub value: f64,
    pub for_secs: u32,
    pub k: f64,
    pub warmup: u32,
    pub alpha: f64,
    pub severity: String,
    pub enabled: bool,
}

const OPS: [&str; 6] = [">", ">=", "<", "<=", "==", "!="];

/// The rule id on alerts of metric rule `name`.
pub fn alert_rule_id(name: &str) -> String {
    format!("parapet-metric-{name}")
}

fn valid_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
        && s.len() <= 200
}

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && s.len() <= 100
}

/// FNV-1a, 64 bits: a series id that does not change between versions or processes.
fn series_id(tenant: &Tenant, asset: AssetId, name: &str, labels: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        tenant.id.to_string().as_str(),
        &asset.to_string(),
        name,
        labels,
    ] {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

fn compare(x: f64, op: &str, v: f64) -> bool {
    match op {
        ">" => x > v,
        ">=" => x >= v,
        "<" => x < v,
        "<=" => x <= v,
        "==" => x == v,
        "!=" => x != v,
        _ => false,
    }
}

fn bad(m: impl Into<String>) -> MonitorError {
    MonitorError::Invalid(m.into())
}

/// The host of an `http(s)` URL, lower-cased, without IPv6 brackets.
fn url_host(url: &str) -> MonitorResult<String> {
    let u = reqwest::Url::parse(url).map_err(|_| bad("the metrics URL is not a valid URL"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("the metrics URL must be http or https"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("the metrics URL must not carry credentials"));
    }
    let host = u
        .host_str()
        .ok_or_else(|| bad("the metrics URL has no host"))?;
    Ok(host.trim_matches(['[', ']']).to_lowercase())
}

fn target_view(a: &Asset, t: &MetricTarget) -> TargetView {
    TargetView {
        asset: a.name.clone(),
        url: t.url.clone(),
        interval_secs: t.interval_secs,
        next_due_at: t.next_due_at.rfc3339(),
        last_scrape_at: t.last_scrape_at.map(Timestamp::rfc3339),
        last_error: t.last_error.clone(),
        last_samples: t.last_samples,
    }
}

impl Monitor {
    /// The service's (injected) clock.
    pub fn now(&self) -> Timestamp {
        self.env.now()
    }

    async fn asset_of(&self, t: &Tenant, asset: &str) -> MonitorResult<Asset> {
        self.store
            .get_asset(TenantCtx::new(t.id), asset)
            .await
            .map_err(|e| match e {
                parapet_store::StoreError::NotFound => MonitorError::Iam(
                    parapet_iam::IamError::NotFound(format!("asset {asset:?} not found")),
                ),
                e => store_err(e),
            })
    }

    /// Sets where asset `asset` of `tenant` is scraped from, and how often.
    pub async fn set_metrics_target(
        &self,
        p: &Principal,
        tenant: &str,
        asset: &str,
        url: &str,
        interval_secs: u32,
        meta: &RequestMeta,
    ) -> MonitorResult<TargetView> {
        let t = self
            .iam
            .resolve(p, tenant, Action::AssetWrite, meta)
            .await?;
        let a = self.asset_of(&t, asset).await?;
        if !(5..=86_400).contains(&interval_secs) {
            return Err(bad("the interval must be between 5 and 86400 seconds"));
        }
        if url.len() > 2000 {
            return Err(bad("the metrics URL is longer than 2000 characters"));
        }
        let host = url_host(url)?;
        let own = a.name.to_lowercase() == host
            || a.addresses
                .iter()
                .any(|x| x.trim_matches(['[', ']']).to_lowercase() == host);
        if !own {
            return Err(bad(format!(
                "the metrics URL's host {host:?} is neither the asset's name nor one of its addresses"
            )));
        }
        let now = self.env.now();
        let target = MetricTarget {
            tenant: t.id,
            asset: a.id,
            url: url.to_string(),
            interval_secs,
            next_due_at: now,
            last_scrape_at: None,
            last_error: None,
            last_samples: 0,
            created_at: now,
            updated_at: now,
        };
        let audit = self.audit(
            &t,
            p,
            meta,
            "metrics.target.set",
            format!("asset:{}/{}", t.name, a.name),
            json!({"url": url, "interval_secs": interval_secs}),
        );
        self.store
            .put_metric_target(TenantCtx::new(t.id), &target, &audit)
            .await
            .map_err(store_err)?;
        self.metrics_target(p, tenant, asset, meta)
            .await?
            .ok_or_else(|| bad("the target vanished"))
    }

    /// The scrape target of an asset, if any.
    pub async fn metrics_target(
        &self,
        p: &Principal,
        tenant: &str,
        asset: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<Option<TargetView>> {
        let t = self.iam.resolve(p, tenant, Action::EventRead, meta).await?;
        let a = self.asset_of(&t, asset).await?;
        Ok(self
            .store
            .get_metric_target(TenantCtx::new(t.id), a.id)
            .await
            .map_err(store_err)?
            .map(|x| target_view(&a, &x)))
    }

    /// Stops scraping an asset (its samples stay for the retention).
    pub async fn remove_metrics_target(
        &self,
        p: &Principal,
        tenant: &str,
        asset: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<()> {
        let t = self
            .iam
            .resolve(p, tenant, Action::AssetWrite, meta)
            .await?;
        let a = self.asset_of(&t, asset).await?;
        let audit = self.audit(
            &t,
            p,
            meta,
            "metrics.target.remove",
            format!("asset:{}/{}", t.name, a.name),
            json!({}),
        );
        self.store
            .delete_metric_target(TenantCtx::new(t.id), a.id, &audit)
            .await
            .map_err(|e| match e {
                parapet_store::StoreError::NotFound => MonitorError::Iam(
                    parapet_iam::IamError::NotFound("the asset has no metrics target".into()),
                ),
                e => store_err(e),
            })
    }

    /// Scrapes an asset now (to check a target), whatever its schedule.
    pub async fn scrape_now(
        &self,
        p: &Principal,
        tenant: &str,
        asset: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<ScrapeReport> {
        let t = self
            .iam
            .resolve(p, tenant, Action::AssetWrite, meta)
            .await?;
        let a = self.asset_of(&t, asset).await?;
        let target = self
            .store
            .get_metric_target(TenantCtx::new(t.id), a.id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                MonitorError::Iam(parapet_iam::IamError::NotFound(
                    "the asset has no metrics target".into(),
                ))
            })?;
        self.scrape(&t, &a, &target).await
    }

    /// Scrapes every due target of every tenant, at most `config.scrape_concurrency` at once
    /// (the background job). A target is claimed first, so replicas never scrape it twice.
    pub async fn scrape_due(&self) -> MonitorResult<Vec<ScrapeReport>> {
        let now = self.env.now();
        let mut jobs = Vec::new();
        for t in self.every_tenant().await? {
            let ctx = TenantCtx::new(t.id);
            for target in self
                .store
                .due_metric_targets(ctx, now, 1000)
                .await
                .map_err(store_err)?
            {
                let next = now.plus_secs(i64::from(target.interval_secs));
                if !self
                    .store
                    .claim_metric_target(ctx, target.asset, target.next_due_at, next)
                    .await
                    .map_err(store_err)?
                {
                    continue;
                }
                jobs.push((t.clone(), target));
            }
        }
        let reports: Vec<MonitorResult<ScrapeReport>> = futures_util::stream::iter(jobs)
            .map(|(t, target)| async move {
                let a = self
                    .store
                    .get_asset(TenantCtx::new(t.id), &target.asset.to_string())
                    .await
                    .map_err(store_err)?;
                self.scrape(&t, &a, &target).await
            })
            .buffer_unordered(self.config.scrape_concurrency.max(1))
            .collect()
            .await;
        let mut out = Vec::new();
        for r in reports {
            match r {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(error = %e, "metrics scrape failed"),
            }
        }
        Ok(out)
    }

    fn fetcher(&self) -> Option<Arc<dyn MetricsFetcher>> {
        self.fetcher.lock().ok().and_then(|f| f.clone())
    }

    /// Replaces how exposition pages are fetched (tests give canned pages).
    pub fn set_fetcher(&self, f: Arc<dyn MetricsFetcher>) {
        if let Ok(mut g) = self.fetcher.lock() {
            *g = Some(f);
        }
    }

    async fn scrape(
        &self,
        t: &Tenant,
        a: &Asset,
        target: &MetricTarget,
    ) -> MonitorResult<ScrapeReport> {
        let ctx = TenantCtx::new(t.id);
        let mut report = ScrapeReport {
            tenant: t.name.clone(),
            asset: a.name.clone(),
            samples: 0,
            bad_lines: 0,
            dropped: 0,
            error: None,
            alerts_raised: 0,
        };
        let page = match self.fetcher() {
            Some(f) => {
                f.fetch(
                    &target.url,
                    Duration::from_millis(self.config.scrape_timeout_ms),
                    self.config.scrape_max_bytes,
                )
                .await
            }
            None => Err("no metrics fetcher is configured".into()),
        };
        let now = self.env.now();
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                metrics::counter!("parapet_metric_scrapes_total", "outcome" => "error")
                    .increment(1);
                self.store
                    .record_scrape(ctx, a.id, &[], &[], &[], now, Some(&e))
                    .await
                    .map_err(store_err)?;
                report.error = Some(e);
                return Ok(report);
            }
        };
        let parsed = exposition::parse(&page);
        report.bad_lines = parsed.bad as u64;
        let known: HashSet<i64> = self
            .known_series
            .lock()
            .ok()
            .and_then(|k| k.get(&a.id).cloned())
            .unwrap_or_default();
        let mut seen = HashSet::new();
        let mut new_series = Vec::new();
        let mut samples = Vec::new();
        let mut kept: Vec<(&exposition::Sample, i64)> = Vec::new();
        for s in &parsed.samples {
            let labels = s.label_text();
            let id = series_id(t, a.id, &s.name, &labels);
            if !seen.insert(id) {
                continue;
            }
            if seen.len() > self.config.max_series_per_target {
                report.dropped += 1;
                continue;
            }
            if !known.contains(&id) {
                new_series.push(MetricSeries {
                    id,
                    asset: a.id,
                    name: s.name.clone(),
                    labels,
                });
            }
            samples.push(MetricSample {
                series: id,
                t: now,
                value: s.value,
            });
            kept.push((s, id));
        }
        // Rules over this asset.
        let rules: Vec<MetricRule> = self
            .store
            .list_metric_rules(ctx)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|r| r.enabled && r.asset.is_none_or(|x| x == a.id))
            .collect();
        let mut states = Vec::new();
        let mut raises = Vec::new();
        if !rules.is_empty() {
            let mut old: HashMap<(uuid::Uuid, i64), MetricRuleState> = self
                .store
                .metric_rule_states(ctx, a.id)
                .await
                .map_err(store_err)?
                .into_iter()
                .map(|s| ((s.rule, s.series), s))
                .collect();
            for r in &rules {
                for (s, id) in &kept {
                    if s.name != r.metric
                        || r.labels.iter().any(|(k, v)| s.labels.get(k) != Some(v))
                    {
                        continue;
                    }
                    let st = old.remove(&(r.id, *id)).unwrap_or(MetricRuleState {
                        rule: r.id,
                        series: *id,
                        pending_since: None,
                        mean: 0.0,
                        var: 0.0,
                        n: 0,
                        last_value: None,
                        last_t: None,
                    });
                    let (st, raise) = evaluate(r, st, s.value, now);
                    states.push(st);
                    if let Some(why) = raise {
                        raises.push(self.metric_alert(t, a, r, s, *id, why));
                    }
                }
            }
        }
        self.store
            .record_scrape(ctx, a.id, &new_series, &samples, &states, now, None)
            .await
            .map_err(store_err)?;
        if let Ok(mut k) = self.known_series.lock() {
            if k.len() > 10_000 {
                k.clear();
            }
            let entry = k.entry(a.id).or_default();
            entry.extend(new_series.iter().map(|s| s.id));
        }
        report.samples = samples.len() as u64;
        metrics::counter!("parapet_metric_scrapes_total", "outcome" => "ok").increment(1);
        metrics::counter!("parapet_metric_samples_total").increment(report.samples);
        for alert in raises {
            if let Some(ids) = self.raise_internal(t, &alert).await? {
                report.alerts_raised += ids.len() as u64;
            }
        }
        Ok(report)
    }

    fn metric_alert(
        &self,
        t: &Tenant,
        a: &Asset,
        r: &MetricRule,
        s: &exposition::Sample,
        series: i64,
        why: Breach,
    ) -> InternalAlert {
        let labels = s.label_text();
        let shown = if labels.is_empty() {
            s.name.clone()
        } else {
            format!("{}{{{labels}}}", s.name)
        };
        let (title, message, details, dedup) = match why {
            Breach::Threshold { x, since } => (
                format!("{} {} {} on {}", r.metric, r.op, r.value, a.name),
                format!(
                    "{shown} on {} is {x} ({} {}) since {}",
                    a.name,
                    r.op,
                    r.value,
                    since.rfc3339()
                ),
                json!({"kind": "metric-threshold", "metric": s.name, "labels": labels,
                    "value": x, "op": r.op, "threshold": r.value, "for_secs": r.for_secs,
                    "since": since.rfc3339(), "rate": r.rate}),
                format!("metric:{}:{series}:{}", r.id, since.0),
            ),
            Breach::Baseline { x, mean, std, z } => (
                format!("{} deviates from its baseline on {}", r.metric, a.name),
                format!(
                    "{shown} on {} is {x}, {z:.1} standard deviations from its learned mean {mean}",
                    a.name
                ),
                json!({"kind": "metric-baseline", "metric": s.name, "labels": labels,
                    "value": x, "mean": mean, "std": std, "z": z, "k": r.k, "rate": r.rate}),
                format!("baseline:{}:{series}:{}", r.id, self.env.now().0),
            ),
        };
        InternalAlert {
            source: "parapet-metrics".into(),
            rule_id: alert_rule_id(&r.name),
            title,
            severity: r.severity.clone(),
            group_key: format!("{}:{shown}", a.name),
            asset: Some(a.id),
            host: Some(a.name.clone()),
            message,
            details,
            dedup_key: dedup,
            audit_action: "metric.alert".into(),
            audit_target: format!("asset:{}/{}", t.name, a.name),
        }
    }

    /// The metric names an asset has series of.
    pub async fn metric_names(
        &self,
        p: &Principal,
        tenant: &str,
        asset: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<Vec<MetricName>> {
        let t = self.iam.resolve(p, tenant, Action::EventRead, meta).await?;
        let a = self.asset_of(&t, asset).await?;
        let mut out: Vec<MetricName> = Vec::new();
        for s in self
            .store
            .list_metric_series(TenantCtx::new(t.id), a.id)
            .await
            .map_err(store_err)?
        {
            match out.last_mut() {
                Some(m) if m.name == s.name => m.series += 1,
                _ => out.push(MetricName {
                    name: s.name,
                    series: 1,
                }),
            }
        }
        Ok(out)
    }

    /// Metric `name` of an asset between `from` and `to` (default: the last hour), each series
    /// averaged into at most `max_points` buckets, with the asset's alerts in the range.
    #[allow(clippy::too_many_arguments)]
    pub async fn metric_query(
        &self,
        p: &Principal,
        tenant: &str,
        asset: &str,
        name: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        max_points: u32,
        meta: &RequestMeta,
    ) -> MonitorResult<MetricQuery> {
        let t = self.iam.resolve(p, tenant, Action::EventRead, meta).await?;
        let a = self.asset_of(&t, asset).await?;
        if !valid_metric_name(name) {
            return Err(bad(format!("{name:?} is not a metric name")));
        }
        let to = to.unwrap_or_else(|| self.env.now());
        let from = from.unwrap_or(to.plus_secs(-3600));
        if from.0 > to.0 {
            return Err(bad("from is after to"));
        }
        let ctx = TenantCtx::new(t.id);
        let series: HashMap<i64, String> = self
            .store
            .list_metric_series(ctx, a.id)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|s| s.name == name)
            .map(|s| (s.id, s.labels))
            .collect();
        let points = self
            .store
            .metric_points(ctx, a.id, name, from, to, 200_000)
            .await
            .map_err(store_err)?;
        let max_points = i64::from(max_points.clamp(10, 5000));
        let span = (to.0 - from.0).max(1);
        let step = if points.len() as i64 > max_points * series.len().max(1) as i64 {
            (span + max_points - 1) / max_points
        } else {
            0
        };
        let mut grouped: Vec<SeriesPoints> = Vec::new();
        let mut cur: Option<(i64, Vec<MetricPoint>)> = None;
        let flush = |sid: i64, pts: Vec<MetricPoint>, out: &mut Vec<SeriesPoints>| {
            out.push(SeriesPoints {
                labels: series.get(&sid).cloned().unwrap_or_default(),
                points: bucket(&pts, from.0, step),
            });
        };
        for pt in points {
            match &mut cur {
                Some((sid, v)) if *sid == pt.series => v.push(pt),
                _ => {
                    if let Some((sid, v)) = cur.take() {
                        flush(sid, v, &mut grouped);
                    }
                    cur = Some((pt.series, vec![pt]));
                }
            }
        }
        if let Some((sid, v)) = cur.take() {
            flush(sid, v, &mut grouped);
        }
        grouped.sort_by(|x, y| x.labels.cmp(&y.labels));
        let alerts = self
            .store
            .list_alerts(
                ctx,
                &AlertFilter::default(),
                &Page {
                    after: None,
                    limit: 1000,
                },
            )
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|x| {
                x.tenant == t.id
                    && x.asset == Some(a.id)
                    && x.first_event_at.0 >= from.0
                    && x.first_event_at.0 <= to.0
            })
            .map(|x| AlertMark {
                id: x.id.to_string(),
                rule_id: x.rule_id,
                title: x.title,
                severity: x.severity,
                at: x.first_event_at.0,
            })
            .collect();
        Ok(MetricQuery {
            asset: a.name,
            metric: name.to_string(),
            from: from.0,
            to: to.0,
            step_ms: step,
            series: grouped,
            alerts,
        })
    }

    fn rule_from(
        &self,
        t: &Tenant,
        input: &RuleInput,
        asset: Option<AssetId>,
        id: uuid::Uuid,
        created: Timestamp,
    ) -> MonitorResult<MetricRule> {
        let name = input.name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(bad(
                "a rule name is 1 to 64 lower-case letters, digits, '-' or '_'",
            ));
        }
        if !valid_metric_name(&input.metric) {
            return Err(bad(format!("{:?} is not a metric name", input.metric)));
        }
        if input.labels.len() > 20 {
            return Err(bad("at most 20 labels"));
        }
        for (k, v) in &input.labels {
            if !valid_label_name(k) || v.len() > 200 {
                return Err(bad(format!("invalid label {k:?}")));
            }
        }
        let kind = match input.kind.as_deref() {
            None => MetricRuleKind::Threshold,
            Some(k) => MetricRuleKind::parse(k)
                .ok_or_else(|| bad("the kind is \"threshold\" or \"baseline\""))?,
        };
        let op = input.op.clone().unwrap_or_else(|| ">".into());
        if !OPS.contains(&op.as_str()) {
            return Err(bad(format!("the comparison is one of {}", OPS.join(" "))));
        }
        let value = match (kind, input.value) {
            (MetricRuleKind::Threshold, None) => {
                return Err(bad("a threshold rule needs a value"));
            }
            (_, v) => v.unwrap_or(0.0),
        };
        if !value.is_finite() {
            return Err(bad("the value must be a finite number"));
        }
        let for_secs = input.for_secs.unwrap_or(0);
        if for_secs > 7 * 86_400 {
            return Err(bad("for must be at most 7 days"));
        }
        let k = input.k.unwrap_or(3.0);
        if !(k.is_finite() && k > 0.0 && k <= 100.0) {
            return Err(bad("k must be a number above 0 and at most 100"));
        }
        let warmup = input.warmup.unwrap_or(30);
        if !(2..=100_000).contains(&warmup) {
            return Err(bad("the warm-up is between 2 and 100000 samples"));
        }
        let alpha = input.alpha.unwrap_or(0.1);
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(bad("alpha must be strictly between 0 and 1"));
        }
        let severity = input.severity.clone().unwrap_or_else(|| "medium".into());
        if !SEVERITIES.contains(&severity.as_str()) {
            return Err(bad(format!(
                "the severity is one of {}",
                SEVERITIES.join(", ")
            )));
        }
        Ok(MetricRule {
            id,
            tenant: t.id,
            name: name.to_string(),
            asset,
            metric: input.metric.clone(),
            labels: input.labels.clone(),
            kind,
            rate: input.rate,
            op,
            value,
            for_secs,
            k,
            warmup,
            alpha,
            severity,
            enabled: input.enabled.unwrap_or(true),
            created_at: created,
            updated_at: self.env.now(),
        })
    }

    async fn rule_view(&self, t: &Tenant, r: &MetricRule) -> MonitorResult<RuleView> {
        let asset = match r.asset {
            // A deleted asset's rule matches nothing; it shows the id it was made for.
            Some(a) => Some(match self.asset_of(t, &a.to_string()).await {
                Ok(x) => x.name,
                Err(_) => a.to_string(),
            }),
            None => None,
        };
        Ok(RuleView {
            id: r.id.to_string(),
            alert_rule_id: alert_rule_id(&r.name),
            name: r.name.clone(),
            asset,
            metric: r.metric.clone(),
            labels: r.labels.clone(),
            kind: r.kind.as_str().into(),
            rate: r.rate,
            op: r.op.clone(),
            value: r.value,
            for_secs: r.for_secs,
            k: r.k,
            warmup: r.warmup,
            alpha: r.alpha,
            severity: r.severity.clone(),
            enabled: r.enabled,
        })
    }

    /// The metric rules of a tenant.
    pub async fn metric_rules(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<Vec<RuleView>> {
        let t = self.iam.resolve(p, tenant, Action::RuleRead, meta).await?;
        let mut out = Vec::new();
        for r in self
            .store
            .list_metric_rules(TenantCtx::new(t.id))
            .await
            .map_err(store_err)?
        {
            out.push(self.rule_view(&t, &r).await?);
        }
        Ok(out)
    }

    async fn find_rule(&self, t: &Tenant, name: &str) -> MonitorResult<MetricRule> {
        self.store
            .list_metric_rules(TenantCtx::new(t.id))
            .await
            .map_err(store_err)?
            .into_iter()
            .find(|r| r.name == name || r.id.to_string() == name)
            .ok_or_else(|| {
                MonitorError::Iam(parapet_iam::IamError::NotFound(format!(
                    "metric rule {name:?} not found"
                )))
            })
    }

    /// Creates a metric rule.
    pub async fn create_metric_rule(
        &self,
        p: &Principal,
        tenant: &str,
        input: &RuleInput,
        meta: &RequestMeta,
    ) -> MonitorResult<RuleView> {
        let t = self
            .iam
            .resolve(p, tenant, Action::RuleManage, meta)
            .await?;
        let asset = match &input.asset {
            Some(a) => Some(self.asset_of(&t, a).await?.id),
            None => None,
        };
        let id = self
            .env
            .new_id()
            .map_err(|e| MonitorError::Iam(parapet_iam::IamError::Internal(e.to_string())))?;
        let rule = self.rule_from(&t, input, asset, id, self.env.now())?;
        let audit = self.audit(
            &t,
            p,
            meta,
            "metrics.rule.create",
            format!("metric-rule:{}/{}", t.name, rule.name),
            json!({"metric": rule.metric, "kind": rule.kind.as_str(), "op": rule.op,
                "value": rule.value, "for_secs": rule.for_secs, "k": rule.k}),
        );
        self.store
            .create_metric_rule(TenantCtx::new(t.id), &rule, &audit)
            .await
            .map_err(|e| match e {
                parapet_store::StoreError::Conflict(_) => {
                    MonitorError::Iam(parapet_iam::IamError::Conflict(format!(
                        "a metric rule named {:?} exists",
                        rule.name
                    )))
                }
                e => store_err(e),
            })?;
        self.rule_view(&t, &rule).await
    }

    /// Replaces a metric rule (by name or id); its learned state starts again.
    pub async fn update_metric_rule(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        input: &RuleInput,
        meta: &RequestMeta,
    ) -> MonitorResult<RuleView> {
        let t = self
            .iam
            .resolve(p, tenant, Action::RuleManage, meta)
            .await?;
        let old = self.find_rule(&t, name).await?;
        let asset = match &input.asset {
            Some(a) => Some(self.asset_of(&t, a).await?.id),
            None => None,
        };
        let rule = self.rule_from(&t, input, asset, old.id, old.created_at)?;
        let audit = self.audit(
            &t,
            p,
            meta,
            "metrics.rule.update",
            format!("metric-rule:{}/{}", t.name, rule.name),
            json!({"metric": rule.metric, "kind": rule.kind.as_str(), "op": rule.op,
                "value": rule.value, "for_secs": rule.for_secs, "k": rule.k,
                "enabled": rule.enabled}),
        );
        self.store
            .update_metric_rule(TenantCtx::new(t.id), &rule, &audit)
            .await
            .map_err(store_err)?;
        self.rule_view(&t, &rule).await
    }

    /// Deletes a metric rule (by name or id).
    pub async fn delete_metric_rule(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<()> {
        let t = self
            .iam
            .resolve(p, tenant, Action::RuleManage, meta)
            .await?;
        let old = self.find_rule(&t, name).await?;
        let audit = self.audit(
            &t,
            p,
            meta,
            "metrics.rule.delete",
            format!("metric-rule:{}/{}", t.name, old.name),
            json!({}),
        );
        self.store
            .delete_metric_rule(TenantCtx::new(t.id), old.id, &audit)
            .await
            .map_err(store_err)
    }

    /// Folds raw samples older than `config.metrics_raw_hours` into hourly roll-ups and drops
    /// roll-ups older than the tenant's retention (called by the retention job).
    pub(crate) async fn purge_metrics(
        &self,
        t: &Tenant,
        retention_days: u32,
    ) -> MonitorResult<parapet_store::MetricsPurged> {
        let now = self.env.now();
        let raw = now.0 - i64::from(self.config.metrics_raw_hours) * 3_600_000;
        let raw_before = Timestamp(raw - raw.rem_euclid(3_600_000));
        let keep_before = now.plus_secs(-i64::from(retention_days) * 86_400);
        let audit = AuditEvent {
            time: now,
            tenant: Some(t.id),
            actor: Actor::System,
            action: "metrics.purge".into(),
            target: format!("metrics:{}", t.name),
            source_ip: None,
            user_agent: None,
            outcome: AuditOutcome::Success,
            details: json!({"retention_days": retention_days,
                "raw_before": raw_before.rfc3339()}),
        };
        self.store
            .purge_metrics(TenantCtx::new(t.id), raw_before, keep_before, &audit)
            .await
            .map_err(store_err)
    }
}

/// Why a sample breaches its rule.
#[derive(Debug, Clone, Copy)]
enum Breach {
    Threshold { x: f64, since: Timestamp },
    Baseline { x: f64, mean: f64, std: f64, z: f64 },
}

/// One sample against one rule: the new state, and the breach to raise, if any.
fn evaluate(
    r: &MetricRule,
    mut st: MetricRuleState,
    v: f64,
    now: Timestamp,
) -> (MetricRuleState, Option<Breach>) {
    let x = if r.rate {
        let rate = match (st.last_value, st.last_t) {
            (Some(lv), Some(lt)) if now.0 > lt.0 && v >= lv => {
                Some((v - lv) / ((now.0 - lt.0) as f64 / 1000.0))
            }
            _ => None,
        };
        st.last_value = Some(v);
        st.last_t = Some(now);
        match rate {
            Some(x) => x,
            None => return (st, None),
        }
    } else {
        st.last_value = Some(v);
        st.last_t = Some(now);
        v
    };
    let mut out = None;
    match r.kind {
        MetricRuleKind::Threshold => {
            if compare(x, &r.op, r.value) {
                let since = *st.pending_since.get_or_insert(now);
                if now.0 - since.0 >= i64::from(r.for_secs) * 1000 {
                    out = Some(Breach::Threshold { x, since });
                }
            } else {
                st.pending_since = None;
            }
        }
        MetricRuleKind::Baseline => {
            if st.n >= i64::from(r.warmup) {
                let std = st.var.sqrt().max(st.mean.abs() * 1e-3).max(1e-9);
                let z = (x - st.mean) / std;
                if z.abs() > r.k {
                    out = Some(Breach::Baseline {
                        x,
                        mean: st.mean,
                        std,
                        z,
                    });
                }
            }
            if st.n == 0 {
                st.mean = x;
                st.var = 0.0;
            } else {
                let d = x - st.mean;
                let incr = r.alpha * d;
                st.mean += incr;
                st.var = (1.0 - r.alpha) * (st.var + d * incr);
            }
            st.n = st.n.saturating_add(1);
        }
    }
    (st, out)
}

/// Averages points into buckets of `step` ms from `from` (0: as they are).
fn bucket(points: &[MetricPoint], from: i64, step: i64) -> Vec<(i64, f64)> {
    if step <= 0 {
        return points.iter().map(|p| (p.t.0, p.value)).collect();
    }
    let mut out: Vec<(i64, f64, u32)> = Vec::new();
    for p in points {
        let b = from + ((p.t.0 - from) / step) * step;
        match out.last_mut() {
            Some((t, sum, n)) if *t == b => {
                *sum += p.value;
                *n += 1;
            }
            _ => out.push((b, p.value, 1)),
        }
    }
    out.into_iter()
        .map(|(t, sum, n)| (t, sum / f64::from(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rule(kind: MetricRuleKind) -> MetricRule {
        MetricRule {
            id: uuid::Uuid::nil(),
            tenant: parapet_types::TenantId(uuid::Uuid::nil()),
            name: "r".into(),
            asset: None,
            metric: "m".into(),
            labels: BTreeMap::new(),
            kind,
            rate: false,
            op: ">".into(),
            value: 10.0,
            for_secs: 60,
            k: 3.0,
            warmup: 10,
            alpha: 0.1,
            severity: "high".into(),
            enabled: true,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn fresh() -> MetricRuleState {
        MetricRuleState {
            rule: uuid::Uuid::nil(),
            series: 1,
            pending_since: None,
            mean: 0.0,
            var: 0.0,
            n: 0,
            last_value: None,
            last_t: None,
        }
    }

    #[test]
    fn threshold_waits_for_its_duration_and_resets_when_it_clears() {
        let r = rule(MetricRuleKind::Threshold);
        let (st, b) = evaluate(&r, fresh(), 11.0, Timestamp(0));
        assert!(b.is_none() && st.pending_since == Some(Timestamp(0)));
        let (st, b) = evaluate(&r, st, 12.0, Timestamp(59_000));
        assert!(b.is_none());
        let (st, b) = evaluate(&r, st, 12.0, Timestamp(60_000));
        assert!(matches!(
            b,
            Some(Breach::Threshold {
                since: Timestamp(0),
                ..
            })
        ));
        let (st, b) = evaluate(&r, st, 9.0, Timestamp(75_000));
        assert!(b.is_none() && st.pending_since.is_none());
    }

    #[test]
    fn rates_of_counters_skip_resets() {
        let mut r = rule(MetricRuleKind::Threshold);
        r.rate = true;
        r.for_secs = 0;
        let (st, b) = evaluate(&r, fresh(), 100.0, Timestamp(0));
        assert!(b.is_none());
        // 100 -> 1,300 in 60 s: 20/s > 10.
        let (st, b) = evaluate(&r, st, 1300.0, Timestamp(60_000));
        assert!(matches!(b, Some(Breach::Threshold { x, .. }) if (x - 20.0).abs() < 1e-9));
        // A reset (the counter went down) is no rate.
        let (_, b) = evaluate(&r, st, 5.0, Timestamp(120_000));
        assert!(b.is_none());
    }

    #[test]
    fn baseline_learns_then_flags_outliers_only() {
        let r = rule(MetricRuleKind::Baseline);
        let mut st = fresh();
        for i in 0..40 {
            let v = 50.0 + if i % 2 == 0 { 1.0 } else { -1.0 };
            let (s, b) = evaluate(&r, st, v, Timestamp(i * 1000));
            assert!(b.is_none(), "sample {i}");
            st = s;
        }
        assert!((st.mean - 50.0).abs() < 1.0);
        let (_, b) = evaluate(&r, st, 51.5, Timestamp(41_000));
        assert!(b.is_none(), "within k standard deviations");
        let (_, b) = evaluate(&r, st, 80.0, Timestamp(41_000));
        assert!(matches!(b, Some(Breach::Baseline { z, .. }) if z > 3.0));
        // Not judged during the warm-up.
        let (_, b) = evaluate(&r, fresh(), 1e9, Timestamp(0));
        assert!(b.is_none());
    }

    #[test]
    fn series_ids_are_stable_and_distinct() {
        let t = Tenant {
            id: parapet_types::TenantId(uuid::Uuid::nil()),
            name: "acme".into(),
            kind: parapet_types::TenantKind::Customer,
            status: parapet_store::TenantStatus::Active,
            created_at: Timestamp(0),
        };
        let a = AssetId(uuid::Uuid::nil());
        assert_eq!(series_id(&t, a, "m", ""), series_id(&t, a, "m", ""));
        assert_ne!(series_id(&t, a, "m", "a=\"1\""), series_id(&t, a, "m", ""));
        assert_ne!(series_id(&t, a, "ma", ""), series_id(&t, a, "m", "a"));
    }
}
