//! Key-ring backup and recovery through the real servers, API and CLI on both backends (issue 5,
//! X.1642 8.2(2)): a tenant's key ring sealed for custodians' X25519 and RSA keys, every
//! tenant's ring sealed by a Shamir split, each restored into a fresh installation with another
//! root key where the old ciphertexts and signatures still check; wrong recovery keys, too few
//! shares, missing tenants, taken keys and unauthorized callers refused without a partial write;
//! tenant isolation of backups; every backup and restore audited.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{ADMIN_PASSWORD, Backend, bin, start_with};

use parapet_kms::wrap;
use serde_json::{Value, json};

on_both!(a_key_ring_restored_into_a_fresh_installation_decrypts_old_ciphertexts);

const PW: &str = "kms-backup-password-123";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
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
        if status >= 400 {
            assert!(
                ct.starts_with("application/problem+json"),
                "{status} {ct}: {text}"
            );
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }
    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }
    async fn login(&self, user: &str, pw: &str) -> String {
        let res: Value = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"username": user, "password": pw}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login {user}: {res}"))
            .to_string()
    }
    /// Creates the tenants and users (tenant, user, role) that do not exist yet; returns the
    /// provider administrator's token.
    async fn people(&self, people: &[(&str, &str, &str)]) -> String {
        let admin = self.login("admin", ADMIN_PASSWORD).await;
        for (t, u, role) in people {
            if *t != "provider" {
                let (s, b) = self
                    .post("/api/v1/tenants", &admin, json!({"name": t}))
                    .await;
                assert!(s == 201 || s == 409, "{b}");
            }
            let (s, b) = self
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": u, "password": PW, "role": role}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        admin
    }
    async fn audit(&self, admin: &str, tenant: &str, action: &str) -> Vec<Value> {
        let (s, b) = self
            .get(
                &format!("/api/v1/tenants/{tenant}/audit?action={action}&limit=1000"),
                admin,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["outcome"] == "success")
            .cloned()
            .collect()
    }
}

