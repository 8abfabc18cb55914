//! Drills and tests of emergency response plans (X.1642 8.9.2, 8.9.3): a schedule per plan
//! (every so many days; a due drill is listed and its team reminded once), drills recorded with
//! their participants (role, attendance), each step with its time and outcome, findings that
//! become review tasks of the plan (and make its review due), and a drill report. The review
//! reminder (yearly, or at once after a change of SLA, critical configuration, significant
//! patch or team member) is sent to the team once per due time.

use parapet_iam::{IamError, IamResult, Principal, RequestMeta};
use parapet_notify::Message;
use parapet_store::{AuditEvent, AuditOutcome, PlanRow};
use parapet_types::{Actor, TenantCtx, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::model::{MAX_TEXT, MAX_TITLE, Refused, text};
use crate::plan::{Drill, DrillStep, Plan};
use crate::report::{Block, Report};
use crate::{IncidentService, PlanView};

const DAY: i64 = 24 * 3600;

/// When a plan's drills are held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillSchedule {
    pub every_days: u32,
    /// When the next drill is due.
    pub next_at: Timestamp,
    /// The due time the team was last reminded of (once per due drill).
    #[serde(default)]
    pub reminded_for: Option<Timestamp>,
}

/// Someone taking part in a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub name: String,
    pub role: String,
    pub attended: bool,
}

/// A task of the plan's next review, from a drill finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewTask {
    pub number: u32,
    pub title: String,
    /// The drill it came from (1-based).
    pub drill: u32,
    pub created_at: Timestamp,
    pub done_at: Option<Timestamp>,
    pub done_by: Option<String>,
}

/// What recording a drill takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// `drill` (default), `test` or `training`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub participants: Vec<Participant>,
    pub steps: Vec<DrillStep>,
    #[serde(default)]
    pub findings: Vec<String>,
    #[serde(default)]
    pub report: String,
}

/// What is due for a plan now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Due {
    pub plan: String,
    /// `drill` or `review`.
    pub what: &'static str,
    pub due_at: Timestamp,
}

impl Plan {
    /// Holds drills every `every_days` days, the first at `first_at`.
    pub fn set_schedule(&mut self, every_days: u32, first_at: Timestamp) -> Result<(), Refused> {
        if !(1..=3650).contains(&every_days) {
            return Err(Refused::Invalid(
                "drills are held every 1 to 3650 days".into(),
            ));
        }
        self.schedule = Some(DrillSchedule {
            every_days,
            next_at: first_at,
            reminded_for: None,
        });
        Ok(())
    }

    /// Records a drill; returns its number. Findings become review tasks and make the review
    /// due; the next scheduled drill falls due a period after this one.
    pub fn record(&mut self, r: DrillRecord, by: &str, at: Timestamp) -> Result<u32, Refused> {
        if r.steps.is_empty() {
            return Err(Refused::Invalid("a drill records its steps".into()));
        }
        let kind = match r.kind.trim() {
            "" => "drill".to_string(),
            k @ ("drill" | "test" | "training") => k.to_string(),
            other => {
                return Err(Refused::Invalid(format!(
                    "unknown kind {other:?}; expected drill, test or training"
                )));
            }
        };
        let mut steps = Vec::with_capacity(r.steps.len());
        for s in r.steps {
            let step = text("a step", &s.step, MAX_TITLE)?;
            if step.is_empty() {
                return Err(Refused::Invalid("every step is named".into()));
            }
            if s.at.is_some_and(|t| t > at) {
                return Err(Refused::Invalid(format!(
                    "step {step:?} is timed in the future"
                )));
            }
            steps.push(DrillStep {
                step,
                ok: s.ok,
                note: text("a note", &s.note, MAX_TEXT)?,
                at: s.at,
            });
        }
        let mut participants = Vec::with_capacity(r.participants.len());
        for p in r.participants {
            let name = text("a participant", &p.name, 200)?;
            let role = text("a role", &p.role, 200)?;
            if name.is_empty() || role.is_empty() {
                return Err(Refused::Invalid(
                    "every participant has a name and a role".into(),
                ));
            }
            participants.push(Participant {
                name,
                role,
                attended: p.attended,
            });
        }
        let mut findings = Vec::new();
        for f in &r.findings {
            let f = text("a finding", f, MAX_TITLE)?;
            if !f.is_empty() {
                findings.push(f);
            }
        }
        let report = text("the report", &r.report, MAX_TEXT)?;
        let number = u32::try_from(self.drills.len()).unwrap_or(u32::MAX - 1) + 1;
        for f in &findings {
            let n = u32::try_from(self.review_tasks.len()).unwrap_or(u32::MAX - 1) + 1;
            self.review_tasks.push(ReviewTask {
                number: n,
                title: f.clone(),
                drill: number,
                created_at: at,
                done_at: None,
                done_by: None,
            });
        }
        if !findings.is_empty() {
            self.change_occurred(at);
        }
        if let Some(s) = self.schedule.as_mut() {
            s.next_at = at.plus_secs(i64::from(s.every_days) * DAY);
        }
        self.drills.push(Drill {
            at,
            by: by.into(),
            version: self.version(),
            steps,
            report,
            kind,
            participants,
            findings,
        });
        Ok(number)
    }

