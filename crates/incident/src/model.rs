//! The incident and its life cycle (X.1642 8.6): a typed state machine detecting → analysing →
//! disposing → checking → reporting → recorded, with a responsible person named for each step and
//! every change kept in the incident's history (actor, time, reason). Pure: no I/O, no clock —
//! the caller passes the time.

use std::collections::BTreeMap;
use std::fmt;

use parapet_types::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sla::{SlaState, SlaTimer};

/// The steps of security event processing, in order (X.1642 8.6.1–8.6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Detecting,
    Analysing,
    Disposing,
    Checking,
    Reporting,
    /// Recorded and closed.
    Recorded,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Detecting,
        Step::Analysing,
        Step::Disposing,
        Step::Checking,
        Step::Reporting,
        Step::Recorded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Detecting => "detecting",
            Step::Analysing => "analysing",
            Step::Disposing => "disposing",
            Step::Checking => "checking",
            Step::Reporting => "reporting",
            Step::Recorded => "recorded",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        let s = s.trim().to_ascii_lowercase();
        let s = match s.as_str() {
            "analyzing" => "analysing",
            "closed" => "recorded",
            other => other,
        };
        Step::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The steps strictly between `self` and `to` (going forward).
    pub fn between(self, to: Step) -> Vec<Step> {
        Step::ALL
            .into_iter()
            .filter(|s| *s > self && *s < to)
            .collect()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Grading of an incident (the provider's scheme: four grades, each with its SLA targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        let s = s.trim().to_ascii_lowercase();
        Severity::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An observable of the analysis (8.6.2): an address, a hash, an account, an asset…
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observable {
    /// `ip`, `domain`, `url`, `hash`, `account`, `asset`, `email` or `other`.
    pub kind: String,
    pub value: String,
    pub added_at: Timestamp,
    pub added_by: String,
}

pub const OBSERVABLE_KINDS: [&str; 12] = [
    "ip", "domain", "url", "hash", "account", "asset", "email", "host", "alert", "rule", "package",
    "other",
];

/// A monitoring alert joining an incident: what its timeline and observables keep of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedAlert {
    pub id: String,
    pub rule: String,
    pub title: String,
    pub severity: String,
    /// What grouped its events (the host), `-` when nothing.
    pub host: String,
    /// Time of its first and last matching event (the events' own time).
    pub first_event_at: Timestamp,
    pub last_event_at: Timestamp,
    pub events: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    Open,
    Done,
}

/// A task of the handling, with its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// 1, 2, … within the incident.
    pub number: u32,
    pub title: String,
    pub owner: String,
    pub status: TaskStatus,
    /// The step it belongs to.
    pub step: Step,
    pub created_at: Timestamp,
    pub done_at: Option<Timestamp>,
    /// Where it came from (`manual`, or `plan:<name>`).
    pub origin: String,
}

/// A note. Internal notes are for the provider's staff only; the tenant never sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub number: u32,
    pub at: Timestamp,
    pub author: String,
    pub text: String,
    pub internal: bool,
}

