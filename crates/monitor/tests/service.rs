//! The monitoring service over a real store on SQLite and PostgreSQL with an injected clock:
//! retention and idempotency keys expire by moving the clock, never by sleeping; tenants see only
//! their events; the ingestion budget refuses instead of queuing without bound.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use parapet_iam::{IamConfig, IamService, PasswordCost, Principal, RequestMeta};
use parapet_monitor::{Monitor, MonitorConfig, MonitorError, Search};
use parapet_store::{AuditFilter, AuditStore, Page};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Clock, Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    retention_deletes_only_old_events_per_tenant,
    idempotency_keys_expire_and_tenants_are_isolated,
    correlation_windows_follow_the_injected_clock,
    logins_outside_learned_hours_or_from_new_sources_alert,
    silent_assets_raise_one_alert_per_silence,
    closed_alerts_expire_with_the_retention,
    configuration_changes_outside_the_window_or_by_unusual_accounts_alert,
    unacknowledged_alerts_escalate_level_by_level_until_acknowledged,
);

const PW: &str = "a-long-enough-password-42";
const START: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400;

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.9".into()),
        user_agent: Some("t".into()),
    }
}

struct World {
    clock: Arc<ManualClock>,
    iam: Arc<IamService>,
    monitor: Monitor,
    store: Arc<parapet_store_sql::SqlStore>,
    admin: Principal,
    alice: Principal,
    gina: Principal,
}