fn cli(url: &str, token: &str, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    let out = common::run_cli(url, token, args, stdin);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn server(backend: Backend, dir: &Path, name: &str) -> (common::Server, Api) {
    let key = dir.join(format!("{name}.key"));
    let audit_key = dir.join(format!("{name}-audit.key"));
    let srv = start_with(
        backend,
        &[
            "--kms-key-file",
            &key.display().to_string(),
            "--audit-key",
            &audit_key.display().to_string(),
        ],
        &[],
    );
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    (srv, api)
}

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

fn a_key_ring_restored_into_a_fresh_installation_decrypts_old_ciphertexts(backend: Backend) {
    let dir = parapet_store_sql::testkit::temp_dir("kmsbackup");
    // The custodians' recovery keys, made outside Parapet's servers.
    let x_priv = [0x5au8; 32];
    let x_pub = wrap::x25519_public_of(&x_priv).unwrap();
    let x_pub_file = dir.join("custodian-x25519.pem");
    std::fs::write(
        &x_pub_file,
        wrap::pem("PUBLIC KEY", &wrap::x25519_spki(&x_pub)),
    )
    .unwrap();
    let x_priv_file = dir.join("custodian-x25519.key");
    std::fs::write(&x_priv_file, STANDARD.encode(x_priv)).unwrap();
    let wrong_priv_file = dir.join("wrong-x25519.key");
    std::fs::write(&wrong_priv_file, STANDARD.encode([0x11u8; 32])).unwrap();
    let rsa = wrap::rsa_generate().unwrap();
    let rsa_pub_file = dir.join("custodian-rsa.pem");
    std::fs::write(
        &rsa_pub_file,
        wrap::pem("PUBLIC KEY", &wrap::rsa_public_der(&rsa).unwrap()),
    )
    .unwrap();
    let rsa_priv_file = dir.join("custodian-rsa.key");
    std::fs::write(
        &rsa_priv_file,
        wrap::pem("PRIVATE KEY", &wrap::rsa_private_der(&rsa).unwrap()),
    )
    .unwrap();
    let p = |f: &Path| f.display().to_string();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (srv_a, a) = server(backend, &dir, "a");
    let (srv_b, b) = server(backend, &dir, "b");
    let (srv_c, c) = server(backend, &dir, "c");
    rt.block_on(async {
        let people = [
            ("provider", "kc", "key-custodian"),
            ("acme", "alice", "tenant-admin"),
            ("acme", "bob", "tenant-member"),
            ("globex", "gina", "tenant-admin"),
        ];
        let admin_a = a.people(&people).await;
        let (alice, bob, gina, kc) = (
            a.login("alice@acme", PW).await,
            a.login("bob@acme", PW).await,
            a.login("gina@globex", PW).await,
            a.login("kc", PW).await,
        );

        // Installation A: keys, rotated, and data under each version.
        for (tok, name, kt) in [
            (&alice, "payroll", "aes256-gcm"),
            (&alice, "signer", "ed25519"),
            (&gina, "ledger", "chacha20-poly1305"),
        ] {
            let (s, r) = a
                .post("/api/v1/kms/keys", tok, json!({"name": name, "type": kt}))
                .await;
            assert_eq!(s, 201, "{r}");
        }
        let ctx = json!({"dept": "hr"});
        let (_, r) = a
            .post("/api/v1/kms/keys/payroll/encrypt", &alice, json!({"plaintext": b64("v1 secret"), "context": ctx}))
            .await;
        let ct1 = r["ciphertext"].as_str().unwrap().to_string();
        let (s, _) = a.post("/api/v1/kms/keys/payroll/rotate", &alice, json!({})).await;
        assert_eq!(s, 200);
        let (_, r) = a
            .post("/api/v1/kms/keys/payroll/encrypt", &alice, json!({"plaintext": b64("v2 secret"), "context": ctx}))
            .await;
        let ct2 = r["ciphertext"].as_str().unwrap().to_string();
        assert!(ct2.contains(":2:"), "{ct2}");
        let (_, r) = a
            .post("/api/v1/kms/keys/signer/sign", &alice, json!({"message": b64("contract")}))
            .await;
        let sig = r["signature"].as_str().unwrap().to_string();
        let (_, r) = a
            .post("/api/v1/kms/keys/ledger/encrypt", &gina, json!({"plaintext": b64("globex data")}))
            .await;
        let ct_g = r["ciphertext"].as_str().unwrap().to_string();

        for (args, wanted) in [
            (&["kms", "--help"][..], &["backup", "restore", "wrapping-key", "disclosure"][..]),
            (&["kms", "key", "--help"][..], &["import"][..]),
            (&["kms", "backup", "--help"][..], &["--all", "--recipient-x25519", "--recipient-rsa", "--shares", "--threshold", "--output", "--json"][..]),
            (&["kms", "restore", "--help"][..], &["--x25519-private-key", "--rsa-private-key", "--shares-from"][..]),
        ] {
            let (ok, out, _) = cli(&a.base, "ppt_hidden", args, b"");
            assert!(ok, "{args:?}");
            for w in wanted {
                assert!(out.contains(w), "{args:?} lacks {w}: {out}");
            }
        }
        // Who may back up: not a tenant member, not another tenant's keys.
        let (ok, _, err) = cli(&a.base, &bob, &["kms", "backup", "--recipient-x25519", &p(&x_pub_file)], b"");
        assert!(!ok && err.contains("403"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        let (ok, _, err) = cli(&a.base, &alice, &["kms", "backup", "--all", "--recipient-x25519", &p(&x_pub_file)], b"");
        assert!(!ok && err.contains("403"), "{err}");
        let (ok, _, err) = cli(&a.base, &alice, &["kms", "backup", "--recipient-rsa", &p(&x_pub_file)], b"");
        assert!(!ok && err.contains("RSA"), "{err}");
        let (ok, _, err) = cli(&a.base, &alice, &["kms", "backup"], b"");
        assert!(!ok && err.contains("recipient"), "{err}");

        // Alice's ring, sealed for the custodians' X25519 key, holds acme's keys only and no
        // material in clear.
        let acme_file = dir.join("acme.backup.json");
        let (ok, _, err) = cli(&a.base, &alice, &["kms", "backup", "--recipient-x25519", &p(&x_pub_file), "-o", &p(&acme_file)], b"");
        assert!(ok, "{err}");
        let acme_backup: Value = serde_json::from_slice(&std::fs::read(&acme_file).unwrap()).unwrap();
        assert_eq!(acme_backup["format"], "parapet-kms-backup/v1");
        assert_eq!((acme_backup["keys"].as_u64(), acme_backup["tenant"].as_str()), (Some(2), Some("acme")));
        assert_eq!(acme_backup["sealed_key"]["type"], "x25519");
        let text = std::fs::read_to_string(&acme_file).unwrap();
        assert!(!text.contains("payroll") && !text.contains("ledger"), "names travel sealed");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&acme_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        // Gina's, sealed for the RSA key, holds globex's only.
        let (ok, globex_text, err) = cli(&a.base, &gina, &["kms", "backup", "--recipient-rsa", &p(&rsa_pub_file)], b"");
        assert!(ok, "{err}");
        let globex_backup: Value = serde_json::from_str(&globex_text).unwrap();
        assert_eq!((globex_backup["keys"].as_u64(), globex_backup["tenant"].as_str()), (Some(1), Some("globex")));
        assert_eq!(globex_backup["sealed_key"]["type"], "rsa-oaep-sha256");
        // The custodian's whole ring, by a 2-of-3 split (shares on standard output after the
        // file is written).
        let all_file = dir.join("all.backup.json");
        let (ok, out, err) = cli(&a.base, &kc, &["kms", "backup", "--all", "--shares", "3", "--threshold", "2", "-o", &p(&all_file)], b"");
        assert!(ok, "{err}");
        let shares: Vec<String> = out.lines().map(str::to_string).collect();
        assert_eq!(shares.len(), 3, "{out}");
        let all_backup: Value = serde_json::from_slice(&std::fs::read(&all_file).unwrap()).unwrap();
        // Three tenant keys and the provider's platform key (which seals TOTP secrets).
        assert_eq!((all_backup["keys"].as_u64(), all_backup["scope"].as_str()), (Some(4), Some("all")));

        // Every backup is in the audit trail, with its key ids, never material.
        let recs = a.audit(&admin_a, "acme", "kms.backup").await;
        assert_eq!(recs.len(), 1, "{recs:?}");
        let d = recs[0]["details"].to_string();
        assert!(d.contains("x25519") && d.contains(&ct1.split(':').nth(2).unwrap().to_string()), "{d}");
        assert_eq!(a.audit(&admin_a, "provider", "kms.backup").await.len(), 3);

        // The console: backup by shares, a wrapping key, the encryption statement; forms need
        // the CSRF token; another tenant's backup holds its own keys only.
        let csrf = "c".repeat(43);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let console = |tok: String, path: &'static str, form: Option<Vec<(&'static str, String)>>| {
            let http = http.clone();
            let url = a.base.clone();
            let csrf = csrf.clone();
            async move {
                let cookie = format!("parapet_session={tok}; parapet_csrf={csrf}");
                let r = match form {
                    None => http.get(format!("{url}{path}")).header("cookie", cookie),
                    Some(f) => http.post(format!("{url}{path}")).header("cookie", cookie).form(&f),
                }
                .send()
                .await
                .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (s, html) = console(alice.clone(), "/console/kms/custody", None).await;
        assert!(s == 200 && html.contains("Back up the key ring") && html.contains("Bring your own key"), "{html}");
        let shamir = |with: bool| {
            let mut f = vec![("recipient", "shamir".to_string()), ("shares", "2".into()), ("threshold", "2".into()), ("public_key", String::new())];
            if with {
                f.push(("csrf", csrf.clone()));
            }
            f
        };
        let (s, _) = console(alice.clone(), "/console/kms/backup", Some(shamir(false))).await;
        assert_eq!(s, 403);
        let (s, html) = console(alice.clone(), "/console/kms/backup", Some(shamir(true))).await;
        assert!(s == 200 && html.contains("parapet-kms-backup/v1") && html.contains("Recovery shares") && html.contains("2 key(s) of 1 tenant(s)"), "{html}");
        let (s, html) = console(gina.clone(), "/console/kms/backup", Some(shamir(true))).await;
        assert!(s == 200 && html.contains("1 key(s) of 1 tenant(s)"), "{html}");
        let (s, html) = console(bob.clone(), "/console/kms/backup", Some(shamir(true))).await;
        assert_eq!(s, 403, "{html}");
        let (s, html) = console(alice.clone(), "/console/kms/wrapping-key", Some(vec![("algorithm", "x25519".into()), ("csrf", csrf.clone())])).await;
        assert!(s == 200 && html.contains("BEGIN PUBLIC KEY") && html.contains("Import token"), "{html}");
        let (s, html) = console(alice.clone(), "/console/kms/encryption", None).await;
        assert!(s == 200 && html.contains("AES-256-GCM") && html.contains("TLS13_AES_256_GCM_SHA384"), "{html}");
        assert!(html.contains("TOTP secrets") && html.contains("parapet-platform-secrets"), "{html}");
        // The same statement from the CLI ('disclosure' is the SLA's word for it).
        let (ok, out, err) = cli(&a.base, &alice, &["kms", "disclosure", "--json"], b"");
        assert!(ok, "{err}");
        let d: Value = serde_json::from_str(&out).unwrap();
        let totp = d["platform"].as_array().unwrap().iter().find(|i| i["what"] == "TOTP secrets").unwrap();
        assert!(totp["how"].as_str().unwrap().contains("version 1"), "{totp}");
        assert!(d["in_transit"]["cipher_suites"].as_array().unwrap().len() >= 3, "{d}");
        let (ok, out, _) = cli(&a.base, &alice, &["kms", "disclosure"], b"");
        assert!(ok && out.contains("Parapet's own data") && out.contains("Argon2id"), "{out}");
        let (_, html) = console(alice.clone(), "/console/kms", None).await;
        assert!(html.contains("<td>parapet</td>"), "{html}");

        // Installation B (another root key): alice's ring restored into a new tenant acme.
        let admin_b = b.people(&[("acme", "alice", "tenant-admin"), ("globex", "gina", "tenant-admin"), ("provider", "kc", "key-custodian")]).await;
        let (alice_b, gina_b) = (b.login("alice@acme", PW).await, b.login("gina@globex", PW).await);
        let (s, r) = b
            .post("/api/v1/kms/decrypt", &alice_b, json!({"ciphertext": ct1, "context": ctx}))
            .await;
        assert_eq!(s, 404, "{r}");
        // A wrong private key, a wrong kind of recovery, an altered backup: refused, nothing
        // stored.
        let (ok, _, err) = cli(&b.base, &alice_b, &["kms", "restore", &p(&acme_file), "--x25519-private-key", &p(&wrong_priv_file)], b"");
        assert!(!ok && err.contains("does not open"), "{err}");
        let (ok, _, err) = cli(&b.base, &alice_b, &["kms", "restore", &p(&acme_file), "--shares-from", "-"], shares[0].as_bytes());
        assert!(!ok && err.contains("x25519"), "{err}");
        let mut altered = acme_backup.clone();
        altered["tenant"] = json!("evil");
        let (s, r) = b
            .post("/api/v1/kms/restore", &alice_b, json!({"backup": altered, "recovery": {"x25519_private_key": STANDARD.encode(x_priv)}}))
            .await;
        assert_eq!(s, 422, "{r}");
        let (s, r) = b
            .post("/api/v1/kms/restore", &alice_b, json!({"backup": acme_backup, "recovery": {}}))
            .await;
        assert_eq!(s, 400, "{r}");
        let (_, r) = b.get("/api/v1/kms/keys", &alice_b).await;
        assert_eq!(r.as_array().map(Vec::len), Some(0), "{r}");

        let (ok, out, err) = cli(&b.base, &alice_b, &["kms", "restore", &p(&acme_file), "--x25519-private-key", &p(&x_priv_file)], b"");
        assert!(ok, "{err}");
        assert!(out.contains("Restored 2 key(s) into tenant acme"), "{out}");
        for (ct, want) in [(&ct1, "v1 secret"), (&ct2, "v2 secret")] {
            let (s, r) = b
                .post("/api/v1/kms/decrypt", &alice_b, json!({"ciphertext": ct, "context": ctx}))
                .await;
            assert_eq!(s, 200, "{r}");
            assert_eq!(r["plaintext"], b64(want));
            // The context still binds.
            let (s, _) = b
                .post("/api/v1/kms/decrypt", &alice_b, json!({"ciphertext": ct, "context": {"dept": "it"}}))
                .await;
            assert_eq!(s, 422);
        }
        let (s, r) = b
            .post("/api/v1/kms/verify", &alice_b, json!({"signature": sig, "message": b64("contract")}))
            .await;
        assert_eq!((s, r["valid"].as_bool()), (200, Some(true)), "{r}");
        // Versions and settings came along: the restored key rotates to version 3.
        let (_, r) = b.get("/api/v1/kms/keys/payroll", &alice_b).await;
        assert_eq!((r["latest_version"].as_i64(), r["versions"].as_array().map(Vec::len)), (Some(2), Some(2)), "{r}");
        let (s, r) = b.post("/api/v1/kms/keys/payroll/rotate", &alice_b, json!({})).await;
        assert_eq!((s, r["latest_version"].as_i64()), (200, Some(3)), "{r}");
        // Restoring twice is refused as a whole.
        let (ok, _, err) = cli(&b.base, &alice_b, &["kms", "restore", &p(&acme_file), "--x25519-private-key", &p(&x_priv_file)], b"");
        assert!(!ok && err.contains("409") && err.contains("already has key"), "{err}");
        // Another tenant sees none of it.
        let (s, _) = b
            .post("/api/v1/kms/decrypt", &gina_b, json!({"ciphertext": ct1, "context": ctx}))
            .await;
        assert_eq!(s, 404);
        // Gina's ring, by the custodians' RSA key.
        let (ok, _, err) = cli(&b.base, &gina_b, &["kms", "restore", "-", "--rsa-private-key", &p(&rsa_priv_file), "--json"], globex_text.as_bytes());
        assert!(ok, "{err}");
        let (s, r) = b
            .post("/api/v1/kms/decrypt", &gina_b, json!({"ciphertext": ct_g}))
            .await;
        assert_eq!((s, r["plaintext"].as_str()), (200, Some(b64("globex data").as_str())), "{r}");
        let recs = b.audit(&admin_b, "acme", "kms.restore").await;
        assert_eq!(recs.len(), 1, "{recs:?}");
        assert!(recs[0]["details"].to_string().contains("payroll"));

        // Installation C: the whole ring, by the custodians' shares, into tenants of the same
        // names, which must exist first.
        let admin_c = c.people(&[("provider", "kc", "key-custodian"), ("acme", "alice", "tenant-admin"), ("acme", "bob", "tenant-member")]).await;
        let kc_c = c.login("kc", PW).await;
        let bob_c = c.login("bob@acme", PW).await;
        let (ok, _, err) = cli(&c.base, &bob_c, &["kms", "restore", &p(&all_file), "--shares-from", "-"], shares[..2].join("\n").as_bytes());
        assert!(!ok && err.contains("403"), "{err}");
        let (ok, _, err) = cli(&c.base, &kc_c, &["kms", "restore", &p(&all_file), "--shares-from", "-"], shares[1].as_bytes());
        assert!(!ok && err.contains("needs 2"), "{err}");
        let (ok, _, err) = cli(&c.base, &kc_c, &["kms", "restore", &p(&all_file), "--shares-from", "-"], shares[..2].join("\n").as_bytes());
        assert!(!ok && err.contains("globex"), "{err}");
        let (s, _) = c.post("/api/v1/tenants", &admin_c, json!({"name": "globex"})).await;
        assert_eq!(s, 201);
        let (ok, out, err) = cli(&c.base, &kc_c, &["kms", "restore", &p(&all_file), "--shares-from", "-", "--json"], format!("{}\n{}\n", shares[2], shares[0]).as_bytes());
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["tenants"].as_array().map(Vec::len), Some(2), "{v}");
        let (s, r) = c
            .post("/api/v1/kms/decrypt", &bob_c, json!({"ciphertext": ct2, "context": ctx}))
            .await;
        assert_eq!((s, r["plaintext"].as_str()), (200, Some(b64("v2 secret").as_str())), "{r}");
        assert_eq!(c.audit(&admin_c, "globex", "kms.restore").await.len(), 1);

        // The audit log's signing key is kept sealed by the key service's platform key, and the
        // log it signs verifies.
        let (s, cp) = a.get("/api/v1/audit/checkpoint", &admin_a).await;
        assert_eq!(s, 200, "{cp}");
    });
    let sealed_key = std::fs::read_to_string(dir.join("a-audit.key")).unwrap();
    assert!(sealed_key.starts_with("kms:parapet:v1:"), "{sealed_key}");
    assert!(!sealed_key.contains("PRIVATE+KEY"));
    // Without the key service's key the server cannot open it, and says why.
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    match backend {
        Backend::Sqlite => cmd.arg("--data-dir").arg(&srv_a.database),
        Backend::Postgres => cmd.arg("--database-url").arg(&srv_a.database),
    };
    let mut child = cmd
        .arg("--audit-key")
        .arg(dir.join("a-audit.key"))
        .env("PARAPET_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("a server without the key service's key started with a sealed audit key");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("--kms-key-file"), "{err}");
    // With it, a restart opens the sealed key: the log's registered key matches, so it starts.
    let mut srv_a = srv_a;
    srv_a.child.kill().unwrap();
    srv_a.child.wait().unwrap();
    let again = common::start_on(
        backend,
        &srv_a.database,
        &[
            "--kms-key-file",
            &dir.join("a.key").display().to_string(),
            "--audit-key",
            &dir.join("a-audit.key").display().to_string(),
        ],
        &[],
    );
    let status = rt.block_on(async {
        reqwest::get(format!("{}/readyz", again.url))
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);
    drop(again);
    drop((srv_a, srv_b, srv_c));
}
