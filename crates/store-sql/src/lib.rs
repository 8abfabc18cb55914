//! SQLite and PostgreSQL implementations of Parapet's storage traits.
//!
//! One code base serves both: queries are written once in the common SQL subset with `$N`
//! placeholders, and the [`with_pool!`]/[`with_tx!`] macros expand each body once per backend so
//! that it is type-checked against both drivers. Times are `BIGINT` milliseconds and identifiers
//! are text, so no dialect-specific types are needed.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use parapet_store::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

mod access;
mod account;
mod alert;
mod approval;
mod asset;
mod audit;
mod backup;
mod escalation;
mod event;
mod group;
mod iam;
mod incident;
mod kms;
mod ldap;
mod login_profile;
mod metric;
mod mfa;
mod migrate;
mod notify;
mod oidc;
mod rows;
mod session;
mod sqlite_read;
mod subaccount;
pub mod testkit;
mod webauthn;

/// The connection pool of the backend chosen at start.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

/// Parapet's store over SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub struct SqlStore {
    db: Db,
    /// SQLite only: the direct read path (see `sqlite_read`).
    reader: Option<std::sync::Arc<sqlite_read::SqliteReader>>,
    /// PostgreSQL only: the session holding the sequencer's advisory lock, while this process
    /// is the sequencer.
    sequencer_lock: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::PgConnection>>>,
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend.
macro_rules! with_pool {
    ($self:ident, |$pool:ident| $body:block) => {
        match &$self.db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Pg($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Runs `$body` inside a write transaction bound to `$tx` and commits it; an early return (`?`)
/// rolls back. SQLite transactions start with `BEGIN IMMEDIATE` so that writers queue on the
/// busy timeout instead of failing on a lock upgrade.
macro_rules! with_tx {
    ($self:ident, |$tx:ident| $body:block) => {
        match &$self.db {
            $crate::Db::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await.db()?;
                let out = $body;
                $tx.commit().await.db()?;
                out
            }
            $crate::Db::Pg(pool) => {
                let mut $tx = pool.begin().await.db()?;
                let out = $body;
                $tx.commit().await.db()?;
                out
            }
        }
    };
}
pub(crate) use with_tx;

/// Converts driver errors into storage errors.
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(map_err)
    }
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(d.message().to_string())
        }
        sqlx::Error::Database(d) if is_busy(d.code().as_deref()) => {
            StoreError::Unavailable(d.message().to_string())
        }
        e @ (sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed) => StoreError::Unavailable(e.to_string()),
        e => StoreError::Other(e.to_string()),
    }
}

/// SQLite BUSY/LOCKED, PostgreSQL admin shutdown / cannot connect now.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "57P01" | "57P03" | "53300"))
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long a request waits for a connection before the database counts as unavailable.
    pub acquire_timeout: Duration,
    pub max_connections: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            acquire_timeout: Duration::from_secs(3),
            max_connections: 16,
        }
    }
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database `parapet.db` in `dir`, in WAL mode, and
    /// applies the migrations.
    pub async fn open_sqlite(dir: &Path, opts: &OpenOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let file = dir.join("parapet.db");
        let connect = SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.clamp(1, 64))
            .min_connections(1)
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(connect)
            .await
            .db()?;
        let store = SqlStore {
            db: Db::Sqlite(pool),
            reader: Some(std::sync::Arc::new(sqlite_read::SqliteReader::new(file))),
            sequencer_lock: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to PostgreSQL at `url` and applies the migrations (serialized between replicas by
    /// an advisory lock).
    pub async fn open_postgres(url: &str, opts: &OpenOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid database URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.clamp(1, 256))
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(connect)
            .await
            .db()?;
        let store = SqlStore {
            db: Db::Pg(pool),
            reader: None,
            sequencer_lock: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens `postgres://…`/`postgresql://…` URLs with PostgreSQL, anything else as a SQLite
    /// data directory.
    pub async fn open(target: &str, opts: &OpenOptions) -> Result<Self, StoreError> {
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            Self::open_postgres(target, opts).await
        } else {
            Self::open_sqlite(Path::new(target), opts).await
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        if let Some(conn) = self.sequencer_lock.lock().await.take() {
            let _ = sqlx::Connection::close(conn).await;
        }
        match &self.db {
            Db::Sqlite(p) => p.close().await,
            Db::Pg(p) => p.close().await,
        }
    }
}

#[async_trait::async_trait]
impl parapet_store::Health for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await.db()?;
        });
        Ok(())
    }

    fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Pg(_) => "postgres",
        }
    }
}

impl SqlStore {
    /// SQLite only: writes a consistent copy of the whole database to the new file `path`
    /// (`VACUUM INTO`, an online backup that does not stop writers for long). PostgreSQL
    /// databases are copied with `pg_dump` instead; this refuses them.
    pub async fn vacuum_into(&self, path: &Path) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => {
                let target = path
                    .to_str()
                    .ok_or_else(|| StoreError::Other("the backup path is not UTF-8".into()))?;
                sqlx::query("VACUUM INTO $1")
                    .bind(target)
                    .execute(pool)
                    .await
                    .db()?;
                Ok(())
            }
            Db::Pg(_) => Err(StoreError::Other(
                "PostgreSQL databases are copied with pg_dump".into(),
            )),
        }
    }
}
