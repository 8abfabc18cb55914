//! Key-ring backup and restore (X.1642 8.2(2)) and bring-your-own-key import (8.2(3)) over
//! HTTP. Backups travel as the JSON document of `parapet_kms::backup::Bundle`; keys for and from
//! outside parties as PEM or standard base64 text.

use axum::Json;
use axum::extract::{Query, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parapet_kms::backup::{Bundle, Recipient, Recovery, Scope};
use parapet_kms::byok::WrapAlg;
use parapet_kms::{KeyType, NewKey};
use parapet_store::KeyPolicy;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};
use crate::kms::{KeyView, key_view};

/// Largest backup accepted by a restore.
pub const RESTORE_LIMIT: usize = 256 * 1024 * 1024;

/// Who can open the backup.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RecipientSpec {
    /// An X25519 public key: 32 bytes in standard base64, or a PEM SubjectPublicKeyInfo.
    X25519 { public_key: String },
    /// An RSA public key of 3072 bits or more, PEM SubjectPublicKeyInfo.
    RsaOaepSha256 { public_key: String },
    /// A fresh recovery secret split into `shares` of which `threshold` open the backup.
    Shamir { shares: u8, threshold: u8 },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// `tenant` (the caller's tenant; key administrators) or `all` (every tenant; key
    /// custodians of the provider).
    #[serde(default = "tenant_scope")]
    pub scope: String,
    pub recipient: RecipientSpec,
}

fn tenant_scope() -> String {
    "tenant".into()
}

/// A backup, and the recovery shares when it is sealed by a Shamir split (shown once).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BackupResponse {
    #[schema(value_type = Object)]
    pub backup: Bundle,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<String>,
}

impl std::fmt::Debug for BackupResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupResponse").finish_non_exhaustive()
    }
}

