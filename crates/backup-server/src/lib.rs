//! Server-side backup management (X.1642 8.10, 7.2.2.2(7)). The provider sets, per tenant
//! (policy `default`) or per service, the backup terms ([`PolicySpec`]: RPO, RTO, retention,
//! copies, on-site/off-site, encryption, schedule, time window, restore-test interval); backup
//! runs, copies, verifications and restore tests report to the server ([`ReportInput`]) and are
//! kept as evidence with an audit record each; [`compliance::evaluate`] says which terms are not
//! met, and the compliance job ([`BackupService::sweep`]) opens a finding for each (audited, and
//! notified through the tenant's channels routed for `alert` or `rule:backup-<kind>`) and resolves
//! it once the term is met again. Authorization goes through [`parapet_iam::authorize`]
//! (`BackupRead`, `BackupPolicyWrite`, `BackupReport`).

use std::sync::Arc;

use parapet_iam::{Action, IamError, IamResult, IamService, Principal, RequestMeta};
use parapet_store::{
    AuditEvent, AuditOutcome, BackupFindingRow, BackupPolicyRow, BackupReportRow, Store,
    StoreError, Tenant,
};
use parapet_types::{Actor, Env, TenantCtx, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub mod agent;
pub mod compliance;
pub mod jobs;
pub mod policy;

pub use agent::{Claim, Job};
pub use compliance::{Finding, Report, evaluate};
pub use jobs::{Due, JobSpec, JobState, StepOutcome};
pub use policy::{PolicySpec, Retention, Window, redact_repository, valid_name};

/// A policy with its version and history fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub tenant: String,
    pub name: String,
    pub version: i64,
    pub spec: PolicySpec,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

/// The stored body of a policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PolicyBody {
    spec: PolicySpec,
    created_at: Timestamp,
    updated_by: String,
}

/// What a backup client reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    /// The policy it carries out (`default` when absent).
    #[serde(default)]
    pub policy: Option<String>,
    /// `backup`, `copy`, `verify` or `restore-test`.
    pub kind: String,
    pub ok: bool,
    /// `on-site` or `off-site` (when absent: off-site for `s3://` repositories, else on-site).
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub snapshot: Option<String>,
    /// The repository (secrets in it are removed before it is stored).
    pub repository: String,
    #[serde(default)]
    pub bytes_added: u64,
    #[serde(default)]
    pub total_bytes: u64,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub signer: Option<String>,
    #[serde(default = "yes")]
    pub encrypted: bool,
    #[serde(default)]
    pub error: Option<String>,
}

fn yes() -> bool {
    true
}

/// A policy's compliance now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyCompliance {
    pub tenant: String,
    pub policy: String,
    pub compliant: bool,
    pub findings: Vec<Finding>,
    pub last_backup_at: Option<Timestamp>,
    pub last_restore_test_at: Option<Timestamp>,
    /// The measured restore time of the last successful restore test (the achieved RTO).
    pub achieved_rto_ms: Option<u64>,
    pub rpo_secs: u64,
    pub rto_secs: u64,
    /// The policy's backup levels (`file`, `vm-image`, `vm-snapshot`).
    pub levels: Vec<String>,
    /// Unwise terms (a VM-snapshot-only policy, frequent snapshots: X.1642 8.10-20).
    pub warnings: Vec<String>,
}

/// A finding as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindingView {
    pub id: String,
    pub tenant: String,
    pub policy: String,
    pub kind: String,
    pub detail: String,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// What a compliance sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    pub opened: u32,
    pub resolved: u32,
    /// Alerts raised for findings (through the monitor).
    pub alerted: u32,
}

const KINDS: &[&str] = &["backup", "copy", "verify", "restore-test"];
const SITES: &[&str] = &["on-site", "off-site"];
/// How many reports of a policy the compliance evaluation reads (newest first).
const EVAL_REPORTS: u32 = 500;

fn internal(e: impl std::fmt::Display) -> IamError {
    IamError::Internal(e.to_string())
}

fn printable(what: &str, s: &str, max: usize) -> IamResult<()> {
    if s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(IamError::Invalid(format!(
            "{what} must be at most {max} printable characters"
        )));
    }
    Ok(())
}

/// The backup policy service.
pub struct BackupService {
    iam: Arc<IamService>,
    store: Arc<dyn Store>,
    env: Env,
    notify: Option<Arc<parapet_notify::NotifyService>>,
    monitor: Option<Arc<parapet_monitor::Monitor>>,
}

impl std::fmt::Debug for BackupService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupService").finish_non_exhaustive()
    }
}

