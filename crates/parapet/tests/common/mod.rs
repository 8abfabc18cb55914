//! Shared test harness: starts the real `parapet serve` binary on 127.0.0.1:0 with a fresh
//! database (SQLite in a temporary directory, or a new database in the PostgreSQL cluster that
//! `scripts/test` starts) and stops it when dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use parapet_store_sql::testkit::Backend;

pub mod api;
pub mod webhook;

/// Runs each named test function (taking a [`Backend`]) on SQLite and on PostgreSQL, as the
/// tests `sqlite::<name>` and `postgres::<name>`. Needs `#[macro_use] mod common;`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[test] fn $name() { super::$name(super::Backend::Sqlite) })* }
        mod postgres { $(#[test] fn $name() { super::$name(super::Backend::Postgres) })* }
    };
}

/// An environment value for [`start_with`] that removes the variable instead of setting it.
pub const UNSET: &str = "\u{0}unset";

/// The bootstrap password every test server's `admin` gets.
pub const ADMIN_PASSWORD: &str = "test-root-password-0123";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_parapet"))
}

/// A running server.
pub struct Server {
    pub url: String,
    pub child: Child,
    /// SQLite data directory or PostgreSQL URL.
    pub database: String,
    pub backend: Backend,
    /// Whether the harness made the database for this server alone (removed on drop).
    pub owns_database: bool,
    /// Lines the server printed on standard output.
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_database && self.backend == Backend::Sqlite {
            let _ = std::fs::remove_dir_all(&self.database);
        }
    }
}

/// Where the server's database lives for `backend`: a new SQLite directory, or a new PostgreSQL
/// database (the test fails with a clear message when no cluster is available).
pub fn fresh_database(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => parapet_store_sql::testkit::temp_dir("srv")
            .display()
            .to_string(),
        Backend::Postgres => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(parapet_store_sql::testkit::fresh_postgres_url())
                .unwrap_or_else(|e| panic!("{e}"))
        }
    }
}

/// Starts `parapet serve` on `backend` with extra arguments and environment.
pub fn start_with(backend: Backend, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let database = fresh_database(backend);
    let mut srv = start_on(backend, &database, extra, env);
    srv.owns_database = true;
    srv
}

/// The audit signing key file of the test database at the PostgreSQL URL `database`.
pub fn pg_audit_key(database: &str) -> PathBuf {
    let name: String = database
        .rsplit('/')
        .next()
        .unwrap_or("db")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    std::env::temp_dir().join(format!("parapet-test-audit-{name}.key"))
}

/// Starts a server on an existing database.
pub fn start_on(backend: Backend, database: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(bin());
    cmd.arg("serve").arg("--listen").arg("127.0.0.1:0");
    match backend {
        Backend::Sqlite => cmd.arg("--data-dir").arg(database),
        Backend::Postgres => cmd.arg("--database-url").arg(database),
    };
    if backend == Backend::Postgres && !extra.contains(&"--audit-key") {
        // One signing key per database, shared by the replicas started on it.
        cmd.arg("--audit-key").arg(pg_audit_key(database));
    }
    cmd.args(extra)
        .env("PARAPET_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
        // Test servers' provider staff log in without a second factor (the server's default
        // requires one; tests of that pass `PARAPET_PROVIDER_MFA_REQUIRED` themselves, or
        // UNSET to get the default).
        .env("PARAPET_PROVIDER_MFA_REQUIRED", "false")
        .env("PARAPET_LOG", "warn")
        // The audit-log source of monitoring (on by default in `serve`) writes records in the
        // background that tests of the audit trail do not expect: off unless a test asks with
        // `--monitor-audit-log` (or removes this variable with UNSET).
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if !extra.contains(&"--monitor-audit-log") {
        cmd.env("PARAPET_NO_MONITOR_AUDIT_LOG", "true");
    }
    for (k, v) in env {
        if *v == UNSET {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().expect("spawn parapet serve");
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    break rest.split_whitespace().next().unwrap().to_string();
                }
            }
            Err(_) => {
                let status = child.try_wait();
                panic!(
                    "parapet serve did not report its address within 60 s (exit: {status:?}); output: {:?}",
                    lines.lock().unwrap()
                );
            }
        }
    };
    Server {
        url,
        child,
        database: database.to_string(),
        backend,
        owns_database: false,
        stdout: lines,
    }
}

