//! Approval requests over a real store (X.1642 8.1.1(2)): registrations and role changes are
//! decided by another administrator than the requester, never by the user concerned, by someone
//! allowed to grant the role, once; approval applies the change in the same transaction,
//! rejection changes nothing, and the history stays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use parapet_iam::{IamConfig, IamError, IamService, PasswordCost, Principal, RequestMeta};
use parapet_store::IamStore;
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(registrations_and_role_changes_need_another_administrator);

const ROOT: &str = "root-password-for-tests";
const PW: &str = "Wonderland-long-password-42";

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.7".into()),
        user_agent: Some("t".into()),
    }
}

async fn registrations_and_role_changes_need_another_administrator(backend: Backend) {
    let (store, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let env = Env {
        clock,
        entropy: Arc::new(OsEntropy),
    };
    let config = IamConfig {
        password_cost: PasswordCost {
            memory_kib: 256,
            iterations: 1,
            lanes: 1,
        },
        // Provider staff without a second factor (the default requires one).
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let svc = IamService::new(store.clone(), env, config).unwrap();
    svc.bootstrap(Some(ROOT.into())).await.unwrap();
    let admin = svc.login("admin", ROOT, &meta()).await.unwrap().principal;
    svc.create_tenant(&admin, "acme", &meta()).await.unwrap();
    for (u, r) in [
        ("alice", Role::TenantAdmin),
        ("amos", Role::TenantAdmin),
        ("bob", Role::TenantMember),
    ] {
        svc.create_user(&admin, "acme", u, PW, r, &meta())
            .await
            .unwrap();
    }
    let login = |u: &'static str| {
        let svc = &svc;
        async move {
            svc.login(u, PW, &meta())
                .await
                .map(|i| i.principal)
                .unwrap()
        }
    };
    let alice: Principal = login("alice@acme").await;
    let amos: Principal = login("amos@acme").await;
    let bob: Principal = login("bob@acme").await;
    // The tenant requires approval: direct creation and role changes are refused.
    let (_, eff) = svc.get_policy(&alice, "acme", &meta()).await.unwrap();
    let mut p = eff.policy;
    p.approval_required = true;
    svc.set_policy(&alice, "acme", &p, &meta()).await.unwrap();
    assert!(matches!(
        svc.create_user(&alice, "acme", "carl", PW, Role::TenantMember, &meta())
            .await,
        Err(IamError::Forbidden(m)) if m.contains("approval")
    ));
    assert!(matches!(
        svc.change_role(&alice, "acme", "bob", Role::TenantAuditor, &meta())
            .await,
        Err(IamError::Forbidden(_))
    ));
    // A member cannot even request; a provider role cannot be requested in a tenant.
    assert!(matches!(
        svc.request_user(
            &bob,
            "acme",
            "carl",
            PW,
            Role::TenantMember,
            "need",
            &meta()
        )
        .await,
        Err(IamError::Forbidden(_))
    ));
    assert!(matches!(
        svc.request_user(
            &alice,
            "acme",
            "carl",
            PW,
            Role::SecurityAdmin,
            "x",
            &meta()
        )
        .await,
        Err(IamError::Invalid(_))
    ));
    let req = svc
        .request_user(
            &alice,
            "acme",
            "carl",
            PW,
            Role::TenantMember,
            "new hire",
            &meta(),
        )
        .await
        .unwrap();
    // No self-approval; members cannot decide; the request changes nothing before approval.
    assert!(matches!(
        svc.decide_approval(&alice, "acme", &req.id, true, None, &meta()).await,
        Err(IamError::Forbidden(m)) if m.contains("self-approval")
    ));
    assert!(matches!(
        svc.decide_approval(&bob, "acme", &req.id, true, None, &meta())
            .await,
        Err(IamError::Forbidden(_))
    ));
    let t = store
        .get_tenant(TenantCtx::new(admin.tenant.id), "acme")
        .await
        .unwrap();
    assert!(store.get_user(TenantCtx::new(t.id), "carl").await.is_err());
    let done = svc
        .decide_approval(&amos, "acme", &req.id, true, Some("ok"), &meta())
        .await
        .unwrap();
    assert_eq!(done.status, "approved");
    assert_eq!(done.decided_by_name.as_deref(), Some("amos@acme"));
    svc.login("carl@acme", PW, &meta()).await.unwrap();
    // Decided once only.
    assert!(
        svc.decide_approval(&admin, "acme", &req.id, false, None, &meta())
            .await
            .is_err()
    );
    // A role change concerning oneself is decided by someone else.
    let r2 = svc
        .request_role(
            &amos,
            "acme",
            "alice",
            Role::TenantAuditor,
            "rotation",
            &meta(),
        )
        .await
        .unwrap();
    assert!(matches!(
        svc.decide_approval(&alice, "acme", &r2.id, true, None, &meta()).await,
        Err(IamError::Forbidden(m)) if m.contains("own account")
    ));
    let rejected = svc
        .decide_approval(&admin, "acme", &r2.id, false, Some("no"), &meta())
        .await
        .unwrap();
    assert_eq!(rejected.status, "rejected");
    assert_eq!(
        store
            .get_user(TenantCtx::new(t.id), "alice")
            .await
            .unwrap()
            .role,
        Role::TenantAdmin
    );
    // An approved role change applies and ends the user's sessions.
    let r3 = svc
        .request_role(
            &alice,
            "acme",
            "bob",
            Role::TenantAuditor,
            "audit duty",
            &meta(),
        )
        .await
        .unwrap();
    svc.decide_approval(&amos, "acme", &r3.id, true, None, &meta())
        .await
        .unwrap();
    assert_eq!(
        store
            .get_user(TenantCtx::new(t.id), "bob")
            .await
            .unwrap()
            .role,
        Role::TenantAuditor
    );
    let (_, history) = svc.list_approvals(&alice, "acme", &meta()).await.unwrap();
    let mut statuses: Vec<&str> = history.iter().map(|r| r.status.as_str()).collect();
    statuses.sort();
    assert_eq!(statuses, vec!["approved", "approved", "rejected"]);
    // Another tenant's administrator sees none of it.
    svc.create_tenant(&admin, "globex", &meta()).await.unwrap();
    svc.create_user(&admin, "globex", "gina", PW, Role::TenantAdmin, &meta())
        .await
        .unwrap();
    let gina = login("gina@globex").await;
    assert!(matches!(
        svc.list_approvals(&gina, "acme", &meta()).await,
        Err(IamError::NotFound(_))
    ));
    assert!(matches!(
        svc.decide_approval(&gina, "acme", &r3.id, true, None, &meta())
            .await,
        Err(IamError::NotFound(_))
    ));
}
