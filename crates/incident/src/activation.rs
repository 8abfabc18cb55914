//! Activation of an emergency response plan (X.1642 8.9.2) beyond its checklist: every member
//! of the response team is paged and acknowledges for themself; a page not acknowledged within
//! the plan's delay escalates to the member's deputy; the operation log records each of these
//! with the operations the team enters; and when the plan's tasks are done (or on request) a
//! response report goes to the incident's tenant. Pure: the caller passes the time.

use parapet_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{Change, Incident, MAX_TEXT, Refused, TaskStatus, text};
use crate::plan::Plan;
use crate::report::{Block, Report};

/// The delay before an unacknowledged page goes to the deputy, when the plan names none.
pub const DEFAULT_ACK_WITHIN_SECS: i64 = 15 * 60;

/// One member of a response team paged for an activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamPage {
    pub plan: String,
    pub member: String,
    pub role: String,
    /// Paged in turn when the member does not acknowledge in time (empty: nobody).
    pub deputy: String,
    pub paged_at: Timestamp,
    /// When the page escalates to the deputy (none once acknowledged or escalated, or
    /// without a deputy).
    pub escalate_at: Option<Timestamp>,
    pub acknowledged_at: Option<Timestamp>,
    /// Who acknowledged: the member, or the deputy after the escalation.
    pub acknowledged_by: Option<String>,
    pub escalated_at: Option<Timestamp>,
}

/// A page that escalated to a deputy (who is paged in turn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageEscalation {
    pub plan: String,
    pub member: String,
    pub role: String,
    pub deputy: String,
    pub due_at: Timestamp,
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

impl Incident {
    /// Pages every member of `plan`'s team (called by the activation); returns the members.
    pub(crate) fn page_team(&mut self, plan: &Plan, actor: &str, at: Timestamp) -> Vec<TeamPage> {
        let Some(content) = plan.current() else {
            return Vec::new();
        };
        let delay = if content.ack_within_secs > 0 {
            content.ack_within_secs
        } else {
            DEFAULT_ACK_WITHIN_SECS
        };
        let pages: Vec<TeamPage> = content
            .team
            .iter()
            .map(|m| TeamPage {
                plan: plan.name.clone(),
                member: m.name.trim().to_ascii_lowercase(),
                role: m.role.clone(),
                deputy: m.deputy.trim().to_ascii_lowercase(),
                paged_at: at,
                escalate_at: (!m.deputy.trim().is_empty()).then(|| at.plus_secs(delay)),
                acknowledged_at: None,
                acknowledged_by: None,
                escalated_at: None,
            })
            .collect();
        self.pages.extend(pages.iter().cloned());
        self.push(
            at,
            actor,
            None,
            Change::TeamPaged {
                plan: plan.name.clone(),
                members: pages.iter().map(|p| p.member.clone()).collect(),
            },
        );
        pages
    }

