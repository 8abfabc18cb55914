//! Alert escalation (X.1642 8.6.1 "alarms sent to the designated person"): a tenant's policy is
//! a list of levels — notification channels (by name) reached `after_secs` after the previous
//! level (the first: after the alert was raised) — gone through `1 + repeat` times. An alert
//! still open (not acknowledged) when a level is due escalates to it; acknowledging or closing
//! it stops the escalation. The background job (`escalate_due`, time from the injected clock)
//! claims each step with an optimistic update (replicas never page twice) and returns the pages
//! for the notification service to queue.

use parapet_iam::authz::Action;
use parapet_iam::{Principal, RequestMeta};
use parapet_store::{Alert, AuditEvent, AuditOutcome, Tenant};
use parapet_types::{Actor, TenantCtx, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Monitor, MonitorError, MonitorResult, store_err};

/// One level of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// Seconds after the previous level (the first: after the alert was raised).
    pub after_secs: u32,
    /// Notification channels of the tenant, by name.
    pub channels: Vec<String>,
}

/// A tenant's escalation policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub levels: Vec<Level>,
    /// Times the levels are gone through again after the last.
    #[serde(default)]
    pub repeat: u32,
    /// Only alerts at or above this severity escalate (default: all).
    #[serde(default)]
    pub min_severity: Option<String>,
}

/// A page to send: an alert reached a level.
#[derive(Debug, Clone)]
pub struct Page {
    pub tenant: Tenant,
    pub alert: Alert,
    /// 0-based level and round.
    pub level: usize,
    pub round: u32,
    pub channels: Vec<String>,
    /// The audit record of the escalation (for the notification's transaction).
    pub audit: AuditEvent,
}

fn rank(s: &str) -> usize {
    crate::SEVERITIES.iter().position(|x| *x == s).unwrap_or(0)
}

impl Policy {
    fn validate(&self) -> MonitorResult<()> {
        let bad = |m: &str| Err(MonitorError::Invalid(m.into()));
        if self.levels.is_empty() || self.levels.len() > 10 {
            return bad("a policy has 1 to 10 levels");
        }
        if self.repeat > 100 {
            return bad("repeat is at most 100");
        }
        for l in &self.levels {
            if !(1..=7 * 86_400).contains(&l.after_secs) {
                return bad("a level's after_secs is between 1 and 604800");
            }
            if l.channels.is_empty() || l.channels.len() > 10 {
                return bad("a level names 1 to 10 channels");
            }
        }
        if let Some(s) = &self.min_severity
            && !crate::SEVERITIES.contains(&s.as_str())
        {
            return bad("min_severity is informational, low, medium, high or critical");
        }
        Ok(())
    }

    fn steps(&self) -> i64 {
        self.levels.len() as i64 * (i64::from(self.repeat) + 1)
    }

    fn level(&self, step: i64) -> Option<&Level> {
        let n = self.levels.len() as i64;
        self.levels
            .get(usize::try_from(step.rem_euclid(n.max(1))).ok()?)
    }
}

impl Monitor {
    /// Sets (or with `None` removes) a tenant's escalation policy. Channel names are checked
    /// when a page is queued (a missing channel is logged, never fatal).
    pub async fn set_escalation(
        &self,
        p: &Principal,
        tenant: &str,
        policy: Option<&Policy>,
        meta: &RequestMeta,
    ) -> MonitorResult<Option<Policy>> {
        let t = self
            .iam
            .resolve(p, tenant, Action::RuleManage, meta)
            .await?;
        if let Some(pol) = policy {
            pol.validate()?;
        }
        let doc = policy
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| MonitorError::Invalid(e.to_string()))?;
        let audit = self.audit(
            &t,
            p,
            meta,
            "alerts.escalation",
            format!("alert-escalation:{}", t.name),
            json!({"policy": policy}),
        );
        self.store
            .put_escalation_policy(TenantCtx::new(t.id), doc.as_deref(), &audit)
            .await
            .map_err(store_err)?;
        Ok(policy.cloned())
    }

    /// A tenant's escalation policy, if any.
    pub async fn escalation(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> MonitorResult<Option<Policy>> {
        let t = self.iam.resolve(p, tenant, Action::AlertRead, meta).await?;
        self.policy_of(&t).await
    }

    async fn policy_of(&self, t: &Tenant) -> MonitorResult<Option<Policy>> {
        match self
            .store
            .escalation_policy(TenantCtx::new(t.id))
            .await
            .map_err(store_err)?
        {
            Some(doc) => serde_json::from_str(&doc)
                .map(Some)
                .map_err(|e| MonitorError::Invalid(format!("stored escalation policy: {e}"))),
            None => Ok(None),
        }
    }

    /// Claims every escalation step that is due, in every tenant with a policy, and returns the
    /// pages to send (the background job).
    pub async fn escalate_due(&self) -> MonitorResult<Vec<Page>> {
        let now = self.env.now();
        let mut pages = Vec::new();
        for t in self.every_tenant().await? {
            let Some(policy) = self.policy_of(&t).await? else {
                continue;
            };
            let Some(first) = policy.levels.first() else {
                continue;
            };
            let ctx = TenantCtx::new(t.id);
            let due = self
                .store
                .escalation_candidates(ctx, now, i64::from(first.after_secs) * 1000, 500)
                .await
                .map_err(store_err)?;
            for c in due {
                let step = c.step.unwrap_or(0);
                let Some(level) = policy.level(step) else {
                    continue;
                };
                let next = step + 1;
                let next_at = (next < policy.steps())
                    .then(|| policy.level(next))
                    .flatten()
                    .map(|l| Timestamp(now.0 + i64::from(l.after_secs) * 1000));
                let (alert, _) = self
                    .store
                    .get_alert(ctx, c.alert, 0)
                    .await
                    .map_err(store_err)?;
                let below = policy
                    .min_severity
                    .as_deref()
                    .is_some_and(|m| rank(&alert.severity) < rank(m));
                let n_levels = policy.levels.len() as i64;
                let (lvl, round) = (
                    usize::try_from(step % n_levels.max(1)).unwrap_or(0),
                    u32::try_from(step / n_levels.max(1)).unwrap_or(0),
                );
                let audit = AuditEvent {
                    time: now,
                    tenant: Some(t.id),
                    actor: Actor::System,
                    action: "alert.escalate".into(),
                    target: format!("alert:{}/{}", t.name, alert.id),
                    source_ip: None,
                    user_agent: None,
                    outcome: AuditOutcome::Success,
                    details: json!({"level": lvl + 1, "round": round + 1,
                        "channels": level.channels, "skipped": below}),
                };
                // Below the policy's severity: finished at once, nobody paged.
                let (to_step, to_next) = if below { (step, None) } else { (next, next_at) };
                if !self
                    .store
                    .advance_escalation(ctx, alert.id, c.step, to_step, to_next, &audit)
                    .await
                    .map_err(store_err)?
                    || below
                {
                    continue;
                }
                metrics::counter!("parapet_alert_escalations_total").increment(1);
                pages.push(Page {
                    tenant: t.clone(),
                    alert,
                    level: lvl,
                    round,
                    channels: level.channels.clone(),
                    audit,
                });
            }
        }
        Ok(pages)
    }
}
