//! Benchmarks of the tamper-evident audit log (issue 3) on SQLite, run by `bench/auditlog.sh`:
//!
//! ```text
//! cargo bench -p parapet-audit --bench log -- append [--secs 20] [--writers 2] [--batch 1000] [--rate 0]
//! cargo bench -p parapet-audit --bench log -- proof  [--size 10000000] [--proofs 10000] [--cold 1000]
//! cargo bench -p parapet-audit --bench log -- verify [--size 10000000] [--runs 3] [--bin target/release/parapet]
//! ```
//!
//! - `append`: writers call `append_audit_batch` in a loop while one `AuditLog` integrates with
//!   the pacing of `AuditLog::run` (default `LogConfig`: 50 ms after a step, 200 ms when idle);
//!   reports records integrated per second (median of per-second rates) and the checkpoint lag
//!   of every batch (from its commit to the return of the `integrate_once` whose checkpoint
//!   covers it). `--rate N` offers N records/s instead of writing as fast as possible.
//! - `proof`: builds a log of `--size` records once (cached under `target/bench-data/`), then
//!   times random inclusion and consistency proofs through `AuditLog`, beside the same proofs
//!   from the whole tree held in memory (`MemoryTree`).
//! - `verify`: exports that log in the export format (canonical JSON lines in index order),
//!   saves its checkpoint and public key, and times `parapet audit verify` and `sha256sum` on
//!   the same file.
//!
//! Wall-clock figures on a shared machine: every scenario prints its medians and the raw runs.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use parapet_audit::{
    AuditLog, Hash, LogConfig, MemoryTree, NoteSigner, leaf_hash, verify_consistency,
    verify_inclusion,
};
use parapet_store::{AuditEvent, AuditLogStore, AuditOutcome, IamStore, Store};
use parapet_store_sql::{OpenOptions, SqlStore};
use parapet_types::{Actor, Env, OsEntropy, TenantCtx, TenantId, Timestamp, UserId};

const ORIGIN: &str = "bench.parapet.example/audit";

const SCENARIOS: [&str; 4] = ["append", "proof", "verify", "build"];

fn main() -> Result<()> {
    // `cargo test --all-targets` runs this program too, with test-harness flags and no
    // scenario: there is nothing to test here.
    if !std::env::args().any(|a| SCENARIOS.contains(&a.as_str())) {
        println!(
            "usage: cargo bench -p parapet-audit --bench log -- append|proof|verify|build \
             [--name value]… (see bench/auditlog.sh)"
        );
        return Ok(());
    }
    let args = Args::parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.scenario.as_str() {
        "append" => rt.block_on(append(&args)),
        "proof" => rt.block_on(proof(&args)),
        "verify" => rt.block_on(verify(&args)),
        "build" => rt.block_on(async {
            dataset(args.num("size", 10_000_000)?).await?;
            Ok(())
        }),
        other => bail!("unknown scenario {other:?}: append, proof, verify or build"),
    }
}

/// `<scenario> [--name value]…`; cargo's own `--bench` flag is ignored.
struct Args {
    scenario: String,
    opts: BTreeMap<String, String>,
}

impl Args {
    fn parse() -> Result<Self> {
        let mut scenario = None;
        let mut opts = BTreeMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            if a == "--bench" {
                continue;
            }
            if let Some(name) = a.strip_prefix("--") {
                let value = it.next().ok_or_else(|| anyhow!("--{name} needs a value"))?;
                opts.insert(name.to_owned(), value);
            } else if scenario.is_none() {
                scenario = Some(a);
            } else {
                bail!("unexpected argument {a:?}");
            }
        }
        Ok(Args {
            scenario: scenario.ok_or_else(|| anyhow!("give a scenario: append, proof, verify"))?,
            opts,
        })
    }

    fn num(&self, name: &str, default: u64) -> Result<u64> {
        match self.opts.get(name) {
            Some(v) => v
                .replace('_', "")
                .parse()
                .with_context(|| format!("--{name} {v}")),
            None => Ok(default),
        }
    }
}

