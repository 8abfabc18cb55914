//! Security events: `/api/v1/tenants/{tenant}/events…` and `…/event-retention`.

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// The answer to an ingested batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReceipt {
    pub batch: String,
    pub accepted: u64,
    pub attributed: u64,
    #[serde(default)]
    pub alerts_raised: u64,
    #[serde(default)]
    pub alert_matches: u64,
    pub replayed: bool,
}

/// A stored event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: String,
    pub tenant: String,
    pub time: String,
    pub received_at: String,
    pub host: Option<String>,
    pub source: Option<String>,
    pub severity: String,
    pub message: Option<String>,
    pub asset: Option<String>,
    pub batch: String,
    pub event: serde_json::Value,
}

/// A page of events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventPage {
    pub items: Vec<EventRecord>,
    pub next_cursor: Option<String>,
}

/// A tenant's event retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retention {
    pub tenant: String,
    pub days: u32,
    pub default: bool,
}

/// An event search: `(parameter, value)` pairs (`field` may repeat; see the API).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub pairs: Vec<(String, String)>,
}

/// What a failed ingestion says about retrying.
#[derive(Debug)]
pub enum IngestError {
    /// The server is saturated: retry after this many seconds.
    Busy(u64),
    Other(ClientError),
}

/// A tenant's monitoring health.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitoringHealth {
    pub tenant: String,
    pub assets: u64,
    pub silent: u64,
    pub open_alerts: u64,
    pub open_by_severity: Vec<SeverityCount>,
    pub items: Vec<AssetMonitoringHealth>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeverityCount {
    pub severity: String,
    pub count: u64,
}

/// One asset's monitoring health.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssetMonitoringHealth {
    pub name: String,
    pub kind: String,
    pub criticality: String,
    pub health: String,
    pub last_data_at: Option<String>,
    pub silent_after_minutes: u32,
    pub silent: bool,
    pub open_alerts: u64,
}

impl Client {
    /// `POST /api/v1/tenants/{tenant}/events` with a JSON-lines body.
    pub async fn ingest_events(
        &self,
        tenant: &str,
        body: Vec<u8>,
        idempotency_key: Option<&str>,
    ) -> Result<IngestReceipt, IngestError> {
        let mut req = self
            .http
            .post(self.url(&["tenants", tenant, "events"], &[]))
            .header("content-type", "application/x-ndjson")
            .body(body);
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| IngestError::Other(crate::transport_error(&e)))?;
        let status = resp.status().as_u16();
        if status == 503 || status == 429 {
            let secs = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            return Err(IngestError::Busy(secs.clamp(1, 60)));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| IngestError::Other(crate::transport_error(&e)))?;
        if !(200..300).contains(&status) {
            return Err(IngestError::Other(crate::parse_error(status, &body)));
        }
        serde_json::from_slice(&body).map_err(|e| {
            IngestError::Other(ClientError::Decode(format!(
                "unexpected answer to an ingestion: {e}"
            )))
        })
    }

    /// `GET /api/v1/tenants/{tenant}/events`: one page.
    pub async fn search_events(
        &self,
        tenant: &str,
        q: &EventQuery,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<EventPage, ClientError> {
        let mut query: Vec<(&str, Option<String>)> = q
            .pairs
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.clone())))
            .collect();
        query.push(("limit", limit.map(|l| l.to_string())));
        query.push(("cursor", cursor.map(str::to_string)));
        self.get(self.url(&["tenants", tenant, "events"], &query))
            .await
    }

    /// `GET /api/v1/tenants/{tenant}/events/{id}`.
    pub async fn get_event(&self, tenant: &str, id: &str) -> Result<EventRecord, ClientError> {
        self.get(self.url(&["tenants", tenant, "events", id], &[]))
            .await
    }

    /// `GET /api/v1/tenants/{tenant}/event-retention`.
    pub async fn event_retention(&self, tenant: &str) -> Result<Retention, ClientError> {
        self.get(self.url(&["tenants", tenant, "event-retention"], &[]))
            .await
    }

    /// `GET /api/v1/tenants/{tenant}/monitoring-health`.
    pub async fn monitoring_health(&self, tenant: &str) -> Result<MonitoringHealth, ClientError> {
        self.get(self.url(&["tenants", tenant, "monitoring-health"], &[]))
            .await
    }

    /// `PUT /api/v1/tenants/{tenant}/event-retention`.
    pub async fn set_event_retention(
        &self,
        tenant: &str,
        days: u32,
    ) -> Result<Retention, ClientError> {
        self.json(
            self.http
                .put(self.url(&["tenants", tenant, "event-retention"], &[]))
                .json(&serde_json::json!({ "days": days })),
        )
        .await
    }
}
