//! Benchmark of incidents (issue 7) on SQLite: 100,000 open incidents of 1,000 tenants.
//!
//! - `timers`: SLA timers falling due at a steady rate while the scheduler
//!   (`IncidentService::run_timers`, as `parapet serve` runs it) fires them; lateness = when the
//!   breach and its first escalation were committed minus when they were due (p50, p99, max).
//! - `board`: a tenant's incident board (`GET /console/incidents` of a real server over HTTP,
//!   100 incidents of that tenant among the 100,000) and the provider's (the newest 1,000 of
//!   all): time per render (p50, p99).
//!
//! `cargo bench -p parapet --bench incident -- [timers|board] [--incidents N]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use parapet_iam::{IamConfig, IamService, PasswordCost, RequestMeta};
use parapet_incident::{
    Incident, IncidentService, Opening, Severity, SlaPolicy, SlaTargets, to_row,
};
use parapet_store::{AuditEvent, AuditOutcome, IncidentStore};
use parapet_store_sql::{OpenOptions, SqlStore};
use parapet_types::{Actor, Env, Role, TenantCtx, Timestamp};

const PW: &str = "bench-password-0123456";

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

struct World {
    store: Arc<SqlStore>,
    iam: Arc<IamService>,
    svc: Arc<IncidentService>,
    dir: std::path::PathBuf,
}

