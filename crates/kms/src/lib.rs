//! Key management (X.1642 8.2): a root key that exists in plaintext only in memory (sealed at
//! rest by a Shamir split among key custodians, or a development key file), one key-encryption
//! key per tenant wrapped by the root, and versioned keys wrapped by their tenant's KEK:
//! AES-256-GCM and ChaCha20-Poly1305 for envelope encryption with an encryption context,
//! Ed25519 for signatures and HMAC-SHA-256 for MACs. Deletion is scheduled, then the material is
//! destroyed and a signed receipt issued (crypto-shredding, X.1642 7.2.2.2(6)).
//!
//! The service knows nothing of HTTP or SQL: it decides authorization through
//! [`parapet_iam::authorize_key`], and hands every change to storage with its audit record.
//! Operations that change nothing (encrypt, decrypt, …) are audited with the key id, version,
//! operation, caller and the SHA-256 of the encryption context; never plaintext or key material.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use parapet_iam::{IamService, KeyOp, Principal, RequestMeta, authorize, authorize_key};
use parapet_store::{
    AuditEvent, AuditOutcome, KeyPolicy, KmsKey, KmsKeyVersion, KmsRoot, Store, StoreError, Tenant,
};
use parapet_types::{Actor, Env, TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

pub mod backup;
pub mod batch;
pub mod byok;
mod cache;
pub mod crypto;
pub mod platform;
pub mod receipt;
pub mod root;
pub mod wrap;

pub use crypto::{Context, CryptoError, KeyType, Token};
pub use receipt::{DeletionReceipt, verify_receipt};

/// What can go wrong, in terms a caller can map to a response.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error(
        "the key service is sealed: key custodians must unseal it first ('parapet kms unseal')"
    )]
    Sealed,
    #[error("the key service is not initialized: a key custodian must run 'parapet kms init'")]
    Uninitialized,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// A ciphertext, signature or MAC that does not check out.
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => KmsError::NotFound("not found".into()),
            StoreError::Conflict(m) => KmsError::Conflict(m),
            StoreError::Unavailable(m) => KmsError::Unavailable(m),
            StoreError::Other(m) => KmsError::Internal(m),
        }
    }
}

impl From<parapet_iam::IamError> for KmsError {
    fn from(e: parapet_iam::IamError) -> Self {
        use parapet_iam::IamError as E;
        match e {
            E::Forbidden(m) => KmsError::Forbidden(m),
            E::NotFound(m) => KmsError::NotFound(m),
            E::Conflict(m) => KmsError::Conflict(m),
            E::Invalid(m) => KmsError::Invalid(m),
            E::Unavailable(m) | E::DirectoryUnavailable(m) => KmsError::Unavailable(m),
            E::Unauthenticated | E::MfaRequired | E::PasswordExpired => {
                KmsError::Forbidden("not authenticated".into())
            }
            E::Throttled(secs) => {
                KmsError::Unavailable(format!("too many attempts; retry in {secs} s"))
            }
            E::Internal(m) => KmsError::Internal(m),
        }
    }
}

pub type KmsResult<T> = Result<T, KmsError>;

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct KmsConfig {
    /// Shortest and longest deletion waiting period, in days (X.1642 7.2.2.2(6)).
    pub min_deletion_days: i64,
    pub max_deletion_days: i64,
    pub default_deletion_days: i64,
    /// How long key metadata may be served from memory (changes made on another replica take
    /// effect within this time), in milliseconds.
    pub cache_ms: i64,
    /// How many keys (and, separately, keys' material) are held in memory; with the change
    /// feed running they stay until they change, so this is the working set served without a
    /// database read (about 1.3 KiB per key, measured).
    pub cache_keys: usize,
}

impl Default for KmsConfig {
    fn default() -> Self {
        KmsConfig {
            min_deletion_days: 7,
            max_deletion_days: 30,
            default_deletion_days: 30,
            cache_ms: 1000,
            cache_keys: 1_000_000,
        }
    }
}

/// The seal state, as anyone may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealStatus {
    pub initialized: bool,
    pub sealed: bool,
    /// `shamir` or `key-file` once initialized.
    pub mode: Option<String>,
    pub shares: u8,
    pub threshold: u8,
    /// Distinct shares given since the last seal.
    pub progress: u8,
}

enum Seal {
    Uninitialized,
    Sealed { root: KmsRoot, shares: Vec<Vec<u8>> },
    Unsealed { root: KmsRoot, key: root::RootKey },
}

/// A key's metadata with its versions (never material).
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub key: KmsKey,
    pub versions: Vec<VersionInfo>,
}

#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub version: i64,
    pub created_at: Timestamp,
    pub destroyed: bool,
    /// Ed25519: the public key.
    pub public_key: Option<Vec<u8>>,
}

/// The encryption at rest, as the SLA states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtRest {
    pub root: String,
    pub tenant_kek: String,
    pub key_material: String,
    pub data: String,
    pub keys_by_type: std::collections::BTreeMap<String, u64>,
    pub keys_by_state: std::collections::BTreeMap<String, u64>,
}

/// What a key is created with.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub key_type: KeyType,
    pub exportable: bool,
    pub rotation_period_secs: Option<i64>,
    pub policy: KeyPolicy,
}

/// A generated data key: its plaintext (unless only the wrapped form was asked for) and the
/// ciphertext that decrypts to it.
#[derive(Debug, Clone)]
pub struct DataKey {
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    pub ciphertext: String,
    pub key: Uuid,
    pub version: i64,
}

/// Changes to a key's settings.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub min_decryption_version: Option<i64>,
    /// `Some(None)` turns automatic rotation off.
    pub rotation_period_secs: Option<Option<i64>>,
    pub policy: Option<KeyPolicy>,
}

/// Plaintext key material, wiped from memory when the last holder drops it.
pub type Material = Arc<Zeroizing<Vec<u8>>>;

/// The key management service.
pub struct KmsService {
    store: Arc<dyn Store>,
    iam: Arc<IamService>,
    env: Env,
    provider: Tenant,
    config: KmsConfig,
    seal: RwLock<Seal>,
    keks: RwLock<HashMap<TenantId, Material>>,
    cache: cache::KeyCache,
    /// When this service started (where the change feed first looks).
    started: Timestamp,
    /// Records of key uses, written in batches by [`audit_writer`] (group commit).
    audit_tx: tokio::sync::mpsc::Sender<Pending>,
    /// The platform key ring that seals other modules' secrets (`platform.rs`).
    platform: Arc<platform::PlatformKeys>,
    /// Other modules holding platform secrets (webhook secrets, the audit signing key): told
    /// when the platform key takes over and at every unseal.
    holders: RwLock<Vec<Arc<dyn platform::SecretHolder>>>,
}

/// A record waiting for its batch, and who waits for it to be stored.
type Pending = (AuditEvent, tokio::sync::oneshot::Sender<Result<(), String>>);

/// Most records stored in one transaction.
const AUDIT_BATCH: usize = 1000;

