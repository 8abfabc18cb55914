//! Monitoring health through the API, the CLI and the console on both backends (issue 6,
//! X.1642 8.3(1)): when data last arrived per asset, silence, open alerts; tenants see only
//! their own. (Silence itself is driven by the injected clock in
//! `crates/monitor/tests/service.rs::silent_assets_raise_one_alert_per_silence`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::process::Command;

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, bin, start};
use serde_json::{Value, json};

on_both!(health_view_api_cli_console_and_isolation);

const PW: &str = "health-test-password-1";

const RULE: &str = "title: Disk full
id: 0f000000-0000-4000-8000-000000000001
status: test
logsource:
  product: linux
detection:
  selection:
    message|contains: 'No space left'
  condition: selection
level: high
";

fn health_view_api_cli_console_and_isolation(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let alice = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            let (s, b) = api
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201, "{b}");
        }
        for (t, u) in [("acme", "alice"), ("globex", "gina")] {
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": u, "password": PW, "role": "tenant-admin"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let alice = api.login("alice@acme", PW).await;
        let gina = api.login("gina@globex", PW).await;
        for (name, tags) in [
            ("web-1", json!({})),
            ("db-1", json!({"silent_after_minutes": "120"})),
        ] {
            let (s, b) = api
                .post(
                    "/api/v1/tenants/acme/assets",
                    &alice,
                    json!({"name": name, "kind": "vm", "tags": tags}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let (s, _, b) = api
            .req(
                reqwest::Method::POST,
                "/api/v1/tenants/acme/rules?file=disk.yml",
                &alice,
                &[("content-type", "application/yaml")],
                Some(RULE.as_bytes().to_vec()),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, _, r) = api
            .ingest(
                "acme",
                &alice,
                None,
                "{\"host\":\"web-1\",\"message\":\"No space left on device\"}\n",
            )
            .await;
        assert_eq!((s, r["attributed"].clone()), (200, json!(1)), "{r}");

        let (s, h) = api
            .get("/api/v1/tenants/acme/monitoring-health", &alice)
            .await;
        assert_eq!(s, 200, "{h}");
        assert_eq!(
            (h["assets"].clone(), h["silent"].clone()),
            (json!(2), json!(0)),
            "{h}"
        );
        assert_eq!(h["open_alerts"], 1, "{h}");
        let item = |n: &str| -> Value {
            h["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == n)
                .unwrap()
                .clone()
        };
        let web = item("web-1");
        assert!(web["last_data_at"].is_string(), "{web}");
        assert_eq!(
            (web["open_alerts"].clone(), web["silent"].clone()),
            (json!(1), json!(false))
        );
        assert_eq!(web["silent_after_minutes"], 30);
        let db = item("db-1");
        assert!(db["last_data_at"].is_null(), "{db}");
        assert_eq!(db["silent_after_minutes"], 120);
        // Tenant isolation: globex cannot read acme's health (404) and sees none of it.
        assert_eq!(
            api.get("/api/v1/tenants/acme/monitoring-health", &gina)
                .await
                .0,
            404
        );
        let (s, g) = api
            .get("/api/v1/tenants/globex/monitoring-health", &gina)
            .await;
        assert_eq!(
            (s, g["assets"].clone(), g["open_alerts"].clone()),
            (200, json!(0), json!(0))
        );
        // Unknown tenant: a problem document.
        let (s, b) = api
            .get("/api/v1/tenants/nope/monitoring-health", &alice)
            .await;
        assert_eq!(s, 404, "{b}");
        assert!(b["title"].is_string() || b["detail"].is_string(), "{b}");
        // The console page, and the OpenAPI document lists the endpoint.
        let page = |tok: &str| {
            api.http
                .get(format!("{}/console/health?tenant=acme", api.base))
                .header("cookie", format!("parapet_session={tok}"))
                .send()
        };
        let res = page(&alice).await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let html = res.text().await.unwrap();
        assert!(
            html.contains("web-1") && html.contains("2 assets") && html.contains("never"),
            "{html}"
        );
        assert_eq!(page(&gina).await.unwrap().status().as_u16(), 404);
        let (_, doc) = api.get("/api/v1/openapi.json", &alice).await;
        assert!(
            doc["paths"]
                .get("/api/v1/tenants/{tenant}/monitoring-health")
                .is_some()
        );
        alice
    });
    // The CLI, JSON and table.
    let cli = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .env("PARAPET_SERVER", &srv.url)
            .env("PARAPET_TOKEN", &alice)
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap()
    };
    let o = cli(&["alerts", "health", "--tenant", "acme", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["assets"], 2);
    let o = cli(&["alerts", "health", "--tenant", "acme"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("web-1") && text.contains("never"), "{text}");
    let o = cli(&["alerts", "health", "--tenant", "globex"]);
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim().lines().count(), 1);
}
