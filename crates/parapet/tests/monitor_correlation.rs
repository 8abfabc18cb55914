//! Live Sigma correlation during ingestion, on both backends (issue 6, X.1642 8.3): a tenant's
//! correlation rule sees only its own events, the provider's sees every tenant's; the windows are
//! saved with the batches that change them, so a server killed in the middle of a window and
//! started again on the same database still fires once the rest arrives.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use common::api::Api;
use common::{ADMIN_PASSWORD, Backend, start, start_on};
use serde_json::{Value, json};

on_both!(
    correlation_survives_a_restart_in_the_middle_of_a_window,
    provider_correlation_sees_every_tenant_and_tenant_correlation_only_its_own
);

const PW: &str = "correlation-test-pw-1";

/// Six failed SSH passwords from one source address within ten minutes.
const TENANT_RULES: &str = "title: SSH failed password (acme)
id: 0c000000-0000-4000-8000-000000000001
name: acme_ssh_failed
status: test
logsource:
  product: linux
  service: sshd
detection:
  selection:
    message|contains: 'Failed password'
  condition: selection
level: low
---
title: SSH brute force (acme)
id: 0c000000-0000-4000-8000-000000000002
status: test
correlation:
  type: event_count
  rules:
    - acme_ssh_failed
  group-by:
    - src
  timespan: 10m
  condition:
    gte: 6
level: high
";

/// Log-ins of one user name from at least three tenants' hosts within an hour (value_count
/// over the tenant field): only the provider's rules see more than one tenant.
const PROVIDER_RULES: &str = "title: VPN log-in
id: 0c000000-0000-4000-8000-000000000011
name: vpn_login
status: test
logsource:
  product: vpn
detection:
  selection:
    action: vpn-login
  condition: selection
level: informational
---
title: One account logging in to many tenants' VPNs
id: 0c000000-0000-4000-8000-000000000012
status: test
correlation:
  type: value_count
  rules:
    - vpn_login
  group-by:
    - user
  timespan: 1h
  condition:
    field: site
    gte: 3
level: critical
";

fn failures(src: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"host\":\"web-{i}\",\"src\":\"{src}\",\"message\":\"Failed password for root from {src}\"}}\n"
            )
        })
        .collect()
}

async fn alerts(api: &Api, tenant: &str, token: &str, rule: &str) -> Vec<Value> {
    let (s, b) = api
        .get(
            &format!("/api/v1/tenants/{tenant}/alerts?limit=1000&rule={rule}"),
            token,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["items"].as_array().unwrap().clone()
}

async fn upload(api: &Api, tenant: &str, token: &str, file: &str, yaml: &str) {
    let (s, _, b) = api
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/tenants/{tenant}/rules?file={file}"),
            token,
            &[("content-type", "application/yaml")],
            Some(yaml.as_bytes().to_vec()),
        )
        .await;
    assert_eq!(s, 201, "{b}");
}

