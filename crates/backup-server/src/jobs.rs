//! Backup jobs (X.1642 8.10(1), 8.10(2)): the server carries out a policy. A job is a policy's
//! sources (file trees, VM disk images) and repositories (on-site, off-site) assigned to an agent
//! (a host running `parapet backup agent`). This module is pure: it validates job definitions,
//! decides from the policy's schedule, time window and restore-test interval and from the job's
//! state which steps are due at a given time, and when a silent agent makes a job overdue.

use parapet_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::policy::{PolicySpec, Window, redact_repository};

/// What a job backs up and where (the stored definition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The agent (host name) that runs it.
    pub agent: String,
    /// The policy it carries out (`default`: the tenant's).
    pub policy: String,
    /// File trees to back up (file-level backup), absolute paths on the agent.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Virtual-machine disk images (raw or qcow2 files; VM-level backup), absolute paths.
    #[serde(default)]
    pub vm_images: Vec<String>,
    /// The on-site repository (a local path on the agent), if any.
    #[serde(default)]
    pub onsite: Option<String>,
    /// The off-site repository (`s3://bucket/prefix`), if any.
    #[serde(default)]
    pub offsite: Option<String>,
}

/// One step of a run.
pub const STEPS: &[&str] = &["backup", "copy", "prune", "restore-test"];

/// What a job's runs left (the stored state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// When the last run ended, and whether every step of it succeeded.
    #[serde(default)]
    pub last_run_at: Option<Timestamp>,
    #[serde(default)]
    pub last_run_ok: Option<bool>,
    /// When a backup step was last attempted, and the last successful one.
    #[serde(default)]
    pub last_backup_attempt_at: Option<Timestamp>,
    #[serde(default)]
    pub last_backup_at: Option<Timestamp>,
    #[serde(default)]
    pub last_snapshot: Option<String>,
    #[serde(default)]
    pub last_restore_test_attempt_at: Option<Timestamp>,
    #[serde(default)]
    pub last_restore_test_at: Option<Timestamp>,
    /// How many runs ended.
    #[serde(default)]
    pub runs: u64,
    /// The steps of the last run.
    #[serde(default)]
    pub last_steps: Vec<StepOutcome>,
}

/// How a step of a run went, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepOutcome {
    /// `backup`, `copy`, `prune` or `restore-test`.
    pub step: String,
    pub ok: bool,
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub error: Option<String>,
}

/// What is due of a job at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    /// The steps to run now, in order (empty: nothing is due).
    pub steps: Vec<String>,
    /// When the next backup is due (inside the window).
    pub next_backup_at: Timestamp,
    /// When the next restore test is due, if the policy requires them.
    pub next_restore_test_at: Option<Timestamp>,
    /// When the next step of any kind is due.
    pub next_due_at: Timestamp,
}

/// After a failed attempt, the step is retried after this long (or the interval, if shorter).
pub const RETRY_MS: i64 = 15 * 60_000;

fn valid_path(what: &str, p: &str) -> Result<(), String> {
    if !p.starts_with('/') || p.len() > 1000 || p.chars().any(char::is_control) {
        return Err(format!(
            "{what} {p:?} must be an absolute path of at most 1000 printable characters"
        ));
    }
    Ok(())
}

/// Checks an agent name: 1 to 128 of letters, digits and `._-` (a host name).
pub fn valid_agent(name: &str) -> Result<String, String> {
    let n = name.trim().to_ascii_lowercase();
    if n.is_empty()
        || n.len() > 128
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "invalid agent name {name:?}: use a host name of 1 to 128 letters, digits and '._-'"
        ));
    }
    Ok(n)
}