async fn world(backend: Backend) -> World {
    let (store, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(Timestamp(START)));
    let env = Env {
        clock: clock.clone(),
        entropy: Arc::new(OsEntropy),
    };
    let config = IamConfig {
        password_cost: PasswordCost {
            memory_kib: 256,
            iterations: 1,
            lanes: 1,
        },
        session_ttl_secs: 3650 * 24 * 3600,
        session_idle_secs: 3650 * 24 * 3600,
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let iam = Arc::new(IamService::new(store.clone(), env, config).unwrap());
    iam.bootstrap(Some(PW.into())).await.unwrap();
    let admin = iam.login("admin", PW, &meta()).await.unwrap().principal;
    for (t, u) in [("acme", "alice"), ("globex", "gina")] {
        iam.create_tenant(&admin, t, &meta()).await.unwrap();
        iam.create_user(&admin, t, u, PW, Role::TenantAdmin, &meta())
            .await
            .unwrap();
    }
    let alice = iam
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;
    let gina = iam
        .login("gina@globex", PW, &meta())
        .await
        .unwrap()
        .principal;
    let monitor = Monitor::new(
        iam.clone(),
        MonitorConfig {
            ingest_budget_bytes: 1000,
            ..MonitorConfig::default()
        },
    );
    World {
        clock,
        iam,
        monitor,
        store,
        admin,
        alice,
        gina,
    }
}

/// Sends `lines` events whose time is `days_ago` days before the clock.
async fn send(
    w: &World,
    who: &Principal,
    tenant: &str,
    days_ago: i64,
    n: usize,
    key: Option<&str>,
) -> parapet_monitor::Receipt {
    let t = w.monitor.ingest_tenant(who, tenant, &meta()).await.unwrap();
    let at = w.clock.now().plus_secs(-days_ago * DAY).0;
    let body: String = (0..n)
        .map(|i| {
            format!(
                "{{\"time\":{},\"host\":\"h{days_ago}\",\"i\":{i}}}\n",
                at + i as i64
            )
        })
        .collect();
    w.monitor
        .ingest(&t, who.actor(), &meta(), body.as_bytes(), key)
        .await
        .unwrap()
}

async fn all(w: &World, who: &Principal, tenant: &str) -> Vec<parapet_store::StoredEvent> {
    let (_, found) = w
        .monitor
        .search(
            who,
            tenant,
            &Search {
                limit: 1000,
                ..Search::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    found.events
}

async fn retention_deletes_only_old_events_per_tenant(backend: Backend) {
    let w = world(backend).await;
    // acme keeps 7 days; globex the default (90).
    w.monitor
        .set_retention(&w.alice, "acme", 7, &meta())
        .await
        .unwrap();
    assert!(matches!(
        w.monitor.set_retention(&w.gina, "acme", 1, &meta()).await,
        Err(MonitorError::Iam(parapet_iam::IamError::NotFound(_)))
    ));
    for days_ago in [1, 6, 8, 30, 100] {
        send(&w, &w.alice, "acme", days_ago, 3, None).await;
        send(&w, &w.gina, "globex", days_ago, 2, None).await;
    }
    assert_eq!(all(&w, &w.alice, "acme").await.len(), 15);
    let done = w.monitor.enforce_retention().await.unwrap();
    let acme = done.iter().find(|(t, _)| t == "acme").unwrap().1;
    let globex = done.iter().find(|(t, _)| t == "globex").unwrap().1;
    assert_eq!(acme.events, 9, "8, 30 and 100 days old");
    assert_eq!(globex.events, 2, "only the 100-day-old batch");
    let hosts: Vec<String> = all(&w, &w.alice, "acme")
        .await
        .into_iter()
        .map(|e| e.host.unwrap())
        .collect();
    assert_eq!(hosts.len(), 6);
    assert!(hosts.iter().all(|h| h == "h1" || h == "h6"), "{hosts:?}");
    assert_eq!(all(&w, &w.gina, "globex").await.len(), 8);
    // Nothing more to do at once; two days later the 6-day-old events are due.
    let again = w.monitor.enforce_retention().await.unwrap();
    assert!(again.iter().all(|(_, p)| p.events == 0), "{again:?}");
    w.clock.advance_secs(2 * DAY);
    let later = w.monitor.enforce_retention().await.unwrap();
    assert_eq!(later.iter().find(|(t, _)| t == "acme").unwrap().1.events, 3);
    // Each purge is in the tenant's audit trail, attributed to the system.
    let acme_t = w
        .iam
        .store()
        .get_tenant(TenantCtx::new(w.admin.tenant.id), "acme")
        .await
        .unwrap();
    let recs = w
        .store
        .list_audit(
            TenantCtx::new(acme_t.id),
            &AuditFilter::default(),
            &Page {
                after: None,
                limit: 500,
            },
        )
        .await
        .unwrap();
    let purges: Vec<_> = recs
        .iter()
        .filter(|r| r.event.action == "events.purge")
        .collect();
    assert_eq!(purges.len(), 2);
    assert_eq!(
        purges
            .iter()
            .map(|r| r.event.details["events_deleted"].as_u64().unwrap())
            .sum::<u64>(),
        12
    );
}

async fn idempotency_keys_expire_and_tenants_are_isolated(backend: Backend) {
    let w = world(backend).await;
    let first = send(&w, &w.alice, "acme", 0, 2, Some("k")).await;
    let again = send(&w, &w.alice, "acme", 0, 2, Some("k")).await;
    assert!(again.replayed);
    assert_eq!(again.batch, first.batch);
    assert_eq!(all(&w, &w.alice, "acme").await.len(), 2);
    // Another tenant's same key is its own batch; neither sees the other's events.
    let gx = send(&w, &w.gina, "globex", 0, 1, Some("k")).await;
    assert!(!gx.replayed);
    assert_eq!(all(&w, &w.gina, "globex").await.len(), 1);
    assert!(
        w.monitor
            .search(
                &w.gina,
                "acme",
                &Search {
                    limit: 10,
                    ..Search::default()
                },
                &meta()
            )
            .await
            .is_err()
    );
    assert!(
        w.monitor
            .get(
                &w.gina,
                "globex",
                &all(&w, &w.alice, "acme").await[0].id.to_string(),
                &meta()
            )
            .await
            .is_err()
    );
    // After the key's lifetime (7 days) and a sweep, the key is forgotten.
    w.clock.advance_secs(8 * DAY);
    w.monitor.enforce_retention().await.unwrap();
    let late = send(&w, &w.alice, "acme", 0, 2, Some("k")).await;
    assert!(!late.replayed);
    assert_ne!(late.batch, first.batch);
    assert_eq!(all(&w, &w.alice, "acme").await.len(), 4);

    // The ingestion budget (1,000 bytes here): a reservation that does not fit is refused at
    // once, and the budget comes back when the reservation ends.
    let a = w.monitor.reserve(600).unwrap();
    assert!(matches!(w.monitor.reserve(600), Err(MonitorError::Busy(_))));
    let b = w.monitor.reserve(300).unwrap();
    drop(a);
    let c = w.monitor.reserve(600).unwrap();
    drop((b, c));
    // A single batch larger than the budget is still accepted when nothing else is in flight.
    let big = w.monitor.reserve(5000).unwrap();
    assert!(matches!(w.monitor.reserve(1), Err(MonitorError::Busy(_))));
    drop(big);
    assert!(w.monitor.reserve(1).is_ok());
}

#[tokio::test]
async fn raised_alerts_reach_the_subscriber_once() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let w = world(backend).await;
        let seen: Arc<std::sync::Mutex<Vec<(String, usize)>>> = Arc::default();
        let sink = seen.clone();
        w.monitor.on_alerts(Arc::new(move |t, ids| {
            sink.lock().unwrap().push((t.name.clone(), ids.len()));
        }));
        let rule = "title: Root\nid: 5d1c0e3a-0000-4000-8000-00000000000a\nlogsource:\n  product: any\ndetection:\n  sel:\n    user: root\n  condition: sel\nlevel: high\n";
        w.monitor
            .import_rules(
                &w.alice,
                "acme",
                &[("root.yml".into(), rule.into())],
                &meta(),
            )
            .await
            .unwrap();
        let t = w
            .monitor
            .ingest_tenant(&w.alice, "acme", &meta())
            .await
            .unwrap();
        let body = "{\"user\":\"root\",\"host\":\"a\"}\n{\"user\":\"root\",\"host\":\"b\"}\n{\"user\":\"x\"}\n";
        let r = w
            .monitor
            .ingest(&t, w.alice.actor(), &meta(), body.as_bytes(), None)
            .await
            .unwrap();
        assert_eq!(r.alerts_raised, 2);
        // Joining the open alerts raises nothing new.
        w.monitor
            .ingest(&t, w.alice.actor(), &meta(), body.as_bytes(), None)
            .await
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![("acme".to_string(), 2)]);
    }
}

