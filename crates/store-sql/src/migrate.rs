//! Schema migrations, embedded in the binary, applied at start.

use parapet_store::StoreError;
use sqlx::Row;

use crate::{DbResult, SqlStore, with_tx};

const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_foundation.sql")),
    (
        2,
        include_str!("../migrations/sqlite/0002_users_by_tenant.sql"),
    ),
    (3, include_str!("../migrations/sqlite/0003_audit_log.sql")),
    (7, include_str!("../migrations/sqlite/0007_sessions.sql")),
    (60, include_str!("../migrations/sqlite/0060_assets.sql")),
    (
        10,
        include_str!("../migrations/sqlite/0010_account_policy.sql"),
    ),
    (11, include_str!("../migrations/sqlite/0011_mfa.sql")),
    (20, include_str!("../migrations/sqlite/0020_kms.sql")),
    (21, include_str!("../migrations/sqlite/0021_kms_origin.sql")),
    (
        22,
        include_str!("../migrations/sqlite/0022_kms_changes.sql"),
    ),
    (12, include_str!("../migrations/sqlite/0012_approvals.sql")),
    (13, include_str!("../migrations/sqlite/0013_oidc.sql")),
    (
        14,
        include_str!("../migrations/sqlite/0014_access_grants.sql"),
    ),
    (15, include_str!("../migrations/sqlite/0015_ldap.sql")),
    (16, include_str!("../migrations/sqlite/0016_groups.sql")),
    (
        17,
        include_str!("../migrations/sqlite/0017_sub_accounts.sql"),
    ),
    (18, include_str!("../migrations/sqlite/0018_oidc_rs256.sql")),
    (19, include_str!("../migrations/sqlite/0019_webauthn.sql")),
    (40, include_str!("../migrations/sqlite/0040_incidents.sql")),
    (
        41,
        include_str!("../migrations/sqlite/0041_emergency_plans.sql"),
    ),
    (
        42,
        include_str!("../migrations/sqlite/0042_incident_alerts_sla.sql"),
    ),
    (70, include_str!("../migrations/sqlite/0070_notify.sql")),
    (30, include_str!("../migrations/sqlite/0030_events.sql")),
    (31, include_str!("../migrations/sqlite/0031_alerts.sql")),
    (
        32,
        include_str!("../migrations/sqlite/0032_correlation_state.sql"),
    ),
    (33, include_str!("../migrations/sqlite/0033_metrics.sql")),
    (
        34,
        include_str!("../migrations/sqlite/0034_alert_escalation.sql"),
    ),
    (
        35,
        include_str!("../migrations/sqlite/0035_login_profiles.sql"),
    ),
    (50, include_str!("../migrations/sqlite/0050_backup.sql")),
    (
        51,
        include_str!("../migrations/sqlite/0051_backup_jobs.sql"),
    ),
];
const POSTGRES: &[(i64, &str)] = &[
    (
        1,
        include_str!("../migrations/postgres/0001_foundation.sql"),
    ),
    (
        2,
        include_str!("../migrations/postgres/0002_users_by_tenant.sql"),
    ),
    (3, include_str!("../migrations/postgres/0003_audit_log.sql")),
    (7, include_str!("../migrations/postgres/0007_sessions.sql")),
    (60, include_str!("../migrations/postgres/0060_assets.sql")),
    (
        10,
        include_str!("../migrations/postgres/0010_account_policy.sql"),
    ),
    (11, include_str!("../migrations/postgres/0011_mfa.sql")),
    (20, include_str!("../migrations/postgres/0020_kms.sql")),
    (
        21,
        include_str!("../migrations/postgres/0021_kms_origin.sql"),
    ),
    (
        22,
        include_str!("../migrations/postgres/0022_kms_changes.sql"),
    ),
    (
        12,
        include_str!("../migrations/postgres/0012_approvals.sql"),
    ),
    (13, include_str!("../migrations/postgres/0013_oidc.sql")),
    (
        14,
        include_str!("../migrations/postgres/0014_access_grants.sql"),
    ),
    (15, include_str!("../migrations/postgres/0015_ldap.sql")),
    (16, include_str!("../migrations/postgres/0016_groups.sql")),
    (
        17,
        include_str!("../migrations/postgres/0017_sub_accounts.sql"),
    ),
    (
        18,
        include_str!("../migrations/postgres/0018_oidc_rs256.sql"),
    ),
    (19, include_str!("../migrations/postgres/0019_webauthn.sql")),
    (
        40,
        include_str!("../migrations/postgres/0040_incidents.sql"),
    ),
    (
        41,
        include_str!("../migrations/postgres/0041_emergency_plans.sql"),
    ),
    (
        42,
        include_str!("../migrations/postgres/0042_incident_alerts_sla.sql"),
    ),
    (70, include_str!("../migrations/postgres/0070_notify.sql")),
    (30, include_str!("../migrations/postgres/0030_events.sql")),
    (31, include_str!("../migrations/postgres/0031_alerts.sql")),
    (
        32,
        include_str!("../migrations/postgres/0032_correlation_state.sql"),
    ),
    (33, include_str!("../migrations/postgres/0033_metrics.sql")),
    (
        34,
        include_str!("../migrations/postgres/0034_alert_escalation.sql"),
    ),
    (
        35,
        include_str!("../migrations/postgres/0035_login_profiles.sql"),
    ),
    (50, include_str!("../migrations/postgres/0050_backup.sql")),
    (
        51,
        include_str!("../migrations/postgres/0051_backup_jobs.sql"),
    ),
];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS parapet_migrations \
    (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";

/// Key of the PostgreSQL advisory lock that serializes migrations between replicas.
const MIGRATION_LOCK: i64 = 0x7061_7261_7065_7401;

impl SqlStore {
    /// Applies every migration not yet applied, in order, each in its own transaction.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        with_tx!(self, |tx| {
            if let crate::Db::Pg(_) = &self.db {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
            sqlx::query(CREATE_TABLE).execute(&mut *tx).await.db()?;
            let rows = sqlx::query("SELECT version FROM parapet_migrations")
                .fetch_all(&mut *tx)
                .await
                .db()?;
            let mut applied = Vec::with_capacity(rows.len());
            for r in &rows {
                applied.push(r.try_get::<i64, _>("version").db()?);
            }
            let list = match &self.db {
                crate::Db::Sqlite(_) => SQLITE,
                crate::Db::Pg(_) => POSTGRES,
            };
            // Versions are applied in increasing order, whatever the order of the list (each
            // module owns a range of versions).
            let mut list = list.to_vec();
            list.sort_by_key(|(version, _)| *version);
            for (version, sql) in &list {
                if applied.contains(version) {
                    continue;
                }
                tracing::info!(version, "applying database migration");
                sqlx::raw_sql(*sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::Other(format!("migration {version} failed: {e}")))?;
                sqlx::query("INSERT INTO parapet_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(*version)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
        });
        Ok(())
    }
}
