//! Alerts that Parapet raises itself rather than a Sigma rule: a silent asset, a backup outside
//! its policy, a metric over its threshold. Each is stored like any alert — an event of Parapet's
//! own (its `source` names the module) with the alert, grouped, deduplicated, visible to the
//! provider and the owning tenant, and handed to the notification subscriber — so the people on
//! call see one list. A `dedup_key` makes raising idempotent: replicas and repeated checks that
//! raise the same condition store it once.

use parapet_store::{AlertHit, AuditEvent, AuditOutcome, StoredEvent, Tenant};
use parapet_types::{Actor, AssetId, TenantCtx};
use serde_json::{Value, json};

use crate::{Monitor, MonitorError, MonitorResult, store_err};
use parapet_iam::IamError;

/// One condition to raise as an alert.
#[derive(Debug, Clone)]
pub struct InternalAlert {
    /// The module raising it, stored as the event's source (`parapet-health`, `parapet-backup`).
    pub source: String,
    /// The rule id shown on the alert (`parapet-silent-asset`, `parapet-backup-rpo`).
    pub rule_id: String,
    pub title: String,
    /// `informational`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// What makes two raises of the rule the same alert (the asset or service name).
    pub group_key: String,
    pub asset: Option<AssetId>,
    /// The host name put on the event, if the condition is about one.
    pub host: Option<String>,
    pub message: String,
    /// Extra fields stored in the event's raw JSON (searchable like any event field).
    pub details: Value,
    /// Raising twice with the same key stores one alert.
    pub dedup_key: String,
    /// The audit record of the raise: its action and target.
    pub audit_action: String,
    pub audit_target: String,
}

impl Monitor {
    /// Stores the condition's event and alert in one transaction with its audit record and tells
    /// the notification subscriber. Returns the ids of the alerts newly raised (empty when the
    /// event joined an open alert of the same rule and group), or `None` when `dedup_key` was
    /// raised before.
    pub async fn raise_internal(
        &self,
        t: &Tenant,
        a: &InternalAlert,
    ) -> MonitorResult<Option<Vec<uuid::Uuid>>> {
        let Some(provider) = self.store.provider_tenant().await.map_err(store_err)? else {
            return Err(MonitorError::Iam(IamError::Internal(
                "no provider tenant to own Parapet's own alerts".into(),
            )));
        };
        let ctx = TenantCtx::new(t.id);
        if self
            .store
            .batch_response(ctx, &a.dedup_key)
            .await
            .map_err(store_err)?
            .is_some()
        {
            return Ok(None);
        }
        let now = self.env.now();
        let new_id = || {
            self.env
                .new_id()
                .map_err(|e| MonitorError::Iam(IamError::Internal(e.to_string())))
        };
        let (id, batch) = (new_id()?, new_id()?);
        let mut raw = serde_json::Map::new();
        raw.insert("source".into(), json!(a.source));
        raw.insert("rule".into(), json!(a.rule_id));
        raw.insert("message".into(), json!(a.message));
        if let Some(h) = &a.host {
            raw.insert("host".into(), json!(h));
        }
        if let Value::Object(extra) = &a.details {
            for (k, v) in extra {
                raw.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let raw = Value::Object(raw);
        let event = StoredEvent {
            id,
            tenant: t.id,
            time: now,
            received_at: now,
            host: a.host.clone(),
            source: Some(a.source.clone()),
            severity: a.severity.clone(),
            message: Some(a.message.clone()),
            // Parapet's own event about the asset, not data from it (it must not count as the
            // asset's data); the alert names the asset.
            asset: None,
            batch,
            raw: raw.to_string(),
        };
        let hit = AlertHit {
            rule_id: a.rule_id.clone(),
            rule_tenant: provider.id,
            title: a.title.clone(),
            severity: a.severity.clone(),
            group_key: a.group_key.to_lowercase(),
            asset: a.asset,
            event: id,
            event_time: now,
            new_alert_id: new_id()?,
        };
        let mut details = a.details.clone();
        if let Value::Object(d) = &mut details {
            d.insert("batch".into(), json!(batch.to_string()));
            d.insert("rule".into(), json!(a.rule_id));
        }
        let audit = AuditEvent {
            time: now,
            tenant: Some(t.id),
            actor: Actor::System,
            action: a.audit_action.clone(),
            target: a.audit_target.clone(),
            source_ip: None,
            user_agent: None,
            outcome: AuditOutcome::Success,
            details,
        };
        let stored = self
            .store
            .ingest_events(
                ctx,
                Some(&a.dedup_key),
                "{}",
                std::slice::from_ref(&event),
                std::slice::from_ref(&hit),
                now.plus_secs(-self.config.dedup_window_secs),
                &audit,
            )
            .await
            .map_err(store_err)?;
        if stored.replay.is_some() {
            return Ok(None);
        }
        if !stored.alerts.raised.is_empty() {
            metrics::counter!("parapet_internal_alerts_total", "rule" => a.rule_id.clone())
                .increment(1);
            let sink = self.alert_sink.lock().ok().and_then(|s| s.clone());
            if let Some(sink) = sink {
                sink(t, &stored.alerts.raised);
            }
        }
        Ok(Some(stored.alerts.raised))
    }
}
