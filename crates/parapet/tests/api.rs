//! Black-box tests of the HTTP API: the real `parapet serve` binary on 127.0.0.1:0 with a fresh
//! database, driven over HTTP, once on SQLite and once on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::match_like_matches_macro,
    clippy::type_complexity
)]

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::{ADMIN_PASSWORD, Backend, Server};
use serde_json::{Value, json};

on_both!(
    login_creates_session_and_audit_records,
    tenant_isolation_matrix,
    bad_input_gets_problem_json,
    disabled_users_and_suspended_tenants_lose_access,
    token_scopes_limit_what_a_token_can_do,
    pagination_follows_cursors,
    every_state_change_is_audited,
    restart_keeps_data_and_does_not_bootstrap_twice,
    console_forms_need_csrf_and_cookies_are_strict,
    health_metrics_and_openapi,
);

struct Api {
    base: String,
    http: reqwest::Client,
}

struct Reply {
    status: u16,
    content_type: String,
    body: Value,
    text: String,
}

impl Api {
    fn new(srv: &Server) -> Api {
        Api {
            base: srv.url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            body,
            text,
        }
    }

    async fn get(&self, token: &str, path: &str) -> Reply {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(token),
        )
        .await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// A log-in attempt, whatever its outcome.
    async fn try_login(&self, username: &str, password: &str) -> Reply {
        self.send(
            self.http
                .post(format!("{}/api/v1/auth/login", self.base))
                .json(&json!({"username": username, "password": password})),
        )
        .await
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let r = self.try_login(username, password).await;
        assert_eq!(r.status, 200, "login {username}: {}", r.text);
        r.body["token"].as_str().unwrap().to_string()
    }