    /// Marks review task `number` done.
    pub fn review_task_done(
        &mut self,
        number: u32,
        by: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        let t = self
            .review_tasks
            .iter_mut()
            .find(|t| t.number == number)
            .ok_or(Refused::NoTask(number))?;
        if t.done_at.is_some() {
            return Err(Refused::TaskDone(number));
        }
        t.done_at = Some(at);
        t.done_by = Some(by.into());
        Ok(())
    }

    /// Whether a scheduled drill is due at `now`.
    pub fn drill_due(&self, now: Timestamp) -> Option<Timestamp> {
        self.schedule
            .as_ref()
            .map(|s| s.next_at)
            .filter(|t| *t <= now)
    }

    /// What is due at `now`: the drill and/or the review.
    pub fn due(&self, now: Timestamp) -> Vec<Due> {
        let mut v = Vec::new();
        if let Some(t) = self.drill_due(now) {
            v.push(Due {
                plan: self.name.clone(),
                what: "drill",
                due_at: t,
            });
        }
        if self.review_due(now) {
            v.push(Due {
                plan: self.name.clone(),
                what: "review",
                due_at: self.review_due_at,
            });
        }
        v
    }

    /// The reminders to send at `now` (each due time once), marking them sent.
    pub fn take_reminders(&mut self, now: Timestamp) -> Vec<Due> {
        let mut out = Vec::new();
        for d in self.due(now) {
            let sent = match d.what {
                "drill" => self.schedule.as_ref().and_then(|s| s.reminded_for),
                _ => self.review_reminded_for,
            };
            if sent == Some(d.due_at) {
                continue;
            }
            match d.what {
                "drill" => {
                    if let Some(s) = self.schedule.as_mut() {
                        s.reminded_for = Some(d.due_at);
                    }
                }
                _ => self.review_reminded_for = Some(d.due_at),
            }
            out.push(d);
        }
        out
    }
}

