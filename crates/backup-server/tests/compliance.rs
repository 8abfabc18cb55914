//! Backup policies, reports and the compliance job over a real store on SQLite and PostgreSQL
//! (X.1642 8.10, 7.2.2.2(7)), with an injected clock: findings open when the last good backup is
//! older than the RPO, the off-site copy is missing, a restore test is overdue or failed, and are
//! resolved once the terms are met again; every change is audited; tenants see only their own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use parapet_backup_server::{
    BackupService, JobSpec, PolicySpec, ReportInput, Retention, StepOutcome,
};
use parapet_iam::{IamConfig, IamError, IamService, PasswordCost, Principal, RequestMeta};
use parapet_store::{AuditFilter, Page};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Clock, Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    compliance_findings_follow_the_clock,
    policies_are_validated_versioned_and_isolated,
    jobs_are_due_leased_and_overdue_by_the_clock,
    findings_raise_alerts_once_through_the_monitor
);

const PW: &str = "a-long-enough-password-42";
const START: i64 = 1_800_000_000_000;
const HOUR: i64 = 3600;

fn meta() -> RequestMeta {
    RequestMeta::default()
}

struct World {
    clock: Arc<ManualClock>,
    svc: BackupService,
    iam: Arc<IamService>,
    admin: Principal,
    alice: Principal,
    bob: Principal,
}

async fn world(backend: Backend) -> World {
    let (store, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(Timestamp(START)));
    let env = Env {
        clock: clock.clone(),
        entropy: Arc::new(OsEntropy),
    };
    let config = IamConfig {
        password_cost: PasswordCost {
            memory_kib: 256,
            iterations: 1,
            lanes: 1,
        },
        session_ttl_secs: 3 * 365 * 24 * 3600,
        session_idle_secs: 3 * 365 * 24 * 3600,
        max_token_ttl_secs: 3 * 365 * 24 * 3600,
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let iam = Arc::new(IamService::new(store.clone(), env, config).unwrap());
    iam.bootstrap(Some(PW.into())).await.unwrap();
    let admin = iam.login("admin", PW, &meta()).await.unwrap().principal;
    for (t, u) in [("acme", "alice"), ("globex", "bob")] {
        iam.create_tenant(&admin, t, &meta()).await.unwrap();
        iam.create_user(&admin, t, u, PW, Role::TenantAdmin, &meta())
            .await
            .unwrap();
    }
    let alice = iam
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;
    let bob = iam
        .login("bob@globex", PW, &meta())
        .await
        .unwrap()
        .principal;
    World {
        clock,
        svc: BackupService::new(iam.clone(), None),
        iam,
        admin,
        alice,
        bob,
    }
}

fn spec() -> PolicySpec {
    PolicySpec {
        rpo_secs: 24 * 3600,
        rto_secs: 600,
        retention: Retention {
            daily: 7,
            ..Retention::default()
        },
        copies: 2,
        onsite: true,
        offsite: true,
        encryption: true,
        schedule_secs: 0,
        window: Some("01:00-05:00".into()),
        restore_test_secs: 7 * 24 * 3600,
        levels: vec!["file".into(), "vm-image".into()],
    }
}

fn report(kind: &str, ok: bool, repo: &str, duration_ms: u64) -> ReportInput {
    ReportInput {
        kind: kind.into(),
        ok,
        repository: repo.into(),
        snapshot: Some("0123456789abcdef".into()),
        duration_ms,
        encrypted: true,
        ..ReportInput::default()
    }
}

async fn open_kinds(w: &World) -> Vec<String> {
    let mut k: Vec<String> = w
        .svc
        .findings(&w.admin, "acme", true, &meta())
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.kind)
        .collect();
    k.sort();
    k
}

