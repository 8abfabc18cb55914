//! `MfaStore` over SQL: sealed TOTP secrets with replay protection, recovery codes.

use async_trait::async_trait;
use parapet_store::{AuditEvent, MfaStore, StoreError, StoreResult, TotpRecord};
use parapet_types::{TenantCtx, Timestamp, UserId};
use sqlx::Row;

use crate::audit::insert_audit;
use crate::{DbResult, SqlStore, with_pool, with_tx};

#[async_trait]
impl MfaStore for SqlStore {
    async fn get_totp(&self, ctx: TenantCtx, user: UserId) -> StoreResult<Option<TotpRecord>> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT sealed_secret, created_at, confirmed_at, last_step FROM mfa_totp \
                 WHERE tenant_id = $1 AND user_id = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .fetch_optional(pool)
            .await
            .db()?;
            match row {
                None => Ok(None),
                Some(r) => Ok(Some(TotpRecord {
                    sealed_secret: r.try_get("sealed_secret").db()?,
                    created_at: Timestamp(r.try_get("created_at").db()?),
                    confirmed_at: r
                        .try_get::<Option<i64>, _>("confirmed_at")
                        .db()?
                        .map(Timestamp),
                    last_step: r.try_get("last_step").db()?,
                })),
            }
        })
    }

    async fn begin_totp(
        &self,
        ctx: TenantCtx,
        user: UserId,
        sealed_secret: &str,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let confirmed = sqlx::query(
                "SELECT 1 AS one FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2 \
                 AND confirmed_at IS NOT NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .fetch_optional(&mut *tx)
            .await
            .db()?;
            if confirmed.is_some() {
                return Err(StoreError::Conflict(
                    "an authenticator is enrolled already: remove it first".into(),
                ));
            }
            sqlx::query("DELETE FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2")
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .execute(&mut *tx)
                .await
                .db()?;
            let n = sqlx::query(
                "INSERT INTO mfa_totp (user_id, tenant_id, sealed_secret, created_at, \
                 confirmed_at, last_step) SELECT id, tenant_id, $3, $4, NULL, 0 FROM users \
                 WHERE id = $1 AND tenant_id = $2",
            )
            .bind(user.to_string())
            .bind(ctx.tenant.to_string())
            .bind(sealed_secret)
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

    async fn confirm_totp(
        &self,
        ctx: TenantCtx,
        user: UserId,
        step: i64,
        code_hashes: &[String],
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE mfa_totp SET confirmed_at = $3, last_step = $4 WHERE tenant_id = $1 \
                 AND user_id = $2 AND confirmed_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(at.0)
            .bind(step)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM mfa_recovery_codes WHERE tenant_id = $1 AND user_id = $2")
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .execute(&mut *tx)
                .await
                .db()?;
            for h in code_hashes {
                sqlx::query(
                    "INSERT INTO mfa_recovery_codes (tenant_id, user_id, code_hash, used_at) \
                     VALUES ($1, $2, $3, NULL)",
                )
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .bind(h)
                .execute(&mut *tx)
                .await
                .db()?;
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn use_totp_step(&self, ctx: TenantCtx, user: UserId, step: i64) -> StoreResult<bool> {
        with_pool!(self, |pool| {
            Ok(sqlx::query(
                "UPDATE mfa_totp SET last_step = $3 WHERE tenant_id = $1 AND user_id = $2 \
                 AND confirmed_at IS NOT NULL AND last_step < $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(step)
            .execute(pool)
            .await
            .db()?
            .rows_affected()
                == 1)
        })
    }

    async fn use_recovery_code(
        &self,
        ctx: TenantCtx,
        user: UserId,
        hash: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        with_pool!(self, |pool| {
            Ok(sqlx::query(
                "UPDATE mfa_recovery_codes SET used_at = $4 WHERE tenant_id = $1 \
                 AND user_id = $2 AND code_hash = $3 AND used_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(hash)
            .bind(at.0)
            .execute(pool)
            .await
            .db()?
            .rows_affected()
                == 1)
        })
    }

    async fn recovery_codes_left(&self, ctx: TenantCtx, user: UserId) -> StoreResult<u32> {
        with_pool!(self, |pool| {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM mfa_recovery_codes WHERE tenant_id = $1 \
                 AND user_id = $2 AND used_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .fetch_one(pool)
            .await
            .db()?
            .try_get("n")
            .db()?;
            Ok(u32::try_from(n).unwrap_or(0))
        })
    }

    async fn remove_totp(
        &self,
        ctx: TenantCtx,
        user: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query("DELETE FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2")
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM mfa_recovery_codes WHERE tenant_id = $1 AND user_id = $2")
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .execute(&mut *tx)
                .await
                .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }
}
