//! Incidents and notification over a real store on SQLite and PostgreSQL, with an injected
//! clock: SLA escalations page the channels of the persons each level names (honouring service
//! hours), acknowledging stops the pages, the tenant's security contact is told by hand or
//! automatically at the notification deadline, and every message is queued with its cause.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};

use parapet_iam::{IamConfig, IamService, PasswordCost, Principal, RequestMeta};
use parapet_incident::plan::{LaunchConditions, Member, PlanContent};
use parapet_incident::{
    Change, Command, EscalationLevel, EscalationPolicy, IncidentService, NewIncident, Severity,
    SlaPolicy, SlaTargets, Step,
};
use parapet_notify::{Caller, ChannelSpec, Delivery, NotifyConfig, NotifyService, Transport};
use parapet_store::{OutboxStatus, Page};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Env, ManualClock, OsEntropy, Role, Timestamp};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    escalations_page_people_and_the_tenant_is_told,
    plan_activation_pages_the_team_escalates_to_deputies_and_reports_to_the_tenant,
    drills_are_scheduled_reminded_once_and_findings_become_review_tasks,
);

const PW: &str = "a-long-enough-password-42";
/// 2027-01-15T08:00:00Z, a Friday, an hour before office hours.
const START: i64 = 1_800_000_000_000;

#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Delivery>>,
}

#[async_trait::async_trait]
impl Transport for Recorder {
    async fn send(&self, d: &Delivery) -> Result<(), String> {
        self.sent.lock().unwrap().push(d.clone());
        Ok(())
    }
}

fn meta() -> RequestMeta {
    RequestMeta::default()
}

fn spec(name: &str, kind: &str, to: &str) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        kind: kind.into(),
        to: if kind == "webhook" {
            vec![]
        } else {
            vec![to.into()]
        },
        url: (kind == "webhook").then(|| to.to_string()),
        format: None,
        person: None,
        security_contact: false,
        hours: None,
        min_severity: None,
        sources: vec![],
    }
}

fn recipients(d: &Delivery) -> String {
    match d {
        Delivery::Email { to, .. } | Delivery::Sms { to, .. } => to.join(","),
        Delivery::Webhook { url, .. } => url.clone(),
    }
}

