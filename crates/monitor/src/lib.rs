//! Security monitoring (X.1642 8.3, 8.6.1, 7.2.2.6): events arrive in batches (HTTP, later
//! syslog and Parapet's own audit log), are parsed and normalized ([`normalize`]), attributed to
//! their tenant and to an asset of the inventory (by host name or address), stored with the
//! batch's audit record in one transaction, kept for the tenant's retention period, and searched.
//!
//! Back-pressure: the bytes of batches being processed are counted against a fixed budget; a
//! batch that does not fit is refused at once ([`MonitorError::Busy`]) instead of queuing without
//! bound. A batch is acknowledged only after its transaction committed, so nothing acknowledged
//! is lost; a batch sent again under the same idempotency key is answered with the first answer
//! and stored once.
//!
//! Authorization is decided by `parapet_iam::authz` (`EventIngest`, `EventRead`,
//! `EventRetention`); every storage call takes the tenant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use parapet_iam::authz::Action;
use parapet_iam::{IamError, IamService, Principal, RequestMeta};
use parapet_store::{
    AssetFilter, AuditEvent, AuditOutcome, EventFilter, Page, Purged, Store, StoreError,
    StoredEvent, Tenant,
};
use parapet_types::{Actor, AssetId, Env, TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod alerts;
pub mod audit_source;
pub mod config_change;
pub mod escalation;
pub mod exposition;
pub mod health;
pub mod internal;
pub mod metric;
pub mod normalize;
pub mod syslog;
pub use alerts::{SampleMatch, parse_rule_file};
pub use normalize::{BadEvent, MAX_BATCH_EVENTS, MAX_EVENT_BYTES};
pub use parapet_detect::RuleError;

/// What a monitoring call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Iam(#[from] IamError),
    /// A bad event: nothing of the batch was stored.
    #[error("line {}: {}; nothing of the batch was stored", .0.line, .0.message)]
    BadEvent(BadEvent),
    #[error("{0}")]
    Invalid(String),
    /// Invalid rules: nothing was stored.
    #[error("{} invalid rule(s); nothing was stored", .0.len())]
    Rules(Vec<parapet_detect::RuleError>),
    /// Too much is being ingested right now: retry after this many seconds.
    #[error("the ingestion queue is full; retry in {0} s")]
    Busy(u32),
}

pub type MonitorResult<T> = Result<T, MonitorError>;

pub(crate) fn store_err(e: StoreError) -> MonitorError {
    MonitorError::Iam(match e {
        StoreError::NotFound => IamError::NotFound("not found".into()),
        StoreError::Conflict(m) => IamError::Conflict(m),
        StoreError::Unavailable(m) => IamError::Unavailable(m),
        StoreError::Other(m) => IamError::Internal(m),
    })
}

/// Settings of the monitoring service.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Retention of tenants that set none, in days.
    pub default_retention_days: u32,
    /// How long idempotency keys are remembered, in seconds.
    pub idempotency_secs: i64,
    /// Bytes of batches processed at once; more is refused with [`MonitorError::Busy`].
    pub ingest_budget_bytes: usize,
    /// How long the asset lookup of a tenant is reused, in milliseconds.
    pub asset_cache_ms: i64,
    /// How long compiled rules are reused before another replica's changes are read (ms).
    pub rule_cache_ms: i64,
    /// Matches of the same rule and group key within this many seconds of the alert's last
    /// event join that alert.
    pub dedup_window_secs: i64,
    /// Most live correlation keys (correlation × group) of the provider's rules, which see
    /// every tenant's events, and of each tenant's own rules.
    pub correlation_max_keys: usize,
    pub tenant_correlation_max_keys: usize,
    /// Minutes without data after which an asset that sent data before is silent (an asset's
    /// tag `silent_after_minutes` overrides it).
    pub silent_after_minutes: u32,
    /// Metrics scrapes run at once by the background job.
    pub scrape_concurrency: usize,
    /// How long a scrape may take, in milliseconds.
    pub scrape_timeout_ms: u64,
    /// Largest exposition page read.
    pub scrape_max_bytes: usize,
    /// Series kept per scrape target; more are dropped and counted.
    pub max_series_per_target: usize,
    /// Hours raw metric samples are kept before they are folded into hourly roll-ups.
    pub metrics_raw_hours: u32,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            default_retention_days: 90,
            idempotency_secs: 7 * 24 * 3600,
            ingest_budget_bytes: 64 * 1024 * 1024,
            asset_cache_ms: 5_000,
            rule_cache_ms: 5_000,
            dedup_window_secs: 300,
            correlation_max_keys: 1_000_000,
            tenant_correlation_max_keys: 100_000,
            silent_after_minutes: 30,
            scrape_concurrency: 8,
            scrape_timeout_ms: 10_000,
            scrape_max_bytes: 8 * 1024 * 1024,
            max_series_per_target: 10_000,
            metrics_raw_hours: 48,
        }
    }
}

