//! Emergency response plans (X.1642 8.9): a versioned plan per service or scenario with its
//! notification procedure, launch conditions, response team, business impact analysis, recovery
//! checklist and post-disposal review; drills recorded step by step; review reminders yearly and
//! after every revision. Pure: the caller passes the time.

use parapet_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{Refused, Severity, text};

/// A year, the longest a plan may go without review (8.9.3).
pub const REVIEW_EVERY_SECS: i64 = 365 * 24 * 3600;

/// A member of the response team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub role: String,
    pub contact: String,
    /// Paged when the member does not acknowledge within the plan's delay (provider staff).
    #[serde(default)]
    pub deputy: String,
}

/// A component of the business impact analysis, with what it depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    /// 1 = most critical.
    pub priority: u32,
    #[serde(default)]
    pub depends_on: Vec<String>,
    pub rto_secs: i64,
    pub rpo_secs: i64,
}

/// When a plan is launched from an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchConditions {
    /// The incident is at least this severe.
    pub min_severity: Severity,
    /// The incident's category is one of these (any when empty).
    #[serde(default)]
    pub categories: Vec<String>,
}

/// What a plan says (one version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanContent {
    /// The service or scenario it covers.
    pub scenario: String,
    pub notification: String,
    pub launch: LaunchConditions,
    pub team: Vec<Member>,
    #[serde(default)]
    pub bia: Vec<Component>,
    /// Recovery checklist: each item becomes a task when the plan is activated.
    pub checklist: Vec<String>,
    #[serde(default)]
    pub post_disposal_review: String,
    /// Tenant data is accessed only with the tenant's recorded authorization (8.9.1(6)).
    #[serde(default)]
    pub tenant_data_access: String,
    /// How long a paged member has to acknowledge before the deputy is paged (0: 15 min).
    #[serde(default)]
    pub ack_within_secs: i64,
}

/// One step of a drill and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillStep {
    pub step: String,
    pub ok: bool,
    #[serde(default)]
    pub note: String,
    /// When the step was carried out.
    #[serde(default)]
    pub at: Option<Timestamp>,
}

/// A drill or test of the plan (8.9.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drill {
    pub at: Timestamp,
    pub by: String,
    pub version: u32,
    pub steps: Vec<DrillStep>,
    pub report: String,
    /// `drill`, `test` or `training`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub participants: Vec<crate::drill::Participant>,
    /// What went wrong or should change: each became a review task of the plan.
    #[serde(default)]
    pub findings: Vec<String>,
}

/// A revision of the plan, kept with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub version: u32,
    pub at: Timestamp,
    pub by: String,
    pub reason: String,
    pub content: PlanContent,
}

/// A plan with all its versions, drills, reviews and activations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub revisions: Vec<Revision>,
    pub drills: Vec<Drill>,
    pub reviewed_at: Timestamp,
    pub review_due_at: Timestamp,
    /// When drills are held (none: unscheduled).
    #[serde(default)]
    pub schedule: Option<crate::drill::DrillSchedule>,
    /// Review tasks, from drill findings.
    #[serde(default)]
    pub review_tasks: Vec<crate::drill::ReviewTask>,
    /// The review due time the team was last reminded of.
    #[serde(default)]
    pub review_reminded_for: Option<Timestamp>,
    /// Team members found no longer active (each made the review due once).
    #[serde(default)]
    pub gone_members: Vec<String>,
}

