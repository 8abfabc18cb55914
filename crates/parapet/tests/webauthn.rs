//! Security keys over HTTP and the CLI, on both backends, with a software authenticator
//! (P-256 from aws-lc-rs, CBOR by ciborium) answering the server's challenges as a browser at
//! the `--public-url` origin would: registration, the two-step log-in (password, then the key),
//! a wrong origin refused, bad input as problem+json, the CLI's listing/rename/removal with
//! `--json`, an administrator removing a user's key (audited), and tenant isolation.
//! (The same ceremonies in a real browser: `tests/browser/webauthn.test.mjs`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use ciborium::value::Value as Cbor;
use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, run_cli, start_with};
use reqwest::Method as M;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both!(security_keys_over_the_api_and_cli);

const ORIGIN: &str = "https://parapet.example";
const RP_ID: &str = "parapet.example";
const PW: &str = "Wonderland-long-password-42";

struct SoftKey {
    pair: EcdsaKeyPair,
    id: Vec<u8>,
    counter: u32,
}

impl SoftKey {
    fn new() -> SoftKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        SoftKey {
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
                .unwrap(),
            id: vec![7; 24],
            counter: 0,
        }
    }

    fn sign(&self, ad: &[u8], cd: &[u8]) -> Vec<u8> {
        let mut msg = ad.to_vec();
        msg.extend_from_slice(&Sha256::digest(cd));
        self.pair
            .sign(&SystemRandom::new(), &msg)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn register(&self, options: &Value) -> Value {
        let cd = json!({"type": "webauthn.create", "challenge": options["challenge"],
                        "origin": ORIGIN})
        .to_string();
        let p = self.pair.public_key().as_ref();
        let cose = Cbor::Map(vec![
            (Cbor::Integer(1.into()), Cbor::Integer(2.into())),
            (Cbor::Integer(3.into()), Cbor::Integer((-7).into())),
            (Cbor::Integer((-1).into()), Cbor::Integer(1.into())),
            (Cbor::Integer((-2).into()), Cbor::Bytes(p[1..33].to_vec())),
            (Cbor::Integer((-3).into()), Cbor::Bytes(p[33..65].to_vec())),
        ]);
        let mut ad = Sha256::digest(RP_ID.as_bytes()).to_vec();
        ad.push(0x45);
        ad.extend_from_slice(&0u32.to_be_bytes());
        ad.extend_from_slice(&[0u8; 16]);
        ad.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
        ad.extend_from_slice(&self.id);
        ciborium::ser::into_writer(&cose, &mut ad).unwrap();
        let att = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(ad)),
        ]);
        let mut att_bytes = Vec::new();
        ciborium::ser::into_writer(&att, &mut att_bytes).unwrap();
        json!({"id": B64U.encode(&self.id), "rawId": B64U.encode(&self.id), "type": "public-key",
               "response": {"clientDataJSON": B64U.encode(cd.as_bytes()),
                            "attestationObject": B64U.encode(att_bytes)}})
    }

    fn assert(&mut self, options: &Value, origin: &str) -> Value {
        self.counter += 1;
        let cd = json!({"type": "webauthn.get", "challenge": options["challenge"],
                        "origin": origin})
        .to_string();
        let mut ad = Sha256::digest(RP_ID.as_bytes()).to_vec();
        ad.push(0x05);
        ad.extend_from_slice(&self.counter.to_be_bytes());
        let sig = self.sign(&ad, cd.as_bytes());
        json!({"id": B64U.encode(&self.id), "rawId": B64U.encode(&self.id), "type": "public-key",
               "response": {"clientDataJSON": B64U.encode(cd.as_bytes()),
                            "authenticatorData": B64U.encode(ad),
                            "signature": B64U.encode(sig)}})
    }
}

