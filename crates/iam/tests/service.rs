//! The identity service over a real store, with an injected clock: expiry and revocation are
//! tested by moving the clock, never by sleeping.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use parapet_iam::{IamConfig, IamError, IamService, PasswordCost, RequestMeta};
use parapet_store::{AuditFilter, AuditStore, IamStore, Page, UserStatus};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    sessions_expire_with_the_clock,
    revocation_reaches_other_replicas_within_the_cache_bound,
    unknown_users_fail_like_wrong_passwords,
    api_tokens_expire_and_never_exceed_their_creator,
    sessions_end_after_their_idle_time,
    administrators_list_and_revoke_sessions,
);

const PW: &str = "a-long-enough-password-42";

fn config() -> IamConfig {
    IamConfig {
        password_cost: PasswordCost {
            memory_kib: 256,
            iterations: 1,
            lanes: 1,
        },
        session_ttl_secs: 3600,
        // Longer than the lifetime: only `sessions_end_after_their_idle_time` tests idling.
        session_idle_secs: 7200,
        // Provider staff without a second factor (the default requires one).
        provider_mfa_required: false,
        ..IamConfig::default()
    }
}

struct World {
    clock: Arc<ManualClock>,
    svc: IamService,
    store: Arc<parapet_store_sql::SqlStore>,
}

async fn world(backend: Backend) -> World {
    let (store, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let env = Env {
        clock: clock.clone(),
        entropy: Arc::new(OsEntropy),
    };
    let svc = IamService::new(store.clone(), env, config()).unwrap();
    let boot = svc
        .bootstrap(Some("root-password-for-tests".into()))
        .await
        .unwrap();
    assert!(boot.created);
    World { clock, svc, store }
}

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.7".into()),
        user_agent: Some("t".into()),
    }
}

async fn sessions_expire_with_the_clock(backend: Backend) {
    let w = world(backend).await;
    let s = w
        .svc
        .login("admin", "root-password-for-tests", &meta())
        .await
        .unwrap();
    assert_eq!(s.expires_at, w.clock.now_plus(3600));
    assert!(w.svc.authenticate(&s.secret).await.is_ok());
    w.clock.advance_secs(3599);
    assert!(w.svc.authenticate(&s.secret).await.is_ok());
    w.clock.advance_secs(2);
    assert!(matches!(
        w.svc.authenticate(&s.secret).await,
        Err(IamError::Unauthenticated)
    ));
}

async fn revocation_reaches_other_replicas_within_the_cache_bound(backend: Backend) {
    let w = world(backend).await;
    // A second replica on the same database and clock.
    let env = Env {
        clock: w.clock.clone(),
        entropy: Arc::new(OsEntropy),
    };
    let other = IamService::new(w.store.clone(), env, config()).unwrap();
    let admin = w
        .svc
        .login("admin", "root-password-for-tests", &meta())
        .await
        .unwrap()
        .principal;
    let t = w.svc.create_tenant(&admin, "acme", &meta()).await.unwrap();
    w.svc
        .create_user(&admin, "acme", "alice", PW, Role::TenantAdmin, &meta())
        .await
        .unwrap();
    let alice = w.svc.login("alice@acme", PW, &meta()).await.unwrap();
    assert!(other.authenticate(&alice.secret).await.is_ok()); // now cached on the other replica
    w.svc
        .set_user_status(&admin, "acme", "alice", UserStatus::Disabled, &meta())
        .await
        .unwrap();
    // The replica that disabled her forgets at once.
    assert!(w.svc.authenticate(&alice.secret).await.is_err());
    // The other replica may serve its cached answer for at most the cache bound (1 s).
    w.clock.advance_secs(1);
    assert!(matches!(
        other.authenticate(&alice.secret).await,
        Err(IamError::Unauthenticated)
    ));
    let _ = t;
}

