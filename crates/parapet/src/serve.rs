//! `parapet serve`: configuration (flags > `PARAPET_*` environment > TOML file > defaults),
//! logging, database, first start, and the HTTP listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use parapet_app::{AppConfig, AppState, Listen};
use parapet_iam::{IamConfig, IamService, PasswordCost};
use parapet_kms::{KmsConfig, KmsService};
use parapet_store_sql::{OpenOptions, SqlStore};
use parapet_types::{Env, TenantCtx};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Options of `parapet serve`. Every option can also be given as a `PARAPET_*` environment
/// variable or as a key of the `--config` TOML file (same name, with `_` for `-`).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "PARAPET_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the embedded SQLite database [default: ./parapet-data].
    #[arg(long, env = "PARAPET_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:pass@host/db); replaces the embedded SQLite database.
    #[arg(long, env = "PARAPET_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "PARAPET_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS.
    #[arg(long, env = "PARAPET_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "PARAPET_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy).
    #[arg(long, env = "PARAPET_INSECURE_HTTP")]
    insecure_http: bool,
    /// Seed a small demo provider (three tenants with users) if they do not exist.
    #[arg(long)]
    demo: bool,
    /// The URL clients reach Parapet at, when it differs from the listener (behind a
    /// TLS-terminating proxy), e.g. https://parapet.example; OIDC issuers are
    /// <URL>/oidc/<tenant> [default: from each request's Host header].
    #[arg(long, env = "PARAPET_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Whether holders of provider roles must log in with a second factor (a session opened
    /// without one may only enrol it) [default: true; false with --demo].
    #[arg(long, env = "PARAPET_PROVIDER_MFA_REQUIRED", value_name = "BOOL")]
    provider_mfa_required: Option<bool>,
    /// Ed25519 key that signs the audit log's checkpoints, created on first start if missing
    /// [default: <data-dir>/audit-signing.key, or ./parapet-audit.key with PostgreSQL]. Every
    /// replica sharing a database needs the same key; keep it secret and backed up.
    #[arg(long, env = "PARAPET_AUDIT_KEY", value_name = "FILE")]
    audit_key: Option<PathBuf>,
    /// Publish every new audit checkpoint to this witness (repeatable): `dir:PATH` (or an
    /// absolute path), an `https://` webhook (POST), or `s3://bucket/prefix` (credentials from
    /// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, endpoint from PARAPET_S3_ENDPOINT).
    #[arg(long, value_name = "SINK")]
    audit_witness: Vec<String>,
    /// Development only: keep the key service's root key in this file (created on first start,
    /// mode 0600) and unseal with it at every start, instead of a Shamir split among key
    /// custodians (`parapet kms init` / `parapet kms unseal`).
    #[arg(long, env = "PARAPET_KMS_KEY_FILE", value_name = "FILE")]
    kms_key_file: Option<PathBuf>,
    /// Seconds between runs of the key service's job (destruction of keys whose deletion is
    /// due, scheduled rotations) [default: 30].
    #[arg(
        long,
        env = "PARAPET_KMS_JOB_INTERVAL",
        value_name = "SECS",
        hide = true
    )]
    kms_job_interval: Option<u64>,
    /// How many keys the key service holds in memory (about 1.3 KiB each, measured); keys beyond it are
    /// read from the database when used [default: 1000000].
    #[arg(long, env = "PARAPET_KMS_CACHE_KEYS", value_name = "N")]
    kms_cache_keys: Option<usize>,
    /// Receive syslog (RFC 5424 and 3164; UDP and TCP on the same address), e.g. 0.0.0.0:514;
    /// messages are attributed to tenants and assets through the inventory.
    #[arg(long, env = "PARAPET_SYSLOG_LISTEN", value_name = "ADDR")]
    syslog_listen: Option<SocketAddr>,
    /// Feed Parapet's own audit log to detection (into the provider tenant) and install the
    /// built-in rules (password guessing and spraying followed by a success, log-ins from a new
    /// source or outside normal hours, privilege grants outside an approval, denied access, mass
    /// deletion). On by default.
    #[arg(long, env = "PARAPET_MONITOR_AUDIT_LOG")]
    monitor_audit_log: bool,
    /// Do not feed the audit log to detection (wins over `--monitor-audit-log`).
    #[arg(long, env = "PARAPET_NO_MONITOR_AUDIT_LOG")]
    no_monitor_audit_log: bool,
    /// Back up the server's own state (database and key files) into this repository
    /// (created with `parapet backup init`; password from PARAPET_BACKUP_PASSWORD) on a
    /// schedule; `parapet restore-server` brings it back (X.1642 8.4).
    #[arg(long, env = "PARAPET_SELF_BACKUP_REPO", value_name = "REPO")]
    backup_repo: Option<String>,
    /// How often to back up the server's state, e.g. `1h`, `30m` [default: 1h].
    #[arg(long, value_name = "DURATION", requires = "backup_repo")]
    backup_every: Option<String>,
    /// The operator key that signs the server's state snapshots.
    #[arg(long, env = "PARAPET_BACKUP_OPERATOR_KEY", value_name = "FILE")]
    backup_operator_key: Option<PathBuf>,
    /// Seconds between runs of the backup compliance job [default: 60].
    #[arg(
        long,
        env = "PARAPET_BACKUP_COMPLIANCE_INTERVAL",
        value_name = "SECS",
        hide = true
    )]
    backup_compliance_interval: Option<u64>,
    /// Log format on standard error [default: text]. The level comes from PARAPET_LOG
    /// (e.g. `info`, `debug,sqlx=warn`).
    #[arg(long, env = "PARAPET_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure_http: Option<bool>,
    log_format: Option<LogFormat>,
    demo: Option<bool>,
    /// Lifetime of console and CLI sessions, in seconds.
    session_ttl_secs: Option<i64>,
    /// Longest time a session may go unused, in seconds.
    session_idle_secs: Option<i64>,
    /// Argon2id cost of password hashes.
    password_memory_kib: Option<u32>,
    password_iterations: Option<u32>,
    /// Largest number of database connections.
    max_connections: Option<u32>,
    audit_key: Option<PathBuf>,
    audit_witness: Option<Vec<String>>,
    /// The provider's default account policy (every rule; see `parapet policy set --help`).
    account_policy: Option<parapet_store::AccountPolicy>,
    provider_mfa_required: Option<bool>,
    public_url: Option<String>,
    kms_key_file: Option<PathBuf>,
    kms_job_interval_secs: Option<u64>,
    kms_cache_keys: Option<usize>,
    /// Notification: the SMTP server, the SMS gateway and the outbox worker's retry settings.
    notify: Option<NotifyFileConfig>,
    syslog_listen: Option<SocketAddr>,
    monitor_audit_log: Option<bool>,
}

