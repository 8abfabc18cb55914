//! Notification (X.1642 8.6.1 "detecting and alarming", 7.2.2.6(2) security event notification
//! and notification time): per-tenant channels — e-mail over SMTP, webhooks signed with
//! HMAC-SHA-256 (generic JSON or Slack-compatible), SMS through an HTTP gateway — a durable
//! outbox written in the same transaction as the event that causes a message, and a delivery
//! worker with retries, exponential backoff and a dead-letter list. The time from the event to
//! the delivery is recorded on every message (the notification-time SLA).
//!
//! No HTTP server here: callers authorize through `parapet_iam::authz` (actions `NotifyRead` and
//! `NotifyManage`) and pass the resolved tenant. Time comes from the injected [`Env`], so backoff
//! and dead-lettering are tested by moving a clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use parapet_iam::{IamError, IamResult};
use parapet_store::{
    AttemptResult, AuditEvent, AuditOutcome, ChannelRecord, OutboxItem, OutboxStatus, Page, Store,
    StoreError, Tenant,
};
use parapet_types::{Actor, Env, TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

pub mod transport;
pub use transport::{
    Delivery, NetTransport, SIGNATURE_HEADER, SmsGateway, SmtpConfig, StartTls, TIMESTAMP_HEADER,
    Transport, sign,
};

/// Who acts, and from where (for the audit record).
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Caller {
    pub fn system() -> Self {
        Caller {
            actor: Actor::System,
            source_ip: None,
            user_agent: None,
        }
    }
}

/// Settings of the outbox worker.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The server's secrets key (the one TOTP seeds are sealed with): seals webhook secrets.
    pub secrets_key: [u8; 32],
    /// Attempts before a message goes to the dead-letter list.
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further failure, up to `backoff_max_ms`.
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    /// How long one attempt may take before another worker may try the message again.
    pub lease_ms: i64,
    /// Whether customer tenants may point webhooks at loopback, private or link-local addresses
    /// (off by default: a tenant must not reach the provider's internal network through
    /// Parapet). Provider channels may always.
    pub allow_private_webhooks: bool,
}

impl NotifyConfig {
    pub fn new(secrets_key: [u8; 32]) -> Self {
        NotifyConfig {
            secrets_key,
            max_attempts: 8,
            backoff_base_ms: 5_000,
            backoff_max_ms: 30 * 60_000,
            lease_ms: 60_000,
            allow_private_webhooks: false,
        }
    }

    /// The wait before the next attempt after `failures` failed ones (1-based).
    pub fn backoff(&self, failures: u32) -> i64 {
        let shift = failures.saturating_sub(1).min(30);
        self.backoff_base_ms
            .saturating_mul(1i64 << shift)
            .min(self.backoff_max_ms)
    }
}

/// The kinds of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelKind {
    Email,
    Webhook,
    Sms,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Sms => "sms",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(ChannelKind::Email),
            "webhook" => Some(ChannelKind::Webhook),
            "sms" => Some(ChannelKind::Sms),
            _ => None,
        }
    }
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookFormat {
    /// `{"id", "tenant", "source", "severity", "subject", "body", "event_at"}`.
    #[default]
    Generic,
    /// `{"text": …}`, what Slack's (and Mattermost's) incoming webhooks take.
    Slack,
}

/// A channel as a user describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    pub name: String,
    /// `email`, `webhook` or `sms`.
    pub kind: String,
    /// E-mail addresses (email) or phone numbers in international form (sms).
    #[serde(default)]
    pub to: Vec<String>,
    /// The receiver (webhook): an http:// or https:// URL.
    #[serde(default)]
    pub url: Option<String>,
    /// `generic` (the default) or `slack` (webhook).
    #[serde(default)]
    pub format: Option<String>,
    /// The person this channel reaches (a provider user name): escalation pages go to the
    /// channels of the person named in the escalation level.
    #[serde(default)]
    pub person: Option<String>,
    /// Whether the channel reaches the tenant's security contact (told about incidents and
    /// about weaknesses found elsewhere that affect it); when no channel is marked, all are.
    #[serde(default)]
    pub security_contact: bool,
    /// Service hours of the person or hotline behind the channel: `7x24` (the default) or
    /// `5x8` (Monday to Friday, 09:00 to 17:00 UTC).
    #[serde(default)]
    pub hours: Option<String>,
    /// Route: only messages of at least this severity (`low`, `medium`, `high`, `critical`).
    #[serde(default)]
    pub min_severity: Option<String>,
    /// Route: only messages from these sources — `alert` (every alert), `rule:<rule id>`,
    /// `incident`; none means every source.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// When the people behind a channel answer (X.1642 7.2.2.3: 5×8 or 7×24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Hours {
    #[default]
    #[serde(rename = "7x24")]
    AllHours,
    /// Monday to Friday, 09:00 to 17:00 UTC.
    #[serde(rename = "5x8")]
    OfficeHours,
}

impl Hours {
    pub fn as_str(self) -> &'static str {
        match self {
            Hours::AllHours => "7x24",
            Hours::OfficeHours => "5x8",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "7x24" | "24x7" => Some(Hours::AllHours),
            "5x8" => Some(Hours::OfficeHours),
            _ => None,
        }
    }
    /// Whether `t` is within the service hours.
    pub fn in_service(self, t: Timestamp) -> bool {
        match self {
            Hours::AllHours => true,
            Hours::OfficeHours => {
                let day = t.0.div_euclid(86_400_000);
                // 1970-01-01 was a Thursday: 0 = Monday.
                let weekday = (day + 3).rem_euclid(7);
                let hour = t.0.rem_euclid(86_400_000) / 3_600_000;
                weekday < 5 && (9..17).contains(&hour)
            }
        }
    }
}