async fn unknown_users_fail_like_wrong_passwords(backend: Backend) {
    let w = world(backend).await;
    for (login, pw) in [
        ("admin", "wrong-password-xyz"),
        ("ghost", PW),
        ("x@no-such-tenant", PW),
    ] {
        assert!(matches!(
            w.svc.login(login, pw, &meta()).await,
            Err(IamError::Unauthenticated)
        ));
    }
    let p = w.store.provider_tenant().await.unwrap().unwrap();
    let recs = w
        .store
        .list_audit(
            TenantCtx::new(p.id),
            &AuditFilter {
                action: Some("auth.login".into()),
                ..Default::default()
            },
            &Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(recs.len(), 3);
    assert!(
        recs.iter()
            .all(|r| r.event.outcome == parapet_store::AuditOutcome::Failure)
    );
    assert!(
        recs.iter()
            .all(|r| r.event.source_ip.as_deref() == Some("192.0.2.7"))
    );
    // Only the attempt on an unknown tenant belongs to no tenant; the wrong password and the
    // unknown user of an existing tenant (the provider) are in that tenant's trail.
    let orphans: Vec<&str> = recs
        .iter()
        .filter(|r| r.event.tenant.is_none())
        .map(|r| r.event.target.as_str())
        .collect();
    assert_eq!(orphans, vec!["login:x@no-such-tenant"]);
    assert!(
        recs.iter()
            .any(|r| r.event.target == "login:ghost" && r.event.tenant == Some(p.id))
    );
}

async fn api_tokens_expire_and_never_exceed_their_creator(backend: Backend) {
    let w = world(backend).await;
    let admin = w
        .svc
        .login("admin", "root-password-for-tests", &meta())
        .await
        .unwrap()
        .principal;
    let t = w
        .svc
        .create_token(&admin, "ci", &["read".into()], Some(120), &meta())
        .await
        .unwrap();
    let p = w.svc.authenticate(&t.secret).await.unwrap();
    assert!(p.has_scope("read") && !p.has_scope("write"));
    assert!(matches!(
        w.svc
            .create_token(&p, "more", &["write".into()], None, &meta())
            .await,
        Err(IamError::Forbidden(_))
    ));
    w.clock.advance_secs(121);
    assert!(w.svc.authenticate(&t.secret).await.is_err());
}

trait NowPlus {
    fn now_plus(&self, secs: i64) -> Timestamp;
}

impl NowPlus for ManualClock {
    fn now_plus(&self, secs: i64) -> Timestamp {
        parapet_types::Clock::now(self).plus_secs(secs)
    }
}

/// A session unused for longer than the idle time ends, however long its lifetime; each use
/// (recorded to the minute) restarts the idle time. API tokens do not idle out.
async fn sessions_end_after_their_idle_time(backend: Backend) {
    let mut w = world(backend).await;
    let env = Env {
        clock: w.clock.clone(),
        entropy: Arc::new(OsEntropy),
    };
    w.svc = IamService::new(
        w.store.clone(),
        env,
        IamConfig {
            session_idle_secs: 1800,
            session_ttl_secs: 12 * 3600,
            ..config()
        },
    )
    .unwrap();
    let s = w
        .svc
        .login("admin", "root-password-for-tests", &meta())
        .await
        .unwrap();
    let token = w
        .svc
        .create_token(&s.principal, "ci", &["read".into()], None, &meta())
        .await
        .unwrap();
    // Used every 29 minutes: alive well past one idle time.
    for _ in 0..3 {
        w.clock.advance_secs(29 * 60);
        assert!(w.svc.authenticate(&s.secret).await.is_ok());
    }
    // 31 minutes without use: ended, while the API token of the same user still works.
    w.clock.advance_secs(31 * 60);
    assert!(matches!(
        w.svc.authenticate(&s.secret).await,
        Err(IamError::Unauthenticated)
    ));
    assert!(w.svc.authenticate(&token.secret).await.is_ok());
    // The listing shows where the session was opened and when it was last used.
    let own = w.svc.own_sessions(&token.principal).await.unwrap();
    let listed = own
        .iter()
        .find(|x| x.credential.id == token.id)
        .expect("the token is listed");
    assert_eq!(
        listed.last_used_at,
        parapet_types::Clock::now(w.clock.as_ref())
    );
}

/// Administrators list a tenant's sessions and end them, one or all of a user's; the owner's
/// history shows the log-ins; everything is audited and scoped to the tenant.
async fn administrators_list_and_revoke_sessions(backend: Backend) {
    let w = world(backend).await;
    let admin = w
        .svc
        .login("admin", "root-password-for-tests", &meta())
        .await
        .unwrap();
    let p = &admin.principal;
    w.svc.create_tenant(p, "acme", &meta()).await.unwrap();
    w.svc
        .create_user(p, "acme", "alice", PW, Role::TenantAdmin, &meta())
        .await
        .unwrap();
    w.svc
        .create_user(p, "acme", "bob", PW, Role::TenantMember, &meta())
        .await
        .unwrap();
    let alice = w.svc.login("alice@acme", PW, &meta()).await.unwrap();
    let bob1 = w.svc.login("bob@acme", PW, &meta()).await.unwrap();
    let bob2 = w.svc.login("bob@acme", PW, &meta()).await.unwrap();
    let (_, listed) = w
        .svc
        .list_sessions(&alice.principal, "acme", Some("bob"), false, &meta())
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s.username == "bob"));
    assert_eq!(listed[0].source_ip.as_deref(), Some("192.0.2.7"));
    // A member may not list or revoke; a tenant admin may not touch another tenant.
    assert!(matches!(
        w.svc
            .list_sessions(&bob1.principal, "acme", None, false, &meta())
            .await,
        Err(IamError::Forbidden(_))
    ));
    assert!(matches!(
        w.svc
            .revoke_user_sessions(&alice.principal, "provider", "admin", true, &meta())
            .await,
        Err(IamError::NotFound(_))
    ));
    // One session, then all.
    w.svc
        .revoke_session(&alice.principal, "acme", bob1.id, &meta())
        .await
        .unwrap();
    assert!(w.svc.authenticate(&bob1.secret).await.is_err());
    assert!(w.svc.authenticate(&bob2.secret).await.is_ok());
    let n = w
        .svc
        .revoke_user_sessions(&alice.principal, "acme", "bob", false, &meta())
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(w.svc.authenticate(&bob2.secret).await.is_err());
    assert!(matches!(
        w.svc
            .revoke_session(&alice.principal, "acme", bob1.id, &meta())
            .await,
        Err(IamError::NotFound(_))
    ));
    // Bob's own history has his two log-ins.
    let bob3 = w.svc.login("bob@acme", PW, &meta()).await.unwrap();
    let history = w.svc.own_history(&bob3.principal, 100).await.unwrap();
    let logins = history
        .iter()
        .filter(|r| r.event.action == "auth.login")
        .count();
    assert_eq!(logins, 3);
    assert!(history.iter().all(|r| r.event.target == "user:acme/bob"));
}
