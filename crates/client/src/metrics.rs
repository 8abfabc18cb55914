//! Metrics: `/api/v1/tenants/{tenant}/assets/{asset}/metrics…` and `…/metric-rules…`. Answers
//! are the server's JSON documents (see the OpenAPI schemas `TargetBody`, `QueryBody`,
//! `RuleBody`).

use serde_json::{Value, json};

use crate::{Client, ClientError};

impl Client {
    /// `PUT …/assets/{asset}/metrics-target`.
    pub async fn set_metrics_target(
        &self,
        tenant: &str,
        asset: &str,
        url: &str,
        interval_secs: u32,
    ) -> Result<Value, ClientError> {
        self.json(
            self.http
                .put(self.url(&["tenants", tenant, "assets", asset, "metrics-target"], &[]))
                .json(&json!({"url": url, "interval_secs": interval_secs})),
        )
        .await
    }

    /// `GET …/assets/{asset}/metrics-target`.
    pub async fn metrics_target(&self, tenant: &str, asset: &str) -> Result<Value, ClientError> {
        self.get(self.url(&["tenants", tenant, "assets", asset, "metrics-target"], &[]))
            .await
    }

    /// `DELETE …/assets/{asset}/metrics-target`.
    pub async fn remove_metrics_target(
        &self,
        tenant: &str,
        asset: &str,
    ) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "assets", asset, "metrics-target"], &[])),
        )
        .await
        .map(|_| ())
    }

    /// `POST …/assets/{asset}/metrics-target/scrape`.
    pub async fn scrape_now(&self, tenant: &str, asset: &str) -> Result<Value, ClientError> {
        self.post_empty(self.url(
            &[
                "tenants",
                tenant,
                "assets",
                asset,
                "metrics-target",
                "scrape",
            ],
            &[],
        ))
        .await
    }

    /// `GET …/assets/{asset}/metrics`: metric names and their series counts.
    pub async fn metric_names(&self, tenant: &str, asset: &str) -> Result<Value, ClientError> {
        self.get(self.url(&["tenants", tenant, "assets", asset, "metrics"], &[]))
            .await
    }

    /// `GET …/assets/{asset}/metrics/{metric}?from&to&points`.
    pub async fn metric_query(
        &self,
        tenant: &str,
        asset: &str,
        metric: &str,
        from: Option<String>,
        to: Option<String>,
        points: Option<u32>,
    ) -> Result<Value, ClientError> {
        self.get(self.url(
            &["tenants", tenant, "assets", asset, "metrics", metric],
            &[
                ("from", from),
                ("to", to),
                ("points", points.map(|p| p.to_string())),
            ],
        ))
        .await
    }

    /// `GET …/metric-rules`.
    pub async fn metric_rules(&self, tenant: &str) -> Result<Value, ClientError> {
        self.get(self.url(&["tenants", tenant, "metric-rules"], &[]))
            .await
    }

    /// `POST …/metric-rules` (`rule` as in the schema `RuleInputBody`).
    pub async fn create_metric_rule(
        &self,
        tenant: &str,
        rule: &Value,
    ) -> Result<Value, ClientError> {
        self.post(self.url(&["tenants", tenant, "metric-rules"], &[]), rule)
            .await
    }

    /// `PUT …/metric-rules/{rule}`.
    pub async fn update_metric_rule(
        &self,
        tenant: &str,
        name: &str,
        rule: &Value,
    ) -> Result<Value, ClientError> {
        self.json(
            self.http
                .put(self.url(&["tenants", tenant, "metric-rules", name], &[]))
                .json(rule),
        )
        .await
    }

    /// `DELETE …/metric-rules/{rule}`.
    pub async fn delete_metric_rule(&self, tenant: &str, name: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "metric-rules", name], &[])),
        )
        .await
        .map(|_| ())
    }

    /// `GET …/alert-escalation`.
    pub async fn alert_escalation(&self, tenant: &str) -> Result<Value, ClientError> {
        self.get(self.url(&["tenants", tenant, "alert-escalation"], &[]))
            .await
    }

    /// `PUT …/alert-escalation` (`policy` as in the schema `EscalationBody`).
    pub async fn set_alert_escalation(
        &self,
        tenant: &str,
        policy: &Value,
    ) -> Result<Value, ClientError> {
        self.json(
            self.http
                .put(self.url(&["tenants", tenant, "alert-escalation"], &[]))
                .json(policy),
        )
        .await
    }

    /// `DELETE …/alert-escalation`.
    pub async fn remove_alert_escalation(&self, tenant: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "alert-escalation"], &[])),
        )
        .await
        .map(|_| ())
    }
}
