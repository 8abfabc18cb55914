//! Publishing the audit log's checkpoints to witnesses outside the database: a directory, a
//! webhook, an S3 bucket. A copy kept elsewhere is what makes a rewritten history detectable
//! even by someone who controls the database: `parapet audit consistency` checks that the log
//! still extends every saved checkpoint.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use parapet_audit::AuditLog;
use parapet_types::Env;
use sha2::{Digest, Sha256};

/// How often the publisher looks for a new checkpoint.
const INTERVAL: Duration = Duration::from_secs(1);
/// Time limit of one publication.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where checkpoints are published.
#[derive(Clone, PartialEq, Eq)]
pub enum Sink {
    /// `dir:PATH` or an absolute path: `<size>.checkpoint` files (zero-padded) and `latest`.
    Dir(PathBuf),
    /// `http(s)://…`: each checkpoint is POSTed as `text/plain`.
    Webhook(String),
    /// `s3://bucket/prefix`: objects `<prefix><size>.checkpoint`, signed with AWS SigV4.
    S3(S3Target),
}

/// An S3 bucket and the credentials to write to it (from the standard AWS variables).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Target {
    /// `http(s)://host[:port]`, path-style addressing.
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Dir(p) => write!(f, "dir:{}", p.display()),
            // A webhook URL may carry a token: show its origin only.
            Sink::Webhook(u) => match reqwest::Url::parse(u) {
                Ok(url) => write!(f, "{}", url.origin().ascii_serialization()),
                Err(_) => f.write_str("webhook"),
            },
            Sink::S3(t) => write!(f, "s3://{}/{}", t.bucket, t.prefix),
        }
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl FromStr for Sink {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("dir:") {
            if path.is_empty() {
                return Err("dir: needs a path".into());
            }
            return Ok(Sink::Dir(PathBuf::from(path)));
        }
        if s.starts_with('/') {
            return Ok(Sink::Dir(PathBuf::from(s)));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            reqwest::Url::parse(s).map_err(|e| format!("invalid webhook URL: {e}"))?;
            return Ok(Sink::Webhook(s.to_string()));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// needs a bucket: s3://bucket/prefix".into());
            }
            let endpoint = env_var("PARAPET_S3_ENDPOINT")
                .or_else(|| env_var("AWS_ENDPOINT_URL"))
                .unwrap_or_else(|| "https://s3.amazonaws.com".into());
            let access_key = env_var("AWS_ACCESS_KEY_ID")
                .ok_or("s3:// witnesses need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")?;
            let secret_key = env_var("AWS_SECRET_ACCESS_KEY")
                .ok_or("s3:// witnesses need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")?;
            let prefix = if prefix.is_empty() || prefix.ends_with('/') {
                prefix.to_string()
            } else {
                format!("{prefix}/")
            };
            return Ok(Sink::S3(S3Target {
                endpoint: endpoint.trim_end_matches('/').to_string(),
                bucket: bucket.to_string(),
                prefix,
                region: env_var("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
                access_key,
                secret_key,
            }));
        }
        Err(format!(
            "unknown witness {s:?}: use dir:PATH, an absolute path, an http(s):// webhook or \
             s3://bucket/prefix"
        ))
    }
}

/// The file or object name of the checkpoint of `size`: zero-padded so that names sort by size.
pub fn checkpoint_name(size: u64) -> String {
    format!("{size:020}.checkpoint")
}

/// Publishes one checkpoint to one sink.
async fn publish(
    http: &reqwest::Client,
    env: &Env,
    sink: &Sink,
    size: u64,
    signed: &str,
) -> Result<(), String> {
    match sink {
        Sink::Dir(dir) => {
            let dir = dir.clone();
            let signed = signed.to_string();
            tokio::task::spawn_blocking(move || write_dir(&dir, size, &signed))
                .await
                .map_err(|e| e.to_string())?
        }
        Sink::Webhook(url) => {
            let resp = http
                .post(url)
                .header("content-type", "text/plain; charset=utf-8")
                .header("parapet-tree-size", size.to_string())
                .body(signed.to_string())
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(format!("the webhook answered {}", resp.status()))
            }
        }
        Sink::S3(t) => s3_put(http, env, t, &checkpoint_name(size), signed.as_bytes()).await,
    }
}

