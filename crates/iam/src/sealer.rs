//! Platform secrets (issue 5 §7, X.1642 8.1.2(3)): the secrets of the identity service (TOTP
//! seeds, LDAP bind passwords, OIDC signing keys, notify's webhook secrets) are sealed under a key of the key
//! service once it is initialized, through [`PlatformSealer`], which the key service installs.
//! Before that (a development server without keys) they are sealed with the local secrets key
//! (`parapet-secrets.key`). Values sealed by the key service start with `kms:`; the others are
//! the local key's `v1:` form, which [`IamService::migrate_secrets`] re-seals under the key
//! service once it is unsealed.

use std::sync::Arc;

use parapet_store::{AuditEvent, AuditOutcome};
use parapet_types::{Actor, TenantCtx};
use serde_json::json;

use crate::{IamError, IamResult, IamService};

/// Prefix of the values sealed by the key service.
pub const KMS_PREFIX: &str = "kms:";

/// Why a platform sealer could not act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealerError {
    /// The key service is sealed: custodians must unseal it.
    Sealed,
    /// The value does not open (altered, or bound to another row).
    Invalid(String),
}

/// Seals and opens platform secrets under a key the caller does not hold. `aad` binds the value
/// to its row.
pub trait PlatformSealer: Send + Sync {
    /// Returns the sealed text, starting with [`KMS_PREFIX`].
    fn seal(&self, aad: &str, plain: &[u8]) -> Result<String, SealerError>;
    fn open(&self, aad: &str, sealed: &str) -> Result<Vec<u8>, SealerError>;
}

/// Seals platform secrets (the identity service's TOTP seeds and directory passwords, notify's
/// webhook secrets): under the key service once it installed its sealer, else with the local
/// secrets key.
pub struct SecretBox {
    local: [u8; 32],
    env: parapet_types::Env,
    platform: std::sync::RwLock<Option<Arc<dyn PlatformSealer>>>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("under_kms", &self.under_kms())
            .finish_non_exhaustive()
    }
}

fn box_error(e: SealerError) -> IamError {
    match e {
        SealerError::Sealed => IamError::Unavailable(
            "the key service is sealed: the secrets it protects (second factors among them) \
             cannot be used until key custodians unseal it ('parapet kms unseal')"
                .into(),
        ),
        SealerError::Invalid(m) => {
            IamError::Internal(format!("a sealed secret does not open: {m}"))
        }
    }
}

impl SecretBox {
    pub fn new(local: [u8; 32], env: parapet_types::Env) -> Self {
        SecretBox {
            local,
            env,
            platform: std::sync::RwLock::new(None),
        }
    }

    /// Seals under the key service from now on.
    pub fn set_platform_sealer(&self, sealer: Arc<dyn PlatformSealer>) {
        if let Ok(mut s) = self.platform.write() {
            *s = Some(sealer);
        }
    }

    fn platform(&self) -> Option<Arc<dyn PlatformSealer>> {
        self.platform.read().ok().and_then(|s| s.clone())
    }

    /// Whether new secrets are sealed by the key service.
    pub fn under_kms(&self) -> bool {
        self.platform().is_some()
    }

    pub fn seal(&self, aad: &str, plain: &[u8]) -> IamResult<String> {
        match self.platform() {
            Some(s) => s.seal(aad, plain).map_err(box_error),
            None => crate::mfa::seal_local(&self.local, &self.env, aad, plain),
        }
    }

    /// Opens a value sealed by either.
    pub fn open(&self, aad: &str, sealed: &str) -> IamResult<Vec<u8>> {
        if sealed.starts_with(KMS_PREFIX) {
            let s = self.platform().ok_or_else(|| {
                IamError::Unavailable(
                    "this secret is sealed by the key service, which is not available".into(),
                )
            })?;
            s.open(aad, sealed).map_err(box_error)
        } else {
            crate::mfa::open_local(&self.local, aad, sealed)
        }
    }

    /// Re-seals under the key service a value the local key sealed; `None` when the key
    /// service is not in use or the value is already its.
    pub fn reseal_local(&self, aad: &str, sealed: &str) -> IamResult<Option<String>> {
        match self.platform() {
            Some(p) if !sealed.starts_with(KMS_PREFIX) => {
                let plain = crate::mfa::open_local(&self.local, aad, sealed)?;
                p.seal(aad, &plain).map(Some).map_err(box_error)
            }
            _ => Ok(None),
        }
    }
}

impl IamService {
    /// Seals platform secrets under the key service from now on.
    pub fn set_platform_sealer(&self, sealer: Arc<dyn PlatformSealer>) {
        self.secrets.set_platform_sealer(sealer);
    }

    /// Whether platform secrets are sealed by the key service (for the encryption statement).
    pub fn secrets_under_kms(&self) -> bool {
        self.secrets.under_kms()
    }

    /// Seals a platform secret: under the key service once it is in use, else the local key.
    pub(crate) fn seal_secret(&self, aad: &str, plain: &[u8]) -> IamResult<String> {
        self.secrets.seal(aad, plain)
    }

    /// Opens a platform secret sealed by either.
    pub(crate) fn open_secret(&self, aad: &str, sealed: &str) -> IamResult<Vec<u8>> {
        self.secrets.open(aad, sealed)
    }

    /// Re-seals under the key service every platform secret still sealed by the local key (the
    /// migration path for installations that enrolled second factors before the key service
    /// was initialized). Each change is audited; returns how many were re-sealed. A value that
    /// changed meanwhile is left for the next run.
    pub async fn migrate_secrets(&self, provider: &parapet_store::Tenant) -> IamResult<u64> {
        if !self.secrets.under_kms() {
            return Ok(0);
        }
        let ctx = TenantCtx::new(provider.id);
        let mut n = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .platform_local_secrets(ctx, after.as_deref(), 500)
                .await?;
            let full = page.len() == 500;
            after = page.last().map(|s| s.user.to_string());
            for s in page {
                let aad = crate::mfa::totp_aad(s.tenant, s.user);
                let Some(new) = self.secrets.reseal_local(&aad, &s.sealed)? else {
                    continue;
                };
                let e = AuditEvent {
                    time: self.env.now(),
                    tenant: Some(s.tenant),
                    actor: Actor::System,
                    action: "kms.platform-secret.reseal".into(),
                    target: format!("user:{}", s.user),
                    source_ip: None,
                    user_agent: None,
                    outcome: AuditOutcome::Success,
                    details: json!({"secret": "totp", "from": "local-key", "to": "kms"}),
                };
                let stored = self
                    .store
                    .platform_reseal_secret(TenantCtx::new(s.tenant), s.user, &s.sealed, &new, &e)
                    .await?;
                if stored {
                    n += 1;
                }
            }
            if !full {
                // LDAP bind passwords (`ldap.rs`) and OIDC signing keys (`oidc.rs`) too.
                return Ok(n
                    + self.migrate_directory_secrets(provider).await?
                    + self.migrate_oidc_keys(provider).await?);
            }
        }
    }
}