/// The answer to an ingested batch (also what a replay returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub batch: String,
    pub accepted: u64,
    /// Events attributed to an asset of the inventory.
    pub attributed: u64,
    /// Alerts raised by the batch, and matches added to existing alerts.
    #[serde(default)]
    pub alerts_raised: u64,
    #[serde(default)]
    pub alert_matches: u64,
    /// Whether this is the recorded answer to an earlier request with the same key.
    #[serde(default)]
    pub replayed: bool,
}

/// A search.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub host: Option<String>,
    pub source: Option<String>,
    pub severity: Option<String>,
    /// An asset id or name.
    pub asset: Option<String>,
    pub batch: Option<String>,
    /// `(dotted field path, value)`: the event's field must equal the value (as text).
    pub fields: Vec<(String, String)>,
    /// Text that must occur in the event (regardless of ASCII case).
    pub text: Option<String>,
    pub limit: u32,
    pub cursor: Option<String>,
}

/// A page of search results.
#[derive(Debug, Clone)]
pub struct Found {
    pub events: Vec<StoredEvent>,
    /// Where the next page starts, when there may be more.
    pub next: Option<String>,
}

/// Host names and addresses of one tenant's assets, lower-cased.
struct AssetIndex {
    loaded: Timestamp,
    by_key: HashMap<String, AssetId>,
    /// Change policies of the assets that set one (tags `maintenance_window`, `change_accounts`).
    policies: HashMap<AssetId, config_change::ChangePolicy>,
}

/// Bytes reserved against the ingestion budget; given back on drop.
pub struct Reservation<'a> {
    used: &'a AtomicUsize,
    bytes: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The monitoring service.
pub struct Monitor {
    iam: Arc<IamService>,
    store: Arc<dyn Store>,
    env: Env,
    config: MonitorConfig,
    in_flight: AtomicUsize,
    assets: Mutex<HashMap<TenantId, Arc<AssetIndex>>>,
    detectors: Mutex<alerts::DetectorCache>,
    provider: Mutex<Option<TenantId>>,
    global: Mutex<Option<Arc<GlobalIndex>>>,
    alert_sink: Mutex<Option<AlertSink>>,
    fetcher: Mutex<Option<Arc<dyn metric::MetricsFetcher>>>,
    /// Series already stored, per asset (so a scrape inserts only new ones).
    known_series: Mutex<HashMap<AssetId, std::collections::HashSet<i64>>>,
}

/// Called after a batch that raised alerts committed, with the tenant and the new alerts' ids
/// (the notification module subscribes here).
pub type AlertSink = Arc<dyn Fn(&Tenant, &[uuid::Uuid]) + Send + Sync>;