const BRUTE: &str = "title: Failed
id: 0d000000-0000-4000-8000-000000000001
name: failed
logsource:
  product: test
detection:
  selection:
    outcome: failure
  condition: selection
level: low
---
title: Many failures
id: 0d000000-0000-4000-8000-000000000002
correlation:
  type: event_count
  rules:
    - failed
  group-by:
    - user
  timespan: 10m
  condition:
    gte: 5
level: high
";

/// A tenant's event_count correlation counts within its timespan by the injected clock: four
/// failures, eleven minutes later a fifth does not fire; four more within the window do.
async fn correlation_windows_follow_the_injected_clock(backend: Backend) {
    let w = world(backend).await;
    w.monitor
        .import_rules(
            &w.alice,
            "acme",
            &[("brute.yml".into(), BRUTE.into())],
            &meta(),
        )
        .await
        .unwrap();
    let t = w
        .monitor
        .ingest_tenant(&w.alice, "acme", &meta())
        .await
        .unwrap();
    let fail = |n: usize| -> String {
        (0..n)
            .map(|_| "{\"outcome\":\"failure\",\"user\":\"bob\"}\n".to_string())
            .collect()
    };
    let corr = |r: &parapet_monitor::Receipt| r.alert_matches;
    let r = w
        .monitor
        .ingest(&t, w.alice.actor(), &meta(), fail(4).as_bytes(), None)
        .await
        .unwrap();
    assert_eq!(
        corr(&r),
        0,
        "the failures only feed the correlation (generate: false)"
    );
    w.clock.advance_secs(11 * 60);
    let r = w
        .monitor
        .ingest(&t, w.alice.actor(), &meta(), fail(1).as_bytes(), None)
        .await
        .unwrap();
    assert_eq!(corr(&r), 0, "the first four left the window");
    w.clock.advance_secs(60);
    let r = w
        .monitor
        .ingest(&t, w.alice.actor(), &meta(), fail(4).as_bytes(), None)
        .await
        .unwrap();
    assert_eq!(
        corr(&r),
        1,
        "five failures within ten minutes: the correlation"
    );
    assert!(w.monitor.correlation_keys() >= 1);
    // The windows were saved with the batches (nothing is left to save), under acme only.
    assert_eq!(w.monitor.save_correlations().await, 0);
    use parapet_store::EventStore;
    let (version, state) = w
        .store
        .correlation_state(TenantCtx::new(t.id))
        .await
        .unwrap()
        .expect("acme's correlation state is saved");
    assert_eq!(version, 9, "one version per event that fed the windows");
    assert!(state.contains("bob"), "{state}");
    let globex = w
        .monitor
        .ingest_tenant(&w.gina, "globex", &meta())
        .await
        .unwrap();
    assert!(
        w.store
            .correlation_state(TenantCtx::new(globex.id))
            .await
            .unwrap()
            .is_none()
    );
}

