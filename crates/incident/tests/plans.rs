//! Emergency response plans over a real store on SQLite and PostgreSQL (X.1642 8.9): versions
//! keep their history, activation from an incident turns the checklist into tasks, drills are
//! recorded, and review reminders follow an injected clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{PW, START, World, meta};
use parapet_iam::IamError;
use parapet_incident::plan::{Component, DrillStep, LaunchConditions, Member, PlanContent};
use parapet_incident::{Change, Command, NewIncident, Severity, SlaPolicy, TaskStatus};
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
    activating_a_plan_turns_its_checklist_into_tasks,
    drills_and_review_reminders_follow_the_clock,
    a_playbook_turns_its_steps_into_linked_tasks,
    an_sla_change_makes_plan_reviews_due
);

const DAY: i64 = 24 * 3600;

fn content(checklist: &[&str]) -> PlanContent {
    PlanContent {
        scenario: "database outage".into(),
        notification: "page the on-call DBA, then inform the affected tenants".into(),
        launch: LaunchConditions {
            min_severity: Severity::High,
            categories: vec!["outage".into()],
        },
        team: vec![
            Member {
                name: "oncall".into(),
                role: "lead".into(),
                contact: "+1 555 0100".into(),
                deputy: String::new(),
            },
            Member {
                name: "responder".into(),
                role: "dba".into(),
                contact: "dba@example.net".into(),
                deputy: String::new(),
            },
        ],
        bia: vec![
            Component {
                name: "db".into(),
                priority: 1,
                depends_on: vec![],
                rto_secs: 3600,
                rpo_secs: 300,
            },
            Component {
                name: "api".into(),
                priority: 2,
                depends_on: vec!["db".into()],
                rto_secs: 1800,
                rpo_secs: 0,
            },
        ],
        checklist: checklist.iter().map(|s| s.to_string()).collect(),
        post_disposal_review: "within 5 working days".into(),
        tenant_data_access: "only with the tenant's written authorization".into(),
        ack_within_secs: 0,
    }
}

async fn world(backend: Backend) -> World {
    common::world_with(backend, SlaPolicy::default()).await
}

async fn activating_a_plan_turns_its_checklist_into_tasks(backend: Backend) {
    let w = world(backend).await;
    let responder = w
        .iam
        .login("responder", PW, &meta())
        .await
        .unwrap()
        .principal;
    w.svc
        .create_plan(
            &responder,
            "db-outage",
            content(&[
                "Fail over to the replica",
                "Check replication lag",
                "Inform tenants",
            ]),
            &meta(),
        )
        .await
        .unwrap();
    // A revision keeps the first version.
    let v = w
        .svc
        .revise_plan(
            &responder,
            "db-outage",
            content(&[
                "Fail over to the replica",
                "Check replication lag",
                "Restore from backup if lag > RPO",
                "Inform tenants",
            ]),
            "restore step added after the drill",
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(v.plan.version(), 2);
    assert_eq!(v.plan.revisions[0].content.checklist.len(), 3);
    // A tenant cannot read the provider's plans.
    let alice = w
        .iam
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;
    let e = w.svc.list_plans(&alice, &meta()).await.unwrap_err();
    assert!(
        matches!(e, IamError::NotFound(_) | IamError::Forbidden(_)),
        "{e:?}"
    );

    let open = |severity, category: &str| NewIncident {
        title: "primary database down".into(),
        severity: Some(severity),
        category: category.into(),
        responsible: Some("responder".into()),
        source: "api".into(),
        ..NewIncident::default()
    };
    // Below the launch conditions: refused, nothing changes.
    let low = w
        .svc
        .open(
            &responder,
            "acme",
            open(Severity::Medium, "outage"),
            &meta(),
        )
        .await
        .unwrap();
    let e = w
        .svc
        .apply(
            &responder,
            &low.id.to_string(),
            Command::ActivatePlan {
                plan: "db-outage".into(),
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)), "{e:?}");
    let i = w
        .svc
        .open(
            &responder,
            "acme",
            open(Severity::Critical, "outage"),
            &meta(),
        )
        .await
        .unwrap();
    let id = i.id.to_string();
    let i = w
        .svc
        .apply(
            &responder,
            &id,
            Command::ActivatePlan {
                plan: "db-outage".into(),
            },
            &meta(),
        )
        .await
        .unwrap();
    let titles: Vec<&str> = i.tasks.iter().map(|t| t.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Fail over to the replica",
            "Check replication lag",
            "Restore from backup if lag > RPO",
            "Inform tenants"
        ]
    );
    assert!(i.tasks.iter().all(|t| t.owner == "oncall"
        && t.origin == "plan:db-outage@v2"
        && t.status == TaskStatus::Open));
    let n = i.history.len();
    assert!(matches!(
        &i.history[n - 3].change,
        Change::PlanActivated { plan, version: 2, tasks } if plan == "db-outage" && tasks.len() == 4
    ));
    // The response team is paged.
    assert!(matches!(
        &i.history[n - 2].change,
        Change::TeamPaged { plan, members } if plan == "db-outage" && members.len() == 2
    ));
    // Then the tenant is told of the activation.
    assert!(
        matches!(&i.history[n - 1].change, Change::TenantNotified { message } if message.contains("db-outage"))
    );
    // Once per incident; an unknown plan is not found.
    let e = w
        .svc
        .apply(
            &responder,
            &id,
            Command::ActivatePlan {
                plan: "db-outage".into(),
            },
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
            Command::ActivatePlan {
                plan: "nope".into(),
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::NotFound(_)), "{e:?}");
    // The operation log: activation and plan changes are audited.
    let audit = w
        .store
        .list_audit(
            TenantCtx::new(w.admin.tenant.id),
            &AuditFilter {
                target: Some("plan:db-outage".into()),
                ..AuditFilter::default()
            },
            &Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.event.action.as_str()).collect();
    assert_eq!(actions, ["plan.revise", "plan.create"]);
}