/// Every tenant's assets by lower-cased host name and address (for senders that do not say
/// which tenant they belong to, such as syslog).
struct GlobalIndex {
    loaded: Timestamp,
    by_key: HashMap<String, (Tenant, AssetId)>,
    provider: Option<Tenant>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

const SEVERITIES: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

impl Monitor {
    pub fn new(iam: Arc<IamService>, config: MonitorConfig) -> Self {
        Monitor {
            store: iam.store().clone(),
            env: iam.env().clone(),
            iam,
            config,
            in_flight: AtomicUsize::new(0),
            assets: Mutex::new(HashMap::new()),
            detectors: Mutex::new(HashMap::new()),
            provider: Mutex::new(None),
            global: Mutex::new(None),
            alert_sink: Mutex::new(None),
            fetcher: Mutex::new(
                metric::HttpFetcher::new()
                    .ok()
                    .map(|f| Arc::new(f) as Arc<dyn metric::MetricsFetcher>),
            ),
            known_series: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Subscribes `sink` to newly raised alerts (one subscriber; a second call replaces it).
    pub fn on_alerts(&self, sink: AlertSink) {
        if let Ok(mut s) = self.alert_sink.lock() {
            *s = Some(sink);
        }
    }

    /// Reserves `bytes` of the ingestion budget, or refuses at once when it is spent.
    pub fn reserve(&self, bytes: usize) -> MonitorResult<Reservation<'_>> {
        let bytes = bytes.max(1);
        let mut cur = self.in_flight.load(Ordering::Acquire);
        loop {
            // One batch alone always fits, so a large batch is never refused for ever.
            if cur > 0 && cur.saturating_add(bytes) > self.config.ingest_budget_bytes {
                metrics::counter!("parapet_ingest_refused_busy_total").increment(1);
                return Err(MonitorError::Busy(1));
            }
            match self.in_flight.compare_exchange(
                cur,
                cur + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Reservation {
                        used: &self.in_flight,
                        bytes,
                    });
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Resolves the tenant an ingestion goes to (authorizing the caller).
    pub async fn ingest_tenant(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<Tenant> {
        Ok(self
            .iam
            .resolve(p, tenant, Action::EventIngest, meta)
            .await?)
    }

    async fn asset_index(&self, t: &Tenant) -> MonitorResult<Arc<AssetIndex>> {
        let now = self.env.now();
        if let Ok(cache) = self.assets.lock()
            && let Some(ix) = cache.get(&t.id)
            && (0..self.config.asset_cache_ms).contains(&(now.0 - ix.loaded.0))
        {
            return Ok(ix.clone());
        }
        let mut by_key = HashMap::new();
        let mut policies = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_assets(
                    TenantCtx::new(t.id),
                    &AssetFilter::default(),
                    &Page {
                        after: after.clone(),
                        limit: 1000,
                    },
                )
                .await
                .map_err(store_err)?;
            for a in &page {
                if let Some(p) = config_change::ChangePolicy::from_tags(&a.tags) {
                    policies.insert(a.id, p);
                }
                by_key.entry(a.name.to_lowercase()).or_insert(a.id);
                for addr in &a.addresses {
                    by_key.entry(addr.to_lowercase()).or_insert(a.id);
                }
            }
            if page.len() < 1000 {
                break;
            }
            after = page.last().map(|a| a.name.to_lowercase());
        }
        let ix = Arc::new(AssetIndex {
            loaded: now,
            by_key,
            policies,
        });
        if let Ok(mut cache) = self.assets.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(t.id, ix.clone());
        }
        Ok(ix)
    }

    /// Ingests a batch (a JSON array or JSON lines) into tenant `t`, as `actor`. With `key`, a
    /// second call with the same key returns the first receipt and stores nothing.
    pub async fn ingest(
        &self,
        t: &Tenant,
        actor: Actor,
        meta: &RequestMeta,
        body: &[u8],
        key: Option<&str>,
    ) -> MonitorResult<Receipt> {
        if let Some(k) = key
            && (k.is_empty() || k.len() > 200 || k.chars().any(char::is_control))
        {
            return Err(MonitorError::Invalid(
                "the Idempotency-Key must be 1 to 200 printable characters".into(),
            ));
        }
        let parsed = match normalize::parse_body(body) {
            Ok(p) => p,
            Err(bad) => {
                let reason = if bad.too_large {
                    "too-large"
                } else {
                    "invalid"
                };
                metrics::counter!("parapet_events_rejected_total", "reason" => reason).increment(1);
                return Err(MonitorError::BadEvent(bad));
            }
        };
        // A replay is answered before its events are evaluated, so that it does not feed the
        // correlation windows twice (the transaction checks again, for concurrent replays).
        if let Some(k) = key
            && let Some(previous) = self
                .store
                .batch_response(TenantCtx::new(t.id), k)
                .await
                .map_err(store_err)?
        {
            return replayed(&previous);
        }
        let now = self.env.now();
        let batch = self
            .env
            .new_id()
            .map_err(|e| MonitorError::Iam(IamError::Internal(e.to_string())))?;
        let index = self.asset_index(t).await?;
        let detectors = self.detectors_for(t).await?;
        // Normalizing and evaluating thousands of rules is CPU work: it runs on a blocking
        // thread so that the server's other requests are not held up.
        let env = self.env.clone();
        let tenant = t.id;
        let (events, hits, attributed, states) = tokio::task::spawn_blocking(move || {
            evaluate_batch(&env, tenant, batch, now, parsed, &index, &detectors)
        })
        .await
        .map_err(|e| MonitorError::Iam(IamError::Internal(format!("detection failed: {e}"))))??;
        let mut receipt = Receipt {
            batch: batch.to_string(),
            accepted: events.len() as u64,
            attributed,
            alerts_raised: 0,
            alert_matches: hits.len() as u64,
            replayed: false,
        };
        // The raised count is only known after grouping in the store; the recorded answer
        // carries the matches, and the live answer both.
        let response = serde_json::to_string(&receipt)
            .map_err(|e| MonitorError::Iam(IamError::Internal(e.to_string())))?;
        let audit = AuditEvent {
            time: now,
            tenant: Some(t.id),
            actor,
            action: "events.ingest".into(),
            target: format!("events:{}", t.name),
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            outcome: AuditOutcome::Success,
            details: json!({"batch": receipt.batch, "events": receipt.accepted,
                "idempotency_key": key}),
        };
        let window_start = now.plus_secs(-self.config.dedup_window_secs);
        let stored = self
            .store
            .ingest_events(
                TenantCtx::new(t.id),
                key,
                &response,
                &events,
                &hits,
                window_start,
                &audit,
            )
            .await
            .map_err(store_err)?;
        match stored.replay {
            None => {
                metrics::counter!("parapet_events_ingested_total").increment(receipt.accepted);
                metrics::counter!("parapet_alerts_raised_total").increment(stored.alerts.created);
                metrics::counter!("parapet_alerts_suppressed_total")
                    .increment(stored.alerts.suppressed);
                receipt.alerts_raised = stored.alerts.created;
                self.save_states(states).await;
                if !stored.alerts.raised.is_empty() {
                    let sink = self.alert_sink.lock().ok().and_then(|s| s.clone());
                    if let Some(sink) = sink {
                        sink(t, &stored.alerts.raised);
                    }
                }
                Ok(receipt)
            }
            Some(previous) => replayed(&previous),
        }
    }

    /// Saves correlation states after a batch; a failure is logged (the windows stay in memory
    /// and are saved with the next batch or by [`Monitor::save_correlations`]).
    async fn save_states(&self, states: Vec<alerts::StateToSave>) {
        for (owner, version, state) in states {
            if let Err(e) = self
                .store
                .save_correlation_state(TenantCtx::new(owner), version, &state, self.env.now())
                .await
            {
                tracing::warn!(error = %e, "correlation state not saved");
                if let Ok(cache) = self.detectors.lock()
                    && let Some(live) = cache.get(&owner).and_then(|c| c.correlation.as_ref())
                    && let Ok(mut live) = live.lock()
                {
                    live.saved_version = live.saved_version.min(version - 1);
                }
            }
        }
    }

    /// Saves every correlation state changed since it was last saved (the periodic job of
    /// `serve` and its shutdown). Returns how many states were saved.
    pub async fn save_correlations(&self) -> usize {
        let all: Vec<(TenantId, Arc<alerts::Compiled>)> = match self.detectors.lock() {
            Ok(cache) => cache.iter().map(|(t, c)| (*t, c.clone())).collect(),
            Err(_) => return 0,
        };
        let owners: Vec<TenantId> = all.iter().map(|(t, _)| *t).collect();
        let states = alerts::states_due(&all, &owners, self.env.now(), true);
        let n = states.len();
        self.save_states(states).await;
        n
    }

    /// How many live correlation keys are held (every owner's).
    pub fn correlation_keys(&self) -> usize {
        match self.detectors.lock() {
            Ok(cache) => cache
                .values()
                .filter_map(|c| c.correlation.as_ref())
                .filter_map(|m| m.lock().ok().map(|l| l.correlator.key_count()))
                .sum(),
            Err(_) => 0,
        }
    }

    /// Searches tenant `tenant`'s events, newest first.
    pub async fn search(
        &self,
        p: &Principal,
        tenant: &str,
        q: &Search,
        meta: &RequestMeta,
    ) -> MonitorResult<(Tenant, Found)> {
        let t = self.iam.resolve(p, tenant, Action::EventRead, meta).await?;
        if let Some(s) = &q.severity
            && !SEVERITIES.contains(&s.as_str())
        {
            return Err(MonitorError::Invalid(format!(
                "unknown severity {s:?}; expected one of: {}",
                SEVERITIES.join(", ")
            )));
        }
        if q.fields.len() > 8 {
            return Err(MonitorError::Invalid(
                "at most 8 field conditions per search".into(),
            ));
        }
        let asset = match &q.asset {
            None => None,
            Some(a) => Some(
                self.store
                    .get_asset(TenantCtx::new(t.id), a)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound => MonitorError::Iam(IamError::NotFound(format!(
                            "tenant {} has no asset {a:?}",
                            t.name
                        ))),
                        e => store_err(e),
                    })?
                    .id,
            ),
        };
        let batch = match &q.batch {
            None => None,
            Some(b) => Some(
                uuid::Uuid::parse_str(b)
                    .map_err(|_| MonitorError::Invalid(format!("{b:?} is not a batch id")))?,
            ),
        };
        // Field values and free text narrow the scan in the database (a substring of the raw
        // JSON); the exact field equality is checked here.
        let mut contains = Vec::new();
        for (_, v) in &q.fields {
            if !v.is_empty() && !v.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                contains.push(v.to_lowercase());
            }
        }
        if let Some(text) = q.text.as_ref().filter(|t| !t.is_empty()) {
            contains.push(text.to_lowercase());
        }
        let filter = EventFilter {
            from: q.from,
            to: q.to,
            host: q.host.clone(),
            source: q.source.clone(),
            severity: q.severity.clone(),
            asset,
            batch,
            contains,
        };
        let limit = q.limit.clamp(1, 1000);
        let mut events = Vec::new();
        let mut cursor = q.cursor.clone();
        let chunk = if q.fields.is_empty() {
            limit + 1
        } else {
            (limit * 4).max(200)
        };
        for _ in 0..20 {
            let rows = self
                .store
                .search_events(
                    TenantCtx::new(t.id),
                    &filter,
                    &Page {
                        after: cursor.clone(),
                        limit: chunk,
                    },
                )
                .await
                .map_err(store_err)?;
            let exhausted = rows.len() < chunk as usize;
            for e in rows {
                cursor = Some(cursor_of(&e));
                if matches_fields(&e, &q.fields) {
                    events.push(e);
                    if events.len() as u32 == limit {
                        return Ok((
                            t,
                            Found {
                                events,
                                next: cursor,
                            },
                        ));
                    }
                }
            }
            if exhausted {
                return Ok((t, Found { events, next: None }));
            }
        }
        Ok((
            t,
            Found {
                events,
                next: cursor,
            },
        ))
    }

