//! `IamStore` over SQL.

use async_trait::async_trait;
use parapet_store::{
    AuditEvent, Authenticated, Credential, CredentialKind, IamStore, Page, StoreError, StoreResult,
    Tenant, TenantStatus, User, UserStatus,
};
use parapet_types::{CredentialId, TenantCtx, TenantId, TenantKind, Timestamp, UserId};
use sqlx::Row;

use crate::audit::insert_audit;
use crate::rows::{Bind, TENANT_COLS, TenantRow, USER_COLS, UserRow, uuid};
use crate::{DbResult, SqlStore, with_pool, with_tx};

pub(crate) fn bad(what: &str, value: &str) -> StoreError {
    StoreError::Other(format!("corrupt row: invalid {what} {value:?}"))
}

/// Decodes a tenant from columns named `{prefix}id`, `{prefix}name`, ….
macro_rules! tenant_row {
    ($row:expr, $p:literal) => {{
        let row = $row;
        Tenant::try_from(TenantRow {
            id: row.try_get(concat!($p, "id")).db()?,
            name: row.try_get(concat!($p, "name")).db()?,
            kind: row.try_get(concat!($p, "kind")).db()?,
            status: row.try_get(concat!($p, "status")).db()?,
            created_at: row.try_get(concat!($p, "created_at")).db()?,
        })?
    }};
}

/// Decodes a user from columns named `{prefix}id`, ….
macro_rules! user_row {
    ($row:expr, $p:literal) => {{
        let row = $row;
        User::try_from(UserRow {
            id: row.try_get(concat!($p, "id")).db()?,
            tenant_id: row.try_get(concat!($p, "tenant_id")).db()?,
            username: row.try_get(concat!($p, "username")).db()?,
            role: row.try_get(concat!($p, "role")).db()?,
            status: row.try_get(concat!($p, "status")).db()?,
            password_hash: row.try_get(concat!($p, "password_hash")).db()?,
            created_at: row.try_get(concat!($p, "created_at")).db()?,
            last_login_at: row.try_get(concat!($p, "last_login_at")).db()?,
        })?
    }};
}

macro_rules! credential_row {
    ($row:expr, $p:literal) => {{
        let row = $row;
        let id: String = row.try_get(concat!($p, "id")).db()?;
        let tenant: String = row.try_get(concat!($p, "tenant_id")).db()?;
        let user: String = row.try_get(concat!($p, "user_id")).db()?;
        let kind: String = row.try_get(concat!($p, "kind")).db()?;
        let scopes: String = row.try_get(concat!($p, "scopes")).db()?;
        let revoked: Option<i64> = row.try_get(concat!($p, "revoked_at")).db()?;
        Credential {
            id: CredentialId(uuid("credential id", &id)?),
            tenant: TenantId(uuid("tenant id", &tenant)?),
            user: UserId(uuid("user id", &user)?),
            kind: CredentialKind::parse(&kind).ok_or_else(|| bad("credential kind", &kind))?,
            name: row.try_get(concat!($p, "name")).db()?,
            secret_hash: row.try_get(concat!($p, "secret_hash")).db()?,
            scopes: serde_json::from_str(&scopes).map_err(|_| bad("scopes", &scopes))?,
            created_at: Timestamp(row.try_get(concat!($p, "created_at")).db()?),
            expires_at: Timestamp(row.try_get(concat!($p, "expires_at")).db()?),
            revoked_at: revoked.map(Timestamp),
        }
    }};
}
pub(crate) use credential_row;
pub(crate) use user_row;

/// Whether `$1` is the provider tenant.
const IS_PROVIDER: &str =
    "SELECT EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 AND p.kind = 'provider') AS ok";

pub(crate) fn conflict(e: StoreError, msg: impl FnOnce() -> String) -> StoreError {
    match e {
        StoreError::Conflict(_) => StoreError::Conflict(msg()),
        e => e,
    }
}

fn limit(page: &Page) -> i64 {
    i64::from(page.limit.clamp(1, 1000))
}

