//! `OidcStore` over SQL: relying parties, signing keys, authorization codes and issued tokens.

use async_trait::async_trait;
use parapet_store::{
    AuditEvent, CodeRedemption, OidcClient, OidcCode, OidcKey, OidcStore, OidcToken, StoreError,
    StoreResult,
};
use parapet_types::{TenantCtx, TenantId, Timestamp, UserId};
use sqlx::Row;

use crate::audit::insert_audit;
use crate::iam::{bad, conflict, user_row};
use crate::rows::{UserRow, uuid};
use crate::{DbResult, SqlStore, with_pool, with_tx};
use parapet_store::User;

const CLIENT_COLS: &str = "id, tenant_id, name, public_client, secret_hash, redirect_uris, grants, created_at, \
     secret_rotated_at, id_token_alg";
const KEY_COLS: &str = "kid, tenant_id, alg, sealed_private, public_jwk, created_at, retired_at";
const CODE_COLS: &str = "code_hash, tenant_id, client_id, user_id, redirect_uri, code_challenge, \
     scope, nonce, auth_time, family, created_at, expires_at, used_at";
const TOKEN_COLS: &str = "id, tenant_id, client_id, user_id, kind, secret_hash, family, scope, \
     created_at, expires_at, revoked_at, used_at";

fn list(what: &str, s: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|_| bad(what, s))
}

fn opt_ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

macro_rules! client_row {
    ($r:expr) => {{
        let r = $r;
        let tenant: String = r.try_get("tenant_id").db()?;
        let uris: String = r.try_get("redirect_uris").db()?;
        let grants: String = r.try_get("grants").db()?;
        OidcClient {
            id: r.try_get("id").db()?,
            tenant: TenantId(uuid("tenant id", &tenant)?),
            name: r.try_get("name").db()?,
            public: r.try_get::<i64, _>("public_client").db()? != 0,
            secret_hash: r.try_get("secret_hash").db()?,
            redirect_uris: list("redirect uris", &uris)?,
            grants: list("grants", &grants)?,
            created_at: Timestamp(r.try_get("created_at").db()?),
            secret_rotated_at: opt_ts(r.try_get("secret_rotated_at").db()?),
            id_token_alg: r.try_get("id_token_alg").db()?,
        }
    }};
}

macro_rules! key_row {
    ($r:expr) => {{
        let r = $r;
        let tenant: String = r.try_get("tenant_id").db()?;
        OidcKey {
            kid: r.try_get("kid").db()?,
            tenant: TenantId(uuid("tenant id", &tenant)?),
            alg: r.try_get("alg").db()?,
            sealed_private: r.try_get("sealed_private").db()?,
            public_jwk: r.try_get("public_jwk").db()?,
            created_at: Timestamp(r.try_get("created_at").db()?),
            retired_at: opt_ts(r.try_get("retired_at").db()?),
        }
    }};
}

macro_rules! code_row {
    ($r:expr) => {{
        let r = $r;
        let tenant: String = r.try_get("tenant_id").db()?;
        let user: String = r.try_get("user_id").db()?;
        OidcCode {
            code_hash: r.try_get("code_hash").db()?,
            tenant: TenantId(uuid("tenant id", &tenant)?),
            client_id: r.try_get("client_id").db()?,
            user: UserId(uuid("user id", &user)?),
            redirect_uri: r.try_get("redirect_uri").db()?,
            code_challenge: r.try_get("code_challenge").db()?,
            scope: r.try_get("scope").db()?,
            nonce: r.try_get("nonce").db()?,
            auth_time: Timestamp(r.try_get("auth_time").db()?),
            family: r.try_get("family").db()?,
            created_at: Timestamp(r.try_get("created_at").db()?),
            expires_at: Timestamp(r.try_get("expires_at").db()?),
            used_at: opt_ts(r.try_get("used_at").db()?),
        }
    }};
}

