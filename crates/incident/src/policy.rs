//! SLA policies per tenant (X.1642 7.2.2.3): the targets per severity, the escalation policy,
//! the service hours (5×8 or 7×24) the timers count in, and which alerts open incidents by
//! themselves. The provider's policy is every tenant's default; a tenant may have its own (set by
//! the provider's staff: the SLA is agreed, not chosen by the tenant alone). New incidents take
//! the policy in force when they open.

use parapet_iam::{Action, IamError, IamResult, Principal, RequestMeta};
use parapet_store::{AuditEvent, AuditOutcome, SlaPolicyRow, StoreError};
use parapet_types::{TenantCtx, TenantId, TenantKind, Timestamp};
use serde::Serialize;
use serde_json::json;

use std::collections::BTreeMap;

use crate::model::{Refused, Severity};
use crate::sla::{EscalationPolicy, Hours, SlaPolicy};
use crate::{IncidentService, refused};

/// Targets of one severity to change (seconds; absent ones stay).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsPatch {
    pub acknowledge_secs: Option<i64>,
    pub notify_secs: Option<i64>,
    pub resolve_secs: Option<i64>,
}

/// A change of an SLA policy: what is given replaces the same part of the policy in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// Per severity (`critical`, `high`, `medium`, `low`).
    #[serde(default)]
    pub targets: BTreeMap<String, TargetsPatch>,
    /// `7x24` or `5x8`.
    pub hours: Option<String>,
    pub escalation: Option<EscalationPolicy>,
    /// The least alert severity that opens an incident by itself, or `off`.
    pub auto_open: Option<String>,
}

impl PolicyPatch {
    /// `base` with the patch applied (not yet validated).
    pub fn apply(&self, mut base: SlaPolicy) -> Result<SlaPolicy, Refused> {
        for (name, t) in &self.targets {
            let sev = Severity::parse(name).ok_or_else(|| {
                Refused::Invalid(format!(
                    "unknown severity {name:?}; expected critical, high, medium or low"
                ))
            })?;
            let cur = base.targets_for(sev);
            base.targets.insert(
                sev,
                crate::sla::SlaTargets {
                    acknowledge_secs: t.acknowledge_secs.unwrap_or(cur.acknowledge_secs),
                    notify_secs: t.notify_secs.unwrap_or(cur.notify_secs),
                    resolve_secs: t.resolve_secs.unwrap_or(cur.resolve_secs),
                },
            );
        }
        if let Some(h) = &self.hours {
            base.hours = Hours::parse(h.trim()).ok_or_else(|| {
                Refused::Invalid(format!("unknown service hours {h:?}; expected 7x24 or 5x8"))
            })?;
        }
        if let Some(e) = &self.escalation {
            base.escalation = e.clone();
        }
        if let Some(a) = &self.auto_open {
            base.auto_open = match a.trim() {
                "off" | "none" | "" => None,
                s => Some(Severity::parse(s).ok_or_else(|| {
                    Refused::Invalid(format!(
                        "unknown severity {s:?} for auto-open; expected critical, high, medium, \
                         low or off"
                    ))
                })?),
            };
        }
        Ok(base)
    }
}

/// A policy and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyView {
    pub tenant: String,
    /// `tenant` (its own), `provider` (the provider's default) or `built-in`.
    pub source: String,
    pub updated_at: Option<Timestamp>,
    pub updated_by: Option<String>,
    pub policy: SlaPolicy,
}

fn decode(row: &SlaPolicyRow) -> IamResult<SlaPolicy> {
    serde_json::from_value(row.body.clone())
        .map_err(|e| IamError::Internal(format!("corrupt SLA policy: {e}")))
}

impl IncidentService {
    /// The policy in force for `tenant`: its own, else the provider's, else the built-in one.
    pub async fn effective_policy(&self, tenant: TenantId) -> IamResult<SlaPolicy> {
        Ok(self.policy_of(tenant, String::new()).await?.policy)
    }

