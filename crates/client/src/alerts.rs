//! Detection rules and alerts: `/api/v1/tenants/{tenant}/rules…`, `…/alerts…`.

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// A stored rule file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleInfo {
    pub tenant: String,
    pub rule_id: String,
    pub title: String,
    pub level: Option<String>,
    pub file: String,
    pub rules: u32,
    pub enabled: bool,
    pub updated_at: String,
}

/// One rule matching one event of a sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleMatch {
    pub event_index: usize,
    pub rule_id: String,
    pub title: String,
    pub level: Option<String>,
}

/// An alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertInfo {
    pub id: String,
    pub tenant: String,
    pub rule_id: String,
    pub provider_rule: bool,
    pub title: String,
    pub severity: String,
    pub group_key: String,
    pub asset: Option<String>,
    pub status: String,
    pub count: u64,
    pub first_event_at: String,
    pub last_event_at: String,
    pub alert_at: String,
    pub last_seen_at: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
    pub note: Option<String>,
    /// Only in `alert show`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertPage {
    pub items: Vec<AlertInfo>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuppressionInfo {
    pub id: String,
    pub rule_id: String,
    pub group_key: Option<String>,
    pub until: String,
    pub reason: String,
    pub created_by: String,
}

#[derive(Serialize)]
struct FileBody<'a> {
    name: &'a str,
    yaml: &'a str,
}

#[derive(Serialize)]
struct FilesBody<'a> {
    files: Vec<FileBody<'a>>,
}

impl Client {
    /// `POST /api/v1/tenants/{tenant}/rules` with several files (all or nothing).
    pub async fn upload_rules(
        &self,
        tenant: &str,
        files: &[(String, String)],
    ) -> Result<Vec<RuleInfo>, ClientError> {
        let body = FilesBody {
            files: files
                .iter()
                .map(|(n, y)| FileBody { name: n, yaml: y })
                .collect(),
        };
        self.post(self.url(&["tenants", tenant, "rules"], &[]), &body)
            .await
    }

    /// `GET /api/v1/tenants/{tenant}/rules`.
    pub async fn list_rules(&self, tenant: &str) -> Result<Vec<RuleInfo>, ClientError> {
        self.get(self.url(&["tenants", tenant, "rules"], &[])).await
    }

    /// `POST /api/v1/tenants/{tenant}/rules/{rule}/enable|disable`.
    pub async fn set_rule_enabled(
        &self,
        tenant: &str,
        rule: &str,
        enabled: bool,
    ) -> Result<(), ClientError> {
        let verb = if enabled { "enable" } else { "disable" };
        self.send(
            self.http
                .post(self.url(&["tenants", tenant, "rules", rule, verb], &[])),
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/tenants/{tenant}/rules-test` with a JSON-lines sample.
    pub async fn test_rules(
        &self,
        tenant: &str,
        sample: Vec<u8>,
    ) -> Result<Vec<SampleMatch>, ClientError> {
        self.json(
            self.http
                .post(self.url(&["tenants", tenant, "rules-test"], &[]))
                .header("content-type", "application/x-ndjson")
                .body(sample),
        )
        .await
    }

    /// `GET /api/v1/tenants/{tenant}/alerts`: one page.
    pub async fn list_alerts(
        &self,
        tenant: &str,
        status: Option<&str>,
        severity: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<AlertPage, ClientError> {
        self.get(self.url(
            &["tenants", tenant, "alerts"],
            &[
                ("status", status.map(str::to_string)),
                ("severity", severity.map(str::to_string)),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor.map(str::to_string)),
            ],
        ))
        .await
    }

    /// `GET /api/v1/tenants/{tenant}/alerts/{id}`.
    pub async fn get_alert(&self, tenant: &str, id: &str) -> Result<AlertInfo, ClientError> {
        self.get(self.url(&["tenants", tenant, "alerts", id], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/alerts/{id}/ack|close`.
    pub async fn alert_verb(
        &self,
        tenant: &str,
        id: &str,
        verb: &str,
        note: Option<&str>,
    ) -> Result<AlertInfo, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "alerts", id, verb], &[]),
            &serde_json::json!({ "note": note }),
        )
        .await
    }

    /// `POST /api/v1/tenants/{tenant}/alert-suppressions`.
    pub async fn suppress_alerts(
        &self,
        tenant: &str,
        rule_id: &str,
        group_key: Option<&str>,
        minutes: u32,
        reason: &str,
    ) -> Result<SuppressionInfo, ClientError> {
        self.post(
            self.url(&["tenants", tenant, "alert-suppressions"], &[]),
            &serde_json::json!({
                "rule_id": rule_id, "group_key": group_key, "minutes": minutes, "reason": reason
            }),
        )
        .await
    }
}