/// The `[notify]` table of the `--config` file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyFileConfig {
    smtp: Option<parapet_notify::SmtpConfig>,
    sms: Option<parapet_notify::SmsGateway>,
    /// Attempts before a message becomes a dead letter [default: 8].
    max_attempts: Option<u32>,
    /// Wait after the first failed attempt, doubled after each further one [default: 5000].
    backoff_base_ms: Option<i64>,
    /// Longest wait between attempts [default: 1800000].
    backoff_max_ms: Option<i64>,
    /// How often the worker looks for due messages [default: 200].
    poll_ms: Option<u64>,
    /// Longest time one delivery attempt may take [default: 10000].
    timeout_ms: Option<u64>,
    /// Let customer tenants point webhooks at loopback, private or link-local addresses
    /// [default: false].
    allow_private_webhooks: Option<bool>,
}

/// The effective settings.
#[derive(Debug)]
struct Settings {
    database: String,
    listen: Listen,
    insecure_http: bool,
    log_format: LogFormat,
    demo: bool,
    public_url: Option<String>,
    iam: IamConfig,
    open: OpenOptions,
    audit_key: PathBuf,
    witnesses: Vec<parapet_app::witness::Sink>,
    kms_key_file: Option<PathBuf>,
    kms_job_interval: std::time::Duration,
    kms_cache_keys: Option<usize>,
    notify: NotifyFileConfig,
    syslog_listen: Option<SocketAddr>,
    monitor_audit_log: bool,
    self_backup: Option<crate::self_backup::SelfBackup>,
    backup_compliance_interval: std::time::Duration,
}

