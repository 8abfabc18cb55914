//! The provider's platform key ring (issue 5 §7): the key `parapet-platform-secrets` of the
//! provider tenant (AES-256-GCM, versioned, rotated like any key) seals the secrets of the other
//! modules — TOTP seeds today — through [`parapet_iam::sealer::PlatformSealer`]. Its versions'
//! material is held in memory while the service is unsealed; once the service is initialized,
//! platform secrets are sealed only by it (a sealed service refuses, and says so), and the
//! secrets sealed earlier by the local key file are re-sealed under it at unseal.
//!
//! A sealed value is `kms:` followed by a Parapet ciphertext of the key whose encryption
//! context is `{"parapet-platform": <the caller's binding>}`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use parapet_iam::RequestMeta;
use parapet_iam::sealer::{KMS_PREFIX, PlatformSealer, SealerError};
use parapet_store::{AuditOutcome, KeyPolicy, KmsKey, StoreError};
use parapet_types::{Actor, Env, TenantCtx};
use serde_json::json;
use uuid::Uuid;

use crate::crypto::{self, Context, KeyType, Token};
use crate::{KmsError, KmsResult, KmsService, Material};

/// The name of the platform key in the provider tenant.
pub const PLATFORM_KEY: &str = "parapet-platform-secrets";

struct Loaded {
    key: Uuid,
    latest: i64,
    versions: HashMap<i64, Material>,
}

/// A module outside the identity service whose secrets the platform key seals (webhook secrets,
/// the audit log's signing key). The binary registers each with
/// [`KmsService::add_secret_holder`].
#[async_trait::async_trait]
pub trait SecretHolder: Send + Sync {
    /// A name for logs.
    fn name(&self) -> &'static str;
    /// From now on, seal new secrets with `sealer`.
    fn use_platform_sealer(&self, sealer: Arc<dyn PlatformSealer>);
    /// The key service was unsealed: open what waited for it and re-seal what the local key
    /// sealed. Returns how many secrets were re-sealed.
    async fn platform_unsealed(&self) -> Result<u64, String>;
}

/// The platform key's material while the service is unsealed.
pub struct PlatformKeys {
    env: Env,
    loaded: RwLock<Option<Loaded>>,
}

impl std::fmt::Debug for PlatformKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlatformKeys(<redacted>)")
    }
}

fn context(aad: &str) -> Context {
    let mut c = Context::new();
    c.insert("parapet-platform".into(), aad.into());
    c
}

impl PlatformKeys {
    pub(crate) fn new(env: Env) -> Self {
        PlatformKeys {
            env,
            loaded: RwLock::new(None),
        }
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut l) = self.loaded.write() {
            *l = None;
        }
    }

    fn install(&self, l: Loaded) {
        if let Ok(mut s) = self.loaded.write() {
            *s = Some(l);
        }
    }

    /// The key id and newest version in use, if loaded.
    pub fn current(&self) -> Option<(Uuid, i64)> {
        self.loaded
            .read()
            .ok()
            .and_then(|l| l.as_ref().map(|l| (l.key, l.latest)))
    }
}

impl PlatformSealer for PlatformKeys {
    fn seal(&self, aad: &str, plain: &[u8]) -> Result<String, SealerError> {
        let guard = self.loaded.read().map_err(|_| SealerError::Sealed)?;
        let l = guard.as_ref().ok_or(SealerError::Sealed)?;
        let m = l.versions.get(&l.latest).ok_or(SealerError::Sealed)?;
        let nonce = self
            .env
            .random()
            .map_err(|e| SealerError::Invalid(format!("no randomness: {}", e.0)))?;
        let payload = crypto::seal(
            KeyType::Aes256Gcm,
            m,
            nonce,
            &crypto::aad(l.key, l.latest, &context(aad)),
            plain,
        )
        .map_err(|e| SealerError::Invalid(e.to_string()))?;
        Ok(format!(
            "{KMS_PREFIX}{}",
            Token {
                key: l.key,
                version: l.latest,
                payload
            }
            .encode()
        ))
    }

    fn open(&self, aad: &str, sealed: &str) -> Result<Vec<u8>, SealerError> {
        let text = sealed
            .strip_prefix(KMS_PREFIX)
            .ok_or_else(|| SealerError::Invalid("not sealed by the key service".into()))?;
        let t = Token::parse(text).map_err(|e| SealerError::Invalid(e.to_string()))?;
        let guard = self.loaded.read().map_err(|_| SealerError::Sealed)?;
        let l = guard.as_ref().ok_or(SealerError::Sealed)?;
        if t.key != l.key {
            return Err(SealerError::Invalid("sealed by another key".into()));
        }
        let m = l.versions.get(&t.version).ok_or_else(|| {
            SealerError::Invalid(format!(
                "version {} of the platform key is not loaded",
                t.version
            ))
        })?;
        crypto::open(
            KeyType::Aes256Gcm,
            m,
            &crypto::aad(t.key, t.version, &context(aad)),
            &t.payload,
        )
        .map_err(|e| SealerError::Invalid(e.to_string()))
    }
}