pub fn start(backend: Backend) -> Server {
    start_with(backend, &[], &[])
}

/// Runs `sql` (one or more statements) directly on the server's database, as its administrator
/// would: the SQLite file in the data directory, or the PostgreSQL database at the URL.
pub fn as_dba(backend: Backend, database: &str, sql: &str) -> Result<(), String> {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    rt.block_on(async {
        match backend {
            Backend::Sqlite => {
                let file = std::path::Path::new(database).join("parapet.db");
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
                        .await
                        .map_err(|e| e.to_string())?;
                let r = sqlx::raw_sql(sql).execute(&mut c).await;
                let _ = c.close().await;
                r.map(drop).map_err(|e| e.to_string())
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(database)
                    .await
                    .map_err(|e| e.to_string())?;
                let r = sqlx::raw_sql(sql).execute(&mut c).await;
                let _ = c.close().await;
                r.map(drop).map_err(|e| e.to_string())
            }
        }
    })
}

/// Runs the `parapet` command line against the server at `url` with `token` (and a config
/// directory of its own), feeding `stdin`.
pub fn run_cli(url: &str, token: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .env("PARAPET_SERVER", url)
        .env("PARAPET_TOKEN", token)
        .env(
            "PARAPET_CONFIG_DIR",
            parapet_store_sql::testkit::temp_dir("cfg"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Reads one text value directly from the server's database, as its administrator would (the
/// first column of the first row of `sql`; `None` when there is no row).
pub fn dba_text(backend: Backend, database: &str, sql: &str) -> Option<String> {
    use sqlx::Connection;
    let (database, sql) = (database.to_string(), sql.to_string());
    // A thread of its own, so that tests may call it from within their runtime.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sql = sqlx::AssertSqlSafe(sql);
        rt.block_on(async {
            match backend {
                Backend::Sqlite => {
                    let file = std::path::Path::new(&database).join("parapet.db");
                    let mut c =
                        sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
                            .await
                            .unwrap();
                    let v: Option<String> = sqlx::query_scalar(sql)
                        .fetch_optional(&mut c)
                        .await
                        .unwrap();
                    let _ = c.close().await;
                    v
                }
                Backend::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&database).await.unwrap();
                    let v: Option<String> = sqlx::query_scalar(sql)
                        .fetch_optional(&mut c)
                        .await
                        .unwrap();
                    let _ = c.close().await;
                    v
                }
            }
        })
    })
    .join()
    .unwrap()
}

/// The Python of the test environment with the packages of tests/independent/requirements.txt
/// (`PARAPET_TEST_PYTHON`; scripts/test makes it in target/pyenv). A test needing it fails,
/// never skips, without it.
pub fn test_python() -> String {
    std::env::var("PARAPET_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "PARAPET_TEST_PYTHON is not set: it must name a Python with the packages of \
                 tests/independent/requirements.txt (moto, botocore, …); scripts/test makes one \
                 in target/pyenv"
            )
        })
}

/// A moto S3 server (the off-site store of the tests) on a free port, killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(test_python())
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto ({}): {e}", test_python()));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not start listening on {url}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Moto { child, url }
}

/// How to make the test Python, for failure messages.
pub const PYTHON_INSTALL: &str = "create the virtual environment and point PARAPET_TEST_PYTHON at \
     it: `python3 -m venv target/pyenv && target/pyenv/bin/pip install -r \
     tests/independent/requirements.txt && export PARAPET_TEST_PYTHON=$PWD/target/pyenv/bin/python` \
     (scripts/test does this)";

/// The test Python, checked by running `script --check-deps` (the independent scripts exit
/// non-zero naming what is missing); `needs` says what the test needs, for the message. The
/// test fails, never skips, without it.
pub fn python_for(script: &std::path::Path, needs: &str) -> PathBuf {
    let python = match std::env::var_os("PARAPET_TEST_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("PARAPET_TEST_PYTHON is not set: this test needs {needs}; {PYTHON_INSTALL}"),
    };
    let out = Command::new(&python)
        .arg(script)
        .arg("--check-deps")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "PARAPET_TEST_PYTHON={} does not run ({e}); {PYTHON_INSTALL}",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "PARAPET_TEST_PYTHON={} lacks {needs}: {}{}; {PYTHON_INSTALL}",
        python.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    python
}
