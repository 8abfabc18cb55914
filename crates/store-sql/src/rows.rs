//! Row shapes and their conversion into records, shared by single-row reads (decoded column by
//! column) and multi-row reads (decoded from one JSON array that the database builds).
//!
//! Multi-row reads go through [`SqlStore::select_rows`]: on SQLite the rows are read on the direct
//! read path (`sqlite_read`) and deserialized by column name; on PostgreSQL the database
//! aggregates them into one JSON document (`json_agg`), so a list costs one round trip and one
//! row whatever its length.

use parapet_store::{
    AuditEvent, AuditOutcome, AuditRecord, StoreError, StoreResult, Tenant, TenantStatus, User,
    UserStatus,
};
use parapet_types::{TenantId, TenantKind, Timestamp, UserId};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sqlx::AssertSqlSafe;

use crate::{Db, DbResult, SqlStore};

pub(crate) fn bad(what: &str, value: &str) -> StoreError {
    StoreError::Other(format!("corrupt row: invalid {what} {value:?}"))
}

pub(crate) fn uuid(what: &str, s: &str) -> StoreResult<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|_| bad(what, s))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TenantRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub created_at: i64,
}

pub(crate) const TENANT_COLS: &[&str] = &["id", "name", "kind", "status", "created_at"];

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;
    fn try_from(r: TenantRow) -> StoreResult<Tenant> {
        Ok(Tenant {
            id: TenantId(uuid("tenant id", &r.id)?),
            kind: TenantKind::parse(&r.kind).ok_or_else(|| bad("tenant kind", &r.kind))?,
            status: TenantStatus::parse(&r.status)
                .ok_or_else(|| bad("tenant status", &r.status))?,
            name: r.name,
            created_at: Timestamp(r.created_at),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub username: String,
    pub role: String,
    pub status: String,
    pub password_hash: String,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

pub(crate) const USER_COLS: &[&str] = &[
    "id",
    "tenant_id",
    "username",
    "role",
    "status",
    "password_hash",
    "created_at",
    "last_login_at",
];

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<User> {
        Ok(User {
            id: UserId(uuid("user id", &r.id)?),
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            role: r.role.parse().map_err(|_| bad("role", &r.role))?,
            status: UserStatus::parse(&r.status).ok_or_else(|| bad("user status", &r.status))?,
            username: r.username,
            password_hash: r.password_hash,
            created_at: Timestamp(r.created_at),
            last_login_at: r.last_login_at.map(Timestamp),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct AuditRow {
    pub id: i64,
    pub time: i64,
    pub tenant_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub outcome: String,
    pub details: String,
}

pub(crate) const AUDIT_COLS: &[&str] = &[
    "id",
    "time",
    "tenant_id",
    "actor",
    "action",
    "target",
    "source_ip",
    "user_agent",
    "outcome",
    "details",
];

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> StoreResult<AuditRecord> {
        Ok(AuditRecord {
            id: r.id,
            event: AuditEvent {
                time: Timestamp(r.time),
                tenant: match r.tenant_id {
                    Some(t) => Some(TenantId(uuid("tenant id", &t)?)),
                    None => None,
                },
                actor: serde_json::from_str(&r.actor).map_err(|_| bad("actor", &r.actor))?,
                action: r.action,
                target: r.target,
                source_ip: r.source_ip,
                user_agent: r.user_agent,
                outcome: AuditOutcome::parse(&r.outcome)
                    .ok_or_else(|| bad("outcome", &r.outcome))?,
                details: serde_json::from_str(&r.details)
                    .map_err(|_| bad("details", &r.details))?,
            },
        })
    }
}

/// A bound parameter of a dynamically built query.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    I64(i64),
    Text(String),
}

impl SqlStore {
    /// Runs `inner`, a `SELECT` of the columns `cols` ordered by `order` (e.g. `id DESC`, the
    /// same order as `inner`'s own `ORDER BY`), with `$N` parameters `binds`, and decodes its rows.
    /// On SQLite the query runs as it is on the direct read path; on PostgreSQL the database
    /// aggregates the rows into one JSON array, ordered inside the aggregate.
    pub(crate) async fn select_rows<T: DeserializeOwned>(
        &self,
        inner: &str,
        cols: &[&str],
        order: &str,
        binds: &[Bind],
    ) -> StoreResult<Vec<T>> {
        let pool = match (&self.db, &self.reader) {
            (Db::Sqlite(_), Some(reader)) => return reader.rows(inner, binds),
            (Db::Sqlite(_), None) => {
                return Err(StoreError::Other("the SQLite read path is missing".into()));
            }
            (Db::Pg(pool), _) => pool,
        };
        let fields = cols
            .iter()
            .map(|c| format!("'{c}', {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT coalesce(json_agg(json_build_object({fields}) ORDER BY {order}), \
             '[]'::json)::text AS j FROM ({inner}) AS r"
        );
        let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
        for b in binds {
            q = match b {
                Bind::I64(v) => q.bind(*v),
                Bind::Text(s) => q.bind(s.clone()),
            };
        }
        let json = q.fetch_one(pool).await.db()?;
        serde_json::from_str(&json)
            .map_err(|e| StoreError::Other(format!("cannot decode rows: {e}")))
    }

    /// [`select_rows`](Self::select_rows) converted into records.
    pub(crate) async fn records<R, T>(
        &self,
        inner: &str,
        cols: &[&str],
        order: &str,
        binds: &[Bind],
    ) -> StoreResult<Vec<T>>
    where
        R: DeserializeOwned,
        T: TryFrom<R, Error = StoreError>,
    {
        self.select_rows::<R>(inner, cols, order, binds)
            .await?
            .into_iter()
            .map(T::try_from)
            .collect()
    }
}