/// Feeds the audit log to detection until it is caught up.
async fn drain_audit(w: &World) {
    let mut cursor = None;
    for _ in 0..100 {
        let before = cursor;
        w.monitor.ingest_audit_step(&mut cursor).await.unwrap();
        if before.is_some() && cursor == before {
            return;
        }
    }
    panic!("the audit source did not catch up");
}

async fn provider_alert_titles(w: &World) -> Vec<String> {
    let (_, list) = w
        .monitor
        .list_alerts(
            &w.admin,
            "provider",
            &parapet_store::AlertFilter::default(),
            &Page {
                after: None,
                limit: 1000,
            },
            &meta(),
        )
        .await
        .unwrap();
    list.into_iter().map(|a| a.title).collect()
}

/// The audit source learns an account's log-in hours and addresses from its earlier log-ins:
/// ten days of log-ins at 08:00 UTC from one address raise nothing; one at 20:00 is outside the
/// normal hours; one from another address is from a new source.
async fn logins_outside_learned_hours_or_from_new_sources_alert(backend: Backend) {
    let w = world(backend).await;
    assert_eq!(
        w.monitor.install_builtin_rules().await.unwrap(),
        parapet_monitor::audit_source::BUILTIN_RULES.len()
    );
    assert_eq!(w.monitor.install_builtin_rules().await.unwrap(), 0);
    assert_eq!(
        (w.clock.now().0 / 3_600_000) % 24,
        8,
        "the test starts at 08:00 UTC"
    );
    for _ in 0..10 {
        w.clock.advance_secs(DAY);
        w.iam.login("alice@acme", PW, &meta()).await.unwrap();
        drain_audit(&w).await;
    }
    let usual = |t: &Vec<String>| {
        t.iter()
            .filter(|t| {
                t.contains("outside the account's normal hours") || t.contains("new source")
            })
            .count()
    };
    assert_eq!(usual(&provider_alert_titles(&w).await), 0);
    // 20:00 UTC, same address.
    w.clock.advance_secs(DAY + 12 * 3600);
    w.iam.login("alice@acme", PW, &meta()).await.unwrap();
    drain_audit(&w).await;
    let titles = provider_alert_titles(&w).await;
    assert!(
        titles
            .iter()
            .any(|t| t.contains("outside the account's normal hours")),
        "{titles:?}"
    );
    assert!(
        !titles.iter().any(|t| t.contains("new source")),
        "{titles:?}"
    );
    // 08:00 again, from another address.
    w.clock.advance_secs(12 * 3600);
    let other = RequestMeta {
        source_ip: Some("198.51.100.77".into()),
        user_agent: Some("t".into()),
    };
    w.iam.login("alice@acme", PW, &other).await.unwrap();
    drain_audit(&w).await;
    let titles = provider_alert_titles(&w).await;
    assert!(
        titles.iter().any(|t| t.contains("new source")),
        "{titles:?}"
    );
    assert_eq!(
        titles
            .iter()
            .filter(|t| t.contains("outside the account's normal hours"))
            .count(),
        1,
        "{titles:?}"
    );
}

