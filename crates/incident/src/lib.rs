//! Security event processing (X.1642 8.6) and SLA timers (7.2.2.3).
//!
//! - [`model`]: the incident and its typed life cycle (detecting → analysing → disposing →
//!   checking → reporting → recorded), a responsible person per step, the history of every
//!   change with actor, time and reason;
//! - [`sla`]: time to acknowledgement, notification and resolution per severity, pausable,
//!   breaches and escalation, MTTA/MTTR per tenant and month;
//! - [`report`]: the incident report in HTML and PDF;
//! - [`IncidentService`]: the service over storage, authorization through
//!   [`parapet_iam::authorize`], and the timer scheduler.
//!
//! Errors are [`IamError`]s so that every caller maps them the same way as the rest of the API.

use std::sync::Arc;
use std::time::Duration;

use parapet_iam::{Action, IamError, IamResult, IamService, Principal, RequestMeta};
use parapet_store::{
    AuditEvent, AuditOutcome, IncidentFilter, IncidentRow, Page, Store, StoreError, Tenant,
    UserStatus,
};
use parapet_types::{Actor, Env, TenantCtx, TenantKind, Timestamp};
use serde_json::json;
use uuid::Uuid;

pub mod action;
pub mod activation;
mod alerts;
pub mod drill;
pub mod model;
mod notify;
pub mod pdf;
pub mod plan;
mod plans;
pub mod playbook;
mod policy;
pub mod report;
pub mod sla;

pub use alerts::{FromAlerts, MAX_ALERTS, severity_of_alert};
pub use notify::{AffectedCheck, Weakness};
pub use plans::PlanView;
pub use playbook::{Playbook, PlaybookStep, StepKind};
pub use policy::{PolicyPatch, PolicyView, TargetsPatch};

pub use model::{
    Change, HistoryEntry, Incident, LinkedAlert, Note, Observable, Opening, Refused, Severity,
    Step, Task, TaskStatus,
};
pub use sla::{
    EscalationLevel, EscalationPolicy, Fired, Hours, MonthStats, SlaPolicy, SlaState, SlaTargets,
    SlaTimer, Times, monthly_stats,
};

impl From<Refused> for IncidentError {
    fn from(r: Refused) -> Self {
        IncidentError(match r {
            Refused::Invalid(_) | Refused::ReasonRequired | Refused::ResponsibleRequired(_) => {
                IamError::Invalid(r.to_string())
            }
            Refused::NoTask(_) => IamError::NotFound(r.to_string()),
            _ => IamError::Conflict(r.to_string()),
        })
    }
}

/// A refusal of the state machine as the service's error.
#[derive(Debug)]
pub struct IncidentError(pub IamError);

impl From<IncidentError> for IamError {
    fn from(e: IncidentError) -> Self {
        e.0
    }
}

fn refused(r: Refused) -> IamError {
    IncidentError::from(r).into()
}

/// What opening an incident takes.
#[derive(Debug, Clone, Default)]
pub struct NewIncident {
    pub title: String,
    pub description: String,
    pub severity: Option<Severity>,
    pub category: String,
    /// Responsible person of the detecting step (the caller when empty and the caller is
    /// provider staff).
    pub responsible: Option<String>,
    /// `manual` (console, CLI), `api` or `alerts` (opened from monitoring alerts).
    pub source: String,
    pub alerts: Vec<String>,
}

