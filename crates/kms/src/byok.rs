//! Bring your own key (X.1642 8.2(3)): a tenant makes key material outside Parapet, wraps it
//! with a short-lived wrapping key of its tenant (RSA-OAEP-SHA-256 with 3072 bits, or X25519 as
//! in [`crate::wrap`]) and imports it. Imported keys are marked `origin = external`; Parapet
//! never rotates them (the tenant imports a new key instead).
//!
//! The wrapping key is stateless, as AWS KMS's import parameters are: its private half travels
//! with its public key in an *import token* sealed under the tenant's key-encryption key (so it
//! opens on any replica, only for that tenant, and only until it expires).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parapet_iam::{Action, Principal, RequestMeta};
use parapet_store::{AuditOutcome, KmsKey, KmsKeyVersion};
use parapet_types::{TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::crypto::{self, KEY_LEN, KeyType};
use crate::{KmsError, KmsResult, KmsService, NewKey, target, wrap};

/// How long a wrapping key can be used.
pub const WRAPPING_KEY_TTL_SECS: i64 = 24 * 3600;
/// The HKDF info and associated data of X25519 wrapping for import.
pub const X25519_INFO: &str = "parapet-kms/byok/v1";

/// The algorithms of wrapping keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapAlg {
    RsaOaepSha256,
    X25519,
}

impl WrapAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            WrapAlg::RsaOaepSha256 => "rsa-oaep-sha256",
            WrapAlg::X25519 => "x25519-hkdf-sha256-aes256-gcm",
        }
    }
    pub fn parse(s: &str) -> Option<WrapAlg> {
        match s {
            "rsa-oaep-sha256" | "rsa" => Some(WrapAlg::RsaOaepSha256),
            "x25519-hkdf-sha256-aes256-gcm" | "x25519" => Some(WrapAlg::X25519),
            _ => None,
        }
    }
}

/// A wrapping key handed to a tenant.
#[derive(Clone)]
pub struct WrappingKey {
    pub algorithm: WrapAlg,
    /// SubjectPublicKeyInfo, PEM.
    pub public_key_pem: String,
    /// Given back with the wrapped material.
    pub import_token: String,
    pub expires_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    alg: String,
    /// The private key (raw X25519, or RSA PKCS#8), standard base64.
    private: String,
    expires_at: i64,
}

fn token_label(tenant: TenantId) -> String {
    format!("parapet-kms/import-token/{tenant}")
}

impl KmsService {
    /// A fresh wrapping key for importing key material into the caller's tenant (key
    /// administrators).
    pub async fn wrapping_key(
        &self,
        p: &Principal,
        alg: WrapAlg,
        meta: &RequestMeta,
    ) -> KmsResult<WrappingKey> {
        use base64::engine::general_purpose::STANDARD;
        self.check(p, Action::KmsKeyManage, &p.tenant, "wrapping-key", meta)
            .await?;
        self.root_key()?;
        let (private, public_der) = match alg {
            WrapAlg::X25519 => {
                let sk = Zeroizing::new(self.random::<32>()?);
                let pk = wrap::x25519_public_of(&sk)?;
                (Zeroizing::new(sk.to_vec()), wrap::x25519_spki(&pk))
            }
            WrapAlg::RsaOaepSha256 => {
                let k = wrap::rsa_generate()?;
                (wrap::rsa_private_der(&k)?, wrap::rsa_public_der(&k)?)
            }
        };
        let expires_at = self.env.now().plus_secs(WRAPPING_KEY_TTL_SECS);
        let body = Zeroizing::new(
            serde_json::to_vec(&TokenBody {
                alg: alg.as_str().into(),
                private: STANDARD.encode(&*private),
                expires_at: expires_at.0,
            })
            .map_err(|e| KmsError::Internal(e.to_string()))?,
        );
        let kek = self.kek(p.tenant.id).await?;
        let sealed = crypto::wrap(&kek, self.random()?, &token_label(p.tenant.id), &body)?;
        let e = self.event(
            Some(&p.tenant),
            p.actor(),
            "kms.wrapping-key",
            format!("kms:tenant/{}", p.tenant.name),
            meta,
            AuditOutcome::Success,
            json!({"algorithm": alg.as_str(), "expires_at": expires_at.rfc3339()}),
        );
        self.store.append_audit(&e).await?;
        Ok(WrappingKey {
            algorithm: alg,
            public_key_pem: wrap::pem("PUBLIC KEY", &public_der),
            import_token: URL_SAFE_NO_PAD.encode(sealed),
            expires_at,
        })
    }