fn policy_of(t: &Tenant, r: &BackupPolicyRow) -> IamResult<Policy> {
    let b: PolicyBody = serde_json::from_value(r.body.clone())
        .map_err(|e| internal(format!("corrupt backup policy {}: {e}", r.name)))?;
    Ok(Policy {
        tenant: t.name.clone(),
        name: r.name.clone(),
        version: r.version,
        spec: b.spec,
        created_at: b.created_at,
        updated_at: r.updated_at,
        updated_by: b.updated_by,
    })
}

fn report_of(r: &BackupReportRow) -> IamResult<Report> {
    serde_json::from_value(r.body.clone())
        .map_err(|e| internal(format!("corrupt backup report {}: {e}", r.id)))
}

impl BackupService {
    pub fn new(iam: Arc<IamService>, notify: Option<Arc<parapet_notify::NotifyService>>) -> Self {
        BackupService {
            store: iam.store().clone(),
            env: iam.env().clone(),
            iam,
            notify,
            monitor: None,
        }
    }

    /// Findings raise alerts through the monitor (`raise_internal`): they show in the alert list
    /// of the provider and the tenant and follow its notification routes (rule
    /// `backup-<kind>`), instead of being notified on their own.
    #[must_use]
    pub fn with_monitor(mut self, monitor: Arc<parapet_monitor::Monitor>) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Raises the alert of an open finding (once: the finding's id is the dedup key, so a sweep
    /// after a crash between the finding and its alert raises it then, and never twice).
    async fn alert_finding(
        &self,
        monitor: &parapet_monitor::Monitor,
        t: &Tenant,
        f: &BackupFindingRow,
    ) -> IamResult<bool> {
        let severity = match f.kind.as_str() {
            "rpo-exceeded"
            | "restore-test-failed"
            | "unencrypted"
            | "job-overdue"
            | "offsite-missing"
            | "onsite-missing" => "high",
            _ => "medium",
        };
        let a = parapet_monitor::internal::InternalAlert {
            source: "parapet-backup".into(),
            rule_id: format!("backup-{}", f.kind),
            title: format!("Backup policy {} of {}: {}", f.policy, t.name, f.detail),
            severity: severity.into(),
            group_key: f.policy.clone(),
            asset: None,
            host: None,
            message: f.detail.clone(),
            details: json!({"finding": f.id, "policy": f.policy, "kind": f.kind}),
            dedup_key: format!("backup-finding:{}", f.id),
            audit_action: "backup.finding.alert".into(),
            audit_target: format!("backup-policy:{}/{}", t.name, f.policy),
        };
        match monitor.raise_internal(t, &a).await {
            Ok(raised) => Ok(raised.is_some()),
            Err(e) => Err(internal(format!(
                "cannot raise the alert of a backup finding: {e}"
            ))),
        }
    }

    fn event(
        &self,
        t: &Tenant,
        actor: Actor,
        meta: Option<&RequestMeta>,
        action: &str,
        target: String,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            time: self.env.now(),
            tenant: Some(t.id),
            actor,
            action: action.into(),
            target,
            source_ip: meta.and_then(|m| m.source_ip.clone()),
            user_agent: meta.and_then(|m| m.user_agent.clone()),
            outcome: AuditOutcome::Success,
            details,
        }
    }

    /// Sets (creates or replaces) the policy `name` of tenant `tenant`. `expect_version`, when
    /// given, must be the version read (optimistic update; 0: it must not exist yet).
    pub async fn set_policy(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        spec: PolicySpec,
        expect_version: Option<i64>,
        meta: &RequestMeta,
    ) -> IamResult<Policy> {
        let name = valid_name(name).map_err(IamError::Invalid)?;
        spec.validate().map_err(IamError::Invalid)?;
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupPolicyWrite, meta)
            .await?;
        let ctx = TenantCtx::new(t.id);
        let now = self.env.now();
        let old = match self.store.get_backup_policy(ctx, &name).await {
            Ok(r) => Some(r),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let current = old.as_ref().map_or(0, |r| r.version);
        if let Some(v) = expect_version
            && v != current
        {
            return Err(IamError::Conflict(format!(
                "the backup policy {name} is at version {current}, not {v}; reload and try again"
            )));
        }
        let created_at = match &old {
            Some(r) => policy_of(&t, r)?.created_at,
            None => now,
        };
        let body = PolicyBody {
            spec: spec.clone(),
            created_at,
            updated_by: p.login_name(),
        };
        let row = BackupPolicyRow {
            tenant: t.id,
            name: name.clone(),
            version: current + 1,
            updated_at: now,
            body: serde_json::to_value(&body).map_err(internal)?,
        };
        let e = self.event(
            &t,
            p.actor(),
            Some(meta),
            "backup.policy.set",
            format!("backup-policy:{}/{name}", t.name),
            json!({"version": row.version, "spec": spec}),
        );
        self.store.put_backup_policy(ctx, &row, &[e]).await?;
        policy_of(&t, &row)
    }

