//! Incidents (`/api/v1/incidents`, X.1642 8.6).

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// An incident in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSummary {
    pub id: String,
    pub tenant_id: String,
    pub tenant: String,
    pub title: String,
    pub severity: String,
    pub category: String,
    pub step: String,
    pub responsible: String,
    pub opened_at: String,
    pub acknowledged_at: Option<String>,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
    pub next_due_at: Option<String>,
    pub breaches: i64,
}

/// What opening an incident takes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpenIncident {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub title: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    pub category: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub alerts: Vec<String>,
}

/// Filters of [`Client::list_incidents`].
#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    pub tenant: Option<String>,
    pub step: Option<String>,
    pub open: bool,
    pub limit: Option<u32>,
}

impl Client {
    /// `GET /api/v1/incidents`.
    pub async fn list_incidents(
        &self,
        q: &IncidentQuery,
    ) -> Result<Vec<IncidentSummary>, ClientError> {
        self.get(self.url(
            &["incidents"],
            &[
                ("tenant", q.tenant.clone()),
                ("step", q.step.clone()),
                ("open", q.open.then(|| "true".to_string())),
                ("limit", q.limit.map(|l| l.to_string())),
            ],
        ))
        .await
    }

    /// `POST /api/v1/incidents`: the new incident (JSON, as the server returns it).
    pub async fn open_incident(
        &self,
        req: &OpenIncident,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(self.url(&["incidents"], &[]), req).await
    }

    /// `POST /api/v1/incidents/from-alerts` with `{alerts, title?, severity?, category?,
    /// responsible?}`: one incident from one or many alerts (merged).
    pub async fn open_incident_from_alerts(
        &self,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(self.url(&["incidents", "from-alerts"], &[]), body)
            .await
    }

    /// `GET /api/v1/sla/policy?tenant=`: the SLA policy in force for a tenant.
    pub async fn sla_policy(&self, tenant: Option<&str>) -> Result<serde_json::Value, ClientError> {
        self.get(self.url(
            &["sla", "policy"],
            &[("tenant", tenant.map(str::to_string))],
        ))
        .await
    }

    /// `PUT /api/v1/sla/policy` with `{tenant?, targets?, hours?, escalation?, auto_open?}`.
    pub async fn set_sla_policy(
        &self,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.json(self.http.put(self.url(&["sla", "policy"], &[])).json(body))
            .await
    }

    /// `GET /api/v1/playbooks`.
    pub async fn playbooks(&self) -> Result<Vec<serde_json::Value>, ClientError> {
        self.get(self.url(&["playbooks"], &[])).await
    }

    /// `POST /api/v1/playbooks` with the playbook's JSON.
    pub async fn put_playbook(
        &self,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(self.url(&["playbooks"], &[]), body).await
    }

    /// `GET /api/v1/incidents/{id}`: the whole incident with its history.
    pub async fn get_incident(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        self.get(self.url(&["incidents", id], &[])).await
    }

    /// `POST /api/v1/incidents/{id}/{verb}` with `body` (see the API documentation).
    pub async fn incident_command(
        &self,
        id: &str,
        verb: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(self.url(&["incidents", id, verb], &[]), body)
            .await
    }

    /// `POST /api/v1/incidents/{id}/tasks/{n}/done`.
    pub async fn complete_incident_task(
        &self,
        id: &str,
        n: u32,
    ) -> Result<serde_json::Value, ClientError> {
        self.post_empty(self.url(&["incidents", id, "tasks", &n.to_string(), "done"], &[]))
            .await
    }

    /// `GET /api/v1/incidents/{id}/report?format=html|pdf`: the report's bytes.
    pub async fn incident_report(&self, id: &str, format: &str) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .send(self.http.get(self.url(
                &["incidents", id, "report"],
                &[("format", Some(format.to_string()))],
            )))
            .await?;
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// `GET /api/v1/incidents/{id}/response-report`: the response report of an activated plan.
    pub async fn incident_response_report(
        &self,
        id: &str,
        plan: Option<&str>,
        format: &str,
    ) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .send(self.http.get(self.url(
                &["incidents", id, "response-report"],
                &[
                    ("plan", plan.map(str::to_string)),
                    ("format", Some(format.to_string())),
                ],
            )))
            .await?;
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// `GET /api/v1/incidents/stats`: MTTA/MTTR per tenant and month.
    pub async fn incident_stats(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, ClientError> {
        self.get(self.url(
            &["incidents", "stats"],
            &[("tenant", tenant.map(str::to_string))],
        ))
        .await
    }

    /// `GET /api/v1/plans`: the emergency response plans.
    pub async fn list_plans(&self) -> Result<Vec<serde_json::Value>, ClientError> {
        self.get(self.url(&["plans"], &[])).await
    }

    /// `GET /api/v1/plans/{name}`.
    pub async fn get_plan(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.get(self.url(&["plans", name], &[])).await
    }

    /// `POST /api/v1/plans` with `{name, content}`.
    pub async fn create_plan(
        &self,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(self.url(&["plans"], &[]), body).await
    }

    /// `PUT /api/v1/plans/{name}` with `{content, reason}`: a new version.
    pub async fn revise_plan(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.json(self.http.put(self.url(&["plans", name], &[])).json(body))
            .await
    }

    /// `GET /api/v1/plans/{name}/diff`: two versions compared line by line.
    pub async fn plan_diff(
        &self,
        name: &str,
        from: Option<u32>,
        to: Option<u32>,
    ) -> Result<serde_json::Value, ClientError> {
        self.get(self.url(
            &["plans", name, "diff"],
            &[
                ("from", from.map(|v| v.to_string())),
                ("to", to.map(|v| v.to_string())),
            ],
        ))
        .await
    }

    /// `POST /api/v1/plans/{name}/review-tasks/{n}/done`.
    pub async fn plan_review_task_done(
        &self,
        name: &str,
        n: u32,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(
            self.url(
                &["plans", name, "review-tasks", &n.to_string(), "done"],
                &[],
            ),
            &serde_json::json!({}),
        )
        .await
    }

    /// `GET /api/v1/drills/due`: drills and reviews due now.
    pub async fn drills_due(&self) -> Result<Vec<serde_json::Value>, ClientError> {
        self.get(self.url(&["drills", "due"], &[])).await
    }

    /// `GET /api/v1/plans/{name}/drills/{n}/report`: a drill report.
    pub async fn drill_report(
        &self,
        name: &str,
        n: u32,
        format: &str,
    ) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .send(self.http.get(self.url(
                &["plans", name, "drills", &n.to_string(), "report"],
                &[("format", Some(format.to_string()))],
            )))
            .await?;
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// `POST /api/v1/plans/{name}/{verb}` (`drills`, `review`, `changes`, `schedule`).
    pub async fn plan_action(
        &self,
        name: &str,
        verb: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post(self.url(&["plans", name, verb], &[]), body).await
    }
}
