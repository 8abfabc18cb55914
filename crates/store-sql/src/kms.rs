//! `KmsStore` over SQL: the root's description, tenant KEKs, keys and their versions.

use async_trait::async_trait;
use parapet_store::{
    AuditEvent, KeyPolicy, KmsKey, KmsKeyVersion, KmsRoot, KmsStore, LocalSecret, StoreError,
    StoreResult,
};
use parapet_types::{TenantCtx, TenantId, Timestamp};
use sqlx::Row;
use uuid::Uuid;

use crate::audit::insert_audit;
use crate::iam::bad;
use crate::rows::uuid;
use crate::{DbResult, SqlStore, with_pool, with_tx};

macro_rules! key_cols {
    () => {
        "id, tenant_id, name, key_type, state, latest_version, min_decryption_version, \
         rotation_period_secs, next_rotation_at, exportable, policy, created_at, updated_at, \
         deletion_due_at, deletion_requested_by, destroyed_at, receipt, origin"
    };
}

macro_rules! key_row {
    ($row:expr) => {{
        let row = $row;
        let id: String = row.try_get("id").db()?;
        let tenant: String = row.try_get("tenant_id").db()?;
        let policy: String = row.try_get("policy").db()?;
        let exportable: i64 = row.try_get("exportable").db()?;
        let next: Option<i64> = row.try_get("next_rotation_at").db()?;
        let due: Option<i64> = row.try_get("deletion_due_at").db()?;
        let destroyed: Option<i64> = row.try_get("destroyed_at").db()?;
        KmsKey {
            id: uuid("key id", &id)?,
            tenant: TenantId(uuid("tenant id", &tenant)?),
            name: row.try_get("name").db()?,
            key_type: row.try_get("key_type").db()?,
            state: row.try_get("state").db()?,
            latest_version: row.try_get("latest_version").db()?,
            min_decryption_version: row.try_get("min_decryption_version").db()?,
            rotation_period_secs: row.try_get("rotation_period_secs").db()?,
            next_rotation_at: next.map(Timestamp),
            exportable: exportable != 0,
            policy: serde_json::from_str::<KeyPolicy>(&policy)
                .map_err(|_| bad("key policy", &policy))?,
            created_at: Timestamp(row.try_get("created_at").db()?),
            updated_at: Timestamp(row.try_get("updated_at").db()?),
            deletion_due_at: due.map(Timestamp),
            deletion_requested_by: row.try_get("deletion_requested_by").db()?,
            destroyed_at: destroyed.map(Timestamp),
            receipt: row.try_get("receipt").db()?,
            origin: row.try_get("origin").db()?,
        }
    }};
}

macro_rules! version_row {
    ($row:expr) => {{
        let row = $row;
        let id: String = row.try_get("key_id").db()?;
        KmsKeyVersion {
            key: uuid("key id", &id)?,
            version: row.try_get("version").db()?,
            material: row.try_get("material").db()?,
            public_key: row.try_get("public_key").db()?,
            created_at: Timestamp(row.try_get("created_at").db()?),
        }
    }};
}

fn policy_json(p: &KeyPolicy) -> StoreResult<String> {
    serde_json::to_string(p).map_err(|e| StoreError::Other(format!("key policy: {e}")))
}

fn name_taken(e: StoreError, name: &str) -> StoreError {
    match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "a key named {name:?} already exists in this tenant"
        )),
        e => e,
    }
}

