//! `SessionStore` over SQL: credential activity for idle time-outs and session listings.

use async_trait::async_trait;
use parapet_store::{
    AuditEvent, Credential, CredentialKind, SessionInfo, SessionStore, StoreResult,
};
use parapet_types::{CredentialId, TenantCtx, Timestamp, UserId};
use sqlx::Row;

use crate::audit::insert_audit;
use crate::iam::{bad, credential_row};
use crate::rows::uuid;
use crate::{DbResult, SqlStore, with_pool, with_tx};
use parapet_types::TenantId;

/// A credential's last use is written at most this often (the idle time-out's precision).
pub(crate) const TOUCH_EVERY_MS: i64 = 60_000;

pub(crate) const UPSERT: &str = "INSERT INTO credential_activity (credential_id, tenant_id, last_used_at, \
    source_ip, user_agent) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (credential_id) DO UPDATE \
    SET last_used_at = excluded.last_used_at, \
    source_ip = COALESCE(excluded.source_ip, credential_activity.source_ip), \
    user_agent = COALESCE(excluded.user_agent, credential_activity.user_agent) \
    WHERE credential_activity.last_used_at <= excluded.last_used_at";

/// Records, on the executor `$exec`, that the credential `$c` was used at `$at`.
macro_rules! touch {
    ($exec:expr, $c:expr, $at:expr) => {{
        let c: &parapet_store::Credential = $c;
        let at: parapet_types::Timestamp = $at;
        sqlx::query($crate::session::UPSERT)
            .bind(c.id.to_string())
            .bind(c.tenant.to_string())
            .bind(at.0)
            .bind(None::<String>)
            .bind(None::<String>)
            .execute($exec)
            .await
            .db()?;
    }};
}
pub(crate) use touch;

const SESSIONS: &str = "SELECT c.id, c.tenant_id, c.user_id, c.kind, c.name, c.secret_hash, \
    c.scopes, c.created_at, c.expires_at, c.revoked_at, u.username, \
    COALESCE(a.last_used_at, c.created_at) AS last_used_at, a.source_ip, a.user_agent \
    FROM credentials c JOIN users u ON u.id = c.user_id AND u.tenant_id = c.tenant_id \
    LEFT JOIN credential_activity a ON a.credential_id = c.id \
    WHERE c.tenant_id = $1 AND c.revoked_at IS NULL AND c.expires_at > $2 \
    AND ($3 = '' OR c.user_id = $3) AND ($4 = '' OR c.kind = $4) \
    ORDER BY c.created_at DESC LIMIT 1000";

#[async_trait]
impl SessionStore for SqlStore {
    async fn touch_credential(
        &self,
        ctx: TenantCtx,
        id: CredentialId,
        at: Timestamp,
        source_ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> StoreResult<()> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO credential_activity (credential_id, tenant_id, last_used_at, \
                 source_ip, user_agent) SELECT id, tenant_id, $3, $4, $5 FROM credentials \
                 WHERE id = $1 AND tenant_id = $2 ON CONFLICT (credential_id) DO UPDATE \
                 SET last_used_at = excluded.last_used_at, \
                 source_ip = COALESCE(excluded.source_ip, credential_activity.source_ip), \
                 user_agent = COALESCE(excluded.user_agent, credential_activity.user_agent) \
                 WHERE credential_activity.last_used_at <= excluded.last_used_at",
            )
            .bind(id.to_string())
            .bind(ctx.tenant.to_string())
            .bind(at.0)
            .bind(source_ip.map(str::to_string))
            .bind(user_agent.map(str::to_string))
            .execute(pool)
            .await
            .db()?;
        });
        Ok(())
    }

    async fn list_sessions(
        &self,
        ctx: TenantCtx,
        user: Option<UserId>,
        kind: Option<CredentialKind>,
        now: Timestamp,
    ) -> StoreResult<Vec<SessionInfo>> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(SESSIONS)
                .bind(ctx.tenant.to_string())
                .bind(now.0)
                .bind(user.map(|u| u.to_string()).unwrap_or_default())
                .bind(kind.map(|k| k.as_str().to_string()).unwrap_or_default())
                .fetch_all(pool)
                .await
                .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(SessionInfo {
                    credential: credential_row!(r, ""),
                    username: r.try_get("username").db()?,
                    last_used_at: Timestamp(r.try_get("last_used_at").db()?),
                    source_ip: r.try_get("source_ip").db()?,
                    user_agent: r.try_get("user_agent").db()?,
                });
            }
            Ok(out)
        })
    }

    async fn revoke_user_credentials(
        &self,
        ctx: TenantCtx,
        user: UserId,
        kind: Option<CredentialKind>,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<u64> {
        let n = with_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE credentials SET revoked_at = $1 WHERE tenant_id = $2 AND user_id = $3 \
                 AND revoked_at IS NULL AND ($4 = '' OR kind = $4)",
            )
            .bind(at.0)
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .bind(kind.map(|k| k.as_str().to_string()).unwrap_or_default())
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
            done.rows_affected()
        });
        Ok(n)
    }
}