impl JobSpec {
    /// Refuses definitions that cannot run, saying why; normalizes names and repositories.
    pub fn validate(mut self) -> Result<JobSpec, String> {
        self.agent = valid_agent(&self.agent)?;
        self.policy = crate::policy::valid_name(&self.policy)?;
        if self.paths.is_empty() && self.vm_images.is_empty() {
            return Err("a job needs something to back up: paths or VM images".into());
        }
        if self.paths.len() + self.vm_images.len() > 100 {
            return Err("a job backs up at most 100 paths and VM images".into());
        }
        for p in &self.paths {
            valid_path("the path", p)?;
        }
        for p in &self.vm_images {
            valid_path("the VM image", p)?;
        }
        if let Some(r) = &self.onsite {
            valid_path("the on-site repository", r)?;
        }
        if let Some(r) = &self.offsite {
            if !r.starts_with("s3://") {
                return Err(format!(
                    "the off-site repository {r:?} must be an s3://bucket/prefix URL"
                ));
            }
            // Secrets stay with the agent: a URL carrying credentials is refused.
            if redact_repository(r) != r.trim() {
                return Err(
                    "the off-site repository must not carry credentials or parameters: the \
                     agent has them in its own configuration"
                        .into(),
                );
            }
        }
        if self.onsite.is_none() && self.offsite.is_none() {
            return Err("a job needs an on-site or an off-site repository (or both)".into());
        }
        Ok(self)
    }

    /// Refuses a job whose repositories do not give what its policy requires.
    pub fn fits(&self, policy: &PolicySpec) -> Result<(), String> {
        if !self.paths.is_empty() && !policy.has_level("file") {
            return Err(format!(
                "the policy {} does not back up files (its levels: {}): give the job VM images \
                 only, or add the level 'file' to the policy",
                self.policy,
                policy.levels.join(", ")
            ));
        }
        if !self.vm_images.is_empty() && !policy.has_level("vm-image") {
            return Err(format!(
                "the policy {} does not back up VM images (its levels: {}): add the level \
                 'vm-image' to the policy",
                self.policy,
                policy.levels.join(", ")
            ));
        }
        if policy.onsite && self.onsite.is_none() {
            return Err(format!(
                "the policy {} requires an on-site copy: give the job an on-site repository",
                self.policy
            ));
        }
        if policy.offsite && self.offsite.is_none() {
            return Err(format!(
                "the policy {} requires an off-site copy: give the job an off-site repository",
                self.policy
            ));
        }
        Ok(())
    }

    /// The repository backups are written to (on-site first), and where it is.
    pub fn primary(&self) -> Option<(&str, &'static str)> {
        match (&self.onsite, &self.offsite) {
            (Some(r), _) => Some((r.as_str(), "on-site")),
            (None, Some(r)) => Some((r.as_str(), "off-site")),
            (None, None) => None,
        }
    }
}

fn ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The first time at or after `t` inside the window (`t` itself without one).
fn open_at(window: Option<&Window>, t: Timestamp) -> Timestamp {
    match window {
        Some(w) => Timestamp(t.0.saturating_add(w.wait_ms(t))),
        None => t,
    }
}

/// When a step last succeeded and last ran decide when it is due next: `every` after the last
/// success, but no sooner than [`RETRY_MS`] (or `every`, if shorter) after a failed attempt;
/// a step never done is due from `since`.
fn next_of(
    since: Timestamp,
    every_ms: i64,
    last_ok: Option<Timestamp>,
    last_attempt: Option<Timestamp>,
) -> Timestamp {
    let mut next = match last_ok {
        Some(t) => Timestamp(t.0.saturating_add(every_ms)),
        None => since,
    };
    if let Some(a) = last_attempt
        && last_ok.is_none_or(|ok| a.0 > ok.0)
    {
        next = Timestamp(next.0.max(a.0.saturating_add(RETRY_MS.min(every_ms))));
    }
    next
}

