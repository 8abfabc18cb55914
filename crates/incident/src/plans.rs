//! The service side of emergency response plans (X.1642 8.9): plans belong to the provider and
//! are managed by its staff; activation from an incident is an incident [`crate::Command`].

use parapet_iam::{Action, IamError, IamResult, Principal, RequestMeta};
use parapet_store::{AuditEvent, AuditOutcome, PlanRow, StoreError, Tenant};
use parapet_types::TenantCtx;
use serde_json::json;

use crate::plan::{DrillStep, Plan, PlanContent, valid_name};
use crate::{IncidentService, refused};

pub(crate) fn plan_row(
    t: &Tenant,
    p: &Plan,
    version: i64,
    now: parapet_types::Timestamp,
) -> IamResult<PlanRow> {
    Ok(PlanRow {
        tenant: t.id,
        name: p.name.clone(),
        version,
        review_due_at: p.review_due_at,
        updated_at: now,
        body: serde_json::to_value(p).map_err(|e| IamError::Internal(e.to_string()))?,
    })
}

pub(crate) fn from_plan_row(r: &PlanRow) -> IamResult<Plan> {
    serde_json::from_value(r.body.clone())
        .map_err(|e| IamError::Internal(format!("corrupt plan {}: {e}", r.name)))
}

/// A plan with whether its review is due now.
#[derive(Debug, Clone)]
pub struct PlanView {
    pub plan: Plan,
    pub review_due: bool,
}

