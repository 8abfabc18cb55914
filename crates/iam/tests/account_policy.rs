//! Account policies over a real store with an injected clock (X.1642 8.1.1(3)): lockout with
//! growing waits then permanent, concurrent wrong passwords never checking more guesses than the
//! threshold, throttling per name and per source address, password rules, history and age,
//! dormant accounts disabled then deleted. Time moves only by the `ManualClock`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use parapet_iam::{IamConfig, IamError, IamService, PasswordCost, Principal, RequestMeta};
use parapet_store::{AccountPolicy, AccountStore, AuditFilter, AuditStore, IamStore, Page};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Clock, Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    lockout_waits_grow_then_lock_until_unlocked,
    concurrent_wrong_passwords_never_exceed_the_threshold,
    throttling_per_name_and_per_address,
    password_rules_history_and_maximum_age,
    dormant_accounts_are_disabled_then_deleted,
    account_report_flags_dormant_over_privileged_orphaned_and_locked,
);

const ROOT: &str = "root-password-for-tests";
const PW: &str = "Wonderland-long-password-42";
const DAY: i64 = 86_400;

fn config(per_address: u32) -> IamConfig {
    IamConfig {
        password_cost: PasswordCost {
            memory_kib: 256,
            iterations: 1,
            lanes: 1,
        },
        session_ttl_secs: 3600,
        session_idle_secs: 7200,
        account_policy: AccountPolicy {
            throttle_per_address: per_address,
            ..parapet_iam::policy::default_policy()
        },
        // Provider staff without a second factor (the default requires one).
        provider_mfa_required: false,
        ..IamConfig::default()
    }
}

struct World {
    clock: Arc<ManualClock>,
    svc: Arc<IamService>,
    store: Arc<parapet_store_sql::SqlStore>,
    admin: Principal,
}