/// Stores key-use records in batches: a request's record is durable before the request answers,
/// but concurrent requests share one transaction (the trail is written at the rate of batches,
/// not of requests). Ends when the service is dropped.
async fn audit_writer(store: Arc<dyn Store>, mut rx: tokio::sync::mpsc::Receiver<Pending>) {
    let mut events = Vec::with_capacity(AUDIT_BATCH);
    let mut waiters = Vec::with_capacity(AUDIT_BATCH);
    while let Some((e, w)) = rx.recv().await {
        events.push(e);
        waiters.push(w);
        while events.len() < AUDIT_BATCH {
            match rx.try_recv() {
                Ok((e, w)) => {
                    events.push(e);
                    waiters.push(w);
                }
                Err(_) => break,
            }
        }
        let r = store
            .append_audit_batch(&events)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        for w in waiters.drain(..) {
            let _ = w.send(r.clone());
        }
        events.clear();
    }
}

impl std::fmt::Debug for KmsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsService").finish_non_exhaustive()
    }
}

fn poisoned() -> KmsError {
    KmsError::Internal("a lock of the key service was poisoned".into())
}

/// Key names: 1–128 of letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn validate_key_name(name: &str) -> KmsResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(KmsError::Invalid(format!(
            "invalid key name {name:?}: use 1-128 letters, digits, '.', '_' or '-', \
             starting with a letter or digit"
        )))
    }
}

fn target(t: &Tenant, key: &str) -> String {
    format!("kms-key:{}/{}", t.name, key)
}

impl KmsService {
    /// Opens the service: reads how the root is sealed (the service starts sealed).
    pub async fn open(
        store: Arc<dyn Store>,
        iam: Arc<IamService>,
        env: Env,
        provider: Tenant,
        config: KmsConfig,
    ) -> KmsResult<Self> {
        let root = store.kms_root(TenantCtx::new(provider.id)).await?;
        let (audit_tx, audit_rx) = tokio::sync::mpsc::channel(8 * AUDIT_BATCH);
        tokio::spawn(audit_writer(store.clone(), audit_rx));
        let platform = Arc::new(platform::PlatformKeys::new(env.clone()));
        let seal = match root {
            None => Seal::Uninitialized,
            Some(root) => {
                // Initialized: platform secrets are the key service's from now on.
                iam.set_platform_sealer(platform.clone());
                Seal::Sealed {
                    root,
                    shares: Vec::new(),
                }
            }
        };
        let cache = cache::KeyCache::new(config.cache_keys, config.cache_ms);
        let started = env.now();
        Ok(KmsService {
            cache,
            started,
            platform,
            store,
            iam,
            env,
            provider,
            config,
            seal: RwLock::new(seal),
            keks: RwLock::default(),
            audit_tx,
            holders: RwLock::default(),
        })
    }

    /// Registers a module whose secrets the platform key seals: it gets the platform sealer now
    /// if the service is initialized (else at initialization), is told at once if the service
    /// is already unsealed, and again at every later unseal.
    pub async fn add_secret_holder(
        &self,
        holder: Arc<dyn platform::SecretHolder>,
    ) -> KmsResult<()> {
        let (initialized, unsealed) = match self.seal.read().as_deref() {
            Ok(Seal::Uninitialized) => (false, false),
            Ok(Seal::Sealed { .. }) => (true, false),
            Ok(Seal::Unsealed { .. }) => (true, true),
            Err(_) => return Err(poisoned()),
        };
        if initialized {
            holder.use_platform_sealer(self.platform.clone());
        }
        if let Ok(mut h) = self.holders.write() {
            h.push(holder.clone());
        }
        if unsealed {
            holder
                .platform_unsealed()
                .await
                .map_err(|e| KmsError::Internal(format!("{}: {e}", holder.name())))?;
        }
        Ok(())
    }

    /// From now on platform secrets are sealed by the platform key: tells the identity service
    /// and every registered holder.
    fn install_platform_sealer(&self) {
        self.iam.set_platform_sealer(self.platform.clone());
        for h in self.secret_holders() {
            h.use_platform_sealer(self.platform.clone());
        }
    }

    fn secret_holders(&self) -> Vec<Arc<dyn platform::SecretHolder>> {
        self.holders.read().map(|h| h.clone()).unwrap_or_default()
    }

    pub fn config(&self) -> &KmsConfig {
        &self.config
    }

    /// The platform key's id and newest version while it is loaded (unsealed).
    pub fn platform_key(&self) -> Option<(Uuid, i64)> {
        self.platform.current()
    }