/// The report of drill `number` of `plan`.
pub fn drill_report(plan: &Plan, number: u32) -> Option<Report> {
    let d = plan
        .drills
        .get(usize::try_from(number).ok()?.checked_sub(1)?)?;
    let ok = d.steps.iter().filter(|s| s.ok).count();
    let attended = d.participants.iter().filter(|p| p.attended).count();
    let mut b = vec![Block::Fields(vec![
        (
            "Plan".into(),
            format!("{} (version {})", plan.name, d.version),
        ),
        (
            "Scenario".into(),
            plan.at_version(d.version)
                .map(|c| c.scenario.clone())
                .unwrap_or_default(),
        ),
        (
            "Kind".into(),
            if d.kind.is_empty() {
                "drill".into()
            } else {
                d.kind.clone()
            },
        ),
        ("Recorded".into(), format!("{} by {}", d.at.rfc3339(), d.by)),
        (
            "Steps that went well".into(),
            format!("{ok} of {}", d.steps.len()),
        ),
        (
            "Participants present".into(),
            format!("{attended} of {}", d.participants.len()),
        ),
    ])];
    b.push(Block::Heading("Participants".into()));
    b.push(Block::Table {
        headers: vec!["Name".into(), "Role".into(), "Attendance".into()],
        rows: d
            .participants
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.role.clone(),
                    if p.attended { "present" } else { "absent" }.into(),
                ]
            })
            .collect(),
    });
    b.push(Block::Heading("Steps".into()));
    b.push(Block::Table {
        headers: vec![
            "#".into(),
            "Step".into(),
            "Time".into(),
            "Outcome".into(),
            "Note".into(),
        ],
        rows: d
            .steps
            .iter()
            .enumerate()
            .map(|(n, s)| {
                vec![
                    (n + 1).to_string(),
                    s.step.clone(),
                    s.at.map(|t| t.rfc3339()).unwrap_or_else(|| "-".into()),
                    if s.ok { "ok" } else { "FAILED" }.into(),
                    s.note.clone(),
                ]
            })
            .collect(),
    });
    b.push(Block::Heading("Findings (review tasks)".into()));
    b.push(Block::Table {
        headers: vec!["Task".into(), "Finding".into(), "Done".into()],
        rows: plan
            .review_tasks
            .iter()
            .filter(|t| t.drill == number)
            .map(|t| {
                vec![
                    t.number.to_string(),
                    t.title.clone(),
                    t.done_at
                        .map(|d| d.rfc3339())
                        .unwrap_or_else(|| "open".into()),
                ]
            })
            .collect(),
    });
    if !d.report.is_empty() {
        b.push(Block::Heading("Report".into()));
        b.push(Block::Para(d.report.clone()));
    }
    Some(Report {
        title: format!("Drill {number} of plan {}", plan.name),
        blocks: b,
    })
}

impl IncidentService {
    /// Records a drill or test with participants, timed steps and findings.
    pub async fn record_drill_full(
        &self,
        p: &Principal,
        name: &str,
        r: DrillRecord,
        meta: &RequestMeta,
    ) -> IamResult<PlanView> {
        self.change_plan(p, name, meta, |plan, by, now| {
            let failed = r.steps.iter().filter(|s| !s.ok).count();
            let steps = r.steps.len();
            let findings = r.findings.len();
            let participants = r.participants.len();
            let n = plan.record(r, by, now)?;
            Ok((
                "plan.drill",
                json!({"drill": n, "steps": steps, "failed": failed, "findings": findings,
                       "participants": participants}),
            ))
        })
        .await
    }

    /// Holds drills of plan `name` every `every_days` days from `first_at` (default: now).
    pub async fn schedule_drills(
        &self,
        p: &Principal,
        name: &str,
        every_days: u32,
        first_at: Option<Timestamp>,
        meta: &RequestMeta,
    ) -> IamResult<PlanView> {
        self.change_plan(p, name, meta, |plan, _, now| {
            let first = first_at.unwrap_or(now);
            plan.set_schedule(every_days, first)?;
            Ok((
                "plan.schedule",
                json!({"every_days": every_days, "first_at": first}),
            ))
        })
        .await
    }

    /// Marks review task `number` of plan `name` done.
    pub async fn review_task_done(
        &self,
        p: &Principal,
        name: &str,
        number: u32,
        meta: &RequestMeta,
    ) -> IamResult<PlanView> {
        self.change_plan(p, name, meta, |plan, by, now| {
            plan.review_task_done(number, by, now)?;
            Ok(("plan.review-task-done", json!({"task": number})))
        })
        .await
    }

    /// The drill report of drill `number` of plan `name`.
    pub async fn drill_report(
        &self,
        p: &Principal,
        name: &str,
        number: u32,
        meta: &RequestMeta,
    ) -> IamResult<Report> {
        let v = self.get_plan(p, name, meta).await?;
        drill_report(&v.plan, number)
            .ok_or_else(|| IamError::NotFound(format!("plan {name} has no drill {number}")))
    }

    /// Drills and reviews due now, over every plan.
    pub async fn due_plans(&self, p: &Principal, meta: &RequestMeta) -> IamResult<Vec<Due>> {
        let now = self.env.now();
        Ok(self
            .list_plans(p, meta)
            .await?
            .iter()
            .flat_map(|v| v.plan.due(now))
            .collect())
    }