macro_rules! token_row {
    ($r:expr) => {{
        let r = $r;
        let tenant: String = r.try_get("tenant_id").db()?;
        let user: Option<String> = r.try_get("user_id").db()?;
        OidcToken {
            id: r.try_get("id").db()?,
            tenant: TenantId(uuid("tenant id", &tenant)?),
            client_id: r.try_get("client_id").db()?,
            user: match user {
                Some(u) => Some(UserId(uuid("user id", &u)?)),
                None => None,
            },
            kind: r.try_get("kind").db()?,
            secret_hash: r.try_get("secret_hash").db()?,
            family: r.try_get("family").db()?,
            scope: r.try_get("scope").db()?,
            created_at: Timestamp(r.try_get("created_at").db()?),
            expires_at: Timestamp(r.try_get("expires_at").db()?),
            revoked_at: opt_ts(r.try_get("revoked_at").db()?),
            used_at: opt_ts(r.try_get("used_at").db()?),
        }
    }};
}

macro_rules! insert_tokens {
    ($tx:expr, $ctx:expr, $tokens:expr) => {{
        for t in $tokens {
            if t.tenant != $ctx.tenant {
                return Err(StoreError::Other(
                    "a token may only be written within its own tenant".into(),
                ));
            }
            sqlx::query(
                "INSERT INTO oidc_tokens (id, tenant_id, client_id, user_id, kind, secret_hash, \
                 family, scope, created_at, expires_at, revoked_at, used_at) VALUES ($1, $2, $3, \
                 $4, $5, $6, $7, $8, $9, $10, NULL, NULL)",
            )
            .bind(&t.id)
            .bind($ctx.tenant.to_string())
            .bind(&t.client_id)
            .bind(t.user.map(|u| u.to_string()))
            .bind(&t.kind)
            .bind(&t.secret_hash)
            .bind(&t.family)
            .bind(&t.scope)
            .bind(t.created_at.0)
            .bind(t.expires_at.0)
            .execute(&mut *$tx)
            .await
            .db()?;
        }
    }};
}

fn json_list(v: &[String]) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(e.to_string()))
}

#[async_trait]
impl OidcStore for SqlStore {
    async fn oidc_user(&self, ctx: TenantCtx, user: UserId) -> StoreResult<parapet_store::User> {
        const SQL: &str = "SELECT id, tenant_id, username, role, status, password_hash, created_at, \
            last_login_at FROM users WHERE tenant_id = $1 AND id = $2";
        with_pool!(self, |pool| {
            let row = sqlx::query(SQL)
                .bind(ctx.tenant.to_string())
                .bind(user.to_string())
                .fetch_optional(pool)
                .await
                .db()?
                .ok_or(StoreError::NotFound)?;
            Ok(user_row!(&row, ""))
        })
    }

