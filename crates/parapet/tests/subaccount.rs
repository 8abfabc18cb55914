//! Sub-accounts over HTTP and the console, on both backends (X.1642 8.1.1(4)): the main account
//! changes its sub-account's role within its own and disables it; another main account, or
//! another tenant, cannot reach it; when an administrator lowers the main account, the
//! sub-account is lowered in the same change; the console page lists, creates, changes roles
//! and disables (CSRF-checked forms).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, run_cli, start};
use serde_json::{Value, json};

on_both!(sub_accounts_over_the_api_and_console);

const PW: &str = "Wonderland-long-password-42";

fn sub<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name)
        .unwrap_or_else(|| panic!("no sub-account {name} in {list}"))
}

fn sub_accounts_over_the_api_and_console(backend: Backend) {
    let srv = start(backend);
    let url = srv.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api {
            base: url.clone(),
            http: reqwest::Client::new(),
        };
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            let (s, b) = api
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201, "{b}");
        }
        for (t, u) in [("acme", "boss"), ("acme", "carol"), ("globex", "gina")] {
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": u, "password": PW, "role": "tenant-admin"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let boss = api.login("boss@acme", PW).await;
        let carol = api.login("carol@acme", PW).await;
        let gina = api.login("gina@globex", PW).await;
        for (name, role) in [("helper", "tenant-admin"), ("viewer", "tenant-auditor")] {
            let (s, b) = api
                .post(
                    "/api/v1/me/sub-accounts",
                    &boss,
                    json!({"username": name, "password": PW, "role": role}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }

        // The main account changes its sub-account's role; bad input is problem+json.
        let (s, u) = api
            .post(
                "/api/v1/me/sub-accounts/helper/role",
                &boss,
                json!({"role": "tenant-member"}),
            )
            .await;
        assert_eq!(s, 200, "{u}");
        assert_eq!(u["role"], "tenant-member");
        let (s, p) = api
            .post(
                "/api/v1/me/sub-accounts/helper/role",
                &boss,
                json!({"role": "tenant-member", "extra": 1}),
            )
            .await;
        assert_eq!(s, 422, "{p}");
        let (s, p) = api
            .post(
                "/api/v1/me/sub-accounts/helper/role",
                &boss,
                json!({"role": "security-admin"}),
            )
            .await;
        assert!(s == 422 || s == 403, "{s} {p}");
        // Nobody else reaches it: another main account of the tenant, another tenant.
        for who in [&carol, &gina] {
            let (s, _) = api
                .post(
                    "/api/v1/me/sub-accounts/helper/role",
                    who,
                    json!({"role": "tenant-admin"}),
                )
                .await;
            assert_eq!(s, 404);
            let (s, _) = api
                .post("/api/v1/me/sub-accounts/helper/disable", who, json!({}))
                .await;
            assert_eq!(s, 404);
        }
        let (s, _) = api
            .post(
                "/api/v1/me/sub-accounts/helper/role",
                &boss,
                json!({"role": "tenant-admin"}),
            )
            .await;
        assert_eq!(s, 200);

        // The administrator lowers the main account: its sub-account follows.
        let (s, b) = api
            .post(
                "/api/v1/tenants/acme/users/boss/role",
                &admin,
                json!({"role": "tenant-member"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let boss = api.login("boss@acme", PW).await;
        let (s, list) = api.get("/api/v1/me/sub-accounts", &boss).await;
        assert_eq!(s, 200, "{list}");
        let helper = sub(&list, "helper");
        assert_ne!(helper["role"], "tenant-admin", "{list}");
        let (s, audit) = api
            .get("/api/v1/tenants/acme/audit?target=user:acme/helper", &admin)
            .await;
        assert_eq!(s, 200, "{audit}");
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(
                    |r| r["details"]["reason"] == "its main account lost privileges"
                        && r["details"]["parent"] == "boss"
                ),
            "{audit}"
        );

        // The console page lists them, and its forms change a role and disable.
        let html = api
            .http
            .get(format!("{url}/console/sub-accounts"))
            .header("cookie", format!("parapet_session={boss}"))
            .send()
            .await
            .unwrap();
        assert_eq!(html.status(), 200);
        let html = html.text().await.unwrap();
        assert!(
            html.contains("helper")
                && html.contains("viewer")
                && html.contains("sub-account-create"),
            "{html}"
        );
        let form = |path: &str, fields: Vec<(&'static str, String)>| {
            let api = &api;
            let boss = boss.clone();
            let url = url.clone();
            let path = path.to_string();
            async move {
                let mut f = vec![("csrf", "tok123".to_string())];
                f.extend(fields);
                let res = api
                    .http
                    .post(format!("{url}{path}"))
                    .header(
                        "cookie",
                        format!("parapet_session={boss}; parapet_csrf=tok123"),
                    )
                    .header("origin", &url)
                    .form(&f)
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            }
        };
        let (s, page) = form(
            "/console/sub-accounts/viewer/role",
            vec![("role", "tenant-member".into())],
        )
        .await;
        assert_eq!(s, 200, "{page}");
        assert!(page.contains("viewer now has role tenant-member"), "{page}");
        let (s, page) = form(
            "/console/sub-accounts/viewer/role",
            vec![("role", "tenant-admin".into())],
        )
        .await;
        assert_eq!(s, 403, "a lowered main account cannot raise: {page}");
        let (s, page) = form("/console/sub-accounts/viewer/disable", vec![]).await;
        assert_eq!(s, 200, "{page}");
        assert!(page.contains("viewer disabled"), "{page}");
        let (s, page) = form(
            "/console/sub-accounts",
            vec![
                ("username", "robot".into()),
                ("password", PW.into()),
                ("role", "tenant-member".into()),
            ],
        )
        .await;
        assert_eq!(s, 200, "{page}");
        assert!(page.contains("Sub-account robot created"), "{page}");
        let (_, list) = api.get("/api/v1/me/sub-accounts", &boss).await;
        assert_eq!(sub(&list, "viewer")["status"], "disabled");
        assert_eq!(sub(&list, "robot")["role"], "tenant-member");
        // The CLI: list (JSON), change a role, disable; a refusal is one line, non-zero.
        let cli = |args: &[&str]| {
            let o = run_cli(&url, &boss, args, b"");
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        let (ok, out, err) = cli(&["user", "sub-account", "list", "--json"]);
        assert!(ok, "{err}");
        let listed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 3, "{out}");
        let (ok, out, err) = cli(&[
            "user",
            "sub-account",
            "role",
            "robot",
            "tenant-member",
            "--json",
        ]);
        assert!(ok, "{err}");
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["role"],
            "tenant-member"
        );
        // A tenant-member main account holds no audit-reading right to hand on.
        let (ok, _, err) = cli(&["user", "sub-account", "role", "robot", "tenant-auditor"]);
        assert!(!ok && err.trim().lines().count() == 1, "{err}");
        let (ok, _, err) = cli(&["user", "sub-account", "disable", "nobody"]);
        assert!(!ok && !err.is_empty(), "{err}");
        // A forged form (no CSRF cookie) changes nothing.
        let res = api
            .http
            .post(format!("{url}/console/sub-accounts/robot/disable"))
            .header("cookie", format!("parapet_session={boss}"))
            .form(&[("csrf", "tok123")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403);
        let (_, list) = api.get("/api/v1/me/sub-accounts", &boss).await;
        assert_eq!(sub(&list, "robot")["status"], "active");
    });
}
