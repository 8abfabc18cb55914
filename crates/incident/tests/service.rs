//! The incident service over a real store on SQLite and PostgreSQL, with an injected clock: SLA
//! timers and escalations fire by moving the clock, never by sleeping. The fixture is
//! `tests/common` (shared with `alerts.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{START, login, meta, world};
use parapet_iam::IamError;
use parapet_incident::{
    Change, Command, ListFilter, NewIncident, Severity, SlaTimer, Step, report,
};
use parapet_store::{AuditFilter, AuditStore, IncidentStore, Page};
use parapet_store_sql::testkit::Backend;
use parapet_types::{Clock, TenantCtx, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    an_incident_goes_through_every_step_with_its_responsible_persons,
    sla_timers_breach_and_escalate_with_the_clock,
    a_paused_sla_clock_does_not_run,
    tenants_see_only_their_incidents,
    mtta_and_mttr_per_tenant_and_month,
    reports_never_carry_other_tenants_data,
);

fn new(title: &str, severity: Severity) -> NewIncident {
    NewIncident {
        title: title.into(),
        description: format!("{title}: suspicious logins from 198.51.100.7"),
        severity: Some(severity),
        category: "intrusion".into(),
        responsible: Some("responder".into()),
        source: "api".into(),
        alerts: vec![],
    }
}

fn advance(to: Step, who: &str, why: &str) -> Command {
    Command::Advance {
        to,
        responsible: who.into(),
        reason: why.into(),
    }
}

