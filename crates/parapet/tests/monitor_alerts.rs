//! Live detection and alerts through the API, the CLI and the console on both backends (issue 6,
//! X.1642 8.3, 8.6.1): provider rules see every tenant's events, tenant rules only their own;
//! matches become alerts grouped by rule and host, suppressed, acknowledged and closed; invalid
//! rules are refused naming file and line; tenants never see each other's alerts.
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
    alerts_from_provider_and_tenant_rules_with_grouping_and_isolation,
    alerts_and_rules_cli
);

const PW: &str = "alert-test-password-1";

const SSH_RULE: &str = "title: SSH failed password
id: 0b8e7e6c-1111-4000-8000-000000000001
status: test
logsource:
  product: linux
  service: sshd
detection:
  selection:
    message|contains: 'Failed password'
  condition: selection
level: high
";

const ACME_RULE: &str = "title: Acme payroll export
id: 0b8e7e6c-2222-4000-8000-000000000002
status: test
logsource:
  product: acme
detection:
  selection:
    action: payroll-export
  condition: selection
level: critical
";

const BROKEN_RULE: &str = "title: Broken
id: 0b8e7e6c-3333-4000-8000-000000000003
logsource:
  product: linux
detection:
  selection:
    a: b
";

impl Api {
    async fn put_text(&self, path: &str, token: &str, ct: &str, body: &str) -> (u16, Value) {
        let (s, _, b) = self
            .req(
                reqwest::Method::POST,
                path,
                token,
                &[("content-type", ct)],
                Some(body.as_bytes().to_vec()),
            )
            .await;
        (s, b)
    }
    async fn alerts(&self, tenant: &str, token: &str, q: &str) -> Vec<Value> {
        let (s, b) = self
            .get(
                &format!("/api/v1/tenants/{tenant}/alerts?limit=1000{q}"),
                token,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["items"].as_array().unwrap().clone()
    }
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
    [
        admin,
        api.login("alice@acme", PW).await,
        api.login("bob@acme", PW).await,
        api.login("gina@globex", PW).await,
    ]
}

fn failed(host: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"host\":\"{host}\",\"message\":\"Failed password for root from 198.51.100.{i}\"}}\n"))
        .collect()
}

