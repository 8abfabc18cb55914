//! Parapet's own audit log as an event source (X.1642 8.3(2): illegal access to the management
//! platform is detected too), and the built-in detection rules shipped as Sigma YAML.
//!
//! The audit records are read in log-index order and ingested into the provider tenant (the
//! management platform is the provider's) with the record's index as `seq`; batches carry an
//! idempotency key made of their index range, so two replicas or a restart never store a record
//! twice. Records of the ingestion itself by Parapet (`events.ingest` by the system) are left
//! out, or every batch would feed the next.

use parapet_iam::IamError;
use parapet_store::{AuditEvent, AuditOutcome, EventFilter, Page, StoredRule};
use parapet_types::{Actor, TenantCtx};
use serde_json::{Value, json};

use crate::{Monitor, MonitorError, MonitorResult, store_err};

/// The built-in rules: (file name, YAML).
pub const BUILTIN_RULES: [(&str, &str); 3] = [
    (
        "parapet_login_failure.yml",
        include_str!("../rules/parapet_login_failure.yml"),
    ),
    (
        "parapet_privilege_grant_outside_approval.yml",
        include_str!("../rules/parapet_privilege_grant_outside_approval.yml"),
    ),
    (
        "parapet_access_denied.yml",
        include_str!("../rules/parapet_access_denied.yml"),
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
        let mut names = std::collections::HashMap::new();
        for r in &records {
            last = last.max(u64::try_from(r.id).unwrap_or(0));
            let e = &r.event;
            if e.action == "events.ingest" && e.actor == Actor::System {
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
            let ev = json!({
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
        Ok(r.accepted)
    }
}
