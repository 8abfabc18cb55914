//! Benchmark of the cross-tenant correlation query (X.1642 8.3 last paragraph, 8.6.4), run by
//! `bench/inventory.sh`:
//!
//! ```text
//! cargo bench -p parapet-inventory --bench related -- run [--tenants 10000] [--per-tenant 100] [--queries 300]
//! ```
//!
//! Builds (once, cached under `target/bench-data/`) a SQLite inventory of `--tenants` tenants with
//! `--per-tenant` assets each (an OS out of 24 versions, 3 applications out of 400 versions),
//! then times `Inventory::related` — the answer "which other tenants run the OS version or any
//! application version of this asset" — for random assets, beside the same answer computed the
//! naive way (scanning every asset's stored application list with `LIKE`), which is what a query
//! without the `asset_software` index costs. Prints medians and p99.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use parapet_inventory::Inventory;
use parapet_store::{
    Asset, AssetHealth, AssetKind, AssetStore, AuditEvent, AuditOutcome, Criticality, IamStore,
    Software, Tenant, TenantStatus,
};
use parapet_store_sql::{Db, OpenOptions, SqlStore};
use parapet_types::{Actor, AssetId, Env, TenantCtx, TenantId, TenantKind, Timestamp};

struct Args {
    tenants: usize,
    per_tenant: usize,
    queries: usize,
}

fn arg(name: &str, default: usize) -> Result<usize> {
    let all: Vec<String> = std::env::args().collect();
    match all.iter().position(|a| a == name) {
        Some(i) => all
            .get(i + 1)
            .context(format!("{name} needs a value"))?
            .parse()
            .context(format!("{name} must be a number")),
        None => Ok(default),
    }
}

/// A small deterministic generator (xorshift), so the data set is the same on every machine.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const OSES: [&str; 6] = [
    "Ubuntu",
    "Debian",
    "RHEL",
    "Rocky",
    "Windows Server",
    "Alpine",
];
const APPS: [&str; 40] = [
    "nginx",
    "openssl",
    "postgresql",
    "mysql",
    "redis",
    "apache2",
    "openssh",
    "bash",
    "glibc",
    "curl",
    "python3",
    "nodejs",
    "java",
    "tomcat",
    "haproxy",
    "bind9",
    "postfix",
    "dovecot",
    "samba",
    "docker",
    "containerd",
    "kubelet",
    "etcd",
    "mongodb",
    "elasticsearch",
    "kafka",
    "zookeeper",
    "rabbitmq",
    "memcached",
    "php",
    "ruby",
    "perl",
    "git",
    "sudo",
    "systemd",
    "libxml2",
    "zlib",
    "log4j",
    "spring",
    "grafana",
];

fn event(tenant: TenantId, action: &str) -> AuditEvent {
    AuditEvent {
        time: Timestamp(1),
        tenant: Some(tenant),
        actor: Actor::System,
        action: action.into(),
        target: "bench".into(),
        source_ip: None,
        user_agent: None,
        outcome: AuditOutcome::Success,
        details: serde_json::Value::Null,
    }
}

