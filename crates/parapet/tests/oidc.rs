//! The OpenID Connect provider (issue 4 §5, X.1642 8.1.1(1)) on both backends: clients
//! registered through the CLI and the API, the code flow with PKCE, refresh rotation with reuse
//! detection, revocation, introspection and client credentials performed by Python's `authlib`
//! with every token verified against the JWKS by `joserfc` (`tests/independent/oidc_flows.py`),
//! signing-key rotation (old key published until its tokens expire), secret rotation, client
//! removal, audit records of grants, tenant isolation of the registration API, the console page.
//!
//! The interpreter comes from `PARAPET_TEST_PYTHON` (the virtual environment `scripts/test` makes
//! with the pinned packages of `tests/independent/requirements.txt`); the test fails without it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{ADMIN_PASSWORD, Backend, bin, start};
use serde_json::{Value, json};

on_both!(oidc_provider_end_to_end);

const ALICE_PW: &str = "Wonderland-pass-0123";
const BOB_PW: &str = "Builder-pass-0123456";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/independent/oidc_flows.py")
}

fn python() -> PathBuf {
    common::python_for(&script(), "authlib, joserfc and requests")
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn login(&self, user: &str, pw: &str) -> String {
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": user, "password": pw})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// A client-credentials grant with HTTP Basic authentication: (status, body).
    async fn client_credentials(&self, tenant: &str, id: &str, secret: &str) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/oidc/{tenant}/token", self.base))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let s = res.status().as_u16();
        (s, res.json().await.unwrap_or(Value::Null))
    }
}

