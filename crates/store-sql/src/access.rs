//! `AccessStore` over SQL: just-in-time grants (inserted by the approval that decides them).

use async_trait::async_trait;
use parapet_store::{AccessGrant, AccessStore, AuditEvent, StoreError, StoreResult};
use parapet_types::{Role, TenantCtx, TenantId, Timestamp, UserId};
use sqlx::Row;

use crate::audit::insert_audit;
use crate::iam::bad;
use crate::rows::uuid;
use crate::{DbResult, SqlStore, with_pool, with_tx};

const COLS: &str = "id, tenant_id, user_id, username, role, reason, approval_id, granted_by_name, \
    starts_at, expires_at, revoked_at, revoked_by_name";

/// Inserts a grant within a transaction (the approval's).
macro_rules! insert_grant {
    ($tx:expr, $g:expr) => {{
        let g = $g;
        sqlx::query(
            "INSERT INTO access_grants (id, tenant_id, user_id, username, role, reason, \
             approval_id, granted_by_name, starts_at, expires_at, revoked_at, revoked_by_name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL)",
        )
        .bind(&g.id)
        .bind(g.tenant.to_string())
        .bind(g.user.to_string())
        .bind(&g.username)
        .bind(g.role.as_str())
        .bind(&g.reason)
        .bind(&g.approval_id)
        .bind(&g.granted_by_name)
        .bind(g.starts_at.0)
        .bind(g.expires_at.0)
        .execute($tx)
        .await
        .db()?;
    }};
}
pub(crate) use insert_grant;

macro_rules! grant_row {
    ($r:expr) => {{
        let r = $r;
        let tenant: String = r.try_get("tenant_id").db()?;
        let user: String = r.try_get("user_id").db()?;
        let role: String = r.try_get("role").db()?;
        AccessGrant {
            id: r.try_get("id").db()?,
            tenant: TenantId(uuid("tenant id", &tenant)?),
            user: UserId(uuid("user id", &user)?),
            username: r.try_get("username").db()?,
            role: role.parse::<Role>().map_err(|_| bad("role", &role))?,
            reason: r.try_get("reason").db()?,
            approval_id: r.try_get("approval_id").db()?,
            granted_by_name: r.try_get("granted_by_name").db()?,
            starts_at: Timestamp(r.try_get("starts_at").db()?),
            expires_at: Timestamp(r.try_get("expires_at").db()?),
            revoked_at: r
                .try_get::<Option<i64>, _>("revoked_at")
                .db()?
                .map(Timestamp),
            revoked_by_name: r.try_get("revoked_by_name").db()?,
        }
    }};
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn active_grant(
        &self,
        ctx: TenantCtx,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<Option<AccessGrant>> {
        let sql = format!(
            "SELECT {COLS} FROM access_grants WHERE tenant_id = $1 AND user_id = $2 \
             AND revoked_at IS NULL AND starts_at <= $3 AND expires_at > $3 \
             ORDER BY expires_at DESC LIMIT 1"
        );
        with_pool!(self, |pool| {
            let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .bind(now.0)
                .fetch_optional(pool)
                .await
                .db()?;
            match r {
                None => Ok(None),
                Some(r) => Ok(Some(grant_row!(&r))),
            }
        })
    }

    async fn list_grants(&self, ctx: TenantCtx) -> StoreResult<Vec<AccessGrant>> {
        let sql = format!(
            "SELECT {COLS} FROM access_grants WHERE tenant_id = $1 \
             ORDER BY starts_at DESC, id DESC LIMIT 1000"
        );
        with_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .fetch_all(pool)
                .await
                .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(grant_row!(r));
            }
            Ok(out)
        })
    }

    async fn get_grant(&self, ctx: TenantCtx, id: &str) -> StoreResult<AccessGrant> {
        let sql = format!("SELECT {COLS} FROM access_grants WHERE tenant_id = $1 AND id = $2");
        with_pool!(self, |pool| {
            let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(id)
                .fetch_optional(pool)
                .await
                .db()?
                .ok_or(StoreError::NotFound)?;
            Ok(grant_row!(&r))
        })
    }

    async fn revoke_grant(
        &self,
        ctx: TenantCtx,
        id: &str,
        at: Timestamp,
        by_name: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE access_grants SET revoked_at = $3, revoked_by_name = $4 \
                 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(id)
            .bind(at.0)
            .bind(by_name)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict("the grant is revoked already".into()));
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }
}