fn check(c: &PlanContent) -> Result<(), Refused> {
    if c.scenario.trim().is_empty() {
        return Err(Refused::Invalid("a plan names its scenario".into()));
    }
    if c.team.is_empty() {
        return Err(Refused::Invalid("a plan names its response team".into()));
    }
    for m in &c.team {
        if m.name.trim().is_empty() || m.role.trim().is_empty() {
            return Err(Refused::Invalid(
                "every team member has a name and a role".into(),
            ));
        }
        if m.deputy.trim().eq_ignore_ascii_case(m.name.trim()) {
            return Err(Refused::Invalid(format!(
                "{} cannot be their own deputy",
                m.name
            )));
        }
    }
    if !(0..=7 * 24 * 3600).contains(&c.ack_within_secs) {
        return Err(Refused::Invalid(
            "the acknowledgement delay is between 0 and 7 days".into(),
        ));
    }
    if c.checklist.iter().all(|i| i.trim().is_empty()) {
        return Err(Refused::Invalid("a plan has a recovery checklist".into()));
    }
    for item in &c.checklist {
        text("a checklist item", item, crate::model::MAX_TITLE)?;
    }
    let names: Vec<&str> = c.bia.iter().map(|x| x.name.as_str()).collect();
    for comp in &c.bia {
        for d in &comp.depends_on {
            if !names.contains(&d.as_str()) {
                return Err(Refused::Invalid(format!(
                    "component {} depends on {d}, which the analysis does not list",
                    comp.name
                )));
            }
        }
    }
    Ok(())
}

/// Plan names: 1–64 of `a-z 0-9 - _`.
pub fn valid_name(name: &str) -> Result<String, Refused> {
    let n = name.trim().to_ascii_lowercase();
    if n.is_empty()
        || n.len() > 64
        || !n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(Refused::Invalid(format!(
            "invalid plan name {name:?}: use 1 to 64 of a-z, 0-9, '-' and '_'"
        )));
    }
    Ok(n)
}

impl Plan {
    pub fn new(name: &str, content: PlanContent, by: &str, at: Timestamp) -> Result<Plan, Refused> {
        let name = valid_name(name)?;
        check(&content)?;
        Ok(Plan {
            name,
            revisions: vec![Revision {
                version: 1,
                at,
                by: by.into(),
                reason: "first version".into(),
                content,
            }],
            drills: Vec::new(),
            reviewed_at: at,
            review_due_at: at.plus_secs(REVIEW_EVERY_SECS),
            schedule: None,
            review_tasks: Vec::new(),
            review_reminded_for: None,
            gone_members: Vec::new(),
        })
    }

    pub fn version(&self) -> u32 {
        self.revisions.last().map(|r| r.version).unwrap_or(0)
    }

    pub fn current(&self) -> Option<&PlanContent> {
        self.revisions.last().map(|r| &r.content)
    }

