//! The outbox and its worker over a real store on SQLite and PostgreSQL, with an injected clock:
//! retries wait by exponential backoff, exhausted messages become dead letters, a dead letter can
//! be retried or discarded, and every delivery records its latency from the causing event.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};

use parapet_notify::{
    Caller, ChannelSpec, Delivery, Message, NotifyConfig, NotifyService, Transport, sign,
};
use parapet_store::{
    AuditEvent, AuditFilter, AuditOutcome, AuditStore, IamStore, OutboxStatus, Page, Tenant,
    TenantStatus,
};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{
    Actor, Env, ManualClock, OsEntropy, TenantCtx, TenantId, TenantKind, Timestamp,
};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    failures_back_off_exponentially_then_dead_letter_and_retry,
    webhooks_are_signed_with_the_sealed_secret,
    tenants_see_only_their_channels_and_messages,
    alerts_are_routed_by_severity_and_rule,
    a_slow_receiver_does_not_hold_up_the_others,
);

const START: i64 = 1_800_000_000_000;

/// Records what it is asked to send and fails while `fail` is set.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Delivery>>,
    fail: Mutex<bool>,
}

#[async_trait::async_trait]
impl Transport for Recorder {
    async fn send(&self, d: &Delivery) -> Result<(), String> {
        self.sent.lock().unwrap().push(d.clone());
        if *self.fail.lock().unwrap() {
            Err("the receiver answered 500 Internal Server Error".into())
        } else {
            Ok(())
        }
    }
}

struct World {
    clock: Arc<ManualClock>,
    svc: NotifyService,
    rec: Arc<Recorder>,
    store: Arc<parapet_store_sql::SqlStore>,
    acme: Tenant,
    globex: Tenant,
}

fn event(action: &str) -> AuditEvent {
    AuditEvent {
        time: Timestamp(START),
        tenant: None,
        actor: Actor::System,
        action: action.into(),
        target: "t".into(),
        source_ip: None,
        user_agent: None,
        outcome: AuditOutcome::Success,
        details: serde_json::json!({}),
    }
}

async fn world(backend: Backend) -> World {
    let (store, _) = testkit::fresh(backend).await.unwrap();
    let provider = testkit::bootstrap_provider(&store, &event("system.bootstrap"))
        .await
        .unwrap();
    let mut tenants = Vec::new();
    for name in ["acme", "globex"] {
        let t = Tenant {
            id: TenantId(uuid::Uuid::now_v7()),
            name: name.into(),
            kind: TenantKind::Customer,
            status: TenantStatus::Active,
            created_at: Timestamp(START),
        };
        store
            .create_tenant(TenantCtx::new(provider.id), &t, &event("tenant.create"))
            .await
            .unwrap();
        tenants.push(t);
    }
    let clock = Arc::new(ManualClock::new(Timestamp(START)));
    let env = Env {
        clock: clock.clone(),
        entropy: Arc::new(OsEntropy),
    };
    let mut config = NotifyConfig::new([7; 32]);
    config.max_attempts = 4;
    config.backoff_base_ms = 10_000;
    config.backoff_max_ms = 25_000;
    let rec = Arc::new(Recorder::default());
    let store = Arc::new(store);
    let svc = NotifyService::new(store.clone(), env, config, rec.clone());
    let globex = tenants.pop().unwrap();
    let acme = tenants.pop().unwrap();
    World {
        clock,
        svc,
        rec,
        store,
        acme,
        globex,
    }
}

fn caller() -> Caller {
    Caller::system()
}

fn email(name: &str) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        kind: "email".into(),
        to: vec!["soc@acme.example".into()],
        url: None,
        format: None,
        person: None,
        security_contact: false,
        hours: None,
        min_severity: None,
        sources: vec![],
    }
}

