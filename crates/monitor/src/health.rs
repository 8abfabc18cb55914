//! Health (X.1642 8.3(1), 7.2.2.3): per asset and per tenant, when data last arrived, the open
//! alerts and the inventory's health; a **silent asset** — one that sent data before and none
//! for longer than its interval (the asset's tag `silent_after_minutes`, else the server's
//! default) — raises an alert once per silence (the idempotency key is the asset and the time
//! of its last data, so replicas and repeated checks raise it once) and is marked `silent` in
//! the inventory until data arrives again.

use parapet_iam::authz::Action;
use parapet_iam::{Principal, RequestMeta};
use parapet_store::{
    AlertFilter, AlertStatus, Asset, AssetFilter, AssetHealth, AuditEvent, AuditOutcome, Page,
    Tenant,
};
use parapet_types::{Actor, TenantCtx, Timestamp};
use serde::Serialize;
use serde_json::json;

use crate::internal::InternalAlert;
use crate::{Monitor, MonitorResult, store_err};

/// The rule id of silent-asset alerts.
pub const SILENT_RULE: &str = "parapet-silent-asset";
/// The asset tag that sets its own silence interval, in minutes.
pub const SILENT_TAG: &str = "silent_after_minutes";

/// One asset's health.
#[derive(Debug, Clone, Serialize)]
pub struct AssetHealthView {
    pub name: String,
    pub kind: String,
    pub criticality: String,
    pub health: String,
    /// When data about the asset last arrived (RFC 3339), if ever.
    pub last_data_at: Option<String>,
    /// Minutes without data after which the asset is silent.
    pub silent_after_minutes: u32,
    pub silent: bool,
    /// Open or acknowledged alerts attributed to the asset.
    pub open_alerts: u64,
}

/// A tenant's health.
#[derive(Debug, Clone, Serialize)]
pub struct TenantHealth {
    pub tenant: String,
    pub assets: u64,
    pub silent: u64,
    /// Open or acknowledged alerts of the tenant (at most the newest 1,000 are counted).
    pub open_alerts: u64,
    /// Of them, by severity.
    pub open_by_severity: Vec<(String, u64)>,
    pub items: Vec<AssetHealthView>,
}

impl Monitor {
    fn silent_after(&self, a: &Asset) -> u32 {
        a.tags
            .get(SILENT_TAG)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|m| (1..=525_600).contains(m))
            .unwrap_or(self.config.silent_after_minutes)
    }

    fn is_silent(&self, a: &Asset, now: Timestamp) -> bool {
        a.last_seen_at
            .is_some_and(|t| now.0 - t.0 > i64::from(self.silent_after(a)) * 60_000)
    }

    async fn all_assets(&self, t: &Tenant) -> MonitorResult<Vec<Asset>> {
        let mut out = Vec::new();
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
            let n = page.len();
            after = page.last().map(|a| a.name.to_lowercase());
            out.extend(page);
            if n < 1000 {
                return Ok(out);
            }
        }
    }

    /// The health of tenant `tenant`'s assets.
    pub async fn health(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<TenantHealth> {
        let t = self.iam.resolve(p, tenant, Action::AlertRead, meta).await?;
        let now = self.env.now();
        let assets = self.all_assets(&t).await?;
        let mut open = Vec::new();
        for status in [AlertStatus::Open, AlertStatus::Acknowledged] {
            open.extend(
                self.store
                    .list_alerts(
                        TenantCtx::new(t.id),
                        &AlertFilter {
                            status: Some(status),
                            ..AlertFilter::default()
                        },
                        &Page {
                            after: None,
                            limit: 1000,
                        },
                    )
                    .await
                    .map_err(store_err)?
                    .into_iter()
                    .filter(|a| a.tenant == t.id),
            );
        }
        let mut by_severity: Vec<(String, u64)> = Vec::new();
        for a in &open {
            match by_severity.iter_mut().find(|(s, _)| *s == a.severity) {
                Some((_, n)) => *n += 1,
                None => by_severity.push((a.severity.clone(), 1)),
            }
        }
        let items: Vec<AssetHealthView> = assets
            .iter()
            .map(|a| AssetHealthView {
                name: a.name.clone(),
                kind: a.kind.as_str().to_string(),
                criticality: a.criticality.as_str().to_string(),
                health: a.health.as_str().to_string(),
                last_data_at: a.last_seen_at.map(Timestamp::rfc3339),
                silent_after_minutes: self.silent_after(a),
                silent: self.is_silent(a, now),
                open_alerts: open.iter().filter(|x| x.asset == Some(a.id)).count() as u64,
            })
            .collect();
        Ok(TenantHealth {
            tenant: t.name.clone(),
            assets: items.len() as u64,
            silent: items.iter().filter(|i| i.silent).count() as u64,
            open_alerts: open.len() as u64,
            open_by_severity: by_severity,
            items,
        })
    }

    /// Raises an alert for every silent asset of every tenant (the background job; time from
    /// the injected clock). Returns `(tenant, asset)` of the alerts raised now.
    pub async fn check_silent_assets(&self) -> MonitorResult<Vec<(String, String)>> {
        if self
            .store
            .provider_tenant()
            .await
            .map_err(store_err)?
            .is_none()
        {
            return Ok(Vec::new());
        }
        let now = self.env.now();
        let mut raised = Vec::new();
        for t in &self.every_tenant().await? {
            for a in self.all_assets(t).await? {
                if self.is_silent(&a, now) && self.raise_silent(t, &a).await? {
                    raised.push((t.name.clone(), a.name.clone()));
                }
            }
        }
        Ok(raised)
    }

    /// Raises the alert of a silent asset and marks the asset silent; false when this silence
    /// was already reported.
    async fn raise_silent(&self, t: &Tenant, a: &Asset) -> MonitorResult<bool> {
        let Some(last) = a.last_seen_at else {
            return Ok(false);
        };
        let minutes = self.silent_after(a);
        let severity = match a.criticality.as_str() {
            "critical" | "high" => "high",
            _ => "medium",
        };
        let alert = InternalAlert {
            source: "parapet-health".into(),
            rule_id: SILENT_RULE.into(),
            title: format!("Silent asset: no data for {minutes} minutes"),
            severity: severity.into(),
            group_key: a.name.clone(),
            asset: Some(a.id),
            host: Some(a.name.clone()),
            message: format!(
                "{} sent no data for more than {minutes} minutes (last at {})",
                a.name,
                last.rfc3339()
            ),
            details: json!({"kind": "silent-asset", "last_data_at": last.rfc3339(),
                "silent_after_minutes": minutes}),
            dedup_key: format!("silent:{}:{}", a.id, last.0),
            audit_action: "asset.silent".into(),
            audit_target: format!("asset:{}/{}", t.name, a.name),
        };
        let Some(raised) = self.raise_internal(t, &alert).await? else {
            return Ok(false);
        };
        let mark = AuditEvent {
            time: self.env.now(),
            tenant: Some(t.id),
            actor: Actor::System,
            action: "asset.health".into(),
            target: alert.audit_target.clone(),
            source_ip: None,
            user_agent: None,
            outcome: AuditOutcome::Success,
            details: json!({"health": "silent", "reason": SILENT_RULE}),
        };
        match self
            .store
            .set_asset_health(TenantCtx::new(t.id), a.id, AssetHealth::Silent, None, &mark)
            .await
        {
            Ok(()) | Err(parapet_store::StoreError::NotFound) => {}
            Err(e) => return Err(store_err(e)),
        }
        if !raised.is_empty() {
            metrics::counter!("parapet_silent_assets_total").increment(1);
        }
        Ok(true)
    }
}