/// A channel's settings (stored as JSON; the webhook secret is kept apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelConfig {
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub format: WebhookFormat,
    #[serde(default)]
    pub person: Option<String>,
    #[serde(default)]
    pub security_contact: bool,
    #[serde(default)]
    pub hours: Hours,
    #[serde(default)]
    pub min_severity: Option<String>,
    #[serde(default)]
    pub sources: Vec<String>,
}

/// Severities in order, for routes.
pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

fn severity_rank(s: &str) -> Option<usize> {
    SEVERITIES.iter().position(|x| x.eq_ignore_ascii_case(s))
}

impl ChannelConfig {
    /// Whether a message of `severity` with routing keys `keys` (e.g. `alert`, `rule:<id>`)
    /// takes this channel. A message without a severity passes the severity filter.
    pub fn routes(&self, severity: Option<&str>, keys: &[String]) -> bool {
        let severity_ok = match (
            self.min_severity.as_deref().and_then(severity_rank),
            severity.and_then(severity_rank),
        ) {
            (Some(min), Some(s)) => s >= min,
            _ => true,
        };
        let source_ok = self.sources.is_empty()
            || self
                .sources
                .iter()
                .any(|r| keys.iter().any(|k| k.eq_ignore_ascii_case(r)));
        severity_ok && source_ok
    }
}

/// A channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: Uuid,
    pub tenant: TenantId,
    pub name: String,
    pub kind: ChannelKind,
    pub config: ChannelConfig,
    pub created_at: Timestamp,
}

impl Channel {
    /// Where messages go, safe to show: a webhook's URL is cut to scheme and host (Slack's
    /// incoming-webhook URLs are themselves secrets).
    pub fn destination(&self) -> String {
        match self.kind {
            ChannelKind::Email | ChannelKind::Sms => self.config.to.join(", "),
            ChannelKind::Webhook => redact_url(self.config.url.as_deref().unwrap_or("")),
        }
    }
}

/// `https://host/…` of a URL.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            if rest.len() > host.len() {
                format!("{scheme}://{host}/…")
            } else {
                format!("{scheme}://{host}")
            }
        }
        None => "…".into(),
    }
}

/// A new channel and, for a webhook, its signing secret (shown once).
#[derive(Debug, Clone)]
pub struct CreatedChannel {
    pub channel: Channel,
    pub secret: Option<String>,
}

/// A message to send to some of a tenant's channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What causes it: `test`, `incident:<id>`, `alert:<id>`, …
    pub source: String,
    pub severity: Option<String>,
    pub subject: String,
    pub body: String,
    /// When the causing event happened.
    pub event_at: Timestamp,
}

const MAX_TO: usize = 20;

fn printable(what: &str, v: &str, max: usize) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if v.chars().count() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(format!("{what} contains a control character"));
    }
    if v.trim() != v {
        return Err(format!("{what} {v:?} starts or ends with white space"));
    }
    Ok(())
}