async fn failures_back_off_exponentially_then_dead_letter_and_retry(backend: Backend) {
    let w = world(backend).await;
    w.svc
        .add_channel(&w.acme, &caller(), &email("soc"))
        .await
        .unwrap();
    let event_at = Timestamp(START - 3_000);
    let msg = Message {
        source: "alert:a1".into(),
        severity: Some("high".into()),
        subject: "[high] brute force".into(),
        body: "details".into(),
        event_at,
    };
    let channels = w.svc.list_channels(&w.acme).await.unwrap();
    let items = w.svc.enqueue(&w.acme, &channels, &msg, &[]).await.unwrap();
    assert_eq!(items.len(), 1);
    let id = items[0].id.to_string();
    *w.rec.fail.lock().unwrap() = true;

    // Attempt 1 now; then waits of 10 s, 20 s, 25 s (capped): nothing is sent before its time.
    let mut expected_sent = 0;
    for (n, wait) in [(1u32, 0i64), (2, 10_000), (3, 20_000), (4, 25_000)] {
        if wait > 0 {
            w.clock.advance_secs(wait / 1000 - 1);
            let r = w.svc.deliver_due(10).await.unwrap();
            assert_eq!(r.failed + r.dead + r.delivered, 0, "attempt {n} came early");
            w.clock.advance_secs(1);
        }
        let r = w.svc.deliver_due(10).await.unwrap();
        expected_sent += 1;
        assert_eq!(w.rec.sent.lock().unwrap().len(), expected_sent);
        let m = w.svc.message(&w.acme, &id).await.unwrap();
        assert_eq!(m.attempts, n);
        if n < 4 {
            assert_eq!(r.failed, 1);
            assert_eq!(m.status, OutboxStatus::Pending);
        } else {
            assert_eq!(r.dead, 1);
            assert_eq!(m.status, OutboxStatus::Dead);
            assert!(m.last_error.as_deref().unwrap().contains("500"));
        }
    }
    // A dead letter is not tried again by itself.
    w.clock.advance_secs(3600);
    assert_eq!(w.svc.deliver_due(10).await.unwrap().failed, 0);
    let dead = w
        .svc
        .outbox(
            &w.acme,
            Some(OutboxStatus::Dead),
            &Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);

    // Retried after the receiver recovers: delivered, with the latency from the event.
    *w.rec.fail.lock().unwrap() = false;
    w.svc.retry(&w.acme, &caller(), &id).await.unwrap();
    assert!(
        w.svc.retry(&w.acme, &caller(), &id).await.is_err(),
        "only dead letters are retried"
    );
    let r = w.svc.deliver_due(10).await.unwrap();
    assert_eq!(r.delivered, 1);
    let m = w.svc.message(&w.acme, &id).await.unwrap();
    assert_eq!(m.status, OutboxStatus::Delivered);
    let now = START + 10_000 + 20_000 + 25_000 + 3_600_000;
    assert_eq!(m.delivered_at, Some(Timestamp(now)));
    assert_eq!(m.delivered_at.unwrap().0 - m.event_at.0, now - event_at.0);
    // A delivered message cannot be discarded; the audit trail holds every step.
    assert!(w.svc.discard(&w.acme, &caller(), &id).await.is_err());
    let audit = w
        .store
        .list_audit(
            TenantCtx::new(w.acme.id),
            &AuditFilter::default(),
            &Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.event.action.as_str()).collect();
    for a in [
        "notify.channel.create",
        "notify.attempt-failed",
        "notify.dead-lettered",
        "notify.retry",
        "notify.delivered",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }

    // A second message discarded from the dead-letter list stays discarded.
    let items = w.svc.enqueue(&w.acme, &channels, &msg, &[]).await.unwrap();
    let id2 = items[0].id.to_string();
    w.svc.discard(&w.acme, &caller(), &id2).await.unwrap();
    w.clock.advance_secs(60);
    assert_eq!(w.svc.deliver_due(10).await.unwrap().delivered, 0);
    assert_eq!(
        w.svc.message(&w.acme, &id2).await.unwrap().status,
        OutboxStatus::Discarded
    );
}

