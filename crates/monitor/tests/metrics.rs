//! Metrics scraping, threshold and baseline rules, queries and retention over a real store on
//! SQLite and PostgreSQL, with an injected clock and a fetcher that serves the pages the test
//! writes (the real `prometheus-node-exporter` is scraped by the black-box test
//! `crates/parapet/tests/monitor_metrics.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use parapet_iam::{IamConfig, IamService, PasswordCost, Principal, RequestMeta};
use parapet_monitor::metric::{MetricsFetcher, RuleInput};
use parapet_monitor::{Monitor, MonitorConfig, MonitorError};
use parapet_store::{AlertFilter, AlertStore, Page};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Clock, Env, ManualClock, OsEntropy, Role, TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    targets_scrape_on_schedule_and_thresholds_wait_for_their_duration,
    baselines_learn_then_alert_on_outliers,
    samples_roll_up_hourly_and_expire_with_the_retention,
);

const PW: &str = "a-long-enough-password-42";
const START: i64 = 1_800_000_000_000;

fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.9".into()),
        user_agent: Some("t".into()),
    }
}

/// Serves the page the test set, and counts fetches.
struct Pages {
    page: Mutex<Result<String, String>>,
    fetched: Mutex<Vec<String>>,
}

impl Default for Pages {
    fn default() -> Self {
        Pages {
            page: Mutex::new(Ok(String::new())),
            fetched: Mutex::new(Vec::new()),
        }
    }
}

impl Pages {
    fn set(&self, p: &str) {
        *self.page.lock().unwrap() = Ok(p.to_string());
    }
}

#[async_trait::async_trait]
impl MetricsFetcher for Pages {
    async fn fetch(&self, url: &str, _: Duration, _: usize) -> Result<String, String> {
        self.fetched.lock().unwrap().push(url.to_string());
        self.page.lock().unwrap().clone()
    }
}

struct World {
    clock: Arc<ManualClock>,
    monitor: Monitor,
    store: Arc<parapet_store_sql::SqlStore>,
    pages: Arc<Pages>,
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
    let monitor = Monitor::new(iam.clone(), MonitorConfig::default());
    let pages = Arc::new(Pages::default());
    pages.set("");
    monitor.set_fetcher(pages.clone());
    let w = World {
        clock,
        monitor,
        store,
        pages,
        alice,
        gina,
    };
    new_asset(&w, "acme", "web-1", &["10.0.0.5"]).await;
    w
}

async fn new_asset(w: &World, tenant: &str, name: &str, addresses: &[&str]) {
    use parapet_store::{Asset, AssetHealth, AssetKind, AssetStore, AuditEvent, AuditOutcome};
    let who = if tenant == "acme" { &w.alice } else { &w.gina };
    let t = w.monitor.ingest_tenant(who, tenant, &meta()).await.unwrap();
    let now = w.clock.now();
    let a = Asset {
        id: parapet_types::AssetId(uuid::Uuid::now_v7()),
        tenant: t.id,
        name: name.into(),
        kind: AssetKind::Vm,
        os: None,
        applications: vec![],
        addresses: addresses.iter().map(|s| s.to_string()).collect(),
        location: None,
        owner: None,
        criticality: parapet_store::Criticality::High,
        tags: Default::default(),
        health: AssetHealth::Unknown,
        last_seen_at: None,
        created_at: now,
        updated_at: now,
    };
    let audit = AuditEvent {
        time: now,
        tenant: Some(t.id),
        actor: parapet_types::Actor::System,
        action: "asset.create".into(),
        target: format!("asset:{tenant}/{name}"),
        source_ip: None,
        user_agent: None,
        outcome: AuditOutcome::Success,
        details: serde_json::json!({}),
    };
    w.store
        .create_asset(TenantCtx::new(t.id), &a, &audit)
        .await
        .unwrap();
}

fn page(load: f64, idle: f64) -> String {
    format!(
        "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 {load}\n\
         # TYPE node_cpu_seconds_total counter\n\
         node_cpu_seconds_total{{cpu=\"0\",mode=\"idle\"}} {idle}\n\
         node_cpu_seconds_total{{cpu=\"0\",mode=\"user\"}} 10\n\
         garbage line\n"
    )
}

