//! `parapet backup …`: the backup engine on a repository, offline (X.1642 8.10). The repository
//! password comes from `--password-file` or `PARAPET_BACKUP_PASSWORD`; snapshots are signed with
//! the operator's key from `--operator-key` or `PARAPET_BACKUP_OPERATOR_KEY`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parapet_backup::{
    BackupOptions, InitOptions, KeepPolicy, OperatorKey, PruneOptions, Repository, VerifyOptions,
};
use parapet_client::BackupReportInput;
use parapet_types::Env;
use serde::Serialize;

use super::output::{fields, json, note, out, rfc3339_millis, table};

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Create a repository (a local directory) protected by a password.
    Init(InitArgs),
    /// Generate an operator signing key (Ed25519) and print its public key.
    Keygen(KeygenArgs),
    /// Trust another operator public key (`ed25519:…`) to sign this repository's snapshots.
    Trust(TrustArgs),
    /// Back up files and directories into a new signed snapshot.
    Run(RunArgs),
    /// List the snapshots.
    Snapshots(RepoArgs),
    /// Restore a snapshot (an id prefix or `latest`) into a directory.
    Restore(RestoreArgs),
    /// Check operator signatures and the repository's structure; --read-data re-reads and
    /// re-hashes every chunk. Exit status 0 only if everything holds; damaged files are named.
    Verify(VerifyArgs),
    /// Check the repository's structure (without signatures); --read-data reads all data.
    Check(CheckArgs),
    /// Forget snapshots a retention policy does not keep and free the space they used.
    Prune(PruneArgs),
    /// Copy the repository to another place (on-site to off-site, or back): only what the
    /// destination lacks, checked by hash; no password needed, only ciphertext moves.
    Copy(CopyArgs),
    /// Restore test: restore a snapshot (default the latest) into a scratch directory, check
    /// every file against the signed manifest by hash, measure the time (the achieved RTO),
    /// report it with --report-to, and remove the scratch directory.
    RestoreTest(RestoreTestArgs),
    /// The server's backup policies of a tenant (RPO, RTO, retention, copies, sites, window).
    #[command(subcommand)]
    Policy(super::backup_server::PolicyCommand),
    /// Whether a tenant's backups meet its policies now (provider staff: every tenant).
    Compliance(super::backup_server::ComplianceArgs),
    /// The reports (evidence) of a tenant's backup runs, copies, verifications, restore tests.
    Reports(super::backup_server::ReportsArgs),
    /// The findings the server's compliance job opened for a tenant.
    Findings(super::backup_server::FindingsArgs),
    /// Backup jobs the server has agents carry out: a policy's sources and repositories
    /// assigned to an agent (host).
    #[command(subcommand)]
    Job(super::backup_agent::JobCommand),
    /// Run as a backup agent: poll the server for this host's due jobs and carry them out
    /// (backup, off-site copy, prune by the policy's retention, restore tests), reporting each
    /// step. Token (scope `backup`) from PARAPET_TOKEN; passwords from the agent's --config.
    Agent(super::backup_agent::AgentArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreTestArgs {
    #[command(flatten)]
    pub r: RepoOpts,
    /// A snapshot id (at least 4 characters of it) or `latest`.
    #[arg(value_name = "SNAPSHOT", default_value = "latest")]
    pub snapshot: String,
    /// Where to make the scratch directory (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// Also accept snapshots signed by this operator public key; repeatable.
    #[arg(long = "trust", value_name = "KEY")]
    pub trust: Vec<String>,
    #[command(flatten)]
    pub report: super::backup_server::ReportTo,
}

/// Bandwidth limits, so that backups leave tenants the bandwidth they need.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Write to the repository at most this many KiB/s.
    #[arg(long, value_name = "KIB_PER_SEC")]
    pub limit_upload: Option<u64>,
    /// Read from the repository at most this many KiB/s.
    #[arg(long, value_name = "KIB_PER_SEC")]
    pub limit_download: Option<u64>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CopyArgs {
    /// The repository to copy: a local directory or `s3://bucket/prefix`.
    #[arg(long, env = "PARAPET_BACKUP_REPOSITORY", value_name = "REPO")]
    pub repo: String,
    /// Where the copy is kept (created if empty; must be a copy of the same repository).
    #[arg(long, value_name = "REPO")]
    pub to: String,
    #[command(flatten)]
    pub report: super::backup_server::ReportTo,
    /// Limits: --limit-download applies to reading the source, --limit-upload to writing the copy.
    #[command(flatten)]
    pub limits: Limits,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the repository is and how to open it.
#[derive(Debug, Clone, clap::Args)]
pub struct RepoOpts {
    /// The repository: a local directory or `s3://bucket/prefix` (credentials, region and
    /// endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL).
    #[arg(long, env = "PARAPET_BACKUP_REPOSITORY", value_name = "REPO")]
    pub repo: String,
    /// A file whose first line is the repository password (else PARAPET_BACKUP_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub limits: Limits,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RepoArgs {
    #[command(flatten)]
    pub r: RepoOpts,
}

#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub r: RepoOpts,
    /// The operator key that will sign snapshots: its public key is trusted. Created if the
    /// file does not exist.
    #[arg(long, env = "PARAPET_BACKUP_OPERATOR_KEY", value_name = "FILE")]
    pub operator_key: Option<PathBuf>,
    /// Also trust this operator public key (`ed25519:…`); repeatable.
    #[arg(long = "trust", value_name = "KEY")]
    pub trust: Vec<String>,
    /// Protect the repository with this key of the server's key service instead of a password
    /// (X.1642 8.2): its secret is a data key the service generates and only it can decrypt
    /// (token from PARAPET_TOKEN; later commands decrypt it through PARAPET_SERVER).
    #[arg(long, value_name = "NAME", requires = "server")]
    pub kms_key: Option<String>,
    /// The Parapet server whose key service holds --kms-key.
    #[arg(long, env = "PARAPET_SERVER", value_name = "URL")]
    pub server: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (readable by you only); refuses to overwrite.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TrustArgs {
    #[command(flatten)]
    pub r: RepoOpts,
    /// The operator public key, `ed25519:BASE64` (as printed by `keygen`).
    #[arg(value_name = "KEY")]
    pub key: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub r: RepoOpts,
    /// The operator key that signs the snapshot.
    #[arg(long, env = "PARAPET_BACKUP_OPERATOR_KEY", value_name = "FILE")]
    pub operator_key: PathBuf,
    /// A tag for the snapshot; repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// The host name recorded (default: this machine's).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Read every file, even those the previous snapshot shows unchanged.
    #[arg(long)]
    pub force: bool,
    /// What to back up.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub window: super::backup_server::WindowArgs,
    #[command(flatten)]
    pub policy_from: super::backup_server::PolicyFrom,
    #[command(flatten)]
    pub report: super::backup_server::ReportTo,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub r: RepoOpts,
    /// A snapshot id (at least 4 characters of it) or `latest`.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: String,
    /// The directory to restore into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    /// Also accept snapshots signed by this operator public key; repeatable.
    #[arg(long = "trust", value_name = "KEY")]
    pub trust: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub r: RepoOpts,
    /// Re-read every pack and re-hash every chunk.
    #[arg(long)]
    pub read_data: bool,
    /// Also accept snapshots signed by this operator public key; repeatable.
    #[arg(long = "trust", value_name = "KEY")]
    pub trust: Vec<String>,
    /// Instead of checking the repository, compare a snapshot with this live path by hash
    /// (one of the paths the snapshot was taken of); repeatable. Exit status 0 only if
    /// identical; every difference is named.
    #[arg(long = "against", value_name = "PATH")]
    pub against: Vec<PathBuf>,
    /// The snapshot to compare with (an id prefix or `latest`, the default).
    #[arg(
        long,
        value_name = "SNAPSHOT",
        default_value = "latest",
        requires = "against"
    )]
    pub snapshot: String,
    #[command(flatten)]
    pub report: super::backup_server::ReportTo,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub r: RepoOpts,
    /// Re-read every pack and re-hash every chunk.
    #[arg(long)]
    pub read_data: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub r: RepoOpts,
    /// Keep the newest N snapshots.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,
    /// … of each of the last N days.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    /// … of each of the last N ISO weeks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    /// … of each of the last N months.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    /// … of each of the last N years.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep every snapshot younger than this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 0)]
    pub keep_within_days: u64,
    /// Only say what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep what the tenant's policy (--tenant, --policy) on this Parapet server says instead of
    /// --keep-… (token from PARAPET_TOKEN, e.g. of scope `backup`).
    #[arg(long, value_name = "URL", requires = "tenant")]
    pub server: Option<String>,
    /// The tenant whose policy gives the retention (with --server).
    #[arg(long, value_name = "TENANT", requires = "server")]
    pub tenant: Option<String>,
    /// The policy that gives the retention (with --server).
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub policy: String,
}

