//! Second factors over a real store with an injected clock (X.1642 8.1.2(1), 7.2.2.4(4)): TOTP
//! codes made by `oathtool` (the OATH Toolkit, an independent implementation of RFC 6238) at the
//! service's clock are accepted, replayed codes refused, recovery codes work once, wrong codes
//! lock the account on their own counter, secrets are sealed at rest, and a tenant that requires
//! a second factor gives accounts without one a session that may only enrol one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;
use std::sync::Arc;

use parapet_iam::{IamConfig, IamError, IamService, PasswordCost, Principal, RequestMeta};
use parapet_store::{AccountStore, AuditFilter, AuditStore, IamStore, MfaStore, Page};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Clock, Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    totp_codes_from_oathtool_replays_recovery_codes_and_lockout,
    tenants_can_require_a_second_factor,
);

const ROOT: &str = "root-password-for-tests";
const PW: &str = "Wonderland-long-password-42";

/// The TOTP code of `secret` (base32) at `at`, computed by oathtool.
pub fn oathtool(secret: &str, at: Timestamp) -> String {
    let out = Command::new("oathtool")
        .args([
            "--totp",
            "-b",
            secret,
            "--now",
            &format!("@{}", at.0 / 1000),
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "oathtool is missing ({e}): install the Debian package oathtool (scripts/test does)"
            )
        });
    assert!(out.status.success(), "oathtool failed: {:?}", out);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct World {
    clock: Arc<ManualClock>,
    svc: Arc<IamService>,
    store: Arc<parapet_store_sql::SqlStore>,
    admin: Principal,
}

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.7".into()),
        user_agent: Some("t".into()),
    }
}

async fn world(backend: Backend) -> World {
    let (store, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    // Mid-step, so that "one step either way" is unambiguous.
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_015_000)));
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
        secrets_key: Some([42; 32]),
        // Provider staff without a second factor (the default requires one).
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let svc = Arc::new(IamService::new(store.clone(), env, config).unwrap());
    svc.bootstrap(Some(ROOT.into())).await.unwrap();
    let admin = svc.login("admin", ROOT, &meta()).await.unwrap().principal;
    svc.create_tenant(&admin, "acme", &meta()).await.unwrap();
    for (u, r) in [("alice", Role::TenantAdmin), ("bob", Role::TenantMember)] {
        svc.create_user(&admin, "acme", u, PW, r, &meta())
            .await
            .unwrap();
    }
    World {
        clock,
        svc,
        store,
        admin,
    }
}

impl World {
    async fn login(&self, who: &str, otp: Option<&str>) -> Result<Principal, IamError> {
        self.svc
            .login_with_otp(who, PW, otp, &meta())
            .await
            .map(|i| i.principal)
    }
}