async fn metric_alerts(w: &World, rule: &str) -> Vec<parapet_store::Alert> {
    let t = w
        .monitor
        .ingest_tenant(&w.alice, "acme", &meta())
        .await
        .unwrap();
    w.store
        .list_alerts(
            TenantCtx::new(t.id),
            &AlertFilter {
                rule_id: Some(rule.into()),
                ..AlertFilter::default()
            },
            &Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap()
}

fn invalid(r: Result<impl std::fmt::Debug, MonitorError>) -> String {
    match r {
        Err(MonitorError::Invalid(m)) => m,
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
}

async fn targets_scrape_on_schedule_and_thresholds_wait_for_their_duration(backend: Backend) {
    let w = world(backend).await;
    let m = &w.monitor;
    // The URL's host must be the asset's own name or address; bad intervals and schemes refused.
    for (url, interval, why) in [
        ("http://10.0.0.6:9100/metrics", 15, "neither the asset"),
        ("ftp://10.0.0.5/metrics", 15, "http or https"),
        ("http://u:p@10.0.0.5:9100/metrics", 15, "credentials"),
        ("http://10.0.0.5:9100/metrics", 1, "interval"),
        ("not a url", 15, "not a valid URL"),
    ] {
        let e = invalid(
            m.set_metrics_target(&w.alice, "acme", "web-1", url, interval, &meta())
                .await,
        );
        assert!(e.contains(why), "{url}: {e}");
    }
    let t = m
        .set_metrics_target(
            &w.alice,
            "acme",
            "web-1",
            "http://10.0.0.5:9100/metrics",
            15,
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(t.interval_secs, 15);
    // Another tenant sees neither the asset nor its target.
    assert!(matches!(
        m.metrics_target(&w.gina, "acme", "web-1", &meta()).await,
        Err(MonitorError::Iam(parapet_iam::IamError::NotFound(_)))
    ));
    // CPU over 5 for 60 s; the rate of idle CPU seconds below 0.5/s at once.
    m.create_metric_rule(
        &w.alice,
        "acme",
        &RuleInput {
            name: "load-high".into(),
            metric: "node_load1".into(),
            op: Some(">".into()),
            value: Some(5.0),
            for_secs: Some(60),
            severity: Some("high".into()),
            ..RuleInput::default()
        },
        &meta(),
    )
    .await
    .unwrap();
    m.create_metric_rule(
        &w.alice,
        "acme",
        &RuleInput {
            name: "cpu-busy".into(),
            asset: Some("web-1".into()),
            metric: "node_cpu_seconds_total".into(),
            labels: [("mode".to_string(), "idle".to_string())].into(),
            rate: true,
            op: Some("<".into()),
            value: Some(0.5),
            ..RuleInput::default()
        },
        &meta(),
    )
    .await
    .unwrap();
    let e = invalid(
        m.create_metric_rule(
            &w.alice,
            "acme",
            &RuleInput {
                name: "x".into(),
                metric: "node_load1".into(),
                op: Some("=~".into()),
                value: Some(1.0),
                ..RuleInput::default()
            },
            &meta(),
        )
        .await,
    );
    assert!(e.contains("comparison"), "{e}");
    assert!(
        m.metric_rules(&w.gina, "acme", &meta()).await.is_err(),
        "another tenant cannot read the rules"
    );

    // Due at once: one scrape; not again before the interval.
    w.pages.set(&page(1.0, 100.0));
    let r = m.scrape_due().await.unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].samples, r[0].bad_lines), (3, 1), "{r:?}");
    assert!(m.scrape_due().await.unwrap().is_empty());
    w.clock.advance_secs(15);
    // Load 9 > 5 begins; idle grew by 30 s in 15 s (2/s): not busy.
    w.pages.set(&page(9.0, 130.0));
    let r = m.scrape_due().await.unwrap();
    assert_eq!(r[0].alerts_raised, 0, "{r:?}");
    for i in 0..3 {
        w.clock.advance_secs(15);
        w.pages.set(&page(9.0, 160.0 + f64::from(i) * 30.0));
        m.scrape_due().await.unwrap();
    }
    assert!(
        metric_alerts(&w, "parapet-metric-load-high")
            .await
            .is_empty()
    );
    // 60 s after the breach began: one alert; later scrapes of the same breach add nothing new.
    w.clock.advance_secs(15);
    w.pages.set(&page(9.0, 250.0));
    let r = m.scrape_due().await.unwrap();
    assert_eq!(r[0].alerts_raised, 1, "{r:?}");
    w.clock.advance_secs(15);
    w.pages.set(&page(9.5, 280.0));
    m.scrape_due().await.unwrap();
    let alerts = metric_alerts(&w, "parapet-metric-load-high").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].severity, "high");
    assert!(alerts[0].asset.is_some());
    assert!(
        metric_alerts(&w, "parapet-metric-cpu-busy")
            .await
            .is_empty()
    );
    // Idle grows 3 s in 15 s (0.2/s < 0.5): busy at once.
    w.clock.advance_secs(15);
    w.pages.set(&page(1.0, 283.0));
    let r = m.scrape_due().await.unwrap();
    assert_eq!(r[0].alerts_raised, 1, "{r:?}");
    assert_eq!(metric_alerts(&w, "parapet-metric-cpu-busy").await.len(), 1);

    // The query: one series per label set, the alerts of the asset marked.
    let q = m
        .metric_query(
            &w.alice,
            "acme",
            "web-1",
            "node_load1",
            None,
            None,
            500,
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(q.series.len(), 1);
    let values: Vec<f64> = q.series[0].points.iter().map(|p| p.1).collect();
    assert_eq!(values, vec![1.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.5, 1.0]);
    assert_eq!(q.alerts.len(), 2, "{:?}", q.alerts);
    let q = m
        .metric_query(
            &w.alice,
            "acme",
            "web-1",
            "node_cpu_seconds_total",
            None,
            None,
            500,
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        q.series
            .iter()
            .map(|s| s.labels.as_str())
            .collect::<Vec<_>>(),
        vec!["cpu=\"0\",mode=\"idle\"", "cpu=\"0\",mode=\"user\""]
    );
    let names = m
        .metric_names(&w.alice, "acme", "web-1", &meta())
        .await
        .unwrap();
    assert_eq!(
        names
            .iter()
            .map(|n| (n.name.as_str(), n.series))
            .collect::<Vec<_>>(),
        vec![("node_cpu_seconds_total", 2), ("node_load1", 1)]
    );
    assert!(
        m.metric_query(
            &w.gina,
            "acme",
            "web-1",
            "node_load1",
            None,
            None,
            500,
            &meta()
        )
        .await
        .is_err()
    );
    // A failing endpoint is recorded on the target, never an alert storm or a crash.
    *w.pages.page.lock().unwrap() = Err("cannot connect to the endpoint".into());
    w.clock.advance_secs(15);
    let r = m.scrape_due().await.unwrap();
    assert_eq!(
        r[0].error.as_deref(),
        Some("cannot connect to the endpoint")
    );
    let t = m
        .metrics_target(&w.alice, "acme", "web-1", &meta())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t.last_error.as_deref(),
        Some("cannot connect to the endpoint")
    );
    // Removing the target stops scraping.
    m.remove_metrics_target(&w.alice, "acme", "web-1", &meta())
        .await
        .unwrap();
    w.clock.advance_secs(60);
    let before = w.pages.fetched.lock().unwrap().len();
    assert!(m.scrape_due().await.unwrap().is_empty());
    assert_eq!(w.pages.fetched.lock().unwrap().len(), before);
}