/// 1,000 tenants, `n` open incidents spread over them; `due` of them fall due, evenly spaced,
/// from `first_due` over `window` seconds (the rest are due in days).
async fn world(n: usize, due: usize, window: i64) -> (World, Vec<Timestamp>) {
    let dir = parapet_store_sql::testkit::temp_dir("bench-incident");
    let store = Arc::new(
        SqlStore::open_sqlite(&dir, &OpenOptions::default())
            .await
            .unwrap(),
    );
    let env = Env::system();
    let config = IamConfig {
        password_cost: PasswordCost {
            memory_kib: 256,
            iterations: 1,
            lanes: 1,
        },
        // Provider staff without a second factor (the default requires one).
        provider_mfa_required: false,
        ..IamConfig::default()
    };
    let iam = Arc::new(IamService::new(store.clone(), env.clone(), config).unwrap());
    iam.bootstrap(Some(PW.into())).await.unwrap();
    let meta = RequestMeta::default();
    let admin = iam.login("admin", PW, &meta).await.unwrap().principal;
    let mut policy = SlaPolicy::default();
    // Critical incidents acknowledge within 10 minutes in this scheme.
    policy.targets.insert(
        Severity::Critical,
        SlaTargets {
            acknowledge_secs: 600,
            notify_secs: 3600,
            resolve_secs: 4 * 3600,
        },
    );
    let svc = Arc::new(IncidentService::new(iam.clone(), policy.clone()));
    let tenants = 1000;
    let mut ids = Vec::new();
    let t0 = Instant::now();
    for k in 0..tenants {
        let t = iam
            .create_tenant(&admin, &format!("t{k:04}"), &meta)
            .await
            .unwrap();
        ids.push(t);
    }
    iam.create_user(&admin, "t0000", "alice", PW, Role::TenantAdmin, &meta)
        .await
        .unwrap();
    eprintln!(
        "created {tenants} tenants in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let now = env.now();
    // Due incidents: opened 600 s before their deadline; the first falls due after the seeding.
    let seed_secs = (n as f64 / 2000.0).ceil() as i64 + 10;
    let first_due = now.plus_secs(seed_secs);
    let mut dues = Vec::new();
    let t0 = Instant::now();
    for j in 0..n {
        let tenant = &ids[j % tenants];
        let (severity, opened) = if j < due {
            let due_at = Timestamp(first_due.0 + (j as i64 * window * 1000) / due.max(1) as i64);
            dues.push(due_at);
            (Severity::Critical, Timestamp(due_at.0 - 600_000))
        } else {
            (Severity::Low, now)
        };
        let i = Incident::open(Opening {
            id: env.new_id().unwrap(),
            tenant: tenant.id,
            title: format!("incident {j} of {}", tenant.name),
            description: "seeded by the benchmark".into(),
            severity,
            category: "bench".into(),
            source: "api".into(),
            alerts: Vec::new(),
            responsible: "admin".into(),
            actor: "admin".into(),
            at: opened,
            sla: policy.start(severity),
        })
        .unwrap();
        let row = to_row(&i, 1, opened).unwrap();
        let e = AuditEvent {
            time: now,
            tenant: Some(tenant.id),
            actor: Actor::System,
            action: "incident.open".into(),
            target: format!("incident:{}/{}", tenant.name, i.id),
            source_ip: None,
            user_agent: None,
            outcome: AuditOutcome::Success,
            details: serde_json::json!({"bench": true}),
        };
        store
            .create_incident(TenantCtx::new(tenant.id), &row, &[e])
            .await
            .unwrap();
        if (j + 1) % 20_000 == 0 {
            eprintln!(
                "seeded {} incidents ({:.0}/s)",
                j + 1,
                (j + 1) as f64 / t0.elapsed().as_secs_f64()
            );
        }
    }
    let left = first_due.0 - env.now().0;
    eprintln!(
        "seeding done; first timer due in {:.1} s",
        left as f64 / 1000.0
    );
    (
        World {
            store,
            iam,
            svc,
            dir,
        },
        dues,
    )
}

async fn timers(n: usize) {
    let due = 6000usize;
    let window = 60i64;
    let (w, dues) = world(n, due, window).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let svc = w.svc.clone();
    // The scheduler as `parapet serve` runs it, in the background.
    let runner = tokio::spawn(svc.run_timers(Duration::from_millis(200), stop_rx));
    let last = *dues.last().unwrap();
    let env = Env::system();
    while env.now().0 < last.0 + 3000 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = stop_tx.send(true);
    let _ = runner.await;
    // Lateness: the commit time of each breach is the `at` of its history entry, recorded in
    // the same transaction as the breach.
    let mut late = Vec::new();
    let mut missing = 0;
    let rows = w
        .store
        .list_incidents(
            TenantCtx::new(w.iam.store().provider_tenant().await.unwrap().unwrap().id),
            &parapet_store::IncidentFilter::default(),
            &parapet_store::Page {
                after: None,
                limit: 100_000,
            },
        )
        .await
        .unwrap();
    for r in rows.iter().filter(|r| r.severity == "critical") {
        let full = w
            .store
            .get_incident(TenantCtx::new(r.tenant), r.id)
            .await
            .unwrap();
        let i = parapet_incident::from_row(&full).unwrap();
        match i.history.iter().find_map(|h| match &h.change {
            parapet_incident::Change::SlaBreached { due_at, .. } => Some((h.at, *due_at)),
            _ => None,
        }) {
            Some((at, due_at)) => late.push((at.0 - due_at.0) as f64 / 1000.0),
            None => missing += 1,
        }
    }
    let fired = late.len();
    let p50 = pct(&mut late, 0.5);
    let p99 = pct(&mut late, 0.99);
    let max = pct(&mut late, 1.0);
    println!(
        "RESULT timers: open={n} due={due} window_s={window} fired={fired} missing={missing} \
         lateness_p50_s={p50:.3} lateness_p99_s={p99:.3} lateness_max_s={max:.3}"
    );
    let _ = std::fs::remove_dir_all(&w.dir);
}

async fn board(n: usize) {
    let (w, _) = world(n, 0, 1).await;
    let bound = parapet_app::bind(&parapet_app::Listen {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    })
    .await
    .unwrap();
    let url = bound.url();
    let signer =
        parapet_audit::NoteSigner::generate("bench/incident", &parapet_types::OsEntropy).unwrap();
    let provider = w.iam.store().provider_tenant().await.unwrap().unwrap();
    let audit = Arc::new(
        parapet_audit::AuditLog::open(
            w.store.clone(),
            Env::system(),
            signer,
            TenantCtx::new(provider.id),
            parapet_audit::LogConfig::default(),
        )
        .await
        .unwrap(),
    );
    let kms = Arc::new(
        parapet_kms::KmsService::open(
            w.store.clone(),
            w.iam.clone(),
            Env::system(),
            provider.clone(),
            parapet_kms::KmsConfig::default(),
        )
        .await
        .unwrap(),
    );
    let inventory = Arc::new(parapet_inventory::Inventory::new(
        w.store.clone(),
        Env::system(),
    ));
    let notify = Arc::new(parapet_notify::NotifyService::new(
        w.store.clone(),
        Env::system(),
        parapet_notify::NotifyConfig::new([0; 32]),
        Arc::new(
            parapet_notify::NetTransport::new(None, None, std::time::Duration::from_secs(5))
                .unwrap(),
        ),
    ));
    let state = parapet_app::AppState::new(parapet_app::Services {
        notify,
        iam: w.iam.clone(),
        audit,
        store: w.store.clone(),
        incident: w.svc.clone(),
        monitor: Arc::new(parapet_monitor::Monitor::new(
            w.iam.clone(),
            parapet_monitor::MonitorConfig::default(),
        )),
        backup: Arc::new(parapet_backup_server::BackupService::new(
            w.iam.clone(),
            None,
        )),
        kms,
        inventory,
        config: Arc::new(parapet_app::AppConfig::default()),
        metrics: None,
    });
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(parapet_app::serve(
        bound,
        parapet_app::router(state),
        async move {
            let _ = stop_rx.changed().await;
        },
    ));
    let http = reqwest::Client::new();
    for (who, pw, label) in [("alice@t0000", PW, "tenant"), ("admin", PW, "provider")] {
        let r: serde_json::Value = http
            .post(format!("{url}/api/v1/auth/login"))
            .json(&serde_json::json!({"username": who, "password": pw}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = r["token"].as_str().unwrap().to_string();
        let mut times = Vec::new();
        let mut size = 0;
        for k in 0..60 {
            let t = Instant::now();
            let res = http
                .get(format!("{url}/console/incidents"))
                .header("cookie", format!("parapet_session={token}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200);
            let body = res.text().await.unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            size = body.len();
            if k >= 10 {
                times.push(ms);
            }
        }
        let p50 = pct(&mut times, 0.5);
        let p99 = pct(&mut times, 0.99);
        println!(
            "RESULT board: viewer={label} open={n} bytes={size} render_p50_ms={p50:.1} \
             render_p99_ms={p99:.1}"
        );
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&w.dir);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut n = 100_000usize;
    let mut scenarios: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--incidents" => n = it.next().and_then(|v| v.parse().ok()).unwrap_or(n),
            "timers" | "board" => scenarios.push(a.clone()),
            _ => {}
        }
    }
    // `cargo test --all-targets` runs this program too, with test-harness flags and no
    // scenario: there is nothing to test here, and the benchmark takes minutes.
    if scenarios.is_empty() {
        println!(
            "usage: cargo bench -p parapet --bench incident -- timers|board [--incidents N] \
             (see bench/incident.sh)"
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for s in scenarios {
        match s.as_str() {
            "timers" => rt.block_on(timers(n)),
            _ => rt.block_on(board(n)),
        }
    }
}
