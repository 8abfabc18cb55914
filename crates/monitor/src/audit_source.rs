//! Parapet's own audit log as an event source (X.1642 8.3(2): illegal access to the management
//! platform is detected too), and the built-in detection rules shipped as Sigma YAML.
//!
//! The audit records are read in log-index order and ingested into the provider tenant (the
//! management platform is the provider's) with the record's index as `seq`; batches carry an
//! idempotency key made of their index range, so two replicas or a restart never store a record
//! twice. Records of the ingestion itself by Parapet (`events.ingest` by the system) are left
//! out, or every batch would feed the next, and so are successful uses of keys (encrypt,
//! decrypt, sign, … — the key service's data plane), whose volume would swamp ingestion; their
//! failures and refusals, and changes to keys, are fed.

use parapet_iam::IamError;
use parapet_store::{AuditEvent, AuditOutcome, EventFilter, Page, StoredRule};
use parapet_types::{Actor, TenantCtx};
use serde_json::{Value, json};

use crate::{Monitor, MonitorError, MonitorResult, store_err};

/// The built-in rules: (file name, YAML). Correlations refer to rules of other files by id or
/// name: the provider's rules are compiled together.
pub const BUILTIN_RULES: [(&str, &str); 8] = [
    (
        "parapet_login_failure.yml",
        include_str!("../rules/parapet_login_failure.yml"),
    ),
    (
        "parapet_login_success.yml",
        include_str!("../rules/parapet_login_success.yml"),
    ),
    (
        "parapet_brute_force.yml",
        include_str!("../rules/parapet_brute_force.yml"),
    ),
    (
        "parapet_login_unusual.yml",
        include_str!("../rules/parapet_login_unusual.yml"),
    ),
    (
        "parapet_privilege_grant_outside_approval.yml",
        include_str!("../rules/parapet_privilege_grant_outside_approval.yml"),
    ),
    (
        "parapet_access_denied.yml",
        include_str!("../rules/parapet_access_denied.yml"),
    ),
    (
        "parapet_mass_deletion.yml",
        include_str!("../rules/parapet_mass_deletion.yml"),
    ),
    (
        "parapet_config_change.yml",
        include_str!("../rules/parapet_config_change.yml"),
    ),
];

/// Records read per step.
const STEP: u64 = 1000;

impl Monitor {
    /// Installs the built-in rules as provider rules unless the provider has them (a rule the
    /// provider disabled stays disabled). Returns how many were installed.
    pub async fn install_builtin_rules(&self) -> MonitorResult<usize> {
        let Some(provider) = self.store.provider_tenant().await.map_err(store_err)? else {
            return Ok(0);
        };
        let ctx = TenantCtx::new(provider.id);
        let have = self.store.list_rules(ctx, false).await.map_err(store_err)?;
        let now = self.env.now();
        let mut new: Vec<StoredRule> = Vec::new();
        for (file, yaml) in BUILTIN_RULES {
            let r = crate::alerts::parse_rule_file(provider.id, file, yaml, now).map_err(|e| {
                MonitorError::Iam(IamError::Internal(format!("built-in rule {file}: {e:?}")))
            })?;
            if !have.iter().any(|h| h.rule_id == r.rule_id) {
                new.push(r);
            }
        }
        if new.is_empty() {
            return Ok(0);
        }
        let audit = AuditEvent {
            time: now,
            tenant: Some(provider.id),
            actor: Actor::System,
            action: "rules.import".into(),
            target: format!("rules:{}", provider.name),
            source_ip: None,
            user_agent: None,
            outcome: AuditOutcome::Success,
            details: json!({"builtin": true,
                "rules": new.iter().map(|r| &r.rule_id).collect::<Vec<_>>()}),
        };
        self.store
            .put_rules(ctx, &new, &audit)
            .await
            .map_err(store_err)?;
        if let Ok(mut cache) = self.detectors.lock() {
            cache.clear();
        }
        Ok(new.len())
    }