    /// Creates key `new` in the caller's tenant from material the tenant wrapped with a wrapping
    /// key of [`wrapping_key`](Self::wrapping_key) (`import_token` identifies it). The key is
    /// marked external. Key types: the 32-byte key of AES-256-GCM, ChaCha20-Poly1305 and
    /// HMAC-SHA-256, or the 32-byte seed of Ed25519.
    pub async fn import_key(
        &self,
        p: &Principal,
        new: &NewKey,
        wrapped: &[u8],
        import_token: &str,
        meta: &RequestMeta,
    ) -> KmsResult<KmsKey> {
        use base64::engine::general_purpose::STANDARD;
        crate::validate_key_name(&new.name)?;
        self.check(p, Action::KmsKeyManage, &p.tenant, "key.import", meta)
            .await?;
        if new.rotation_period_secs.is_some() {
            return Err(KmsError::Invalid(
                "imported keys are not rotated by Parapet: import a new key instead".into(),
            ));
        }
        self.root_key()?;
        let kek = self.kek(p.tenant.id).await?;
        let invalid_token = || {
            KmsError::Invalid(
                "the import token is invalid: ask for a wrapping key of this tenant and use its \
                 token"
                    .into(),
            )
        };
        let sealed = URL_SAFE_NO_PAD
            .decode(import_token.trim())
            .map_err(|_| invalid_token())?;
        let body = Zeroizing::new(
            crypto::unwrap(&kek, &token_label(p.tenant.id), &sealed)
                .map_err(|_| invalid_token())?,
        );
        let body: TokenBody = serde_json::from_slice(&body).map_err(|_| invalid_token())?;
        let private = Zeroizing::new(
            STANDARD
                .decode(&body.private)
                .map_err(|_| invalid_token())?,
        );
        let now = self.env.now();
        if now.0 >= body.expires_at {
            return Err(KmsError::Invalid(
                "the wrapping key has expired: ask for a new one".into(),
            ));
        }
        let unwrap_fail = || {
            KmsError::Invalid(
                "the key material does not unwrap with this wrapping key (wrong key, algorithm \
                 or altered data)"
                    .into(),
            )
        };
        let material = match WrapAlg::parse(&body.alg) {
            Some(WrapAlg::X25519) => {
                let sk = wrap::x25519_private(&private).map_err(|_| invalid_token())?;
                wrap::x25519_open(&sk, X25519_INFO, wrapped).map_err(|_| unwrap_fail())?
            }
            Some(WrapAlg::RsaOaepSha256) => {
                let sk = wrap::rsa_private(&private).map_err(|_| invalid_token())?;
                wrap::rsa_oaep_open(&sk, wrapped).map_err(|_| unwrap_fail())?
            }
            None => return Err(invalid_token()),
        };
        if material.len() != KEY_LEN {
            return Err(KmsError::Invalid(format!(
                "a {} key is {KEY_LEN} bytes of material, not {}",
                new.key_type.as_str(),
                material.len()
            )));
        }
        let id = self
            .env
            .new_id()
            .map_err(|e| KmsError::Internal(format!("no randomness: {}", e.0)))?;
        let public_key = match new.key_type {
            KeyType::Ed25519 => Some(crypto::ed25519_public(&material)?),
            _ => None,
        };
        let first = KmsKeyVersion {
            key: id,
            version: 1,
            material: Some(crypto::wrap(
                &kek,
                self.random()?,
                &Self::material_label(id, 1),
                &material,
            )?),
            public_key,
            created_at: now,
        };
        let key = KmsKey {
            id,
            tenant: p.tenant.id,
            name: new.name.clone(),
            key_type: new.key_type.as_str().into(),
            state: "enabled".into(),
            latest_version: 1,
            min_decryption_version: 1,
            rotation_period_secs: None,
            next_rotation_at: None,
            exportable: new.exportable,
            policy: new.policy.clone(),
            created_at: now,
            updated_at: now,
            deletion_due_at: None,
            deletion_requested_by: None,
            destroyed_at: None,
            receipt: None,
            origin: "external".into(),
        };
        let e = self.event(
            Some(&p.tenant),
            p.actor(),
            "kms.key.import",
            target(&p.tenant, &key.name),
            meta,
            AuditOutcome::Success,
            json!({"key_id": id, "type": key.key_type, "version": 1, "origin": "external",
                   "wrapping": body.alg, "exportable": key.exportable, "policy": key.policy}),
        );
        self.store
            .kms_create_key(TenantCtx::new(p.tenant.id), &key, &first, &e)
            .await?;
        Ok(key)
    }
}
