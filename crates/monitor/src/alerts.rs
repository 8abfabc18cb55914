//! Live detection (X.1642 8.3, 8.6.1): Sigma rules stored per tenant, compiled once per tenant
//! (and once for the provider, whose rules see every tenant's events), evaluated on every
//! ingested event; matches become alerts grouped by rule and group key within a window, unless
//! suppressed; alerts are acknowledged and closed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use parapet_detect::{Correlator, CorrelatorConfig, Detector, RuleError, RuleSet};
use parapet_iam::authz::Action;
use parapet_iam::{IamError, Principal, RequestMeta};
use parapet_store::{
    Alert, AlertFilter, AlertHit, AlertStatus, AuditEvent, AuditOutcome, Page, StoreError,
    StoredRule, Suppression, Tenant,
};
use parapet_types::{AssetId, TenantCtx, TenantId, Timestamp};
use serde_json::{Value, json};

use crate::{Monitor, MonitorError, MonitorResult, store_err};

/// A tenant's compiled rules.
pub(crate) struct Compiled {
    /// When the rules were last found current (ms).
    pub loaded: std::sync::atomic::AtomicI64,
    pub version: (i64, i64, i64),
    pub detector: Option<Detector>,
    /// The live windows of the tenant's correlation rules, when it has any.
    pub correlation: Option<Mutex<LiveCorrelation>>,
}

/// The live windows of one rule owner's Sigma correlation rules.
pub(crate) struct LiveCorrelation {
    pub correlator: Correlator,
    /// Grows by one for every event that fed the windows.
    pub version: i64,
    /// The version last saved, and when (ms).
    pub saved_version: i64,
    pub saved_at: i64,
}

/// Windows with at most this many keys are saved with every batch that changed them; larger
/// ones at most every [`SAVE_EVERY_MS`] (and by [`Monitor::save_correlations`]).
const SAVE_ALWAYS_KEYS: usize = 10_000;
const SAVE_EVERY_MS: i64 = 5_000;

/// A correlation state to save: (rule owner, version, snapshot).
pub(crate) type StateToSave = (TenantId, i64, String);

impl LiveCorrelation {
    /// The snapshot to save now, if the windows changed since the last save and are small or
    /// were last saved long enough ago (`force`: whenever they changed).
    fn due(&mut self, owner: TenantId, now: i64, force: bool) -> Option<StateToSave> {
        if self.version <= self.saved_version {
            return None;
        }
        let small = self.correlator.key_count() <= SAVE_ALWAYS_KEYS;
        if !(force || small || now - self.saved_at >= SAVE_EVERY_MS) {
            return None;
        }
        match self.correlator.snapshot() {
            Ok(state) => {
                self.saved_version = self.version;
                self.saved_at = now;
                Some((owner, self.version, state))
            }
            Err(e) => {
                tracing::warn!(error = %e, "correlation state cannot be saved");
                None
            }
        }
    }
}

/// One rule that matched one event of a sample.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SampleMatch {
    /// 0-based position of the event in the sample.
    pub event_index: usize,
    pub rule_id: String,
    pub title: String,
    pub level: Option<String>,
}

const LEVELS: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

fn level_severity(level: Option<&str>) -> String {
    match level {
        Some(l) if LEVELS.contains(&l) => l.to_string(),
        _ => "medium".to_string(),
    }
}

