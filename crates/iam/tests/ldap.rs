//! LDAP directory settings over a real store (X.1642 8.1.2(1), 8.1.2(3)), on both backends: who may
//! read and change them, the bind password sealed at rest (bound to its tenant) and moved under
//! the platform sealer by `migrate_secrets` with an audit record, and a directory that cannot be
//! reached refusing log-ins without letting anyone in. (Log-ins against a real `slapd` are in
//! `crates/parapet/tests/ldap.rs`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use parapet_iam::sealer::{PlatformSealer, SealerError};
use parapet_iam::{IamConfig, IamError, IamService, PasswordCost, Principal, RequestMeta};
use parapet_store::{
    AuditFilter, AuditStore, IamStore, LdapRoleMapping, LdapSettings, LdapStore, Page,
};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(directory_settings_are_sealed_authorized_and_resealed);

const ROOT: &str = "root-password-for-tests";
const PW: &str = "Wonderland-long-password-42";
const BIND: &str = "the-bind-password-77";

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.9".into()),
        user_agent: Some("t".into()),
    }
}

/// Stands in for the key service's platform key: AES-GCM under another key, `kms:` prefixed.
struct OtherKey([u8; 32], Env);

impl PlatformSealer for OtherKey {
    fn seal(&self, aad: &str, plain: &[u8]) -> Result<String, SealerError> {
        parapet_iam::mfa::seal_local(&self.0, &self.1, aad, plain)
            .map(|s| format!("kms:{s}"))
            .map_err(|e| SealerError::Invalid(e.to_string()))
    }
    fn open(&self, aad: &str, sealed: &str) -> Result<Vec<u8>, SealerError> {
        let s = sealed
            .strip_prefix("kms:")
            .ok_or_else(|| SealerError::Invalid("no kms: prefix".into()))?;
        parapet_iam::mfa::open_local(&self.0, aad, s)
            .map_err(|e| SealerError::Invalid(e.to_string()))
    }
}

fn settings(url: &str) -> LdapSettings {
    LdapSettings {
        url: url.into(),
        starttls: false,
        bind_dn: "cn=svc,dc=example,dc=org".into(),
        user_base: "ou=people,dc=example,dc=org".into(),
        user_filter: "(&(objectClass=inetOrgPerson)(uid={username}))".into(),
        group_base: None,
        group_filter: None,
        member_of_attribute: Some("memberOf".into()),
        role_mappings: vec![LdapRoleMapping {
            group: "cn=admins,ou=groups,dc=example,dc=org".into(),
            role: Role::TenantAdmin,
        }],
        default_role: Some(Role::TenantMember),
        provision: true,
        timeout_secs: 2,
    }
}

