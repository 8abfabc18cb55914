//! Key management through the real server, API and CLI on both backends (issue 5, X.1642 8.2):
//! Shamir init and unseal by custodians (K-1 shares leave it sealed, and /readyz says so),
//! stdin→stdout encryption with a context, rotation and rewrap, tenant isolation, bad input as
//! problems and one-line CLI errors, and crypto-shredding with a receipt verified offline.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Backend, as_dba, bin, start, start_with};
use serde_json::{Value, json};

on_both!(
    custodians_unseal_with_k_of_n_and_tenants_encrypt_through_the_cli,
    destroyed_keys_leave_a_receipt_that_verifies_offline,
);

const PW: &str = "kms-test-password-123";

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
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        let text = res.text().await.unwrap();
        if status >= 400 && !text.is_empty() {
            assert!(
                ct.starts_with("application/problem+json"),
                "{status} {ct}: {text}"
            );
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }
    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }
    async fn login(&self, user: &str, pw: &str) -> String {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": user, "password": pw})),
            )
            .await;
        assert_eq!(s, 200, "login {user}: {b}");
        b["token"].as_str().unwrap().to_string()
    }
}

/// Runs the CLI with `stdin` as standard input; returns (success, stdout bytes, stderr).
fn cli(url: &str, token: &str, args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    let out = common::run_cli(url, token, args, stdin);
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// Creates the provider's key custodian `kc`, tenants acme (alice admin, bob member) and globex
/// (gina admin); returns their tokens.
async fn people(api: &Api) -> (String, String, String, String) {
    let admin = api.login("admin", ADMIN_PASSWORD).await;
    for t in ["acme", "globex"] {
        let (s, b) = api
            .post("/api/v1/tenants", &admin, json!({"name": t}))
            .await;
        assert_eq!(s, 201, "{b}");
    }
    for (t, u, role) in [
        ("provider", "kc", "key-custodian"),
        ("acme", "alice", "tenant-admin"),
        ("acme", "bob", "tenant-member"),
        ("globex", "gina", "tenant-admin"),
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
    (
        api.login("kc", PW).await,
        api.login("alice@acme", PW).await,
        api.login("bob@acme", PW).await,
        api.login("gina@globex", PW).await,
    )
}

fn custodians_unseal_with_k_of_n_and_tenants_encrypt_through_the_cli(backend: Backend) {
    let srv = start(backend);
    let url = srv.url.clone();
    let api = Api {
        base: url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (kc, alice, bob, gina) = people(&api).await;
        for (args, wanted) in [
            (&["kms", "--help"][..], &["init", "unseal", "seal", "key", "encrypt", "decrypt", "rewrap", "datakey", "sign", "verify-receipt", "encryption"][..]),
            (&["kms", "key", "--help"][..], &["create", "list", "show", "rotate", "disable", "enable", "set", "schedule-deletion", "cancel-deletion", "receipt", "export"][..]),
            (&["kms", "encrypt", "--help"][..], &["--key", "--context", "--json"][..]),
        ] {
            let (ok, out, _) = cli(&url, "ppt_hidden", args, b"");
            let out = text(&out);
            assert!(ok, "{args:?}");
            for w in wanted {
                assert!(out.contains(w), "{args:?} lacks {w}: {out}");
            }
            assert!(!out.contains("ppt_hidden"));
        }
        let (ok, out, _) = cli(&url, &kc, &["kms", "status"], b"");
        assert!(ok);
        assert!(text(&out).contains("not initialized"), "{}", text(&out));
        let (s, b) = api.get("/readyz", None).await;
        assert_eq!((s, b["kms"].as_str()), (200, Some("uninitialized")));

        // Only custodians initialize; the shares are printed once, one per line.
        let (ok, _, err) = cli(&url, &alice, &["kms", "init", "--shares", "5", "--threshold", "3"], b"");
        assert!(!ok && err.contains("403"), "{err}");
        let (ok, out, err) = cli(&url, &kc, &["kms", "init", "--shares", "5", "--threshold", "3"], b"");
        assert!(ok, "{err}");
        let shares: Vec<String> = text(&out).lines().map(str::to_string).collect();
        assert_eq!(shares.len(), 5, "{shares:?}");
        assert!(shares.iter().all(|s| s.len() == 66));

        // Sealed: /readyz says so and key operations are refused with a clear message.
        let (s, b) = api.get("/readyz", None).await;
        assert_eq!(s, 503);
        assert!(b["detail"].as_str().unwrap().contains("sealed"), "{b}");
        let (ok, _, err) = cli(&url, &alice, &["kms", "key", "create", "payroll"], b"");
        assert!(!ok && err.contains("sealed"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");

        // K-1 shares leave it sealed; the K-th unseals.
        for sh in &shares[..2] {
            let (ok, out, err) =
                cli(&url, &kc, &["kms", "unseal", "--share-stdin"], format!("{sh}\n").as_bytes());
            assert!(ok, "{err}");
            assert!(text(&out).contains("sealed ("), "{}", text(&out));
        }
        let (ok, _, err) = cli(&url, &alice, &["kms", "key", "create", "payroll"], b"");
        assert!(!ok && err.contains("sealed"), "{err}");
        let (ok, out, err) = cli(
            &url,
            &kc,
            &["kms", "unseal", "--share-stdin", "--json"],
            format!("{}\n", shares[4]).as_bytes(),
        );
        assert!(ok, "{err}");
        let st: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(st["sealed"], false);
        let (s, b) = api.get("/readyz", None).await;
        assert_eq!((s, b["kms"].as_str()), (200, Some("unsealed")));

        // Keys through the CLI; data from stdin, ciphertext as one line, exact bytes back.
        let (ok, out, err) = cli(&url, &alice, &["kms", "key", "create", "payroll"], b"");
        assert!(ok, "{err}");
        assert!(text(&out).contains("payroll"));
        let (ok, _, err) = cli(&url, &bob, &["kms", "key", "create", "x"], b"");
        assert!(!ok && err.contains("403"), "{err}");
        let data: Vec<u8> = (0u8..=255).chain(b"\nend\n".iter().copied()).collect();
        let (ok, out, err) = cli(
            &url,
            &bob,
            &["kms", "encrypt", "--key", "payroll", "--context", "app=hr", "--context", "year=2026"],
            &data,
        );
        assert!(ok, "{err}");
        let ct = text(&out);
        assert_eq!(ct.lines().count(), 1);
        assert!(ct.starts_with("parapet:v1:") && ct.ends_with('\n'));
        let (ok, plain, err) = cli(
            &url,
            &bob,
            &["kms", "decrypt", "--context", "year=2026", "--context", "app=hr"],
            ct.as_bytes(),
        );
        assert!(ok, "{err}");
        assert_eq!(plain, data);
        // Wrong or missing context: refused, one line, non-zero.
        for args in [&["kms", "decrypt", "--context", "app=it", "--context", "year=2026"][..], &["kms", "decrypt"][..]] {
            let (ok, _, err) = cli(&url, &bob, args, ct.as_bytes());
            assert!(!ok, "{args:?}");
            assert!(err.contains("decryption failed"), "{err}");
            assert_eq!(err.trim().lines().count(), 1);
        }
        let (ok, _, err) = cli(&url, &bob, &["kms", "decrypt"], b"garbage\n");
        assert!(!ok && err.contains("not a Parapet ciphertext"), "{err}");
        let (ok, _, err) = cli(&url, &bob, &["kms", "encrypt", "--key", "payroll", "--context", "novalue"], b"x");
        assert!(!ok && err.contains("KEY=VALUE"), "{err}");

        // Rotation keeps old ciphertexts readable; rewrap moves them to the new version.
        let (ok, _, err) = cli(&url, &alice, &["kms", "key", "rotate", "payroll"], b"");
        assert!(ok, "{err}");
        let (ok, out, _) = cli(&url, &alice, &["kms", "key", "show", "payroll", "--json"], b"");
        assert!(ok);
        let k: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(k["latest_version"], 2);
        assert_eq!(k["versions"].as_array().unwrap().len(), 2);
        let (ok, re, err) = cli(&url, &bob, &["kms", "rewrap", "--context", "app=hr", "--context", "year=2026"], ct.as_bytes());
        assert!(ok, "{err}");
        assert!(text(&re).contains(":2:"));
        let (ok, plain, _) = cli(&url, &bob, &["kms", "decrypt", "--context", "app=hr", "--context", "year=2026"], &re);
        assert!(ok);
        assert_eq!(plain, data);
        let (ok, _, err) = cli(&url, &alice, &["kms", "key", "set", "payroll", "--min-decryption-version", "2"], b"");
        assert!(ok, "{err}");
        let (ok, _, err) = cli(&url, &bob, &["kms", "decrypt", "--context", "app=hr", "--context", "year=2026"], ct.as_bytes());
        assert!(!ok && err.contains("minimum decryption version"), "{err}");

        // Data keys, signatures and MACs.
        let (ok, out, err) = cli(&url, &bob, &["kms", "datakey", "--key", "payroll"], b"");
        assert!(ok, "{err}");
        let lines: Vec<String> = text(&out).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 2);
        let (ok, plain, _) = cli(&url, &bob, &["kms", "decrypt"], lines[0].as_bytes());
        assert!(ok);
        use base64::Engine;
        assert_eq!(base64::engine::general_purpose::STANDARD.encode(&plain), lines[1]);
        let (ok, out, _) = cli(&url, &bob, &["kms", "datakey", "--key", "payroll", "--wrapped-only"], b"");
        assert!(ok && text(&out).lines().count() == 1);
        assert!(cli(&url, &alice, &["kms", "key", "create", "signer", "--type", "ed25519"], b"").0);
        let (ok, sig, err) = cli(&url, &bob, &["kms", "sign", "--key", "signer"], b"release");
        assert!(ok, "{err}");
        let sig = text(&sig).trim().to_string();
        assert!(cli(&url, &bob, &["kms", "verify", "--signature", &sig], b"release").0);
        let (ok, _, err) = cli(&url, &bob, &["kms", "verify", "--signature", &sig], b"releasf");
        assert!(!ok && err.contains("invalid signature"), "{err}");

        // Another tenant sees nothing of acme's keys, by name or through a ciphertext.
        let (ok, out, _) = cli(&url, &gina, &["kms", "key", "list", "--json"], b"");
        assert!(ok);
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), json!([]));
        let (ok, _, err) = cli(&url, &gina, &["kms", "decrypt"], &re);
        assert!(!ok && err.contains("404"), "{err}");
        let (s, _) = api.get("/api/v1/kms/keys/payroll", Some(&gina)).await;
        assert_eq!(s, 404);
        let (s, _) = api.post("/api/v1/kms/keys/payroll/encrypt", &gina, json!({"plaintext": "AA=="})).await;
        assert_eq!(s, 404);
        let (s, _) = api.post("/api/v1/kms/keys/payroll/rotate", &gina, json!({})).await;
        assert_eq!(s, 404);

        // Bad input is a 4xx problem.
        let (s, _) = api.post("/api/v1/kms/keys/payroll/encrypt", &bob, json!({"plaintext": "%%%"})).await;
        assert_eq!(s, 400);
        let (s, _) = api.post("/api/v1/kms/keys/payroll/encrypt", &bob, json!({"plaintext": "AA==", "extra": 1})).await;
        assert_eq!(s, 422);
        let (s, _) = api.post("/api/v1/kms/keys", &alice, json!({"name": "x", "type": "rsa"})).await;
        assert_eq!(s, 422);
        let (s, _) = api.post("/api/v1/kms/keys/payroll/schedule-deletion", &alice, json!({"days": 3})).await;
        assert_eq!(s, 422);
        let (s, _) = api.post("/api/v1/kms/decrypt-batch", &bob, json!({"items": []})).await;
        assert_eq!(s, 400);

        // Batches: each item on its own.
        let (s, b) = api
            .post(
                "/api/v1/kms/keys/payroll/encrypt-batch",
                &bob,
                json!({"items": [{"plaintext": "aGk="}, {"plaintext": "!!"}, {"plaintext": "eW8=", "context": {"a": "b"}}]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let items = b["items"].as_array().unwrap();
        assert!(items[1]["error"].is_string());
        let (s, b) = api
            .post(
                "/api/v1/kms/decrypt-batch",
                &bob,
                json!({"items": [
                    {"ciphertext": items[0]["ciphertext"]},
                    {"ciphertext": items[2]["ciphertext"]},
                    {"ciphertext": items[2]["ciphertext"], "context": {"a": "b"}}]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["items"][0]["plaintext"], "aGk=");
        assert!(b["items"][1]["error"].as_str().unwrap().contains("decryption failed"));
        assert_eq!(b["items"][2]["plaintext"], "eW8=");
        // One audit record per batch, naming the key, its version, the items and the failures.
        let trail = |action: &'static str| {
            let api = &api;
            let alice = alice.clone();
            async move {
                let (s, b) = api
                    .get(&format!("/api/v1/tenants/acme/audit?action={action}"), Some(&alice))
                    .await;
                assert_eq!(s, 200, "{b}");
                b["items"].as_array().unwrap().clone()
            }
        };
        let enc = trail("kms.encrypt-batch").await;
        assert_eq!(enc.len(), 1, "{enc:?}");
        assert_eq!((enc[0]["details"]["items"].as_u64(), enc[0]["details"]["failed"].as_u64()), (Some(2), Some(0)));
        assert_eq!(enc[0]["details"]["context_sha256"].as_object().map(|o| o.len()), Some(2));
        let dec = trail("kms.decrypt-batch").await;
        assert_eq!(dec.len(), 1, "{dec:?}");
        assert_eq!((dec[0]["details"]["items"].as_u64(), dec[0]["details"]["failed"].as_u64()), (Some(3), Some(1)));
        assert_eq!(dec[0]["outcome"], "failure");
        assert!(!dec[0].to_string().contains("eW8"), "no data in the trail");

        // The SLA's encryption section, from the running configuration.
        let (ok, out, err) = cli(&url, &alice, &["kms", "encryption", "--json"], b"");
        assert!(ok, "{err}");
        let enc: Value = serde_json::from_slice(&out).unwrap();
        assert!(enc["at_rest"]["root"].as_str().unwrap().contains("3 needed to unseal"), "{enc}");
        assert_eq!(enc["at_rest"]["keys_by_type"]["aes256-gcm"], 1);
        assert_eq!(enc["in_transit"]["tls"], false);
        let suites = enc["in_transit"]["cipher_suites"].to_string();
        assert!(suites.contains("TLS13_AES_256_GCM_SHA384"), "{suites}");
        let (ok, out, _) = cli(&url, &gina, &["kms", "encryption"], b"");
        assert!(ok && text(&out).contains("Cipher suites"));

        // Sealing again stops everything.
        let (ok, _, err) = cli(&url, &kc, &["kms", "seal"], b"");
        assert!(ok, "{err}");
        let (ok, _, err) = cli(&url, &bob, &["kms", "decrypt"], &re);
        assert!(!ok && err.contains("sealed"), "{err}");

        // The console page shows the keys.
        let (s, _) = api.get("/api/v1/kms/status", None).await;
        assert_eq!(s, 200);
    });
}

fn destroyed_keys_leave_a_receipt_that_verifies_offline(backend: Backend) {
    let keyfile = parapet_store_sql::testkit::temp_dir("kmskey").join("root.key");
    let keyfile_s = keyfile.display().to_string();
    let srv = start_with(
        backend,
        &["--kms-key-file", &keyfile_s, "--kms-job-interval", "1"],
        &[],
    );
    let url = srv.url.clone();
    let api = Api {
        base: url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (_, alice, bob, gina) = people(&api).await;
        let (s, b) = api.get("/readyz", None).await;
        assert_eq!((s, b["kms"].as_str()), (200, Some("unsealed")), "{b}");
        assert!(cli(&url, &alice, &["kms", "key", "create", "doomed"], b"").0);
        let (ok, ct, _) = cli(
            &url,
            &bob,
            &["kms", "encrypt", "--key", "doomed"],
            b"old rows",
        );
        assert!(ok);
        let (ok, out, err) = cli(
            &url,
            &alice,
            &[
                "kms",
                "key",
                "schedule-deletion",
                "doomed",
                "--days",
                "7",
                "--json",
            ],
            b"",
        );
        assert!(ok, "{err}");
        let k: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(k["state"], "pending-deletion");
        let (ok, _, err) = cli(&url, &alice, &["kms", "key", "receipt", "doomed"], b"");
        assert!(!ok && err.contains("409"), "{err}");
        // Cancellable during the window.
        assert!(
            cli(
                &url,
                &alice,
                &["kms", "key", "cancel-deletion", "doomed"],
                b""
            )
            .0
        );
        assert!(
            cli(
                &url,
                &alice,
                &["kms", "key", "schedule-deletion", "doomed", "--days", "7"],
                b""
            )
            .0
        );
        // The window ends (the database administrator moves the due date; the server's job
        // destroys the material within a second or two).
        let database = srv.database.clone();
        std::thread::spawn(move || {
            as_dba(
                backend,
                &database,
                "UPDATE kms_keys SET deletion_due_at = 1 WHERE name = 'doomed'",
            )
        })
        .join()
        .unwrap()
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, k) = api.get("/api/v1/kms/keys/doomed", Some(&alice)).await;
            if k["state"] == "destroyed" {
                assert!(
                    k["versions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|v| v["destroyed"] == true)
                );
                break;
            }
            assert!(Instant::now() < deadline, "not destroyed: {k}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (ok, _, err) = cli(&url, &bob, &["kms", "decrypt"], &ct);
        assert!(!ok && err.contains("destroyed"), "{err}");

        // The receipt, verified offline with the published key.
        let (ok, receipt, err) = cli(&url, &alice, &["kms", "key", "receipt", "doomed"], b"");
        assert!(ok, "{err}");
        let dir = parapet_store_sql::testkit::temp_dir("receipt");
        let file = dir.join("receipt.txt");
        std::fs::write(&file, &receipt).unwrap();
        let (s, b) = api.get("/api/v1/kms/receipt-key", None).await;
        assert_eq!(s, 200);
        let pk = b["public_key"].as_str().unwrap().to_string();
        let offline = |file: &std::path::Path, key: &str| {
            Command::new(bin())
                .args([
                    "kms",
                    "verify-receipt",
                    &file.display().to_string(),
                    "--public-key",
                    key,
                    "--json",
                ])
                .env_remove("PARAPET_SERVER")
                .env_remove("PARAPET_TOKEN")
                .output()
                .unwrap()
        };
        let out = offline(&file, &pk);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["key_name"], "doomed");
        assert_eq!(r["tenant"], "acme");
        assert_eq!(r["versions"], json!([1]));
        assert_eq!(r["scheduled_by"], "alice@acme");
        // Altered, or checked with another key: refused.
        let forged = dir.join("forged.txt");
        let mut t = text(&receipt);
        let i = t.find('.').unwrap() - 3;
        let c = t.as_bytes()[i];
        t.replace_range(i..=i, if c == b'A' { "B" } else { "A" });
        std::fs::write(&forged, t).unwrap();
        let out = offline(&forged, &pk);
        assert!(!out.status.success());
        let out = offline(&file, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
        // Another tenant gets no receipt of acme's key.
        let (ok, _, err) = cli(&url, &gina, &["kms", "key", "receipt", "doomed"], b"");
        assert!(!ok && err.contains("404"), "{err}");

        // The console: the tenant's keys, a key created and rotated through its forms (which
        // need the CSRF token), nothing of acme's for globex.
        let csrf = "c".repeat(43);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = |token: String| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let r = http
                    .get(format!("{url}/console/kms"))
                    .header("cookie", format!("parapet_session={token}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.text().await.unwrap()
            }
        };
        let html = page(alice.clone()).await;
        assert!(
            html.contains("doomed") && html.contains("destroyed"),
            "{html}"
        );
        assert!(html.contains("unsealed") && html.contains("Deletion receipt"));
        let form = |path: String, fields: Vec<(&'static str, String)>, with_csrf: bool| {
            let http = http.clone();
            let url = url.clone();
            let alice = alice.clone();
            let csrf = csrf.clone();
            async move {
                let mut f = fields;
                if with_csrf {
                    f.push(("csrf", csrf.clone()));
                }
                http.post(format!("{url}{path}"))
                    .header(
                        "cookie",
                        format!("parapet_session={alice}; parapet_csrf={csrf}"),
                    )
                    .form(&f)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let fields = || {
            vec![
                ("name", "from-console".to_string()),
                ("key_type", "chacha20-poly1305".to_string()),
            ]
        };
        assert_eq!(form("/console/kms".into(), fields(), false).await, 403);
        assert_eq!(form("/console/kms".into(), fields(), true).await, 303);
        let (s, k) = api.get("/api/v1/kms/keys/from-console", Some(&alice)).await;
        assert_eq!((s, k["type"].as_str()), (200, Some("chacha20-poly1305")));
        let id = k["id"].as_str().unwrap().to_string();
        assert_eq!(
            form(format!("/console/kms/keys/{id}/rotate"), vec![], true).await,
            303
        );
        let (_, k) = api.get("/api/v1/kms/keys/from-console", Some(&alice)).await;
        assert_eq!(k["latest_version"], 2);
        assert_eq!(
            form(
                format!("/console/kms/keys/{id}/schedule-deletion"),
                vec![("days", "2".into())],
                true
            )
            .await,
            422
        );
        let html = page(gina.clone()).await;
        assert!(!html.contains("from-console") && !html.contains("doomed"));
    });
}