async fn new_asset(w: &World, tenant: &parapet_store::Tenant, name: &str, tags: &[(&str, &str)]) {
    use parapet_store::{Asset, AssetHealth, AssetKind, AssetStore, AuditEvent, AuditOutcome};
    let now = w.clock.now();
    let a = Asset {
        id: parapet_types::AssetId(uuid::Uuid::now_v7()),
        tenant: tenant.id,
        name: name.into(),
        kind: AssetKind::Vm,
        os: None,
        applications: vec![],
        addresses: vec![],
        location: None,
        owner: None,
        criticality: parapet_store::Criticality::High,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        health: AssetHealth::Unknown,
        last_seen_at: None,
        created_at: now,
        updated_at: now,
    };
    let audit = AuditEvent {
        time: now,
        tenant: Some(tenant.id),
        actor: parapet_types::Actor::System,
        action: "asset.create".into(),
        target: format!("asset:{}/{name}", tenant.name),
        source_ip: None,
        user_agent: None,
        outcome: AuditOutcome::Success,
        details: serde_json::json!({}),
    };
    w.store
        .create_asset(TenantCtx::new(tenant.id), &a, &audit)
        .await
        .unwrap();
}

/// An asset that sent data and then nothing for longer than its interval raises one alert per
/// silence (checked twice: still one), is shown silent in the health view and in the
/// inventory, and is healthy again when data arrives; an asset that never sent data and one
/// with a longer interval of its own are not silent; the other tenant sees nothing of it.
async fn silent_assets_raise_one_alert_per_silence(backend: Backend) {
    let w = world(backend).await;
    let acme = w
        .monitor
        .ingest_tenant(&w.alice, "acme", &meta())
        .await
        .unwrap();
    new_asset(&w, &acme, "web-1", &[]).await;
    new_asset(&w, &acme, "db-1", &[("silent_after_minutes", "120")]).await;
    new_asset(&w, &acme, "never", &[]).await;
    let data = |host: &str| format!("{{\"host\":\"{host}\",\"message\":\"ok\"}}\n");
    for h in ["web-1", "db-1"] {
        w.monitor
            .ingest(&acme, w.alice.actor(), &meta(), data(h).as_bytes(), None)
            .await
            .unwrap();
    }
    w.clock.advance_secs(29 * 60);
    assert!(w.monitor.check_silent_assets().await.unwrap().is_empty());
    let h = w.monitor.health(&w.alice, "acme", &meta()).await.unwrap();
    assert_eq!((h.assets, h.silent), (3, 0));
    w.clock.advance_secs(2 * 60);
    assert_eq!(
        w.monitor.check_silent_assets().await.unwrap(),
        vec![("acme".to_string(), "web-1".to_string())]
    );
    assert!(w.monitor.check_silent_assets().await.unwrap().is_empty());
    let h = w.monitor.health(&w.alice, "acme", &meta()).await.unwrap();
    assert_eq!((h.silent, h.open_alerts), (1, 1));
    let web = h.items.iter().find(|i| i.name == "web-1").unwrap();
    assert!(
        web.silent && web.open_alerts == 1 && web.health == "silent",
        "{web:?}"
    );
    let db = h.items.iter().find(|i| i.name == "db-1").unwrap();
    assert!(!db.silent && db.silent_after_minutes == 120, "{db:?}");
    assert!(
        h.items
            .iter()
            .find(|i| i.name == "never")
            .unwrap()
            .last_data_at
            .is_none()
    );
    // globex cannot read acme's health, and has none of its own.
    assert!(w.monitor.health(&w.gina, "acme", &meta()).await.is_err());
    let g = w.monitor.health(&w.gina, "globex", &meta()).await.unwrap();
    assert_eq!((g.assets, g.open_alerts), (0, 0));
    // Data again: no longer silent; a later silence is a new alert.
    w.monitor
        .ingest(
            &acme,
            w.alice.actor(),
            &meta(),
            data("web-1").as_bytes(),
            None,
        )
        .await
        .unwrap();
    let h = w.monitor.health(&w.alice, "acme", &meta()).await.unwrap();
    let web = h.items.iter().find(|i| i.name == "web-1").unwrap();
    assert!(!web.silent && web.health == "unknown", "{web:?}");
    w.clock.advance_secs(3 * 3600);
    let mut again = w.monitor.check_silent_assets().await.unwrap();
    again.sort();
    assert_eq!(
        again,
        vec![
            ("acme".to_string(), "db-1".to_string()),
            ("acme".to_string(), "web-1".to_string())
        ]
    );
}