async fn webhooks_are_signed_with_the_sealed_secret(backend: Backend) {
    let w = world(backend).await;
    let spec = ChannelSpec {
        name: "hook".into(),
        kind: "webhook".into(),
        to: vec![],
        url: Some("https://hooks.example/services/T0/SECRETPATH".into()),
        format: Some("slack".into()),
        person: None,
        security_contact: false,
        hours: None,
        min_severity: None,
        sources: vec![],
    };
    let created = w.svc.add_channel(&w.acme, &caller(), &spec).await.unwrap();
    // A tenant may not aim a webhook at the provider's internal network.
    for url in [
        "http://127.0.0.1:9/x",
        "http://169.254.169.254/latest",
        "http://[::1]/",
    ] {
        let mut inner = spec.clone();
        inner.name = "inner".into();
        inner.url = Some(url.into());
        let e = w
            .svc
            .add_channel(&w.acme, &caller(), &inner)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("internal address"), "{url}: {e}");
    }
    let secret = created.secret.unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created.channel.destination(), "https://hooks.example/…");
    // The secret is stored sealed, never in the clear, and not in the audit trail.
    use parapet_store::NotifyStore;
    let rec = w
        .store
        .get_channel(TenantCtx::new(w.acme.id), "hook")
        .await
        .unwrap();
    let sealed = rec.sealed_secret.unwrap();
    assert!(!sealed.contains(&secret) && sealed.starts_with("v1:"));
    let audit = w
        .store
        .list_audit(
            TenantCtx::new(w.acme.id),
            &AuditFilter::default(),
            &Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    for r in &audit {
        let text = serde_json::to_string(&r.event.details).unwrap();
        assert!(
            !text.contains(&secret) && !text.contains("SECRETPATH"),
            "{text}"
        );
    }
    w.svc
        .test_channel(&w.acme, &caller(), "HOOK")
        .await
        .unwrap();
    assert_eq!(w.svc.deliver_due(10).await.unwrap().delivered, 1);
    let sent = w.rec.sent.lock().unwrap().clone();
    let Delivery::Webhook {
        url,
        body,
        timestamp,
        signature,
    } = &sent[0]
    else {
        panic!("{sent:?}");
    };
    assert_eq!(url, "https://hooks.example/services/T0/SECRETPATH");
    assert_eq!(*timestamp, START / 1000);
    assert_eq!(*signature, sign(secret.as_bytes(), *timestamp, body));
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(v["text"].as_str().unwrap().contains("test notification"));
}

