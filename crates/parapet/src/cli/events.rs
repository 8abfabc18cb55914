//! `parapet ingest FILE…` and `parapet events …`: sending and searching security events
//! (X.1642 8.3(2)).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parapet_client::{ClientError, EventQuery, EventRecord, IngestError, IngestReceipt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::output::{fields, json, out, table};
use super::{CommonArgs, Session};

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// The tenant the events belong to (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Events per request (at most 10,000).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub batch_size: usize,
    /// JSON-lines files: one JSON object a line.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Search a tenant's events, newest first.
    Search(SearchArgs),
    /// Show one event with its original content.
    Show(ShowArgs),
    /// Show a tenant's event retention, or set it with --days.
    Retention(RetentionArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// The tenant (name or id).
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Events before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub source: Option<String>,
    /// informational, low, medium, high or critical.
    #[arg(long)]
    pub severity: Option<String>,
    /// An asset of the inventory (name or id).
    #[arg(long)]
    pub asset: Option<String>,
    /// Events of one ingestion batch.
    #[arg(long)]
    pub batch: Option<String>,
    /// A field of the event must equal a value: PATH=VALUE with a dotted path (repeatable).
    #[arg(long = "field", value_name = "PATH=VALUE")]
    pub fields: Vec<String>,
    /// Text that must occur in the event.
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// At most this many events (following pages as needed).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// The event id.
    pub id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RetentionArgs {
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,
    /// Keep events this many days (1 to 3650).
    #[arg(long, value_name = "DAYS")]
    pub days: Option<u32>,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::Search(a) => search(a).await,
        EventsCommand::Show(a) => {
            let s = Session::open(&a.common)?;
            let e = s
                .client
                .get_event(&a.tenant, &a.id)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&e);
            }
            let mut text = fields(&[
                ("id", e.id.clone()),
                ("tenant", e.tenant.clone()),
                ("time", e.time.clone()),
                ("received", e.received_at.clone()),
                ("host", e.host.clone().unwrap_or_default()),
                ("source", e.source.clone().unwrap_or_default()),
                ("severity", e.severity.clone()),
                ("asset", e.asset.clone().unwrap_or_default()),
                ("batch", e.batch.clone()),
            ]);
            text.push_str(&serde_json::to_string_pretty(&e.event).unwrap_or_default());
            text.push('\n');
            out(&text)
        }
        EventsCommand::Retention(a) => {
            let s = Session::open(&a.common)?;
            let r = match a.days {
                Some(d) => s.client.set_event_retention(&a.tenant, d).await,
                None => s.client.event_retention(&a.tenant).await,
            }
            .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&r);
            }
            out(&format!(
                "Tenant {} keeps events {} days{}.\n",
                r.tenant,
                r.days,
                if r.default {
                    " (the server's default)"
                } else {
                    ""
                }
            ))
        }
    }
}

async fn search(a: SearchArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let mut pairs = Vec::new();
    for (k, v) in [
        ("from", &a.from),
        ("to", &a.to),
        ("host", &a.host),
        ("source", &a.source),
        ("severity", &a.severity),
        ("asset", &a.asset),
        ("batch", &a.batch),
        ("q", &a.text),
    ] {
        if let Some(v) = v {
            pairs.push((k.to_string(), v.clone()));
        }
    }
    for f in &a.fields {
        if !f.contains('=') {
            bail!("--field {f:?} must be PATH=VALUE");
        }
        pairs.push(("field".to_string(), f.clone()));
    }
    let q = EventQuery { pairs };
    let mut found: Vec<EventRecord> = Vec::new();
    let mut cursor: Option<String> = None;
    while found.len() < a.limit {
        let want = u32::try_from((a.limit - found.len()).min(1000)).unwrap_or(1000);
        let page = s
            .client
            .search_events(&a.tenant, &q, Some(want), cursor.as_deref())
            .await
            .map_err(|e| s.fail(e))?;
        found.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    found.truncate(a.limit);
    if s.json {
        return json(&found);
    }
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|e| {
            vec![
                e.time.clone(),
                e.host.clone().unwrap_or_default(),
                e.source.clone().unwrap_or_default(),
                e.severity.clone(),
                e.message
                    .clone()
                    .unwrap_or_else(|| e.event.to_string())
                    .chars()
                    .take(100)
                    .collect(),
                e.id.clone(),
            ]
        })
        .collect();
    out(&table(
        &["TIME", "HOST", "SOURCE", "SEVERITY", "MESSAGE", "ID"],
        &rows,
    ))
}