    /// One policy. A token of scope `backup` (which runs backups) may read the policies it
    /// carries out (their window and retention), not list them.
    pub async fn get_policy(
        &self,
        p: &Principal,
        tenant: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> IamResult<Policy> {
        let action = if p.has_scope("backup") && !p.has_scope("read") && !p.has_scope("write") {
            Action::BackupReport
        } else {
            Action::BackupRead
        };
        let t = self.iam.resolve(p, tenant, action, meta).await?;
        let name = valid_name(name).map_err(IamError::Invalid)?;
        match self
            .store
            .get_backup_policy(TenantCtx::new(t.id), &name)
            .await
        {
            Ok(r) => policy_of(&t, &r),
            Err(StoreError::NotFound) => Err(IamError::NotFound(format!(
                "tenant {} has no backup policy named {name}",
                t.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_policies(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<Vec<Policy>> {
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupRead, meta)
            .await?;
        self.store
            .list_backup_policies(TenantCtx::new(t.id), Some(t.id))
            .await?
            .iter()
            .map(|r| policy_of(&t, r))
            .collect()
    }

    pub async fn delete_policy(
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
            "backup.policy.delete",
            format!("backup-policy:{}/{name}", t.name),
            json!({}),
        );
        match self
            .store
            .delete_backup_policy(TenantCtx::new(t.id), &name, &[e])
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(IamError::NotFound(format!(
                "tenant {} has no backup policy named {name}",
                t.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Records a report of tenant `tenant` as evidence (with its audit record).
    pub async fn report(
        &self,
        p: &Principal,
        tenant: &str,
        input: ReportInput,
        meta: &RequestMeta,
    ) -> IamResult<Report> {
        if !KINDS.contains(&input.kind.as_str()) {
            return Err(IamError::Invalid(format!(
                "unknown report kind {:?}; expected one of {}",
                input.kind,
                KINDS.join(", ")
            )));
        }
        let policy =
            valid_name(input.policy.as_deref().unwrap_or("default")).map_err(IamError::Invalid)?;
        let repository = redact_repository(&input.repository);
        if repository.is_empty() {
            return Err(IamError::Invalid("the repository is required".into()));
        }
        printable("the repository", &repository, 1000)?;
        let site = match input.site.as_deref() {
            Some(s) if SITES.contains(&s) => s.to_string(),
            Some(s) => {
                return Err(IamError::Invalid(format!(
                    "unknown site {s:?}; expected on-site or off-site"
                )));
            }
            None if repository.contains("://") => "off-site".into(),
            None => "on-site".into(),
        };
        for (what, v) in [
            ("the snapshot", &input.snapshot),
            ("the signer", &input.signer),
        ] {
            if let Some(v) = v {
                printable(what, v, 200)?;
            }
        }
        let error = input.error.map(|e| {
            let e: String = e.chars().filter(|c| !c.is_control()).take(1000).collect();
            e
        });
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupReport, meta)
            .await?;
        let id = self.env.new_id().map_err(internal)?;
        let now = self.env.now();
        let report = Report {
            id: id.to_string(),
            policy: policy.clone(),
            kind: input.kind,
            ok: input.ok,
            site,
            at: now,
            snapshot: input.snapshot,
            repository,
            bytes_added: input.bytes_added,
            total_bytes: input.total_bytes,
            files: input.files,
            duration_ms: input.duration_ms,
            signer: input.signer,
            encrypted: input.encrypted,
            error,
            reporter: p.login_name(),
        };
        let row = BackupReportRow {
            id,
            tenant: t.id,
            policy: policy.clone(),
            kind: report.kind.clone(),
            ok: report.ok,
            site: report.site.clone(),
            at: now,
            body: serde_json::to_value(&report).map_err(internal)?,
        };
        let mut e = self.event(
            &t,
            p.actor(),
            Some(meta),
            &format!("backup.report.{}", report.kind),
            format!("backup-policy:{}/{policy}", t.name),
            json!({
                "report": report.id, "ok": report.ok, "site": report.site,
                "snapshot": report.snapshot, "repository": report.repository,
                "signer": report.signer, "duration_ms": report.duration_ms,
            }),
        );
        if !report.ok {
            e.outcome = AuditOutcome::Failure;
        }
        self.store
            .add_backup_report(TenantCtx::new(t.id), &row, &[e])
            .await?;
        metrics::counter!(
            "parapet_backup_reports_total",
            "kind" => report.kind.clone(),
            "result" => if report.ok { "ok" } else { "failed" }
        )
        .increment(1);
        Ok(report)
    }

    /// A tenant's reports, newest first.
    pub async fn reports(
        &self,
        p: &Principal,
        tenant: &str,
        policy: Option<&str>,
        limit: u32,
        meta: &RequestMeta,
    ) -> IamResult<Vec<Report>> {
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupRead, meta)
            .await?;
        let policy = policy
            .map(valid_name)
            .transpose()
            .map_err(IamError::Invalid)?;
        self.store
            .list_backup_reports(TenantCtx::new(t.id), policy.as_deref(), limit)
            .await?
            .iter()
            .map(report_of)
            .collect()
    }

    async fn evaluate_tenant(
        &self,
        t: &Tenant,
        now: Timestamp,
    ) -> IamResult<Vec<PolicyCompliance>> {
        let ctx = TenantCtx::new(t.id);
        let mut out = Vec::new();
        let jobs = self.tenant_jobs(t, None, now).await?;
        for row in self.store.list_backup_policies(ctx, Some(t.id)).await? {
            let policy = policy_of(t, &row)?;
            let reports: Vec<Report> = self
                .store
                .list_backup_reports(ctx, Some(&policy.name), EVAL_REPORTS)
                .await?
                .iter()
                .map(report_of)
                .collect::<IamResult<_>>()?;
            let mut findings = evaluate(&policy.spec, policy.created_at, &reports, now);
            // Jobs the server carries out whose agent has not run them in time.
            let late: Vec<String> = jobs
                .iter()
                .filter(|j| j.spec.policy == policy.name && j.overdue)
                .map(|j| {
                    let since = j.due.as_ref().map_or(now, |d| d.next_due_at);
                    format!(
                        "{} (agent {}, due since {})",
                        j.name,
                        j.spec.agent,
                        since.rfc3339()
                    )
                })
                .collect();
            if !late.is_empty() {
                findings.push(Finding {
                    kind: "job-overdue".into(),
                    detail: format!(
                        "no agent has run these due backup jobs (is the agent silent?): {}",
                        late.join("; ")
                    ),
                });
            }
            let last = |f: &dyn Fn(&Report) -> bool| {
                reports.iter().filter(|r| f(r)).max_by_key(|r| r.at.0)
            };
            out.push(PolicyCompliance {
                tenant: t.name.clone(),
                policy: policy.name.clone(),
                compliant: findings.is_empty(),
                findings,
                last_backup_at: last(&|r| r.kind == "backup" && r.ok).map(|r| r.at),
                last_restore_test_at: last(&|r| r.kind == "restore-test").map(|r| r.at),
                achieved_rto_ms: last(&|r| r.kind == "restore-test" && r.ok).map(|r| r.duration_ms),
                rpo_secs: policy.spec.rpo_secs,
                rto_secs: policy.spec.rto_secs,
                levels: policy.spec.levels.clone(),
                warnings: policy.spec.warnings(),
            });
        }
        Ok(out)
    }

    /// Tenant `tenant`'s compliance with each of its policies now.
    pub async fn compliance(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<Vec<PolicyCompliance>> {
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupRead, meta)
            .await?;
        self.evaluate_tenant(&t, self.env.now()).await
    }

    /// Every tenant's compliance (provider staff reading backups of the provider tenant).
    pub async fn compliance_overview(
        &self,
        p: &Principal,
        meta: &RequestMeta,
    ) -> IamResult<Vec<PolicyCompliance>> {
        let provider = self.provider().await?;
        self.iam
            .resolve(p, &provider.id.to_string(), Action::BackupRead, meta)
            .await?;
        let now = self.env.now();
        let mut out = Vec::new();
        for t in self.tenants_with_policies(&provider).await? {
            out.extend(self.evaluate_tenant(&t, now).await?);
        }
        Ok(out)
    }

    /// Findings of tenant `tenant` (open only, or all), newest first.
    pub async fn findings(
        &self,
        p: &Principal,
        tenant: &str,
        open_only: bool,
        meta: &RequestMeta,
    ) -> IamResult<Vec<FindingView>> {
        let t = self
            .iam
            .resolve(p, tenant, Action::BackupRead, meta)
            .await?;
        Ok(self
            .store
            .list_backup_findings(TenantCtx::new(t.id), Some(t.id), open_only, 1000)
            .await?
            .into_iter()
            .map(|f| FindingView {
                id: f.id.to_string(),
                tenant: t.name.clone(),
                policy: f.policy,
                kind: f.kind,
                detail: f.detail,
                opened_at: f.opened_at,
                resolved_at: f.resolved_at,
            })
            .collect())
    }

    async fn provider(&self) -> IamResult<Tenant> {
        self.store
            .provider_tenant()
            .await?
            .ok_or_else(|| IamError::Unavailable("the provider tenant is not bootstrapped".into()))
    }

    async fn tenants_with_policies(&self, provider: &Tenant) -> IamResult<Vec<Tenant>> {
        let rows = self
            .store
            .list_backup_policies(TenantCtx::new(provider.id), None)
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
                Ok(t) => out.push(t),
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// The compliance job: evaluates every tenant's policies at the injected clock's time, opens
    /// a finding for each term newly not met (audited; the tenant's routed channels notified)
    /// and resolves the findings whose term is met again.
    pub async fn sweep(&self) -> IamResult<Sweep> {
        let provider = self.provider().await?;
        let now = self.env.now();
        let mut done = Sweep::default();
        for t in self.tenants_with_policies(&provider).await? {
            let ctx = TenantCtx::new(t.id);
            let open = self
                .store
                .list_backup_findings(ctx, Some(t.id), true, 10_000)
                .await?;
            let current = self.evaluate_tenant(&t, now).await?;
            for pc in &current {
                for f in &pc.findings {
                    if open
                        .iter()
                        .any(|o| o.policy == pc.policy && o.kind == f.kind)
                    {
                        continue;
                    }
                    let id = self.env.new_id().map_err(internal)?;
                    let target = format!("backup-policy:{}/{}", t.name, pc.policy);
                    let e = self.event(
                        &t,
                        Actor::System,
                        None,
                        "backup.finding.open",
                        target,
                        json!({"finding": id, "kind": f.kind, "detail": f.detail}),
                    );
                    let row = BackupFindingRow {
                        id,
                        tenant: t.id,
                        policy: pc.policy.clone(),
                        kind: f.kind.clone(),
                        detail: f.detail.clone(),
                        opened_at: now,
                        resolved_at: None,
                    };
                    match self.store.open_backup_finding(ctx, &row, &[e]).await {
                        Ok(()) => {}
                        // Another replica opened it meanwhile.
                        Err(StoreError::Conflict(_)) => continue,
                        Err(e) => return Err(e.into()),
                    }
                    done.opened += 1;
                    metrics::counter!("parapet_backup_findings_opened_total").increment(1);
                    if self.monitor.is_none()
                        && let Some(n) = &self.notify
                        && let Err(e) = n
                            .enqueue_for_alert(
                                &t,
                                &id.to_string(),
                                &format!("backup-{}", f.kind),
                                "high",
                                &format!("Backup policy {} of {}: {}", pc.policy, t.name, f.detail),
                                now,
                            )
                            .await
                    {
                        tracing::warn!(error = %e, tenant = %t.name, "cannot notify a backup finding");
                    }
                }
            }
            for o in &open {
                let still = current.iter().any(|pc| {
                    pc.policy == o.policy && pc.findings.iter().any(|f| f.kind == o.kind)
                });
                if still {
                    continue;
                }
                let e = self.event(
                    &t,
                    Actor::System,
                    None,
                    "backup.finding.resolve",
                    format!("backup-policy:{}/{}", t.name, o.policy),
                    json!({"finding": o.id, "kind": o.kind}),
                );
                match self
                    .store
                    .resolve_backup_finding(ctx, o.id, now, &[e])
                    .await
                {
                    Ok(()) => done.resolved += 1,
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(m) = &self.monitor {
                for f in self
                    .store
                    .list_backup_findings(ctx, Some(t.id), true, 10_000)
                    .await?
                {
                    match self.alert_finding(m, &t, &f).await {
                        Ok(true) => done.alerted += 1,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, tenant = %t.name, "cannot alert a backup finding")
                        }
                    }
                }
            }
        }
        let open = self
            .store
            .list_backup_findings(TenantCtx::new(provider.id), None, true, 100_000)
            .await?
            .len();
        metrics::gauge!("parapet_backup_open_findings").set(open as f64);
        Ok(done)
    }

    /// Runs [`sweep`](Self::sweep) every `every` until `stop` turns true.
    pub async fn run(
        self: Arc<Self>,
        every: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "backup compliance sweep failed");
            }
        }
    }
}