async fn escalations_page_people_and_the_tenant_is_told(backend: Backend) {
    let (store, _) = testkit::fresh(backend).await.unwrap();
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
        session_ttl_secs: 30 * 24 * 3600,
        session_idle_secs: 30 * 24 * 3600,
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let iam = Arc::new(IamService::new(store.clone(), env.clone(), config).unwrap());
    let boot = iam.bootstrap(Some(PW.into())).await.unwrap();
    let admin: Principal = iam.login("admin", PW, &meta()).await.unwrap().principal;
    iam.create_user(
        &admin,
        "provider",
        "oncall",
        PW,
        Role::IncidentResponder,
        &meta(),
    )
    .await
    .unwrap();
    let acme = iam.create_tenant(&admin, "acme", &meta()).await.unwrap();
    let rec = Arc::new(Recorder::default());
    let notify = Arc::new(NotifyService::new(
        store.clone(),
        env.clone(),
        NotifyConfig::new([3; 32]),
        rec.clone(),
    ));
    let mut policy = SlaPolicy::default();
    policy.targets.insert(
        Severity::High,
        SlaTargets {
            acknowledge_secs: 600,
            notify_secs: 3600,
            resolve_secs: 4 * 3600,
        },
    );
    policy.escalation = EscalationPolicy {
        levels: vec![
            EscalationLevel {
                notify: vec!["oncall".into()],
                delay_secs: 300,
            },
            EscalationLevel {
                notify: vec!["admin".into(), "lead".into()],
                delay_secs: 300,
            },
        ],
        repeat: 1,
    };
    let svc = IncidentService::new(iam.clone(), policy).with_notify(notify.clone());
    let provider = boot.provider.clone();
    let sys = Caller::system();
    // The people's channels: oncall by e-mail; admin by SMS in office hours and e-mail always.
    let mut s = spec("oncall-mail", "email", "oncall@provider.example");
    s.person = Some("OnCall".into());
    notify.add_channel(&provider, &sys, &s).await.unwrap();
    let mut s = spec("admin-sms", "sms", "+4915100000001");
    s.person = Some("admin".into());
    s.hours = Some("5x8".into());
    notify.add_channel(&provider, &sys, &s).await.unwrap();
    let mut s = spec("admin-mail", "email", "admin@provider.example");
    s.person = Some("admin".into());
    notify.add_channel(&provider, &sys, &s).await.unwrap();
    // acme's security contact, and another channel that must not get incident notices.
    let mut s = spec("security", "webhook", "https://acme.example/hook");
    s.security_contact = true;
    notify.add_channel(&acme, &sys, &s).await.unwrap();
    notify
        .add_channel(&acme, &sys, &spec("devops", "email", "devops@acme.example"))
        .await
        .unwrap();

    let i = svc
        .open(
            &admin,
            "acme",
            NewIncident {
                title: "DDoS on the web tier".into(),
                description: "SYN flood".into(),
                severity: Some(Severity::High),
                category: "ddos".into(),
                responsible: Some("oncall".into()),
                source: "api".into(),
                alerts: vec![],
            },
            &meta(),
        )
        .await
        .unwrap();
    let id = i.id.to_string();
    let sent = |rec: &Recorder| -> Vec<String> {
        rec.sent.lock().unwrap().iter().map(recipients).collect()
    };

    // Acknowledgement breached at +10 min: level 1 pages oncall at once.
    clock.advance_secs(600);
    svc.fire_due(100).await.unwrap();
    notify.deliver_due(100).await.unwrap();
    assert_eq!(sent(&rec), vec!["oncall@provider.example"]);
    let Delivery::Email { subject, .. } = rec.sent.lock().unwrap()[0].clone() else {
        panic!()
    };
    assert!(
        subject.contains("escalation level 1") && subject.contains("acknowledge"),
        "{subject}"
    );
    // Level 2 at +15 min (08:15, before office hours): admin by e-mail, not by SMS; lead has
    // no channel.
    clock.advance_secs(300);
    svc.fire_due(100).await.unwrap();
    notify.deliver_due(100).await.unwrap();
    assert_eq!(sent(&rec)[1..], ["admin@provider.example"]);
    // The pages live in the provider's outbox, not in the tenant's.
    let page = Page {
        after: None,
        limit: 100,
    };
    assert_eq!(
        notify.outbox(&provider, None, &page).await.unwrap().len(),
        2
    );
    assert!(notify.outbox(&acme, None, &page).await.unwrap().is_empty());
    // Acknowledging stops the escalation: nothing more at the repeat round.
    svc.apply(
        &admin,
        &id,
        Command::Advance {
            to: Step::Analysing,
            responsible: "oncall".into(),
            reason: "on it".into(),
        },
        &meta(),
    )
    .await
    .unwrap();
    clock.advance_secs(300);
    svc.fire_due(100).await.unwrap();
    notify.deliver_due(100).await.unwrap();
    assert_eq!(sent(&rec).len(), 2, "{:?}", sent(&rec));

    // At the notification deadline (+1 h, 09:00: office hours) nobody told the tenant: its
    // security contact is told automatically, and the incident records it; the level-1 page for
    // the notify breach goes to oncall.
    clock.set(Timestamp(START + 3_600_000));
    svc.fire_due(100).await.unwrap();
    notify.deliver_due(100).await.unwrap();
    let all = sent(&rec);
    assert!(
        all.contains(&"https://acme.example/hook".to_string()),
        "{all:?}"
    );
    assert!(!all.contains(&"devops@acme.example".to_string()), "{all:?}");
    let (_, i) = svc.get(&admin, &id, &meta()).await.unwrap();
    assert_eq!(i.notified_at, Some(Timestamp(START + 3_600_000)));
    let acme_box = notify.outbox(&acme, None, &page).await.unwrap();
    assert_eq!(acme_box.len(), 1);
    assert_eq!(acme_box[0].status, OutboxStatus::Delivered);
    assert_eq!(acme_box[0].source, format!("incident:{id}"));
    // Later pages of the notify timer stop: it is met.
    let before = sent(&rec).len();
    clock.advance_secs(1200);
    svc.fire_due(100).await.unwrap();
    notify.deliver_due(100).await.unwrap();
    let after = sent(&rec);
    // Only the resolve timer's pages may come later; nothing about notify.
    assert_eq!(after.len(), before, "{after:?}");

    // Telling the tenant by hand queues the notice in the same step.
    svc.apply(
        &admin,
        &id,
        Command::NotifyTenant {
            message: "Mitigation is active; expect normal service within the hour.".into(),
        },
        &meta(),
    )
    .await
    .unwrap();
    let acme_box = notify.outbox(&acme, None, &page).await.unwrap();
    assert_eq!(acme_box.len(), 2);
    notify.deliver_due(100).await.unwrap();
    let last = rec.sent.lock().unwrap().last().cloned().unwrap();
    let Delivery::Webhook { body, .. } = last else {
        panic!("{last:?}")
    };
    assert!(body.contains("Mitigation is active"), "{body}");
}

