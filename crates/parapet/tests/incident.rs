//! Incidents end to end (issue 7, X.1642 8.6): the real server on SQLite and PostgreSQL, the
//! `parapet incident` commands, the API with tenant isolation and bad input, the console board
//! and incident page, and the PDF report read back with `pdftotext` (poppler-utils).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{ADMIN_PASSWORD, Backend, Server, start};
use serde_json::{Value, json};

on_both!(
    an_incident_from_a_simulated_attack_goes_through_every_step_by_cli,
    the_api_isolates_tenants_and_refuses_bad_input,
    the_console_shows_the_board_and_moves_an_incident,
    a_plan_is_activated_from_an_incident_by_cli,
);

const PW: &str = "incident-test-password-1";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(srv: &Server) -> Api {
        Api {
            base: srv.url.clone(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
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

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    async fn login(&self, user: &str, pw: &str) -> String {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": user, "password": pw})),
            )
            .await;
        assert_eq!(s, 200, "login {user}: {b}");
        b["token"].as_str().unwrap().to_string()
    }

    /// Creates the tenants and users the tests use; returns the admin's token.
    async fn setup(&self) -> String {
        let admin = self.login("admin", ADMIN_PASSWORD).await;
        for (name, role) in [
            ("responder", "incident-responder"),
            ("oncall", "incident-responder"),
            ("olivia", "operator"),
        ] {
            let (s, b) = self
                .post(
                    "/api/v1/tenants/provider/users",
                    &admin,
                    json!({"username": name, "password": PW, "role": role}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        for t in ["acme", "globex", "initech"] {
            let (s, b) = self
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201, "{b}");
            let (s, b) = self
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": "alice", "password": PW, "role": "tenant-admin"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        admin
    }
}

/// Runs `parapet args…` against `srv` with `token`.
fn cli(srv: &Server, token: &str, args: &[&str]) -> (i32, String, String) {
    let dir = parapet_store_sql::testkit::temp_dir("inc-cli");
    let o = Command::new(common::bin())
        .args(args)
        .env("PARAPET_CONFIG_DIR", &dir)
        .env("PARAPET_SERVER", &srv.url)
        .env("PARAPET_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn cli_ok(srv: &Server, token: &str, args: &[&str]) -> String {
    let (code, out, err) = cli(srv, token, args);
    assert_eq!(code, 0, "parapet {args:?} failed: {err}{out}");
    out
}

fn cli_json(srv: &Server, token: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = cli_ok(srv, token, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn cli_err(srv: &Server, token: &str, args: &[&str]) -> String {
    let (code, out, err) = cli(srv, token, args);
    assert_ne!(code, 0, "parapet {args:?} should fail: {out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err}");
    lines[0].to_string()
}

fn pdftotext(pdf: &Path) -> String {
    let o = Command::new("pdftotext")
        .arg("-layout")
        .arg(pdf)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("pdftotext is missing ({e}): install Debian's poppler-utils (scripts/test does)")
        });
    assert!(o.status.success(), "pdftotext failed: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn an_incident_from_a_simulated_attack_goes_through_every_step_by_cli(backend: Backend) {
    let srv = start(backend);
    let api = Api::new(&srv);
    let rt = rt();
    let admin = rt.block_on(api.setup());
    let responder = rt.block_on(api.login("responder", PW));
    // The attack: repeated failed log-ins from one address against acme's alice.
    rt.block_on(async {
        for _ in 0..5 {
            let (s, _) = api
                .call(
                    reqwest::Method::POST,
                    "/api/v1/auth/login",
                    None,
                    Some(json!({"username": "alice@acme", "password": "guess-guess-guess"})),
                )
                .await;
            assert_eq!(s, 401);
        }
    });
    let opened = cli_json(
        &srv,
        &responder,
        &[
            "incident",
            "open",
            "--tenant",
            "acme",
            "--title",
            "Password spraying against alice@acme",
            "--severity",
            "high",
            "--category",
            "intrusion",
            "--description",
            "Five failed log-ins in a row from one address.",
        ],
    );
    let id = opened["id"].as_str().unwrap().to_string();
    assert_eq!(opened["step"], "detecting");
    assert_eq!(opened["responsible"]["detecting"], "responder");
    assert_eq!(opened["source"], "manual");
    assert_eq!(opened["tenant_name"], "acme");

    let steps = [
        ("analysing", "oncall", "triaged: a real attack"),
        ("disposing", "responder", "locking the account"),
        ("checking", "olivia", "account locked, password reset"),
        ("reporting", "admin", "no further attempts for an hour"),
    ];
    for (step, who, why) in steps {
        let out = cli_ok(
            &srv,
            &responder,
            &[
                "incident",
                "advance",
                &id,
                "--to",
                step,
                "--responsible",
                who,
                "--reason",
                why,
            ],
        );
        assert!(out.contains(&format!("step {step}")), "{out}");
        if step == "analysing" {
            cli_ok(
                &srv,
                &responder,
                &[
                    "incident",
                    "observe",
                    &id,
                    "--kind",
                    "ip",
                    "--value",
                    "127.0.0.1",
                ],
            );
            cli_ok(
                &srv,
                &responder,
                &[
                    "incident",
                    "note",
                    &id,
                    "Attack from the loopback: the test harness.",
                ],
            );
            cli_ok(
                &srv,
                &responder,
                &[
                    "incident",
                    "note",
                    &id,
                    "staff only: check the WAF",
                    "--internal",
                ],
            );
        }
        if step == "disposing" {
            cli_ok(
                &srv,
                &responder,
                &[
                    "incident",
                    "task",
                    &id,
                    "--title",
                    "Reset alice's password",
                    "--owner",
                    "alice@acme",
                ],
            );
            cli_ok(&srv, &responder, &["incident", "task", &id, "--done", "1"]);
            cli_ok(
                &srv,
                &responder,
                &[
                    "incident",
                    "notify",
                    &id,
                    "--message",
                    "Your account was locked.",
                ],
            );
        }
    }
    // Bad input: one line, non-zero exit, nothing changed.
    let e = cli_err(
        &srv,
        &responder,
        &[
            "incident",
            "advance",
            &id,
            "--to",
            "nowhere",
            "--responsible",
            "admin",
            "--reason",
            "x",
        ],
    );
    assert!(e.contains("unknown step"), "{e}");
    let e = cli_err(
        &srv,
        &responder,
        &[
            "incident",
            "advance",
            &id,
            "--to",
            "recorded",
            "--responsible",
            "mallory",
            "--reason",
            "x",
        ],
    );
    assert!(e.contains("mallory"), "{e}");
    let e = cli_err(
        &srv,
        &responder,
        &[
            "incident",
            "advance",
            &id,
            "--to",
            "recorded",
            "--responsible",
            "admin",
            "--reason",
            "",
        ],
    );
    assert!(e.contains("reason"), "{e}");

    // The PDF report, read back with pdftotext.
    let dir = parapet_store_sql::testkit::temp_dir("inc-report");
    let pdf = dir.join("report.pdf");
    cli_ok(
        &srv,
        &responder,
        &[
            "incident",
            "report",
            &id,
            "--format",
            "pdf",
            "-o",
            pdf.to_str().unwrap(),
        ],
    );
    let text = pdftotext(&pdf);
    for want in [
        "Password spraying against alice@acme",
        "Tenant: acme",
        "Five failed log-ins in a row from one address.",
        "Reset alice's password",
        "127.0.0.1",
        "locking the account",
        "analysing -> disposing, responsible responder",
        "Attack from the loopback",
    ] {
        assert!(text.contains(want), "the PDF lacks {want:?}:\n{text}");
    }
    assert!(
        !text.contains("staff only"),
        "internal notes stay out of reports"
    );
    let html = cli_ok(
        &srv,
        &responder,
        &["incident", "report", &id, "--format", "html"],
    );
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("Reset alice&#39;s password"));

    cli_ok(
        &srv,
        &responder,
        &[
            "incident",
            "advance",
            &id,
            "--to",
            "recorded",
            "--responsible",
            "responder",
            "--reason",
            "report sent to acme",
        ],
    );
    // `show --json`: the full history with each step's responsible person.
    let shown = cli_json(&srv, &admin, &["incident", "show", &id]);
    assert_eq!(shown["step"], "recorded");
    let resp = &shown["responsible"];
    assert_eq!(resp["detecting"], "responder");
    assert_eq!(resp["analysing"], "oncall");
    assert_eq!(resp["disposing"], "responder");
    assert_eq!(resp["checking"], "olivia");
    assert_eq!(resp["reporting"], "admin");
    assert_eq!(resp["recorded"], "responder");
    let moves: Vec<&Value> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "advanced")
        .collect();
    assert_eq!(moves.len(), 5);
    for m in &moves {
        assert_eq!(m["actor"], "responder");
        assert!(m["at"].as_i64().unwrap() > 0);
        assert!(!m["reason"].as_str().unwrap().is_empty());
        assert!(!m["responsible"].as_str().unwrap().is_empty());
    }
    assert_eq!(moves[4]["to"], "recorded");
    assert_eq!(moves[4]["reason"], "report sent to acme");
    assert!(shown["notified_at"].as_i64().is_some());
    // The human view names each step's responsible person.
    let human = cli_ok(&srv, &admin, &["incident", "show", &id]);
    assert!(human.contains("checking   olivia"), "{human}");
    // Listings.
    let list = cli_json(&srv, &admin, &["incident", "list", "--tenant", "acme"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["step"], "recorded");
    let open = cli_json(&srv, &admin, &["incident", "list", "--open"]);
    assert!(open.as_array().unwrap().is_empty());
    // Reopening keeps the history.
    cli_ok(
        &srv,
        &responder,
        &[
            "incident",
            "reopen",
            &id,
            "--responsible",
            "oncall",
            "--reason",
            "the attack resumed",
        ],
    );
    let shown = cli_json(&srv, &admin, &["incident", "show", &id]);
    assert_eq!(shown["step"], "analysing");
    assert_eq!(shown["reopened"], 1);
    assert!(shown["history"].as_array().unwrap().len() > 12);
    // Statistics: one acme incident this month, acknowledged.
    let stats = cli_json(&srv, &admin, &["incident", "stats"]);
    assert_eq!(stats[0]["tenant_name"], "acme");
    assert_eq!(stats[0]["opened"], 1);
    assert_eq!(stats[0]["acknowledged"], 1);
    // Every change is in the audit trail.
    let (s, audit) = rt.block_on(api.get(
        &format!("/api/v1/tenants/acme/audit?target=incident:acme/{id}&limit=100"),
        &admin,
    ));
    assert_eq!(s, 200, "{audit}");
    let n = audit["items"].as_array().map(Vec::len).unwrap_or(0);
    assert!(n >= 13, "{audit}");
}

fn the_api_isolates_tenants_and_refuses_bad_input(backend: Backend) {
    let srv = start(backend);
    let api = Api::new(&srv);
    let rt = rt();
    rt.block_on(async {
        let admin = api.setup().await;
        let mut ids = Vec::new();
        for t in ["acme", "globex", "initech"] {
            let (s, b) = api
                .post(
                    "/api/v1/incidents",
                    &admin,
                    json!({"tenant": t, "title": format!("{t} incident"), "severity": "low",
                           "responsible": "responder"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
            ids.push(b["id"].as_str().unwrap().to_string());
        }
        let alice = api.login("alice@acme", PW).await;
        let (s, list) = api.get("/api/v1/incidents", &alice).await;
        assert_eq!(s, 200);
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["id"], ids[0].as_str());
        let (s, all) = api.get("/api/v1/incidents", &admin).await;
        assert_eq!(s, 200);
        assert_eq!(all.as_array().unwrap().len(), 3);
        // Another tenant's incident does not exist for acme, whatever the endpoint.
        for path in [
            format!("/api/v1/incidents/{}", ids[1]),
            format!("/api/v1/incidents/{}/report?format=pdf", ids[1]),
        ] {
            let (s, b) = api.get(&path, &alice).await;
            assert_eq!(s, 404, "{path}: {b}");
        }
        let (s, _) = api
            .post(
                &format!("/api/v1/incidents/{}/notes", ids[2]),
                &alice,
                json!({"text": "hello"}),
            )
            .await;
        assert_eq!(s, 404);
        let (s, _) = api.get("/api/v1/incidents?tenant=globex", &alice).await;
        assert_eq!(s, 404);
        // A tenant cannot handle incidents, only read and comment.
        let (s, b) = api
            .post(
                &format!("/api/v1/incidents/{}/advance", ids[0]),
                &alice,
                json!({"to": "analysing", "responsible": "responder", "reason": "x"}),
            )
            .await;
        assert_eq!(s, 403, "{b}");
        let (s, _) = api
            .post(
                &format!("/api/v1/incidents/{}/notes", ids[0]),
                &alice,
                json!({"text": "we are looking too"}),
            )
            .await;
        assert_eq!(s, 200);
        // Bad input is a problem, never a 500.
        let cases = [
            ("/api/v1/incidents", json!({"title": ""}), 422),
            (
                "/api/v1/incidents",
                json!({"title": "x", "severity": "huge"}),
                422,
            ),
            ("/api/v1/incidents", json!({"title": "x", "nope": 1}), 422),
            (
                "/api/v1/incidents",
                json!({"title": "x", "tenant": "nowhere"}),
                404,
            ),
            (
                "/api/v1/incidents",
                json!({"title": "x", "responsible": "alice"}),
                422,
            ),
        ];
        for (path, body, want) in cases {
            let (s, b) = api.post(path, &admin, body.clone()).await;
            assert_eq!(s, want, "{body}: {b}");
            assert!(
                b["type"]
                    .as_str()
                    .unwrap()
                    .starts_with("urn:parapet:problem:")
            );
        }
        let id = &ids[0];
        let cases = [
            (
                "advance",
                json!({"to": "analysing", "responsible": "responder"}),
                422,
            ),
            (
                "advance",
                json!({"to": "sideways", "responsible": "responder", "reason": "x"}),
                422,
            ),
            (
                "advance",
                json!({"to": "detecting", "responsible": "responder", "reason": "x"}),
                409,
            ),
            (
                "reopen",
                json!({"responsible": "responder", "reason": "x"}),
                409,
            ),
            ("resume", json!({}), 409),
            (
                "observables",
                json!({"kind": "colour", "value": "red"}),
                422,
            ),
            ("frobnicate", json!({}), 404),
            ("tasks", json!({"title": "t", "owner": "bob@globex"}), 422),
        ];
        for (verb, body, want) in cases {
            let (s, b) = api
                .post(
                    &format!("/api/v1/incidents/{id}/{verb}"),
                    &admin,
                    body.clone(),
                )
                .await;
            assert_eq!(s, want, "{verb} {body}: {b}");
        }
        // Analysis: classification with type and cause.
        let (s, b) = api
            .post(
                &format!("/api/v1/incidents/{id}/classify"),
                &admin,
                json!({"category": "intrusion", "type": "credential stuffing",
                       "cause": "reused passwords"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["incident_type"], "credential stuffing");
        assert_eq!(b["cause"], "reused passwords");
        let (s, _) = api
            .post(
                &format!("/api/v1/incidents/{id}/tasks/9/done"),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(s, 404);
        let (s, _) = api.get("/api/v1/incidents/not-a-uuid", &admin).await;
        assert_eq!(s, 404);
        // The OpenAPI document lists the incident endpoints.
        let (s, doc) = api.get("/api/v1/openapi.json", &admin).await;
        assert_eq!(s, 200);
        assert!(doc["paths"]["/api/v1/incidents/{id}/{verb}"].is_object());
    });
}

fn the_console_shows_the_board_and_moves_an_incident(backend: Backend) {
    let srv = start(backend);
    let api = Api::new(&srv);
    let rt = rt();
    rt.block_on(async {
        let admin = api.setup().await;
        let (s, b) = api
            .post(
                "/api/v1/incidents",
                &admin,
                json!({"tenant": "acme", "title": "Malware on acme-web-1", "severity": "critical"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_str().unwrap().to_string();
        api.post(
            "/api/v1/incidents",
            &admin,
            json!({"tenant": "globex", "title": "globex-only incident"}),
        )
        .await;
        let csrf = "c".repeat(43);
        let page = |token: String, path: String| {
            let http = api.http.clone();
            let url = format!("{}{path}", api.base);
            let csrf = csrf.clone();
            async move {
                let r = http
                    .get(url)
                    .header(
                        "cookie",
                        format!("parapet_session={token}; parapet_csrf={csrf}"),
                    )
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (s, html) = page(admin.clone(), "/console/incidents".into()).await;
        assert_eq!(s, 200);
        assert!(html.contains("id=\"incident-board\""));
        assert!(html.contains("Malware on acme-web-1"));
        assert!(html.contains("globex-only incident"));
        assert!(html.contains("<svg class=\"chart\" id=\"incident-chart\""));
        // A tenant's board shows only its incidents.
        let alice = api.login("alice@acme", PW).await;
        let (s, html) = page(alice.clone(), "/console/incidents".into()).await;
        assert_eq!(s, 200);
        assert!(html.contains("Malware on acme-web-1"));
        assert!(!html.contains("globex-only incident"));
        // The incident page moves the incident through its form.
        let forms = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = forms
            .post(format!("{}/console/incidents/{id}/advance", api.base))
            .header(
                "cookie",
                format!("parapet_session={admin}; parapet_csrf={csrf}"),
            )
            .form(&[
                ("csrf", csrf.as_str()),
                ("to", "analysing"),
                ("responsible", "oncall"),
                ("reason", "triage from the console"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        // Without the CSRF field the form is refused.
        let r = forms
            .post(format!("{}/console/incidents/{id}/advance", api.base))
            .header(
                "cookie",
                format!("parapet_session={admin}; parapet_csrf={csrf}"),
            )
            .form(&[
                ("to", "disposing"),
                ("responsible", "oncall"),
                ("reason", "x"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        let (s, html) = page(admin.clone(), format!("/console/incidents/{id}")).await;
        assert_eq!(s, 200);
        assert!(html.contains("id=\"incident-timeline\""));
        assert!(html.contains("triage from the console"));
        assert!(html.contains("<td>analysing</td><td>oncall</td>"));
        // The tenant sees the page but not the handling forms.
        let (s, html) = page(alice.clone(), format!("/console/incidents/{id}")).await;
        assert_eq!(s, 200);
        assert!(!html.contains("incident-advance-form"));
        assert!(html.contains("incident-note-form"));
        let (s, pdf) = page(alice.clone(), format!("/console/incidents/{id}/report.pdf")).await;
        assert_eq!(s, 200);
        assert!(pdf.starts_with("%PDF-1.4"));
        // Another tenant's incident page does not exist for the tenant.
        let (s, b) = api.get("/api/v1/incidents", &admin).await;
        assert_eq!(s, 200);
        let globex_id = b
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["tenant"] == "globex")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (s, _) = page(alice, format!("/console/incidents/{globex_id}")).await;
        assert_eq!(s, 404);
    });
}

fn a_plan_is_activated_from_an_incident_by_cli(backend: Backend) {
    let srv = start(backend);
    let api = Api::new(&srv);
    let rt = rt();
    let admin = rt.block_on(api.setup());
    let dir = parapet_store_sql::testkit::temp_dir("inc-plan");
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        json!({
            "scenario": "ransomware on a tenant VM",
            "notification": "page the lead, inform the tenant within 1 h",
            "launch": {"min_severity": "high", "categories": ["malware"]},
            "team": [{"name": "oncall", "role": "lead", "contact": "+1 555 0100"}],
            "bia": [{"name": "vm", "priority": 1, "depends_on": [], "rto_secs": 14400,
                     "rpo_secs": 86400}],
            "checklist": ["Isolate the VM", "Snapshot the disk for forensics",
                          "Restore from the last clean backup"],
            "tenant_data_access": "only with the tenant's recorded authorization"
        })
        .to_string(),
    )
    .unwrap();
    let created = cli_json(
        &srv,
        &admin,
        &[
            "plan",
            "create",
            "ransomware",
            "--file",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(created["version"], 1);
    assert_eq!(created["review_due"], false);
    let list = cli_ok(&srv, &admin, &["plan", "list"]);
    assert!(list.contains("ransomware"), "{list}");
    let opened = cli_json(
        &srv,
        &admin,
        &[
            "incident",
            "open",
            "--tenant",
            "acme",
            "--title",
            "Ransom note on acme-vm-7",
            "--severity",
            "critical",
            "--category",
            "malware",
        ],
    );
    let id = opened["id"].as_str().unwrap().to_string();
    let out = cli_ok(
        &srv,
        &admin,
        &["incident", "activate", &id, "--plan", "ransomware"],
    );
    assert!(out.contains("Plan activated"), "{out}");
    let shown = cli_json(&srv, &admin, &["incident", "show", &id]);
    let tasks: Vec<&str> = shown["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        tasks,
        [
            "Isolate the VM",
            "Snapshot the disk for forensics",
            "Restore from the last clean backup"
        ]
    );
    assert_eq!(shown["tasks"][0]["owner"], "oncall");
    let e = cli_err(
        &srv,
        &admin,
        &["incident", "activate", &id, "--plan", "missing"],
    );
    assert!(e.contains("no plan named missing"), "{e}");
    // A drill recorded step by step.
    let steps = dir.join("steps.json");
    std::fs::write(
        &steps,
        json!([{"step": "Isolate the VM", "ok": true, "note": "2 min"},
               {"step": "Restore", "ok": false, "note": "backup key missing"}])
        .to_string(),
    )
    .unwrap();
    let drilled = cli_json(
        &srv,
        &admin,
        &[
            "plan",
            "drill",
            "ransomware",
            "--steps",
            steps.to_str().unwrap(),
            "--report",
            "restore failed: key escrow to fix",
        ],
    );
    assert_eq!(drilled["drills"][0]["steps"][1]["ok"], false);
    // The same through `parapet drill`: a second drill, then the list, newest first.
    let again = cli_json(
        &srv,
        &admin,
        &[
            "drill",
            "record",
            "ransomware",
            "--steps",
            steps.to_str().unwrap(),
            "--report",
            "second run",
        ],
    );
    assert_eq!(again["drills"].as_array().unwrap().len(), 2);
    let listed = cli_json(&srv, &admin, &["drill", "list", "--plan", "ransomware"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["report"], "second run");
    assert_eq!(listed[0]["plan"], "ransomware");
    let table = cli_ok(&srv, &admin, &["drill", "list"]);
    assert!(
        table.contains("ransomware") && table.contains("1/2"),
        "{table}"
    );
    let e = cli_err(&srv, &admin, &["drill", "list", "--plan", "nope"]);
    assert!(e.contains("no plan named nope"), "{e}");
    let changed = cli_json(
        &srv,
        &admin,
        &["plan", "change", "ransomware", "--change", "SLA amended"],
    );
    assert_eq!(changed["review_due"], true);
    // The console lists the plan with its drill and the review due.
    let html = rt.block_on(async {
        let r = api
            .http
            .get(format!("{}/console/plans", api.base))
            .header("cookie", format!("parapet_session={admin}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.text().await.unwrap()
    });
    assert!(html.contains("id=\"plan-ransomware\""), "{html}");
    assert!(html.contains("Snapshot the disk for forensics"));
    assert!(html.contains("REVIEW DUE"));
    assert!(html.contains("1/2 steps ok"));
    // Tenants do not see the provider's plans.
    let alice = rt.block_on(api.login("alice@acme", PW));
    let e = cli_err(&srv, &alice, &["plan", "list"]);
    assert!(e.contains("404") || e.contains("403"), "{e}");
}
