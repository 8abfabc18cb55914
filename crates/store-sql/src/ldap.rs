//! `LdapStore` over SQL: one directory per tenant, settings as JSON, the bind password sealed.

use async_trait::async_trait;
use parapet_store::{AuditEvent, LdapDirectory, LdapSettings, LdapStore, StoreError, StoreResult};
use parapet_types::{TenantCtx, TenantId, Timestamp};

use crate::audit::insert_audit;
use crate::rows::uuid;
use crate::{DbResult, SqlStore, with_pool, with_tx};

fn directory(
    tenant: &str,
    settings: &str,
    sealed: String,
    updated_at: i64,
) -> StoreResult<LdapDirectory> {
    let settings: LdapSettings = serde_json::from_str(settings)
        .map_err(|e| StoreError::Other(format!("corrupt directory settings: {e}")))?;
    Ok(LdapDirectory {
        tenant: TenantId(uuid("tenant id", tenant)?),
        settings,
        sealed_bind_password: sealed,
        updated_at: Timestamp(updated_at),
    })
}

#[async_trait]
impl LdapStore for SqlStore {
    async fn get_ldap(&self, ctx: TenantCtx) -> StoreResult<Option<LdapDirectory>> {
        let row: Option<(String, String, String, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT tenant_id, settings, sealed_bind_password, updated_at \
                 FROM ldap_directories WHERE tenant_id = $1",
            )
            .bind(ctx.tenant.to_string())
            .fetch_optional(pool)
            .await
            .db()?
        });
        row.map(|(t, s, p, u)| directory(&t, &s, p, u)).transpose()
    }

    async fn put_ldap(
        &self,
        ctx: TenantCtx,
        dir: &LdapDirectory,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let text = serde_json::to_string(&dir.settings)
            .map_err(|e| StoreError::Other(format!("cannot encode the directory: {e}")))?;
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO ldap_directories (tenant_id, settings, sealed_bind_password, \
                 updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET \
                 settings = excluded.settings, sealed_bind_password = \
                 excluded.sealed_bind_password, updated_at = excluded.updated_at",
            )
            .bind(ctx.tenant.to_string())
            .bind(&text)
            .bind(&dir.sealed_bind_password)
            .bind(dir.updated_at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn delete_ldap(&self, ctx: TenantCtx, audit: &AuditEvent) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query("DELETE FROM ldap_directories WHERE tenant_id = $1")
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

    async fn ldap_local_secrets(&self, ctx: TenantCtx) -> StoreResult<Vec<LdapDirectory>> {
        let rows: Vec<(String, String, String, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT d.tenant_id, d.settings, d.sealed_bind_password, d.updated_at \
                 FROM ldap_directories d WHERE EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 \
                 AND p.kind = 'provider') AND d.sealed_bind_password NOT LIKE 'kms:%' \
                 ORDER BY d.tenant_id",
            )
            .bind(ctx.tenant.to_string())
            .fetch_all(pool)
            .await
            .db()?
        });
        rows.into_iter()
            .map(|(t, s, p, u)| directory(&t, &s, p, u))
            .collect()
    }

    async fn ldap_reseal(
        &self,
        ctx: TenantCtx,
        old: &str,
        new: &str,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let changed = with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE ldap_directories SET sealed_bind_password = $3 WHERE tenant_id = $1 \
                 AND sealed_bind_password = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(old)
            .bind(new)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n == 1 {
                insert_audit!(&mut *tx, audit);
            }
            n == 1
        });
        Ok(changed)
    }
}
