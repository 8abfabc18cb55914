//! `parapet kms …`: the key service (X.1642 8.2). Data commands read standard input and write
//! standard output so that they compose in scripts: `encrypt` prints the ciphertext as one line,
//! `decrypt` prints the plaintext bytes exactly.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parapet_client::{KmsKey, KmsStatus, NewKmsKey};

use super::output::{clean, fields, json, out, table};
use super::{CommonArgs, Session};

mod backup;

/// Largest input of the data commands (the server takes 64 KiB bodies; base64 grows by a third).
pub const MAX_INPUT: usize = 46 * 1024;

#[derive(Debug, clap::Subcommand)]
pub enum KmsCommand {
    /// Show whether the key service is initialized and sealed (no log-in needed).
    Status(Plain),
    /// Create the root key and split it into shares for key custodians (key custodians).
    ///
    /// Prints the shares once, one per line: give each to a different custodian. The service
    /// stays sealed until --threshold of them are given to 'parapet kms unseal'.
    Init(InitArgs),
    /// Give one custodian's share towards unsealing (read from standard input, or prompted for
    /// without echo).
    Unseal(UnsealArgs),
    /// Seal the key service: every key operation is refused until custodians unseal it.
    Seal(Plain),
    /// What is encrypted at rest and in transit, with which algorithms (the SLA's encryption
    /// section, generated from the running configuration). Also: 'parapet kms disclosure'.
    #[command(visible_alias = "disclosure")]
    Encryption(Plain),
    /// Manage keys of your tenant: create, list, show, rotate, disable, enable, set,
    /// schedule-deletion, cancel-deletion, receipt.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Encrypt standard input; print the ciphertext as one line.
    Encrypt(EncryptArgs),
    /// Decrypt a ciphertext read from standard input; print the plaintext bytes.
    Decrypt(DecryptArgs),
    /// Re-encrypt a ciphertext (standard input) under its key's newest version.
    Rewrap(DecryptArgs),
    /// Generate a 256-bit data key: prints the wrapped key, then (unless --wrapped-only) the
    /// plaintext key in base64 on a second line.
    Datakey(DatakeyArgs),
    /// Sign standard input with an Ed25519 key; print the signature as one line.
    Sign(KeyDataArgs),
    /// Verify a signature of standard input; exit status 0 only if it is valid.
    Verify(VerifyArgs),
    /// HMAC-SHA-256 of standard input; print the MAC as one line.
    Hmac(KeyDataArgs),
    /// Verify a MAC of standard input; exit status 0 only if it is valid.
    VerifyHmac(VerifyHmacArgs),
    /// Verify a signed deletion receipt offline against the receipt-signing public key.
    VerifyReceipt(VerifyReceiptArgs),
    /// Export a key ring (your tenant's, or with --all every tenant's) sealed for a recovery key
    /// held by custodians: an X25519 or RSA public key, or a recovery secret split into shares.
    Backup(backup::BackupArgs),
    /// Restore a key ring made by 'parapet kms backup' into this installation (keys keep their
    /// ids, so old ciphertexts decrypt here).
    Restore(backup::RestoreArgs),
    /// Get a short-lived wrapping key to bring your own key material (prints the public key
    /// PEM and the import token for 'parapet kms key import').
    WrappingKey(backup::WrappingKeyArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Plain {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// How many shares to make (one per custodian).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub shares: u8,
    /// How many shares unseal.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub threshold: u8,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct UnsealArgs {
    /// Read the share from the first line of standard input instead of prompting.
    #[arg(long)]
    pub share_stdin: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Create a key.
    Create(CreateArgs),
    /// List the keys of your tenant.
    List(Plain),
    /// Show a key with its versions.
    Show(KeyArgs),
    /// Add a new version that encrypts from now on (older versions still decrypt).
    Rotate(KeyArgs),
    /// Disable a key: nothing is encrypted or decrypted with it until enabled.
    Disable(KeyArgs),
    /// Enable a disabled key.
    Enable(KeyArgs),
    /// Change the minimum decryption version or the automatic rotation period.
    Set(SetArgs),
    /// Schedule the destruction of a key's material after a waiting period (7-30 days).
    ScheduleDeletion(DeletionArgs),
    /// Cancel a scheduled deletion (the key comes back disabled).
    CancelDeletion(KeyArgs),
    /// Print the signed deletion receipt of a destroyed key.
    Receipt(KeyArgs),
    /// Print the material of a key created with --exportable, as JSON (audited).
    Export(KeyArgs),
    /// Import key material you made outside Parapet, wrapped by 'parapet kms wrapping-key'.
    Import(backup::ImportArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// The key's name (letters, digits, '.', '_', '-').
    #[arg(value_name = "NAME")]
    pub name: String,
    /// aes256-gcm, chacha20-poly1305, ed25519 or hmac-sha256.
    #[arg(long = "type", value_name = "TYPE", default_value = "aes256-gcm",
          value_parser = ["aes256-gcm", "chacha20-poly1305", "ed25519", "hmac-sha256"])]
    pub key_type: String,
    /// Allow the key to be exported later (cannot be changed afterwards).
    #[arg(long)]
    pub exportable: bool,
    /// Rotate automatically every SECS seconds (at least 3600).
    #[arg(long, value_name = "SECS")]
    pub rotation_period: Option<i64>,
    /// Only these users may use the key (repeatable; default: every role that may).
    #[arg(long = "user", value_name = "NAME")]
    pub users: Vec<String>,
    /// Only these users may manage the key (repeatable).
    #[arg(long = "admin", value_name = "NAME")]
    pub admins: Vec<String>,
    /// Only these users may audit the key (repeatable).
    #[arg(long = "auditor", value_name = "NAME")]
    pub auditors: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// The key's name or id.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetArgs {
    /// The key's name or id.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Versions below this no longer decrypt.
    #[arg(long, value_name = "N")]
    pub min_decryption_version: Option<i64>,
    /// Seconds between automatic rotations; 0 turns them off.
    #[arg(long, value_name = "SECS")]
    pub rotation_period: Option<i64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DeletionArgs {
    /// The key's name or id.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Waiting period in days (7-30).
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub days: i64,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EncryptArgs {
    /// The key to encrypt with.
    #[arg(long, value_name = "NAME")]
    pub key: String,
    /// Encryption context bound to the ciphertext (repeatable); decrypting needs the same.
    #[arg(long = "context", value_name = "K=V")]
    pub context: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DecryptArgs {
    /// The encryption context given when encrypting (repeatable).
    #[arg(long = "context", value_name = "K=V")]
    pub context: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DatakeyArgs {
    #[arg(long, value_name = "NAME")]
    pub key: String,
    #[arg(long = "context", value_name = "K=V")]
    pub context: Vec<String>,
    /// Print only the wrapped data key.
    #[arg(long)]
    pub wrapped_only: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeyDataArgs {
    #[arg(long, value_name = "NAME")]
    pub key: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The signature printed by 'parapet kms sign'.
    #[arg(long, value_name = "SIGNATURE")]
    pub signature: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyHmacArgs {
    /// The MAC printed by 'parapet kms hmac'.
    #[arg(long, value_name = "MAC")]
    pub mac: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyReceiptArgs {
    /// The receipt file ('-' for standard input).
    #[arg(value_name = "FILE")]
    pub file: String,
    /// The receipt-signing public key (base64, from 'GET /api/v1/kms/receipt-key'), or @FILE.
    #[arg(long, value_name = "KEY")]
    pub public_key: String,
    /// Print the receipt's content as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_context(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--context {p:?}: expected KEY=VALUE"))?;
        if k.is_empty() {
            bail!("--context {p:?}: the key is empty");
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            bail!("--context: {k:?} is given twice");
        }
    }
    Ok(out)
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(u64::try_from(MAX_INPUT).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut buf)
        .context("cannot read standard input")?;
    if buf.len() > MAX_INPUT {
        bail!(
            "standard input is larger than {} KiB: encrypt large data locally with a data key \
             ('parapet kms datakey')",
            MAX_INPUT / 1024
        );
    }
    Ok(buf)
}

fn read_token() -> anyhow::Result<String> {
    let buf = read_stdin()?;
    let text = String::from_utf8(buf).map_err(|_| anyhow!("standard input is not text"))?;
    let line = text.trim();
    if line.is_empty() {
        bail!("expected a ciphertext on standard input");
    }
    Ok(line.to_string())
}

fn status_text(s: &KmsStatus) -> String {
    let state = match (s.initialized, s.sealed) {
        (false, _) => "not initialized".to_string(),
        (true, true) => format!("sealed ({} of {} shares given)", s.progress, s.threshold),
        (true, false) => "unsealed".to_string(),
    };
    fields(&[
        ("State", state),
        ("Mode", s.mode.clone().unwrap_or_else(|| "-".into())),
        (
            "Shares",
            format!("{} (threshold {})", s.shares, s.threshold),
        ),
    ])
}

fn key_rows(keys: &[KmsKey]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                clean(&k.name),
                clean(&k.key_type),
                clean(&k.state),
                k.latest_version.to_string(),
                k.min_decryption_version.to_string(),
                k.deletion_due_at.clone().unwrap_or_else(|| "-".into()),
                clean(&k.id),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "TYPE",
            "STATE",
            "VERSION",
            "MIN DECRYPT",
            "DELETION DUE",
            "ID",
        ],
        &rows,
    )
}

fn key_text(k: &KmsKey) -> String {
    let mut s = fields(&[
        ("Name", clean(&k.name)),
        ("Id", clean(&k.id)),
        ("Type", clean(&k.key_type)),
        ("State", clean(&k.state)),
        ("Latest version", k.latest_version.to_string()),
        (
            "Min decryption version",
            k.min_decryption_version.to_string(),
        ),
        (
            "Rotation period",
            k.rotation_period_secs
                .map(|s| format!("{s} s"))
                .unwrap_or_else(|| "-".into()),
        ),
        ("Exportable", k.exportable.to_string()),
        ("Policy", k.policy.to_string()),
        (
            "Deletion due",
            k.deletion_due_at.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Created", k.created_at.clone()),
    ]);
    if let Some(vs) = &k.versions {
        let rows: Vec<Vec<String>> = vs
            .iter()
            .map(|v| {
                vec![
                    v.version.to_string(),
                    v.created_at.clone(),
                    if v.destroyed { "destroyed" } else { "present" }.into(),
                    v.public_key.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        s.push('\n');
        s.push_str(&table(
            &["VERSION", "CREATED", "MATERIAL", "PUBLIC KEY"],
            &rows,
        ));
    }
    s
}

fn print_key(s: &Session, k: &KmsKey, sentence: &str) -> anyhow::Result<()> {
    if s.json {
        return json(k);
    }
    out(&format!("{sentence}\n"))
}

fn line(text: &str) -> anyhow::Result<()> {
    out(&format!("{text}\n"))
}

pub async fn run(cmd: KmsCommand) -> anyhow::Result<()> {
    match cmd {
        KmsCommand::Status(a) => {
            let s = Session::open_anonymous(&a.common)?;
            let st = s.client.kms_status().await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&st);
            }
            out(&status_text(&st))
        }
        KmsCommand::Init(a) => {
            if a.threshold > a.shares {
                bail!("--threshold must not exceed --shares");
            }
            let s = Session::open(&a.common)?;
            let init = s
                .client
                .kms_init(a.shares, a.threshold)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&init);
            }
            super::output::note(&format!(
                "The key service is initialized and sealed. Give each share below to a different \
                 custodian; {} of them unseal it with 'parapet kms unseal'. They are not shown \
                 again.",
                init.threshold
            ));
            out(&init
                .shares
                .iter()
                .map(|sh| format!("{sh}\n"))
                .collect::<String>())
        }
        KmsCommand::Unseal(a) => {
            let share = zeroize::Zeroizing::new(super::read_password(
                a.share_stdin,
                "Unseal share: ",
                false,
            )?);
            let s = Session::open(&a.common)?;
            let st = s.client.kms_unseal(&share).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&st);
            }
            out(&status_text(&st))
        }
        KmsCommand::Seal(a) => {
            let s = Session::open(&a.common)?;
            let st = s.client.kms_seal().await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&st);
            }
            out(&status_text(&st))
        }
        KmsCommand::Key(c) => key(c).await,
        KmsCommand::Encryption(a) => {
            let s = Session::open(&a.common)?;
            let v = s.client.kms_encryption().await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&v);
            }
            let list = |v: &serde_json::Value| {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            let null = serde_json::Value::Null;
            let at = |v: &'_ serde_json::Value, k: &str| v.get(k).unwrap_or(&null).clone();
            let r = at(&v, "at_rest");
            let t = at(&v, "in_transit");
            let text = |x: serde_json::Value| clean(x.as_str().unwrap_or("-"));
            out(&format!(
                "Encryption at rest\n  Root key: {}\n  Tenant keys: {}\n  Key material: {}\n  \
                 Data: {}\n  Keys by type: {}\nEncryption in transit\n  TLS on this server: {}\n  \
                 Protocols: {}\n  Cipher suites: {}\n  Key exchange: {}\nParapet's own data\n{}",
                text(at(&r, "root")),
                text(at(&r, "tenant_kek")),
                text(at(&r, "key_material")),
                text(at(&r, "data")),
                clean(&at(&r, "keys_by_type").to_string()),
                at(&t, "tls"),
                list(&at(&t, "protocols")),
                list(&at(&t, "cipher_suites")),
                list(&at(&t, "key_exchange_groups")),
                at(&v, "platform")
                    .as_array()
                    .map(|items| items
                        .iter()
                        .map(|i| format!("  {}: {}\n", text(at(i, "what")), text(at(i, "how"))))
                        .collect::<String>())
                    .unwrap_or_default(),
            ))
        }
        KmsCommand::Encrypt(a) => {
            let ctx = parse_context(&a.context)?;
            let data = zeroize::Zeroizing::new(read_stdin()?);
            let s = Session::open(&a.common)?;
            let ct = s
                .client
                .kms_encrypt(&a.key, &STANDARD.encode(&*data), &ctx)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "ciphertext": ct }));
            }
            line(&ct)
        }
        KmsCommand::Decrypt(a) => {
            let ctx = parse_context(&a.context)?;
            let ct = read_token()?;
            let s = Session::open(&a.common)?;
            let plain = s
                .client
                .kms_decrypt(&ct, &ctx)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "plaintext": plain }));
            }
            let bytes = zeroize::Zeroizing::new(
                STANDARD
                    .decode(plain)
                    .map_err(|_| anyhow!("the server sent a plaintext that is not base64"))?,
            );
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .context("cannot write standard output")
        }
        KmsCommand::Rewrap(a) => {
            let ctx = parse_context(&a.context)?;
            let ct = read_token()?;
            let s = Session::open(&a.common)?;
            let out_ct = s
                .client
                .kms_rewrap(&ct, &ctx)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "ciphertext": out_ct }));
            }
            line(&out_ct)
        }
        KmsCommand::Datakey(a) => {
            let ctx = parse_context(&a.context)?;
            let s = Session::open(&a.common)?;
            let dk = s
                .client
                .kms_datakey(&a.key, &ctx, a.wrapped_only)
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&dk);
            }
            match &dk.plaintext {
                Some(p) => out(&format!("{}\n{p}\n", dk.ciphertext)),
                None => line(&dk.ciphertext),
            }
        }
        KmsCommand::Sign(a) => {
            let data = read_stdin()?;
            let s = Session::open(&a.common)?;
            let sig = s
                .client
                .kms_sign(&a.key, &STANDARD.encode(&data))
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "signature": sig }));
            }
            line(&sig)
        }
        KmsCommand::Hmac(a) => {
            let data = read_stdin()?;
            let s = Session::open(&a.common)?;
            let mac = s
                .client
                .kms_hmac(&a.key, &STANDARD.encode(&data))
                .await
                .map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "mac": mac }));
            }
            line(&mac)
        }
        KmsCommand::Verify(a) => {
            let data = read_stdin()?;
            let s = Session::open(&a.common)?;
            let ok = s
                .client
                .kms_verify(&a.signature, &STANDARD.encode(&data))
                .await
                .map_err(|e| s.fail(e))?;
            report_valid(&s, ok, "signature")
        }
        KmsCommand::VerifyHmac(a) => {
            let data = read_stdin()?;
            let s = Session::open(&a.common)?;
            let ok = s
                .client
                .kms_verify_hmac(&a.mac, &STANDARD.encode(&data))
                .await
                .map_err(|e| s.fail(e))?;
            report_valid(&s, ok, "MAC")
        }
        KmsCommand::VerifyReceipt(a) => verify_receipt(&a),
        KmsCommand::Backup(a) => backup::backup(a).await,
        KmsCommand::Restore(a) => backup::restore(a).await,
        KmsCommand::WrappingKey(a) => backup::wrapping_key(a).await,
    }
}