    async fn policy_of(&self, tenant: TenantId, name: String) -> IamResult<PolicyView> {
        if let Some(row) = self.store.get_sla_policy(TenantCtx::new(tenant)).await? {
            return Ok(PolicyView {
                tenant: name,
                source: "tenant".into(),
                updated_at: Some(row.updated_at),
                updated_by: Some(row.updated_by.clone()),
                policy: decode(&row)?,
            });
        }
        let provider = self.provider().await?;
        if provider.id != tenant
            && let Some(row) = self
                .store
                .get_sla_policy(TenantCtx::new(provider.id))
                .await?
        {
            return Ok(PolicyView {
                tenant: name,
                source: "provider".into(),
                updated_at: Some(row.updated_at),
                updated_by: Some(row.updated_by.clone()),
                policy: decode(&row)?,
            });
        }
        Ok(PolicyView {
            tenant: name,
            source: "built-in".into(),
            updated_at: None,
            updated_by: None,
            policy: self.policy.clone(),
        })
    }

    /// The SLA policy in force for `tenant` (the caller's own when `None`).
    pub async fn sla_policy(
        &self,
        p: &Principal,
        tenant: Option<&str>,
        meta: &RequestMeta,
    ) -> IamResult<PolicyView> {
        let name = tenant.unwrap_or(&p.tenant.name).to_string();
        let t = self
            .iam
            .resolve(p, &name, Action::IncidentRead, meta)
            .await?;
        let mut v = self.policy_of(t.id, t.name.clone()).await?;
        if p.tenant.kind != TenantKind::Provider {
            // Tenants see their targets and hours, not the provider's internal paging list.
            v.policy
                .escalation
                .levels
                .iter_mut()
                .for_each(|l| l.notify.clear());
        }
        Ok(v)
    }

    /// Changes the SLA policy of `tenant` by `patch` over the policy in force for it.
    pub async fn update_sla_policy(
        &self,
        p: &Principal,
        tenant: &str,
        patch: &PolicyPatch,
        meta: &RequestMeta,
    ) -> IamResult<PolicyView> {
        let t = self
            .iam
            .resolve(p, tenant, Action::SlaPolicyManage, meta)
            .await?;
        let base = self.effective_policy(t.id).await?;
        let policy = patch.apply(base).map_err(refused)?;
        self.set_sla_policy(p, &t.id.to_string(), policy, meta)
            .await
    }

    /// Sets the SLA policy of `tenant` (the provider's own: the default of every tenant).
    pub async fn set_sla_policy(
        &self,
        p: &Principal,
        tenant: &str,
        policy: SlaPolicy,
        meta: &RequestMeta,
    ) -> IamResult<PolicyView> {
        let t = self
            .iam
            .resolve(p, tenant, Action::SlaPolicyManage, meta)
            .await?;
        policy.validate().map_err(refused)?;
        let now = self.env.now();
        let body = serde_json::to_value(&policy).map_err(|e| IamError::Internal(e.to_string()))?;
        let row = SlaPolicyRow {
            tenant: t.id,
            updated_at: now,
            updated_by: p.login_name(),
            body: body.clone(),
        };
        let e = AuditEvent {
            time: now,
            tenant: Some(t.id),
            actor: p.actor(),
            action: "sla.policy-set".into(),
            target: format!("sla-policy:{}", t.name),
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            outcome: AuditOutcome::Success,
            details: json!({"policy": body}),
        };
        self.store
            .put_sla_policy(TenantCtx::new(p.tenant.id), &row, &[e])
            .await
            .map_err(|e| match e {
                StoreError::NotFound => IamError::NotFound(format!("no tenant {tenant}")),
                e => e.into(),
            })?;
        // A change of SLA calls for a review of every emergency response plan (8.9.3): each
        // falls due at once, recorded and audited on the plan.
        let provider = self.provider().await?;
        let plans = self.store.list_plans(TenantCtx::new(provider.id)).await?;
        let what = format!("SLA policy of tenant {} changed", t.name);
        for row in plans {
            if let Err(e) = self.plan_change_occurred(p, &row.name, &what, meta).await {
                tracing::warn!(plan = %row.name, error = %e, "cannot mark a plan for review");
            }
        }
        self.policy_of(t.id, t.name.clone()).await
    }
}