    async fn create_oidc_client(
        &self,
        ctx: TenantCtx,
        client: &OidcClient,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if client.tenant != ctx.tenant {
            return Err(StoreError::Other(
                "a client may only be registered within its own tenant".into(),
            ));
        }
        let uris = json_list(&client.redirect_uris)?;
        let grants = json_list(&client.grants)?;
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO oidc_clients (id, tenant_id, name, public_client, secret_hash, \
                 redirect_uris, grants, created_at, secret_rotated_at, id_token_alg) VALUES ($1, \
                 $2, $3, $4, $5, $6, $7, $8, NULL, $9)",
            )
            .bind(&client.id)
            .bind(ctx.tenant.to_string())
            .bind(&client.name)
            .bind(i64::from(client.public))
            .bind(&client.secret_hash)
            .bind(&uris)
            .bind(&grants)
            .bind(client.created_at.0)
            .bind(&client.id_token_alg)
            .execute(&mut *tx)
            .await
            .db()
            .map_err(|e| {
                conflict(e, || {
                    format!("a client named {:?} exists in this tenant", client.name)
                })
            })?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn list_oidc_clients(&self, ctx: TenantCtx) -> StoreResult<Vec<OidcClient>> {
        let sql = format!(
            "SELECT {CLIENT_COLS} FROM oidc_clients WHERE tenant_id = $1 ORDER BY name LIMIT 1000"
        );
        with_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .fetch_all(pool)
                .await
                .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(client_row!(r));
            }
            Ok(out)
        })
    }

    async fn get_oidc_client(&self, ctx: TenantCtx, id: &str) -> StoreResult<OidcClient> {
        let sql =
            format!("SELECT {CLIENT_COLS} FROM oidc_clients WHERE tenant_id = $1 AND id = $2");
        with_pool!(self, |pool| {
            let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(id)
                .fetch_optional(pool)
                .await
                .db()?
                .ok_or(StoreError::NotFound)?;
            Ok(client_row!(&r))
        })
    }

    async fn set_oidc_client_secret(
        &self,
        ctx: TenantCtx,
        id: &str,
        secret_hash: &str,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE oidc_clients SET secret_hash = $3, secret_rotated_at = $4 \
                 WHERE tenant_id = $1 AND id = $2 AND public_client = 0",
            )
            .bind(ctx.tenant.to_string())
            .bind(id)
            .bind(secret_hash)
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

    async fn delete_oidc_client(
        &self,
        ctx: TenantCtx,
        id: &str,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query("DELETE FROM oidc_clients WHERE tenant_id = $1 AND id = $2")
                .bind(ctx.tenant.to_string())
                .bind(id)
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM oidc_codes WHERE tenant_id = $1 AND client_id = $2")
                .bind(ctx.tenant.to_string())
                .bind(id)
                .execute(&mut *tx)
                .await
                .db()?;
            sqlx::query(
                "UPDATE oidc_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND client_id = $2 \
                 AND revoked_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(id)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn list_oidc_keys(&self, ctx: TenantCtx) -> StoreResult<Vec<OidcKey>> {
        let sql = format!(
            "SELECT {KEY_COLS} FROM oidc_keys WHERE tenant_id = $1 \
             ORDER BY created_at DESC, kid DESC LIMIT 100"
        );
        with_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
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

    async fn add_oidc_key(
        &self,
        ctx: TenantCtx,
        key: &OidcKey,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if key.tenant != ctx.tenant {
            return Err(StoreError::Other(
                "a key may only be written within its own tenant".into(),
            ));
        }
        with_tx!(self, |tx| {
            sqlx::query(
                "UPDATE oidc_keys SET retired_at = $2 WHERE tenant_id = $1 AND alg = $3 \
                 AND retired_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(key.created_at.0)
            .bind(&key.alg)
            .execute(&mut *tx)
            .await
            .db()?;
            sqlx::query(
                "INSERT INTO oidc_keys (kid, tenant_id, alg, sealed_private, public_jwk, \
                 created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            )
            .bind(&key.kid)
            .bind(ctx.tenant.to_string())
            .bind(&key.alg)
            .bind(&key.sealed_private)
            .bind(&key.public_jwk)
            .bind(key.created_at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn purge_oidc_keys(&self, ctx: TenantCtx, before: Timestamp) -> StoreResult<u64> {
        with_pool!(self, |pool| {
            Ok(sqlx::query(
                "DELETE FROM oidc_keys WHERE tenant_id = $1 AND retired_at IS NOT NULL \
                 AND retired_at < $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(before.0)
            .execute(pool)
            .await
            .db()?
            .rows_affected())
        })
    }

    async fn oidc_local_keys(&self, ctx: TenantCtx) -> StoreResult<Vec<OidcKey>> {
        let sql = format!(
            "SELECT {KEY_COLS} FROM oidc_keys k WHERE EXISTS (SELECT 1 FROM tenants p \
             WHERE p.id = $1 AND p.kind = 'provider') AND k.sealed_private NOT LIKE 'kms:%' \
             ORDER BY k.tenant_id, k.kid"
        );
        with_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
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

    async fn oidc_reseal_key(
        &self,
        ctx: TenantCtx,
        kid: &str,
        old: &str,
        new: &str,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let changed = with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE oidc_keys SET sealed_private = $4 WHERE tenant_id = $1 AND kid = $2 \
                 AND sealed_private = $3",
            )
            .bind(ctx.tenant.to_string())
            .bind(kid)
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

    async fn create_oidc_code(
        &self,
        ctx: TenantCtx,
        code: &OidcCode,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if code.tenant != ctx.tenant {
            return Err(StoreError::Other(
                "a code may only be written within its own tenant".into(),
            ));
        }
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO oidc_codes (code_hash, tenant_id, client_id, user_id, redirect_uri, \
                 code_challenge, scope, nonce, auth_time, family, created_at, expires_at, \
                 used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)",
            )
            .bind(&code.code_hash)
            .bind(ctx.tenant.to_string())
            .bind(&code.client_id)
            .bind(code.user.to_string())
            .bind(&code.redirect_uri)
            .bind(&code.code_challenge)
            .bind(&code.scope)
            .bind(&code.nonce)
            .bind(code.auth_time.0)
            .bind(&code.family)
            .bind(code.created_at.0)
            .bind(code.expires_at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn redeem_oidc_code(
        &self,
        ctx: TenantCtx,
        code_hash: &str,
        at: Timestamp,
    ) -> StoreResult<CodeRedemption> {
        let sql =
            format!("SELECT {CODE_COLS} FROM oidc_codes WHERE tenant_id = $1 AND code_hash = $2");
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE oidc_codes SET used_at = $3 WHERE tenant_id = $1 AND code_hash = $2 \
                 AND used_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(code_hash)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(code_hash)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
            match row {
                None => Ok(CodeRedemption::Unknown),
                Some(r) => {
                    let code = code_row!(&r);
                    if n == 1 {
                        Ok(CodeRedemption::Fresh(code))
                    } else {
                        Ok(CodeRedemption::Reused(code))
                    }
                }
            }
        })
    }

    async fn issue_oidc_tokens(
        &self,
        ctx: TenantCtx,
        tokens: &[OidcToken],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            insert_tokens!(tx, ctx, tokens);
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn rotate_oidc_refresh(
        &self,
        ctx: TenantCtx,
        old: &str,
        at: Timestamp,
        tokens: &[OidcToken],
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE oidc_tokens SET used_at = $3 WHERE tenant_id = $1 AND id = $2 \
                 AND kind = 'refresh' AND used_at IS NULL AND revoked_at IS NULL",
            )
            .bind(ctx.tenant.to_string())
            .bind(old)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            insert_tokens!(tx, ctx, tokens);
            insert_audit!(&mut *tx, audit);
        });
        Ok(true)
    }

    async fn get_oidc_token(&self, ctx: TenantCtx, id: &str) -> StoreResult<Option<OidcToken>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM oidc_tokens WHERE tenant_id = $1 AND id = $2");
        with_pool!(self, |pool| {
            let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(id)
                .fetch_optional(pool)
                .await
                .db()?;
            match r {
                None => Ok(None),
                Some(r) => Ok(Some(token_row!(&r))),
            }
        })
    }

    async fn find_oidc_refresh(
        &self,
        ctx: TenantCtx,
        secret_hash: &str,
    ) -> StoreResult<Option<OidcToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLS} FROM oidc_tokens WHERE tenant_id = $1 AND secret_hash = $2 \
             AND kind = 'refresh'"
        );
        with_pool!(self, |pool| {
            let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(secret_hash)
                .fetch_optional(pool)
                .await
                .db()?;
            match r {
                None => Ok(None),
                Some(r) => Ok(Some(token_row!(&r))),
            }
        })
    }

    async fn revoke_oidc_tokens(
        &self,
        ctx: TenantCtx,
        id: &str,
        family: bool,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<u64> {
        let sql = if family {
            "UPDATE oidc_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND revoked_at IS NULL \
             AND family = $2"
        } else {
            "UPDATE oidc_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND revoked_at IS NULL \
             AND id = $2"
        };
        with_tx!(self, |tx| {
            let n = sqlx::query(sql)
                .bind(ctx.tenant.to_string())
                .bind(id)
                .bind(at.0)
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            insert_audit!(&mut *tx, audit);
            Ok(n)
        })
    }
}