/// One change of the incident, as kept in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Change {
    Opened {
        step: Step,
        responsible: String,
        source: String,
    },
    /// Moved forward; `skipped` lists the steps passed over (never without a reason).
    Advanced {
        from: Step,
        to: Step,
        responsible: String,
        skipped: Vec<Step>,
    },
    /// Sent back to an earlier step (e.g. checking found the fix incomplete).
    Returned {
        from: Step,
        to: Step,
        responsible: String,
    },
    /// Opened again after it was recorded; the history so far is kept.
    Reopened {
        from: Step,
        to: Step,
        responsible: String,
    },
    /// The responsible person of a step changed.
    Assigned {
        step: Step,
        from: Option<String>,
        to: String,
    },
    SeverityChanged {
        from: Severity,
        to: Severity,
    },
    Classified {
        category: String,
        incident_type: String,
        cause: String,
    },
    NoteAdded {
        note: u32,
        internal: bool,
    },
    TaskAdded {
        task: u32,
        title: String,
        owner: String,
    },
    TaskDone {
        task: u32,
    },
    ObservableAdded {
        observable_kind: String,
        value: String,
    },
    AlertsMerged {
        alerts: Vec<String>,
    },
    /// A playbook ran: its steps became these tasks.
    PlaybookRun {
        playbook: String,
        tasks: Vec<u32>,
    },
    /// A monitoring alert joined the incident (opened from it, or attached later).
    AlertLinked {
        alert: LinkedAlert,
    },
    SlaPaused,
    SlaResumed {
        paused_ms: i64,
    },
    SlaBreached {
        timer: SlaTimer,
        due_at: Timestamp,
    },
    Escalated {
        timer: SlaTimer,
        level: u32,
        round: u32,
        notify: Vec<String>,
        due_at: Timestamp,
    },
    TenantNotified {
        message: String,
    },
    ReportIssued,
    /// An emergency response plan was activated: its checklist became these tasks.
    PlanActivated {
        plan: String,
        version: u32,
        tasks: Vec<u32>,
    },
    /// The plan's response team was paged.
    TeamPaged {
        plan: String,
        members: Vec<String>,
    },
    /// A member (or their deputy) acknowledged the page.
    PageAcknowledged {
        plan: String,
        member: String,
    },
    /// A page was not acknowledged in time: the member's deputy was paged.
    PageEscalated {
        plan: String,
        member: String,
        deputy: String,
    },
    /// An operation entered into the plan's operation log.
    PlanOperation {
        plan: String,
        operation: String,
    },
    /// The response report of the plan's activation went to the tenant.
    ResponseReportSent {
        plan: String,
    },
    /// A patch action or configuration fix was opened over these assets.
    ActionOpened {
        action: u32,
        action_kind: String,
        subject: String,
        assets: usize,
    },
    /// An asset of an action was marked done (or not done again).
    ActionAssetDone {
        action: u32,
        asset: String,
        done: bool,
    },
    /// The incident was closed while actions still had assets not done.
    ClosedWithOpenActions {
        actions: usize,
        assets: usize,
    },
}

impl Change {
    /// Whether the change moves the incident between steps.
    pub fn is_transition(&self) -> bool {
        matches!(
            self,
            Change::Opened { .. }
                | Change::Advanced { .. }
                | Change::Returned { .. }
                | Change::Reopened { .. }
        )
    }

    /// `(from, to)` of a transition.
    pub fn steps(&self) -> Option<(Option<Step>, Step)> {
        match self {
            Change::Opened { step, .. } => Some((None, *step)),
            Change::Advanced { from, to, .. }
            | Change::Returned { from, to, .. }
            | Change::Reopened { from, to, .. } => Some((Some(*from), *to)),
            _ => None,
        }
    }

