//! Approval requests through the API and the CLI on both backends (issue 4, X.1642 8.1.1(2)):
//! a registration requested by one tenant administrator, refused to its requester, approved by
//! another; the history; tenant isolation; bad input.
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

on_both!(approvals_end_to_end);

const PW: &str = "Approval-test-password-1";

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = http.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let res = rb.send().await.unwrap();
    let s = res.status().as_u16();
    (
        s,
        serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null),
    )
}

fn approvals_end_to_end(backend: Backend) {
    let srv = start(backend);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use reqwest::Method;
        let http = reqwest::Client::new();
        let base = srv.url.clone();
        let login = |u: &'static str, pw: &'static str| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let (s, b) = call(&http, &base, Method::POST, "/api/v1/auth/login", None,
                    Some(json!({"username": u, "password": pw}))).await;
                assert_eq!(s, 200, "{u}: {b}");
                b["token"].as_str().unwrap().to_string()
            }
        };
        let admin = login("admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            call(&http, &base, Method::POST, "/api/v1/tenants", Some(&admin), Some(json!({"name": t}))).await;
        }
        for (t, u) in [("acme", "alice"), ("acme", "amos"), ("globex", "gina")] {
            let (s, b) = call(&http, &base, Method::POST, &format!("/api/v1/tenants/{t}/users"),
                Some(&admin), Some(json!({"username": u, "password": PW, "role": "tenant-admin"}))).await;
            assert_eq!(s, 201, "{b}");
        }
        let alice = login("alice@acme", PW).await;
        let amos = login("amos@acme", PW).await;
        let gina = login("gina@globex", PW).await;

        let (s, req) = call(&http, &base, Method::POST, "/api/v1/tenants/acme/approvals", Some(&alice),
            Some(json!({"kind": "user-create", "username": "carl", "role": "tenant-member",
                        "password": PW, "reason": "new hire"}))).await;
        assert_eq!(s, 201, "{req}");
        assert!(req.get("password").is_none() && req.get("password_hash").is_none());
        let id = req["id"].as_str().unwrap().to_string();
        for (body, status) in [
            (json!({"kind": "other", "username": "x", "role": "tenant-member", "reason": "r"}), 422),
            (json!({"kind": "user-create", "username": "x", "role": "tenant-member", "reason": "r"}), 422),
            (json!({"kind": "role-change", "username": "amos", "role": "no-such-role", "reason": "r"}), 422),
            (json!({"kind": "role-change", "username": "amos", "role": "tenant-member", "reason": ""}), 422),
        ] {
            let (s, b) = call(&http, &base, Method::POST, "/api/v1/tenants/acme/approvals", Some(&alice), Some(body)).await;
            assert_eq!(s, status, "{b}");
            assert!(b["detail"].is_string());
        }
        let path = format!("/api/v1/tenants/acme/approvals/{id}/approve");
        let (s, b) = call(&http, &base, Method::POST, &path, Some(&alice), Some(json!({}))).await;
        assert_eq!(s, 403, "{b}");
        let (s, _) = call(&http, &base, Method::POST, &path, Some(&gina), Some(json!({}))).await;
        assert_eq!(s, 404);
        let (s, _) = call(&http, &base, Method::GET, "/api/v1/tenants/acme/approvals", Some(&gina), None).await;
        assert_eq!(s, 404);

        // Amos approves through the CLI; carl can log in; the history shows it.
        let (url, tok, id2) = (base.clone(), amos.clone(), id.clone());
        let out = tokio::task::spawn_blocking(move || {
            Command::new(bin())
                .args(["approval", "approve", "--tenant", "acme", &id2, "--comment", "welcome", "--json"])
                .env("PARAPET_SERVER", &url)
                .env("PARAPET_TOKEN", &tok)
                .env("PARAPET_CONFIG_DIR", parapet_store_sql::testkit::temp_dir("cfg"))
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], "approved");
        login("carl@acme", PW).await;
        let (s, _) = call(&http, &base, Method::POST, &path, Some(&admin), Some(json!({}))).await;
        assert_eq!(s, 409, "decided once");
        let (_, list) = call(&http, &base, Method::GET, "/api/v1/tenants/acme/approvals", Some(&alice), None).await;
        assert_eq!(list[0]["decided_by"], "amos@acme");
        assert_eq!(list[0]["comment"], "welcome");

        // Direct role change (no approval required by this tenant): the user's sessions end.
        let carl = login("carl@acme", PW).await;
        let (s, b) = call(&http, &base, Method::POST, "/api/v1/tenants/acme/users/carl/role",
            Some(&alice), Some(json!({"role": "tenant-auditor"}))).await;
        assert_eq!((s, b["role"].as_str()), (200, Some("tenant-auditor")), "{b}");
        let (s, _) = call(&http, &base, Method::GET, "/api/v1/auth/whoami", Some(&carl), None).await;
        assert_eq!(s, 401);
        let (s, _) = call(&http, &base, Method::POST, "/api/v1/tenants/acme/users/alice/role",
            Some(&alice), Some(json!({"role": "tenant-member"}))).await;
        assert_eq!(s, 403, "not one's own role");

        // The console lists the history.
        let page = http
            .get(format!("{base}/console/tenants/acme/approvals"))
            .header("cookie", format!("parapet_session={alice}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.text().await.unwrap().contains("new hire"));
    });
}
