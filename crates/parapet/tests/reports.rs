//! Account and access reports drawn from the audit log (issue 3, scope 8; X.1642 8.1.1(5)),
//! through the API and the CLI, on both backends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::process::Command;

use common::{ADMIN_PASSWORD, Backend, bin, start};
use serde_json::{Value, json};

on_both!(access_report_counts_log_ins_failures_and_privilege_changes);

const PW: &str = "report-test-password-1";

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = http.request(method, url);
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

fn access_report_counts_log_ins_failures_and_privilege_changes(backend: Backend) {
    let srv = start(backend);
    let base = srv.url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (auditor_token, report) = rt.block_on(async {
        let http = reqwest::Client::new();
        let post = |path: &str, token: Option<&str>, body: Value| {
            let url = format!("{base}{path}");
            let token = token.map(str::to_string);
            let http = http.clone();
            async move {
                call(
                    &http,
                    reqwest::Method::POST,
                    url,
                    token.as_deref(),
                    Some(body),
                )
                .await
            }
        };
        let login = |user: &str, pw: &str| {
            post(
                "/api/v1/auth/login",
                None,
                json!({"username": user, "password": pw}),
            )
        };
        let (s, b) = login("admin", ADMIN_PASSWORD).await;
        assert_eq!(s, 200);
        let admin = b["token"].as_str().unwrap().to_string();
        for name in ["acme", "other"] {
            let (s, _) = post("/api/v1/tenants", Some(&admin), json!({"name": name})).await;
            assert_eq!(s, 201);
        }
        for (user, role) in [
            ("alice", "tenant-admin"),
            ("bob", "tenant-member"),
            ("carol", "tenant-auditor"),
        ] {
            let (s, b) = post(
                "/api/v1/tenants/acme/users",
                Some(&admin),
                json!({"username": user, "password": PW, "role": role}),
            )
            .await;
            assert_eq!(s, 201, "{b}");
        }
        // alice: two log-ins, one log-out, one failure; an unknown name tries too.
        let (s, b) = login("alice@acme", PW).await;
        assert_eq!(s, 200);
        let alice = b["token"].as_str().unwrap().to_string();
        let (s, _) = post("/api/v1/auth/logout", Some(&alice), json!({})).await;
        assert_eq!(s, 204);
        assert_eq!(login("alice@acme", PW).await.0, 200);
        assert_eq!(login("alice@acme", "wrong-password-123").await.0, 401);
        assert_eq!(login("mallory@acme", "wrong-password-123").await.0, 401);
        // bob is disabled by the tenant admin: a privilege revocation.
        let alice2 = login("alice@acme", PW).await.1["token"]
            .as_str()
            .unwrap()
            .to_string();
        let (s, _) = post(
            "/api/v1/tenants/acme/users/bob/disable",
            Some(&alice2),
            json!({}),
        )
        .await;
        assert_eq!(s, 200);
        let carol = login("carol@acme", PW).await.1["token"]
            .as_str()
            .unwrap()
            .to_string();
        let get = |path: String, token: String| {
            let http = http.clone();
            let url = format!("{base}{path}");
            async move { call(&http, reqwest::Method::GET, url, Some(&token), None).await }
        };
        // The tenant's auditor reads its report, not another tenant's.
        let (s, report) = get(
            "/api/v1/tenants/acme/reports/access?inactive_days=0".into(),
            carol.clone(),
        )
        .await;
        assert_eq!(s, 200, "{report}");
        // Another tenant is not even said to exist.
        let (s, _) = get("/api/v1/tenants/other/reports/access".into(), carol.clone()).await;
        assert_eq!(s, 404);
        let (s, _) = get(
            "/api/v1/tenants/acme/reports/access?since=yesterday".into(),
            carol.clone(),
        )
        .await;
        assert_eq!(s, 400);
        (carol, report)
    });
    let account = |name: &str| {
        report["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == format!("user:acme/{name}"))
            .unwrap_or_else(|| panic!("no account {name} in {report}"))
            .clone()
    };
    let alice = account("alice");
    assert_eq!(
        (
            alice["logins"].as_u64(),
            alice["logouts"].as_u64(),
            alice["failed_logins"].as_u64()
        ),
        (Some(3), Some(1), Some(1)),
        "{alice}"
    );
    assert_eq!(account("bob")["disabled"], true);
    assert_eq!(account("bob")["logins"], 0);
    assert_eq!(report["unknown_login_attempts"]["mallory@acme"], 1);
    let changes: Vec<(String, String)> = report["privilege_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_string(),
                c["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("user.create", "user:acme/alice"),
        ("user.create", "user:acme/bob"),
        ("user.create", "user:acme/carol"),
        ("user.disable", "user:acme/bob"),
    ] {
        assert!(
            changes
                .iter()
                .any(|(a, t)| (a.as_str(), t.as_str()) == expected),
            "{expected:?} missing from {changes:?}"
        );
    }
    // Nothing of the other tenant or the provider leaks into acme's report.
    assert!(!report.to_string().contains("tenant:other"), "{report}");
    // With 0 days, bob (never logged in) counts as inactive; he is disabled, so he is not.
    let inactive: Vec<&str> = report["inactive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["account"].as_str().unwrap())
        .collect();
    assert!(!inactive.contains(&"user:acme/bob"), "{inactive:?}");

    // The CLI gives the same report.
    let out = Command::new(bin())
        .args([
            "audit",
            "report",
            "--tenant",
            "acme",
            "--inactive-days",
            "0",
            "--json",
        ])
        .env("PARAPET_SERVER", &srv.url)
        .env("PARAPET_TOKEN", &auditor_token)
        .env(
            "PARAPET_CONFIG_DIR",
            parapet_store_sql::testkit::temp_dir("cfg"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["accounts"], report["accounts"]);
    assert_eq!(cli["privilege_changes"], report["privilege_changes"]);
    let table = Command::new(bin())
        .args(["audit", "report", "--tenant", "acme"])
        .env("PARAPET_SERVER", &srv.url)
        .env("PARAPET_TOKEN", &auditor_token)
        .env(
            "PARAPET_CONFIG_DIR",
            parapet_store_sql::testkit::temp_dir("cfg"),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("user:acme/alice"), "{text}");
    assert!(text.contains("Privilege changes (4)"), "{text}");
}
