//! The OIDC provider's clock-bound rules on both backends, with a `ManualClock`: authorization
//! codes expire after a minute, access tokens after five, refresh tokens after eight hours; a
//! retired signing key leaves the JWKS once no token it signed can still be valid; a disabled user's
//! tokens stop working.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use base64::Engine;
use parapet_iam::oidc::{AuthorizeOutcome, AuthorizeRequest, ClientAuth, NewClient, TokenRequest};
use parapet_iam::sealer::{PlatformSealer, SealerError};
use parapet_iam::{IamConfig, IamService, PasswordCost, RequestMeta};
use parapet_store::{AuditFilter, AuditStore, OidcStore, Page, UserStatus};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Actor, TenantCtx};
use parapet_types::{Env, ManualClock, OsEntropy, Role, Timestamp};
use sha2::{Digest, Sha256};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    codes_tokens_and_keys_expire_with_the_clock,
    rs256_id_tokens_sealed_keys_and_service_actors
);

const ROOT: &str = "root-password-for-tests";
const PW: &str = "Wonderland-long-password-42";
const ISS: &str = "https://parapet.example/oidc/acme";
const CB: &str = "https://app.example/cb";

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.7".into()),
        user_agent: Some("t".into()),
    }
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn codes_tokens_and_keys_expire_with_the_clock(backend: Backend) {
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
        // Provider staff without a second factor (the default requires one).
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let svc = IamService::new(store.clone(), env, config).unwrap();
    svc.bootstrap(Some(ROOT.into())).await.unwrap();
    let admin = svc.login("admin", ROOT, &meta()).await.unwrap().principal;
    let acme = svc.create_tenant(&admin, "acme", &meta()).await.unwrap();
    svc.create_user(&admin, "acme", "alice", PW, Role::TenantAdmin, &meta())
        .await
        .unwrap();
    let (client, secret) = svc
        .oidc_client_add(
            &admin,
            "acme",
            &NewClient {
                name: "wiki".into(),
                public: false,
                redirect_uris: vec![CB.into()],
                grants: vec![],
                id_token_alg: None,
            },
            &meta(),
        )
        .await
        .unwrap();
    let auth = ClientAuth {
        client_id: Some(client.id.clone()),
        secret: secret.clone(),
    };
    let verifier = "v".repeat(50);
    let code = |p: parapet_iam::Principal| {
        let svc = &svc;
        let acme = acme.clone();
        let req = AuthorizeRequest {
            response_type: Some("code".into()),
            client_id: Some(client.id.clone()),
            redirect_uri: Some(CB.into()),
            scope: Some("openid profile".into()),
            code_challenge: Some(challenge(&"v".repeat(50))),
            code_challenge_method: Some("S256".into()),
            ..AuthorizeRequest::default()
        };
        async move {
            match svc
                .oidc_authorize(&acme, ISS, Some(&p), &req, &meta())
                .await
                .unwrap()
            {
                AuthorizeOutcome::Redirect(to) => to
                    .split("code=")
                    .nth(1)
                    .unwrap()
                    .split('&')
                    .next()
                    .unwrap()
                    .to_string(),
                AuthorizeOutcome::LoginRequired => panic!("logged in"),
            }
        }
    };
    let redeem = |code: String| TokenRequest {
        grant_type: "authorization_code".into(),
        code: Some(code),
        redirect_uri: Some(CB.into()),
        code_verifier: Some(verifier.clone()),
        ..TokenRequest::default()
    };
    let alice = svc
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;

    // A code is good for a minute.
    let c = code(alice.clone()).await;
    clock.advance_secs(61);
    let e = svc
        .oidc_token(&acme, ISS, &auth, &redeem(c), &meta())
        .await
        .unwrap_err();
    assert_eq!(e.error, "invalid_grant");
    let c = code(alice.clone()).await;
    clock.advance_secs(59);
    let t = svc
        .oidc_token(&acme, ISS, &auth, &redeem(c), &meta())
        .await
        .unwrap();
    let refresh = t.refresh_token.clone().unwrap();

    // The access token works for five minutes, not one second more.
    assert!(svc.oidc_userinfo(&acme, ISS, &t.access_token).await.is_ok());
    clock.advance_secs(299);
    let ui = svc
        .oidc_userinfo(&acme, ISS, &t.access_token)
        .await
        .unwrap();
    assert_eq!(ui["preferred_username"], "alice");
    clock.advance_secs(1);
    assert_eq!(
        svc.oidc_userinfo(&acme, ISS, &t.access_token)
            .await
            .unwrap_err()
            .error,
        "invalid_token"
    );
    // A token of one issuer is nothing at another.
    assert!(
        svc.oidc_userinfo(&acme, "https://other.example/oidc/acme", &t.access_token)
            .await
            .is_err()
    );

    // Key rotation: the retired keys stay published while their tokens may live, then go.
    let jwks = svc.oidc_jwks(&acme).await.unwrap();
    let ktys: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kty"].as_str().unwrap())
        .collect();
    assert_eq!(ktys.len(), 2, "one ES256 and one RS256 key: {jwks}");
    assert!(ktys.contains(&"EC") && ktys.contains(&"RSA"), "{jwks}");
    let alice = svc
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;
    let c = code(alice).await;
    let before = svc
        .oidc_token(&acme, ISS, &auth, &redeem(c), &meta())
        .await
        .unwrap();
    let kid_of = |jwt: &str| {
        let h = jwt.split('.').next().unwrap();
        let h: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap(),
        )
        .unwrap();
        h["kid"].as_str().unwrap().to_string()
    };
    let old_kid = kid_of(&before.access_token);
    svc.oidc_rotate_key(&admin, "acme", &meta()).await.unwrap();
    clock.advance_secs(2);
    let after = svc.oidc_jwks(&acme).await.unwrap();
    assert_eq!(after["keys"].as_array().unwrap().len(), 4, "{after}");
    // The last second of the old key's last token: it still verifies, its key is published.
    clock.advance_secs(297);
    assert!(
        svc.oidc_userinfo(&acme, ISS, &before.access_token)
            .await
            .is_ok()
    );
    let published = svc.oidc_jwks(&acme).await.unwrap().to_string();
    assert!(published.contains(&old_kid), "{published}");
    clock.advance_secs(1);
    assert!(
        svc.oidc_userinfo(&acme, ISS, &before.access_token)
            .await
            .is_err()
    );
    clock.advance_secs(62);
    let keys = svc.oidc_jwks(&acme).await.unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "{keys}");
    assert!(!keys.to_string().contains(&old_kid));
    assert_ne!(keys, jwks);

    // The refresh token outlives access tokens, but not eight hours.
    let refreshed = svc
        .oidc_token(
            &acme,
            ISS,
            &auth,
            &TokenRequest {
                grant_type: "refresh_token".into(),
                refresh_token: Some(refresh),
                ..TokenRequest::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    clock.advance_secs(8 * 3600 + 1);
    let e = svc
        .oidc_token(
            &acme,
            ISS,
            &auth,
            &TokenRequest {
                grant_type: "refresh_token".into(),
                refresh_token: refreshed.refresh_token.clone(),
                ..TokenRequest::default()
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.error, "invalid_grant");

    // Disabling the user ends its tokens at once.
    let alice = svc
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;
    let c = code(alice).await;
    let t = svc
        .oidc_token(&acme, ISS, &auth, &redeem(c), &meta())
        .await
        .unwrap();
    svc.set_user_status(&admin, "acme", "alice", UserStatus::Disabled, &meta())
        .await
        .unwrap();
    assert!(
        svc.oidc_userinfo(&acme, ISS, &t.access_token)
            .await
            .is_err()
    );
    let e = svc
        .oidc_token(
            &acme,
            ISS,
            &auth,
            &TokenRequest {
                grant_type: "refresh_token".into(),
                refresh_token: t.refresh_token.clone(),
                ..TokenRequest::default()
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.error, "invalid_grant");
}

/// A stand-in for the key service's sealer: another key, values prefixed `kms:`.
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

fn header_of(jwt: &str) -> serde_json::Value {
    let h = jwt.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap()
}

async fn rs256_id_tokens_sealed_keys_and_service_actors(backend: Backend) {
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
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let svc = IamService::new(store.clone(), env.clone(), config).unwrap();
    let boot = svc.bootstrap(Some(ROOT.into())).await.unwrap();
    let admin = svc.login("admin", ROOT, &meta()).await.unwrap().principal;
    let acme = svc.create_tenant(&admin, "acme", &meta()).await.unwrap();
    svc.create_user(&admin, "acme", "alice", PW, Role::TenantAdmin, &meta())
        .await
        .unwrap();
    let add = |name: &str, alg: Option<&str>| NewClient {
        name: name.into(),
        public: false,
        redirect_uris: vec![CB.into()],
        grants: vec![],
        id_token_alg: alg.map(String::from),
    };
    let bad = svc
        .oidc_client_add(&admin, "acme", &add("hs", Some("HS256")), &meta())
        .await;
    assert!(
        matches!(bad, Err(parapet_iam::IamError::Invalid(_))),
        "{bad:?}"
    );
    let (rs, rs_secret) = svc
        .oidc_client_add(&admin, "acme", &add("legacy", Some("RS256")), &meta())
        .await
        .unwrap();
    assert_eq!(rs.id_token_alg, "RS256");
    let (es, _) = svc
        .oidc_client_add(&admin, "acme", &add("modern", None), &meta())
        .await
        .unwrap();
    assert_eq!(es.id_token_alg, "ES256");
    let disc = parapet_iam::oidc::discovery(ISS);
    assert_eq!(
        disc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "RS256"])
    );

    // The code flow for the RS256 client: its ID token is RS256, its access token ES256.
    let alice = svc
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;
    let verifier = "w".repeat(60);
    let req = AuthorizeRequest {
        response_type: Some("code".into()),
        client_id: Some(rs.id.clone()),
        redirect_uri: Some(CB.into()),
        scope: Some("openid profile".into()),
        code_challenge: Some(challenge(&verifier)),
        code_challenge_method: Some("S256".into()),
        ..AuthorizeRequest::default()
    };
    let AuthorizeOutcome::Redirect(to) = svc
        .oidc_authorize(&acme, ISS, Some(&alice), &req, &meta())
        .await
        .unwrap()
    else {
        panic!("logged in")
    };
    let code = to.split("code=").nth(1).unwrap().split('&').next().unwrap();
    let auth = ClientAuth {
        client_id: Some(rs.id.clone()),
        secret: rs_secret.clone(),
    };
    let t = svc
        .oidc_token(
            &acme,
            ISS,
            &auth,
            &TokenRequest {
                grant_type: "authorization_code".into(),
                code: Some(code.into()),
                redirect_uri: Some(CB.into()),
                code_verifier: Some(verifier.clone()),
                ..TokenRequest::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    let id_header = header_of(t.id_token.as_deref().unwrap());
    assert_eq!(id_header["alg"], "RS256");
    assert_eq!(header_of(&t.access_token)["alg"], "ES256");
    let jwks = svc.oidc_jwks(&acme).await.unwrap();
    let rsa = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == id_header["kid"])
        .unwrap();
    assert_eq!(rsa["kty"], "RSA");
    assert_eq!(rsa["alg"], "RS256");
    // An access token whose header claims RS256 with the ES256 key's kid is refused (the key
    // decides the algorithm).
    let mut parts: Vec<String> = t.access_token.split('.').map(String::from).collect();
    let mut h = header_of(&t.access_token);
    h["alg"] = serde_json::json!("RS256");
    parts[0] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.to_string());
    assert!(
        svc.oidc_userinfo(&acme, ISS, &parts.join("."))
            .await
            .is_err()
    );
    assert!(svc.oidc_userinfo(&acme, ISS, &t.access_token).await.is_ok());

    // A client acting for itself is audited as a service, not as an anonymous caller.
    svc.oidc_token(
        &acme,
        ISS,
        &auth,
        &TokenRequest {
            grant_type: "client_credentials".into(),
            ..TokenRequest::default()
        },
        &meta(),
    )
    .await
    .unwrap();
    svc.oidc_revoke(&acme, ISS, &auth, &t.access_token, &meta())
        .await
        .unwrap();
    let trail = |action: &'static str| {
        let store = store.clone();
        let acme = acme.id;
        async move {
            store
                .list_audit(
                    TenantCtx::new(acme),
                    &AuditFilter {
                        action: Some(action.into()),
                        ..Default::default()
                    },
                    &Page {
                        after: None,
                        limit: 50,
                    },
                )
                .await
                .unwrap()
        }
    };
    let service = Actor::Service {
        client: format!("oidc-client:{}", rs.id),
    };
    let grants = trail("oidc.token").await;
    assert!(
        grants
            .iter()
            .any(|r| r.event.actor == service
                && r.event.details["grant_type"] == "client_credentials"),
        "{grants:?}"
    );
    let revokes = trail("oidc.revoke").await;
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].event.actor, service);
    assert_eq!(
        revokes[0].event.actor.label(),
        format!("service(oidc-client:{})", rs.id)
    );

    // The private keys are platform secrets: local-key sealed now, moved under the key service
    // by migrate_secrets (audited), and still usable.
    let keys = store.list_oidc_keys(TenantCtx::new(acme.id)).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.sealed_private.starts_with("v1:")));
    svc.set_platform_sealer(Arc::new(OtherKey([7; 32], env.clone())));
    let n = svc.migrate_secrets(&boot.provider).await.unwrap();
    assert_eq!(n, 2);
    let keys = store.list_oidc_keys(TenantCtx::new(acme.id)).await.unwrap();
    assert!(
        keys.iter().all(|k| k.sealed_private.starts_with("kms:")),
        "{keys:?}"
    );
    assert_eq!(svc.migrate_secrets(&boot.provider).await.unwrap(), 0);
    let moved = trail("kms.platform-secret.reseal").await;
    assert_eq!(moved.len(), 2);
    assert!(
        moved
            .iter()
            .all(|r| r.event.details["secret"] == "oidc-signing-key")
    );
    // The re-sealed keys still sign (a fresh ring is read after the move) and new keys are
    // sealed by the key service.
    clock.advance_secs(2);
    let es_auth = ClientAuth {
        client_id: Some(es.id.clone()),
        secret: None,
    };
    assert!(
        svc.oidc_token(
            &acme,
            ISS,
            &es_auth,
            &TokenRequest {
                grant_type: "client_credentials".into(),
                ..TokenRequest::default()
            },
            &meta(),
        )
        .await
        .is_err(),
        "a confidential client without its secret is refused"
    );
    let cc = svc
        .oidc_token(
            &acme,
            ISS,
            &auth,
            &TokenRequest {
                grant_type: "client_credentials".into(),
                ..TokenRequest::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    assert!(
        svc.oidc_introspect(&acme, ISS, &auth, &cc.access_token, &meta())
            .await
            .unwrap()["active"]
            == true
    );
    svc.oidc_rotate_key(&admin, "acme", &meta()).await.unwrap();
    let keys = store.list_oidc_keys(TenantCtx::new(acme.id)).await.unwrap();
    assert_eq!(keys.len(), 4);
    assert!(keys.iter().all(|k| k.sealed_private.starts_with("kms:")));
}
