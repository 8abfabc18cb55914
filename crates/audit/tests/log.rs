//! The audit log service over real storage, on SQLite and on PostgreSQL: sequencing, tiles,
//! checkpoints and proofs against a naive reference tree.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use parapet_audit::{
    AuditLog, Checkpoint, LogConfig, LogError, MemoryTree, NoteSigner, consistency_proof,
    inclusion_proof, tree_root, verify_consistency, verify_inclusion,
};
use parapet_store::{
    AuditEvent, AuditLogStore, AuditOutcome, AuditStore, IamStore, Store, StoreError, Tenant,
    TenantStatus,
};
use parapet_store_sql::testkit::{self, Backend};
use parapet_store_sql::{Db, SqlStore};
use parapet_types::{
    Actor, Env, ManualClock, OsEntropy, TenantCtx, TenantId, TenantKind, Timestamp,
};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Postgres).await })* }
    };
}

on_both!(
    every_size_from_1_to_300_matches_the_reference_tree,
    concurrent_writers_get_gap_free_indexes,
    a_stale_sequencer_cannot_sign_a_diverging_checkpoint,
    another_signing_key_is_refused,
    tampered_tiles_stop_the_sequencer,
);

fn env() -> (Env, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    (
        Env {
            clock: clock.clone(),
            entropy: Arc::new(OsEntropy),
        },
        clock,
    )
}

fn event(tenant: Option<TenantId>, action: &str, target: String) -> AuditEvent {
    AuditEvent {
        time: Timestamp(1_800_000_000_000),
        tenant,
        actor: Actor::System,
        action: action.into(),
        target,
        source_ip: None,
        user_agent: None,
        outcome: AuditOutcome::Success,
        details: serde_json::json!({"n": 1}),
    }
}

/// A fresh store with a bootstrapped provider; returns it and the provider's context.
async fn setup(backend: Backend) -> (Arc<SqlStore>, TenantCtx, String) {
    let (store, location) = testkit::fresh(backend).await.unwrap();
    let boot = event(None, "system.bootstrap", "tenant:provider".into());
    let provider = testkit::bootstrap_provider(&store, &boot).await.unwrap();
    (Arc::new(store), TenantCtx::new(provider.id), location)
}

fn signer(name: &str) -> NoteSigner {
    NoteSigner::generate(name, &OsEntropy).unwrap()
}

async fn open(store: &Arc<SqlStore>, provider: TenantCtx, key: &NoteSigner) -> AuditLog {
    let (env, _) = env();
    let dyn_store: Arc<dyn Store> = store.clone();
    AuditLog::open(
        dyn_store,
        env,
        NoteSigner::from_skey(&key.to_skey()).unwrap(),
        provider,
        LogConfig::default(),
    )
    .await
    .unwrap()
}

/// The entries of the log as the reference sees them: every record's canonical JSON.
async fn reference(store: &SqlStore, provider: TenantCtx) -> MemoryTree {
    let records = store
        .audit_range(provider, 0, u64::MAX, 100_000)
        .await
        .unwrap();
    MemoryTree::from_entries(records.iter().map(|r| r.canonical_json().into_bytes()))
}