/// What of `job` (created at `since`, in `state`) under `policy` is due at `now`. Backups follow
/// the policy's schedule (every RPO unless it says otherwise) and run only inside its window;
/// restore tests follow the policy's interval, inside the window too. A backup run is followed by
/// a copy off-site (when the job has both sites) and a prune by the policy's retention.
pub fn due(
    job: &JobSpec,
    policy: &PolicySpec,
    since: Timestamp,
    state: &JobState,
    now: Timestamp,
) -> Due {
    let window = policy.window.as_deref().and_then(|w| Window::parse(w).ok());
    let next_backup = open_at(
        window.as_ref(),
        next_of(
            since,
            ms(policy.interval_secs()),
            state.last_backup_at,
            state.last_backup_attempt_at,
        ),
    );
    let next_test = (policy.restore_test_secs > 0).then(|| {
        open_at(
            window.as_ref(),
            next_of(
                since,
                ms(policy.restore_test_secs),
                state.last_restore_test_at,
                state.last_restore_test_attempt_at,
            ),
        )
    });
    let in_window = window.as_ref().is_none_or(|w| w.contains(now));
    let mut steps = Vec::new();
    if in_window && next_backup.0 <= now.0 {
        steps.push("backup".to_string());
        if job.onsite.is_some() && job.offsite.is_some() {
            steps.push("copy".to_string());
        }
        steps.push("prune".to_string());
    }
    if in_window && next_test.is_some_and(|t| t.0 <= now.0) {
        steps.push("restore-test".to_string());
    }
    let next_due_at = match next_test {
        Some(t) if t.0 < next_backup.0 => t,
        _ => next_backup,
    };
    Due {
        steps,
        next_backup_at: next_backup,
        next_restore_test_at: next_test,
        next_due_at,
    }
}

/// How long past its due time a job may stay unclaimed before it counts as overdue (its agent
/// silent): a quarter of the backup interval, between 5 minutes and 1 hour.
pub fn grace_ms(policy: &PolicySpec) -> i64 {
    (ms(policy.interval_secs()) / 4).clamp(5 * 60_000, 3_600_000)
}

/// Whether the job is overdue at `now`: due for longer than the grace and no agent holds a lease
/// on it.
pub fn overdue(
    due: &Due,
    policy: &PolicySpec,
    leased_until: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    let leased = leased_until.is_some_and(|u| u.0 > now.0);
    !leased && now.0 - due.next_due_at.0 > grace_ms(policy)
}

