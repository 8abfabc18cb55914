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
