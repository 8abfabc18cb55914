//! `SubAccountStore` over SQL: the link from a sub-account to its main account.

use async_trait::async_trait;
use parapet_store::{AuditEvent, StoreResult, SubAccountStore, User};
use parapet_types::{TenantCtx, UserId};

use crate::audit::insert_audit;
use crate::iam::{conflict, insert_user, same_tenant};
use crate::rows::{Bind, USER_COLS, UserRow};
use crate::{DbResult, SqlStore, with_tx};

/// Applies [`parapet_store::SubAccountChange`]s inside a transaction: each sub-account (it must
/// be one) gets its lower role or is disabled, its sessions and tokens revoked (they carry the
/// old privileges), with its audit record.
macro_rules! apply_sub_changes {
    ($tx:expr, $ctx:expr, $subs:expr) => {{
        for c in $subs {
            let sql = match c.role {
                Some(_) => {
                    "UPDATE users SET role = $3 WHERE tenant_id = $1 AND id = $2 AND id IN \
                     (SELECT user_id FROM sub_accounts WHERE tenant_id = $1)"
                }
                None => {
                    "UPDATE users SET status = $3 WHERE tenant_id = $1 AND id = $2 AND id IN \
                     (SELECT user_id FROM sub_accounts WHERE tenant_id = $1)"
                }
            };
            let value = match c.role {
                Some(r) => r.as_str(),
                None => parapet_store::UserStatus::Disabled.as_str(),
            };
            let n = sqlx::query(sql)
                .bind($ctx.tenant.to_string())
                .bind(c.user.to_string())
                .bind(value)
                .execute(&mut *$tx)
                .await
                .db()?
                .rows_affected();
            if n == 0 {
                return Err(parapet_store::StoreError::NotFound);
            }
            sqlx::query(
                "UPDATE credentials SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 \
                 AND revoked_at IS NULL",
            )
            .bind($ctx.tenant.to_string())
            .bind(c.user.to_string())
            .bind(c.audit.time.0)
            .execute(&mut *$tx)
            .await
            .db()?;
            crate::audit::insert_audit!(&mut *$tx, &c.audit);
        }
    }};
}
pub(crate) use apply_sub_changes;

#[async_trait]
impl SubAccountStore for SqlStore {
    async fn create_sub_account(
        &self,
        ctx: TenantCtx,
        user: &User,
        parent: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        same_tenant(ctx, user.tenant)?;
        with_tx!(self, |tx| {
            insert_user!(&mut *tx, user);
            let n = sqlx::query(
                "INSERT INTO sub_accounts (user_id, tenant_id, parent_id) \
                 SELECT $1, tenant_id, id FROM users WHERE tenant_id = $2 AND id = $3",
            )
            .bind(user.id.to_string())
            .bind(ctx.tenant.to_string())
            .bind(parent.to_string())
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n != 1 {
                return Err(parapet_store::StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn parent_of(&self, ctx: TenantCtx, user: UserId) -> StoreResult<Option<User>> {
        const SQL: &str = "SELECT id, tenant_id, username, role, status, password_hash, created_at, \
            last_login_at FROM users WHERE tenant_id = $1 AND id IN \
            (SELECT parent_id FROM sub_accounts WHERE tenant_id = $1 AND user_id = $2)";
        Ok(self
            .records::<UserRow, User>(
                SQL,
                USER_COLS,
                "id",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(user.to_string()),
                ],
            )
            .await?
            .into_iter()
            .next())
    }

    async fn sub_accounts_of(&self, ctx: TenantCtx, parent: UserId) -> StoreResult<Vec<User>> {
        const SQL: &str = "SELECT id, tenant_id, username, role, status, password_hash, created_at, \
            last_login_at FROM users WHERE tenant_id = $1 AND id IN \
            (SELECT user_id FROM sub_accounts WHERE tenant_id = $1 AND parent_id = $2)";
        self.records::<UserRow, User>(
            SQL,
            USER_COLS,
            "id",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::Text(parent.to_string()),
            ],
        )
        .await
    }
}