    /// Where the audit source stands: the next log index to read. Found from the newest audit
    /// event stored in the provider tenant.
    async fn audit_cursor(&self, provider: &parapet_store::Tenant) -> MonitorResult<u64> {
        let found = self
            .store
            .search_events(
                TenantCtx::new(provider.id),
                &EventFilter {
                    source: Some("parapet-audit".into()),
                    ..EventFilter::default()
                },
                &Page {
                    after: None,
                    limit: 50,
                },
            )
            .await
            .map_err(store_err)?;
        Ok(found
            .iter()
            .filter_map(|e| {
                serde_json::from_str::<Value>(&e.raw)
                    .ok()?
                    .get("seq")?
                    .as_u64()
            })
            .max()
            .map_or(0, |s| s + 1))
    }

    /// Ingests the audit records written since the last step (at most 1,000). `cursor` is the
    /// next log index (found from the stored events when `None`). Returns the records ingested.
    pub async fn ingest_audit_step(&self, cursor: &mut Option<u64>) -> MonitorResult<u64> {
        let Some(provider) = self.store.provider_tenant().await.map_err(store_err)? else {
            return Ok(0);
        };
        let from = match *cursor {
            Some(c) => c,
            None => self.audit_cursor(&provider).await?,
        };
        let count = self.store.audit_record_count().await.map_err(store_err)?;
        if from >= count {
            *cursor = Some(from);
            return Ok(0);
        }
        let to = count.min(from + STEP);
        let records = self
            .store
            .audit_range(TenantCtx::new(provider.id), from, to, STEP as u32)
            .await
            .map_err(store_err)?;
        let mut body = Vec::new();
        let mut last = from;
        let mut logins: Vec<PastLogin> = Vec::new();
        let mut profiles = std::collections::HashMap::new();
        let mut names = std::collections::HashMap::new();
        for r in &records {
            last = last.max(u64::try_from(r.id).unwrap_or(0));
            let e = &r.event;
            if (e.action == "events.ingest" && e.actor == Actor::System) || routine_key_use(e) {
                continue;
            }
            let tenant = match e.tenant {
                Some(id) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
                        let name = self
                            .store
                            .get_tenant(TenantCtx::new(provider.id), &id.to_string())
                            .await
                            .map(|t| t.name)
                            .unwrap_or_else(|_| id.to_string());
                        slot.insert(name);
                    }
                    names.get(&id).cloned()
                }
                None => None,
            };
            let mut ev = json!({
                "source": "parapet-audit",
                "host": "parapet",
                "seq": r.id,
                "@timestamp": e.time.rfc3339(),
                "action": e.action,
                "outcome": e.outcome.as_str(),
                "actor": e.actor.label(),
                "tenant": tenant,
                "target": e.target,
                "source_ip": e.source_ip,
                "user_agent": e.user_agent,
                "details": e.details,
                "severity": if e.outcome == AuditOutcome::Success { "informational" } else { "low" },
            });
            if e.action == "auth.login" && e.outcome == AuditOutcome::Success {
                let hour = hour_of(e.time);
                let (new_source, unusual_hour) = self
                    .login_marks(
                        &provider,
                        &e.target,
                        e.source_ip.as_deref(),
                        hour,
                        &logins,
                        &mut profiles,
                    )
                    .await?;
                if let Some(o) = ev.as_object_mut() {
                    o.insert("new_source".into(), new_source.into());
                    o.insert("unusual_hour".into(), unusual_hour.into());
                }
                logins.push(PastLogin {
                    target: e.target.to_lowercase(),
                    source_ip: e.source_ip.clone(),
                    hour,
                });
            }
            if let Ok(mut line) = serde_json::to_vec(&ev) {
                line.push(b'\n');
                body.extend_from_slice(&line);
            }
        }
        *cursor = Some(to.max(last + 1));
        if body.is_empty() {
            return Ok(0);
        }
        let key = format!("parapet-audit-{from}-{to}");
        let meta = parapet_iam::RequestMeta {
            source_ip: None,
            user_agent: Some("audit-source".into()),
        };
        let r = self
            .ingest(&provider, Actor::System, &meta, &body, Some(&key))
            .await?;
        // Learned once the step is stored (a replayed step was learned the first time).
        if !r.replayed {
            self.learn_logins(&provider, &logins, profiles).await?;
        }
        Ok(r.accepted)
    }
}