    /// Builds an audit record; the arguments are its fields.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        tenant: Option<&Tenant>,
        actor: Actor,
        action: &str,
        target: String,
        meta: &RequestMeta,
        outcome: AuditOutcome,
        details: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            time: self.env.now(),
            tenant: tenant.map(|t| t.id),
            actor,
            action: action.to_string(),
            target,
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            outcome,
            details,
        }
    }

    fn random<const N: usize>(&self) -> KmsResult<[u8; N]> {
        self.env
            .random()
            .map_err(|e| KmsError::Internal(format!("no randomness: {}", e.0)))
    }

    /// Checks `action` for `p` on its own tenant (or the provider for seal operations),
    /// recording refusals.
    async fn check(
        &self,
        p: &Principal,
        action: parapet_iam::Action,
        on: &Tenant,
        what: &str,
        meta: &RequestMeta,
    ) -> KmsResult<()> {
        if let Err(d) = authorize(p, action, on) {
            self.iam
                .record_denied(
                    p,
                    &format!("kms.{what}"),
                    &format!("tenant:{}", on.name),
                    &d.0,
                    meta,
                )
                .await?;
            return Err(KmsError::Forbidden(d.0));
        }
        Ok(())
    }

    async fn check_key(
        &self,
        p: &Principal,
        op: KeyOp,
        key: &KmsKey,
        what: &str,
        meta: &RequestMeta,
    ) -> KmsResult<()> {
        if let Err(d) = authorize_key(p, op, &p.tenant, &key.policy) {
            self.iam
                .record_denied(
                    p,
                    &format!("kms.{what}"),
                    &target(&p.tenant, &key.name),
                    &d.0,
                    meta,
                )
                .await?;
            return Err(KmsError::Forbidden(d.0));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Seal.

    /// The seal state (public: needs no authentication).
    pub fn status(&self) -> SealStatus {
        let Ok(seal) = self.seal.read() else {
            return SealStatus {
                initialized: false,
                sealed: true,
                mode: None,
                shares: 0,
                threshold: 0,
                progress: 0,
            };
        };
        match &*seal {
            Seal::Uninitialized => SealStatus {
                initialized: false,
                sealed: true,
                mode: None,
                shares: 0,
                threshold: 0,
                progress: 0,
            },
            Seal::Sealed { root, shares } => SealStatus {
                initialized: true,
                sealed: true,
                mode: Some(root.mode.clone()),
                shares: root.shares,
                threshold: root.threshold,
                progress: u8::try_from(shares.len()).unwrap_or(u8::MAX),
            },
            Seal::Unsealed { root, .. } => SealStatus {
                initialized: true,
                sealed: false,
                mode: Some(root.mode.clone()),
                shares: root.shares,
                threshold: root.threshold,
                progress: 0,
            },
        }
    }

    fn root_key(&self) -> KmsResult<root::RootKey> {
        match &*self.seal.read().map_err(|_| poisoned())? {
            Seal::Unsealed { key, .. } => Ok(key.clone()),
            Seal::Sealed { .. } => Err(KmsError::Sealed),
            Seal::Uninitialized => Err(KmsError::Uninitialized),
        }
    }

    /// Initializes the root key, split into `shares` shares of which `threshold` unseal it.
    /// Returns the shares (shown once: each goes to one custodian). The service stays sealed
    /// until `threshold` custodians unseal it.
    pub async fn init(
        &self,
        p: &Principal,
        shares: u8,
        threshold: u8,
        meta: &RequestMeta,
    ) -> KmsResult<Vec<Zeroizing<String>>> {
        self.check(
            p,
            parapet_iam::Action::KmsSeal,
            &self.provider,
            "init",
            meta,
        )
        .await?;
        if !(1..=16).contains(&shares) || !(1..=shares).contains(&threshold) {
            return Err(KmsError::Invalid(
                "shares must be 1-16 and the threshold between 1 and the number of shares".into(),
            ));
        }
        let key: root::RootKey = Zeroizing::new(self.random()?);
        let record = KmsRoot {
            mode: "shamir".into(),
            shares,
            threshold,
            check: root::make_check(&key, self.random()?)?,
            created_at: self.env.now(),
        };
        let e = self.event(
            Some(&self.provider),
            p.actor(),
            "kms.init",
            "kms:root".into(),
            meta,
            AuditOutcome::Success,
            json!({"mode": "shamir", "shares": shares, "threshold": threshold}),
        );
        self.store
            .kms_init_root(TenantCtx::new(self.provider.id), &record, &e)
            .await?;
        let out = root::split(&key, shares, threshold);
        *self.seal.write().map_err(|_| poisoned())? = Seal::Sealed {
            root: record,
            shares: Vec::new(),
        };
        self.install_platform_sealer();
        Ok(out)
    }

    /// Development mode: the root key comes from a key file. Initializes the service with it on
    /// first use, and unseals it on every start; refuses a different key.
    pub async fn unseal_with_key_file(&self, key: root::RootKey) -> KmsResult<()> {
        let ctx = TenantCtx::new(self.provider.id);
        let record = match self.store.kms_root(ctx).await? {
            Some(r) => r,
            None => {
                let record = KmsRoot {
                    mode: "key-file".into(),
                    shares: 1,
                    threshold: 1,
                    check: root::make_check(&key, self.random()?)?,
                    created_at: self.env.now(),
                };
                let e = self.event(
                    Some(&self.provider),
                    Actor::System,
                    "kms.init",
                    "kms:root".into(),
                    &RequestMeta::default(),
                    AuditOutcome::Success,
                    json!({"mode": "key-file"}),
                );
                match self.store.kms_init_root(ctx, &record, &e).await {
                    Ok(()) => record,
                    // Another replica initialized it first: use theirs.
                    Err(StoreError::Conflict(_)) => self
                        .store
                        .kms_root(ctx)
                        .await?
                        .ok_or_else(|| KmsError::Internal("the root vanished".into()))?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if record.mode != "key-file" {
            return Err(KmsError::Conflict(format!(
                "the key service was initialized with {} shares among custodians; it is unsealed \
                 with 'parapet kms unseal', not with a key file",
                record.shares
            )));
        }
        if !root::verify_check(&key, &record.check) {
            return Err(KmsError::Conflict(
                "the key file does not hold this installation's root key".into(),
            ));
        }
        *self.seal.write().map_err(|_| poisoned())? = Seal::Unsealed { root: record, key };
        self.install_platform_sealer();
        self.load_platform().await
    }

    /// Adds one custodian's share; unseals once the threshold is reached. Shares that do not
    /// reconstruct the root reset the progress.
    pub async fn unseal(
        &self,
        p: &Principal,
        share: &str,
        meta: &RequestMeta,
    ) -> KmsResult<SealStatus> {
        self.check(
            p,
            parapet_iam::Action::KmsSeal,
            &self.provider,
            "unseal",
            meta,
        )
        .await?;
        let bytes = Zeroizing::new(root::parse_share(share).map_err(KmsError::Invalid)?);
        let outcome = {
            let mut seal = self.seal.write().map_err(|_| poisoned())?;
            match &mut *seal {
                Seal::Uninitialized => return Err(KmsError::Uninitialized),
                Seal::Unsealed { .. } => None,
                Seal::Sealed { root, shares } => {
                    if root.mode != "shamir" {
                        return Err(KmsError::Conflict(
                            "this installation's root key is in a key file, not split in shares"
                                .into(),
                        ));
                    }
                    if !shares.iter().any(|s| s.first() == bytes.first()) {
                        shares.push(bytes.to_vec());
                    }
                    if shares.len() < usize::from(root.threshold) {
                        Some(("progress", shares.len()))
                    } else {
                        let combined = root::combine(root.threshold, shares);
                        let n = shares.len();
                        shares.clear();
                        match combined {
                            Ok(key) if root::verify_check(&key, &root.check) => {
                                let root = root.clone();
                                *seal = Seal::Unsealed { root, key };
                                Some(("unsealed", n))
                            }
                            _ => Some(("wrong", n)),
                        }
                    }
                }
            }
        };
        let (what, n) = match outcome {
            None => return Ok(self.status()),
            Some(o) => o,
        };
        let e = self.event(
            Some(&self.provider),
            p.actor(),
            "kms.unseal",
            "kms:root".into(),
            meta,
            if what == "wrong" {
                AuditOutcome::Failure
            } else {
                AuditOutcome::Success
            },
            json!({"result": what, "shares_given": n}),
        );
        self.store.append_audit(&e).await?;
        if what == "wrong" {
            return Err(KmsError::Invalid(
                "these shares do not reconstruct the root key; the unseal progress was reset"
                    .into(),
            ));
        }
        if what == "unsealed" {
            self.load_platform().await?;
        }
        Ok(self.status())
    }

    /// Seals the service: the root key and every key derived from it leave memory.
    pub async fn seal(&self, p: &Principal, meta: &RequestMeta) -> KmsResult<SealStatus> {
        self.check(
            p,
            parapet_iam::Action::KmsSeal,
            &self.provider,
            "seal",
            meta,
        )
        .await?;
        {
            let mut seal = self.seal.write().map_err(|_| poisoned())?;
            let next = match &*seal {
                Seal::Uninitialized => return Err(KmsError::Uninitialized),
                Seal::Sealed { root, .. } | Seal::Unsealed { root, .. } => Seal::Sealed {
                    root: root.clone(),
                    shares: Vec::new(),
                },
            };
            *seal = next;
        }
        self.keks.write().map_err(|_| poisoned())?.clear();
        self.cache.clear_material();
        self.platform.clear();
        let e = self.event(
            Some(&self.provider),
            p.actor(),
            "kms.seal",
            "kms:root".into(),
            meta,
            AuditOutcome::Success,
            json!({}),
        );
        self.store.append_audit(&e).await?;
        Ok(self.status())
    }

    // -----------------------------------------------------------------------------------------
    // Key hierarchy.

    /// The tenant's key-encryption key, made on first use.
    async fn kek(&self, tenant: TenantId) -> KmsResult<Material> {
        let root = self.root_key()?;
        if let Some(k) = self.keks.read().map_err(|_| poisoned())?.get(&tenant) {
            return Ok(k.clone());
        }
        let ctx = TenantCtx::new(tenant);
        let label = format!("parapet-kms/kek/{tenant}");
        let wrapped = match self.store.kms_tenant_kek(ctx).await? {
            Some(w) => w,
            None => {
                let fresh = Zeroizing::new(self.random::<{ crypto::KEY_LEN }>()?);
                let wrapped = crypto::wrap(root.as_slice(), self.random()?, &label, &*fresh)?;
                self.store
                    .kms_put_tenant_kek(ctx, &wrapped, self.env.now())
                    .await?
            }
        };
        let kek = Arc::new(Zeroizing::new(
            crypto::unwrap(root.as_slice(), &label, &wrapped).map_err(|_| {
                KmsError::Internal("a tenant key-encryption key does not unwrap".into())
            })?,
        ));
        self.keks
            .write()
            .map_err(|_| poisoned())?
            .insert(tenant, kek.clone());
        Ok(kek)
    }

    fn material_label(key: Uuid, version: i64) -> String {
        format!("parapet-kms/key/{key}/{version}")
    }

    /// The plaintext material of one version.
    async fn material(&self, key: &KmsKey, version: i64) -> KmsResult<Material> {
        if let Some(m) = self.cache.material(key.id, version) {
            self.root_key()?;
            return Ok(m);
        }
        let kek = self.kek(key.tenant).await?;
        let v = match self
            .store
            .kms_key_version(TenantCtx::new(key.tenant), key.id, version)
            .await
        {
            Ok(v) => v,
            Err(StoreError::NotFound) => {
                return Err(KmsError::NotFound(format!(
                    "key {} has no version {version}",
                    key.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(wrapped) = v.material else {
            return Err(KmsError::Conflict(format!(
                "version {version} of key {} was destroyed",
                key.name
            )));
        };
        let m = Arc::new(Zeroizing::new(
            crypto::unwrap(&kek, &Self::material_label(key.id, version), &wrapped)
                .map_err(|_| KmsError::Internal("key material does not unwrap".into()))?,
        ));
        self.cache.put_material(key.id, version, m.clone());
        Ok(m)
    }

    /// Makes and wraps the material of a new version.
    async fn new_version(
        &self,
        tenant: TenantId,
        id: Uuid,
        version: i64,
        kt: KeyType,
    ) -> KmsResult<KmsKeyVersion> {
        let kek = self.kek(tenant).await?;
        let material = Zeroizing::new(self.random::<{ crypto::KEY_LEN }>()?);
        let public_key = match kt {
            KeyType::Ed25519 => Some(crypto::ed25519_public(&*material)?),
            _ => None,
        };
        let wrapped = crypto::wrap(
            &kek,
            self.random()?,
            &Self::material_label(id, version),
            &*material,
        )?;
        Ok(KmsKeyVersion {
            key: id,
            version,
            material: Some(wrapped),
            public_key,
            created_at: self.env.now(),
        })
    }

    fn forget(&self, key: &KmsKey) {
        self.cache.forget(key.id);
    }

    /// Polls the keys changed on any replica since the last poll and drops them from this
    /// replica's caches, and reloads the platform key when one of the provider's keys changed.
    /// The server runs this several times a second: while it succeeds, cached keys stay until
    /// they change (see `cache.rs`). Returns how many changed keys it saw.
    pub async fn poll_key_changes(&self) -> KmsResult<usize> {
        const LIMIT: u32 = 100_000;
        let now = self.env.now();
        let since = self.cache.feed_since(self.started);
        let changed = self
            .store
            .kms_changed_keys(TenantCtx::new(self.provider.id), since, LIMIT)
            .await?;
        if changed.len() >= LIMIT as usize {
            // Too many to name: start afresh.
            self.cache.clear();
        } else {
            for (_, id) in &changed {
                self.cache.forget(*id);
            }
        }
        if changed.iter().any(|(t, _)| *t == self.provider.id) {
            self.refresh_platform().await?;
        }
        self.cache.feed_ok(now);
        let (keys, _, material) = self.cache.sizes();
        metrics::gauge!("parapet_kms_cached_keys").set(keys as f64);
        metrics::gauge!("parapet_kms_cached_material_keys").set(material as f64);
        Ok(changed.len())
    }

    /// A key of the caller's tenant, from memory for up to `cache_ms`.
    async fn key(&self, tenant: &Tenant, id_or_name: &str) -> KmsResult<Arc<KmsKey>> {
        let now = self.env.now();
        if let Some(key) = self.cache.key(tenant.id, id_or_name, now) {
            return Ok(key);
        }
        let key = match self
            .store
            .kms_get_key(TenantCtx::new(tenant.id), id_or_name)
            .await
        {
            Ok(key) => key,
            Err(StoreError::NotFound) => {
                return Err(KmsError::NotFound(format!(
                    "no key {id_or_name:?} in tenant {}",
                    tenant.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let key = Arc::new(key);
        if key.state == "destroyed" {
            // Destroyed on another replica: drop what this one still holds.
            self.cache.forget(key.id);
        }
        self.cache.put_key(key.clone(), now);
        Ok(key)
    }

    /// A key freshly read from storage (for changes).
    async fn key_fresh(&self, tenant: &Tenant, id_or_name: &str) -> KmsResult<KmsKey> {
        match self
            .store
            .kms_get_key(TenantCtx::new(tenant.id), id_or_name)
            .await
        {
            Ok(key) => Ok(key),
            Err(StoreError::NotFound) => Err(KmsError::NotFound(format!(
                "no key {id_or_name:?} in tenant {}",
                tenant.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn key_type(key: &KmsKey) -> KmsResult<KeyType> {
        KeyType::parse(&key.key_type)
            .ok_or_else(|| KmsError::Internal(format!("unknown key type {:?}", key.key_type)))
    }

    // -----------------------------------------------------------------------------------------
    // Key life cycle.

    /// Creates a key in the caller's tenant.
    pub async fn create_key(
        &self,
        p: &Principal,
        new: &NewKey,
        meta: &RequestMeta,
    ) -> KmsResult<KmsKey> {
        validate_key_name(&new.name)?;
        self.check(
            p,
            parapet_iam::Action::KmsKeyManage,
            &p.tenant,
            "key.create",
            meta,
        )
        .await?;
        if let Some(secs) = new.rotation_period_secs
            && !(3600..=10 * 365 * 86_400).contains(&secs)
        {
            return Err(KmsError::Invalid(
                "the rotation period must be between one hour and ten years".into(),
            ));
        }
        self.root_key()?;
        let now = self.env.now();
        let id = self
            .env
            .new_id()
            .map_err(|e| KmsError::Internal(format!("no randomness: {}", e.0)))?;
        let first = self.new_version(p.tenant.id, id, 1, new.key_type).await?;
        let key = KmsKey {
            id,
            tenant: p.tenant.id,
            name: new.name.clone(),
            key_type: new.key_type.as_str().into(),
            state: "enabled".into(),
            latest_version: 1,
            min_decryption_version: 1,
            rotation_period_secs: new.rotation_period_secs,
            next_rotation_at: new.rotation_period_secs.map(|s| now.plus_secs(s)),
            exportable: new.exportable,
            policy: new.policy.clone(),
            created_at: now,
            updated_at: now,
            deletion_due_at: None,
            deletion_requested_by: None,
            destroyed_at: None,
            receipt: None,
            origin: "parapet".into(),
        };
        let e = self.event(
            Some(&p.tenant),
            p.actor(),
            "kms.key.create",
            target(&p.tenant, &key.name),
            meta,
            AuditOutcome::Success,
            json!({"key_id": id, "type": key.key_type, "version": 1,
                   "exportable": key.exportable, "policy": key.policy}),
        );
        self.store
            .kms_create_key(TenantCtx::new(p.tenant.id), &key, &first, &e)
            .await?;
        Ok(key)
    }

    /// The keys of the caller's tenant that it may read.
    pub async fn list_keys(&self, p: &Principal, meta: &RequestMeta) -> KmsResult<Vec<KmsKey>> {
        self.check(
            p,
            parapet_iam::Action::KmsKeyRead,
            &p.tenant,
            "key.list",
            meta,
        )
        .await?;
        let keys = self
            .store
            .kms_list_keys(TenantCtx::new(p.tenant.id))
            .await?;
        Ok(keys
            .into_iter()
            .filter(|k| authorize_key(p, KeyOp::Read, &p.tenant, &k.policy).is_ok())
            .collect())
    }

    /// One key with its versions.
    pub async fn get_key(
        &self,
        p: &Principal,
        name: &str,
        meta: &RequestMeta,
    ) -> KmsResult<KeyInfo> {
        let key = self.key_fresh(&p.tenant, name).await?;
        self.check_key(p, KeyOp::Read, &key, "key.read", meta)
            .await?;
        let versions = self
            .store
            .kms_key_versions(TenantCtx::new(p.tenant.id), key.id)
            .await?
            .into_iter()
            .map(|v| VersionInfo {
                version: v.version,
                created_at: v.created_at,
                destroyed: v.material.is_none(),
                public_key: v.public_key,
            })
            .collect();
        Ok(KeyInfo { key, versions })
    }

    async fn rotate_key(
        &self,
        actor: Actor,
        tenant: &Tenant,
        mut key: KmsKey,
        meta: &RequestMeta,
        reason: &str,
    ) -> KmsResult<KmsKey> {
        if key.state != "enabled" {
            return Err(KmsError::Conflict(format!(
                "key {} is {}: only enabled keys are rotated",
                key.name, key.state
            )));
        }
        if key.origin == "external" {
            return Err(KmsError::Conflict(format!(
                "key {} holds imported material: Parapet does not rotate it (import a new key)",
                key.name
            )));
        }
        let kt = Self::key_type(&key)?;
        let version = key.latest_version + 1;
        let v = self.new_version(tenant.id, key.id, version, kt).await?;
        let now = self.env.now();
        key.latest_version = version;
        key.updated_at = now;
        key.next_rotation_at = key.rotation_period_secs.map(|s| now.plus_secs(s));
        let e = self.event(
            Some(tenant),
            actor,
            "kms.key.rotate",
            target(tenant, &key.name),
            meta,
            AuditOutcome::Success,
            json!({"key_id": key.id, "version": version, "reason": reason}),
        );
        self.store
            .kms_add_version(TenantCtx::new(tenant.id), &key, &v, &e)
            .await?;
        self.forget(&key);
        if tenant.id == self.provider.id && key.name == platform::PLATFORM_KEY {
            self.reload_platform(&key).await?;
        }
        Ok(key)
    }

    /// Adds a new version, which encrypts from now on; older versions still decrypt.
    pub async fn rotate(&self, p: &Principal, name: &str, meta: &RequestMeta) -> KmsResult<KmsKey> {
        let key = self.key_fresh(&p.tenant, name).await?;
        self.check_key(p, KeyOp::Manage, &key, "key.rotate", meta)
            .await?;
        self.rotate_key(p.actor(), &p.tenant, key, meta, "requested")
            .await
    }

    /// Rotates every key of `tenant` whose rotation period has passed (a background job).
    pub async fn rotate_due(&self, tenant: &Tenant) -> KmsResult<u64> {
        let now = self.env.now();
        let mut n = 0;
        for key in self.store.kms_list_keys(TenantCtx::new(tenant.id)).await? {
            if key.state == "enabled" && key.next_rotation_at.is_some_and(|t| t <= now) {
                self.rotate_key(
                    Actor::System,
                    tenant,
                    key,
                    &RequestMeta::default(),
                    "scheduled",
                )
                .await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Rotates, in every tenant, the keys whose rotation period has passed (a background job).
    pub async fn rotate_all_due(&self) -> KmsResult<u64> {
        self.root_key()?;
        let ctx = TenantCtx::new(self.provider.id);
        let mut after = None;
        let mut n = 0;
        loop {
            let page = parapet_store::Page {
                after: after.clone(),
                limit: 1000,
            };
            let tenants = self.store.list_tenants(ctx, &page).await?;
            for t in &tenants {
                n += self.rotate_due(t).await?;
            }
            match tenants.last() {
                Some(t) if tenants.len() == 1000 => after = Some(t.id.to_string()),
                _ => return Ok(n),
            }
        }
    }

    async fn change_state(
        &self,
        p: &Principal,
        name: &str,
        action: &str,
        meta: &RequestMeta,
        change: impl FnOnce(&mut KmsKey, Timestamp) -> KmsResult<serde_json::Value>,
    ) -> KmsResult<KmsKey> {
        let mut key = self.key_fresh(&p.tenant, name).await?;
        self.check_key(p, KeyOp::Manage, &key, action, meta).await?;
        let now = self.env.now();
        let details = change(&mut key, now)?;
        key.updated_at = now;
        let mut d = json!({"key_id": key.id, "state": key.state});
        if let (Some(obj), serde_json::Value::Object(more)) = (d.as_object_mut(), details) {
            obj.extend(more);
        }
        let e = self.event(
            Some(&p.tenant),
            p.actor(),
            &format!("kms.{action}"),
            target(&p.tenant, &key.name),
            meta,
            AuditOutcome::Success,
            d,
        );
        self.store
            .kms_update_key(TenantCtx::new(p.tenant.id), &key, &e)
            .await?;
        self.forget(&key);
        Ok(key)
    }

    /// Disables a key: nothing is encrypted or decrypted with it until it is enabled again.
    pub async fn disable(
        &self,
        p: &Principal,
        name: &str,
        meta: &RequestMeta,
    ) -> KmsResult<KmsKey> {
        let provider = self.provider.id;
        self.change_state(p, name, "key.disable", meta, |k, _| {
            if k.tenant == provider && k.name == platform::PLATFORM_KEY {
                return Err(KmsError::Conflict(
                    "the platform key seals other modules' secrets: it is never disabled".into(),
                ));
            }
            if k.state != "enabled" {
                return Err(KmsError::Conflict(format!("key {} is {}", k.name, k.state)));
            }
            k.state = "disabled".into();
            Ok(json!({}))
        })
        .await
    }

    pub async fn enable(&self, p: &Principal, name: &str, meta: &RequestMeta) -> KmsResult<KmsKey> {
        self.change_state(p, name, "key.enable", meta, |k, _| {
            if k.state != "disabled" {
                return Err(KmsError::Conflict(format!(
                    "key {} is {}: only disabled keys are enabled",
                    k.name, k.state
                )));
            }
            k.state = "enabled".into();
            Ok(json!({}))
        })
        .await
    }

    /// Changes the minimum decryption version, the rotation period or the policy.
    pub async fn update(
        &self,
        p: &Principal,
        name: &str,
        update: &KeyUpdate,
        meta: &RequestMeta,
    ) -> KmsResult<KmsKey> {
        self.change_state(p, name, "key.update", meta, |k, now| {
            if k.state == "destroyed" {
                return Err(KmsError::Conflict(format!("key {} is destroyed", k.name)));
            }
            if let Some(v) = update.min_decryption_version {
                if !(1..=k.latest_version).contains(&v) {
                    return Err(KmsError::Invalid(format!(
                        "the minimum decryption version must be between 1 and {}",
                        k.latest_version
                    )));
                }
                k.min_decryption_version = v;
            }
            if let Some(period) = update.rotation_period_secs {
                if let Some(secs) = period
                    && !(3600..=10 * 365 * 86_400).contains(&secs)
                {
                    return Err(KmsError::Invalid(
                        "the rotation period must be between one hour and ten years".into(),
                    ));
                }
                k.rotation_period_secs = period;
                k.next_rotation_at = period.map(|s| now.plus_secs(s));
            }
            if let Some(policy) = &update.policy {
                k.policy = policy.clone();
            }
            Ok(json!({"min_decryption_version": k.min_decryption_version,
                      "rotation_period_secs": k.rotation_period_secs, "policy": k.policy}))
        })
        .await
    }

    /// Schedules the destruction of a key's material after `days` (7–30, default 30); the key
    /// can be neither used nor rotated meanwhile, and the deletion can be cancelled.
    pub async fn schedule_deletion(
        &self,
        p: &Principal,
        name: &str,
        days: Option<i64>,
        meta: &RequestMeta,
    ) -> KmsResult<KmsKey> {
        let days = days.unwrap_or(self.config.default_deletion_days);
        if !(self.config.min_deletion_days..=self.config.max_deletion_days).contains(&days) {
            return Err(KmsError::Invalid(format!(
                "the deletion waiting period must be between {} and {} days",
                self.config.min_deletion_days, self.config.max_deletion_days
            )));
        }
        let by = p.login_name();
        let provider = self.provider.id;
        self.change_state(p, name, "key.schedule-deletion", meta, |k, now| {
            if k.tenant == provider && k.name == platform::PLATFORM_KEY {
                return Err(KmsError::Conflict(
                    "the platform key seals other modules' secrets: it is never deleted".into(),
                ));
            }
            if !matches!(k.state.as_str(), "enabled" | "disabled") {
                return Err(KmsError::Conflict(format!("key {} is {}", k.name, k.state)));
            }
            k.state = "pending-deletion".into();
            k.deletion_due_at = Some(now.plus_secs(days * 86_400));
            k.deletion_requested_by = Some(by);
            Ok(json!({"days": days, "due_at": k.deletion_due_at.map(|t| t.rfc3339())}))
        })
        .await
    }

    /// Cancels a scheduled deletion; the key comes back disabled.
    pub async fn cancel_deletion(
        &self,
        p: &Principal,
        name: &str,
        meta: &RequestMeta,
    ) -> KmsResult<KmsKey> {
        self.change_state(p, name, "key.cancel-deletion", meta, |k, _| {
            if k.state != "pending-deletion" {
                return Err(KmsError::Conflict(format!(
                    "key {} is {}: no deletion to cancel",
                    k.name, k.state
                )));
            }
            k.state = "disabled".into();
            k.deletion_due_at = None;
            k.deletion_requested_by = None;
            Ok(json!({}))
        })
        .await
    }

    /// The public key that signs deletion receipts (derived from the root key).
    pub fn receipt_public_key(&self) -> KmsResult<Vec<u8>> {
        let root = self.root_key()?;
        Ok(receipt::public_key(&root)?)
    }

    /// Destroys the material of every key whose deletion is due, in every tenant, and issues
    /// their signed receipts (a background job). Returns the receipts.
    pub async fn destroy_due(&self) -> KmsResult<Vec<DeletionReceipt>> {
        let root = self.root_key()?;
        let now = self.env.now();
        let due = self
            .store
            .kms_due_deletions(TenantCtx::new(self.provider.id), now)
            .await?;
        let mut out = Vec::with_capacity(due.len());
        for mut key in due {
            let ctx = TenantCtx::new(key.tenant);
            let tenant = match self.store.get_tenant(ctx, &key.tenant.to_string()).await {
                Ok(t) => t,
                Err(e) => return Err(e.into()),
            };
            let versions: Vec<i64> = self
                .store
                .kms_key_versions(ctx, key.id)
                .await?
                .iter()
                .map(|v| v.version)
                .collect();
            let receipt = DeletionReceipt {
                kind: receipt::KIND.into(),
                tenant_id: tenant.id.to_string(),
                tenant: tenant.name.clone(),
                key_id: key.id.to_string(),
                key_name: key.name.clone(),
                key_type: key.key_type.clone(),
                versions,
                scheduled_by: key.deletion_requested_by.clone().unwrap_or_default(),
                due_at: key.deletion_due_at.unwrap_or(now).rfc3339(),
                destroyed_at: now.rfc3339(),
            };
            let signed = receipt::sign(&root, &receipt)?;
            key.state = "destroyed".into();
            key.destroyed_at = Some(now);
            key.updated_at = now;
            key.receipt = Some(signed);
            let e = self.event(
                Some(&tenant),
                Actor::System,
                "kms.key.destroy",
                target(&tenant, &key.name),
                &RequestMeta::default(),
                AuditOutcome::Success,
                json!({"key_id": key.id, "versions": receipt.versions,
                       "scheduled_by": receipt.scheduled_by}),
            );
            self.store.kms_destroy_key(ctx, &key, &e).await?;
            self.forget(&key);
            out.push(receipt);
        }
        Ok(out)
    }

    /// The signed deletion receipt of a destroyed key.
    pub async fn receipt(
        &self,
        p: &Principal,
        name: &str,
        meta: &RequestMeta,
    ) -> KmsResult<String> {
        let key = self.key_fresh(&p.tenant, name).await?;
        self.check_key(p, KeyOp::Read, &key, "key.receipt", meta)
            .await?;
        key.receipt.ok_or_else(|| {
            KmsError::Conflict(format!(
                "key {} is {}: a receipt exists once its material is destroyed",
                key.name, key.state
            ))
        })
    }

    /// The plaintext material of every live version of an exportable key (key administrators;
    /// audited). Keys are exportable only when created so, and the flag never changes.
    pub async fn export_key(
        &self,
        p: &Principal,
        name: &str,
        meta: &RequestMeta,
    ) -> KmsResult<(KmsKey, Vec<(i64, Material)>)> {
        let key = self.key_fresh(&p.tenant, name).await?;
        self.check_key(p, KeyOp::Manage, &key, "key.export", meta)
            .await?;
        if !key.exportable {
            return Err(KmsError::Forbidden(format!(
                "key {} was not created exportable",
                key.name
            )));
        }
        if key.state == "destroyed" {
            return Err(KmsError::Conflict(format!("key {} is destroyed", key.name)));
        }
        let mut out = Vec::new();
        for v in key.min_decryption_version..=key.latest_version {
            out.push((v, self.material(&key, v).await?));
        }
        let e = self.event(
            Some(&p.tenant),
            p.actor(),
            "kms.key.export",
            target(&p.tenant, &key.name),
            meta,
            AuditOutcome::Success,
            json!({"key_id": key.id, "versions": out.iter().map(|(v, _)| *v).collect::<Vec<_>>()}),
        );
        self.store.append_audit(&e).await?;
        Ok((key, out))
    }

    /// What is encrypted at rest for the caller's tenant, and how (for the SLA's encryption
    /// section, X.1642 7.2.2.2(3) and 8.2): the root's sealing, the key hierarchy and the tenant's
    /// keys by algorithm and state.
    pub async fn at_rest(&self, p: &Principal, meta: &RequestMeta) -> KmsResult<AtRest> {
        let keys = self.list_keys(p, meta).await?;
        let status = self.status();
        let mut by_type: std::collections::BTreeMap<String, u64> = Default::default();
        let mut by_state: std::collections::BTreeMap<String, u64> = Default::default();
        for k in &keys {
            *by_type.entry(k.key_type.clone()).or_default() += 1;
            *by_state.entry(k.state.clone()).or_default() += 1;
        }
        Ok(AtRest {
            root: match status.mode.as_deref() {
                Some("shamir") => format!(
                    "256-bit root key held only in memory; at rest split by Shamir's scheme into \
                     {} shares held by key custodians, {} needed to unseal",
                    status.shares, status.threshold
                ),
                Some(m) => format!("256-bit root key in a key file ({m}, development only)"),
                None => "not initialized".into(),
            },
            tenant_kek: "AES-256-GCM key per tenant, wrapped by the root key (AES-256-GCM)".into(),
            key_material: "every key version wrapped by its tenant's key-encryption key \
                           (AES-256-GCM, bound to the key id and version)"
                .into(),
            data: "AES-256-GCM or ChaCha20-Poly1305 with a 96-bit random nonce and the \
                   encryption context as associated data; Ed25519 signatures; HMAC-SHA-256"
                .into(),
            keys_by_type: by_type,
            keys_by_state: by_state,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Operations.

    /// Records a use of a key (never the data or the context, only its hash).
    #[allow(clippy::too_many_arguments)]
    async fn audit_use(
        &self,
        p: &Principal,
        op: &str,
        key: &KmsKey,
        version: i64,
        ctx: Option<&Context>,
        outcome: AuditOutcome,
        meta: &RequestMeta,
    ) -> KmsResult<()> {
        let mut details = json!({"key_id": key.id, "version": version});
        if let (Some(c), Some(obj)) = (ctx, details.as_object_mut()) {
            obj.insert("context_sha256".into(), json!(crypto::context_hash(c)));
        }
        let e = self.event(
            Some(&p.tenant),
            p.actor(),
            &format!("kms.{op}"),
            target(&p.tenant, &key.name),
            meta,
            outcome,
            details,
        );
        self.audit_grouped(e).await
    }

    /// Stores a record through the group-commit writer; returns once it is durable.
    async fn audit_grouped(&self, e: AuditEvent) -> KmsResult<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.audit_tx
            .send((e, tx))
            .await
            .map_err(|_| KmsError::Internal("the audit writer stopped".into()))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(m)) => Err(KmsError::Unavailable(format!(
                "the audit record could not be stored: {m}"
            ))),
            Err(_) => Err(KmsError::Internal("the audit writer stopped".into())),
        }
    }

    /// A key the caller may use for `op`, enabled, of a type that can do it.
    async fn usable(
        &self,
        p: &Principal,
        id_or_name: &str,
        op: &str,
        want: fn(KeyType) -> bool,
        meta: &RequestMeta,
    ) -> KmsResult<(Arc<KmsKey>, KeyType)> {
        self.root_key()?;
        let key = self.key(&p.tenant, id_or_name).await?;
        self.check_key(p, KeyOp::Use, &key, op, meta).await?;
        let kt = Self::key_type(&key)?;
        if !want(kt) {
            return Err(KmsError::Invalid(format!(
                "key {} is a {} key, which cannot {op}",
                key.name, key.key_type
            )));
        }
        if key.state != "enabled" {
            return Err(KmsError::Conflict(format!(
                "key {} is {}",
                key.name, key.state
            )));
        }
        Ok((key, kt))
    }

    async fn seal_with(
        &self,
        key: &KmsKey,
        kt: KeyType,
        plaintext: &[u8],
        ctx: &Context,
    ) -> KmsResult<String> {
        let version = key.latest_version;
        let m = self.material(key, version).await?;
        let payload = crypto::seal(
            kt,
            &m,
            self.random()?,
            &crypto::aad(key.id, version, ctx),
            plaintext,
        )?;
        Ok(Token {
            key: key.id,
            version,
            payload,
        }
        .encode())
    }

    /// Encrypts `plaintext` under the newest version of key `name`, binding `ctx`.
    pub async fn encrypt(
        &self,
        p: &Principal,
        name: &str,
        plaintext: &[u8],
        ctx: &Context,
        meta: &RequestMeta,
    ) -> KmsResult<String> {
        let (key, kt) = self
            .usable(p, name, "encrypt", KeyType::encrypts, meta)
            .await?;
        let ct = self.seal_with(&key, kt, plaintext, ctx).await?;
        self.audit_use(
            p,
            "encrypt",
            &key,
            key.latest_version,
            Some(ctx),
            AuditOutcome::Success,
            meta,
        )
        .await?;
        Ok(ct)
    }

    async fn open_token(
        &self,
        p: &Principal,
        ciphertext: &str,
        ctx: &Context,
        op: &str,
        meta: &RequestMeta,
    ) -> KmsResult<(Arc<KmsKey>, KeyType, Zeroizing<Vec<u8>>, i64)> {
        let t = Token::parse(ciphertext)?;
        let (key, kt) = self
            .usable(p, &t.key.to_string(), op, KeyType::encrypts, meta)
            .await?;
        if t.version < key.min_decryption_version || t.version > key.latest_version {
            self.audit_use(
                p,
                op,
                &key,
                t.version,
                Some(ctx),
                AuditOutcome::Failure,
                meta,
            )
            .await?;
            return Err(KmsError::Conflict(format!(
                "version {} of key {} no longer decrypts (the minimum decryption version is {})",
                t.version, key.name, key.min_decryption_version
            )));
        }
        let m = self.material(&key, t.version).await?;
        match crypto::open(kt, &m, &crypto::aad(key.id, t.version, ctx), &t.payload) {
            Ok(plain) => Ok((key, kt, Zeroizing::new(plain), t.version)),
            Err(e) => {
                self.audit_use(
                    p,
                    op,
                    &key,
                    t.version,
                    Some(ctx),
                    AuditOutcome::Failure,
                    meta,
                )
                .await?;
                Err(e.into())
            }
        }
    }

    /// Decrypts a ciphertext of a key of the caller's tenant with the same context.
    pub async fn decrypt(
        &self,
        p: &Principal,
        ciphertext: &str,
        ctx: &Context,
        meta: &RequestMeta,
    ) -> KmsResult<Zeroizing<Vec<u8>>> {
        let (key, _, plain, version) = self.open_token(p, ciphertext, ctx, "decrypt", meta).await?;
        self.audit_use(
            p,
            "decrypt",
            &key,
            version,
            Some(ctx),
            AuditOutcome::Success,
            meta,
        )
        .await?;
        Ok(plain)
    }

    /// Re-encrypts a ciphertext under its key's newest version, without showing the plaintext.
    pub async fn rewrap(
        &self,
        p: &Principal,
        ciphertext: &str,
        ctx: &Context,
        meta: &RequestMeta,
    ) -> KmsResult<String> {
        let (key, kt, plain, version) = self.open_token(p, ciphertext, ctx, "rewrap", meta).await?;
        let ct = self.seal_with(&key, kt, &plain, ctx).await?;
        self.audit_use(
            p,
            "rewrap",
            &key,
            key.latest_version,
            Some(ctx),
            AuditOutcome::Success,
            meta,
        )
        .await?;
        let _ = version;
        Ok(ct)
    }

    /// A fresh 256-bit data key, wrapped under key `name` (and in plaintext unless
    /// `wrapped_only`).
    pub async fn data_key(
        &self,
        p: &Principal,
        name: &str,
        ctx: &Context,
        wrapped_only: bool,
        meta: &RequestMeta,
    ) -> KmsResult<DataKey> {
        let (key, kt) = self
            .usable(p, name, "generate data keys", KeyType::encrypts, meta)
            .await?;
        let dk = Zeroizing::new(self.random::<{ crypto::KEY_LEN }>()?);
        let ct = self.seal_with(&key, kt, &*dk, ctx).await?;
        self.audit_use(
            p,
            "datakey",
            &key,
            key.latest_version,
            Some(ctx),
            AuditOutcome::Success,
            meta,
        )
        .await?;
        Ok(DataKey {
            plaintext: (!wrapped_only).then(|| Zeroizing::new(dk.to_vec())),
            ciphertext: ct,
            key: key.id,
            version: key.latest_version,
        })
    }

    /// Signs `msg` with the newest version of Ed25519 key `name`.
    pub async fn sign(
        &self,
        p: &Principal,
        name: &str,
        msg: &[u8],
        meta: &RequestMeta,
    ) -> KmsResult<String> {
        let (key, _) = self
            .usable(p, name, "sign", |k| k == KeyType::Ed25519, meta)
            .await?;
        let m = self.material(&key, key.latest_version).await?;
        let sig = crypto::ed25519_sign(&m, msg)?;
        self.audit_use(
            p,
            "sign",
            &key,
            key.latest_version,
            None,
            AuditOutcome::Success,
            meta,
        )
        .await?;
        Ok(Token {
            key: key.id,
            version: key.latest_version,
            payload: sig,
        }
        .encode())
    }

    /// Checks a signature made by [`sign`](Self::sign).
    pub async fn verify(
        &self,
        p: &Principal,
        signature: &str,
        msg: &[u8],
        meta: &RequestMeta,
    ) -> KmsResult<bool> {
        let t = Token::parse(signature)?;
        let key = self.key(&p.tenant, &t.key.to_string()).await?;
        self.check_key(p, KeyOp::Use, &key, "verify", meta).await?;
        if key.key_type != KeyType::Ed25519.as_str() {
            return Err(KmsError::Invalid(format!("key {} does not sign", key.name)));
        }
        let v = self
            .store
            .kms_key_version(TenantCtx::new(p.tenant.id), key.id, t.version)
            .await
            .map_err(|_| {
                KmsError::NotFound(format!("key {} has no version {}", key.name, t.version))
            })?;
        let ok = v
            .public_key
            .is_some_and(|pk| crypto::ed25519_verify(&pk, msg, &t.payload));
        self.audit_use(
            p,
            "verify",
            &key,
            t.version,
            None,
            if ok {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failure
            },
            meta,
        )
        .await?;
        Ok(ok)
    }

    /// HMAC-SHA-256 of `msg` with the newest version of key `name`.
    pub async fn hmac(
        &self,
        p: &Principal,
        name: &str,
        msg: &[u8],
        meta: &RequestMeta,
    ) -> KmsResult<String> {
        let (key, _) = self
            .usable(p, name, "compute MACs", |k| k == KeyType::HmacSha256, meta)
            .await?;
        let m = self.material(&key, key.latest_version).await?;
        let tag = crypto::hmac_sha256(&m, msg);
        self.audit_use(
            p,
            "hmac",
            &key,
            key.latest_version,
            None,
            AuditOutcome::Success,
            meta,
        )
        .await?;
        Ok(Token {
            key: key.id,
            version: key.latest_version,
            payload: tag,
        }
        .encode())
    }

    /// Checks a MAC made by [`hmac`](Self::hmac).
    pub async fn verify_hmac(
        &self,
        p: &Principal,
        mac: &str,
        msg: &[u8],
        meta: &RequestMeta,
    ) -> KmsResult<bool> {
        let t = Token::parse(mac)?;
        let (key, _) = self
            .usable(
                p,
                &t.key.to_string(),
                "verify MACs",
                |k| k == KeyType::HmacSha256,
                meta,
            )
            .await?;
        if t.version < key.min_decryption_version || t.version > key.latest_version {
            return Ok(false);
        }
        let m = self.material(&key, t.version).await?;
        let ok = crypto::hmac_sha256_verify(&m, msg, &t.payload);
        self.audit_use(
            p,
            "verify-hmac",
            &key,
            t.version,
            None,
            if ok {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failure
            },
            meta,
        )
        .await?;
        Ok(ok)
    }
}