async fn tenant_with_admin(api: &Api, admin: &str, tenant: &str, user: &str) -> String {
    let (s, b) = api
        .post("/api/v1/tenants", admin, json!({"name": tenant}))
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = api
        .post(
            &format!("/api/v1/tenants/{tenant}/users"),
            admin,
            json!({"username": user, "password": PW, "role": "tenant-admin"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    api.login(&format!("{user}@{tenant}"), PW).await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn correlation_survives_a_restart_in_the_middle_of_a_window(backend: Backend) {
    let mut first = start(backend);
    first.owns_database = false;
    let database = first.database.clone();
    let rt = runtime();
    let api = Api {
        base: first.url.clone(),
        http: reqwest::Client::new(),
    };
    let corr = "0c000000-0000-4000-8000-000000000002";
    rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let alice = tenant_with_admin(&api, &admin, "acme", "alice").await;
        upload(&api, "acme", &alice, "brute.yml", TENANT_RULES).await;
        // Half of the window: three failures from 203.0.113.7, five from another address.
        let (s, _, r) = api
            .ingest(
                "acme",
                &alice,
                None,
                &format!(
                    "{}{}",
                    failures("203.0.113.7", 3),
                    failures("198.51.100.9", 5)
                ),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        assert!(alerts(&api, "acme", &alice, corr).await.is_empty());
    });
    // Killed (SIGKILL: no shutdown hook runs) and started again on the same database.
    drop(first);
    let mut second = start_on(backend, &database, &[], &[]);
    second.owns_database = true;
    let api = Api {
        base: second.url.clone(),
        http: reqwest::Client::new(),
    };
    rt.block_on(async {
        let alice = api.login("alice@acme", PW).await;
        // The same batch replayed under its key feeds no window twice.
        let (s, _, r) = api
            .ingest("acme", &alice, Some("k-1"), &failures("203.0.113.7", 2))
            .await;
        assert_eq!(s, 200, "{r}");
        let (s, _, r) = api
            .ingest("acme", &alice, Some("k-1"), &failures("203.0.113.7", 2))
            .await;
        assert_eq!((s, r["replayed"].clone()), (200, json!(true)), "{r}");
        assert!(
            alerts(&api, "acme", &alice, corr).await.is_empty(),
            "five failures from 203.0.113.7 so far (the replay does not count)"
        );
        let (s, _, r) = api
            .ingest("acme", &alice, None, &failures("203.0.113.7", 1))
            .await;
        assert_eq!(s, 200, "{r}");
        let got = alerts(&api, "acme", &alice, corr).await;
        assert_eq!(
            got.len(),
            1,
            "the sixth failure completes the window: {got:?}"
        );
        assert_eq!(got[0]["group_key"], "src=203.0.113.7");
        assert_eq!(got[0]["severity"], "high");
        assert_eq!(got[0]["title"], "SSH brute force (acme)");
        // The other address (five failures) has not fired.
        let (s, _, r) = api
            .ingest("acme", &alice, None, &failures("192.0.2.1", 1))
            .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(alerts(&api, "acme", &alice, corr).await.len(), 1);
    });
}

fn vpn(user: &str, site: &str) -> String {
    format!("{{\"action\":\"vpn-login\",\"user\":\"{user}\",\"site\":\"{site}\"}}\n")
}

fn provider_correlation_sees_every_tenant_and_tenant_correlation_only_its_own(backend: Backend) {
    let srv = start(backend);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let corr = "0c000000-0000-4000-8000-000000000012";
    let brute = "0c000000-0000-4000-8000-000000000002";
    runtime().block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let alice = tenant_with_admin(&api, &admin, "acme", "alice").await;
        let gina = tenant_with_admin(&api, &admin, "globex", "gina").await;
        upload(&api, "provider", &admin, "vpn.yml", PROVIDER_RULES).await;
        upload(&api, "acme", &alice, "brute.yml", TENANT_RULES).await;
        // A tenant cannot read the provider's correlation rules, nor another tenant's.
        assert_eq!(
            api.get("/api/v1/tenants/provider/rules", &alice).await.0,
            404
        );
        assert_eq!(api.get("/api/v1/tenants/acme/rules", &gina).await.0, 404);

        // bob logs in at two sites from acme and one from globex: three sites in all.
        let (s, _, r) = api
            .ingest(
                "acme",
                &alice,
                None,
                &format!("{}{}", vpn("bob", "paris"), vpn("bob", "oslo")),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        assert!(alerts(&api, "acme", &alice, corr).await.is_empty());
        let (s, _, r) = api.ingest("globex", &gina, None, &vpn("bob", "rome")).await;
        assert_eq!(s, 200, "{r}");
        // Only the correlation: VPN log-ins just feed it (`generate` is false by default).
        assert_eq!(r["alerts_raised"], 1, "{r}");
        assert!(
            alerts(
                &api,
                "globex",
                &gina,
                "0c000000-0000-4000-8000-000000000011"
            )
            .await
            .is_empty()
        );
        let got = alerts(&api, "globex", &gina, corr).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["group_key"], "user=bob");
        assert_eq!(got[0]["severity"], "critical");
        assert_eq!(got[0]["provider_rule"], true);
        // The provider sees it; acme does not (it was raised in globex).
        assert_eq!(alerts(&api, "provider", &admin, corr).await.len(), 1);
        assert!(alerts(&api, "acme", &alice, corr).await.is_empty());

        // acme's own correlation never counts globex's events.
        let (s, _, r) = api
            .ingest("globex", &gina, None, &failures("203.0.113.50", 6))
            .await;
        assert_eq!(s, 200, "{r}");
        assert!(alerts(&api, "globex", &gina, brute).await.is_empty());
        let (s, _, r) = api
            .ingest("acme", &alice, None, &failures("203.0.113.50", 5))
            .await;
        assert_eq!(s, 200, "{r}");
        assert!(alerts(&api, "acme", &alice, brute).await.is_empty());
        let (s, _, r) = api
            .ingest("acme", &alice, None, &failures("203.0.113.50", 1))
            .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(alerts(&api, "acme", &alice, brute).await.len(), 1);
    });
}
