//! Parapet's own audit log as an event source with the built-in rules (issue 6, X.1642 8.3(2)):
//! failed log-ins, a privilege grant outside an approval and denied requests on the management
//! platform raise alerts for the provider, on both backends; tenants do not see them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Backend, start_with};
use serde_json::{Value, json};

on_both!(management_platform_abuse_raises_builtin_alerts);

const PW: &str = "audit-source-password-1";

fn management_platform_abuse_raises_builtin_alerts(backend: Backend) {
    let srv = start_with(backend, &["--monitor-audit-log"], &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let base = srv.url.clone();
    let call =
        |m: reqwest::Method, path: &str, tok: Option<&str>, body: Option<Value>| -> (u16, Value) {
            rt.block_on(async {
                let mut rb = http.request(m, format!("{base}{path}"));
                if let Some(t) = tok {
                    rb = rb.bearer_auth(t);
                }
                if let Some(b) = body {
                    rb = rb.json(&b);
                }
                let r = rb.send().await.unwrap();
                let s = r.status().as_u16();
                (
                    s,
                    serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
                )
            })
        };
    let login = |u: &str, pw: &str| -> (u16, Value) {
        call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": u, "password": pw})),
        )
    };
    let admin = login("admin", ADMIN_PASSWORD).1["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The built-in rules are installed as provider rules.
    let (s, rules) = call(
        reqwest::Method::GET,
        "/api/v1/tenants/provider/rules",
        Some(&admin),
        None,
    );
    assert_eq!(s, 200);
    let titles: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles.len(), 3, "{titles:?}");

    let post =
        |tok: &str, path: &str, v: Value| call(reqwest::Method::POST, path, Some(tok), Some(v));
    assert_eq!(
        post(&admin, "/api/v1/tenants", json!({"name": "acme"})).0,
        201
    );
    for (u, role) in [("alice", "tenant-admin"), ("bob", "tenant-member")] {
        let (s, b) = post(
            &admin,
            "/api/v1/tenants/acme/users",
            json!({"username": u, "password": PW, "role": role}),
        );
        assert_eq!(s, 201, "{b}");
    }
    // Three failed log-ins, a denied request, a role granted directly.
    for _ in 0..3 {
        assert_eq!(login("alice@acme", "wrong-password-123").0, 401);
    }
    let bob = login("bob@acme", PW).1["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = post(
        &bob,
        "/api/v1/tenants/acme/assets",
        json!({"name": "x", "kind": "vm"}),
    );
    assert_eq!(s, 403);
    let (s, b) = post(
        &admin,
        "/api/v1/tenants/acme/users/bob/role",
        json!({"role": "tenant-admin"}),
    );
    assert_eq!(s, 200, "{b}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let (s, b) = call(
            reqwest::Method::GET,
            "/api/v1/tenants/provider/alerts?limit=100",
            Some(&admin),
            None,
        );
        assert_eq!(s, 200, "{b}");
        let items = b["items"].as_array().unwrap().clone();
        if items.len() >= 3 || Instant::now() > deadline {
            break items;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let by_title = |t: &str| {
        alerts
            .iter()
            .find(|a| a["title"].as_str().unwrap().contains(t))
            .unwrap_or_else(|| panic!("no alert {t}: {alerts:#?}"))
            .clone()
    };
    let failed = by_title("Failed log-in");
    assert_eq!(failed["count"], 3);
    assert_eq!(failed["severity"], "low");
    assert_eq!(failed["tenant"], "provider");
    let grant = by_title("Privilege granted outside an approval");
    assert_eq!(grant["severity"], "high");
    let denied = by_title("denied");
    assert!(denied["count"].as_u64().unwrap() >= 1);
    // The alert's events are the audit records, searchable as events.
    let (_, detail) = call(
        reqwest::Method::GET,
        &format!(
            "/api/v1/tenants/provider/alerts/{}",
            grant["id"].as_str().unwrap()
        ),
        Some(&admin),
        None,
    );
    let ev_id = detail["event_ids"][0].as_str().unwrap().to_string();
    let (s, ev) = call(
        reqwest::Method::GET,
        &format!("/api/v1/tenants/provider/events/{ev_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(ev["event"]["action"], "user.role.change");
    assert_eq!(ev["event"]["tenant"], "acme");
    assert_eq!(ev["event"]["actor"], "admin");
    // Nothing is stored twice: each audit record once.
    let (_, evs) = call(
        reqwest::Method::GET,
        "/api/v1/tenants/provider/events?limit=1000&source=parapet-audit",
        Some(&admin),
        None,
    );
    let mut seqs: Vec<u64> = evs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["seq"].as_u64().unwrap())
        .collect();
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n);
    assert!(
        !evs["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["action"] == "events.ingest")
    );
    // Tenants do not see the platform's alerts.
    let alice = login("alice@acme", PW).1["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = call(
        reqwest::Method::GET,
        "/api/v1/tenants/acme/alerts",
        Some(&alice),
        None,
    );
    assert_eq!((s, b["items"].as_array().unwrap().len()), (200, 0));
    assert_eq!(
        call(
            reqwest::Method::GET,
            "/api/v1/tenants/provider/alerts",
            Some(&alice),
            None
        )
        .0,
        404
    );
}
