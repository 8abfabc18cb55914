//! The storage conformance suite: the same checks on SQLite and on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use parapet_store::{
    AuditEvent, AuditFilter, AuditOutcome, AuditStore, Credential, CredentialKind, IamStore, Page,
    StoreError, Tenant, TenantStatus, User, UserStatus,
};
use parapet_store_sql::testkit::{self, Backend};
use parapet_store_sql::{Db, SqlStore};
use parapet_types::{
    Actor, CredentialId, Role, TenantCtx, TenantId, TenantKind, Timestamp, UserId,
};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    bootstrap_creates_exactly_one_provider_under_concurrency,
    every_call_stays_within_its_tenant,
    failed_changes_write_no_audit_record,
    audit_table_is_append_only,
    credentials_authenticate_only_while_live,
    disabling_a_user_revokes_its_credentials,
    audit_search_filters_and_pages,
);

fn id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

fn tenant(name: &str, kind: TenantKind) -> Tenant {
    Tenant {
        id: TenantId(id()),
        name: name.into(),
        kind,
        status: TenantStatus::Active,
        created_at: Timestamp(1_000),
    }
}

fn user(t: &Tenant, name: &str, role: Role) -> User {
    User {
        id: UserId(id()),
        tenant: t.id,
        username: name.into(),
        role,
        status: UserStatus::Active,
        password_hash: "$argon2id$fake".into(),
        created_at: Timestamp(1_000),
        last_login_at: None,
    }
}

fn ev(t: Option<&Tenant>, action: &str) -> AuditEvent {
    AuditEvent {
        time: Timestamp(2_000),
        tenant: t.map(|t| t.id),
        actor: Actor::System,
        action: action.into(),
        target: "test".into(),
        source_ip: Some("127.0.0.1".into()),
        user_agent: None,
        outcome: AuditOutcome::Success,
        details: serde_json::json!({}),
    }
}

fn cred(t: &Tenant, u: &User, secret: &[u8], expires: i64) -> Credential {
    Credential {
        id: CredentialId(id()),
        tenant: t.id,
        user: u.id,
        kind: CredentialKind::ApiToken,
        name: "t".into(),
        secret_hash: secret.to_vec(),
        scopes: vec!["read".into()],
        created_at: Timestamp(1_000),
        expires_at: Timestamp(expires),
        revoked_at: None,
    }
}