async fn an_incident_goes_through_every_step_with_its_responsible_persons(backend: Backend) {
    let w = world(backend).await;
    let responder = login(&w, "responder").await;
    let i = w
        .svc
        .open(
            &responder,
            "acme",
            new("Brute force on acme", Severity::High),
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(i.step, Step::Detecting);
    assert!(i.alerts.is_empty());
    // Alert ids are checked against the monitoring store: made-up ones are refused.
    let mut made_up = new("Made-up alerts", Severity::High);
    made_up.alerts = vec!["alert-1".into()];
    let e = w
        .svc
        .open(&responder, "acme", made_up, &meta())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, parapet_iam::IamError::Invalid(m) if m.contains("not an alert id")),
        "{e:?}"
    );
    let id = i.id.to_string();

    // A responsible person and a reason are required; unknown people are refused.
    let e = w
        .svc
        .apply(
            &responder,
            &id,
            advance(Step::Analysing, "", "triage"),
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)), "{e:?}");
    let e = w
        .svc
        .apply(
            &responder,
            &id,
            advance(Step::Analysing, "responder", "  "),
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)), "{e:?}");
    let e = w
        .svc
        .apply(
            &responder,
            &id,
            advance(Step::Analysing, "mallory", "x"),
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)), "{e:?}");
    // Tenant users are not responsible persons.
    let e = w
        .svc
        .apply(
            &responder,
            &id,
            advance(Step::Analysing, "alice", "x"),
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)), "{e:?}");

    w.clock.advance_secs(120);
    let people = [
        (Step::Analysing, "oncall"),
        (Step::Disposing, "responder"),
        (Step::Checking, "olivia"),
        (Step::Reporting, "admin"),
        (Step::Recorded, "responder"),
    ];
    for (step, who) in people {
        w.svc
            .apply(
                &responder,
                &id,
                advance(step, who, &format!("{step} done")),
                &meta(),
            )
            .await
            .unwrap();
        w.clock.advance_secs(60);
    }
    let (_, i) = w.svc.get(&w.admin, &id, &meta()).await.unwrap();
    assert_eq!(i.step, Step::Recorded);
    assert_eq!(i.acknowledged_at, Some(Timestamp(START + 120_000)));
    assert!(i.closed_at.is_some() && i.resolved_at.is_some());
    for (step, who) in people {
        assert_eq!(i.responsible.get(&step).map(String::as_str), Some(who));
    }
    assert_eq!(i.responsible.get(&Step::Detecting).unwrap(), "responder");
    // Every transition is in the history with actor, time and reason.
    let transitions: Vec<_> = i.transitions().collect();
    assert_eq!(transitions.len(), 6);
    for t in &transitions[1..] {
        assert_eq!(t.actor, "responder");
        assert!(t.reason.as_deref().is_some_and(|r| r.ends_with("done")));
    }

    // Recorded: moving on is refused; reopening keeps the history.
    let e = w
        .svc
        .apply(
            &responder,
            &id,
            advance(Step::Checking, "oncall", "again"),
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Conflict(_)), "{e:?}");
    let i = w
        .svc
        .apply(
            &responder,
            &id,
            Command::Reopen {
                to: None,
                responsible: "oncall".into(),
                reason: "the attacker came back".into(),
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(i.step, Step::Analysing);
    assert_eq!(i.reopened, 1);
    assert!(i.closed_at.is_none() && i.resolved_at.is_none());
    assert_eq!(i.transitions().count(), 7);
    // Skipping steps records the skipped ones with the reason.
    let i = w
        .svc
        .apply(
            &responder,
            &id,
            advance(Step::Reporting, "admin", "fixed by the earlier disposal"),
            &meta(),
        )
        .await
        .unwrap();
    let last = i.history.last().unwrap();
    assert_eq!(
        last.change,
        Change::Advanced {
            from: Step::Analysing,
            to: Step::Reporting,
            responsible: "admin".into(),
            skipped: vec![Step::Disposing, Step::Checking],
        }
    );
    assert_eq!(
        last.reason.as_deref(),
        Some("fixed by the earlier disposal")
    );

    // Every change is in the audit trail, in the same transaction as the change.
    let audit = w
        .store
        .list_audit(
            TenantCtx::new(w.admin.tenant.id),
            &AuditFilter {
                target: Some(format!("incident:acme/{id}")),
                ..AuditFilter::default()
            },
            &Page {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.event.action.as_str()).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "incident.advanced")
            .count(),
        6
    );
    assert!(actions.contains(&"incident.open"));
    assert!(actions.contains(&"incident.reopened"));
    let reasons: Vec<String> = audit
        .iter()
        .filter_map(|r| {
            r.event.details["history"][0]["reason"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert!(reasons.iter().any(|r| r == "the attacker came back"));
}

async fn sla_timers_breach_and_escalate_with_the_clock(backend: Backend) {
    let w = world(backend).await;
    let i = w
        .svc
        .open(&w.admin, "acme", new("DDoS", Severity::High), &meta())
        .await
        .unwrap();
    let id = i.id.to_string();
    let ack_due = Timestamp(START + 600_000);
    let row = w
        .store
        .get_incident(TenantCtx::new(w.admin.tenant.id), i.id)
        .await
        .unwrap();
    assert_eq!(row.next_due_at, Some(ack_due));

    w.clock.advance_secs(599);
    assert!(w.svc.fire_due(100).await.unwrap().is_empty());
    w.clock.advance_secs(1);
    let fired = w.svc.fire_due(100).await.unwrap();
    // The breach, then level 1 paged at once.
    assert_eq!(fired.len(), 2, "{fired:?}");
    assert_eq!(fired[0].timer, SlaTimer::Acknowledge);
    assert_eq!(fired[0].escalation, None);
    assert_eq!(fired[1].escalation, Some((0, 0)));
    assert_eq!(fired[1].notify, vec!["oncall"]);
    assert!(w.svc.fire_due(100).await.unwrap().is_empty(), "fires once");

    // Level 2 five minutes later, then the repeat round, then nothing more.
    w.clock.advance_secs(300);
    let fired = w.svc.fire_due(100).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].escalation, Some((1, 0)));
    assert_eq!(fired[0].notify, vec!["admin", "lead"]);
    assert_eq!(fired[0].due_at, Timestamp(ack_due.0 + 300_000));
    w.clock.advance_secs(300);
    let fired = w.svc.fire_due(100).await.unwrap();
    assert_eq!(fired[0].escalation, Some((0, 1)));
    // Acknowledging stops the escalation of that timer.
    w.svc
        .apply(
            &w.admin,
            &id,
            advance(Step::Analysing, "oncall", "on it"),
            &meta(),
        )
        .await
        .unwrap();
    w.clock.advance_secs(3600 - 1200);
    let fired = w.svc.fire_due(100).await.unwrap();
    // The notification timer (1 h) falls due now; the acknowledgement's escalation is over.
    assert!(
        fired.iter().all(|f| f.timer == SlaTimer::Notify),
        "{fired:?}"
    );
    assert_eq!(fired.len(), 2);
    assert_eq!(fired[0].due_at, Timestamp(START + 3_600_000));
    let (_, i) = w.svc.get(&w.admin, &id, &meta()).await.unwrap();
    assert_eq!(i.breaches(), 2);
    assert!(i.history.iter().any(|h| matches!(
        &h.change,
        Change::Escalated { level: 1, round: 0, notify, .. } if notify == &["admin", "lead"]
    )));
    // Breaches and escalations are audited as the system's actions.
    let audit = w
        .store
        .list_audit(
            TenantCtx::new(w.admin.tenant.id),
            &AuditFilter {
                action: Some("incident.escalated".into()),
                ..AuditFilter::default()
            },
            &Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 4);
    // Notifying the tenant meets the notification timer and ends its escalation.
    w.svc
        .apply(
            &w.admin,
            &id,
            Command::NotifyTenant {
                message: "we are on it".into(),
            },
            &meta(),
        )
        .await
        .unwrap();
    w.clock.advance_secs(600);
    assert!(w.svc.fire_due(100).await.unwrap().is_empty());
    // The resolution timer still runs: 4 h after opening.
    w.clock.set(Timestamp(START + 4 * 3_600_000));
    let fired = w.svc.fire_due(100).await.unwrap();
    assert_eq!(fired[0].timer, SlaTimer::Resolve);
}

async fn a_paused_sla_clock_does_not_run(backend: Backend) {
    let w = world(backend).await;
    let i = w
        .svc
        .open(&w.admin, "globex", new("Phishing", Severity::High), &meta())
        .await
        .unwrap();
    let id = i.id.to_string();
    w.clock.advance_secs(300);
    w.svc
        .apply(
            &w.admin,
            &id,
            Command::PauseSla {
                reason: "waiting for the tenant's logs".into(),
            },
            &meta(),
        )
        .await
        .unwrap();
    let row = w
        .store
        .get_incident(TenantCtx::new(w.admin.tenant.id), i.id)
        .await
        .unwrap();
    assert_eq!(row.next_due_at, None, "nothing is due while paused");
    w.clock.advance_secs(7200);
    assert!(w.svc.fire_due(100).await.unwrap().is_empty());
    w.svc
        .apply(&w.admin, &id, Command::ResumeSla, &meta())
        .await
        .unwrap();
    // 300 s of the 600 s target were used before the pause.
    w.clock.advance_secs(299);
    assert!(w.svc.fire_due(100).await.unwrap().is_empty());
    w.clock.advance_secs(1);
    let fired = w.svc.fire_due(100).await.unwrap();
    assert_eq!(fired[0].timer, SlaTimer::Acknowledge);
    assert_eq!(fired[0].due_at, Timestamp(START + 600_000 + 7_200_000));
    // Pausing twice, or resuming a running clock, is refused.
    let e = w
        .svc
        .apply(&w.admin, &id, Command::ResumeSla, &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Conflict(_)));
}