const DISK: &str = "title: Disk full
id: 0d000000-0000-4000-8000-000000000010
logsource:
  product: test
detection:
  selection:
    message|contains: 'No space left'
  condition: selection
level: high
";

/// Closed alerts older than the tenant's retention are deleted with the events; open ones stay
/// however old; the purge's audit record counts them.
async fn closed_alerts_expire_with_the_retention(backend: Backend) {
    use parapet_store::{AlertFilter, AlertStatus};
    let w = world(backend).await;
    w.monitor
        .set_retention(&w.alice, "acme", 7, &meta())
        .await
        .unwrap();
    w.monitor
        .import_rules(
            &w.alice,
            "acme",
            &[("disk.yml".into(), DISK.into())],
            &meta(),
        )
        .await
        .unwrap();
    let t = w
        .monitor
        .ingest_tenant(&w.alice, "acme", &meta())
        .await
        .unwrap();
    let disk = |host: &str| format!("{{\"host\":\"{host}\",\"message\":\"No space left\"}}\n");
    let list = || async {
        w.monitor
            .list_alerts(
                &w.alice,
                "acme",
                &AlertFilter::default(),
                &Page {
                    after: None,
                    limit: 100,
                },
                &meta(),
            )
            .await
            .unwrap()
            .1
    };
    for h in ["web-1", "web-2"] {
        w.monitor
            .ingest(&t, w.alice.actor(), &meta(), disk(h).as_bytes(), None)
            .await
            .unwrap();
    }
    let alerts = list().await;
    assert_eq!(alerts.len(), 2);
    let closed = alerts.iter().find(|a| a.group_key == "web-1").unwrap();
    w.monitor
        .handle_alert(
            &w.alice,
            "acme",
            &closed.id.to_string(),
            AlertStatus::Closed,
            Some("fixed"),
            &meta(),
        )
        .await
        .unwrap();
    w.clock.advance_secs(6 * DAY);
    let done = w.monitor.enforce_retention().await.unwrap();
    assert!(done.iter().all(|(_, p)| p.alerts == 0), "{done:?}");
    w.clock.advance_secs(2 * DAY);
    let done = w.monitor.enforce_retention().await.unwrap();
    let acme = done.iter().find(|(n, _)| n == "acme").unwrap().1;
    assert_eq!((acme.alerts, acme.events), (1, 2));
    let left = list().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].group_key, "web-2");
    assert_eq!(left[0].status, AlertStatus::Open);
}