    /// One event of tenant `tenant`.
    pub async fn get(
        &self,
        p: &Principal,
        tenant: &str,
        id: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<(Tenant, StoredEvent)> {
        let t = self.iam.resolve(p, tenant, Action::EventRead, meta).await?;
        let not_found = || MonitorError::Iam(IamError::NotFound(format!("no event {id:?}")));
        let id = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
        match self.store.get_event(TenantCtx::new(t.id), id).await {
            Ok(e) => Ok((t, e)),
            Err(StoreError::NotFound) => Err(not_found()),
            Err(e) => Err(store_err(e)),
        }
    }

    /// A tenant's retention in days, and whether it is the server's default.
    pub async fn retention(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<(Tenant, u32, bool)> {
        let t = self.iam.resolve(p, tenant, Action::EventRead, meta).await?;
        let own = self
            .store
            .event_retention(TenantCtx::new(t.id))
            .await
            .map_err(store_err)?;
        Ok((
            t,
            own.unwrap_or(self.config.default_retention_days),
            own.is_none(),
        ))
    }

    /// Sets a tenant's retention (1 to 3,650 days).
    pub async fn set_retention(
        &self,
        p: &Principal,
        tenant: &str,
        days: u32,
        meta: &RequestMeta,
    ) -> MonitorResult<Tenant> {
        if !(1..=3650).contains(&days) {
            return Err(MonitorError::Invalid(
                "the retention must be between 1 and 3650 days".into(),
            ));
        }
        let t = self
            .iam
            .resolve(p, tenant, Action::EventRetention, meta)
            .await?;
        let audit = AuditEvent {
            time: self.env.now(),
            tenant: Some(t.id),
            actor: p.actor(),
            action: "events.retention".into(),
            target: format!("events:{}", t.name),
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            outcome: AuditOutcome::Success,
            details: json!({"days": days}),
        };
        self.store
            .set_event_retention(TenantCtx::new(t.id), days, &audit)
            .await
            .map_err(store_err)?;
        Ok(t)
    }

    /// Deletes, in every tenant, events older than the tenant's retention and idempotency keys
    /// older than their lifetime (the background job; time from the injected clock).
    pub async fn enforce_retention(&self) -> MonitorResult<Vec<(String, Purged)>> {
        let now = self.env.now();
        let mut out = Vec::new();
        for t in &self.every_tenant().await? {
            let ctx = TenantCtx::new(t.id);
            let days = self
                .store
                .event_retention(ctx)
                .await
                .map_err(store_err)?
                .unwrap_or(self.config.default_retention_days);
            let before = now.plus_secs(-i64::from(days) * 86_400);
            let keys_before = now.plus_secs(-self.config.idempotency_secs);
            let audit = AuditEvent {
                time: now,
                tenant: Some(t.id),
                actor: Actor::System,
                action: "events.purge".into(),
                target: format!("events:{}", t.name),
                source_ip: None,
                user_agent: None,
                outcome: AuditOutcome::Success,
                details: json!({"retention_days": days, "before": before.rfc3339()}),
            };
            let purged = self
                .store
                .purge_events(ctx, before, keys_before, &audit)
                .await
                .map_err(store_err)?;
            let m = self.purge_metrics(t, days).await?;
            if m != parapet_store::MetricsPurged::default() {
                metrics::counter!("parapet_metric_samples_rolled_up_total").increment(m.rolled_up);
            }
            if purged != Purged::default() {
                metrics::counter!("parapet_events_purged_total").increment(purged.events);
                out.push((t.name.clone(), purged));
            }
        }
        Ok(out)
    }

    /// Every tenant, read page by page in the provider's view (for the background jobs); none
    /// before the provider exists.
    pub(crate) async fn every_tenant(&self) -> MonitorResult<Vec<parapet_store::Tenant>> {
        let Some(provider) = self.store.provider_tenant().await.map_err(store_err)? else {
            return Ok(Vec::new());
        };
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let tenants = self
                .store
                .list_tenants(
                    TenantCtx::new(provider.id),
                    &Page {
                        after: after.clone(),
                        limit: 500,
                    },
                )
                .await
                .map_err(store_err)?;
            let full = tenants.len() == 500;
            after = tenants.last().map(|t| t.id.to_string());
            all.extend(tenants);
            if !full {
                return Ok(all);
            }
        }
    }
}

impl Monitor {
    async fn global_index(&self) -> MonitorResult<Arc<GlobalIndex>> {
        let now = self.env.now();
        if let Ok(g) = self.global.lock()
            && let Some(ix) = g.as_ref()
            && (0..self.config.asset_cache_ms).contains(&(now.0 - ix.loaded.0))
        {
            return Ok(ix.clone());
        }
        let provider = self.store.provider_tenant().await.map_err(store_err)?;
        let mut by_key = HashMap::new();
        if let Some(p) = &provider {
            let mut after: Option<String> = None;
            loop {
                let tenants = self
                    .store
                    .list_tenants(
                        TenantCtx::new(p.id),
                        &Page {
                            after: after.clone(),
                            limit: 500,
                        },
                    )
                    .await
                    .map_err(store_err)?;
                for t in &tenants {
                    let ix = self.asset_index(t).await?;
                    for (k, a) in &ix.by_key {
                        by_key.entry(k.clone()).or_insert((t.clone(), *a));
                    }
                }
                if tenants.len() < 500 {
                    break;
                }
                after = tenants.last().map(|t| t.id.to_string());
            }
        }
        let ix = Arc::new(GlobalIndex {
            loaded: now,
            by_key,
            provider,
        });
        if let Ok(mut g) = self.global.lock() {
            *g = Some(ix.clone());
        }
        Ok(ix)
    }