async fn baselines_learn_then_alert_on_outliers(backend: Backend) {
    let w = world(backend).await;
    let m = &w.monitor;
    m.set_metrics_target(
        &w.alice,
        "acme",
        "web-1",
        "http://web-1:9100/metrics",
        10,
        &meta(),
    )
    .await
    .unwrap();
    m.create_metric_rule(
        &w.alice,
        "acme",
        &RuleInput {
            name: "load-baseline".into(),
            metric: "node_load1".into(),
            kind: Some("baseline".into()),
            k: Some(4.0),
            warmup: Some(20),
            ..RuleInput::default()
        },
        &meta(),
    )
    .await
    .unwrap();
    for i in 0..30 {
        let load = 2.0 + f64::from(i % 3) * 0.1;
        w.pages.set(&page(load, 100.0));
        let r = m.scrape_due().await.unwrap();
        assert_eq!(r[0].alerts_raised, 0, "sample {i}");
        w.clock.advance_secs(10);
    }
    assert!(
        metric_alerts(&w, "parapet-metric-load-baseline")
            .await
            .is_empty()
    );
    w.pages.set(&page(12.0, 100.0));
    let r = m.scrape_due().await.unwrap();
    assert_eq!(r[0].alerts_raised, 1, "{r:?}");
    let alerts = metric_alerts(&w, "parapet-metric-load-baseline").await;
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].title.contains("baseline"), "{}", alerts[0].title);
    // The learned state survives a new service (a restart): still judged, not re-learning.
    let m2 = Monitor::new(
        {
            let config = IamConfig {
                provider_mfa_required: false,
                ..IamConfig::default()
            };
            Arc::new(
                IamService::new(
                    w.store.clone(),
                    Env {
                        clock: w.clock.clone(),
                        entropy: Arc::new(OsEntropy),
                    },
                    config,
                )
                .unwrap(),
            )
        },
        MonitorConfig::default(),
    );
    m2.set_fetcher(w.pages.clone());
    w.clock.advance_secs(400);
    w.pages.set(&page(-20.0, 100.0));
    let r = m2.scrape_due().await.unwrap();
    assert_eq!(r[0].alerts_raised, 1, "{r:?}");
}

