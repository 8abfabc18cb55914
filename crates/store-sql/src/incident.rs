//! `IncidentStore` over SQL: one row per incident, its document as JSON text, optimistic updates.

use async_trait::async_trait;
use parapet_store::{
    AlertLink, AuditEvent, IncidentFilter, IncidentRow, IncidentStore, Page, PlanRow, SlaPolicyRow,
    StoreError, StoreResult,
};
use parapet_types::{TenantCtx, TenantId, Timestamp};
use serde::Deserialize;
use uuid::Uuid;

use crate::audit::insert_audit;
use crate::rows::{Bind, uuid};
use crate::{DbResult, SqlStore, with_tx};

/// Replaces incident `$row` (still at version `$row.version - 1`) on `$tx` within `$ctx`;
/// evaluates to the driver's result (check `rows_affected() == 1`).
macro_rules! update_incident_row {
    ($tx:expr, $ctx:expr, $row:expr, $body:expr) => {{
        let ctx: parapet_types::TenantCtx = $ctx;
        let row: &parapet_store::IncidentRow = $row;
        let sql = format!(
            "UPDATE incidents SET title = $4, severity = $5, category = $6, step = $7, \
             responsible = $8, updated_at = $9, acknowledged_at = $10, resolved_at = $11, \
             closed_at = $12, next_due_at = $13, breaches = $14, version = $15, body = $16 \
             WHERE id = $2 AND tenant_id = $3 AND version = $15 - 1 AND {}",
            $crate::incident::VISIBLE
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ctx.tenant.to_string())
            .bind(row.id.to_string())
            .bind(row.tenant.to_string())
            .bind(&row.title)
            .bind(&row.severity)
            .bind(&row.category)
            .bind(&row.step)
            .bind(&row.responsible)
            .bind(row.updated_at.0)
            .bind(row.acknowledged_at.map(|t| t.0))
            .bind(row.resolved_at.map(|t| t.0))
            .bind(row.closed_at.map(|t| t.0))
            .bind(row.next_due_at.map(|t| t.0))
            .bind(row.breaches)
            .bind(row.version)
            .bind($body)
            .execute(&mut *$tx)
            .await
            .db()?
    }};
}
pub(crate) use update_incident_row;

/// Rows of `tenant_id = $1`, or of every tenant when `$1` is the provider.
pub(crate) const VISIBLE: &str = "(tenant_id = $1 OR EXISTS (SELECT 1 FROM tenants p WHERE p.id = $1 AND \
    p.kind = 'provider'))";

const SUMMARY_COLS: &[&str] = &[
    "id",
    "tenant_id",
    "title",
    "severity",
    "category",
    "step",
    "responsible",
    "opened_at",
    "updated_at",
    "acknowledged_at",
    "resolved_at",
    "closed_at",
    "next_due_at",
    "breaches",
    "version",
];

#[derive(Debug, Deserialize)]
struct Row {
    id: String,
    tenant_id: String,
    title: String,
    severity: String,
    category: String,
    step: String,
    responsible: String,
    opened_at: i64,
    updated_at: i64,
    acknowledged_at: Option<i64>,
    resolved_at: Option<i64>,
    closed_at: Option<i64>,
    next_due_at: Option<i64>,
    breaches: i64,
    version: i64,
    #[serde(default)]
    body: Option<String>,
}

impl TryFrom<Row> for IncidentRow {
    type Error = StoreError;
    fn try_from(r: Row) -> StoreResult<IncidentRow> {
        let body = match &r.body {
            Some(b) => serde_json::from_str(b)
                .map_err(|e| StoreError::Other(format!("corrupt incident document: {e}")))?,
            None => serde_json::Value::Null,
        };
        Ok(IncidentRow {
            id: uuid("incident id", &r.id)?,
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            title: r.title,
            severity: r.severity,
            category: r.category,
            step: r.step,
            responsible: r.responsible,
            opened_at: Timestamp(r.opened_at),
            updated_at: Timestamp(r.updated_at),
            acknowledged_at: r.acknowledged_at.map(Timestamp),
            resolved_at: r.resolved_at.map(Timestamp),
            closed_at: r.closed_at.map(Timestamp),
            next_due_at: r.next_due_at.map(Timestamp),
            breaches: r.breaches,
            version: r.version,
            body,
        })
    }
}