fn cli(url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let o = run_cli(url, token, args, b"");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn security_keys_over_the_api_and_cli(backend: Backend) {
    let srv = start_with(backend, &["--public-url", ORIGIN], &[]);
    let url = srv.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api {
            base: url.clone(),
            http: reqwest::Client::new(),
        };
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            let (s, b) = api
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201, "{b}");
        }
        for (t, u, role) in [
            ("acme", "alice", "tenant-member"),
            ("acme", "boss", "tenant-admin"),
            ("globex", "gadmin", "tenant-admin"),
        ] {
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": u, "password": PW, "role": role}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let alice = api.login("alice@acme", PW).await;
        let boss = api.login("boss@acme", PW).await;
        let gadmin = api.login("gadmin@globex", PW).await;

        // Registration: the options name the relying party of --public-url.
        let (s, ch) = api
            .post("/api/v1/me/webauthn/register", &alice, json!({}))
            .await;
        assert_eq!(s, 200, "{ch}");
        assert_eq!(ch["publicKey"]["rp"]["id"], RP_ID);
        assert_eq!(ch["publicKey"]["user"]["name"], "alice@acme");
        // Bad input: problem+json, nothing stored.
        let (s, p) = api
            .post(
                "/api/v1/me/webauthn/register/finish",
                &alice,
                json!({"handle": ch["handle"], "name": "k", "credential": {"rawId": 5}}),
            )
            .await;
        assert_eq!(s, 422, "{p}");
        assert_eq!(p["type"], "urn:parapet:problem:invalid");
        let mut key = SoftKey::new();
        let (s, k) = api
            .post(
                "/api/v1/me/webauthn/register/finish",
                &alice,
                json!({"handle": ch["handle"], "name": "yubikey",
                       "credential": key.register(&ch["publicKey"])}),
            )
            .await;
        assert_eq!(s, 201, "{k}");
        // A challenge serves once.
        let (s, again) = api
            .post(
                "/api/v1/me/webauthn/register/finish",
                &alice,
                json!({"handle": ch["handle"], "name": "second",
                       "credential": key.register(&ch["publicKey"])}),
            )
            .await;
        assert_eq!(s, 422, "{again}");
        assert_eq!(k["alg"], -7);
        let key_id = k["id"].as_str().unwrap().to_string();

        // Log-in: a code-less password log-in is told a factor is due; the two-step log-in
        // with the key gives a session; another origin is refused.
        let res = api
            .http
            .post(format!("{url}/api/v1/auth/login"))
            .json(&json!({"username": "alice@acme", "password": PW}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["type"], "urn:parapet:problem:mfa-required");
        let begin = |pw: &'static str| {
            let api = &api;
            async move {
                let res = api
                    .http
                    .post(format!("{}/api/v1/auth/login/webauthn", api.base))
                    .json(&json!({"username": "alice@acme", "password": pw}))
                    .send()
                    .await
                    .unwrap();
                let s = res.status().as_u16();
                (s, res.json::<Value>().await.unwrap())
            }
        };
        let (s, wrong) = begin("not-the-password-1").await;
        assert_eq!(s, 401, "{wrong}");
        let (s, step) = begin(PW).await;
        assert_eq!(s, 200, "{step}");
        assert!(step["session"].is_null());
        let finish = |handle: Value, credential: Value| {
            let api = &api;
            async move {
                let res = api
                    .http
                    .post(format!("{}/api/v1/auth/login/webauthn/finish", api.base))
                    .json(&json!({"username": "alice@acme", "handle": handle,
                                  "credential": credential}))
                    .send()
                    .await
                    .unwrap();
                let s = res.status().as_u16();
                (s, res.json::<Value>().await.unwrap())
            }
        };
        let (s, b) = finish(
            step["challenge"]["handle"].clone(),
            key.assert(&step["challenge"]["publicKey"], "https://evil.example"),
        )
        .await;
        assert_eq!(s, 401, "{b}");
        let (_, step) = begin(PW).await;
        let (s, b) = finish(
            step["challenge"]["handle"].clone(),
            key.assert(&step["challenge"]["publicKey"], ORIGIN),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        let token = b["token"].as_str().unwrap().to_string();
        let (s, me) = api.get("/api/v1/auth/whoami", &token).await;
        assert_eq!(s, 200, "{me}");
        assert_eq!(me["username"], "alice");

        // The CLI: list (JSON), rename, a removal of an unknown key fails in one line.
        let (ok, out, err) = cli(&url, &token, &["mfa", "keys", "--json"]);
        assert!(ok, "{err}");
        let list: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["name"], "yubikey");
        assert!(list[0]["last_used_at"].is_string());
        assert!(
            !out.contains("public_key"),
            "the public key stays on the server"
        );
        let (ok, _, err) = cli(&url, &token, &["mfa", "key-rename", &key_id, "office key"]);
        assert!(ok, "{err}");
        let (ok, out, _) = cli(&url, &token, &["mfa", "keys"]);
        assert!(ok && out.contains("office key"), "{out}");
        let (ok, _, err) = cli(&url, &token, &["mfa", "key-rm", "no-such-key"]);
        assert!(!ok, "removing an unknown key succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{err}");

        // Tenant isolation: another tenant's administrator sees and removes nothing.
        let (s, _) = api
            .get("/api/v1/tenants/acme/users/alice/webauthn", &gadmin)
            .await;
        assert_eq!(s, 404);
        let (s, _, _) = api
            .req(
                M::DELETE,
                &format!("/api/v1/tenants/acme/users/alice/webauthn/{key_id}"),
                &gadmin,
                &[],
                None,
            )
            .await;
        assert_eq!(s, 404);
        // A member may not manage other users' keys.
        let (s, _) = api
            .get("/api/v1/tenants/acme/users/boss/webauthn", &alice)
            .await;
        assert_eq!(s, 403);
        // The tenant's administrator removes alice's key (lost), through the CLI; audited.
        let (ok, out, err) = cli(
            &url,
            &boss,
            &[
                "mfa", "keys", "--tenant", "acme", "--user", "alice", "--json",
            ],
        );
        assert!(ok, "{err}");
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()[0]["id"],
            json!(key_id)
        );
        let (ok, _, err) = cli(
            &url,
            &boss,
            &[
                "mfa", "key-rm", &key_id, "--tenant", "acme", "--user", "alice", "--json",
            ],
        );
        assert!(ok, "{err}");
        let (s, audit) = api
            .get(
                "/api/v1/tenants/acme/audit?action=mfa.webauthn.remove",
                &boss,
            )
            .await;
        assert_eq!(s, 200, "{audit}");
        let items = audit["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{audit}");
        assert_eq!(items[0]["details"]["by"], "administrator");
        assert_eq!(items[0]["actor"]["username"], "boss");
        // Without a key, the first step gives the session itself.
        let (s, step) = begin(PW).await;
        assert_eq!(s, 200, "{step}");
        assert!(step["challenge"].is_null());
        assert!(step["session"]["token"].is_string());
    });
}