async fn tenants_see_only_their_incidents(backend: Backend) {
    let w = world(backend).await;
    let acme = w
        .svc
        .open(&w.admin, "acme", new("acme breach", Severity::Low), &meta())
        .await
        .unwrap();
    let globex = w
        .svc
        .open(
            &w.admin,
            "globex",
            new("globex breach", Severity::Low),
            &meta(),
        )
        .await
        .unwrap();
    let alice = login(&w, "alice@acme").await;
    let bob = login(&w, "bob@acme").await;
    let g_alice = login(&w, "alice@globex").await;
    // A tenant's admin reports an incident of its own tenant; the provider's admin answers.
    let own = w
        .svc
        .open(
            &alice,
            "acme",
            NewIncident {
                responsible: None,
                ..new("reported by acme", Severity::Medium)
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(own.current_responsible(), "admin");
    let e = w
        .svc
        .open(&alice, "globex", new("x", Severity::Low), &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::NotFound(_)), "{e:?}");

    let list = w
        .svc
        .list(
            &alice,
            None,
            ListFilter {
                limit: 100,
                ..ListFilter::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    let ids: Vec<_> = list.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&acme.id) && ids.contains(&own.id) && !ids.contains(&globex.id));
    let all = w
        .svc
        .list(
            &w.admin,
            None,
            ListFilter {
                limit: 100,
                ..ListFilter::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let only = w
        .svc
        .list(
            &w.admin,
            Some("globex"),
            ListFilter {
                limit: 100,
                ..ListFilter::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        only.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![globex.id]
    );
    // Another tenant's incident does not exist for them, even by id.
    let e = w
        .svc
        .get(&g_alice, &acme.id.to_string(), &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::NotFound(_)), "{e:?}");
    let e = w
        .svc
        .apply(
            &g_alice,
            &acme.id.to_string(),
            Command::Note {
                text: "hi".into(),
                internal: false,
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::NotFound(_)), "{e:?}");
    // Tenants add notes to their own incidents but do not handle them.
    w.svc
        .apply(
            &bob,
            &acme.id.to_string(),
            Command::Note {
                text: "we saw it too".into(),
                internal: true,
            },
            &meta(),
        )
        .await
        .unwrap();
    let e = w
        .svc
        .apply(
            &alice,
            &acme.id.to_string(),
            advance(Step::Analysing, "responder", "x"),
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Forbidden(_)), "{e:?}");
    // Internal notes of the staff never reach the tenant; a tenant's note is never internal.
    w.svc
        .apply(
            &w.admin,
            &acme.id.to_string(),
            Command::Note {
                text: "staff-only remark".into(),
                internal: true,
            },
            &meta(),
        )
        .await
        .unwrap();
    let (_, seen) = w
        .svc
        .get(&alice, &acme.id.to_string(), &meta())
        .await
        .unwrap();
    assert_eq!(seen.notes.len(), 1);
    assert_eq!(seen.notes[0].text, "we saw it too");
    assert!(!seen.notes[0].internal);
    let (_, staff) = w
        .svc
        .get(&w.admin, &acme.id.to_string(), &meta())
        .await
        .unwrap();
    assert_eq!(staff.notes.len(), 2);
}

async fn mtta_and_mttr_per_tenant_and_month(backend: Backend) {
    let w = world(backend).await;
    // Three acme incidents acknowledged after 60, 120 and 600 s, resolved after 1 h, 2 h, -.
    let mut ids = Vec::new();
    for n in 0..3 {
        let i = w
            .svc
            .open(
                &w.admin,
                "acme",
                new(&format!("i{n}"), Severity::Low),
                &meta(),
            )
            .await
            .unwrap();
        ids.push(i.id.to_string());
    }
    let ack = [60, 120, 600];
    let t0 = w.clock.now().0;
    for (n, id) in ids.iter().enumerate() {
        w.clock.set(Timestamp(t0 + ack[n] * 1000));
        w.svc
            .apply(
                &w.admin,
                id,
                advance(Step::Analysing, "responder", "ack"),
                &meta(),
            )
            .await
            .unwrap();
    }
    for (n, id) in ids.iter().take(2).enumerate() {
        w.clock.set(Timestamp(t0 + (n as i64 + 1) * 3_600_000));
        w.svc
            .apply(
                &w.admin,
                id,
                advance(Step::Reporting, "responder", "fixed"),
                &meta(),
            )
            .await
            .unwrap();
    }
    w.svc
        .open(&w.admin, "globex", new("g", Severity::Low), &meta())
        .await
        .unwrap();
    let stats = w
        .svc
        .stats(&w.admin, Some("acme"), None, &meta())
        .await
        .unwrap();
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(s.month, parapet_incident::sla::month_of(Timestamp(START)));
    assert_eq!((s.opened, s.acknowledged, s.resolved), (3, 3, 2));
    assert_eq!(s.mtta_mean_secs, Some(260.0));
    assert_eq!(s.mtta_median_secs, Some(120.0));
    assert_eq!(s.mttr_mean_secs, Some(5400.0));
    assert_eq!(s.mttr_median_secs, Some(5400.0));
    let all = w.svc.stats(&w.admin, None, None, &meta()).await.unwrap();
    assert_eq!(all.len(), 2);
    let alice = login(&w, "alice@globex").await;
    let theirs = w.svc.stats(&alice, None, None, &meta()).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].opened, 1);
}