/// One change asked of an incident.
#[derive(Debug, Clone)]
pub enum Command {
    Advance {
        to: Step,
        responsible: String,
        reason: String,
    },
    Reopen {
        to: Option<Step>,
        responsible: String,
        reason: String,
    },
    Assign {
        step: Option<Step>,
        responsible: String,
        reason: String,
    },
    Severity {
        to: Severity,
        reason: String,
    },
    Classify {
        category: String,
        incident_type: String,
        cause: String,
    },
    Note {
        text: String,
        internal: bool,
    },
    AddTask {
        title: String,
        owner: String,
    },
    CompleteTask {
        number: u32,
    },
    Observable {
        kind: String,
        value: String,
    },
    MergeAlerts {
        alerts: Vec<String>,
    },
    PauseSla {
        reason: String,
    },
    ResumeSla,
    NotifyTenant {
        message: String,
    },
    IssueReport,
    /// Activates the named emergency response plan (its checklist becomes tasks).
    ActivatePlan {
        plan: String,
    },
    /// Runs the named playbook, or the first that applies to the incident's category/type.
    RunPlaybook {
        playbook: Option<String>,
    },
    /// The caller acknowledges their page of an activated plan (the latest when `None`), as
    /// the member or as the deputy the page escalated to.
    AcknowledgePage {
        plan: Option<String>,
    },
    /// Enters an operation into the operation log of an activated plan (the latest when empty).
    LogOperation {
        plan: String,
        text: String,
    },
    /// Sends the response report of an activated plan (the latest when `None`) to the tenant.
    SendResponseReport {
        plan: Option<String>,
    },
    /// Opens a patch action over the tenant's assets running `package` at `version` (its OS
    /// when `os`).
    PatchAction {
        package: String,
        version: String,
        os: bool,
    },
    /// Opens a configuration fix over `assets` (default: the incident's asset observables).
    ConfigFix {
        subject: String,
        assets: Vec<String>,
    },
    /// Marks an asset of an action done or not done (the tenant may too).
    ActionAsset {
        action: u32,
        asset: String,
        done: bool,
    },
}

impl Command {
    /// The permission the command needs.
    pub fn action(&self) -> Action {
        match self {
            Command::Note { .. } | Command::ActionAsset { .. } => Action::IncidentNote,
            _ => Action::IncidentHandle,
        }
    }
}

/// The incident service.
pub struct IncidentService {
    iam: Arc<IamService>,
    store: Arc<dyn Store>,
    env: Env,
    policy: SlaPolicy,
    /// Where escalation pages and tenant notices go (none: they are only recorded).
    notify: Option<Arc<parapet_notify::NotifyService>>,
    /// Where SLA breaches are raised as alerts (set once the monitor exists).
    monitor: std::sync::OnceLock<Arc<parapet_monitor::Monitor>>,
}

/// The rule id of the alerts SLA breaches raise.
pub const SLA_BREACH_RULE: &str = "parapet-incident-sla-breach";

impl std::fmt::Debug for IncidentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncidentService").finish_non_exhaustive()
    }
}

/// The stored row of an incident at `version`.
pub fn to_row(i: &Incident, version: i64, now: Timestamp) -> IamResult<IncidentRow> {
    Ok(IncidentRow {
        id: i.id,
        tenant: i.tenant,
        title: i.title.clone(),
        severity: i.severity.as_str().into(),
        category: i.category.clone(),
        step: i.step.as_str().into(),
        responsible: i.current_responsible().to_string(),
        opened_at: i.opened_at,
        updated_at: now,
        acknowledged_at: i.acknowledged_at,
        resolved_at: i.resolved_at,
        closed_at: i.closed_at,
        next_due_at: i.next_due().into_iter().chain(i.next_page_due()).min(),
        breaches: i64::try_from(i.breaches()).unwrap_or(i64::MAX),
        version,
        body: serde_json::to_value(i).map_err(|e| IamError::Internal(e.to_string()))?,
    })
}

/// The incident of a stored row.
pub fn from_row(r: &IncidentRow) -> IamResult<Incident> {
    serde_json::from_value(r.body.clone())
        .map_err(|e| IamError::Internal(format!("corrupt incident {}: {e}", r.id)))
}

pub(crate) fn parse_id(id: &str) -> IamResult<Uuid> {
    Uuid::parse_str(id.trim()).map_err(|_| IamError::NotFound(format!("no such incident {id}")))
}

pub(crate) fn store_err(e: StoreError, id: Uuid) -> IamError {
    match e {
        StoreError::NotFound => IamError::NotFound(format!("no such incident {id}")),
        e => e.into(),
    }
}

impl IncidentService {
    pub fn new(iam: Arc<IamService>, policy: SlaPolicy) -> Self {
        IncidentService {
            store: iam.store().clone(),
            env: iam.env().clone(),
            iam,
            policy,
            notify: None,
            monitor: std::sync::OnceLock::new(),
        }
    }

    /// Raises SLA breaches as alerts through `monitor` (from then on; set once).
    pub fn set_monitor(&self, monitor: Arc<parapet_monitor::Monitor>) {
        let _ = self.monitor.set(monitor);
    }