/// A store with a provider, two customers and a user in each.
async fn world(backend: Backend) -> (SqlStore, Tenant, Tenant, Tenant, User, User) {
    let (s, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = tenant("provider", TenantKind::Provider);
    let admin = user(&p, "admin", Role::SecurityAdmin);
    assert!(
        s.bootstrap_provider(&p, &admin, &ev(Some(&p), "system.bootstrap"))
            .await
            .unwrap()
    );
    let a = tenant("acme", TenantKind::Customer);
    let g = tenant("globex", TenantKind::Customer);
    for t in [&a, &g] {
        s.create_tenant(TenantCtx::new(p.id), t, &ev(Some(t), "tenant.create"))
            .await
            .unwrap();
    }
    let ua = user(&a, "alice", Role::TenantAdmin);
    let ug = user(&g, "gina", Role::TenantAdmin);
    s.create_user(TenantCtx::new(a.id), &ua, &ev(Some(&a), "user.create"))
        .await
        .unwrap();
    s.create_user(TenantCtx::new(g.id), &ug, &ev(Some(&g), "user.create"))
        .await
        .unwrap();
    (s, p, a, g, ua, ug)
}

async fn audit_count(s: &SqlStore, p: &Tenant) -> usize {
    s.list_audit(
        TenantCtx::new(p.id),
        &AuditFilter::default(),
        &Page {
            after: None,
            limit: 1000,
        },
    )
    .await
    .unwrap()
    .len()
}

async fn bootstrap_creates_exactly_one_provider_under_concurrency(backend: Backend) {
    let (s, _) = testkit::fresh(backend)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut handles = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let p = tenant(&format!("provider{i}"), TenantKind::Provider);
            let admin = user(&p, "admin", Role::SecurityAdmin);
            s.bootstrap_provider(&p, &admin, &ev(Some(&p), "system.bootstrap"))
                .await
        }));
    }
    let mut created = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(true) => created += 1,
            Ok(false) => {}
            Err(e) => panic!("bootstrap failed: {e}"),
        }
    }
    assert_eq!(created, 1);
    let p = s.provider_tenant().await.unwrap().unwrap();
    let all = s
        .list_tenants(
            TenantCtx::new(p.id),
            &Page {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(audit_count(&s, &p).await, 1, "exactly one bootstrap record");
}

async fn every_call_stays_within_its_tenant(backend: Backend) {
    let (s, p, a, g, ua, ug) = world(backend).await;
    let page = Page {
        after: None,
        limit: 100,
    };
    let ca = TenantCtx::new(a.id);
    // A customer sees only itself; the provider sees all.
    let seen = s.list_tenants(ca, &page).await.unwrap();
    assert_eq!(
        seen.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["acme"]
    );
    assert_eq!(
        s.list_tenants(TenantCtx::new(p.id), &page)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(matches!(
        s.get_tenant(ca, "globex").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_tenant(ca, &g.id.to_string()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get_tenant(ca, "acme").await.unwrap().id, a.id);
    // Users of another tenant are invisible and untouchable.
    let users = s.list_users(ca, &page).await.unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    assert!(matches!(
        s.get_user(ca, "gina").await,
        Err(StoreError::NotFound)
    ));
    let r = s
        .set_user_status(
            ca,
            ug.id,
            UserStatus::Disabled,
            &ev(Some(&a), "user.disable"),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)));
    // Writing a record into another tenant through one's own context is refused.
    let intruder = user(&g, "intruder", Role::TenantAdmin);
    assert!(
        s.create_user(ca, &intruder, &ev(Some(&a), "user.create"))
            .await
            .is_err()
    );
    // Only the provider creates or suspends tenants, and never itself.
    let t = tenant("sneaky", TenantKind::Customer);
    assert!(matches!(
        s.create_tenant(ca, &t, &ev(Some(&t), "tenant.create"))
            .await,
        Err(StoreError::NotFound)
    ));
    let r = s
        .set_tenant_status(ca, g.id, TenantStatus::Suspended, &ev(Some(&g), "x"))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)));
    let r = s
        .set_tenant_status(
            TenantCtx::new(p.id),
            p.id,
            TenantStatus::Suspended,
            &ev(Some(&p), "x"),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)));
    // Credentials of another tenant cannot be listed or revoked.
    let c = cred(&g, &ug, b"gina-secret-hash-0000000000000000", 10_000);
    s.create_api_token(TenantCtx::new(g.id), &c, &ev(Some(&g), "token.create"))
        .await
        .unwrap();
    assert!(
        s.list_credentials(ca, ug.id, Timestamp(0))
            .await
            .unwrap()
            .is_empty()
    );
    let r = s
        .revoke_credential(ca, c.id, Timestamp(3_000), &ev(Some(&a), "x"))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)));
    // Audit records: a customer reads its own only.
    let recs = s
        .list_audit(ca, &AuditFilter::default(), &page)
        .await
        .unwrap();
    assert!(!recs.is_empty());
    assert!(recs.iter().all(|r| r.event.tenant == Some(a.id)));
    let _ = ua;
}