/// The state after a run that ended at `now` with `steps`.
pub fn after_run(mut state: JobState, steps: &[StepOutcome], now: Timestamp) -> JobState {
    for s in steps {
        match s.step.as_str() {
            "backup" => {
                state.last_backup_attempt_at = Some(now);
                if s.ok {
                    state.last_backup_at = Some(now);
                    if s.snapshot.is_some() {
                        state.last_snapshot.clone_from(&s.snapshot);
                    }
                }
            }
            "restore-test" => {
                state.last_restore_test_attempt_at = Some(now);
                if s.ok {
                    state.last_restore_test_at = Some(now);
                }
            }
            _ => {}
        }
    }
    state.last_run_at = Some(now);
    state.last_run_ok = Some(steps.iter().all(|s| s.ok));
    state.runs = state.runs.saturating_add(1);
    state.last_steps = steps.to_vec();
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Retention;

    fn policy(window: Option<&str>) -> PolicySpec {
        PolicySpec {
            rpo_secs: 86_400,
            rto_secs: 3600,
            retention: Retention {
                daily: 7,
                ..Retention::default()
            },
            copies: 2,
            onsite: true,
            offsite: true,
            encryption: true,
            schedule_secs: 0,
            window: window.map(str::to_string),
            restore_test_secs: 7 * 86_400,
            levels: vec!["file".into()],
        }
    }

    fn job() -> JobSpec {
        JobSpec {
            agent: "db1".into(),
            policy: "default".into(),
            paths: vec!["/srv/data".into()],
            vm_images: vec![],
            onsite: Some("/srv/backup".into()),
            offsite: Some("s3://bucket/db1".into()),
        }
    }

    const DAY: i64 = 86_400_000;
    const H: i64 = 3_600_000;

    #[test]
    fn a_new_job_is_due_at_once_then_after_its_interval() {
        let p = policy(None);
        let j = job();
        let t0 = Timestamp(DAY * 1000);
        let d = due(&j, &p, t0, &JobState::default(), t0);
        assert_eq!(d.steps, ["backup", "copy", "prune", "restore-test"]);
        let ok = |step: &str| StepOutcome {
            step: step.into(),
            ok: true,
            snapshot: Some("abc".into()),
            duration_ms: 1,
            error: None,
        };
        let s = after_run(
            JobState::default(),
            &[ok("backup"), ok("copy"), ok("prune"), ok("restore-test")],
            Timestamp(t0.0 + 60_000),
        );
        assert_eq!(s.last_snapshot.as_deref(), Some("abc"));
        let d = due(&j, &p, t0, &s, Timestamp(t0.0 + H));
        assert!(d.steps.is_empty());
        assert_eq!(d.next_backup_at, Timestamp(t0.0 + 60_000 + DAY));
        let d = due(&j, &p, t0, &s, Timestamp(t0.0 + 60_000 + DAY));
        assert_eq!(d.steps, ["backup", "copy", "prune"]);
        let d = due(&j, &p, t0, &s, Timestamp(t0.0 + 60_000 + 7 * DAY));
        assert_eq!(d.steps, ["backup", "copy", "prune", "restore-test"]);
        // Without an off-site repository there is nothing to copy.
        let j1 = JobSpec {
            offsite: None,
            ..job()
        };
        assert_eq!(
            due(&j1, &p, t0, &s, Timestamp(t0.0 + 2 * DAY)).steps,
            ["backup", "prune"]
        );
    }

    #[test]
    fn failures_are_retried_and_windows_kept() {
        let p = policy(Some("01:00-05:00"));
        let j = job();
        let t0 = Timestamp(DAY * 1000 + 12 * H);
        // Noon: outside the window, due when it opens at 01:00.
        let d = due(&j, &p, t0, &JobState::default(), t0);
        assert!(d.steps.is_empty());
        assert_eq!(d.next_due_at, Timestamp(DAY * 1001 + H));
        let at2 = Timestamp(DAY * 1001 + 2 * H);
        assert_eq!(
            due(&j, &p, t0, &JobState::default(), at2).steps,
            ["backup", "copy", "prune", "restore-test"]
        );
        let failed = after_run(
            JobState::default(),
            &[StepOutcome {
                step: "backup".into(),
                ok: false,
                snapshot: None,
                duration_ms: 5,
                error: Some("disk full".into()),
            }],
            at2,
        );
        assert_eq!(failed.last_run_ok, Some(false));
        // Retried 15 minutes later, not at once.
        let d = due(&j, &p, t0, &failed, Timestamp(at2.0 + 60_000));
        assert!(!d.steps.contains(&"backup".to_string()));
        assert_eq!(d.next_backup_at, Timestamp(at2.0 + RETRY_MS));
        // Overdue only past the grace, and never while leased.
        assert!(!overdue(&d, &p, None, Timestamp(d.next_due_at.0 + 60_000)));
        let late = Timestamp(d.next_due_at.0 + grace_ms(&p) + 1);
        assert!(overdue(&d, &p, None, late));
        assert!(!overdue(&d, &p, Some(Timestamp(late.0 + 1)), late));
        assert!(overdue(&d, &p, Some(late), late));
    }

    #[test]
    fn bad_definitions_are_refused() {
        assert!(job().validate().is_ok());
        for bad in [
            JobSpec {
                paths: vec![],
                ..job()
            },
            JobSpec {
                paths: vec!["relative".into()],
                ..job()
            },
            JobSpec {
                onsite: None,
                offsite: None,
                ..job()
            },
            JobSpec {
                offsite: Some("/not/s3".into()),
                ..job()
            },
            JobSpec {
                offsite: Some("s3://KEY:SECRET@bucket/p".into()),
                ..job()
            },
            JobSpec {
                agent: "bad agent".into(),
                ..job()
            },
        ] {
            assert!(bad.clone().validate().is_err(), "{bad:?}");
        }
        let j = JobSpec {
            offsite: None,
            ..job()
        };
        assert!(j.fits(&policy(None)).is_err());
        assert!(job().fits(&policy(None)).is_ok());
        let vm = JobSpec {
            vm_images: vec!["/var/lib/vm/a.qcow2".into()],
            ..job()
        };
        assert!(
            vm.fits(&policy(None)).is_err(),
            "the policy has no vm-image level"
        );
        let both = PolicySpec {
            levels: vec!["file".into(), "vm-image".into()],
            ..policy(None)
        };
        assert!(vm.fits(&both).is_ok());
        let vm_only = PolicySpec {
            levels: vec!["vm-image".into()],
            ..policy(None)
        };
        assert!(
            job().fits(&vm_only).is_err(),
            "files under a VM-only policy"
        );
    }
}
