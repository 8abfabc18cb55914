//! `ApprovalStore` over SQL: approval requests, decided once, applied in the deciding
//! transaction.

use async_trait::async_trait;
use parapet_store::{
    ApprovalEffect, ApprovalKind, ApprovalRequest, ApprovalStore, AuditEvent, StoreError,
    StoreResult,
};
use parapet_types::{Role, TenantCtx, TenantId, Timestamp, UserId};
use sqlx::Row;

use crate::audit::insert_audit;
use crate::iam::{bad, conflict, insert_user};
use crate::rows::uuid;
use crate::{DbResult, SqlStore, with_pool, with_tx};

const COLS: &str = "id, tenant_id, kind, username, role, password_hash, reason, requested_by, \
    requested_by_name, requested_at, status, decided_by_name, decided_at, comment, duration_secs, \
    group_name";

macro_rules! approval_row {
    ($r:expr) => {{
        let r = $r;
        let tenant: String = r.try_get("tenant_id").db()?;
        let kind: String = r.try_get("kind").db()?;
        let role: String = r.try_get("role").db()?;
        let by: String = r.try_get("requested_by").db()?;
        ApprovalRequest {
            id: r.try_get("id").db()?,
            tenant: TenantId(uuid("tenant id", &tenant)?),
            kind: ApprovalKind::parse(&kind).ok_or_else(|| bad("approval kind", &kind))?,
            username: r.try_get("username").db()?,
            role: role.parse::<Role>().map_err(|_| bad("role", &role))?,
            password_hash: r.try_get("password_hash").db()?,
            reason: r.try_get("reason").db()?,
            requested_by: UserId(uuid("user id", &by)?),
            requested_by_name: r.try_get("requested_by_name").db()?,
            requested_at: Timestamp(r.try_get("requested_at").db()?),
            status: r.try_get("status").db()?,
            decided_by_name: r.try_get("decided_by_name").db()?,
            decided_at: r
                .try_get::<Option<i64>, _>("decided_at")
                .db()?
                .map(Timestamp),
            comment: r.try_get("comment").db()?,
            duration_secs: r.try_get("duration_secs").db()?,
            group: r.try_get("group_name").db()?,
        }
    }};
}

/// Sets the role of `$user` and revokes its credentials (they carry the old privileges).
macro_rules! set_role {
    ($tx:expr, $ctx:expr, $user:expr, $role:expr, $at:expr) => {{
        let n = sqlx::query("UPDATE users SET role = $3 WHERE tenant_id = $1 AND id = $2")
            .bind($ctx.tenant.to_string())
            .bind($user.to_string())
            .bind($role.as_str())
            .execute(&mut *$tx)
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
        .bind($ctx.tenant.to_string())
        .bind($user.to_string())
        .bind($at.0)
        .execute(&mut *$tx)
        .await
        .db()?;
    }};
}