async fn compliance_findings_follow_the_clock(backend: Backend) {
    let w = world(backend).await;
    w.svc
        .set_policy(&w.admin, "acme", "default", spec(), None, &meta())
        .await
        .unwrap();
    // Within the RPO's grace period nothing is due.
    w.clock.advance_secs(23 * HOUR);
    assert_eq!(w.svc.sweep().await.unwrap().opened, 0);
    // A day without backups: RPO exceeded, both sites missing.
    w.clock.advance_secs(2 * HOUR);
    let s = w.svc.sweep().await.unwrap();
    assert_eq!(s.opened, 3);
    assert_eq!(
        open_kinds(&w).await,
        ["offsite-missing", "onsite-missing", "rpo-exceeded"]
    );
    // A second sweep opens nothing twice.
    assert_eq!(w.svc.sweep().await.unwrap().opened, 0);
    // The tenant reports an on-site backup, with secrets in the URL removed; then an off-site copy.
    let r = w
        .svc
        .report(
            &w.alice,
            "acme",
            report("backup", true, "/srv/backup/acme", 1_000),
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(r.site, "on-site");
    let c = w
        .svc
        .report(
            &w.alice,
            "acme",
            report("copy", true, "s3://KEY:SECRET@bucket/acme?x=1", 2_000),
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(c.site, "off-site");
    assert_eq!(c.repository, "s3://bucket/acme");
    let s = w.svc.sweep().await.unwrap();
    assert_eq!(s.resolved, 3);
    assert!(open_kinds(&w).await.is_empty());
    // A week later: the RPO is exceeded again and the restore test is overdue.
    w.clock.advance_secs(7 * 24 * HOUR);
    w.svc.sweep().await.unwrap();
    assert_eq!(
        open_kinds(&w).await,
        [
            "offsite-missing",
            "onsite-missing",
            "restore-test-overdue",
            "rpo-exceeded"
        ]
    );
    for (kind, repo) in [
        ("backup", "/srv/backup/acme"),
        ("backup", "s3://bucket/acme"),
    ] {
        w.svc
            .report(&w.alice, "acme", report(kind, true, repo, 1_000), &meta())
            .await
            .unwrap();
    }
    // A failed restore test keeps the overdue finding and adds a failure.
    w.svc
        .report(
            &w.alice,
            "acme",
            report("restore-test", false, "/srv/backup/acme", 5_000),
            &meta(),
        )
        .await
        .unwrap();
    w.svc.sweep().await.unwrap();
    assert_eq!(
        open_kinds(&w).await,
        ["restore-test-failed", "restore-test-overdue"]
    );
    // A passing but slow restore test: the RTO (600 s) is exceeded.
    w.clock.advance_secs(60);
    w.svc
        .report(
            &w.alice,
            "acme",
            report("restore-test", true, "/srv/backup/acme", 900_000),
            &meta(),
        )
        .await
        .unwrap();
    w.svc.sweep().await.unwrap();
    assert_eq!(open_kinds(&w).await, ["rto-exceeded"]);
    w.clock.advance_secs(60);
    w.svc
        .report(
            &w.alice,
            "acme",
            report("restore-test", true, "/srv/backup/acme", 30_000),
            &meta(),
        )
        .await
        .unwrap();
    w.svc.sweep().await.unwrap();
    assert!(open_kinds(&w).await.is_empty());
    let c = w.svc.compliance(&w.alice, "acme", &meta()).await.unwrap();
    assert_eq!(c.len(), 1);
    assert!(c[0].compliant);
    assert_eq!(c[0].achieved_rto_ms, Some(30_000));
    // Every finding opened and resolved is in the audit trail, with the reports.
    let store = w.iam.store();
    let acme = store
        .get_tenant(TenantCtx::new(w.admin.tenant.id), "acme")
        .await
        .unwrap();
    let count = |action: &'static str| {
        let store = store.clone();
        async move {
            store
                .list_audit(
                    TenantCtx::new(acme.id),
                    &AuditFilter {
                        action: Some(action.into()),
                        ..AuditFilter::default()
                    },
                    &Page {
                        after: None,
                        limit: 1000,
                    },
                )
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(count("backup.finding.open").await, 9);
    assert_eq!(count("backup.finding.resolve").await, 9);
    assert_eq!(count("backup.report.restore-test").await, 3);
    assert_eq!(count("backup.policy.set").await, 1);
    // History: every finding kept with its resolution time.
    let all = w
        .svc
        .findings(&w.alice, "acme", false, &meta())
        .await
        .unwrap();
    assert_eq!(all.len(), 9);
    assert!(all.iter().all(|f| f.resolved_at.is_some()));
}

async fn policies_are_validated_versioned_and_isolated(backend: Backend) {
    let w = world(backend).await;
    // Terms that cannot be met are refused.
    let bad = PolicySpec {
        schedule_secs: 48 * 3600,
        ..spec()
    };
    assert!(matches!(
        w.svc
            .set_policy(&w.admin, "acme", "default", bad, None, &meta())
            .await,
        Err(IamError::Invalid(_))
    ));
    // Tenants read their policy but only the provider sets it.
    assert!(matches!(
        w.svc
            .set_policy(&w.alice, "acme", "default", spec(), None, &meta())
            .await,
        Err(IamError::Forbidden(_))
    ));
    let p1 = w
        .svc
        .set_policy(&w.admin, "acme", "web-shop", spec(), Some(0), &meta())
        .await
        .unwrap();
    assert_eq!(p1.version, 1);
    // A stale version is refused; the right one makes version 2.
    let p2spec = PolicySpec {
        rpo_secs: 12 * 3600,
        window: None,
        ..spec()
    };
    assert!(matches!(
        w.svc
            .set_policy(
                &w.admin,
                "acme",
                "web-shop",
                p2spec.clone(),
                Some(0),
                &meta()
            )
            .await,
        Err(IamError::Conflict(_))
    ));
    let p2 = w
        .svc
        .set_policy(&w.admin, "acme", "web-shop", p2spec, Some(1), &meta())
        .await
        .unwrap();
    assert_eq!((p2.version, p2.spec.rpo_secs), (2, 12 * 3600));
    assert_eq!(p2.created_at, p1.created_at);
    let seen = w
        .svc
        .get_policy(&w.alice, "acme", "web-shop", &meta())
        .await
        .unwrap();
    assert_eq!(seen, p2);
    // Another tenant sees nothing of acme's, and cannot report into it.
    assert!(
        w.svc
            .get_policy(&w.bob, "acme", "web-shop", &meta())
            .await
            .is_err()
    );
    assert!(
        w.svc
            .report(&w.bob, "acme", report("backup", true, "/x", 1), &meta())
            .await
            .is_err()
    );
    assert!(
        w.svc
            .list_policies(&w.bob, "globex", &meta())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(w.svc.compliance_overview(&w.bob, &meta()).await.is_err());
    let all = w.svc.compliance_overview(&w.admin, &meta()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].tenant.as_str(), all[0].policy.as_str()),
        ("acme", "web-shop")
    );
    // Bad reports are refused whole.
    let mut r = report("snapshot", true, "/x", 1);
    assert!(matches!(
        w.svc.report(&w.alice, "acme", r.clone(), &meta()).await,
        Err(IamError::Invalid(_))
    ));
    r.kind = "backup".into();
    r.site = Some("moon".into());
    assert!(matches!(
        w.svc.report(&w.alice, "acme", r, &meta()).await,
        Err(IamError::Invalid(_))
    ));
    assert!(
        w.svc
            .reports(&w.alice, "acme", None, 10, &meta())
            .await
            .unwrap()
            .is_empty()
    );
    w.svc
        .delete_policy(&w.admin, "acme", "web-shop", &meta())
        .await
        .unwrap();
    assert!(matches!(
        w.svc
            .get_policy(&w.alice, "acme", "web-shop", &meta())
            .await,
        Err(IamError::NotFound(_))
    ));
}

fn job() -> JobSpec {
    JobSpec {
        agent: "DB1".into(),
        policy: "default".into(),
        paths: vec!["/srv/data".into()],
        vm_images: vec!["/var/lib/libvirt/images/db1.qcow2".into()],
        onsite: Some("/srv/backup".into()),
        offsite: Some("s3://bucket/db1".into()),
    }
}

fn step(name: &str, ok: bool) -> StepOutcome {
    StepOutcome {
        step: name.into(),
        ok,
        snapshot: ok.then(|| "0123456789abcdef".to_string()),
        duration_ms: 5,
        error: (!ok).then(|| "disk full".to_string()),
    }
}

/// The server decides when a job is due from the policy's schedule and window (injected clock);
/// a lease keeps a second agent out until it expires; a stale lease cannot end a run; a job
/// nobody runs past its grace opens a `job-overdue` finding, resolved once it runs.
async fn jobs_are_due_leased_and_overdue_by_the_clock(backend: Backend) {
    let w = world(backend).await;
    w.svc
        .set_policy(&w.admin, "acme", "default", spec(), None, &meta())
        .await
        .unwrap();
    // Tenants do not assign jobs; jobs need a policy and the sites it requires.
    assert!(matches!(
        w.svc
            .set_job(&w.alice, "acme", "db1", job(), None, &meta())
            .await,
        Err(IamError::Forbidden(_))
    ));
    let no_offsite = JobSpec {
        offsite: None,
        ..job()
    };
    assert!(matches!(
        w.svc
            .set_job(&w.admin, "acme", "db1", no_offsite, None, &meta())
            .await,
        Err(IamError::Invalid(_))
    ));
    let j = w
        .svc
        .set_job(&w.admin, "acme", "db1", job(), None, &meta())
        .await
        .unwrap();
    assert_eq!(j.spec.agent, "db1");
    // START is 08:00 UTC: outside the 01:00-05:00 window nothing is due until 01:00.
    let d = j.due.clone().unwrap();
    assert!(d.steps.is_empty());
    assert_eq!(d.next_due_at, Timestamp(START + 17 * HOUR * 1000));
    assert!(matches!(
        w.svc
            .claim_job(&w.alice, "acme", "db1", "db1", 600, &meta())
            .await,
        Err(IamError::Conflict(_))
    ));
    w.clock.advance_secs(17 * HOUR);
    let polled = w
        .svc
        .agent_jobs(&w.alice, "acme", "db1", &meta())
        .await
        .unwrap();
    assert_eq!(
        polled[0].due.as_ref().unwrap().steps,
        ["backup", "copy", "prune", "restore-test"]
    );
    assert!(
        w.svc
            .agent_jobs(&w.alice, "acme", "web9", &meta())
            .await
            .unwrap()
            .is_empty()
    );
    // Other tenants' agents neither see nor claim it.
    assert!(
        w.svc
            .agent_jobs(&w.bob, "acme", "db1", &meta())
            .await
            .is_err()
    );
    assert!(
        w.svc
            .claim_job(&w.bob, "acme", "db1", "db1", 600, &meta())
            .await
            .is_err()
    );
    // One claim at a time; another agent name is refused.
    let first = w
        .svc
        .claim_job(&w.alice, "acme", "db1", "db1", 600, &meta())
        .await
        .unwrap();
    assert_eq!(first.steps, ["backup", "copy", "prune", "restore-test"]);
    assert_eq!(first.policy.retention.daily, 7);
    assert!(matches!(
        w.svc
            .claim_job(&w.alice, "acme", "db1", "db1", 600, &meta())
            .await,
        Err(IamError::Conflict(_))
    ));
    assert!(matches!(
        w.svc
            .claim_job(&w.alice, "acme", "db1", "db2", 600, &meta())
            .await,
        Err(IamError::Conflict(_))
    ));
    // The lease expires: another run of the agent may claim it, and the stale lease is dead.
    w.clock.advance_secs(601);
    let second = w
        .svc
        .claim_job(&w.alice, "acme", "db1", "db1", 600, &meta())
        .await
        .unwrap();
    assert!(matches!(
        w.svc
            .finish_job(
                &w.alice,
                "acme",
                "db1",
                &first.lease,
                vec![step("backup", true)],
                &meta()
            )
            .await,
        Err(IamError::Conflict(_))
    ));
    // A held lease is extended between steps; a stale one is not.
    assert!(matches!(
        w.svc
            .renew_job(&w.alice, "acme", "db1", &first.lease, 600, &meta())
            .await,
        Err(IamError::Conflict(_))
    ));
    w.clock.advance_secs(500);
    let until = w
        .svc
        .renew_job(&w.alice, "acme", "db1", &second.lease, 600, &meta())
        .await
        .unwrap();
    assert_eq!(until.0, w.clock.now().0 + 600_000);
    assert!(until.0 > second.lease_until.0);
    w.clock.advance_secs(500);
    assert!(matches!(
        w.svc
            .claim_job(&w.alice, "acme", "db1", "db1", 600, &meta())
            .await,
        Err(IamError::Conflict(_))
    ));
    assert!(matches!(
        w.svc
            .finish_job(
                &w.alice,
                "acme",
                "db1",
                &second.lease,
                vec![step("reboot", true)],
                &meta()
            )
            .await,
        Err(IamError::Invalid(_))
    ));
    let done = w
        .svc
        .finish_job(
            &w.alice,
            "acme",
            "db1",
            &second.lease,
            ["backup", "copy", "prune", "restore-test"]
                .iter()
                .map(|s| step(s, true))
                .collect(),
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(done.state.runs, 1);
    assert_eq!(
        done.state.last_snapshot.as_deref(),
        Some("0123456789abcdef")
    );
    assert!(done.lease_until.is_none());
    let next = done.due.clone().unwrap();
    assert!(next.steps.is_empty());
    assert_eq!(next.next_backup_at.0, w.clock.now().0 + 24 * HOUR * 1000);
    // The agent falls silent: a day later plus the grace (an hour), the job is overdue.
    w.clock.advance_secs(24 * HOUR + 30 * 60);
    w.svc.sweep().await.unwrap();
    assert!(!open_kinds(&w).await.contains(&"job-overdue".to_string()));
    w.clock.advance_secs(31 * 60);
    w.svc.sweep().await.unwrap();
    assert!(open_kinds(&w).await.contains(&"job-overdue".to_string()));
    let c = w.svc.compliance(&w.alice, "acme", &meta()).await.unwrap();
    let f = c[0]
        .findings
        .iter()
        .find(|f| f.kind == "job-overdue")
        .unwrap();
    assert!(f.detail.contains("db1"), "{}", f.detail);
    // It runs again: the finding is resolved (and kept as evidence).
    let third = w
        .svc
        .claim_job(&w.alice, "acme", "db1", "db1", 600, &meta())
        .await
        .unwrap();
    assert_eq!(third.steps, ["backup", "copy", "prune"]);
    w.svc
        .finish_job(
            &w.alice,
            "acme",
            "db1",
            &third.lease,
            vec![step("backup", false)],
            &meta(),
        )
        .await
        .unwrap();
    w.svc.sweep().await.unwrap();
    assert!(!open_kinds(&w).await.contains(&"job-overdue".to_string()));
    let all = w
        .svc
        .findings(&w.alice, "acme", false, &meta())
        .await
        .unwrap();
    assert!(
        all.iter()
            .any(|f| f.kind == "job-overdue" && f.resolved_at.is_some())
    );
    // A failed backup is retried 15 minutes later, not at once.
    let again = w
        .svc
        .get_job(&w.alice, "acme", "db1", &meta())
        .await
        .unwrap();
    assert_eq!(again.state.last_run_ok, Some(false));
    assert_eq!(
        again.due.unwrap().next_backup_at.0,
        w.clock.now().0 + 15 * 60 * 1000
    );
    // Every tenant's jobs for the provider; removal is audited and refused to tenants.
    assert_eq!(
        w.svc.jobs_overview(&w.admin, &meta()).await.unwrap().len(),
        1
    );
    assert!(
        w.svc
            .delete_job(&w.alice, "acme", "db1", &meta())
            .await
            .is_err()
    );
    w.svc
        .delete_job(&w.admin, "acme", "db1", &meta())
        .await
        .unwrap();
    assert!(
        w.svc
            .list_jobs(&w.alice, "acme", &meta())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Findings raise alerts through the monitor (`raise_internal`): one alert per finding however
/// many sweeps see it, shown in the tenant's and the provider's alert lists, audited; resolved
/// findings stay as evidence and their alerts stay listed; other tenants see none of them.
async fn findings_raise_alerts_once_through_the_monitor(backend: Backend) {
    let w = world(backend).await;
    let monitor = Arc::new(parapet_monitor::Monitor::new(
        w.iam.clone(),
        parapet_monitor::MonitorConfig::default(),
    ));
    let svc = BackupService::new(w.iam.clone(), None).with_monitor(monitor.clone());
    svc.set_policy(&w.admin, "acme", "default", spec(), None, &meta())
        .await
        .unwrap();
    w.clock.advance_secs(25 * HOUR);
    let s = svc.sweep().await.unwrap();
    assert_eq!((s.opened, s.alerted), (3, 3));
    // Later sweeps raise nothing twice.
    let s = svc.sweep().await.unwrap();
    assert_eq!((s.opened, s.alerted), (0, 0));
    let alerts = |who: Principal, tenant: &'static str| {
        let monitor = monitor.clone();
        async move {
            let (_, list) = monitor
                .list_alerts(
                    &who,
                    tenant,
                    &parapet_store::AlertFilter::default(),
                    &Page {
                        after: None,
                        limit: 100,
                    },
                    &meta(),
                )
                .await
                .unwrap();
            let mut rules: Vec<String> = list.iter().map(|a| a.rule_id.clone()).collect();
            rules.sort();
            (rules, list)
        }
    };
    let (rules, list) = alerts(w.alice.clone(), "acme").await;
    assert_eq!(
        rules,
        [
            "backup-offsite-missing",
            "backup-onsite-missing",
            "backup-rpo-exceeded"
        ]
    );
    assert!(
        list.iter()
            .all(|a| a.severity == "high" && a.group_key == "default")
    );
    assert!(list[0].title.contains("Backup policy default of acme"));
    let (provider_rules, _) = alerts(w.admin.clone(), "acme").await;
    assert_eq!(provider_rules.len(), 3);
    let (bob_rules, _) = alerts(w.bob.clone(), "globex").await;
    assert!(bob_rules.is_empty());
    // The raise is audited.
    let t = w
        .iam
        .store()
        .get_tenant(TenantCtx::new(w.admin.tenant.id), "acme")
        .await
        .unwrap();
    let recs = w
        .iam
        .store()
        .list_audit(
            TenantCtx::new(t.id),
            &AuditFilter {
                action: Some("backup.finding.alert".into()),
                ..AuditFilter::default()
            },
            &Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(recs.len(), 3);
    // Met again: the findings are resolved and kept; a later finding raises its own alert.
    for (kind, repo) in [("backup", "/srv/backup/acme"), ("copy", "s3://bucket/acme")] {
        svc.report(&w.alice, "acme", report(kind, true, repo, 1_000), &meta())
            .await
            .unwrap();
    }
    let s = svc.sweep().await.unwrap();
    assert_eq!((s.resolved, s.alerted), (3, 0));
    let all = svc
        .findings(&w.alice, "acme", false, &meta())
        .await
        .unwrap();
    assert_eq!(all.iter().filter(|f| f.resolved_at.is_some()).count(), 3);
    svc.report(
        &w.alice,
        "acme",
        report("restore-test", false, "/srv/backup/acme", 1_000),
        &meta(),
    )
    .await
    .unwrap();
    let s = svc.sweep().await.unwrap();
    assert_eq!(s.alerted, 1);
    let (rules, _) = alerts(w.alice.clone(), "acme").await;
    assert!(
        rules.contains(&"backup-restore-test-failed".to_string()),
        "{rules:?}"
    );
    assert_eq!(rules.len(), 4);
}
