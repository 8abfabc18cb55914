//! Groups per tenant (X.1642 8.1.2(2)) through the API and the CLI on both backends: members
//! hold the group's roles besides their own (effective roles decided in `authorize`), adding and
//! removing members grants and revokes at once (audited with the roles), nobody puts into a
//! group a role it cannot grant, and another tenant sees and changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::process::Command;

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, bin, start};
use reqwest::Method as M;
use serde_json::{Value, json};

on_both!(
    groups_grant_roles_to_their_members,
    sub_accounts_are_bounded_by_their_main_account
);

const PW: &str = "Group-test-pass-0123";

fn cli(url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = common::run_cli(url, token, args, b"");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn delete(api: &Api, path: &str, token: &str) -> (u16, Value) {
    let (s, _, v) = api.req(M::DELETE, path, token, &[], None).await;
    (s, v)
}

fn groups_grant_roles_to_their_members(backend: Backend) {
    let srv = start(backend);
    let url = srv.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api {
            base: url.clone(),
            http: reqwest::Client::new(),
        };
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let (s, _) = api
            .post(
                "/api/v1/tenants/provider/users",
                &admin,
                json!({"username": "olivia", "password": PW, "role": "operator"}),
            )
            .await;
        assert_eq!(s, 201);
        for t in ["acme", "globex"] {
            let (s, v) = api
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201, "{v}");
            for (u, r) in [("boss", "tenant-admin"), ("bob", "tenant-member")] {
                let (s, v) = api
                    .post(
                        &format!("/api/v1/tenants/{t}/users"),
                        &admin,
                        json!({"username": u, "password": PW, "role": r}),
                    )
                    .await;
                assert_eq!(s, 201, "{v}");
            }
        }
        let boss = api.login("boss@acme", PW).await;
        let bob = api.login("bob@acme", PW).await;
        let other = api.login("boss@globex", PW).await;
        let olivia = api.login("olivia", PW).await;

        // A member may not read the audit trail; an auditors group will let him.
        assert_eq!(api.get("/api/v1/tenants/acme/audit", &bob).await.0, 403);
        let (s, g) = api
            .post(
                "/api/v1/tenants/acme/groups",
                &boss,
                json!({"name": "auditors", "roles": ["tenant-auditor"]}),
            )
            .await;
        assert_eq!(s, 201, "{g}");
        assert_eq!(g["roles"], json!(["tenant-auditor"]));
        let (s, _) = api
            .post(
                "/api/v1/tenants/acme/groups",
                &boss,
                json!({"name": "Auditors", "roles": ["tenant-member"]}),
            )
            .await;
        assert_eq!(s, 409, "names are unique regardless of case");
        // Never a role the tenant cannot hold, never a role the caller cannot grant.
        let (s, _) = api
            .post(
                "/api/v1/tenants/acme/groups",
                &boss,
                json!({"name": "root", "roles": ["security-admin"]}),
            )
            .await;
        assert_eq!(s, 422);
        let (s, v) = api
            .post(
                "/api/v1/tenants/provider/groups",
                &olivia,
                json!({"name": "admins", "roles": ["security-admin"]}),
            )
            .await;
        assert_eq!(s, 403, "an operator cannot hand out security-admin: {v}");
        let (s, _) = api
            .post(
                "/api/v1/tenants/acme/groups",
                &bob,
                json!({"name": "mine", "roles": ["tenant-admin"]}),
            )
            .await;
        assert_eq!(s, 403);

        // Joining grants at once (this replica forgets the cached principal), audited.
        let (s, g) = api
            .post(
                "/api/v1/tenants/acme/groups/auditors/members",
                &boss,
                json!({"username": "bob"}),
            )
            .await;
        assert_eq!(s, 200, "{g}");
        assert_eq!(g["members"], json!(["bob"]));
        let (s, trail) = api
            .get("/api/v1/tenants/acme/audit?action=group.member.add", &bob)
            .await;
        assert_eq!(s, 200, "bob reads the trail through his group: {trail}");
        let rec = &trail["items"][0];
        assert_eq!(rec["target"], "user:acme/bob");
        assert_eq!(rec["details"]["granted"], json!(["tenant-auditor"]));
        assert_eq!(rec["actor"]["username"], "boss", "{rec}");
        // Still not an administrator: the group gives only its roles.
        assert_eq!(
            api.post(
                "/api/v1/tenants/acme/groups",
                &bob,
                json!({"name": "x", "roles": ["tenant-member"]})
            )
            .await
            .0,
            403
        );
        let (s, _) = api
            .post(
                "/api/v1/tenants/acme/groups/auditors/members",
                &boss,
                json!({"username": "bob"}),
            )
            .await;
        assert_eq!(s, 409);

        // Tenant isolation: another tenant's administrator sees and changes nothing.
        let (s, _) = api.get("/api/v1/tenants/acme/groups", &other).await;
        assert!(s == 403 || s == 404, "{s}");
        let (s, _) = api
            .post(
                "/api/v1/tenants/acme/groups/auditors/members",
                &other,
                json!({"username": "bob"}),
            )
            .await;
        assert!(s == 403 || s == 404, "{s}");
        let (s, _) = delete(&api, "/api/v1/tenants/acme/groups/auditors", &other).await;
        assert!(s == 403 || s == 404, "{s}");
        let (s, _) = api
            .post(
                "/api/v1/tenants/globex/groups/auditors/members",
                &other,
                json!({"username": "bob"}),
            )
            .await;
        assert_eq!(s, 404, "globex has no such group");
        assert_eq!(
            api.get(
                "/api/v1/tenants/globex/audit",
                &api.login("bob@globex", PW).await
            )
            .await
            .0,
            403,
            "acme's group gives nothing in globex"
        );

        // The CLI: list (JSON), remove the member (revoked at once), remove the group.
        let (ok, out, err) = cli(
            &url,
            &boss,
            &["group", "list", "--tenant", "acme", "--json"],
        );
        assert!(ok, "{err}");
        let list: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list[0]["name"], "auditors");
        assert_eq!(list[0]["members"], json!(["bob"]));
        let (ok, _, err) = cli(
            &url,
            &boss,
            &["group", "remove", "--tenant", "acme", "auditors", "bob"],
        );
        assert!(ok, "{err}");
        assert_eq!(api.get("/api/v1/tenants/acme/audit", &bob).await.0, 403);
        let (ok, out, err) = cli(
            &url,
            &boss,
            &[
                "group",
                "create",
                "--tenant",
                "acme",
                "ops",
                "--role",
                "tenant-member",
                "--role",
                "tenant-auditor",
            ],
        );
        assert!(ok, "{err}");
        assert!(out.contains("ops"), "{out}");
        let (ok, _, err) = cli(
            &url,
            &boss,
            &["group", "add", "--tenant", "acme", "ops", "bob"],
        );
        assert!(ok, "{err}");
        assert_eq!(api.get("/api/v1/tenants/acme/audit", &bob).await.0, 200);
        let (ok, _, err) = cli(&url, &boss, &["group", "rm", "--tenant", "acme", "ops"]);
        assert!(ok, "{err}");
        assert_eq!(
            api.get("/api/v1/tenants/acme/audit", &bob).await.0,
            403,
            "the group's removal revokes"
        );
        let (ok, _, err) = cli(&url, &boss, &["group", "rm", "--tenant", "acme", "ops"]);
        assert!(!ok && err.contains("no group"), "{err}");
        let (ok, _, err) = cli(&url, &other, &["group", "list", "--tenant", "acme"]);
        assert!(!ok && !err.is_empty(), "{err}");
        // The console lists groups and creates one (CSRF-checked form).
        let html = api
            .http
            .get(format!("{url}/console/groups"))
            .header("cookie", format!("parapet_session={boss}"))
            .send()
            .await
            .unwrap();
        assert_eq!(html.status(), 200);
        let html = html.text().await.unwrap();
        assert!(
            html.contains("auditors") && html.contains("group-create"),
            "{html}"
        );
        let res = api
            .http
            .post(format!("{url}/console/groups"))
            .header(
                "cookie",
                format!("parapet_session={boss}; parapet_csrf=tok123"),
            )
            .header("origin", &url)
            .form(&[
                ("csrf", "tok123"),
                ("name", "viewers"),
                ("role", "tenant-auditor"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("Created group viewers"));
        let (s, list) = api.get("/api/v1/tenants/acme/groups", &boss).await;
        assert_eq!(s, 200);
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "viewers" && g["roles"] == json!(["tenant-auditor"])),
            "{list}"
        );
        let res = api
            .http
            .post(format!("{url}/console/groups"))
            .header(
                "cookie",
                format!("parapet_session={bob}; parapet_csrf=tok123"),
            )
            .header("origin", &url)
            .form(&[
                ("csrf", "tok123"),
                ("name", "mine"),
                ("role", "tenant-admin"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            403,
            "a member cannot create groups in the console either"
        );

        let (s, removed) = api
            .get(
                "/api/v1/tenants/acme/audit?action=group.member.remove",
                &boss,
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(
            removed["items"][0]["details"]["revoked"],
            json!(["tenant-auditor"])
        );
    });
}

