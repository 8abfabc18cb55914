//! Incidents opened from monitoring alerts (X.1642 8.6.1) and SLA policies per tenant with
//! service hours (7.2.2.3), on SQLite and PostgreSQL, with the injected clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{START, World, login, meta, raise_alert, world};
use parapet_iam::IamError;
use parapet_incident::{
    Change, Command, FromAlerts, Hours, NewIncident, PolicyPatch, Severity, SlaTimer, TargetsPatch,
};
use parapet_store::{AuditFilter, AuditStore, Page};
use parapet_store_sql::testkit::Backend;
use parapet_types::{TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    an_incident_opens_from_alerts_and_links_them,
    alerts_stay_within_their_tenant,
    a_tenant_sla_policy_with_office_hours_drives_the_timers,
    severe_alerts_open_incidents_by_themselves,
    sla_breaches_raise_alerts_once_in_the_tenants_alert_list,
);

fn from(alerts: &[uuid::Uuid]) -> FromAlerts {
    FromAlerts {
        alerts: alerts.iter().map(|a| a.to_string()).collect(),
        ..FromAlerts::default()
    }
}

async fn an_incident_opens_from_alerts_and_links_them(backend: Backend) {
    let w = world(backend).await;
    let responder = login(&w, "responder").await;
    let first = Timestamp(START - 3_600_000);
    let a1 = raise_alert(&w, "acme", "brute-force", "medium", "web-1", first).await;
    let a2 = raise_alert(
        &w,
        "acme",
        "priv-grant",
        "high",
        "db-1",
        Timestamp(START - 600_000),
    )
    .await;
    w.clock.set(Timestamp(START + 1000));

    let i = w
        .svc
        .open_from_alerts(&responder, from(&[a1, a2]), &meta())
        .await
        .unwrap();
    assert_eq!(i.source, "alerts");
    assert_eq!(
        i.severity,
        Severity::High,
        "the highest severity of the alerts"
    );
    assert_eq!(i.alerts, vec![a1.to_string(), a2.to_string()]);
    assert_eq!(i.title, "brute-force detected (+1 more alerts)");
    assert_eq!(
        i.responsible
            .get(&parapet_incident::Step::Detecting)
            .unwrap(),
        "responder"
    );
    assert_eq!(
        i.detected_at,
        Some(first),
        "detection = the first event's time"
    );
    // The timers run from the detection: high acknowledges in 600 s, already overdue.
    assert_eq!(
        i.deadline(SlaTimer::Acknowledge),
        Some(first.plus_secs(600))
    );
    let linked: Vec<_> = i
        .history
        .iter()
        .filter_map(|h| match &h.change {
            Change::AlertLinked { alert } => Some(alert.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(linked.len(), 2);
    assert_eq!(linked[0].rule, "brute-force");
    assert_eq!(linked[0].first_event_at, first);
    assert_eq!(linked[1].host, "db-1");
    for (kind, value) in [
        ("alert", a1.to_string()),
        ("rule", "priv-grant".into()),
        ("host", "web-1".into()),
    ] {
        assert!(
            i.observables
                .iter()
                .any(|o| o.kind == kind && o.value == value),
            "observable {kind} {value} in {:?}",
            i.observables
        );
    }
    let fired = w.svc.fire_due(100).await.unwrap();
    assert!(
        fired
            .iter()
            .any(|f| f.incident == i.id && f.timer == SlaTimer::Acknowledge),
        "the acknowledgement timer counted from the first event is breached: {fired:?}"
    );

    // An alert belongs to one incident: opening again is refused, naming the incident.
    let e = w
        .svc
        .open_from_alerts(&responder, from(&[a2]), &meta())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, IamError::Conflict(m) if m.contains(&i.id.to_string())),
        "{e:?}"
    );

    // A later alert is attached (by the command or directly); the same one twice is refused.
    let a3 = raise_alert(
        &w,
        "acme",
        "mass-delete",
        "critical",
        "files-1",
        Timestamp(START),
    )
    .await;
    let id = i.id.to_string();
    let i = w
        .svc
        .apply(
            &responder,
            &id,
            Command::MergeAlerts {
                alerts: vec![a3.to_string()],
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(i.alerts.len(), 3);
    assert_eq!(
        i.detected_at,
        Some(first),
        "a later event does not move the detection"
    );
    let e = w
        .svc
        .attach_alerts(&responder, &id, &[a3.to_string()], &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Conflict(_)), "{e:?}");
    let e = w
        .svc
        .attach_alerts(&responder, &id, &["not-an-id".into()], &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)), "{e:?}");

    // The alert pages can tell each alert's incident.
    let links = w
        .svc
        .incidents_of_alerts(&responder, &[a1, a2, a3])
        .await
        .unwrap();
    assert_eq!(links.len(), 3);
    assert!(links.iter().all(|(_, inc)| *inc == i.id));

    // Audited: the opening names the alerts; the attachment too.
    let records = w
        .store
        .list_audit(
            TenantCtx::new(w.admin.tenant.id),
            &AuditFilter::default(),
            &Page {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap();
    let open = records
        .iter()
        .find(|r| r.event.action == "incident.open" && r.event.target.ends_with(&id))
        .expect("the opening is audited");
    assert_eq!(
        open.event.details["alerts"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(
        records
            .iter()
            .any(|r| r.event.action == "incident.alert-linked" && r.event.target.ends_with(&id))
    );
}

async fn alerts_stay_within_their_tenant(backend: Backend) {
    let w = world(backend).await;
    let acme_alert = raise_alert(&w, "acme", "r1", "high", "h1", Timestamp(START)).await;
    let globex_alert = raise_alert(&w, "globex", "r1", "high", "h1", Timestamp(START)).await;
    let responder = login(&w, "responder").await;

    // One incident is of one tenant.
    let e = w
        .svc
        .open_from_alerts(&responder, from(&[acme_alert, globex_alert]), &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)), "{e:?}");

    // Another tenant's users cannot see, open from, or attach acme's alert.
    let globex_admin = login(&w, "alice@globex").await;
    let e = w
        .svc
        .open_from_alerts(&globex_admin, from(&[acme_alert]), &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::NotFound(_)), "{e:?}");
    assert!(
        w.svc
            .incidents_of_alerts(&globex_admin, &[acme_alert])
            .await
            .unwrap()
            .is_empty()
    );
    let g = w
        .svc
        .open(
            &responder,
            "globex",
            NewIncident {
                title: "globex".into(),
                severity: Some(Severity::Low),
                ..NewIncident::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    let e = w
        .svc
        .attach_alerts(
            &responder,
            &g.id.to_string(),
            &[acme_alert.to_string()],
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, IamError::Invalid(_)),
        "acme's alert on a globex incident: {e:?}"
    );

    // A tenant admin may open an incident from its own alert (answered by the provider).
    let acme_admin = login(&w, "alice@acme").await;
    let i = w
        .svc
        .open_from_alerts(&acme_admin, from(&[acme_alert]), &meta())
        .await
        .unwrap();
    assert_eq!(i.alerts, vec![acme_alert.to_string()]);
    // An unknown alert id is not found.
    let e = w
        .svc
        .open_from_alerts(&responder, from(&[uuid::Uuid::now_v7()]), &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::NotFound(_)), "{e:?}");
}

async fn a_tenant_sla_policy_with_office_hours_drives_the_timers(backend: Backend) {
    let w = world(backend).await;
    let responder = login(&w, "responder").await;
    let acme_admin = login(&w, "alice@acme").await;

    // Only the provider's staff set policies; a tenant reads its own (without paging lists).
    let patch = PolicyPatch {
        hours: Some("5x8".into()),
        targets: [(
            "critical".to_string(),
            TargetsPatch {
                acknowledge_secs: Some(3600),
                ..TargetsPatch::default()
            },
        )]
        .into(),
        ..PolicyPatch::default()
    };
    let e = w
        .svc
        .update_sla_policy(&acme_admin, "acme", &patch, &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Forbidden(_)), "{e:?}");
    let set = w
        .svc
        .update_sla_policy(&w.admin, "acme", &patch, &meta())
        .await
        .unwrap();
    assert_eq!(set.source, "tenant");
    assert_eq!(set.policy.hours, Hours::OfficeHours);
    assert_eq!(
        set.policy.targets_for(Severity::Critical).acknowledge_secs,
        3600
    );
    let seen = w.svc.sla_policy(&acme_admin, None, &meta()).await.unwrap();
    assert_eq!(seen.policy.hours, Hours::OfficeHours);
    assert!(
        seen.policy
            .escalation
            .levels
            .iter()
            .all(|l| l.notify.is_empty())
    );
    let e = w
        .svc
        .sla_policy(&acme_admin, Some("globex"), &meta())
        .await
        .unwrap_err();
    assert!(
        matches!(e, IamError::NotFound(_) | IamError::Forbidden(_)),
        "{e:?}"
    );

    // Bad policies are refused whole.
    let bad = PolicyPatch {
        targets: [(
            "low".to_string(),
            TargetsPatch {
                acknowledge_secs: Some(10 * 86_400),
                resolve_secs: Some(86_400),
                ..TargetsPatch::default()
            },
        )]
        .into(),
        ..PolicyPatch::default()
    };
    let e = w
        .svc
        .update_sla_policy(&w.admin, "acme", &bad, &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)), "{e:?}");
    let e = w
        .svc
        .update_sla_policy(
            &w.admin,
            "acme",
            &PolicyPatch {
                hours: Some("6x9".into()),
                ..PolicyPatch::default()
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)), "{e:?}");

    // The provider's own policy is the default of tenants without one.
    let default = PolicyPatch {
        targets: [(
            "critical".to_string(),
            TargetsPatch {
                acknowledge_secs: Some(1800),
                ..TargetsPatch::default()
            },
        )]
        .into(),
        ..PolicyPatch::default()
    };
    w.svc
        .update_sla_policy(&w.admin, "provider", &default, &meta())
        .await
        .unwrap();
    let g = w
        .svc
        .sla_policy(&w.admin, Some("globex"), &meta())
        .await
        .unwrap();
    assert_eq!(g.source, "provider");

    // Friday 16:30 UTC: acme's hour of acknowledgement in 5x8 ends Monday 09:30; globex's
    // 30 minutes in 7x24 end at 17:00.
    w.clock.set(Timestamp(START + 8 * 3_600_000 + 1_800_000));
    let critical = |t: &str| NewIncident {
        title: format!("{t} outage"),
        severity: Some(Severity::Critical),
        ..NewIncident::default()
    };
    let a = w
        .svc
        .open(&responder, "acme", critical("acme"), &meta())
        .await
        .unwrap();
    let g = w
        .svc
        .open(&responder, "globex", critical("globex"), &meta())
        .await
        .unwrap();
    let monday_0930 = Timestamp(1_800_264_600_000);
    assert_eq!(a.deadline(SlaTimer::Acknowledge), Some(monday_0930));
    assert_eq!(
        g.deadline(SlaTimer::Acknowledge),
        Some(Timestamp(START + 9 * 3_600_000))
    );

    // Over the weekend only globex breaches.
    w.clock.set(Timestamp(1_800_264_600_000 - 60_000));
    let fired = w.svc.fire_due(100).await.unwrap();
    assert!(
        fired
            .iter()
            .any(|f| f.incident == g.id && f.timer == SlaTimer::Acknowledge)
    );
    assert!(!fired.iter().any(|f| f.incident == a.id), "{fired:?}");
    // A pause over the weekend costs no service time; Monday 09:30 acme breaches.
    w.clock.set(Timestamp(monday_0930.0 + 1000));
    let fired = w.svc.fire_due(100).await.unwrap();
    assert!(
        fired
            .iter()
            .any(|f| f.incident == a.id && f.timer == SlaTimer::Acknowledge),
        "{fired:?}"
    );

    // Audited on the tenant's trail.
    let acme = common::tenant_id(&w, "acme").await;
    let records = w
        .store
        .list_audit(
            TenantCtx::new(acme),
            &AuditFilter::default(),
            &Page {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap();
    assert!(records.iter().any(|r| r.event.action == "sla.policy-set"));
}

async fn severe_alerts_open_incidents_by_themselves(backend: Backend) {
    let w = world(backend).await;
    let acme = {
        use parapet_store::IamStore;
        w.store
            .get_tenant(TenantCtx::new(w.admin.tenant.id), "acme")
            .await
            .unwrap()
    };
    let high = raise_alert(&w, "acme", "r-high", "high", "h1", Timestamp(START)).await;
    let low = raise_alert(&w, "acme", "r-low", "low", "h2", Timestamp(START)).await;
    // Off by default.
    assert!(
        w.svc
            .auto_open(&acme, &[high, low])
            .await
            .unwrap()
            .is_empty()
    );
    w.svc
        .update_sla_policy(
            &w.admin,
            "acme",
            &PolicyPatch {
                auto_open: Some("high".into()),
                ..PolicyPatch::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    let opened = w.svc.auto_open(&acme, &[high, low]).await.unwrap();
    assert_eq!(opened.len(), 1, "only the high alert opens an incident");
    let responder = login(&w, "responder").await;
    let (_, i) = w
        .svc
        .get(&responder, &opened[0].to_string(), &meta())
        .await
        .unwrap();
    assert_eq!(i.alerts, vec![high.to_string()]);
    assert_eq!(i.history[0].actor, "system");
    // Once linked, an alert opens nothing more.
    assert!(w.svc.auto_open(&acme, &[high]).await.unwrap().is_empty());
    let _: &World = &w;
}

async fn sla_breaches_raise_alerts_once_in_the_tenants_alert_list(backend: Backend) {
    use parapet_store::{AlertFilter, AlertStore};
    let w = world(backend).await;
    let monitor = std::sync::Arc::new(parapet_monitor::Monitor::new(
        w.iam.clone(),
        parapet_monitor::MonitorConfig::default(),
    ));
    w.svc.set_monitor(monitor);
    let responder = login(&w, "responder").await;
    let i = w
        .svc
        .open(
            &responder,
            "acme",
            NewIncident {
                title: "Ransomware on acme-fs".into(),
                severity: Some(Severity::Critical),
                category: "malware".into(),
                source: "api".into(),
                ..NewIncident::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    let acme = common::tenant_id(&w, "acme").await;
    let globex = common::tenant_id(&w, "globex").await;
    let sla_alerts = |t| {
        let store = w.store.clone();
        async move {
            store
                .list_alerts(
                    TenantCtx::new(t),
                    &AlertFilter {
                        rule_id: Some(parapet_incident::SLA_BREACH_RULE.into()),
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
    };
    // Nothing before the deadline.
    w.svc.fire_due(100).await.unwrap();
    assert!(sla_alerts(acme).await.is_empty());
    // Past the acknowledgement target: one alert for acme, of the incident's severity.
    w.clock.advance_secs(24 * 3600);
    let fired = w.svc.fire_due(100).await.unwrap();
    assert!(
        fired.iter().any(|f| f.incident == i.id
            && f.timer == SlaTimer::Acknowledge
            && f.escalation.is_none()),
        "{fired:?}"
    );
    let breaches = fired.iter().filter(|f| f.escalation.is_none()).count();
    let alerts = sla_alerts(acme).await;
    assert_eq!(alerts.len(), breaches, "{alerts:?}");
    assert!(alerts.iter().all(|a| a.severity == "critical"));
    assert!(
        alerts
            .iter()
            .any(|a| a.title == "SLA breached: acknowledge of incident Ransomware on acme-fs"),
        "{alerts:?}"
    );
    // Firing again raises nothing new; other tenants see nothing.
    w.clock.advance_secs(3600);
    w.svc.fire_due(100).await.unwrap();
    assert_eq!(sla_alerts(acme).await.len(), breaches);
    assert!(sla_alerts(globex).await.is_empty());
}