fn valid_email(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains(['<', '>', ' ', ',', ';', '"', '(', ')', '\\'])
        && domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn valid_phone(p: &str) -> bool {
    let digits = p.strip_prefix('+').unwrap_or("");
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn valid_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    match rest {
        Some(r) => {
            let host = r.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty()
                && !host.contains('@')
                && u.len() <= 2000
                && !u.chars().any(|c| c.is_control() || c == ' ')
        }
        None => false,
    }
}

impl ChannelSpec {
    /// Checks the spec; the message names the first thing that is wrong.
    pub fn validate(&self) -> Result<(ChannelKind, ChannelConfig), String> {
        printable("the channel name", &self.name, 100)?;
        if !self
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "the channel name {:?} may hold only letters, digits and - _ .",
                self.name
            ));
        }
        if Uuid::parse_str(&self.name).is_ok() {
            return Err("a channel name may not be a UUID".into());
        }
        let kind = ChannelKind::parse(&self.kind).ok_or_else(|| {
            format!(
                "unknown channel kind {:?}; expected email, webhook or sms",
                self.kind
            )
        })?;
        if self.to.len() > MAX_TO {
            return Err(format!("at most {MAX_TO} recipients per channel"));
        }
        let person = match &self.person {
            None => None,
            Some(p) => {
                printable("the person", p, 100)?;
                Some(p.to_ascii_lowercase())
            }
        };
        let hours = match self.hours.as_deref() {
            None => Hours::AllHours,
            Some(h) => Hours::parse(h)
                .ok_or_else(|| format!("unknown service hours {h:?}; expected 7x24 or 5x8"))?,
        };
        let mut config = ChannelConfig {
            to: Vec::new(),
            url: None,
            format: WebhookFormat::Generic,
            person,
            security_contact: self.security_contact,
            hours,
            min_severity: match &self.min_severity {
                None => None,
                Some(m) => Some(
                    severity_rank(m)
                        .and_then(|i| SEVERITIES.get(i))
                        .map(|s| s.to_string())
                        .ok_or_else(|| {
                            format!(
                                "unknown severity {m:?}; expected low, medium, high or critical"
                            )
                        })?,
                ),
            },
            sources: Vec::new(),
        };
        if self.sources.len() > 20 {
            return Err("at most 20 sources per channel".into());
        }
        for r in &self.sources {
            printable("a source", r, 200)?;
            let ok = r == "alert"
                || r == "incident"
                || r.strip_prefix("rule:").is_some_and(|id| !id.is_empty());
            if !ok {
                return Err(format!(
                    "unknown source {r:?}; expected alert, incident or rule:<rule id>"
                ));
            }
            if !config.sources.contains(r) {
                config.sources.push(r.clone());
            }
        }
        match kind {
            ChannelKind::Email | ChannelKind::Sms => {
                if self.url.is_some() || self.format.is_some() {
                    return Err(format!(
                        "a {} channel takes recipients (to), not a URL or format",
                        kind.as_str()
                    ));
                }
                if self.to.is_empty() {
                    return Err(format!(
                        "a {} channel needs at least one recipient",
                        kind.as_str()
                    ));
                }
                for t in &self.to {
                    let ok = match kind {
                        ChannelKind::Email => valid_email(t),
                        _ => valid_phone(t),
                    };
                    if !ok {
                        return Err(match kind {
                            ChannelKind::Email => format!("{t:?} is not an e-mail address"),
                            _ => format!(
                                "{t:?} is not a phone number in international form (+ and 7 to 15 digits)"
                            ),
                        });
                    }
                    if !config.to.contains(t) {
                        config.to.push(t.clone());
                    }
                }
            }
            ChannelKind::Webhook => {
                if !self.to.is_empty() {
                    return Err("a webhook channel takes a URL, not recipients".into());
                }
                let url = self.url.as_deref().ok_or("a webhook channel needs a URL")?;
                if !valid_url(url) {
                    return Err(format!(
                        "the webhook URL must be an http:// or https:// URL without credentials or spaces (got {})",
                        redact_url(url)
                    ));
                }
                config.url = Some(url.to_string());
                config.format = match self.format.as_deref() {
                    None | Some("generic") => WebhookFormat::Generic,
                    Some("slack") => WebhookFormat::Slack,
                    Some(f) => {
                        return Err(format!(
                            "unknown webhook format {f:?}; expected generic or slack"
                        ));
                    }
                };
            }
        }
        Ok((kind, config))
    }
}

/// Whether a webhook URL names an internal host: `localhost`, or a loopback, private,
/// link-local, unspecified or unique-local IP address. (A DNS name that resolves to one is not
/// caught here.)
pub fn internal_target(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.octets().first() == Some(&0)
        }
        Ok(std::net::IpAddr::V6(a)) => {
            let first = a.segments().first().copied().unwrap_or(0);
            a.is_loopback()
                || a.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private() || v4.is_link_local())
        }
        Err(_) => false,
    }
}

fn internal(e: impl std::fmt::Display) -> IamError {
    IamError::Internal(e.to_string())
}

fn channel_of(r: &ChannelRecord) -> IamResult<Channel> {
    Ok(Channel {
        id: r.id,
        tenant: r.tenant,
        name: r.name.clone(),
        kind: ChannelKind::parse(&r.kind)
            .ok_or_else(|| internal(format!("corrupt channel kind {:?}", r.kind)))?,
        config: serde_json::from_value(r.config.clone())
            .map_err(|e| internal(format!("corrupt channel {}: {e}", r.id)))?,
        created_at: r.created_at,
    })
}

fn secret_aad(tenant: TenantId, channel: Uuid) -> String {
    format!("parapet-webhook:{tenant}:{channel}")
}

/// The notification time of a tenant's delivered messages (X.1642 7.2.2.6(2): the average
/// time from the event to notifying the tenant), in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub delivered: usize,
    pub mean_ms: f64,
    pub median_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
}

impl LatencyStats {
    pub fn of(mut ms: Vec<i64>) -> Self {
        if ms.is_empty() {
            return LatencyStats::default();
        }
        ms.sort_unstable();
        let n = ms.len();
        let at = |q: f64| {
            let i = ((q * (n as f64 - 1.0)).round() as usize).min(n - 1);
            ms.get(i).copied().unwrap_or(0)
        };
        LatencyStats {
            delivered: n,
            mean_ms: ms.iter().map(|x| *x as f64).sum::<f64>() / n as f64,
            median_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: ms.last().copied().unwrap_or(0),
        }
    }
}

/// What one run of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerRun {
    pub delivered: usize,
    pub failed: usize,
    pub dead: usize,
}

/// The notification service.
pub struct NotifyService {
    store: Arc<dyn Store>,
    env: Env,
    config: NotifyConfig,
    transport: Arc<dyn Transport>,
    /// Seals webhook secrets: the key service's platform key once it is in use, else the
    /// local secrets key.
    secrets: parapet_iam::sealer::SecretBox,
}

impl std::fmt::Debug for NotifyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyService").finish_non_exhaustive()
    }
}

impl NotifyService {
    pub fn new(
        store: Arc<dyn Store>,
        env: Env,
        config: NotifyConfig,
        transport: Arc<dyn Transport>,
    ) -> Self {
        NotifyService {
            secrets: parapet_iam::sealer::SecretBox::new(config.secrets_key, env.clone()),
            store,
            env,
            config,
            transport,
        }
    }

    /// Seals webhook secrets under the key service from now on.
    pub fn set_platform_sealer(&self, sealer: Arc<dyn parapet_iam::sealer::PlatformSealer>) {
        self.secrets.set_platform_sealer(sealer);
    }