/// A successful log-in seen earlier in the same step (not stored yet).
struct PastLogin {
    target: String,
    source_ip: Option<String>,
    hour: i64,
}

/// The UTC hour of a time.
/// A successful use of a key (the key service's data plane, tens of thousands a second): it
/// stays in the audit log, but detection does not get it — ingesting every encryption as an
/// event cut the key service's request rate to a fifth. Failures and refusals of key use, and
/// every change to keys, are still fed to detection.
fn routine_key_use(e: &AuditEvent) -> bool {
    e.outcome == AuditOutcome::Success
        && e.action.strip_prefix("kms.").is_some_and(|op| {
            matches!(
                op,
                "encrypt"
                    | "decrypt"
                    | "rewrap"
                    | "datakey"
                    | "sign"
                    | "verify"
                    | "hmac"
                    | "verify-hmac"
                    | "encrypt-batch"
                    | "decrypt-batch"
            )
        })
}

fn hour_of(t: parapet_types::Timestamp) -> i64 {
    t.0.div_euclid(3_600_000).rem_euclid(24)
}

/// Earlier log-ins an account needs before an hour can be unusual.
const MIN_LOGINS_FOR_HOURS: usize = 10;

/// Source addresses kept per account profile.
const PROFILE_SOURCES: usize = 64;

impl Monitor {
    /// Marks of a successful log-in of `target` learned from the account's profile (earlier
    /// steps) and the log-ins of this step: `new_source` when it logged in before but never from
    /// `source_ip`; `unusual_hour` when it has at least ten earlier log-ins and none within an
    /// hour (UTC, on the clock face) of `hour`. One keyed read per account per step.
    async fn login_marks(
        &self,
        provider: &parapet_store::Tenant,
        target: &str,
        source_ip: Option<&str>,
        hour: i64,
        this_step: &[PastLogin],
        profiles: &mut std::collections::HashMap<String, parapet_store::LoginProfile>,
    ) -> MonitorResult<(bool, bool)> {
        let target = target.to_lowercase();
        if !profiles.contains_key(&target) {
            let found = self
                .store
                .login_profiles(TenantCtx::new(provider.id), std::slice::from_ref(&target))
                .await
                .map_err(store_err)?;
            let p = found
                .into_iter()
                .next()
                .unwrap_or_else(|| parapet_store::LoginProfile {
                    account: target.clone(),
                    sources: Vec::new(),
                    hours: vec![0; 24],
                    logins: 0,
                });
            profiles.insert(target.clone(), p);
        }
        let Some(p) = profiles.get(&target) else {
            return Ok((false, false));
        };
        let mut hours = p.hours.clone();
        hours.resize(24, 0);
        let mut logins = p.logins;
        let mut seen_source = source_ip.is_some_and(|ip| p.sources.iter().any(|s| s == ip));
        for l in this_step.iter().filter(|l| l.target == target) {
            logins += 1;
            if let Some(h) = usize::try_from(l.hour).ok().and_then(|h| hours.get_mut(h)) {
                *h += 1;
            }
            seen_source |= source_ip.is_some() && l.source_ip.as_deref() == source_ip;
        }
        let new_source = source_ip.is_some() && logins > 0 && !seen_source;
        let unusual_hour = logins >= MIN_LOGINS_FOR_HOURS as u64
            && (0..24i64).all(|h| {
                let d = (h - hour).rem_euclid(24);
                d.min(24 - d) > 1 || hours.get(usize::try_from(h).unwrap_or(0)).copied() == Some(0)
            });
        Ok((new_source, unusual_hour))
    }

