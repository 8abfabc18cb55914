//! Event ingestion and search through the API, the CLI and the console on both backends (issue 6,
//! X.1642 8.3(2), 7.2.2.6): ingest tokens, idempotency keys, attribution to assets, bad input
//! refused whole with the line named, search by time, field, text and cursor, retention,
//! metrics, audit, and tenant isolation of every endpoint.
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

on_both!(
    events_api_ingest_search_isolation_and_audit,
    events_cli_ingest_is_idempotent_and_searchable
);

const PW: &str = "event-test-password-1";

impl Api {
    async fn token(&self, session: &str, scopes: &[&str]) -> String {
        let (s, b) = self
            .post(
                "/api/v1/tokens",
                session,
                json!({"name": "shipper", "scopes": scopes}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["token"].as_str().unwrap().to_string()
    }
    /// Every event of `tenant` matching the query, following cursors.
    async fn all(&self, tenant: &str, token: &str, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let sep = if query.is_empty() { "" } else { "&" };
            let path = format!(
                "/api/v1/tenants/{tenant}/events?limit=7{sep}{query}{}",
                if cursor.is_empty() {
                    String::new()
                } else {
                    format!("&cursor={}", urlencode(&cursor))
                }
            );
            let (s, b) = self.get(&path, token).await;
            assert_eq!(s, 200, "{path}: {b}");
            out.extend(b["items"].as_array().unwrap().iter().cloned());
            match b["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => return out,
            }
        }
    }
}

/// Sends `head` on a fresh connection and returns what the server answers (without a body sent).
fn raw_request(base: &str, head: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    c.write_all(head.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn setup(api: &Api) -> [String; 4] {
    let admin = api.login("admin", ADMIN_PASSWORD).await;
    for t in ["acme", "globex"] {
        let (s, b) = api
            .post("/api/v1/tenants", &admin, json!({"name": t}))
            .await;
        assert_eq!(s, 201, "{b}");
    }
    for (t, u, role) in [
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
    let alice = api.login("alice@acme", PW).await;
    let (s, b) = api
        .post(
            "/api/v1/tenants/acme/assets",
            &alice,
            json!({"name": "web-1", "kind": "vm", "addresses": ["10.0.0.5"]}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    [
        admin,
        alice,
        api.login("bob@acme", PW).await,
        api.login("gina@globex", PW).await,
    ]
}

fn count(v: &[Value]) -> usize {
    v.len()
}

fn events_api_ingest_search_isolation_and_audit(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let [admin, alice, bob, gina] = setup(&api).await;
        let ingest = api.token(&alice, &["ingest"]).await;

        // A batch in JSON lines, attributed by host name and by address.
        let batch = concat!(
            r#"{"@timestamp":"2026-03-01T10:00:00Z","host":"web-1","severity":"error","message":"Failed password for root","user":{"name":"root"}}"#,
            "\n",
            r#"{"@timestamp":"2026-03-01T10:00:01Z","ip":"10.0.0.5","source":"sshd","user":{"name":"alice"}}"#,
            "\n\n",
            r#"{"@timestamp":"2026-03-01T10:00:02Z","host":"unknown-9","level":"warning","message":"disk almost full"}"#,
            "\n"
        );
        let (s, h, r) = api.ingest("acme", &ingest, Some("batch-1"), batch).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["accepted"], 3);
        assert_eq!(r["attributed"], 2);
        assert_eq!(r["replayed"], false);
        assert!(h.get("idempotent-replayed").is_none());
        // The same key again: the first answer, nothing stored twice.
        let (s, h, again) = api.ingest("acme", &ingest, Some("batch-1"), batch).await;
        assert_eq!(s, 200, "{again}");
        assert_eq!(again["batch"], r["batch"]);
        assert_eq!(again["replayed"], true);
        assert_eq!(h.get("idempotent-replayed").unwrap(), "true");
        assert_eq!(count(&api.all("acme", &alice, "").await), 3);
        // Keys are per tenant: globex's batch-1 is its own.
        let (s, _, g) = api
            .ingest("globex", &gina, Some("batch-1"), r#"[{"host":"gx-1","message":"globex only"}]"#)
            .await;
        assert_eq!(s, 200, "{g}");
        assert_eq!(g["replayed"], false);
        assert_ne!(g["batch"], r["batch"]);

        // Normalized fields and attribution.
        let all = api.all("acme", &bob, "").await;
        let first = all.iter().find(|e| e["host"] == "web-1").unwrap();
        assert_eq!(first["time"], "2026-03-01T10:00:00Z");
        assert_eq!(first["severity"], "high");
        assert_eq!(first["message"], "Failed password for root");
        assert!(first["asset"].is_string());
        assert_eq!(first["event"]["user"]["name"], "root");
        let by_ip = all.iter().find(|e| e["source"] == "sshd").unwrap();
        assert_eq!(by_ip["asset"], first["asset"]);
        assert!(all.iter().any(|e| e["host"] == "unknown-9" && e["asset"].is_null()));
        // Newest first.
        assert_eq!(all[0]["host"], "unknown-9");

        // Search: field equality, free text, severity, host, asset, time range, batch.
        for (q, n) in [
            ("field=user.name%3Droot", 1),
            ("field=user.name%3Dalic", 0),
            ("q=ALMOST%20FULL", 1),
            ("severity=medium", 1),
            ("host=web-1", 1),
            ("asset=web-1", 2),
            ("from=2026-03-01T10:00:01Z", 2),
            ("from=2026-03-01T10:00:01Z&to=2026-03-01T10:00:02Z", 1),
            (&format!("batch={}", r["batch"].as_str().unwrap()), 3),
        ] {
            assert_eq!(count(&api.all("acme", &alice, q).await), n, "{q}");
        }
        for (q, status) in [
            ("severity=bogus", 422),
            ("from=yesterday", 400),
            ("colour=red", 400),
            ("field=nothing", 400),
            ("limit=0", 400),
            ("asset=no-such-asset", 404),
        ] {
            let (s, b) = api.get(&format!("/api/v1/tenants/acme/events?{q}"), &alice).await;
            assert_eq!(s, status, "{q}: {b}");
            assert!(b["detail"].is_string(), "{b}");
        }

        // Cursor pages: 40 more events with distinct times, no duplicate and none lost.
        let mut lines = String::new();
        for i in 0..40 {
            lines.push_str(&format!(
                "{{\"time\":{},\"host\":\"bulk\",\"n\":{i}}}\n",
                1_780_000_000 + i
            ));
        }
        let (s, _, b) = api.ingest("acme", &alice, None, &lines).await;
        assert_eq!(s, 200, "{b}");
        let bulk = api.all("acme", &alice, "host=bulk").await;
        let mut ns: Vec<i64> = bulk.iter().map(|e| e["event"]["n"].as_i64().unwrap()).collect();
        assert_eq!(ns.len(), 40);
        assert_eq!(ns[0], 39, "newest first");
        ns.sort_unstable();
        ns.dedup();
        assert_eq!(ns.len(), 40);

        // Bad input: the whole batch is refused, the line named, nothing stored.
        let before = count(&api.all("acme", &alice, "").await);
        let big = format!("{{\"m\":\"{}\"}}", "x".repeat(70 * 1024));
        let many = "{}\n".repeat(10_001);
        for (body, status, needle) in [
            ("{\"a\":1}\nnot json\n".to_string(), 422, "line 2"),
            ("{\"a\":1}\n[1,2]\n".to_string(), 422, "line 2"),
            ("[{\"a\":1}, 7]".to_string(), 422, "line 2"),
            ("\n\n".to_string(), 422, "no event"),
            (format!("{{}}\n{{}}\n{big}\n"), 413, "line 3"),
            (many, 413, "10000"),
        ] {
            let (s, h, b) = api.ingest("acme", &alice, Some("bad"), &body).await;
            assert_eq!(s, status, "{b}");
            assert_eq!(h.get("content-type").unwrap(), "application/problem+json");
            assert!(b["detail"].as_str().unwrap().contains(needle), "{b}");
        }
        // A batch over 16 MiB is refused from its declared length, before its body is read.
        let head = raw_request(
            &api.base,
            &format!(
                "POST /api/v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \
                 {alice}\r\nContent-Type: application/x-ndjson\r\nContent-Length: 18000000\r\n\r\n"
            ),
        );
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        assert!(head.contains("16 MiB"), "{head}");
        assert_eq!(count(&api.all("acme", &alice, "").await), before);
        // The key of a refused batch is not used up.
        let (s, _, b) = api.ingest("acme", &alice, Some("bad"), "{\"ok\":true}").await;
        assert_eq!((s, b["replayed"].clone()), (200, json!(false)), "{b}");

        // Roles and token scopes: the ingest token only ingests; a member reads but cannot send.
        let (s, _) = api.get("/api/v1/tenants/acme/events", &ingest).await;
        assert_eq!(s, 403);
        let (s, _) = api.get("/api/v1/tenants/acme/assets", &ingest).await;
        assert_eq!(s, 403);
        let (s, _, _) = api.ingest("acme", &bob, None, "{}").await;
        assert_eq!(s, 403);
        let read_only = api.token(&alice, &["read"]).await;
        let (s, _, _) = api.ingest("acme", &read_only, None, "{}").await;
        assert_eq!(s, 403);
        let (s, _) = api.get("/api/v1/tenants/acme/events", &read_only).await;
        assert_eq!(s, 200);

        // Isolation: globex sees nothing of acme through any endpoint, and acme nothing of globex.
        let id = first["id"].as_str().unwrap();
        for path in [
            "/api/v1/tenants/acme/events".to_string(),
            format!("/api/v1/tenants/acme/events/{id}"),
            "/api/v1/tenants/acme/event-retention".to_string(),
        ] {
            let (s, b) = api.get(&path, &gina).await;
            assert_eq!(s, 404, "{path}: {b}");
        }
        let (s, _) = api.get(&format!("/api/v1/tenants/globex/events/{id}"), &gina).await;
        assert_eq!(s, 404);
        let (s, _, _) = api.ingest("acme", &gina, None, "{}").await;
        assert_eq!(s, 404);
        let gx = api.all("globex", &gina, "").await;
        assert_eq!(gx.len(), 1);
        assert!(api.all("acme", &alice, "q=globex").await.is_empty());
        let (s, _) = api.get("/api/v1/tenants/globex/events", &alice).await;
        assert_eq!(s, 404);
        // The provider's staff see every tenant's events.
        assert_eq!(api.all("globex", &admin, "").await.len(), 1);
        let (s, e) = api.get(&format!("/api/v1/tenants/acme/events/{id}"), &admin).await;
        assert_eq!(s, 200);
        assert_eq!(e["host"], "web-1");

        // Retention: the default, set by the tenant's admin, not by a member or another tenant.
        let (s, r) = api.get("/api/v1/tenants/acme/event-retention", &bob).await;
        assert_eq!((s, r["days"].clone(), r["default"].clone()), (200, json!(90), json!(true)));
        let put = |tok: String, days: i64| {
            let api = &api;
            async move {
                let (s, _, b) = api
                    .req(
                        reqwest::Method::PUT,
                        "/api/v1/tenants/acme/event-retention",
                        &tok,
                        &[("content-type", "application/json")],
                        Some(serde_json::to_vec(&json!({"days": days})).unwrap()),
                    )
                    .await;
                (s, b)
            }
        };
        assert_eq!(put(bob.clone(), 7).await.0, 403);
        assert_eq!(put(gina.clone(), 7).await.0, 404);
        assert_eq!(put(alice.clone(), 0).await.0, 422);
        let (s, b) = put(alice.clone(), 7).await;
        assert_eq!((s, b["days"].clone()), (200, json!(7)), "{b}");
        let (_, r) = api.get("/api/v1/tenants/acme/event-retention", &alice).await;
        assert_eq!((r["days"].clone(), r["default"].clone()), (json!(7), json!(false)));

        // The audit trail records every batch and the retention change.
        let (s, audit) = api.get("/api/v1/tenants/acme/audit?limit=200", &alice).await;
        assert_eq!(s, 200, "{audit}");
        let actions: Vec<&str> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions.iter().filter(|a| **a == "events.ingest").count(), 3, "{actions:?}");
        assert!(actions.contains(&"events.retention"));

        // Metrics count accepted and refused events.
        let m = reqwest::get(format!("{}/metrics", api.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| -> f64 {
            m.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert_eq!(value("parapet_events_ingested_total"), 3.0 + 1.0 + 40.0 + 1.0, "{m}");
        assert!(value("parapet_events_rejected_total") >= 7.0, "{m}");

        // The console's event search page, for the tenant's users only.
        let page = |cookie: String, query: &'static str| {
            let api = &api;
            async move {
                let res = api
                    .http
                    .get(format!("{}/console/events?{query}", api.base))
                    .header("cookie", format!("parapet_session={cookie}"))
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            }
        };
        let (s, html) = page(bob.clone(), "field=user.name%3Droot").await;
        assert_eq!(s, 200, "{html}");
        assert!(html.contains("Failed password for root"), "{html}");
        assert!(!html.contains("disk almost full"));
        let (s, html) = page(gina.clone(), "tenant=acme").await;
        assert_eq!(s, 404, "{html}");
        assert!(!html.contains("Failed password"));
    });
}

fn cli(url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env("PARAPET_SERVER", url)
        .env("PARAPET_TOKEN", token)
        .env(
            "PARAPET_CONFIG_DIR",
            parapet_store_sql::testkit::temp_dir("cfg"),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn events_cli_ingest_is_idempotent_and_searchable(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let [_admin, alice, bob, gina] = rt.block_on(setup(&api));
    let url = srv.url.as_str();

    // An ingest token made with the CLI.
    let (ok, o, e) = cli(
        url,
        &alice,
        &[
            "token", "create", "--name", "ship", "--scope", "ingest", "--json",
        ],
    );
    assert!(ok, "{o}{e}");
    let ingest = serde_json::from_str::<Value>(&o).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let dir = parapet_store_sql::testkit::temp_dir("ingest");
    let a = dir.join("a.jsonl");
    let mut text = String::new();
    for i in 0..2500 {
        let user = if i % 500 == 0 { "root" } else { "svc" };
        text.push_str(&format!(
            "{{\"time\":{},\"host\":\"web-1\",\"user\":{{\"name\":\"{user}\"}},\"n\":{i}}}\n",
            1_780_000_000 + i
        ));
    }
    std::fs::write(&a, &text).unwrap();
    let b = dir.join("b.jsonl");
    std::fs::write(&b, "{\"host\":\"db-1\",\"message\":\"second file\"}\n").unwrap();
    let args = [
        "ingest",
        "--tenant",
        "acme",
        "--batch-size",
        "1000",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
    ];
    let (ok, o, e) = cli(url, &ingest, &args);
    assert!(ok, "{o}{e}");
    let sum: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(sum["accepted"], 2501, "{sum}");
    assert_eq!(sum["batches"], 4);
    assert_eq!(sum["attributed"], 2500);
    assert_eq!(sum["replayed"], 0);
    // Running it again (as after a crash) stores nothing twice.
    let (ok, o, e) = cli(url, &ingest, &args);
    assert!(ok, "{o}{e}");
    let sum: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(sum["replayed"], 4, "{sum}");

    let (ok, o, e) = cli(
        url,
        &bob,
        &[
            "events", "search", "--tenant", "acme", "--limit", "5000", "--json",
        ],
    );
    assert!(ok, "{o}{e}");
    assert_eq!(
        serde_json::from_str::<Value>(&o)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2501
    );
    let (ok, o, e) = cli(
        url,
        &bob,
        &[
            "events",
            "search",
            "--tenant",
            "acme",
            "--field",
            "user.name=root",
            "--json",
        ],
    );
    assert!(ok, "{o}{e}");
    let found: Value = serde_json::from_str(&o).unwrap();
    let ns: Vec<i64> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![2000, 1500, 1000, 500, 0]);
    let (ok, o, e) = cli(
        url,
        &bob,
        &[
            "events",
            "search",
            "--tenant",
            "acme",
            "--text",
            "second file",
        ],
    );
    assert!(ok, "{o}{e}");
    assert!(o.contains("db-1") && o.contains("second file"), "{o}");
    let id = found[0]["id"].as_str().unwrap();
    let (ok, o, e) = cli(url, &bob, &["events", "show", "--tenant", "acme", id]);
    assert!(ok, "{o}{e}");
    assert!(o.contains("\"root\""), "{o}");

    // A bad line: one line of error naming the file and its line, non-zero exit.
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"a\":1}\n{\"a\":2}\n{\"a\":3\n").unwrap();
    let (ok, o, e) = cli(
        url,
        &ingest,
        &["ingest", "--tenant", "acme", bad.to_str().unwrap()],
    );
    assert!(!ok, "{o}");
    assert!(e.contains("bad.jsonl:3"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    // The ingest token cannot search, and another tenant's admin cannot send to acme.
    let (ok, _, e) = cli(url, &ingest, &["events", "search", "--tenant", "acme"]);
    assert!(!ok);
    assert!(e.contains("403"), "{e}");
    let (ok, _, e) = cli(
        url,
        &gina,
        &["ingest", "--tenant", "acme", b.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(e.contains("404"), "{e}");

    // Retention through the CLI.
    let (ok, o, e) = cli(
        url,
        &alice,
        &["events", "retention", "--tenant", "acme", "--days", "30"],
    );
    assert!(ok, "{o}{e}");
    assert!(o.contains("30 days"), "{o}");
    let (ok, o, _) = cli(
        url,
        &bob,
        &["events", "retention", "--tenant", "acme", "--json"],
    );
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&o).unwrap()["days"], 30);
}