    /// Sends escalation pages and tenant notices through `notify`.
    pub fn with_notify(mut self, notify: Arc<parapet_notify::NotifyService>) -> Self {
        self.notify = Some(notify);
        self
    }

    pub fn policy(&self) -> &SlaPolicy {
        &self.policy
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    fn event(
        &self,
        tenant: &Tenant,
        actor: Actor,
        action: &str,
        id: Uuid,
        meta: &RequestMeta,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            time: self.env.now(),
            tenant: Some(tenant.id),
            actor,
            action: action.to_string(),
            target: format!("incident:{}/{id}", tenant.name),
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            outcome: AuditOutcome::Success,
            details,
        }
    }

    async fn provider(&self) -> IamResult<Tenant> {
        self.store
            .provider_tenant()
            .await?
            .ok_or_else(|| IamError::Unavailable("the provider tenant is not bootstrapped".into()))
    }

    /// Checks that `name` is an active member of the provider's staff (responsible persons are).
    async fn staff(&self, name: &str) -> IamResult<String> {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(IamError::Invalid("a responsible person is required".into()));
        }
        let provider = self.provider().await?;
        match self
            .store
            .get_user(TenantCtx::new(provider.id), &name)
            .await
        {
            Ok(u) if u.status == UserStatus::Active => Ok(u.username),
            Ok(_) => Err(IamError::Invalid(format!("{name} is disabled"))),
            Err(StoreError::NotFound) => Err(IamError::Invalid(format!(
                "no staff member {name:?}: responsible persons are users of the provider"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A task owner: provider staff, or a user of the incident's tenant (`bob` or `bob@acme`).
    async fn owner(&self, tenant: &Tenant, name: &str) -> IamResult<String> {
        if let Ok(n) = self.staff(name).await {
            return Ok(n);
        }
        let lower = name.trim().to_ascii_lowercase();
        let bare = lower
            .strip_suffix(&format!("@{}", tenant.name))
            .unwrap_or(&lower);
        match self.store.get_user(TenantCtx::new(tenant.id), bare).await {
            Ok(u) if u.status == UserStatus::Active => {
                Ok(format!("{}@{}", u.username, tenant.name))
            }
            Ok(_) => Err(IamError::Invalid(format!("{name} is disabled"))),
            Err(StoreError::NotFound) => Err(IamError::Invalid(format!(
                "no user {name:?} among the provider's staff or tenant {}",
                tenant.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens an incident of `tenant`.
    pub async fn open(
        &self,
        p: &Principal,
        tenant: &str,
        n: NewIncident,
        meta: &RequestMeta,
    ) -> IamResult<Incident> {
        let t = self
            .iam
            .resolve(p, tenant, Action::IncidentOpen, meta)
            .await?;
        let responsible = match n.responsible.as_deref().filter(|r| !r.trim().is_empty()) {
            Some(r) => self.staff(r).await?,
            None if p.tenant.kind == TenantKind::Provider => p.user.username.clone(),
            None => {
                // Reported by a tenant: the provider's administrator answers until someone is named.
                self.staff("admin").await?
            }
        };
        if n.source.trim() == "alerts" || !n.alerts.is_empty() {
            // Alerts are checked (they exist, are of this tenant and in no other incident)
            // and linked exactly as `from-alerts` does it.
            return self.open_with_alerts(p, &t, n, responsible, meta).await;
        }
        let severity = n.severity.unwrap_or(Severity::Medium);
        let now = self.env.now();
        let source = match n.source.trim() {
            "" => "manual".to_string(),
            s @ ("manual" | "api" | "alerts") => s.to_string(),
            other => {
                return Err(IamError::Invalid(format!(
                    "unknown source {other:?}; expected manual, api or alerts"
                )));
            }
        };
        let id = self
            .env
            .new_id()
            .map_err(|e| IamError::Internal(e.to_string()))?;
        let i = Incident::open(Opening {
            id,
            tenant: t.id,
            title: n.title,
            description: n.description,
            severity,
            category: n.category,
            source,
            alerts: n.alerts,
            responsible,
            actor: p.login_name(),
            at: now,
            sla: self.effective_policy(t.id).await?.start(severity),
        })
        .map_err(refused)?;
        let row = to_row(&i, 1, now)?;
        let e = self.event(
            &t,
            p.actor(),
            "incident.open",
            id,
            meta,
            json!({"title": i.title, "severity": i.severity, "history": i.history}),
        );
        self.store
            .create_incident(TenantCtx::new(p.tenant.id), &row, &[e])
            .await?;
        metrics::counter!("parapet_incidents_opened_total", "severity" => severity.as_str())
            .increment(1);
        Ok(i)
    }

    /// Loads an incident visible to `p`, with its tenant, checking `action` on that tenant.
    pub(crate) async fn load(
        &self,
        p: &Principal,
        id: Uuid,
        action: Action,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, IncidentRow, Incident)> {
        let row = self
            .store
            .get_incident(TenantCtx::new(p.tenant.id), id)
            .await
            .map_err(|e| store_err(e, id))?;
        let t = self
            .iam
            .resolve(p, &row.tenant.to_string(), action, meta)
            .await?;
        let i = from_row(&row)?;
        Ok((t, row, i))
    }

    /// An incident as `p` may see it (a tenant's users never see internal notes).
    pub async fn get(
        &self,
        p: &Principal,
        id: &str,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, Incident)> {
        let id = parse_id(id)?;
        let (t, _, i) = self.load(p, id, Action::IncidentRead, meta).await?;
        Ok((t, view_for(p, i)))
    }

    /// The response report of an activated plan (the latest when `None`) as `p` may see it.
    pub async fn response_report(
        &self,
        p: &Principal,
        id: &str,
        plan: Option<&str>,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, report::Report)> {
        let (t, i) = self.get(p, id, meta).await?;
        let name = i.active_plan(plan.unwrap_or("")).map_err(refused)?;
        let (_, pl) = self.load_plan(&name).await?;
        let r = activation::response_report(&i, &pl, &t.name, self.env.now());
        Ok((t, r))
    }

    /// Applies `cmd` to incident `id` and stores it with its audit record.
    pub async fn apply(
        &self,
        p: &Principal,
        id: &str,
        cmd: Command,
        meta: &RequestMeta,
    ) -> IamResult<Incident> {
        if let Command::MergeAlerts { alerts } = &cmd {
            // Alerts join through the monitoring store, where they are linked to the incident.
            return self.attach_alerts(p, id, alerts, meta).await;
        }
        let id = parse_id(id)?;
        let (t, row, mut i) = self.load(p, id, cmd.action(), meta).await?;
        let actor = p.login_name();
        let now = self.env.now();
        let before = i.history.len();
        let mut notice = match &cmd {
            Command::NotifyTenant { message } => Some(message.clone()),
            _ => None,
        };
        let mut reports: Vec<String> = Vec::new();
        match cmd {
            Command::Advance {
                to,
                responsible,
                reason,
            } => {
                let r = self.staff(&responsible).await?;
                i.advance(to, &r, &reason, &actor, now)
            }
            Command::Reopen {
                to,
                responsible,
                reason,
            } => {
                let r = self.staff(&responsible).await?;
                i.reopen(to, &r, &reason, &actor, now)
            }
            Command::Assign {
                step,
                responsible,
                reason,
            } => {
                let r = self.staff(&responsible).await?;
                i.assign(step, &r, &reason, &actor, now)
            }
            Command::Severity { to, reason } => i.set_severity(to, &reason, &actor, now),
            Command::Classify {
                category,
                incident_type,
                cause,
            } => i.classify(&category, &incident_type, &cause, &actor, now),
            Command::Note { text, internal } => {
                // Only the provider's staff write internal notes.
                let internal = internal && p.tenant.kind == TenantKind::Provider;
                i.add_note(&text, internal, &actor, now).map(drop)
            }
            Command::AddTask { title, owner } => {
                let o = self.owner(&t, &owner).await?;
                i.add_task(&title, &o, "manual", &actor, now).map(drop)
            }
            Command::CompleteTask { number } => i.complete_task(number, &actor, now),
            Command::Observable { kind, value } => i.add_observable(&kind, &value, &actor, now),
            Command::MergeAlerts { alerts } => i.merge_alerts(&alerts, &actor, now).map(drop),
            Command::PauseSla { reason } => i.pause_sla(&reason, &actor, now),
            Command::ResumeSla => i.resume_sla(&actor, now),
            Command::NotifyTenant { message } => i.notify_tenant(&message, &actor, now),
            Command::IssueReport => {
                i.report_issued(&actor, now);
                Ok(())
            }
            Command::ActivatePlan { plan } => {
                let (_, plan) = self.load_plan(&plan).await?;
                i.activate_plan(&plan, &actor, now).map(drop)
            }
            Command::RunPlaybook { playbook } => {
                let (pb, plans) = self.choose_playbook(&i, playbook.as_deref()).await?;
                let owner = i.current_responsible().to_string();
                match i.run_playbook(&pb, &plans, &owner, &actor, now) {
                    Ok(_) => {
                        // Patch and configuration-fix steps open their actions over the
                        // inventory: the incident's package observables, its asset observables.
                        for step in &pb.steps {
                            match step.kind {
                                playbook::StepKind::Patch => {
                                    let packages: Vec<(String, String)> = i
                                        .observables
                                        .iter()
                                        .filter(|o| o.kind == "package")
                                        .filter_map(|o| action::package_of(&o.value))
                                        .collect();
                                    for (n, v) in packages {
                                        let assets = self.assets_running(&t, &n, &v, false).await?;
                                        if !assets.is_empty() {
                                            let subject = format!("{n} {v}");
                                            // Already open from an earlier run: kept.
                                            let _ = i.open_action(
                                                "patch", &subject, assets, &actor, now,
                                            );
                                        }
                                    }
                                }
                                playbook::StepKind::ConfigFix => {
                                    let assets = self.assets_named(&t, &i, &[]).await?;
                                    if !assets.is_empty() {
                                        let _ = i.open_action(
                                            "config-fix",
                                            &step.title,
                                            assets,
                                            &actor,
                                            now,
                                        );
                                    }
                                }
                                _ => {}
                            }
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Command::PatchAction {
                package,
                version,
                os,
            } => {
                let (package, version) = (package.trim().to_string(), version.trim().to_string());
                if package.is_empty() || version.is_empty() {
                    return Err(IamError::Invalid(
                        "a patch action names the package (or OS) and its vulnerable version"
                            .into(),
                    ));
                }
                let assets = self.assets_running(&t, &package, &version, os).await?;
                i.open_action(
                    "patch",
                    &format!("{package} {version}"),
                    assets,
                    &actor,
                    now,
                )
                .map(drop)
            }
            Command::ConfigFix { subject, assets } => {
                let assets = self.assets_named(&t, &i, &assets).await?;
                i.open_action("config-fix", &subject, assets, &actor, now)
                    .map(drop)
            }
            Command::ActionAsset {
                action,
                asset,
                done,
            } => i.set_action_asset(action, &asset, done, &actor, now),
            Command::AcknowledgePage { plan } => {
                if p.tenant.kind != TenantKind::Provider {
                    return Err(IamError::Forbidden(
                        "only the provider's response team acknowledges pages".into(),
                    ));
                }
                i.acknowledge_page(plan.as_deref(), &p.user.username, now)
                    .map(drop)
            }
            Command::LogOperation { plan, text } => i.log_operation(&plan, &text, &actor, now),
            Command::SendResponseReport { plan } => {
                i.active_plan(plan.as_deref().unwrap_or("")).map(|name| {
                    reports.push(name);
                })
            }
        }
        .map_err(refused)?;
        if i.step == Step::Recorded && row.step != Step::Recorded.as_str() {
            let (actions, assets) = i.open_actions();
            if actions > 0 {
                i.push(
                    now,
                    &actor,
                    None,
                    Change::ClosedWithOpenActions { actions, assets },
                );
            }
        }
        // When the last task of an activated plan is done, its response report goes out.
        let activated_plans: Vec<String> = i
            .history
            .iter()
            .filter_map(|h| match &h.change {
                Change::PlanActivated { plan, .. } => Some(plan.clone()),
                _ => None,
            })
            .collect();
        for plan in activated_plans {
            if !reports.contains(&plan) && i.response_report_due(&plan) {
                reports.push(plan);
            }
        }
        // An activated emergency response plan is announced to the tenant at once (8.9.1(3)):
        // the plan's name and how many recovery steps are under way, nothing of the team.
        let activated: Vec<(String, u32, usize)> = i
            .history
            .iter()
            .skip(before)
            .filter_map(|h| match &h.change {
                Change::PlanActivated {
                    plan,
                    version,
                    tasks,
                } => Some((plan.clone(), *version, tasks.len())),
                _ => None,
            })
            .collect();
        for (plan, version, steps) in activated {
            let text = format!(
                "The emergency response plan {plan} (version {version}) was activated for this \
                 incident: {steps} recovery steps are under way. You will be told of the \
                 progress."
            );
            i.notify_tenant(&text, &actor, now).map_err(refused)?;
            notice = Some(text);
        }
        // The response team is paged (provider channels of each member); the tenant gets the
        // response reports due.
        let mut outbox = Vec::new();
        let new_pages: Vec<activation::TeamPage> = i
            .pages
            .iter()
            .filter(|pg| pg.paged_at == now && pg.acknowledged_at.is_none())
            .filter(|pg| {
                i.history.iter().skip(before).any(
                    |h| matches!(&h.change, Change::TeamPaged { plan, .. } if *plan == pg.plan),
                )
            })
            .cloned()
            .collect();
        if let Some(n) = self.notify.as_ref() {
            let provider = self.provider().await?;
            for pg in &new_pages {
                let msg = notify::page_message(&i, &t.name, pg, &pg.member, false);
                outbox.extend(
                    n.page_persons(&provider, std::slice::from_ref(&pg.member), &msg)
                        .await?,
                );
            }
        }
        for plan in &reports {
            let (_, pl) = self.load_plan(plan).await?;
            let r = activation::response_report(&i, &pl, &t.name, now);
            if let Some(n) = self.notify.as_ref() {
                let msg = parapet_notify::Message {
                    source: format!("incident:{}", i.id),
                    severity: Some(i.severity.as_str().into()),
                    subject: r.title.clone(),
                    body: report::to_text(&r),
                    event_at: now,
                };
                outbox.extend(n.tell_tenant_of_incident(&t, &msg).await?);
            }
            i.response_report_sent(plan, &actor, now);
        }
        let added: Vec<&HistoryEntry> = i.history.iter().skip(before).collect();
        let name = added.first().map(|h| h.change.name()).unwrap_or("changed");
        let e = self.event(
            &t,
            p.actor(),
            &format!("incident.{name}"),
            id,
            meta,
            json!({"history": added, "step": i.step}),
        );
        // Telling the tenant queues the notice to its security contact in the same transaction.
        if let (Some(text), Some(n)) = (&notice, self.notify.as_ref()) {
            outbox.extend(
                n.tell_tenant_of_incident(&t, &notify::tenant_notice(&i, text))
                    .await?,
            );
        }
        // Pages live in the provider's outbox: written within the provider's view.
        let ctx = if outbox.iter().any(|m| m.tenant != t.id) {
            TenantCtx::new(self.provider().await?.id)
        } else {
            TenantCtx::new(t.id)
        };
        let new_row = to_row(&i, row.version + 1, now)?;
        self.store
            .update_incident_with_outbox(ctx, &new_row, &[e], &outbox)
            .await
            .map_err(|e| store_err(e, id))?;
        Ok(view_for(p, i))
    }

    /// Incidents visible to `p` (of `tenant` when given), newest first.
    pub async fn list(
        &self,
        p: &Principal,
        tenant: Option<&str>,
        filter: ListFilter,
        meta: &RequestMeta,
    ) -> IamResult<Vec<IncidentRow>> {
        let t = match tenant {
            Some(name) => {
                self.iam
                    .resolve(p, name, Action::IncidentRead, meta)
                    .await?
            }
            None => {
                let own = p.tenant.clone();
                parapet_iam::authorize(p, Action::IncidentRead, &own)
                    .map_err(|d| IamError::Forbidden(d.0))?;
                own
            }
        };
        // A tenant's users only ever see their own tenant's: naming it lets the database use
        // the (tenant, id) index instead of scanning every tenant's incidents.
        let only = match tenant {
            Some(_) => Some(t.id),
            None if p.tenant.kind != TenantKind::Provider => Some(p.tenant.id),
            None => None,
        };
        let f = IncidentFilter {
            tenant: only,
            step: filter.step.map(|s| s.as_str().to_string()),
            open_only: filter.open_only,
            opened_since: filter.opened_since,
        };
        Ok(self
            .store
            .list_incidents(
                TenantCtx::new(p.tenant.id),
                &f,
                &Page {
                    after: filter.after,
                    limit: filter.limit.clamp(1, 100_000),
                },
            )
            .await?)
    }

    /// MTTA and MTTR per tenant and month of the incidents visible to `p` (of `tenant` when
    /// given) opened since `since`.
    pub async fn stats(
        &self,
        p: &Principal,
        tenant: Option<&str>,
        since: Option<Timestamp>,
        meta: &RequestMeta,
    ) -> IamResult<Vec<MonthStats>> {
        let rows = self
            .list(
                p,
                tenant,
                ListFilter {
                    opened_since: since,
                    limit: 100_000,
                    ..ListFilter::default()
                },
                meta,
            )
            .await?;
        let times: Vec<Times> = rows
            .iter()
            .map(|r| Times {
                tenant: r.tenant,
                opened_at: r.opened_at,
                acknowledged_at: r.acknowledged_at,
                resolved_at: r.resolved_at,
                breaches: u32::try_from(r.breaches).unwrap_or(u32::MAX),
            })
            .collect();
        Ok(monthly_stats(&times))
    }

    /// Fires the SLA timers and escalations due now (at most `limit` incidents); returns what
    /// fired. Safe on several replicas at once: an incident changed meanwhile is left to the
    /// replica that changed it.
    pub async fn fire_due(&self, limit: u32) -> IamResult<Vec<Fired>> {
        let provider = self.provider().await?;
        let now = self.env.now();
        let due = self
            .store
            .due_incidents(TenantCtx::new(provider.id), now, limit)
            .await?;
        let mut out = Vec::new();
        let mut names: std::collections::HashMap<parapet_types::TenantId, String> =
            Default::default();
        for (tenant, id, _) in due {
            let tenant_name = match names.get(&tenant) {
                Some(n) => n.clone(),
                None => {
                    let name = match self
                        .store
                        .get_tenant(TenantCtx::new(provider.id), &tenant.to_string())
                        .await
                    {
                        Ok(t) => t.name,
                        Err(_) => tenant.to_string(),
                    };
                    names.insert(tenant, name.clone());
                    name
                }
            };
            let ctx = TenantCtx::new(tenant);
            let row = match self.store.get_incident(ctx, id).await {
                Ok(r) => r,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut i = from_row(&row)?;
            let now = self.env.now();
            let fired = i.fire(now);
            let escalated = i.escalate_pages(now);
            let tenant_record = match self
                .store
                .get_tenant(TenantCtx::new(provider.id), &tenant.to_string())
                .await
            {
                Ok(t) => t,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut outbox = self
                .messages_for_fired(&provider, &tenant_record, &mut i, &fired, now)
                .await?;
            outbox.extend(
                self.messages_for_escalated_pages(&provider, &tenant_record, &i, &escalated)
                    .await?,
            );
            let told_now =
                row.body.get("notified_at").is_none_or(|v| v.is_null()) && i.notified_at.is_some();
            let mut events: Vec<AuditEvent> = fired
                .iter()
                .map(|f| AuditEvent {
                    time: now,
                    tenant: Some(tenant),
                    actor: Actor::System,
                    action: match f.escalation {
                        None => "incident.sla-breached".into(),
                        Some(_) => "incident.escalated".into(),
                    },
                    target: format!("incident:{tenant_name}/{id}"),
                    source_ip: None,
                    user_agent: None,
                    outcome: AuditOutcome::Success,
                    details: json!({
                        "timer": f.timer,
                        "due_at": f.due_at,
                        "level": f.escalation.map(|e| e.0),
                        "round": f.escalation.map(|e| e.1),
                        "notify": f.notify,
                    }),
                })
                .collect();
            for e in &escalated {
                events.push(AuditEvent {
                    time: now,
                    tenant: Some(tenant),
                    actor: Actor::System,
                    action: "incident.page-escalated".into(),
                    target: format!("incident:{tenant_name}/{id}"),
                    source_ip: None,
                    user_agent: None,
                    outcome: AuditOutcome::Success,
                    details: json!({"plan": e.plan, "member": e.member, "deputy": e.deputy,
                                    "due_at": e.due_at}),
                });
            }
            if told_now {
                events.push(AuditEvent {
                    time: now,
                    tenant: Some(tenant),
                    actor: Actor::System,
                    action: "incident.tenant-notified".into(),
                    target: format!("incident:{tenant_name}/{id}"),
                    source_ip: None,
                    user_agent: None,
                    outcome: AuditOutcome::Success,
                    details: json!({"automatic": true, "messages": outbox.iter()
                        .filter(|m| m.tenant == tenant).count()}),
                });
            }
            // Each breach is also an alert of the incident's tenant (idempotent by its key, so
            // raising before the incident is stored never makes two).
            if let Some(m) = self.monitor.get() {
                for f in fired.iter().filter(|f| f.escalation.is_none()) {
                    let alert = parapet_monitor::internal::InternalAlert {
                        source: "parapet-incident".into(),
                        rule_id: SLA_BREACH_RULE.into(),
                        title: format!(
                            "SLA breached: {} of incident {}",
                            f.timer.as_str(),
                            i.title
                        ),
                        severity: i.severity.as_str().into(),
                        group_key: format!("{id}:{}", f.timer.as_str()),
                        asset: None,
                        host: None,
                        message: format!(
                            "The {} target of incident {id} (severity {}, step {}, responsible \
                             {}) was due at {}.",
                            f.timer.as_str(),
                            i.severity.as_str(),
                            i.step.as_str(),
                            i.current_responsible(),
                            f.due_at.rfc3339()
                        ),
                        details: json!({"incident": id, "timer": f.timer.as_str(),
                                        "due_at": f.due_at}),
                        dedup_key: format!("incident-sla:{id}:{}:{}", f.timer.as_str(), f.due_at.0),
                        audit_action: "incident.sla-breach-alert".into(),
                        audit_target: format!("incident:{tenant_name}/{id}"),
                    };
                    if let Err(e) = m.raise_internal(&tenant_record, &alert).await {
                        tracing::error!(incident = %id, "cannot raise the SLA breach alert: {e}");
                    }
                }
            }
            let new_row = to_row(&i, row.version + 1, now)?;
            // Pages go to the provider's channels: written within the provider's view.
            match self
                .store
                .update_incident_with_outbox(
                    TenantCtx::new(provider.id),
                    &new_row,
                    &events,
                    &outbox,
                )
                .await
            {
                Ok(()) => {
                    for f in &fired {
                        let late = (now.0 - f.due_at.0).max(0) as f64 / 1000.0;
                        metrics::histogram!("parapet_incident_timer_lateness_seconds").record(late);
                        if !f.notify.is_empty() {
                            tracing::warn!(
                                incident = %id, timer = f.timer.as_str(),
                                notify = ?f.notify, "incident escalated"
                            );
                        }
                    }
                    out.extend(fired);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Runs the timer scheduler until `stop` turns true: fires due timers every `tick`.
    pub async fn run_timers(
        self: Arc<Self>,
        tick: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        const BATCH: u32 = 500;
        // Drill and review reminders need no sub-second precision: once a minute.
        let mut plans_checked: Option<std::time::Instant> = None;
        loop {
            if plans_checked.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                plans_checked = Some(std::time::Instant::now());
                if let Err(e) = self.remind_plans().await {
                    tracing::error!("plan reminders failed: {e}");
                }
            }
            let pause = match self.fire_due(BATCH).await {
                Ok(f) if f.len() >= BATCH as usize => Duration::ZERO,
                Ok(_) => tick,
                Err(e) => {
                    tracing::error!("incident timers failed: {e}");
                    tick.max(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
        }
    }
}

/// What a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub step: Option<Step>,
    pub open_only: bool,
    pub opened_since: Option<Timestamp>,
    pub after: Option<String>,
    pub limit: u32,
}

fn view_for(p: &Principal, i: Incident) -> Incident {
    if p.tenant.kind == TenantKind::Provider {
        i
    } else {
        i.for_tenant()
    }
}
