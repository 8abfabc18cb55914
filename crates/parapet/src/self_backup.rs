//! The platform's own state (X.1642 8.4): `serve --backup-repo REPO --backup-every DURATION`
//! copies the database (SQLite online with `VACUUM INTO`, PostgreSQL with `pg_dump`) and the
//! server's key files (audit signing key, secrets key) into a staging directory and backs it up
//! into an encrypted, signed repository on a schedule; `parapet restore-server` brings a snapshot
//! back into an empty data directory or database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use parapet_backup::{BackupOptions, NoProgress, OperatorKey, Repository};
use parapet_store_sql::SqlStore;
use parapet_types::Env;

/// The staging directory's name: the snapshot's root entry.
const STATE_DIR: &str = "parapet-server-state";
const SQLITE_FILE: &str = "parapet.db";
const PG_FILE: &str = "parapet.pgdump";

/// What the server backs up and where.
#[derive(Debug, Clone)]
pub struct SelfBackup {
    pub repo: String,
    pub every: std::time::Duration,
    pub operator_key: PathBuf,
    pub password: Vec<u8>,
    /// The database: a SQLite data directory or a PostgreSQL URL.
    pub database: String,
    pub audit_key: PathBuf,
}

impl SelfBackup {
    /// From the serve options; the repository password from PARAPET_BACKUP_PASSWORD.
    pub fn new(
        repo: String,
        every: &str,
        operator_key: Option<PathBuf>,
        database: String,
        audit_key: PathBuf,
    ) -> anyhow::Result<SelfBackup> {
        let every = crate::cli::duration_secs(every)?;
        if every < 1 {
            bail!("--backup-every must be at least 1 second");
        }
        let operator_key = operator_key.ok_or_else(|| {
            anyhow!("--backup-repo needs the operator key: --backup-operator-key FILE or PARAPET_BACKUP_OPERATOR_KEY")
        })?;
        let password = std::env::var("PARAPET_BACKUP_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                anyhow!("--backup-repo needs the repository password in PARAPET_BACKUP_PASSWORD")
            })?;
        Ok(SelfBackup {
            repo,
            every: std::time::Duration::from_secs(every),
            operator_key,
            password: password.into_bytes(),
            database,
            audit_key,
        })
    }

    fn is_postgres(&self) -> bool {
        self.database.starts_with("postgres://") || self.database.starts_with("postgresql://")
    }

    /// Takes one backup now; returns the snapshot id.
    pub async fn once(&self, store: &SqlStore) -> anyhow::Result<String> {
        let parent = std::env::temp_dir().join(format!(
            "parapet-self-backup-{}-{}",
            std::process::id(),
            Env::system().now().0
        ));
        let staging = parent.join(STATE_DIR);
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let result = self.stage_and_save(store, &staging).await;
        let _ = std::fs::remove_dir_all(&parent);
        result
    }

    async fn stage_and_save(&self, store: &SqlStore, staging: &Path) -> anyhow::Result<String> {
        if self.is_postgres() {
            let out = tokio::process::Command::new("pg_dump")
                .arg("--format=custom")
                .arg("--no-owner")
                .arg("--file")
                .arg(staging.join(PG_FILE))
                .arg("--dbname")
                .arg(&self.database)
                .output()
                .await
                .context("cannot run pg_dump (Debian package postgresql-client)")?;
            if !out.status.success() {
                bail!(
                    "pg_dump failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        } else {
            store
                .vacuum_into(&staging.join(SQLITE_FILE))
                .await
                .context("cannot copy the SQLite database")?;
        }
        let keys = staging.join("keys");
        std::fs::create_dir_all(&keys)?;
        let secrets = self.audit_key.with_file_name("parapet-secrets.key");
        for (src, name) in [
            (&self.audit_key, "audit-signing.key"),
            (&secrets, "parapet-secrets.key"),
        ] {
            if src.exists() {
                std::fs::copy(src, keys.join(name))
                    .with_context(|| format!("cannot copy {}", src.display()))?;
            }
        }
        let me = self.clone();
        let staging = staging.to_path_buf();
        tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let text = std::fs::read_to_string(&me.operator_key).with_context(|| {
                format!("cannot read the operator key {}", me.operator_key.display())
            })?;
            let key = OperatorKey::from_file_text(&text)?;
            let backend = parapet_backup::open_location(&me.repo)?;
            let mut repo = Repository::open(backend, Env::system(), &me.password)?;
            let report = parapet_backup::backup(
                &mut repo,
                &BackupOptions {
                    paths: vec![staging],
                    tags: vec!["parapet-server".into()],
                    hostname: None,
                    force: false,
                },
                &key,
                &NoProgress,
            )?;
            if !report.warnings.is_empty() {
                bail!(
                    "the state backup is incomplete: {}",
                    report.warnings.join("; ")
                );
            }
            Ok(report.snapshot.id)
        })
        .await
        .map_err(|e| anyhow!("the backup task failed: {e}"))?
    }

    /// Backs up every `every` until `stop` turns true.
    pub async fn run(self, store: Arc<SqlStore>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = stop.changed() => return,
            }
            match self.once(&store).await {
                Ok(id) => {
                    metrics::counter!("parapet_self_backups_total", "result" => "ok").increment(1);
                    tracing::info!(snapshot = %id, repo = %parapet_backup_server::redact_repository(&self.repo), "the server's state was backed up");
                }
                Err(e) => {
                    metrics::counter!("parapet_self_backups_total", "result" => "failed")
                        .increment(1);
                    tracing::error!(error = %format!("{e:#}"), "the server's state backup failed");
                }
            }
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RestoreServerArgs {
    /// The repository the server backed itself up into.
    #[arg(long, value_name = "REPO")]
    pub repo: String,
    /// The snapshot (an id prefix or `latest`).
    #[arg(long, value_name = "SNAPSHOT", default_value = "latest")]
    pub snapshot: String,
    /// Restore into this SQLite data directory (must hold no database yet).
    #[arg(long, value_name = "DIR", conflicts_with = "database_url")]
    pub data_dir: Option<PathBuf>,
    /// Restore into this PostgreSQL database (must be empty).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Where the audit signing key goes [default: <data-dir>/audit-signing.key, or
    /// ./parapet-audit.key with PostgreSQL]; the secrets key goes beside it.
    #[arg(long, value_name = "FILE")]
    pub audit_key: Option<PathBuf>,
    /// A file whose first line is the repository password (else PARAPET_BACKUP_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The key service's root key file of the backed-up installation (key-file mode). Needed
    /// when the snapshot's audit signing key is sealed by the key service (it is once the key
    /// service was initialized): the root key is not in the backup, and without it the restored
    /// server could never sign its audit log. restore-server opens the sealed key with it and
    /// refuses (removing the restored SQLite database) if it cannot.
    #[arg(long, value_name = "FILE", conflicts_with = "custodians_will_unseal")]
    pub kms_key_file: Option<PathBuf>,
    /// The snapshot's audit signing key is sealed by a key service whose custodians hold Shamir
    /// shares: restore anyway; the restored server keeps audit records pending until the
    /// custodians unseal it ('parapet kms unseal'), since restore-server cannot check the key.
    #[arg(long)]
    pub custodians_will_unseal: bool,
}

