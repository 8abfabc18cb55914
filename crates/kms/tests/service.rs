//! The key service over a real store on both backends, with an injected clock: sealing and
//! unsealing with K of N shares, envelope encryption bound to a context, rotation and the
//! minimum decryption version, separation of roles, tenant isolation, and deletion with a
//! signed receipt — deletion windows are crossed by moving the clock, never by sleeping.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use parapet_iam::{IamConfig, IamService, PasswordCost, Principal, RequestMeta};
use parapet_kms::{
    Context, CryptoError, KeyType, KeyUpdate, KmsConfig, KmsError, KmsService, NewKey,
};
use parapet_store::{AuditFilter, AuditStore, KeyPolicy, KmsStore, Page};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};
use zeroize::Zeroizing;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    unseal_needs_k_of_n_shares_and_a_sealed_service_refuses_key_operations,
    envelope_encryption_binds_context_and_survives_rotation,
    roles_are_separate_and_keys_are_invisible_to_other_tenants,
    deletion_waits_then_destroys_and_issues_a_verifiable_receipt,
    keys_rotate_on_schedule_with_the_clock,
    wrapping_keys_expire_and_shredded_keys_stay_shredded_through_a_restore,
    totp_secrets_move_under_the_platform_key_and_a_sealed_service_says_so,
    batches_use_fresh_nonces_and_write_one_audit_record,
);

const PW: &str = "a-long-enough-password-42";
const ROOT_PW: &str = "root-password-for-tests";

struct World {
    clock: Arc<ManualClock>,
    store: Arc<parapet_store_sql::SqlStore>,
    iam: Arc<IamService>,
    env: Env,
    kms: KmsService,
    admin: Principal,
    custodian: Principal,
    alice: Principal,
    bob: Principal,
    carol: Principal,
    gina: Principal,
}

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.9".into()),
        user_agent: Some("t".into()),
    }
}

async fn world(backend: Backend, key_file: bool) -> World {
    let (store, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let env = Env {
        clock: clock.clone(),
        entropy: Arc::new(OsEntropy),
    };
    let iam = Arc::new(
        IamService::new(
            store.clone(),
            env.clone(),
            IamConfig {
                password_cost: PasswordCost {
                    memory_kib: 256,
                    iterations: 1,
                    lanes: 1,
                },
                // Provider staff without a second factor (the default requires one).
                provider_mfa_required: false,
                ..IamConfig::default()
            },
        )
        .unwrap(),
    );
    let boot = iam.bootstrap(Some(ROOT_PW.into())).await.unwrap();
    let admin = iam
        .login("admin", ROOT_PW, &meta())
        .await
        .unwrap()
        .principal;
    let m = meta();
    iam.create_user(
        &admin,
        &boot.provider.name,
        "kc",
        PW,
        Role::KeyCustodian,
        &m,
    )
    .await
    .unwrap();
    for t in ["acme", "globex"] {
        iam.create_tenant(&admin, t, &m).await.unwrap();
    }
    for (t, u, r) in [
        ("acme", "alice", Role::TenantAdmin),
        ("acme", "bob", Role::TenantMember),
        ("acme", "carol", Role::TenantAuditor),
        ("globex", "gina", Role::TenantAdmin),
    ] {
        iam.create_user(&admin, t, u, PW, r, &m).await.unwrap();
    }
    let login = |n: &'static str| {
        let iam = iam.clone();
        async move { iam.login(n, PW, &meta()).await.unwrap().principal }
    };
    let kms = KmsService::open(
        store.clone(),
        iam.clone(),
        env.clone(),
        boot.provider.clone(),
        KmsConfig::default(),
    )
    .await
    .unwrap();
    if key_file {
        kms.unseal_with_key_file(Zeroizing::new([11u8; 32]))
            .await
            .unwrap();
    }
    World {
        custodian: login("kc").await,
        alice: login("alice@acme").await,
        bob: login("bob@acme").await,
        carol: login("carol@acme").await,
        gina: login("gina@globex").await,
        clock,
        store,
        iam,
        env,
        kms,
        admin,
    }
}

fn aes(name: &str) -> NewKey {
    NewKey {
        name: name.into(),
        key_type: KeyType::Aes256Gcm,
        exportable: false,
        rotation_period_secs: None,
        policy: KeyPolicy::default(),
    }
}

