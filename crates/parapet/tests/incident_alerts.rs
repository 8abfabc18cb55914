//! Incidents from monitoring alerts and SLA policies end to end (issue 7, X.1642 8.6.1,
//! 7.2.2.3): the real server on SQLite and PostgreSQL, real detection of ingested events, the
//! API (problem+json, tenant isolation), the CLI (`incident open --from-alert`, `incident
//! attach`, `sla policy show|set`, `playbook set|list`, `incident playbook`) and the console
//! (alert list button, SLA policy editor, playbook button).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, Server, start};
use serde_json::{Value, json};

on_both!(
    incidents_open_from_alerts_by_api_cli_and_console,
    sla_policies_by_cli_api_and_console_and_auto_open,
    playbooks_turn_into_tasks_by_cli_and_console,
);

const PW: &str = "incident-alerts-password-1";

const SSH_RULE: &str = "title: SSH failed password
id: 0b8e7e6c-7777-4000-8000-000000000007
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

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn cli(srv: &Server, token: &str, args: &[&str]) -> (i32, String, String) {
    let o = common::run_cli(&srv.url, token, args, b"");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn cli_json(srv: &Server, token: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = cli(srv, token, &a);
    assert_eq!(code, 0, "parapet {args:?} failed: {err}{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn cli_err(srv: &Server, token: &str, args: &[&str]) -> String {
    let (code, out, err) = cli(srv, token, args);
    assert_ne!(code, 0, "parapet {args:?} should fail: {out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err}");
    lines[0].to_string()
}

/// Tenants acme and globex with an admin each, a responder, and the provider's SSH rule.
/// Returns [admin, responder, alice@acme, gina@globex].
async fn setup(api: &Api) -> [String; 4] {
    let admin = api.login("admin", ADMIN_PASSWORD).await;
    let (s, b) = api
        .post(
            "/api/v1/tenants/provider/users",
            &admin,
            json!({"username": "responder", "password": PW, "role": "incident-responder"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    for (t, u) in [("acme", "alice"), ("globex", "gina")] {
        let (s, b) = api
            .post("/api/v1/tenants", &admin, json!({"name": t}))
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = api
            .post(
                &format!("/api/v1/tenants/{t}/users"),
                &admin,
                json!({"username": u, "password": PW, "role": "tenant-admin"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, _, b) = api
        .req(
            reqwest::Method::POST,
            "/api/v1/tenants/provider/rules?file=ssh.yml",
            &admin,
            &[("content-type", "application/yaml")],
            Some(SSH_RULE.as_bytes().to_vec()),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    [
        admin,
        api.login("responder", PW).await,
        api.login("alice@acme", PW).await,
        api.login("gina@globex", PW).await,
    ]
}

/// Sends `n` failed SSH log-ins of `host` to `tenant` with the event time `time`; returns how
/// many alerts were raised.
async fn attack(api: &Api, tenant: &str, token: &str, host: &str, n: usize, time: &str) -> i64 {
    let body: String = (0..n)
        .map(|i| {
            format!(
                "{{\"@timestamp\":\"{time}\",\"host\":\"{host}\",\"message\":\"Failed password \
                 for root from 198.51.100.{i}\"}}\n"
            )
        })
        .collect();
    let (s, _, r) = api.ingest(tenant, token, None, &body).await;
    assert_eq!(s, 200, "{r}");
    r["alerts_raised"].as_i64().unwrap()
}

async fn alert_id(api: &Api, tenant: &str, token: &str, host: &str) -> String {
    let (s, b) = api
        .get(
            &format!("/api/v1/tenants/{tenant}/alerts?limit=1000"),
            token,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["group_key"] == host)
        .unwrap_or_else(|| panic!("no alert for {host}: {b}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn incidents_open_from_alerts_by_api_cli_and_console(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    rt().block_on(async {
        let [admin, responder, alice, gina] = setup(&api).await;
        let t0 = "2026-11-30T10:00:00Z";
        assert_eq!(attack(&api, "acme", &alice, "web-1", 3, t0).await, 1);
        assert_eq!(
            attack(&api, "acme", &alice, "db-1", 2, "2026-11-30T10:05:00Z").await,
            1
        );
        assert_eq!(attack(&api, "globex", &gina, "gx-1", 1, t0).await, 1);
        let web = alert_id(&api, "acme", &alice, "web-1").await;
        let db = alert_id(&api, "acme", &alice, "db-1").await;
        let gx = alert_id(&api, "globex", &gina, "gx-1").await;

        // CLI: one incident from two alerts, merged.
        let i = cli_json(
            &srv,
            &responder,
            &["incident", "open", "--from-alert", &web, &db],
        );
        assert_eq!(i["tenant_name"], "acme");
        assert_eq!(i["source"], "alerts");
        assert_eq!(i["severity"], "high", "the rule's level");
        assert_eq!(i["alerts"], json!([web, db]));
        assert_eq!(i["responsible"]["detecting"], "responder");
        // Detected at the first event (2026-11-30T10:00:00Z), before it was opened.
        assert_eq!(i["detected_at"], json!(1_796_032_800_000_i64));
        let kinds: Vec<&str> = i["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "alert-linked").count(),
            2,
            "{kinds:?}"
        );
        let linked = i["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["kind"] == "alert-linked")
            .unwrap();
        assert_eq!(
            linked["alert"]["rule"],
            "0b8e7e6c-7777-4000-8000-000000000007"
        );
        assert_eq!(linked["alert"]["events"], 3);
        assert!(
            i["observables"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["kind"] == "host" && o["value"] == "web-1")
        );
        let id = i["id"].as_str().unwrap().to_string();
        let human = {
            let (code, out, err) = cli(&srv, &responder, &["incident", "show", &id]);
            assert_eq!(code, 0, "{err}");
            out
        };
        assert!(human.contains("alert-linked"), "{human}");
        assert!(
            human.contains("2026-11-30T10:00:00"),
            "the detection time is shown: {human}"
        );

        // The same alert again: refused in one line naming the incident.
        let e = cli_err(
            &srv,
            &responder,
            &["incident", "open", "--from-alert", &web],
        );
        assert!(
            e.contains("already part of incident") && e.contains(&id),
            "{e}"
        );

        // API: problem+json for bad input; tenants never reach another tenant's alerts.
        let (s, b) = api
            .post(
                "/api/v1/incidents/from-alerts",
                &gina,
                json!({"alerts": [db]}),
            )
            .await;
        assert_eq!(s, 404, "globex cannot see acme's alert: {b}");
        let (s, b) = api
            .post(
                "/api/v1/incidents/from-alerts",
                &responder,
                json!({"alerts": [gx, db]}),
            )
            .await;
        assert_eq!(s, 422, "{b}");
        assert!(
            b["detail"].as_str().unwrap().contains("different tenants"),
            "{b}"
        );
        let (s, b) = api
            .post(
                "/api/v1/incidents/from-alerts",
                &responder,
                json!({"alerts": []}),
            )
            .await;
        assert_eq!(s, 422, "{b}");
        let (s, b) = api
            .post(
                "/api/v1/incidents/from-alerts",
                &responder,
                json!({"alerts": ["x"], "bogus": 1}),
            )
            .await;
        assert_eq!(s, 422, "{b}");
        let (s, b) = api
            .post(
                "/api/v1/incidents/from-alerts",
                &responder,
                json!({"alerts": ["nope"]}),
            )
            .await;
        assert_eq!(s, 422, "{b}");
        assert!(
            b["type"].is_string() && b["title"].is_string(),
            "problem+json: {b}"
        );

        // POST /incidents with source "alerts" checks its alerts exactly as from-alerts does:
        // another tenant's alert is unknown to the caller, an alert of another tenant than the
        // incident's is refused, a linked one conflicts, none or an unknown id is refused.
        let open = |tenant: &str, alerts: Value| {
            json!({"tenant": tenant, "title": "by API", "source": "alerts", "alerts": alerts})
        };
        let (s, b) = api
            .post("/api/v1/incidents", &gina, open("globex", json!([db])))
            .await;
        assert_eq!(s, 404, "globex cannot name acme's alert: {b}");
        assert!(!b.to_string().contains("acme"), "nothing of acme: {b}");
        let (s, b) = api
            .post("/api/v1/incidents", &responder, open("acme", json!([gx])))
            .await;
        assert_eq!(s, 422, "{b}");
        assert!(b["detail"].as_str().unwrap().contains("not of tenant acme"), "{b}");
        let (s, b) = api
            .post("/api/v1/incidents", &responder, open("acme", json!([web])))
            .await;
        assert_eq!(s, 409, "{b}");
        assert!(b["detail"].as_str().unwrap().contains(&id), "{b}");
        let (s, b) = api
            .post("/api/v1/incidents", &responder, open("acme", json!([])))
            .await;
        assert_eq!(s, 422, "{b}");
        let (s, b) = api
            .post(
                "/api/v1/incidents",
                &responder,
                open("acme", json!(["0190a0a0-0000-7000-8000-000000000001"])),
            )
            .await;
        assert_eq!(s, 404, "{b}");
        let (s, b) = api
            .post(
                "/api/v1/incidents",
                &responder,
                json!({"tenant": "acme", "title": "manual with ids", "alerts": ["nope"]}),
            )
            .await;
        assert_eq!(s, 422, "alert ids are checked whatever the source: {b}");
        // A free alert of the tenant's own: opened and linked like from-alerts.
        assert_eq!(
            attack(&api, "globex", &gina, "gx-2", 1, "2026-11-30T10:30:00Z").await,
            1
        );
        let gx2 = alert_id(&api, "globex", &gina, "gx-2").await;
        let (s, b) = api
            .post("/api/v1/incidents", &gina, open("globex", json!([gx2])))
            .await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(
            (b["source"].clone(), b["alerts"].clone(), b["title"].clone()),
            (json!("alerts"), json!([gx2]), json!("by API"))
        );
        let (s, b) = api
            .post("/api/v1/incidents", &gina, open("globex", json!([gx2])))
            .await;
        assert_eq!(s, 409, "linked now: {b}");

        // A later alert is attached by the CLI; the tenant sees its incident with the alerts.
        assert_eq!(
            attack(&api, "acme", &alice, "app-1", 1, "2026-11-30T11:00:00Z").await,
            1
        );
        let app = alert_id(&api, "acme", &alice, "app-1").await;
        let i = cli_json(
            &srv,
            &responder,
            &["incident", "attach", &id, "--alert", &app],
        );
        assert_eq!(i["alerts"].as_array().unwrap().len(), 3);
        let e = cli_err(
            &srv,
            &responder,
            &["incident", "attach", &id, "--alert", &app],
        );
        assert!(e.contains("already part of incident"), "{e}");
        let (s, b) = api.get(&format!("/api/v1/incidents/{id}"), &alice).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["alerts"].as_array().unwrap().len(), 3);
        assert_eq!(
            api.get(&format!("/api/v1/incidents/{id}"), &gina).await.0,
            404
        );

        // Console: the alert list offers the button; checking globex's alert opens its incident.
        let csrf = "c".repeat(43);
        let cookie = |t: &str| format!("parapet_session={t}; parapet_csrf={csrf}");
        let html = api
            .http
            .get(format!("{}/console/alerts?tenant=globex", api.base))
            .header("cookie", cookie(&admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("action=\"/console/incidents/from-alerts\""),
            "{html}"
        );
        assert!(html.contains(&format!("value=\"{gx}\"")), "{html}");
        let forms = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = forms
            .post(format!("{}/console/incidents/from-alerts", api.base))
            .header("cookie", cookie(&admin))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&alert={gx}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let to = r.headers()["location"].to_str().unwrap().to_string();
        assert!(to.starts_with("/console/incidents/"), "{to}");
        let gid = to.trim_start_matches("/console/incidents/");
        let (s, b) = api.get(&format!("/api/v1/incidents/{gid}"), &gina).await;
        assert_eq!((s, b["alerts"].clone()), (200, json!([gx])), "{b}");
        // Without the CSRF token nothing happens.
        let r = forms
            .post(format!("{}/console/incidents/from-alerts", api.base))
            .header("cookie", cookie(&admin))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf=wrong&alert={gx}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
    });
}

fn sla_policies_by_cli_api_and_console_and_auto_open(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    rt().block_on(async {
        let [admin, _responder, alice, gina] = setup(&api).await;
        // Built-in until someone sets one.
        let v = cli_json(&srv, &alice, &["sla", "policy", "show"]);
        assert_eq!((v["tenant"].clone(), v["source"].clone()), (json!("acme"), json!("built-in")));
        let v = cli_json(
            &srv,
            &admin,
            &[
                "sla", "policy", "set", "--tenant", "acme", "--hours", "5x8", "--target",
                "critical=30m/2h/8h", "--target", "low=//10d", "--auto-open", "high",
            ],
        );
        assert_eq!(v["source"], "tenant");
        assert_eq!(v["policy"]["hours"], "5x8");
        assert_eq!(v["policy"]["auto_open"], "high");
        assert_eq!(v["policy"]["targets"]["critical"]["acknowledge_secs"], 1800);
        assert_eq!(v["policy"]["targets"]["critical"]["resolve_secs"], 8 * 3600);
        assert_eq!(v["policy"]["targets"]["low"]["resolve_secs"], 10 * 86_400);
        // The tenant reads it (without the provider's paging list) but cannot change it.
        let v = cli_json(&srv, &alice, &["sla", "policy", "show"]);
        assert_eq!((v["source"].clone(), v["policy"]["hours"].clone()), (json!("tenant"), json!("5x8")));
        let (code, out, _) = cli(&srv, &alice, &["sla", "policy", "show"]);
        assert_eq!(code, 0);
        assert!(out.contains("5x8") && out.contains("30m"), "{out}");
        let e = cli_err(&srv, &alice, &["sla", "policy", "set", "--hours", "7x24"]);
        assert!(e.to_lowercase().contains("forbidden") || e.contains("may not"), "{e}");
        let e = cli_err(&srv, &admin, &["sla", "policy", "set", "--tenant", "acme", "--target", "critical=1h"]);
        assert!(e.contains("ACK/NOTIFY/RESOLVE"), "{e}");
        let (s, b) = api.get("/api/v1/sla/policy?tenant=acme", &gina).await;
        assert!(s == 404 || s == 403, "{s} {b}");
        let put = |token: String, body: Value| {
            let api = &api;
            async move {
                let (s, _, b) = api
                    .req(
                        reqwest::Method::PUT,
                        "/api/v1/sla/policy",
                        &token,
                        &[("content-type", "application/json")],
                        Some(serde_json::to_vec(&body).unwrap()),
                    )
                    .await;
                (s, b)
            }
        };
        let (s, b) = put(admin.clone(), json!({"tenant": "acme", "hours": "6x9"})).await;
        assert_eq!(s, 422, "{b}");
        let (s, b) = put(
            admin.clone(),
            json!({"tenant": "acme", "targets": {"high": {"acknowledge_secs": 90000, "resolve_secs": 3600}}}),
        )
        .await;
        assert_eq!(s, 422, "acknowledgement after resolution: {b}");
        let (s, b) = put(gina.clone(), json!({"tenant": "acme", "hours": "7x24"})).await;
        assert!(s == 404 || s == 403, "{s} {b}");
        // The provider's own policy is the default of the others.
        let (s, b) = put(admin.clone(), json!({"targets": {"medium": {"acknowledge_secs": 7200}}})).await;
        assert_eq!(s, 200, "{b}");
        let (_, b) = api.get("/api/v1/sla/policy?tenant=globex", &admin).await;
        assert_eq!(b["source"], "provider");
        assert_eq!(b["policy"]["targets"]["medium"]["acknowledge_secs"], 7200);

        // A new incident of acme takes its policy.
        let (s, i) = api
            .post("/api/v1/incidents", &admin, json!({"tenant": "acme", "title": "outage", "severity": "critical"}))
            .await;
        assert_eq!(s, 201, "{i}");
        assert_eq!(i["sla"]["hours"], "5x8");
        assert_eq!(i["sla"]["targets"]["acknowledge_secs"], 1800);

        // Auto-open: a high alert of acme opens an incident by itself; globex's does not.
        assert_eq!(attack(&api, "acme", &alice, "auto-1", 2, "2026-11-30T10:00:00Z").await, 1);
        assert_eq!(attack(&api, "globex", &gina, "auto-2", 2, "2026-11-30T10:00:00Z").await, 1);
        let acme_alert = alert_id(&api, "acme", &alice, "auto-1").await;
        let mut found = None;
        for _ in 0..100 {
            let (_, list) = api.get("/api/v1/incidents?tenant=acme", &admin).await;
            if let Some(x) = list
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["title"] == "SSH failed password")
            {
                found = Some(x["id"].as_str().unwrap().to_string());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let auto = found.expect("the high alert opened an incident");
        let (_, i) = api.get(&format!("/api/v1/incidents/{auto}"), &alice).await;
        assert_eq!(i["alerts"], json!([acme_alert]));
        assert_eq!(i["history"][0]["actor"], "system");
        let (_, list) = api.get("/api/v1/incidents?tenant=globex", &admin).await;
        assert!(list.as_array().unwrap().is_empty(), "globex has no auto-open: {list}");

        // Console editor: the provider edits, the tenant only reads.
        let csrf = "c".repeat(43);
        let cookie = |t: &str| format!("parapet_session={t}; parapet_csrf={csrf}");
        let page = |t: String| {
            let http = api.http.clone();
            let url = format!("{}/console/sla?tenant=acme", api.base);
            let c = cookie(&t);
            async move {
                let r = http.get(url).header("cookie", c).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (s, html) = page(admin.clone()).await;
        assert_eq!(s, 200);
        assert!(html.contains("id=\"sla-form\"") && html.contains("5x8"), "{html}");
        let (s, html) = page(alice.clone()).await;
        assert_eq!(s, 200);
        assert!(!html.contains("id=\"sla-form\"") && html.contains("id=\"sla-targets\""), "{html}");
        let forms = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = forms
            .post(format!("{}/console/sla", api.base))
            .header("cookie", cookie(&admin))
            .form(&[
                ("csrf", csrf.as_str()),
                ("tenant", "acme"),
                ("hours", "7x24"),
                ("auto_open", "off"),
                ("critical_acknowledge", "20"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let (_, b) = api.get("/api/v1/sla/policy?tenant=acme", &admin).await;
        assert_eq!(b["policy"]["hours"], "7x24");
        assert_eq!(b["policy"]["auto_open"], Value::Null);
        assert_eq!(b["policy"]["targets"]["critical"]["acknowledge_secs"], 1200);
        assert_eq!(b["policy"]["targets"]["critical"]["resolve_secs"], 8 * 3600, "kept");
        let r = forms
            .post(format!("{}/console/sla", api.base))
            .header("cookie", cookie(&admin))
            .form(&[("csrf", csrf.as_str()), ("tenant", "acme"), ("critical_acknowledge", "soon")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 422);
    });
}

fn playbooks_turn_into_tasks_by_cli_and_console(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    rt().block_on(async {
        let [admin, responder, alice, _gina] = setup(&api).await;
        let dir = parapet_store_sql::testkit::temp_dir("playbooks");
        let file = dir.join("vuln.json");
        std::fs::write(
            &file,
            json!({
                "name": "vulnerability",
                "categories": ["vulnerability"],
                "steps": [
                    {"kind": "patch", "title": "Patch openssl on the affected hosts"},
                    {"kind": "config-fix", "title": "Disable TLS 1.0"},
                    {"kind": "inform-tenant", "title": "Agree the patch window", "owner": "alice@acme"}
                ]
            })
            .to_string(),
        )
        .unwrap();
        let v = cli_json(&srv, &responder, &["playbook", "set", "--file", file.to_str().unwrap()]);
        assert_eq!(v["name"], "vulnerability");
        let bad = dir.join("bad.json");
        std::fs::write(&bad, json!({"name": "empty", "steps": []}).to_string()).unwrap();
        let e = cli_err(&srv, &responder, &["playbook", "set", "--file", bad.to_str().unwrap()]);
        assert!(e.contains("1 to 50 steps"), "{e}");
        let e = cli_err(&srv, &alice, &["playbook", "set", "--file", file.to_str().unwrap()]);
        assert!(!e.is_empty());
        let (code, out, err) = cli(&srv, &admin, &["playbook", "list"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("vulnerability") && out.contains("patch > config-fix > inform-tenant"), "{out}");

        let open = |title: &str| json!({"tenant": "acme", "title": title, "severity": "high", "category": "vulnerability"});
        let (s, i) = api.post("/api/v1/incidents", &responder, open("CVE on web tier")).await;
        assert_eq!(s, 201, "{i}");
        let id = i["id"].as_str().unwrap().to_string();
        let i = cli_json(&srv, &responder, &["incident", "playbook", &id]);
        let origins: Vec<&str> = i["tasks"].as_array().unwrap().iter().map(|t| t["origin"].as_str().unwrap()).collect();
        assert_eq!(
            origins,
            ["playbook:vulnerability:patch", "playbook:vulnerability:config-fix", "playbook:vulnerability:inform-tenant"]
        );
        // The tenant sees the tasks in its view of the incident.
        let (s, b) = api.get(&format!("/api/v1/incidents/{id}"), &alice).await;
        assert_eq!((s, b["tasks"].as_array().unwrap().len()), (200, 3), "{b}");
        // Nothing applies to another category: a problem, nothing changes.
        let (s, o) = api
            .post("/api/v1/incidents", &responder, json!({"tenant": "acme", "title": "phish", "category": "phishing"}))
            .await;
        assert_eq!(s, 201, "{o}");
        let (s, b) = api
            .post(&format!("/api/v1/incidents/{}/run-playbook", o["id"].as_str().unwrap()), &responder, json!({}))
            .await;
        assert_eq!(s, 404, "{b}");

        // The console's button on the incident page.
        let (_, i2) = api.post("/api/v1/incidents", &responder, open("CVE on db tier")).await;
        let id2 = i2["id"].as_str().unwrap();
        let csrf = "c".repeat(43);
        let cookie = format!("parapet_session={responder}; parapet_csrf={csrf}");
        let html = api
            .http
            .get(format!("{}/console/incidents/{id2}", api.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("id=\"incident-playbook-form\""), "{html}");
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/console/incidents/{id2}/run-playbook", api.base))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str()), ("playbook", "vulnerability")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let (_, b) = api.get(&format!("/api/v1/incidents/{id2}"), &responder).await;
        assert_eq!(b["tasks"].as_array().unwrap().len(), 3, "{b}");

        // The console's plan editor: a new plan, its BIA graph, a new version.
        let forms = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let content = json!({
            "scenario": "database outage",
            "notification": "page the DBA",
            "launch": {"min_severity": "high", "categories": ["outage"]},
            "team": [{"name": "responder", "role": "dba", "contact": "dba@example.net"}],
            "bia": [
                {"name": "web", "priority": 1, "depends_on": ["db"], "rto_secs": 1800, "rpo_secs": 0},
                {"name": "db", "priority": 2, "depends_on": [], "rto_secs": 3600, "rpo_secs": 300}
            ],
            "checklist": ["Fail over", "Inform tenants"]
        });
        let r = forms
            .post(format!("{}/console/plans/new", api.base))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str()), ("name", "db-outage"), ("content", &content.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let html = api
            .http
            .get(format!("{}/console/plans", api.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("id=\"bia-graph\"") && html.contains("web depends on db"), "{html}");
        let mut revised = content.clone();
        revised["checklist"] = json!(["Fail over", "Check replication", "Inform tenants"]);
        let r = forms
            .post(format!("{}/console/plans/db-outage/edit", api.base))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str()), ("content", &revised.to_string()), ("reason", "after the drill")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let (s, b) = api.get("/api/v1/plans/db-outage", &responder).await;
        assert_eq!((s, b["version"].clone()), (200, json!(2)), "{b}");
        let r = forms
            .post(format!("{}/console/plans/db-outage/edit", api.base))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str()), ("content", "{not json"), ("reason", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 422);
        // A tenant cannot reach the editor.
        let alice_cookie = format!("parapet_session={alice}; parapet_csrf={csrf}");
        let r = api
            .http
            .get(format!("{}/console/plans/db-outage/edit", api.base))
            .header("cookie", &alice_cookie)
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 403 | 404), "{}", r.status());
    });
}