/// Built-in configuration-change rules (X.1642 8.3(2)) over syslog-shaped events of network
/// devices, auditd and libvirt: every change is a low alert; a change outside the asset's
/// maintenance window or by an account not among its change accounts is a high one; ten changes
/// on one host within ten minutes are a burst.
async fn configuration_changes_outside_the_window_or_by_unusual_accounts_alert(backend: Backend) {
    let w = world(backend).await;
    w.monitor.install_builtin_rules().await.unwrap();
    let acme = w
        .monitor
        .ingest_tenant(&w.alice, "acme", &meta())
        .await
        .unwrap();
    new_asset(
        &w,
        &acme,
        "edge-1",
        &[
            ("maintenance_window", "22:00-02:00"),
            ("change_accounts", "netadmin,ops"),
        ],
    )
    .await;
    let send = |lines: Vec<serde_json::Value>| {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let (m, acme, alice) = (&w.monitor, acme.clone(), w.alice.clone());
        async move {
            m.ingest(&acme, alice.actor(), &meta(), body.as_bytes(), None)
                .await
                .unwrap()
        }
    };
    let count = |titles: &[String], t: &str| titles.iter().filter(|x| x.contains(t)).count();
    // 08:00 UTC: outside edge-1's window, by a usual account.
    send(vec![serde_json::json!({"host": "edge-1", "message":
        "%SYS-5-CONFIG_I: Configured from console by netadmin on vty0 (10.0.0.9)"})])
    .await;
    let titles = provider_alert_titles(&w).await;
    assert_eq!(
        count(&titles, "Network device configuration changed"),
        1,
        "{titles:?}"
    );
    assert_eq!(
        count(&titles, "outside the maintenance window"),
        1,
        "{titles:?}"
    );
    assert_eq!(count(&titles, "unusual account"), 0, "{titles:?}");
    // Inside the window (23:00), by an unusual account (Juniper).
    w.clock.advance_secs(15 * 3600);
    send(vec![serde_json::json!({"host": "edge-1", "message":
        "UI_COMMIT: User 'mallory' requested 'commit' operation (comment: none)"})])
    .await;
    let titles = provider_alert_titles(&w).await;
    assert_eq!(count(&titles, "unusual account"), 1, "{titles:?}");
    assert_eq!(
        count(&titles, "outside the maintenance window"),
        1,
        "{titles:?}"
    );
    // A host's /etc (auditd) and a VM's definition (libvirt); an unrelated message raises none.
    send(vec![
        serde_json::json!({"host": "web-9", "message": "type=PATH msg=audit(1.0:2): item=0 name=\"/etc/ssh/sshd_config\" nametype=NORMAL",
            "audit": {"type": "PATH", "name": "/etc/ssh/sshd_config", "nametype": "NORMAL"}}),
        serde_json::json!({"host": "kvm-1", "message": "event 'lifecycle' for domain 'web-1': Defined Updated"}),
        serde_json::json!({"host": "kvm-1", "message": "event 'lifecycle' for domain 'web-1': Started Booted"}),
    ])
    .await;
    let titles = provider_alert_titles(&w).await;
    assert_eq!(
        count(&titles, "Host configuration under /etc written"),
        1,
        "{titles:?}"
    );
    assert_eq!(
        count(&titles, "Virtual machine definition changed"),
        1,
        "{titles:?}"
    );
    // Ten changes on one switch within ten minutes: a burst.
    assert_eq!(count(&titles, "Burst of configuration changes"), 0);
    for i in 0..10 {
        w.clock.advance_secs(30);
        send(vec![serde_json::json!({"host": "sw-3", "message":
            format!("%SYS-5-CONFIG_I: Configured from console by ops on vty{i}")})])
        .await;
    }
    let titles = provider_alert_titles(&w).await;
    assert_eq!(
        count(&titles, "Burst of configuration changes"),
        1,
        "{titles:?}"
    );
    // Another tenant sees none of acme's alerts.
    let (_, theirs) = w
        .monitor
        .list_alerts(
            &w.gina,
            "globex",
            &parapet_store::AlertFilter::default(),
            &Page {
                after: None,
                limit: 100,
            },
            &meta(),
        )
        .await
        .unwrap();
    assert!(theirs.is_empty(), "{theirs:?}");
}