/// Opens the restored database's key service with the root key file and the sealed audit
/// signing key with it: the restored server will be able to sign its audit log.
async fn check_sealed_audit_key(
    data_dir: Option<&Path>,
    database_url: Option<&str>,
    root_file: &Path,
    sealed: &str,
) -> anyhow::Result<()> {
    if !root_file.is_file() {
        bail!(
            "the key service's root key file {} does not exist",
            root_file.display()
        );
    }
    let opts = parapet_store_sql::OpenOptions::default();
    let store = match (data_dir, database_url) {
        (Some(dir), _) => SqlStore::open_sqlite(dir, &opts).await,
        (None, Some(url)) => SqlStore::open_postgres(url, &opts).await,
        (None, None) => bail!("no target"),
    }
    .map_err(|e| anyhow!("cannot open the restored database: {e}"))?;
    let store: Arc<dyn parapet_store::Store> = Arc::new(store);
    let env = Env::system();
    let iam = Arc::new(
        parapet_iam::IamService::new(
            store.clone(),
            env.clone(),
            parapet_iam::IamConfig::default(),
        )
        .context("cannot start the identity service on the restored database")?,
    );
    let provider = store
        .provider_tenant()
        .await
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("the restored database has no provider tenant"))?;
    let kms = parapet_kms::KmsService::open(
        store,
        iam,
        env.clone(),
        provider,
        parapet_kms::KmsConfig::default(),
    )
    .await
    .map_err(|e| anyhow!("cannot open the restored key service: {e}"))?;
    let root = crate::serve::kms_root_key(root_file, &env)?;
    kms.unseal_with_key_file(root).await.map_err(|e| {
        anyhow!(
            "{} does not unseal the restored key service ({e}): it is not this installation's \
             root key file",
            root_file.display()
        )
    })?;
    let plain = kms
        .open_platform_secret(crate::platform_secrets::AUDIT_KEY_AAD, sealed)
        .map_err(|e| anyhow!("the key service cannot open the sealed audit signing key: {e}"))?;
    let text = std::str::from_utf8(&plain)
        .map_err(|_| anyhow!("the sealed audit signing key is not a signing key"))?;
    parapet_audit::NoteSigner::from_skey(text)
        .map_err(|e| anyhow!("the sealed audit signing key is not a signing key: {e}"))?;
    Ok(())
}