#[derive(Debug, Deserialize)]
struct PlanSqlRow {
    tenant_id: String,
    name: String,
    version: i64,
    review_due_at: i64,
    updated_at: i64,
    body: String,
}

const PLAN_COLS: &[&str] = &[
    "tenant_id",
    "name",
    "version",
    "review_due_at",
    "updated_at",
    "body",
];

impl TryFrom<PlanSqlRow> for PlanRow {
    type Error = StoreError;
    fn try_from(r: PlanSqlRow) -> StoreResult<PlanRow> {
        Ok(PlanRow {
            tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
            name: r.name,
            version: r.version,
            review_due_at: Timestamp(r.review_due_at),
            updated_at: Timestamp(r.updated_at),
            body: serde_json::from_str(&r.body)
                .map_err(|e| StoreError::Other(format!("corrupt plan document: {e}")))?,
        })
    }
}

pub(crate) fn plan_body(row: &PlanRow) -> StoreResult<String> {
    serde_json::to_string(&row.body)
        .map_err(|e| StoreError::Other(format!("cannot encode the plan: {e}")))
}

#[derive(Debug, Deserialize)]
struct LinkRow {
    alert_id: String,
    tenant_id: String,
    incident_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SlaSqlRow {
    tenant_id: String,
    updated_at: i64,
    updated_by: String,
    body: String,
}

/// Links alert `$alert` (of the incident's tenant) to incident `$row` on `$tx`: `NotFound` when
/// the tenant has no such alert, `Conflict` when it is linked already.
macro_rules! link_alert {
    ($tx:expr, $row:expr, $alert:expr) => {{
        let row: &parapet_store::IncidentRow = $row;
        let alert: &Uuid = $alert;
        let done = sqlx::query(
            "INSERT INTO incident_alerts (alert_id, tenant_id, incident_id, linked_at) \
             SELECT id, tenant_id, $3, $4 FROM alerts WHERE id = $1 AND tenant_id = $2",
        )
        .bind(alert.to_string())
        .bind(row.tenant.to_string())
        .bind(row.id.to_string())
        .bind(row.updated_at.0)
        .execute(&mut *$tx)
        .await
        .map_err(|e| match crate::map_err(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("alert {alert} belongs to another incident already"))
            }
            e => e,
        })?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
    }};
}

#[derive(Debug, Deserialize)]
struct DueRow {
    id: String,
    tenant_id: String,
    next_due_at: i64,
}

pub(crate) fn body_text(row: &IncidentRow) -> StoreResult<String> {
    serde_json::to_string(&row.body)
        .map_err(|e| StoreError::Other(format!("cannot encode the incident: {e}")))
}

