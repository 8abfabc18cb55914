//! Sub-accounts follow their main account down (X.1642 8.1.1(4)), on both backends: when the
//! main account's role is lowered, each sub-account it no longer covers gets the highest role
//! covered by both (or is disabled when none is), audited, its sessions ended; the main account
//! changes its sub-accounts' roles only within its own and disables them; nobody else's
//! sub-accounts are reachable this way.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use parapet_iam::authz::holds_all_of;
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

on_both!(sub_accounts_lose_what_their_main_account_loses);

const ROOT: &str = "root-password-for-tests";
const PW: &str = "Wonderland-long-password-42";

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.4".into()),
        user_agent: Some("t".into()),
    }
}

async fn sub_accounts_lose_what_their_main_account_loses(backend: Backend) {
    let (store, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let env = Env {
        clock: Arc::new(ManualClock::new(Timestamp(1_800_000_000_000))),
        entropy: Arc::new(OsEntropy),
    };
    let config = IamConfig {
        password_cost: PasswordCost {
            memory_kib: 256,
            iterations: 1,
            lanes: 1,
        },
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let svc = IamService::new(store.clone(), env, config).unwrap();
    svc.bootstrap(Some(ROOT.into())).await.unwrap();
    let admin = svc.login("admin", ROOT, &meta()).await.unwrap().principal;
    let acme = svc.create_tenant(&admin, "acme", &meta()).await.unwrap();
    let ctx = TenantCtx::new(acme.id);
    svc.create_user(&admin, "acme", "boss", PW, Role::TenantAdmin, &meta())
        .await
        .unwrap();
    svc.create_user(&admin, "acme", "carol", PW, Role::TenantAdmin, &meta())
        .await
        .unwrap();
    let boss = svc.login("boss@acme", PW, &meta()).await.unwrap().principal;
    let carol = svc
        .login("carol@acme", PW, &meta())
        .await
        .unwrap()
        .principal;
    for (name, role) in [
        ("boss-admin", Role::TenantAdmin),
        ("boss-member", Role::TenantMember),
        ("boss-auditor", Role::TenantAuditor),
    ] {
        svc.create_sub_account(&boss, name, PW, role, &meta())
            .await
            .unwrap();
    }
    svc.create_sub_account(&carol, "carol-admin", PW, Role::TenantAdmin, &meta())
        .await
        .unwrap();
    let sub_issued = svc.login("boss-admin@acme", PW, &meta()).await.unwrap();
    assert!(svc.authenticate(&sub_issued.secret).await.is_ok());
    let sub_session = sub_issued.principal.clone();

    // The main account manages its own sub-accounts, within its own privileges.
    let u = svc
        .set_sub_account_role(&boss, "boss-member", Role::TenantAuditor, &meta())
        .await
        .unwrap();
    assert_eq!(u.role, Role::TenantAuditor);
    svc.set_sub_account_role(&boss, "boss-member", Role::TenantMember, &meta())
        .await
        .unwrap();
    assert!(matches!(
        svc.set_sub_account_role(&boss, "carol-admin", Role::TenantMember, &meta())
            .await,
        Err(IamError::NotFound(_))
    ));
    assert!(matches!(
        svc.disable_sub_account(&carol, "boss-member", &meta())
            .await,
        Err(IamError::NotFound(_))
    ));
    assert!(matches!(
        svc.set_sub_account_role(&sub_session, "boss-member", Role::TenantMember, &meta())
            .await,
        Err(IamError::NotFound(_))
    ));

    // The main account is lowered to tenant-member: in the same change, every sub-account it
    // no longer covers is lowered (or disabled when no role fits under both).
    svc.change_role(&admin, "acme", "boss", Role::TenantMember, &meta())
        .await
        .unwrap();
    let lowered = svc.login("boss@acme", PW, &meta()).await.unwrap().principal;
    assert_eq!(lowered.user.role, Role::TenantMember);
    let subs = svc.list_sub_accounts(&lowered).await.unwrap();
    assert_eq!(subs.len(), 3);
    let admin_sub = subs.iter().find(|s| s.username == "boss-admin").unwrap();
    assert_ne!(
        admin_sub.role,
        Role::TenantAdmin,
        "the sub-account kept the lost role"
    );
    for s in &subs {
        if s.status == UserStatus::Active {
            assert!(
                holds_all_of(&lowered, s.role, &acme),
                "{} holds {} beyond its main account",
                s.username,
                s.role
            );
        }
    }
    // The lowered sub-account's old session is over (it carried the old privileges).
    assert!(svc.authenticate(&sub_issued.secret).await.is_err());
    // Carol's sub-account is untouched.
    let carol_sub = store.get_user(ctx, "carol-admin").await.unwrap();
    assert_eq!(carol_sub.role, Role::TenantAdmin);
    assert_eq!(carol_sub.status, UserStatus::Active);
    // Audited, naming the reason and the main account.
    let trail = store
        .list_audit(
            ctx,
            &AuditFilter {
                target: Some("user:acme/boss-admin".into()),
                ..Default::default()
            },
            &Page {
                after: None,
                limit: 20,
            },
        )
        .await
        .unwrap();
    let rec = trail
        .iter()
        .find(|r| r.event.details["reason"] == "its main account lost privileges")
        .expect("the lowering of boss-admin is audited");
    assert_eq!(rec.event.details["parent"], "boss");
    assert_eq!(rec.event.details["from"], "tenant-admin");

    // The lowered main account can no longer raise its sub-account back.
    assert!(matches!(
        svc.set_sub_account_role(&lowered, "boss-admin", Role::TenantAdmin, &meta())
            .await,
        Err(IamError::Forbidden(_))
    ));
    // And disables one.
    svc.disable_sub_account(&lowered, "boss-member", &meta())
        .await
        .unwrap();
    assert_eq!(
        store.get_user(ctx, "boss-member").await.unwrap().status,
        UserStatus::Disabled
    );
    assert!(svc.login("boss-member@acme", PW, &meta()).await.is_err());
}