    /// A new version (older ones are kept); counts as a review.
    pub fn revise(
        &mut self,
        content: PlanContent,
        reason: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<u32, Refused> {
        check(&content)?;
        let reason = text("the reason", reason, crate::model::MAX_TEXT)?;
        if reason.is_empty() {
            return Err(Refused::ReasonRequired);
        }
        let version = self.version() + 1;
        self.revisions.push(Revision {
            version,
            at,
            by: by.into(),
            reason,
            content,
        });
        self.reviewed_at = at;
        self.review_due_at = at.plus_secs(REVIEW_EVERY_SECS);
        Ok(version)
    }

    /// Records a review without change; the next is due in a year.
    pub fn reviewed(&mut self, at: Timestamp) {
        self.reviewed_at = at;
        self.review_due_at = at.plus_secs(REVIEW_EVERY_SECS);
    }

    /// A change that calls for a review (SLA, critical configuration, significant patch, team
    /// member, 8.9.3): the review falls due at once.
    pub fn change_occurred(&mut self, at: Timestamp) {
        if self.review_due_at > at {
            self.review_due_at = at;
        }
        // A new cause: the team is reminded again.
        self.review_reminded_for = None;
    }

    pub fn review_due(&self, now: Timestamp) -> bool {
        self.review_due_at <= now
    }

    pub fn record_drill(
        &mut self,
        steps: Vec<DrillStep>,
        report: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<(), Refused> {
        self.record(
            crate::drill::DrillRecord {
                kind: String::new(),
                participants: Vec::new(),
                steps,
                findings: Vec::new(),
                report: report.into(),
            },
            by,
            at,
        )
        .map(drop)
    }

    /// Whether an incident of `severity` and `category` meets the launch conditions.
    pub fn launches_for(&self, severity: Severity, category: &str) -> bool {
        let Some(c) = self.current() else {
            return false;
        };
        // Severity orders critical first.
        severity <= c.launch.min_severity
            && (c.launch.categories.is_empty()
                || c.launch
                    .categories
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(category)))
    }
}

/// One line of a comparison between two plan versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "line", rename_all = "kebab-case")]
pub enum DiffLine {
    Same(String),
    Removed(String),
    Added(String),
}

fn mins(secs: i64) -> String {
    if secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// A plan version as labelled lines, one per field or list item, for comparisons.
pub fn lines(c: &PlanContent) -> Vec<String> {
    let mut l = vec![
        format!("scenario: {}", c.scenario),
        format!("notification: {}", c.notification),
        format!(
            "launch: severity {} or worse; categories {}",
            c.launch.min_severity,
            if c.launch.categories.is_empty() {
                "any".into()
            } else {
                c.launch.categories.join(", ")
            }
        ),
        format!(
            "acknowledgement delay: {}",
            mins(if c.ack_within_secs > 0 {
                c.ack_within_secs
            } else {
                crate::activation::DEFAULT_ACK_WITHIN_SECS
            })
        ),
    ];
    for m in &c.team {
        l.push(format!(
            "team: {} as {}, contact {}{}",
            m.name,
            m.role,
            m.contact,
            if m.deputy.is_empty() {
                String::new()
            } else {
                format!(", deputy {}", m.deputy)
            }
        ));
    }
    for b in &c.bia {
        l.push(format!(
            "component: {} priority {}, RTO {}, RPO {}{}",
            b.name,
            b.priority,
            mins(b.rto_secs),
            mins(b.rpo_secs),
            if b.depends_on.is_empty() {
                String::new()
            } else {
                format!(", depends on {}", b.depends_on.join(", "))
            }
        ));
    }
    for (n, i) in c.checklist.iter().enumerate() {
        l.push(format!("checklist {}: {i}", n + 1));
    }
    l.push(format!("post-disposal review: {}", c.post_disposal_review));
    l.push(format!("tenant data access: {}", c.tenant_data_access));
    l
}

/// The line diff (longest common subsequence) of two plan versions.
pub fn diff(a: &PlanContent, b: &PlanContent) -> Vec<DiffLine> {
    let (x, y) = (lines(a), lines(b));
    let (n, m) = (x.len(), y.len());
    // lcs[i][j]: the LCS length of x[i..] and y[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let v = if x.get(i) == y.get(j) {
                lcs.get(i + 1)
                    .and_then(|r| r.get(j + 1))
                    .copied()
                    .unwrap_or(0)
                    + 1
            } else {
                let down = lcs.get(i + 1).and_then(|r| r.get(j)).copied().unwrap_or(0);
                let right = lcs.get(i).and_then(|r| r.get(j + 1)).copied().unwrap_or(0);
                down.max(right)
            };
            if let Some(c) = lcs.get_mut(i).and_then(|r| r.get_mut(j)) {
                *c = v;
            }
        }
    }
    let at = |i: usize, j: usize| lcs.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0);
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        match (x.get(i), y.get(j)) {
            (Some(p), Some(q)) if p == q => {
                out.push(DiffLine::Same(p.clone()));
                i += 1;
                j += 1;
            }
            (Some(p), Some(_)) if at(i + 1, j) >= at(i, j + 1) => {
                out.push(DiffLine::Removed(p.clone()));
                i += 1;
            }
            (_, Some(q)) => {
                out.push(DiffLine::Added(q.clone()));
                j += 1;
            }
            (Some(p), None) => {
                out.push(DiffLine::Removed(p.clone()));
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

impl Plan {
    /// The content of `version`.
    pub fn at_version(&self, version: u32) -> Option<&PlanContent> {
        self.revisions
            .iter()
            .find(|r| r.version == version)
            .map(|r| &r.content)
    }
}
