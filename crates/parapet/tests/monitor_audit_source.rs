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

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, UNSET, start_with};
use serde_json::{Value, json};

on_both!(
    management_platform_abuse_raises_builtin_alerts,
    builtin_correlations_catch_guessing_spraying_new_sources_and_mass_deletion
);

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
    assert_eq!(
        titles.len(),
        parapet_monitor::audit_source::BUILTIN_RULES.len(),
        "{titles:?}"
    );

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

/// An API client whose connections come from `ip` (any 127.0.0.0/8 address reaches the test
/// server on 127.0.0.1), so log-ins come from different source addresses.
fn from(base: &str, ip: [u8; 4]) -> Api {
    Api {
        base: base.to_string(),
        http: reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap(),
    }
}

async fn try_login(api: &Api, user: &str, pw: &str) -> u16 {
    api.http
        .post(format!("{}/api/v1/auth/login", api.base))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The audit source is on by default: real failed log-ins against the server raise the built-in
/// correlations — guessing then success from one address, spraying over accounts then success
/// from another (also a log-in from a new source for that account), and a mass deletion; a
/// server started with `--no-monitor-audit-log` installs and raises none of it.
fn builtin_correlations_catch_guessing_spraying_new_sources_and_mass_deletion(backend: Backend) {
    // The server's default (the harness turns the source off unless asked).
    let srv = start_with(backend, &[], &[("PARAPET_NO_MONITOR_AUDIT_LOG", UNSET)]);
    let local = from(&srv.url, [127, 0, 0, 1]);
    let guesser = from(&srv.url, [127, 0, 0, 2]);
    let sprayer = from(&srv.url, [127, 0, 0, 3]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin = local.login("admin", ADMIN_PASSWORD).await;
        let (s, b) = local
            .post("/api/v1/tenants", &admin, json!({"name": "acme"}))
            .await;
        assert_eq!(s, 201, "{b}");
        for u in ["alice", "carol", "dave", "erin", "frank", "gus"] {
            let (s, b) = local
                .post(
                    "/api/v1/tenants/acme/users",
                    &admin,
                    json!({"username": u, "password": PW, "role": "tenant-member"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        // Guessing: five wrong passwords for carol from 127.0.0.2, then alice logs in from there.
        for _ in 0..5 {
            assert_eq!(
                try_login(&guesser, "carol@acme", "wrong-password-123").await,
                401
            );
        }
        assert_eq!(try_login(&guesser, "alice@acme", PW).await, 200);
        // Spraying: one wrong password for each of four accounts from 127.0.0.3, then alice
        // logs in from there (an address she never used).
        for u in ["dave", "erin", "frank", "gus"] {
            assert_eq!(
                try_login(&sprayer, &format!("{u}@acme"), "Spring2026!").await,
                401
            );
        }
        assert_eq!(try_login(&sprayer, "alice@acme", PW).await, 200);
        // Mass deletion: twenty assets created, then deleted by one actor.
        for i in 0..20 {
            let (s, b) = local
                .post(
                    "/api/v1/tenants/acme/assets",
                    &admin,
                    json!({"name": format!("vm-{i}"), "kind": "vm"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        for i in 0..20 {
            let (s, _, b) = local
                .req(
                    reqwest::Method::DELETE,
                    &format!("/api/v1/tenants/acme/assets/vm-{i}"),
                    &admin,
                    &[],
                    None,
                )
                .await;
            assert!(s == 200 || s == 204, "{s} {b}");
        }
        let wanted = [
            ("Password guessing against", "source_ip=127.0.0.2"),
            (
                "Password guessing followed by a successful log-in",
                "source_ip=127.0.0.2",
            ),
            ("Password spraying against", "source_ip=127.0.0.3"),
            (
                "Password spraying followed by a successful log-in",
                "source_ip=127.0.0.3",
            ),
            ("from a new source", "parapet"),
            ("Mass deletion", "actor=admin"),
        ];
        let deadline = Instant::now() + Duration::from_secs(40);
        let alerts = loop {
            let (s, b) = local
                .get("/api/v1/tenants/provider/alerts?limit=1000", &admin)
                .await;
            assert_eq!(s, 200, "{b}");
            let items = b["items"].as_array().unwrap().clone();
            let all = wanted.iter().all(|(t, _)| {
                items
                    .iter()
                    .any(|a| a["title"].as_str().unwrap().contains(t))
            });
            if all || Instant::now() > deadline {
                break items;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        for (title, group) in wanted {
            let found: Vec<&Value> = alerts
                .iter()
                .filter(|a| a["title"].as_str().unwrap().contains(title))
                .collect();
            assert_eq!(found.len(), 1, "one alert {title}: {alerts:#?}");
            assert_eq!(found[0]["group_key"], group, "{title}");
        }
        let sev = |t: &str| {
            alerts
                .iter()
                .find(|a| a["title"].as_str().unwrap().contains(t))
                .unwrap()["severity"]
                .clone()
        };
        assert_eq!(sev("Password guessing followed"), "critical");
        assert_eq!(sev("Mass deletion"), "high");
        // Successful log-ins and single deletions feed correlations only: no alert of their own.
        assert!(
            !alerts.iter().any(|a| {
                let t = a["title"].as_str().unwrap();
                t.starts_with("Successful log-in") || t.starts_with("Deletion on")
            }),
            "{alerts:#?}"
        );
        // alice's first log-in (127.0.0.2) was from no "new" source: one new-source alert.
        let (_, detail) = local
            .get(
                &format!(
                    "/api/v1/tenants/provider/alerts/{}",
                    alerts
                        .iter()
                        .find(|a| a["title"].as_str().unwrap().contains("new source"))
                        .unwrap()["id"]
                        .as_str()
                        .unwrap()
                ),
                &admin,
            )
            .await;
        let ev = detail["event_ids"][0].as_str().unwrap();
        let (s, ev) = local
            .get(&format!("/api/v1/tenants/provider/events/{ev}"), &admin)
            .await;
        assert_eq!(s, 200, "{ev}");
        assert_eq!(ev["event"]["source_ip"], "127.0.0.3");
        assert_eq!(ev["event"]["target"], "user:acme/alice");
    });
    drop(srv);

    // Turned off: no built-in rules, no audit events.
    let off = start_with(
        backend,
        &["--no-monitor-audit-log"],
        &[("PARAPET_NO_MONITOR_AUDIT_LOG", UNSET)],
    );
    let api = from(&off.url, [127, 0, 0, 1]);
    rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for _ in 0..5 {
            assert_eq!(try_login(&api, "nobody", "wrong-password-123").await, 401);
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let (s, b) = api.get("/api/v1/tenants/provider/rules", &admin).await;
        assert_eq!((s, b.as_array().unwrap().len()), (200, 0), "{b}");
        let (s, b) = api
            .get(
                "/api/v1/tenants/provider/events?source=parapet-audit",
                &admin,
            )
            .await;
        assert_eq!((s, b["items"].as_array().unwrap().len()), (200, 0), "{b}");
    });
}
