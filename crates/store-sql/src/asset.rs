//! `AssetStore` over SQL: the asset inventory.

use async_trait::async_trait;
use parapet_store::{
    Asset, AssetFilter, AssetHealth, AssetKind, AssetStore, AuditEvent, Criticality, ImportCounts,
    Page, Software, StoreError, StoreResult, TenantMatch,
};
use parapet_types::{AssetId, TenantCtx, TenantId, Timestamp};
use serde::Deserialize;
use sqlx::Row;

use crate::audit::insert_audit;
use crate::rows::{Bind, bad, uuid};
use crate::{DbResult, SqlStore, with_pool, with_tx};

#[derive(Debug, Deserialize)]
pub(crate) struct AssetRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub kind: String,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub applications: String,
    pub addresses: String,
    pub location: Option<String>,
    pub owner: Option<String>,
    pub criticality: String,
    pub tags: String,
    pub health: String,
    pub last_seen_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &[&str] = &[
    "id",
    "tenant_id",
    "name",
    "kind",
    "os_name",
    "os_version",
    "applications",
    "addresses",
    "location",
    "owner",
    "criticality",
    "tags",
    "health",
    "last_seen_at",
    "created_at",
    "updated_at",
];

const SELECT: &str = "SELECT id, tenant_id, name, kind, os_name, os_version, applications, \
    addresses, location, owner, criticality, tags, health, last_seen_at, created_at, updated_at \
    FROM assets";

impl TryFrom<AssetRow> for Asset {
    type Error = StoreError;
    fn try_from(r: AssetRow) -> StoreResult<Asset> {
        let os = match (r.os_name, r.os_version) {
            (Some(name), Some(version)) => Some(Software { name, version }),
            (Some(name), None) => Some(Software {
                name,
                version: String::new(),
            }),
            _ => None,
        };
        Ok(Asset {
            id: AssetId(uuid("asset id", &r.id)?),
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            kind: AssetKind::parse(&r.kind).ok_or_else(|| bad("asset kind", &r.kind))?,
            os,
            applications: serde_json::from_str(&r.applications)
                .map_err(|_| bad("applications", &r.applications))?,
            addresses: serde_json::from_str(&r.addresses)
                .map_err(|_| bad("addresses", &r.addresses))?,
            location: r.location,
            owner: r.owner,
            criticality: Criticality::parse(&r.criticality)
                .ok_or_else(|| bad("criticality", &r.criticality))?,
            tags: serde_json::from_str(&r.tags).map_err(|_| bad("tags", &r.tags))?,
            health: AssetHealth::parse(&r.health).ok_or_else(|| bad("health", &r.health))?,
            last_seen_at: r.last_seen_at.map(Timestamp),
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
            name: r.name,
        })
    }
}

/// The JSON columns of an asset.
struct Encoded {
    applications: String,
    addresses: String,
    tags: String,
}