/// Runs the CLI as `token`; (success, stdout, stderr).
fn cli(url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env("PARAPET_SERVER", url)
        .env("PARAPET_TOKEN", token)
        .env(
            "PARAPET_CONFIG_DIR",
            parapet_store_sql::testkit::temp_dir("cfg"),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn oidc_provider_end_to_end(backend: Backend) {
    let python = python();
    let srv = start(backend);
    let url = srv.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api {
        base: url.clone(),
        http: reqwest::Client::new(),
    };
    rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            let (s, v) = api
                .call(
                    reqwest::Method::POST,
                    "/api/v1/tenants",
                    Some(&admin),
                    Some(json!({"name": t})),
                )
                .await;
            assert_eq!(s, 201, "{v}");
        }
        for (user, pw, role) in [
            ("alice", ALICE_PW, "tenant-admin"),
            ("bob", BOB_PW, "tenant-member"),
        ] {
            let (s, v) = api
                .call(
                    reqwest::Method::POST,
                    "/api/v1/tenants/acme/users",
                    Some(&admin),
                    Some(json!({"username": user, "password": pw, "role": role})),
                )
                .await;
            assert_eq!(s, 201, "{v}");
        }
        let alice = api.login("alice@acme", ALICE_PW).await;
        let bob = api.login("bob@acme", BOB_PW).await;

        // Registration through the CLI (as the tenant's administrator), secret printed once.
        let (ok, out, err) = cli(
            &url,
            &alice,
            &[
                "oidc",
                "client",
                "add",
                "--tenant",
                "acme",
                "wiki",
                "--redirect-uri",
                REDIRECT,
                "--id-token-alg",
                "RS256",
                "--json",
            ],
        );
        assert!(ok, "{out}{err}");
        let conf: Value = serde_json::from_str(&out).unwrap();
        let conf_id = conf["client_id"].as_str().unwrap().to_string();
        let conf_secret = conf["client_secret"].as_str().unwrap().to_string();
        assert!(conf_secret.starts_with("pcs_"));
        assert_eq!(conf["client_type"], "confidential");
        assert_eq!(conf["id_token_signed_response_alg"], "RS256");
        let (ok, out, err) = cli(
            &url,
            &alice,
            &[
                "oidc",
                "client",
                "add",
                "--tenant",
                "acme",
                "spa",
                "--public",
                "--redirect-uri",
                REDIRECT,
                "--json",
            ],
        );
        assert!(ok, "{out}{err}");
        let public: Value = serde_json::from_str(&out).unwrap();
        assert!(public["client_secret"].is_null());
        let public_id = public["client_id"].as_str().unwrap().to_string();
        // Bad input: a one-line message and a non-zero exit, nothing registered.
        let (ok, _, err) = cli(
            &url,
            &alice,
            &[
                "oidc",
                "client",
                "add",
                "--tenant",
                "acme",
                "bad",
                "--redirect-uri",
                "http://evil.example/cb",
            ],
        );
        assert!(!ok && err.contains("loopback"), "{err}");
        let (ok, _, err) = cli(
            &url,
            &alice,
            &[
                "oidc",
                "client",
                "add",
                "--tenant",
                "acme",
                "spa2",
                "--public",
                "--grant",
                "client_credentials",
            ],
        );
        assert!(!ok && err.contains("public client"), "{err}");
        // Another tenant's client, registered by the provider's administrator over the API.
        let (s, foreign) = api
            .call(
                reqwest::Method::POST,
                "/api/v1/tenants/globex/oidc/clients",
                Some(&admin),
                Some(json!({"name": "other", "redirect_uris": [REDIRECT]})),
            )
            .await;
        assert_eq!(s, 201, "{foreign}");
        let (s, v) = api
            .call(
                reqwest::Method::POST,
                "/api/v1/tenants/globex/oidc/clients",
                Some(&admin),
                Some(json!({"name": "x", "redirect_uris": [REDIRECT], "extra": 1})),
            )
            .await;
        assert_eq!(s, 422, "unknown fields are refused: {v}");

        // Tenant isolation and roles on the registration API.
        let (s, _) = api
            .call(
                reqwest::Method::GET,
                "/api/v1/tenants/globex/oidc/clients",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(s, 404, "a customer cannot see another tenant's clients");
        let (s, _) = api
            .call(
                reqwest::Method::POST,
                "/api/v1/tenants/globex/oidc/clients",
                Some(&alice),
                Some(json!({"name": "sneaky", "redirect_uris": [REDIRECT]})),
            )
            .await;
        assert_eq!(s, 404);
        let (s, _) = api
            .call(
                reqwest::Method::DELETE,
                &format!(
                    "/api/v1/tenants/acme/oidc/clients/{}",
                    foreign["client_id"].as_str().unwrap()
                ),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(s, 404, "another tenant's client id is unknown here");
        let (s, v) = api
            .call(
                reqwest::Method::POST,
                "/api/v1/tenants/acme/oidc/clients",
                Some(&bob),
                Some(json!({"name": "bobs", "redirect_uris": [REDIRECT]})),
            )
            .await;
        assert_eq!(s, 403, "a member cannot register clients: {v}");
        assert_eq!(v["type"], "urn:parapet:problem:forbidden");
        let (ok, out, _) = cli(
            &url,
            &alice,
            &["oidc", "client", "list", "--tenant", "acme", "--json"],
        );
        assert!(ok);
        let list: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list.as_array().unwrap().len(), 2);
        assert!(!out.contains("pcs_"), "a listing never shows secrets");

        // The flows, by independent client libraries.
        let run = |args: &[&str]| {
            Command::new(&python)
                .arg(script())
                .args(args)
                .output()
                .unwrap()
        };
        let issuer = format!("{url}/oidc/acme");
        let out = run(&[
            "flows",
            "--issuer",
            &issuer,
            "--username",
            "alice@acme",
            "--password",
            ALICE_PW,
            "--client-id",
            &conf_id,
            "--client-secret",
            &conf_secret,
            "--public-client-id",
            &public_id,
            "--redirect-uri",
            REDIRECT,
            "--foreign-client-id",
            foreign["client_id"].as_str().unwrap(),
            "--foreign-client-secret",
            foreign["client_secret"].as_str().unwrap(),
            "--id-token-alg",
            "RS256",
        ]);
        assert!(out.status.success(), "{}", show(&out));
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        let cc_token = result["client_credentials_token"]
            .as_str()
            .unwrap()
            .to_string();

        // Every grant is in the audit trail, with who and for which client.
        let (s, audit) = api
            .call(
                reqwest::Method::GET,
                "/api/v1/tenants/acme/audit?limit=500",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(s, 200);
        let items = audit["items"].as_array().unwrap();
        let count = |action: &str, outcome: &str| {
            items
                .iter()
                .filter(|r| r["action"] == action && r["outcome"] == outcome)
                .count()
        };
        assert!(count("oidc.token", "success") >= 7, "{audit}");
        assert!(
            count("oidc.token", "failure") >= 4,
            "refused grants are audited"
        );
        assert!(count("oidc.authorize", "success") >= 5);
        assert!(count("oidc.client.authenticate", "failure") >= 1);
        assert!(items.iter().any(|r| r["action"] == "oidc.token"
            && r["details"]["grant_type"] == "authorization_code"
            && r["actor"]["username"] == "alice"));
        // A client acting for itself is recorded as a service, by its client id.
        assert!(
            items.iter().any(|r| r["action"] == "oidc.token"
                && r["details"]["grant_type"] == "client_credentials"
                && r["actor"]["kind"] == "service"
                && r["actor"]["client"] == format!("oidc-client:{conf_id}")),
            "{audit}"
        );
        let dump = audit.to_string();
        assert!(
            !dump.contains(&conf_secret),
            "a client secret reached the audit trail"
        );

        // Key rotation: the new key signs, the old one stays published for its tokens.
        let (ok, out, err) = cli(
            &url,
            &alice,
            &["oidc", "key", "rotate", "--tenant", "acme", "--json"],
        );
        assert!(ok, "{err}");
        let new_kid = serde_json::from_str::<Value>(&out).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_string();
        let jwks: Value = api
            .http
            .get(format!("{issuer}/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Two new keys (ES256, RS256) and the two retired ones, published until their tokens
        // expire.
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 4, "{jwks}");
        let old = run(&[
            "verify",
            "--issuer",
            &issuer,
            "--token",
            &cc_token,
            "--audience",
            &conf_id,
        ]);
        assert!(
            old.status.success(),
            "a token of the retired key: {}",
            show(&old)
        );
        let old_kid = serde_json::from_slice::<Value>(&old.stdout).unwrap()["kid"].clone();
        assert_ne!(old_kid, json!(new_kid));
        let (s, t) = api.client_credentials("acme", &conf_id, &conf_secret).await;
        assert_eq!(s, 200, "{t}");
        let fresh = run(&[
            "verify",
            "--issuer",
            &issuer,
            "--token",
            t["access_token"].as_str().unwrap(),
        ]);
        assert!(fresh.status.success(), "{}", show(&fresh));
        assert_eq!(
            serde_json::from_slice::<Value>(&fresh.stdout).unwrap()["kid"],
            json!(new_kid)
        );
        // The verifier can fail: a token with a changed claim does not verify.
        let mut parts: Vec<String> = cc_token.split('.').map(String::from).collect();
        parts[1] = parts[1].replacen('e', "f", 1);
        let forged = parts.join(".");
        let bad = run(&["verify", "--issuer", &issuer, "--token", &forged]);
        assert!(
            !bad.status.success(),
            "a forged token verified: {}",
            show(&bad)
        );
        // Another tenant's issuer does not accept acme's tokens.
        let cross = run(&[
            "verify",
            "--issuer",
            &format!("{url}/oidc/globex"),
            "--token",
            &cc_token,
        ]);
        assert!(!cross.status.success(), "{}", show(&cross));

        // Secret rotation: the old secret stops working at once.
        let (ok, out, err) = cli(
            &url,
            &alice,
            &[
                "oidc",
                "client",
                "rotate-secret",
                "--tenant",
                "acme",
                &conf_id,
                "--json",
            ],
        );
        assert!(ok, "{err}");
        let new_secret = serde_json::from_str::<Value>(&out).unwrap()["client_secret"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(new_secret, conf_secret);
        let (s, v) = api.client_credentials("acme", &conf_id, &conf_secret).await;
        assert_eq!((s, v["error"].clone()), (401, json!("invalid_client")));
        let (s, _) = api.client_credentials("acme", &conf_id, &new_secret).await;
        assert_eq!(s, 200);
        // The client is unknown at another tenant's issuer.
        let (s, _) = api
            .client_credentials("globex", &conf_id, &new_secret)
            .await;
        assert_eq!(s, 401);

        // The console page lists the tenant's clients and registers new ones.
        let csrf = "c".repeat(43);
        let cookie = format!("parapet_session={alice}; parapet_csrf={csrf}");
        let page = api
            .http
            .get(format!("{url}/console/oidc"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains(&conf_id) && html.contains("spa") && !html.contains(&new_secret));
        assert!(!html.contains(foreign["client_id"].as_str().unwrap()));
        let res = api
            .http
            .post(format!("{url}/console/oidc"))
            .header("cookie", &cookie)
            .header("origin", &url)
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "portal"),
                ("client_type", "confidential"),
                ("redirect_uris", "https://portal.example/cb"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        assert!(
            html.contains("id=\"client-secret\">pcs_"),
            "the secret is shown once"
        );

        // Removal: the client and its tokens are gone.
        let (ok, _, err) = cli(
            &url,
            &alice,
            &["oidc", "client", "rm", "--tenant", "acme", &conf_id],
        );
        assert!(ok, "{err}");
        let (s, _) = api.client_credentials("acme", &conf_id, &new_secret).await;
        assert_eq!(s, 401);
        let (ok, _, err) = cli(
            &url,
            &alice,
            &["oidc", "client", "rm", "--tenant", "acme", &conf_id],
        );
        assert!(!ok && err.contains("no client"), "{err}");

        // Protocol endpoints of an unknown tenant, malformed requests.
        let r = api
            .http
            .get(format!(
                "{url}/oidc/nosuch/.well-known/openid-configuration"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = api
            .http
            .post(format!("{issuer}/token"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    });
    drop(srv);

    // Behind a proxy the issuer is the public URL, whatever Host the request carries.
    let srv = common::start_with(backend, &["--public-url", "https://parapet.example/"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let meta: Value = reqwest::get(format!(
            "{}/oidc/provider/.well-known/openid-configuration",
            srv.url
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(meta["issuer"], "https://parapet.example/oidc/provider");
        assert_eq!(
            meta["token_endpoint"],
            "https://parapet.example/oidc/provider/token"
        );
    });
}
