//! Notification: `/api/v1/tenants/{tenant}/notify/…` (channels, outbox, dead letters).

use serde::{Deserialize, Serialize};

use crate::{Client, ClientError, Page, collect_pages};

/// A notification channel as the server shows it (webhook URLs cut to scheme and host).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Channel {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub kind: String,
    pub destination: String,
    pub format: Option<String>,
    #[serde(default)]
    pub person: Option<String>,
    #[serde(default)]
    pub security_contact: bool,
    #[serde(default)]
    pub hours: String,
    #[serde(default)]
    pub min_severity: Option<String>,
    #[serde(default)]
    pub sources: Vec<String>,
    pub created_at: String,
}

/// A new channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewChannel {
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(default)]
    pub security_contact: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// A created channel and its webhook signing secret (shown once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedChannel {
    pub channel: Channel,
    pub secret: Option<String>,
}

/// A message of the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyMessage {
    pub id: String,
    pub tenant: String,
    pub channel_id: String,
    pub channel: Option<String>,
    pub source: String,
    pub severity: Option<String>,
    pub subject: String,
    pub status: String,
    pub attempts: u32,
    pub event_at: String,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub latency_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// A weakness looked for by the affected-tenant check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Weakness {
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub os: bool,
}

/// What the affected-tenant check did (provider staff only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AffectedCheck {
    pub reference: String,
    pub weaknesses: Vec<Weakness>,
    pub tenants: Vec<String>,
    pub messages: usize,
    pub unreachable: Vec<String>,
}

#[derive(Serialize)]
struct AffectedBody<'a> {
    weaknesses: &'a [Weakness],
}

/// The notification time of a tenant's delivered messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyStats {
    pub tenant: String,
    pub delivered: usize,
    pub mean_ms: f64,
    pub median_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
}

impl Client {
    /// `GET /api/v1/tenants/{tenant}/notify/stats`.
    pub async fn notify_stats(&self, tenant: &str) -> Result<NotifyStats, ClientError> {
        self.get(self.url(&["tenants", tenant, "notify", "stats"], &[]))
            .await
    }

    /// `POST /api/v1/incidents/{id}/affected-tenants`.
    pub async fn check_affected_tenants(
        &self,
        incident: &str,
        weaknesses: &[Weakness],
    ) -> Result<AffectedCheck, ClientError> {
        self.post(
            self.url(&["incidents", incident, "affected-tenants"], &[]),
            &AffectedBody { weaknesses },
        )
        .await
    }

    /// `GET /api/v1/tenants/{tenant}/notify/channels`.
    pub async fn list_channels(&self, tenant: &str) -> Result<Vec<Channel>, ClientError> {
        self.get(self.url(&["tenants", tenant, "notify", "channels"], &[]))
            .await
    }

    /// `POST /api/v1/tenants/{tenant}/notify/channels`.
    pub async fn add_channel(
        &self,
        tenant: &str,
        c: &NewChannel,
    ) -> Result<CreatedChannel, ClientError> {
        self.post(self.url(&["tenants", tenant, "notify", "channels"], &[]), c)
            .await
    }

    /// `DELETE /api/v1/tenants/{tenant}/notify/channels/{channel}`.
    pub async fn remove_channel(&self, tenant: &str, channel: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .delete(self.url(&["tenants", tenant, "notify", "channels", channel], &[])),
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/tenants/{tenant}/notify/channels/{channel}/test`.
    pub async fn test_channel(
        &self,
        tenant: &str,
        channel: &str,
    ) -> Result<NotifyMessage, ClientError> {
        self.post_empty(self.url(
            &["tenants", tenant, "notify", "channels", channel, "test"],
            &[],
        ))
        .await
    }

    /// `GET /api/v1/tenants/{tenant}/notify/outbox` (or `dead-letters` when `dead`): one page.
    pub async fn list_messages(
        &self,
        tenant: &str,
        dead: bool,
        status: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<NotifyMessage>, ClientError> {
        let last = if dead { "dead-letters" } else { "outbox" };
        self.get(self.url(
            &["tenants", tenant, "notify", last],
            &[
                ("status", status.map(str::to_string)),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor.map(str::to_string)),
            ],
        ))
        .await
    }

    /// Every message of the outbox (or the dead letters), newest first, following cursors.
    pub async fn all_messages(
        &self,
        tenant: &str,
        dead: bool,
        status: Option<&str>,
    ) -> Result<Vec<NotifyMessage>, ClientError> {
        collect_pages(None, |c| async move {
            self.list_messages(tenant, dead, status, Some(1000), c.as_deref())
                .await
        })
        .await
    }

    /// `POST /api/v1/tenants/{tenant}/notify/outbox/{id}/{retry|discard}`.
    pub async fn message_action(
        &self,
        tenant: &str,
        id: &str,
        verb: &str,
    ) -> Result<NotifyMessage, ClientError> {
        self.post_empty(self.url(&["tenants", tenant, "notify", "outbox", id, verb], &[]))
            .await
    }
}
