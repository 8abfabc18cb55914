//! The asset inventory through the API and the CLI on both backends (issue 6, X.1642 8.3(1) and
//! 8.3 last paragraph): registration, validation, bulk import (all or nothing), pagination, health,
//! the provider's cross-tenant correlation query, tenant isolation of every endpoint, roles, and
//! the audit trail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::process::Command;

use common::{ADMIN_PASSWORD, Backend, bin, start};
use serde_json::{Value, json};

on_both!(
    inventory_api_with_isolation_roles_and_audit,
    inventory_cli_round_trip
);

const PW: &str = "asset-test-password-1";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some((ct, b)) = body {
            rb = rb.header("content-type", ct).body(b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.raw(reqwest::Method::GET, path, token, None).await
    }
    async fn send(&self, m: reqwest::Method, path: &str, token: &str, v: Value) -> (u16, Value) {
        self.raw(
            m,
            path,
            token,
            Some(("application/json", serde_json::to_vec(&v).unwrap())),
        )
        .await
    }
    async fn post(&self, path: &str, token: &str, v: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, token, v).await
    }
    async fn login(&self, user: &str, pw: &str) -> String {
        let res = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"username": user, "password": pw}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "login {user}");
        let b: Value = res.json().await.unwrap();
        b["token"].as_str().unwrap().to_string()
    }
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

async fn setup(api: &Api) -> [String; 6] {
    let admin = api.login("admin", ADMIN_PASSWORD).await;
    for t in ["acme", "globex", "initech"] {
        let (s, b) = api
            .post("/api/v1/tenants", &admin, json!({"name": t}))
            .await;
        assert_eq!(s, 201, "{b}");
    }
    for (t, u, role) in [
        ("acme", "alice", "tenant-admin"),
        ("acme", "bob", "tenant-member"),
        ("globex", "gina", "tenant-admin"),
        ("provider", "oscar", "operator"),
        ("provider", "audrey", "auditor"),
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
        api.login("oscar", PW).await,
        api.login("audrey", PW).await,
    ]
}