fn settings(args: ServeArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("invalid configuration file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let database_url = args.database_url.or(file.database_url);
    let data_dir = args.data_dir.or(file.data_dir);
    let audit_key = args
        .audit_key
        .or(file.audit_key)
        .unwrap_or_else(|| match &data_dir {
            Some(dir) => dir.join("audit-signing.key"),
            None if database_url.is_some() => PathBuf::from("parapet-audit.key"),
            None => PathBuf::from("parapet-data").join("audit-signing.key"),
        });
    let database = match (database_url, data_dir) {
        (Some(_), Some(_)) => bail!("give either a data directory or a database URL, not both"),
        (Some(url), None) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bail!("the database URL must start with postgres:// or postgresql://");
            }
            url
        }
        (None, Some(dir)) => dir.display().to_string(),
        (None, None) => "./parapet-data".to_string(),
    };
    let tls = match (
        args.tls_cert.or(file.tls_cert),
        args.tls_key.or(file.tls_key),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => bail!("TLS needs both a certificate (--tls-cert) and a key (--tls-key)"),
    };
    let addr = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let public_url = match args.public_url.or(file.public_url) {
        Some(u) => {
            let u = u.trim_end_matches('/').to_string();
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"));
            match rest {
                Some(r) if !r.is_empty() && !r.contains(['/', '?', '#', ' ']) => Some(u),
                _ => bail!(
                    "the public URL must be http(s)://host[:port] without a path, e.g. \
                     https://parapet.example"
                ),
            }
        }
        None => None,
    };
    let mut iam = IamConfig::default();
    if let Some(s) = file.session_ttl_secs {
        if s < 60 {
            bail!("session_ttl_secs must be at least 60");
        }
        iam.session_ttl_secs = s;
    }
    if let Some(s) = file.session_idle_secs {
        if s < 60 {
            bail!("session_idle_secs must be at least 60");
        }
        iam.session_idle_secs = s;
    }
    if let Some(p) = file.account_policy {
        parapet_iam::policy::validate(&p).context("invalid account_policy")?;
        iam.account_policy = p;
    }
    // Safe by default; the demo (public passwords, for trying Parapet out) does without.
    let demo = args.demo || file.demo.unwrap_or(false);
    iam.provider_mfa_required = args
        .provider_mfa_required
        .or(file.provider_mfa_required)
        .unwrap_or(!demo);
    let default_cost = PasswordCost::default();
    iam.password_cost = PasswordCost {
        memory_kib: file.password_memory_kib.unwrap_or(default_cost.memory_kib),
        iterations: file.password_iterations.unwrap_or(default_cost.iterations),
        lanes: default_cost.lanes,
    };
    let witness_specs = if args.audit_witness.is_empty() {
        file.audit_witness.unwrap_or_default()
    } else {
        args.audit_witness
    };
    let mut witnesses = Vec::new();
    for w in &witness_specs {
        witnesses.push(
            w.parse::<parapet_app::witness::Sink>()
                .map_err(|e| anyhow::anyhow!("--audit-witness {w:?}: {e}"))?,
        );
    }
    let notify = file.notify.unwrap_or_default();
    if notify.max_attempts == Some(0) {
        bail!("notify.max_attempts must be at least 1");
    }
    if notify.backoff_base_ms.is_some_and(|b| b < 1) || notify.backoff_max_ms.is_some_and(|b| b < 1)
    {
        bail!("notify.backoff_base_ms and notify.backoff_max_ms must be positive");
    }
    let self_backup = match args.backup_repo {
        Some(repo) => Some(crate::self_backup::SelfBackup::new(
            repo,
            args.backup_every.as_deref().unwrap_or("1h"),
            args.backup_operator_key,
            database.clone(),
            audit_key.clone(),
        )?),
        None => None,
    };
    let mut open = OpenOptions::default();
    if let Some(n) = file.max_connections {
        open.max_connections = n;
    }
    Ok(Settings {
        database,
        listen: Listen { addr, tls },
        insecure_http: args.insecure_http || file.insecure_http.unwrap_or(false),
        log_format: args
            .log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Text),
        demo: args.demo || file.demo.unwrap_or(false),
        public_url,
        iam,
        open,
        audit_key,
        witnesses,
        kms_key_file: args.kms_key_file.or(file.kms_key_file),
        kms_job_interval: std::time::Duration::from_secs(
            args.kms_job_interval
                .or(file.kms_job_interval_secs)
                .unwrap_or(30)
                .max(1),
        ),
        kms_cache_keys: args.kms_cache_keys.or(file.kms_cache_keys),
        notify,
        syslog_listen: args.syslog_listen.or(file.syslog_listen),
        monitor_audit_log: !args.no_monitor_audit_log
            && (args.monitor_audit_log || file.monitor_audit_log.unwrap_or(true)),
        self_backup,
        backup_compliance_interval: std::time::Duration::from_secs(
            args.backup_compliance_interval.unwrap_or(60).max(1),
        ),
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARAPET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Installs the SIGTERM/SIGINT handlers now (so a signal arriving as soon as the listener is
/// announced is not fatal) and returns the future that resolves on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: draining in-flight requests");
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let s = settings(args)?;
    init_logging(s.log_format);
    if s.listen.tls.is_none() && !s.listen.addr.ip().is_loopback() && !s.insecure_http {
        bail!(
            "refusing to serve plain HTTP on the non-loopback address {}: give --tls-cert and \
             --tls-key, or --insecure-http when a TLS-terminating proxy is in front",
            s.listen.addr
        );
    }
    let store = SqlStore::open(&s.database, &s.open)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&s.database)))?;
    let backend = parapet_store::Health::backend(&store);
    tracing::info!(backend, database = %redact(&s.database), "database ready");
    let store = Arc::new(store);
    let env = Env::system();
    let mut iam_config = s.iam.clone();
    let sealing_key = secrets_key(&s.audit_key.with_file_name("parapet-secrets.key"), &env)?;
    iam_config.secrets_key = Some(sealing_key);
    let iam = Arc::new(
        IamService::new(store.clone(), env.clone(), iam_config)
            .context("cannot start the identity service")?,
    );
    let bootstrap_password = std::env::var("PARAPET_BOOTSTRAP_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let boot = iam.bootstrap(bootstrap_password).await?;
    if boot.created {
        println!(
            "First start: created the provider tenant {:?} and the administrator 'admin'.",
            boot.provider.name
        );
        match &boot.generated_password {
            Some(p) => println!("  admin password (shown once, store it safely): {p}"),
            None => println!("  admin password: the value of PARAPET_BOOTSTRAP_PASSWORD"),
        }
    }
    if s.demo {
        let created = iam.seed_demo(&boot.provider).await?;
        if !created.is_empty() {
            println!(
                "Demo data: {} accounts ({}), all with the password {:?}. Not for production.",
                created.len(),
                created.join(", "),
                parapet_iam::DEMO_PASSWORD
            );
        }
    }
    let kms = Arc::new(
        KmsService::open(
            store.clone(),
            iam.clone(),
            env.clone(),
            boot.provider.clone(),
            KmsConfig {
                cache_keys: s.kms_cache_keys.unwrap_or(KmsConfig::default().cache_keys),
                ..KmsConfig::default()
            },
        )
        .await
        .context("cannot open the key service")?,
    );
    if let Some(path) = &s.kms_key_file {
        let key = kms_root_key(path, &env)?;
        kms.unseal_with_key_file(key)
            .await
            .with_context(|| format!("cannot unseal the key service with {}", path.display()))?;
        tracing::warn!(file = %path.display(), "key service unsealed from a key file (development only)");
    } else if kms.status().initialized {
        if kms.status().mode.as_deref() == Some("key-file") {
            anyhow::bail!(
                "the key service of this installation is unsealed with a key file, and the audit \
                 signing key and platform secrets are sealed by it: start with --kms-key-file FILE"
            );
        }
        println!("The key service is sealed: key custodians must run 'parapet kms unseal'.");
    }
    let audit =
        crate::platform_secrets::open_audit_log(&s.audit_key, store.clone(), &env, &boot.provider)
            .await?;
    kms.add_secret_holder(Arc::new(crate::platform_secrets::AuditKeyHolder {
        path: s.audit_key.clone(),
        audit: audit.clone(),
        kms: kms.clone(),
    }))
    .await
    .context("cannot seal the audit signing key under the key service")?;
    // The first checkpoint before the listener opens: clients always find one (unless the key
    // waits for custodians, when the last one signed stands).
    audit
        .integrate_once()
        .await
        .context("cannot integrate the audit log")?;
    let (stop_sequencer, stop_rx) = tokio::sync::watch::channel(false);
    let sequencer = tokio::spawn(audit.clone().run(stop_rx.clone()));
    let witnesses = tokio::spawn(parapet_app::witness::run_witnesses(
        audit.clone(),
        env.clone(),
        s.witnesses.clone(),
        stop_rx.clone(),
    ));
    let inventory = Arc::new(parapet_inventory::Inventory::new(
        store.clone(),
        env.clone(),
    ));
    let dormancy = tokio::spawn(sweep_dormant_accounts(iam.clone(), stop_rx.clone()));
    let kms_job = tokio::spawn(kms_jobs(
        kms.clone(),
        s.kms_job_interval,
        stop_rx_kms(&stop_sequencer),
    ));
    let kms_feed = tokio::spawn(kms_change_feed(kms.clone(), stop_rx_kms(&stop_sequencer)));
    let notify = Arc::new(notify_service(&s.notify, store.clone(), &env, sealing_key)?);
    kms.add_secret_holder(Arc::new(crate::platform_secrets::NotifySecrets {
        notify: notify.clone(),
        provider: boot.provider.clone(),
    }))
    .await
    .context("cannot seal the webhook secrets under the key service")?;
    let incident = Arc::new(
        parapet_incident::IncidentService::new(iam.clone(), parapet_incident::SlaPolicy::default())
            .with_notify(notify.clone()),
    );
    let timers = tokio::spawn(
        incident
            .clone()
            .run_timers(std::time::Duration::from_millis(200), stop_rx.clone()),
    );
    let deliveries = tokio::spawn(notify.clone().run(
        std::time::Duration::from_millis(s.notify.poll_ms.unwrap_or(200).max(10)),
        stop_rx.clone(),
    ));
    let monitor = Arc::new(parapet_monitor::Monitor::new(
        iam.clone(),
        parapet_monitor::MonitorConfig::default(),
    ));
    incident.set_monitor(monitor.clone());
    // New alerts go to the tenant's notification routes (X.1642 8.6.1); the outbox makes the
    // delivery durable from there on.
    {
        let notify = notify.clone();
        let store = store.clone();
        let incidents = incident.clone();
        monitor.on_alerts(Arc::new(
            move |tenant: &parapet_store::Tenant, ids: &[uuid::Uuid]| {
                let (notify, store) = (notify.clone(), store.clone());
                let incidents = incidents.clone();
                let (tenant, ids) = (tenant.clone(), ids.to_vec());
                tokio::spawn(async move {
                    use parapet_store::AlertStore;
                    // Alerts at or above the tenant's SLA policy's auto-open severity open
                    // incidents (X.1642 8.6.1).
                    if let Err(e) = incidents.auto_open(&tenant, &ids).await {
                        tracing::warn!(error = %e, "cannot open incidents from new alerts");
                    }
                    for id in ids {
                        let alert = match store
                            .get_alert(TenantCtx::new(tenant.id), id, 0)
                            .await
                        {
                            Ok((a, _)) => a,
                            Err(e) => {
                                tracing::warn!(error = %e, alert = %id, "cannot read a new alert to notify it");
                                continue;
                            }
                        };
                        if let Err(e) = notify
                            .enqueue_for_alert(
                                &tenant,
                                &alert.id.to_string(),
                                &alert.rule_id,
                                &alert.severity,
                                &alert.title,
                                alert.first_event_at,
                            )
                            .await
                        {
                            tracing::warn!(error = %e, alert = %id, "cannot queue the notification of an alert");
                        }
                    }
                });
            },
        ));
    }
    let retention = tokio::spawn(parapet_monitor_jobs::retention(
        monitor.clone(),
        stop_rx.clone(),
    ));
    let correlations = tokio::spawn(parapet_monitor_jobs::correlations(
        monitor.clone(),
        stop_rx.clone(),
    ));
    let silent_assets = tokio::spawn(parapet_monitor_jobs::silent_assets(
        monitor.clone(),
        stop_rx.clone(),
    ));
    let metrics_scrape = tokio::spawn(parapet_monitor_jobs::metrics_scrape(
        monitor.clone(),
        stop_rx.clone(),
    ));
    let escalations = tokio::spawn(parapet_monitor_jobs::escalations(
        monitor.clone(),
        notify.clone(),
        stop_rx.clone(),
    ));
    let audit_source = if s.monitor_audit_log {
        match monitor.install_builtin_rules().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rules = n, "built-in detection rules installed"),
            Err(e) => tracing::warn!(error = %e, "cannot install the built-in detection rules"),
        }
        Some(tokio::spawn(parapet_monitor_jobs::audit_source(
            monitor.clone(),
            stop_rx.clone(),
        )))
    } else {
        None
    };
    // Backup compliance (X.1642 8.10): findings when a tenant's backups fall outside its policy.
    let backup = Arc::new(
        parapet_backup_server::BackupService::new(iam.clone(), Some(notify.clone()))
            .with_monitor(monitor.clone()),
    );
    let self_backup = s
        .self_backup
        .clone()
        .map(|b| tokio::spawn(b.run(store.clone(), stop_rx.clone())));
    let backup_job = tokio::spawn(
        backup
            .clone()
            .run(s.backup_compliance_interval, stop_rx.clone()),
    );
    let syslog = match s.syslog_listen {
        Some(addr) => Some(crate::syslog::start(addr, monitor.clone(), stop_rx.clone()).await?),
        None => None,
    };
    let state = AppState::new(parapet_app::Services {
        notify,
        monitor,
        backup,
        kms,
        audit,
        inventory,
        incident,
        iam,
        store: store.clone(),
        config: Arc::new(AppConfig {
            tls: s.listen.tls.is_some(),
            public_url: s.public_url.clone(),
        }),
        metrics: parapet_app::metrics_handle(),
    });
    let shutdown = shutdown_signal();
    let bound = parapet_app::bind(&s.listen).await?;
    let url = bound.url();
    println!(
        "Parapet {} listening on {url} (database: {backend}); console at {url}/console",
        env!("CARGO_PKG_VERSION")
    );
    tracing::info!(%url, "listening");
    let app = parapet_app::router(state);
    parapet_app::serve(bound, app, shutdown).await?;
    let _ = stop_sequencer.send(true);
    let _ = sequencer.await;
    let _ = witnesses.await;
    let _ = dormancy.await;
    let _ = kms_job.await;
    let _ = kms_feed.await;
    let _ = timers.await;
    let _ = deliveries.await;
    let _ = retention.await;
    let _ = correlations.await;
    let _ = silent_assets.await;
    let _ = metrics_scrape.await;
    let _ = escalations.await;
    let _ = backup_job.await;
    if let Some(h) = self_backup {
        let _ = h.await;
    }
    if let Some(h) = audit_source {
        let _ = h.await;
    }
    if let Some(h) = syslog {
        let _ = h.await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The notification service over the configured SMTP server and SMS gateway.
fn notify_service(
    c: &NotifyFileConfig,
    store: Arc<SqlStore>,
    env: &Env,
    sealing_key: [u8; 32],
) -> anyhow::Result<parapet_notify::NotifyService> {
    let timeout = std::time::Duration::from_millis(c.timeout_ms.unwrap_or(10_000).max(100));
    let transport = parapet_notify::NetTransport::new(c.smtp.as_ref(), c.sms.as_ref(), timeout)
        .map_err(|e| anyhow::anyhow!("invalid [notify] settings: {e}"))?;
    let mut config = parapet_notify::NotifyConfig::new(sealing_key);
    if let Some(n) = c.max_attempts {
        config.max_attempts = n;
    }
    if let Some(b) = c.backoff_base_ms {
        config.backoff_base_ms = b;
    }
    if let Some(b) = c.backoff_max_ms {
        config.backoff_max_ms = b;
    }
    config.allow_private_webhooks = c.allow_private_webhooks.unwrap_or(false);
    config.lease_ms = config
        .lease_ms
        .max(i64::try_from(timeout.as_millis()).unwrap_or(0) * 2);
    Ok(parapet_notify::NotifyService::new(
        store,
        env.clone(),
        config,
        Arc::new(transport),
    ))
}

/// Background jobs of the monitoring service.
mod parapet_monitor_jobs {
    use std::sync::Arc;

    /// Enforces every tenant's event retention shortly after start and then hourly, until
    /// `stop` turns true.
    pub async fn retention(
        monitor: Arc<parapet_monitor::Monitor>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut wait = std::time::Duration::from_secs(30);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            match monitor.enforce_retention().await {
                Ok(done) => {
                    for (tenant, p) in done {
                        tracing::info!(%tenant, events = p.events, keys = p.batches, alerts = p.alerts, "event retention");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "event retention job failed"),
            }
            wait = std::time::Duration::from_secs(3600);
        }
    }

    /// Saves the live correlation windows that changed, every 5 s and once more at `stop`.
    pub async fn correlations(
        monitor: Arc<parapet_monitor::Monitor>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                _ = stop.changed() => {
                    monitor.save_correlations().await;
                    return;
                }
            }
            monitor.save_correlations().await;
            metrics::gauge!("parapet_correlation_keys").set(monitor.correlation_keys() as f64);
        }
    }

    /// Raises alerts for silent assets every minute, until `stop` turns true.
    pub async fn silent_assets(
        monitor: Arc<parapet_monitor::Monitor>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                _ = stop.changed() => return,
            }
            match monitor.check_silent_assets().await {
                Ok(raised) => {
                    for (tenant, asset) in raised {
                        tracing::info!(%tenant, %asset, "silent asset");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "silent-asset check failed"),
            }
        }
    }

    /// Scrapes the metrics targets that are due, every 2 s, until `stop` turns true.
    pub async fn metrics_scrape(
        monitor: Arc<parapet_monitor::Monitor>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                _ = stop.changed() => return,
            }
            match monitor.scrape_due().await {
                Ok(done) => {
                    for r in done.iter().filter(|r| r.error.is_some()) {
                        tracing::debug!(tenant = %r.tenant, asset = %r.asset, error = ?r.error, "metrics scrape failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "metrics scrape job failed"),
            }
        }
    }

    /// Escalates unacknowledged alerts every second: each due step is claimed, then its page is
    /// queued on the named channels of the tenant (the durable outbox delivers it), until
    /// `stop` turns true.
    pub async fn escalations(
        monitor: Arc<parapet_monitor::Monitor>,
        notify: Arc<parapet_notify::NotifyService>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
            let pages = match monitor.escalate_due().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "alert escalation job failed");
                    continue;
                }
            };
            for p in pages {
                let channels = match notify.list_channels(&p.tenant).await {
                    Ok(all) => all
                        .into_iter()
                        .filter(|c| p.channels.iter().any(|n| n.eq_ignore_ascii_case(&c.name)))
                        .collect::<Vec<_>>(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the channels of an escalation");
                        continue;
                    }
                };
                if channels.len() < p.channels.len() {
                    tracing::warn!(tenant = %p.tenant.name, wanted = ?p.channels, "an escalation names channels that do not exist");
                }
                if channels.is_empty() {
                    continue;
                }
                let a = &p.alert;
                let msg = parapet_notify::Message {
                    source: format!("alert:{}", a.id),
                    severity: Some(a.severity.clone()),
                    subject: format!(
                        "[escalation level {}] [{}] {}",
                        p.level + 1,
                        a.severity,
                        a.title
                    ),
                    body: format!(
                        "Alert {} of tenant {} is still not acknowledged: {} (rule {}, severity {}, \
                         first event {}). Escalation level {}, round {}.",
                        a.id,
                        p.tenant.name,
                        a.title,
                        a.rule_id,
                        a.severity,
                        a.first_event_at.rfc3339(),
                        p.level + 1,
                        p.round + 1
                    ),
                    event_at: a.first_event_at,
                };
                if let Err(e) = notify.enqueue(&p.tenant, &channels, &msg, &[]).await {
                    tracing::warn!(error = %e, alert = %a.id, "cannot queue an escalation page");
                }
            }
        }
    }

    /// Feeds Parapet's own audit records to detection, every second (at once again while
    /// behind), until `stop` turns true.
    pub async fn audit_source(
        monitor: Arc<parapet_monitor::Monitor>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut cursor = None;
        let mut wait = std::time::Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            let before = cursor;
            match monitor.ingest_audit_step(&mut cursor).await {
                Ok(_) if cursor != before && before.is_some() => {
                    wait = std::time::Duration::from_millis(10);
                }
                Ok(_) => wait = std::time::Duration::from_secs(1),
                Err(e) => {
                    tracing::warn!(error = %e, "audit event source failed");
                    cursor = None;
                    wait = std::time::Duration::from_secs(5);
                }
            }
        }
    }
}