async fn drills_and_review_reminders_follow_the_clock(backend: Backend) {
    let w = world(backend).await;
    let v = w
        .svc
        .create_plan(&w.admin, "ddos", content(&["Enable scrubbing"]), &meta())
        .await
        .unwrap();
    assert!(!v.review_due);
    assert_eq!(v.plan.review_due_at, Timestamp(START + 365 * DAY * 1000));
    // A drill, step by step, with its report.
    w.clock.advance_secs(30 * DAY);
    let v = w
        .svc
        .record_drill(
            &w.admin,
            "ddos",
            vec![
                DrillStep {
                    step: "Enable scrubbing".into(),
                    ok: true,
                    note: "4 min".into(),
                    at: None,
                },
                DrillStep {
                    step: "Inform tenants".into(),
                    ok: false,
                    note: "contact list outdated".into(),
                    at: None,
                },
            ],
            "contact list to be updated",
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(v.plan.drills.len(), 1);
    assert_eq!(v.plan.drills[0].version, 1);
    assert!(!v.plan.drills[0].steps[1].ok);
    let e = w
        .svc
        .record_drill(&w.admin, "ddos", vec![], "", &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)));
    // A year after the last review, the review is due.
    w.clock.set(Timestamp(START + 365 * DAY * 1000 - 1000));
    assert!(
        !w.svc
            .get_plan(&w.admin, "ddos", &meta())
            .await
            .unwrap()
            .review_due
    );
    w.clock.advance_secs(1);
    let list = w.svc.list_plans(&w.admin, &meta()).await.unwrap();
    assert!(list[0].review_due);
    // Reviewing moves the next review a year on.
    let v = w.svc.review_plan(&w.admin, "ddos", &meta()).await.unwrap();
    assert!(!v.review_due);
    // A change of a team member (or SLA, configuration, patch) makes it due at once.
    w.clock.advance_secs(DAY);
    let v = w
        .svc
        .plan_change_occurred(&w.admin, "ddos", "team member left: oncall", &meta())
        .await
        .unwrap();
    assert!(v.review_due);
    // A revision is a review.
    let v = w
        .svc
        .revise_plan(
            &w.admin,
            "ddos",
            content(&["Enable scrubbing", "Call the ISP"]),
            "new contact",
            &meta(),
        )
        .await
        .unwrap();
    assert!(!v.review_due);
    assert_eq!(v.plan.version(), 2);
}