    /// Creates a tenant; it must succeed.
    async fn create_tenant(&self, token: &str, name: &str) {
        let r = self
            .post(token, "/api/v1/tenants", json!({"name": name}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }

    /// Creates a user with the test password; it must succeed.
    async fn create_user(&self, token: &str, tenant: &str, username: &str, role: &str) {
        let r = self
            .post(
                token,
                &format!("/api/v1/tenants/{tenant}/users"),
                json!({"username": username, "password": PW, "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }

    async fn admin(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const PW: &str = "a-long-enough-password-42";

fn problem(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json", "{}", r.text);
    assert_eq!(r.body["status"], status);
    assert!(
        r.body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:parapet:problem:")
    );
    assert!(!r.body["detail"].as_str().unwrap().is_empty());
}

async fn audit(api: &Api, token: &str, tenant: &str, action: &str) -> Vec<Value> {
    let r = api
        .get(
            token,
            &format!("/api/v1/tenants/{tenant}/audit?action={action}&limit=1000"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

fn login_creates_session_and_audit_records(backend: Backend) {
    let srv = common::start(backend);
    rt().block_on(async {
        let api = Api::new(&srv);
        // A wrong password and an unknown user look the same and are both recorded.
        for (u, p) in [
            ("admin", "wrong-password-123"),
            ("nobody@nowhere", "whatever-123456"),
        ] {
            let r = api
                .send(
                    api.http
                        .post(format!("{}/api/v1/auth/login", api.base))
                        .header("user-agent", "test-agent/1.0")
                        .json(&json!({"username": u, "password": p})),
                )
                .await;
            problem(&r, 401);
            assert_eq!(r.body["detail"], login_failed_detail());
        }
        let admin = api.admin().await;
        let who = api.get(&admin, "/api/v1/auth/whoami").await;
        assert_eq!(who.body["username"], "admin");
        assert_eq!(who.body["role"], "security-admin");
        assert_eq!(who.body["tenant"], "provider");

        let logins = audit(&api, &admin, "provider", "auth.login").await;
        let failures: Vec<_> = logins
            .iter()
            .filter(|r| r["outcome"] == "failure")
            .collect();
        assert_eq!(failures.len(), 2, "{logins:?}");
        for f in &failures {
            assert_eq!(f["source_ip"], "127.0.0.1");
            assert_eq!(f["user_agent"], "test-agent/1.0");
            assert_eq!(f["actor"]["kind"], "anonymous");
        }
        let ok: Vec<_> = logins
            .iter()
            .filter(|r| r["outcome"] == "success")
            .collect();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0]["actor"]["username"], "admin");
        // The records never carry the password.
        let all = api
            .get(&admin, "/api/v1/tenants/provider/audit?limit=1000")
            .await;
        assert!(!all.text.contains("wrong-password-123"));
        assert!(!all.text.contains(ADMIN_PASSWORD));

        // Logging out revokes the session.
        let r = api.post(&admin, "/api/v1/auth/logout", json!({})).await;
        assert_eq!(r.status, 204, "{}", r.text);
        problem(&api.get(&admin, "/api/v1/auth/whoami").await, 401);
    });
}

/// The same answer for an unknown user, a wrong password, a disabled user or a suspended tenant.
fn login_failed_detail() -> &'static str {
    "wrong user name or password, or the account is disabled"
}

/// Users of every role in the provider and in two customer tenants.
async fn population(api: &Api, admin: &str) -> Vec<(String, String, String)> {
    for t in ["acme", "globex"] {
        let r = api.post(admin, "/api/v1/tenants", json!({"name": t})).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let mut people = vec![(
        "provider".to_string(),
        "admin".to_string(),
        "security-admin".to_string(),
    )];
    for role in [
        "security-admin",
        "operator",
        "key-custodian",
        "incident-responder",
        "change-approver",
        "auditor",
    ] {
        let name = format!("p-{role}");
        let r = api
            .post(
                admin,
                "/api/v1/tenants/provider/users",
                json!({"username": name, "password": PW, "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        people.push(("provider".into(), name, role.into()));
    }
    for t in ["acme", "globex"] {
        for role in ["tenant-admin", "tenant-member", "tenant-auditor"] {
            let name = format!("{t}-{role}");
            let r = api
                .post(
                    admin,
                    &format!("/api/v1/tenants/{t}/users"),
                    json!({"username": name, "password": PW, "role": role}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            people.push((t.into(), name, role.into()));
        }
        // A user that the matrix disables and re-enables.
        let r = api
            .post(
                admin,
                &format!("/api/v1/tenants/{t}/users"),
                json!({"username": "victim", "password": PW, "role": "tenant-member"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    people
}

/// What the product promises each role may do, written independently of the server's code.
fn expected(tenant: &str, role: &str, target: &str, endpoint: &str) -> u16 {
    let provider = tenant == "provider";
    let own = tenant == target;
    if !provider && !own {
        // Another tenant's data is invisible: it does not exist for this caller.
        return 404;
    }
    let allowed = match (provider, role, endpoint) {
        (true, "security-admin", _) => true,
        (true, "operator", "tenant.get" | "users.list") => true,
        (true, "auditor", "tenant.get" | "users.list" | "audit.list") => true,
        (true, _, "tenant.get") => true,
        (false, _, "tenant.get") => true,
        (false, "tenant-admin", "users.list" | "users.create" | "users.disable" | "audit.list") => {
            true
        }
        (false, "tenant-auditor", "users.list" | "audit.list") => true,
        _ => false,
    };
    if allowed { 200 } else { 403 }
}

fn tenant_isolation_matrix(backend: Backend) {
    let srv = common::start(backend);
    rt().block_on(async {
        let api = Api::new(&srv);
        let admin = api.admin().await;
        let people = population(&api, &admin).await;
        let ids: std::collections::HashMap<String, String> = {
            let r = api.get(&admin, "/api/v1/tenants").await;
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap().to_string(),
                        t["id"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let mut checked = 0;
        for (tenant, name, role) in &people {
            let login = if tenant == "provider" {
                name.clone()
            } else {
                format!("{name}@{tenant}")
            };
            let password = if name == "admin" { ADMIN_PASSWORD } else { PW };
            let tok = api.login(&login, password).await;

            // Listing tenants: provider staff see all three, a tenant's user only its own.
            let r = api.get(&tok, "/api/v1/tenants").await;
            assert_eq!(r.status, 200);
            let names: BTreeSet<_> = r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect();
            if tenant == "provider" {
                let all = api.get(&admin, "/api/v1/tenants").await;
                let all: BTreeSet<_> = all.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["name"].as_str().unwrap().to_string())
                    .collect();
                assert_eq!(names, all);
                assert!(names.len() >= 3);
            } else {
                assert_eq!(names, [tenant.clone()].into(), "{login} sees {names:?}");
            }
            // Only security admins create tenants.
            let r = api
                .post(
                    &tok,
                    "/api/v1/tenants",
                    json!({"name": format!("new-{name}")}),
                )
                .await;
            let want = if tenant == "provider" && role == "security-admin" {
                201
            } else {
                403
            };
            assert_eq!(r.status, want, "{login} POST /tenants: {}", r.text);

            for target in ["provider", "acme", "globex"] {
                // Address the target by name and by id: same answer.
                for key in [target.to_string(), ids[target].clone()] {
                    let check = |endpoint: &str, r: &Reply, ok: u16| {
                        let want = expected(tenant, role, target, endpoint);
                        let want = if want == 200 { ok } else { want };
                        assert_eq!(r.status, want, "{login} {endpoint} on {target}: {}", r.text);
                        if r.status >= 400 {
                            assert_eq!(r.content_type, "application/problem+json");
                        }
                        // Nothing of a tenant the caller may not see leaks into any answer.
                        if tenant != "provider" {
                            for other in ["acme", "globex"] {
                                if other != tenant {
                                    assert!(
                                        !r.text.contains(&ids[other]),
                                        "{login} {endpoint} leaked {other}"
                                    );
                                    assert!(
                                        !r.text.contains(&format!("@{other}")),
                                        "{login} {endpoint} leaked {other}"
                                    );
                                }
                            }
                        }
                    };
                    let r = api.get(&tok, &format!("/api/v1/tenants/{key}")).await;
                    check("tenant.get", &r, 200);
                    let r = api.get(&tok, &format!("/api/v1/tenants/{key}/users")).await;
                    check("users.list", &r, 200);
                    if r.status == 200 {
                        for u in r.body["items"].as_array().unwrap() {
                            assert_eq!(u["tenant"], target);
                            assert!(u.get("password_hash").is_none());
                        }
                    }
                    let r = api.get(&tok, &format!("/api/v1/tenants/{key}/audit")).await;
                    check("audit.list", &r, 200);
                    if r.status == 200 && target != "provider" {
                        for rec in r.body["items"].as_array().unwrap() {
                            assert_eq!(rec["tenant"], ids[target].as_str(), "foreign audit record");
                        }
                    }
                    let role_for = if target == "provider" {
                        "operator"
                    } else {
                        "tenant-member"
                    };
                    let new_user = format!("n{checked}");
                    let r = api
                        .post(
                            &tok,
                            &format!("/api/v1/tenants/{key}/users"),
                            json!({"username": new_user, "password": PW, "role": role_for}),
                        )
                        .await;
                    check("users.create", &r, 201);
                    if target != "provider" {
                        let r = api
                            .post(
                                &tok,
                                &format!("/api/v1/tenants/{key}/users/victim/disable"),
                                json!({}),
                            )
                            .await;
                        check("users.disable", &r, 200);
                        if r.status == 200 {
                            let r = api
                                .post(
                                    &admin,
                                    &format!("/api/v1/tenants/{target}/users/victim/enable"),
                                    json!({}),
                                )
                                .await;
                            assert_eq!(r.status, 200, "{}", r.text);
                        }
                        let r = api
                            .post(&tok, &format!("/api/v1/tenants/{key}/suspend"), json!({}))
                            .await;
                        check("tenant.suspend", &r, 200);
                        if r.status == 200 {
                            let r = api
                                .post(
                                    &admin,
                                    &format!("/api/v1/tenants/{target}/activate"),
                                    json!({}),
                                )
                                .await;
                            assert_eq!(r.status, 200, "{}", r.text);
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, people.len() * 6);
        // The provider tenant itself can never be suspended.
        let r = api
            .post(&admin, "/api/v1/tenants/provider/suspend", json!({}))
            .await;
        problem(&r, 403);
    });
}

fn bad_input_gets_problem_json(backend: Backend) {
    let srv = common::start(backend);
    rt().block_on(async {
        let api = Api::new(&srv);
        let admin = api.admin().await;
        let url = |p: &str| format!("{}{p}", api.base);
        // Malformed JSON, unknown fields, wrong types, wrong content type, oversized body.
        let raw = |body: &'static str| {
            api.http
                .post(url("/api/v1/tenants"))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(body)
        };
        problem(&api.send(raw("{\"name\":")).await, 400);
        problem(&api.send(raw("{\"name\":\"x\",\"extra\":1}")).await, 422);
        problem(&api.send(raw("{\"name\":42}")).await, 422);
        problem(&api.send(raw("[]")).await, 422);
        problem(
            &api.send(
                api.http
                    .post(url("/api/v1/tenants"))
                    .bearer_auth(&admin)
                    .body("name=x"),
            )
            .await,
            415,
        );
        let big = format!("{{\"name\":\"{}\"}}", "a".repeat(70_000));
        problem(
            &api.send(
                api.http
                    .post(url("/api/v1/tenants"))
                    .bearer_auth(&admin)
                    .header("content-type", "application/json")
                    .body(big),
            )
            .await,
            413,
        );
        // Invalid names and roles, weak passwords, duplicates.
        for name in ["Upper", "-lead", "trail-", "sp ace", "", "a/b", "ünï"] {
            problem(
                &api.post(&admin, "/api/v1/tenants", json!({"name": name}))
                    .await,
                422,
            );
        }
        problem(
            &api.post(&admin, "/api/v1/tenants", json!({"name": "x".repeat(64)}))
                .await,
            422,
        );
        api.create_tenant(&admin, "acme").await;
        problem(
            &api.post(&admin, "/api/v1/tenants", json!({"name": "acme"}))
                .await,
            409,
        );
        problem(
            &api.post(
                &admin,
                "/api/v1/tenants/acme/users",
                json!({"username": "u", "password": PW, "role": "root"}),
            )
            .await,
            422,
        );
        problem(
            &api.post(
                &admin,
                "/api/v1/tenants/acme/users",
                json!({"username": "u", "password": PW, "role": "security-admin"}),
            )
            .await,
            422,
        );
        problem(
            &api.post(
                &admin,
                "/api/v1/tenants/acme/users",
                json!({"username": "u", "password": "short", "role": "tenant-member"}),
            )
            .await,
            422,
        );
        problem(
            &api.post(
                &admin,
                "/api/v1/tenants/acme/users",
                json!({"username": "bad name", "password": PW, "role": "tenant-member"}),
            )
            .await,
            422,
        );
        api.create_user(&admin, "acme", "Alice", "tenant-member")
            .await;
        // User names are unique regardless of case.
        problem(
            &api.post(
                &admin,
                "/api/v1/tenants/acme/users",
                json!({"username": "ALICE", "password": PW, "role": "tenant-member"}),
            )
            .await,
            409,
        );
        // Query parameters, unknown endpoints and methods, missing or bad credentials.
        problem(&api.get(&admin, "/api/v1/tenants?limit=abc").await, 400);
        problem(&api.get(&admin, "/api/v1/tenants?bogus=1").await, 400);
        problem(
            &api.get(&admin, "/api/v1/tenants/acme/audit?since=yesterday")
                .await,
            400,
        );
        problem(
            &api.get(&admin, "/api/v1/tenants/acme/audit?cursor=zz")
                .await,
            400,
        );
        problem(&api.get(&admin, "/api/v1/nothing-here").await, 404);
        problem(
            &api.get(&admin, "/api/v1/tenants/no-such-tenant/users")
                .await,
            404,
        );
        problem(
            &api.send(api.http.delete(url("/api/v1/tenants")).bearer_auth(&admin))
                .await,
            405,
        );
        problem(&api.send(api.http.get(url("/api/v1/tenants"))).await, 401);
        problem(
            &api.get("ppt_not-a-real-token", "/api/v1/tenants").await,
            401,
        );
        problem(&api.get(&"x".repeat(5000), "/api/v1/tenants").await, 401);
        problem(
            &api.send(
                api.http
                    .get(url("/api/v1/tenants"))
                    .header("authorization", "Basic YTpi"),
            )
            .await,
            401,
        );
        // Absurd log-in input is just a failed log-in.
        problem(&api.try_login(&"a".repeat(10_000), "x").await, 401);
        // The server is still healthy and wrote nothing partial: exactly one customer tenant.
        let r = api.get(&admin, "/api/v1/tenants").await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    });
}

fn disabled_users_and_suspended_tenants_lose_access(backend: Backend) {
    let srv = common::start(backend);
    rt().block_on(async {
        let api = Api::new(&srv);
        let admin = api.admin().await;
        api.create_tenant(&admin, "acme").await;
        for u in ["alice", "bob"] {
            let r = api
                .post(
                    &admin,
                    "/api/v1/tenants/acme/users",
                    json!({"username": u, "password": PW, "role": "tenant-admin"}),
                )
                .await;
            assert_eq!(r.status, 201);
        }
        let alice = api.login("alice@acme", PW).await;
        let bob = api.login("bob@acme", PW).await;
        let r = api
            .post(&bob, "/api/v1/tokens", json!({"name": "ci"}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let bob_api_token = r.body["token"].as_str().unwrap().to_string();
        assert!(bob_api_token.starts_with("ppt_"));
        assert_eq!(
            api.get(&bob_api_token, "/api/v1/auth/whoami").await.status,
            200
        );
        // Nobody disables themselves.
        problem(
            &api.post(
                &alice,
                "/api/v1/tenants/acme/users/alice/disable",
                json!({}),
            )
            .await,
            422,
        );
        // Disabling bob revokes his session and his token at once, and he cannot log in.
        let r = api
            .post(&alice, "/api/v1/tenants/acme/users/bob/disable", json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "disabled");
        problem(&api.get(&bob, "/api/v1/auth/whoami").await, 401);
        problem(&api.get(&bob_api_token, "/api/v1/auth/whoami").await, 401);
        let r = api.try_login("bob@acme", PW).await;
        problem(&r, 401);
        let r = api
            .post(&alice, "/api/v1/tenants/acme/users/bob/enable", json!({}))
            .await;
        assert_eq!(r.status, 200);
        let _ = api.login("bob@acme", PW).await;
        // Suspending the tenant locks out all of its users until it is reactivated.
        let r = api
            .post(&admin, "/api/v1/tenants/acme/suspend", json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "suspended");
        problem(&api.get(&alice, "/api/v1/auth/whoami").await, 401);
        let r = api.try_login("alice@acme", PW).await;
        problem(&r, 401);
        assert_eq!(
            api.post(&admin, "/api/v1/tenants/acme/activate", json!({}))
                .await
                .status,
            200
        );
        assert_eq!(api.get(&alice, "/api/v1/auth/whoami").await.status, 200);
        let reasons: Vec<String> = audit(&api, &admin, "acme", "auth.login")
            .await
            .iter()
            .filter(|r| r["outcome"] == "failure")
            .map(|r| r["details"]["reason"].as_str().unwrap().to_string())
            .collect();
        assert!(
            reasons.contains(&"user disabled".to_string()),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&"tenant suspended".to_string()),
            "{reasons:?}"
        );
    });
}

fn token_scopes_limit_what_a_token_can_do(backend: Backend) {
    let srv = common::start(backend);
    rt().block_on(async {
        let api = Api::new(&srv);
        let admin = api.admin().await;
        let r = api
            .post(
                &admin,
                "/api/v1/tokens",
                json!({"name": "reader", "scopes": ["read"], "expires_in_secs": 3600}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["scopes"], json!(["read"]));
        let reader = r.body["token"].as_str().unwrap().to_string();
        assert_eq!(api.get(&reader, "/api/v1/tenants").await.status, 200);
        problem(
            &api.post(&reader, "/api/v1/tenants", json!({"name": "nope"}))
                .await,
            403,
        );
        // A token cannot mint a token with more than it has, nor any token without 'write'.
        problem(
            &api.post(
                &reader,
                "/api/v1/tokens",
                json!({"name": "x", "scopes": ["write"]}),
            )
            .await,
            403,
        );
        problem(
            &api.post(
                &admin,
                "/api/v1/tokens",
                json!({"name": "x", "scopes": ["admin"]}),
            )
            .await,
            422,
        );
        problem(
            &api.post(
                &admin,
                "/api/v1/tokens",
                json!({"name": "x", "expires_in_secs": 5}),
            )
            .await,
            422,
        );
        problem(
            &api.post(&admin, "/api/v1/tokens", json!({"name": ""}))
                .await,
            422,
        );
        // The caller lists its own credentials (never the secrets) and revokes one.
        let list = api.get(&admin, "/api/v1/tokens").await;
        assert_eq!(list.status, 200, "{}", list.text);
        let items = list.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(!list.text.contains(&reader) && !list.text.contains("pps_"));
        assert_eq!(items.iter().filter(|c| c["current"] == true).count(), 1);
        let reader_id = items.iter().find(|c| c["name"] == "reader").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        // A read-only token cannot revoke; another user cannot revoke it at all.
        problem(
            &api.send(
                api.http
                    .delete(format!("{}/api/v1/tokens/{reader_id}", api.base))
                    .bearer_auth(&reader),
            )
            .await,
            403,
        );
        api.create_tenant(&admin, "other").await;
        api.create_user(&admin, "other", "olga", "tenant-admin")
            .await;
        let olga = api.login("olga@other", PW).await;
        problem(
            &api.send(
                api.http
                    .delete(format!("{}/api/v1/tokens/{reader_id}", api.base))
                    .bearer_auth(&olga),
            )
            .await,
            404,
        );
        problem(
            &api.send(
                api.http
                    .delete(format!("{}/api/v1/tokens/not-an-id", api.base))
                    .bearer_auth(&admin),
            )
            .await,
            404,
        );
        let r = api
            .send(
                api.http
                    .delete(format!("{}/api/v1/tokens/{reader_id}", api.base))
                    .bearer_auth(&admin),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        problem(&api.get(&reader, "/api/v1/tenants").await, 401);
        // The secret is stored hashed: the audit trail and listings never show it.
        let all = api
            .get(&admin, "/api/v1/tenants/provider/audit?limit=1000")
            .await;
        assert!(!all.text.contains(&reader));
        assert!(all.text.contains("token.create"));
    });
}

fn pagination_follows_cursors(backend: Backend) {
    let srv = common::start(backend);
    rt().block_on(async {
        let api = Api::new(&srv);
        let admin = api.admin().await;
        for i in 0..7 {
            assert_eq!(
                api.post(&admin, "/api/v1/tenants", json!({"name": format!("t{i}")}))
                    .await
                    .status,
                201
            );
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/tenants?limit=3&cursor={c}"),
                None => "/api/v1/tenants?limit=3".to_string(),
            };
            let r = api.get(&admin, &path).await;
            assert_eq!(r.status, 200, "{}", r.text);
            let items = r.body["items"].as_array().unwrap();
            assert!(items.len() <= 3);
            seen.extend(
                items
                    .iter()
                    .map(|t| t["name"].as_str().unwrap().to_string()),
            );
            pages += 1;
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let set: BTreeSet<_> = seen.iter().cloned().collect();
        assert_eq!(set.len(), 8, "{seen:?}");
        // Audit pages go newest first without overlap.
        let first = api
            .get(&admin, "/api/v1/tenants/provider/audit?limit=4")
            .await;
        let c = first.body["next_cursor"].as_str().unwrap();
        let second = api
            .get(
                &admin,
                &format!("/api/v1/tenants/provider/audit?limit=4&cursor={c}"),
            )
            .await;
        let a: Vec<i64> = first.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        let b: Vec<i64> = second.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert!(
            a.windows(2).all(|w| w[0] > w[1]) && a.last() > b.first(),
            "{a:?} {b:?}"
        );
    });
}

fn every_state_change_is_audited(backend: Backend) {
    let srv = common::start(backend);
    rt().block_on(async {
        let api = Api::new(&srv);
        let admin = api.admin().await;
        api.create_tenant(&admin, "acme").await;
        api.create_user(&admin, "acme", "alice", "tenant-admin")
            .await;
        assert_eq!(
            api.post(
                &admin,
                "/api/v1/tenants/acme/users/alice/disable",
                json!({})
            )
            .await
            .status,
            200
        );
        assert_eq!(
            api.post(&admin, "/api/v1/tenants/acme/users/alice/enable", json!({}))
                .await
                .status,
            200
        );
        assert_eq!(
            api.post(&admin, "/api/v1/tenants/acme/suspend", json!({}))
                .await
                .status,
            200
        );
        assert_eq!(
            api.post(&admin, "/api/v1/tenants/acme/activate", json!({}))
                .await
                .status,
            200
        );
        assert_eq!(
            api.post(&admin, "/api/v1/tokens", json!({"name": "t"}))
                .await
                .status,
            201
        );
        let alice = api.login("alice@acme", PW).await;
        problem(
            &api.post(&alice, "/api/v1/tenants", json!({"name": "evil"}))
                .await,
            403,
        );
        assert_eq!(
            api.post(&alice, "/api/v1/auth/logout", json!({}))
                .await
                .status,
            204
        );
        // A failed change writes no record of success.
        problem(
            &api.post(&admin, "/api/v1/tenants", json!({"name": "acme"}))
                .await,
            409,
        );

        let all = api
            .get(&admin, "/api/v1/tenants/provider/audit?limit=1000")
            .await;
        let items = all.body["items"].as_array().unwrap();
        let actions: Vec<(String, String)> = items
            .iter()
            .rev()
            .map(|r| {
                (
                    r["action"].as_str().unwrap().to_string(),
                    r["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want = [
            ("system.bootstrap", "success"),
            ("auth.login", "success"),
            ("tenant.create", "success"),
            ("user.create", "success"),
            ("user.disable", "success"),
            ("user.enable", "success"),
            ("tenant.suspend", "success"),
            ("tenant.activate", "success"),
            ("token.create", "success"),
            ("auth.login", "success"),
            ("authz.tenantcreate", "denied"),
            ("auth.logout", "success"),
        ];
        let got: Vec<(&str, &str)> = actions
            .iter()
            .map(|(a, o)| (a.as_str(), o.as_str()))
            .collect();
        assert_eq!(got, want);
        for r in items {
            assert!(r["time"].as_i64().unwrap() > 1_700_000_000_000);
            assert!(!r["target"].as_str().unwrap().is_empty());
            if r["action"] != "system.bootstrap" {
                assert_eq!(r["source_ip"], "127.0.0.1", "{r}");
            }
        }
        // The tenant sees its own records only, the provider's bootstrap not among them.
        let r = api.login("alice@acme", PW).await;
        let mine = api.get(&r, "/api/v1/tenants/acme/audit?limit=1000").await;
        let acts: Vec<&str> = mine.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        assert!(
            !acts.contains(&"system.bootstrap") && !acts.contains(&"token.create"),
            "{acts:?}"
        );
        assert!(acts.contains(&"user.disable"));
    });
}

fn restart_keeps_data_and_does_not_bootstrap_twice(backend: Backend) {
    let database = common::fresh_database(backend);
    let first = common::start_on(backend, &database, &[], &[]);
    rt().block_on(async {
        let api = Api::new(&first);
        let admin = api.admin().await;
        api.create_tenant(&admin, "acme").await;
    });
    assert!(
        first
            .stdout
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("First start"))
    );
    drop(first);
    // The second start finds the provider and creates no second administrator; on PostgreSQL two
    // replicas start at once on the same database.
    let mut servers = vec![common::start_on(
        backend,
        &database,
        &[],
        &[("PARAPET_BOOTSTRAP_PASSWORD", "another-password-123")],
    )];
    if backend == Backend::Postgres {
        servers.push(common::start_on(backend, &database, &[], &[]));
    }
    for srv in &servers {
        assert!(
            !srv.stdout
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("First start"))
        );
        rt().block_on(async {
            let api = Api::new(srv);
            let admin = api.admin().await;
            let r = api.get(&admin, "/api/v1/tenants").await;
            let names: Vec<&str> = r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            assert_eq!(names.len(), 2, "{names:?}");
            assert!(names.contains(&"acme"));
        });
    }
}

fn console_forms_need_csrf_and_cookies_are_strict(backend: Backend) {
    let srv = common::start(backend);
    rt().block_on(async {
        let api = Api::new(&srv);
        let url = |p: &str| format!("{}{p}", api.base);
        let page = api.http.get(url("/console/login")).send().await.unwrap();
        let csrf_cookie = page
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));
        let token = csrf_cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_string();
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("value=\"{token}\"")));
        // Without the cookie, or with a different field, the form is refused.
        let r = api
            .http
            .post(url("/console/login"))
            .form(&[
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf", token.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let r = api
            .http
            .post(url("/console/login"))
            .header("cookie", format!("parapet_csrf={token}"))
            .form(&[
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf", "x".repeat(43).as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // From another origin, even with a matching token, it is refused.
        let r = api
            .http
            .post(url("/console/login"))
            .header("cookie", format!("parapet_csrf={token}"))
            .header("origin", "https://evil.example")
            .form(&[
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf", token.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // A browser's cross-site post is refused whatever else it carries.
        let post = |extra: &[(&'static str, &'static str)]| {
            let mut rb = api
                .http
                .post(url("/console/login"))
                .header("cookie", format!("parapet_csrf={token}"));
            for (k, v) in extra {
                rb = rb.header(*k, *v);
            }
            rb.form(&[
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf", token.as_str()),
            ])
            .send()
        };
        assert_eq!(
            post(&[("sec-fetch-site", "cross-site")])
                .await
                .unwrap()
                .status(),
            403
        );
        assert_eq!(post(&[("origin", "null")]).await.unwrap().status(), 403);
        // What Chromium sends for our own form: `Sec-Fetch-Site: same-origin`, with
        // `Origin: null` under strict referrer policies.
        let r = post(&[("origin", "null"), ("sec-fetch-site", "same-origin")])
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["referrer-policy"], "same-origin");
        let r = post(&[]).await.unwrap();
        assert_eq!(r.status(), 303);
        let session = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(session.starts_with("parapet_session=pps_"));
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(session.contains(attr), "{session}");
        }
        assert!(
            !session.contains("Secure"),
            "no Secure cookie on plain HTTP"
        );
        let sess = session.split(';').next().unwrap().to_string();
        let cookies = format!("{sess}; parapet_csrf={token}");
        // The console renders for the session; a tenant is created through its form.
        let r = api
            .http
            .get(url("/console/tenants"))
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains("id=\"tenant-create-form\""));
        let r = api
            .http
            .post(url("/console/tenants"))
            .header("cookie", &cookies)
            .form(&[("name", "from-console"), ("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let r = api
            .http
            .post(url("/console/tenants"))
            .header("cookie", &cookies)
            .form(&[("name", "no-token")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let html = api
            .http
            .get(url("/console/tenants"))
            .header("cookie", &cookies)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("from-console") && !html.contains("no-token"));
        // An invalid name is reported on the page, escaped.
        let r = api
            .http
            .post(url("/console/tenants"))
            .header("cookie", &cookies)
            .form(&[("name", "<script>"), ("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("&#60;script&#62;") && !html.contains("<script>"),
            "{html}"
        );
        // A cookie-authenticated API write from another origin is refused; a bearer one is not.
        let r = api
            .http
            .post(url("/api/v1/tenants"))
            .header("cookie", &sess)
            .header("origin", "https://evil.example")
            .json(&json!({"name": "csrf-api"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // Pages without a session send the browser to the log-in page.
        let r = api.http.get(url("/console/tenants")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/console/login");
    });
}

fn health_metrics_and_openapi(backend: Backend) {
    let srv = common::start(backend);
    rt().block_on(async {
        let api = Api::new(&srv);
        let r = api.send(api.http.get(format!("{}/healthz", api.base))).await;
        assert_eq!(r.status, 200);
        let r = api.send(api.http.get(format!("{}/readyz", api.base))).await;
        assert_eq!(r.status, 200);
        let want = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
        assert_eq!(r.body["database"], want);
        let admin = api.admin().await;
        let _ = api.get(&admin, "/api/v1/tenants").await;
        let m = api.send(api.http.get(format!("{}/metrics", api.base))).await;
        assert!(m.text.contains("parapet_http_requests_total{method=\"GET\",route=\"/api/v1/tenants\",status=\"200\"}"), "{}", m.text);
        assert!(m.text.contains("parapet_http_request_duration_seconds_bucket"));
        let doc = api.send(api.http.get(format!("{}/api/v1/openapi.json", api.base))).await;
        assert_eq!(doc.body["openapi"].as_str().unwrap().chars().next(), Some('3'));
        for p in ["/api/v1/auth/login", "/api/v1/tenants", "/api/v1/tenants/{tenant}/users", "/api/v1/tokens"] {
            assert!(doc.body["paths"].get(p).is_some(), "missing {p}");
        }
        // Security headers everywhere.
        let res = api.http.get(format!("{}/console/login", api.base)).send().await.unwrap();
        let h = res.headers();
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.get("strict-transport-security").is_none(), "no HSTS without TLS");
    });
}
