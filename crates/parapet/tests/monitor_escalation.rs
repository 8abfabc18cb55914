//! Alert escalation end to end on both backends (issue 6, X.1642 8.6.1): a policy set with the
//! CLI pages the tenant's channels level after level while an alert stays unacknowledged (the
//! pages arrive at a real webhook receiver through the outbox); an acknowledged alert is never
//! paged; another tenant can neither read nor set the policy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::api::Api;
use common::webhook::receiver;
use common::{ADMIN_PASSWORD, Backend, run_cli, start_with};
use serde_json::{Value, json};

on_both!(unacknowledged_alerts_page_level_after_level);

const PW: &str = "escalation-test-password-1";
const RULE: &str = "title: Core switch down\nid: 0e5c0000-0000-4000-8000-0000000000e1\nstatus: test\nlogsource:\n  product: acme\ndetection:\n  selection:\n    message|contains: 'LINK-3-UPDOWN'\n  condition: selection\nlevel: high\n";

fn unacknowledged_alerts_page_level_after_level(backend: Backend) {
    let dir = parapet_store_sql::testkit::temp_dir("escalation");
    let hooks = receiver();
    let config = dir.join("parapet.toml");
    std::fs::write(
        &config,
        "[notify]\nallow_private_webhooks = true\npoll_ms = 50\n",
    )
    .unwrap();
    let srv = start_with(backend, &["--config", config.to_str().unwrap()], &[]);
    let api = Api {
        base: srv.url.clone(),
        http: reqwest::Client::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (alice, gina) = rt.block_on(async {
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        for t in ["acme", "globex"] {
            let (s, b) = api
                .post("/api/v1/tenants", &admin, json!({"name": t}))
                .await;
            assert_eq!(s, 201, "{b}");
        }
        for (t, u) in [("acme", "alice"), ("globex", "gina")] {
            let (s, b) = api
                .post(
                    &format!("/api/v1/tenants/{t}/users"),
                    &admin,
                    json!({"username": u, "password": PW, "role": "tenant-admin"}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        // Channels reached only by escalation (their routes take incidents, not alerts).
        for name in ["oncall", "manager"] {
            let (s, b) = api
                .post(
                    "/api/v1/tenants/acme/notify/channels",
                    &admin,
                    json!({"name": name, "kind": "webhook", "sources": ["incident"],
                        "url": format!("http://127.0.0.1:{}/{name}", hooks.port)}),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
        let alice = api.login("alice@acme", PW).await;
        let gina = api.login("gina@globex", PW).await;
        let (s, _, b) = api
            .req(
                reqwest::Method::POST,
                "/api/v1/tenants/acme/rules?file=switch.yml",
                &alice,
                &[("content-type", "application/yaml")],
                Some(RULE.as_bytes().to_vec()),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        (alice, gina)
    });
    let cli = |tok: &str, args: &[&str]| run_cli(&srv.url, tok, args, b"");
    // Bad input first: one line, a failure exit.
    let o = cli(
        &alice,
        &[
            "alerts",
            "escalation",
            "set",
            "--tenant",
            "acme",
            "--level",
            "soon:oncall",
        ],
    );
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim().lines().count(), 1);
    let o = cli(
        &gina,
        &[
            "alerts",
            "escalation",
            "set",
            "--tenant",
            "acme",
            "--level",
            "3:oncall",
        ],
    );
    assert!(!o.status.success(), "another tenant cannot set it");
    let o = cli(
        &alice,
        &[
            "alerts",
            "escalation",
            "set",
            "--tenant",
            "acme",
            "--level",
            "3:oncall",
            "--level",
            "2:manager",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["levels"][1]["channels"], json!(["manager"]));
    let o = cli(
        &alice,
        &["alerts", "escalation", "show", "--tenant", "acme"],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("level 2: after 2 s -> manager"), "{text}");
    rt.block_on(async {
        assert_eq!(
            api.get("/api/v1/tenants/acme/alert-escalation", &gina).await.0,
            404
        );
        let (s, b) = api
            .req(
                reqwest::Method::PUT,
                "/api/v1/tenants/acme/alert-escalation",
                &alice,
                &[("content-type", "application/json")],
                Some(br#"{"levels": []}"#.to_vec()),
            )
            .await
            .into_pair();
        assert_eq!(s, 422, "{b}");
        // Two alerts (two hosts); one is acknowledged at once.
        let (s, _, r) = api
            .ingest(
                "acme",
                &alice,
                None,
                "{\"host\":\"sw-1\",\"message\":\"%LINK-3-UPDOWN: Interface Gi0/1, changed state to down\"}\n\
                 {\"host\":\"sw-2\",\"message\":\"%LINK-3-UPDOWN: Interface Gi0/2, changed state to down\"}\n",
            )
            .await;
        assert_eq!((s, r["alerts_raised"].clone()), (200, json!(2)), "{r}");
        let (_, list) = api.get("/api/v1/tenants/acme/alerts", &alice).await;
        let id_of = |host: &str| -> String {
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["group_key"] == host)
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (open, acked) = (id_of("sw-1"), id_of("sw-2"));
        let (s, b) = api
            .post(
                &format!("/api/v1/tenants/acme/alerts/{acked}/ack"),
                &alice,
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        // Level 1 (oncall) about 3 s later, then level 2 (manager) about 2 s after that.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = hooks.got.lock().unwrap().clone();
            let manager = got.iter().any(|r| r.target == "/manager");
            if manager {
                let oncall: Vec<_> = got.iter().filter(|r| r.target == "/oncall").collect();
                assert_eq!(oncall.len(), 1, "{got:?}");
                for r in &got {
                    assert!(r.body.contains(&open), "{}", r.body);
                    assert!(!r.body.contains(&acked), "an acknowledged alert is never paged");
                }
                assert!(oncall[0].body.contains("escalation level 1"), "{}", oncall[0].body);
                break;
            }
            assert!(Instant::now() < deadline, "no escalation page: {got:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Each step is in the tenant's audit trail.
        let (_, audit) = api
            .get("/api/v1/tenants/acme/audit?action=alert.escalate", &alice)
            .await;
        assert!(audit.to_string().matches("alert.escalate").count() >= 2, "{audit}");
    });
}

trait IntoPair {
    fn into_pair(self) -> (u16, Value);
}

impl IntoPair for (u16, reqwest::header::HeaderMap, Value) {
    fn into_pair(self) -> (u16, Value) {
        (self.0, self.2)
    }
}