fn deliveries_to(rec: &Recorder, to: &str) -> Vec<(String, String)> {
    rec.sent
        .lock()
        .unwrap()
        .iter()
        .filter(|d| recipients(d) == to)
        .map(|d| match d {
            Delivery::Email { subject, body, .. } => (subject.clone(), body.clone()),
            Delivery::Sms { text, .. } => (String::new(), text.clone()),
            Delivery::Webhook { body, .. } => (String::new(), body.clone()),
        })
        .collect()
}

async fn plan_activation_pages_the_team_escalates_to_deputies_and_reports_to_the_tenant(
    backend: Backend,
) {
    let (store, _) = testkit::fresh(backend).await.unwrap();
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
        session_ttl_secs: 30 * 24 * 3600,
        session_idle_secs: 30 * 24 * 3600,
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let iam = Arc::new(IamService::new(store.clone(), env.clone(), config).unwrap());
    let boot = iam.bootstrap(Some(PW.into())).await.unwrap();
    let admin: Principal = iam.login("admin", PW, &meta()).await.unwrap().principal;
    for u in ["oncall", "dora", "responder"] {
        iam.create_user(&admin, "provider", u, PW, Role::IncidentResponder, &meta())
            .await
            .unwrap();
    }
    let acme = iam.create_tenant(&admin, "acme", &meta()).await.unwrap();
    let globex = iam.create_tenant(&admin, "globex", &meta()).await.unwrap();
    for t in ["acme", "globex"] {
        iam.create_user(&admin, t, "alice", PW, Role::TenantAdmin, &meta())
            .await
            .unwrap();
    }
    let rec = Arc::new(Recorder::default());
    let notify = Arc::new(NotifyService::new(
        store.clone(),
        env.clone(),
        NotifyConfig::new([3; 32]),
        rec.clone(),
    ));
    let svc = IncidentService::new(iam.clone(), SlaPolicy::default()).with_notify(notify.clone());
    let provider = boot.provider.clone();
    let sys = Caller::system();
    for u in ["oncall", "dora", "responder"] {
        let mut s = spec(
            &format!("{u}-mail"),
            "email",
            &format!("{u}@provider.example"),
        );
        s.person = Some(u.into());
        notify.add_channel(&provider, &sys, &s).await.unwrap();
    }
    let mut s = spec("security", "webhook", "https://acme.example/hook");
    s.security_contact = true;
    notify.add_channel(&acme, &sys, &s).await.unwrap();
    let mut s = spec("security", "webhook", "https://globex.example/hook");
    s.security_contact = true;
    notify.add_channel(&globex, &sys, &s).await.unwrap();

    let plan = PlanContent {
        scenario: "web tier outage".into(),
        notification: "page the team, then tell the tenant".into(),
        launch: LaunchConditions {
            min_severity: Severity::High,
            categories: vec![],
        },
        team: vec![
            Member {
                name: "oncall".into(),
                role: "incident lead".into(),
                contact: "+1 555 0100".into(),
                deputy: "dora".into(),
            },
            Member {
                name: "responder".into(),
                role: "network engineer".into(),
                contact: "responder@provider.example".into(),
                deputy: String::new(),
            },
        ],
        bia: vec![],
        checklist: vec![
            "Fail over to the second site".into(),
            "Check the TLS certificates".into(),
        ],
        post_disposal_review: "review within five working days".into(),
        tenant_data_access: String::new(),
        ack_within_secs: 600,
    };
    svc.create_plan(&admin, "web-outage", plan, &meta())
        .await
        .unwrap();
    let i = svc
        .open(
            &admin,
            "acme",
            NewIncident {
                title: "Web tier down at acme".into(),
                description: "HTTP 502 everywhere".into(),
                severity: Some(Severity::High),
                category: "outage".into(),
                responsible: Some("oncall".into()),
                source: "api".into(),
                alerts: vec![],
            },
            &meta(),
        )
        .await
        .unwrap();
    let id = i.id.to_string();
    svc.apply(
        &admin,
        &id,
        Command::Note {
            text: "internal: blame the load balancer vendor".into(),
            internal: true,
        },
        &meta(),
    )
    .await
    .unwrap();

    // Activation pages each member through their own channels, in the provider's outbox.
    let i = svc
        .apply(
            &admin,
            &id,
            Command::ActivatePlan {
                plan: "web-outage".into(),
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(i.pages.len(), 2);
    assert!(i.history.iter().any(|h| matches!(&h.change,
        Change::TeamPaged { members, .. } if *members == vec!["oncall".to_string(), "responder".into()])));
    notify.deliver_due(100).await.unwrap();
    let pages = deliveries_to(&rec, "oncall@provider.example");
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert!(pages[0].0.contains("paged as incident lead"), "{pages:?}");
    assert_eq!(deliveries_to(&rec, "responder@provider.example").len(), 1);
    assert!(deliveries_to(&rec, "dora@provider.example").is_empty());
    let page = Page {
        after: None,
        limit: 100,
    };
    assert_eq!(
        notify.outbox(&provider, None, &page).await.unwrap().len(),
        2
    );

    // Each member acknowledges their own page; a tenant cannot.
    let responder = iam.login("responder", PW, &meta()).await.unwrap().principal;
    let i = svc
        .apply(
            &responder,
            &id,
            Command::AcknowledgePage { plan: None },
            &meta(),
        )
        .await
        .unwrap();
    let r = i.pages.iter().find(|p| p.member == "responder").unwrap();
    assert_eq!(r.acknowledged_by.as_deref(), Some("responder"));
    let again = svc
        .apply(
            &responder,
            &id,
            Command::AcknowledgePage { plan: None },
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(again, parapet_iam::IamError::Invalid(_)),
        "{again:?}"
    );
    let dora = iam.login("dora", PW, &meta()).await.unwrap().principal;
    let early = svc
        .apply(&dora, &id, Command::AcknowledgePage { plan: None }, &meta())
        .await
        .unwrap_err();
    assert!(
        matches!(early, parapet_iam::IamError::Invalid(_)),
        "the deputy is not paged yet: {early:?}"
    );

    // oncall stays silent: one second before the delay nothing happens, at the delay dora is
    // paged (and nobody else).
    clock.advance_secs(599);
    svc.fire_due(100).await.unwrap();
    notify.deliver_due(100).await.unwrap();
    assert!(deliveries_to(&rec, "dora@provider.example").is_empty());
    clock.advance_secs(1);
    svc.fire_due(100).await.unwrap();
    notify.deliver_due(100).await.unwrap();
    let d = deliveries_to(&rec, "dora@provider.example");
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].1.contains("you are their deputy"), "{d:?}");
    assert_eq!(deliveries_to(&rec, "responder@provider.example").len(), 1);
    // Fired once only.
    clock.advance_secs(3600);
    svc.fire_due(100).await.unwrap();
    notify.deliver_due(100).await.unwrap();
    assert_eq!(deliveries_to(&rec, "dora@provider.example").len(), 1);
    let i = svc
        .apply(&dora, &id, Command::AcknowledgePage { plan: None }, &meta())
        .await
        .unwrap();
    let o = i.pages.iter().find(|p| p.member == "oncall").unwrap();
    assert_eq!(o.acknowledged_by.as_deref(), Some("dora"));
    assert!(o.escalated_at.is_some());

    // The operation log takes entries; finishing the plan's tasks sends the response report to
    // acme only, without internal notes.
    svc.apply(
        &dora,
        &id,
        Command::LogOperation {
            plan: String::new(),
            text: "traffic moved to site B at the load balancer".into(),
        },
        &meta(),
    )
    .await
    .unwrap();
    let tasks: Vec<u32> = i.tasks.iter().map(|t| t.number).collect();
    assert_eq!(tasks.len(), 2);
    let before = deliveries_to(&rec, "https://acme.example/hook").len();
    svc.apply(
        &dora,
        &id,
        Command::CompleteTask { number: tasks[0] },
        &meta(),
    )
    .await
    .unwrap();
    notify.deliver_due(100).await.unwrap();
    assert_eq!(
        deliveries_to(&rec, "https://acme.example/hook").len(),
        before,
        "no report while a step is open"
    );
    let i = svc
        .apply(
            &dora,
            &id,
            Command::CompleteTask { number: tasks[1] },
            &meta(),
        )
        .await
        .unwrap();
    assert!(
        i.history.iter().any(
            |h| matches!(&h.change, Change::ResponseReportSent { plan } if plan == "web-outage")
        )
    );
    notify.deliver_due(100).await.unwrap();
    let acme_msgs = deliveries_to(&rec, "https://acme.example/hook");
    assert_eq!(acme_msgs.len(), before + 1, "{acme_msgs:?}");
    let report = &acme_msgs.last().unwrap().1;
    for want in [
        "Emergency response report",
        "web-outage (version 1)",
        "Web tier down at acme",
        "Operation log",
        "traffic moved to site B",
        "did not acknowledge, deputy dora paged",
        "Fail over to the second site",
        "review within five working days",
    ] {
        assert!(report.contains(want), "{want:?} in {report}");
    }
    for never in ["blame the load balancer", "globex", "+1 555 0100"] {
        assert!(!report.contains(never), "{never:?} leaked: {report}");
    }
    assert!(deliveries_to(&rec, "https://globex.example/hook").is_empty());
    assert!(
        notify
            .outbox(&globex, None, &page)
            .await
            .unwrap()
            .is_empty()
    );
    // Not sent twice when nothing changes.
    svc.apply(
        &dora,
        &id,
        Command::Note {
            text: "all good".into(),
            internal: false,
        },
        &meta(),
    )
    .await
    .unwrap();
    notify.deliver_due(100).await.unwrap();
    assert_eq!(
        deliveries_to(&rec, "https://acme.example/hook").len(),
        before + 1
    );

    // The tenant reads the report; another tenant cannot.
    let alice = iam
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;
    let (_, r) = svc
        .response_report(&alice, &id, None, &meta())
        .await
        .unwrap();
    let html = parapet_incident::report::to_html(&r);
    assert!(html.contains("traffic moved to site B"), "{html}");
    assert!(!html.contains("blame the load balancer"), "{html}");
    let gx = iam
        .login("alice@globex", PW, &meta())
        .await
        .unwrap()
        .principal;
    let e = svc
        .response_report(&gx, &id, None, &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, parapet_iam::IamError::NotFound(_)), "{e:?}");

    // The audit trail has the escalation.
    let trail = parapet_store::AuditStore::list_audit(
        store.as_ref(),
        parapet_types::TenantCtx::new(provider.id),
        &parapet_store::AuditFilter {
            action: Some("incident.page-escalated".into()),
            ..Default::default()
        },
        &page,
    )
    .await
    .unwrap();
    assert_eq!(trail.len(), 1);
}