async fn failed_changes_write_no_audit_record(backend: Backend) {
    let (s, p, a, _g, _ua, _ug) = world(backend).await;
    let before = audit_count(&s, &p).await;
    let dup = tenant("acme", TenantKind::Customer);
    match s
        .create_tenant(TenantCtx::new(p.id), &dup, &ev(Some(&dup), "tenant.create"))
        .await
    {
        Err(StoreError::Conflict(m)) => assert!(m.contains("acme"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let dup_user = user(&a, "alice", Role::TenantMember);
    assert!(matches!(
        s.create_user(
            TenantCtx::new(a.id),
            &dup_user,
            &ev(Some(&a), "user.create")
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        audit_count(&s, &p).await,
        before,
        "a failed change left a record"
    );
}

async fn audit_table_is_append_only(backend: Backend) {
    let (s, p, ..) = world(backend).await;
    let before = audit_count(&s, &p).await;
    let (upd, del) = match s.db() {
        Db::Sqlite(pool) => (
            sqlx::query("UPDATE audit_events SET action = 'forged'")
                .execute(pool)
                .await
                .map(|_| ()),
            sqlx::query("DELETE FROM audit_events")
                .execute(pool)
                .await
                .map(|_| ()),
        ),
        Db::Pg(pool) => (
            sqlx::query("UPDATE audit_events SET action = 'forged'")
                .execute(pool)
                .await
                .map(|_| ()),
            sqlx::query("DELETE FROM audit_events")
                .execute(pool)
                .await
                .map(|_| ()),
        ),
    };
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    assert!(del.unwrap_err().to_string().contains("append-only"));
    assert_eq!(audit_count(&s, &p).await, before);
}

async fn credentials_authenticate_only_while_live(backend: Backend) {
    let (s, _p, a, _g, ua, _ug) = world(backend).await;
    let ctx = TenantCtx::new(a.id);
    let c = cred(&a, &ua, b"alice-secret-hash-000000000000000", 10_000);
    s.create_api_token(ctx, &c, &ev(Some(&a), "token.create"))
        .await
        .unwrap();
    let found = s
        .authenticate(
            b"alice-secret-hash-000000000000000",
            Timestamp(5_000),
            Timestamp(0),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user.id, ua.id);
    assert_eq!(found.tenant.id, a.id);
    assert_eq!(found.credential.scopes, vec!["read".to_string()]);
    assert!(
        s.authenticate(
            b"alice-secret-hash-000000000000000",
            Timestamp(10_000),
            Timestamp(0)
        )
        .await
        .unwrap()
        .is_none(),
        "expired"
    );
    assert!(
        s.authenticate(b"other", Timestamp(5_000), Timestamp(0))
            .await
            .unwrap()
            .is_none()
    );
    s.revoke_credential(ctx, c.id, Timestamp(6_000), &ev(Some(&a), "token.revoke"))
        .await
        .unwrap();
    assert!(
        s.authenticate(
            b"alice-secret-hash-000000000000000",
            Timestamp(6_500),
            Timestamp(0)
        )
        .await
        .unwrap()
        .is_none(),
        "revoked"
    );
    assert!(matches!(
        s.revoke_credential(ctx, c.id, Timestamp(7_000), &ev(Some(&a), "token.revoke"))
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn disabling_a_user_revokes_its_credentials(backend: Backend) {
    let (s, _p, a, _g, ua, _ug) = world(backend).await;
    let ctx = TenantCtx::new(a.id);
    let mut session = cred(&a, &ua, b"session-hash-0000000000000000000", 50_000);
    session.kind = CredentialKind::Session;
    s.create_session(ctx, &session, &ev(Some(&a), "auth.login"))
        .await
        .unwrap();
    assert_eq!(
        s.get_user(ctx, "alice").await.unwrap().last_login_at,
        Some(Timestamp(1_000))
    );
    assert_eq!(
        s.list_credentials(ctx, ua.id, Timestamp(2_000))
            .await
            .unwrap()
            .len(),
        1
    );
    s.set_user_status(
        ctx,
        ua.id,
        UserStatus::Disabled,
        &ev(Some(&a), "user.disable"),
    )
    .await
    .unwrap();
    assert!(
        s.list_credentials(ctx, ua.id, Timestamp(2_000))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.authenticate(
            b"session-hash-0000000000000000000",
            Timestamp(2_000),
            Timestamp(0)
        )
        .await
        .unwrap()
        .is_none()
    );
}

async fn audit_search_filters_and_pages(backend: Backend) {
    let (s, p, a, ..) = world(backend).await;
    for i in 0..5 {
        let mut e = ev(Some(&a), if i % 2 == 0 { "x.even" } else { "x.odd" });
        e.time = Timestamp(10_000 + i);
        s.append_audit(&e).await.unwrap();
    }
    let ctx = TenantCtx::new(p.id);
    let all = |f: AuditFilter| {
        let s = s.clone();
        async move {
            s.list_audit(
                ctx,
                &f,
                &Page {
                    after: None,
                    limit: 100,
                },
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(
        all(AuditFilter {
            action: Some("x.even".into()),
            ..Default::default()
        })
        .await
        .len(),
        3
    );
    let ranged = all(AuditFilter {
        since: Some(Timestamp(10_001)),
        until: Some(Timestamp(10_004)),
        ..Default::default()
    })
    .await;
    assert_eq!(ranged.len(), 3);
    assert_eq!(
        all(AuditFilter {
            actor: Some("system".into()),
            ..Default::default()
        })
        .await
        .len(),
        audit_count(&s, &p).await
    );
    // Newest first, keyset pages without overlap.
    let first = s
        .list_audit(
            ctx,
            &AuditFilter::default(),
            &Page {
                after: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    let after = first.last().unwrap().id.to_string();
    let second = s
        .list_audit(
            ctx,
            &AuditFilter::default(),
            &Page {
                after: Some(after),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert!(first[0].id > first[1].id && first[1].id > second[0].id);
    // A record round-trips exactly.
    let rec = &first[0];
    assert_eq!(rec.event.action, "x.even");
    assert_eq!(rec.event.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(rec.event.actor, Actor::System);
    assert!(
        rec.canonical_json()
            .starts_with(&format!("{{\"id\":{}", rec.id))
    );
}
