//! `parapet notify …`: notification channels, the outbox and dead letters (X.1642 8.6.1,
//! 7.2.2.6(2)).

use anyhow::bail;
use parapet_client::{Channel, NewChannel, NotifyMessage};

use super::output::{clean, fields, json, note, out, table};
use super::{CommonArgs, Session};

#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// A tenant's channels: e-mail (SMTP), signed webhooks, SMS.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// A tenant's outbox, newest first: status, attempts, notification time.
    Outbox(OutboxArgs),
    /// A tenant's dead letters: messages whose every attempt failed.
    DeadLetters(TenantOnly),
    /// A tenant's notification time: from event to delivery, mean, median, p99 (7.2.2.6(2)).
    Stats(TenantOnly),
    /// Put a dead letter back in the outbox for a fresh round of attempts.
    Retry(MessageArgs),
    /// Discard a dead letter (or a pending message) for good.
    Discard(MessageArgs),
    /// The affected-tenant check of an incident (X.1642 8.6.4, provider staff): warn every other
    /// tenant running the weakness, telling none of them about the others. Without --software,
    /// the OS and applications of the incident's affected assets (observables of kind asset).
    AffectedTenants(AffectedArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct AffectedArgs {
    /// The incident's id.
    #[arg(value_name = "INCIDENT")]
    pub incident: String,
    /// The vulnerable software (an application, package or, with --os, operating system).
    #[arg(long, value_name = "NAME", requires = "version")]
    pub software: Option<String>,
    /// Its vulnerable version.
    #[arg(long, value_name = "VERSION", requires = "software")]
    pub version: Option<String>,
    /// The software is an operating system.
    #[arg(long, requires = "software")]
    pub os: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum ChannelCommand {
    /// Add a channel: give --email (repeatable), --webhook URL, or --sms NUMBER (repeatable).
    ///
    /// A webhook gets a signing secret, printed once: every request carries the headers
    /// `x-parapet-timestamp` (Unix seconds) and `x-parapet-signature` = `v1=` followed by the hex
    /// HMAC-SHA-256, keyed by the secret, of `<timestamp>.<body>`.
    Add(AddArgs),
    /// List a tenant's channels.
    List(TenantOnly),
    /// Queue a test message on a channel (follow it with `parapet notify outbox`).
    Test(ChannelArgs),
    /// Remove a channel.
    Rm(ChannelArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TenantOnly {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The channel's name (letters, digits, - _ .).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// An e-mail recipient (repeatable).
    #[arg(long, value_name = "ADDRESS", conflicts_with_all = ["webhook", "sms"])]
    pub email: Vec<String>,
    /// The webhook receiver's URL.
    #[arg(long, value_name = "URL", conflicts_with = "sms")]
    pub webhook: Option<String>,
    /// Send Slack-compatible bodies (`{"text": …}`) instead of the generic JSON.
    #[arg(long, requires = "webhook")]
    pub slack: bool,
    /// A phone number in international form, e.g. +4915112345678 (repeatable).
    #[arg(long, value_name = "NUMBER")]
    pub sms: Vec<String>,
    /// The provider user this channel pages when an escalation level names them.
    #[arg(long, value_name = "USER")]
    pub person: Option<String>,
    /// Mark the channel as the tenant's security contact (incident notices, affected-tenant
    /// warnings).
    #[arg(long)]
    pub security_contact: bool,
    /// Service hours behind the channel: 7x24 (default) or 5x8 (Mon-Fri 09-17 UTC).
    #[arg(long, value_name = "HOURS")]
    pub hours: Option<String>,
    /// Route: only alerts and incidents of at least this severity (low, medium, high,
    /// critical).
    #[arg(long, value_name = "SEVERITY")]
    pub min_severity: Option<String>,
    /// Route: only this source (repeatable): alert, incident, or rule:<rule id>.
    #[arg(long = "source", value_name = "SOURCE")]
    pub sources: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ChannelArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The channel's name or id.
    #[arg(value_name = "CHANNEL")]
    pub channel: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OutboxArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Only messages in this state: pending, delivered, dead, discarded.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct MessageArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The message's id (from `parapet notify outbox` or `dead-letters`).
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn channels_table(list: &[Channel]) -> String {
    if list.is_empty() {
        return "No channels.\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.kind.clone(),
                c.destination.clone(),
                c.format.clone().unwrap_or_else(|| "-".into()),
                c.person.clone().unwrap_or_else(|| "-".into()),
                if c.security_contact { "yes" } else { "no" }.into(),
                c.hours.clone(),
                c.created_at.clone(),
            ]
        })
        .collect();
    table(&["NAME", "KIND", "DESTINATION", "FORMAT", "CREATED"], &rows)
}

fn messages_table(list: &[NotifyMessage]) -> String {
    if list.is_empty() {
        return "No messages.\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.status.clone(),
                m.channel.clone().unwrap_or_else(|| "(removed)".into()),
                m.attempts.to_string(),
                m.latency_ms
                    .map(|l| format!("{:.3} s", l as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
                m.subject.clone(),
                m.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATUS",
            "CHANNEL",
            "ATTEMPTS",
            "NOTIFIED IN",
            "SUBJECT",
            "LAST ERROR",
        ],
        &rows,
    )
}

fn show_message(m: &NotifyMessage) -> String {
    fields(&[
        ("id", m.id.clone()),
        ("status", m.status.clone()),
        (
            "channel",
            m.channel.clone().unwrap_or_else(|| "(removed)".into()),
        ),
        ("subject", m.subject.clone()),
        ("source", m.source.clone()),
        ("attempts", m.attempts.to_string()),
        ("event at", m.event_at.clone()),
        (
            "next attempt",
            m.next_attempt_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "delivered at",
            m.delivered_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "last error",
            m.last_error.clone().unwrap_or_else(|| "-".into()),
        ),
    ])
}

pub async fn run(cmd: NotifyCommand) -> anyhow::Result<()> {
    match cmd {
        NotifyCommand::Channel(ChannelCommand::Add(a)) => {
            let s = Session::open(&a.common)?;
            let input = if let Some(url) = &a.webhook {
                NewChannel {
                    name: a.name.clone(),
                    kind: "webhook".into(),
                    url: Some(url.clone()),
                    format: Some(if a.slack { "slack" } else { "generic" }.into()),
                    ..NewChannel::default()
                }
            } else if !a.sms.is_empty() {
                NewChannel {
                    name: a.name.clone(),
                    kind: "sms".into(),
                    to: a.sms.clone(),
                    ..NewChannel::default()
                }
            } else if !a.email.is_empty() {
                NewChannel {
                    name: a.name.clone(),
                    kind: "email".into(),
                    to: a.email.clone(),
                    ..NewChannel::default()
                }
            } else {
                bail!("give --email ADDRESS, --webhook URL or --sms NUMBER");
            };
            let input = NewChannel {
                person: a.person.clone(),
                security_contact: a.security_contact,
                hours: a.hours.clone(),
                min_severity: a.min_severity.clone(),
                sources: a.sources.clone(),
                ..input
            };
            let created = s
                .client
                .add_channel(&a.tenant, &input)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&created);
            }
            let mut text = format!(
                "Added {} channel {} ({})\n",
                clean(&created.channel.kind),
                clean(&created.channel.name),
                clean(&created.channel.destination)
            );
            if let Some(secret) = &created.secret {
                text.push_str(&format!(
                    "Signing secret (shown once; the receiver verifies x-parapet-signature with it):\n{}\n",
                    clean(secret)
                ));
            }
            out(&text)
        }
        NotifyCommand::Channel(ChannelCommand::List(a)) => {
            let s = Session::open(&a.common)?;
            let list = s
                .client
                .list_channels(&a.tenant)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&list);
            }
            out(&channels_table(&list))
        }
        NotifyCommand::Channel(ChannelCommand::Test(a)) => {
            let s = Session::open(&a.common)?;
            let m = s
                .client
                .test_channel(&a.tenant, &a.channel)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&m);
            }
            note("Queued; the delivery worker sends it within a second or so.");
            out(&show_message(&m))
        }
        NotifyCommand::Channel(ChannelCommand::Rm(a)) => {
            let s = Session::open(&a.common)?;
            s.client
                .remove_channel(&a.tenant, &a.channel)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({"removed": a.channel}));
            }
            out(&format!("Removed channel {}\n", clean(&a.channel)))
        }
        NotifyCommand::Outbox(a) => {
            let s = Session::open(&a.common)?;
            let list = s
                .client
                .all_messages(&a.tenant, false, a.status.as_deref())
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&list);
            }
            out(&messages_table(&list))
        }
        NotifyCommand::DeadLetters(a) => {
            let s = Session::open(&a.common)?;
            let list = s
                .client
                .all_messages(&a.tenant, true, None)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&list);
            }
            out(&messages_table(&list))
        }
        NotifyCommand::Retry(a) | NotifyCommand::Discard(a) if a.id.trim().is_empty() => {
            bail!("give the message's id")
        }
        NotifyCommand::Stats(a) => {
            let s = Session::open(&a.common)?;
            let st = s
                .client
                .notify_stats(&a.tenant)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&st);
            }
            out(&fields(&[
                ("tenant", st.tenant.clone()),
                ("delivered", st.delivered.to_string()),
                ("mean", format!("{:.1} ms", st.mean_ms)),
                ("median", format!("{} ms", st.median_ms)),
                ("p99", format!("{} ms", st.p99_ms)),
                ("max", format!("{} ms", st.max_ms)),
            ]))
        }
        NotifyCommand::AffectedTenants(a) => {
            let s = Session::open(&a.common)?;
            let ws: Vec<parapet_client::Weakness> = match (&a.software, &a.version) {
                (Some(n), Some(v)) => vec![parapet_client::Weakness {
                    name: n.clone(),
                    version: v.clone(),
                    os: a.os,
                }],
                _ => Vec::new(),
            };
            let r = s
                .client
                .check_affected_tenants(&a.incident, &ws)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&r);
            }
            let list = r
                .weaknesses
                .iter()
                .map(|w| format!("{} {}", w.name, w.version))
                .collect::<Vec<_>>()
                .join(", ");
            let mut text = format!(
                "Checked {}: warned {} tenant(s){} with {} message(s); reference {}\n",
                clean(&list),
                r.tenants.len(),
                if r.tenants.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", clean(&r.tenants.join(", ")))
                },
                r.messages,
                clean(&r.reference)
            );
            if !r.unreachable.is_empty() {
                text.push_str(&format!(
                    "No channel to tell: {}\n",
                    clean(&r.unreachable.join(", "))
                ));
            }
            out(&text)
        }
        NotifyCommand::Retry(a) => message_action(a, "retry").await,
        NotifyCommand::Discard(a) => message_action(a, "discard").await,
    }
}

async fn message_action(a: MessageArgs, verb: &str) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let m = s
        .client
        .message_action(&a.tenant, &a.id, verb)
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&m);
    }
    out(&show_message(&m))
}
