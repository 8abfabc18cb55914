//! Backup and recovery of key rings (X.1642 8.2(2)): a tenant's keys, or every tenant's, exported
//! as one document sealed for a recovery key held by custodians outside Parapet, and restored
//! into another installation (with another root key) under the same key ids, so that old
//! ciphertexts decrypt there.
//!
//! The document ([`Bundle`]) is JSON: a header (format, time, scope, tenant, number of keys, how
//! the bundle key is sealed) and the payload, the key ring as JSON encrypted with AES-256-GCM
//! under a fresh 256-bit bundle key, the header bound as associated data. The bundle key is
//! sealed for an X25519 or an RSA-OAEP (3072 bits or more) public key of the custodians
//! ([`crate::wrap`]), or split by Shamir's scheme into shares handed to them once. Destroyed
//! versions travel without material: crypto-shredding survives a restore.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use parapet_iam::{Action, KeyOp, Principal, RequestMeta};
use parapet_store::{AuditOutcome, KeyPolicy, KmsKey, KmsKeyVersion, StoreError, Tenant};
use parapet_types::{TenantCtx, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{self, KEY_LEN, KeyType};
use crate::{KmsError, KmsResult, KmsService, root, wrap};

/// The format name in every backup.
pub const FORMAT: &str = "parapet-kms-backup/v1";
const INFO: &str = "parapet-kms/backup/v1";
/// Audit records list key ids up to this many keys (counts beyond).
const AUDIT_LIST_MAX: usize = 1000;

/// Whose keys a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The caller's tenant (its key administrators).
    Tenant,
    /// Every tenant (the provider's key custodians).
    All,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::All => "all",
        }
    }
}

/// Who can open a backup.
#[derive(Debug, Clone)]
pub enum Recipient {
    /// An X25519 public key (raw, base64 or PEM).
    X25519(Vec<u8>),
    /// An RSA public key (PEM or DER SubjectPublicKeyInfo), 3072 bits or more.
    Rsa(Vec<u8>),
    /// A recovery secret split into `shares` shares of which `threshold` open the backup.
    Shamir { shares: u8, threshold: u8 },
}

/// What opens a backup.
#[derive(Clone)]
pub enum Recovery {
    X25519(Zeroizing<Vec<u8>>),
    Rsa(Zeroizing<Vec<u8>>),
    Shares(Vec<Zeroizing<String>>),
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recovery(<redacted>)")
    }
}

/// How the bundle key is sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SealedKey {
    X25519 {
        /// The recipient's public key (standard base64, raw 32 bytes).
        public_key: String,
        /// See [`crate::wrap`] (standard base64).
        wrapped_key: String,
    },
    RsaOaepSha256 {
        /// SHA-256 (hex) of the recipient's SubjectPublicKeyInfo.
        public_key_sha256: String,
        wrapped_key: String,
    },
    Shamir {
        shares: u8,
        threshold: u8,
    },
}

/// A key-ring backup as it is stored and handed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub created_at: String,
    /// `tenant` or `all`.
    pub scope: String,
    /// The tenant of a `tenant` backup.
    pub tenant: Option<String>,
    pub tenants: u64,
    pub keys: u64,
    pub sealed_key: SealedKey,
    /// base64url(nonce ‖ AES-256-GCM(ring) ‖ tag).
    pub payload: String,
}