pub async fn run(cmd: BackupCommand) -> anyhow::Result<()> {
    use super::backup_server as srv;
    let cmd = match cmd {
        BackupCommand::Policy(c) => return srv::policy(c).await,
        BackupCommand::Compliance(a) => return srv::compliance(a).await,
        BackupCommand::Reports(a) => return srv::reports(a).await,
        BackupCommand::Findings(a) => return srv::findings(a).await,
        BackupCommand::Job(c) => return super::backup_agent::job(c).await,
        other => other,
    };
    tokio::task::spawn_blocking(move || run_blocking(cmd))
        .await
        .map_err(|e| anyhow!("the backup task failed: {e}"))?
}

fn run_blocking(cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::Init(a) => init(a),
        BackupCommand::Keygen(a) => keygen(a),
        BackupCommand::Trust(a) => trust(a),
        BackupCommand::Run(a) => backup_run(a),
        BackupCommand::Snapshots(a) => snapshots(a),
        BackupCommand::Restore(a) => restore(a),
        BackupCommand::Verify(a) if !a.against.is_empty() => verify_against(a),
        BackupCommand::Verify(a) => {
            let started = std::time::Instant::now();
            let res = verify(
                &a.r,
                VerifyOptions {
                    read_data: a.read_data,
                    signatures: true,
                    extra_trusted: a.trust.clone(),
                },
            );
            a.report.send(BackupReportInput {
                kind: "verify".into(),
                ok: res.is_ok(),
                repository: a.r.repo.clone(),
                duration_ms: elapsed_ms(started),
                encrypted: true,
                error: res.as_ref().err().map(|e| format!("{e:#}")),
                ..BackupReportInput::default()
            })?;
            res
        }
        BackupCommand::Check(a) => verify(
            &a.r,
            VerifyOptions {
                read_data: a.read_data,
                signatures: false,
                extra_trusted: Vec::new(),
            },
        ),
        BackupCommand::Prune(a) => prune(a),
        BackupCommand::Copy(a) => copy(a),
        BackupCommand::RestoreTest(a) => restore_test(a),
        BackupCommand::Agent(a) => super::backup_agent::agent(a),
        BackupCommand::Job(_)
        | BackupCommand::Policy(_)
        | BackupCommand::Compliance(_)
        | BackupCommand::Reports(_)
        | BackupCommand::Findings(_) => bail!("this command needs the server"),
    }
}