/// Reads the rules of one uploaded file; every problem is reported with the file and line.
pub fn parse_rule_file(
    tenant: TenantId,
    file: &str,
    yaml: &str,
    now: Timestamp,
) -> Result<StoredRule, Vec<RuleError>> {
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    set.add_text(Path::new(file), yaml, &mut errors);
    let (_, compile_errors) = Detector::build(&set);
    errors.extend(compile_errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let first = set
        .rules
        .first()
        .map(|(r, _)| {
            (
                r.id.clone(),
                r.title.clone(),
                r.level.map(|l| l.as_str().to_string()),
            )
        })
        .or_else(|| {
            set.correlations.first().map(|(r, _)| {
                (
                    r.id.clone(),
                    r.title.clone(),
                    r.level.map(|l| l.as_str().to_string()),
                )
            })
        });
    let Some((id, title, level)) = first else {
        return Err(vec![RuleError {
            file: file.into(),
            line: 1,
            reason: "no detection rule in the file".into(),
        }]);
    };
    let rule_id = id.unwrap_or_else(|| title.clone());
    if rule_id.is_empty() || rule_id.len() > 200 || rule_id.chars().any(char::is_control) {
        return Err(vec![RuleError {
            file: file.into(),
            line: 1,
            reason: "the rule id must be 1 to 200 printable characters".into(),
        }]);
    }
    Ok(StoredRule {
        tenant,
        rule_id,
        title,
        level,
        file: file.to_string(),
        yaml: yaml.to_string(),
        rules: u32::try_from(set.rules.len() + set.correlations.len()).unwrap_or(u32::MAX),
        enabled: true,
        created_at: now,
        updated_at: now,
    })
}

fn compile(
    rules: &[StoredRule],
    clock: Arc<dyn parapet_types::Clock>,
    max_keys: usize,
) -> (Option<Detector>, Option<Correlator>) {
    if rules.is_empty() {
        return (None, None);
    }
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    for r in rules {
        set.add_text(Path::new(&r.file), &r.yaml, &mut errors);
    }
    let (detector, more) = Detector::build(&set);
    let correlator = if set.correlations.is_empty() {
        None
    } else {
        let config = CorrelatorConfig {
            max_keys,
            ..CorrelatorConfig::default()
        };
        let (c, errs) = Correlator::build(&set, config, clock);
        for e in &errs {
            tracing::warn!(error = %e, "stored correlation rule does not load");
        }
        Some(c).filter(|c| c.correlation_count() > 0)
    };
    for e in errors.iter().chain(&more) {
        tracing::warn!(error = %e, "stored detection rule does not load");
    }
    (Some(detector), correlator)
}

impl Monitor {
    pub(crate) fn audit(
        &self,
        t: &Tenant,
        p: &Principal,
        meta: &RequestMeta,
        action: &str,
        target: String,
        details: Value,
    ) -> AuditEvent {
        AuditEvent {
            time: self.env.now(),
            tenant: Some(t.id),
            actor: p.actor(),
            action: action.into(),
            target,
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            outcome: AuditOutcome::Success,
            details,
        }
    }

    /// The compiled enabled rules of tenant `t` (cached for a few seconds; cleared at once when
    /// rules change on this replica).
    pub(crate) async fn compiled(&self, t: TenantId) -> MonitorResult<Arc<Compiled>> {
        let now = self.env.now();
        let cached = self.detectors.lock().ok().and_then(|c| c.get(&t).cloned());
        if let Some(c) = &cached
            && (0..self.config.rule_cache_ms)
                .contains(&(now.0 - c.loaded.load(std::sync::atomic::Ordering::Relaxed)))
        {
            return Ok(c.clone());
        }
        // Past its age, compiled rules are kept when the stored rules have not changed
        // (compiling thousands of rules takes seconds).
        let version = self
            .store
            .rules_version(TenantCtx::new(t))
            .await
            .map_err(store_err)?;
        if let Some(c) = &cached
            && c.version == version
        {
            c.loaded.store(now.0, std::sync::atomic::Ordering::Relaxed);
            return Ok(c.clone());
        }
        let rules = self
            .store
            .list_rules(TenantCtx::new(t), true)
            .await
            .map_err(store_err)?;
        let max_keys = if Some(t) == self.provider_id().await? {
            self.config.correlation_max_keys
        } else {
            self.config.tenant_correlation_max_keys
        };
        let (detector, correlator) = compile(&rules, self.env.clock.clone(), max_keys);
        let correlation = match correlator {
            None => None,
            Some(mut correlator) => {
                // The windows carry over: from the rules compiled before on this replica, else
                // from the state saved before a restart.
                let earlier = match cached.as_ref().and_then(|c| c.correlation.as_ref()) {
                    Some(m) => m.lock().ok().and_then(|live| {
                        live.correlator.snapshot().ok().map(|s| (live.version, s))
                    }),
                    None => self
                        .store
                        .correlation_state(TenantCtx::new(t))
                        .await
                        .map_err(store_err)?,
                };
                let mut version = 0;
                if let Some((v, state)) = earlier {
                    version = v;
                    if let Err(e) = correlator.restore(&state) {
                        tracing::warn!(error = %e, tenant = %t, "correlation state not restored");
                    }
                }
                Some(Mutex::new(LiveCorrelation {
                    correlator,
                    version,
                    saved_version: version,
                    saved_at: now.0,
                }))
            }
        };
        let c = Arc::new(Compiled {
            loaded: std::sync::atomic::AtomicI64::new(now.0),
            version,
            detector,
            correlation,
        });
        if let Ok(mut cache) = self.detectors.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(t, c.clone());
        }
        Ok(c)
    }

    fn forget_rules(&self, t: &Tenant) {
        if let Ok(mut cache) = self.detectors.lock() {
            if t.kind == parapet_types::TenantKind::Provider {
                cache.clear();
            } else {
                cache.remove(&t.id);
            }
        }
    }

    /// The provider tenant's id (cached: it never changes).
    pub(crate) async fn provider_id(&self) -> MonitorResult<Option<TenantId>> {
        if let Ok(p) = self.provider.lock()
            && let Some(id) = *p
        {
            return Ok(Some(id));
        }
        let found = self
            .store
            .provider_tenant()
            .await
            .map_err(store_err)?
            .map(|t| t.id);
        if let (Ok(mut p), Some(id)) = (self.provider.lock(), found) {
            *p = Some(id);
        }
        Ok(found)
    }

    /// Rules that match an event of tenant `t`: the provider's and the tenant's own.
    pub(crate) async fn detectors_for(
        &self,
        t: &Tenant,
    ) -> MonitorResult<Vec<(TenantId, Arc<Compiled>)>> {
        let mut out = Vec::new();
        if let Some(pid) = self.provider_id().await?
            && pid != t.id
        {
            out.push((pid, self.compiled(pid).await?));
        }
        out.push((t.id, self.compiled(t.id).await?));
        Ok(out)
    }

    /// Uploads rule files (name, YAML) into tenant `tenant`: all or nothing.
    pub async fn import_rules(
        &self,
        p: &Principal,
        tenant: &str,
        files: &[(String, String)],
        meta: &RequestMeta,
    ) -> MonitorResult<Vec<StoredRule>> {
        let t = self
            .iam
            .resolve(p, tenant, Action::RuleManage, meta)
            .await?;
        if files.is_empty() {
            return Err(MonitorError::Invalid("no rule file given".into()));
        }
        let now = self.env.now();
        let mut rules: Vec<StoredRule> = Vec::new();
        let mut errors = Vec::new();
        for (name, yaml) in files {
            match parse_rule_file(t.id, name, yaml, now) {
                Ok(r) => {
                    if let Some(other) = rules.iter().find(|o| o.rule_id == r.rule_id) {
                        errors.push(RuleError {
                            file: name.into(),
                            line: 1,
                            reason: format!(
                                "rule id {} is also in {} of the same upload",
                                r.rule_id, other.file
                            ),
                        });
                    } else {
                        rules.push(r);
                    }
                }
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(MonitorError::Rules(errors));
        }
        let audit = self.audit(
            &t,
            p,
            meta,
            "rules.import",
            format!("rules:{}", t.name),
            json!({"rules": rules.iter().map(|r| &r.rule_id).collect::<Vec<_>>()}),
        );
        self.store
            .put_rules(TenantCtx::new(t.id), &rules, &audit)
            .await
            .map_err(store_err)?;
        self.forget_rules(&t);
        Ok(rules)
    }

    pub async fn list_rules(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<(Tenant, Vec<StoredRule>)> {
        let t = self.iam.resolve(p, tenant, Action::RuleRead, meta).await?;
        let rules = self
            .store
            .list_rules(TenantCtx::new(t.id), false)
            .await
            .map_err(store_err)?;
        Ok((t, rules))
    }

    pub async fn set_rule_enabled(
        &self,
        p: &Principal,
        tenant: &str,
        rule_id: &str,
        enabled: bool,
        meta: &RequestMeta,
    ) -> MonitorResult<()> {
        let t = self
            .iam
            .resolve(p, tenant, Action::RuleManage, meta)
            .await?;
        let audit = self.audit(
            &t,
            p,
            meta,
            if enabled {
                "rule.enable"
            } else {
                "rule.disable"
            },
            format!("rule:{}/{rule_id}", t.name),
            json!({}),
        );
        match self
            .store
            .set_rule_enabled(TenantCtx::new(t.id), rule_id, enabled, &audit)
            .await
        {
            Ok(()) => {
                self.forget_rules(&t);
                Ok(())
            }
            Err(StoreError::NotFound) => Err(MonitorError::Iam(IamError::NotFound(format!(
                "tenant {} has no rule {rule_id:?}",
                t.name
            )))),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Evaluates the tenant's enabled rules (and, for a customer, the provider's) on a sample
    /// (JSON array or JSON lines) without storing anything.
    pub async fn test_rules(
        &self,
        p: &Principal,
        tenant: &str,
        sample: &[u8],
        meta: &RequestMeta,
    ) -> MonitorResult<Vec<SampleMatch>> {
        let t = self.iam.resolve(p, tenant, Action::RuleRead, meta).await?;
        let parsed = crate::normalize::parse_body(sample).map_err(MonitorError::BadEvent)?;
        let detectors = self.detectors_for(&t).await?;
        let mut out = Vec::new();
        for (i, ev) in parsed.iter().enumerate() {
            for (_, c) in &detectors {
                if let Some(d) = &c.detector {
                    for m in d.detect(&ev.value) {
                        out.push(SampleMatch {
                            event_index: i,
                            rule_id: m.rule_id,
                            title: m.title,
                            level: m.level,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Alerts of `tenant` (every tenant's for the provider tenant), newest first.
    pub async fn list_alerts(
        &self,
        p: &Principal,
        tenant: &str,
        filter: &AlertFilter,
        page: &Page,
        meta: &RequestMeta,
    ) -> MonitorResult<(Tenant, Vec<Alert>)> {
        let t = self.iam.resolve(p, tenant, Action::AlertRead, meta).await?;
        let list = self
            .store
            .list_alerts(TenantCtx::new(t.id), filter, page)
            .await
            .map_err(store_err)?;
        Ok((t, list))
    }

    fn alert_id(id: &str) -> MonitorResult<uuid::Uuid> {
        uuid::Uuid::parse_str(id)
            .map_err(|_| MonitorError::Iam(IamError::NotFound(format!("no alert {id:?}"))))
    }

    /// An alert with the ids of (up to 1,000 of) its events.
    pub async fn get_alert(
        &self,
        p: &Principal,
        tenant: &str,
        id: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<(Tenant, Alert, Vec<uuid::Uuid>)> {
        let t = self.iam.resolve(p, tenant, Action::AlertRead, meta).await?;
        let uid = Self::alert_id(id)?;
        match self.store.get_alert(TenantCtx::new(t.id), uid, 1000).await {
            Ok((a, ids)) => Ok((t, a, ids)),
            Err(StoreError::NotFound) => Err(MonitorError::Iam(IamError::NotFound(format!(
                "no alert {id:?}"
            )))),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Acknowledges or closes an alert.
    pub async fn handle_alert(
        &self,
        p: &Principal,
        tenant: &str,
        id: &str,
        status: AlertStatus,
        note: Option<&str>,
        meta: &RequestMeta,
    ) -> MonitorResult<(Tenant, Alert)> {
        if let Some(n) = note
            && (n.chars().count() > 2000 || n.chars().any(|c| c.is_control() && c != '\n'))
        {
            return Err(MonitorError::Invalid(
                "the note must be at most 2000 characters without control characters".into(),
            ));
        }
        let t = self
            .iam
            .resolve(p, tenant, Action::AlertHandle, meta)
            .await?;
        let uid = Self::alert_id(id)?;
        let action = match status {
            AlertStatus::Acknowledged => "alert.acknowledge",
            AlertStatus::Closed => "alert.close",
            AlertStatus::Open => {
                return Err(MonitorError::Invalid("an alert cannot be reopened".into()));
            }
        };
        let audit = self.audit(
            &t,
            p,
            meta,
            action,
            format!("alert:{}/{uid}", t.name),
            json!({"note": note}),
        );
        match self
            .store
            .set_alert_status(
                TenantCtx::new(t.id),
                uid,
                status,
                &p.login_name(),
                note,
                &audit,
            )
            .await
        {
            Ok(a) => Ok((t, a)),
            Err(StoreError::NotFound) => Err(MonitorError::Iam(IamError::NotFound(format!(
                "no alert {id:?}"
            )))),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Suppresses new alerts of `rule_id` (for one group key, or all) in `tenant` for
    /// `minutes`.
    #[allow(clippy::too_many_arguments)]
    pub async fn suppress(
        &self,
        p: &Principal,
        tenant: &str,
        rule_id: &str,
        group_key: Option<&str>,
        minutes: u32,
        reason: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<Suppression> {
        if !(1..=60 * 24 * 90).contains(&minutes) {
            return Err(MonitorError::Invalid(
                "a suppression lasts 1 minute to 90 days".into(),
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(MonitorError::Invalid(
                "give a reason of 1 to 500 characters".into(),
            ));
        }
        if rule_id.trim().is_empty() || rule_id.len() > 200 {
            return Err(MonitorError::Invalid("give the rule id".into()));
        }
        let t = self
            .iam
            .resolve(p, tenant, Action::AlertHandle, meta)
            .await?;
        let now = self.env.now();
        let s = Suppression {
            id: self
                .env
                .new_id()
                .map_err(|e| MonitorError::Iam(IamError::Internal(e.to_string())))?,
            tenant: t.id,
            rule_id: rule_id.to_string(),
            group_key: group_key.map(str::to_lowercase),
            until: now.plus_secs(i64::from(minutes) * 60),
            reason: reason.to_string(),
            created_by: p.login_name(),
            created_at: now,
        };
        let audit = self.audit(
            &t,
            p,
            meta,
            "alert.suppress",
            format!("rule:{}/{rule_id}", t.name),
            json!({"group_key": s.group_key, "until": s.until.rfc3339(), "reason": s.reason}),
        );
        self.store
            .add_suppression(TenantCtx::new(t.id), &s, &audit)
            .await
            .map_err(store_err)?;
        Ok(s)
    }
}

/// Compiled detectors per tenant.
pub(crate) type DetectorCache = HashMap<TenantId, Arc<Compiled>>;

/// The alert hits of one event: the detection rules that matched it, and the correlation
/// rules its matches completed (their windows are fed here). The owners whose correlation
/// windows changed are added to `fed`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hits_of(
    env: &parapet_types::Env,
    detectors: &[(TenantId, Arc<Compiled>)],
    event: &Value,
    id: uuid::Uuid,
    time: Timestamp,
    host: Option<&str>,
    asset: Option<AssetId>,
    out: &mut Vec<AlertHit>,
    fed: &mut Vec<TenantId>,
) -> MonitorResult<()> {
    let prepared = parapet_detect::prepare(event);
    let (fields, source) = match &prepared {
        Some((flat, source)) => (flat, Some(source)),
        None => (event, None),
    };
    let new_id = || {
        env.new_id()
            .map_err(|e| MonitorError::Iam(IamError::Internal(e.to_string())))
    };
    for (owner, c) in detectors {
        let Some(d) = &c.detector else { continue };
        let matches = d.evaluate(fields, source);
        if matches.is_empty() {
            continue;
        }
        let silent = |rule: &str| {
            c.correlation.as_ref().is_some_and(|live| {
                live.lock()
                    .map(|l| !l.correlator.generates(rule))
                    .unwrap_or(false)
            })
        };
        for m in matches.detections() {
            if m.correlation || silent(&m.rule_id) {
                continue;
            }
            out.push(AlertHit {
                rule_id: m.rule_id,
                rule_tenant: *owner,
                title: m.title,
                severity: level_severity(m.level.as_deref()),
                group_key: host.map_or_else(|| "-".to_string(), str::to_lowercase),
                asset,
                event: id,
                event_time: time,
                new_alert_id: new_id()?,
            });
        }
        let Some(live) = &c.correlation else { continue };
        let fired = match live.lock() {
            Ok(mut live) => {
                live.version += 1;
                if !fed.contains(owner) {
                    fed.push(*owner);
                }
                live.correlator
                    .process_at(fields, matches, time.0.div_euclid(1000))
            }
            Err(_) => Vec::new(),
        };
        for m in fired {
            let group = if m.group.is_empty() {
                "-".to_string()
            } else {
                m.group
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
                    .to_lowercase()
            };
            out.push(AlertHit {
                rule_id: m.rule_id,
                rule_tenant: *owner,
                title: m.title,
                severity: level_severity(m.level.as_deref()),
                group_key: group,
                asset,
                event: id,
                event_time: time,
                new_alert_id: new_id()?,
            });
        }
    }
    Ok(())
}

/// The correlation states of `owners` due to be saved (all changed ones with `force`).
pub(crate) fn states_due(
    detectors: &[(TenantId, Arc<Compiled>)],
    owners: &[TenantId],
    now: Timestamp,
    force: bool,
) -> Vec<StateToSave> {
    detectors
        .iter()
        .filter(|(o, _)| owners.contains(o))
        .filter_map(|(o, c)| {
            let live = c.correlation.as_ref()?;
            live.lock().ok()?.due(*o, now.0, force)
        })
        .collect()
}
