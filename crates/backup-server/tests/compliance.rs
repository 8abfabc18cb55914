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

use parapet_backup_server::{BackupService, PolicySpec, ReportInput, Retention};
use parapet_iam::{IamConfig, IamError, IamService, PasswordCost, Principal, RequestMeta};
use parapet_store::{AuditFilter, Page};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    compliance_findings_follow_the_clock,
    policies_are_validated_versioned_and_isolated
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