    /// Reminds each plan's team (through the provider's channels of each member) of a drill or
    /// review that fell due, once per due time; recorded on the plan and in the audit log in the
    /// transaction that queues the messages. Returns the reminders sent.
    pub async fn remind_plans(&self) -> IamResult<Vec<Due>> {
        let provider = self.provider().await?;
        let ctx = TenantCtx::new(provider.id);
        let now = self.env.now();
        let rows: Vec<PlanRow> = self.store.list_plans(ctx).await?;
        let mut sent = Vec::new();
        for row in rows {
            let mut plan = crate::plans::from_plan_row(&row)?;
            let team: Vec<String> = plan
                .current()
                .map(|c| {
                    c.team
                        .iter()
                        .map(|m| m.name.trim().to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default();
            // A member of the team who left (disabled or removed) is a change of team member
            // (8.9.3): the review falls due at once.
            let mut gone = Vec::new();
            for m in &team {
                let active = match self.store.get_user(ctx, m).await {
                    Ok(u) => u.status == parapet_store::UserStatus::Active,
                    Err(parapet_store::StoreError::NotFound) => false,
                    Err(e) => return Err(e.into()),
                };
                if !active && !plan.gone_members.contains(m) {
                    gone.push(m.clone());
                }
            }
            let mut events = Vec::new();
            if !gone.is_empty() {
                plan.change_occurred(now);
                plan.gone_members.extend(gone.iter().cloned());
                events.push(AuditEvent {
                    time: now,
                    tenant: Some(provider.id),
                    actor: Actor::System,
                    action: "plan.change".into(),
                    target: format!("plan:{}", plan.name),
                    source_ip: None,
                    user_agent: None,
                    outcome: AuditOutcome::Success,
                    details: json!({"change": format!("team member(s) no longer active: {}",
                                                      gone.join(", "))}),
                });
            }
            let due = plan.take_reminders(now);
            if due.is_empty() && gone.is_empty() {
                continue;
            }
            let mut outbox = Vec::new();
            for d in &due {
                let (subject, body) = match d.what {
                    "drill" => (
                        format!("Drill due: emergency response plan {}", plan.name),
                        format!(
                            "The scheduled drill of plan {} was due at {}. Hold it and record \
                             it: parapet drill record {} --steps FILE.",
                            plan.name,
                            d.due_at.rfc3339(),
                            plan.name
                        ),
                    ),
                    _ => (
                        format!("Review due: emergency response plan {}", plan.name),
                        format!(
                            "Plan {} is due for review since {} (yearly, or after a change of \
                             SLA, critical configuration, significant patch or team member, or \
                             drill findings). Review it: parapet plan review {}.",
                            plan.name,
                            d.due_at.rfc3339(),
                            plan.name
                        ),
                    ),
                };
                if let Some(n) = self.notifier() {
                    let msg = Message {
                        source: format!("plan:{}", plan.name),
                        severity: None,
                        subject,
                        body,
                        event_at: d.due_at,
                    };
                    let present: Vec<String> = team
                        .iter()
                        .filter(|m| !plan.gone_members.contains(m))
                        .cloned()
                        .collect();
                    outbox.extend(n.page_persons(&provider, &present, &msg).await?);
                }
                events.push(AuditEvent {
                    time: now,
                    tenant: Some(provider.id),
                    actor: Actor::System,
                    action: format!("plan.{}-reminder", d.what),
                    target: format!("plan:{}", plan.name),
                    source_ip: None,
                    user_agent: None,
                    outcome: AuditOutcome::Success,
                    details: json!({"due_at": d.due_at, "team": team}),
                });
            }
            let new_row = crate::plans::plan_row(&provider, &plan, row.version + 1, now)?;
            match self
                .store
                .update_plan_with_outbox(ctx, &new_row, &events, &outbox)
                .await
            {
                Ok(()) => sent.extend(due),
                // Changed meanwhile (by a person or another replica): next round.
                Err(parapet_store::StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(sent)
    }
}