async fn tenants_see_only_their_channels_and_messages(backend: Backend) {
    let w = world(backend).await;
    w.svc
        .add_channel(&w.acme, &caller(), &email("soc"))
        .await
        .unwrap();
    // The same name in another tenant is fine; twice in one tenant is not (regardless of case).
    w.svc
        .add_channel(&w.globex, &caller(), &email("soc"))
        .await
        .unwrap();
    assert!(
        w.svc
            .add_channel(&w.acme, &caller(), &email("SOC"))
            .await
            .is_err()
    );
    let item = w.svc.test_channel(&w.acme, &caller(), "soc").await.unwrap();
    let acme_channel = w.svc.get_channel(&w.acme, "soc").await.unwrap();
    // globex finds neither acme's channel (by id) nor its message.
    assert!(
        w.svc
            .get_channel(&w.globex, &acme_channel.id.to_string())
            .await
            .is_err()
    );
    assert!(
        w.svc
            .message(&w.globex, &item.id.to_string())
            .await
            .is_err()
    );
    assert!(
        w.svc
            .discard(&w.globex, &caller(), &item.id.to_string())
            .await
            .is_err()
    );
    let page = Page {
        after: None,
        limit: 10,
    };
    assert!(
        w.svc
            .outbox(&w.globex, None, &page)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(w.svc.outbox(&w.acme, None, &page).await.unwrap().len(), 1);
    assert!(
        w.svc
            .remove_channel(&w.globex, &caller(), &acme_channel.id.to_string())
            .await
            .is_err()
    );
    // A message whose channel is removed goes to the dead-letter list, not into a loop.
    w.svc
        .remove_channel(&w.acme, &caller(), "soc")
        .await
        .unwrap();
    for _ in 0..4 {
        w.svc.deliver_due(10).await.unwrap();
        w.clock.advance_secs(60);
    }
    let m = w.svc.message(&w.acme, &item.id.to_string()).await.unwrap();
    assert_eq!(m.status, OutboxStatus::Dead);
    assert_eq!(m.last_error.as_deref(), Some("the channel was removed"));
}

async fn alerts_are_routed_by_severity_and_rule(backend: Backend) {
    let w = world(backend).await;
    // Everything to the log channel; high and above to the pager; one rule to the SOC mail.
    w.svc
        .add_channel(&w.acme, &caller(), &email("log"))
        .await
        .unwrap();
    let mut pager = email("pager");
    pager.min_severity = Some("high".into());
    w.svc.add_channel(&w.acme, &caller(), &pager).await.unwrap();
    let mut soc = email("soc");
    soc.sources = vec!["rule:brute-force".into()];
    w.svc.add_channel(&w.acme, &caller(), &soc).await.unwrap();
    let mut bad = email("bad");
    bad.min_severity = Some("urgent".into());
    assert!(w.svc.add_channel(&w.acme, &caller(), &bad).await.is_err());
    bad.min_severity = None;
    bad.sources = vec!["everything".into()];
    assert!(w.svc.add_channel(&w.acme, &caller(), &bad).await.is_err());

    let names = |items: &[parapet_store::OutboxItem], chans: &[parapet_notify::Channel]| {
        let mut n: Vec<String> = items
            .iter()
            .map(|i| {
                chans
                    .iter()
                    .find(|c| c.id == i.channel)
                    .unwrap()
                    .name
                    .clone()
            })
            .collect();
        n.sort();
        n
    };
    let chans = w.svc.list_channels(&w.acme).await.unwrap();
    let at = Timestamp(START - 1000);
    let items = w
        .svc
        .enqueue_for_alert(&w.acme, "a1", "port-scan", "medium", "Port scan", at)
        .await
        .unwrap();
    assert_eq!(names(&items, &chans), vec!["log"]);
    let items = w
        .svc
        .enqueue_for_alert(&w.acme, "a2", "port-scan", "critical", "Port scan", at)
        .await
        .unwrap();
    assert_eq!(names(&items, &chans), vec!["log", "pager"]);
    let items = w
        .svc
        .enqueue_for_alert(&w.acme, "a3", "brute-force", "low", "Brute force", at)
        .await
        .unwrap();
    assert_eq!(names(&items, &chans), vec!["log", "soc"]);
    assert_eq!(items[0].event_at, at);
    assert_eq!(items[0].source, "alert:a3");
    // globex has no channel: its alert queues nothing.
    let none = w
        .svc
        .enqueue_for_alert(&w.globex, "g1", "brute-force", "critical", "x", at)
        .await
        .unwrap();
    assert!(none.is_empty());
    // Delivered with the time from the alert's first event.
    assert_eq!(w.svc.deliver_due(100).await.unwrap().delivered, 5);
    let page = Page {
        after: None,
        limit: 100,
    };
    for m in w.svc.outbox(&w.acme, None, &page).await.unwrap() {
        assert_eq!(m.delivered_at.unwrap().0 - m.event_at.0, 1000);
    }
}

/// Holds deliveries to `slow@…` until released; records the others.
struct Gate {
    sent: Mutex<Vec<String>>,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl Transport for Gate {
    async fn send(&self, d: &Delivery) -> Result<(), String> {
        let Delivery::Email { to, .. } = d else {
            return Err("unexpected".into());
        };
        if to.iter().any(|t| t.starts_with("slow@")) {
            self.release.notified().await;
        }
        self.sent.lock().unwrap().push(to.join(","));
        Ok(())
    }
}

async fn a_slow_receiver_does_not_hold_up_the_others(backend: Backend) {
    let w = world(backend).await;
    let gate = Arc::new(Gate {
        sent: Mutex::new(Vec::new()),
        release: tokio::sync::Notify::new(),
    });
    let env = Env {
        clock: w.clock.clone(),
        entropy: Arc::new(OsEntropy),
    };
    let svc = NotifyService::new(
        w.store.clone(),
        env,
        NotifyConfig::new([7; 32]),
        gate.clone(),
    );
    let mut slow = email("slow");
    slow.to = vec!["slow@acme.example".into()];
    svc.add_channel(&w.acme, &caller(), &slow).await.unwrap();
    for n in 0..5 {
        let mut fast = email(&format!("fast{n}"));
        fast.to = vec![format!("fast{n}@acme.example")];
        svc.add_channel(&w.acme, &caller(), &fast).await.unwrap();
    }
    let msg = Message {
        source: "test".into(),
        severity: None,
        subject: "s".into(),
        body: "b".into(),
        event_at: Timestamp(START),
    };
    // The slow message is due first, so a worker taking messages one by one would wait on it.
    let channels = svc.list_channels(&w.acme).await.unwrap();
    let (slow, fast): (Vec<_>, Vec<_>) = channels.into_iter().partition(|c| c.name == "slow");
    svc.enqueue(&w.acme, &slow, &msg, &[]).await.unwrap();
    w.clock.advance_secs(1);
    svc.enqueue(&w.acme, &fast, &msg, &[]).await.unwrap();
    // The five fast deliveries complete while the slow one is still waiting; then it is let go.
    let watcher = async {
        let ok = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while gate.sent.lock().unwrap().len() < 5 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .is_ok();
        gate.release.notify_one();
        ok
    };
    let (run, fast_first) = tokio::join!(svc.deliver_due(100), watcher);
    assert!(fast_first, "the fast deliveries waited for the slow one");
    assert_eq!(run.unwrap().delivered, 6);
    assert_eq!(
        gate.sent.lock().unwrap().last().unwrap(),
        "slow@acme.example"
    );
}