    /// A short name for audit records and timelines.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Opened { .. } => "opened",
            Change::Advanced { .. } => "advanced",
            Change::Returned { .. } => "returned",
            Change::Reopened { .. } => "reopened",
            Change::Assigned { .. } => "assigned",
            Change::SeverityChanged { .. } => "severity-changed",
            Change::Classified { .. } => "classified",
            Change::NoteAdded { .. } => "note-added",
            Change::TaskAdded { .. } => "task-added",
            Change::TaskDone { .. } => "task-done",
            Change::ObservableAdded { .. } => "observable-added",
            Change::AlertsMerged { .. } => "alerts-merged",
            Change::AlertLinked { .. } => "alert-linked",
            Change::PlaybookRun { .. } => "playbook-run",
            Change::SlaPaused => "sla-paused",
            Change::SlaResumed { .. } => "sla-resumed",
            Change::SlaBreached { .. } => "sla-breached",
            Change::Escalated { .. } => "escalated",
            Change::TenantNotified { .. } => "tenant-notified",
            Change::ReportIssued => "report-issued",
            Change::PlanActivated { .. } => "plan-activated",
            Change::TeamPaged { .. } => "team-paged",
            Change::PageAcknowledged { .. } => "page-acknowledged",
            Change::PageEscalated { .. } => "page-escalated",
            Change::PlanOperation { .. } => "plan-operation",
            Change::ResponseReportSent { .. } => "response-report-sent",
            Change::ActionOpened { .. } => "action-opened",
            Change::ActionAssetDone { .. } => "action-asset-done",
            Change::ClosedWithOpenActions { .. } => "closed-with-open-actions",
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Change::Opened {
                step,
                responsible,
                source,
            } => format!("opened ({source}) in {step}, responsible {responsible}"),
            Change::Advanced {
                from,
                to,
                responsible,
                skipped,
            } => {
                let mut s = format!("{from} → {to}, responsible {responsible}");
                if !skipped.is_empty() {
                    let names: Vec<&str> = skipped.iter().map(|x| x.as_str()).collect();
                    s.push_str(&format!(" (skipped {})", names.join(", ")));
                }
                s
            }
            Change::Returned {
                from,
                to,
                responsible,
            } => format!("returned {from} → {to}, responsible {responsible}"),
            Change::Reopened {
                from,
                to,
                responsible,
            } => format!("reopened {from} → {to}, responsible {responsible}"),
            Change::Assigned { step, from, to } => format!(
                "{step}: responsible {} → {to}",
                from.as_deref().unwrap_or("nobody")
            ),
            Change::SeverityChanged { from, to } => format!("severity {from} → {to}"),
            Change::Classified {
                category,
                incident_type,
                cause,
            } => format!("classified: category {category}, type {incident_type}, cause {cause}"),
            Change::NoteAdded { note, internal } => {
                format!("note {note}{}", if *internal { " (internal)" } else { "" })
            }
            Change::TaskAdded {
                task, title, owner, ..
            } => format!("task {task} \"{title}\" for {owner}"),
            Change::TaskDone { task } => format!("task {task} done"),
            Change::ObservableAdded {
                observable_kind,
                value,
            } => format!("observable {observable_kind} {value}"),
            Change::AlertsMerged { alerts } => format!("alerts merged: {}", alerts.join(", ")),
            Change::PlaybookRun { playbook, tasks } => {
                format!("playbook {playbook} run: {} tasks", tasks.len())
            }
            Change::AlertLinked { alert } => format!(
                "alert {} linked: rule {} \"{}\" ({}), host {}, {} events, first at {}",
                alert.id,
                alert.rule,
                alert.title,
                alert.severity,
                alert.host,
                alert.events,
                alert.first_event_at
            ),
            Change::SlaPaused => "SLA clock paused (waiting for the tenant)".into(),
            Change::SlaResumed { paused_ms } => {
                format!("SLA clock resumed after {} s", paused_ms / 1000)
            }
            Change::SlaBreached { timer, due_at } => {
                format!("SLA breached: {} was due at {due_at}", timer.as_str())
            }
            Change::Escalated {
                timer,
                level,
                round,
                notify,
                ..
            } => format!(
                "escalated ({}), level {}, round {}: paged {}",
                timer.as_str(),
                level + 1,
                round + 1,
                notify.join(", ")
            ),
            Change::TenantNotified { message } => format!("tenant notified: {message}"),
            Change::ReportIssued => "incident report issued".into(),
            Change::PlanActivated {
                plan,
                version,
                tasks,
            } => format!(
                "emergency response plan {plan} (version {version}) activated: {} tasks",
                tasks.len()
            ),
            Change::TeamPaged { plan, members } => {
                format!("plan {plan}: response team paged ({})", members.join(", "))
            }
            Change::PageAcknowledged { plan, member } => {
                format!("plan {plan}: page of {member} acknowledged")
            }
            Change::PageEscalated {
                plan,
                member,
                deputy,
            } => format!("plan {plan}: {member} did not acknowledge, deputy {deputy} paged"),
            Change::PlanOperation { plan, operation } => format!("plan {plan}: {operation}"),
            Change::ResponseReportSent { plan } => {
                format!("plan {plan}: response report sent to the tenant")
            }
            Change::ActionOpened {
                action,
                action_kind,
                subject,
                assets,
            } => format!("{action_kind} action {action} opened: {subject} on {assets} asset(s)"),
            Change::ActionAssetDone {
                action,
                asset,
                done,
            } => format!(
                "action {action}: {asset} {}",
                if *done { "done" } else { "not done after all" }
            ),
            Change::ClosedWithOpenActions { actions, assets } => format!(
                "WARNING: closed while {actions} action(s) still have {assets} asset(s) not done"
            ),
        }
    }
}

