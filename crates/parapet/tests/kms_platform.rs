//! Platform secrets under the key service (issue 5 §7, X.1642 8.2, 8.1.2(3)), through the real
//! server on both backends: a webhook secret and the audit log's signing key, created before the
//! key service existed, are re-sealed under its platform key at the first unseal (the secret
//! still signs the same way, each re-seal is audited); a server restarted sealed (Shamir mode)
//! keeps its audit records waiting, and the checkpoint signed once custodians unseal covers
//! them, with the same key, verifiable offline against the checkpoint signed before.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::api::Api;
use common::webhook::{receiver, verify_signature};
use common::{ADMIN_PASSWORD, Backend, bin, dba_text, pg_audit_key, start_on, start_with};
use serde_json::{Value, json};

on_both!(secrets_move_under_the_platform_key_and_a_sealed_restart_defers_checkpoints);

const PW: &str = "kms-platform-password-1";

fn cli(url: &str, token: &str, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    let out = common::run_cli(url, token, args, stdin);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The tree size of a signed checkpoint (its second line).
fn size_of(checkpoint: &str) -> u64 {
    checkpoint.lines().nth(1).unwrap().parse().unwrap()
}

async fn checkpoint(api: &Api, token: &str) -> String {
    let res = api
        .http
        .get(format!("{}/api/v1/audit/checkpoint", api.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.text().await.unwrap()
}

/// The sealed webhook secret of the channel `name`, read as the database administrator would.
fn sealed_secret(backend: Backend, database: &str, name: &str) -> String {
    dba_text(
        backend,
        database,
        &format!("SELECT sealed_secret FROM notify_channels WHERE name = '{name}'"),
    )
    .unwrap()
}

fn audit_key_path(backend: Backend, database: &str) -> PathBuf {
    match backend {
        Backend::Sqlite => PathBuf::from(database).join("audit-signing.key"),
        Backend::Postgres => pg_audit_key(database),
    }
}

fn secrets_move_under_the_platform_key_and_a_sealed_restart_defers_checkpoints(backend: Backend) {
    let srv = start_with(backend, &[], &[]);
    let database = srv.database.clone();
    let key_file = audit_key_path(backend, &database);
    let hooks = receiver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (shares, cp1) = rt.block_on(async {
        let api = Api {
            base: srv.url.clone(),
            http: reqwest::Client::new(),
        };
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let (s, b) = api
            .post(
                "/api/v1/tenants/provider/users",
                &admin,
                json!({"username": "kc", "password": PW, "role": "key-custodian"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let kc = api.login("kc", PW).await;

        // Before the key service exists: the local key seals, the audit key is in clear.
        let (s, b) = api
            .post(
                "/api/v1/tenants/provider/notify/channels",
                &admin,
                json!({"name": "soc-hook", "kind": "webhook",
                       "url": format!("http://127.0.0.1:{}/hook", hooks.port)}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let secret = b["secret"].as_str().unwrap().to_string();
        let before = sealed_secret(backend, &database, "soc-hook");
        assert!(before.starts_with("v1:"), "{before}");
        let key_text = std::fs::read_to_string(&key_file).unwrap();
        assert!(
            !key_text.starts_with("kms:"),
            "the audit key starts in clear"
        );
        let (_, stmt) = api.get("/api/v1/kms/encryption", &admin).await;
        let platform = stmt["platform"].to_string();
        assert!(platform.contains("local secrets key"), "{platform}");

        // Custodians initialize (3 shares, 2 needed) and unseal.
        let (ok, out, err) = cli(
            &srv.url,
            &kc,
            &["kms", "init", "--shares", "3", "--threshold", "2"],
            b"",
        );
        assert!(ok, "{err}");
        let shares: Vec<String> = out.lines().map(str::to_string).collect();
        assert_eq!(shares.len(), 3);
        for sh in &shares[..2] {
            let (ok, _, err) = cli(
                &srv.url,
                &kc,
                &["kms", "unseal", "--share-stdin"],
                format!("{sh}\n").as_bytes(),
            );
            assert!(ok, "{err}");
        }

        // Both moved under the platform key, and each move is in the audit log.
        let after = sealed_secret(backend, &database, "soc-hook");
        assert!(after.starts_with("kms:"), "{after}");
        assert!(!after.contains(&secret));
        let key_text = std::fs::read_to_string(&key_file).unwrap();
        assert!(
            key_text.starts_with("kms:"),
            "the audit key is sealed in place"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (s, b) = api
            .get(
                "/api/v1/tenants/provider/audit?action=kms.platform-secret.reseal&limit=50",
                &admin,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let recs = b["items"]
            .as_array()
            .or_else(|| b.as_array())
            .unwrap()
            .clone();
        assert!(
            recs.iter().any(|r| r.to_string().contains("webhook")),
            "no re-seal record for the webhook secret: {b}"
        );
        let (_, stmt) = api.get("/api/v1/kms/encryption", &admin).await;
        let platform = stmt["platform"].to_string();
        assert!(platform.contains("Webhook signing secrets"), "{platform}");
        assert!(
            !platform.contains(
                "local secrets key file (parapet-secrets.key), bound to tenant and channel"
            ),
            "{platform}"
        );

        // The secret still signs as before: a test message verifies with the secret shown once.
        let (s, m) = api
            .post(
                "/api/v1/tenants/provider/notify/channels/soc-hook/test",
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(s, 202, "{m}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while hooks.got.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the webhook was not delivered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = hooks.got.lock().unwrap()[0].clone();
        verify_signature(&got, &secret);

        // The checkpoint before the restart.
        let deadline = Instant::now() + Duration::from_secs(30);
        let cp1 = loop {
            let cp = checkpoint(&api, &admin).await;
            let n = size_of(&cp);
            tokio::time::sleep(Duration::from_millis(300)).await;
            if size_of(&checkpoint(&api, &admin).await) == n {
                break cp;
            }
            assert!(Instant::now() < deadline);
        };
        (shares, cp1)
    });
    let mut srv = srv;
    srv.owns_database = false;
    drop(srv);

    // Restarted without a key file: sealed, the audit key waits for the custodians.
    let mut srv = start_on(backend, &database, &[], &[]);
    srv.owns_database = true;
    let said = srv.stdout.lock().unwrap().join("\n");
    assert!(
        said.contains("checkpoints are signed once key custodians unseal"),
        "{said}"
    );
    rt.block_on(async {
        let api = Api {
            base: srv.url.clone(),
            http: reqwest::Client::new(),
        };
        // Records keep being written: a failed log-in, then a good one.
        let res = api
            .http
            .post(format!("{}/api/v1/auth/login", api.base))
            .json(&json!({"username": "admin", "password": "not-the-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let kc = api.login("kc", PW).await;
        // The last checkpoint stands while the key waits.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(checkpoint(&api, &admin).await, cp1);

        for sh in &shares[1..] {
            let (ok, _, err) = cli(
                &srv.url,
                &kc,
                &["kms", "unseal", "--share-stdin"],
                format!("{sh}\n").as_bytes(),
            );
            assert!(ok, "{err}");
        }
        // Signed again, with the same key, covering the records written while it waited.
        let deadline = Instant::now() + Duration::from_secs(30);
        let cp2 = loop {
            let cp = checkpoint(&api, &admin).await;
            if size_of(&cp) > size_of(&cp1) + 2 {
                break cp;
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint after the unseal: {cp}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let dir = parapet_store_sql::testkit::temp_dir("kms-platform-verify");
        let (f1, f2, entries) = (dir.join("cp1"), dir.join("cp2"), dir.join("entries.ndjson"));
        std::fs::write(&f1, &cp1).unwrap();
        let (ok, vkey, err) = cli(&srv.url, &admin, &["audit", "public-key"], b"");
        assert!(ok, "{err}");
        let (ok, _, err) = cli(
            &srv.url,
            &admin,
            &[
                "audit",
                "export",
                "-o",
                entries.to_str().unwrap(),
                "--checkpoint",
                f2.to_str().unwrap(),
            ],
            b"",
        );
        assert!(ok, "{err}");
        assert!(size_of(&std::fs::read_to_string(&f2).unwrap()) >= size_of(&cp2));
        // Offline, as an auditor would: no server, the key given.
        let out = Command::new(bin())
            .args(["audit", "verify", "--json", "--checkpoint"])
            .arg(&f2)
            .arg("--entries")
            .arg(&entries)
            .arg("--previous-checkpoint")
            .arg(&f1)
            .args(["--public-key", vkey.trim()])
            .env("HOME", &dir)
            .output()
            .unwrap();
        let (ok, out, err) = (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(ok, "{out} {err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["ok"], true, "{report}");
        let text = std::fs::read_to_string(&entries).unwrap();
        assert!(
            text.lines()
                .skip(size_of(&cp1) as usize)
                .any(|l| l.contains("auth.login") && l.contains("failure")),
            "the failed log-in written while sealed is in the signed log"
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
