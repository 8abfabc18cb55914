//! Playbooks (X.1642 8.6.3): the provider's disposal procedures, chosen by the incident's
//! category or type. Running one turns its steps into linked tasks of the incident — run the
//! emergency response plan (its checklist becomes tasks), open a patch action, open a
//! configuration fix, inform the tenant — which the tenant follows in its portal.

use parapet_iam::{Action, IamError, IamResult, Principal, RequestMeta};
use parapet_store::{AuditEvent, AuditOutcome};
use parapet_types::TenantCtx;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::model::{Change, Incident, MAX_TITLE, Refused, text};
use crate::{IncidentService, refused};

/// What a step of a playbook does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// Activate the named emergency response plan: its checklist becomes tasks (8.6.3(1)).
    ActivatePlan,
    /// Open a patch action (8.6.3(2)).
    Patch,
    /// Open a configuration fix (8.6.3(3)).
    ConfigFix,
    /// Inform the tenant of the progress (8.6.3 last paragraph).
    InformTenant,
    /// Any other task.
    Task,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::ActivatePlan => "activate-plan",
            StepKind::Patch => "patch",
            StepKind::ConfigFix => "config-fix",
            StepKind::InformTenant => "inform-tenant",
            StepKind::Task => "task",
        }
    }
}

/// One step of a playbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookStep {
    pub kind: StepKind,
    /// The task's title (for `activate-plan`: optional, the plan's checklist gives the tasks).
    #[serde(default)]
    pub title: String,
    /// The task's owner (default: the responsible person of the incident's current step).
    #[serde(default)]
    pub owner: Option<String>,
    /// `activate-plan`: the plan's name.
    #[serde(default)]
    pub plan: Option<String>,
}

/// A playbook: when it applies (categories / types of incident; empty = any) and its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub types: Vec<String>,
    pub steps: Vec<PlaybookStep>,
}

impl Playbook {
    /// Checks the playbook (name, 1 to 50 steps with titles, a plan for plan steps).
    pub fn validate(&self) -> Result<(), Refused> {
        let n = self.name.trim();
        if n.is_empty()
            || n.len() > 100
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Refused::Invalid(
                "a playbook name is 1 to 100 letters, digits, '-' or '_'".into(),
            ));
        }
        if self.steps.is_empty() || self.steps.len() > 50 {
            return Err(Refused::Invalid("a playbook has 1 to 50 steps".into()));
        }
        for s in &self.steps {
            if s.kind == StepKind::ActivatePlan {
                if s.plan.as_deref().is_none_or(|p| p.trim().is_empty()) {
                    return Err(Refused::Invalid(
                        "an activate-plan step names the plan".into(),
                    ));
                }
            } else if text("a step title", &s.title, MAX_TITLE)?.is_empty() {
                return Err(Refused::Invalid(format!(
                    "a {} step needs a title",
                    s.kind.as_str()
                )));
            }
        }
        Ok(())
    }

    /// Whether the playbook applies to `i` (its category or type listed; empty lists: any).
    pub fn matches(&self, i: &Incident) -> bool {
        let has =
            |list: &[String], v: &str| list.iter().any(|x| x.trim().eq_ignore_ascii_case(v.trim()));
        (self.categories.is_empty() || has(&self.categories, &i.category))
            && (self.types.is_empty() || has(&self.types, &i.incident_type))
    }
}