fn alerts_from_provider_and_tenant_rules_with_grouping_and_isolation(backend: Backend) {
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
        // An invalid rule is refused with its file and line; nothing is stored.
        let (s, b) = api
            .put_text("/api/v1/tenants/provider/rules?file=broken.yml", &admin, "application/yaml", BROKEN_RULE)
            .await;
        assert_eq!(s, 422, "{b}");
        let d = b["detail"].as_str().unwrap();
        assert!(d.contains("[broken.yml:"), "{d}");
        let (s, b) = api.get("/api/v1/tenants/provider/rules", &admin).await;
        assert_eq!((s, b.as_array().unwrap().len()), (200, 0));
        // The provider's rule and acme's own rule.
        let (s, b) = api
            .put_text("/api/v1/tenants/provider/rules?file=ssh.yml", &admin, "application/yaml", SSH_RULE)
            .await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(b[0]["rule_id"], "0b8e7e6c-1111-4000-8000-000000000001");
        assert_eq!(b[0]["level"], "high");
        let (s, b) = api
            .put_text("/api/v1/tenants/acme/rules?file=payroll.yml", &alice, "application/yaml", ACME_RULE)
            .await;
        assert_eq!(s, 201, "{b}");
        // A member cannot upload; another tenant cannot see acme's rules; acme cannot see the provider's.
        let (s, _) = api
            .put_text("/api/v1/tenants/acme/rules?file=x.yml", &bob, "application/yaml", ACME_RULE)
            .await;
        assert_eq!(s, 403);
        assert_eq!(api.get("/api/v1/tenants/acme/rules", &gina).await.0, 404);
        assert_eq!(api.get("/api/v1/tenants/provider/rules", &alice).await.0, 404);
        assert_eq!(
            api.put_text("/api/v1/tenants/acme/rules?file=x.yml", &gina, "application/yaml", ACME_RULE).await.0,
            404
        );

        // Test on a sample: nothing stored.
        let sample = format!("{}{{\"action\":\"payroll-export\"}}\n{{\"action\":\"other\"}}\n", failed("web-1", 1));
        let (s, m) = api.put_text("/api/v1/tenants/acme/rules-test", &alice, "application/x-ndjson", &sample).await;
        assert_eq!(s, 200, "{m}");
        let got: Vec<(i64, String)> = m
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["event_index"].as_i64().unwrap(), x["title"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(got, vec![(0, "SSH failed password".into()), (1, "Acme payroll export".into())]);
        let (s, m) = api.put_text("/api/v1/tenants/globex/rules-test", &gina, "application/x-ndjson", &sample).await;
        assert_eq!((s, m.as_array().unwrap().len()), (200, 1), "globex has only the provider's rule: {m}");
        assert!(api.alerts("acme", &alice, "").await.is_empty());

        // Ingest: five failures on web-1 and two on db-1 in acme, then three more on web-1.
        let (s, _, r) = api.ingest("acme", &alice, None, &format!("{}{}{{\"action\":\"payroll-export\",\"host\":\"hr-1\"}}\n", failed("web-1", 5), failed("db-1", 2))).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["alerts_raised"], 3, "{r}");
        assert_eq!(r["alert_matches"], 8, "{r}");
        let (s, _, r) = api.ingest("acme", &alice, None, &failed("WEB-1", 3)).await;
        assert_eq!((s, r["alerts_raised"].clone()), (200, json!(0)), "{r}");
        let (s, _, r) = api.ingest("globex", &gina, None, &format!("{}{{\"action\":\"payroll-export\"}}\n", failed("gx-1", 1))).await;
        assert_eq!((s, r["alerts_raised"].clone()), (200, json!(1)), "acme's rule never sees globex: {r}");

        let acme = api.alerts("acme", &bob, "").await;
        assert_eq!(acme.len(), 3, "{acme:?}");
        let web = acme.iter().find(|a| a["group_key"] == "web-1").unwrap();
        assert_eq!(web["count"], 8);
        assert_eq!(web["severity"], "high");
        assert_eq!(web["provider_rule"], true);
        assert_eq!(web["status"], "open");
        assert_eq!(web["tenant"], "acme");
        assert!(web["alert_at"].is_string() && web["last_event_at"].is_string());
        let db = acme.iter().find(|a| a["group_key"] == "db-1").unwrap();
        assert_eq!(db["count"], 2);
        let pay = acme.iter().find(|a| a["rule_id"] == "0b8e7e6c-2222-4000-8000-000000000002").unwrap();
        assert_eq!((pay["severity"].clone(), pay["provider_rule"].clone()), (json!("critical"), json!(false)));
        // The alert's events are the stored events.
        let id = web["id"].as_str().unwrap();
        let (s, detail) = api.get(&format!("/api/v1/tenants/acme/alerts/{id}"), &bob).await;
        assert_eq!(s, 200, "{detail}");
        let ids = detail["event_ids"].as_array().unwrap();
        assert_eq!(ids.len(), 8);
        let (s, ev) = api.get(&format!("/api/v1/tenants/acme/events/{}", ids[0].as_str().unwrap()), &bob).await;
        assert_eq!(s, 200);
        assert!(ev["message"].as_str().unwrap().contains("Failed password"));

        // Isolation: globex sees only its own alert; acme's alert is invisible to globex.
        let gx = api.alerts("globex", &gina, "").await;
        assert_eq!(gx.len(), 1);
        assert_eq!(gx[0]["group_key"], "gx-1");
        assert_eq!(api.get(&format!("/api/v1/tenants/acme/alerts/{id}"), &gina).await.0, 404);
        assert_eq!(api.get(&format!("/api/v1/tenants/globex/alerts/{id}"), &gina).await.0, 404);
        assert_eq!(api.get("/api/v1/tenants/acme/alerts", &gina).await.0, 404);
        assert_eq!(api.post(&format!("/api/v1/tenants/acme/alerts/{id}/ack"), &gina, json!({})).await.0, 404);
        // The provider sees every tenant's alerts on its own tenant.
        let all = api.alerts("provider", &admin, "").await;
        assert_eq!(all.len(), 4);
        assert!(all.iter().any(|a| a["tenant"] == "globex") && all.iter().any(|a| a["tenant"] == "acme"));

        // Acknowledge and close; a member may read but not handle; a closed alert stays closed.
        assert_eq!(api.post(&format!("/api/v1/tenants/acme/alerts/{id}/ack"), &bob, json!({})).await.0, 403);
        let (s, a) = api.post(&format!("/api/v1/tenants/acme/alerts/{id}/ack"), &alice, json!({"note": "looking"})).await;
        assert_eq!(s, 200, "{a}");
        assert_eq!((a["status"].clone(), a["acknowledged_by"].clone()), (json!("acknowledged"), json!("alice@acme")));
        assert_eq!(api.alerts("acme", &alice, "&status=acknowledged").await.len(), 1);
        // Matches still join an acknowledged alert.
        api.ingest("acme", &alice, None, &failed("web-1", 1)).await;
        let (_, a) = api.get(&format!("/api/v1/tenants/acme/alerts/{id}"), &alice).await;
        assert_eq!(a["count"], 9);
        let (s, a) = api.post(&format!("/api/v1/tenants/acme/alerts/{id}/close"), &alice, json!({})).await;
        assert_eq!((s, a["status"].clone()), (200, json!("closed")), "{a}");
        assert_eq!(api.post(&format!("/api/v1/tenants/acme/alerts/{id}/ack"), &alice, json!({})).await.0, 409);
        // After closing, a new match raises a new alert.
        let (_, _, r) = api.ingest("acme", &alice, None, &failed("web-1", 1)).await;
        assert_eq!(r["alerts_raised"], 1, "{r}");

        // Suppression: no new alert and no count for the suppressed rule and host.
        let (s, b) = api
            .post("/api/v1/tenants/acme/alert-suppressions", &alice,
                json!({"rule_id": "0b8e7e6c-1111-4000-8000-000000000001", "group_key": "db-1", "minutes": 60, "reason": "maintenance"}))
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, _) = api
            .post("/api/v1/tenants/acme/alert-suppressions", &alice, json!({"rule_id": "x", "minutes": 0, "reason": "r"}))
            .await;
        assert_eq!(s, 422);
        let (_, _, r) = api.ingest("acme", &alice, None, &failed("db-1", 4)).await;
        assert_eq!(r["alerts_raised"], 0, "{r}");
        let (_, d) = api.get(&format!("/api/v1/tenants/acme/alerts/{}", db["id"].as_str().unwrap()), &alice).await;
        assert_eq!(d["count"], 2, "suppressed matches are not counted");

        // A disabled rule raises nothing.
        let (s, _, _) = api.req(reqwest::Method::POST, "/api/v1/tenants/acme/rules/0b8e7e6c-2222-4000-8000-000000000002/disable", &alice, &[], None).await;
        assert_eq!(s, 204);
        let (_, _, r) = api.ingest("acme", &alice, None, "{\"action\":\"payroll-export\",\"host\":\"hr-2\"}").await;
        assert_eq!((r["alerts_raised"].clone(), r["alert_matches"].clone()), (json!(0), json!(0)), "{r}");
        let (s, rules) = api.get("/api/v1/tenants/acme/rules", &alice).await;
        assert_eq!((s, rules[0]["enabled"].clone()), (200, json!(false)));

        // Every handling step is in the audit trail.
        let (_, audit) = api.get("/api/v1/tenants/acme/audit?limit=500", &alice).await;
        let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
        for a in ["rules.import", "alert.acknowledge", "alert.close", "alert.suppress", "rule.disable"] {
            assert!(actions.contains(&a), "{a} missing from {actions:?}");
        }

        // The endpoints are in the OpenAPI document.
        let (s, doc) = api.get("/api/v1/openapi.json", &alice).await;
        assert_eq!(s, 200);
        for p in [
            "/api/v1/tenants/{tenant}/events",
            "/api/v1/tenants/{tenant}/event-retention",
            "/api/v1/tenants/{tenant}/rules",
            "/api/v1/tenants/{tenant}/rules-test",
            "/api/v1/tenants/{tenant}/alerts",
            "/api/v1/tenants/{tenant}/alerts/{id}/{verb}",
            "/api/v1/tenants/{tenant}/alert-suppressions",
        ] {
            assert!(doc["paths"].get(p).is_some(), "missing {p}");
        }

        // The console's live alert list.
        let res = api
            .http
            .get(format!("{}/console/alerts", api.base))
            .header("cookie", format!("parapet_session={bob}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let html = res.text().await.unwrap();
        assert!(html.contains("SSH failed password") && html.contains("http-equiv=\"refresh\""), "{html}");
        assert!(!html.contains("gx-1"));
        let res = api
            .http
            .get(format!("{}/console/alerts?tenant=acme", api.base))
            .header("cookie", format!("parapet_session={gina}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404);
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

fn alerts_and_rules_cli(backend: Backend) {
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
    let dir = parapet_store_sql::testkit::temp_dir("rules");
    std::fs::create_dir_all(dir.join("linux")).unwrap();
    std::fs::write(dir.join("linux/ssh.yml"), SSH_RULE).unwrap();
    std::fs::write(dir.join("payroll.yaml"), ACME_RULE).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a rule").unwrap();
    let bad = parapet_store_sql::testkit::temp_dir("badrules");
    std::fs::write(bad.join("ok.yml"), SSH_RULE).unwrap();
    std::fs::write(bad.join("broken.yml"), BROKEN_RULE).unwrap();

    // A directory with a broken rule uploads nothing and names the file and line.
    let (ok, o, e) = cli(
        url,
        &alice,
        &["rules", "import", "--tenant", "acme", bad.to_str().unwrap()],
    );
    assert!(!ok, "{o}");
    assert!(e.contains("broken.yml:"), "{e}");
    let (ok, o, _) = cli(
        url,
        &alice,
        &["rules", "list", "--tenant", "acme", "--json"],
    );
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&o)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The good directory (searched recursively; other files ignored).
    let (ok, o, e) = cli(
        url,
        &alice,
        &["rules", "import", "--tenant", "acme", dir.to_str().unwrap()],
    );
    assert!(ok, "{o}{e}");
    assert!(o.contains("Uploaded 2 rule files"), "{o}");
    // A member does not read the rules.
    let (ok, o, e) = cli(url, &bob, &["rules", "list", "--tenant", "acme"]);
    assert!(!ok && e.contains("403"), "{o}{e}");
    let (ok, o, e) = cli(url, &alice, &["rules", "list", "--tenant", "acme"]);
    assert!(ok, "{e}");
    assert!(
        o.contains("Acme payroll export") && o.contains("linux/ssh.yml"),
        "{o}"
    );

    let sample = dir.join("sample.jsonl");
    std::fs::write(
        &sample,
        format!("{{\"action\":\"none\"}}\n{}", failed("web-1", 2)),
    )
    .unwrap();
    let (ok, o, e) = cli(
        url,
        &alice,
        &[
            "rules",
            "test",
            "--tenant",
            "acme",
            "--sample",
            sample.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(ok, "{o}{e}");
    let idx: Vec<i64> = o
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event_index"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(idx, vec![1, 2]);

    // Events through `parapet ingest` raise an alert, handled with the CLI.
    let (ok, o, e) = cli(
        url,
        &alice,
        &["ingest", "--tenant", "acme", sample.to_str().unwrap()],
    );
    assert!(ok, "{o}{e}");
    let (ok, o, e) = cli(url, &bob, &["alerts", "list", "--tenant", "acme", "--json"]);
    assert!(ok, "{e}");
    let list: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["count"], 2);
    let id = list[0]["id"].as_str().unwrap();
    let (ok, o, e) = cli(url, &bob, &["alerts", "show", "--tenant", "acme", id]);
    assert!(ok, "{e}");
    assert!(
        o.contains("SSH failed password") && o.contains("web-1"),
        "{o}"
    );
    let (ok, _, e) = cli(url, &bob, &["alerts", "ack", "--tenant", "acme", id]);
    assert!(!ok && e.contains("403"), "{e}");
    let (ok, _, e) = cli(url, &gina, &["alerts", "ack", "--tenant", "acme", id]);
    assert!(!ok && e.contains("404"), "{e}");
    let (ok, o, e) = cli(
        url,
        &alice,
        &["alerts", "ack", "--tenant", "acme", id, "--note", "on it"],
    );
    assert!(ok, "{e}");
    assert!(o.contains("acknowledged"), "{o}");
    let (ok, o, e) = cli(url, &alice, &["alerts", "close", "--tenant", "acme", id]);
    assert!(ok && o.contains("closed"), "{o}{e}");
    let (ok, o, e) = cli(
        url,
        &alice,
        &[
            "alerts",
            "suppress",
            "--tenant",
            "acme",
            "--rule",
            "0b8e7e6c-1111-4000-8000-000000000001",
            "--minutes",
            "30",
            "--reason",
            "patching",
        ],
    );
    assert!(ok && o.contains("suppressed until"), "{o}{e}");
    let (ok, o, e) = cli(
        url,
        &alice,
        &[
            "rules",
            "disable",
            "--tenant",
            "acme",
            "0b8e7e6c-2222-4000-8000-000000000002",
        ],
    );
    assert!(ok && o.contains("disabled"), "{o}{e}");
    let (ok, _, e) = cli(
        url,
        &alice,
        &["rules", "enable", "--tenant", "acme", "no-such-rule"],
    );
    assert!(!ok && e.contains("404"), "{e}");
}