fn platform_error(e: SealerError) -> KmsError {
    match e {
        SealerError::Sealed => KmsError::Sealed,
        SealerError::Invalid(m) => {
            KmsError::Invalid(format!("a platform secret does not open: {m}"))
        }
    }
}

impl KmsService {
    /// Loads the platform key (made on first use) into memory, then re-seals the platform
    /// secrets still under the local key. Runs at every unseal.
    pub(crate) async fn load_platform(&self) -> KmsResult<()> {
        let ctx = TenantCtx::new(self.provider.id);
        let key = match self.store.kms_get_key(ctx, PLATFORM_KEY).await {
            Ok(k) => k,
            Err(StoreError::NotFound) => self.create_platform_key().await?,
            Err(e) => return Err(e.into()),
        };
        self.reload_platform(&key).await?;
        let mut n = self.iam.migrate_secrets(&self.provider).await?;
        for h in self.secret_holders() {
            match h.platform_unsealed().await {
                Ok(k) => n += k,
                // One module's failure must not keep the key service sealed for the others.
                Err(e) => {
                    tracing::error!(holder = h.name(), error = %e, "platform secrets of a module were not re-sealed")
                }
            }
        }
        if n > 0 {
            tracing::info!(
                secrets = n,
                "re-sealed platform secrets under the key service"
            );
        }
        Ok(())
    }

    /// Seals a secret of the platform (e.g. the audit signing key) under the platform key;
    /// `aad` names what it is.
    pub fn seal_platform_secret(&self, aad: &str, plain: &[u8]) -> KmsResult<String> {
        self.platform.seal(aad, plain).map_err(platform_error)
    }

    /// Opens what [`seal_platform_secret`](Self::seal_platform_secret) sealed.
    pub fn open_platform_secret(
        &self,
        aad: &str,
        sealed: &str,
    ) -> KmsResult<zeroize::Zeroizing<Vec<u8>>> {
        self.platform
            .open(aad, sealed)
            .map(zeroize::Zeroizing::new)
            .map_err(platform_error)
    }

    /// Reloads the platform key when another replica rotated it (a background job calls this;
    /// this replica's own rotations reload at once).
    pub async fn refresh_platform(&self) -> KmsResult<()> {
        let Some((_, latest)) = self.platform.current() else {
            return Ok(());
        };
        let key = self
            .store
            .kms_get_key(TenantCtx::new(self.provider.id), PLATFORM_KEY)
            .await?;
        if key.latest_version != latest {
            self.reload_platform(&key).await?;
        }
        Ok(())
    }

    /// Loads every live version of the platform key.
    pub(crate) async fn reload_platform(&self, key: &KmsKey) -> KmsResult<()> {
        let mut versions = HashMap::new();
        for v in key.min_decryption_version..=key.latest_version {
            match self.material(key, v).await {
                Ok(m) => {
                    versions.insert(v, m);
                }
                Err(KmsError::Conflict(_) | KmsError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.platform.install(Loaded {
            key: key.id,
            latest: key.latest_version,
            versions,
        });
        Ok(())
    }

    async fn create_platform_key(&self) -> KmsResult<KmsKey> {
        let ctx = TenantCtx::new(self.provider.id);
        let now = self.env.now();
        let id = self
            .env
            .new_id()
            .map_err(|e| KmsError::Internal(format!("no randomness: {}", e.0)))?;
        let first = self
            .new_version(self.provider.id, id, 1, KeyType::Aes256Gcm)
            .await?;
        let key = KmsKey {
            id,
            tenant: self.provider.id,
            name: PLATFORM_KEY.into(),
            key_type: KeyType::Aes256Gcm.as_str().into(),
            state: "enabled".into(),
            latest_version: 1,
            min_decryption_version: 1,
            rotation_period_secs: None,
            next_rotation_at: None,
            exportable: false,
            policy: KeyPolicy::default(),
            created_at: now,
            updated_at: now,
            deletion_due_at: None,
            deletion_requested_by: None,
            destroyed_at: None,
            receipt: None,
            origin: "parapet".into(),
        };
        let e = self.event(
            Some(&self.provider),
            Actor::System,
            "kms.key.create",
            crate::target(&self.provider, PLATFORM_KEY),
            &RequestMeta::default(),
            AuditOutcome::Success,
            json!({"key_id": id, "type": key.key_type, "version": 1,
                   "purpose": "platform secrets"}),
        );
        match self.store.kms_create_key(ctx, &key, &first, &e).await {
            Ok(()) => Ok(key),
            // Another replica made it first.
            Err(StoreError::Conflict(_)) => Ok(self.store.kms_get_key(ctx, PLATFORM_KEY).await?),
            Err(e) => Err(e.into()),
        }
    }
}
