//! The read path of the SQLite backend: a small pool of read-only connections that run a query on
//! the calling thread.
//!
//! sqlx's SQLite driver gives each connection a worker thread and hands every command to it over a
//! channel; on a two-core machine the thread wake-ups cost more than the query (measured: a page of
//! 20 users took ~120 µs of CPU through sqlx against ~30 µs in SQLite itself). Reads under WAL never
//! wait for writers, so they are run here directly, in microseconds, while every write keeps going
//! through sqlx's transactions. Both drivers link the same bundled SQLite.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parapet_store::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use serde::de::DeserializeOwned;

use crate::rows::Bind;

/// Read connections one thread keeps open (one per database it reads).
const PER_THREAD: usize = 8;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's read connections, by reader id: each worker thread reads through its own
    /// connection, so no lock is taken on the read path.
    static CONNECTIONS: RefCell<Vec<(u64, Connection)>> = const { RefCell::new(Vec::new()) };
}

pub(crate) struct SqliteReader {
    id: u64,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReader")
            .field("path", &self.path)
            .finish()
    }
}

fn map_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(f, msg)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::CannotOpen
            ) =>
        {
            StoreError::Unavailable(msg.unwrap_or_else(|| f.to_string()))
        }
        e => StoreError::Other(e.to_string()),
    }
}

impl SqliteReader {
    pub(crate) fn new(path: PathBuf) -> Self {
        SqliteReader {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path,
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Query planner stability: without it SQLite re-prepares a statement whenever a new
        // parameter value might change its plan, which here meant on every call (a quarter of the
        // CPU time of a list request, measured with perf).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Runs `sql` with the `$N` parameters `binds` and deserializes every row into `T` by column
    /// name.
    pub(crate) fn rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        binds: &[Bind],
    ) -> StoreResult<Vec<T>> {
        CONNECTIONS.with(|cell| {
            let mut conns = cell.borrow_mut();
            if !conns.iter().any(|(id, _)| *id == self.id) {
                let conn = self.open().map_err(map_err)?;
                if conns.len() >= PER_THREAD {
                    conns.remove(0);
                }
                conns.push((self.id, conn));
            }
            match conns.iter().find(|(id, _)| *id == self.id) {
                Some((_, conn)) => run(conn, sql, binds),
                None => Err(StoreError::Other("read connection vanished".into())),
            }
        })
    }
}

fn run<T: DeserializeOwned>(conn: &Connection, sql: &str, binds: &[Bind]) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    // Parameters are bound by name ("$1", "$2", …): SQLite numbers named parameters in order of
    // first appearance, which need not be the order of their numbers.
    for (i, b) in binds.iter().enumerate() {
        if let Some(idx) = stmt
            .parameter_index(&format!("${}", i + 1))
            .map_err(map_err)?
        {
            match b {
                Bind::I64(v) => stmt.raw_bind_parameter(idx, v),
                Bind::Text(s) => stmt.raw_bind_parameter(idx, s.as_str()),
            }
            .map_err(map_err)?;
        }
    }
    // Column names once per query, not once per row.
    let columns = serde_rusqlite::columns_from_statement(&stmt);
    let mut out = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(
            serde_rusqlite::from_row_with_columns::<T>(row, &columns)
                .map_err(|e| StoreError::Other(format!("cannot decode a row: {e}")))?,
        );
    }
    Ok(out)
}