/// RFC 9162 behaviour on every tree size from 1 to 300: after each record, the signed root is
/// the reference root, and inclusion and consistency proofs served from stored tiles are
/// exactly the reference's and verify.
async fn every_size_from_1_to_300_matches_the_reference_tree(backend: Backend) {
    let (store, provider, _) = setup(backend).await;
    let key = signer("test.example/log");
    let log = open(&store, provider, &key).await;
    let verifier = key.verifier();
    let mut size = 0u64;
    let mut previous_root = None;
    while size < 300 {
        if size > 0 {
            store
                .append_audit(&event(None, "test.append", format!("n:{size}")))
                .await
                .unwrap();
        }
        let report = log.integrate_once().await.unwrap().unwrap();
        assert_eq!(report.old_size, size);
        size = report.new_size;
        let reference = reference(&store, provider).await;
        assert_eq!(reference.size(), size);
        let root = tree_root(&reference, size).unwrap();
        let signed = log.checkpoint(None).await.unwrap();
        let cp = Checkpoint::open(&signed.signed, &verifier).unwrap();
        assert_eq!((cp.size, cp.root), (size, root), "size {size}");
        // Inclusion of the newest record and of a few older ones.
        for index in [size - 1, size / 2, size / 3, 0] {
            let (s, proof) = log.inclusion_proof(index, None).await.unwrap();
            assert_eq!(s, size);
            assert_eq!(proof, inclusion_proof(&reference, index, size).unwrap());
            let leaf = reference.leaf_hash(index).unwrap();
            verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
        }
        // Consistency with the previous tree and with a few older ones.
        for old in [size - 1, size / 2, 1] {
            if old == 0 || old > size {
                continue;
            }
            let (to, proof) = log.consistency_proof(old, Some(size)).await.unwrap();
            assert_eq!(to, size);
            assert_eq!(proof, consistency_proof(&reference, old, size).unwrap());
            let old_root = tree_root(&reference, old).unwrap();
            verify_consistency(old, size, &old_root, &root, &proof).unwrap();
        }
        if let Some(prev) = previous_root {
            assert_ne!(prev, root);
        }
        previous_root = Some(root);
    }
    // A past checkpoint is still served, and tiles reproduce the leaf hashes.
    let past = log.checkpoint(Some(150)).await.unwrap();
    assert_eq!(Checkpoint::open(&past.signed, &verifier).unwrap().size, 150);
    let tile = log.tile("tile/0/000").await.unwrap();
    let reference = reference(&store, provider).await;
    assert_eq!(tile.len(), 256 * 32);
    assert_eq!(&tile[32..64], reference.leaf_hash(1).unwrap().as_bytes());
    let partial = log.tile("tile/0/001.p/44").await.unwrap();
    assert_eq!(partial.len(), 44 * 32);
    assert!(matches!(
        log.tile("tile/0/002").await,
        Err(LogError::NotFound(_))
    ));
    assert!(matches!(
        log.inclusion_proof(300, None).await,
        Err(LogError::BadRequest(_))
    ));
    assert!(matches!(
        log.inclusion_proof(1, Some(301)).await,
        Err(LogError::BadRequest(_))
    ));
}

/// Writers racing, some of them rolled back: log indexes are handed out without gaps, in
/// commit order, and the sequencer integrates every committed record.
async fn concurrent_writers_get_gap_free_indexes(backend: Backend) {
    let (store, provider, _) = setup(backend).await;
    let log = open(&store, provider, &signer("test.example/log")).await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            for i in 0..25 {
                // Every third tenant name repeats: its transaction fails and rolls back with
                // the index it took.
                let name = if i % 3 == 0 {
                    "taken".to_string()
                } else {
                    format!("t{w}x{i}")
                };
                let t = Tenant {
                    id: TenantId(uuid::Uuid::now_v7()),
                    name: name.clone(),
                    kind: TenantKind::Customer,
                    status: TenantStatus::Active,
                    created_at: Timestamp(2),
                };
                let e = event(Some(t.id), "tenant.create", format!("tenant:{name}"));
                match store.create_tenant(provider, &t, &e).await {
                    Ok(()) => ok += 1,
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
                if i % 5 == 0 {
                    store
                        .append_audit_batch(&[
                            event(None, "test.batch", format!("w{w}")),
                            event(None, "test.batch", format!("w{w}")),
                        ])
                        .await
                        .unwrap();
                    ok += 2;
                }
            }
            ok
        }));
    }
    // Integrate while the writers run.
    let mut committed = 1; // the bootstrap record
    let mut running = true;
    while running {
        log.integrate_once().await.unwrap();
        running = tasks.iter().any(|t| !t.is_finished());
    }
    for t in tasks {
        committed += t.await.unwrap();
    }
    log.integrate_once().await.unwrap();
    assert_eq!(store.audit_record_count().await.unwrap(), committed);
    let records = store
        .audit_range(provider, 0, u64::MAX, 100_000)
        .await
        .unwrap();
    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    assert_eq!(ids, (0..committed as i64).collect::<Vec<_>>());
    assert_eq!(log.size().await.unwrap(), committed);
    let reference = reference(&store, provider).await;
    let cp = log.checkpoint(None).await.unwrap();
    assert_eq!(cp.root, tree_root(&reference, committed).unwrap().0);
}