/// The workspace's `target/bench-data`.
fn bench_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data")
}

/// splitmix64: reproducible random indexes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Percentile `p` (0..=100) of sorted values.
fn pct<T: Copy + Default>(sorted: &[T], p: usize) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted.get(i).copied().unwrap_or_default()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Realistic audit events: users of a few dozen tenants changing things from browsers and the
/// CLI, with the occasional failed log-in. About 350 bytes of canonical JSON each.
struct Events {
    tenants: Vec<(TenantId, String)>,
    users: Vec<(TenantId, UserId, String)>,
    rng: Rng,
}

const ACTIONS: &[(&str, &str)] = &[
    ("user.update", "user"),
    ("user.create", "user"),
    ("token.create", "token"),
    ("auth.login", "user"),
    ("tenant.update", "tenant"),
    ("user.password.change", "user"),
    ("token.revoke", "token"),
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 Firefox/128.0",
    "parapet-cli/0.1.0",
    "Mozilla/5.0 Safari/605.1",
];
const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];

impl Events {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let uuid = |rng: &mut Rng| {
            uuid::Uuid::from_u64_pair(
                rng.next() & !0xf000 | 0x7000,
                rng.next() & !(3 << 62) | (1 << 63),
            )
        };
        let tenants: Vec<(TenantId, String)> = (0..40)
            .map(|i| (TenantId(uuid(&mut rng)), format!("customer-{i:02}")))
            .collect();
        let mut users = Vec::new();
        for (t, _) in &tenants {
            for n in NAMES {
                users.push((*t, UserId(uuid(&mut rng)), (*n).to_owned()));
            }
        }
        Events {
            tenants,
            users,
            rng,
        }
    }

    fn event(&mut self, time: Timestamp) -> AuditEvent {
        let (tenant, user, username) = self
            .users
            .get(self.rng.below(self.users.len() as u64) as usize)
            .cloned()
            .unwrap_or((
                TenantId(uuid::Uuid::nil()),
                UserId(uuid::Uuid::nil()),
                "x".into(),
            ));
        let tenant_name = self
            .tenants
            .iter()
            .find(|(t, _)| *t == tenant)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        let (action, kind) = ACTIONS
            .get(self.rng.below(ACTIONS.len() as u64) as usize)
            .copied()
            .unwrap_or(("user.update", "user"));
        let r = self.rng.next();
        let failed_login = action == "auth.login" && r.is_multiple_of(5);
        let other = NAMES.get((r >> 8) as usize % NAMES.len()).unwrap_or(&"x");
        let target = match kind {
            "tenant" => format!("tenant:{tenant_name}"),
            "token" => format!("token:{tenant_name}/{:016x}", r),
            _ => format!("user:{tenant_name}/{other}"),
        };
        let details = match action {
            "user.update" => {
                serde_json::json!({"changed": ["role"], "role": "tenant-admin"})
            }
            "user.create" => serde_json::json!({"role": "tenant-member", "username": other}),
            "token.create" => {
                serde_json::json!({"name": "ci-deploy", "scopes": ["read"]})
            }
            "auth.login" => serde_json::json!({"method": "password"}),
            "tenant.update" => serde_json::json!({"changed": ["display_name"]}),
            _ => serde_json::json!({"reason": "rotation"}),
        };
        AuditEvent {
            time,
            tenant: Some(tenant),
            actor: if failed_login {
                Actor::Anonymous {
                    claimed: Some(username),
                }
            } else {
                Actor::User {
                    tenant,
                    user,
                    username,
                }
            },
            action: action.to_owned(),
            target,
            source_ip: Some(format!("198.51.{}.{}", (r >> 16) as u8, (r >> 24) as u8)),
            user_agent: AGENTS
                .get((r >> 32) as usize % AGENTS.len())
                .map(|s| (*s).to_owned()),
            outcome: if failed_login {
                AuditOutcome::Failure
            } else {
                AuditOutcome::Success
            },
            details,
        }
    }

    fn batch(&mut self, n: usize, time: Timestamp) -> Vec<AuditEvent> {
        (0..n).map(|_| self.event(time)).collect()
    }
}