/// Binds the mutable fields of `$k` after `$q` (parameters in `UPDATE_KEY` order).
macro_rules! update_key {
    ($exec:expr, $ctx:expr, $k:expr) => {{
        let k: &KmsKey = $k;
        sqlx::query(
            "UPDATE kms_keys SET state = $3, latest_version = $4, min_decryption_version = $5, \
             rotation_period_secs = $6, next_rotation_at = $7, policy = $8, updated_at = $9, \
             deletion_due_at = $10, deletion_requested_by = $11, destroyed_at = $12, \
             receipt = $13 WHERE tenant_id = $1 AND id = $2",
        )
        .bind($ctx.tenant.to_string())
        .bind(k.id.to_string())
        .bind(&k.state)
        .bind(k.latest_version)
        .bind(k.min_decryption_version)
        .bind(k.rotation_period_secs)
        .bind(k.next_rotation_at.map(|t| t.0))
        .bind(policy_json(&k.policy)?)
        .bind(k.updated_at.0)
        .bind(k.deletion_due_at.map(|t| t.0))
        .bind(k.deletion_requested_by.clone())
        .bind(k.destroyed_at.map(|t| t.0))
        .bind(k.receipt.clone())
        .execute($exec)
        .await
        .db()?
        .rows_affected()
    }};
}

/// Inserts the key version `$v` of tenant `$ctx` on the executor `$exec`.
macro_rules! insert_version {
    ($exec:expr, $ctx:expr, $v:expr) => {{
        let v: &KmsKeyVersion = $v;
        sqlx::query(
            "INSERT INTO kms_key_versions (key_id, tenant_id, version, material, public_key, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(v.key.to_string())
        .bind($ctx.tenant.to_string())
        .bind(v.version)
        .bind(v.material.clone())
        .bind(v.public_key.clone())
        .bind(v.created_at.0)
        .execute($exec)
        .await
        .db()?;
    }};
}

/// Inserts the key `$k` of tenant `$ctx` on the executor `$exec`.
macro_rules! insert_key {
    ($exec:expr, $ctx:expr, $k:expr) => {{
        let key: &KmsKey = $k;
        sqlx::query(concat!(
            "INSERT INTO kms_keys (",
            key_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, $17, $18)"
        ))
        .bind(key.id.to_string())
        .bind($ctx.tenant.to_string())
        .bind(&key.name)
        .bind(&key.key_type)
        .bind(&key.state)
        .bind(key.latest_version)
        .bind(key.min_decryption_version)
        .bind(key.rotation_period_secs)
        .bind(key.next_rotation_at.map(|t| t.0))
        .bind(i64::from(key.exportable))
        .bind(policy_json(&key.policy)?)
        .bind(key.created_at.0)
        .bind(key.updated_at.0)
        .bind(key.deletion_due_at.map(|t| t.0))
        .bind(key.deletion_requested_by.clone())
        .bind(key.destroyed_at.map(|t| t.0))
        .bind(key.receipt.clone())
        .bind(&key.origin)
        .execute($exec)
        .await
        .db()
        .map_err(|e| name_taken(e, &key.name))?;
    }};
}