/// Escalation (X.1642 8.6.1) with the injected clock: an open alert reaches each level after its
/// delay, the levels repeat, acknowledging stops it, and each step is claimed once.
async fn unacknowledged_alerts_escalate_level_by_level_until_acknowledged(backend: Backend) {
    use parapet_monitor::escalation::{Level, Policy};
    use parapet_monitor::internal::InternalAlert;
    let w = world(backend).await;
    let m = &w.monitor;
    let acme = m.ingest_tenant(&w.alice, "acme", &meta()).await.unwrap();
    let policy = Policy {
        levels: vec![
            Level {
                after_secs: 60,
                channels: vec!["oncall".into()],
            },
            Level {
                after_secs: 120,
                channels: vec!["manager".into(), "sms".into()],
            },
        ],
        repeat: 1,
        min_severity: Some("medium".into()),
    };
    let mut bad = policy.clone();
    bad.levels.clear();
    assert!(matches!(
        m.set_escalation(&w.alice, "acme", Some(&bad), &meta())
            .await,
        Err(MonitorError::Invalid(_))
    ));
    m.set_escalation(&w.alice, "acme", Some(&policy), &meta())
        .await
        .unwrap();
    assert_eq!(
        m.escalation(&w.alice, "acme", &meta()).await.unwrap(),
        Some(policy.clone())
    );
    assert!(m.escalation(&w.gina, "acme", &meta()).await.is_err());
    assert_eq!(
        m.escalation(&w.gina, "globex", &meta()).await.unwrap(),
        None
    );
    let raise = |name: &str, severity: &str| InternalAlert {
        source: "test".into(),
        rule_id: format!("test-{name}"),
        title: format!("alert {name}"),
        severity: severity.into(),
        group_key: name.into(),
        asset: None,
        host: None,
        message: name.into(),
        details: serde_json::json!({}),
        dedup_key: format!("test:{name}"),
        audit_action: "test.alert".into(),
        audit_target: format!("test:{name}"),
    };
    let a = m
        .raise_internal(&acme, &raise("a", "high"))
        .await
        .unwrap()
        .unwrap()[0];
    let b = m
        .raise_internal(&acme, &raise("b", "high"))
        .await
        .unwrap()
        .unwrap()[0];
    m.raise_internal(&acme, &raise("low", "low")).await.unwrap();
    let pages =
        |v: Vec<parapet_monitor::escalation::Page>| -> Vec<(uuid::Uuid, usize, u32, Vec<String>)> {
            v.into_iter()
                .map(|p| (p.alert.id, p.level, p.round, p.channels))
                .collect()
        };
    w.clock.advance_secs(59);
    assert!(m.escalate_due().await.unwrap().is_empty());
    w.clock.advance_secs(1);
    let mut got = pages(m.escalate_due().await.unwrap());
    got.sort();
    let mut want = vec![
        (a, 0, 0, vec!["oncall".to_string()]),
        (b, 0, 0, vec!["oncall".to_string()]),
    ];
    want.sort();
    assert_eq!(got, want, "the low alert is below the policy's severity");
    assert!(m.escalate_due().await.unwrap().is_empty(), "claimed once");
    // b is acknowledged: it stops; a goes on to the next level 120 s later.
    m.handle_alert(
        &w.alice,
        "acme",
        &b.to_string(),
        parapet_store::AlertStatus::Acknowledged,
        None,
        &meta(),
    )
    .await
    .unwrap();
    w.clock.advance_secs(119);
    assert!(m.escalate_due().await.unwrap().is_empty());
    w.clock.advance_secs(1);
    assert_eq!(
        pages(m.escalate_due().await.unwrap()),
        vec![(a, 1, 0, vec!["manager".to_string(), "sms".to_string()])]
    );
    // The second round, then nothing more.
    w.clock.advance_secs(60);
    assert_eq!(
        pages(m.escalate_due().await.unwrap()),
        vec![(a, 0, 1, vec!["oncall".to_string()])]
    );
    w.clock.advance_secs(120);
    assert_eq!(pages(m.escalate_due().await.unwrap()).len(), 1);
    w.clock.advance_secs(86_400);
    assert!(m.escalate_due().await.unwrap().is_empty());
    // Every step has its audit record.
    let steps = w
        .store
        .list_audit(
            TenantCtx::new(acme.id),
            &AuditFilter {
                action: Some("alert.escalate".into()),
                ..AuditFilter::default()
            },
            &Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(steps.len(), 6, "5 pages and the low alert's skip");
}