    /// `who` acknowledges their page for `plan` (the plan of the latest activation when
    /// `None`): the member, or the deputy of an escalated page.
    pub fn acknowledge_page(
        &mut self,
        plan: Option<&str>,
        who: &str,
        at: Timestamp,
    ) -> Result<String, Refused> {
        let plan = match plan.map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => p.to_ascii_lowercase(),
            None => self
                .pages
                .last()
                .map(|p| p.plan.clone())
                .ok_or_else(|| Refused::Invalid("no response team was paged".into()))?,
        };
        let page = self
            .pages
            .iter_mut()
            .filter(|p| p.plan == plan && p.acknowledged_at.is_none())
            .find(|p| same(&p.member, who) || (p.escalated_at.is_some() && same(&p.deputy, who)))
            .ok_or_else(|| {
                Refused::Invalid(format!(
                    "{who} has no unacknowledged page of plan {plan} on this incident"
                ))
            })?;
        page.acknowledged_at = Some(at);
        page.acknowledged_by = Some(who.trim().to_ascii_lowercase());
        page.escalate_at = None;
        let member = page.member.clone();
        self.push(
            at,
            who,
            None,
            Change::PageAcknowledged {
                plan,
                member: member.clone(),
            },
        );
        Ok(member)
    }

    /// When the next page escalation falls due.
    pub fn next_page_due(&self) -> Option<Timestamp> {
        if !self.is_open() {
            return None;
        }
        self.pages.iter().filter_map(|p| p.escalate_at).min()
    }

    /// Escalates every page due at or before `now` to its deputy.
    pub fn escalate_pages(&mut self, now: Timestamp) -> Vec<PageEscalation> {
        if !self.is_open() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for p in self.pages.iter_mut() {
            if let Some(due) = p.escalate_at.filter(|d| *d <= now) {
                p.escalate_at = None;
                p.escalated_at = Some(now);
                out.push(PageEscalation {
                    plan: p.plan.clone(),
                    member: p.member.clone(),
                    role: p.role.clone(),
                    deputy: p.deputy.clone(),
                    due_at: due,
                });
            }
        }
        for e in &out {
            self.push(
                now,
                "system",
                None,
                Change::PageEscalated {
                    plan: e.plan.clone(),
                    member: e.member.clone(),
                    deputy: e.deputy.clone(),
                },
            );
        }
        out
    }

    /// Enters an operation into the operation log of an active plan.
    pub fn log_operation(
        &mut self,
        plan: &str,
        what: &str,
        actor: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        let plan = self.active_plan(plan)?;
        let what = text("the operation", what, MAX_TEXT)?;
        if what.is_empty() {
            return Err(Refused::Invalid("say what was done".into()));
        }
        self.push(
            at,
            actor,
            None,
            Change::PlanOperation {
                plan,
                operation: what,
            },
        );
        Ok(())
    }

    /// The name of an activated plan (`plan`, or the latest activated when empty).
    pub fn active_plan(&self, plan: &str) -> Result<String, Refused> {
        let wanted = plan.trim().to_ascii_lowercase();
        self.history
            .iter()
            .rev()
            .find_map(|h| match &h.change {
                Change::PlanActivated { plan, .. } if wanted.is_empty() || *plan == wanted => {
                    Some(plan.clone())
                }
                _ => None,
            })
            .ok_or_else(|| {
                Refused::Invalid(if wanted.is_empty() {
                    "no emergency response plan was activated for this incident".into()
                } else {
                    format!("plan {wanted} was not activated for this incident")
                })
            })
    }

    /// The tasks of `plan`'s activation.
    pub fn plan_tasks(&self, plan: &str) -> Vec<u32> {
        self.history
            .iter()
            .filter_map(|h| match &h.change {
                Change::PlanActivated { plan: p, tasks, .. } if p == plan => Some(tasks.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Whether every task of `plan`'s activation is done and no response report went out yet.
    pub fn response_report_due(&self, plan: &str) -> bool {
        let tasks = self.plan_tasks(plan);
        !tasks.is_empty()
            && tasks.iter().all(|n| {
                self.tasks
                    .iter()
                    .any(|t| t.number == *n && t.status == TaskStatus::Done)
            })
            && !self
                .history
                .iter()
                .any(|h| matches!(&h.change, Change::ResponseReportSent { plan: p } if p == plan))
    }

    /// Records that the response report of `plan` went to the tenant.
    pub fn response_report_sent(&mut self, plan: &str, actor: &str, at: Timestamp) {
        self.push(
            at,
            actor,
            None,
            Change::ResponseReportSent { plan: plan.into() },
        );
    }

    /// The operation log of `plan`'s activation: every history entry about it, in order.
    pub fn operation_log(&self, plan: &str) -> Vec<(Timestamp, String, String)> {
        let tasks = self.plan_tasks(plan);
        self.history
            .iter()
            .filter(|h| match &h.change {
                Change::PlanActivated { plan: p, .. }
                | Change::TeamPaged { plan: p, .. }
                | Change::PageAcknowledged { plan: p, .. }
                | Change::PageEscalated { plan: p, .. }
                | Change::PlanOperation { plan: p, .. }
                | Change::ResponseReportSent { plan: p } => p == plan,
                Change::TaskDone { task } => tasks.contains(task),
                _ => false,
            })
            .map(|h| (h.at, h.actor.clone(), h.change.describe()))
            .collect()
    }
}

/// The response report of `plan`'s activation for the incident's tenant (8.9.2): the incident,
/// the plan and its version, the team by role (no contacts), the recovery steps with their
/// times, and the operation log. Built from the tenant's view of the incident, so it never
/// carries internal notes or anything of another tenant.
pub fn response_report(
    incident: &Incident,
    plan: &Plan,
    tenant_name: &str,
    now: Timestamp,
) -> Report {
    let i = incident.for_tenant();
    let version = i
        .history
        .iter()
        .rev()
        .find_map(|h| match &h.change {
            Change::PlanActivated {
                plan: p, version, ..
            } if *p == plan.name => Some(*version),
            _ => None,
        })
        .unwrap_or_else(|| plan.version());
    let activated = i
        .history
        .iter()
        .find(|h| matches!(&h.change, Change::PlanActivated { plan: p, .. } if *p == plan.name))
        .map(|h| h.at.rfc3339())
        .unwrap_or_else(|| "-".into());
    let content = plan
        .revisions
        .iter()
        .find(|r| r.version == version)
        .map(|r| &r.content)
        .or_else(|| plan.current());
    let mut b = vec![Block::Fields(vec![
        ("Incident".into(), i.id.to_string()),
        ("Tenant".into(), tenant_name.to_string()),
        ("Title".into(), i.title.clone()),
        ("Severity".into(), i.severity.to_string()),
        (
            "Emergency response plan".into(),
            format!("{} (version {version})", plan.name),
        ),
        (
            "Scenario".into(),
            content.map(|c| c.scenario.clone()).unwrap_or_default(),
        ),
        ("Activated".into(), activated),
        ("Current step".into(), i.step.to_string()),
        ("Report generated".into(), now.rfc3339()),
    ])];
    if let Some(c) = content {
        b.push(Block::Heading("Response team".into()));
        b.push(Block::Table {
            headers: vec!["Role".into(), "Member".into(), "Acknowledged".into()],
            rows: c
                .team
                .iter()
                .map(|m| {
                    let ack = i
                        .pages
                        .iter()
                        .find(|p| p.plan == plan.name && same(&p.member, &m.name))
                        .and_then(|p| {
                            p.acknowledged_at.map(|t| {
                                format!(
                                    "{} by {}",
                                    t.rfc3339(),
                                    p.acknowledged_by.clone().unwrap_or_default()
                                )
                            })
                        })
                        .unwrap_or_else(|| "-".into());
                    vec![m.role.clone(), m.name.clone(), ack]
                })
                .collect(),
        });
    }
    b.push(Block::Heading("Recovery steps".into()));
    let tasks = i.plan_tasks(&plan.name);
    b.push(Block::Table {
        headers: vec!["#".into(), "Step".into(), "Owner".into(), "Done".into()],
        rows: i
            .tasks
            .iter()
            .filter(|t| tasks.contains(&t.number))
            .map(|t| {
                vec![
                    t.number.to_string(),
                    t.title.clone(),
                    t.owner.clone(),
                    t.done_at
                        .map(|d| d.rfc3339())
                        .unwrap_or_else(|| "open".into()),
                ]
            })
            .collect(),
    });
    b.push(Block::Heading("Operation log".into()));
    b.push(Block::Table {
        headers: vec!["Time".into(), "By".into(), "Operation".into()],
        rows: i
            .operation_log(&plan.name)
            .into_iter()
            .map(|(at, by, what)| vec![at.rfc3339(), by, what])
            .collect(),
    });
    if let Some(c) = content.filter(|c| !c.post_disposal_review.trim().is_empty()) {
        b.push(Block::Heading("Post-disposal review".into()));
        b.push(Block::Para(c.post_disposal_review.clone()));
    }
    Report {
        title: format!("Emergency response report: {}", i.title),
        blocks: b,
    }
}