/// `parapet restore-server`.
pub async fn restore_server(a: RestoreServerArgs) -> anyhow::Result<()> {
    let password = match &a.password_file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        None => std::env::var("PARAPET_BACKUP_PASSWORD").unwrap_or_default(),
    };
    if password.is_empty() {
        bail!("no repository password: give --password-file FILE or set PARAPET_BACKUP_PASSWORD");
    }
    let (audit_key, target_db) = match (&a.data_dir, &a.database_url) {
        (Some(dir), None) => {
            if dir.join(SQLITE_FILE).exists() {
                bail!(
                    "{} already holds a database; restore into an empty data directory",
                    dir.display()
                );
            }
            (
                a.audit_key
                    .clone()
                    .unwrap_or_else(|| dir.join("audit-signing.key")),
                None,
            )
        }
        (None, Some(url)) => (
            a.audit_key
                .clone()
                .unwrap_or_else(|| PathBuf::from("parapet-audit.key")),
            Some(url.clone()),
        ),
        _ => bail!("give --data-dir DIR (SQLite) or --database-url URL (PostgreSQL)"),
    };
    let scratch = std::env::temp_dir().join(format!(
        "parapet-restore-server-{}-{}",
        std::process::id(),
        Env::system().now().0
    ));
    let repo_loc = a.repo.clone();
    let snapshot = a.snapshot.clone();
    let scratch2 = scratch.clone();
    let restored = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let backend = parapet_backup::open_location(&repo_loc)?;
        let repo = Repository::open(backend, Env::system(), password.as_bytes())?;
        let snap = repo.find_snapshot(&snapshot)?;
        let trusted = repo.trusted_operators()?;
        let report = parapet_backup::restore(&repo, &snap, &trusted, &scratch2, &NoProgress)?;
        if !report.warnings.is_empty() {
            bail!("the restore is incomplete: {}", report.warnings.join("; "));
        }
        Ok(snap.id)
    })
    .await
    .map_err(|e| anyhow!("the restore task failed: {e}"))?;
    let result = async {
        let id = restored?;
        let state = scratch.join(STATE_DIR);
        if !state.is_dir() {
            bail!("snapshot {id} is not a backup of a Parapet server's state");
        }
        // An audit signing key sealed by the key service opens only with the key service's root,
        // which is not in the backup: say what is needed before anything is written.
        let sealed = std::fs::read_to_string(state.join("keys").join("audit-signing.key"))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| t.starts_with(parapet_iam::sealer::KMS_PREFIX));
        if sealed.is_some() && a.kms_key_file.is_none() && !a.custodians_will_unseal {
            bail!(
                "the audit signing key in snapshot {id} is sealed by the key service, whose root \
                 is not in the backup: give --kms-key-file FILE (the installation's root key \
                 file) so that restore-server checks it opens, or --custodians-will-unseal if \
                 key custodians will unseal the restored server"
            );
        }
        match (&a.data_dir, &target_db) {
            (Some(dir), _) => {
                let db = state.join(SQLITE_FILE);
                if !db.exists() {
                    bail!("snapshot {id} holds a PostgreSQL dump; restore it with --database-url");
                }
                std::fs::create_dir_all(dir)?;
                std::fs::copy(&db, dir.join(SQLITE_FILE))
                    .with_context(|| format!("cannot write into {}", dir.display()))?;
            }
            (None, Some(url)) => {
                let dump = state.join(PG_FILE);
                if !dump.exists() {
                    bail!("snapshot {id} holds a SQLite database; restore it with --data-dir");
                }
                let out = tokio::process::Command::new("pg_restore")
                    .arg("--no-owner")
                    .arg("--exit-on-error")
                    .arg("--dbname")
                    .arg(url)
                    .arg(&dump)
                    .output()
                    .await
                    .context("cannot run pg_restore (Debian package postgresql-client)")?;
                if !out.status.success() {
                    bail!(
                        "pg_restore failed (the database must be empty): {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
            (None, None) => bail!("no target"),
        }
        if let (Some(text), Some(root)) = (&sealed, &a.kms_key_file) {
            let checked =
                check_sealed_audit_key(a.data_dir.as_deref(), target_db.as_deref(), root, text)
                    .await;
            if let Err(e) = checked {
                match &a.data_dir {
                    Some(dir) => {
                        for suffix in ["", "-wal", "-shm"] {
                            let _ =
                                std::fs::remove_file(dir.join(format!("{SQLITE_FILE}{suffix}")));
                        }
                        bail!("{e:#}; nothing was restored");
                    }
                    None => bail!(
                        "{e:#}; the database was restored but no key file was written: empty \
                         the database before trying again"
                    ),
                }
            }
        }
        let keys = state.join("keys");
        let secrets = audit_key.with_file_name("parapet-secrets.key");
        for (name, to) in [
            ("audit-signing.key", &audit_key),
            ("parapet-secrets.key", &secrets),
        ] {
            let from = keys.join(name);
            if !from.exists() {
                continue;
            }
            if to.exists() {
                bail!(
                    "{} exists; move it away to restore the server's own",
                    to.display()
                );
            }
            if let Some(p) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(p)?;
            }
            std::fs::copy(&from, to).with_context(|| format!("cannot write {}", to.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        Ok(id)
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let id = result?;
    println!("restored the server's state from snapshot {id}");
    Ok(())
}