async fn world(backend: Backend, per_address: u32) -> World {
    let (store, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let env = Env {
        clock: clock.clone(),
        entropy: Arc::new(OsEntropy),
    };
    let svc = Arc::new(IamService::new(store.clone(), env, config(per_address)).unwrap());
    svc.bootstrap(Some(ROOT.into())).await.unwrap();
    let admin = svc.login("admin", ROOT, &meta()).await.unwrap().principal;
    svc.create_tenant(&admin, "acme", &meta()).await.unwrap();
    svc.create_user(&admin, "acme", "alice", PW, Role::TenantAdmin, &meta())
        .await
        .unwrap();
    World {
        clock,
        svc,
        store,
        admin,
    }
}

fn meta() -> RequestMeta {
    meta_from("192.0.2.7")
}

fn meta_from(ip: &str) -> RequestMeta {
    RequestMeta {
        source_ip: Some(ip.into()),
        user_agent: Some("t".into()),
    }
}

impl World {
    async fn set_policy(&self, f: impl FnOnce(&mut AccountPolicy)) {
        let (_, eff) = self
            .svc
            .get_policy(&self.admin, "acme", &meta())
            .await
            .unwrap();
        let mut p = eff.policy;
        f(&mut p);
        self.svc
            .set_policy(&self.admin, "acme", &p, &meta())
            .await
            .unwrap();
    }

    async fn login(&self, login: &str, pw: &str) -> Result<(), IamError> {
        self.svc.login(login, pw, &meta()).await.map(|_| ())
    }

    async fn acme_records(&self, action: &str) -> Vec<parapet_store::AuditRecord> {
        let t = self
            .store
            .get_tenant(TenantCtx::new(self.admin.tenant.id), "acme")
            .await
            .unwrap();
        self.store
            .list_audit(
                TenantCtx::new(t.id),
                &AuditFilter {
                    action: Some(action.into()),
                    ..Default::default()
                },
                &Page {
                    after: None,
                    limit: 1000,
                },
            )
            .await
            .unwrap()
    }

    async fn alice_state(&self) -> parapet_store::AccountState {
        let t = self
            .store
            .get_tenant(TenantCtx::new(self.admin.tenant.id), "acme")
            .await
            .unwrap();
        let u = self
            .store
            .get_user(TenantCtx::new(t.id), "alice")
            .await
            .unwrap();
        self.store
            .get_account_state(TenantCtx::new(t.id), u.id)
            .await
            .unwrap()
    }
}

fn unauthenticated(r: Result<(), IamError>) -> bool {
    matches!(r, Err(IamError::Unauthenticated))
}

async fn lockout_waits_grow_then_lock_until_unlocked(backend: Backend) {
    let w = world(backend, 1000).await;
    w.set_policy(|p| {
        p.lockout_threshold = 3;
        p.lockout_base_secs = 60;
        p.lockout_multiplier = 2;
        p.permanent_after = 3;
        p.throttle_per_account = 1000;
    })
    .await;
    // First lockout: 60 s. The right password is refused meanwhile, exactly like a wrong one.
    for _ in 0..3 {
        assert!(unauthenticated(
            w.login("alice@acme", "wrong-password-1").await
        ));
    }
    let s = w.alice_state().await;
    assert_eq!(s.locked_until, Some(w.clock.now_plus(60)));
    assert_eq!(s.lockouts, 1);
    assert!(unauthenticated(w.login("alice@acme", PW).await));
    w.clock.advance_secs(61);
    // Second lockout: the wait doubles.
    for _ in 0..3 {
        assert!(unauthenticated(
            w.login("alice@acme", "wrong-password-1").await
        ));
    }
    assert_eq!(
        w.alice_state().await.locked_until,
        Some(w.clock.now_plus(120))
    );
    w.clock.advance_secs(61);
    assert!(unauthenticated(w.login("alice@acme", PW).await));
    w.clock.advance_secs(60);
    // Third lockout: until an administrator unlocks.
    for _ in 0..3 {
        assert!(unauthenticated(
            w.login("alice@acme", "wrong-password-1").await
        ));
    }
    let s = w.alice_state().await;
    assert!(s.locked_permanently_at.is_some());
    w.clock.advance_secs(30 * DAY);
    assert!(unauthenticated(w.login("alice@acme", PW).await));
    // Locked refusals are recorded as such; the caller could not tell them apart.
    let recs = w.acme_records("auth.login").await;
    let locked = recs
        .iter()
        .filter(|r| r.event.details["reason"] == "account locked")
        .count();
    assert_eq!(locked, 3, "three attempts while locked");
    let locking = recs
        .iter()
        .filter(|r| r.event.details["reason"] == "wrong password; account locked")
        .count();
    assert_eq!(locking, 3);
    // The provider's security administrator unlocks.
    let state = w
        .svc
        .unlock_account(&w.admin, "acme", "alice", &meta())
        .await
        .unwrap();
    assert!(!state.is_locked(w.clock.now()));
    w.login("alice@acme", PW).await.unwrap();
    assert_eq!(w.acme_records("user.unlock").await.len(), 1);
}

async fn concurrent_wrong_passwords_never_exceed_the_threshold(backend: Backend) {
    let w = world(backend, 100_000).await;
    w.set_policy(|p| {
        p.lockout_threshold = 5;
        p.lockout_base_secs = 3600;
        p.throttle_per_account = 1000;
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let svc = w.svc.clone();
        tasks.push(tokio::spawn(async move {
            svc.login("alice@acme", &format!("wrong-password-{i}"), &meta())
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        assert!(unauthenticated(t.await.unwrap()));
    }
    let recs = w.acme_records("auth.login").await;
    let checked = recs
        .iter()
        .filter(|r| {
            r.event.details["reason"]
                .as_str()
                .is_some_and(|s| s.starts_with("wrong password"))
        })
        .count();
    let refused = recs
        .iter()
        .filter(|r| r.event.details["reason"] == "account locked")
        .count();
    assert_eq!(checked, 5, "exactly the threshold of guesses was checked");
    assert_eq!(refused, 35);
    assert!(w.alice_state().await.is_locked(w.clock.now()));
    assert!(unauthenticated(w.login("alice@acme", PW).await));
}

async fn throttling_per_name_and_per_address(backend: Backend) {
    let w = world(backend, 8).await;
    w.set_policy(|p| {
        p.throttle_per_account = 3;
        p.lockout_threshold = 20;
    })
    .await;
    // Per name: existing and unknown names alike.
    for login in ["alice@acme", "nobody@acme"] {
        for _ in 0..3 {
            let r = w
                .svc
                .login(login, "wrong-password-1", &meta_from("198.51.100.1"))
                .await;
            assert!(unauthenticated(r.map(|_| ())));
        }
        let r = w.svc.login(login, PW, &meta_from("198.51.100.2")).await;
        assert!(
            matches!(r, Err(IamError::Throttled(s)) if (1..=60).contains(&s)),
            "{r:?}"
        );
    }
    // A new minute opens a new window.
    w.clock.advance_secs(60);
    w.svc
        .login("alice@acme", PW, &meta_from("198.51.100.3"))
        .await
        .unwrap();
    // Per source address (the provider's limit, 8 a minute) across names.
    w.clock.advance_secs(60);
    for i in 0..8 {
        let r = w
            .svc
            .login(
                &format!("u{i}@acme"),
                "wrong-password-1",
                &meta_from("203.0.113.9"),
            )
            .await;
        assert!(unauthenticated(r.map(|_| ())));
    }
    let r = w
        .svc
        .login("alice@acme", PW, &meta_from("203.0.113.9"))
        .await;
    assert!(matches!(r, Err(IamError::Throttled(_))));
    w.svc
        .login("alice@acme", PW, &meta_from("203.0.113.10"))
        .await
        .unwrap();
    let denied = w.acme_records("auth.login").await;
    assert!(
        denied
            .iter()
            .any(|r| r.event.details["reason"] == "throttled (address)")
    );
    assert!(
        denied
            .iter()
            .any(|r| r.event.details["reason"] == "throttled (name)")
    );
}

async fn password_rules_history_and_maximum_age(backend: Backend) {
    let w = world(backend, 1000).await;
    w.set_policy(|p| {
        p.password_min_length = 14;
        p.password_min_classes = 3;
        p.password_history = 3;
        p.password_max_age_days = 30;
        p.throttle_per_account = 1000;
    })
    .await;
    let create = |name: &'static str, pw: &'static str| {
        let svc = w.svc.clone();
        let admin = w.admin.clone();
        async move {
            svc.create_user(&admin, "acme", name, pw, Role::TenantMember, &meta())
                .await
                .map(|_| ())
        }
    };
    for (pw, why) in [
        ("Short-pw-1", "at least 14"),
        ("all-lower-case-letters", "at least 3 of"),
        ("Dave-is-my-name-1234", "user name"),
        ("Password1234567!", "too common"),
    ] {
        match create("dave", pw).await {
            Err(IamError::Invalid(m)) => assert!(m.contains(why), "{pw}: {m}"),
            other => panic!("{pw} accepted: {other:?}"),
        }
    }
    create("dave", "Bobs-first-password-1").await.unwrap();
    let login = "dave@acme";
    let change = |cur: &'static str, new: &'static str| {
        let svc = w.svc.clone();
        async move { svc.change_password(login, cur, new, &meta()).await }
    };
    // The current password and the previous ones (history of 3) are refused.
    let p1 = "Bobs-first-password-1";
    let p2 = "Bobs-second-password-2";
    let p3 = "Bobs-third-password-3";
    let p4 = "Bobs-fourth-password-4";
    assert!(matches!(change(p1, p1).await, Err(IamError::Invalid(m)) if m.contains("last 3")));
    change(p1, p2).await.unwrap();
    change(p2, p3).await.unwrap();
    assert!(matches!(change(p3, p1).await, Err(IamError::Invalid(_))));
    change(p3, p4).await.unwrap();
    // p1 is now the 4th password back: allowed again.
    change(p4, p1).await.unwrap();
    // A wrong current password fails like a wrong log-in.
    assert!(matches!(
        change("not-the-password-9", p2).await,
        Err(IamError::Unauthenticated)
    ));
    w.login(login, p1).await.unwrap();
    // Maximum age: 30 days after the last change the password must be changed.
    w.clock.advance_secs(31 * DAY);
    assert!(matches!(
        w.login(login, p1).await,
        Err(IamError::PasswordExpired)
    ));
    // A wrong password still looks like a wrong password.
    assert!(unauthenticated(w.login(login, "Wrong-password-99").await));
    change(p1, "Bobs-fifth-password-5").await.unwrap();
    w.login(login, "Bobs-fifth-password-5").await.unwrap();
    let changes = w.acme_records("user.password.change").await;
    let ok = changes
        .iter()
        .filter(|r| r.event.outcome == parapet_store::AuditOutcome::Success)
        .count();
    assert_eq!(ok, 5);
    assert_eq!(
        changes.len(),
        6,
        "five changes and one wrong current password"
    );
}

async fn dormant_accounts_are_disabled_then_deleted(backend: Backend) {
    let w = world(backend, 1000).await;
    w.set_policy(|p| {
        p.dormant_days = 90;
        p.dormant_delete_days = 30;
    })
    .await;
    for name in ["bob", "carol"] {
        w.svc
            .create_user(
                &w.admin,
                "acme",
                name,
                "Member-password-123",
                Role::TenantMember,
                &meta(),
            )
            .await
            .unwrap();
    }
    w.login("alice@acme", PW).await.unwrap();
    w.clock.advance_secs(89 * DAY);
    let r = w.svc.sweep_dormant().await.unwrap();
    assert!(r.disabled.is_empty() && r.deleted.is_empty(), "{r:?}");
    w.login("alice@acme", PW).await.unwrap(); // day 89: alice is active again
    w.clock.advance_secs(2 * DAY);
    let r = w.svc.sweep_dormant().await.unwrap();
    let mut disabled = r.disabled.clone();
    disabled.sort();
    // The provider's only security administrator is never disabled by the sweep.
    assert_eq!(disabled, vec!["bob@acme", "carol@acme"]);
    assert!(unauthenticated(
        w.login("bob@acme", "Member-password-123").await
    ));
    // Re-enabling counts as activity: carol is not disabled again at the next sweep.
    w.svc
        .set_user_status(
            &w.admin,
            "acme",
            "carol",
            parapet_store::UserStatus::Active,
            &meta(),
        )
        .await
        .unwrap();
    assert!(w.svc.sweep_dormant().await.unwrap().disabled.is_empty());
    w.login("carol@acme", "Member-password-123").await.unwrap();
    // 31 days after being disabled, bob is deleted; the trail keeps the records.
    w.clock.advance_secs(31 * DAY);
    let r = w.svc.sweep_dormant().await.unwrap();
    assert_eq!(r.deleted, vec!["bob@acme"]);
    let t = w
        .store
        .get_tenant(TenantCtx::new(w.admin.tenant.id), "acme")
        .await
        .unwrap();
    assert!(matches!(
        w.store.get_user(TenantCtx::new(t.id), "bob").await,
        Err(parapet_store::StoreError::NotFound)
    ));
    let deleted = w.acme_records("user.delete").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].event.target, "user:acme/bob");
    assert!(
        w.acme_records("user.disable")
            .await
            .iter()
            .any(|r| r.event.details["reason"] == "dormant")
    );
    w.svc.login("admin", ROOT, &meta()).await.unwrap();
}

trait NowPlus {
    fn now_plus(&self, secs: i64) -> Timestamp;
}

impl NowPlus for ManualClock {
    fn now_plus(&self, secs: i64) -> Timestamp {
        self.now().plus_secs(secs)
    }
}

async fn account_report_flags_dormant_over_privileged_orphaned_and_locked(backend: Backend) {
    let w = world(backend, 1000).await;
    for (name, role) in [
        ("bob", Role::TenantMember),
        ("carol", Role::TenantMember),
        ("dave", Role::TenantAdmin),
    ] {
        w.svc
            .create_user(&w.admin, "acme", name, PW, role, &meta())
            .await
            .unwrap();
    }
    let alice = w
        .svc
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;
    w.set_policy(|p| p.password_history = 3).await; // as the provider admin
    w.svc
        .set_policy(
            &alice,
            "acme",
            &w.svc
                .get_policy(&alice, "acme", &meta())
                .await
                .unwrap()
                .1
                .policy,
            &meta(),
        )
        .await
        .unwrap(); // alice makes a change
    w.login("bob@acme", PW).await.unwrap();
    w.login("dave@acme", PW).await.unwrap();
    for _ in 0..5 {
        assert!(unauthenticated(
            w.login("bob@acme", "Wrong-password-1").await
        ));
    }
    let names = |l: &[parapet_iam::report::FlaggedAccount]| {
        let mut v: Vec<String> = l.iter().map(|f| f.login.clone()).collect();
        v.sort();
        v
    };
    let (_, r) = w
        .svc
        .account_report(&alice, "acme", 30, &meta())
        .await
        .unwrap();
    assert_eq!(names(&r.locked), vec!["bob@acme"]);
    assert_eq!(names(&r.over_privileged), vec!["dave@acme"]);
    assert_eq!(names(&r.orphaned), vec!["carol@acme"]);
    assert!(r.dormant.is_empty());
    w.clock.advance_secs(40 * DAY);
    w.svc
        .set_user_status(
            &w.admin,
            "acme",
            "carol",
            parapet_store::UserStatus::Disabled,
            &meta(),
        )
        .await
        .unwrap();
    let (_, r) = w
        .svc
        .account_report(&w.admin, "acme", 30, &meta())
        .await
        .unwrap();
    assert_eq!(
        names(&r.dormant),
        vec!["alice@acme", "bob@acme", "dave@acme"]
    );
    assert_eq!(names(&r.over_privileged), vec!["alice@acme", "dave@acme"]);
    assert_eq!(names(&r.orphaned), vec!["carol@acme"]);
    assert!(r.orphaned[0].detail.contains("disabled"));
    // Members may not read it; other tenants do not see it.
    let bob = {
        w.svc
            .unlock_account(&w.admin, "acme", "bob", &meta())
            .await
            .unwrap();
        w.svc
            .login("bob@acme", PW, &meta())
            .await
            .unwrap()
            .principal
    };
    assert!(matches!(
        w.svc.account_report(&bob, "acme", 30, &meta()).await,
        Err(IamError::Forbidden(_))
    ));
    assert!(matches!(
        w.svc.account_report(&alice, "acme", 0, &meta()).await,
        Err(IamError::Invalid(_))
    ));
}