fn inventory_api_with_isolation_roles_and_audit(backend: Backend) {
    use reqwest::Method;
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
        let [admin, alice, bob, gina, oscar, audrey] = setup(&api).await;
        let web = json!({
            "name": "web-1", "kind": "vm",
            "os": {"name": "Ubuntu", "version": "22.04"},
            "applications": [{"name": "nginx", "version": "1.24.0"},
                             {"name": "openssl", "version": "3.0.13"}],
            "addresses": ["10.0.0.5", "web-1.acme.example"],
            "criticality": "high", "tags": {"env": "prod"}
        });
        let (s, a) = api.post("/api/v1/tenants/acme/assets", &alice, web.clone()).await;
        assert_eq!(s, 201, "{a}");
        assert_eq!(a["tenant"], "acme");
        assert_eq!(a["health"], "unknown");
        assert_eq!(a["criticality"], "high");
        let id = a["id"].as_str().unwrap().to_string();

        // Names are unique per tenant regardless of case; the same name in another tenant is fine.
        let mut dup = web.clone();
        dup["name"] = json!("WEB-1");
        let (s, b) = api.post("/api/v1/tenants/acme/assets", &alice, dup.clone()).await;
        assert_eq!(s, 409, "{b}");
        let mut gx = web.clone();
        gx["applications"] = json!([{"name": "OpenSSL", "version": "3.0.13"}]);
        gx["os"] = json!({"name": "ubuntu", "version": "22.04"});
        let (s, b) = api.post("/api/v1/tenants/globex/assets", &gina, gx).await;
        assert_eq!(s, 201, "{b}");

        // Bad input is a 4xx problem naming what is wrong, and writes nothing.
        for (body, status, needle) in [
            (json!({"name": "x", "kind": "toaster"}), 422, "unknown asset kind"),
            (json!({"name": "x", "kind": "vm", "colour": 1}), 422, "colour"),
            (json!({"name": "x", "kind": "vm", "addresses": ["not an ip!"]}), 422, "address"),
            (json!({"name": "", "kind": "vm"}), 422, "empty"),
            (json!({"name": "x", "kind": "vm", "criticality": "extreme"}), 422, "criticality"),
            (json!({"name": "x\u{7}", "kind": "vm"}), 422, "control"),
            (json!({"name": "x", "kind": "vm", "tags": {"bad key": "v"}}), 422, "tag key"),
        ] {
            let (s, b) = api.post("/api/v1/tenants/acme/assets", &alice, body.clone()).await;
            assert_eq!(s, status, "{body}: {b}");
            assert!(b["detail"].as_str().unwrap().contains(needle), "{b}");
        }
        let (s, b) = api
            .raw(Method::POST, "/api/v1/tenants/acme/assets", &alice, Some(("application/json", b"{".to_vec())))
            .await;
        assert_eq!(s, 400, "{b}");
        let (s, _) = api.get("/api/v1/tenants/acme/assets?health=sick", &alice).await;
        assert_eq!(s, 400);

        // Reads by name (any case) or id; the member reads but may not write.
        for key in ["web-1", "Web-1", id.as_str()] {
            let (s, b) = api.get(&format!("/api/v1/tenants/acme/assets/{key}"), &bob).await;
            assert_eq!(s, 200, "{key}: {b}");
            assert_eq!(b["id"], id.as_str());
        }
        let mut x = web.clone();
        x["name"] = json!("bobs");
        assert_eq!(api.post("/api/v1/tenants/acme/assets", &bob, x).await.0, 403);
        assert_eq!(
            api.post("/api/v1/tenants/acme/assets/web-1/health", &bob, json!({"health": "down"}))
                .await
                .0,
            403
        );

        // Isolation: globex's admin never sees acme's inventory through any endpoint.
        let probes: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, "/api/v1/tenants/acme/assets".into(), None),
            (Method::GET, "/api/v1/tenants/acme/assets-summary".into(), None),
            (Method::GET, "/api/v1/tenants/acme/assets/web-1".into(), None),
            (Method::GET, format!("/api/v1/tenants/acme/assets/{id}"), None),
            (Method::PUT, "/api/v1/tenants/acme/assets/web-1".into(), Some(web.clone())),
            (Method::DELETE, "/api/v1/tenants/acme/assets/web-1".into(), None),
            (Method::POST, "/api/v1/tenants/acme/assets".into(), Some(web.clone())),
            (Method::POST, "/api/v1/tenants/acme/assets/web-1/health".into(), Some(json!({"health": "down"}))),
            (Method::GET, "/api/v1/tenants/acme/assets/web-1/related".into(), None),
        ];
        for (m, path, body) in &probes {
            let (s, b) = match body {
                Some(v) => api.send(m.clone(), path, &gina, v.clone()).await,
                None => api.raw(m.clone(), path, &gina, None).await,
            };
            assert_eq!(s, 404, "{m} {path} by globex: {b}");
            assert!(!b.to_string().contains("10.0.0.5"), "{b}");
        }
        // Nor by id through its own tenant.
        let (s, _) = api.get(&format!("/api/v1/tenants/globex/assets/{id}"), &gina).await;
        assert_eq!(s, 404);
        let (s, b) = api
            .raw(Method::POST, "/api/v1/tenants/acme/assets/import?format=csv", &gina,
                Some(("text/csv", b"name,kind\nsneaky,vm\n".to_vec())))
            .await;
        assert_eq!(s, 404, "{b}");
        let (_, mine) = api.get("/api/v1/tenants/globex/assets", &gina).await;
        assert_eq!(names(&mine), vec!["web-1"]);
        assert_eq!(mine["items"][0]["tenant"], "globex");

        // Replace, health, summary.
        let mut upd = web.clone();
        upd["name"] = json!("web-01");
        upd["applications"] = json!([{"name": "nginx", "version": "1.26.0"}]);
        let (s, b) = api
            .send(Method::PUT, "/api/v1/tenants/acme/assets/web-1", &alice, upd)
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["id"], id.as_str());
        assert_eq!(b["name"], "web-01");
        let (s, b) = api
            .post(
                "/api/v1/tenants/acme/assets/web-01/health",
                &alice,
                json!({"health": "degraded", "reason": "disk 97% full", "seen": true}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["health"], "degraded");
        assert!(b["last_seen_at"].is_string());
        let (s, b) = api
            .post("/api/v1/tenants/acme/assets/web-01/health", &alice, json!({"health": "sick"}))
            .await;
        assert_eq!(s, 422, "{b}");

        // Bulk import: all or nothing, with the lines of the bad rows.
        let mut csv = String::from("name,kind,os_name,os_version,applications,addresses\n");
        for i in 0..25 {
            csv.push_str(&format!(
                "host-{i:02},vm,Debian,12,openssl=3.0.13;postgresql=15.6,10.1.0.{i}\n"
            ));
        }
        let mut bad = csv.clone();
        bad.push_str("broken,vmm,,,,\nalso,vm,,,,999.1.1.1\n");
        let (s, b) = api
            .raw(Method::POST, "/api/v1/tenants/acme/assets/import", &alice,
                Some(("text/csv", bad.into_bytes())))
            .await;
        assert_eq!(s, 422, "{b}");
        let detail = b["detail"].as_str().unwrap();
        assert!(detail.contains("[line 27]") && detail.contains("[line 28]"), "{detail}");
        let (_, sum) = api.get("/api/v1/tenants/acme/assets-summary", &alice).await;
        assert_eq!(sum["total"], 1, "a rejected import wrote something: {sum}");
        let (s, b) = api
            .raw(Method::POST, "/api/v1/tenants/acme/assets/import", &alice,
                Some(("text/csv", csv.clone().into_bytes())))
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b, json!({"created": 25, "updated": 0}));
        // Re-importing (as JSON lines) updates, never duplicates.
        let lines = "{\"name\":\"HOST-00\",\"kind\":\"database\"}\n{\"name\":\"new-db\",\"kind\":\"database\"}\n";
        let (s, b) = api
            .raw(Method::POST, "/api/v1/tenants/acme/assets/import?format=json", &alice,
                Some(("application/x-ndjson", lines.as_bytes().to_vec())))
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b, json!({"created": 1, "updated": 1}));
        let (s, b) = api
            .raw(Method::POST, "/api/v1/tenants/acme/assets/import", &alice,
                Some(("text/plain", b"x".to_vec())))
            .await;
        assert_eq!(s, 415, "{b}");
        let dup_rows = "name,kind\nsame,vm\nSAME,vm\n";
        let (s, b) = api
            .raw(Method::POST, "/api/v1/tenants/acme/assets/import", &alice,
                Some(("text/csv", dup_rows.as_bytes().to_vec())))
            .await;
        assert_eq!(s, 422, "{b}");
        assert!(b["detail"].as_str().unwrap().contains("first on line 2"), "{b}");

        // Pagination: 27 assets in pages of 10, in name order, each once.
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let path = match &cursor {
                Some(c) => format!("/api/v1/tenants/acme/assets?limit=10&cursor={c}"),
                None => "/api/v1/tenants/acme/assets?limit=10".into(),
            };
            let (s, page) = api.get(&path, &bob).await;
            assert_eq!(s, 200, "{page}");
            all.extend(names(&page));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(all.len(), 27, "{all:?}");
        let mut sorted = all.clone();
        sorted.sort_by_key(|n| n.to_lowercase());
        sorted.dedup();
        assert_eq!(all, sorted);
        let (_, dbs) = api.get("/api/v1/tenants/acme/assets?kind=database&q=host", &bob).await;
        assert_eq!(names(&dbs), vec!["HOST-00"], "the import renamed it as written");
        let (_, degraded) = api.get("/api/v1/tenants/acme/assets?health=degraded", &bob).await;
        assert_eq!(names(&degraded), vec!["web-01"]);

        // Correlation across tenants: provider staff only; the asset's own tenant is left out.
        let mut gx2 = json!({"name": "gx-db", "kind": "database",
            "applications": [{"name": "postgresql", "version": "15.6"}]});
        let (s, _) = api.post("/api/v1/tenants/globex/assets", &gina, gx2.clone()).await;
        assert_eq!(s, 201);
        gx2["name"] = json!("init-db");
        let (s, _) = api.post("/api/v1/tenants/initech/assets", &admin, gx2).await;
        assert_eq!(s, 201);
        let (s, r) = api.get("/api/v1/tenants/acme/assets/host-01/related", &oscar).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["tenants_affected"], 2, "{r}");
        let pg = r["matches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["software"]["name"] == "postgresql")
            .unwrap();
        let tenants: Vec<&str> = pg["other_tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tenant"].as_str().unwrap())
            .collect();
        assert_eq!(tenants, vec!["globex", "initech"]);
        let ssl = r["matches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["software"]["name"] == "openssl")
            .unwrap();
        assert_eq!(ssl["other_tenants"], json!([{"tenant": "globex", "assets": 1}]));
        let (s, r) = api.get("/api/v1/tenants/globex/assets/web-1/related", &admin).await;
        assert_eq!(s, 200, "{r}");
        let os = r["matches"].as_array().unwrap().iter().find(|m| m["os"] == true).unwrap();
        assert_eq!(os["other_tenants"], json!([{"tenant": "acme", "assets": 1}]));
        for (who, token) in [("tenant admin", &alice), ("member", &bob), ("auditor", &audrey)] {
            let (s, b) = api.get("/api/v1/tenants/acme/assets/host-01/related", token).await;
            assert_eq!(s, 403, "{who}: {b}");
            assert!(!b.to_string().contains("globex"), "{who}: {b}");
        }
        // The auditor reads inventories but changes nothing.
        assert_eq!(api.get("/api/v1/tenants/acme/assets", &audrey).await.0, 200);
        assert_eq!(
            api.raw(Method::DELETE, "/api/v1/tenants/acme/assets/host-01", &audrey, None).await.0,
            403
        );

        // Delete.
        let (s, _) = api.raw(Method::DELETE, "/api/v1/tenants/acme/assets/host-24", &alice, None).await;
        assert_eq!(s, 204);
        let (s, _) = api.get("/api/v1/tenants/acme/assets/host-24", &alice).await;
        assert_eq!(s, 404);

        // Every change is in the tenant's audit trail, with who did it.
        for (action, target) in [
            ("asset.create", "asset:acme/web-1"),
            ("asset.update", "asset:acme/web-01"),
            ("asset.health", "asset:acme/web-01"),
            ("asset.import", "tenant:acme"),
            ("asset.delete", "asset:acme/host-24"),
        ] {
            let (s, b) = api
                .get(&format!("/api/v1/tenants/acme/audit?action={action}"), &alice)
                .await;
            assert_eq!(s, 200, "{b}");
            let items = b["items"].as_array().unwrap();
            assert!(
                items.iter().any(|r| r["target"] == target && r["actor"]["username"] == "alice"),
                "{action} on {target} missing: {b}"
            );
        }
        let (_, b) = api.get("/api/v1/tenants/acme/audit?action=asset.import", &alice).await;
        assert_eq!(b["items"].as_array().unwrap().len(), 2, "rejected imports are not recorded as done: {b}");
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

fn inventory_cli_round_trip(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let [admin, alice, _bob, gina, _oscar, _audrey] = rt.block_on(setup(&api));
    let url = srv.url.as_str();

    let (ok, o, e) = cli(
        url,
        &alice,
        &[
            "asset",
            "create",
            "--tenant",
            "acme",
            "web-1",
            "--kind",
            "vm",
            "--os",
            "Ubuntu=22.04",
            "--app",
            "openssl=3.0.13",
            "--address",
            "10.0.0.5",
            "--tag",
            "env=prod",
            "--criticality",
            "critical",
        ],
    );
    assert!(ok, "{o}{e}");
    assert!(o.contains("Registered asset web-1"), "{o}");

    // Import from a file and from standard input.
    let dir = parapet_store_sql::testkit::temp_dir("import");
    let file = dir.join("assets.csv");
    std::fs::write(&file, "name,kind,os_name,os_version,applications\ndb-1,database,Debian,12,postgresql=15.6\nfw-1,network-device,,,\n").unwrap();
    let (ok, o, e) = cli(
        url,
        &alice,
        &[
            "asset",
            "import",
            "--tenant",
            "acme",
            file.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(ok, "{o}{e}");
    assert_eq!(
        serde_json::from_str::<Value>(&o).unwrap(),
        json!({"created": 2, "updated": 0})
    );
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "name,kind\ngood,vm\nbad,spaceship\n").unwrap();
    let (ok, o, e) = cli(
        url,
        &alice,
        &["asset", "import", "--tenant", "acme", bad.to_str().unwrap()],
    );
    assert!(!ok, "{o}");
    assert_eq!(e.trim().lines().count(), 1, "one-line error: {e}");
    assert!(e.contains("[line 3]") && e.contains("spaceship"), "{e}");

    // Partial update keeps what is not given.
    let (ok, o, e) = cli(
        url,
        &alice,
        &[
            "asset", "update", "--tenant", "acme", "web-1", "--owner", "web team", "--json",
        ],
    );
    assert!(ok, "{o}{e}");
    let v: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(v["owner"], "web team");
    assert_eq!(v["criticality"], "critical");
    assert_eq!(v["os"]["version"], "22.04");
    assert_eq!(v["tags"]["env"], "prod");

    let (ok, o, e) = cli(
        url,
        &alice,
        &[
            "asset",
            "health",
            "--tenant",
            "acme",
            "db-1",
            "--set",
            "down",
            "--reason",
            "no answer",
        ],
    );
    assert!(ok, "{o}{e}");
    assert!(o.contains("now down"), "{o}");
    let (ok, o, e) = cli(
        url,
        &alice,
        &["asset", "list", "--tenant", "acme", "--json"],
    );
    assert!(ok, "{o}{e}");
    let list: Vec<Value> = serde_json::from_str(&o).unwrap();
    let names: Vec<&str> = list.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["db-1", "fw-1", "web-1"]);
    let (ok, o, _) = cli(
        url,
        &alice,
        &["asset", "list", "--tenant", "acme", "--health", "down"],
    );
    assert!(ok);
    assert!(o.contains("db-1") && !o.contains("web-1"), "{o}");
    let (ok, o, _) = cli(
        url,
        &alice,
        &["asset", "summary", "--tenant", "acme", "--json"],
    );
    assert!(ok);
    let sum: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(sum["total"], 3);
    assert_eq!(sum["by_health"]["down"], 1);
    let (ok, o, _) = cli(url, &alice, &["asset", "show", "--tenant", "acme", "WEB-1"]);
    assert!(ok);
    assert!(
        o.contains("openssl 3.0.13") && o.contains("web team"),
        "{o}"
    );

    // Correlation from the provider; a tenant is refused with a one-line error.
    let (ok, _, e) = cli(
        url,
        &gina,
        &[
            "asset",
            "create",
            "--tenant",
            "globex",
            "g",
            "--kind",
            "vm",
            "--app",
            "OpenSSL=3.0.13",
        ],
    );
    assert!(ok, "{e}");
    let (ok, o, e) = cli(
        url,
        &admin,
        &["asset", "related", "--tenant", "acme", "web-1"],
    );
    assert!(ok, "{o}{e}");
    assert!(
        o.starts_with("1 other tenant(s)") && o.contains("globex"),
        "{o}"
    );
    let (ok, o, e) = cli(
        url,
        &alice,
        &["asset", "related", "--tenant", "acme", "web-1"],
    );
    assert!(!ok, "{o}");
    assert!(e.contains("403") && !e.contains("globex"), "{e}");

    // Bad input on the command line: one line, non-zero exit.
    for args in [
        vec![
            "asset",
            "create",
            "--tenant",
            "acme",
            "x",
            "--kind",
            "vm",
            "--os",
            "no-version",
        ],
        vec![
            "asset", "create", "--tenant", "acme", "x", "--kind", "toaster",
        ],
        vec!["asset", "show", "--tenant", "globex", "web-1"],
    ] {
        let (ok, o, e) = cli(url, &alice, &args);
        assert!(!ok, "{args:?}: {o}");
        assert_eq!(e.trim().lines().count(), 1, "{args:?}: {e}");
    }
    let (ok, _, e) = cli(
        url,
        &alice,
        &["asset", "delete", "--tenant", "acme", "fw-1"],
    );
    assert!(ok, "{e}");
    let (ok, _, e) = cli(url, &alice, &["asset", "show", "--tenant", "acme", "fw-1"]);
    assert!(!ok && e.contains("404"), "{e}");
}