/// What `parapet ingest` did.
#[derive(Debug, Default, Serialize)]
struct IngestSummary {
    files: usize,
    batches: u64,
    accepted: u64,
    attributed: u64,
    /// Batches the server had already stored (sent again after an interruption).
    replayed: u64,
}

/// The idempotency key of a batch: the file's name, the batch's first line and its content, so
/// that sending the same file again stores nothing twice.
fn batch_key(file: &std::path::Path, first_line: usize, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .as_bytes(),
    );
    h.update([0]);
    h.update(first_line.to_string().as_bytes());
    h.update([0]);
    h.update(body);
    format!("parapet-ingest-{}", hex::encode(h.finalize()))
}

/// The batch's line of a problem "line N: …", translated into the file's line.
fn file_line(e: &ClientError, first_line: usize) -> Option<usize> {
    let ClientError::Api { detail, .. } = e else {
        return None;
    };
    let rest = detail.strip_prefix("line ")?;
    let n: usize = rest.split(':').next()?.parse().ok()?;
    Some(first_line + n - 1)
}

pub async fn ingest(a: IngestArgs) -> anyhow::Result<()> {
    if a.batch_size == 0 || a.batch_size > 10_000 {
        bail!("--batch-size must be 1 to 10000");
    }
    let s = Session::open(&a.common)?;
    let total: u64 = a
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {msg} ({elapsed}, {bytes_per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut sum = IngestSummary {
        files: a.files.len(),
        ..IngestSummary::default()
    };
    const MAX_BYTES: usize = 8 * 1024 * 1024;
    for file in &a.files {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let mut reader = std::io::BufReader::new(f);
        let mut line_no = 0usize;
        let mut batch: Vec<u8> = Vec::new();
        let mut count = 0usize;
        let mut first = 1usize;
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if n > 0 {
                line_no += 1;
                if count == 0 {
                    first = line_no;
                }
                batch.extend_from_slice(line.as_bytes());
                if !line.ends_with('\n') {
                    batch.push(b'\n');
                }
                if !line.trim().is_empty() {
                    count += 1;
                }
            }
            let full = count >= a.batch_size || batch.len() >= MAX_BYTES;
            if (n == 0 && count > 0) || full {
                let sent = batch.len() as u64;
                let r = send(&s, &a.tenant, file, first, std::mem::take(&mut batch), &bar).await?;
                sum.batches += 1;
                sum.accepted += r.accepted;
                sum.attributed += r.attributed;
                sum.replayed += u64::from(r.replayed);
                bar.inc(sent);
                count = 0;
            }
            if n == 0 {
                break;
            }
        }
    }
    bar.finish_and_clear();
    if s.json {
        return json(&sum);
    }
    out(&format!(
        "Sent {} events in {} batches from {} files ({} attributed to assets{}).\n",
        sum.accepted,
        sum.batches,
        sum.files,
        sum.attributed,
        if sum.replayed > 0 {
            format!("; {} batches had already been stored", sum.replayed)
        } else {
            String::new()
        }
    ))
}

/// Sends one batch, waiting and retrying (with the same key) while the server is saturated or
/// unreachable.
async fn send(
    s: &Session,
    tenant: &str,
    file: &std::path::Path,
    first: usize,
    body: Vec<u8>,
    bar: &ProgressBar,
) -> anyhow::Result<IngestReceipt> {
    let key = batch_key(file, first, &body);
    let mut tries = 0u32;
    loop {
        tries += 1;
        match s
            .client
            .ingest_events(tenant, body.clone(), Some(&key))
            .await
        {
            Ok(r) => return Ok(r),
            Err(IngestError::Busy(secs)) if tries < 60 => {
                bar.set_message(format!("server busy, retrying in {secs} s"));
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                bar.set_message("");
            }
            Err(IngestError::Other(ClientError::Transport(m))) if tries < 5 => {
                bar.set_message(format!("{m}; retrying"));
                tokio::time::sleep(std::time::Duration::from_secs(u64::from(tries))).await;
            }
            Err(IngestError::Busy(_)) => {
                bail!(
                    "the server stayed busy; nothing after line {first} of {} was sent",
                    file.display()
                )
            }
            Err(IngestError::Other(e)) => {
                let at = match file_line(&e, first) {
                    Some(l) => format!("{}:{l}", file.display()),
                    None => format!("{} (batch from line {first})", file.display()),
                };
                return Err(anyhow::anyhow!("{at}: {}", s.fail(e)));
            }
        }
    }
}