fn report_valid(s: &Session, ok: bool, what: &str) -> anyhow::Result<()> {
    if s.json {
        json(&serde_json::json!({ "valid": ok }))?;
    } else if ok {
        line(&format!("valid {what}"))?;
    }
    if ok { Ok(()) } else { bail!("invalid {what}") }
}

fn verify_receipt(a: &VerifyReceiptArgs) -> anyhow::Result<()> {
    let text = if a.file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the receipt from standard input")?;
        s
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("cannot read {}", a.file))?
    };
    let key_text = match a.public_key.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => a.public_key.clone(),
    };
    let pk = STANDARD
        .decode(key_text.trim())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| anyhow!("--public-key must be a base64 Ed25519 public key (32 bytes)"))?;
    let r = parapet_kms::verify_receipt(&text, &pk).map_err(|e| anyhow!("{e}"))?;
    if a.json {
        return json(&r);
    }
    out(&format!(
        "Valid deletion receipt: key {} ({}, id {}) of tenant {} — versions {:?} destroyed at {}, \
         deletion scheduled by {}.\n",
        clean(&r.key_name),
        clean(&r.key_type),
        clean(&r.key_id),
        clean(&r.tenant),
        r.versions,
        clean(&r.destroyed_at),
        clean(&r.scheduled_by)
    ))
}