macro_rules! insert_tenant {
    ($tx:expr, $t:expr) => {
        sqlx::query(
            "INSERT INTO tenants (id, name, kind, status, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($t.id.to_string())
        .bind(&$t.name)
        .bind($t.kind.as_str())
        .bind($t.status.as_str())
        .bind($t.created_at.0)
        .execute($tx)
        .await
        .db()
        .map_err(|e| conflict(e, || format!("a tenant named {:?} already exists", $t.name)))?
    };
}

macro_rules! insert_user {
    ($tx:expr, $u:expr) => {
        sqlx::query(
            "INSERT INTO users (id, tenant_id, username, role, status, password_hash, created_at, \
             last_login_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($u.id.to_string())
        .bind($u.tenant.to_string())
        .bind(&$u.username)
        .bind($u.role.as_str())
        .bind($u.status.as_str())
        .bind(&$u.password_hash)
        .bind($u.created_at.0)
        .bind($u.last_login_at.map(|t| t.0))
        .execute($tx)
        .await
        .db()
        .map_err(|e| {
            conflict(e, || {
                format!(
                    "a user named {:?} already exists in this tenant",
                    $u.username
                )
            })
        })?
    };
}

pub(crate) use insert_user;

macro_rules! insert_credential {
    ($tx:expr, $c:expr) => {
        sqlx::query(
            "INSERT INTO credentials (id, tenant_id, user_id, kind, name, secret_hash, scopes, \
             created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind($c.id.to_string())
        .bind($c.tenant.to_string())
        .bind($c.user.to_string())
        .bind($c.kind.as_str())
        .bind(&$c.name)
        .bind(&$c.secret_hash)
        .bind(serde_json::to_string(&$c.scopes).unwrap_or_else(|_| "[]".into()))
        .bind($c.created_at.0)
        .bind($c.expires_at.0)
        .bind($c.revoked_at.map(|t| t.0))
        .execute($tx)
        .await
        .db()?
    };
}

pub(crate) fn same_tenant(ctx: TenantCtx, tenant: TenantId) -> StoreResult<()> {
    if ctx.tenant == tenant {
        Ok(())
    } else {
        Err(StoreError::Other(
            "a record may only be written within its own tenant".into(),
        ))
    }
}

#[async_trait]
impl IamStore for SqlStore {
    async fn bootstrap_provider(
        &self,
        provider: &Tenant,
        admin: &User,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        if self.provider_tenant().await?.is_some() {
            return Ok(false);
        }
        same_tenant(TenantCtx::new(provider.id), admin.tenant)?;
        let res: StoreResult<()> = async {
            with_tx!(self, |tx| {
                insert_tenant!(&mut *tx, provider);
                insert_user!(&mut *tx, admin);
                insert_audit!(&mut *tx, audit);
            });
            Ok(())
        }
        .await;
        match res {
            Ok(()) => Ok(true),
            // Another replica bootstrapped first.
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn provider_tenant(&self) -> StoreResult<Option<Tenant>> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT id, name, kind, status, created_at FROM tenants WHERE kind = 'provider'",
            )
            .fetch_optional(pool)
            .await
            .db()?;
            match row {
                Some(r) => Ok(Some(tenant_row!(&r, ""))),
                None => Ok(None),
            }
        })
    }

    async fn create_tenant(
        &self,
        ctx: TenantCtx,
        tenant: &Tenant,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if tenant.kind != TenantKind::Customer {
            return Err(StoreError::Other(
                "only customer tenants can be created".into(),
            ));
        }
        with_tx!(self, |tx| {
            let ok: bool = sqlx::query(IS_PROVIDER)
                .bind(ctx.tenant.to_string())
                .fetch_one(&mut *tx)
                .await
                .db()?
                .try_get("ok")
                .db()?;
            if !ok {
                return Err(StoreError::NotFound);
            }
            insert_tenant!(&mut *tx, tenant);
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn list_tenants(&self, ctx: TenantCtx, page: &Page) -> StoreResult<Vec<Tenant>> {
        const SQL: &str = "SELECT id, name, kind, status, created_at FROM tenants \
            WHERE (id = $1 OR EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 AND p.kind = 'provider')) \
            AND id > $2 ORDER BY id LIMIT $3";
        self.records::<TenantRow, Tenant>(
            SQL,
            TENANT_COLS,
            "id",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::Text(page.after.clone().unwrap_or_default()),
                Bind::I64(limit(page)),
            ],
        )
        .await
    }

    async fn get_tenant(&self, ctx: TenantCtx, id_or_name: &str) -> StoreResult<Tenant> {
        const SQL: &str = "SELECT id, name, kind, status, created_at FROM tenants \
            WHERE (id = $2 OR name = $2) AND (id = $1 OR EXISTS \
            (SELECT 1 FROM tenants p WHERE p.id = $1 AND p.kind = 'provider'))";
        with_pool!(self, |pool| {
            let row = sqlx::query(SQL)
                .bind(ctx.tenant.to_string())
                .bind(id_or_name)
                .fetch_optional(pool)
                .await
                .db()?
                .ok_or(StoreError::NotFound)?;
            Ok(tenant_row!(&row, ""))
        })
    }

    async fn set_tenant_status(
        &self,
        ctx: TenantCtx,
        tenant: TenantId,
        status: TenantStatus,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        const SQL: &str = "UPDATE tenants SET status = $3 WHERE id = $2 AND kind = 'customer' \
            AND EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 AND p.kind = 'provider')";
        with_tx!(self, |tx| {
            let n = sqlx::query(SQL)
                .bind(ctx.tenant.to_string())
                .bind(tenant.to_string())
                .bind(status.as_str())
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn create_user(
        &self,
        ctx: TenantCtx,
        user: &User,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        same_tenant(ctx, user.tenant)?;
        with_tx!(self, |tx| {
            insert_user!(&mut *tx, user);
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn list_users(&self, ctx: TenantCtx, page: &Page) -> StoreResult<Vec<User>> {
        const SQL: &str = "SELECT id, tenant_id, username, role, status, password_hash, created_at, \
            last_login_at FROM users WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3";
        self.records::<UserRow, User>(
            SQL,
            USER_COLS,
            "id",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::Text(page.after.clone().unwrap_or_default()),
                Bind::I64(limit(page)),
            ],
        )
        .await
    }

    async fn get_user(&self, ctx: TenantCtx, username: &str) -> StoreResult<User> {
        const SQL: &str = "SELECT id, tenant_id, username, role, status, password_hash, created_at, \
            last_login_at FROM users WHERE tenant_id = $1 AND username = $2";
        with_pool!(self, |pool| {
            let row = sqlx::query(SQL)
                .bind(ctx.tenant.to_string())
                .bind(username)
                .fetch_optional(pool)
                .await
                .db()?
                .ok_or(StoreError::NotFound)?;
            Ok(user_row!(&row, ""))
        })
    }

    async fn set_user_status(
        &self,
        ctx: TenantCtx,
        user: UserId,
        status: UserStatus,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query("UPDATE users SET status = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .bind(status.as_str())
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            if status == UserStatus::Disabled {
                sqlx::query(
                    "UPDATE credentials SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 \
                     AND revoked_at IS NULL",
                )
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .bind(audit.time.0)
                .execute(&mut *tx)
                .await
                .db()?;
            } else {
                // Re-enabling counts as activity for dormancy and ends a dormancy disabling.
                crate::account::ensure_state!(&mut *tx, ctx, user);
                sqlx::query(
                    "UPDATE account_state SET enabled_at = $3, dormant_disabled_at = NULL \
                     WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .bind(audit.time.0)
                .execute(&mut *tx)
                .await
                .db()?;
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn find_login(&self, tenant_name: &str, username: &str) -> StoreResult<(Tenant, User)> {
        const SQL: &str = "SELECT t.id AS t_id, t.name AS t_name, t.kind AS t_kind, \
            t.status AS t_status, t.created_at AS t_created_at, u.id AS u_id, \
            u.tenant_id AS u_tenant_id, u.username AS u_username, u.role AS u_role, \
            u.status AS u_status, u.password_hash AS u_password_hash, \
            u.created_at AS u_created_at, u.last_login_at AS u_last_login_at \
            FROM users u JOIN tenants t ON t.id = u.tenant_id \
            WHERE t.name = $1 AND u.username = $2";
        with_pool!(self, |pool| {
            let row = sqlx::query(SQL)
                .bind(tenant_name)
                .bind(username)
                .fetch_optional(pool)
                .await
                .db()?
                .ok_or(StoreError::NotFound)?;
            Ok((tenant_row!(&row, "t_"), user_row!(&row, "u_")))
        })
    }

    async fn create_session(
        &self,
        ctx: TenantCtx,
        session: &Credential,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        same_tenant(ctx, session.tenant)?;
        with_tx!(self, |tx| {
            insert_credential!(&mut *tx, session);
            sqlx::query("UPDATE users SET last_login_at = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(ctx.tenant.to_string())
                .bind(session.user.to_string())
                .bind(session.created_at.0)
                .execute(&mut *tx)
                .await
                .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn create_api_token(
        &self,
        ctx: TenantCtx,
        token: &Credential,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        same_tenant(ctx, token.tenant)?;
        with_tx!(self, |tx| {
            insert_credential!(&mut *tx, token);
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn list_credentials(
        &self,
        ctx: TenantCtx,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<Vec<Credential>> {
        const SQL: &str = "SELECT id, tenant_id, user_id, kind, name, secret_hash, scopes, \
            created_at, expires_at, revoked_at FROM credentials WHERE tenant_id = $1 \
            AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 ORDER BY id";
        with_pool!(self, |pool| {
            let rows = sqlx::query(SQL)
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .bind(now.0)
                .fetch_all(pool)
                .await
                .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(credential_row!(r, ""));
            }
            Ok(out)
        })
    }

    async fn revoke_credential(
        &self,
        ctx: TenantCtx,
        id: CredentialId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE credentials SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 \
                 AND revoked_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(id.to_string())
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn authenticate(
        &self,
        secret_hash: &[u8],
        now: Timestamp,
        idle_since: Timestamp,
    ) -> StoreResult<Option<Authenticated>> {
        const SQL: &str = "SELECT c.id AS c_id, c.tenant_id AS c_tenant_id, c.user_id AS c_user_id, \
            c.kind AS c_kind, c.name AS c_name, c.secret_hash AS c_secret_hash, \
            c.scopes AS c_scopes, c.created_at AS c_created_at, c.expires_at AS c_expires_at, \
            c.revoked_at AS c_revoked_at, \
            t.id AS t_id, t.name AS t_name, t.kind AS t_kind, t.status AS t_status, \
            t.created_at AS t_created_at, u.id AS u_id, u.tenant_id AS u_tenant_id, \
            u.username AS u_username, u.role AS u_role, u.status AS u_status, \
            u.password_hash AS u_password_hash, u.created_at AS u_created_at, \
            u.last_login_at AS u_last_login_at, \
            COALESCE(a.last_used_at, c.created_at) AS a_last_used_at \
            FROM credentials c JOIN users u ON u.id = c.user_id AND u.tenant_id = c.tenant_id \
            JOIN tenants t ON t.id = c.tenant_id \
            LEFT JOIN credential_activity a ON a.credential_id = c.id \
            WHERE c.secret_hash = $1 AND c.revoked_at IS NULL AND c.expires_at > $2 \
            AND (c.kind <> 'session' OR COALESCE(a.last_used_at, c.created_at) > $3)";
        with_pool!(self, |pool| {
            let row = sqlx::query(SQL)
                .bind(secret_hash)
                .bind(now.0)
                .bind(idle_since.0)
                .fetch_optional(pool)
                .await
                .db()?;
            let Some(r) = row else { return Ok(None) };
            let found = Authenticated {
                credential: credential_row!(&r, "c_"),
                user: user_row!(&r, "u_"),
                tenant: tenant_row!(&r, "t_"),
            };
            let last_used: i64 = r.try_get("a_last_used_at").db()?;
            if now.0.saturating_sub(last_used) >= crate::session::TOUCH_EVERY_MS {
                crate::session::touch!(pool, &found.credential, now);
            }
            Ok(Some(found))
        })
    }
}