async fn reports_never_carry_other_tenants_data(backend: Backend) {
    let w = world(backend).await;
    let mut ids = Vec::new();
    for t in ["acme", "globex", "initech"] {
        let i = w
            .svc
            .open(
                &w.admin,
                t,
                new(&format!("{t}-secret-title"), Severity::High),
                &meta(),
            )
            .await
            .unwrap();
        let id = i.id.to_string();
        w.svc
            .apply(
                &w.admin,
                &id,
                Command::Observable {
                    kind: "ip".into(),
                    value: format!("{t}-observable"),
                },
                &meta(),
            )
            .await
            .unwrap();
        w.svc
            .apply(
                &w.admin,
                &id,
                Command::Note {
                    text: format!("{t}-internal-remark"),
                    internal: true,
                },
                &meta(),
            )
            .await
            .unwrap();
        w.svc
            .apply(
                &w.admin,
                &id,
                Command::AddTask {
                    title: format!("{t}-task"),
                    owner: format!("alice@{t}"),
                },
                &meta(),
            )
            .await
            .unwrap();
        ids.push((t, id));
    }
    for (t, id) in &ids {
        let alice = login(&w, &format!("alice@{t}")).await;
        let (tenant, i) = w.svc.get(&alice, id, &meta()).await.unwrap();
        let r = report::build(&i, &tenant.name, w.clock.now());
        let html = report::to_html(&r);
        let pdf = String::from_utf8_lossy(&report::to_pdf(&r)).to_string();
        for doc in [&html, &pdf] {
            assert!(doc.contains(&format!("{t}-secret-title")));
            assert!(doc.contains(&format!("{t}-observable")));
            assert!(doc.contains(&format!("{t}-task")));
            assert!(
                !doc.contains("internal-remark"),
                "internal notes stay internal"
            );
            for (other, _) in ids.iter().filter(|(o, _)| o != t) {
                assert!(!doc.contains(other), "{t}'s report mentions {other}");
            }
        }
        assert!(pdf.starts_with("%PDF-1.4"));
    }
}