async fn samples_roll_up_hourly_and_expire_with_the_retention(backend: Backend) {
    let w = world(backend).await;
    let m = &w.monitor;
    m.set_metrics_target(
        &w.alice,
        "acme",
        "web-1",
        "http://10.0.0.5:9100/metrics",
        600,
        &meta(),
    )
    .await
    .unwrap();
    // Six scrapes an hour for three hours: loads 0..18.
    for i in 0..18 {
        w.pages.set(&page(f64::from(i), 100.0));
        m.scrape_due().await.unwrap();
        w.clock.advance_secs(600);
    }
    let from = Some(Timestamp(START - 3_600_000));
    let raw = m
        .metric_query(
            &w.alice,
            "acme",
            "web-1",
            "node_load1",
            from,
            None,
            1000,
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(raw.series[0].points.len(), 18);
    // Two days later the raw samples are folded into hourly means.
    w.clock.advance_secs(2 * 86_400);
    m.enforce_retention().await.unwrap();
    let q = m
        .metric_query(
            &w.alice,
            "acme",
            "web-1",
            "node_load1",
            from,
            None,
            1000,
            &meta(),
        )
        .await
        .unwrap();
    let means: Vec<f64> = q.series[0].points.iter().map(|p| p.1).collect();
    // START is on an hour boundary: three hourly means, each of its hour's six samples.
    assert_eq!(means, vec![2.5, 8.5, 14.5]);
    let total: f64 = (0..18).map(f64::from).sum();
    let counted: f64 = q.series[0]
        .points
        .iter()
        .map(|p| {
            let n = raw.series[0]
                .points
                .iter()
                .filter(|r| r.0 / 3_600_000 == p.0 / 3_600_000)
                .count();
            p.1 * n as f64
        })
        .sum();
    assert!((counted - total).abs() < 1e-6, "{counted} vs {total}");
    // Past the tenant's retention (90 days by default) nothing is left.
    w.clock.advance_secs(91 * 86_400);
    m.enforce_retention().await.unwrap();
    let q = m
        .metric_query(
            &w.alice,
            "acme",
            "web-1",
            "node_load1",
            from,
            None,
            1000,
            &meta(),
        )
        .await
        .unwrap();
    assert!(q.series.is_empty(), "{:?}", q.series);
}
