//! `WebAuthnStore` over SQL: registered public-key credentials and single-use challenges.

use async_trait::async_trait;
use parapet_store::{
    AuditEvent, StoreError, StoreResult, WebAuthnChallenge, WebAuthnCredential, WebAuthnStore,
};
use parapet_types::{TenantCtx, TenantId, Timestamp, UserId};
use serde::Deserialize;

use crate::audit::insert_audit;
use crate::iam::{conflict, same_tenant};
use crate::rows::{Bind, uuid};
use crate::{DbResult, SqlStore, with_tx};

#[derive(Debug, Deserialize)]
struct CredentialRow {
    id: String,
    tenant_id: String,
    user_id: String,
    name: String,
    public_key: String,
    alg: i64,
    sign_count: i64,
    aaguid: String,
    attestation: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

const CRED_COLS: &[&str] = &[
    "id",
    "tenant_id",
    "user_id",
    "name",
    "public_key",
    "alg",
    "sign_count",
    "aaguid",
    "attestation",
    "created_at",
    "last_used_at",
];

impl TryFrom<CredentialRow> for WebAuthnCredential {
    type Error = StoreError;
    fn try_from(r: CredentialRow) -> StoreResult<WebAuthnCredential> {
        Ok(WebAuthnCredential {
            id: r.id,
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            user: UserId(uuid("user id", &r.user_id)?),
            name: r.name,
            public_key: r.public_key,
            alg: r.alg,
            sign_count: r.sign_count,
            aaguid: r.aaguid,
            attestation: r.attestation,
            created_at: Timestamp(r.created_at),
            last_used_at: r.last_used_at.map(Timestamp),
        })
    }
}

#[async_trait]
impl WebAuthnStore for SqlStore {
    async fn put_webauthn_challenge(
        &self,
        ctx: TenantCtx,
        c: &WebAuthnChallenge,
        now: Timestamp,
    ) -> StoreResult<()> {
        same_tenant(ctx, c.tenant)?;
        with_tx!(self, |tx| {
            sqlx::query(
                "DELETE FROM webauthn_challenges WHERE tenant_id = $1 AND expires_at <= $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .db()?;
            sqlx::query(
                "INSERT INTO webauthn_challenges (id_hash, tenant_id, user_id, purpose, \
                 challenge, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&c.id_hash)
            .bind(ctx.tenant.to_string())
            .bind(c.user.to_string())
            .bind(&c.purpose)
            .bind(&c.challenge)
            .bind(c.expires_at.0)
            .execute(&mut *tx)
            .await
            .db()?;
        });
        Ok(())
    }

    async fn take_webauthn_challenge(
        &self,
        ctx: TenantCtx,
        id_hash: &str,
    ) -> StoreResult<Option<WebAuthnChallenge>> {
        let found = with_tx!(self, |tx| {
            let row: Option<(String, String, String, i64)> = sqlx::query_as(
                "SELECT user_id, purpose, challenge, expires_at FROM webauthn_challenges \
                 WHERE tenant_id = $1 AND id_hash = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(id_hash)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
            let n = sqlx::query(
                "DELETE FROM webauthn_challenges WHERE tenant_id = $1 AND id_hash = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(id_hash)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            // Only the transaction that deleted the row may use it.
            if n == 1 { row } else { None }
        });
        found
            .map(|(user, purpose, challenge, expires_at)| {
                Ok(WebAuthnChallenge {
                    id_hash: id_hash.to_string(),
                    tenant: ctx.tenant,
                    user: UserId(uuid("user id", &user)?),
                    purpose,
                    challenge,
                    expires_at: Timestamp(expires_at),
                })
            })
            .transpose()
    }

    async fn add_webauthn_credential(
        &self,
        ctx: TenantCtx,
        c: &WebAuthnCredential,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        same_tenant(ctx, c.tenant)?;
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO webauthn_credentials (id, tenant_id, user_id, name, public_key, alg, \
                 sign_count, aaguid, attestation, created_at, last_used_at) VALUES ($1, $2, $3, \
                 $4, $5, $6, $7, $8, $9, $10, NULL)",
            )
            .bind(&c.id)
            .bind(ctx.tenant.to_string())
            .bind(c.user.to_string())
            .bind(&c.name)
            .bind(&c.public_key)
            .bind(c.alg)
            .bind(c.sign_count)
            .bind(&c.aaguid)
            .bind(&c.attestation)
            .bind(c.created_at.0)
            .execute(&mut *tx)
            .await
            .db()
            .map_err(|e| {
                conflict(e, || {
                    format!(
                        "a security key named {:?} (or this very key) is registered already",
                        c.name
                    )
                })
            })?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn list_webauthn_credentials(
        &self,
        ctx: TenantCtx,
        user: UserId,
    ) -> StoreResult<Vec<WebAuthnCredential>> {
        let sql = "SELECT id, tenant_id, user_id, name, public_key, alg, sign_count, aaguid, \
                   attestation, created_at, last_used_at FROM webauthn_credentials \
                   WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id LIMIT 100";
        self.records::<CredentialRow, WebAuthnCredential>(
            sql,
            CRED_COLS,
            "created_at, id",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::Text(user.to_string()),
            ],
        )
        .await
    }

    async fn rename_webauthn_credential(
        &self,
        ctx: TenantCtx,
        user: UserId,
        id: &str,
        name: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE webauthn_credentials SET name = $4 WHERE tenant_id = $1 AND user_id = $2 \
                 AND id = $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(id)
            .bind(name)
            .execute(&mut *tx)
            .await
            .db()
            .map_err(|e| conflict(e, || format!("a security key named {name:?} exists")))?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn remove_webauthn_credential(
        &self,
        ctx: TenantCtx,
        user: UserId,
        id: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "DELETE FROM webauthn_credentials WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(id)
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

    async fn use_webauthn_credential(
        &self,
        ctx: TenantCtx,
        id: &str,
        old: i64,
        new: i64,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let changed = with_tx!(self, |tx| {
            sqlx::query(
                "UPDATE webauthn_credentials SET sign_count = $4, last_used_at = $5 \
                 WHERE tenant_id = $1 AND id = $2 AND sign_count = $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(id)
            .bind(old)
            .bind(new)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected()
                == 1
        });
        Ok(changed)
    }
}
