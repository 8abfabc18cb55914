//! The platform secrets that live outside the database — the audit log's signing key — and those
//! of modules other than the identity service — webhook secrets — under the key service's
//! platform key (issue 5 §7).
//!
//! The audit signing key is a file (mode 0600). On a fresh installation it is created in clear,
//! because the audit log must sign before the key service exists; at the first unseal after the
//! key service was initialized it is sealed in place under the platform key. From then on a
//! server that starts sealed (Shamir mode) opens the audit log without its key: records are kept
//! and wait, and when custodians unseal, the key is opened and the first checkpoint signed
//! covers every record written meanwhile (the tree is append-only, so nothing escapes it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use parapet_audit::{AuditLog, LogConfig, NoteSigner};
use parapet_iam::sealer::{KMS_PREFIX, PlatformSealer};
use parapet_kms::KmsService;
use parapet_kms::platform::SecretHolder;
use parapet_types::{Env, TenantCtx};

/// The binding of the sealed audit signing key.
pub(crate) const AUDIT_KEY_AAD: &str = "parapet-audit-signing-key";

/// Opens the audit log with its signing key, creating the key (in clear, mode 0600) on first
/// start, named after the provider tenant so that every installation's log has its own origin.
/// A key sealed by the key service opens the log pending: see the module documentation.
pub(crate) async fn open_audit_log(
    path: &Path,
    store: Arc<dyn parapet_store::Store>,
    env: &Env,
    provider: &parapet_store::Tenant,
) -> anyhow::Result<Arc<AuditLog>> {
    let origin = format!("parapet.{}/audit/{}", provider.name, provider.id);
    let (signer, created) = crate::serve::secret_file(
        path,
        "audit signing key",
        || {
            NoteSigner::generate(&origin, env.entropy.as_ref())
                .map(|s| zeroize::Zeroizing::new(s.to_skey()))
                .map_err(|e| anyhow::anyhow!("{e}"))
        },
        |text| {
            if text.starts_with(KMS_PREFIX) {
                Ok(None)
            } else {
                NoteSigner::from_skey(text)
                    .map(Some)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
        },
    )?;
    if created {
        println!(
            "Created the audit log signing key {} (keep it secret; back it up; it is sealed \
             under the key service once custodians initialize it).",
            path.display()
        );
    }
    let ctx = TenantCtx::new(provider.id);
    let log = match signer {
        Some(s) => AuditLog::open(store, env.clone(), s, ctx, LogConfig::default()).await,
        None => {
            println!(
                "The audit signing key is sealed by the key service: records are kept, and \
                 checkpoints are signed once key custodians unseal it."
            );
            AuditLog::open_pending(store, env.clone(), ctx, LogConfig::default()).await
        }
    };
    Ok(Arc::new(log.context("cannot open the audit log")?))
}

/// Writes `text` to `path` through a temporary file (mode 0600) and a rename.
fn replace_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("seal{}", std::process::id()));
    crate::serve::write_private_file(&tmp, text)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// The audit signing key as a holder of a platform secret.
pub(crate) struct AuditKeyHolder {
    pub path: PathBuf,
    pub audit: Arc<AuditLog>,
    pub kms: Arc<KmsService>,
}

impl AuditKeyHolder {
    fn unsealed(&self) -> anyhow::Result<u64> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(&self.path)
                .with_context(|| format!("cannot read {}", self.path.display()))?,
        );
        let text = text.trim();
        if text.starts_with(KMS_PREFIX) {
            if !self.audit.signing() {
                let plain = self.kms.open_platform_secret(AUDIT_KEY_AAD, text)?;
                let skey = std::str::from_utf8(&plain)
                    .map_err(|_| anyhow::anyhow!("the sealed audit signing key is not text"))?;
                let signer = NoteSigner::from_skey(skey).map_err(|e| anyhow::anyhow!("{e}"))?;
                self.audit.install_signer(signer)?;
                tracing::info!("the audit signing key was opened by the key service");
            }
            return Ok(0);
        }
        // Still in clear: seal it in place. The key in memory stays the same.
        let signer = NoteSigner::from_skey(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let sealed = self
            .kms
            .seal_platform_secret(AUDIT_KEY_AAD, signer.to_skey().as_bytes())?;
        replace_file(&self.path, &sealed)?;
        println!(
            "Sealed the audit log signing key {} under the key service's platform key.",
            self.path.display()
        );
        Ok(1)
    }
}

#[async_trait::async_trait]
impl SecretHolder for AuditKeyHolder {
    fn name(&self) -> &'static str {
        "audit signing key"
    }

    fn use_platform_sealer(&self, _: Arc<dyn PlatformSealer>) {}

    async fn platform_unsealed(&self) -> Result<u64, String> {
        self.unsealed().map_err(|e| format!("{e:#}"))
    }
}

/// The webhook secrets of the notification service as holders of platform secrets.
pub(crate) struct NotifySecrets {
    pub notify: Arc<parapet_notify::NotifyService>,
    pub provider: parapet_store::Tenant,
}

#[async_trait::async_trait]
impl SecretHolder for NotifySecrets {
    fn name(&self) -> &'static str {
        "webhook secrets"
    }

    fn use_platform_sealer(&self, sealer: Arc<dyn PlatformSealer>) {
        self.notify.set_platform_sealer(sealer);
    }

    async fn platform_unsealed(&self) -> Result<u64, String> {
        self.notify
            .migrate_secrets(&self.provider)
            .await
            .map_err(|e| e.to_string())
    }
}