impl IncidentService {
    fn plan_event(
        &self,
        t: &Tenant,
        p: &Principal,
        action: &str,
        name: &str,
        meta: &RequestMeta,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            time: self.env.now(),
            tenant: Some(t.id),
            actor: p.actor(),
            action: action.into(),
            target: format!("plan:{name}"),
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            outcome: AuditOutcome::Success,
            details,
        }
    }

    /// The provider tenant, with `action` checked for `p`.
    async fn plans_tenant(
        &self,
        p: &Principal,
        action: Action,
        meta: &RequestMeta,
    ) -> IamResult<Tenant> {
        let provider = self.provider().await?;
        self.iam
            .resolve(p, &provider.id.to_string(), action, meta)
            .await
    }

    /// A plan by name (no permission check: for activation from an incident).
    pub(crate) async fn load_plan(&self, name: &str) -> IamResult<(PlanRow, Plan)> {
        let provider = self.provider().await?;
        let name = valid_name(name).map_err(refused)?;
        let row = match self
            .store
            .get_plan(TenantCtx::new(provider.id), &name)
            .await
        {
            Ok(r) => r,
            Err(StoreError::NotFound) => {
                return Err(IamError::NotFound(format!("no plan named {name}")));
            }
            Err(e) => return Err(e.into()),
        };
        let plan = from_plan_row(&row)?;
        Ok((row, plan))
    }

    pub async fn create_plan(
        &self,
        p: &Principal,
        name: &str,
        content: PlanContent,
        meta: &RequestMeta,
    ) -> IamResult<PlanView> {
        let t = self.plans_tenant(p, Action::PlanManage, meta).await?;
        let now = self.env.now();
        let plan = Plan::new(name, content, &p.login_name(), now).map_err(refused)?;
        let e = self.plan_event(
            &t,
            p,
            "plan.create",
            &plan.name,
            meta,
            json!({"version": 1}),
        );
        self.store
            .create_plan(TenantCtx::new(t.id), &plan_row(&t, &plan, 1, now)?, &[e])
            .await?;
        Ok(PlanView {
            review_due: plan.review_due(now),
            plan,
        })
    }

    pub async fn get_plan(
        &self,
        p: &Principal,
        name: &str,
        meta: &RequestMeta,
    ) -> IamResult<PlanView> {
        self.plans_tenant(p, Action::PlanRead, meta).await?;
        let (_, plan) = self.load_plan(name).await?;
        Ok(PlanView {
            review_due: plan.review_due(self.env.now()),
            plan,
        })
    }

    pub async fn list_plans(&self, p: &Principal, meta: &RequestMeta) -> IamResult<Vec<PlanView>> {
        let t = self.plans_tenant(p, Action::PlanRead, meta).await?;
        let now = self.env.now();
        self.store
            .list_plans(TenantCtx::new(t.id))
            .await?
            .iter()
            .map(|r| {
                let plan = from_plan_row(r)?;
                Ok(PlanView {
                    review_due: plan.review_due(now),
                    plan,
                })
            })
            .collect()
    }

    /// Changes a plan: `f` applies the change and names the audit action.
    pub(crate) async fn change_plan(
        &self,
        p: &Principal,
        name: &str,
        meta: &RequestMeta,
        f: impl FnOnce(
            &mut Plan,
            &str,
            parapet_types::Timestamp,
        ) -> Result<(&'static str, serde_json::Value), crate::Refused>,
    ) -> IamResult<PlanView> {
        let t = self.plans_tenant(p, Action::PlanManage, meta).await?;
        let (row, mut plan) = self.load_plan(name).await?;
        let now = self.env.now();
        let (action, details) = f(&mut plan, &p.login_name(), now).map_err(refused)?;
        let e = self.plan_event(&t, p, action, &plan.name, meta, details);
        self.store
            .update_plan(
                TenantCtx::new(t.id),
                &plan_row(&t, &plan, row.version + 1, now)?,
                &[e],
            )
            .await?;
        Ok(PlanView {
            review_due: plan.review_due(now),
            plan,
        })
    }

    /// The comparison of two versions of a plan (default: the current one against the one
    /// before), with the two version numbers.
    pub async fn plan_diff(
        &self,
        p: &Principal,
        name: &str,
        from: Option<u32>,
        to: Option<u32>,
        meta: &RequestMeta,
    ) -> IamResult<(u32, u32, Vec<crate::plan::DiffLine>)> {
        let v = self.get_plan(p, name, meta).await?;
        let to = to.unwrap_or_else(|| v.plan.version());
        let from = from.unwrap_or_else(|| to.saturating_sub(1).max(1));
        let version = |n: u32| {
            v.plan.at_version(n).ok_or_else(|| {
                IamError::NotFound(format!(
                    "plan {} has no version {n} (versions 1 to {})",
                    v.plan.name,
                    v.plan.version()
                ))
            })
        };
        let b = version(to)?;
        let a = version(from)?;
        Ok((from, to, crate::plan::diff(a, b)))
    }

    /// A new version of a plan (the older ones are kept).
    pub async fn revise_plan(
        &self,
        p: &Principal,
        name: &str,
        content: PlanContent,
        reason: &str,
        meta: &RequestMeta,
    ) -> IamResult<PlanView> {
        self.change_plan(p, name, meta, |plan, by, now| {
            let v = plan.revise(content, reason, by, now)?;
            Ok(("plan.revise", json!({"version": v, "reason": reason})))
        })
        .await
    }

    /// Records a drill or test, step by step, with its report.
    pub async fn record_drill(
        &self,
        p: &Principal,
        name: &str,
        steps: Vec<DrillStep>,
        report: &str,
        meta: &RequestMeta,
    ) -> IamResult<PlanView> {
        self.change_plan(p, name, meta, |plan, by, now| {
            let failed = steps.iter().filter(|s| !s.ok).count();
            let n = steps.len();
            plan.record_drill(steps, report, by, now)?;
            Ok(("plan.drill", json!({"steps": n, "failed": failed})))
        })
        .await
    }

    /// Records a review without change.
    pub async fn review_plan(
        &self,
        p: &Principal,
        name: &str,
        meta: &RequestMeta,
    ) -> IamResult<PlanView> {
        self.change_plan(p, name, meta, |plan, _, now| {
            plan.reviewed(now);
            Ok(("plan.review", json!({})))
        })
        .await
    }

    /// Records a change that calls for a review (SLA, critical configuration, significant
    /// patch, team member): the review falls due at once.
    pub async fn plan_change_occurred(
        &self,
        p: &Principal,
        name: &str,
        what: &str,
        meta: &RequestMeta,
    ) -> IamResult<PlanView> {
        let what = what.trim().to_string();
        if what.is_empty() {
            return Err(IamError::Invalid("say what changed".into()));
        }
        self.change_plan(p, name, meta, |plan, _, now| {
            plan.change_occurred(now);
            Ok(("plan.change", json!({"change": what})))
        })
        .await
    }
}
