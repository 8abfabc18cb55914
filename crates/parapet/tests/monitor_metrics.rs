//! Metrics end to end on both backends (issue 6, X.1642 7.2.2.6(1), 8.3): a real
//! `prometheus-node-exporter` is scraped by the server's job; its memory size is checked against
//! `/proc/meminfo`; a threshold rule raises an alert that the query, the alert list and the
//! console's SVG chart show; the API, the CLI (`parapet metrics …`, `--json`) and tenant isolation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, run_cli, start};
use serde_json::{Value, json};

on_both!(node_exporter_metrics_thresholds_chart_cli_and_isolation);

const PW: &str = "metrics-test-password-1";
const EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// A node exporter on a free loopback port, stopped on drop.
struct Exporter {
    child: Child,
    port: u16,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn exporter() -> Exporter {
    assert!(
        std::path::Path::new(EXPORTER).exists(),
        "{EXPORTER} is missing: install the Debian package prometheus-node-exporter \
         (scripts/test installs it)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(EXPORTER)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let e = Exporter { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the node exporter did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    e
}

async fn put(
    api: &Api,
    tok: &str,
    path: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    api.req(
        reqwest::Method::PUT,
        path,
        tok,
        &[("content-type", "application/json")],
        Some(body.to_string().into_bytes()),
    )
    .await
}

fn mem_total_bytes() -> f64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024.0
}

fn node_exporter_metrics_thresholds_chart_cli_and_isolation(backend: Backend) {
    let exp = exporter();
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let target_url = format!("http://127.0.0.1:{}/metrics", exp.port);
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
        let (s, b) = api
            .post(
                "/api/v1/tenants/acme/assets",
                &alice,
                json!({"name": "node-1", "kind": "vm", "addresses": ["127.0.0.1"]}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let target = "/api/v1/tenants/acme/assets/node-1/metrics-target";
        // A host that is not the asset's: a problem document, nothing stored.
        let (s, h, b) = put(
            &api,
            &alice,
            target,
            json!({"url": "http://192.0.2.1:9100/metrics", "interval_secs": 5}),
        )
        .await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(h["content-type"], "application/problem+json");
        let (s, _, b) = put(&api, &alice, target, json!({"url": target_url, "bogus": 1})).await;
        assert_eq!(s, 422, "unknown fields are refused: {b}");
        // Another tenant cannot set, read or scrape it.
        let (s, _, _) = put(&api, &gina, target, json!({"url": target_url})).await;
        assert_eq!(s, 404);
        let (s, _, b) = put(
            &api,
            &alice,
            target,
            json!({"url": target_url, "interval_secs": 5}),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["interval_secs"], 5);
        // Rules: one that holds on every machine, one that never does.
        for rule in [
            json!({"name": "mem-present", "metric": "node_memory_MemTotal_bytes", "op": ">",
                "value": 0, "severity": "high"}),
            json!({"name": "load-impossible", "metric": "node_load1", "op": "<", "value": -1}),
        ] {
            let (s, b) = api
                .post("/api/v1/tenants/acme/metric-rules", &alice, rule)
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let (s, b) = api
            .post(
                "/api/v1/tenants/acme/metric-rules",
                &alice,
                json!({"name": "bad", "metric": "node_load1", "op": "~", "value": 1}),
            )
            .await;
        assert_eq!(s, 422, "{b}");
        assert!(b["detail"].as_str().unwrap().contains("comparison"), "{b}");
        assert_eq!(
            api.get("/api/v1/tenants/acme/metric-rules", &gina).await.0,
            404
        );
        let (s, rules) = api.get("/api/v1/tenants/globex/metric-rules", &gina).await;
        assert_eq!((s, rules), (200, json!([])));

        // The background job scrapes the real exporter (due at once, then every 5 s).
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let (_, t) = api.get(target, &alice).await;
            if let Some(at) = t["last_scrape_at"].as_str()
                && !seen.contains(&at.to_string())
            {
                assert!(t["last_error"].is_null(), "{t}");
                assert!(t["last_samples"].as_u64().unwrap() > 100, "{t}");
                seen.push(at.to_string());
            }
            if seen.len() >= 2 {
                break;
            }
            assert!(Instant::now() < deadline, "no two scrapes in 60 s: {t}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let (s, names) = api
            .get("/api/v1/tenants/acme/assets/node-1/metrics", &alice)
            .await;
        assert_eq!(s, 200);
        let names: Vec<&str> = names
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap())
            .collect();
        for m in [
            "node_load1",
            "node_memory_MemTotal_bytes",
            "node_cpu_seconds_total",
        ] {
            assert!(names.contains(&m), "{m} not in {names:?}");
        }
        let (s, q) = api
            .get(
                "/api/v1/tenants/acme/assets/node-1/metrics/node_memory_MemTotal_bytes",
                &alice,
            )
            .await;
        assert_eq!(s, 200, "{q}");
        let series = q["series"].as_array().unwrap();
        assert_eq!(series.len(), 1, "{q}");
        let points = series[0]["points"].as_array().unwrap();
        assert!(points.len() >= 2, "{q}");
        assert_eq!(points[0][1].as_f64().unwrap(), mem_total_bytes());
        // The threshold rule fired once (the breach goes on: one alert, not one per scrape).
        let marks: Vec<&Value> = q["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["rule_id"] == "parapet-metric-mem-present")
            .collect();
        assert_eq!(marks.len(), 1, "{q}");
        assert_eq!(marks[0]["severity"], "high");
        let (_, alerts) = api
            .get(
                "/api/v1/tenants/acme/alerts?rule=parapet-metric-mem-present",
                &alice,
            )
            .await;
        let items: Vec<&Value> = alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["rule_id"] == "parapet-metric-mem-present")
            .collect();
        assert_eq!(items.len(), 1, "{alerts}");
        let (_, alerts) = api.get("/api/v1/tenants/acme/alerts", &alice).await;
        assert!(
            !alerts
                .to_string()
                .contains("parapet-metric-load-impossible"),
            "{alerts}"
        );
        let (_, galerts) = api.get("/api/v1/tenants/globex/alerts", &gina).await;
        assert!(!galerts.to_string().contains("parapet-metric"), "{galerts}");
        // Counter series carry their labels; a scrape on demand answers what it stored.
        let (_, cpu) = api
            .get(
                "/api/v1/tenants/acme/assets/node-1/metrics/node_cpu_seconds_total?points=50",
                &alice,
            )
            .await;
        assert!(
            cpu["series"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["labels"].as_str().unwrap().contains("mode=\"idle\"")),
            "{cpu}"
        );
        let (s, r) = api
            .post(
                "/api/v1/tenants/acme/assets/node-1/metrics-target/scrape",
                &alice,
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        assert!(
            r["samples"].as_u64().unwrap() > 100 && r["error"].is_null(),
            "{r}"
        );
        // Isolation of the reads.
        for path in [
            "/api/v1/tenants/acme/assets/node-1/metrics",
            "/api/v1/tenants/acme/assets/node-1/metrics/node_load1",
            target,
        ] {
            assert_eq!(api.get(path, &gina).await.0, 404, "{path}");
        }
        let (s, b) = api
            .get(
                "/api/v1/tenants/acme/assets/node-1/metrics/node_load1?from=yesterday",
                &alice,
            )
            .await;
        assert_eq!(s, 400, "{b}");
        // The console: an SVG chart with the alert marked; another tenant gets 404.
        let page = |tok: &str, path: &str| {
            api.http
                .get(format!("{}{path}", api.base))
                .header("cookie", format!("parapet_session={tok}"))
                .send()
        };
        let chart = "/console/tenants/acme/assets/node-1/metrics?metric=node_memory_MemTotal_bytes";
        let res = page(&alice, chart).await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let html = res.text().await.unwrap();
        assert!(
            html.contains("<svg") && html.contains("<polyline") && html.contains("alert-mark"),
            "{html}"
        );
        assert!(
            html.contains("mem-present") && html.contains(&target_url),
            "{html}"
        );
        assert_eq!(page(&gina, chart).await.unwrap().status().as_u16(), 404);
        let res = page(&alice, "/console/tenants/acme/assets/node-1")
            .await
            .unwrap();
        assert!(res.text().await.unwrap().contains("asset-metrics"));
        let (_, doc) = api.get("/api/v1/openapi.json", &alice).await;
        assert!(
            doc["paths"]
                .get("/api/v1/tenants/{tenant}/assets/{asset}/metrics/{metric}")
                .is_some()
        );
        alice
    });
    // The CLI.
    let cli = |args: &[&str]| run_cli(&srv.url, &alice, args, b"");
    let o = cli(&[
        "metrics",
        "query",
        "--tenant",
        "acme",
        "node-1",
        "node_load1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["metric"], "node_load1");
    assert!(
        !v["series"][0]["points"].as_array().unwrap().is_empty(),
        "{v}"
    );
    let o = cli(&["metrics", "names", "--tenant", "acme", "node-1"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("node_memory_MemTotal_bytes"));
    let o = cli(&[
        "metrics",
        "rules",
        "add",
        "--tenant",
        "acme",
        "disk-full",
        "--metric",
        "node_filesystem_avail_bytes",
        "--label",
        "mountpoint=/",
        "--op",
        "<",
        "--value",
        "1000000",
        "--for",
        "300",
        "--severity",
        "critical",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("parapet-metric-disk-full"));
    let o = cli(&[
        "metrics",
        "rules",
        "add",
        "--tenant",
        "acme",
        "load-base",
        "--metric",
        "node_load1",
        "--baseline",
        "--k",
        "4",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli(&["metrics", "rules", "list", "--tenant", "acme", "--json"]);
    let rules: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["disk-full", "load-base", "load-impossible", "mem-present"]
    );
    let o = cli(&["metrics", "rules", "list", "--tenant", "acme"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("node_filesystem_avail_bytes{mountpoint=/} < 1000000 for 300 s"),
        "{text}"
    );
    let o = cli(&["metrics", "rules", "rm", "--tenant", "acme", "load-base"]);
    assert!(o.status.success());
    let o = cli(&[
        "metrics", "target", "show", "--tenant", "acme", "node-1", "--json",
    ]);
    let t: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(t["url"], target_url.as_str());
    // Bad input: one line on stderr and a failure exit.
    let o = cli(&[
        "metrics",
        "target",
        "set",
        "--tenant",
        "acme",
        "node-1",
        "http://198.51.100.7/metrics",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("neither the asset"), "{err}");
    let o = cli(&["metrics", "target", "rm", "--tenant", "acme", "node-1"]);
    assert!(o.status.success());
    let o = cli(&["metrics", "target", "show", "--tenant", "acme", "node-1"]);
    assert!(!o.status.success());
}