/// An entry of the history: who changed what, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub actor: String,
    pub reason: Option<String>,
    #[serde(flatten)]
    pub change: Change,
}

/// What a caller asks of the state machine that it refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a reason is required")]
    ReasonRequired,
    #[error("a responsible person is required for step {0}")]
    ResponsibleRequired(Step),
    #[error("the incident is already in step {0}")]
    SameStep(Step),
    #[error("the incident is recorded (closed): reopen it first")]
    Closed,
    #[error("only a recorded (closed) incident can be reopened")]
    NotClosed,
    #[error("an incident cannot go back to {0}")]
    CannotReturnTo(Step),
    #[error("{0}")]
    Invalid(String),
    #[error("no task {0}")]
    NoTask(u32),
    #[error("task {0} is already done")]
    TaskDone(u32),
    #[error("the SLA clock is already paused")]
    AlreadyPaused,
    #[error("the SLA clock is not paused")]
    NotPaused,
}

/// The longest free text kept (titles are shorter).
pub const MAX_TEXT: usize = 4000;
pub const MAX_TITLE: usize = 200;

pub(crate) fn text(what: &str, s: &str, max: usize) -> Result<String, Refused> {
    let t = s.trim();
    if t.chars().count() > max {
        return Err(Refused::Invalid(format!(
            "{what} is longer than {max} characters"
        )));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Refused::Invalid(format!(
            "{what} contains control characters"
        )));
    }
    Ok(t.to_string())
}

fn reason(s: &str) -> Result<String, Refused> {
    let r = text("the reason", s, MAX_TEXT)?;
    if r.is_empty() {
        return Err(Refused::ReasonRequired);
    }
    Ok(r)
}

fn person(step: Step, s: &str) -> Result<String, Refused> {
    let r = text("the responsible person", s, 200)?;
    if r.is_empty() {
        return Err(Refused::ResponsibleRequired(step));
    }
    Ok(r)
}

/// What opening an incident needs.
#[derive(Debug, Clone)]
pub struct Opening {
    pub id: Uuid,
    pub tenant: TenantId,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub category: String,
    /// `manual`, `api` or `alerts`.
    pub source: String,
    pub alerts: Vec<String>,
    /// Responsible person of the detecting step.
    pub responsible: String,
    pub actor: String,
    pub at: Timestamp,
    pub sla: SlaState,
}

/// A security incident of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: Uuid,
    pub tenant: TenantId,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub category: String,
    /// Type of the event (8.6.2), e.g. `intrusion`, `malware`, `ddos`.
    pub incident_type: String,
    pub cause: String,
    pub source: String,
    pub alerts: Vec<String>,
    pub step: Step,
    /// The responsible person named for each step reached so far (the current one for each).
    pub responsible: BTreeMap<Step, String>,
    pub opened_at: Timestamp,
    /// When the event was detected, if before the opening (the first event of its alerts): the
    /// SLA timers run from here.
    #[serde(default)]
    pub detected_at: Option<Timestamp>,
    pub acknowledged_at: Option<Timestamp>,
    pub notified_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub reopened: u32,
    pub sla: SlaState,
    pub observables: Vec<Observable>,
    pub tasks: Vec<Task>,
    pub notes: Vec<Note>,
    pub history: Vec<HistoryEntry>,
    /// The response team members paged by plan activations, with their acknowledgements.
    #[serde(default)]
    pub pages: Vec<crate::activation::TeamPage>,
    /// Patch actions and configuration fixes with their per-asset status.
    #[serde(default)]
    pub actions: Vec<crate::action::RemediationAction>,
}

