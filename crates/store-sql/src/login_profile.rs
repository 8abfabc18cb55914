//! `LoginProfileStore` over SQL: one row per account, read by primary key.

use async_trait::async_trait;
use parapet_store::{LoginProfile, LoginProfileStore, StoreError, StoreResult};
use parapet_types::{TenantCtx, Timestamp};
use serde::Deserialize;

use crate::rows::{Bind, bad};
use crate::{DbResult, SqlStore, with_tx};

#[derive(Debug, Deserialize)]
struct ProfileRow {
    account: String,
    sources: String,
    hours: String,
    logins: i64,
}

impl TryFrom<ProfileRow> for LoginProfile {
    type Error = StoreError;
    fn try_from(r: ProfileRow) -> StoreResult<LoginProfile> {
        Ok(LoginProfile {
            sources: serde_json::from_str(&r.sources).map_err(|_| bad("sources", &r.sources))?,
            hours: serde_json::from_str(&r.hours).map_err(|_| bad("hours", &r.hours))?,
            logins: u64::try_from(r.logins).unwrap_or(0),
            account: r.account,
        })
    }
}

#[async_trait]
impl LoginProfileStore for SqlStore {
    async fn login_profiles(
        &self,
        ctx: TenantCtx,
        accounts: &[String],
    ) -> StoreResult<Vec<LoginProfile>> {
        let mut out = Vec::new();
        // One keyed read per account (a step holds few distinct accounts).
        for a in accounts {
            out.extend(
                self.records::<ProfileRow, LoginProfile>(
                    "SELECT account, sources, hours, logins FROM login_profiles \
                     WHERE tenant_id = $1 AND account = $2",
                    &["account", "sources", "hours", "logins"],
                    "account",
                    &[Bind::Text(ctx.tenant.to_string()), Bind::Text(a.clone())],
                )
                .await?,
            );
        }
        Ok(out)
    }

    async fn put_login_profiles(
        &self,
        ctx: TenantCtx,
        profiles: &[LoginProfile],
        now: Timestamp,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            for p in profiles {
                let sources = serde_json::to_string(&p.sources)
                    .map_err(|e| StoreError::Other(e.to_string()))?;
                let hours = serde_json::to_string(&p.hours)
                    .map_err(|e| StoreError::Other(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO login_profiles (tenant_id, account, sources, hours, logins, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, account) \
                     DO UPDATE SET sources = $3, hours = $4, logins = $5, updated_at = $6",
                )
                .bind(ctx.tenant.to_string())
                .bind(p.account.clone())
                .bind(sources)
                .bind(hours)
                .bind(i64::try_from(p.logins).unwrap_or(i64::MAX))
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .db()?;
            }
        });
        Ok(())
    }
}