async fn directory_settings_are_sealed_authorized_and_resealed(backend: Backend) {
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
        secrets_key: Some([7; 32]),
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let svc = IamService::new(store.clone(), env.clone(), config).unwrap();
    let boot = svc.bootstrap(Some(ROOT.into())).await.unwrap();
    let admin = svc.login("admin", ROOT, &meta()).await.unwrap().principal;
    for t in ["acme", "globex"] {
        svc.create_tenant(&admin, t, &meta()).await.unwrap();
        for (u, r) in [
            ("boss", Role::TenantAdmin),
            ("bob", Role::TenantMember),
            ("aud", Role::TenantAuditor),
        ] {
            svc.create_user(&admin, t, u, PW, r, &meta()).await.unwrap();
        }
    }
    let login = |who: &'static str| {
        let svc = &svc;
        async move { svc.login(who, PW, &meta()).await.unwrap().principal }
    };
    let boss: Principal = login("boss@acme").await;
    let bob = login("bob@acme").await;
    let aud = login("aud@acme").await;
    let other = login("boss@globex").await;

    // Who may do what: the tenant's administrator sets; members neither read nor set; auditors
    // read; another tenant's administrator can do nothing to it.
    fn forbidden<T>(r: Result<T, IamError>) -> bool {
        matches!(r, Err(IamError::Forbidden(_)))
    }
    assert!(forbidden(
        svc.set_directory(
            &bob,
            "acme",
            settings("ldap://127.0.0.1:9"),
            Some(BIND),
            &meta()
        )
        .await
    ));
    assert!(forbidden(
        svc.get_directory(&bob, "acme", &meta()).await.map(|_| ())
    ));
    let set_other = svc
        .set_directory(
            &other,
            "acme",
            settings("ldap://127.0.0.1:9"),
            Some(BIND),
            &meta(),
        )
        .await;
    assert!(
        matches!(
            set_other,
            Err(IamError::Forbidden(_) | IamError::NotFound(_))
        ),
        "{set_other:?}"
    );
    svc.set_directory(
        &boss,
        "acme",
        settings("ldap://127.0.0.1:9"),
        Some(BIND),
        &meta(),
    )
    .await
    .unwrap();
    let (_, seen) = svc.get_directory(&aud, "acme", &meta()).await.unwrap();
    assert!(!seen.unwrap().sealed_by_kms);
    let read_other = svc.get_directory(&other, "acme", &meta()).await;
    assert!(matches!(
        read_other,
        Err(IamError::Forbidden(_) | IamError::NotFound(_))
    ));
    assert!(forbidden(svc.delete_directory(&aud, "acme", &meta()).await));

    // Sealed at rest, bound to its tenant: the stored text is not the password and does not open
    // as another tenant's.
    let acme = store
        .get_tenant(TenantCtx::new(boot.provider.id), "acme")
        .await
        .unwrap();
    let globex = store
        .get_tenant(TenantCtx::new(boot.provider.id), "globex")
        .await
        .unwrap();
    let row = store
        .get_ldap(TenantCtx::new(acme.id))
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.sealed_bind_password.starts_with("v1:"),
        "{}",
        row.sealed_bind_password
    );
    assert!(!row.sealed_bind_password.contains(BIND));
    let key = [7u8; 32];
    let opened = parapet_iam::mfa::open_local(
        &key,
        &format!("ldap-bind:{}", acme.id),
        &row.sealed_bind_password,
    )
    .unwrap();
    assert_eq!(opened, BIND.as_bytes());
    assert!(
        parapet_iam::mfa::open_local(
            &key,
            &format!("ldap-bind:{}", globex.id),
            &row.sealed_bind_password
        )
        .is_err()
    );
    // Changing the settings without a password keeps the sealed one.
    let mut s2 = settings("ldap://127.0.0.1:9");
    s2.timeout_secs = 1;
    svc.set_directory(&boss, "acme", s2, None, &meta())
        .await
        .unwrap();
    let row2 = store
        .get_ldap(TenantCtx::new(acme.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row2.sealed_bind_password, row.sealed_bind_password);
    assert_eq!(row2.settings.timeout_secs, 1);

    // Nothing listens on port 9: the directory is unavailable and nobody gets in, neither a
    // name unknown locally (provisioning) nor is the failure taken for a wrong password.
    let r = svc.login("carol@acme", "anything-at-all-1", &meta()).await;
    assert!(matches!(r, Err(IamError::DirectoryUnavailable(_))), "{r:?}");
    assert!(
        store
            .get_user(TenantCtx::new(acme.id), "carol")
            .await
            .is_err()
    );
    let t = svc.test_directory(&boss, "acme", None, &meta()).await;
    assert!(matches!(t, Err(IamError::DirectoryUnavailable(_))), "{t:?}");
    // Local accounts of the same tenant are unaffected.
    svc.login("bob@acme", PW, &meta()).await.unwrap();

    // Once the platform sealer is installed, migrate_secrets moves the bind password under it,
    // audited, and the directory still opens it.
    svc.set_platform_sealer(Arc::new(OtherKey([9; 32], env.clone())));
    let n = svc.migrate_secrets(&boot.provider).await.unwrap();
    assert_eq!(n, 1);
    let row3 = store
        .get_ldap(TenantCtx::new(acme.id))
        .await
        .unwrap()
        .unwrap();
    assert!(
        row3.sealed_bind_password.starts_with("kms:"),
        "{}",
        row3.sealed_bind_password
    );
    let (_, seen) = svc.get_directory(&boss, "acme", &meta()).await.unwrap();
    assert!(seen.unwrap().sealed_by_kms);
    let trail = store
        .list_audit(
            TenantCtx::new(boot.provider.id),
            &AuditFilter {
                action: Some("kms.platform-secret.reseal".into()),
                ..Default::default()
            },
            &Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].event.details["secret"], "ldap-bind-password");
    assert_eq!(
        svc.migrate_secrets(&boot.provider).await.unwrap(),
        0,
        "nothing left to move"
    );
    // Still usable: the log-in reaches the (absent) directory rather than failing to unseal.
    let r = svc.login("carol@acme", "anything-at-all-1", &meta()).await;
    assert!(matches!(r, Err(IamError::DirectoryUnavailable(_))), "{r:?}");

    // Removal, audited; a second removal says there is none.
    svc.delete_directory(&boss, "acme", &meta()).await.unwrap();
    assert!(matches!(
        svc.delete_directory(&boss, "acme", &meta()).await,
        Err(IamError::NotFound(_))
    ));
    let r = svc.login("carol@acme", "anything-at-all-1", &meta()).await;
    assert!(matches!(r, Err(IamError::Unauthenticated)), "{r:?}");
}