/// Disables dormant accounts (and deletes expired ones) shortly after start and then hourly,
/// until `stop` turns true.
async fn sweep_dormant_accounts(
    iam: Arc<IamService>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut wait = std::time::Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        match iam.sweep_dormant().await {
            Ok(r) if !(r.disabled.is_empty() && r.deleted.is_empty()) => {
                tracing::info!(disabled = ?r.disabled, deleted = ?r.deleted, "dormant accounts");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "dormant-account sweep failed"),
        }
        wait = std::time::Duration::from_secs(3600);
    }
}

/// Creates `path` (which must not exist) with mode 0600 holding `text` and a newline, synced.
pub(crate) fn write_private_file(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{text}")
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads the secret file at `path` with `parse`, or creates it first (mode 0600, in a directory
/// made as needed) with the text `make` returns. The file is written aside and linked into place,
/// so a concurrent first start of another replica keeps whichever file was linked first and
/// nobody reads a half-written one. Returns the value and whether this call created the file.
pub(crate) fn secret_file<T>(
    path: &std::path::Path,
    what: &str,
    make: impl FnOnce() -> anyhow::Result<zeroize::Zeroizing<String>>,
    parse: impl Fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<(T, bool)> {
    let read = || -> anyhow::Result<T> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the {what} {}", path.display()))?,
        );
        parse(text.trim()).with_context(|| format!("{} is not a valid {what}", path.display()))
    };
    if path.exists() {
        return Ok((read()?, false));
    }
    let text = make().with_context(|| format!("cannot create the {what}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    write_private_file(&tmp, text.as_str())?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((read()?, true)),
        // Another replica created it first: use theirs.
        Err(_) if path.exists() => Ok((read()?, false)),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// 32 random bytes as 64 hexadecimal digits.
fn random_hex_key(env: &Env) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let key = zeroize::Zeroizing::new(
        env.random::<32>()
            .map_err(|e| anyhow::anyhow!("no randomness: {}", e.0))?,
    );
    Ok(zeroize::Zeroizing::new(hex::encode(key.as_slice())))
}

/// 64 hexadecimal digits as a 32-byte key.
fn parse_hex_key(text: &str) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    let bytes = zeroize::Zeroizing::new(
        hex::decode(text)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| anyhow::anyhow!("expected 64 hexadecimal digits"))?,
    );
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Loads the key that seals second-factor secrets at rest, or creates it (mode 0600) on first
/// start, beside the audit signing key. Every replica needs the same file.
fn secrets_key(path: &std::path::Path, env: &Env) -> anyhow::Result<[u8; 32]> {
    let (key, _) = secret_file(path, "secrets key", || random_hex_key(env), parse_hex_key)?;
    Ok(*key)
}

fn stop_rx_kms(tx: &tokio::sync::watch::Sender<bool>) -> tokio::sync::watch::Receiver<bool> {
    tx.subscribe()
}

/// The key service's background job: destroys keys whose deletion is due (issuing their
/// receipts) and rotates keys whose rotation period has passed. Does nothing while sealed.
async fn kms_jobs(
    kms: Arc<KmsService>,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if kms.status().sealed {
            continue;
        }
        if let Err(e) = kms.refresh_platform().await {
            tracing::warn!(error = %e, "platform key refresh failed");
        }
        match kms.destroy_due().await {
            Ok(done) => {
                for r in done {
                    tracing::info!(tenant = %r.tenant, key = %r.key_name, "key material destroyed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "key deletion job failed"),
        }
        match kms.rotate_all_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(keys = n, "keys rotated on schedule"),
            Err(e) => tracing::warn!(error = %e, "key rotation job failed"),
        }
    }
}

/// Polls the keys changed on other replicas four times a second, so this replica's key cache
/// drops them at once and keeps every other key until it changes.
async fn kms_change_feed(kms: Arc<KmsService>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if kms.status().sealed {
            continue;
        }
        match kms.poll_key_changes().await {
            Ok(_) => failing = false,
            // Cached keys fall back to the one-second bound meanwhile; say it once.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "key change feed failed");
            }
            Err(_) => {}
        }
    }
}

/// Reads the development root key (64 hex digits), or creates it (mode 0600) on first start.
pub(crate) fn kms_root_key(
    path: &std::path::Path,
    env: &Env,
) -> anyhow::Result<parapet_kms::root::RootKey> {
    let (key, created) = secret_file(
        path,
        "development root key",
        || random_hex_key(env),
        parse_hex_key,
    )?;
    if created {
        println!(
            "Created the development root key {} (keep it secret; use Shamir shares in production).",
            path.display()
        );
    }
    Ok(key)
}

/// A database location with any password removed, for messages and logs.
fn redact(db: &str) -> String {
    match (db.find("://"), db.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = db.get(scheme + 3..at).unwrap_or("");
            match creds.split_once(':') {
                Some((user, _)) => format!(
                    "{}{}:***{}",
                    db.get(..scheme + 3).unwrap_or(""),
                    user,
                    db.get(at..).unwrap_or("")
                ),
                None => db.to_string(),
            }
        }
        _ => db.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("./parapet-data"), "./parapet-data");
    }
}