#[async_trait]
impl ApprovalStore for SqlStore {
    async fn create_approval(
        &self,
        ctx: TenantCtx,
        req: &ApprovalRequest,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        if req.tenant != ctx.tenant {
            return Err(StoreError::Other(
                "a request may only be written within its own tenant".into(),
            ));
        }
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO approval_requests (id, tenant_id, kind, username, role, \
                 password_hash, reason, requested_by, requested_by_name, requested_at, status, \
                 decided_by_name, decided_at, comment, duration_secs, group_name) VALUES ($1, $2, \
                 $3, $4, $5, $6, $7, $8, $9, $10, 'pending', NULL, NULL, NULL, $11, $12)",
            )
            .bind(&req.id)
            .bind(ctx.tenant.to_string())
            .bind(req.kind.as_str())
            .bind(&req.username)
            .bind(req.role.as_str())
            .bind(&req.password_hash)
            .bind(&req.reason)
            .bind(req.requested_by.to_string())
            .bind(&req.requested_by_name)
            .bind(req.requested_at.0)
            .bind(req.duration_secs)
            .bind(&req.group)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn list_approvals(&self, ctx: TenantCtx) -> StoreResult<Vec<ApprovalRequest>> {
        let sql = format!(
            "SELECT {COLS} FROM approval_requests WHERE tenant_id = $1 \
             ORDER BY requested_at DESC, id DESC LIMIT 1000"
        );
        with_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .fetch_all(pool)
                .await
                .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(approval_row!(r));
            }
            Ok(out)
        })
    }

    async fn get_approval(&self, ctx: TenantCtx, id: &str) -> StoreResult<ApprovalRequest> {
        let sql = format!("SELECT {COLS} FROM approval_requests WHERE tenant_id = $1 AND id = $2");
        with_pool!(self, |pool| {
            let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(id)
                .fetch_optional(pool)
                .await
                .db()?
                .ok_or(StoreError::NotFound)?;
            Ok(approval_row!(&r))
        })
    }

    async fn decide_approval(
        &self,
        ctx: TenantCtx,
        id: &str,
        approved: bool,
        decided_by_name: &str,
        at: Timestamp,
        comment: Option<&str>,
        effect: Option<&ApprovalEffect>,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE approval_requests SET status = $3, decided_by_name = $4, \
                 decided_at = $5, comment = $6 WHERE tenant_id = $1 AND id = $2 \
                 AND status = 'pending'",
            )
            .bind(ctx.tenant.to_string())
            .bind(id)
            .bind(if approved { "approved" } else { "rejected" })
            .bind(decided_by_name)
            .bind(at.0)
            .bind(comment)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict(
                    "the request is not pending (decided already, or unknown)".into(),
                ));
            }
            match effect {
                Some(ApprovalEffect::CreateUser(u)) => {
                    if u.tenant != ctx.tenant {
                        return Err(StoreError::Other("user of another tenant".into()));
                    }
                    insert_user!(&mut *tx, u);
                }
                Some(ApprovalEffect::SetRole(user, role, subs)) => {
                    set_role!(&mut *tx, ctx, *user, *role, at);
                    crate::subaccount::apply_sub_changes!(&mut *tx, ctx, subs);
                }
                Some(ApprovalEffect::AddGroupMember(group, user)) => {
                    let Some((gid,)) = sqlx::query_as::<_, (String,)>(
                        "SELECT id FROM user_groups WHERE tenant_id = $1 AND name = $2",
                    )
                    .bind(ctx.tenant.to_string())
                    .bind(group)
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?
                    else {
                        return Err(StoreError::NotFound);
                    };
                    let already = sqlx::query_as::<_, (String,)>(
                        "SELECT user_id FROM user_group_members WHERE group_id = $1 \
                         AND user_id = $2",
                    )
                    .bind(&gid)
                    .bind(user.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                    if already.is_some() {
                        return Err(StoreError::Conflict(
                            "already a member of this group".into(),
                        ));
                    }
                    let n = sqlx::query(
                        "INSERT INTO user_group_members (group_id, tenant_id, user_id) \
                         SELECT $1, tenant_id, id FROM users WHERE tenant_id = $2 AND id = $3",
                    )
                    .bind(&gid)
                    .bind(ctx.tenant.to_string())
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .db()?
                    .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound);
                    }
                }
                Some(ApprovalEffect::Elevate(g)) => {
                    if g.tenant != ctx.tenant {
                        return Err(StoreError::Other("grant of another tenant".into()));
                    }
                    crate::access::insert_grant!(&mut *tx, g);
                }
                None => {}
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn set_user_role(
        &self,
        ctx: TenantCtx,
        user: UserId,
        role: Role,
        audit: &AuditEvent,
        subs: &[parapet_store::SubAccountChange],
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            set_role!(&mut *tx, ctx, user, role, audit.time);
            insert_audit!(&mut *tx, audit);
            crate::subaccount::apply_sub_changes!(&mut *tx, ctx, subs);
        });
        Ok(())
    }
}