impl Bundle {
    /// The associated data of the payload: every header field.
    fn aad(&self) -> Vec<u8> {
        let sealed = serde_json::to_string(&self.sealed_key).unwrap_or_default();
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.format,
            self.created_at,
            self.scope,
            self.tenant.as_deref().unwrap_or(""),
            self.tenants,
            self.keys,
            sealed
        )
        .into_bytes()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ring {
    tenants: Vec<RingTenant>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RingTenant {
    id: String,
    name: String,
    keys: Vec<RingKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RingKey {
    id: Uuid,
    name: String,
    key_type: String,
    state: String,
    latest_version: i64,
    min_decryption_version: i64,
    rotation_period_secs: Option<i64>,
    next_rotation_at: Option<i64>,
    exportable: bool,
    policy: KeyPolicy,
    created_at: i64,
    updated_at: i64,
    deletion_due_at: Option<i64>,
    deletion_requested_by: Option<String>,
    destroyed_at: Option<i64>,
    receipt: Option<String>,
    origin: String,
    versions: Vec<RingVersion>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RingVersion {
    version: i64,
    /// Standard base64; absent once destroyed.
    material: Option<String>,
    public_key: Option<String>,
    created_at: i64,
}

/// A made backup: the document, and the recovery shares when it is sealed by a Shamir split
/// (shown once: one per custodian).
pub struct BackupOut {
    pub bundle: Bundle,
    pub shares: Vec<Zeroizing<String>>,
}

/// What a restore stored: per tenant, its name and the names of its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub tenants: Vec<(String, Vec<String>)>,
}

fn bad_backup(m: impl Into<String>) -> KmsError {
    KmsError::Invalid(format!("invalid backup: {}", m.into()))
}

impl KmsService {
    /// Exports the key ring of the caller's tenant (key administrators) or of every tenant
    /// (key custodians), sealed for `recipient`. Audited; the material never leaves unsealed.
    pub async fn backup(
        &self,
        p: &Principal,
        scope: Scope,
        recipient: &Recipient,
        meta: &RequestMeta,
    ) -> KmsResult<BackupOut> {
        let tenants = match scope {
            Scope::All => {
                self.check(p, Action::KmsSeal, &self.provider, "backup", meta)
                    .await?;
                self.all_tenants().await?
            }
            Scope::Tenant => {
                self.check(p, Action::KmsKeyManage, &p.tenant, "backup", meta)
                    .await?;
                vec![p.tenant.clone()]
            }
        };
        // Check the recipient before any work.
        enum To {
            X(Box<[u8; 32]>),
            R(Box<aws_lc_rs::rsa::PublicEncryptingKey>, String),
            S(u8, u8),
        }
        let to = match recipient {
            Recipient::X25519(k) => {
                To::X(Box::new(wrap::x25519_public(k).map_err(KmsError::Invalid)?))
            }
            Recipient::Rsa(k) => {
                let pk = wrap::rsa_public(k).map_err(KmsError::Invalid)?;
                let der = wrap::key_bytes(k);
                To::R(Box::new(pk), hex::encode(Sha256::digest(der)))
            }
            Recipient::Shamir { shares, threshold } => {
                if !(1..=16).contains(shares) || !(1..=*shares).contains(threshold) {
                    return Err(KmsError::Invalid(
                        "shares must be 1-16 and the threshold between 1 and the number of shares"
                            .into(),
                    ));
                }
                To::S(*shares, *threshold)
            }
        };
        self.root_key()?;
        let mut ring = Ring {
            tenants: Vec::with_capacity(tenants.len()),
        };
        let mut listed = Vec::new();
        let mut n_keys = 0usize;
        for t in &tenants {
            let ctx = TenantCtx::new(t.id);
            let keys = self.store.kms_list_keys(ctx).await?;
            if keys.is_empty() {
                continue;
            }
            let kek = self.kek(t.id).await?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                if scope == Scope::Tenant {
                    self.check_key(p, KeyOp::Manage, &key, "backup", meta)
                        .await?;
                }
                let mut versions = Vec::new();
                for v in self.store.kms_key_versions(ctx, key.id).await? {
                    let material = match &v.material {
                        None => None,
                        Some(w) => {
                            let m = Zeroizing::new(
                                crypto::unwrap(&kek, &Self::material_label(key.id, v.version), w)
                                    .map_err(|_| {
                                    KmsError::Internal("key material does not unwrap".into())
                                })?,
                            );
                            Some(STANDARD.encode(&*m))
                        }
                    };
                    versions.push(RingVersion {
                        version: v.version,
                        material,
                        public_key: v.public_key.as_ref().map(|k| STANDARD.encode(k)),
                        created_at: v.created_at.0,
                    });
                }
                n_keys += 1;
                if listed.len() < AUDIT_LIST_MAX {
                    listed.push(json!({"tenant": t.name, "key_id": key.id,
                        "versions": versions.iter().map(|v| v.version).collect::<Vec<_>>()}));
                }
                out.push(RingKey {
                    id: key.id,
                    name: key.name,
                    key_type: key.key_type,
                    state: key.state,
                    latest_version: key.latest_version,
                    min_decryption_version: key.min_decryption_version,
                    rotation_period_secs: key.rotation_period_secs,
                    next_rotation_at: key.next_rotation_at.map(|t| t.0),
                    exportable: key.exportable,
                    policy: key.policy,
                    created_at: key.created_at.0,
                    updated_at: key.updated_at.0,
                    deletion_due_at: key.deletion_due_at.map(|t| t.0),
                    deletion_requested_by: key.deletion_requested_by,
                    destroyed_at: key.destroyed_at.map(|t| t.0),
                    receipt: key.receipt,
                    origin: key.origin,
                    versions,
                });
            }
            ring.tenants.push(RingTenant {
                id: t.id.to_string(),
                name: t.name.clone(),
                keys: out,
            });
        }
        let plain = Zeroizing::new(
            serde_json::to_vec(&ring).map_err(|e| KmsError::Internal(e.to_string()))?,
        );
        drop(ring);
        let bundle_key = Zeroizing::new(self.random::<KEY_LEN>()?);
        let mut shares = Vec::new();
        let sealed_key = match to {
            To::X(public) => SealedKey::X25519 {
                public_key: STANDARD.encode(*public),
                wrapped_key: STANDARD.encode(wrap::x25519_seal(
                    &public,
                    &Zeroizing::new(self.random::<32>()?),
                    self.random()?,
                    INFO,
                    bundle_key.as_slice(),
                )?),
            },
            To::R(public, sha) => SealedKey::RsaOaepSha256 {
                public_key_sha256: sha,
                wrapped_key: STANDARD.encode(wrap::rsa_oaep_seal(&public, bundle_key.as_slice())?),
            },
            To::S(n, k) => {
                shares = root::split(&bundle_key, n, k);
                SealedKey::Shamir {
                    shares: n,
                    threshold: k,
                }
            }
        };
        let now = self.env.now();
        let mut bundle = Bundle {
            format: FORMAT.into(),
            created_at: now.rfc3339(),
            scope: scope.as_str().into(),
            tenant: (scope == Scope::Tenant).then(|| p.tenant.name.clone()),
            tenants: ring_len(tenants.len()),
            keys: ring_len(n_keys),
            sealed_key,
            payload: String::new(),
        };
        bundle.payload = URL_SAFE_NO_PAD.encode(crypto::seal(
            KeyType::Aes256Gcm,
            bundle_key.as_slice(),
            self.random()?,
            &bundle.aad(),
            &plain,
        )?);
        let on = match scope {
            Scope::All => &self.provider,
            Scope::Tenant => &p.tenant,
        };
        let e = self.event(
            Some(on),
            p.actor(),
            "kms.backup",
            format!("kms:key-ring/{}", bundle.tenant.as_deref().unwrap_or("*")),
            meta,
            AuditOutcome::Success,
            json!({"scope": bundle.scope, "recipient": recipient_kind(&bundle.sealed_key),
                   "tenants": bundle.tenants, "keys": bundle.keys, "listed": listed,
                   "payload_sha256": hex::encode(Sha256::digest(bundle.payload.as_bytes()))}),
        );
        self.store.append_audit(&e).await?;
        Ok(BackupOut { bundle, shares })
    }

    async fn all_tenants(&self) -> KmsResult<Vec<Tenant>> {
        let ctx = TenantCtx::new(self.provider.id);
        let mut after = None;
        let mut out = Vec::new();
        loop {
            let page = parapet_store::Page {
                after: after.clone(),
                limit: 1000,
            };
            let tenants = self.store.list_tenants(ctx, &page).await?;
            let full = tenants.len() == 1000;
            after = tenants.last().map(|t| t.id.to_string());
            out.extend(tenants);
            if !full {
                return Ok(out);
            }
        }
    }

    /// Restores a backup into this installation: a `tenant` backup into the caller's tenant (key
    /// administrators), an `all` backup into the tenants of the same names (key custodians; they
    /// must exist). Keys keep their ids, versions and settings; their material is wrapped anew
    /// under this installation's keys. Refused as a whole when a key id or name is taken.
    pub async fn restore(
        &self,
        p: &Principal,
        bundle: &Bundle,
        recovery: &Recovery,
        meta: &RequestMeta,
    ) -> KmsResult<Restored> {
        let scope = match bundle.scope.as_str() {
            "tenant" => Scope::Tenant,
            "all" => Scope::All,
            s => return Err(bad_backup(format!("unknown scope {s:?}"))),
        };
        match scope {
            Scope::All => {
                self.check(p, Action::KmsSeal, &self.provider, "restore", meta)
                    .await?
            }
            Scope::Tenant => {
                self.check(p, Action::KmsKeyManage, &p.tenant, "restore", meta)
                    .await?
            }
        }
        if bundle.format != FORMAT {
            return Err(bad_backup(format!(
                "format {:?}, expected {FORMAT:?}",
                bundle.format
            )));
        }
        self.root_key()?;
        let bundle_key = open_bundle_key(&bundle.sealed_key, recovery)?;
        let payload = URL_SAFE_NO_PAD
            .decode(bundle.payload.trim())
            .map_err(|_| bad_backup("the payload is not base64url"))?;
        let plain = Zeroizing::new(
            crypto::open(
                KeyType::Aes256Gcm,
                bundle_key.as_slice(),
                &bundle.aad(),
                &payload,
            )
            .map_err(|_| {
                KmsError::Invalid(
                    "the recovery key does not open this backup, or the backup was altered".into(),
                )
            })?,
        );
        let ring: Ring = serde_json::from_slice(&plain)
            .map_err(|e| bad_backup(format!("the key ring does not parse: {e}")))?;
        // Where each tenant's keys go; every check passes before anything is written.
        let mut plan = Vec::with_capacity(ring.tenants.len());
        let mut missing = Vec::new();
        for rt in ring.tenants {
            let target = match scope {
                Scope::Tenant => p.tenant.clone(),
                Scope::All => match self
                    .store
                    .get_tenant(TenantCtx::new(self.provider.id), &rt.name)
                    .await
                {
                    Ok(t) => t,
                    Err(StoreError::NotFound) => {
                        missing.push(rt.name.clone());
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            plan.push((target, rt));
        }
        if scope == Scope::Tenant && plan.len() > 1 {
            return Err(bad_backup("a tenant backup holds one tenant"));
        }
        if !missing.is_empty() {
            return Err(KmsError::Conflict(format!(
                "create these tenants before restoring: {}",
                missing.join(", ")
            )));
        }
        let now = self.env.now();
        let mut rows = Vec::with_capacity(plan.len());
        for (target, rt) in plan {
            let ctx = TenantCtx::new(target.id);
            let kek = self.kek(target.id).await?;
            let mut keys = Vec::with_capacity(rt.keys.len());
            for k in rt.keys {
                // Every installation makes its own platform key at its first unseal; the secrets
                // it sealed stay with that installation's database.
                if target.id == self.provider.id
                    && k.name == crate::platform::PLATFORM_KEY
                    && self.store.kms_get_key(ctx, &k.name).await.is_ok()
                {
                    continue;
                }
                crate::validate_key_name(&k.name)?;
                if KeyType::parse(&k.key_type).is_none() {
                    return Err(bad_backup(format!("unknown key type {:?}", k.key_type)));
                }
                for probe in [k.id.to_string(), k.name.clone()] {
                    match self.store.kms_get_key(ctx, &probe).await {
                        Ok(_) => {
                            return Err(KmsError::Conflict(format!(
                                "tenant {} already has key {probe:?}: restore into a tenant \
                                 without these keys",
                                target.name
                            )));
                        }
                        Err(StoreError::NotFound) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                let mut versions = Vec::with_capacity(k.versions.len());
                for v in &k.versions {
                    let material = match &v.material {
                        None => None,
                        Some(m) => {
                            let m = Zeroizing::new(STANDARD.decode(m).map_err(|_| {
                                bad_backup(format!("key {} has bad material", k.name))
                            })?);
                            if m.len() != KEY_LEN {
                                return Err(bad_backup(format!(
                                    "key {} has material of the wrong length",
                                    k.name
                                )));
                            }
                            Some(crypto::wrap(
                                &kek,
                                self.random()?,
                                &Self::material_label(k.id, v.version),
                                &m,
                            )?)
                        }
                    };
                    let public_key = match &v.public_key {
                        None => None,
                        Some(pk) => Some(STANDARD.decode(pk).map_err(|_| {
                            bad_backup(format!("key {} has a bad public key", k.name))
                        })?),
                    };
                    versions.push(KmsKeyVersion {
                        key: k.id,
                        version: v.version,
                        material,
                        public_key,
                        created_at: Timestamp(v.created_at),
                    });
                }
                if !versions.iter().any(|v| v.version == k.latest_version) {
                    return Err(bad_backup(format!(
                        "key {} lacks its latest version",
                        k.name
                    )));
                }
                keys.push((
                    KmsKey {
                        id: k.id,
                        tenant: target.id,
                        name: k.name,
                        key_type: k.key_type,
                        state: k.state,
                        latest_version: k.latest_version,
                        min_decryption_version: k.min_decryption_version,
                        rotation_period_secs: k.rotation_period_secs,
                        next_rotation_at: k.next_rotation_at.map(Timestamp),
                        exportable: k.exportable,
                        policy: k.policy,
                        created_at: Timestamp(k.created_at),
                        updated_at: now,
                        deletion_due_at: k.deletion_due_at.map(Timestamp),
                        deletion_requested_by: k.deletion_requested_by,
                        destroyed_at: k.destroyed_at.map(Timestamp),
                        receipt: k.receipt,
                        origin: k.origin,
                    },
                    versions,
                ));
            }
            rows.push((target, keys));
        }
        let mut out = Restored {
            tenants: Vec::new(),
        };
        for (target, keys) in rows {
            if keys.is_empty() {
                continue;
            }
            let listed: Vec<_> = keys
                .iter()
                .take(AUDIT_LIST_MAX)
                .map(|(k, vs)| {
                    json!({"key_id": k.id, "name": k.name,
                    "versions": vs.iter().map(|v| v.version).collect::<Vec<_>>()})
                })
                .collect();
            let e = self.event(
                Some(&target),
                p.actor(),
                "kms.restore",
                format!("kms:key-ring/{}", target.name),
                meta,
                AuditOutcome::Success,
                json!({"scope": bundle.scope, "backup_created_at": bundle.created_at,
                       "from_tenant": bundle.tenant, "keys": keys.len(), "listed": listed,
                       "payload_sha256": hex::encode(Sha256::digest(bundle.payload.as_bytes()))}),
            );
            self.store
                .kms_import_keys(TenantCtx::new(target.id), &keys, &e)
                .await?;
            for (k, _) in &keys {
                self.forget(k);
            }
            out.tenants
                .push((target.name, keys.into_iter().map(|(k, _)| k.name).collect()));
        }
        Ok(out)
    }
}

fn ring_len(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn recipient_kind(s: &SealedKey) -> &'static str {
    match s {
        SealedKey::X25519 { .. } => "x25519",
        SealedKey::RsaOaepSha256 { .. } => "rsa-oaep-sha256",
        SealedKey::Shamir { .. } => "shamir",
    }
}

fn open_bundle_key(sealed: &SealedKey, recovery: &Recovery) -> KmsResult<Zeroizing<[u8; KEY_LEN]>> {
    let opened: Zeroizing<Vec<u8>> = match (sealed, recovery) {
        (SealedKey::X25519 { wrapped_key, .. }, Recovery::X25519(private)) => {
            let private = wrap::x25519_private(private).map_err(KmsError::Invalid)?;
            let w = STANDARD
                .decode(wrapped_key)
                .map_err(|_| bad_backup("the wrapped key is not base64"))?;
            wrap::x25519_open(&private, INFO, &w).map_err(|_| {
                KmsError::Invalid("this X25519 private key does not open the backup".into())
            })?
        }
        (SealedKey::RsaOaepSha256 { wrapped_key, .. }, Recovery::Rsa(private)) => {
            let private = wrap::rsa_private(private).map_err(KmsError::Invalid)?;
            let w = STANDARD
                .decode(wrapped_key)
                .map_err(|_| bad_backup("the wrapped key is not base64"))?;
            wrap::rsa_oaep_open(&private, &w).map_err(|_| {
                KmsError::Invalid("this RSA private key does not open the backup".into())
            })?
        }
        (SealedKey::Shamir { threshold, .. }, Recovery::Shares(shares)) => {
            let mut parsed: Vec<Vec<u8>> = Vec::new();
            for s in shares {
                let b = root::parse_share(s).map_err(KmsError::Invalid)?;
                if !parsed.iter().any(|p| p.first() == b.first()) {
                    parsed.push(b);
                }
            }
            if parsed.len() < usize::from(*threshold) {
                return Err(KmsError::Invalid(format!(
                    "this backup needs {threshold} distinct recovery shares, {} given",
                    parsed.len()
                )));
            }
            let k = root::combine(*threshold, &parsed).map_err(KmsError::Invalid)?;
            Zeroizing::new(k.to_vec())
        }
        (s, _) => {
            return Err(KmsError::Invalid(format!(
                "this backup is sealed for a {} recovery key; give that instead",
                recipient_kind(s)
            )));
        }
    };
    if opened.len() != KEY_LEN {
        return Err(bad_backup("the bundle key has the wrong length"));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&opened);
    Ok(key)
}
