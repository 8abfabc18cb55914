//! Group membership under approval, on both backends (X.1642 8.1.1(2)): in a tenant whose
//! policy requires approval for privilege changes, adding a member to a group files an approval
//! request (kind `group-member`) instead of granting the group's roles; the requester cannot
//! approve it; another administrator does, and the membership is applied in the deciding
//! transaction; removal needs no approval; another tenant sees nothing.
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
use reqwest::Method as M;
use serde_json::{Value, json};

on_both!(group_members_need_approval_where_the_tenant_requires_it);

const PW: &str = "Wonderland-long-password-42";

fn members(groups: &Value, name: &str) -> Vec<String> {
    groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

fn group_members_need_approval_where_the_tenant_requires_it(backend: Backend) {
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
        for (t, u, role) in [
            ("acme", "boss", "tenant-admin"),
            ("acme", "boss2", "tenant-admin"),
            ("acme", "alice", "tenant-member"),
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
        let boss = api.login("boss@acme", PW).await;
        let boss2 = api.login("boss2@acme", PW).await;
        let gina = api.login("gina@globex", PW).await;
        let (s, b) = api
            .post(
                "/api/v1/tenants/acme/groups",
                &boss,
                json!({"name": "auditors", "roles": ["tenant-auditor"]}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, _, b) = api
            .req(
                M::PUT,
                "/api/v1/tenants/acme/account-policy",
                &boss,
                &[("content-type", "application/json")],
                Some(serde_json::to_vec(&json!({"approval_required": true})).unwrap()),
            )
            .await;
        assert_eq!(s, 200, "{b}");

        // Adding a member files a request; nothing is granted yet.
        let (s, req) = api
            .post(
                "/api/v1/tenants/acme/groups/auditors/members",
                &boss,
                json!({"username": "alice", "reason": "quarterly access review"}),
            )
            .await;
        assert_eq!(s, 202, "{req}");
        assert_eq!(req["kind"], "group-member");
        assert_eq!(req["group"], "auditors");
        assert_eq!(req["username"], "alice");
        assert_eq!(req["status"], "pending");
        let id = req["id"].as_str().unwrap().to_string();
        let (_, groups) = api.get("/api/v1/tenants/acme/groups", &boss).await;
        assert!(members(&groups, "auditors").is_empty(), "{groups}");
        // The CLI files one too (for another user) and says so.
        let o = run_cli(
            &url,
            &boss,
            &[
                "group", "add", "--tenant", "acme", "auditors", "boss2", "--json",
            ],
            b"",
        );
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let filed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(filed["kind"], "group-member", "{out}");

        // No self-approval; another tenant cannot see or decide it.
        let (s, b) = api
            .post(
                &format!("/api/v1/tenants/acme/approvals/{id}/approve"),
                &boss,
                json!({}),
            )
            .await;
        assert_eq!(s, 403, "{b}");
        let (s, _) = api
            .post(
                &format!("/api/v1/tenants/acme/approvals/{id}/approve"),
                &gina,
                json!({}),
            )
            .await;
        assert_eq!(s, 404);
        // Another administrator approves: alice is a member, in the same transaction.
        let (s, b) = api
            .post(
                &format!("/api/v1/tenants/acme/approvals/{id}/approve"),
                &boss2,
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["status"], "approved");
        let (_, groups) = api.get("/api/v1/tenants/acme/groups", &boss).await;
        assert_eq!(members(&groups, "auditors"), vec!["alice".to_string()]);
        let (s, audit) = api
            .get("/api/v1/tenants/acme/audit?action=approval.approve", &boss)
            .await;
        assert_eq!(s, 200);
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["details"]["applied"] == "group.member.add"
                    && r["details"]["group"] == "auditors"),
            "{audit}"
        );
        // Removing a member needs no approval.
        let (s, _, b) = api
            .req(
                M::DELETE,
                "/api/v1/tenants/acme/groups/auditors/members/alice",
                &boss,
                &[],
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["members"], json!([]), "{b}");
    });
}