async fn drills_are_scheduled_reminded_once_and_findings_become_review_tasks(backend: Backend) {
    use parapet_incident::drill::{DrillRecord, Participant};
    use parapet_incident::plan::DrillStep;
    const DAY: i64 = 24 * 3600;
    let (store, _) = testkit::fresh(backend).await.unwrap();
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
        session_ttl_secs: 3 * 365 * 24 * 3600,
        session_idle_secs: 3 * 365 * 24 * 3600,
        max_token_ttl_secs: 3 * 365 * 24 * 3600,
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let iam = Arc::new(IamService::new(store.clone(), env.clone(), config).unwrap());
    let boot = iam.bootstrap(Some(PW.into())).await.unwrap();
    let admin: Principal = iam.login("admin", PW, &meta()).await.unwrap().principal;
    for u in ["oncall", "dora"] {
        iam.create_user(&admin, "provider", u, PW, Role::IncidentResponder, &meta())
            .await
            .unwrap();
    }
    let rec = Arc::new(Recorder::default());
    let notify = Arc::new(NotifyService::new(
        store.clone(),
        env.clone(),
        NotifyConfig::new([3; 32]),
        rec.clone(),
    ));
    let svc = IncidentService::new(iam.clone(), SlaPolicy::default()).with_notify(notify.clone());
    let provider = boot.provider.clone();
    for u in ["oncall", "dora"] {
        let mut s = spec(
            &format!("{u}-mail"),
            "email",
            &format!("{u}@provider.example"),
        );
        s.person = Some(u.into());
        notify
            .add_channel(&provider, &Caller::system(), &s)
            .await
            .unwrap();
    }
    let member = |name: &str, role: &str| Member {
        name: name.into(),
        role: role.into(),
        contact: format!("{name}@provider.example"),
        deputy: String::new(),
    };
    svc.create_plan(
        &admin,
        "ddos",
        PlanContent {
            scenario: "DDoS on the edge".into(),
            notification: "page the team".into(),
            launch: LaunchConditions {
                min_severity: Severity::High,
                categories: vec![],
            },
            team: vec![member("oncall", "lead"), member("dora", "network")],
            bia: vec![],
            checklist: vec!["Enable scrubbing".into(), "Inform tenants".into()],
            post_disposal_review: String::new(),
            tenant_data_access: String::new(),
            ack_within_secs: 0,
        },
        &meta(),
    )
    .await
    .unwrap();
    let mails = |to: &str| deliveries_to(&rec, to);
    let tick = || async {
        let r = svc.remind_plans().await.unwrap();
        notify.deliver_due(100).await.unwrap();
        r
    };

    // Drills every 30 days from tomorrow: nothing due today, nothing sent.
    svc.schedule_drills(
        &admin,
        "ddos",
        30,
        Some(Timestamp(START + DAY * 1000)),
        &meta(),
    )
    .await
    .unwrap();
    assert!(tick().await.is_empty());
    assert!(svc.due_plans(&admin, &meta()).await.unwrap().is_empty());
    assert!(mails("oncall@provider.example").is_empty());
    let e = svc
        .schedule_drills(&admin, "ddos", 0, None, &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, parapet_iam::IamError::Invalid(_)), "{e:?}");

    // A day later the drill is due: listed, and each member is reminded once.
    clock.advance_secs(DAY);
    let due = svc.due_plans(&admin, &meta()).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].plan.as_str(), due[0].what), ("ddos", "drill"));
    assert_eq!(tick().await.len(), 1);
    assert_eq!(mails("oncall@provider.example").len(), 1);
    assert!(mails("oncall@provider.example")[0].0.contains("Drill due"));
    assert_eq!(mails("dora@provider.example").len(), 1);
    clock.advance_secs(3600);
    assert!(tick().await.is_empty(), "once per due drill");
    assert_eq!(mails("oncall@provider.example").len(), 1);

    // The drill: participants with attendance, timed steps, findings that become review tasks
    // (and make the review due); the next drill falls due 30 days later.
    clock.advance_secs(3600);
    let at = |mins: i64| Some(Timestamp(START + DAY * 1000 + 3_600_000 + mins * 60_000));
    let v = svc
        .record_drill_full(
            &admin,
            "ddos",
            DrillRecord {
                kind: "drill".into(),
                participants: vec![
                    Participant {
                        name: "oncall".into(),
                        role: "lead".into(),
                        attended: true,
                    },
                    Participant {
                        name: "dora".into(),
                        role: "network".into(),
                        attended: false,
                    },
                ],
                steps: vec![
                    DrillStep {
                        step: "Enable scrubbing".into(),
                        ok: true,
                        note: "4 min".into(),
                        at: at(5),
                    },
                    DrillStep {
                        step: "Inform tenants".into(),
                        ok: false,
                        note: "list outdated".into(),
                        at: at(20),
                    },
                ],
                findings: vec![
                    "Update the tenant contact list".into(),
                    "Train a second network engineer".into(),
                ],
                report: "scrubbing works; contacts do not".into(),
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(v.plan.drills.len(), 1);
    assert_eq!(v.plan.review_tasks.len(), 2);
    assert!(v.review_due, "findings make the review due");
    let next = v.plan.schedule.as_ref().unwrap().next_at;
    assert_eq!(
        next,
        Timestamp(START + DAY * 1000 + 7_200_000 + 30 * DAY * 1000)
    );
    // A step timed in the future is refused.
    let e = svc
        .record_drill_full(
            &admin,
            "ddos",
            DrillRecord {
                steps: vec![DrillStep {
                    step: "x".into(),
                    ok: true,
                    note: String::new(),
                    at: Some(Timestamp(START + 400 * DAY * 1000)),
                }],
                ..DrillRecord::default()
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, parapet_iam::IamError::Invalid(_)), "{e:?}");
    // The review reminder goes once.
    let sent = tick().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].what, "review");
    assert!(
        mails("dora@provider.example")
            .last()
            .unwrap()
            .0
            .contains("Review due")
    );
    assert!(tick().await.is_empty());
    // The drill report.
    let r = svc.drill_report(&admin, "ddos", 1, &meta()).await.unwrap();
    let html = parapet_incident::report::to_html(&r);
    for want in [
        "Drill 1 of plan ddos",
        "absent",
        "FAILED",
        "list outdated",
        "Update the tenant contact list",
        "1 of 2",
    ] {
        assert!(html.contains(want), "{want:?} in {html}");
    }
    assert!(matches!(
        svc.drill_report(&admin, "ddos", 2, &meta())
            .await
            .unwrap_err(),
        parapet_iam::IamError::NotFound(_)
    ));
    // Review tasks are done one by one.
    let v = svc
        .review_task_done(&admin, "ddos", 1, &meta())
        .await
        .unwrap();
    assert!(v.plan.review_tasks[0].done_at.is_some());
    assert!(
        svc.review_task_done(&admin, "ddos", 1, &meta())
            .await
            .is_err()
    );
    svc.review_plan(&admin, "ddos", &meta()).await.unwrap();

    // A team member leaving makes the review due at once, and the rest of the team is told.
    iam.set_user_status(
        &admin,
        "provider",
        "dora",
        parapet_store::UserStatus::Disabled,
        &meta(),
    )
    .await
    .unwrap();
    let before_dora = mails("dora@provider.example").len();
    let sent = tick().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].what, "review");
    assert!(
        mails("oncall@provider.example")
            .last()
            .unwrap()
            .0
            .contains("Review due")
    );
    assert_eq!(
        mails("dora@provider.example").len(),
        before_dora,
        "not the one who left"
    );
    let v = svc.get_plan(&admin, "ddos", &meta()).await.unwrap();
    assert_eq!(v.plan.gone_members, vec!["dora".to_string()]);
    assert!(tick().await.is_empty(), "once");

    // The yearly review: reviewed now, reminded a year later, not before.
    svc.review_plan(&admin, "ddos", &meta()).await.unwrap();
    clock.advance_secs(364 * DAY);
    let sent = tick().await;
    assert!(sent.iter().all(|d| d.what != "review"), "{sent:?}");
    clock.advance_secs(DAY);
    let sent = tick().await;
    assert!(sent.iter().any(|d| d.what == "review"), "{sent:?}");

    // Reminders are audited.
    let trail = parapet_store::AuditStore::list_audit(
        store.as_ref(),
        parapet_types::TenantCtx::new(provider.id),
        &parapet_store::AuditFilter {
            action: Some("plan.review-reminder".into()),
            ..Default::default()
        },
        &Page {
            after: None,
            limit: 100,
        },
    )
    .await
    .unwrap();
    assert_eq!(trail.len(), 3);
}