fn write_dir(dir: &std::path::Path, size: u64, signed: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // A witness never replaces what it saw: a different checkpoint of a size already witnessed
    // is a rewritten history.
    let own = dir.join(checkpoint_name(size));
    match std::fs::read_to_string(&own) {
        Ok(seen) if seen == signed => return Ok(()),
        Ok(_) => {
            return Err(format!(
                "{} already holds a DIFFERENT checkpoint of size {size}: the log was rewritten",
                own.display()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", own.display())),
    }
    for name in [checkpoint_name(size), "latest".to_string()] {
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, signed)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|e| e.to_string())?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The `Authorization` header of an S3 `PUT` of a body whose SHA-256 is `payload_hash` (hex),
/// signed with AWS Signature Version 4 over `host`, `x-amz-content-sha256` and `x-amz-date`.
/// `amz_date` is `YYYYMMDDTHHMMSSZ`.
pub fn sigv4_put_authorization(
    t: &S3Target,
    url: &reqwest::Url,
    amz_date: &str,
    payload_hash: &str,
) -> Result<String, String> {
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err("the S3 endpoint has no host".into()),
    };
    let date = amz_date.get(..8).ok_or("malformed x-amz-date")?;
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical = format!(
        "PUT\n{}\n\nhost:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n\n\
         {signed_headers}\n{payload_hash}",
        url.path()
    );
    let scope = format!("{date}/{}/s3/aws4_request", t.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical.as_bytes())
    );
    let k_date = hmac(format!("AWS4{}", t.secret_key).as_bytes(), date.as_bytes())?;
    let k_region = hmac(&k_date, t.region.as_bytes())?;
    let k_service = hmac(&k_region, b"s3")?;
    let k_signing = hmac(&k_service, b"aws4_request")?;
    let signature = hex::encode(hmac(&k_signing, to_sign.as_bytes())?);
    Ok(format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, \
         Signature={signature}",
        t.access_key
    ))
}

/// The URL of object `key` of the bucket (path-style).
pub fn s3_object_url(t: &S3Target, key: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(&format!("{}/{}/{}{}", t.endpoint, t.bucket, t.prefix, key))
        .map_err(|e| format!("invalid S3 URL: {e}"))
}

/// `PUT` of one object with AWS Signature Version 4 (path-style).
async fn s3_put(
    http: &reqwest::Client,
    env: &Env,
    t: &S3Target,
    key: &str,
    body: &[u8],
) -> Result<(), String> {
    let url = s3_object_url(t, key)?;
    let now = time::OffsetDateTime::from_unix_timestamp(env.now().0.div_euclid(1000))
        .map_err(|e| e.to_string())?;
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let payload = hex_sha256(body);
    let auth = sigv4_put_authorization(t, &url, &amz_date, &payload)?;
    let resp = http
        .put(url)
        .header("x-amz-date", amz_date)
        .header("x-amz-content-sha256", payload)
        .header("authorization", auth)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "S3 answered {status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

/// Publishes the latest checkpoint to every sink whenever it grows, until `stop` turns true.
/// A sink that fails is retried at the next round; the others go on.
pub async fn run_witnesses(
    audit: Arc<AuditLog>,
    env: Env,
    sinks: Vec<Sink>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if sinks.is_empty() {
        return;
    }
    let http = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot start the witness publisher: {e}");
            return;
        }
    };
    let mut published = vec![None::<u64>; sinks.len()];
    loop {
        match audit.checkpoint(None).await {
            Ok(cp) => {
                for (sink, done) in sinks.iter().zip(published.iter_mut()) {
                    if done.is_some_and(|d| d >= cp.size) {
                        continue;
                    }
                    match publish(&http, &env, sink, cp.size, &cp.signed).await {
                        Ok(()) => {
                            *done = Some(cp.size);
                            metrics::gauge!("parapet_audit_witnessed_size", "sink" => sink.to_string())
                                .set(cp.size as f64);
                        }
                        Err(e) => {
                            tracing::warn!(sink = %sink, "cannot publish checkpoint {}: {e}", cp.size);
                            metrics::counter!("parapet_audit_witness_failures_total", "sink" => sink.to_string())
                                .increment(1);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("witness publisher cannot read the checkpoint: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_sinks_and_hides_webhook_secrets() {
        assert_eq!(
            "dir:/var/lib/w".parse::<Sink>().unwrap(),
            Sink::Dir("/var/lib/w".into())
        );
        assert_eq!("/w".parse::<Sink>().unwrap(), Sink::Dir("/w".into()));
        let hook: Sink = "https://witness.example/hook?token=s3cret".parse().unwrap();
        assert_eq!(hook.to_string(), "https://witness.example");
        assert!("ftp://x".parse::<Sink>().is_err());
        assert!("dir:".parse::<Sink>().is_err());
        assert!("s3:///prefix".parse::<Sink>().is_err());
        assert_eq!(checkpoint_name(42), "00000000000000000042.checkpoint");
    }

    /// The AWS SigV4 example of the S3 documentation ("GET Object" with a range is not ours;
    /// this checks the key derivation against the published signing-key example).
    #[test]
    fn sigv4_signing_key_matches_the_published_example() {
        // From AWS's "Examples of how to derive a signing key for Signature Version 4".
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let k_date = hmac(format!("AWS4{secret}").as_bytes(), b"20120215").unwrap();
        let k_region = hmac(&k_date, b"us-east-1").unwrap();
        let k_service = hmac(&k_region, b"iam").unwrap();
        let k_signing = hmac(&k_service, b"aws4_request").unwrap();
        assert_eq!(
            hex::encode(k_signing),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