/// Exports a key ring sealed for a recovery key held by custodians (audited).
#[utoipa::path(post, path = "/api/v1/kms/backup", tag = "kms", request_body = BackupRequest,
    responses((status = 200, body = BackupResponse), (status = 403, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn backup(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<BackupRequest>,
) -> ApiResult<Json<BackupResponse>> {
    let scope = match req.scope.as_str() {
        "tenant" => Scope::Tenant,
        "all" => Scope::All,
        other => {
            return Err(ApiError::bad_request(format!(
                "scope {other:?}: use 'tenant' or 'all'"
            )));
        }
    };
    let recipient = match req.recipient {
        RecipientSpec::X25519 { public_key } => Recipient::X25519(public_key.into_bytes()),
        RecipientSpec::RsaOaepSha256 { public_key } => Recipient::Rsa(public_key.into_bytes()),
        RecipientSpec::Shamir { shares, threshold } => Recipient::Shamir { shares, threshold },
    };
    let out = st.kms.backup(&p, scope, &recipient, &meta).await?;
    Ok(Json(BackupResponse {
        backup: out.bundle,
        shares: out.shares.iter().map(|s| s.to_string()).collect(),
    }))
}

/// What opens the backup: the private key matching its recipient, or enough shares.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverySpec {
    /// X25519 private key: 32 bytes in standard base64, or PEM PKCS#8.
    pub x25519_private_key: Option<String>,
    /// RSA private key, PEM PKCS#8.
    pub rsa_private_key: Option<String>,
    /// Recovery shares (hexadecimal).
    #[serde(default)]
    pub shares: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    #[schema(value_type = Object)]
    pub backup: Bundle,
    pub recovery: RecoverySpec,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RestoredTenant {
    pub tenant: String,
    pub keys: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RestoreResponse {
    pub tenants: Vec<RestoredTenant>,
}

/// Restores a key-ring backup into this installation, keeping key ids (audited).
#[utoipa::path(post, path = "/api/v1/kms/restore", tag = "kms", request_body = RestoreRequest,
    responses((status = 200, body = RestoreResponse), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn restore(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<RestoreRequest>,
) -> ApiResult<Json<RestoreResponse>> {
    let r = req.recovery;
    let recovery = match (r.x25519_private_key, r.rsa_private_key, r.shares.is_empty()) {
        (Some(k), None, true) => Recovery::X25519(Zeroizing::new(k.into_bytes())),
        (None, Some(k), true) => Recovery::Rsa(Zeroizing::new(k.into_bytes())),
        (None, None, false) => Recovery::Shares(r.shares.into_iter().map(Zeroizing::new).collect()),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of recovery.x25519_private_key, recovery.rsa_private_key or \
                 recovery.shares",
            ));
        }
    };
    let out = st.kms.restore(&p, &req.backup, &recovery, &meta).await?;
    Ok(Json(RestoreResponse {
        tenants: out
            .tenants
            .into_iter()
            .map(|(tenant, keys)| RestoredTenant { tenant, keys })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WrappingKeyQuery {
    /// `rsa-oaep-sha256` (default) or `x25519-hkdf-sha256-aes256-gcm`.
    pub algorithm: Option<String>,
}

/// A short-lived wrapping key for importing key material.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WrappingKeyView {
    pub algorithm: String,
    /// SubjectPublicKeyInfo, PEM.
    pub public_key: String,
    /// Give it back with the wrapped material.
    pub import_token: String,
    pub expires_at: String,
}

/// A fresh wrapping key of the caller's tenant (key administrators): wrap 32 bytes of key
/// material with it (RSA-OAEP-SHA-256, or X25519 + HKDF-SHA-256 + AES-256-GCM) and import them.
#[utoipa::path(get, path = "/api/v1/kms/wrapping-key", tag = "kms", params(WrappingKeyQuery),
    responses((status = 200, body = WrappingKeyView), (status = 403, body = Problem),
        (status = 503, body = Problem)), security(("bearer" = [])))]
pub async fn wrapping_key(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Query(q): Query<WrappingKeyQuery>,
) -> ApiResult<Json<WrappingKeyView>> {
    let alg = match q.algorithm.as_deref() {
        None => WrapAlg::RsaOaepSha256,
        Some(a) => WrapAlg::parse(a).ok_or_else(|| {
            ApiError::bad_request(format!(
                "algorithm {a:?}: use rsa-oaep-sha256 or x25519-hkdf-sha256-aes256-gcm"
            ))
        })?,
    };
    let k = st.kms.wrapping_key(&p, alg, &meta).await?;
    Ok(Json(WrappingKeyView {
        algorithm: k.algorithm.as_str().into(),
        public_key: k.public_key_pem,
        import_token: k.import_token,
        expires_at: k.expires_at.rfc3339(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportKey {
    pub name: String,
    /// `aes256-gcm` (default), `chacha20-poly1305`, `ed25519` (the 32-byte seed) or
    /// `hmac-sha256`.
    #[serde(rename = "type")]
    pub key_type: Option<String>,
    /// The 32 bytes of material wrapped by the wrapping key (standard base64).
    pub wrapped_material: String,
    pub import_token: String,
    #[serde(default)]
    pub exportable: bool,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub policy: KeyPolicy,
}

/// Imports key material the tenant made outside Parapet (the key is marked `external`).
#[utoipa::path(post, path = "/api/v1/kms/keys/import", tag = "kms", request_body = ImportKey,
    responses((status = 201, body = KeyView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn import_key(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<ImportKey>,
) -> ApiResult<(axum::http::StatusCode, Json<KeyView>)> {
    let key_type = match req.key_type.as_deref() {
        None => KeyType::Aes256Gcm,
        Some(t) => KeyType::parse(t).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown key type {t:?}: use aes256-gcm, chacha20-poly1305, ed25519 or hmac-sha256"
            ))
        })?,
    };
    let wrapped = STANDARD
        .decode(req.wrapped_material.trim())
        .map_err(|_| ApiError::bad_request("wrapped_material must be standard base64"))?;
    let new = NewKey {
        name: req.name,
        key_type,
        exportable: req.exportable,
        rotation_period_secs: None,
        policy: req.policy,
    };
    let key = st
        .kms
        .import_key(&p, &new, &wrapped, &req.import_token, &meta)
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(key_view(&key))))
}

/// The routes of this module, to nest under `/api/v1`.
pub fn routes() -> axum::Router<AppState> {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/kms/backup", post(backup))
        .route(
            "/kms/restore",
            post(restore).layer(DefaultBodyLimit::max(RESTORE_LIMIT)),
        )
        .route("/kms/wrapping-key", get(wrapping_key))
        .route("/kms/keys/import", post(import_key))
}