/// Two sequencers on one database (as after a fail-over): the one working from an old tree
/// cannot publish; it catches up and the checkpoints stay consistent.
async fn a_stale_sequencer_cannot_sign_a_diverging_checkpoint(backend: Backend) {
    let (store, provider, location) = setup(backend).await;
    let key = signer("test.example/log");
    let a = open(&store, provider, &key).await;
    a.integrate_once().await.unwrap();
    // B: another process on the same database and key.
    let other = Arc::new(match backend {
        Backend::Sqlite => store.as_ref().clone(),
        Backend::Postgres => SqlStore::open_postgres(&location, &Default::default())
            .await
            .unwrap(),
    });
    let b = open(&other, provider, &key).await;
    if backend == Backend::Postgres {
        // Only one process may lead: B is refused while A holds the lock.
        assert!(b.integrate_once().await.unwrap().is_none());
        assert!(!other.lead_sequencer().await.unwrap());
        store.close().await;
        let store2 = Arc::new(
            SqlStore::open_postgres(&location, &Default::default())
                .await
                .unwrap(),
        );
        store2
            .append_audit(&event(None, "test.x", "x".into()))
            .await
            .unwrap();
        // A's session ended: B takes over and integrates A's tree further.
        let r = b.integrate_once().await.unwrap().unwrap();
        assert_eq!((r.old_size, r.new_size), (1, 2));
        return;
    }
    // SQLite: both "lead"; B integrates first, then A's in-memory tree is stale.
    store
        .append_audit(&event(None, "test.x", "x".into()))
        .await
        .unwrap();
    b.integrate_once().await.unwrap().unwrap();
    store
        .append_audit(&event(None, "test.y", "y".into()))
        .await
        .unwrap();
    let r = a.integrate_once().await.unwrap().unwrap();
    assert_eq!((r.old_size, r.new_size), (2, 3));
    let cps = store.checkpoints_after(0, 100).await.unwrap();
    let sizes: Vec<u64> = cps.iter().map(|c| c.size).collect();
    assert_eq!(sizes, vec![1, 2, 3]);
    let reference = reference(&store, provider).await;
    for c in &cps {
        assert_eq!(c.root, tree_root(&reference, c.size).unwrap().0);
    }
}

/// A database registered with one key refuses a server holding another.
async fn another_signing_key_is_refused(backend: Backend) {
    let (store, provider, _) = setup(backend).await;
    let _first = open(&store, provider, &signer("test.example/log")).await;
    let (env, _) = env();
    let dyn_store: Arc<dyn Store> = store.clone();
    let err = AuditLog::open(
        dyn_store,
        env,
        signer("test.example/log"),
        provider,
        LogConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LogError::Key(_)), "{err}");
    assert!(err.to_string().contains("--audit-key"), "{err}");
}

/// Rewriting a stored tile (a database administrator covering tracks) is noticed when the
/// sequencer resumes: it refuses to extend a tree whose tiles do not give the signed root.
async fn tampered_tiles_stop_the_sequencer(backend: Backend) {
    let (store, provider, _) = setup(backend).await;
    let key = signer("test.example/log");
    let log = open(&store, provider, &key).await;
    for i in 0..10 {
        store
            .append_audit(&event(None, "test.t", format!("n:{i}")))
            .await
            .unwrap();
    }
    log.integrate_once().await.unwrap().unwrap();
    let forged = vec![7u8; 32 * 11];
    match store.db() {
        Db::Sqlite(p) => {
            sqlx::query("UPDATE audit_tiles SET hashes = $1 WHERE level = 0 AND idx = 0")
                .bind(forged)
                .execute(p)
                .await
                .unwrap();
        }
        Db::Pg(p) => {
            sqlx::query("UPDATE audit_tiles SET hashes = $1 WHERE level = 0 AND idx = 0")
                .bind(forged)
                .execute(p)
                .await
                .unwrap();
        }
    }
    store
        .append_audit(&event(None, "test.t", "late".into()))
        .await
        .unwrap();
    // A fresh service (a restart) must resume from the stored tiles.
    let restarted = open(&store, provider, &key).await;
    let err = restarted.integrate_once().await.unwrap_err();
    assert!(matches!(err, LogError::Integrity(_)), "{err}");
}
