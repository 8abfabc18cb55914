//! Patch actions and configuration fixes of incidents end to end (issue 7, X.1642 8.6.3(2),
//! 8.6.3(3)): the real server on SQLite and PostgreSQL. A patch action lists the incident
//! tenant's assets (from its inventory, never another tenant's) running the vulnerable
//! version; each asset is marked done by the staff or the tenant; closing the incident while
//! assets are left warns (API, CLI, console) and is recorded.
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

on_both!(patch_and_config_fix_actions_list_assets_and_warn_on_closing);

const PW: &str = "incident-actions-password-1";

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

fn patch_and_config_fix_actions_list_assets_and_warn_on_closing(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let (admin, alice, gina, id) = rt().block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let mut tokens = Vec::new();
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
            tokens.push(api.login(&format!("{u}@{t}"), PW).await);
        }
        let asset = |name: &str, os: (&str, &str), apps: &[(&str, &str)]| {
            json!({"name": name, "kind": "vm", "os": {"name": os.0, "version": os.1},
                   "applications": apps.iter().map(|(n, v)| json!({"name": n, "version": v}))
                       .collect::<Vec<_>>()})
        };
        for (t, tok, a) in [
            (
                "acme",
                0,
                asset("web-1", ("Ubuntu", "22.04"), &[("openssl", "3.0.13")]),
            ),
            (
                "acme",
                0,
                asset("db-1", ("Ubuntu", "22.04"), &[("OpenSSL", "3.0.13")]),
            ),
            (
                "acme",
                0,
                asset("mail-1", ("Debian", "12"), &[("openssl", "3.0.14")]),
            ),
            (
                "globex",
                1,
                asset("gx-1", ("Ubuntu", "22.04"), &[("openssl", "3.0.13")]),
            ),
        ] {
            let (s, b) = api
                .post(&format!("/api/v1/tenants/{t}/assets"), &tokens[tok], a)
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let (s, i) = api
            .post(
                "/api/v1/incidents",
                &admin,
                json!({"tenant": "acme", "title": "OpenSSL flaw exploited on web-1",
                       "severity": "high", "category": "vulnerability"}),
            )
            .await;
        assert_eq!(s, 201, "{i}");
        let [alice, gina]: [String; 2] = tokens.try_into().unwrap();
        (admin, alice, gina, i["id"].as_str().unwrap().to_string())
    });

    // The patch action lists acme's assets running openssl 3.0.13 (any case), not 3.0.14, not
    // globex's.
    let i = cli_json(
        &srv,
        &admin,
        &[
            "incident",
            "patch",
            &id,
            "--package",
            "openssl",
            "--version",
            "3.0.13",
        ],
    );
    let a = &i["actions"][0];
    assert_eq!(
        (a["kind"].clone(), a["subject"].clone()),
        (json!("patch"), json!("openssl 3.0.13"))
    );
    let names: Vec<&str> = a["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["asset"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db-1", "web-1"]);
    let e = cli_err(
        &srv,
        &admin,
        &[
            "incident",
            "patch",
            &id,
            "--package",
            "openssl",
            "--version",
            "3.0.13",
        ],
    );
    assert!(e.contains("already open"), "{e}");
    let e = cli_err(
        &srv,
        &admin,
        &[
            "incident",
            "patch",
            &id,
            "--package",
            "nginx",
            "--version",
            "1.0",
        ],
    );
    assert!(e.contains("no asset"), "{e}");
    // The OS version too.
    let i = cli_json(
        &srv,
        &admin,
        &[
            "incident",
            "patch",
            &id,
            "--package",
            "ubuntu",
            "--version",
            "22.04",
            "--os",
        ],
    );
    assert_eq!(i["actions"][1]["assets"].as_array().unwrap().len(), 2);
    // A configuration fix over named assets; another tenant's asset is unknown here.
    let e = cli_err(
        &srv,
        &admin,
        &[
            "incident",
            "config-fix",
            &id,
            "--subject",
            "disable TLS 1.0",
            "--asset",
            "gx-1",
        ],
    );
    assert!(e.contains("not in tenant acme's inventory"), "{e}");
    let i = cli_json(
        &srv,
        &admin,
        &[
            "incident",
            "config-fix",
            &id,
            "--subject",
            "disable TLS 1.0",
            "--asset",
            "web-1",
        ],
    );
    assert_eq!(i["actions"][2]["kind"], "config-fix");
    assert_eq!(
        i["warnings"][0],
        "3 remediation action(s) still have 5 asset(s) not done"
    );

    rt().block_on(async {
        // The tenant sees the actions and marks its own progress; globex cannot.
        let (s, b) = api.get(&format!("/api/v1/incidents/{id}"), &alice).await;
        assert_eq!(s, 200);
        assert_eq!(b["actions"].as_array().unwrap().len(), 3);
        let (s, b) = api
            .post(
                &format!("/api/v1/incidents/{id}/action-asset"),
                &alice,
                json!({"action": 1, "asset": "web-1", "done": true}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["actions"][0]["assets"][1]["done_by"], "alice@acme");
        let (s, _) = api
            .post(
                &format!("/api/v1/incidents/{id}/action-asset"),
                &gina,
                json!({"action": 1, "asset": "db-1", "done": true}),
            )
            .await;
        assert_eq!(s, 404);
        let (s, b) = api
            .post(
                &format!("/api/v1/incidents/{id}/action-asset"),
                &alice,
                json!({"action": 1, "asset": "gx-1", "done": true}),
            )
            .await;
        assert_eq!(s, 422, "{b}");
        let (s, b) = api
            .post(
                &format!("/api/v1/incidents/{id}/patch-action"),
                &alice,
                json!({"package": "openssl", "version": "3.0.14"}),
            )
            .await;
        assert!(
            matches!(s, 403 | 404),
            "tenants do not open actions: {s} {b}"
        );
        let (s, b) = api
            .post(
                &format!("/api/v1/incidents/{id}/patch-action"),
                &admin,
                json!({"package": "openssl"}),
            )
            .await;
        assert_eq!(s, 422, "{b}");
    });
    cli_json(&srv, &admin, &["incident", "action-done", &id, "1", "db-1"]);
    cli_json(
        &srv,
        &admin,
        &["incident", "action-done", &id, "1", "db-1", "--undo"],
    );
    let e = cli_err(
        &srv,
        &admin,
        &["incident", "action-done", &id, "1", "db-1", "--undo"],
    );
    assert!(e.contains("already not done"), "{e}");

    // The console shows the actions, their assets and the warning.
    let html = rt().block_on(async {
        api.http
            .get(format!("{}/console/incidents/{id}", api.base))
            .header(
                "cookie",
                format!("parapet_session={alice}; parapet_csrf={}", "c".repeat(43)),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        html.contains("id=\"action-1\"") && html.contains("patch action 1: openssl 3.0.13"),
        "{html}"
    );
    assert!(
        html.contains("done ") && html.contains("by alice@acme"),
        "{html}"
    );
    assert!(html.contains("id=\"incident-action-warning\""), "{html}");
    assert!(!html.contains("gx-1"), "{html}");

    // A playbook's patch and configuration-fix steps open the actions from the incident's
    // package and asset observables.
    rt().block_on(async {
        let (s, b) = api
            .post(
                "/api/v1/playbooks",
                &admin,
                json!({"name": "vuln", "categories": ["vulnerability"], "steps": [
                    {"kind": "patch", "title": "Patch the vulnerable package"},
                    {"kind": "config-fix", "title": "Turn off TLS 1.0"}]}),
            )
            .await;
        assert!(s == 200 || s == 201, "{b}");
        let (s, i) = api
            .post(
                "/api/v1/incidents",
                &admin,
                json!({"tenant": "acme", "title": "Second OpenSSL case",
                       "severity": "high", "category": "vulnerability"}),
            )
            .await;
        assert_eq!(s, 201, "{i}");
        let id2 = i["id"].as_str().unwrap();
        for (k, v) in [("package", "openssl@3.0.13"), ("asset", "mail-1")] {
            let (s, b) = api
                .post(
                    &format!("/api/v1/incidents/{id2}/observables"),
                    &admin,
                    json!({"kind": k, "value": v}),
                )
                .await;
            assert_eq!(s, 200, "{b}");
        }
        let (s, b) = api
            .post(
                &format!("/api/v1/incidents/{id2}/run-playbook"),
                &admin,
                json!({"playbook": "vuln"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let actions: Vec<(String, String, usize)> = b["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["kind"].as_str().unwrap().to_string(),
                    a["subject"].as_str().unwrap().to_string(),
                    a["assets"].as_array().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(
            actions,
            [
                ("patch".to_string(), "openssl 3.0.13".to_string(), 2),
                ("config-fix".to_string(), "Turn off TLS 1.0".to_string(), 1)
            ]
        );
        assert_eq!(
            b["tasks"].as_array().unwrap().len(),
            2,
            "the steps' tasks too"
        );
    });

    // Closing with assets left warns on stderr and is recorded.
    let (code, out, err) = cli(
        &srv,
        &admin,
        &[
            "incident",
            "advance",
            &id,
            "--to",
            "recorded",
            "--responsible",
            "admin",
            "--reason",
            "handled; the tenant patches the rest",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("recorded"), "{out}");
    assert!(
        err.contains("warning: 3 remediation action(s) still have 4 asset(s) not done"),
        "{err}"
    );
    let shown = cli_json(&srv, &admin, &["incident", "show", &id]);
    assert!(
        shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "closed-with-open-actions" && h["assets"] == 4),
        "{shown}"
    );
}