fn ctx(pairs: &[(&str, &str)]) -> Context {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn unseal_needs_k_of_n_shares_and_a_sealed_service_refuses_key_operations(backend: Backend) {
    let w = world(backend, false).await;
    let m = meta();
    assert!(!w.kms.status().initialized);
    assert!(matches!(
        w.kms.create_key(&w.alice, &aes("k"), &m).await,
        Err(KmsError::Uninitialized)
    ));
    // Only key custodians initialize.
    assert!(matches!(
        w.kms.init(&w.admin, 5, 3, &m).await,
        Err(KmsError::Forbidden(_))
    ));
    assert!(matches!(
        w.kms.init(&w.custodian, 3, 4, &m).await,
        Err(KmsError::Invalid(_))
    ));
    let shares = w.kms.init(&w.custodian, 5, 3, &m).await.unwrap();
    assert_eq!(shares.len(), 5);
    assert!(matches!(
        w.kms.init(&w.custodian, 5, 3, &m).await,
        Err(KmsError::Conflict(_))
    ));
    let st = w.kms.status();
    assert!(st.initialized && st.sealed);
    assert_eq!((st.shares, st.threshold), (5, 3));
    // Sealed: no key operation.
    assert!(matches!(
        w.kms.create_key(&w.alice, &aes("k"), &m).await,
        Err(KmsError::Sealed)
    ));
    // K-1 shares (one given twice) leave it sealed.
    w.kms.unseal(&w.custodian, &shares[4], &m).await.unwrap();
    w.kms.unseal(&w.custodian, &shares[4], &m).await.unwrap();
    let st = w.kms.unseal(&w.custodian, &shares[1], &m).await.unwrap();
    assert!(st.sealed);
    assert_eq!(st.progress, 2);
    assert!(matches!(
        w.kms.create_key(&w.alice, &aes("k"), &m).await,
        Err(KmsError::Sealed)
    ));
    // The K-th unseals.
    let st = w.kms.unseal(&w.custodian, &shares[2], &m).await.unwrap();
    assert!(!st.sealed);
    w.kms.create_key(&w.alice, &aes("k"), &m).await.unwrap();
    let ct = w
        .kms
        .encrypt(&w.bob, "k", b"payload", &Context::new(), &m)
        .await
        .unwrap();

    // A restarted server is sealed again; a wrong share among K resets the progress.
    let restarted = KmsService::open(
        w.store.clone(),
        w.iam.clone(),
        w.env.clone(),
        w.admin.tenant.clone(),
        KmsConfig::default(),
    )
    .await
    .unwrap();
    assert!(restarted.status().sealed);
    assert!(matches!(
        restarted.decrypt(&w.bob, &ct, &Context::new(), &m).await,
        Err(KmsError::Sealed)
    ));
    // A third share altered in one byte (its x coordinate kept) gives a wrong root: refused,
    // and the progress starts again.
    let mut forged = shares[1].to_string();
    let flip = if &forged[10..12] == "00" { "01" } else { "00" };
    forged.replace_range(10..12, flip);
    restarted
        .unseal(&w.custodian, &shares[0], &m)
        .await
        .unwrap();
    restarted
        .unseal(&w.custodian, &shares[3], &m)
        .await
        .unwrap();
    assert!(matches!(
        restarted.unseal(&w.custodian, &forged[..], &m).await,
        Err(KmsError::Invalid(_))
    ));
    let st = restarted.status();
    assert!(st.sealed);
    assert_eq!(st.progress, 0);
    assert!(matches!(
        restarted.unseal(&w.custodian, "not-hex", &m).await,
        Err(KmsError::Invalid(_))
    ));
    for s in [&shares[0], &shares[3], &shares[1]] {
        restarted.unseal(&w.custodian, s, &m).await.unwrap();
    }
    assert!(!restarted.status().sealed);
    assert_eq!(
        &restarted
            .decrypt(&w.bob, &ct, &Context::new(), &m)
            .await
            .unwrap()[..],
        b"payload"
    );
    // Sealing again forgets everything.
    restarted.seal(&w.custodian, &m).await.unwrap();
    assert!(matches!(
        restarted.decrypt(&w.bob, &ct, &Context::new(), &m).await,
        Err(KmsError::Sealed)
    ));
    // Every step is in the audit trail.
    let recs = w
        .store
        .list_audit(
            TenantCtx::new(w.admin.tenant.id),
            &AuditFilter::default(),
            &Page {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap();
    for a in ["kms.init", "kms.unseal", "kms.seal"] {
        assert!(recs.iter().any(|r| r.event.action == a), "{a} not audited");
    }
    // A wrong key file is refused for a Shamir-sealed installation.
    assert!(
        restarted
            .unseal_with_key_file(Zeroizing::new([1u8; 32]))
            .await
            .is_err()
    );
}

async fn envelope_encryption_binds_context_and_survives_rotation(backend: Backend) {
    let w = world(backend, true).await;
    let m = meta();
    let c = ctx(&[("tenant", "acme"), ("purpose", "payroll")]);
    for kt in [KeyType::Aes256Gcm, KeyType::ChaCha20Poly1305] {
        let name = format!("data-{}", kt.as_str());
        w.kms
            .create_key(
                &w.alice,
                &NewKey {
                    key_type: kt,
                    ..aes(&name)
                },
                &m,
            )
            .await
            .unwrap();
        let ct = w
            .kms
            .encrypt(&w.bob, &name, b"secret", &c, &m)
            .await
            .unwrap();
        assert!(ct.starts_with("parapet:v1:") && ct.contains(":1:"), "{ct}");
        assert!(!ct.contains('\n'));
        assert_eq!(
            &w.kms.decrypt(&w.bob, &ct, &c, &m).await.unwrap()[..],
            b"secret"
        );
        // Wrong context, altered and truncated ciphertexts are refused clearly.
        let wrong = ctx(&[("tenant", "acme"), ("purpose", "hr")]);
        assert!(matches!(
            w.kms.decrypt(&w.bob, &ct, &wrong, &m).await,
            Err(KmsError::Crypto(CryptoError::Authentication))
        ));
        let mut altered = ct.clone().into_bytes();
        let i = altered.len() - 5;
        altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(matches!(
            w.kms.decrypt(&w.bob, &altered, &c, &m).await,
            Err(KmsError::Crypto(_))
        ));
        assert!(matches!(
            w.kms.decrypt(&w.bob, &ct[..ct.len() - 30], &c, &m).await,
            Err(KmsError::Crypto(_))
        ));
        assert!(matches!(
            w.kms.decrypt(&w.bob, "hello", &c, &m).await,
            Err(KmsError::Crypto(CryptoError::Format(_)))
        ));
    }
    // Another key of the same tenant cannot open it even with the header rewritten.
    w.kms.create_key(&w.alice, &aes("other"), &m).await.unwrap();
    let ct = w
        .kms
        .encrypt(&w.bob, "data-aes256-gcm", b"x", &c, &m)
        .await
        .unwrap();
    let other = w.kms.get_key(&w.alice, "other", &m).await.unwrap().key.id;
    let first = w
        .kms
        .get_key(&w.alice, "data-aes256-gcm", &m)
        .await
        .unwrap()
        .key
        .id;
    let moved = ct.replace(&first.to_string(), &other.to_string());
    assert!(matches!(
        w.kms.decrypt(&w.bob, &moved, &c, &m).await,
        Err(KmsError::Crypto(CryptoError::Authentication))
    ));

    // Rotation: new ciphertexts use version 2, old ones still decrypt, rewrap moves them.
    let v1 = ct;
    let k = w.kms.rotate(&w.alice, "data-aes256-gcm", &m).await.unwrap();
    assert_eq!(k.latest_version, 2);
    let v2 = w
        .kms
        .encrypt(&w.bob, "data-aes256-gcm", b"y", &c, &m)
        .await
        .unwrap();
    assert!(v2.contains(":2:"));
    assert_eq!(&w.kms.decrypt(&w.bob, &v1, &c, &m).await.unwrap()[..], b"x");
    let rewrapped = w.kms.rewrap(&w.bob, &v1, &c, &m).await.unwrap();
    assert!(rewrapped.contains(":2:"));
    // Above the minimum decryption version only.
    w.kms
        .update(
            &w.alice,
            "data-aes256-gcm",
            &KeyUpdate {
                min_decryption_version: Some(2),
                ..KeyUpdate::default()
            },
            &m,
        )
        .await
        .unwrap();
    assert!(matches!(
        w.kms.decrypt(&w.bob, &v1, &c, &m).await,
        Err(KmsError::Conflict(_))
    ));
    assert_eq!(
        &w.kms.decrypt(&w.bob, &rewrapped, &c, &m).await.unwrap()[..],
        b"x"
    );
    assert!(matches!(
        w.kms
            .update(
                &w.alice,
                "data-aes256-gcm",
                &KeyUpdate {
                    min_decryption_version: Some(3),
                    ..KeyUpdate::default()
                },
                &m
            )
            .await,
        Err(KmsError::Invalid(_))
    ));

    // Data keys: the plaintext decrypts from the wrapped form; wrapped-only has no plaintext.
    let dk = w
        .kms
        .data_key(&w.bob, "data-aes256-gcm", &c, false, &m)
        .await
        .unwrap();
    let plain = dk.plaintext.clone().unwrap();
    assert_eq!(plain.len(), 32);
    assert_eq!(
        &w.kms.decrypt(&w.bob, &dk.ciphertext, &c, &m).await.unwrap()[..],
        &plain[..]
    );
    let wrapped = w
        .kms
        .data_key(&w.bob, "data-aes256-gcm", &c, true, &m)
        .await
        .unwrap();
    assert!(wrapped.plaintext.is_none());

    // Disabled keys neither encrypt nor decrypt until enabled again.
    w.kms
        .disable(&w.alice, "data-aes256-gcm", &m)
        .await
        .unwrap();
    w.clock.advance_secs(2);
    assert!(matches!(
        w.kms.decrypt(&w.bob, &rewrapped, &c, &m).await,
        Err(KmsError::Conflict(_))
    ));
    w.kms.enable(&w.alice, "data-aes256-gcm", &m).await.unwrap();
    assert!(w.kms.decrypt(&w.bob, &rewrapped, &c, &m).await.is_ok());

    // Signing and MACs, and the wrong key types refused.
    for (name, kt) in [("signer", KeyType::Ed25519), ("mac", KeyType::HmacSha256)] {
        w.kms
            .create_key(
                &w.alice,
                &NewKey {
                    key_type: kt,
                    ..aes(name)
                },
                &m,
            )
            .await
            .unwrap();
    }
    let sig = w
        .kms
        .sign(&w.bob, "signer", b"release 1.0", &m)
        .await
        .unwrap();
    assert!(
        w.kms
            .verify(&w.bob, &sig, b"release 1.0", &m)
            .await
            .unwrap()
    );
    assert!(
        !w.kms
            .verify(&w.bob, &sig, b"release 1.1", &m)
            .await
            .unwrap()
    );
    w.kms.rotate(&w.alice, "signer", &m).await.unwrap();
    assert!(
        w.kms
            .verify(&w.bob, &sig, b"release 1.0", &m)
            .await
            .unwrap()
    );
    let info = w.kms.get_key(&w.carol, "signer", &m).await.unwrap();
    assert_eq!(info.versions.len(), 2);
    assert!(
        info.versions
            .iter()
            .all(|v| v.public_key.as_ref().is_some_and(|k| k.len() == 32))
    );
    let mac = w.kms.hmac(&w.bob, "mac", b"msg", &m).await.unwrap();
    assert!(w.kms.verify_hmac(&w.bob, &mac, b"msg", &m).await.unwrap());
    assert!(!w.kms.verify_hmac(&w.bob, &mac, b"msh", &m).await.unwrap());
    assert!(matches!(
        w.kms.encrypt(&w.bob, "signer", b"x", &c, &m).await,
        Err(KmsError::Invalid(_))
    ));
    assert!(matches!(
        w.kms.sign(&w.bob, "data-aes256-gcm", b"x", &m).await,
        Err(KmsError::Invalid(_))
    ));

    // Every operation is audited with key id, version and context hash, never the plaintext.
    let recs = w
        .store
        .list_audit(
            TenantCtx::new(w.alice.tenant.id),
            &AuditFilter::default(),
            &Page {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap();
    let enc: Vec<_> = recs
        .iter()
        .filter(|r| r.event.action == "kms.encrypt")
        .collect();
    assert!(enc.len() >= 4);
    let hash = parapet_kms::crypto::context_hash(&c);
    assert!(
        enc.iter()
            .all(|r| r.event.details["context_sha256"] == hash.as_str())
    );
    assert!(enc.iter().all(|r| r.event.details["key_id"].is_string()));
    assert!(recs.iter().any(|r| r.event.action == "kms.decrypt"
        && r.event.outcome == parapet_store::AuditOutcome::Failure));
    let all = serde_json::to_string(&recs.iter().map(|r| &r.event).collect::<Vec<_>>()).unwrap();
    assert!(!all.contains("secret") && !all.contains("payroll"));
}

async fn roles_are_separate_and_keys_are_invisible_to_other_tenants(backend: Backend) {
    let w = world(backend, true).await;
    let m = meta();
    let c = Context::new();
    // Members use keys but do not manage them; auditors only read.
    assert!(matches!(
        w.kms.create_key(&w.bob, &aes("k"), &m).await,
        Err(KmsError::Forbidden(_))
    ));
    w.kms.create_key(&w.alice, &aes("k"), &m).await.unwrap();
    let ct = w.kms.encrypt(&w.bob, "k", b"p", &c, &m).await.unwrap();
    assert!(matches!(
        w.kms.rotate(&w.bob, "k", &m).await,
        Err(KmsError::Forbidden(_))
    ));
    assert_eq!(w.kms.list_keys(&w.carol, &m).await.unwrap().len(), 1);
    assert!(matches!(
        w.kms.decrypt(&w.carol, &ct, &c, &m).await,
        Err(KmsError::Forbidden(_))
    ));
    // Provider administrators do not see tenant keys (only the provider's own platform key);
    // key custodians hold no key rights.
    let provider_keys = w.kms.list_keys(&w.admin, &m).await.unwrap();
    assert_eq!(
        provider_keys
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>(),
        vec![parapet_kms::platform::PLATFORM_KEY]
    );
    assert!(matches!(
        w.kms.decrypt(&w.admin, &ct, &c, &m).await,
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        w.kms.list_keys(&w.custodian, &m).await,
        Err(KmsError::Forbidden(_))
    ));
    // Another tenant neither sees nor uses the key, by name or through its ciphertext.
    assert!(w.kms.list_keys(&w.gina, &m).await.unwrap().is_empty());
    assert!(matches!(
        w.kms.get_key(&w.gina, "k", &m).await,
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        w.kms.decrypt(&w.gina, &ct, &c, &m).await,
        Err(KmsError::NotFound(_))
    ));
    // Its own key of the same name is a different key.
    w.kms.create_key(&w.gina, &aes("k"), &m).await.unwrap();
    assert!(matches!(
        w.kms.decrypt(&w.gina, &ct, &c, &m).await,
        Err(KmsError::NotFound(_))
    ));
    // A per-key policy narrows who may use, manage and audit it.
    w.kms
        .create_key(
            &w.alice,
            &NewKey {
                policy: KeyPolicy {
                    users: vec!["alice".into()],
                    admins: vec!["alice".into()],
                    auditors: vec![],
                },
                ..aes("restricted")
            },
            &m,
        )
        .await
        .unwrap();
    assert!(matches!(
        w.kms.encrypt(&w.bob, "restricted", b"p", &c, &m).await,
        Err(KmsError::Forbidden(_))
    ));
    assert!(
        w.kms
            .encrypt(&w.alice, "restricted", b"p", &c, &m)
            .await
            .is_ok()
    );
    // Refusals are audited.
    let recs = w
        .store
        .list_audit(
            TenantCtx::new(w.alice.tenant.id),
            &AuditFilter::default(),
            &Page {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap();
    assert!(
        recs.iter()
            .any(|r| r.event.outcome == parapet_store::AuditOutcome::Denied
                && r.event.action == "kms.encrypt")
    );
    // Duplicate and invalid names.
    assert!(matches!(
        w.kms.create_key(&w.alice, &aes("k"), &m).await,
        Err(KmsError::Conflict(_))
    ));
    assert!(matches!(
        w.kms.create_key(&w.alice, &aes("bad name"), &m).await,
        Err(KmsError::Invalid(_))
    ));
}

async fn deletion_waits_then_destroys_and_issues_a_verifiable_receipt(backend: Backend) {
    let w = world(backend, true).await;
    let m = meta();
    let c = ctx(&[("db", "orders")]);
    w.kms
        .create_key(&w.alice, &aes("doomed"), &m)
        .await
        .unwrap();
    w.kms.rotate(&w.alice, "doomed", &m).await.unwrap();
    let ct = w
        .kms
        .encrypt(&w.bob, "doomed", b"rows", &c, &m)
        .await
        .unwrap();
    for days in [6, 31] {
        assert!(matches!(
            w.kms
                .schedule_deletion(&w.alice, "doomed", Some(days), &m)
                .await,
            Err(KmsError::Invalid(_))
        ));
    }
    assert!(matches!(
        w.kms.schedule_deletion(&w.bob, "doomed", Some(7), &m).await,
        Err(KmsError::Forbidden(_))
    ));
    // Scheduled, then cancelled: the key comes back disabled and can be enabled again.
    let k = w
        .kms
        .schedule_deletion(&w.alice, "doomed", Some(7), &m)
        .await
        .unwrap();
    assert_eq!(k.state, "pending-deletion");
    w.clock.advance_secs(2);
    assert!(matches!(
        w.kms.encrypt(&w.bob, "doomed", b"x", &c, &m).await,
        Err(KmsError::Conflict(_))
    ));
    let k = w.kms.cancel_deletion(&w.alice, "doomed", &m).await.unwrap();
    assert_eq!(k.state, "disabled");
    w.kms.enable(&w.alice, "doomed", &m).await.unwrap();
    w.clock.advance_secs(2);
    assert_eq!(
        &w.kms.decrypt(&w.bob, &ct, &c, &m).await.unwrap()[..],
        b"rows"
    );
    // Scheduled again: nothing happens before the waiting period ends.
    w.kms
        .schedule_deletion(&w.alice, "doomed", Some(7), &m)
        .await
        .unwrap();
    w.clock.advance_secs(7 * 86_400 - 60);
    assert!(w.kms.destroy_due().await.unwrap().is_empty());
    w.clock.advance_secs(61);
    let receipts = w.kms.destroy_due().await.unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].versions, vec![1, 2]);
    assert_eq!(receipts[0].scheduled_by, "alice@acme");
    // The material is gone from storage; the data can no longer be decrypted.
    let versions = w
        .store
        .kms_key_versions(
            TenantCtx::new(w.alice.tenant.id),
            receipts[0].key_id.parse().unwrap(),
        )
        .await
        .unwrap();
    assert!(versions.iter().all(|v| v.material.is_none()));
    assert!(w.kms.decrypt(&w.bob, &ct, &c, &m).await.is_err());
    // The receipt verifies offline with the published key, and not once altered.
    let text = w.kms.receipt(&w.carol, "doomed", &m).await.unwrap();
    let pk = w.kms.receipt_public_key().unwrap();
    let r = parapet_kms::verify_receipt(&text, &pk).unwrap();
    assert_eq!(r, receipts[0]);
    assert!(parapet_kms::verify_receipt(&text.replace('.', "x."), &pk).is_err());
    assert!(matches!(
        w.kms.receipt(&w.gina, "doomed", &m).await,
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        w.kms.enable(&w.alice, "doomed", &m).await,
        Err(KmsError::Conflict(_))
    ));
}

async fn keys_rotate_on_schedule_with_the_clock(backend: Backend) {
    let w = world(backend, true).await;
    let m = meta();
    assert!(matches!(
        w.kms
            .create_key(
                &w.alice,
                &NewKey {
                    rotation_period_secs: Some(60),
                    ..aes("too-often")
                },
                &m
            )
            .await,
        Err(KmsError::Invalid(_))
    ));
    w.kms
        .create_key(
            &w.alice,
            &NewKey {
                rotation_period_secs: Some(86_400),
                ..aes("daily")
            },
            &m,
        )
        .await
        .unwrap();
    w.kms.create_key(&w.gina, &aes("manual"), &m).await.unwrap();
    let ct = w
        .kms
        .encrypt(&w.bob, "daily", b"d", &Context::new(), &m)
        .await
        .unwrap();
    w.clock.advance_secs(86_399);
    assert_eq!(w.kms.rotate_all_due().await.unwrap(), 0);
    w.clock.advance_secs(2);
    assert_eq!(w.kms.rotate_all_due().await.unwrap(), 1);
    let k = w.kms.get_key(&w.alice, "daily", &m).await.unwrap().key;
    assert_eq!(k.latest_version, 2);
    assert_eq!(
        w.kms
            .get_key(&w.gina, "manual", &m)
            .await
            .unwrap()
            .key
            .latest_version,
        1
    );
    // The next rotation is a period later; old ciphertexts still decrypt.
    assert_eq!(w.kms.rotate_all_due().await.unwrap(), 0);
    w.clock.advance_secs(86_401);
    assert_eq!(w.kms.rotate_all_due().await.unwrap(), 1);
    assert_eq!(
        &w.kms
            .decrypt(&w.bob, &ct, &Context::new(), &m)
            .await
            .unwrap()[..],
        b"d"
    );
}

async fn wrapping_keys_expire_and_shredded_keys_stay_shredded_through_a_restore(backend: Backend) {
    use parapet_kms::backup::{Recipient, Recovery, Scope};
    use parapet_kms::byok::WrapAlg;
    use parapet_kms::wrap;
    let w = world(backend, true).await;
    let m = meta();
    // A wrapping key works until it expires (24 h), on the injected clock.
    let wk = w
        .kms
        .wrapping_key(&w.alice, WrapAlg::RsaOaepSha256, &m)
        .await
        .unwrap();
    let public = wrap::rsa_public(wk.public_key_pem.as_bytes()).unwrap();
    let wrapped = wrap::rsa_oaep_seal(&public, &[7u8; 32]).unwrap();
    w.clock.advance_secs(24 * 3600);
    let late = w
        .kms
        .import_key(&w.alice, &aes("late"), &wrapped, &wk.import_token, &m)
        .await;
    assert!(
        matches!(late, Err(KmsError::Invalid(ref e)) if e.contains("expired")),
        "{late:?}"
    );
    // Material of the wrong length is refused.
    let wk = w
        .kms
        .wrapping_key(&w.alice, WrapAlg::X25519, &m)
        .await
        .unwrap();
    let pk = wrap::x25519_public(wk.public_key_pem.as_bytes()).unwrap();
    let short = wrap::x25519_seal(
        &pk,
        &[9u8; 32],
        [1; 12],
        parapet_kms::byok::X25519_INFO,
        &[1u8; 16],
    )
    .unwrap();
    assert!(matches!(
        w.kms
            .import_key(&w.alice, &aes("short"), &short, &wk.import_token, &m)
            .await,
        Err(KmsError::Invalid(_))
    ));

    // A destroyed key travels without material and comes back destroyed, receipt included.
    w.kms.create_key(&w.alice, &aes("kept"), &m).await.unwrap();
    w.kms
        .create_key(&w.alice, &aes("shredded"), &m)
        .await
        .unwrap();
    let c = ctx(&[("a", "b")]);
    let kept_ct = w
        .kms
        .encrypt(&w.bob, "kept", b"keep", &c, &m)
        .await
        .unwrap();
    let gone_ct = w
        .kms
        .encrypt(&w.bob, "shredded", b"gone", &c, &m)
        .await
        .unwrap();
    w.kms
        .schedule_deletion(&w.alice, "shredded", Some(7), &m)
        .await
        .unwrap();
    w.clock.advance_secs(7 * 86_400 + 1);
    assert_eq!(w.kms.destroy_due().await.unwrap().len(), 1);
    let out = w
        .kms
        .backup(
            &w.alice,
            Scope::Tenant,
            &Recipient::Shamir {
                shares: 2,
                threshold: 2,
            },
            &m,
        )
        .await
        .unwrap();
    assert_eq!((out.bundle.keys, out.shares.len()), (2, 2));
    // Other roles and other tenants' administrators cannot make or restore it.
    assert!(matches!(
        w.kms
            .backup(
                &w.bob,
                Scope::Tenant,
                &Recipient::Shamir {
                    shares: 1,
                    threshold: 1
                },
                &m
            )
            .await,
        Err(KmsError::Forbidden(_))
    ));
    assert!(matches!(
        w.kms
            .backup(
                &w.alice,
                Scope::All,
                &Recipient::Shamir {
                    shares: 1,
                    threshold: 1
                },
                &m
            )
            .await,
        Err(KmsError::Forbidden(_))
    ));
    let g = w
        .kms
        .backup(
            &w.gina,
            Scope::Tenant,
            &Recipient::Shamir {
                shares: 1,
                threshold: 1,
            },
            &m,
        )
        .await
        .unwrap();
    assert_eq!(g.bundle.keys, 0);

    let w2 = world(backend, true).await;
    let recovery = Recovery::Shares(out.shares.clone());
    let one = Recovery::Shares(out.shares[..1].to_vec());
    assert!(matches!(
        w2.kms.restore(&w2.alice, &out.bundle, &one, &m).await,
        Err(KmsError::Invalid(_))
    ));
    let r = w2
        .kms
        .restore(&w2.alice, &out.bundle, &recovery, &m)
        .await
        .unwrap();
    assert_eq!(r.tenants.len(), 1);
    assert_eq!(
        &w2.kms.decrypt(&w2.bob, &kept_ct, &c, &m).await.unwrap()[..],
        b"keep"
    );
    assert!(w2.kms.decrypt(&w2.bob, &gone_ct, &c, &m).await.is_err());
    let info = w2.kms.get_key(&w2.alice, "shredded", &m).await.unwrap();
    assert_eq!(info.key.state, "destroyed");
    assert!(info.versions.iter().all(|v| v.destroyed));
    let text = w2.kms.receipt(&w2.alice, "shredded", &m).await.unwrap();
    assert!(parapet_kms::verify_receipt(&text, &w.kms.receipt_public_key().unwrap()).is_ok());
}

fn base32_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut n, mut out) = (0u64, 0u32, Vec::new());
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|x| *x == c).unwrap() as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

async fn totp_secrets_move_under_the_platform_key_and_a_sealed_service_says_so(backend: Backend) {
    use parapet_iam::mfa::{hotp, step_of};
    use parapet_store::{AuditStore, MfaStore};
    let w = world(backend, false).await;
    let m = meta();
    let actx = TenantCtx::new(w.alice.tenant.id);
    // Before the key service exists, the local secrets key seals TOTP secrets.
    let e = w.iam.totp_begin(&w.alice, &m).await.unwrap();
    let secret = base32_decode(&e.secret_base32);
    let rec = w
        .store
        .get_totp(actx, w.alice.user.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        rec.sealed_secret.starts_with("v1:"),
        "{}",
        rec.sealed_secret
    );
    // Initialized but sealed: new secrets are refused with a clear reason, old ones still open.
    let shares = w.kms.init(&w.custodian, 1, 1, &m).await.unwrap();
    let refused = w.iam.totp_begin(&w.bob, &m).await;
    assert!(
        matches!(refused, Err(parapet_iam::IamError::Unavailable(ref e)) if e.contains("sealed")),
        "{refused:?}"
    );
    // Unsealing makes the platform key and re-seals the old secret under it, audited.
    w.kms.unseal(&w.custodian, &shares[0], &m).await.unwrap();
    let rec = w
        .store
        .get_totp(actx, w.alice.user.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        rec.sealed_secret.starts_with("kms:parapet:v1:"),
        "{}",
        rec.sealed_secret
    );
    let pk = w
        .kms
        .get_key(&w.admin, parapet_kms::platform::PLATFORM_KEY, &m)
        .await
        .unwrap();
    assert!(rec.sealed_secret.contains(&pk.key.id.to_string()));
    let trail = w
        .store
        .list_audit(
            TenantCtx::new(w.admin.tenant.id),
            &parapet_store::AuditFilter {
                action: Some("kms.platform-secret.reseal".into()),
                ..Default::default()
            },
            &parapet_store::Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(trail.len(), 1);
    // The secret still works: the first code confirms the enrolment.
    let code = hotp(&secret, step_of(w.env.now()), 6);
    w.iam.totp_confirm(&w.alice, &code, &m).await.unwrap();
    // New secrets are sealed by the key service; rotating its key keeps old ones readable.
    w.iam.totp_begin(&w.bob, &m).await.unwrap();
    w.kms
        .rotate(&w.admin, parapet_kms::platform::PLATFORM_KEY, &m)
        .await
        .unwrap();
    let bob = w
        .store
        .get_totp(TenantCtx::new(w.bob.tenant.id), w.bob.user.id)
        .await
        .unwrap()
        .unwrap();
    assert!(bob.sealed_secret.starts_with("kms:"));
    assert!(w.iam.totp_begin(&w.carol, &m).await.is_ok());
    let carol = w
        .store
        .get_totp(TenantCtx::new(w.carol.tenant.id), w.carol.user.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        carol.sealed_secret.contains(":2:"),
        "{}",
        carol.sealed_secret
    );
    // Nothing changed elsewhere: a refresh keeps the loaded version.
    w.kms.refresh_platform().await.unwrap();
    assert_eq!(w.kms.platform_key().map(|(_, v)| v), Some(2));
    // The platform key is never disabled or deleted.
    assert!(matches!(
        w.kms
            .disable(&w.admin, parapet_kms::platform::PLATFORM_KEY, &m)
            .await,
        Err(KmsError::Conflict(_))
    ));
    assert!(matches!(
        w.kms
            .schedule_deletion(&w.admin, parapet_kms::platform::PLATFORM_KEY, Some(7), &m)
            .await,
        Err(KmsError::Conflict(_))
    ));
    // Sealed again: second factors cannot be enrolled, and the server says why.
    w.kms.seal(&w.custodian, &m).await.unwrap();
    let refused = w.iam.totp_begin(&w.gina, &m).await;
    assert!(
        matches!(refused, Err(parapet_iam::IamError::Unavailable(ref e)) if e.contains("sealed")),
        "{refused:?}"
    );
}

async fn batches_use_fresh_nonces_and_write_one_audit_record(backend: Backend) {
    use parapet_store::AuditStore;
    let w = world(backend, true).await;
    let m = meta();
    w.kms.create_key(&w.alice, &aes("bulk"), &m).await.unwrap();
    let c = ctx(&[("t", "1")]);
    let items: Vec<(&[u8], &Context)> = (0..130).map(|_| (&b"same"[..], &c)).collect();
    let cts = w
        .kms
        .encrypt_batch(&w.bob, "bulk", &items, &m)
        .await
        .unwrap();
    assert_eq!(cts.len(), 130);
    let distinct: std::collections::HashSet<&String> = cts.iter().collect();
    assert_eq!(distinct.len(), 130, "every item has its own nonce");
    // Decrypt them with one altered and one of another tenant's key: per-item errors.
    w.kms.create_key(&w.gina, &aes("theirs"), &m).await.unwrap();
    let theirs = w
        .kms
        .encrypt(&w.gina, "theirs", b"x", &c, &m)
        .await
        .unwrap();
    let wrong = ctx(&[("t", "2")]);
    let mut back: Vec<(&str, &Context)> = cts.iter().map(|t| (t.as_str(), &c)).collect();
    back.push((theirs.as_str(), &c));
    back.push((cts[0].as_str(), &wrong));
    let r = w.kms.decrypt_batch(&w.bob, &back, &m).await.unwrap();
    assert!(
        r[..130]
            .iter()
            .all(|x| x.as_ref().is_ok_and(|p| &p[..] == b"same"))
    );
    assert!(matches!(r[130], Err(KmsError::NotFound(_))));
    assert!(matches!(r[131], Err(KmsError::Crypto(_))));
    // A caller without the role fails the whole batch.
    assert!(matches!(
        w.kms.encrypt_batch(&w.carol, "bulk", &items, &m).await,
        Err(KmsError::Forbidden(_))
    ));
    let page = parapet_store::Page {
        after: None,
        limit: 100,
    };
    let ctx_a = TenantCtx::new(w.alice.tenant.id);
    for (action, items, failed) in [("kms.encrypt-batch", 130, 0), ("kms.decrypt-batch", 132, 2)] {
        let recs = w
            .store
            .list_audit(
                ctx_a,
                &parapet_store::AuditFilter {
                    action: Some(action.into()),
                    ..Default::default()
                },
                &page,
            )
            .await
            .unwrap();
        let ok: Vec<_> = recs
            .iter()
            .filter(|r| r.event.details["items"] == items)
            .collect();
        assert_eq!(ok.len(), 1, "{action}: {recs:?}");
        assert_eq!(ok[0].event.details["failed"], failed);
    }
}
