//! WebAuthn security keys over a real store with an injected clock (X.1642 7.2.2.4(4),
//! 8.1.2(1)), with a software authenticator written here from the specification (P-256 keys
//! from aws-lc-rs, CBOR by ciborium): registration with attestation `none` and `packed`
//! self-attestation, log-in with password + key, step-up for provider staff (an enrol-only
//! session registers a key, the next log-in with it is a full session), and the refusals: wrong
//! origin, wrong relying party, replayed challenge or assertion, expired challenge, a
//! signature counter that does not grow (a clone: refused and audited), a forged signature,
//! another tenant's administrator.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use ciborium::value::Value as Cbor;
use parapet_iam::webauthn::{KeyResponse, KeyResponseBody, PendingKey, RelyingParty};
use parapet_iam::{IamConfig, IamError, IamService, LoginStep, PasswordCost, RequestMeta};
use parapet_store::{AuditFilter, AuditStore, Page};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};
use serde_json::json;
use sha2::{Digest, Sha256};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(security_keys_register_log_in_and_refuse_clones_replays_and_other_origins);

const ROOT: &str = "root-password-for-tests";
const PW: &str = "Wonderland-long-password-42";
const ORIGIN: &str = "https://parapet.example";

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.9".into()),
        user_agent: Some("t".into()),
    }
}

/// A software authenticator: one P-256 credential and its counter.
struct SoftKey {
    pair: EcdsaKeyPair,
    id: Vec<u8>,
    counter: u32,
}

impl SoftKey {
    fn new(id: u8) -> SoftKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        SoftKey {
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
                .unwrap(),
            id: vec![id; 32],
            counter: 0,
        }
    }

    fn cose(&self) -> Vec<u8> {
        let p = self.pair.public_key().as_ref();
        let key = Cbor::Map(vec![
            (Cbor::Integer(1.into()), Cbor::Integer(2.into())),
            (Cbor::Integer(3.into()), Cbor::Integer((-7).into())),
            (Cbor::Integer((-1).into()), Cbor::Integer(1.into())),
            (Cbor::Integer((-2).into()), Cbor::Bytes(p[1..33].to_vec())),
            (Cbor::Integer((-3).into()), Cbor::Bytes(p[33..65].to_vec())),
        ]);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&key, &mut out).unwrap();
        out
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    fn sign(&self, auth_data: &[u8], client_data: &[u8]) -> Vec<u8> {
        let mut msg = auth_data.to_vec();
        msg.extend_from_slice(&Sha256::digest(client_data));
        self.pair
            .sign(&SystemRandom::new(), &msg)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// The answer to `navigator.credentials.create` (`packed`: self-attestation).
    fn register(&self, p: &PendingKey, origin: &str, rp_id: &str, packed: bool) -> KeyResponse {
        let challenge = p.options["challenge"].as_str().unwrap();
        let cd = Self::client_data("webauthn.create", challenge, origin);
        let mut ad = Sha256::digest(rp_id.as_bytes()).to_vec();
        ad.push(0x01 | 0x04 | 0x40);
        ad.extend_from_slice(&self.counter.to_be_bytes());
        ad.extend_from_slice(&[0u8; 16]);
        ad.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
        ad.extend_from_slice(&self.id);
        ad.extend_from_slice(&self.cose());
        let stmt = if packed {
            Cbor::Map(vec![
                (Cbor::Text("alg".into()), Cbor::Integer((-7).into())),
                (Cbor::Text("sig".into()), Cbor::Bytes(self.sign(&ad, &cd))),
            ])
        } else {
            Cbor::Map(vec![])
        };
        let att = Cbor::Map(vec![
            (
                Cbor::Text("fmt".into()),
                Cbor::Text(if packed { "packed" } else { "none" }.into()),
            ),
            (Cbor::Text("attStmt".into()), stmt),
            (Cbor::Text("authData".into()), Cbor::Bytes(ad)),
        ]);
        let mut att_bytes = Vec::new();
        ciborium::ser::into_writer(&att, &mut att_bytes).unwrap();
        KeyResponse {
            id: B64U.encode(&self.id),
            raw_id: B64U.encode(&self.id),
            kind: "public-key".into(),
            response: KeyResponseBody {
                client_data_json: B64U.encode(&cd),
                attestation_object: Some(B64U.encode(att_bytes)),
                ..KeyResponseBody::default()
            },
        }
    }

    /// The answer to `navigator.credentials.get`; the counter moves first.
    fn assert(&mut self, p: &PendingKey, origin: &str, rp_id: &str) -> KeyResponse {
        self.counter += 1;
        self.assert_with_counter(p, origin, rp_id, self.counter)
    }

    fn assert_with_counter(
        &self,
        p: &PendingKey,
        origin: &str,
        rp_id: &str,
        counter: u32,
    ) -> KeyResponse {
        let challenge = p.options["challenge"].as_str().unwrap();
        let cd = Self::client_data("webauthn.get", challenge, origin);
        let mut ad = Sha256::digest(rp_id.as_bytes()).to_vec();
        ad.push(0x01 | 0x04);
        ad.extend_from_slice(&counter.to_be_bytes());
        let sig = self.sign(&ad, &cd);
        KeyResponse {
            id: B64U.encode(&self.id),
            raw_id: B64U.encode(&self.id),
            kind: "public-key".into(),
            response: KeyResponseBody {
                client_data_json: B64U.encode(&cd),
                authenticator_data: Some(B64U.encode(ad)),
                signature: Some(B64U.encode(sig)),
                user_handle: None,
                ..KeyResponseBody::default()
            },
        }
    }
}