    /// Whether webhook secrets are sealed by the key service (for the encryption statement).
    pub fn secrets_under_kms(&self) -> bool {
        self.secrets.under_kms()
    }

    /// Re-seals under the key service every webhook secret still sealed by the local key; each
    /// change is audited in the channel's tenant. Returns how many were re-sealed; a value that
    /// changed meanwhile is left for the next run.
    pub async fn migrate_secrets(&self, provider: &Tenant) -> IamResult<u64> {
        if !self.secrets.under_kms() {
            return Ok(0);
        }
        let ctx = TenantCtx::new(provider.id);
        let mut n = 0;
        let mut after = None;
        loop {
            let page = self.store.notify_local_secrets(ctx, after, 500).await?;
            let full = page.len() == 500;
            after = page.last().map(|(_, c, _)| *c);
            for (tenant, channel, sealed) in page {
                let Some(new) = self
                    .secrets
                    .reseal_local(&secret_aad(tenant, channel), &sealed)?
                else {
                    continue;
                };
                let e = AuditEvent {
                    time: self.env.now(),
                    tenant: Some(tenant),
                    actor: Actor::System,
                    action: "kms.platform-secret.reseal".into(),
                    target: format!("channel:{channel}"),
                    source_ip: None,
                    user_agent: None,
                    outcome: AuditOutcome::Success,
                    details: json!({"secret": "webhook", "from": "local-key", "to": "kms"}),
                };
                if self
                    .store
                    .notify_reseal_secret(TenantCtx::new(tenant), channel, &sealed, &new, &e)
                    .await?
                {
                    n += 1;
                }
            }
            if !full {
                return Ok(n);
            }
        }
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    fn event(
        &self,
        t: &Tenant,
        caller: &Caller,
        action: &str,
        target: String,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            time: self.env.now(),
            tenant: Some(t.id),
            actor: caller.actor.clone(),
            action: action.to_string(),
            target,
            source_ip: caller.source_ip.clone(),
            user_agent: caller.user_agent.clone(),
            outcome: AuditOutcome::Success,
            details,
        }
    }

    fn new_id(&self) -> IamResult<Uuid> {
        self.env.new_id().map_err(internal)
    }

