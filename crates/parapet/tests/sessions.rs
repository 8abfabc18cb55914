//! Sessions through the API and the CLI on both backends (issue 4, X.1642 8.1.2(1)): listing
//! with origin and last use, revocation by administrators, one's own account history, tenant
//! isolation and bad input.
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

on_both!(administrators_list_and_end_sessions);

const PW: &str = "session-test-password-1";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        agent: &str,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("user-agent", agent);
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
        self.call(reqwest::Method::GET, path, Some(token), None, "test")
            .await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body), "test")
            .await
    }

    async fn login(&self, user: &str, pw: &str, agent: &str) -> (String, String) {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": user, "password": pw})),
                agent,
            )
            .await;
        assert_eq!(s, 200, "login {user}: {b}");
        let token = b["token"].as_str().unwrap().to_string();
        let (s, me) = self.get("/api/v1/me/sessions", &token).await;
        assert_eq!(s, 200, "{me}");
        let id = me
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["current"] == true)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        (token, id)
    }
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

fn administrators_list_and_end_sessions(backend: Backend) {
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
        let (admin, _) = api.login("admin", ADMIN_PASSWORD, "test").await;
        for t in ["acme", "globex"] {
            let (s, _) = api
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201);
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
        let (alice, _) = api.login("alice@acme", PW, "alice-browser").await;
        let (gina, _) = api.login("gina@globex", PW, "test").await;
        let (bob1, bob1_id) = api.login("bob@acme", PW, "bob-laptop").await;
        let (bob2, _) = api.login("bob@acme", PW, "bob-phone").await;

        // The tenant admin sees bob's two sessions, where they were opened and last used.
        let (s, list) = api
            .get("/api/v1/tenants/acme/sessions?user=bob", &alice)
            .await;
        assert_eq!(s, 200, "{list}");
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 2, "{list:?}");
        let mut agents: Vec<&str> = list
            .iter()
            .map(|x| x["user_agent"].as_str().unwrap())
            .collect();
        agents.sort_unstable();
        assert_eq!(agents, vec!["bob-laptop", "bob-phone"]);
        assert!(list.iter().all(|x| x["source_ip"] == "127.0.0.1"));
        assert!(list.iter().all(|x| x["username"] == "bob"));
        // All of acme's sessions: alice's and bob's, never globex's or the provider's.
        let (_, all) = api.get("/api/v1/tenants/acme/sessions", &alice).await;
        let users: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["username"].as_str().unwrap())
            .collect();
        assert_eq!(users.len(), 3, "{users:?}");
        assert!(users.iter().all(|u| *u == "alice" || *u == "bob"));

        // Isolation: a member may not list; another tenant's admin does not see acme at all.
        assert_eq!(api.get("/api/v1/tenants/acme/sessions", &bob1).await.0, 403);
        assert_eq!(api.get("/api/v1/tenants/acme/sessions", &gina).await.0, 404);
        assert_eq!(
            api.post(
                "/api/v1/tenants/acme/users/bob/revoke-sessions",
                &gina,
                json!({})
            )
            .await
            .0,
            404
        );
        let (s, _) = api
            .call(
                reqwest::Method::DELETE,
                &format!("/api/v1/tenants/globex/sessions/{bob1_id}"),
                Some(&gina),
                None,
                "test",
            )
            .await;
        assert_eq!(s, 404, "a session of acme was found through globex");
        assert_eq!(api.get("/api/v1/me/sessions", "ppt_nonsense").await.0, 401);

        // Bad input.
        let (s, b) = api
            .call(
                reqwest::Method::DELETE,
                "/api/v1/tenants/acme/sessions/not-a-uuid",
                Some(&alice),
                None,
                "test",
            )
            .await;
        assert_eq!(s, 404, "{b}");
        assert_eq!(b["type"], "urn:parapet:problem:not-found");
        let (s, _) = api
            .post(
                "/api/v1/tenants/acme/users/bob/revoke-sessions",
                &alice,
                json!({"bogus": true}),
            )
            .await;
        assert!(s == 400 || s == 422, "{s}");
        assert_eq!(
            api.post(
                "/api/v1/tenants/acme/users/nobody/revoke-sessions",
                &alice,
                json!({})
            )
            .await
            .0,
            404
        );

        // End one session, then all of bob's: the tokens stop working at once.
        let (s, _) = api
            .call(
                reqwest::Method::DELETE,
                &format!("/api/v1/tenants/acme/sessions/{bob1_id}"),
                Some(&alice),
                None,
                "test",
            )
            .await;
        assert_eq!(s, 204);
        assert_eq!(api.get("/api/v1/me/sessions", &bob1).await.0, 401);
        assert_eq!(api.get("/api/v1/me/sessions", &bob2).await.0, 200);
        let (s, b) = api
            .post(
                "/api/v1/tenants/acme/users/bob/revoke-sessions",
                &alice,
                json!({}),
            )
            .await;
        assert_eq!((s, b["revoked"].as_u64()), (200, Some(1)), "{b}");
        assert_eq!(api.get("/api/v1/me/sessions", &bob2).await.0, 401);

        // Bob's own history: his log-ins, with where they came from; the revocations are in
        // the tenant's audit trail.
        let (bob3, _) = api.login("bob@acme", PW, "bob-desktop").await;
        let (s, history) = api.get("/api/v1/me/history?limit=50", &bob3).await;
        assert_eq!(s, 200);
        let history = history.as_array().unwrap();
        let logins = history
            .iter()
            .filter(|r| r["action"] == "auth.login")
            .count();
        assert_eq!(logins, 3);
        assert!(history.iter().all(|r| r["target"] == "user:acme/bob"));
        assert_eq!(
            api.get("/api/v1/me/history?limit=0", &bob3).await.0,
            400,
            "limit 0 must be refused"
        );
        let (_, trail) = api
            .get(
                "/api/v1/tenants/acme/audit?action=session.revoke-all",
                &alice,
            )
            .await;
        assert_eq!(trail["items"].as_array().unwrap().len(), 1, "{trail}");

        // The CLI.
        let url = srv.url.clone();
        let (ok, out, err) = cli(
            &url,
            &alice,
            &[
                "session", "list", "--tenant", "acme", "--user", "bob", "--json",
            ],
        );
        assert!(ok, "{err}");
        let listed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 1);
        let (ok, out, err) = cli(
            &url,
            &alice,
            &["session", "revoke", "--tenant", "acme", "--user", "bob"],
        );
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "Revoked 1");
        let (ok, _, err) = cli(&url, &bob3, &["session", "history"]);
        assert!(!ok, "a revoked session still works in the CLI");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        let (ok, _, err) = cli(&url, &alice, &["session", "revoke", "--tenant", "acme"]);
        assert!(!ok);
        assert!(err.contains("give a session ID"), "{err}");
        let (ok, out, err) = cli(&url, &alice, &["session", "history", "--json"]);
        assert!(ok, "{err}");
        let mine: Value = serde_json::from_str(&out).unwrap();
        assert!(!mine.as_array().unwrap().is_empty());
    });
}
