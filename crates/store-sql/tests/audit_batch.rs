//! `append_audit_batch` stores every event of a batch exactly, at consecutive log indexes, on
//! both backends: batches span several multi-row statements (500 rows each), and the SQLite
//! statements bind anonymous `?` parameters by position.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use parapet_store::{AuditEvent, AuditLogStore, AuditOutcome};
use parapet_store_sql::testkit::{self, Backend};
use parapet_types::{Actor, TenantCtx, TenantId, Timestamp, UserId};

#[tokio::test]
async fn sqlite_batches_round_trip_exactly() {
    batches_round_trip_exactly(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_batches_round_trip_exactly() {
    batches_round_trip_exactly(Backend::Postgres).await;
}

/// Event `i`: every column varies, optional ones are sometimes absent.
fn event(i: u64, tenants: &[TenantId]) -> AuditEvent {
    let tenant = tenants[i as usize % tenants.len()];
    AuditEvent {
        time: Timestamp(1_800_000_000_000 + i as i64),
        tenant: (!i.is_multiple_of(7)).then_some(tenant),
        actor: match i % 3 {
            0 => Actor::User {
                tenant,
                user: UserId(uuid::Uuid::now_v7()),
                username: format!("user{i}"),
            },
            1 => Actor::Anonymous {
                claimed: (i.is_multiple_of(2)).then(|| format!("claimed{i}")),
            },
            _ => Actor::System,
        },
        action: format!("test.action{}", i % 5),
        target: format!("target:{i}"),
        source_ip: (!i.is_multiple_of(4)).then(|| format!("192.0.2.{}", i % 250)),
        user_agent: (!i.is_multiple_of(6)).then(|| format!("agent/{i}")),
        outcome: match i % 3 {
            0 => AuditOutcome::Success,
            1 => AuditOutcome::Failure,
            _ => AuditOutcome::Denied,
        },
        details: serde_json::json!({"i": i, "text": format!("é\"{i}\n"), "list": [i, null]}),
    }
}

async fn batches_round_trip_exactly(backend: Backend) {
    let (store, _) = testkit::fresh(backend).await.unwrap();
    let tenants: Vec<TenantId> = (0..3).map(|_| TenantId(uuid::Uuid::now_v7())).collect();
    let provider = testkit::bootstrap_provider(&store, &event(0, &tenants))
        .await
        .unwrap();
    let ctx = TenantCtx::new(provider.id);
    let mut expected = Vec::new();
    // 1,234 events: two full statements and a partial one; then a single event; then none.
    for n in [1_234u64, 1, 0] {
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| event(expected.len() as u64 + i, &tenants))
            .collect();
        let first = store.append_audit_batch(&events).await.unwrap();
        if n > 0 {
            assert_eq!(first, 1 + expected.len() as u64);
        }
        expected.extend(events);
    }
    assert_eq!(
        store.audit_record_count().await.unwrap(),
        1 + expected.len() as u64
    );
    let records = store.audit_range(ctx, 1, u64::MAX, 100_000).await.unwrap();
    assert_eq!(records.len(), expected.len());
    for (k, (r, e)) in records.iter().zip(&expected).enumerate() {
        assert_eq!(r.id, 1 + k as i64);
        assert_eq!(&r.event, e, "record {}", r.id);
    }
    store.close().await;
}
