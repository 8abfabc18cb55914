//! `AccountStore` over SQL: account policies, lockout counters, throttling windows, password
//! history and dormancy.

use async_trait::async_trait;
use parapet_store::{
    AccountPolicy, AccountRow, AccountState, AccountStore, Attempt, AuditEvent, Factor, Lock,
    StoreError, StoreResult, User, UserStatus,
};
use parapet_types::{TenantCtx, Timestamp, UserId};
use sqlx::Row;

use crate::audit::insert_audit;
use crate::iam::user_row;
use crate::rows::UserRow;
use crate::{DbResult, SqlStore, with_pool, with_tx};

const USER_COLS_U: &str = "u.id, u.tenant_id, u.username, u.role, u.status, u.password_hash, \
    u.created_at, u.last_login_at";

const STATE_COLS_S: &str = "s.failures, s.mfa_failures, s.lockouts, s.locked_until, \
    s.locked_permanently_at, s.password_changed_at, s.dormant_disabled_at, s.enabled_at";

/// Makes sure `account_state` has a row for user `$3` of tenant `$2`.
macro_rules! ensure_state {
    ($exec:expr, $ctx:expr, $user:expr) => {
        sqlx::query(
            "INSERT INTO account_state (user_id, tenant_id) SELECT id, tenant_id FROM users \
             WHERE id = $1 AND tenant_id = $2 ON CONFLICT (user_id) DO NOTHING",
        )
        .bind($user.to_string())
        .bind($ctx.tenant.to_string())
        .execute($exec)
        .await
        .db()?
    };
}
pub(crate) use ensure_state;

fn count(v: Option<i64>) -> u32 {
    u32::try_from(v.unwrap_or(0).max(0)).unwrap_or(u32::MAX)
}

/// Decodes the state columns (all NULL when the account has no state row yet).
macro_rules! state_row {
    ($row:expr) => {{
        let r = $row;
        AccountState {
            failures: count(r.try_get::<Option<i64>, _>("failures").db()?),
            mfa_failures: count(r.try_get::<Option<i64>, _>("mfa_failures").db()?),
            lockouts: count(r.try_get::<Option<i64>, _>("lockouts").db()?),
            locked_until: r
                .try_get::<Option<i64>, _>("locked_until")
                .db()?
                .map(Timestamp),
            locked_permanently_at: r
                .try_get::<Option<i64>, _>("locked_permanently_at")
                .db()?
                .map(Timestamp),
            password_changed_at: r
                .try_get::<Option<i64>, _>("password_changed_at")
                .db()?
                .map(Timestamp),
            dormant_disabled_at: r
                .try_get::<Option<i64>, _>("dormant_disabled_at")
                .db()?
                .map(Timestamp),
            enabled_at: r
                .try_get::<Option<i64>, _>("enabled_at")
                .db()?
                .map(Timestamp),
        }
    }};
}

fn counter(f: Factor) -> &'static str {
    match f {
        Factor::Password => "failures",
        Factor::SecondFactor => "mfa_failures",
    }
}

