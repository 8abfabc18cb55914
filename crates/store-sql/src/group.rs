//! `GroupStore` over SQL: groups with their roles, and memberships.

use async_trait::async_trait;
use parapet_store::{AuditEvent, Group, GroupStore, StoreError, StoreResult};
use parapet_types::{Role, TenantCtx, Timestamp, UserId};

use crate::audit::insert_audit;
use crate::{DbResult, SqlStore, with_pool, with_tx};

fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_roles(s: &str) -> StoreResult<Vec<Role>> {
    s.split(',')
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.parse::<Role>()
                .map_err(|_| StoreError::Other(format!("corrupt group role {r:?}")))
        })
        .collect()
}

#[async_trait]
impl GroupStore for SqlStore {
    async fn create_group(&self, ctx: TenantCtx, g: &Group, audit: &AuditEvent) -> StoreResult<()> {
        let id = &g.id;
        with_tx!(self, |tx| {
            let taken = sqlx::query_as::<_, (String,)>(
                "SELECT id FROM user_groups WHERE tenant_id = $1 AND name = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(&g.name)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!(
                    "a group named {} exists already",
                    g.name
                )));
            }
            sqlx::query(
                "INSERT INTO user_groups (id, tenant_id, name, roles, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(ctx.tenant.to_string())
            .bind(&g.name)
            .bind(roles_text(&g.roles))
            .bind(g.created_at.0)
            .execute(&mut *tx)
            .await
            .db()?;
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn list_groups(&self, ctx: TenantCtx) -> StoreResult<Vec<Group>> {
        let (groups, members): (Vec<(String, String, String, i64)>, Vec<(String, String)>) =
            with_pool!(self, |pool| {
                let g = sqlx::query_as(
                    "SELECT id, name, roles, created_at FROM user_groups WHERE tenant_id = $1 \
                     ORDER BY name",
                )
                .bind(ctx.tenant.to_string())
                .fetch_all(pool)
                .await
                .db()?;
                let m = sqlx::query_as(
                    "SELECT m.group_id, u.username FROM user_group_members m JOIN users u \
                     ON u.id = m.user_id AND u.tenant_id = m.tenant_id WHERE m.tenant_id = $1 \
                     ORDER BY u.username",
                )
                .bind(ctx.tenant.to_string())
                .fetch_all(pool)
                .await
                .db()?;
                (g, m)
            });
        groups
            .into_iter()
            .map(|(id, name, roles, created_at)| {
                Ok(Group {
                    members: members
                        .iter()
                        .filter(|(g, _)| g == &id)
                        .map(|(_, u)| u.clone())
                        .collect(),
                    id,
                    tenant: ctx.tenant,
                    name,
                    roles: parse_roles(&roles)?,
                    created_at: Timestamp(created_at),
                })
            })
            .collect()
    }

    async fn delete_group(
        &self,
        ctx: TenantCtx,
        name: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let Some((id,)) = sqlx::query_as::<_, (String,)>(
                "SELECT id FROM user_groups WHERE tenant_id = $1 AND name = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .db()?
            else {
                return Err(StoreError::NotFound);
            };
            for sql in [
                "DELETE FROM user_group_members WHERE tenant_id = $1 AND group_id = $2",
                "DELETE FROM user_groups WHERE tenant_id = $1 AND id = $2",
            ] {
                sqlx::query(sql)
                    .bind(ctx.tenant.to_string())
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn add_group_member(
        &self,
        ctx: TenantCtx,
        name: &str,
        user: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let Some((id,)) = sqlx::query_as::<_, (String,)>(
                "SELECT id FROM user_groups WHERE tenant_id = $1 AND name = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .db()?
            else {
                return Err(StoreError::NotFound);
            };
            let already = sqlx::query_as::<_, (String,)>(
                "SELECT user_id FROM user_group_members WHERE group_id = $1 AND user_id = $2",
            )
            .bind(&id)
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
            .bind(&id)
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn remove_group_member(
        &self,
        ctx: TenantCtx,
        name: &str,
        user: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let n = sqlx::query(
                "DELETE FROM user_group_members WHERE tenant_id = $1 AND user_id = $3 AND \
                 group_id = (SELECT id FROM user_groups WHERE tenant_id = $1 AND name = $2)",
            )
            .bind(ctx.tenant.to_string())
            .bind(name)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn group_roles_of(&self, ctx: TenantCtx, user: UserId) -> StoreResult<Vec<Role>> {
        let rows: Vec<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT g.roles FROM user_groups g JOIN user_group_members m ON m.group_id = g.id \
                 WHERE m.tenant_id = $1 AND m.user_id = $2",
            )
            .bind(ctx.tenant.to_string())
            .bind(user.to_string())
            .fetch_all(pool)
            .await
            .db()?
        });
        let mut roles = vec![];
        for (r,) in rows {
            roles.extend(parse_roles(&r)?);
        }
        roles.sort();
        roles.dedup();
        Ok(roles)
    }
}