fn sub_accounts_are_bounded_by_their_main_account(backend: Backend) {
    let srv = start(backend);
    let url = srv.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api {
            base: url.clone(),
            http: reqwest::Client::new(),
        };
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let (s, _) = api
            .post("/api/v1/tenants", &admin, json!({"name": "acme"}))
            .await;
        assert_eq!(s, 201);
        for (u, r) in [("boss", "tenant-admin"), ("bob", "tenant-member")] {
            let (s, v) = api
                .post(
                    "/api/v1/tenants/acme/users",
                    &admin,
                    json!({"username": u, "password": PW, "role": r}),
                )
                .await;
            assert_eq!(s, 201, "{v}");
        }
        let boss = api.login("boss@acme", PW).await;
        let bob = api.login("bob@acme", PW).await;

        // A member's sub-account may be a member, never more (nor an auditor: bob cannot read
        // the audit trail himself).
        let (s, v) = api
            .post(
                "/api/v1/me/sub-accounts",
                &bob,
                json!({"username": "bob-ci", "password": PW, "role": "tenant-member"}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["login"], "bob-ci@acme");
        for role in ["tenant-admin", "tenant-auditor"] {
            let (s, v) = api
                .post(
                    "/api/v1/me/sub-accounts",
                    &bob,
                    json!({"username": "bob-x", "password": PW, "role": role}),
                )
                .await;
            assert_eq!(s, 403, "{role}: {v}");
        }
        let (s, list) = api.get("/api/v1/me/sub-accounts", &bob).await;
        assert_eq!(s, 200);
        assert_eq!(list.as_array().unwrap().len(), 1);
        let (s, trail) = api
            .get(
                "/api/v1/tenants/acme/audit?action=user.sub-account.create",
                &boss,
            )
            .await;
        assert_eq!(s, 200);
        let items = trail["items"].as_array().unwrap();
        let created = items
            .iter()
            .find(|r| r["outcome"] == "success")
            .expect("the creation is audited");
        assert_eq!(created["details"]["parent"], "bob");
        assert_eq!(created["target"], "user:acme/bob-ci");
        assert_eq!(
            items.iter().filter(|r| r["outcome"] == "denied").count(),
            2,
            "the refused attempts are audited too"
        );

        // The sub-account works, cannot make its own sub-accounts, and its role stays bounded on
        // later changes too.
        let ci = api.login("bob-ci@acme", PW).await;
        let (s, _) = api
            .post(
                "/api/v1/me/sub-accounts",
                &ci,
                json!({"username": "bob-ci-2", "password": PW, "role": "tenant-member"}),
            )
            .await;
        assert_eq!(s, 403);
        let (s, v) = api
            .post(
                "/api/v1/tenants/acme/users/bob-ci/role",
                &boss,
                json!({"role": "tenant-admin"}),
            )
            .await;
        assert_eq!(s, 403, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("sub-account"), "{v}");

        // The CLI: `user create --parent` makes a sub-account of the logged-in account.
        let mut child = Command::new(bin())
            .args([
                "user",
                "create",
                "--tenant",
                "acme",
                "bob-2",
                "--role",
                "tenant-member",
                "--parent",
                "--password-stdin",
                "--json",
            ])
            .env("PARAPET_SERVER", &url)
            .env("PARAPET_TOKEN", &bob)
            .env(
                "PARAPET_CONFIG_DIR",
                parapet_store_sql::testkit::temp_dir("cfg"),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{PW}\n").as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let (s, list) = api.get("/api/v1/me/sub-accounts", &bob).await;
        assert_eq!(s, 200);
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

        // Disabling the main account disables its sub-accounts.
        let (s, v) = api
            .post("/api/v1/tenants/acme/users/bob/disable", &boss, json!({}))
            .await;
        assert_eq!(s, 200, "{v}");
        let res = api
            .http
            .post(format!("{url}/api/v1/auth/login"))
            .json(&json!({"username": "bob-ci@acme", "password": PW}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(api.get("/api/v1/auth/whoami", &ci).await.0, 401);
    });
}