impl SqlStore {
    async fn users_where(
        &self,
        ctx: TenantCtx,
        cond: &str,
        at: Timestamp,
    ) -> StoreResult<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLS_U} FROM users u LEFT JOIN account_state s ON s.user_id = u.id \
             WHERE u.tenant_id = $1 AND {cond} ORDER BY u.username LIMIT 10000"
        );
        with_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(at.0)
                .fetch_all(pool)
                .await
                .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(user_row!(r, ""));
            }
            Ok(out)
        })
    }
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn get_account_policy(&self, ctx: TenantCtx) -> StoreResult<Option<AccountPolicy>> {
        with_pool!(self, |pool| {
            let row = sqlx::query("SELECT policy FROM account_policies WHERE tenant_id = $1")
                .bind(ctx.tenant.to_string())
                .fetch_optional(pool)
                .await
                .db()?;
            match row {
                None => Ok(None),
                Some(r) => {
                    let text: String = r.try_get("policy").db()?;
                    serde_json::from_str(&text)
                        .map(Some)
                        .map_err(|e| StoreError::Other(format!("corrupt account policy: {e}")))
                }
            }
        })
    }

    async fn set_account_policy(
        &self,
        ctx: TenantCtx,
        policy: &AccountPolicy,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let text = serde_json::to_string(policy)
            .map_err(|e| StoreError::Other(format!("cannot encode the policy: {e}")))?;
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO account_policies (tenant_id, policy, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET policy = excluded.policy, \
                 updated_at = excluded.updated_at",
            )
            .bind(ctx.tenant.to_string())
            .bind(&text)
            .bind(audit.time.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn get_account_state(&self, ctx: TenantCtx, user: UserId) -> StoreResult<AccountState> {
        let sql = format!(
            "SELECT {STATE_COLS_S} FROM users u LEFT JOIN account_state s ON s.user_id = u.id \
             WHERE u.tenant_id = $1 AND u.id = $2"
        );
        with_pool!(self, |pool| {
            let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .fetch_optional(pool)
                .await
                .db()?
                .ok_or(StoreError::NotFound)?;
            Ok(state_row!(&r))
        })
    }

    async fn list_accounts(&self, ctx: TenantCtx) -> StoreResult<Vec<AccountRow>> {
        let sql = format!(
            "SELECT {USER_COLS_U}, {STATE_COLS_S} FROM users u \
             LEFT JOIN account_state s ON s.user_id = u.id \
             WHERE u.tenant_id = $1 ORDER BY u.username LIMIT 10000"
        );
        with_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .fetch_all(pool)
                .await
                .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(AccountRow {
                    user: user_row!(r, ""),
                    state: state_row!(r),
                });
            }
            Ok(out)
        })
    }

    async fn reserve_attempt(
        &self,
        ctx: TenantCtx,
        user: UserId,
        factor: Factor,
        threshold: u32,
        now: Timestamp,
    ) -> StoreResult<Attempt> {
        let col = counter(factor);
        let sql = format!(
            "UPDATE account_state SET {col} = {col} + 1 WHERE user_id = $1 AND tenant_id = $2 \
             AND {col} < $3 AND locked_permanently_at IS NULL \
             AND (locked_until IS NULL OR locked_until <= $4) RETURNING {col} AS n, lockouts"
        );
        let attempt = with_tx!(self, |tx| {
            ensure_state!(&mut *tx, ctx, user);
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(user.to_string())
                .bind(ctx.tenant.to_string())
                .bind(i64::from(threshold))
                .bind(now.0)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
            match row {
                None => Attempt::Refused,
                Some(r) => Attempt::Allowed {
                    failures: count(r.try_get::<Option<i64>, _>("n").db()?),
                    lockouts: count(r.try_get::<Option<i64>, _>("lockouts").db()?),
                },
            }
        });
        Ok(attempt)
    }

    async fn lock_account(
        &self,
        ctx: TenantCtx,
        user: UserId,
        factor: Factor,
        lock: Lock,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let col = counter(factor);
        let (until, permanent) = match lock {
            Lock::Until(t) => (Some(t.0), None),
            Lock::Permanent(t) => (None, Some(t.0)),
        };
        let sql = format!(
            "UPDATE account_state SET {col} = 0, lockouts = lockouts + 1, locked_until = $3, \
             locked_permanently_at = COALESCE(locked_permanently_at, $4) \
             WHERE user_id = $1 AND tenant_id = $2"
        );
        with_tx!(self, |tx| {
            ensure_state!(&mut *tx, ctx, user);
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(user.to_string())
                .bind(ctx.tenant.to_string())
                .bind(until)
                .bind(permanent)
                .execute(&mut *tx)
                .await
                .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn clear_failures(
        &self,
        ctx: TenantCtx,
        user: UserId,
        factor: Factor,
        all: bool,
    ) -> StoreResult<()> {
        let col = counter(factor);
        let sql = if all {
            format!(
                "UPDATE account_state SET {col} = 0, lockouts = 0, locked_until = NULL \
                 WHERE user_id = $1 AND tenant_id = $2"
            )
        } else {
            format!("UPDATE account_state SET {col} = 0 WHERE user_id = $1 AND tenant_id = $2")
        };
        with_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(user.to_string())
                .bind(ctx.tenant.to_string())
                .execute(pool)
                .await
                .db()?;
        });
        Ok(())
    }

    async fn unlock_account(
        &self,
        ctx: TenantCtx,
        user: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            ensure_state!(&mut *tx, ctx, user);
            let n = sqlx::query(
                "UPDATE account_state SET failures = 0, mfa_failures = 0, lockouts = 0, \
                 locked_until = NULL, locked_permanently_at = NULL \
                 WHERE user_id = $1 AND tenant_id = $2",
            )
            .bind(user.to_string())
            .bind(ctx.tenant.to_string())
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

    async fn throttle_hit(
        &self,
        ctx: TenantCtx,
        key: &str,
        window_start: Timestamp,
    ) -> StoreResult<u32> {
        const SQL: &str = "INSERT INTO login_throttle (tenant_id, scope_key, window_start, hits) \
            VALUES ($1, $2, $3, 1) ON CONFLICT (tenant_id, scope_key) DO UPDATE SET \
            hits = CASE WHEN login_throttle.window_start = excluded.window_start \
            THEN login_throttle.hits + 1 ELSE 1 END, window_start = excluded.window_start \
            RETURNING hits";
        let hits: i64 = with_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(ctx.tenant.to_string())
                .bind(key)
                .bind(window_start.0)
                .fetch_one(pool)
                .await
                .db()?
                .try_get("hits")
                .db()?
        });
        Ok(count(Some(hits)))
    }

    async fn throttle_release(
        &self,
        ctx: TenantCtx,
        key: &str,
        window_start: Timestamp,
    ) -> StoreResult<()> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE login_throttle SET hits = hits - 1 WHERE tenant_id = $1 \
                 AND scope_key = $2 AND window_start = $3 AND hits > 0",
            )
            .bind(ctx.tenant.to_string())
            .bind(key)
            .bind(window_start.0)
            .execute(pool)
            .await
            .db()?;
        });
        Ok(())
    }

    async fn prune_throttle(&self, ctx: TenantCtx, before: Timestamp) -> StoreResult<u64> {
        with_pool!(self, |pool| {
            Ok(
                sqlx::query(
                    "DELETE FROM login_throttle WHERE tenant_id = $1 AND window_start < $2",
                )
                .bind(ctx.tenant.to_string())
                .bind(before.0)
                .execute(pool)
                .await
                .db()?
                .rows_affected(),
            )
        })
    }

    async fn password_history(
        &self,
        ctx: TenantCtx,
        user: UserId,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT password_hash FROM password_history WHERE tenant_id = $1 AND user_id = $2 \
                 ORDER BY replaced_at DESC LIMIT $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(r.try_get("password_hash").db()?);
            }
            Ok(out)
        })
    }

    async fn set_password(
        &self,
        ctx: TenantCtx,
        user: UserId,
        new_hash: &str,
        keep: u32,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let old: String =
                sqlx::query("SELECT password_hash FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(ctx.tenant.to_string())
                    .bind(user.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?
                    .ok_or(StoreError::NotFound)?
                    .try_get("password_hash")
                    .db()?;
            sqlx::query("UPDATE users SET password_hash = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .bind(new_hash)
                .execute(&mut *tx)
                .await
                .db()?;
            sqlx::query(
                "INSERT INTO password_history (tenant_id, user_id, password_hash, replaced_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(&old)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            sqlx::query(
                "DELETE FROM password_history WHERE tenant_id = $1 AND user_id = $2 \
                 AND password_hash NOT IN (SELECT password_hash FROM password_history \
                 WHERE tenant_id = $1 AND user_id = $2 ORDER BY replaced_at DESC LIMIT $3)",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(i64::from(keep))
            .execute(&mut *tx)
            .await
            .db()?;
            ensure_state!(&mut *tx, ctx, user);
            sqlx::query(
                "UPDATE account_state SET password_changed_at = $3 \
                 WHERE user_id = $1 AND tenant_id = $2",
            )
            .bind(user.to_string())
            .bind(ctx.tenant.to_string())
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn dormant_users(&self, ctx: TenantCtx, cutoff: Timestamp) -> StoreResult<Vec<User>> {
        self.users_where(
            ctx,
            "u.status = 'active' AND COALESCE(u.last_login_at, u.created_at) < $2 \
             AND (s.enabled_at IS NULL OR s.enabled_at < $2)",
            cutoff,
        )
        .await
    }

    async fn disable_dormant(
        &self,
        ctx: TenantCtx,
        user: UserId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE users SET status = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'active'",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(UserStatus::Disabled.as_str())
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "UPDATE credentials SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 \
                 AND revoked_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            ensure_state!(&mut *tx, ctx, user);
            sqlx::query(
                "UPDATE account_state SET dormant_disabled_at = $3 \
                 WHERE user_id = $1 AND tenant_id = $2",
            )
            .bind(user.to_string())
            .bind(ctx.tenant.to_string())
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn expired_dormant(&self, ctx: TenantCtx, cutoff: Timestamp) -> StoreResult<Vec<User>> {
        self.users_where(
            ctx,
            "u.status = 'disabled' AND s.dormant_disabled_at IS NOT NULL \
             AND s.dormant_disabled_at < $2",
            cutoff,
        )
        .await
    }

    async fn delete_user(
        &self,
        ctx: TenantCtx,
        user: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let t = ctx.tenant.to_string();
        let u = user.to_string();
        with_tx!(self, |tx| {
            for sql in [
                "DELETE FROM credential_activity WHERE tenant_id = $1 AND credential_id IN \
                 (SELECT id FROM credentials WHERE tenant_id = $1 AND user_id = $2)",
                "DELETE FROM credentials WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM password_history WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM account_state WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM mfa_recovery_codes WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM webauthn_credentials WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM webauthn_challenges WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM user_group_members WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM sub_accounts WHERE tenant_id = $1 AND (user_id = $2 OR parent_id = $2)",
            ] {
                sqlx::query(sql)
                    .bind(&t)
                    .bind(&u)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
            let n = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(&t)
                .bind(&u)
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
}
