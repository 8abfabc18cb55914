//! `parapet kms backup | restore | wrapping-key` and `parapet kms key import`: key-ring backup
//! and recovery for custodians (X.1642 8.2(2)) and bring-your-own-key (8.2(3)).

use std::io::Read;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json as j;

use super::super::output::{clean, json, note, out};
use super::super::{CommonArgs, Session};

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("recipient").required(true)
    .args(["recipient_x25519", "recipient_rsa", "shares"])))]
pub struct BackupArgs {
    /// Back up every tenant's keys (the provider's key custodians); default: your tenant's.
    #[arg(long)]
    pub all: bool,
    /// Seal for this X25519 public key (file: PEM, base64 or the 32 raw bytes).
    #[arg(long, value_name = "FILE")]
    pub recipient_x25519: Option<String>,
    /// Seal for this RSA public key of 3072 bits or more (file: PEM or DER).
    #[arg(long, value_name = "FILE")]
    pub recipient_rsa: Option<String>,
    /// Seal with a fresh recovery secret split into this many shares (printed once).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=16), requires = "threshold")]
    pub shares: Option<u8>,
    /// How many recovery shares open the backup.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub threshold: Option<u8>,
    /// Write the backup to FILE (mode 0600) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("recovery").required(true)
    .args(["x25519_private_key", "rsa_private_key", "shares_from"])))]
pub struct RestoreArgs {
    /// The backup file made by 'parapet kms backup' ('-' for standard input).
    #[arg(value_name = "FILE")]
    pub file: String,
    /// The custodians' X25519 private key (file: PEM PKCS#8, base64 or the 32 raw bytes).
    #[arg(long, value_name = "FILE")]
    pub x25519_private_key: Option<String>,
    /// The custodians' RSA private key (file: PEM or DER PKCS#8).
    #[arg(long, value_name = "FILE")]
    pub rsa_private_key: Option<String>,
    /// Recovery shares, one per line ('-' for standard input).
    #[arg(long, value_name = "FILE")]
    pub shares_from: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WrappingKeyArgs {
    /// rsa-oaep-sha256 (RSA 3072) or x25519 (X25519 + HKDF-SHA-256 + AES-256-GCM).
    #[arg(long, default_value = "rsa-oaep-sha256",
          value_parser = ["rsa-oaep-sha256", "x25519"])]
    pub algorithm: String,
    /// Write the public key (PEM) to FILE.
    #[arg(long, value_name = "FILE")]
    pub public_key_out: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The new key's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// aes256-gcm, chacha20-poly1305, ed25519 (the 32-byte seed) or hmac-sha256.
    #[arg(long = "type", value_name = "TYPE", default_value = "aes256-gcm",
          value_parser = ["aes256-gcm", "chacha20-poly1305", "ed25519", "hmac-sha256"])]
    pub key_type: String,
    /// The import token given with the wrapping key.
    #[arg(long, value_name = "TOKEN")]
    pub import_token: String,
    /// The wrapped material (raw bytes or base64; '-' for standard input).
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub wrapped: String,
    /// Allow the key to be exported later (cannot be changed afterwards).
    #[arg(long)]
    pub exportable: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

const FILE_MAX: u64 = 256 * 1024 * 1024;

fn read_file(path: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path == "-" {
        std::io::stdin()
            .lock()
            .take(FILE_MAX)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read the {what} from standard input"))?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(FILE_MAX).read_to_end(&mut buf))
            .with_context(|| format!("cannot read the {what} from {path}"))?;
    }
    Ok(buf)
}

fn text_of(bytes: Vec<u8>, what: &str) -> anyhow::Result<String> {
    // PEM and base64 are text; raw 32-byte keys travel as base64.
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let b = e.into_bytes();
            if b.len() != 32 {
                bail!("the {what} is neither PEM, base64 nor 32 raw bytes");
            }
            STANDARD.encode(b)
        }
    })
}