#[async_trait]
impl KmsStore for SqlStore {
    async fn platform_local_secrets(
        &self,
        ctx: TenantCtx,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<LocalSecret>> {
        let rows: Vec<(String, String, String)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT m.tenant_id, m.user_id, m.sealed_secret FROM mfa_totp m \
                 WHERE EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 AND p.kind = 'provider') \
                 AND m.sealed_secret NOT LIKE 'kms:%' AND m.user_id > $2 \
                 ORDER BY m.user_id LIMIT $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(pool)
            .await
            .db()?
        });
        rows.into_iter()
            .map(|(t, u, sealed)| {
                Ok(LocalSecret {
                    tenant: TenantId(uuid("tenant id", &t)?),
                    user: parapet_types::UserId(uuid("user id", &u)?),
                    sealed,
                })
            })
            .collect()
    }

    async fn platform_reseal_secret(
        &self,
        ctx: TenantCtx,
        user: parapet_types::UserId,
        old: &str,
        new: &str,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let changed = with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE mfa_totp SET sealed_secret = $4 WHERE tenant_id = $1 AND user_id = $2 \
                 AND sealed_secret = $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
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

    async fn kms_root(&self, ctx: TenantCtx) -> StoreResult<Option<KmsRoot>> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT mode, shares, threshold, check_blob, created_at FROM kms_root \
                 WHERE provider_id = $1",
            )
            .bind(ctx.tenant.to_string())
            .fetch_optional(pool)
            .await
            .db()?;
            match row {
                None => Ok(None),
                Some(r) => {
                    let shares: i64 = r.try_get("shares").db()?;
                    let threshold: i64 = r.try_get("threshold").db()?;
                    Ok(Some(KmsRoot {
                        mode: r.try_get("mode").db()?,
                        shares: u8::try_from(shares)
                            .map_err(|_| bad("share count", &shares.to_string()))?,
                        threshold: u8::try_from(threshold)
                            .map_err(|_| bad("threshold", &threshold.to_string()))?,
                        check: r.try_get("check_blob").db()?,
                        created_at: Timestamp(r.try_get("created_at").db()?),
                    }))
                }
            }
        })
    }

    async fn kms_init_root(
        &self,
        ctx: TenantCtx,
        root: &KmsRoot,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO kms_root (provider_id, mode, shares, threshold, check_blob, \
                 created_at) SELECT id, $2, $3, $4, $5, $6 FROM tenants \
                 WHERE id = $1 AND kind = 'provider'",
            )
            .bind(ctx.tenant.to_string())
            .bind(&root.mode)
            .bind(i64::from(root.shares))
            .bind(i64::from(root.threshold))
            .bind(&root.check)
            .bind(root.created_at.0)
            .execute(&mut *tx)
            .await
            .db()
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    StoreError::Conflict("the key service is already initialized".into())
                }
                e => e,
            })?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn kms_tenant_kek(&self, ctx: TenantCtx) -> StoreResult<Option<Vec<u8>>> {
        with_pool!(self, |pool| {
            let row = sqlx::query("SELECT wrapped FROM kms_tenant_keks WHERE tenant_id = $1")
                .bind(ctx.tenant.to_string())
                .fetch_optional(pool)
                .await
                .db()?;
            match row {
                Some(r) => Ok(Some(r.try_get("wrapped").db()?)),
                None => Ok(None),
            }
        })
    }

    async fn kms_put_tenant_kek(
        &self,
        ctx: TenantCtx,
        wrapped: &[u8],
        at: Timestamp,
    ) -> StoreResult<Vec<u8>> {
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO kms_tenant_keks (tenant_id, wrapped, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id) DO NOTHING",
            )
            .bind(ctx.tenant.to_string())
            .bind(wrapped)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            let r = sqlx::query("SELECT wrapped FROM kms_tenant_keks WHERE tenant_id = $1")
                .bind(ctx.tenant.to_string())
                .fetch_one(&mut *tx)
                .await
                .db()?;
            let stored: Vec<u8> = r.try_get("wrapped").db()?;
            Ok::<_, StoreError>(stored)
        })
    }

    async fn kms_create_key(
        &self,
        ctx: TenantCtx,
        key: &KmsKey,
        first: &KmsKeyVersion,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if key.tenant != ctx.tenant {
            return Err(StoreError::Other("key of another tenant".into()));
        }
        with_tx!(self, |tx| {
            insert_key!(&mut *tx, ctx, key);
            insert_version!(&mut *tx, ctx, first);
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn kms_get_key(&self, ctx: TenantCtx, id_or_name: &str) -> StoreResult<KmsKey> {
        with_pool!(self, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                key_cols!(),
                " FROM kms_keys WHERE tenant_id = $1 AND (id = $2 OR name = $2)"
            ))
            .bind(ctx.tenant.to_string())
            .bind(id_or_name)
            .fetch_optional(pool)
            .await
            .db()?
            .ok_or(StoreError::NotFound)?;
            Ok(key_row!(&row))
        })
    }

    async fn kms_list_keys(&self, ctx: TenantCtx) -> StoreResult<Vec<KmsKey>> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                key_cols!(),
                " FROM kms_keys WHERE tenant_id = $1 ORDER BY name LIMIT 10000"
            ))
            .bind(ctx.tenant.to_string())
            .fetch_all(pool)
            .await
            .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(key_row!(r));
            }
            Ok(out)
        })
    }

    async fn kms_key_version(
        &self,
        ctx: TenantCtx,
        key: Uuid,
        version: i64,
    ) -> StoreResult<KmsKeyVersion> {
        with_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT key_id, version, material, public_key, created_at FROM kms_key_versions \
                 WHERE tenant_id = $1 AND key_id = $2 AND version = $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(key.to_string())
            .bind(version)
            .fetch_optional(pool)
            .await
            .db()?
            .ok_or(StoreError::NotFound)?;
            Ok(version_row!(&row))
        })
    }

    async fn kms_key_versions(&self, ctx: TenantCtx, key: Uuid) -> StoreResult<Vec<KmsKeyVersion>> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT key_id, version, material, public_key, created_at FROM kms_key_versions \
                 WHERE tenant_id = $1 AND key_id = $2 ORDER BY version",
            )
            .bind(ctx.tenant.to_string())
            .bind(key.to_string())
            .fetch_all(pool)
            .await
            .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(version_row!(r));
            }
            Ok(out)
        })
    }

    async fn kms_add_version(
        &self,
        ctx: TenantCtx,
        key: &KmsKey,
        v: &KmsKeyVersion,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            // Only from the version the caller saw: two concurrent rotations cannot both win.
            let n = sqlx::query(
                "UPDATE kms_keys SET latest_version = $3, updated_at = $4, next_rotation_at = $5 \
                 WHERE tenant_id = $1 AND id = $2 AND latest_version = $6 AND state = 'enabled'",
            )
            .bind(ctx.tenant.to_string())
            .bind(key.id.to_string())
            .bind(v.version)
            .bind(key.updated_at.0)
            .bind(key.next_rotation_at.map(|t| t.0))
            .bind(v.version - 1)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::Conflict(
                    "the key changed meanwhile (rotated, disabled or deleted); try again".into(),
                ));
            }
            insert_version!(&mut *tx, ctx, v);
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn kms_update_key(
        &self,
        ctx: TenantCtx,
        key: &KmsKey,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = update_key!(&mut *tx, ctx, key);
            if n != 1 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn kms_destroy_key(
        &self,
        ctx: TenantCtx,
        key: &KmsKey,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = update_key!(&mut *tx, ctx, key);
            if n != 1 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "UPDATE kms_key_versions SET material = NULL WHERE tenant_id = $1 AND key_id = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(key.id.to_string())
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn kms_import_keys(
        &self,
        ctx: TenantCtx,
        keys: &[(KmsKey, Vec<KmsKeyVersion>)],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if keys
            .iter()
            .any(|(k, vs)| k.tenant != ctx.tenant || vs.iter().any(|v| v.key != k.id))
        {
            return Err(StoreError::Other("key of another tenant".into()));
        }
        with_tx!(self, |tx| {
            for (key, versions) in keys {
                insert_key!(&mut *tx, ctx, key);
                for v in versions {
                    insert_version!(&mut *tx, ctx, v);
                }
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn kms_due_deletions(&self, ctx: TenantCtx, now: Timestamp) -> StoreResult<Vec<KmsKey>> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                key_cols!(),
                " FROM kms_keys WHERE state = 'pending-deletion' AND deletion_due_at <= $2 \
                 AND EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 AND p.kind = 'provider') \
                 ORDER BY deletion_due_at LIMIT 1000"
            ))
            .bind(ctx.tenant.to_string())
            .bind(now.0)
            .fetch_all(pool)
            .await
            .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(key_row!(r));
            }
            Ok(out)
        })
    }

    async fn kms_changed_keys(
        &self,
        ctx: TenantCtx,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(TenantId, Uuid)>> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT tenant_id, id FROM kms_keys WHERE updated_at >= $2 \
                 AND EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 AND p.kind = 'provider') \
                 LIMIT $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(since.0)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let t: String = r.try_get("tenant_id").db()?;
                let k: String = r.try_get("id").db()?;
                out.push((TenantId(uuid("tenant id", &t)?), uuid("key id", &k)?));
            }
            Ok(out)
        })
    }
}
