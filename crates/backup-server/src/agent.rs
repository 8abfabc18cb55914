//! The service side of backup jobs: provider staff assign a policy's sources and repositories
//! to an agent ([`BackupService::set_job`]); the agent (a token of scope `backup`) asks which of
//! its jobs are due ([`BackupService::agent_jobs`]), claims one with a lease so that no other
//! agent runs it meanwhile ([`BackupService::claim_job`]), runs the steps, reports each as
//! evidence, and ends the run ([`BackupService::finish_job`]). Every change is audited.

use parapet_iam::{Action, IamError, IamResult, Principal, RequestMeta};
use parapet_store::{AuditOutcome, BackupJobRow, StoreError, Tenant};
use parapet_types::{TenantCtx, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::jobs::{Due, JobSpec, JobState, STEPS, StepOutcome, after_run, due, overdue};
use crate::policy::{PolicySpec, valid_name};
use crate::{BackupService, internal, policy_of};

/// A job as the API shows it: its definition, state and what is due.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub tenant: String,
    pub name: String,
    pub version: i64,
    pub spec: JobSpec,
    pub state: JobState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub updated_by: String,
    /// The agent holding a lease on it now, and until when.
    pub lease_agent: Option<String>,
    pub lease_until: Option<Timestamp>,
    /// What is due now (`None` when its policy is gone).
    pub due: Option<Due>,
    /// Due for longer than the grace with no agent running it.
    pub overdue: bool,
}

/// A claimed job: what the agent must do, and the lease it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    pub job: Job,
    pub lease: String,
    pub lease_until: Timestamp,
    /// The steps to run, in order.
    pub steps: Vec<String>,
    /// The policy's terms (retention for the prune, window).
    pub policy: PolicySpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobBody {
    spec: JobSpec,
    created_at: Timestamp,
    updated_by: String,
}

/// How long a lease may be asked for.
const LEASE_SECS: std::ops::RangeInclusive<u64> = 60..=7 * 86_400;

pub(crate) fn job_of(
    t: &Tenant,
    r: &BackupJobRow,
    policy: Option<&(PolicySpec, Timestamp)>,
    now: Timestamp,
) -> IamResult<Job> {
    let b: JobBody = serde_json::from_value(r.body.clone())
        .map_err(|e| internal(format!("corrupt backup job {}: {e}", r.name)))?;
    let state: JobState = serde_json::from_value(r.state.clone())
        .map_err(|e| internal(format!("corrupt state of backup job {}: {e}", r.name)))?;
    let d = policy.map(|(p, since)| {
        due(
            &b.spec,
            p,
            Timestamp(since.0.max(b.created_at.0)),
            &state,
            now,
        )
    });
    let lease_until = r.lease_until.filter(|u| u.0 > now.0);
    let late = match (&d, policy) {
        (Some(d), Some((p, _))) => overdue(d, p, lease_until, now),
        _ => false,
    };
    Ok(Job {
        tenant: t.name.clone(),
        name: r.name.clone(),
        version: r.version,
        spec: b.spec,
        state,
        created_at: b.created_at,
        updated_at: r.updated_at,
        updated_by: b.updated_by,
        lease_agent: lease_until.and(r.lease_agent.clone()),
        lease_until,
        due: d,
        overdue: late,
    })
}

impl BackupService {
    /// The terms of each policy of tenant `t` with the time it was created.
    pub(crate) async fn policy_terms(
        &self,
        t: &Tenant,
    ) -> IamResult<Vec<(String, (PolicySpec, Timestamp))>> {
        self.store
            .list_backup_policies(TenantCtx::new(t.id), Some(t.id))
            .await?
            .iter()
            .map(|r| policy_of(t, r).map(|p| (p.name, (p.spec, p.created_at))))
            .collect()
    }

    pub(crate) async fn tenant_jobs(
        &self,
        t: &Tenant,
        agent: Option<&str>,
        now: Timestamp,
    ) -> IamResult<Vec<Job>> {
        let terms = self.policy_terms(t).await?;
        self.store
            .list_backup_jobs(TenantCtx::new(t.id), Some(t.id), agent)
            .await?
            .iter()
            .map(|r| {
                let p = terms.iter().find(|(n, _)| *n == r.policy).map(|(_, p)| p);
                job_of(t, r, p, now)
            })
            .collect()
    }