impl Incident {
    /// Runs `pb`: each step becomes a task (origin `playbook:<name>:<kind>`) owned by its owner
    /// or `default_owner`; plan steps activate the plans given (by name) in `plans`.
    pub fn run_playbook(
        &mut self,
        pb: &Playbook,
        plans: &[crate::plan::Plan],
        default_owner: &str,
        actor: &str,
        at: parapet_types::Timestamp,
    ) -> Result<Vec<u32>, Refused> {
        if !self.is_open() {
            return Err(Refused::Closed);
        }
        let mut tasks = Vec::new();
        for s in &pb.steps {
            let origin = format!("playbook:{}:{}", pb.name, s.kind.as_str());
            match s.kind {
                StepKind::ActivatePlan => {
                    let name = s.plan.as_deref().unwrap_or_default();
                    let plan = plans
                        .iter()
                        .find(|p| p.name == name)
                        .ok_or_else(|| Refused::Invalid(format!("no plan named {name}")))?;
                    tasks.extend(self.activate_plan(plan, actor, at)?);
                }
                _ => {
                    let owner = s.owner.as_deref().unwrap_or(default_owner);
                    tasks.push(self.add_task(&s.title, owner, &origin, actor, at)?);
                }
            }
        }
        self.push(
            at,
            actor,
            None,
            Change::PlaybookRun {
                playbook: pb.name.clone(),
                tasks: tasks.clone(),
            },
        );
        Ok(tasks)
    }
}

impl IncidentService {
    /// Creates or replaces a playbook (the provider's; plan managers).
    pub async fn put_playbook(
        &self,
        p: &Principal,
        pb: Playbook,
        meta: &RequestMeta,
    ) -> IamResult<Playbook> {
        let provider = self.provider().await?;
        parapet_iam::authorize(p, Action::PlanManage, &provider)
            .map_err(|d| IamError::Forbidden(d.0))?;
        if p.tenant.id != provider.id {
            return Err(IamError::Forbidden("playbooks are the provider's".into()));
        }
        pb.validate().map_err(refused)?;
        for s in &pb.steps {
            if let Some(plan) = s
                .plan
                .as_deref()
                .filter(|_| s.kind == StepKind::ActivatePlan)
            {
                self.load_plan(plan).await?;
            }
        }
        let now = self.env.now();
        let body = serde_json::to_value(&pb).map_err(|e| IamError::Internal(e.to_string()))?;
        let e = AuditEvent {
            time: now,
            tenant: Some(provider.id),
            actor: p.actor(),
            action: "playbook.put".into(),
            target: format!("playbook:{}", pb.name),
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            outcome: AuditOutcome::Success,
            details: json!({"playbook": body}),
        };
        self.store
            .put_playbook(TenantCtx::new(provider.id), &pb.name, now, &body, &[e])
            .await?;
        Ok(pb)
    }

    /// The provider's playbooks (for those who read plans).
    pub async fn playbooks(&self, p: &Principal) -> IamResult<Vec<Playbook>> {
        let provider = self.provider().await?;
        parapet_iam::authorize(p, Action::PlanRead, &provider)
            .map_err(|d| IamError::Forbidden(d.0))?;
        self.all_playbooks().await
    }

    pub(crate) async fn all_playbooks(&self) -> IamResult<Vec<Playbook>> {
        let provider = self.provider().await?;
        self.store
            .list_playbooks(TenantCtx::new(provider.id))
            .await?
            .into_iter()
            .map(|v| {
                serde_json::from_value(v)
                    .map_err(|e| IamError::Internal(format!("corrupt playbook: {e}")))
            })
            .collect()
    }

    /// The playbook `name`, or the first (by name) that applies to `i`, with the plans it
    /// activates.
    pub(crate) async fn choose_playbook(
        &self,
        i: &Incident,
        name: Option<&str>,
    ) -> IamResult<(Playbook, Vec<crate::plan::Plan>)> {
        let all = self.all_playbooks().await?;
        let pb = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => all
                .into_iter()
                .find(|p| p.name == n)
                .ok_or_else(|| IamError::NotFound(format!("no playbook named {n}")))?,
            None => all.into_iter().find(|p| p.matches(i)).ok_or_else(|| {
                IamError::NotFound(format!(
                    "no playbook applies to category {:?} / type {:?}",
                    i.category, i.incident_type
                ))
            })?,
        };
        let mut plans = Vec::new();
        for s in &pb.steps {
            if let Some(name) = s
                .plan
                .as_deref()
                .filter(|_| s.kind == StepKind::ActivatePlan)
            {
                plans.push(self.load_plan(name).await?.1);
            }
        }
        Ok((pb, plans))
    }
}