impl Incident {
    /// Opens an incident in the detecting step with its responsible person.
    pub fn open(o: Opening) -> Result<Incident, Refused> {
        let title = text("the title", &o.title, MAX_TITLE)?;
        if title.is_empty() {
            return Err(Refused::Invalid("a title is required".into()));
        }
        let responsible = person(Step::Detecting, &o.responsible)?;
        let mut alerts = Vec::new();
        for a in &o.alerts {
            let a = text("an alert id", a, 200)?;
            if !a.is_empty() && !alerts.contains(&a) {
                alerts.push(a);
            }
        }
        let mut i = Incident {
            id: o.id,
            tenant: o.tenant,
            title,
            description: text("the description", &o.description, MAX_TEXT)?,
            severity: o.severity,
            category: text("the category", &o.category, 100)?,
            incident_type: String::new(),
            cause: String::new(),
            source: o.source.clone(),
            alerts,
            step: Step::Detecting,
            responsible: BTreeMap::from([(Step::Detecting, responsible.clone())]),
            opened_at: o.at,
            detected_at: None,
            acknowledged_at: None,
            notified_at: None,
            resolved_at: None,
            closed_at: None,
            reopened: 0,
            sla: o.sla,
            observables: Vec::new(),
            tasks: Vec::new(),
            notes: Vec::new(),
            history: Vec::new(),
            pages: Vec::new(),
            actions: Vec::new(),
        };
        i.push(
            o.at,
            &o.actor,
            None,
            Change::Opened {
                step: Step::Detecting,
                responsible,
                source: o.source,
            },
        );
        Ok(i)
    }

    pub(crate) fn push(&mut self, at: Timestamp, actor: &str, reason: Option<String>, c: Change) {
        self.history.push(HistoryEntry {
            at,
            actor: actor.to_string(),
            reason,
            change: c,
        });
    }

    pub fn is_open(&self) -> bool {
        self.step != Step::Recorded
    }