async fn totp_codes_from_oathtool_replays_recovery_codes_and_lockout(backend: Backend) {
    let w = world(backend).await;
    let bob = w.login("bob@acme", None).await.unwrap();
    assert_eq!(w.svc.mfa_status(&bob).await.unwrap().totp, "none");
    let e = w.svc.totp_begin(&bob, &meta()).await.unwrap();
    assert_eq!(e.secret_base32.len(), 32);
    assert!(e.uri.starts_with("otpauth://totp/Parapet:bob@acme?secret="));
    assert_eq!(w.svc.mfa_status(&bob).await.unwrap().totp, "pending");
    // A pending enrolment does not ask for codes yet.
    w.login("bob@acme", None).await.unwrap();
    // The secret is sealed at rest: neither its base32 form nor its bytes are stored.
    let t = w
        .store
        .get_tenant(TenantCtx::new(w.admin.tenant.id), "acme")
        .await
        .unwrap();
    let rec = w
        .store
        .get_totp(TenantCtx::new(t.id), bob.user.id)
        .await
        .unwrap()
        .unwrap();
    assert!(rec.sealed_secret.starts_with("v1:"));
    assert!(!rec.sealed_secret.contains(&e.secret_base32));

    let code = oathtool(&e.secret_base32, w.clock.now());
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert!(matches!(
        w.svc.totp_confirm(&bob, &wrong, &meta()).await,
        Err(IamError::Invalid(_))
    ));
    let recovery = w.svc.totp_confirm(&bob, &code, &meta()).await.unwrap();
    assert_eq!(recovery.len(), 10);
    assert_eq!(w.svc.mfa_status(&bob).await.unwrap().totp, "enabled");

    // Now the password alone is not enough, and the code used to confirm is spent.
    assert!(matches!(
        w.login("bob@acme", None).await,
        Err(IamError::MfaRequired)
    ));
    assert!(matches!(
        w.login("bob@acme", Some(&code)).await,
        Err(IamError::Unauthenticated)
    ));
    w.clock.advance_secs(30);
    let next = oathtool(&e.secret_base32, w.clock.now());
    w.login("bob@acme", Some(&next)).await.unwrap();
    // Replayed: refused, also on a concurrent second request.
    assert!(matches!(
        w.login("bob@acme", Some(&next)).await,
        Err(IamError::Unauthenticated)
    ));
    // The code of the next step is accepted early (one step of drift), then not again.
    let early = oathtool(&e.secret_base32, w.clock.now().plus_secs(30));
    w.login("bob@acme", Some(&early)).await.unwrap();
    w.clock.advance_secs(30);
    assert!(matches!(
        w.login("bob@acme", Some(&early)).await,
        Err(IamError::Unauthenticated)
    ));

    // Recovery codes: each works once.
    w.login("bob@acme", Some(&recovery[0])).await.unwrap();
    assert!(matches!(
        w.login("bob@acme", Some(&recovery[0])).await,
        Err(IamError::Unauthenticated)
    ));
    assert_eq!(w.svc.mfa_status(&bob).await.unwrap().recovery_codes_left, 9);

    // Wrong codes lock on their own counter (default 5); the password counter stays untouched.
    for i in 0..5 {
        let r = w
            .login("bob@acme", Some(&format!("{:06}", 111_111 * i)))
            .await;
        assert!(matches!(r, Err(IamError::Unauthenticated)));
    }
    let st = w
        .store
        .get_account_state(TenantCtx::new(t.id), bob.user.id)
        .await
        .unwrap();
    assert!(st.is_locked(w.clock.now()));
    assert_eq!(st.failures, 0);
    w.clock.advance_secs(30);
    let good = oathtool(&e.secret_base32, w.clock.now());
    assert!(matches!(
        w.login("bob@acme", Some(&good)).await,
        Err(IamError::Unauthenticated)
    ));
    w.clock.advance_secs(61);
    let good = oathtool(&e.secret_base32, w.clock.now());
    w.login("bob@acme", Some(&good)).await.unwrap();

    // Removal needs the password; then the password alone works again.
    assert!(matches!(
        w.svc.totp_remove(&bob, "not-my-password-1", &meta()).await,
        Err(IamError::Forbidden(_))
    ));
    w.svc.totp_remove(&bob, PW, &meta()).await.unwrap();
    w.login("bob@acme", None).await.unwrap();

    let recs = w
        .store
        .list_audit(
            TenantCtx::new(t.id),
            &AuditFilter::default(),
            &Page {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap();
    let has = |action: &str, reason: Option<&str>| {
        recs.iter().any(|r| {
            r.event.action == action
                && reason.is_none_or(|x| r.event.details["reason"].as_str() == Some(x))
        })
    };
    assert!(has("mfa.totp.begin", None));
    assert!(has("mfa.totp.enable", None));
    assert!(has("mfa.totp.remove", None));
    assert!(has("auth.login", Some("replayed code")));
    assert!(has("auth.login", Some("wrong code; account locked")));
    assert!(
        recs.iter()
            .any(|r| r.event.details["method"] == "password+recovery-code")
    );
    // No secret or code in any record.
    for r in &recs {
        let text = r.canonical_json();
        assert!(!text.contains(&e.secret_base32));
        assert!(!recovery.iter().any(|c| text.contains(c.as_str())));
    }
}

async fn tenants_can_require_a_second_factor(backend: Backend) {
    let w = world(backend).await;
    let (_, eff) = w.svc.get_policy(&w.admin, "acme", &meta()).await.unwrap();
    let mut p = eff.policy;
    p.mfa_required = true;
    w.svc
        .set_policy(&w.admin, "acme", &p, &meta())
        .await
        .unwrap();
    // Without a factor: a session that may only enrol one.
    let alice = w.login("alice@acme", None).await.unwrap();
    match w.svc.list_users(&alice, "acme", None, 10, &meta()).await {
        Err(IamError::Forbidden(m)) => assert!(m.contains("second factor"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(w.svc.mfa_status(&alice).await.unwrap().required);
    let e = w.svc.totp_begin(&alice, &meta()).await.unwrap();
    w.svc
        .totp_confirm(&alice, &oathtool(&e.secret_base32, w.clock.now()), &meta())
        .await
        .unwrap();
    w.clock.advance_secs(30);
    let alice = w
        .login(
            "alice@acme",
            Some(&oathtool(&e.secret_base32, w.clock.now())),
        )
        .await
        .unwrap();
    assert_eq!(
        w.svc
            .list_users(&alice, "acme", None, 10, &meta())
            .await
            .unwrap()
            .1
            .len(),
        2
    );
    // An administrator resets a lost factor; the user is back to enrolling.
    w.svc
        .reset_mfa(&w.admin, "acme", "alice", &meta())
        .await
        .unwrap();
    let again = w.login("alice@acme", None).await.unwrap();
    assert!(
        w.svc
            .list_users(&again, "acme", None, 10, &meta())
            .await
            .is_err()
    );
    // Other tenants keep the provider's default (no second factor required).
    w.svc.login("admin", ROOT, &meta()).await.unwrap();
}