    /// Adds a channel to tenant `t`. A webhook gets a new signing secret, returned once.
    pub async fn add_channel(
        &self,
        t: &Tenant,
        caller: &Caller,
        spec: &ChannelSpec,
    ) -> IamResult<CreatedChannel> {
        let (kind, config) = spec.validate().map_err(IamError::Invalid)?;
        if kind == ChannelKind::Webhook
            && t.kind != parapet_types::TenantKind::Provider
            && !self.config.allow_private_webhooks
            && config.url.as_deref().is_some_and(internal_target)
        {
            return Err(IamError::Invalid(
                "the webhook URL points at an internal address (loopback, private or \
                 link-local); use a public receiver"
                    .into(),
            ));
        }
        let id = self.new_id()?;
        let (secret, sealed) = if kind == ChannelKind::Webhook {
            let raw: [u8; 32] = self.env.random().map_err(internal)?;
            let secret = format!(
                "whsec_{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
            );
            let sealed = self
                .secrets
                .seal(&secret_aad(t.id, id), secret.as_bytes())?;
            (Some(secret), Some(sealed))
        } else {
            (None, None)
        };
        let channel = Channel {
            id,
            tenant: t.id,
            name: spec.name.clone(),
            kind,
            config,
            created_at: self.env.now(),
        };
        let record = ChannelRecord {
            id,
            tenant: t.id,
            name: channel.name.clone(),
            kind: kind.as_str().into(),
            config: serde_json::to_value(&channel.config).map_err(internal)?,
            sealed_secret: sealed,
            created_at: channel.created_at,
        };
        let e = self.event(
            t,
            caller,
            "notify.channel.create",
            format!("channel:{}/{}", t.name, channel.name),
            json!({"kind": kind, "destination": channel.destination()}),
        );
        match self
            .store
            .create_channel(TenantCtx::new(t.id), &record, &e)
            .await
        {
            Ok(()) => Ok(CreatedChannel { channel, secret }),
            Err(StoreError::Conflict(_)) => Err(IamError::Conflict(format!(
                "tenant {} already has a channel named {:?}",
                t.name, spec.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_channels(&self, t: &Tenant) -> IamResult<Vec<Channel>> {
        self.store
            .list_channels(TenantCtx::new(t.id))
            .await?
            .iter()
            .map(channel_of)
            .collect()
    }

    pub async fn get_channel(&self, t: &Tenant, id_or_name: &str) -> IamResult<Channel> {
        channel_of(&self.channel_record(t.id, &t.name, id_or_name).await?)
    }

    async fn channel_record(
        &self,
        tenant: TenantId,
        tenant_name: &str,
        id_or_name: &str,
    ) -> IamResult<ChannelRecord> {
        match self
            .store
            .get_channel(TenantCtx::new(tenant), id_or_name)
            .await
        {
            Ok(c) => Ok(c),
            Err(StoreError::NotFound) => Err(IamError::NotFound(format!(
                "tenant {tenant_name} has no channel {id_or_name:?}"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn remove_channel(
        &self,
        t: &Tenant,
        caller: &Caller,
        id_or_name: &str,
    ) -> IamResult<()> {
        let c = self.get_channel(t, id_or_name).await?;
        let e = self.event(
            t,
            caller,
            "notify.channel.delete",
            format!("channel:{}/{}", t.name, c.name),
            json!({"id": c.id, "kind": c.kind}),
        );
        Ok(self
            .store
            .delete_channel(TenantCtx::new(t.id), c.id, &e)
            .await?)
    }

    /// The outbox items of `msg` for `channels`, all due now.
    pub fn items_for(
        &self,
        t: &Tenant,
        channels: &[Channel],
        msg: &Message,
    ) -> IamResult<Vec<OutboxItem>> {
        let now = self.env.now();
        channels
            .iter()
            .map(|c| {
                Ok(OutboxItem {
                    id: self.new_id()?,
                    tenant: t.id,
                    channel: c.id,
                    source: msg.source.clone(),
                    severity: msg.severity.clone(),
                    subject: msg.subject.clone(),
                    body: msg.body.clone(),
                    event_at: msg.event_at,
                    created_at: now,
                    status: OutboxStatus::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                    delivered_at: None,
                })
            })
            .collect()
    }

    /// Queues `msg` for `channels` of tenant `t` together with `audit` (the events that cause it)
    /// in one transaction.
    pub async fn enqueue(
        &self,
        t: &Tenant,
        channels: &[Channel],
        msg: &Message,
        audit: &[AuditEvent],
    ) -> IamResult<Vec<OutboxItem>> {
        let items = self.items_for(t, channels, msg)?;
        self.store
            .enqueue(TenantCtx::new(t.id), &items, audit)
            .await?;
        metrics::counter!("parapet_notify_enqueued_total").increment(items.len() as u64);
        Ok(items)
    }

    /// Queues a test message on one channel.
    pub async fn test_channel(
        &self,
        t: &Tenant,
        caller: &Caller,
        id_or_name: &str,
    ) -> IamResult<OutboxItem> {
        let c = self.get_channel(t, id_or_name).await?;
        let msg = Message {
            source: "test".into(),
            severity: None,
            subject: format!("Parapet test notification for {}", t.name),
            body: format!(
                "This is a test of the notification channel {:?} of tenant {}. No action is needed.",
                c.name, t.name
            ),
            event_at: self.env.now(),
        };
        let e = self.event(
            t,
            caller,
            "notify.channel.test",
            format!("channel:{}/{}", t.name, c.name),
            json!({"id": c.id}),
        );
        let mut items = self
            .enqueue(t, std::slice::from_ref(&c), &msg, &[e])
            .await?;
        items
            .pop()
            .ok_or_else(|| internal("the test message was not queued"))
    }

    /// Queues a message about an alert to every channel of its tenant: the function the
    /// monitoring module calls when an alert fires. `event_at` is the time of the first
    /// matching event (the notification-time SLA counts from it).
    pub async fn enqueue_for_alert(
        &self,
        t: &Tenant,
        alert_id: &str,
        rule: &str,
        severity: &str,
        title: &str,
        event_at: Timestamp,
    ) -> IamResult<Vec<OutboxItem>> {
        let keys = vec!["alert".to_string(), format!("rule:{rule}")];
        let channels: Vec<Channel> = self
            .list_channels(t)
            .await?
            .into_iter()
            .filter(|c| c.config.routes(Some(severity), &keys))
            .collect();
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let msg = Message {
            source: format!("alert:{alert_id}"),
            severity: Some(severity.to_string()),
            subject: format!("[{severity}] {title}"),
            body: format!(
                "Alert {alert_id} of tenant {}: {title} (rule {rule}, severity {severity}, first event {}).",
                t.name,
                event_at.rfc3339()
            ),
            event_at,
        };
        let e = self.event(
            t,
            &Caller::system(),
            "notify.enqueue",
            format!("alert:{}/{alert_id}", t.name),
            json!({"channels": channels.len(), "rule": rule, "severity": severity}),
        );
        self.enqueue(t, &channels, &msg, &[e]).await
    }

    /// The channels that reach tenant `t`'s security contact: those marked so, else all.
    pub async fn security_channels(&self, t: &Tenant) -> IamResult<Vec<Channel>> {
        let all = self.list_channels(t).await?;
        let marked: Vec<Channel> = all
            .iter()
            .filter(|c| c.config.security_contact)
            .cloned()
            .collect();
        Ok(if marked.is_empty() { all } else { marked })
    }

    /// The provider's channels that page `person` at `now`: those in service hours, or all of
    /// the person's channels when none is (a page is never dropped).
    pub async fn person_channels(
        &self,
        provider: &Tenant,
        person: &str,
        now: Timestamp,
    ) -> IamResult<Vec<Channel>> {
        let person = person.trim().to_ascii_lowercase();
        let theirs: Vec<Channel> = self
            .list_channels(provider)
            .await?
            .into_iter()
            .filter(|c| c.config.person.as_deref() == Some(person.as_str()))
            .collect();
        let in_service: Vec<Channel> = theirs
            .iter()
            .filter(|c| c.config.hours.in_service(now))
            .cloned()
            .collect();
        Ok(if in_service.is_empty() {
            theirs
        } else {
            in_service
        })
    }

    /// Outbox items paging `persons` (provider staff) about `msg`, one per channel of each.
    pub async fn page_persons(
        &self,
        provider: &Tenant,
        persons: &[String],
        msg: &Message,
    ) -> IamResult<Vec<OutboxItem>> {
        let now = self.env.now();
        let mut channels: Vec<Channel> = Vec::new();
        for p in persons {
            for c in self.person_channels(provider, p, now).await? {
                if !channels.iter().any(|x| x.id == c.id) {
                    channels.push(c);
                }
            }
        }
        self.items_for(provider, &channels, msg)
    }

    /// Outbox items telling tenant `t`'s security contact `msg`.
    pub async fn tell_tenant(&self, t: &Tenant, msg: &Message) -> IamResult<Vec<OutboxItem>> {
        let channels = self.security_channels(t).await?;
        self.items_for(t, &channels, msg)
    }

    /// Outbox items telling tenant `t` about one of its incidents: its security contact's
    /// channels whose route takes incidents of that severity (all of them when none does, so
    /// a tenant is never left untold).
    pub async fn tell_tenant_of_incident(
        &self,
        t: &Tenant,
        msg: &Message,
    ) -> IamResult<Vec<OutboxItem>> {
        let all = self.security_channels(t).await?;
        let keys = vec!["incident".to_string()];
        let routed: Vec<Channel> = all
            .iter()
            .filter(|c| c.config.routes(msg.severity.as_deref(), &keys))
            .cloned()
            .collect();
        let channels = if routed.is_empty() { all } else { routed };
        self.items_for(t, &channels, msg)
    }

    /// Messages of tenant `t`, newest first.
    pub async fn outbox(
        &self,
        t: &Tenant,
        status: Option<OutboxStatus>,
        page: &Page,
    ) -> IamResult<Vec<OutboxItem>> {
        Ok(self
            .store
            .list_outbox(TenantCtx::new(t.id), status, page)
            .await?)
    }

    /// The notification time of tenant `t`'s last 10,000 delivered messages.
    pub async fn latency_stats(&self, t: &Tenant) -> IamResult<LatencyStats> {
        let mut ms = Vec::new();
        let mut after = None;
        while ms.len() < 10_000 {
            let page = self
                .store
                .list_outbox(
                    TenantCtx::new(t.id),
                    Some(OutboxStatus::Delivered),
                    &Page {
                        after: after.clone(),
                        limit: 1000,
                    },
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.to_string());
            let full = page.len() == 1000;
            ms.extend(
                page.iter()
                    .filter_map(|m| m.delivered_at.map(|d| (d.0 - m.event_at.0).max(0))),
            );
            if !full {
                break;
            }
        }
        Ok(LatencyStats::of(ms))
    }

    pub async fn message(&self, t: &Tenant, id: &str) -> IamResult<OutboxItem> {
        let not_found = || IamError::NotFound(format!("tenant {} has no message {id}", t.name));
        let id = Uuid::parse_str(id.trim()).map_err(|_| not_found())?;
        match self.store.get_outbox(TenantCtx::new(t.id), id).await {
            Ok(i) => Ok(i),
            Err(StoreError::NotFound) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts a dead letter back in the outbox for a fresh round of attempts.
    pub async fn retry(&self, t: &Tenant, caller: &Caller, id: &str) -> IamResult<OutboxItem> {
        let mut item = self.message(t, id).await?;
        if item.status != OutboxStatus::Dead {
            return Err(IamError::Conflict(format!(
                "message {} is {}, not a dead letter",
                item.id,
                item.status.as_str()
            )));
        }
        let now = self.env.now();
        let r = AttemptResult {
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: item.last_error.clone(),
            delivered_at: None,
        };
        let e = self.event(
            t,
            caller,
            "notify.retry",
            format!("notification:{}/{}", t.name, item.id),
            json!({"previous_attempts": item.attempts}),
        );
        self.store
            .update_outbox(TenantCtx::new(t.id), item.id, &r, &e)
            .await?;
        item.status = r.status;
        item.attempts = 0;
        item.next_attempt_at = now;
        Ok(item)
    }

    /// Drops a dead letter (or a message still pending) for good.
    pub async fn discard(&self, t: &Tenant, caller: &Caller, id: &str) -> IamResult<OutboxItem> {
        let mut item = self.message(t, id).await?;
        if !matches!(item.status, OutboxStatus::Dead | OutboxStatus::Pending) {
            return Err(IamError::Conflict(format!(
                "message {} is {} and cannot be discarded",
                item.id,
                item.status.as_str()
            )));
        }
        let r = AttemptResult {
            status: OutboxStatus::Discarded,
            attempts: item.attempts,
            next_attempt_at: item.next_attempt_at,
            last_error: item.last_error.clone(),
            delivered_at: None,
        };
        let e = self.event(
            t,
            caller,
            "notify.discard",
            format!("notification:{}/{}", t.name, item.id),
            json!({"was": item.status, "attempts": item.attempts}),
        );
        self.store
            .update_outbox(TenantCtx::new(t.id), item.id, &r, &e)
            .await?;
        item.status = OutboxStatus::Discarded;
        Ok(item)
    }

    /// The message as it leaves over channel `c`.
    fn prepare(
        &self,
        tenant_name: &str,
        c: &ChannelRecord,
        item: &OutboxItem,
    ) -> IamResult<Delivery> {
        let ch = channel_of(c)?;
        Ok(match ch.kind {
            ChannelKind::Email => Delivery::Email {
                to: ch.config.to.clone(),
                subject: item.subject.clone(),
                body: format!(
                    "{}\n\nTenant: {tenant_name}\nSource: {}\nEvent time: {}\nMessage id: {}\n",
                    item.body,
                    item.source,
                    item.event_at.rfc3339(),
                    item.id
                ),
            },
            ChannelKind::Sms => Delivery::Sms {
                to: ch.config.to.clone(),
                text: item.subject.chars().take(300).collect(),
            },
            ChannelKind::Webhook => {
                let sealed = c
                    .sealed_secret
                    .as_deref()
                    .ok_or_else(|| internal("a webhook channel has no secret"))?;
                let secret = self.secrets.open(&secret_aad(c.tenant, c.id), sealed)?;
                let body = match ch.config.format {
                    WebhookFormat::Generic => json!({
                        "id": item.id,
                        "tenant": tenant_name,
                        "source": item.source,
                        "severity": item.severity,
                        "subject": item.subject,
                        "body": item.body,
                        "event_at": item.event_at.rfc3339(),
                    }),
                    WebhookFormat::Slack => json!({
                        "text": format!("*{}*\n{}", item.subject, item.body),
                    }),
                }
                .to_string();
                let timestamp = self.env.now().0.div_euclid(1000);
                Delivery::Webhook {
                    url: ch.config.url.clone().unwrap_or_default(),
                    signature: sign(&secret, timestamp, &body),
                    body,
                    timestamp,
                }
            }
        })
    }

    /// One delivery attempt of every message due now (at most `limit`), up to `CONCURRENCY` at
    /// a time so that one slow receiver does not hold the others up. Safe on several replicas:
    /// a message is claimed before it is sent.
    pub async fn deliver_due(&self, limit: u32) -> IamResult<WorkerRun> {
        use futures_util::StreamExt;
        const CONCURRENCY: usize = 16;
        let Some(provider) = self.store.provider_tenant().await? else {
            return Ok(WorkerRun::default());
        };
        let pctx = TenantCtx::new(provider.id);
        let now = self.env.now();
        let due = self.store.due_outbox(pctx, now, limit).await?;
        let mut names: HashMap<TenantId, Tenant> = HashMap::new();
        let mut work = Vec::with_capacity(due.len());
        for item in due {
            let t = match names.get(&item.tenant) {
                Some(t) => t.clone(),
                None => {
                    let t = self
                        .store
                        .get_tenant(pctx, &item.tenant.to_string())
                        .await?;
                    names.insert(item.tenant, t.clone());
                    t
                }
            };
            work.push((t, item));
        }
        let results: Vec<IamResult<Option<OutboxStatus>>> = futures_util::stream::iter(work)
            .map(|(t, item)| async move { self.deliver_one(&t, item).await })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut run = WorkerRun::default();
        for r in results {
            match r? {
                Some(OutboxStatus::Delivered) => run.delivered += 1,
                Some(OutboxStatus::Dead) => run.dead += 1,
                Some(_) => run.failed += 1,
                None => {}
            }
        }
        Ok(run)
    }

    /// One attempt of one message; `None` when another worker claimed it first.
    async fn deliver_one(&self, t: &Tenant, item: OutboxItem) -> IamResult<Option<OutboxStatus>> {
        let ctx = TenantCtx::new(t.id);
        let until = Timestamp(self.env.now().0.saturating_add(self.config.lease_ms));
        if !self
            .store
            .claim_outbox(ctx, item.id, item.next_attempt_at, until)
            .await?
        {
            return Ok(None);
        }
        let outcome = match self.store.get_channel(ctx, &item.channel.to_string()).await {
            Ok(c) => match self.prepare(&t.name, &c, &item) {
                Ok(d) => self.transport.send(&d).await,
                Err(e) => Err(format!("cannot prepare the message: {e}")),
            },
            Err(StoreError::NotFound) => Err("the channel was removed".into()),
            Err(e) => return Err(e.into()),
        };
        let done = self.env.now();
        let attempts = item.attempts.saturating_add(1);
        let (r, action, details) = match outcome {
            Ok(()) => {
                let latency = (done.0 - item.event_at.0).max(0);
                metrics::histogram!("parapet_notify_latency_seconds")
                    .record(latency as f64 / 1000.0);
                metrics::counter!("parapet_notify_delivered_total").increment(1);
                (
                    AttemptResult {
                        status: OutboxStatus::Delivered,
                        attempts,
                        next_attempt_at: done,
                        last_error: None,
                        delivered_at: Some(done),
                    },
                    "notify.delivered",
                    json!({"channel": item.channel, "attempts": attempts, "latency_ms": latency}),
                )
            }
            Err(msg) => {
                let msg: String = msg.chars().take(500).collect();
                metrics::counter!("parapet_notify_failed_attempts_total").increment(1);
                if attempts >= self.config.max_attempts {
                    tracing::warn!(message = %item.id, tenant = %t.name, error = %msg,
                        "notification dead-lettered");
                    (
                        AttemptResult {
                            status: OutboxStatus::Dead,
                            attempts,
                            next_attempt_at: done,
                            last_error: Some(msg.clone()),
                            delivered_at: None,
                        },
                        "notify.dead-lettered",
                        json!({"channel": item.channel, "attempts": attempts, "error": msg}),
                    )
                } else {
                    let next = Timestamp(done.0.saturating_add(self.config.backoff(attempts)));
                    (
                        AttemptResult {
                            status: OutboxStatus::Pending,
                            attempts,
                            next_attempt_at: next,
                            last_error: Some(msg.clone()),
                            delivered_at: None,
                        },
                        "notify.attempt-failed",
                        json!({"channel": item.channel, "attempts": attempts, "error": msg,
                               "next_attempt_at": next.rfc3339()}),
                    )
                }
            }
        };
        let e = self.event(
            t,
            &Caller::system(),
            action,
            format!("notification:{}/{}", t.name, item.id),
            details,
        );
        self.store.update_outbox(ctx, item.id, &r, &e).await?;
        Ok(Some(r.status))
    }

    /// Runs the delivery worker until `stop` turns true: delivers due messages every `tick`.
    pub async fn run(
        self: Arc<Self>,
        tick: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        const BATCH: u32 = 200;
        loop {
            let pause = match self.deliver_due(BATCH).await {
                Ok(r) if r.delivered + r.failed + r.dead >= BATCH as usize => Duration::ZERO,
                Ok(_) => tick,
                Err(e) => {
                    tracing::error!("notification worker failed: {e}");
                    tick.max(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut c = NotifyConfig::new([0; 32]);
        c.backoff_base_ms = 1000;
        c.backoff_max_ms = 10_000;
        let waits: Vec<i64> = (1..=6).map(|n| c.backoff(n)).collect();
        assert_eq!(waits, vec![1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(c.backoff(u32::MAX), 10_000);
    }

    #[test]
    fn specs_are_validated() {
        let spec = |kind: &str, to: &[&str], url: Option<&str>| ChannelSpec {
            name: "ops".into(),
            kind: kind.into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            url: url.map(str::to_string),
            format: None,
            person: None,
            security_contact: false,
            hours: None,
            min_severity: None,
            sources: vec![],
        };
        assert!(
            spec("email", &["soc@acme.example"], None)
                .validate()
                .is_ok()
        );
        assert!(spec("email", &["not-an-address"], None).validate().is_err());
        assert!(spec("email", &[], None).validate().is_err());
        assert!(spec("sms", &["+4915112345678"], None).validate().is_ok());
        assert!(spec("sms", &["0151 123"], None).validate().is_err());
        assert!(
            spec("webhook", &[], Some("https://hooks.example/x"))
                .validate()
                .is_ok()
        );
        assert!(spec("webhook", &[], Some("ftp://x")).validate().is_err());
        assert!(
            spec("webhook", &[], Some("https://u:p@x/"))
                .validate()
                .is_err()
        );
        assert!(spec("webhook", &[], None).validate().is_err());
        assert!(spec("pager", &[], None).validate().is_err());
        let mut s = spec("email", &["a@b.example"], None);
        s.name = "bad name".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn latency_statistics() {
        let s = LatencyStats::of(vec![30, 10, 20, 1000]);
        assert_eq!(s.delivered, 4);
        assert!((s.mean_ms - 265.0).abs() < 1e-9);
        assert_eq!((s.median_ms, s.p99_ms, s.max_ms), (30, 1000, 1000));
        assert_eq!(LatencyStats::of(vec![]).delivered, 0);
    }

    #[test]
    fn routes_filter_by_severity_and_source() {
        let mut c = ChannelConfig {
            to: vec![],
            url: None,
            format: WebhookFormat::Generic,
            person: None,
            security_contact: false,
            hours: Hours::AllHours,
            min_severity: None,
            sources: vec![],
        };
        let keys = |r: &str| vec!["alert".to_string(), format!("rule:{r}")];
        assert!(c.routes(Some("low"), &keys("r1")), "no route: everything");
        c.min_severity = Some("high".into());
        assert!(!c.routes(Some("medium"), &keys("r1")));
        assert!(c.routes(Some("high"), &keys("r1")));
        assert!(c.routes(Some("Critical"), &keys("r1")));
        c.sources = vec!["rule:brute-force".into()];
        assert!(!c.routes(Some("critical"), &keys("r1")));
        assert!(c.routes(Some("critical"), &keys("brute-force")));
        assert!(!c.routes(Some("critical"), &["incident".to_string()]));
        c.sources.push("incident".into());
        assert!(c.routes(Some("critical"), &["incident".to_string()]));
    }

    #[test]
    fn office_hours_are_weekdays_nine_to_five_utc() {
        // 2027-01-15 was a Friday; 2027-01-16 a Saturday.
        let fri = 1_800_000_000_000i64; // 08:00 UTC
        assert!(!Hours::OfficeHours.in_service(Timestamp(fri)));
        assert!(Hours::OfficeHours.in_service(Timestamp(fri + 3_600_000)));
        assert!(!Hours::OfficeHours.in_service(Timestamp(fri + 9 * 3_600_000)));
        assert!(!Hours::OfficeHours.in_service(Timestamp(fri + 26 * 3_600_000)));
        assert!(Hours::AllHours.in_service(Timestamp(fri + 26 * 3_600_000)));
    }

    #[test]
    fn internal_webhook_targets_are_recognised() {
        for u in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "https://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:9/",
            "http://[fd00::1]/",
            "http://192.168.0.1",
            "http://0.0.0.0/",
            "http://api.localhost./",
        ] {
            assert!(internal_target(u), "{u}");
        }
        for u in [
            "https://hooks.slack.com/services/x",
            "https://93.184.216.34/",
            "http://[2001:db8::1]/",
        ] {
            assert!(!internal_target(u), "{u}");
        }
    }

    #[test]
    fn webhook_urls_are_shown_without_their_path() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact_url("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }
}
