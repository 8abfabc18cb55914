//! Just-in-time privileged access (X.1642 7.2.2.4(3)) through the CLI, the API and the console
//! on both backends: an operator asks for the security-admin role, cannot approve it herself,
//! another administrator approves it, every request made with the lent role is in the audit
//! trail, the grant is listed and revoked; tenant isolation. (Expiry by itself is tested with a
//! moved clock in `crates/iam/tests/access.rs`.)
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

on_both!(just_in_time_access_end_to_end);

const PW: &str = "Operator-pass-0123456";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn login(&self, user: &str, pw: &str) -> String {
        let res = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"username": user, "password": pw}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
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

fn just_in_time_access_end_to_end(backend: Backend) {
    let srv = start(backend);
    let url = srv.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api {
        base: url.clone(),
        http: reqwest::Client::new(),
    };
    rt.block_on(async {
        use reqwest::Method as M;
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let (s, _) = api
            .call(
                M::POST,
                "/api/v1/tenants/provider/users",
                &admin,
                Some(json!({"username": "olivia", "password": PW, "role": "operator"})),
            )
            .await;
        assert_eq!(s, 201);
        let (s, _) = api
            .call(
                M::POST,
                "/api/v1/tenants",
                &admin,
                Some(json!({"name": "acme"})),
            )
            .await;
        assert_eq!(s, 201);
        let (s, _) = api
            .call(
                M::POST,
                "/api/v1/tenants/acme/users",
                &admin,
                Some(json!({"username": "alice", "password": PW, "role": "tenant-admin"})),
            )
            .await;
        assert_eq!(s, 201);
        let olivia = api.login("olivia", PW).await;
        let alice = api.login("alice@acme", PW).await;

        // An operator cannot create tenants; she asks for the role, with a reason and a time.
        let (s, _) = api
            .call(
                M::POST,
                "/api/v1/tenants",
                &olivia,
                Some(json!({"name": "globex"})),
            )
            .await;
        assert_eq!(s, 403);
        let (ok, _, err) = cli(
            &url,
            &olivia,
            &[
                "access",
                "request",
                "security-admin",
                "--reason",
                "x",
                "--duration",
                "3d",
            ],
        );
        assert!(!ok && err.contains("not a duration"), "{err}");
        let (ok, _, err) = cli(
            &url,
            &olivia,
            &[
                "access",
                "request",
                "security-admin",
                "--reason",
                "onboard globex",
                "--duration",
                "10h",
            ],
        );
        assert!(!ok && err.contains("between"), "{err}");
        let (ok, out, err) = cli(
            &url,
            &olivia,
            &[
                "access",
                "request",
                "security-admin",
                "--reason",
                "onboard globex",
                "--duration",
                "15m",
                "--json",
            ],
        );
        assert!(ok, "{err}");
        let req: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (req["kind"].as_str(), req["status"].as_str()),
            (Some("elevation"), Some("pending"))
        );
        let id = req["id"].as_str().unwrap().to_string();
        // She cannot approve it herself (she may not grant the role, and never her own request).
        let (ok, _, err) = cli(
            &url,
            &olivia,
            &["approval", "approve", "--tenant", "provider", &id],
        );
        assert!(!ok && err.contains("403"), "{err}");
        // A customer asks for a provider role: refused, nothing filed.
        let (s, v) = api
            .call(
                M::POST,
                "/api/v1/access/requests",
                &alice,
                Some(json!({"role": "security-admin", "reason": "x", "duration_secs": 600})),
            )
            .await;
        assert_eq!(s, 422, "{v}");
        // Another administrator approves through the approvals module.
        let (ok, _, err) = cli(
            &url,
            &admin,
            &[
                "approval",
                "approve",
                "--tenant",
                "provider",
                &id,
                "--comment",
                "go",
            ],
        );
        assert!(ok, "{err}");
        let (s, t) = api
            .call(
                M::POST,
                "/api/v1/tenants",
                &olivia,
                Some(json!({"name": "globex"})),
            )
            .await;
        assert_eq!(s, 201, "the lent role works at once: {t}");
        let (s, me) = api.call(M::GET, "/api/v1/auth/whoami", &olivia, None).await;
        assert_eq!(s, 200);
        assert_eq!(me["role"], "security-admin");

        // Every use is recorded, with the request and the grant.
        let (s, audit) = api
            .call(
                M::GET,
                "/api/v1/tenants/provider/audit?limit=200",
                &admin,
                None,
            )
            .await;
        assert_eq!(s, 200);
        let uses: Vec<&Value> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "access.elevated.use")
            .collect();
        assert!(
            uses.iter()
                .any(|r| r["details"]["request"] == "POST /api/v1/tenants"
                    && r["actor"]["username"] == "olivia"
                    && r["details"]["base_role"] == "operator"),
            "{audit}"
        );
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == "approval.approve"
                    && r["details"]["applied"] == "access.grant")
        );

        // Listing: the grant is active; a customer cannot see the provider's grants.
        let (ok, out, err) = cli(
            &url,
            &admin,
            &["access", "list", "--tenant", "provider", "--json"],
        );
        assert!(ok, "{err}");
        let grants: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(grants.as_array().unwrap().len(), 1);
        assert_eq!(grants[0]["state"], "active");
        assert_eq!(grants[0]["username"], "olivia");
        let gid = grants[0]["id"].as_str().unwrap().to_string();
        let (s, _) = api
            .call(
                M::GET,
                "/api/v1/tenants/provider/access-grants",
                &alice,
                None,
            )
            .await;
        assert_eq!(s, 404);
        let (s, _) = api
            .call(
                M::POST,
                &format!("/api/v1/tenants/provider/access-grants/{gid}/revoke"),
                &alice,
                None,
            )
            .await;
        assert_eq!(s, 404);

        // The console shows it to the holder.
        let page = api
            .http
            .get(format!("{url}/console/access"))
            .header("cookie", format!("parapet_session={olivia}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("id=\"elevated\"") && html.contains("onboard globex"));

        // Revoked by the approver: the role is gone.
        let (ok, _, err) = cli(
            &url,
            &admin,
            &["access", "revoke", "--tenant", "provider", &gid],
        );
        assert!(ok, "{err}");
        let (s, _) = api
            .call(
                M::POST,
                "/api/v1/tenants",
                &olivia,
                Some(json!({"name": "initech"})),
            )
            .await;
        assert_eq!(s, 403);
        let (ok, _, err) = cli(
            &url,
            &admin,
            &["access", "revoke", "--tenant", "provider", &gid],
        );
        assert!(!ok && err.contains("revoked already"), "{err}");
        let (_, grants) = api
            .call(
                M::GET,
                "/api/v1/tenants/provider/access-grants",
                &admin,
                None,
            )
            .await;
        assert_eq!(grants[0]["state"], "revoked");
        assert_eq!(grants[0]["revoked_by"], "admin");
    });
}