    /// Ingests received syslog lines `(sender address, line)`: each is parsed (RFC 5424 or
    /// 3164; auditd records into fields), attributed through the inventory of every tenant by
    /// host name, else by the sender's address (unknown senders go to the provider tenant), and
    /// stored per tenant as one batch. Malformed lines are counted and kept whole.
    pub async fn ingest_lines(&self, lines: &[(String, String)]) -> MonitorResult<u64> {
        let now = self.env.now();
        let ix = self.global_index().await?;
        let mut per_tenant: HashMap<TenantId, (Tenant, Vec<u8>)> = HashMap::new();
        for (peer, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            // A line longer than an event may be is cut (and counted as malformed).
            let mut cut = line.len() > MAX_EVENT_BYTES / 2;
            let mut end = line.len().min(MAX_EVENT_BYTES / 2);
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            let (ev, ok) = syslog::parse_line(line.get(..end).unwrap_or_default(), peer, now);
            cut |= !ok;
            metrics::counter!("parapet_syslog_messages_total").increment(1);
            if cut {
                metrics::counter!("parapet_syslog_malformed_total").increment(1);
            }
            let host = ev
                .get("host")
                .and_then(Value::as_str)
                .map(str::to_lowercase);
            let found = host
                .as_ref()
                .and_then(|h| ix.by_key.get(h))
                .or_else(|| ix.by_key.get(&peer.to_lowercase()));
            let tenant = match (found, &ix.provider) {
                (Some((t, _)), _) => t.clone(),
                (None, Some(p)) => p.clone(),
                (None, None) => continue,
            };
            let Ok(mut text) = serde_json::to_vec(&ev) else {
                continue;
            };
            text.push(b'\n');
            per_tenant
                .entry(tenant.id)
                .or_insert_with(|| (tenant, Vec::new()))
                .1
                .extend_from_slice(&text);
        }
        let mut stored = 0;
        let meta = RequestMeta {
            source_ip: None,
            user_agent: Some("syslog".into()),
        };
        for (_, (t, body)) in per_tenant {
            let r = self.ingest(&t, Actor::System, &meta, &body, None).await?;
            stored += r.accepted;
        }
        Ok(stored)
    }
}

/// Normalizes, attributes and evaluates the events of a batch.
fn evaluate_batch(
    env: &Env,
    tenant: TenantId,
    batch: uuid::Uuid,
    now: Timestamp,
    parsed: Vec<normalize::Parsed>,
    index: &AssetIndex,
    detectors: &[(TenantId, Arc<alerts::Compiled>)],
) -> MonitorResult<Evaluated> {
    let mut events = Vec::with_capacity(parsed.len());
    let mut hits = Vec::new();
    let mut fed = Vec::new();
    let mut attributed = 0u64;
    for mut p in parsed {
        let n = normalize::normalize(&p.value);
        let asset = attribute(index, n.host.as_deref(), &n.addresses);
        if asset.is_some() {
            attributed += 1;
        }
        let id = env
            .new_id()
            .map_err(|e| MonitorError::Iam(IamError::Internal(e.to_string())))?;
        let time = n.time.unwrap_or(now);
        // Configuration changes are marked against the asset's change policy for the rules.
        config_change::mark(
            &mut p.value,
            asset.and_then(|a| index.policies.get(&a)),
            time,
        );
        alerts::hits_of(
            env,
            detectors,
            &p.value,
            id,
            time,
            n.host.as_deref(),
            asset,
            &mut hits,
            &mut fed,
        )?;
        events.push(StoredEvent {
            id,
            tenant,
            time,
            received_at: now,
            host: n.host,
            source: n.source,
            severity: n.severity,
            message: n.message,
            asset,
            batch,
            raw: p.raw,
        });
    }
    let states = alerts::states_due(detectors, &fed, env.now(), false);
    Ok((events, hits, attributed, states))
}

/// What evaluating a batch gives: its events, alert hits, how many were attributed to an
/// asset, and the correlation states to save.
type Evaluated = (
    Vec<StoredEvent>,
    Vec<parapet_store::AlertHit>,
    u64,
    Vec<alerts::StateToSave>,
);

/// The answer to a replayed batch: its recorded receipt.
fn replayed(previous: &str) -> MonitorResult<Receipt> {
    metrics::counter!("parapet_ingest_replays_total").increment(1);
    let mut r: Receipt = serde_json::from_str(previous)
        .map_err(|e| MonitorError::Iam(IamError::Internal(e.to_string())))?;
    r.replayed = true;
    Ok(r)
}

/// The asset an event names by host name (or its first label) or by address.
fn attribute(ix: &AssetIndex, host: Option<&str>, addresses: &[String]) -> Option<AssetId> {
    if let Some(h) = host {
        let h = h.to_lowercase();
        if let Some(a) = ix.by_key.get(&h) {
            return Some(*a);
        }
        if let Some((short, _)) = h.split_once('.')
            && h.parse::<std::net::IpAddr>().is_err()
            && let Some(a) = ix.by_key.get(short)
        {
            return Some(*a);
        }
    }
    addresses
        .iter()
        .find_map(|a| ix.by_key.get(&a.to_lowercase()).copied())
}

/// The search cursor just after `e`.
pub fn cursor_of(e: &StoredEvent) -> String {
    format!("{}:{}", e.time.0, e.id)
}

fn matches_fields(e: &StoredEvent, fields: &[(String, String)]) -> bool {
    if fields.is_empty() {
        return true;
    }
    let Ok(v) = serde_json::from_str::<Value>(&e.raw) else {
        return false;
    };
    fields.iter().all(|(path, want)| {
        normalize::field(&v, path)
            .and_then(normalize::scalar)
            .is_some_and(|got| &got == want)
    })
}