#[async_trait]
impl IncidentStore for SqlStore {
    async fn create_incident(
        &self,
        ctx: TenantCtx,
        row: &IncidentRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = body_text(row)?;
        with_tx!(self, |tx| {
            let sql = format!(
                "INSERT INTO incidents (id, tenant_id, title, severity, category, step, \
                 responsible, opened_at, updated_at, acknowledged_at, resolved_at, closed_at, \
                 next_due_at, breaches, version, body) SELECT $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17 FROM tenants WHERE id = $3 AND \
                 {}",
                VISIBLE.replace("tenant_id = $1", "$3 = $1")
            );
            let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(row.id.to_string())
                .bind(row.tenant.to_string())
                .bind(&row.title)
                .bind(&row.severity)
                .bind(&row.category)
                .bind(&row.step)
                .bind(&row.responsible)
                .bind(row.opened_at.0)
                .bind(row.updated_at.0)
                .bind(row.acknowledged_at.map(|t| t.0))
                .bind(row.resolved_at.map(|t| t.0))
                .bind(row.closed_at.map(|t| t.0))
                .bind(row.next_due_at.map(|t| t.0))
                .bind(row.breaches)
                .bind(row.version)
                .bind(&body)
                .execute(&mut *tx)
                .await
                .db()?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn get_incident(&self, ctx: TenantCtx, id: Uuid) -> StoreResult<IncidentRow> {
        let mut cols: Vec<&str> = SUMMARY_COLS.to_vec();
        cols.push("body");
        let sql = format!(
            "SELECT {} FROM incidents WHERE id = $2 AND {VISIBLE}",
            cols.join(", ")
        );
        let rows: Vec<IncidentRow> = self
            .records::<Row, IncidentRow>(
                &sql,
                &cols,
                "id",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(id.to_string()),
                ],
            )
            .await?;
        rows.into_iter().next().ok_or(StoreError::NotFound)
    }

    async fn update_incident(
        &self,
        ctx: TenantCtx,
        row: &IncidentRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = body_text(row)?;
        with_tx!(self, |tx| {
            let done = update_incident_row!(tx, ctx, row, &body);
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(
                    "the incident was changed by someone else meanwhile; reload and try again"
                        .into(),
                ));
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn list_incidents(
        &self,
        ctx: TenantCtx,
        filter: &IncidentFilter,
        page: &Page,
    ) -> StoreResult<Vec<IncidentRow>> {
        let mut sql = format!(
            "SELECT {} FROM incidents WHERE {VISIBLE}",
            SUMMARY_COLS.join(", ")
        );
        let mut binds = vec![Bind::Text(ctx.tenant.to_string())];
        let mut push = |cond: &str, b: Bind| {
            binds.push(b);
            sql.push_str(&format!(" AND {cond} ${}", binds.len()));
        };
        if let Some(t) = filter.tenant {
            push("tenant_id =", Bind::Text(t.to_string()));
        }
        if let Some(s) = &filter.step {
            push("step =", Bind::Text(s.clone()));
        }
        if filter.open_only {
            push("step <>", Bind::Text("recorded".into()));
        }
        if let Some(t) = filter.opened_since {
            push("opened_at >=", Bind::I64(t.0));
        }
        if let Some(after) = page.after.as_deref().filter(|a| !a.is_empty()) {
            push("id <", Bind::Text(after.to_string()));
        }
        let limit = page.limit.clamp(1, 100_000);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        self.records::<Row, IncidentRow>(&sql, SUMMARY_COLS, "id DESC", &binds)
            .await
    }

    async fn due_incidents(
        &self,
        ctx: TenantCtx,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(TenantId, Uuid, Timestamp)>> {
        let limit = limit.clamp(1, 10_000);
        let sql = format!(
            "SELECT id, tenant_id, next_due_at FROM incidents WHERE next_due_at IS NOT NULL AND \
             next_due_at <= $2 AND {VISIBLE} ORDER BY next_due_at LIMIT {limit}"
        );
        let rows: Vec<DueRow> = self
            .select_rows(
                &sql,
                &["id", "tenant_id", "next_due_at"],
                "next_due_at",
                &[Bind::Text(ctx.tenant.to_string()), Bind::I64(now.0)],
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    TenantId(uuid("tenant id", &r.tenant_id)?),
                    uuid("incident id", &r.id)?,
                    Timestamp(r.next_due_at),
                ))
            })
            .collect()
    }

    async fn create_incident_from_alerts(
        &self,
        ctx: TenantCtx,
        row: &IncidentRow,
        alerts: &[Uuid],
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = body_text(row)?;
        with_tx!(self, |tx| {
            let sql = format!(
                "INSERT INTO incidents (id, tenant_id, title, severity, category, step, \
                 responsible, opened_at, updated_at, acknowledged_at, resolved_at, closed_at, \
                 next_due_at, breaches, version, body) SELECT $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17 FROM tenants WHERE id = $3 AND \
                 {}",
                VISIBLE.replace("tenant_id = $1", "$3 = $1")
            );
            let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(row.id.to_string())
                .bind(row.tenant.to_string())
                .bind(&row.title)
                .bind(&row.severity)
                .bind(&row.category)
                .bind(&row.step)
                .bind(&row.responsible)
                .bind(row.opened_at.0)
                .bind(row.updated_at.0)
                .bind(row.acknowledged_at.map(|t| t.0))
                .bind(row.resolved_at.map(|t| t.0))
                .bind(row.closed_at.map(|t| t.0))
                .bind(row.next_due_at.map(|t| t.0))
                .bind(row.breaches)
                .bind(row.version)
                .bind(&body)
                .execute(&mut *tx)
                .await
                .db()?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
            for a in alerts {
                link_alert!(tx, row, a);
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn update_incident_with_alerts(
        &self,
        ctx: TenantCtx,
        row: &IncidentRow,
        alerts: &[Uuid],
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = body_text(row)?;
        with_tx!(self, |tx| {
            let done = update_incident_row!(tx, ctx, row, &body);
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(
                    "the incident was changed by someone else meanwhile; reload and try again"
                        .into(),
                ));
            }
            for a in alerts {
                link_alert!(tx, row, a);
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn alert_links(&self, ctx: TenantCtx, ids: &[Uuid]) -> StoreResult<Vec<AlertLink>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > 1000 {
            return Err(StoreError::Other("at most 1000 alerts at once".into()));
        }
        let mut binds = vec![Bind::Text(ctx.tenant.to_string())];
        let mut marks = Vec::with_capacity(ids.len());
        for id in ids {
            binds.push(Bind::Text(id.to_string()));
            marks.push(format!("${}", binds.len()));
        }
        let sql = format!(
            "SELECT a.id AS alert_id, a.tenant_id AS tenant_id, l.incident_id AS incident_id \
             FROM alerts a LEFT JOIN incident_alerts l ON l.alert_id = a.id \
             WHERE a.id IN ({}) AND (a.tenant_id = $1 OR EXISTS (SELECT 1 FROM tenants p \
             WHERE p.id = $1 AND p.kind = 'provider')) ORDER BY a.id",
            marks.join(", ")
        );
        let rows: Vec<LinkRow> = self
            .select_rows(
                &sql,
                &["alert_id", "tenant_id", "incident_id"],
                "alert_id",
                &binds,
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AlertLink {
                    alert: uuid("alert id", &r.alert_id)?,
                    tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
                    incident: match r.incident_id {
                        Some(i) => Some(uuid("incident id", &i)?),
                        None => None,
                    },
                })
            })
            .collect()
    }

    async fn get_sla_policy(&self, ctx: TenantCtx) -> StoreResult<Option<SlaPolicyRow>> {
        let cols = ["tenant_id", "updated_at", "updated_by", "body"];
        let rows: Vec<SlaSqlRow> = self
            .select_rows(
                "SELECT tenant_id, updated_at, updated_by, body FROM sla_policies \
                 WHERE tenant_id = $1",
                &cols,
                "tenant_id",
                &[Bind::Text(ctx.tenant.to_string())],
            )
            .await?;
        match rows.into_iter().next() {
            None => Ok(None),
            Some(r) => Ok(Some(SlaPolicyRow {
                tenant: TenantId(uuid("tenant id", &r.tenant_id)?),
                updated_at: Timestamp(r.updated_at),
                updated_by: r.updated_by,
                body: serde_json::from_str(&r.body)
                    .map_err(|e| StoreError::Other(format!("corrupt SLA policy: {e}")))?,
            })),
        }
    }

    async fn put_sla_policy(
        &self,
        ctx: TenantCtx,
        row: &SlaPolicyRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = serde_json::to_string(&row.body)
            .map_err(|e| StoreError::Other(format!("cannot encode the SLA policy: {e}")))?;
        with_tx!(self, |tx| {
            let sql = format!(
                "INSERT INTO sla_policies (tenant_id, updated_at, updated_by, body) \
                 SELECT $2, $3, $4, $5 FROM tenants WHERE id = $2 AND {} \
                 ON CONFLICT (tenant_id) DO UPDATE SET updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by, body = excluded.body",
                VISIBLE.replace("tenant_id = $1", "$2 = $1")
            );
            let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ctx.tenant.to_string())
                .bind(row.tenant.to_string())
                .bind(row.updated_at.0)
                .bind(&row.updated_by)
                .bind(&body)
                .execute(&mut *tx)
                .await
                .db()?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn put_playbook(
        &self,
        ctx: TenantCtx,
        name: &str,
        updated_at: Timestamp,
        body: &serde_json::Value,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = serde_json::to_string(body)
            .map_err(|e| StoreError::Other(format!("cannot encode the playbook: {e}")))?;
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO playbooks (tenant_id, name, updated_at, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, name) DO UPDATE SET updated_at = excluded.updated_at, \
                 body = excluded.body",
            )
            .bind(ctx.tenant.to_string())
            .bind(name)
            .bind(updated_at.0)
            .bind(&body)
            .execute(&mut *tx)
            .await
            .db()?;
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn list_playbooks(&self, ctx: TenantCtx) -> StoreResult<Vec<serde_json::Value>> {
        #[derive(Deserialize)]
        struct R {
            body: String,
        }
        let rows: Vec<R> = self
            .select_rows(
                "SELECT name, body FROM playbooks WHERE tenant_id = $1 ORDER BY name LIMIT 1000",
                &["name", "body"],
                "name",
                &[Bind::Text(ctx.tenant.to_string())],
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                serde_json::from_str(&r.body)
                    .map_err(|e| StoreError::Other(format!("corrupt playbook: {e}")))
            })
            .collect()
    }

    async fn create_plan(
        &self,
        ctx: TenantCtx,
        row: &PlanRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = plan_body(row)?;
        with_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO emergency_plans (tenant_id, name, version, review_due_at, \
                 updated_at, body) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(ctx.tenant.to_string())
            .bind(&row.name)
            .bind(row.version)
            .bind(row.review_due_at.0)
            .bind(row.updated_at.0)
            .bind(&body)
            .execute(&mut *tx)
            .await
            .map_err(|e| match crate::map_err(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("a plan named {} exists", row.name))
                }
                e => e,
            })?;
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn get_plan(&self, ctx: TenantCtx, name: &str) -> StoreResult<PlanRow> {
        let sql = format!(
            "SELECT {} FROM emergency_plans WHERE tenant_id = $1 AND name = $2",
            PLAN_COLS.join(", ")
        );
        let rows: Vec<PlanRow> = self
            .records::<PlanSqlRow, PlanRow>(
                &sql,
                PLAN_COLS,
                "name",
                &[
                    Bind::Text(ctx.tenant.to_string()),
                    Bind::Text(name.to_string()),
                ],
            )
            .await?;
        rows.into_iter().next().ok_or(StoreError::NotFound)
    }

    async fn update_plan(
        &self,
        ctx: TenantCtx,
        row: &PlanRow,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let body = plan_body(row)?;
        with_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE emergency_plans SET version = $3, review_due_at = $4, updated_at = $5, \
                 body = $6 WHERE tenant_id = $1 AND name = $2 AND version = $3 - 1",
            )
            .bind(ctx.tenant.to_string())
            .bind(&row.name)
            .bind(row.version)
            .bind(row.review_due_at.0)
            .bind(row.updated_at.0)
            .bind(&body)
            .execute(&mut *tx)
            .await
            .db()?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(
                    "the plan was changed by someone else meanwhile; reload and try again".into(),
                ));
            }
            for e in audit {
                insert_audit!(&mut *tx, e);
            }
        });
        Ok(())
    }

    async fn list_plans(&self, ctx: TenantCtx) -> StoreResult<Vec<PlanRow>> {
        let sql = format!(
            "SELECT {} FROM emergency_plans WHERE tenant_id = $1 ORDER BY name LIMIT 1000",
            PLAN_COLS.join(", ")
        );
        self.records::<PlanSqlRow, PlanRow>(
            &sql,
            PLAN_COLS,
            "name",
            &[Bind::Text(ctx.tenant.to_string())],
        )
        .await
    }
}