async fn a_playbook_turns_its_steps_into_linked_tasks(backend: Backend) {
    use parapet_incident::{Playbook, PlaybookStep, StepKind};
    let w = world(backend).await;
    let responder = w
        .iam
        .login("responder", PW, &meta())
        .await
        .unwrap()
        .principal;
    let alice = w
        .iam
        .login("alice@acme", PW, &meta())
        .await
        .unwrap()
        .principal;
    w.svc
        .create_plan(
            &responder,
            "db-outage",
            content(&["Fail over", "Inform tenants"]),
            &meta(),
        )
        .await
        .unwrap();
    let step = |kind, title: &str| PlaybookStep {
        kind,
        title: title.into(),
        owner: None,
        plan: None,
    };
    let vuln = Playbook {
        name: "vulnerability".into(),
        description: "a vulnerable package".into(),
        categories: vec!["vulnerability".into()],
        types: vec![],
        steps: vec![
            step(StepKind::Patch, "Patch the affected package"),
            step(StepKind::ConfigFix, "Disable the vulnerable module"),
            PlaybookStep {
                owner: Some("alice@acme".into()),
                ..step(
                    StepKind::InformTenant,
                    "Confirm the patch window with the tenant",
                )
            },
        ],
    };
    let outage = Playbook {
        name: "outage".into(),
        description: String::new(),
        categories: vec!["outage".into()],
        types: vec![],
        steps: vec![PlaybookStep {
            plan: Some("db-outage".into()),
            ..step(StepKind::ActivatePlan, "")
        }],
    };
    // Tenants cannot write playbooks; invalid ones are refused.
    let e = w
        .svc
        .put_playbook(&alice, vuln.clone(), &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Forbidden(_)), "{e:?}");
    let bad = Playbook {
        steps: vec![],
        ..vuln.clone()
    };
    let e = w
        .svc
        .put_playbook(&responder, bad, &meta())
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Invalid(_)), "{e:?}");
    let e = w
        .svc
        .put_playbook(
            &responder,
            Playbook {
                steps: vec![PlaybookStep {
                    plan: Some("no-such-plan".into()),
                    ..step(StepKind::ActivatePlan, "")
                }],
                ..outage.clone()
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::NotFound(_)), "{e:?}");
    w.svc.put_playbook(&responder, vuln, &meta()).await.unwrap();
    w.svc
        .put_playbook(&responder, outage, &meta())
        .await
        .unwrap();
    assert_eq!(w.svc.playbooks(&responder).await.unwrap().len(), 2);

    let open = |severity, category: &str| NewIncident {
        title: "incident".into(),
        severity: Some(severity),
        category: category.into(),
        responsible: Some("responder".into()),
        source: "api".into(),
        ..NewIncident::default()
    };
    // Chosen by category: the vulnerability playbook opens a patch, a fix and a tenant task.
    let i = w
        .svc
        .open(
            &responder,
            "acme",
            open(Severity::High, "vulnerability"),
            &meta(),
        )
        .await
        .unwrap();
    let id = i.id.to_string();
    let i = w
        .svc
        .apply(
            &responder,
            &id,
            Command::RunPlaybook { playbook: None },
            &meta(),
        )
        .await
        .unwrap();
    let origins: Vec<&str> = i.tasks.iter().map(|t| t.origin.as_str()).collect();
    assert_eq!(
        origins,
        [
            "playbook:vulnerability:patch",
            "playbook:vulnerability:config-fix",
            "playbook:vulnerability:inform-tenant"
        ]
    );
    assert_eq!(
        i.tasks[0].owner, "responder",
        "default owner: the current step's"
    );
    assert_eq!(i.tasks[2].owner, "alice@acme");
    // The tenant follows the progress in its view.
    let (_, seen) = w.svc.get(&alice, &id, &meta()).await.unwrap();
    assert_eq!(seen.tasks.len(), 3);
    assert!(
        seen.history
            .iter()
            .any(|h| h.change.name() == "playbook-run")
    );
    // The outage playbook activates the plan: its checklist becomes tasks.
    let o = w
        .svc
        .open(
            &responder,
            "acme",
            open(Severity::Critical, "outage"),
            &meta(),
        )
        .await
        .unwrap();
    let o = w
        .svc
        .apply(
            &responder,
            &o.id.to_string(),
            Command::RunPlaybook {
                playbook: Some("outage".into()),
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(o.tasks.len(), 2, "{:?}", o.tasks);
    // The tenant is told of the activation at once (its notification timer is met).
    assert!(o.notified_at.is_some());
    let told = o
        .history
        .iter()
        .find_map(|h| match &h.change {
            Change::TenantNotified { message } => Some(message.clone()),
            _ => None,
        })
        .expect("the tenant is notified of the activation");
    assert!(
        told.contains("db-outage") && !told.contains("+1 555"),
        "{told}"
    );
    // Nothing applies to another category.
    let x = w
        .svc
        .open(&responder, "acme", open(Severity::Low, "phishing"), &meta())
        .await
        .unwrap();
    let e = w
        .svc
        .apply(
            &responder,
            &x.id.to_string(),
            Command::RunPlaybook { playbook: None },
            &meta(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::NotFound(_)), "{e:?}");
}

async fn an_sla_change_makes_plan_reviews_due(backend: Backend) {
    let w = world(backend).await;
    let responder = w
        .iam
        .login("responder", PW, &meta())
        .await
        .unwrap()
        .principal;
    let admin = w.iam.login("admin", PW, &meta()).await.unwrap().principal;
    w.svc
        .create_plan(&responder, "db-outage", content(&["Fail over"]), &meta())
        .await
        .unwrap();
    w.clock.set(Timestamp(START + 30 * DAY * 1000));
    let before = w.svc.list_plans(&responder, &meta()).await.unwrap();
    assert!(
        !before[0].review_due,
        "a new plan is reviewed within a year"
    );
    w.svc
        .update_sla_policy(
            &admin,
            "acme",
            &parapet_incident::PolicyPatch {
                hours: Some("5x8".into()),
                ..Default::default()
            },
            &meta(),
        )
        .await
        .unwrap();
    let after = w.svc.list_plans(&responder, &meta()).await.unwrap();
    assert!(after[0].review_due, "the SLA change calls for a review");
    assert_eq!(
        after[0].plan.review_due_at,
        Timestamp(START + 30 * DAY * 1000)
    );
}