async fn build(store: &SqlStore, a: &Args) -> Result<Tenant> {
    let mut boot = event(TenantId(uuid::Uuid::nil()), "system.bootstrap");
    boot.tenant = None;
    let provider = parapet_store_sql::testkit::bootstrap_provider(store, &boot).await?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    for i in 0..a.tenants {
        let t = Tenant {
            id: TenantId(uuid::Uuid::now_v7()),
            name: format!("t{i:05}"),
            kind: TenantKind::Customer,
            status: TenantStatus::Active,
            created_at: Timestamp(1),
        };
        store
            .create_tenant(
                TenantCtx::new(provider.id),
                &t,
                &event(t.id, "tenant.create"),
            )
            .await?;
        let mut assets = Vec::with_capacity(a.per_tenant);
        for j in 0..a.per_tenant {
            let os = Software {
                name: OSES
                    .get(rng.below(OSES.len()))
                    .copied()
                    .unwrap_or("Debian")
                    .into(),
                version: format!("{}", 10 + rng.below(4)),
            };
            let applications = (0..3)
                .map(|_| Software {
                    name: APPS
                        .get(rng.below(APPS.len()))
                        .copied()
                        .unwrap_or("bash")
                        .into(),
                    version: format!("1.{}", rng.below(10)),
                })
                .collect();
            assets.push(Asset {
                id: AssetId(uuid::Uuid::now_v7()),
                tenant: t.id,
                name: format!("asset-{j:04}"),
                kind: AssetKind::Vm,
                os: Some(os),
                applications,
                addresses: vec![format!("10.{}.{}.{}", i % 250, j / 250, j % 250)],
                location: None,
                owner: None,
                criticality: Criticality::Medium,
                tags: Default::default(),
                health: AssetHealth::Unknown,
                last_seen_at: None,
                created_at: Timestamp(1),
                updated_at: Timestamp(1),
            });
        }
        store
            .import_assets(TenantCtx::new(t.id), &assets, &event(t.id, "asset.import"))
            .await?;
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "built {} tenants, {} assets in {:.0} s",
                i + 1,
                (i + 1) * a.per_tenant,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(provider)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "run") {
        println!(
            "usage: cargo bench -p parapet-inventory --bench related -- run [--tenants N] [--per-tenant N] [--queries N]"
        );
        return Ok(());
    }
    let a = Args {
        tenants: arg("--tenants", 10_000)?,
        per_tenant: arg("--per-tenant", 100)?,
        queries: arg("--queries", 300)?,
    };
    if a.tenants == 0 || a.per_tenant == 0 || a.queries == 0 {
        bail!("--tenants, --per-tenant and --queries must be positive");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
            .join("bench-data")
            .join(format!("inventory-{}x{}", a.tenants, a.per_tenant));
        let fresh = !dir.join("done").exists();
        if fresh {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let store = Arc::new(SqlStore::open_sqlite(&dir, &OpenOptions::default()).await?);
        if fresh {
            let t0 = Instant::now();
            build(&store, &a).await?;
            std::fs::write(dir.join("done"), b"")?;
            println!(
                "built {} tenants x {} assets in {:.1} s",
                a.tenants,
                a.per_tenant,
                t0.elapsed().as_secs_f64()
            );
        }
        let provider = store
            .provider_tenant()
            .await?
            .context("the bench database has no provider")?;
        let inv = Inventory::new(store.clone(), Env::system());
        let mut rng = Rng(42);
        let mut indexed = Vec::with_capacity(a.queries);
        let mut naive = Vec::with_capacity(a.queries);
        let mut affected = Vec::with_capacity(a.queries);
        let Db::Sqlite(pool) = store.db() else {
            bail!("the bench runs on SQLite");
        };
        for _ in 0..a.queries {
            let name = format!("t{:05}", rng.below(a.tenants));
            let t = store.get_tenant(TenantCtx::new(provider.id), &name).await?;
            let asset = format!("asset-{:04}", rng.below(a.per_tenant));
            let t0 = Instant::now();
            let r = inv.related(&provider, &t, &asset).await?;
            indexed.push(t0.elapsed().as_secs_f64() * 1000.0);
            affected.push(r.tenants_affected as f64);
            // The naive answer for the same asset: scan every asset's application list.
            if naive.len() < 20 {
                let t0 = Instant::now();
                let mut tenants = std::collections::BTreeSet::new();
                for s in &r.asset.applications {
                    let pattern = format!(
                        "%{{\"name\":\"{}\",\"version\":\"{}\"}}%",
                        s.name, s.version
                    );
                    let rows: Vec<(String,)> = sqlx::query_as(
                        "SELECT DISTINCT tenant_id FROM assets WHERE applications LIKE $1 AND tenant_id <> $2",
                    )
                    .bind(pattern)
                    .bind(t.id.to_string())
                    .fetch_all(pool)
                    .await?;
                    tenants.extend(rows.into_iter().map(|r| r.0));
                }
                if let Some(os) = &r.asset.os {
                    let rows: Vec<(String,)> = sqlx::query_as(
                        "SELECT DISTINCT tenant_id FROM assets WHERE os_name = $1 AND os_version = $2 AND tenant_id <> $3",
                    )
                    .bind(os.name.clone())
                    .bind(os.version.clone())
                    .bind(t.id.to_string())
                    .fetch_all(pool)
                    .await?;
                    tenants.extend(rows.into_iter().map(|r| r.0));
                }
                naive.push(t0.elapsed().as_secs_f64() * 1000.0);
                if tenants.len() != r.tenants_affected {
                    bail!(
                        "the naive scan finds {} tenants, the indexed query {}",
                        tenants.len(),
                        r.tenants_affected
                    );
                }
            }
        }
        for v in [&mut indexed, &mut naive, &mut affected] {
            v.sort_by(f64::total_cmp);
        }
        println!(
            "related(): {} queries over {} tenants / {} assets: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; tenants affected per asset p50 {}",
            a.queries,
            a.tenants,
            a.tenants * a.per_tenant,
            pct(&indexed, 0.5),
            pct(&indexed, 0.99),
            pct(&indexed, 1.0),
            pct(&affected, 0.5)
        );
        println!(
            "naive scan (LIKE over every asset's applications, same answers): {} queries p50 {:.1} ms; ratio naive/indexed {:.1}",
            naive.len(),
            pct(&naive, 0.5),
            pct(&naive, 0.5) / pct(&indexed, 0.5)
        );
        Ok(())
    })
}