async fn key(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create(a) => {
            let s = Session::open(&a.common)?;
            let policy = (!a.users.is_empty() || !a.admins.is_empty() || !a.auditors.is_empty())
                .then(|| {
                    serde_json::json!({"users": a.users, "admins": a.admins,
                                       "auditors": a.auditors})
                });
            let k = s
                .client
                .kms_create_key(&NewKmsKey {
                    name: a.name.clone(),
                    key_type: Some(a.key_type.clone()),
                    exportable: a.exportable,
                    rotation_period_secs: a.rotation_period,
                    policy,
                })
                .await
                .map_err(|e| s.fail(e))?;
            print_key(
                &s,
                &k,
                &format!("Created {} key {} ({})", k.key_type, clean(&k.name), k.id),
            )
        }
        KeyCommand::List(a) => {
            let s = Session::open(&a.common)?;
            let keys = s.client.kms_list_keys().await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&keys);
            }
            out(&key_rows(&keys))
        }
        KeyCommand::Show(a) => {
            let s = Session::open(&a.common)?;
            let k = s.client.kms_get_key(&a.name).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&k);
            }
            out(&key_text(&k))
        }
        KeyCommand::Rotate(a) => {
            action(&a, "rotate", |k| {
                format!(
                    "Rotated {}: version {} encrypts from now on",
                    clean(&k.name),
                    k.latest_version
                )
            })
            .await
        }
        KeyCommand::Disable(a) => {
            action(&a, "disable", |k| format!("Disabled {}", clean(&k.name))).await
        }
        KeyCommand::Enable(a) => {
            action(&a, "enable", |k| format!("Enabled {}", clean(&k.name))).await
        }
        KeyCommand::CancelDeletion(a) => {
            action(&a, "cancel-deletion", |k| {
                format!(
                    "Cancelled the deletion of {}; it is disabled",
                    clean(&k.name)
                )
            })
            .await
        }
        KeyCommand::Set(a) => {
            if a.min_decryption_version.is_none() && a.rotation_period.is_none() {
                bail!("give --min-decryption-version and/or --rotation-period");
            }
            let s = Session::open(&a.common)?;
            let mut body = serde_json::Map::new();
            if let Some(v) = a.min_decryption_version {
                body.insert("min_decryption_version".into(), v.into());
            }
            if let Some(v) = a.rotation_period {
                body.insert("rotation_period_secs".into(), v.into());
            }
            let k = s
                .client
                .kms_update_key(&a.name, &serde_json::Value::Object(body))
                .await
                .map_err(|e| s.fail(e))?;
            print_key(&s, &k, &format!("Updated {}", clean(&k.name)))
        }
        KeyCommand::ScheduleDeletion(a) => {
            let s = Session::open(&a.common)?;
            let k = s
                .client
                .kms_schedule_deletion(&a.name, Some(a.days))
                .await
                .map_err(|e| s.fail(e))?;
            print_key(
                &s,
                &k,
                &format!(
                    "Key {} will be destroyed at {} unless the deletion is cancelled",
                    clean(&k.name),
                    k.deletion_due_at.clone().unwrap_or_default()
                ),
            )
        }
        KeyCommand::Import(a) => backup::import(a).await,
        KeyCommand::Export(a) => {
            let s = Session::open(&a.common)?;
            let v = s.client.kms_export(&a.name).await.map_err(|e| s.fail(e))?;
            json(&v)
        }
        KeyCommand::Receipt(a) => {
            let s = Session::open(&a.common)?;
            let r = s.client.kms_receipt(&a.name).await.map_err(|e| s.fail(e))?;
            if s.json {
                return json(&serde_json::json!({ "receipt": r }));
            }
            line(&r)
        }
    }
}

async fn action(
    a: &KeyArgs,
    what: &str,
    sentence: impl FnOnce(&KmsKey) -> String,
) -> anyhow::Result<()> {
    let s = Session::open(&a.common)?;
    let k = s
        .client
        .kms_key_action(&a.name, what)
        .await
        .map_err(|e| s.fail(e))?;
    let text = sentence(&k);
    print_key(&s, &k, &text)
}
