//! Just-in-time privileged access (X.1642 7.2.2.4(3)) on both backends with a `ManualClock`: a
//! lent role needs another administrator's approval, works at once, ends by itself when its time
//! is up (never served from the authentication cache past its expiry), and can be revoked early.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use parapet_iam::{IamConfig, IamError, IamService, PasswordCost, RequestMeta};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Env, ManualClock, OsEntropy, Role, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(lent_roles_need_approval_and_end_by_themselves);

const ROOT: &str = "root-password-for-tests";
const PW: &str = "Wonderland-long-password-42";

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.7".into()),
        user_agent: Some("t".into()),
    }
}

async fn lent_roles_need_approval_and_end_by_themselves(backend: Backend) {
    let (store, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
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
        session_ttl_secs: 24 * 3600,
        session_idle_secs: 24 * 3600,
        // Provider staff without a second factor (the default requires one).
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let svc = IamService::new(store.clone(), env, config).unwrap();
    svc.bootstrap(Some(ROOT.into())).await.unwrap();
    let admin = svc.login("admin", ROOT, &meta()).await.unwrap().principal;
    svc.create_user(&admin, "provider", "olivia", PW, Role::Operator, &meta())
        .await
        .unwrap();
    let olivia = svc.login("olivia", PW, &meta()).await.unwrap();
    let secret = olivia.secret.clone();
    let olivia = svc.authenticate(&secret).await.unwrap();
    assert!(olivia.elevation.is_none());
    assert!(matches!(
        svc.create_tenant(&olivia, "acme", &meta()).await,
        Err(IamError::Forbidden(_))
    ));

    // Bad requests change nothing.
    for (role, secs) in [
        (Role::TenantAdmin, 900),
        (Role::Operator, 900),
        (Role::SecurityAdmin, 10),
        (Role::SecurityAdmin, 9 * 3600),
    ] {
        assert!(
            matches!(
                svc.request_access(&olivia, role, "incident 42", secs, &meta())
                    .await,
                Err(IamError::Invalid(_))
            ),
            "{role} {secs}"
        );
    }
    let req = svc
        .request_access(&olivia, Role::SecurityAdmin, "incident 42", 900, &meta())
        .await
        .unwrap();
    assert_eq!(req.duration_secs, Some(900));
    // No self-approval.
    assert!(matches!(
        svc.decide_approval(&olivia, "provider", &req.id, true, None, &meta())
            .await,
        Err(IamError::Forbidden(_))
    ));
    // Nothing is lent before the approval.
    assert!(svc.authenticate(&secret).await.unwrap().elevation.is_none());
    svc.decide_approval(&admin, "provider", &req.id, true, Some("ok"), &meta())
        .await
        .unwrap();
    let elevated = svc.authenticate(&secret).await.unwrap();
    let el = elevated.elevation.clone().expect("elevated");
    assert_eq!(elevated.user.role, Role::SecurityAdmin);
    assert_eq!(el.base_role, Role::Operator);
    svc.create_tenant(&elevated, "acme", &meta()).await.unwrap();
    let (_, grants) = svc.list_grants(&admin, "provider", &meta()).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].granted_by_name, "admin");

    // It ends by itself: still there a second before, gone at the expiry (the cached principal
    // is not served past it).
    clock.advance_secs(899);
    assert!(svc.authenticate(&secret).await.unwrap().elevation.is_some());
    clock.advance_secs(1);
    let back = svc.authenticate(&secret).await.unwrap();
    assert!(back.elevation.is_none());
    assert_eq!(back.user.role, Role::Operator);
    assert!(matches!(
        svc.create_tenant(&back, "globex", &meta()).await,
        Err(IamError::Forbidden(_))
    ));

    // Revoked early by the holder: at once on this replica.
    let req = svc
        .request_access(&back, Role::SecurityAdmin, "incident 43", 3600, &meta())
        .await
        .unwrap();
    svc.decide_approval(&admin, "provider", &req.id, true, None, &meta())
        .await
        .unwrap();
    let up = svc.authenticate(&secret).await.unwrap();
    let grant = up.elevation.clone().unwrap().grant;
    svc.revoke_grant(&up, "provider", &grant, &meta())
        .await
        .unwrap();
    assert!(svc.authenticate(&secret).await.unwrap().elevation.is_none());
    assert!(matches!(
        svc.revoke_grant(&admin, "provider", &grant, &meta()).await,
        Err(IamError::Conflict(_))
    ));
    // A rejected request lends nothing.
    let req = svc
        .request_access(&back, Role::SecurityAdmin, "incident 44", 3600, &meta())
        .await
        .unwrap();
    svc.decide_approval(&admin, "provider", &req.id, false, None, &meta())
        .await
        .unwrap();
    assert!(svc.authenticate(&secret).await.unwrap().elevation.is_none());
}
