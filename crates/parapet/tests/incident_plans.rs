//! Emergency response plans end to end (issue 7, X.1642 8.9): the real server on SQLite and
//! PostgreSQL with real webhook deliveries. Activating a plan pages each member of its response
//! team through their own channels, each acknowledges for themself (CLI `incident ack-page`),
//! the operation log takes entries (CLI `incident operation`), and when the plan's last task is
//! done the response report goes to the incident's tenant only; the report is readable by that
//! tenant (API, CLI) and by no other.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use common::api::Api;
use common::webhook::receiver;
use common::{ADMIN_PASSWORD, Backend, Server, start, start_with};
use serde_json::{Value, json};

on_both!(
    plan_activation_pages_the_team_and_reports_to_the_tenant,
    the_console_plan_editor_saves_field_by_field_and_compares_versions,
    drills_are_scheduled_recorded_with_participants_and_reported,
);

const PW: &str = "incident-plans-password-1";

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

/// Waits (at most 20 s) until `ok` holds.
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ok() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn plan_activation_pages_the_team_and_reports_to_the_tenant(backend: Backend) {
    let hooks = receiver();
    let dir = parapet_store_sql::testkit::temp_dir("incident-plans");
    let config = dir.join("parapet.toml");
    std::fs::write(
        &config,
        "[notify]\npoll_ms = 50\nallow_private_webhooks = true\n",
    )
    .unwrap();
    let srv = start_with(backend, &["--config", config.to_str().unwrap()], &[]);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let hook = |path: &str| format!("http://127.0.0.1:{}{path}", hooks.port);
    let got = |path: &str| -> Vec<String> {
        hooks
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.target == path)
            .map(|r| r.body.clone())
            .collect()
    };
    let (admin, oncall, dora, acme, globex, id) = rt().block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for u in ["oncall", "dora"] {
            let (s, b) = api
                .post(
                    "/api/v1/tenants/provider/users",
                    &admin,
                    json!({"username": u, "password": PW, "role": "incident-responder"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
            let (s, b) = api
                .post(
                    "/api/v1/tenants/provider/notify/channels",
                    &admin,
                    json!({"name": format!("{u}-pager"), "kind": "webhook", "person": u,
                           "url": hook(&format!("/p/{u}"))}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let mut tokens = Vec::new();
        for t in ["acme", "globex"] {
            let (s, b) = api
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201, "{b}");
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": "sec", "password": PW, "role": "tenant-admin"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
            let tok = api.login(&format!("sec@{t}"), PW).await;
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/notify/channels"),
                    &tok,
                    json!({"name": "security", "kind": "webhook", "security_contact": true,
                           "url": hook(&format!("/t/{t}"))}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
            tokens.push(tok);
        }
        let (s, b) = api
            .post(
                "/api/v1/plans",
                &admin,
                json!({"name": "web-outage", "content": {
                    "scenario": "web tier outage",
                    "notification": "page the team, then tell the tenant",
                    "launch": {"min_severity": "high", "categories": []},
                    "team": [
                        {"name": "oncall", "role": "incident lead", "contact": "+1 555 0100",
                         "deputy": "dora"},
                        {"name": "dora", "role": "network engineer", "contact": "+1 555 0101"}
                    ],
                    "checklist": ["Fail over to site B", "Check the certificates"],
                    "post_disposal_review": "within five working days",
                    "ack_within_secs": 3600
                }}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, i) = api
            .post(
                "/api/v1/incidents",
                &admin,
                json!({"tenant": "acme", "title": "Web tier down at acme", "severity": "high",
                       "category": "outage"}),
            )
            .await;
        assert_eq!(s, 201, "{i}");
        let (s, b) = api
            .post(
                &format!("/api/v1/incidents/{}/notes", i["id"].as_str().unwrap()),
                &admin,
                json!({"text": "internal: the vendor's fault", "internal": true}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let [acme, globex]: [String; 2] = tokens.try_into().unwrap();
        (
            admin,
            api.login("oncall", PW).await,
            api.login("dora", PW).await,
            acme,
            globex,
            i["id"].as_str().unwrap().to_string(),
        )
    });

    // Activation by the CLI pages both members through their own channels.
    let i = cli_json(
        &srv,
        &admin,
        &["incident", "activate", &id, "--plan", "web-outage"],
    );
    assert_eq!(i["pages"].as_array().unwrap().len(), 2, "{i}");
    wait_for("the pages", || {
        got("/p/oncall").len() == 1 && got("/p/dora").len() == 1
    });
    assert!(got("/p/oncall")[0].contains("paged as incident lead"));
    assert!(got("/p/dora")[0].contains("paged as network engineer"));

    // The console shows the team's pages, and oncall the button to acknowledge theirs.
    let console = |path: &str, token: &str| -> (u16, String) {
        rt().block_on(async {
            let r = api
                .http
                .get(format!("{}{path}", api.base))
                .header(
                    "cookie",
                    format!("parapet_session={token}; parapet_csrf={}", "c".repeat(43)),
                )
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let (s, html) = console(&format!("/console/incidents/{id}"), &oncall);
    assert_eq!(s, 200);
    assert!(html.contains("id=\"incident-pages\""), "{html}");
    assert!(html.contains("dora at "), "the deputy's deadline: {html}");
    assert!(html.contains("id=\"incident-ack-page-form\""), "{html}");
    let (_, html) = console(&format!("/console/incidents/{id}"), &admin);
    assert!(
        !html.contains("id=\"incident-ack-page-form\""),
        "admin was not paged: {html}"
    );

    // Each acknowledges their own page; tenants cannot; twice is refused.
    let e = cli_err(&srv, &acme, &["incident", "ack-page", &id]);
    assert!(
        e.contains("handle incidents") || e.contains("response team"),
        "{e}"
    );
    let i = cli_json(
        &srv,
        &oncall,
        &["incident", "ack-page", &id, "--plan", "web-outage"],
    );
    let page = |i: &Value, m: &str| {
        i["pages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["member"] == m)
            .unwrap()
            .clone()
    };
    assert_eq!(page(&i, "oncall")["acknowledged_by"], "oncall");
    assert!(page(&i, "dora")["acknowledged_at"].is_null());
    let e = cli_err(&srv, &oncall, &["incident", "ack-page", &id]);
    assert!(e.contains("no unacknowledged page"), "{e}");
    let i = cli_json(&srv, &dora, &["incident", "ack-page", &id]);
    assert_eq!(page(&i, "dora")["acknowledged_by"], "dora");

    // The operation log; an empty entry is refused.
    cli_json(
        &srv,
        &dora,
        &[
            "incident",
            "operation",
            &id,
            "--text",
            "traffic moved to site B",
        ],
    );
    let e = cli_err(&srv, &dora, &["incident", "operation", &id, "--text", " "]);
    assert!(e.contains("say what was done"), "{e}");

    // The last task done sends the response report to acme only.
    rt().block_on(async {
        for n in [1, 2] {
            let (s, b) = api
                .post(
                    &format!("/api/v1/incidents/{id}/tasks/{n}/done"),
                    &dora,
                    json!({}),
                )
                .await;
            assert_eq!(s, 200, "{b}");
        }
    });
    wait_for("the response report", || {
        got("/t/acme")
            .iter()
            .any(|b| b.contains("Emergency response report"))
    });
    let report = got("/t/acme")
        .into_iter()
        .find(|b| b.contains("Emergency response report"))
        .unwrap();
    for want in [
        "web-outage (version 1)",
        "traffic moved to site B",
        "Fail over to site B",
    ] {
        assert!(report.contains(want), "{want:?} in {report}");
    }
    for never in ["the vendor's fault", "globex", "+1 555 0100"] {
        assert!(!report.contains(never), "{never:?} leaked: {report}");
    }
    assert!(got("/t/globex").is_empty(), "globex is told nothing");

    // The tenant reads the report by the CLI; another tenant gets 404 from the API.
    let (code, html, err) = cli(&srv, &acme, &["incident", "response-report", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(html.contains("<h1>Emergency response report"), "{html}");
    assert!(html.contains("traffic moved to site B"), "{html}");
    assert!(!html.contains("the vendor&#39;s fault"), "{html}");
    rt().block_on(async {
        let (s, b) = api
            .get(&format!("/api/v1/incidents/{id}/response-report"), &globex)
            .await;
        assert_eq!(s, 404, "{b}");
        let (s, b) = api
            .get(
                &format!("/api/v1/incidents/{id}/response-report?plan=nope"),
                &admin,
            )
            .await;
        assert_eq!(s, 422, "{b}");
        assert!(
            b["detail"].as_str().unwrap().contains("not activated"),
            "{b}"
        );
    });
    let (s, html) = console(
        &format!("/console/incidents/{id}/response-report.html?plan=web-outage"),
        &acme,
    );
    assert_eq!(s, 200);
    assert!(html.contains("traffic moved to site B"), "{html}");
    let (s, _) = console(
        &format!("/console/incidents/{id}/response-report.html"),
        &globex,
    );
    assert_eq!(s, 404);
    // The history shows the whole activation.
    let shown = cli_json(&srv, &admin, &["incident", "show", &id]);
    let kinds: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    for k in [
        "plan-activated",
        "team-paged",
        "page-acknowledged",
        "plan-operation",
        "response-report-sent",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
}

fn the_console_plan_editor_saves_field_by_field_and_compares_versions(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let forms = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let csrf = "c".repeat(43);
    let (admin, alice) = rt().block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        api.create_tenant_admin(&admin, "acme", "alice", PW).await;
        (admin.clone(), api.login("alice@acme", PW).await)
    });
    let cookie = |t: &str| format!("parapet_session={t}; parapet_csrf={csrf}");
    let page = |path: &str, token: &str| -> (u16, String) {
        rt().block_on(async {
            let r = forms
                .get(format!("{}{path}", api.base))
                .header("cookie", cookie(token))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let submit = |path: &str, token: &str, fields: &[(&str, &str)]| -> (u16, String, String) {
        rt().block_on(async {
            let r = forms
                .post(format!("{}{path}", api.base))
                .header("cookie", cookie(token))
                .form(fields)
                .send()
                .await
                .unwrap();
            let to = r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string())
                .unwrap_or_default();
            (r.status().as_u16(), to, r.text().await.unwrap())
        })
    };

    // A real form: one input per field and per row, no JSON.
    let (s, html) = page("/console/plans/new", &admin);
    assert_eq!(s, 200, "{html}");
    for want in [
        "id=\"plan-edit-form\"",
        "name=\"scenario\"",
        "name=\"min_severity\"",
        "name=\"team_deputy_0\"",
        "name=\"bia_depends_0\"",
        "name=\"check_0\"",
        "name=\"review\"",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    assert!(
        !html.contains("name=\"content\""),
        "no JSON textarea: {html}"
    );
    let base: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("name", "db-outage"),
        ("scenario", "database outage"),
        ("notification", "page the DBA, then tell the tenants"),
        ("min_severity", "high"),
        ("categories", "outage, ddos"),
        ("ack_min", "10"),
        ("team_name_0", "oncall"),
        ("team_role_0", "lead"),
        ("team_contact_0", "+1 555 0100"),
        ("team_deputy_0", "dora"),
        ("team_name_1", ""),
        ("team_role_1", ""),
        ("bia_name_0", "web"),
        ("bia_priority_0", "1"),
        ("bia_depends_0", "db"),
        ("bia_rto_0", "30"),
        ("bia_rpo_0", "0"),
        ("bia_name_1", "db"),
        ("bia_priority_1", "2"),
        ("bia_depends_1", ""),
        ("bia_rto_1", "60"),
        ("bia_rpo_1", "5"),
        ("check_0", "Fail over"),
        ("check_1", "Inform tenants"),
        ("check_2", ""),
        ("review", "within five working days"),
        (
            "data_access",
            "only with the tenant's recorded authorization",
        ),
    ];
    // Bad input re-renders the form with what was typed and the reason, nothing stored.
    let mut bad = base.clone();
    bad.retain(|(k, _)| *k != "bia_priority_1");
    bad.push(("bia_priority_1", "first"));
    let (s, _, html) = submit("/console/plans/new", &admin, &bad);
    assert_eq!(s, 422, "{html}");
    assert!(html.contains("priority of component db"), "{html}");
    assert!(html.contains("value=\"database outage\""), "{html}");
    let mut bad = base.clone();
    bad.retain(|(k, _)| *k != "bia_depends_0");
    bad.push(("bia_depends_0", "cache"));
    let (s, _, html) = submit("/console/plans/new", &admin, &bad);
    assert_eq!(s, 422, "{html}");
    assert!(html.contains("depends on cache"), "{html}");
    rt().block_on(async {
        assert_eq!(api.get("/api/v1/plans/db-outage", &admin).await.0, 404);
    });
    let mut expired = base.clone();
    expired[0] = ("csrf", "wrong");
    assert_eq!(submit("/console/plans/new", &admin, &expired).0, 403);

    let (s, to, body) = submit("/console/plans/new", &admin, &base);
    assert_eq!(
        (s, to.as_str()),
        (303, "/console/plans#plan-db-outage"),
        "{body}"
    );
    let plan = rt().block_on(async {
        let (s, b) = api.get("/api/v1/plans/db-outage", &admin).await;
        assert_eq!(s, 200, "{b}");
        b["revisions"][0]["content"].clone()
    });
    assert_eq!(
        plan["launch"],
        json!({"min_severity": "high", "categories": ["outage", "ddos"]})
    );
    assert_eq!(plan["ack_within_secs"], 600);
    assert_eq!(
        plan["team"],
        json!([{"name": "oncall", "role": "lead", "contact": "+1 555 0100", "deputy": "dora"}])
    );
    assert_eq!(plan["bia"][0]["depends_on"], json!(["db"]));
    assert_eq!(plan["bia"][0]["rto_secs"], 1800);
    assert_eq!(plan["bia"][1]["rpo_secs"], 300);
    assert_eq!(plan["checklist"], json!(["Fail over", "Inform tenants"]));

    // The editor shows the current version in its fields; saving writes version 2 and leads
    // to the comparison.
    let (s, html) = page("/console/plans/db-outage/edit", &admin);
    assert_eq!(s, 200);
    assert!(
        html.contains("value=\"dora\"") && html.contains("value=\"Fail over\""),
        "{html}"
    );
    let mut v2 = base.clone();
    v2.retain(|(k, _)| !k.starts_with("check_") && *k != "name" && *k != "team_deputy_0");
    v2.extend([
        ("check_0", "Fail over"),
        ("check_1", "Check replication"),
        ("check_2", "Inform tenants"),
        ("team_deputy_0", "olivia"),
        ("reason", "after the drill"),
    ]);
    let (s, to, body) = submit("/console/plans/db-outage/edit", &admin, &v2);
    assert_eq!(
        (s, to.as_str()),
        (303, "/console/plans/db-outage/diff?to=2"),
        "{body}"
    );
    let (s, html) = page(&to, &admin);
    assert_eq!(s, 200, "{html}");
    assert!(
        html.contains("<tr class=\"added\"><td>+</td><td>checklist 2: Check replication</td>"),
        "{html}"
    );
    assert!(
        html.contains("<tr class=\"removed\"><td>−</td><td>checklist 2: Inform tenants</td>"),
        "{html}"
    );
    assert!(
        html.contains("deputy olivia") && html.contains("deputy dora"),
        "{html}"
    );
    assert!(
        html.contains("<tr class=\"same\"><td> </td><td>checklist 1: Fail over</td>"),
        "{html}"
    );
    assert!(html.contains("after the drill"), "{html}");
    // The same comparison from the CLI and the API.
    let d = cli_json(&srv, &admin, &["plan", "diff", "db-outage"]);
    assert_eq!((d["from"].clone(), d["to"].clone()), (json!(1), json!(2)));
    let added: Vec<&str> = d["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["op"] == "added")
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(
        added,
        [
            "team: oncall as lead, contact +1 555 0100, deputy olivia",
            "checklist 2: Check replication",
            "checklist 3: Inform tenants"
        ]
    );
    let (code, out, err) = cli(
        &srv,
        &admin,
        &["plan", "diff", "db-outage", "--from", "2", "--to", "1"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("- checklist 2: Check replication"), "{out}");
    let e = cli_err(&srv, &admin, &["plan", "diff", "db-outage", "--to", "7"]);
    assert!(e.contains("no version 7"), "{e}");
    // Tenants reach neither the editor nor the comparison.
    for path in [
        "/console/plans/new",
        "/console/plans/db-outage/edit",
        "/console/plans/db-outage/diff",
    ] {
        let (s, _) = page(path, &alice);
        assert!(matches!(s, 403 | 404), "{path}: {s}");
    }
    let (s, _, _) = submit("/console/plans/db-outage/edit", &alice, &v2);
    assert!(matches!(s, 403 | 404), "{s}");
    rt().block_on(async {
        let (s, _) = api.get("/api/v1/plans/db-outage/diff", &alice).await;
        assert!(matches!(s, 403 | 404), "{s}");
    });
}

fn drills_are_scheduled_recorded_with_participants_and_reported(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let forms = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let csrf = "c".repeat(43);
    let (admin, alice) = rt().block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let (s, b) = api
            .post(
                "/api/v1/tenants/provider/users",
                &admin,
                json!({"username": "oncall", "password": PW, "role": "incident-responder"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        api.create_tenant_admin(&admin, "acme", "alice", PW).await;
        let (s, b) = api
            .post(
                "/api/v1/plans",
                &admin,
                json!({"name": "ddos", "content": {
                    "scenario": "DDoS on the edge",
                    "notification": "page the team",
                    "launch": {"min_severity": "high", "categories": []},
                    "team": [{"name": "oncall", "role": "lead", "contact": "+1 555 0100"},
                             {"name": "admin", "role": "manager", "contact": "+1 555 0101"}],
                    "checklist": ["Enable scrubbing", "Inform tenants"]
                }}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        (admin.clone(), api.login("alice@acme", PW).await)
    });
    let cookie = |t: &str| format!("parapet_session={t}; parapet_csrf={csrf}");
    let page = |path: &str, token: &str| -> (u16, String) {
        rt().block_on(async {
            let r = forms
                .get(format!("{}{path}", api.base))
                .header("cookie", cookie(token))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };

    // A schedule whose first drill is past: the drill is due.
    let e = cli_err(
        &srv,
        &admin,
        &["drill", "schedule", "ddos", "--every-days", "0"],
    );
    assert!(e.contains("every 1 to 3650 days"), "{e}");
    let e = cli_err(
        &srv,
        &admin,
        &[
            "drill",
            "schedule",
            "ddos",
            "--every-days",
            "30",
            "--first",
            "yesterday",
        ],
    );
    assert!(e.contains("RFC 3339"), "{e}");
    let p = cli_json(
        &srv,
        &admin,
        &[
            "drill",
            "schedule",
            "ddos",
            "--every-days",
            "30",
            "--first",
            "2026-01-01T09:00:00Z",
        ],
    );
    assert_eq!(p["schedule"]["every_days"], 30);
    let due = cli_json(&srv, &admin, &["drill", "due"]);
    assert_eq!(due.as_array().unwrap().len(), 1, "{due}");
    assert_eq!(
        (due[0]["plan"].clone(), due[0]["what"].clone()),
        (json!("ddos"), json!("drill"))
    );
    let (_, html) = page("/console/plans", &admin);
    assert!(
        html.contains("DRILL DUE") && html.contains("every 30 days"),
        "{html}"
    );

    // The console's drill form starts from the team and the checklist.
    let (s, html) = page("/console/plans/ddos/drills/new", &admin);
    assert_eq!(s, 200, "{html}");
    assert!(
        html.contains("name=\"person_name_0\" value=\"oncall\""),
        "{html}"
    );
    assert!(
        html.contains("name=\"step_name_1\" size=\"40\" value=\"Inform tenants\""),
        "{html}"
    );
    let submit = |fields: &[(&str, &str)]| -> (u16, String, String) {
        rt().block_on(async {
            let r = forms
                .post(format!("{}/console/plans/ddos/drills/new", api.base))
                .header("cookie", cookie(&admin))
                .form(fields)
                .send()
                .await
                .unwrap();
            let to = r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string())
                .unwrap_or_default();
            (r.status().as_u16(), to, r.text().await.unwrap())
        })
    };
    let mut fields: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("kind", "drill"),
        ("person_name_0", "oncall"),
        ("person_role_0", "lead"),
        ("person_attended_0", "1"),
        ("person_name_1", "admin"),
        ("person_role_1", "manager"),
        ("step_name_0", "Enable scrubbing"),
        ("step_at_0", "2026-01-01T09:05"),
        ("step_ok_0", "1"),
        ("step_note_0", "4 min"),
        ("step_name_1", "Inform tenants"),
        ("step_at_1", "2026-01-01T09:20"),
        ("step_note_1", "contact list outdated"),
        ("finding_0", "Update the tenant contact list"),
        ("finding_1", ""),
        ("report", "scrubbing works; contacts do not"),
    ];
    fields.push(("step_name_2", "Bad time"));
    fields.push(("step_at_2", "at nine"));
    let (s, _, html) = submit(&fields);
    assert_eq!(s, 422, "{html}");
    assert!(html.contains("must be an RFC 3339 time"), "{html}");
    assert!(
        html.contains("value=\"Update the tenant contact list\""),
        "kept: {html}"
    );
    fields.truncate(fields.len() - 2);
    let (s, to, html) = submit(&fields);
    assert_eq!(
        (s, to.as_str()),
        (303, "/console/plans/ddos/drills/1/report.html"),
        "{html}"
    );
    let (s, report) = page(&to, &admin);
    assert_eq!(s, 200);
    for want in [
        "Drill 1 of plan ddos",
        "<td>admin</td><td>manager</td><td>absent</td>",
        "<td>oncall</td><td>lead</td><td>present</td>",
        "2026-01-01T09:20:00",
        "FAILED",
        "contact list outdated",
        "Update the tenant contact list",
        "1 of 2",
    ] {
        assert!(report.contains(want), "{want:?} in {report}");
    }

    // The CLI records a test from a JSON object with a finding; both became review tasks.
    let dir = parapet_store_sql::testkit::temp_dir("incident-drills");
    let file = dir.join("drill.json");
    std::fs::write(
        &file,
        json!({"kind": "test", "participants": [{"name": "oncall", "role": "lead", "attended": true}],
               "steps": [{"step": "Restore the edge config", "ok": true, "at": "2026-01-02T10:00:00Z"}],
               "findings": ["Automate the config restore"]})
        .to_string(),
    )
    .unwrap();
    let p = cli_json(
        &srv,
        &admin,
        &[
            "drill",
            "record",
            "ddos",
            "--steps",
            file.to_str().unwrap(),
            "--report",
            "fine",
        ],
    );
    assert_eq!(p["drills"].as_array().unwrap().len(), 2);
    assert_eq!(p["drills"][1]["kind"], "test");
    let tasks: Vec<&str> = p["review_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        tasks,
        [
            "Update the tenant contact list",
            "Automate the config restore"
        ]
    );
    assert_eq!(p["review_due"], true, "findings make the review due");
    // The drill is no longer due (next in 30 days); the review is.
    let due = cli_json(&srv, &admin, &["drill", "due"]);
    let whats: Vec<&str> = due
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["what"].as_str().unwrap())
        .collect();
    assert_eq!(whats, ["review"], "{due}");
    // Review tasks are done one by one; the console shows who did them.
    let p = cli_json(&srv, &admin, &["plan", "review-task-done", "ddos", "1"]);
    assert!(p["review_tasks"][0]["done_at"].is_number(), "{p}");
    let e = cli_err(&srv, &admin, &["plan", "review-task-done", "ddos", "1"]);
    assert!(e.contains("already done"), "{e}");
    let (_, html) = page("/console/plans", &admin);
    assert!(html.contains("id=\"review-task-ddos-1\""), "{html}");
    assert!(
        html.contains("done ") && html.contains("by admin"),
        "{html}"
    );
    // The report from the CLI, in PDF.
    let pdf = dir.join("drill.pdf");
    cli_json(
        &srv,
        &admin,
        &[
            "drill",
            "report",
            "ddos",
            "2",
            "--format",
            "pdf",
            "-o",
            pdf.to_str().unwrap(),
        ],
    );
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
    let e = cli_err(&srv, &admin, &["drill", "report", "ddos", "3"]);
    assert!(e.contains("no drill 3"), "{e}");
    // Tenants reach none of it.
    let (code, _, _) = cli(&srv, &alice, &["drill", "due"]);
    assert_ne!(code, 0);
    for path in [
        "/console/plans/ddos/drills/new",
        "/console/plans/ddos/drills/1/report.html",
    ] {
        let (s, _) = page(path, &alice);
        assert!(matches!(s, 403 | 404), "{path}: {s}");
    }
}