/// Creates the provider tenant (and its bootstrap record, log index 0).
async fn bootstrap(store: &SqlStore) -> Result<TenantCtx> {
    if let Some(p) = store.provider_tenant().await? {
        return Ok(TenantCtx::new(p.id));
    }
    let boot = AuditEvent {
        time: Env::system().now(),
        tenant: None,
        actor: Actor::System,
        action: "system.bootstrap".into(),
        target: "tenant:provider".into(),
        source_ip: None,
        user_agent: None,
        outcome: AuditOutcome::Success,
        details: serde_json::json!({}),
    };
    let provider = parapet_store_sql::testkit::bootstrap_provider(store, &boot).await?;
    Ok(TenantCtx::new(provider.id))
}

async fn open_log(
    store: &Arc<SqlStore>,
    skey: &str,
    provider: TenantCtx,
    config: LogConfig,
) -> Result<AuditLog> {
    let dyn_store: Arc<dyn Store> = store.clone();
    Ok(AuditLog::open(
        dyn_store,
        Env::system(),
        NoteSigner::from_skey(skey)?,
        provider,
        config,
    )
    .await?)
}

// ---------------------------------------------------------------------------------------------
// append

async fn append(args: &Args) -> Result<()> {
    let secs = args.num("secs", 20)?;
    let writers = args.num("writers", 2)?;
    let batch = usize::try_from(args.num("batch", 1000)?)?;
    let rate = args.num("rate", 0)?;
    let dir = bench_data().join(format!("append-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = append_in(&dir, secs, writers, batch, rate).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn append_in(dir: &Path, secs: u64, writers: u64, batch: usize, rate: u64) -> Result<()> {
    let store = Arc::new(SqlStore::open_sqlite(dir, &OpenOptions::default()).await?);
    let provider = bootstrap(&store).await?;
    let skey = NoteSigner::generate(ORIGIN, &OsEntropy)?.to_skey();
    let config = LogConfig::default();
    let log = Arc::new(open_log(&store, &skey, provider, config.clone()).await?);
    {
        let sample = Events::new(1).event(Env::system().now());
        let rec = parapet_store::AuditRecord {
            id: 1_234_567,
            event: sample,
        };
        let mut ev = Events::new(2);
        let mean: usize = (0..1000)
            .map(|i| {
                parapet_store::AuditRecord {
                    id: 1_000_000 + i,
                    event: ev.event(Env::system().now()),
                }
                .canonical_json()
                .len()
            })
            .sum::<usize>()
            / 1000;
        println!(
            "append: {writers} writers, batches of {batch}, {secs} s, offered rate {}; \
             canonical JSON {mean} bytes on average, e.g.\n  {}",
            if rate == 0 {
                "unlimited".to_owned()
            } else {
                format!("{rate}/s")
            },
            rec.canonical_json()
        );
    }
    // Integrate the bootstrap record first so the run starts from a signed checkpoint.
    log.integrate_once().await?;

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let integrated = Arc::new(AtomicU64::new(log.size().await?));
    // (end index of a batch, instant its transaction had committed)
    let commits: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    // (new tree size, instant integrate_once returned, the step's own lag_ms)
    let reports: Arc<Mutex<Vec<(u64, Instant, i64)>>> = Arc::new(Mutex::new(Vec::new()));

    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let stop = stop.clone();
        let committed = committed.clone();
        let commits = commits.clone();
        tasks.push(tokio::spawn(async move {
            let mut events = Events::new(100 + w);
            let per_writer = rate as f64 / writers.max(1) as f64;
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if per_writer > 0.0 {
                    let due = start + Duration::from_secs_f64(sent as f64 / per_writer);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                let b = events.batch(batch, Env::system().now());
                let first = store.append_audit_batch(&b).await?;
                let now = Instant::now();
                let end = first + b.len() as u64;
                committed.fetch_add(b.len() as u64, Ordering::Relaxed);
                sent += b.len() as u64;
                commits
                    .lock()
                    .map_err(|_| anyhow!("poisoned"))?
                    .push((end, now));
            }
            anyhow::Ok(())
        }));
    }
    // The sequencer, paced as AuditLog::run paces it.
    let sequencer = {
        let log = log.clone();
        let stop = stop.clone();
        let reports = reports.clone();
        let integrated = integrated.clone();
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                let pause = match log.integrate_once().await? {
                    Some(r) => {
                        let now = Instant::now();
                        integrated.store(r.new_size, Ordering::Relaxed);
                        reports
                            .lock()
                            .map_err(|_| anyhow!("poisoned"))?
                            .push((r.new_size, now, r.lag_ms));
                        config.min_interval
                    }
                    None => {
                        if stop.load(Ordering::Relaxed)
                            && log.size().await? >= store.audit_record_count().await?
                        {
                            break;
                        }
                        config.poll_interval
                    }
                };
                tokio::time::sleep(pause).await;
            }
            anyhow::Ok(())
        })
    };
    // Per-second samples of the records committed and integrated so far.
    let mut samples = vec![(0.0f64, 0u64, integrated.load(Ordering::Relaxed))];
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(start + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    for _ in 0..secs {
        tick.tick().await;
        samples.push((
            start.elapsed().as_secs_f64(),
            committed.load(Ordering::Relaxed),
            integrated.load(Ordering::Relaxed),
        ));
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let stopped = Instant::now();
    sequencer.await??;
    let drained = stopped.elapsed();

    let total = store.audit_record_count().await?;
    let size = log.size().await?;
    if size != total {
        bail!("the log has {size} records integrated of {total} written");
    }
    // Spot check: proofs of the final tree verify.
    let cp = log.checkpoint(None).await?;
    let mut rng = Rng(7);
    for _ in 0..20 {
        let i = rng.below(size);
        let (s, proof) = log.inclusion_proof(i, Some(cp.size)).await?;
        let rec = store
            .audit_range(provider, i, i + 1, 1)
            .await?
            .pop()
            .ok_or_else(|| anyhow!("record {i} is missing"))?;
        verify_inclusion(
            &leaf_hash(rec.canonical_json().as_bytes()),
            i,
            s,
            &proof,
            &Hash(cp.root),
        )?;
    }

    let reports = reports.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    let commits = commits.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    // Lag of each batch: from its commit to the first checkpoint covering it.
    let mut lags: Vec<Duration> = Vec::with_capacity(commits.len());
    for (end, at) in &commits {
        let first = reports.partition_point(|(s, _, _)| s < end);
        if let Some((_, t, _)) = reports.get(first) {
            lags.push(t.saturating_duration_since(*at));
        }
    }
    lags.sort_unstable();
    let mut rates_in: Vec<u64> = samples
        .windows(2)
        .filter_map(|w| Some(w.get(1)?.2.saturating_sub(w.first()?.2)))
        .collect();
    let mut rates_app: Vec<u64> = samples
        .windows(2)
        .filter_map(|w| Some(w.get(1)?.1.saturating_sub(w.first()?.1)))
        .collect();
    println!(
        "per-second integrated: {}",
        rates_in
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "per-second appended:   {}",
        rates_app
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    rates_in.sort_unstable();
    rates_app.sort_unstable();
    let written = commits.len() as u64 * batch as u64;
    let steps = reports.len();
    let step_sizes: Vec<u64> = reports
        .windows(2)
        .filter_map(|w| Some(w.get(1)?.0 - w.first()?.0))
        .collect();
    let own_lag = reports.iter().map(|r| r.2).max().unwrap_or(0);
    println!(
        "RESULT append: integrated_per_s_median={} appended_per_s_median={} \
         mean_integrated_per_s={:.0} lag_p50_ms={:.0} lag_p99_ms={:.0} lag_max_ms={:.0} \
         batches={} records={written} checkpoints={steps} mean_step={:.0} drain_ms={:.0} \
         step_lag_max_ms={own_lag}",
        pct(&rates_in, 50),
        pct(&rates_app, 50),
        samples
            .last()
            .map_or(0.0, |(t, _, s)| (*s - samples.first().map_or(0, |f| f.2))
                as f64
                / t),
        ms(pct(&lags, 50)),
        ms(pct(&lags, 99)),
        ms(lags.last().copied().unwrap_or_default()),
        lags.len(),
        if step_sizes.is_empty() {
            0.0
        } else {
            step_sizes.iter().sum::<u64>() as f64 / step_sizes.len() as f64
        },
        ms(drained),
    );
    store.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// the 10M-record data set

struct Dataset {
    dir: PathBuf,
    store: Arc<SqlStore>,
    provider: TenantCtx,
    skey: String,
}

/// The cached log of `size` records under `target/bench-data/`, built if missing.
async fn dataset(size: u64) -> Result<Dataset> {
    let dir = bench_data().join(format!("audit-log-{size}"));
    let done = dir.join("complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        build(&dir, size).await?;
        std::fs::write(&done, "")?;
    }
    let store = Arc::new(SqlStore::open_sqlite(&dir.join("db"), &OpenOptions::default()).await?);
    let provider = bootstrap(&store).await?;
    let skey = std::fs::read_to_string(dir.join("bench.skey"))?;
    Ok(Dataset {
        dir,
        store,
        provider,
        skey,
    })
}

async fn build(dir: &Path, size: u64) -> Result<()> {
    println!("building a log of {size} records in {}", dir.display());
    let store = Arc::new(SqlStore::open_sqlite(&dir.join("db"), &OpenOptions::default()).await?);
    let provider = bootstrap(&store).await?;
    let signer = NoteSigner::generate(ORIGIN, &OsEntropy)?;
    std::fs::write(dir.join("bench.skey"), signer.to_skey())?;
    let mut events = Events::new(42);
    let t0 = Instant::now();
    let mut time = Env::system().now();
    loop {
        let have = store.audit_record_count().await?;
        if have >= size {
            break;
        }
        let n = usize::try_from((size - have).min(10_000))?;
        time = Timestamp(time.0 + 1);
        store.append_audit_batch(&events.batch(n, time)).await?;
        if (have + n as u64) % 1_000_000 < n as u64 {
            println!(
                "  appended {} records ({:.0}/s)",
                have + n as u64,
                (have + n as u64) as f64 / t0.elapsed().as_secs_f64()
            );
        }
    }
    let appended = t0.elapsed();
    let t1 = Instant::now();
    let log = open_log(
        &store,
        &signer.to_skey(),
        provider,
        LogConfig {
            max_batch: 1_000_000,
            ..LogConfig::default()
        },
    )
    .await?;
    while log.size().await? < size {
        if let Some(r) = log.integrate_once().await? {
            println!(
                "  integrated {} records ({:.0}/s)",
                r.new_size,
                r.new_size as f64 / t1.elapsed().as_secs_f64()
            );
        }
    }
    let integrated = t1.elapsed();
    println!(
        "RESULT build: records={size} append_s={:.1} append_per_s={:.0} integrate_s={:.1} \
         integrate_per_s={:.0} db_bytes={}",
        appended.as_secs_f64(),
        size as f64 / appended.as_secs_f64(),
        integrated.as_secs_f64(),
        size as f64 / integrated.as_secs_f64(),
        dir_size(&dir.join("db"))
    );
    store.close().await;
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// proof

fn summary(name: &str, mut v: Vec<Duration>) -> String {
    v.sort_unstable();
    format!(
        "{name}_p50_us={:.1} {name}_p99_us={:.1} {name}_n={}",
        us(pct(&v, 50)),
        us(pct(&v, 99)),
        v.len()
    )
}

async fn proof(args: &Args) -> Result<()> {
    let size = args.num("size", 10_000_000)?;
    let n = args.num("proofs", 10_000)?;
    let n_cold = args.num("cold", 1000)?;
    let ds = dataset(size).await?;
    let log = open_log(&ds.store, &ds.skey, ds.provider, LogConfig::default()).await?;
    if log.size().await? != size {
        bail!(
            "the cached log at {} is not of size {size}",
            ds.dir.display()
        );
    }
    let cp = log.checkpoint(None).await?;
    let root = Hash(cp.root);

    // Reference: the whole tree in memory, from the stored leaf hashes (level-0 tiles).
    let t = Instant::now();
    let mut mem = MemoryTree::new();
    let tiles = size.div_ceil(256);
    let mut next = 0u64;
    while next < tiles {
        let want: Vec<(u8, u64)> = (next..(next + 200).min(tiles)).map(|i| (0u8, i)).collect();
        let mut got = ds.store.read_tiles(&want).await?;
        got.sort_by_key(|t| t.index);
        for tile in got {
            for h in tile.hashes.chunks_exact(32) {
                mem.append_leaf_hash(Hash::from_slice(h)?);
            }
        }
        next += 200;
    }
    if mem.size() != size || mem.root() != root {
        bail!("the stored leaf hashes do not reproduce the checkpoint");
    }
    println!(
        "proof: log of {size} records, in-memory reference tree built in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut rng = Rng(1);
    let indexes: Vec<u64> = (0..n).map(|_| rng.below(size)).collect();
    let (mut first, mut again, mut memory) = (Vec::new(), Vec::new(), Vec::new());
    for &i in &indexes {
        let t = Instant::now();
        let (_, p) = log.inclusion_proof(i, None).await?;
        first.push(t.elapsed());
        let t = Instant::now();
        let (_, p2) = log.inclusion_proof(i, None).await?;
        again.push(t.elapsed());
        let t = Instant::now();
        let want = mem.inclusion_proof(i, size)?;
        memory.push(t.elapsed());
        if p != want || p2 != want {
            bail!("the proof of {i} differs from the reference");
        }
        let leaf = mem
            .leaf_hash(i)
            .ok_or_else(|| anyhow!("no leaf {i} in the reference"))?;
        verify_inclusion(&leaf, i, size, &p, &root)?;
    }
    // Cold: a new AuditLog (empty tile cache) for every proof; SQLite's pages may be in the
    // OS page cache.
    let mut cold = Vec::new();
    for &i in indexes.iter().take(usize::try_from(n_cold)?) {
        let fresh = open_log(&ds.store, &ds.skey, ds.provider, LogConfig::default()).await?;
        let t = Instant::now();
        let (_, p) = fresh.inclusion_proof(i, None).await?;
        cold.push(t.elapsed());
        if p != mem.inclusion_proof(i, size)? {
            bail!("the cold proof of {i} differs from the reference");
        }
    }
    // What every proof starts with: the latest tree size (one read of the log head).
    let mut head = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        log.size().await?;
        head.push(t.elapsed());
    }
    // Consistency proofs from a random earlier size to the latest.
    let (mut cons, mut cons_mem) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let from = 1 + rng.below(size - 1);
        let t = Instant::now();
        let (_, p) = log.consistency_proof(from, None).await?;
        cons.push(t.elapsed());
        let t = Instant::now();
        let want = mem.consistency_proof(from, size)?;
        cons_mem.push(t.elapsed());
        if p != want {
            bail!("the consistency proof from {from} differs from the reference");
        }
        verify_consistency(from, size, &mem.root_at(from)?, &root, &p)?;
    }
    println!(
        "RESULT proof: size={size} {} {} {} {} {} {} {}",
        summary("inclusion_random", first),
        summary("inclusion_warm", again),
        summary("inclusion_cold", cold),
        summary("inclusion_memory", memory),
        summary("consistency", cons),
        summary("consistency_memory", cons_mem),
        summary("log_head", head),
    );
    ds.store.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// verify

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn timed(cmd: &mut Command) -> Result<(f64, String)> {
    let t = Instant::now();
    let out = cmd.stderr(Stdio::piped()).stdout(Stdio::piped()).output()?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((secs, String::from_utf8_lossy(&out.stdout).into_owned()))
}

async fn verify(args: &Args) -> Result<()> {
    let size = args.num("size", 10_000_000)?;
    let runs = args.num("runs", 3)?;
    let bin = args.opts.get("bin").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/parapet")
    });
    let ds = dataset(size).await?;
    let out = ds.dir.join("export");
    let entries = out.join("entries.jsonl");
    let checkpoint = out.join("checkpoint.txt");
    let key = out.join("public.key");
    if !out.join("complete").exists() {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out)?;
        let log = open_log(&ds.store, &ds.skey, ds.provider, LogConfig::default()).await?;
        let cp = log.checkpoint(Some(size)).await?;
        std::fs::write(&checkpoint, &cp.signed)?;
        std::fs::write(&key, format!("{}\n", log.public_key()))?;
        let t = Instant::now();
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&entries)?);
        let mut from = 0;
        while from < size {
            let page = ds
                .store
                .audit_range(ds.provider, from, size, 100_000)
                .await?;
            if page.is_empty() {
                bail!("records from {from} are missing");
            }
            for r in &page {
                if u64::try_from(r.id)? != from {
                    bail!("record {} where {from} belongs", r.id);
                }
                w.write_all(r.canonical_json().as_bytes())?;
                w.write_all(b"\n")?;
                from += 1;
            }
        }
        w.flush()?;
        println!(
            "exported {size} records in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        std::fs::write(out.join("complete"), "")?;
    }
    ds.store.close().await;
    let bytes = std::fs::metadata(&entries)?.len();
    println!(
        "verify: {} ({} bytes, {:.0} bytes a record), {} runs each; binary {}",
        entries.display(),
        bytes,
        bytes as f64 / size as f64,
        runs,
        bin.display()
    );
    // Warm the page cache so both tools read from memory.
    timed(Command::new("cat").arg(&entries).stdout(Stdio::null()))?;
    // References: coreutils `sha256sum` (portable C SHA-256), and `openssl dgst -sha256`, which
    // uses the CPU's SHA extensions as the verifier does: the floor of hashing every byte.
    let (mut ver, mut sha, mut ossl) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (v, text) = timed(
            Command::new(&bin)
                .args(["audit", "verify", "--checkpoint"])
                .arg(&checkpoint)
                .arg("--entries")
                .arg(&entries)
                .arg("--public-key")
                .arg(&key),
        )?;
        if !text.starts_with("OK:") {
            bail!("parapet audit verify said: {text}");
        }
        let (s, _) = timed(Command::new("sha256sum").arg(&entries))?;
        let (o, _) = timed(
            Command::new("openssl")
                .args(["dgst", "-sha256"])
                .arg(&entries),
        )?;
        println!("  run: verify {v:.2} s, sha256sum {s:.2} s, openssl sha256 {o:.2} s");
        ver.push(v);
        sha.push(s);
        ossl.push(o);
    }
    let (v, s, o) = (
        median(ver.clone()),
        median(sha.clone()),
        median(ossl.clone()),
    );
    println!(
        "RESULT verify: size={size} bytes={bytes} verify_s={v:.2} sha256sum_s={s:.2} \
         openssl_s={o:.2} ratio_sha256sum={:.2} ratio_openssl={:.2} verify_mb_per_s={:.0} \
         sha256sum_mb_per_s={:.0} openssl_mb_per_s={:.0} verify_runs={ver:.2?} \
         sha256sum_runs={sha:.2?} openssl_runs={ossl:.2?}",
        v / s,
        v / o,
        bytes as f64 / v / 1e6,
        bytes as f64 / s / 1e6,
        bytes as f64 / o / 1e6,
    );
    Ok(())
}