    /// Adds the log-ins of a stored step to their accounts' profiles.
    async fn learn_logins(
        &self,
        provider: &parapet_store::Tenant,
        logins: &[PastLogin],
        mut profiles: std::collections::HashMap<String, parapet_store::LoginProfile>,
    ) -> MonitorResult<()> {
        if logins.is_empty() {
            return Ok(());
        }
        for l in logins {
            let p =
                profiles
                    .entry(l.target.clone())
                    .or_insert_with(|| parapet_store::LoginProfile {
                        account: l.target.clone(),
                        sources: Vec::new(),
                        hours: vec![0; 24],
                        logins: 0,
                    });
            p.hours.resize(24, 0);
            p.logins += 1;
            if let Some(h) = usize::try_from(l.hour)
                .ok()
                .and_then(|h| p.hours.get_mut(h))
            {
                *h += 1;
            }
            if let Some(ip) = &l.source_ip {
                p.sources.retain(|s| s != ip);
                p.sources.push(ip.clone());
                if p.sources.len() > PROFILE_SOURCES {
                    let extra = p.sources.len() - PROFILE_SOURCES;
                    p.sources.drain(..extra);
                }
            }
        }
        let touched: Vec<parapet_store::LoginProfile> = profiles
            .into_values()
            .filter(|p| logins.iter().any(|l| l.target == p.account))
            .collect();
        self.store
            .put_login_profiles(TenantCtx::new(provider.id), &touched, self.env.now())
            .await
            .map_err(store_err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn successful_key_uses_are_not_fed_but_their_failures_and_key_changes_are() {
        let e = |action: &str, outcome| AuditEvent {
            time: parapet_types::Timestamp(0),
            tenant: None,
            actor: Actor::System,
            action: action.into(),
            target: "kms:acme/k".into(),
            source_ip: None,
            user_agent: None,
            outcome,
            details: json!({}),
        };
        for op in [
            "kms.encrypt",
            "kms.decrypt",
            "kms.decrypt-batch",
            "kms.sign",
        ] {
            assert!(routine_key_use(&e(op, AuditOutcome::Success)), "{op}");
            assert!(
                !routine_key_use(&e(op, AuditOutcome::Failure)),
                "{op} failure"
            );
            assert!(
                !routine_key_use(&e(op, AuditOutcome::Denied)),
                "{op} denied"
            );
        }
        for op in ["kms.key.rotate", "kms.key.create", "kms.seal", "auth.login"] {
            assert!(!routine_key_use(&e(op, AuditOutcome::Success)), "{op}");
        }
    }

    /// Every built-in file loads alone, and together their correlations resolve and compile.
    #[test]
    fn builtin_rules_load_and_their_correlations_compile() {
        let t = parapet_types::TenantId(uuid::Uuid::nil());
        let now = parapet_types::Timestamp(0);
        let mut set = parapet_detect::RuleSet::default();
        let mut errors = Vec::new();
        for (file, yaml) in BUILTIN_RULES {
            if let Err(e) = crate::alerts::parse_rule_file(t, file, yaml, now) {
                panic!("{file}: {e:?}");
            }
            set.add_text(std::path::Path::new(file), yaml, &mut errors);
        }
        assert!(errors.is_empty(), "{errors:?}");
        let clock = std::sync::Arc::new(parapet_types::ManualClock::new(now));
        let (c, errors) = parapet_detect::Correlator::build(
            &set,
            parapet_detect::CorrelatorConfig::default(),
            clock,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(c.correlation_count(), 6);
        assert!(!c.generates("7f1c2b9e-6a55-4d0e-9a51-5b0f7e2d0004"));
        assert!(c.generates("7f1c2b9e-6a55-4d0e-9a51-5b0f7e2d0001"));
    }
}
