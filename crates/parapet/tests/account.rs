//! Account policies through the API, the CLI and the console on both backends (issue 4,
//! X.1642 8.1.1(3)): per-tenant policy with provider defaults, lockout answering exactly like a
//! wrong password, unlocking, throttling with 429 and Retry-After, self-service password change
//! under the policy, the dormancy sweep, tenant isolation and bad input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{ADMIN_PASSWORD, Backend, bin, start};
use serde_json::{Value, json};

on_both!(account_policies_end_to_end);

const PW: &str = "Account-test-password-1";

struct Api {
    base: String,
    http: reqwest::Client,
}

struct Resp {
    status: u16,
    retry_after: Option<String>,
    content_type: String,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.unwrap();
        let h = |n: &str| {
            res.headers()
                .get(n)
                .map(|v| v.to_str().unwrap_or("").to_string())
        };
        let retry_after = h("retry-after");
        let content_type = h("content-type").unwrap_or_default();
        Resp {
            status: res.status().as_u16(),
            retry_after,
            content_type,
            text: res.text().await.unwrap(),
        }
    }

    async fn login_raw(&self, user: &str, pw: &str) -> Resp {
        self.call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": user, "password": pw})),
        )
        .await
    }

    async fn login(&self, user: &str, pw: &str) -> String {
        let r = self.login_raw(user, pw).await;
        assert_eq!(r.status, 200, "login {user}: {}", r.text);
        r.json()["token"].as_str().unwrap().to_string()
    }
}

