//! Fresh databases for tests: a SQLite file in a new temporary directory, or a new database in the
//! PostgreSQL cluster named by `PARAPET_TEST_DATABASE_URL` (which `scripts/test` starts).

use std::path::PathBuf;

use crate::{OpenOptions, SqlStore};

/// The backends every storage-facing test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
}

/// A new, empty temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let mut b = [0u8; 8];
    let _ = getrandom_fill(&mut b);
    let dir = std::env::temp_dir().join(format!(
        "parapet-{tag}-{}-{}",
        std::process::id(),
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn getrandom_fill(b: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(b)
}

/// The URL of the test PostgreSQL cluster's maintenance database, or a clear error.
pub fn postgres_admin_url() -> Result<String, String> {
    std::env::var("PARAPET_TEST_DATABASE_URL").map_err(|_| {
        "PARAPET_TEST_DATABASE_URL is not set: these tests need a PostgreSQL server; run them \
         through scripts/test, which starts a throwaway PostgreSQL 15 cluster"
            .to_string()
    })
}

/// Creates a new empty database in the test cluster and returns its URL.
pub async fn fresh_postgres_url() -> Result<String, String> {
    use sqlx::Connection;
    let admin = postgres_admin_url()?;
    let mut b = [0u8; 8];
    getrandom_fill(&mut b).map_err(|e| e.to_string())?;
    let name = format!(
        "parapet_t_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .map_err(|e| format!("cannot connect to the test PostgreSQL at {admin}: {e}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("cannot create test database: {e}"))?;
    let _ = conn.close().await;
    // Replace the database path of the admin URL.
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let root = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => base.get(..i).unwrap_or(&base).to_string(),
        _ => base.clone(),
    };
    Ok(format!("{root}/{name}{query}"))
}

/// A store on a fresh database of `backend`, with the data directory (SQLite) or URL (PostgreSQL)
/// that a server process would be given.
pub async fn fresh(backend: Backend) -> Result<(SqlStore, String), String> {
    match backend {
        Backend::Sqlite => {
            let dir = temp_dir("db");
            let store = SqlStore::open_sqlite(&dir, &OpenOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok((store, dir.display().to_string()))
        }
        Backend::Postgres => {
            let url = fresh_postgres_url().await?;
            let store = SqlStore::open_postgres(&url, &OpenOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok((store, url))
        }
    }
}

/// Bootstraps the provider tenant `provider` with an administrator `admin` (a placeholder
/// password hash), recording `event` (log index 0 of a fresh database). Returns the provider
/// tenant.
pub async fn bootstrap_provider(
    store: &SqlStore,
    event: &parapet_store::AuditEvent,
) -> Result<parapet_store::Tenant, parapet_store::StoreError> {
    use parapet_store::{IamStore, Tenant, TenantStatus, User, UserStatus};
    use parapet_types::{Role, TenantId, TenantKind, Timestamp, UserId};
    let provider = Tenant {
        id: TenantId(uuid::Uuid::now_v7()),
        name: "provider".into(),
        kind: TenantKind::Provider,
        status: TenantStatus::Active,
        created_at: Timestamp(1),
    };
    let admin = User {
        id: UserId(uuid::Uuid::now_v7()),
        tenant: provider.id,
        username: "admin".into(),
        role: Role::SecurityAdmin,
        status: UserStatus::Active,
        password_hash: "$argon2id$test-placeholder".into(),
        created_at: Timestamp(1),
        last_login_at: None,
    };
    let mut event = event.clone();
    event.tenant = Some(provider.id);
    store.bootstrap_provider(&provider, &admin, &event).await?;
    Ok(provider)
}
