//! `SubAccountStore` over SQL: the link from a sub-account to its main account.

use async_trait::async_trait;
use parapet_store::{AuditEvent, StoreResult, SubAccountStore, User};
use parapet_types::{TenantCtx, UserId};

use crate::audit::insert_audit;
use crate::iam::{conflict, insert_user, same_tenant};
use crate::rows::{Bind, USER_COLS, UserRow};
use crate::{DbResult, SqlStore, with_tx};

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