fn cli(url: &str, token: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .env("PARAPET_SERVER", url)
        .env("PARAPET_TOKEN", token)
        .env(
            "PARAPET_CONFIG_DIR",
            parapet_store_sql::testkit::temp_dir("cfg"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn account_policies_end_to_end(backend: Backend) {
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
        use reqwest::Method;
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            let r = api
                .call(
                    Method::POST,
                    "/api/v1/tenants",
                    Some(&admin),
                    Some(json!({"name": t})),
                )
                .await;
            assert_eq!(r.status, 201);
        }
        for (t, u, role) in [
            ("acme", "alice", "tenant-admin"),
            ("acme", "bob", "tenant-member"),
            ("globex", "gina", "tenant-admin"),
        ] {
            let r = api
                .call(
                    Method::POST,
                    &format!("/api/v1/tenants/{t}/users"),
                    Some(&admin),
                    Some(json!({"username": u, "password": PW, "role": role})),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
        let alice = api.login("alice@acme", PW).await;
        let bob = api.login("bob@acme", PW).await;
        let gina = api.login("gina@globex", PW).await;

        // Provider defaults until the tenant sets its own.
        let r = api
            .call(
                Method::GET,
                "/api/v1/tenants/acme/account-policy",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["source"], "provider-default");
        assert_eq!(r.json()["policy"]["lockout_threshold"], 5);
        assert_eq!(r.json()["policy"]["dormant_days"], 90);
        let r = api
            .call(
                Method::PUT,
                "/api/v1/tenants/acme/account-policy",
                Some(&alice),
                Some(json!({"lockout_threshold": 3, "lockout_base_secs": 600})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["source"], "tenant");
        assert_eq!(r.json()["policy"]["lockout_threshold"], 3);
        assert_eq!(r.json()["policy"]["password_min_length"], 12);

        // Bad input: out of bounds, unknown rule, not an object.
        for (body, status, needle) in [
            (json!({"lockout_threshold": 0}), 422, "lockout_threshold"),
            (
                json!({"password_min_length": 3}),
                422,
                "password_min_length",
            ),
            (json!({"no_such_rule": 1}), 400, "no_such_rule"),
            (json!({"lockout_threshold": "many"}), 400, "invalid policy"),
            (json!([1, 2]), 400, "object"),
        ] {
            let r = api
                .call(
                    Method::PUT,
                    "/api/v1/tenants/acme/account-policy",
                    Some(&alice),
                    Some(body.clone()),
                )
                .await;
            assert_eq!(r.status, status, "{body}: {}", r.text);
            assert!(r.content_type.starts_with("application/problem+json"));
            assert!(
                r.json()["detail"].as_str().unwrap().contains(needle),
                "{}",
                r.text
            );
        }

        // Authorization and tenant isolation.
        for (method, path, token, status) in [
            (
                Method::PUT,
                "/api/v1/tenants/acme/account-policy",
                &bob,
                403,
            ),
            (
                Method::GET,
                "/api/v1/tenants/acme/account-policy",
                &bob,
                403,
            ),
            (
                Method::GET,
                "/api/v1/tenants/acme/account-policy",
                &gina,
                404,
            ),
            (
                Method::PUT,
                "/api/v1/tenants/acme/account-policy",
                &gina,
                404,
            ),
            (Method::GET, "/api/v1/tenants/acme/accounts", &gina, 404),
            (Method::GET, "/api/v1/tenants/acme/accounts", &bob, 403),
            (
                Method::POST,
                "/api/v1/tenants/acme/users/bob/unlock",
                &gina,
                404,
            ),
            (
                Method::POST,
                "/api/v1/tenants/acme/users/bob/unlock",
                &bob,
                403,
            ),
            (Method::POST, "/api/v1/accounts/dormancy-sweep", &alice, 403),
        ] {
            let body = (method == Method::PUT).then(|| json!({"lockout_threshold": 9}));
            let r = api.call(method.clone(), path, Some(token), body).await;
            assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        }
        let r = api
            .call(
                Method::GET,
                "/api/v1/tenants/acme/account-policy",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.json()["policy"]["lockout_threshold"], 3, "unchanged");

        // Lockout: after 3 wrong passwords the right one is refused with the very same answer.
        let wrong = api.login_raw("bob@acme", "Wrong-password-123").await;
        assert_eq!(wrong.status, 401);
        for _ in 0..2 {
            api.login_raw("bob@acme", "Wrong-password-123").await;
        }
        let locked = api.login_raw("bob@acme", PW).await;
        assert_eq!(
            (
                locked.status,
                locked.text.as_str(),
                locked.content_type.as_str()
            ),
            (
                wrong.status,
                wrong.text.as_str(),
                wrong.content_type.as_str()
            )
        );
        let r = api
            .call(
                Method::GET,
                "/api/v1/tenants/acme/accounts",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let bob_row = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["login"] == "bob@acme")
            .cloned()
            .unwrap();
        assert_eq!(bob_row["locked"], true);
        assert_eq!(bob_row["lockouts"], 1);
        assert!(bob_row["locked_until"].is_string());

        // The console shows the policy and the locked account to the tenant administrator.
        let page = api
            .http
            .get(format!("{}/console/tenants/acme/accounts", srv.url))
            .header("cookie", format!("parapet_session={alice}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("id=\"policy-form\""), "{html}");
        assert!(html.contains("bob@acme") && html.contains("Unlock"));
        assert!(
            html.contains("this tenant&#39;s own policy")
                || html.contains("this tenant's own policy")
        );
        let page = api
            .http
            .get(format!("{}/console/tenants/acme/accounts", srv.url))
            .header("cookie", format!("parapet_session={gina}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 404);

        // The CLI shows the policy, refuses a bad one in one line, and unlocks.
        let url = srv.url.clone();
        let (alice_t, url2) = (alice.clone(), url.clone());
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            cli(
                &url2,
                &alice_t,
                &["policy", "show", "--tenant", "acme", "--json"],
                None,
            )
        })
        .await
        .unwrap();
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["policy"]["lockout_base_secs"], 600);
        let (alice_t, url2) = (alice.clone(), url.clone());
        let (ok, _, err) = tokio::task::spawn_blocking(move || {
            cli(
                &url2,
                &alice_t,
                &[
                    "policy",
                    "set",
                    "--tenant",
                    "acme",
                    "--password-min-length",
                    "4",
                ],
                None,
            )
        })
        .await
        .unwrap();
        assert!(!ok);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("password_min_length"), "{err}");
        let (alice_t, url2) = (alice.clone(), url.clone());
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            cli(
                &url2,
                &alice_t,
                &["user", "unlock", "--tenant", "acme", "bob", "--json"],
                None,
            )
        })
        .await
        .unwrap();
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["locked"], false);
        api.login("bob@acme", PW).await;

        // Self-service password change through the CLI, under the tenant's policy.
        let url2 = url.clone();
        let (ok, _, err) = tokio::task::spawn_blocking(move || {
            cli(
                &url2,
                "",
                &[
                    "user",
                    "password",
                    "--username",
                    "bob@acme",
                    "--password-stdin",
                ],
                Some(&format!("{PW}\nshort\n")),
            )
        })
        .await
        .unwrap();
        assert!(!ok);
        assert!(err.contains("at least 12 characters"), "{err}");
        let url2 = url.clone();
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            cli(
                &url2,
                "",
                &[
                    "user",
                    "password",
                    "--username",
                    "bob@acme",
                    "--password-stdin",
                ],
                Some(&format!("{PW}\nBrand-new-secret-77\n")),
            )
        })
        .await
        .unwrap();
        assert!(ok, "{err}");
        assert!(out.contains("changed"), "{out}");
        api.login("bob@acme", "Brand-new-secret-77").await;
        assert_eq!(api.login_raw("bob@acme", PW).await.status, 401);

        // Throttling: a fourth attempt on one name within a minute gets 429 with Retry-After,
        // whether the name exists or not.
        let r = api
            .call(
                Method::PUT,
                "/api/v1/tenants/acme/account-policy",
                Some(&alice),
                Some(json!({"throttle_per_account": 3, "lockout_threshold": 10})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for name in ["nobody@acme", "alice@acme"] {
            let mut statuses = Vec::new();
            let mut last = None;
            for _ in 0..4 {
                let r = api.login_raw(name, "Wrong-password-123").await;
                statuses.push(r.status);
                last = Some(r);
            }
            let last = last.unwrap();
            // The window is a calendar minute: a boundary may fall between the attempts.
            if statuses.iter().filter(|s| **s == 429).count() == 0 {
                continue;
            }
            assert_eq!(statuses.last(), Some(&429), "{name}: {statuses:?}");
            assert!(last.content_type.starts_with("application/problem+json"));
            let secs: u32 = last.retry_after.clone().unwrap().parse().unwrap();
            assert!((1..=60).contains(&secs));
        }

        // The dormancy sweep, on demand, for the provider's security administrator.
        let r = api
            .call(
                Method::POST,
                "/api/v1/accounts/dormancy-sweep",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json(), json!({"disabled": [], "deleted": []}));
        let (admin_t, url2) = (admin.clone(), url.clone());
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            cli(&url2, &admin_t, &["user", "sweep-dormant", "--json"], None)
        })
        .await
        .unwrap();
        assert!(ok, "{err}");
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"disabled": [], "deleted": []})
        );

        // The account audit report: the tenant's administrator reads it, others do not.
        let r = api
            .call(
                Method::GET,
                "/api/v1/tenants/acme/reports/accounts?days=30",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for k in ["dormant", "over_privileged", "orphaned", "locked"] {
            assert!(r.json()[k].is_array(), "{k}: {}", r.text);
        }
        let flagged: Vec<String> = r.json()["orphaned"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["login"].as_str().unwrap().to_string())
            .collect();
        assert!(flagged.is_empty(), "everyone logged in: {flagged:?}");
        for (token, status) in [(&gina, 404), (&bob, 403)] {
            let r = api
                .call(
                    Method::GET,
                    "/api/v1/tenants/acme/reports/accounts",
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(r.status, status, "{}", r.text);
        }
        let r = api
            .call(
                Method::GET,
                "/api/v1/tenants/acme/reports/accounts?days=0",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.status, 422);
        let (alice_t, url2) = (alice.clone(), url.clone());
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            cli(
                &url2,
                &alice_t,
                &[
                    "user", "report", "--tenant", "acme", "--days", "30", "--json",
                ],
                None,
            )
        })
        .await
        .unwrap();
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["days"], 30);

        // Every change is in the tenant's audit trail.
        let r = api
            .call(
                Method::GET,
                "/api/v1/tenants/acme/audit?limit=1000",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        let actions: Vec<String> = r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["action"].as_str().unwrap_or("").to_string())
            .collect();
        for a in ["policy.account.set", "user.unlock", "user.password.change"] {
            assert!(actions.iter().any(|x| x == a), "{a} missing in {actions:?}");
        }
    });
}