pub async fn backup(a: BackupArgs) -> anyhow::Result<()> {
    let recipient = match (&a.recipient_x25519, &a.recipient_rsa, a.shares, a.threshold) {
        (Some(f), None, None, _) => j!({"type": "x25519",
            "public_key": text_of(read_file(f, "X25519 public key")?, "X25519 public key")?}),
        (None, Some(f), None, _) => j!({"type": "rsa-oaep-sha256",
            "public_key": text_of(read_file(f, "RSA public key")?, "RSA public key")?}),
        (None, None, Some(n), Some(k)) => {
            if k > n {
                bail!("--threshold must not exceed --shares");
            }
            j!({"type": "shamir", "shares": n, "threshold": k})
        }
        _ => bail!("give one of --recipient-x25519, --recipient-rsa or --shares with --threshold"),
    };
    let s = Session::open(&a.common)?;
    let scope = if a.all { "all" } else { "tenant" };
    let v = s
        .client
        .kms_backup(scope, &recipient)
        .await
        .map_err(|e| s.fail(e))?;
    let backup = v
        .get("backup")
        .ok_or_else(|| anyhow!("the server sent no backup"))?;
    let shares: Vec<String> = v
        .get("shares")
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut text = serde_json::to_string_pretty(backup).context("cannot encode the backup")?;
    text.push('\n');
    match &a.output {
        Some(path) => {
            write_private(path, text.as_bytes())?;
            if s.json {
                return json(&j!({"file": path, "shares": shares,
                    "keys": backup.get("keys"), "tenants": backup.get("tenants")}));
            }
            note(&format!(
                "Wrote a backup of {} key(s) of {} tenant(s) to {path}.",
                backup.get("keys").unwrap_or(&j!(0)),
                backup.get("tenants").unwrap_or(&j!(0))
            ));
            if !shares.is_empty() {
                note("Recovery shares (shown once; give each to a different custodian):");
                out(&format!("{}\n", shares.join("\n")))?;
            }
            Ok(())
        }
        None => {
            if s.json {
                return json(&v);
            }
            if !shares.is_empty() {
                note("Recovery shares (shown once; give each to a different custodian):");
                for sh in &shares {
                    note(sh);
                }
            }
            out(&text)
        }
    }
}

fn write_private(path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("cannot write {path}"))
}

pub async fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    if a.file == "-" && a.shares_from.as_deref() == Some("-") {
        bail!("only one of the backup and the shares can come from standard input");
    }
    let backup: serde_json::Value = serde_json::from_slice(&read_file(&a.file, "backup")?)
        .map_err(|e| {
            anyhow!(
                "{} is not a backup made by 'parapet kms backup': {e}",
                a.file
            )
        })?;
    let recovery = match (&a.x25519_private_key, &a.rsa_private_key, &a.shares_from) {
        (Some(f), None, None) => j!({"x25519_private_key":
            text_of(read_file(f, "X25519 private key")?, "X25519 private key")?}),
        (None, Some(f), None) => {
            let b = read_file(f, "RSA private key")?;
            let t = match String::from_utf8(b) {
                Ok(t) => t,
                Err(e) => STANDARD.encode(e.into_bytes()),
            };
            j!({"rsa_private_key": t})
        }
        (None, None, Some(f)) => {
            let t = String::from_utf8(read_file(f, "recovery shares")?)
                .map_err(|_| anyhow!("recovery shares are hexadecimal text, one per line"))?;
            let shares: Vec<&str> = t.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            j!({"shares": shares})
        }
        _ => bail!("give one of --x25519-private-key, --rsa-private-key or --shares-from"),
    };
    let s = Session::open(&a.common)?;
    let v = s
        .client
        .kms_restore(&backup, &recovery)
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&v);
    }
    let mut text = String::new();
    for t in v
        .get("tenants")
        .and_then(|t| t.as_array())
        .cloned()
        .unwrap_or_default()
    {
        let keys = t
            .get("keys")
            .and_then(|k| k.as_array())
            .cloned()
            .unwrap_or_default();
        text.push_str(&format!(
            "Restored {} key(s) into tenant {}\n",
            keys.len(),
            clean(t.get("tenant").and_then(|x| x.as_str()).unwrap_or("?"))
        ));
    }
    out(&text)
}

pub async fn wrapping_key(a: WrappingKeyArgs) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let v = s
        .client
        .kms_wrapping_key(&a.algorithm)
        .await
        .map_err(|e| s.fail(e))?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    if let Some(path) = &a.public_key_out {
        std::fs::write(path, field("public_key"))
            .with_context(|| format!("cannot write {path}"))?;
    }
    if s.json {
        return json(&v);
    }
    out(&format!(
        "{}algorithm: {}\nexpires: {}\nimport-token: {}\n",
        field("public_key"),
        clean(&field("algorithm")),
        clean(&field("expires_at")),
        clean(&field("import_token"))
    ))
}

pub async fn import(a: ImportArgs) -> anyhow::Result<()> {
    let raw = read_file(&a.wrapped, "wrapped material")?;
    // Base64 text is decoded; anything else is taken as the raw wrapped bytes.
    let wrapped = std::str::from_utf8(&raw)
        .ok()
        .and_then(|t| STANDARD.decode(t.trim()).ok())
        .unwrap_or(raw);
    let s = Session::open(&a.common)?;
    let k = s
        .client
        .kms_import_key(&j!({"name": a.name, "type": a.key_type,
            "wrapped_material": STANDARD.encode(&wrapped), "import_token": a.import_token.trim(),
            "exportable": a.exportable}))
        .await
        .map_err(|e| s.fail(e))?;
    if s.json {
        return json(&k);
    }
    out(&format!(
        "Imported key {} ({}, id {}, origin external).\n",
        clean(&k.name),
        clean(&k.key_type),
        clean(&k.id)
    ))
}