    /// Creates or changes the job `name` of tenant `tenant` (provider staff). Its policy must
    /// exist and the job's repositories must give the sites the policy requires.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_job(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        spec: JobSpec,
        expect_version: Option<i64>,
        meta: &RequestMeta,
    ) -> IamResult<Job> {
        let name = valid_name(name).map_err(|_| {
            IamError::Invalid(format!(
                "invalid job name {name:?}: use 1 to 64 letters, digits and '._-'"
            ))
        })?;
        let spec = spec.validate().map_err(IamError::Invalid)?;
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupPolicyWrite, meta)
            .await?;
        let ctx = TenantCtx::new(t.id);
        let policy = match self.store.get_backup_policy(ctx, &spec.policy).await {
            Ok(r) => policy_of(&t, &r)?,
            Err(StoreError::NotFound) => {
                return Err(IamError::Invalid(format!(
                    "tenant {} has no backup policy named {}: set the policy first",
                    t.name, spec.policy
                )));
            }
            Err(e) => return Err(e.into()),
        };
        spec.fits(&policy.spec).map_err(IamError::Invalid)?;
        let now = self.env.now();
        let old = match self.store.get_backup_job(ctx, &name).await {
            Ok(r) => Some(r),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let current = old.as_ref().map_or(0, |r| r.version);
        if let Some(v) = expect_version
            && v != current
        {
            return Err(IamError::Conflict(format!(
                "the backup job {name} is at version {current}, not {v}; reload and try again"
            )));
        }
        let created_at = match &old {
            Some(r) => job_of(&t, r, None, now)?.created_at,
            None => now,
        };
        let body = JobBody {
            spec: spec.clone(),
            created_at,
            updated_by: p.login_name(),
        };
        let row = BackupJobRow {
            tenant: t.id,
            name: name.clone(),
            agent: spec.agent.clone(),
            policy: spec.policy.clone(),
            version: current + 1,
            updated_at: now,
            body: serde_json::to_value(&body).map_err(internal)?,
            state: match &old {
                Some(r) => r.state.clone(),
                None => serde_json::to_value(JobState::default()).map_err(internal)?,
            },
            lease_id: None,
            lease_agent: None,
            lease_until: None,
        };
        let e = self.event(
            &t,
            p.actor(),
            Some(meta),
            "backup.job.set",
            format!("backup-job:{}/{name}", t.name),
            json!({"version": row.version, "spec": spec}),
        );
        self.store.put_backup_job(ctx, &row, &[e]).await?;
        let stored = self.store.get_backup_job(ctx, &name).await?;
        job_of(&t, &stored, Some(&(policy.spec, policy.created_at)), now)
    }

    /// One job of tenant `tenant`.
    pub async fn get_job(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> IamResult<Job> {
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupRead, meta)
            .await?;
        let name = valid_name(name).map_err(IamError::Invalid)?;
        self.tenant_jobs(&t, None, self.env.now())
            .await?
            .into_iter()
            .find(|j| j.name == name)
            .ok_or_else(|| {
                IamError::NotFound(format!("tenant {} has no backup job named {name}", t.name))
            })
    }

    /// The jobs of tenant `tenant` with their state and what is due.
    pub async fn list_jobs(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<Vec<Job>> {
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupRead, meta)
            .await?;
        self.tenant_jobs(&t, None, self.env.now()).await
    }

    /// Every tenant's jobs (provider staff).
    pub async fn jobs_overview(&self, p: &Principal, meta: &RequestMeta) -> IamResult<Vec<Job>> {
        let provider = self.provider().await?;
        self.iam
            .resolve(p, &provider.id.to_string(), Action::BackupRead, meta)
            .await?;
        let now = self.env.now();
        let rows = self
            .store
            .list_backup_jobs(TenantCtx::new(provider.id), None, None)
            .await?;
        let mut ids: Vec<_> = rows.iter().map(|r| r.tenant).collect();
        ids.dedup();
        let mut out = Vec::new();
        for id in ids {
            match self
                .store
                .get_tenant(TenantCtx::new(provider.id), &id.to_string())
                .await
            {
                Ok(t) => out.extend(self.tenant_jobs(&t, None, now).await?),
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Removes a job (its reports stay as evidence).
    pub async fn delete_job(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupPolicyWrite, meta)
            .await?;
        let name = valid_name(name).map_err(IamError::Invalid)?;
        let e = self.event(
            &t,
            p.actor(),
            Some(meta),
            "backup.job.delete",
            format!("backup-job:{}/{name}", t.name),
            json!({}),
        );
        match self
            .store
            .delete_backup_job(TenantCtx::new(t.id), &name, &[e])
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(IamError::NotFound(format!(
                "tenant {} has no backup job named {name}",
                t.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The jobs assigned to `agent` in tenant `tenant` (what the agent polls; a token of scope
    /// `backup` may ask).
    pub async fn agent_jobs(
        &self,
        p: &Principal,
        tenant: &str,
        agent: &str,
        meta: &RequestMeta,
    ) -> IamResult<Vec<Job>> {
        let agent = crate::jobs::valid_agent(agent).map_err(IamError::Invalid)?;
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupReport, meta)
            .await?;
        self.tenant_jobs(&t, Some(&agent), self.env.now()).await
    }

    /// Claims a due job for `agent` with a lease of `lease_secs`: `Conflict` when another agent
    /// holds it or nothing of it is due.
    pub async fn claim_job(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        agent: &str,
        lease_secs: u64,
        meta: &RequestMeta,
    ) -> IamResult<Claim> {
        let agent = crate::jobs::valid_agent(agent).map_err(IamError::Invalid)?;
        if !LEASE_SECS.contains(&lease_secs) {
            return Err(IamError::Invalid(
                "the lease must last from 60 seconds to 7 days".into(),
            ));
        }
        let name = valid_name(name).map_err(IamError::Invalid)?;
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupReport, meta)
            .await?;
        let ctx = TenantCtx::new(t.id);
        let now = self.env.now();
        let job = self
            .tenant_jobs(&t, None, now)
            .await?
            .into_iter()
            .find(|j| j.name == name)
            .ok_or_else(|| {
                IamError::NotFound(format!("tenant {} has no backup job named {name}", t.name))
            })?;
        if job.spec.agent != agent {
            return Err(IamError::Conflict(format!(
                "the backup job {name} is assigned to agent {}, not {agent}",
                job.spec.agent
            )));
        }
        let Some(d) = job.due.clone() else {
            return Err(IamError::Conflict(format!(
                "the backup job {name} has no policy {} any more",
                job.spec.policy
            )));
        };
        if d.steps.is_empty() {
            return Err(IamError::Conflict(format!(
                "nothing of the backup job {name} is due before {}",
                d.next_due_at.rfc3339()
            )));
        }
        let policy = match self.store.get_backup_policy(ctx, &job.spec.policy).await {
            Ok(r) => policy_of(&t, &r)?.spec,
            Err(StoreError::NotFound) => {
                return Err(IamError::Conflict(format!(
                    "the backup job {name} has no policy {} any more",
                    job.spec.policy
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let lease = self.env.new_id().map_err(internal)?;
        let until = Timestamp(
            now.0
                .saturating_add(i64::try_from(lease_secs * 1000).unwrap_or(i64::MAX)),
        );
        let e = self.event(
            &t,
            p.actor(),
            Some(meta),
            "backup.job.claim",
            format!("backup-job:{}/{name}", t.name),
            json!({"agent": agent, "lease": lease, "until": until, "steps": d.steps}),
        );
        match self
            .store
            .claim_backup_job(ctx, &name, lease, &agent, now, until, &[e])
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(m)) => return Err(IamError::Conflict(m)),
            Err(StoreError::NotFound) => {
                return Err(IamError::NotFound(format!(
                    "tenant {} has no backup job named {name}",
                    t.name
                )));
            }
            Err(e) => return Err(e.into()),
        }
        metrics::counter!("parapet_backup_job_claims_total").increment(1);
        Ok(Claim {
            job: Job {
                lease_agent: Some(agent),
                lease_until: Some(until),
                overdue: false,
                ..job
            },
            lease: lease.to_string(),
            lease_until: until,
            steps: d.steps,
            policy,
        })
    }

    /// Extends the lease of a running job by `lease_secs` from now (an agent does it between
    /// steps, so a long run keeps the job): `Conflict` when the lease is no longer held.
    pub async fn renew_job(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        lease: &str,
        lease_secs: u64,
        meta: &RequestMeta,
    ) -> IamResult<Timestamp> {
        if !LEASE_SECS.contains(&lease_secs) {
            return Err(IamError::Invalid(
                "the lease must last from 60 seconds to 7 days".into(),
            ));
        }
        let name = valid_name(name).map_err(IamError::Invalid)?;
        let lease = uuid::Uuid::parse_str(lease.trim())
            .map_err(|_| IamError::Invalid("the lease is not a lease id".into()))?;
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupReport, meta)
            .await?;
        let now = self.env.now();
        let until = Timestamp(
            now.0
                .saturating_add(i64::try_from(lease_secs * 1000).unwrap_or(i64::MAX)),
        );
        let e = self.event(
            &t,
            p.actor(),
            Some(meta),
            "backup.job.renew",
            format!("backup-job:{}/{name}", t.name),
            json!({"lease": lease, "until": until}),
        );
        match self
            .store
            .renew_backup_job(TenantCtx::new(t.id), &name, lease, now, until, &[e])
            .await
        {
            Ok(()) => Ok(until),
            Err(StoreError::Conflict(m)) => Err(IamError::Conflict(m)),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends a run of a claimed job with how each step went: the job's state moves on (what is
    /// due next follows from it) and the lease ends. `Conflict` when the lease is not held.
    pub async fn finish_job(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        lease: &str,
        steps: Vec<StepOutcome>,
        meta: &RequestMeta,
    ) -> IamResult<Job> {
        let name = valid_name(name).map_err(IamError::Invalid)?;
        let lease = uuid::Uuid::parse_str(lease.trim())
            .map_err(|_| IamError::Invalid("the lease is not a lease id".into()))?;
        if steps.len() > 16 {
            return Err(IamError::Invalid("a run has at most 16 steps".into()));
        }
        let mut clean = Vec::with_capacity(steps.len());
        for mut s in steps {
            if !STEPS.contains(&s.step.as_str()) {
                return Err(IamError::Invalid(format!(
                    "unknown step {:?}; expected one of {}",
                    s.step,
                    STEPS.join(", ")
                )));
            }
            if let Some(snap) = &s.snapshot
                && (snap.len() > 200 || snap.chars().any(char::is_control))
            {
                return Err(IamError::Invalid(
                    "the snapshot must be at most 200 printable characters".into(),
                ));
            }
            s.error = s
                .error
                .map(|e| e.chars().filter(|c| !c.is_control()).take(1000).collect());
            clean.push(s);
        }
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupReport, meta)
            .await?;
        let ctx = TenantCtx::new(t.id);
        let now = self.env.now();
        let row = match self.store.get_backup_job(ctx, &name).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => {
                return Err(IamError::NotFound(format!(
                    "tenant {} has no backup job named {name}",
                    t.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let state: JobState = serde_json::from_value(row.state.clone())
            .map_err(|e| internal(format!("corrupt state of backup job {name}: {e}")))?;
        let state = after_run(state, &clean, now);
        let all_ok = state.last_run_ok == Some(true);
        let mut e = self.event(
            &t,
            p.actor(),
            Some(meta),
            "backup.job.finish",
            format!("backup-job:{}/{name}", t.name),
            json!({"lease": lease, "steps": clean}),
        );
        if !all_ok {
            e.outcome = AuditOutcome::Failure;
        }
        let value = serde_json::to_value(&state).map_err(internal)?;
        match self
            .store
            .finish_backup_job(ctx, &name, lease, &value, &[e])
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(m)) => return Err(IamError::Conflict(m)),
            Err(e) => return Err(e.into()),
        }
        metrics::counter!(
            "parapet_backup_job_runs_total",
            "result" => if all_ok { "ok" } else { "failed" }
        )
        .increment(1);
        self.tenant_jobs(&t, None, now)
            .await?
            .into_iter()
            .find(|j| j.name == name)
            .ok_or_else(|| internal("the finished job vanished"))
    }
}
