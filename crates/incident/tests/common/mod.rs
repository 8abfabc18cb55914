//! The incident tests' one fixture: a fresh store (SQLite or PostgreSQL), a manual clock at
//! Friday 2027-01-15 08:00 UTC, the provider with responders, three tenants with an admin and a
//! member each, and the incident service.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use parapet_iam::{IamConfig, IamService, PasswordCost, Principal, RequestMeta};
use parapet_incident::{
    EscalationLevel, EscalationPolicy, IncidentService, Severity, SlaPolicy, SlaTargets,
};
use parapet_store::{AlertHit, AuditEvent, AuditOutcome, EventStore, StoredEvent};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Actor, Env, ManualClock, OsEntropy, Role, TenantCtx, TenantId, Timestamp};

pub const PW: &str = "a-long-enough-password-42";
/// Friday 2027-01-15 08:00:00 UTC.
pub const START: i64 = 1_800_000_000_000;

pub fn meta() -> RequestMeta {
    RequestMeta {
        source_ip: Some("192.0.2.9".into()),
        user_agent: Some("t".into()),
    }
}

pub struct World {
    pub clock: Arc<ManualClock>,
    pub iam: Arc<IamService>,
    pub svc: IncidentService,
    pub store: Arc<parapet_store_sql::SqlStore>,
    pub admin: Principal,
}

/// The built-in policy with short high-severity targets and a two-level escalation.
pub fn policy() -> SlaPolicy {
    let mut p = SlaPolicy::default();
    p.targets.insert(
        Severity::High,
        SlaTargets {
            acknowledge_secs: 600,
            notify_secs: 3600,
            resolve_secs: 4 * 3600,
        },
    );
    p.escalation = EscalationPolicy {
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
    p
}

pub async fn world(backend: Backend) -> World {
    world_with(backend, policy()).await
}

/// [`world`] with the incident service under `policy`.
pub async fn world_with(backend: Backend, policy: SlaPolicy) -> World {
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
        // Long enough for tests that move the clock past a yearly review.
        session_ttl_secs: 3 * 365 * 24 * 3600,
        session_idle_secs: 3 * 365 * 24 * 3600,
        max_token_ttl_secs: 3 * 365 * 24 * 3600,
        // Provider staff without a second factor (the default requires one).
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let iam = Arc::new(IamService::new(store.clone(), env, config).unwrap());
    iam.bootstrap(Some(PW.into())).await.unwrap();
    let admin = iam.login("admin", PW, &meta()).await.unwrap().principal;
    for (name, role) in [
        ("responder", Role::IncidentResponder),
        ("oncall", Role::IncidentResponder),
        ("olivia", Role::Operator),
    ] {
        iam.create_user(&admin, "provider", name, PW, role, &meta())
            .await
            .unwrap();
    }
    for t in ["acme", "globex", "initech"] {
        iam.create_tenant(&admin, t, &meta()).await.unwrap();
        iam.create_user(&admin, t, "alice", PW, Role::TenantAdmin, &meta())
            .await
            .unwrap();
        iam.create_user(&admin, t, "bob", PW, Role::TenantMember, &meta())
            .await
            .unwrap();
    }
    let svc = IncidentService::new(iam.clone(), policy);
    World {
        clock,
        iam,
        svc,
        store,
        admin,
    }
}

pub async fn login(w: &World, name: &str) -> Principal {
    w.iam.login(name, PW, &meta()).await.unwrap().principal
}

pub async fn tenant_id(w: &World, name: &str) -> TenantId {
    use parapet_store::IamStore;
    w.store
        .get_tenant(TenantCtx::new(w.admin.tenant.id), name)
        .await
        .unwrap()
        .id
}

/// Raises a monitoring alert of `tenant` through the event store (one event at `event_at`).
pub async fn raise_alert(
    w: &World,
    tenant: &str,
    rule: &str,
    severity: &str,
    host: &str,
    event_at: Timestamp,
) -> uuid::Uuid {
    let t = tenant_id(w, tenant).await;
    let event = uuid::Uuid::now_v7();
    let batch = uuid::Uuid::now_v7();
    let alert = uuid::Uuid::now_v7();
    let now = parapet_types::Clock::now(w.clock.as_ref());
    let e = StoredEvent {
        id: event,
        tenant: t,
        time: event_at,
        received_at: now,
        host: Some(host.into()),
        source: Some("test".into()),
        severity: severity.into(),
        message: Some(format!("{rule} on {host}")),
        asset: None,
        batch,
        raw: format!("{{\"rule\":\"{rule}\"}}"),
    };
    let hit = AlertHit {
        rule_id: rule.into(),
        rule_tenant: w.admin.tenant.id,
        title: format!("{rule} detected"),
        severity: severity.into(),
        group_key: host.into(),
        asset: None,
        event,
        event_time: event_at,
        new_alert_id: alert,
    };
    let audit = AuditEvent {
        time: now,
        tenant: Some(t),
        actor: Actor::System,
        action: "event.ingest".into(),
        target: format!("events:{tenant}"),
        source_ip: None,
        user_agent: None,
        outcome: AuditOutcome::Success,
        details: serde_json::json!({}),
    };
    let got = w
        .store
        .ingest_events(
            TenantCtx::new(t),
            None,
            "{}",
            &[e],
            &[hit],
            Timestamp(now.0 - 1),
            &audit,
        )
        .await
        .unwrap();
    assert_eq!(got.alerts.raised, vec![alert], "a new alert is raised");
    alert
}