    /// The responsible person of the current step.
    pub fn current_responsible(&self) -> &str {
        self.responsible
            .get(&self.step)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Moves the incident to step `to` with its responsible person, for `reason`. Forward moves
    /// may skip steps (the reason records why); backward moves return the incident to an earlier
    /// step of the handling. A recorded incident must be reopened instead.
    pub fn advance(
        &mut self,
        to: Step,
        responsible: &str,
        why: &str,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        let why = reason(why)?;
        let responsible = person(to, responsible)?;
        let from = self.step;
        if from == Step::Recorded {
            return Err(Refused::Closed);
        }
        if to == from {
            return Err(Refused::SameStep(to));
        }
        let change = if to > from {
            Change::Advanced {
                from,
                to,
                responsible: responsible.clone(),
                skipped: from.between(to),
            }
        } else {
            if to == Step::Detecting {
                return Err(Refused::CannotReturnTo(to));
            }
            Change::Returned {
                from,
                to,
                responsible: responsible.clone(),
            }
        };
        self.enter(to, responsible, at);
        self.push(at, actor, Some(why), change);
        Ok(())
    }

    fn enter(&mut self, to: Step, responsible: String, at: Timestamp) {
        self.step = to;
        self.responsible.insert(to, responsible);
        if to > Step::Detecting && self.acknowledged_at.is_none() {
            self.acknowledged_at = Some(at);
        }
        if to >= Step::Reporting {
            if self.resolved_at.is_none() {
                self.resolved_at = Some(at);
            }
        } else {
            self.resolved_at = None;
        }
        if to == Step::Recorded {
            self.closed_at = Some(at);
            if self.sla.paused_since.is_some() {
                self.sla.resume(at);
            }
        } else {
            self.closed_at = None;
        }
    }

    /// Opens a recorded incident again at `to` (analysing unless given); its history is kept.
    pub fn reopen(
        &mut self,
        to: Option<Step>,
        responsible: &str,
        why: &str,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        let why = reason(why)?;
        let to = to.unwrap_or(Step::Analysing);
        let responsible = person(to, responsible)?;
        if self.step != Step::Recorded {
            return Err(Refused::NotClosed);
        }
        if to == Step::Detecting || to == Step::Recorded {
            return Err(Refused::CannotReturnTo(to));
        }
        self.reopened = self.reopened.saturating_add(1);
        self.enter(to, responsible.clone(), at);
        self.push(
            at,
            actor,
            Some(why),
            Change::Reopened {
                from: Step::Recorded,
                to,
                responsible,
            },
        );
        Ok(())
    }

    /// Names `responsible` for `step` (the current step unless given).
    pub fn assign(
        &mut self,
        step: Option<Step>,
        responsible: &str,
        why: &str,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        let step = step.unwrap_or(self.step);
        let responsible = person(step, responsible)?;
        let why = text("the reason", why, MAX_TEXT)?;
        if self.responsible.get(&step) == Some(&responsible) {
            return Err(Refused::Invalid(format!(
                "{responsible} is already responsible for {step}"
            )));
        }
        let from = self.responsible.insert(step, responsible.clone());
        self.push(
            at,
            actor,
            (!why.is_empty()).then_some(why),
            Change::Assigned {
                step,
                from,
                to: responsible,
            },
        );
        Ok(())
    }

    pub fn set_severity(
        &mut self,
        to: Severity,
        why: &str,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        let why = reason(why)?;
        if to == self.severity {
            return Err(Refused::Invalid(format!("the severity is already {to}")));
        }
        let from = self.severity;
        self.severity = to;
        self.push(at, actor, Some(why), Change::SeverityChanged { from, to });
        Ok(())
    }

    /// Type, cause and category of the event (8.6.2).
    pub fn classify(
        &mut self,
        category: &str,
        incident_type: &str,
        cause: &str,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        self.category = text("the category", category, 100)?;
        self.incident_type = text("the type", incident_type, 100)?;
        self.cause = text("the cause", cause, MAX_TEXT)?;
        self.push(
            at,
            actor,
            None,
            Change::Classified {
                category: self.category.clone(),
                incident_type: self.incident_type.clone(),
                cause: self.cause.clone(),
            },
        );
        Ok(())
    }

    pub fn add_note(
        &mut self,
        body: &str,
        internal: bool,
        actor: &str,
        at: Timestamp,
    ) -> Result<u32, Refused> {
        let body = text("the note", body, MAX_TEXT)?;
        if body.is_empty() {
            return Err(Refused::Invalid("the note is empty".into()));
        }
        let number = u32::try_from(self.notes.len()).unwrap_or(u32::MAX - 1) + 1;
        self.notes.push(Note {
            number,
            at,
            author: actor.to_string(),
            text: body,
            internal,
        });
        self.push(
            at,
            actor,
            None,
            Change::NoteAdded {
                note: number,
                internal,
            },
        );
        Ok(number)
    }

    pub fn add_task(
        &mut self,
        title: &str,
        owner: &str,
        origin: &str,
        actor: &str,
        at: Timestamp,
    ) -> Result<u32, Refused> {
        let title = text("the task", title, MAX_TITLE)?;
        if title.is_empty() {
            return Err(Refused::Invalid("the task needs a title".into()));
        }
        let owner = text("the owner", owner, 200)?;
        if owner.is_empty() {
            return Err(Refused::Invalid("a task needs an owner".into()));
        }
        let number = u32::try_from(self.tasks.len()).unwrap_or(u32::MAX - 1) + 1;
        self.tasks.push(Task {
            number,
            title: title.clone(),
            owner: owner.clone(),
            status: TaskStatus::Open,
            step: self.step,
            created_at: at,
            done_at: None,
            origin: origin.to_string(),
        });
        self.push(
            at,
            actor,
            None,
            Change::TaskAdded {
                task: number,
                title,
                owner,
            },
        );
        Ok(number)
    }

    pub fn complete_task(
        &mut self,
        number: u32,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        let t = self
            .tasks
            .iter_mut()
            .find(|t| t.number == number)
            .ok_or(Refused::NoTask(number))?;
        if t.status == TaskStatus::Done {
            return Err(Refused::TaskDone(number));
        }
        t.status = TaskStatus::Done;
        t.done_at = Some(at);
        self.push(at, actor, None, Change::TaskDone { task: number });
        Ok(())
    }

    pub fn add_observable(
        &mut self,
        kind: &str,
        value: &str,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        let kind = kind.trim().to_ascii_lowercase();
        if !OBSERVABLE_KINDS.contains(&kind.as_str()) {
            return Err(Refused::Invalid(format!(
                "unknown observable kind {kind:?}; expected one of: {}",
                OBSERVABLE_KINDS.join(", ")
            )));
        }
        let value = text("the observable", value, 1000)?;
        if value.is_empty() {
            return Err(Refused::Invalid("the observable is empty".into()));
        }
        if self
            .observables
            .iter()
            .any(|o| o.kind == kind && o.value == value)
        {
            return Err(Refused::Invalid(format!(
                "the observable {kind} {value} is already recorded"
            )));
        }
        self.observables.push(Observable {
            kind: kind.clone(),
            value: value.clone(),
            added_at: at,
            added_by: actor.to_string(),
        });
        self.push(
            at,
            actor,
            None,
            Change::ObservableAdded {
                observable_kind: kind,
                value,
            },
        );
        Ok(())
    }

    /// Merges further alerts into the incident.
    pub fn merge_alerts(
        &mut self,
        alerts: &[String],
        actor: &str,
        at: Timestamp,
    ) -> Result<usize, Refused> {
        let mut added = Vec::new();
        for a in alerts {
            let a = text("an alert id", a, 200)?;
            if !a.is_empty() && !self.alerts.contains(&a) && !added.contains(&a) {
                added.push(a);
            }
        }
        if added.is_empty() {
            return Err(Refused::Invalid("no new alerts to merge".into()));
        }
        self.alerts.extend(added.iter().cloned());
        let n = added.len();
        self.push(at, actor, None, Change::AlertsMerged { alerts: added });
        Ok(n)
    }

    /// Links a monitoring alert: its id joins the alerts, its rule, host and id become
    /// observables, the timeline records it with its first event's time, and the detection time
    /// moves back to that event when it is earlier (the SLA timers run from the detection).
    pub fn link_alert(
        &mut self,
        a: &LinkedAlert,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        if !self.is_open() {
            return Err(Refused::Closed);
        }
        let id = text("an alert id", &a.id, 200)?;
        if id.is_empty() || self.alerts.contains(&id) {
            return Err(Refused::Invalid(format!(
                "alert {id} is already part of this incident"
            )));
        }
        let clean = LinkedAlert {
            id: id.clone(),
            rule: text("the rule", &a.rule, 200)?,
            title: text("the alert title", &a.title, MAX_TITLE)?,
            severity: text("the alert severity", &a.severity, 50)?,
            host: text("the host", &a.host, 255)?,
            ..a.clone()
        };
        self.alerts.push(id.clone());
        self.push(
            at,
            actor,
            None,
            Change::AlertLinked {
                alert: clean.clone(),
            },
        );
        for (kind, value) in [
            ("alert", id.as_str()),
            ("rule", clean.rule.as_str()),
            ("host", clean.host.as_str()),
        ] {
            let known = self
                .observables
                .iter()
                .any(|o| o.kind == kind && o.value == value);
            if !value.is_empty() && value != "-" && !known {
                self.add_observable(kind, value, actor, at)?;
            }
        }
        let start = self.detected_at.unwrap_or(self.opened_at);
        if clean.first_event_at < start {
            self.detected_at = Some(clean.first_event_at);
        }
        Ok(())
    }

    /// Pauses the SLA clock while waiting for the tenant.
    pub fn pause_sla(&mut self, why: &str, actor: &str, at: Timestamp) -> Result<(), Refused> {
        let why = reason(why)?;
        if !self.is_open() {
            return Err(Refused::Closed);
        }
        if self.sla.paused_since.is_some() {
            return Err(Refused::AlreadyPaused);
        }
        self.sla.paused_since = Some(at);
        self.push(at, actor, Some(why), Change::SlaPaused);
        Ok(())
    }

    pub fn resume_sla(&mut self, actor: &str, at: Timestamp) -> Result<(), Refused> {
        if self.sla.paused_since.is_none() {
            return Err(Refused::NotPaused);
        }
        let paused_ms = self.sla.resume(at);
        self.push(at, actor, None, Change::SlaResumed { paused_ms });
        Ok(())
    }

    /// Records that the tenant was informed (8.6.3); the first time meets the notification timer.
    pub fn notify_tenant(
        &mut self,
        message: &str,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        let message = text("the message", message, MAX_TEXT)?;
        if message.is_empty() {
            return Err(Refused::Invalid("the message is empty".into()));
        }
        if self.notified_at.is_none() {
            self.notified_at = Some(at);
        }
        self.push(at, actor, None, Change::TenantNotified { message });
        Ok(())
    }

    /// Activates an emergency response plan whose launch conditions the incident meets: the
    /// plan's recovery checklist becomes tasks (owned by the team's first member).
    pub fn activate_plan(
        &mut self,
        plan: &crate::plan::Plan,
        actor: &str,
        at: Timestamp,
    ) -> Result<Vec<u32>, Refused> {
        if !self.is_open() {
            return Err(Refused::Closed);
        }
        let content = plan
            .current()
            .ok_or_else(|| Refused::Invalid("the plan has no version".into()))?;
        if !plan.launches_for(self.severity, &self.category) {
            return Err(Refused::Invalid(format!(
                "the incident does not meet the launch conditions of plan {} (severity {} or \
                 worse{})",
                plan.name,
                content.launch.min_severity,
                if content.launch.categories.is_empty() {
                    String::new()
                } else {
                    format!(", category {}", content.launch.categories.join(" or "))
                }
            )));
        }
        if self
            .history
            .iter()
            .any(|h| matches!(&h.change, Change::PlanActivated { plan: p, .. } if *p == plan.name))
        {
            return Err(Refused::Invalid(format!(
                "plan {} is already active for this incident",
                plan.name
            )));
        }
        let owner = content
            .team
            .first()
            .map(|m| m.name.clone())
            .unwrap_or_else(|| actor.to_string());
        let origin = format!("plan:{}@v{}", plan.name, plan.version());
        let before = self.clone();
        let mut tasks = Vec::new();
        for item in content.checklist.iter().filter(|i| !i.trim().is_empty()) {
            match self.add_task(item, &owner, &origin, actor, at) {
                Ok(n) => tasks.push(n),
                Err(e) => {
                    *self = before;
                    return Err(e);
                }
            }
        }
        self.push(
            at,
            actor,
            None,
            Change::PlanActivated {
                plan: plan.name.clone(),
                version: plan.version(),
                tasks: tasks.clone(),
            },
        );
        self.page_team(plan, actor, at);
        Ok(tasks)
    }

    pub fn report_issued(&mut self, actor: &str, at: Timestamp) {
        self.push(at, actor, None, Change::ReportIssued);
    }

    /// Whether the SLA timer has been met.
    pub fn timer_met(&self, t: SlaTimer) -> Option<Timestamp> {
        match t {
            SlaTimer::Acknowledge => self.acknowledged_at,
            SlaTimer::Notify => self.notified_at,
            SlaTimer::Resolve => self.resolved_at,
        }
    }

    /// The transitions of the history, in order.
    pub fn transitions(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.history.iter().filter(|h| h.change.is_transition())
    }

    /// Number of SLA breaches so far.
    pub fn breaches(&self) -> usize {
        self.history
            .iter()
            .filter(|h| matches!(h.change, Change::SlaBreached { .. }))
            .count()
    }

    /// The incident as its tenant may see it: internal notes removed.
    pub fn for_tenant(&self) -> Incident {
        let mut i = self.clone();
        let hidden: Vec<u32> = i
            .notes
            .iter()
            .filter(|n| n.internal)
            .map(|n| n.number)
            .collect();
        i.notes.retain(|n| !n.internal);
        i.history.retain(|h| match &h.change {
            Change::NoteAdded { note, .. } => !hidden.contains(note),
            _ => true,
        });
        i
    }
}