pub(super) fn elapsed_ms(t: std::time::Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn backend(
    repo: &str,
    limits: &Limits,
) -> anyhow::Result<std::sync::Arc<dyn parapet_backup::Backend>> {
    if repo.is_empty() {
        bail!("--repo must not be empty");
    }
    let b = parapet_backup::open_location(repo)?;
    if limits.limit_upload.is_none() && limits.limit_download.is_none() {
        return Ok(b);
    }
    Ok(std::sync::Arc::new(parapet_backup::Limited::new(
        b,
        limits.limit_upload,
        limits.limit_download,
        std::sync::Arc::new(parapet_backup::RealPacer::default()),
    )?))
}

fn password(r: &RepoOpts) -> anyhow::Result<Vec<u8>> {
    let pw = match &r.password_file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the password file {}", f.display()))?;
            text.lines().next().unwrap_or("").to_string()
        }
        None => std::env::var("PARAPET_BACKUP_PASSWORD").map_err(|_| {
            anyhow!(
                "no repository password: give --password-file FILE or set PARAPET_BACKUP_PASSWORD"
            )
        })?,
    };
    if pw.is_empty() {
        bail!("the repository password is empty");
    }
    Ok(pw.into_bytes())
}

pub(super) fn open(r: &RepoOpts) -> anyhow::Result<Repository> {
    let backend = backend(&r.repo, &r.limits)?;
    let pw = match password(r) {
        Ok(pw) => pw,
        // A repository under the key service: its secret comes from the server.
        Err(e) => match kms_password(backend.as_ref())? {
            Some(pw) => pw,
            None => return Err(e),
        },
    };
    Ok(Repository::open(backend, Env::system(), &pw)?)
}