async fn pending(svc: &IamService, login: &str, rp: &RelyingParty) -> PendingKey {
    let pw = if login == "admin" { ROOT } else { PW };
    match svc
        .login_step(login, pw, None, Some(rp), &meta())
        .await
        .unwrap()
    {
        LoginStep::SecurityKey(p) => p,
        LoginStep::Done(_) => panic!("{login} has a key: a challenge was expected"),
    }
}

async fn security_keys_register_log_in_and_refuse_clones_replays_and_other_origins(
    backend: Backend,
) {
    let (store, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let env = Env {
        clock: clock.clone(),
        entropy: Arc::new(OsEntropy),
    };
    // Provider staff need a second factor (the default): the step-up case.
    let config = IamConfig {
        password_cost: PasswordCost {
            memory_kib: 256,
            iterations: 1,
            lanes: 1,
        },
        ..IamConfig::default()
    };
    let svc = IamService::new(store.clone(), env, config).unwrap();
    svc.bootstrap(Some(ROOT.into())).await.unwrap();
    let rp = RelyingParty::from_origin(ORIGIN).unwrap();

    // Step-up: the administrator's password-only session may only enrol a second factor; it
    // registers a key, and the log-in with password + key is a full session.
    let enrol = svc.login("admin", ROOT, &meta()).await.unwrap().principal;
    assert!(enrol.scopes.iter().any(|s| s == "mfa-enrol-only"));
    assert!(svc.create_tenant(&enrol, "acme", &meta()).await.is_err());
    let mut admin_key = SoftKey::new(1);
    let p = svc.webauthn_register_begin(&enrol, &rp).await.unwrap();
    assert_eq!(p.options["rp"]["id"], "parapet.example");
    assert_eq!(p.options["attestation"], "none");
    let resp = admin_key.register(&p, ORIGIN, &rp.id, false);
    let k = svc
        .webauthn_register_finish(&enrol, &rp, &p.handle, "yubikey", &resp, &meta())
        .await
        .unwrap();
    assert_eq!(k.alg, -7);
    assert_eq!(k.attestation, "none");
    assert!(matches!(
        svc.login("admin", ROOT, &meta()).await,
        Err(IamError::MfaRequired)
    ));
    let p = pending(&svc, "admin", &rp).await;
    let resp = admin_key.assert(&p, ORIGIN, &rp.id);
    let admin = svc
        .webauthn_login_finish("admin", &rp, &p.handle, &resp, &meta())
        .await
        .unwrap()
        .principal;
    assert!(admin.scopes.is_empty(), "{:?}", admin.scopes);
    let acme = svc.create_tenant(&admin, "acme", &meta()).await.unwrap();
    let globex = svc.create_tenant(&admin, "globex", &meta()).await.unwrap();
    svc.create_user(&admin, "acme", "alice", PW, Role::TenantMember, &meta())
        .await
        .unwrap();
    svc.create_user(&admin, "globex", "gadmin", PW, Role::TenantAdmin, &meta())
        .await
        .unwrap();
    let alice = svc
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;

    // Registration refusals: another origin, another relying party, a replayed challenge.
    let mut key = SoftKey::new(2);
    let p = svc.webauthn_register_begin(&alice, &rp).await.unwrap();
    let e = svc
        .webauthn_register_finish(
            &alice,
            &rp,
            &p.handle,
            "phone",
            &key.register(&p, "https://evil.example", &rp.id, false),
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("origin"), "{e}");
    let e = svc
        .webauthn_register_finish(
            &alice,
            &rp,
            &p.handle,
            "phone",
            &key.register(&p, ORIGIN, &rp.id, false),
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("used or expired"), "{e}");
    let p = svc.webauthn_register_begin(&alice, &rp).await.unwrap();
    let e = svc
        .webauthn_register_finish(
            &alice,
            &rp,
            &p.handle,
            "phone",
            &key.register(&p, ORIGIN, "evil.example", false),
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("relying party"), "{e}");
    // An expired challenge.
    let p = svc.webauthn_register_begin(&alice, &rp).await.unwrap();
    clock.advance_secs(301);
    assert!(
        svc.webauthn_register_finish(
            &alice,
            &rp,
            &p.handle,
            "phone",
            &key.register(&p, ORIGIN, &rp.id, false),
            &meta(),
        )
        .await
        .is_err()
    );
    // A forged self-attestation is refused; a good one is accepted.
    let p = svc.webauthn_register_begin(&alice, &rp).await.unwrap();
    let mut forged = key.register(&p, ORIGIN, &rp.id, true);
    let other = SoftKey::new(9);
    let honest = other.register(&p, ORIGIN, &rp.id, true);
    forged.response.attestation_object = {
        // The other key's statement over this key's data.
        let att = B64U
            .decode(forged.response.attestation_object.as_deref().unwrap())
            .unwrap();
        let mut att: Cbor = ciborium::de::from_reader(att.as_slice()).unwrap();
        let theirs = B64U
            .decode(honest.response.attestation_object.as_deref().unwrap())
            .unwrap();
        let theirs: Cbor = ciborium::de::from_reader(theirs.as_slice()).unwrap();
        let stmt = theirs.as_map().unwrap()[1].1.clone();
        if let Cbor::Map(m) = &mut att {
            m[1].1 = stmt;
        }
        let mut out = Vec::new();
        ciborium::ser::into_writer(&att, &mut out).unwrap();
        Some(B64U.encode(out))
    };
    let e = svc
        .webauthn_register_finish(&alice, &rp, &p.handle, "phone", &forged, &meta())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("signature"), "{e}");
    let p = svc.webauthn_register_begin(&alice, &rp).await.unwrap();
    let k = svc
        .webauthn_register_finish(
            &alice,
            &rp,
            &p.handle,
            "phone",
            &key.register(&p, ORIGIN, &rp.id, true),
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(k.attestation, "packed");
    let list = svc.webauthn_list(&alice).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "phone");

    // Log-in: the password step asks for the key; TOTP-only clients are told a factor is due.
    assert!(matches!(
        svc.login("alice@acme", PW, &meta()).await,
        Err(IamError::MfaRequired)
    ));
    // A wrong origin and a wrong relying party are refused (and use up the challenge).
    let p = pending(&svc, "alice@acme", &rp).await;
    let r = key.assert(&p, "https://evil.example", &rp.id);
    assert!(matches!(
        svc.webauthn_login_finish("alice@acme", &rp, &p.handle, &r, &meta())
            .await,
        Err(IamError::Unauthenticated)
    ));
    let r = key.assert(&p, ORIGIN, &rp.id);
    assert!(
        svc.webauthn_login_finish("alice@acme", &rp, &p.handle, &r, &meta())
            .await
            .is_err(),
        "a challenge is single use"
    );
    let p = pending(&svc, "alice@acme", &rp).await;
    let r = key.assert(&p, ORIGIN, "evil.example");
    assert!(
        svc.webauthn_login_finish("alice@acme", &rp, &p.handle, &r, &meta())
            .await
            .is_err()
    );
    // Another user's key does not log alice in.
    let p = pending(&svc, "alice@acme", &rp).await;
    let r = admin_key.assert(&p, ORIGIN, &rp.id);
    assert!(
        svc.webauthn_login_finish("alice@acme", &rp, &p.handle, &r, &meta())
            .await
            .is_err()
    );
    // A forged signature.
    let p = pending(&svc, "alice@acme", &rp).await;
    let mut r = key.assert(&p, ORIGIN, &rp.id);
    let mut sig = B64U
        .decode(r.response.signature.as_deref().unwrap())
        .unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    r.response.signature = Some(B64U.encode(sig));
    assert!(
        svc.webauthn_login_finish("alice@acme", &rp, &p.handle, &r, &meta())
            .await
            .is_err()
    );
    // The right answer.
    let p = pending(&svc, "alice@acme", &rp).await;
    let good = key.assert(&p, ORIGIN, &rp.id);
    let issued = svc
        .webauthn_login_finish("alice@acme", &rp, &p.handle, &good, &meta())
        .await
        .unwrap();
    assert_eq!(issued.principal.user.username, "alice");
    // Replaying the same assertion: its challenge is gone; on a new challenge it answers the
    // wrong one.
    assert!(
        svc.webauthn_login_finish("alice@acme", &rp, &p.handle, &good, &meta())
            .await
            .is_err()
    );
    let p2 = pending(&svc, "alice@acme", &rp).await;
    assert!(
        svc.webauthn_login_finish("alice@acme", &rp, &p2.handle, &good, &meta())
            .await
            .is_err()
    );
    // A clone: a valid signature whose counter did not grow. Refused and audited.
    let p = pending(&svc, "alice@acme", &rp).await;
    let clone = key.assert_with_counter(&p, ORIGIN, &rp.id, key.counter);
    assert!(
        svc.webauthn_login_finish("alice@acme", &rp, &p.handle, &clone, &meta())
            .await
            .is_err()
    );
    let trail = store
        .list_audit(
            TenantCtx::new(acme.id),
            &AuditFilter {
                action: Some("auth.login".into()),
                ..Default::default()
            },
            &Page {
                after: None,
                limit: 200,
            },
        )
        .await
        .unwrap();
    assert!(
        trail
            .iter()
            .any(|r| r.event.details["possible_clone"] == true),
        "the clone is in the audit trail"
    );
    assert!(
        trail
            .iter()
            .any(|r| r.event.details["method"] == "password+webauthn")
    );
    assert!(
        trail
            .iter()
            .filter(|r| r.event.details["method"] == "webauthn")
            .count()
            >= 6,
        "every refused assertion is audited"
    );
    // The counter moved with the good log-in and keeps moving.
    let p = pending(&svc, "alice@acme", &rp).await;
    let r = key.assert(&p, ORIGIN, &rp.id);
    svc.webauthn_login_finish("alice@acme", &rp, &p.handle, &r, &meta())
        .await
        .unwrap();
    assert_eq!(
        svc.webauthn_list(&alice).await.unwrap()[0].sign_count,
        i64::from(key.counter)
    );

    // Self-service: rename; administrators of another tenant cannot see or remove the key;
    // the tenant's own (here the provider's) administrator removes it, audited.
    let id = list[0].id.clone();
    svc.webauthn_rename(&alice, &id, "work phone", &meta())
        .await
        .unwrap();
    assert_eq!(
        svc.webauthn_list(&alice).await.unwrap()[0].name,
        "work phone"
    );
    let gadmin = svc
        .login("gadmin@globex", PW, &meta())
        .await
        .unwrap()
        .principal;
    assert!(
        svc.webauthn_list_of(&gadmin, "acme", "alice", &meta())
            .await
            .is_err()
    );
    assert!(
        svc.webauthn_remove_of(&gadmin, "acme", "alice", &id, &meta())
            .await
            .is_err()
    );
    assert!(
        svc.webauthn_remove_of(&admin, "globex", "gadmin", &id, &meta())
            .await
            .is_err(),
        "a key id of another user is unknown"
    );
    assert_eq!(
        svc.webauthn_list_of(&admin, "acme", "alice", &meta())
            .await
            .unwrap()
            .len(),
        1
    );
    svc.webauthn_remove_of(&admin, "acme", "alice", &id, &meta())
        .await
        .unwrap();
    let removed = store
        .list_audit(
            TenantCtx::new(acme.id),
            &AuditFilter {
                action: Some("mfa.webauthn.remove".into()),
                ..Default::default()
            },
            &Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].event.details["by"], "administrator");
    // Without a key, alice logs in with her password again.
    assert!(matches!(
        svc.login_step("alice@acme", PW, None, Some(&rp), &meta())
            .await
            .unwrap(),
        LoginStep::Done(_)
    ));
    let _ = globex;
}
