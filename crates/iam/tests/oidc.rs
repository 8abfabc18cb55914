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
use parapet_iam::{IamConfig, IamService, PasswordCost, RequestMeta};
use parapet_store::UserStatus;
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Env, ManualClock, OsEntropy, Role, Timestamp};
use sha2::{Digest, Sha256};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(codes_tokens_and_keys_expire_with_the_clock);

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

    // Key rotation: the retired key stays published while its tokens may live, then goes.
    let jwks = svc.oidc_jwks(&acme).await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    svc.oidc_rotate_key(&admin, "acme", &meta()).await.unwrap();
    clock.advance_secs(2);
    assert_eq!(
        svc.oidc_jwks(&acme).await.unwrap()["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    clock.advance_secs(360);
    let keys = svc.oidc_jwks(&acme).await.unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
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