/// The encryption context of repository secrets under the key service.
fn kms_context() -> std::collections::BTreeMap<String, String> {
    [(
        "purpose".to_string(),
        "parapet-backup-repository".to_string(),
    )]
    .into_iter()
    .collect()
}

fn kms_client(server: Option<&str>) -> anyhow::Result<parapet_client::Client> {
    let server = match server {
        Some(s) => s.to_string(),
        None => std::env::var("PARAPET_SERVER").map_err(|_| {
            anyhow!("this repository's key is held by a key service: set PARAPET_SERVER")
        })?,
    };
    let token = std::env::var("PARAPET_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| anyhow!("the key service needs a token in PARAPET_TOKEN"))?;
    Ok(parapet_client::Client::new(&server)?.with_token(token.trim().to_string()))
}

/// The repository secret decrypted by the key service, if the repository has a record of one.
fn kms_password(backend: &dyn parapet_backup::Backend) -> anyhow::Result<Option<Vec<u8>>> {
    let records = Repository::kms_records(backend)?;
    if records.is_empty() {
        return Ok(None);
    }
    let client = kms_client(None)?;
    let handle = tokio::runtime::Handle::current();
    let mut last = None;
    for (key, ciphertext) in records {
        match handle.block_on(client.kms_decrypt(&ciphertext, &kms_context())) {
            Ok(plain) => return Ok(Some(plain.into_bytes())),
            Err(e) => {
                last = Some(anyhow!(
                    "the key service refused to decrypt the secret of key {key}: {e}"
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no key service record")))
}

pub(super) fn read_operator_key(path: &Path) -> anyhow::Result<OperatorKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the operator key {}", path.display()))?;
    OperatorKey::from_file_text(&text).with_context(|| path.display().to_string())
}

fn write_operator_key(path: &Path, key: &OperatorKey) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(key.to_file_text().as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn init(a: InitArgs) -> anyhow::Result<()> {
    let backend = backend(&a.r.repo, &a.r.limits)?;
    let location = backend.location();
    let (pw, kms_ciphertext) = match &a.kms_key {
        Some(name) => {
            let client = kms_client(a.server.as_deref())?;
            let dk = tokio::runtime::Handle::current()
                .block_on(client.kms_datakey(name, &kms_context(), false))
                .with_context(|| format!("the key service cannot make a data key under {name}"))?;
            let plain = dk
                .plaintext
                .ok_or_else(|| anyhow!("the key service returned no plaintext data key"))?;
            (plain.into_bytes(), Some((name.clone(), dk.ciphertext)))
        }
        None => (password(&a.r)?, None),
    };
    let env = Env::system();
    let mut trusted = a.trust.clone();
    if let Some(kp) = &a.operator_key {
        let key = if kp.exists() {
            read_operator_key(kp)?
        } else {
            let k = OperatorKey::generate(&env)?;
            write_operator_key(kp, &k)?;
            k
        };
        trusted.push(key.public());
    }
    if trusted.is_empty() {
        bail!(
            "give --operator-key FILE (or --trust KEY): snapshots must be signed by a trusted operator"
        );
    }
    let repo = Repository::init(
        backend,
        env,
        &InitOptions {
            password: pw,
            trusted_operators: trusted.clone(),
        },
    )?;
    if let Some((name, ciphertext)) = &kms_ciphertext {
        repo.write_kms_record(name, ciphertext)?;
    }
    #[derive(Serialize)]
    struct Out<'a> {
        repository: String,
        id: &'a str,
        trusted_operators: &'a [String],
    }
    let o = Out {
        repository: location.clone(),
        id: &repo.config.id,
        trusted_operators: &trusted,
    };
    if a.r.json {
        return json(&o);
    }
    out(&format!(
        "created repository {} at {}\ntrusted operators: {}\n",
        o.id,
        o.repository,
        trusted.join(", ")
    ))
}

fn keygen(a: KeygenArgs) -> anyhow::Result<()> {
    let key = OperatorKey::generate(&Env::system())?;
    write_operator_key(&a.out, &key)?;
    if a.json {
        return json(&serde_json::json!({ "public_key": key.public(), "file": a.out }));
    }
    out(&format!("{}\n", key.public()))
}

fn trust(a: TrustArgs) -> anyhow::Result<()> {
    let repo = open(&a.r)?;
    parapet_backup::parse_public_key(&a.key)?;
    let _lock = repo.lock(parapet_backup::LockKind::Exclusive)?;
    let mut keys = repo.trusted_operators()?;
    keys.insert(a.key.trim().to_string());
    repo.write_operators(&keys)?;
    if a.r.json {
        return json(&keys);
    }
    out(&format!(
        "trusted operators: {}\n",
        keys.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

/// A byte progress bar on standard error (hidden when it is not a terminal or with --json).
pub(super) struct Bar(pub(super) ProgressBar);

impl Bar {
    pub(super) fn new(what: &str, hidden: bool) -> Bar {
        let target = if hidden {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} {bytes} ({bytes_per_sec}) [{bar:30}] {percent}% {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Bar(bar)
    }
}

impl parapet_backup::Progress for Bar {
    fn total(&self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

#[derive(Serialize)]
struct SnapshotOut {
    id: String,
    short_id: String,
    time: String,
    time_ms: i64,
    hostname: String,
    paths: Vec<String>,
    tags: Vec<String>,
    root_hash: String,
    operator: String,
    files: u64,
    dirs: u64,
    bytes: u64,
    new_bytes: u64,
    stored_bytes: u64,
    duration_ms: u64,
    parent: Option<String>,
}

fn snapshot_out(s: &parapet_backup::SnapshotInfo) -> SnapshotOut {
    let m = &s.manifest;
    SnapshotOut {
        id: s.id.clone(),
        short_id: s.id.get(..12).unwrap_or(&s.id).to_string(),
        time: rfc3339_millis(m.time_ms),
        time_ms: m.time_ms,
        hostname: m.hostname.clone(),
        paths: m.paths.clone(),
        tags: m.tags.clone(),
        root_hash: m.root.clone(),
        operator: m.operator.clone(),
        files: m.files,
        dirs: m.dirs,
        bytes: m.bytes,
        new_bytes: m.new_bytes,
        stored_bytes: m.stored_bytes,
        duration_ms: m.duration_ms,
        parent: m.parent.clone(),
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn backup_run(a: RunArgs) -> anyhow::Result<()> {
    // The window (and the retention of a following prune) from the server's policy, if asked.
    let policy = match (&a.policy_from.policy_server, &a.report.report_tenant) {
        (Some(server), Some(tenant)) => Some(super::backup_server::fetch_policy(
            server,
            tenant,
            &a.report.report_policy,
        )?),
        _ => None,
    };
    match &policy {
        Some(p) => a
            .window
            .enforce_window(p.get("window").and_then(serde_json::Value::as_str))?,
        None => a.window.enforce()?,
    }
    let started = std::time::Instant::now();
    let key = read_operator_key(&a.operator_key)?;
    let done = open(&a.r).and_then(|mut repo| {
        let bar = Bar::new("backing up", a.r.json);
        let report = parapet_backup::backup(
            &mut repo,
            &BackupOptions {
                paths: a.paths.clone(),
                tags: a.tags.clone(),
                hostname: a.host.clone(),
                force: a.force,
            },
            &key,
            &bar,
        )?;
        bar.0.finish_and_clear();
        Ok(report)
    });
    let report = match done {
        Ok(r) => r,
        Err(e) => {
            let sent = a.report.send(BackupReportInput {
                kind: "backup".into(),
                ok: false,
                repository: a.r.repo.clone(),
                duration_ms: elapsed_ms(started),
                encrypted: true,
                signer: Some(key.public()),
                error: Some(format!("{e:#}")),
                ..BackupReportInput::default()
            });
            if let Err(se) = sent {
                note(&format!("warning: {se:#}"));
            }
            return Err(e);
        }
    };
    {
        let m = &report.snapshot.manifest;
        a.report
            .send(BackupReportInput {
                kind: "backup".into(),
                ok: report.warnings.is_empty(),
                snapshot: Some(report.snapshot.id.clone()),
                repository: a.r.repo.clone(),
                bytes_added: m.stored_bytes,
                total_bytes: m.bytes,
                files: m.files,
                duration_ms: m.duration_ms,
                signer: Some(m.operator.clone()),
                encrypted: true,
                error: (!report.warnings.is_empty())
                    .then(|| format!("{} file(s) could not be backed up", report.warnings.len())),
                ..BackupReportInput::default()
            })
            .with_context(|| {
                format!(
                    "snapshot {} was saved, but the report to the server failed",
                    report.snapshot.id
                )
            })?;
    }
    for w in &report.warnings {
        note(&format!("warning: {w}"));
    }
    let pruned = match (&policy, a.policy_from.prune) {
        (Some(p), true) => {
            let keep = super::backup_server::keep_of(p);
            let mut repo = open(&a.r)?;
            Some(
                parapet_backup::prune(
                    &mut repo,
                    &PruneOptions {
                        policy: keep,
                        dry_run: false,
                    },
                )
                .with_context(|| {
                    format!(
                        "snapshot {} was saved, but the prune by the policy's retention failed",
                        report.snapshot.id
                    )
                })?,
            )
        }
        _ => None,
    };
    let s = snapshot_out(&report.snapshot);
    if a.r.json {
        #[derive(Serialize)]
        struct Out {
            snapshot: SnapshotOut,
            warnings: Vec<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pruned: Option<parapet_backup::PruneReport>,
        }
        return json(&Out {
            snapshot: s,
            warnings: report.warnings,
            pruned,
        });
    }
    let secs = (s.duration_ms as f64 / 1000.0).max(0.001);
    out(&fields(&[
        ("snapshot", s.id.clone()),
        ("files", format!("{} in {} directories", s.files, s.dirs)),
        ("read", mib(s.bytes)),
        (
            "new data",
            format!("{} ({} stored)", mib(s.new_bytes), mib(s.stored_bytes)),
        ),
        (
            "duration",
            format!("{secs:.2} s ({:.0} MB/s)", s.bytes as f64 / 1e6 / secs),
        ),
        ("root hash", s.root_hash),
        ("signed by", s.operator),
    ]))?;
    if !report.warnings.is_empty() {
        bail!(
            "{} file(s) could not be backed up (see the warnings above)",
            report.warnings.len()
        );
    }
    Ok(())
}

fn snapshots(a: RepoArgs) -> anyhow::Result<()> {
    let repo = open(&a.r)?;
    let (snaps, bad) = repo.snapshots()?;
    for (name, why) in &bad {
        note(&format!("warning: snapshot {name}: {why}"));
    }
    let list: Vec<SnapshotOut> = snaps.iter().map(snapshot_out).collect();
    if a.r.json {
        return json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.short_id.clone(),
                s.time.clone(),
                s.hostname.clone(),
                mib(s.bytes),
                s.tags.join(","),
                s.paths.join(" "),
            ]
        })
        .collect();
    out(&table(
        &["ID", "TIME", "HOST", "SIZE", "TAGS", "PATHS"],
        &rows,
    ))
}

fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    let repo = open(&a.r)?;
    let snap = repo.find_snapshot(&a.snapshot)?;
    let mut trusted: BTreeSet<String> = repo.trusted_operators()?;
    trusted.extend(a.trust.iter().cloned());
    let bar = Bar::new("restoring", a.r.json);
    let report = parapet_backup::restore(&repo, &snap, &trusted, &a.target, &bar)?;
    bar.0.finish_and_clear();
    for w in &report.warnings {
        note(&format!("warning: {w}"));
    }
    if a.r.json {
        return json(&serde_json::json!({
            "snapshot": snap.id,
            "target": a.target,
            "files": report.files,
            "dirs": report.dirs,
            "bytes": report.bytes,
            "duration_ms": report.duration_ms,
            "warnings": report.warnings,
        }));
    }
    let secs = (report.duration_ms as f64 / 1000.0).max(0.001);
    out(&format!(
        "restored snapshot {} to {}: {} files, {} directories, {} in {secs:.2} s\n",
        &snap.id.get(..12).unwrap_or(&snap.id),
        a.target.display(),
        report.files,
        report.dirs,
        mib(report.bytes)
    ))
}

fn verify(r: &RepoOpts, opts: VerifyOptions) -> anyhow::Result<()> {
    let repo = open(r)?;
    let bar = Bar::new("reading", r.json || !opts.read_data);
    let report = parapet_backup::verify(&repo, &opts, &bar)?;
    bar.0.finish_and_clear();
    if r.json {
        json(&report)?;
    } else {
        for n in &report.notes {
            note(&format!("note: {n}"));
        }
        for p in &report.problems {
            out(&format!("damaged: {}: {}\n", p.what, p.detail))?;
        }
        if !report.affected_files.is_empty() {
            out(&format!(
                "affected files ({}):\n",
                report.affected_files.len()
            ))?;
            for f in &report.affected_files {
                out(&format!("  {f}\n"))?;
            }
        }
        let mut line = format!(
            "{} snapshots, {} packs, {} blobs",
            report.snapshots, report.packs, report.blobs
        );
        if opts.read_data {
            line.push_str(&format!(", {} read and re-hashed", mib(report.bytes_read)));
        }
        if report.ok() {
            out(&format!("no problems found: {line}\n"))?;
        }
    }
    if !report.ok() {
        bail!(
            "verification failed: {} problem(s), {} affected file(s)",
            report.problems.len(),
            report.affected_files.len()
        );
    }
    Ok(())
}

fn copy(a: CopyArgs) -> anyhow::Result<()> {
    let from = backend(
        &a.repo,
        &Limits {
            limit_upload: None,
            limit_download: a.limits.limit_download,
        },
    )?;
    let to = backend(
        &a.to,
        &Limits {
            limit_upload: a.limits.limit_upload,
            limit_download: None,
        },
    )?;
    let bar = Bar::new("copying", a.json);
    let started = std::time::Instant::now();
    let res = parapet_backup::copy(from.as_ref(), to.as_ref(), &bar);
    bar.0.finish_and_clear();
    a.report.send(BackupReportInput {
        kind: "copy".into(),
        ok: res.is_ok(),
        repository: a.to.clone(),
        bytes_added: res.as_ref().map_or(0, |r| r.bytes_copied),
        files: res.as_ref().map_or(0, |r| r.files_copied),
        duration_ms: elapsed_ms(started),
        encrypted: true,
        error: res.as_ref().err().map(|e| e.to_string()),
        ..BackupReportInput::default()
    })?;
    let report = res?;
    if a.json {
        return json(&report);
    }
    out(&format!(
        "copied {} files ({}) from {} to {}; {} already there\n",
        report.files_copied,
        mib(report.bytes_copied),
        report.from,
        report.to,
        report.files_present
    ))
}

fn verify_against(a: VerifyArgs) -> anyhow::Result<()> {
    let repo = open(&a.r)?;
    let snap = repo.find_snapshot(&a.snapshot)?;
    let mut trusted = repo.trusted_operators()?;
    trusted.extend(a.trust.iter().cloned());
    let bar = Bar::new("hashing", a.r.json);
    let report = parapet_backup::compare(&repo, &snap, &trusted, &a.against, &bar)?;
    bar.0.finish_and_clear();
    if a.r.json {
        json(&report)?;
    } else {
        for d in &report.differences {
            let kind = serde_json::to_value(d.kind)?;
            out(&format!(
                "{}: {}: {}\n",
                kind.as_str().unwrap_or("differs"),
                d.path,
                d.detail
            ))?;
        }
        if report.identical() {
            out(&format!(
                "identical to snapshot {}: {} files, {} directories, {} hashed\n",
                snap.id.get(..12).unwrap_or(&snap.id),
                report.files,
                report.dirs,
                mib(report.bytes_hashed)
            ))?;
        }
    }
    if !report.identical() {
        bail!(
            "the live data differs from snapshot {} in {} place(s)",
            snap.id.get(..12).unwrap_or(&snap.id),
            report.differences.len()
        );
    }
    Ok(())
}

/// What a restore test found.
pub(super) struct RestoreTestOutcome {
    pub ok: bool,
    pub snapshot: Option<String>,
    pub files: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    /// Why it failed (the differences, or the error).
    pub error: Option<String>,
    /// The error that stopped it before any comparison.
    pub failure: Option<anyhow::Error>,
}

/// Restores `snapshot` of `r` into a fresh scratch directory under `scratch_base` (default: the
/// system's temporary directory), checks every file against the signed manifest by hash,
/// measures the time and removes the directory.
pub(super) fn restore_test_core(
    r: &RepoOpts,
    snapshot: &str,
    scratch_base: Option<&Path>,
    trust: &[String],
    hidden: bool,
) -> RestoreTestOutcome {
    let base = scratch_base.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let scratch = base.join(format!(
        "parapet-restore-test-{}-{}",
        std::process::id(),
        Env::system().now().0
    ));
    let started = std::time::Instant::now();
    let outcome = (|| -> anyhow::Result<(String, u64, u64, Vec<String>)> {
        let repo = open(r)?;
        let snap = repo.find_snapshot(snapshot)?;
        let mut trusted: BTreeSet<String> = repo.trusted_operators()?;
        trusted.extend(trust.iter().cloned());
        let bar = Bar::new("restoring", hidden);
        let restored = parapet_backup::restore(&repo, &snap, &trusted, &scratch, &bar)?;
        bar.0.finish_and_clear();
        let bar = Bar::new("checking", hidden);
        let cmp = parapet_backup::compare_restored(&repo, &snap, &trusted, &scratch, &bar)?;
        bar.0.finish_and_clear();
        let mut problems: Vec<String> = restored.warnings.clone();
        problems.extend(
            cmp.differences
                .iter()
                .map(|d| format!("{}: {}", d.path, d.detail)),
        );
        Ok((snap.id.clone(), restored.files, restored.bytes, problems))
    })();
    let duration_ms = elapsed_ms(started);
    let removed = std::fs::remove_dir_all(&scratch);
    if let Err(e) = &removed
        && scratch.exists()
    {
        note(&format!(
            "warning: cannot remove the scratch directory {}: {e}",
            scratch.display()
        ));
    }
    match outcome {
        Ok((id, files, bytes, problems)) if problems.is_empty() => RestoreTestOutcome {
            ok: true,
            snapshot: Some(id),
            files,
            bytes,
            duration_ms,
            error: None,
            failure: None,
        },
        Ok((id, files, bytes, problems)) => RestoreTestOutcome {
            ok: false,
            snapshot: Some(id),
            files,
            bytes,
            duration_ms,
            error: Some(format!(
                "{} difference(s) from the manifest: {}",
                problems.len(),
                problems
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            failure: None,
        },
        Err(e) => RestoreTestOutcome {
            ok: false,
            snapshot: None,
            files: 0,
            bytes: 0,
            duration_ms,
            error: Some(format!("{e:#}")),
            failure: Some(e),
        },
    }
}

/// Restores into a fresh scratch directory, checks by hash, reports, removes the directory.
fn restore_test(a: RestoreTestArgs) -> anyhow::Result<()> {
    let o = restore_test_core(&a.r, &a.snapshot, a.scratch.as_deref(), &a.trust, a.r.json);
    a.report.send(BackupReportInput {
        kind: "restore-test".into(),
        ok: o.ok,
        snapshot: o.snapshot.clone(),
        repository: a.r.repo.clone(),
        total_bytes: o.bytes,
        files: o.files,
        duration_ms: o.duration_ms,
        encrypted: true,
        error: o.error.clone(),
        ..BackupReportInput::default()
    })?;
    if a.r.json {
        json(&serde_json::json!({
            "ok": o.ok,
            "snapshot": o.snapshot,
            "files": o.files,
            "bytes": o.bytes,
            "duration_ms": o.duration_ms,
            "error": o.error,
        }))?;
    } else if o.ok {
        out(&format!(
            "restore test passed: snapshot {} restored and checked by hash, {} files, {} in \
             {:.2} s (achieved RTO)\n",
            o.snapshot.as_deref().unwrap_or(""),
            o.files,
            mib(o.bytes),
            o.duration_ms as f64 / 1000.0
        ))?;
    }
    match (o.failure, o.error) {
        (Some(e), _) => Err(e.context("restore test failed")),
        (None, Some(e)) => bail!("restore test failed: {e}"),
        (None, None) => Ok(()),
    }
}

fn prune(a: PruneArgs) -> anyhow::Result<()> {
    let given = KeepPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within_secs: a.keep_within_days.saturating_mul(86_400),
    };
    let policy = match (&a.server, &a.tenant) {
        (Some(server), Some(tenant)) => {
            if !given.is_empty() {
                bail!(
                    "give either --keep-… options or --server (the policy's retention), not both"
                );
            }
            let keep = super::backup_server::keep_of(&super::backup_server::fetch_policy(
                server, tenant, &a.policy,
            )?);
            if keep.is_empty() {
                bail!(
                    "the policy {} of {tenant} keeps nothing; refusing to prune",
                    a.policy
                );
            }
            keep
        }
        _ => given,
    };
    let mut repo = open(&a.r)?;
    let report = parapet_backup::prune(
        &mut repo,
        &PruneOptions {
            policy,
            dry_run: a.dry_run,
        },
    )?;
    if a.r.json {
        return json(&report);
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    out(&format!(
        "kept {} snapshot(s), {verb} {}; {} pack(s) deleted, {} rewritten, {} freed\n",
        report.kept.len(),
        report.removed.len(),
        report.packs_deleted,
        report.packs_rewritten,
        mib(report.bytes_freed)
    ))
}