fn encode(a: &Asset) -> StoreResult<Encoded> {
    let enc = |v: serde_json::Result<String>| {
        v.map_err(|e| StoreError::Other(format!("cannot encode asset: {e}")))
    };
    Ok(Encoded {
        applications: enc(serde_json::to_string(&a.applications))?,
        addresses: enc(serde_json::to_string(&a.addresses))?,
        tags: enc(serde_json::to_string(&a.tags))?,
    })
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Inserts the asset `$a` (encoded as `$enc`) on `$tx`.
macro_rules! insert_asset {
    ($tx:expr, $a:expr, $enc:expr) => {{
        let a: &Asset = $a;
        let enc: &Encoded = $enc;
        sqlx::query(
            "INSERT INTO assets (id, tenant_id, name, name_key, kind, os_name, os_version, \
             os_key, applications, addresses, location, owner, criticality, tags, health, \
             last_seen_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(a.id.to_string())
        .bind(a.tenant.to_string())
        .bind(a.name.clone())
        .bind(a.name.to_lowercase())
        .bind(a.kind.as_str())
        .bind(a.os.as_ref().map(|o| o.name.clone()))
        .bind(a.os.as_ref().map(|o| o.version.clone()))
        .bind(a.os.as_ref().map(|o| o.name.to_lowercase()))
        .bind(enc.applications.clone())
        .bind(enc.addresses.clone())
        .bind(a.location.clone())
        .bind(a.owner.clone())
        .bind(a.criticality.as_str())
        .bind(enc.tags.clone())
        .bind(a.health.as_str())
        .bind(a.last_seen_at.map(|t| t.0))
        .bind(a.created_at.0)
        .bind(a.updated_at.0)
        .execute(&mut *$tx)
        .await
        .db()?;
    }};
}

/// Updates the attributes (not the health, last-seen or creation time) of asset `$a` on `$tx`;
/// evaluates to the number of rows changed.
macro_rules! update_asset {
    ($tx:expr, $a:expr, $enc:expr) => {{
        let a: &Asset = $a;
        let enc: &Encoded = $enc;
        sqlx::query(
            "UPDATE assets SET name = $3, name_key = $4, kind = $5, os_name = $6, \
             os_version = $7, os_key = $8, applications = $9, addresses = $10, location = $11, \
             owner = $12, criticality = $13, tags = $14, updated_at = $15 \
             WHERE id = $1 AND tenant_id = $2",
        )
        .bind(a.id.to_string())
        .bind(a.tenant.to_string())
        .bind(a.name.clone())
        .bind(a.name.to_lowercase())
        .bind(a.kind.as_str())
        .bind(a.os.as_ref().map(|o| o.name.clone()))
        .bind(a.os.as_ref().map(|o| o.version.clone()))
        .bind(a.os.as_ref().map(|o| o.name.to_lowercase()))
        .bind(enc.applications.clone())
        .bind(enc.addresses.clone())
        .bind(a.location.clone())
        .bind(a.owner.clone())
        .bind(a.criticality.as_str())
        .bind(enc.tags.clone())
        .bind(a.updated_at.0)
        .execute(&mut *$tx)
        .await
        .db()?
        .rows_affected()
    }};
}

/// Replaces the `asset_software` rows of asset `$a` on `$tx`.
macro_rules! replace_software {
    ($tx:expr, $a:expr) => {{
        let a: &Asset = $a;
        sqlx::query("DELETE FROM asset_software WHERE asset_id = $1 AND tenant_id = $2")
            .bind(a.id.to_string())
            .bind(a.tenant.to_string())
            .execute(&mut *$tx)
            .await
            .db()?;
        let mut seen = std::collections::BTreeSet::new();
        for s in &a.applications {
            let key = (s.name.to_lowercase(), s.version.clone());
            if !seen.insert(key.clone()) {
                continue;
            }
            sqlx::query(
                "INSERT INTO asset_software (asset_id, tenant_id, name_key, version) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(a.id.to_string())
            .bind(a.tenant.to_string())
            .bind(key.0)
            .bind(key.1)
            .execute(&mut *$tx)
            .await
            .db()?;
        }
    }};
}

fn check_tenant(ctx: TenantCtx, a: &Asset) -> StoreResult<()> {
    if a.tenant == ctx.tenant {
        Ok(())
    } else {
        Err(StoreError::Other(
            "an asset can only be written within its own tenant".into(),
        ))
    }
}

#[async_trait]
impl AssetStore for SqlStore {
    async fn create_asset(
        &self,
        ctx: TenantCtx,
        asset: &Asset,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        check_tenant(ctx, asset)?;
        let enc = encode(asset)?;
        with_tx!(self, |tx| {
            insert_asset!(tx, asset, &enc);
            replace_software!(tx, asset);
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn update_asset(
        &self,
        ctx: TenantCtx,
        asset: &Asset,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        check_tenant(ctx, asset)?;
        let enc = encode(asset)?;
        with_tx!(self, |tx| {
            if update_asset!(tx, asset, &enc) == 0 {
                return Err(StoreError::NotFound);
            }
            replace_software!(tx, asset);
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn import_assets(
        &self,
        ctx: TenantCtx,
        assets: &[Asset],
        audit: &AuditEvent,
    ) -> StoreResult<ImportCounts> {
        let mut encoded = Vec::with_capacity(assets.len());
        for a in assets {
            check_tenant(ctx, a)?;
            encoded.push(encode(a)?);
        }
        let counts = with_tx!(self, |tx| {
            let mut counts = ImportCounts::default();
            for (a, enc) in assets.iter().zip(&encoded) {
                let existing =
                    sqlx::query("SELECT id FROM assets WHERE tenant_id = $1 AND name_key = $2")
                        .bind(ctx.tenant.to_string())
                        .bind(a.name.to_lowercase())
                        .fetch_optional(&mut *tx)
                        .await
                        .db()?;
                match existing {
                    Some(row) => {
                        let id: String = row.try_get("id").db()?;
                        let mut kept = a.clone();
                        kept.id = AssetId(uuid("asset id", &id)?);
                        update_asset!(tx, &kept, enc);
                        replace_software!(tx, &kept);
                        counts.updated += 1;
                    }
                    None => {
                        insert_asset!(tx, a, enc);
                        replace_software!(tx, a);
                        counts.created += 1;
                    }
                }
            }
            insert_audit!(&mut *tx, audit);
            counts
        });
        Ok(counts)
    }

    async fn get_asset(&self, ctx: TenantCtx, id_or_name: &str) -> StoreResult<Asset> {
        let sql = format!("{SELECT} WHERE tenant_id = $1 AND (id = $2 OR name_key = $3)");
        let rows: Vec<Asset> = self
            .records::<AssetRow, Asset>(
                &sql,
                COLS,
                "name",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(id_or_name.to_string()),
                    Bind::Text(id_or_name.to_lowercase()),
                ],
            )
            .await?;
        rows.into_iter().next().ok_or(StoreError::NotFound)
    }

    async fn list_assets(
        &self,
        ctx: TenantCtx,
        filter: &AssetFilter,
        page: &Page,
    ) -> StoreResult<Vec<Asset>> {
        let sql = format!(
            "{SELECT} WHERE tenant_id = $1 AND name_key > $2 AND ($3 = '' OR kind = $3) \
             AND ($4 = '' OR health = $4) AND ($5 = '' OR criticality = $5) \
             AND name_key LIKE $6 ESCAPE '\\' ORDER BY name_key LIMIT $7"
        );
        let pattern = format!(
            "%{}%",
            like_escape(
                &filter
                    .name_contains
                    .as_deref()
                    .unwrap_or_default()
                    .to_lowercase()
            )
        );
        self.records::<AssetRow, Asset>(
            &sql,
            COLS,
            "lower(name)",
            &[
                Bind::Text(ctx.tenant.to_string()),
                Bind::Text(page.after.clone().unwrap_or_default().to_lowercase()),
                Bind::Text(filter.kind.map(|k| k.as_str()).unwrap_or_default().into()),
                Bind::Text(filter.health.map(|k| k.as_str()).unwrap_or_default().into()),
                Bind::Text(
                    filter
                        .criticality
                        .map(|k| k.as_str())
                        .unwrap_or_default()
                        .into(),
                ),
                Bind::Text(pattern),
                Bind::I64(i64::from(page.limit.clamp(1, 1001))),
            ],
        )
        .await
    }

    async fn count_assets_by_health(&self, ctx: TenantCtx) -> StoreResult<Vec<(AssetHealth, u64)>> {
        with_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT health, COUNT(*) AS n FROM assets WHERE tenant_id = $1 GROUP BY health",
            )
            .bind(ctx.tenant.to_string())
            .fetch_all(pool)
            .await
            .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let h: String = r.try_get("health").db()?;
                let n: i64 = r.try_get("n").db()?;
                out.push((
                    AssetHealth::parse(&h).ok_or_else(|| bad("health", &h))?,
                    u64::try_from(n).unwrap_or(0),
                ));
            }
            out.sort();
            Ok(out)
        })
    }

    async fn delete_asset(
        &self,
        ctx: TenantCtx,
        id: AssetId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            sqlx::query("DELETE FROM asset_software WHERE asset_id = $1 AND tenant_id = $2")
                .bind(id.to_string())
                .bind(ctx.tenant.to_string())
                .execute(&mut *tx)
                .await
                .db()?;
            let done = sqlx::query("DELETE FROM assets WHERE id = $1 AND tenant_id = $2")
                .bind(id.to_string())
                .bind(ctx.tenant.to_string())
                .execute(&mut *tx)
                .await
                .db()?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn set_asset_health(
        &self,
        ctx: TenantCtx,
        id: AssetId,
        health: AssetHealth,
        seen: Option<Timestamp>,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        with_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE assets SET health = $3, last_seen_at = COALESCE($4, last_seen_at), \
                 updated_at = $5 WHERE id = $1 AND tenant_id = $2",
            )
            .bind(id.to_string())
            .bind(ctx.tenant.to_string())
            .bind(health.as_str())
            .bind(seen.map(|t| t.0))
            .bind(audit.time.0)
            .execute(&mut *tx)
            .await
            .db()?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit);
        });
        Ok(())
    }

    async fn tenants_running(
        &self,
        ctx: TenantCtx,
        software: &Software,
        os: bool,
    ) -> StoreResult<Vec<TenantMatch>> {
        let inner = if os {
            "SELECT a.tenant_id AS tenant_id, COUNT(*) AS n FROM assets a \
             WHERE a.os_key = $2 AND a.os_version = $3 GROUP BY a.tenant_id"
        } else {
            "SELECT s.tenant_id AS tenant_id, COUNT(DISTINCT s.asset_id) AS n \
             FROM asset_software s WHERE s.name_key = $2 AND s.version = $3 GROUP BY s.tenant_id"
        };
        let sql = format!(
            "SELECT t.id AS id, t.name AS name, m.n AS n FROM ({inner}) m \
             JOIN tenants t ON t.id = m.tenant_id \
             WHERE EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 AND p.kind = 'provider') \
             ORDER BY t.name"
        );
        with_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(ctx.tenant.to_string())
                .bind(software.name.to_lowercase())
                .bind(software.version.clone())
                .fetch_all(pool)
                .await
                .db()?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let id: String = r.try_get("id").db()?;
                let n: i64 = r.try_get("n").db()?;
                out.push(TenantMatch {
                    tenant: TenantId(uuid("tenant id", &id)?),
                    tenant_name: r.try_get("name").db()?,
                    assets: u64::try_from(n).unwrap_or(0),
                });
            }
            Ok(out)
        })
    }
}
