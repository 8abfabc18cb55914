//! Key management over HTTP (X.1642 8.2): the seal (status, init, unseal, seal), keys of the
//! caller's own tenant and their life cycle, and the cryptographic operations with their batch
//! forms. Plaintexts, messages and data keys travel as standard base64; ciphertexts,
//! signatures and MACs as Parapet's one-line text form.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parapet_kms::{
    Context, CryptoError, KeyInfo, KeyType, KeyUpdate, KmsError, NewKey, SealStatus,
};
use parapet_store::{KeyPolicy, KmsKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Auth, Meta};

/// Most items in one batch request.
pub const BATCH_MAX: usize = 1000;
/// Largest body of a batch request (1,000 items of a few KiB each).
pub const BATCH_BODY_LIMIT: usize = 8 * 1024 * 1024;

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> Self {
        match e {
            KmsError::Sealed | KmsError::Uninitialized => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "kms-sealed", e.to_string())
            }
            KmsError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            KmsError::NotFound(m) => ApiError::not_found(m),
            KmsError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            KmsError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            KmsError::Crypto(CryptoError::Format(m)) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-ciphertext",
                format!("not a Parapet ciphertext: {m}"),
            ),
            KmsError::Crypto(c @ CryptoError::Authentication) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-ciphertext",
                c.to_string(),
            ),
            KmsError::Crypto(CryptoError::Key(m)) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            KmsError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError::unavailable("the database is unavailable; try again later")
            }
            KmsError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

/// Standard base64 with padding, decoded by the SIMD implementation (the hot path of every
/// encrypt request).
fn b64_decode(s: &str) -> Option<Vec<u8>> {
    base64_simd::STANDARD.decode_to_vec(s.trim()).ok()
}

fn b64_encode(b: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(b)
}

fn b64(field: &str, s: &str) -> ApiResult<Vec<u8>> {
    b64_decode(s).ok_or_else(|| ApiError::bad_request(format!("{field} must be standard base64")))
}

/// The seal state of the key service.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SealView {
    pub initialized: bool,
    pub sealed: bool,
    /// `shamir` or `key-file`.
    pub mode: Option<String>,
    pub shares: u8,
    pub threshold: u8,
    /// Shares given so far towards unsealing.
    pub progress: u8,
}

impl From<SealStatus> for SealView {
    fn from(s: SealStatus) -> Self {
        SealView {
            initialized: s.initialized,
            sealed: s.sealed,
            mode: s.mode,
            shares: s.shares,
            threshold: s.threshold,
            progress: s.progress,
        }
    }
}

/// Whether the key service is initialized and sealed (needs no authentication).
#[utoipa::path(get, path = "/api/v1/kms/status", tag = "kms",
    responses((status = 200, body = SealView)))]
pub async fn status(State(st): State<AppState>) -> Json<SealView> {
    Json(st.kms.status().into())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitRequest {
    /// How many shares to make (1–16), one per custodian.
    pub shares: u8,
    /// How many shares unseal (1–shares).
    pub threshold: u8,
}

/// The root key's shares, shown once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct InitResponse {
    pub shares: Vec<String>,
    pub threshold: u8,
}

impl std::fmt::Debug for InitResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitResponse")
            .field("shares", &"<redacted>")
            .field("threshold", &self.threshold)
            .finish()
    }
}

/// Initializes the key service with a root key split among custodians (key custodians).
#[utoipa::path(post, path = "/api/v1/kms/init", tag = "kms", request_body = InitRequest,
    responses((status = 200, body = InitResponse), (status = 403, body = Problem),
        (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn init(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<InitRequest>,
) -> ApiResult<Json<InitResponse>> {
    let shares = st.kms.init(&p, req.shares, req.threshold, &meta).await?;
    Ok(Json(InitResponse {
        shares: shares.iter().map(|s| s.to_string()).collect(),
        threshold: req.threshold,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    /// One custodian's share (hexadecimal).
    pub share: String,
}

/// Gives one custodian's share; the service unseals once the threshold is reached.
#[utoipa::path(post, path = "/api/v1/kms/unseal", tag = "kms", request_body = UnsealRequest,
    responses((status = 200, body = SealView), (status = 403, body = Problem),
        (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn unseal(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<UnsealRequest>,
) -> ApiResult<Json<SealView>> {
    Ok(Json(st.kms.unseal(&p, &req.share, &meta).await?.into()))
}

/// Seals the key service: key operations stop until custodians unseal it.
#[utoipa::path(post, path = "/api/v1/kms/seal", tag = "kms",
    responses((status = 200, body = SealView), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn seal(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> ApiResult<Json<SealView>> {
    Ok(Json(st.kms.seal(&p, &meta).await?.into()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReceiptKey {
    /// The Ed25519 public key (standard base64) that signs deletion receipts.
    pub public_key: String,
}

/// The public key that signs deletion receipts (needs no authentication).
#[utoipa::path(get, path = "/api/v1/kms/receipt-key", tag = "kms",
    responses((status = 200, body = ReceiptKey), (status = 503, body = Problem)))]
pub async fn receipt_key(State(st): State<AppState>) -> ApiResult<Json<ReceiptKey>> {
    Ok(Json(ReceiptKey {
        public_key: STANDARD.encode(st.kms.receipt_public_key()?),
    }))
}

/// A key's metadata (never its material).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// `aes256-gcm`, `chacha20-poly1305`, `ed25519` or `hmac-sha256`.
    #[serde(rename = "type")]
    pub key_type: String,
    /// `enabled`, `disabled`, `pending-deletion` or `destroyed`.
    pub state: String,
    pub latest_version: i64,
    pub min_decryption_version: i64,
    pub rotation_period_secs: Option<i64>,
    pub next_rotation_at: Option<String>,
    pub exportable: bool,
    #[schema(value_type = Object)]
    pub policy: KeyPolicy,
    pub created_at: String,
    pub updated_at: String,
    pub deletion_due_at: Option<String>,
    pub deletion_requested_by: Option<String>,
    pub destroyed_at: Option<String>,
    /// `parapet` (generated here) or `external` (imported by the tenant).
    pub origin: String,
}

pub fn key_view(k: &KmsKey) -> KeyView {
    KeyView {
        id: k.id.to_string(),
        name: k.name.clone(),
        key_type: k.key_type.clone(),
        state: k.state.clone(),
        latest_version: k.latest_version,
        min_decryption_version: k.min_decryption_version,
        rotation_period_secs: k.rotation_period_secs,
        next_rotation_at: k.next_rotation_at.map(|t| t.rfc3339()),
        exportable: k.exportable,
        policy: k.policy.clone(),
        created_at: k.created_at.rfc3339(),
        updated_at: k.updated_at.rfc3339(),
        deletion_due_at: k.deletion_due_at.map(|t| t.rfc3339()),
        deletion_requested_by: k.deletion_requested_by.clone(),
        destroyed_at: k.destroyed_at.map(|t| t.rfc3339()),
        origin: k.origin.clone(),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub created_at: String,
    pub destroyed: bool,
    /// Ed25519 keys: the public key (standard base64).
    pub public_key: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyDetail {
    #[serde(flatten)]
    pub key: KeyView,
    pub versions: Vec<VersionView>,
}

fn key_detail(k: &KeyInfo) -> KeyDetail {
    KeyDetail {
        key: key_view(&k.key),
        versions: k
            .versions
            .iter()
            .map(|v| VersionView {
                version: v.version,
                created_at: v.created_at.rfc3339(),
                destroyed: v.destroyed,
                public_key: v.public_key.as_ref().map(|p| STANDARD.encode(p)),
            })
            .collect(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    /// `aes256-gcm` (default), `chacha20-poly1305`, `ed25519`, `hmac-sha256`.
    #[serde(rename = "type")]
    pub key_type: Option<String>,
    /// Whether the key may ever be exported (a one-way flag, fixed at creation).
    #[serde(default)]
    pub exportable: bool,
    /// Automatic rotation period in seconds (at least an hour).
    pub rotation_period_secs: Option<i64>,
    #[schema(value_type = Object)]
    #[serde(default)]
    pub policy: KeyPolicy,
}

fn key_type(s: Option<&str>) -> ApiResult<KeyType> {
    match s {
        None => Ok(KeyType::Aes256Gcm),
        Some(s) => KeyType::parse(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!(
                    "unknown key type {s:?}; expected aes256-gcm, chacha20-poly1305, ed25519 \
                     or hmac-sha256"
                ),
            )
        }),
    }
}

/// Creates a key in the caller's tenant (key administrators).
#[utoipa::path(post, path = "/api/v1/kms/keys", tag = "kms", request_body = CreateKey,
    responses((status = 201, body = KeyView), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)), security(("bearer" = [])))]
pub async fn create_key(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let new = NewKey {
        name: req.name,
        key_type: key_type(req.key_type.as_deref())?,
        exportable: req.exportable,
        rotation_period_secs: req.rotation_period_secs,
        policy: req.policy,
    };
    let k = st.kms.create_key(&p, &new, &meta).await?;
    Ok((StatusCode::CREATED, Json(key_view(&k))))
}

/// The keys of the caller's tenant it may read.
#[utoipa::path(get, path = "/api/v1/kms/keys", tag = "kms",
    responses((status = 200, body = [KeyView]), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> ApiResult<Json<Vec<KeyView>>> {
    let keys = st.kms.list_keys(&p, &meta).await?;
    Ok(Json(keys.iter().map(key_view).collect()))
}

/// One key with its versions.
#[utoipa::path(get, path = "/api/v1/kms/keys/{key}", tag = "kms",
    params(("key" = String, Path, description = "key name or id")),
    responses((status = 200, body = KeyDetail), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_key(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(key): Path<String>,
) -> ApiResult<Json<KeyDetail>> {
    Ok(Json(key_detail(&st.kms.get_key(&p, &key, &meta).await?)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    pub min_decryption_version: Option<i64>,
    /// Seconds between automatic rotations; 0 turns automatic rotation off.
    pub rotation_period_secs: Option<i64>,
    #[schema(value_type = Object)]
    pub policy: Option<KeyPolicy>,
}

/// Changes a key's minimum decryption version, rotation period or policy.
#[utoipa::path(patch, path = "/api/v1/kms/keys/{key}", tag = "kms", request_body = UpdateKey,
    params(("key" = String, Path)),
    responses((status = 200, body = KeyView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update_key(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<UpdateKey>,
) -> ApiResult<Json<KeyView>> {
    let update = KeyUpdate {
        min_decryption_version: req.min_decryption_version,
        rotation_period_secs: req
            .rotation_period_secs
            .map(|s| if s == 0 { None } else { Some(s) }),
        policy: req.policy,
    };
    Ok(Json(key_view(
        &st.kms.update(&p, &key, &update, &meta).await?,
    )))
}

macro_rules! key_action {
    ($name:ident, $path:literal, $method:ident, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "kms", params(("key" = String, Path)),
                    responses((status = 200, body = KeyView), (status = 403, body = Problem),
                        (status = 404, body = Problem), (status = 409, body = Problem)),
                    security(("bearer" = [])))]
        pub async fn $name(
            State(st): State<AppState>,
            Auth(p): Auth,
            Meta(meta): Meta,
            Path(key): Path<String>,
        ) -> ApiResult<Json<KeyView>> {
            Ok(Json(key_view(&st.kms.$method(&p, &key, &meta).await?)))
        }
    };
}

key_action!(
    rotate,
    "/api/v1/kms/keys/{key}/rotate",
    rotate,
    "Adds a version that encrypts from now on; older versions still decrypt."
);
key_action!(
    disable,
    "/api/v1/kms/keys/{key}/disable",
    disable,
    "Disables a key: nothing is encrypted or decrypted with it until enabled."
);
key_action!(
    enable,
    "/api/v1/kms/keys/{key}/enable",
    enable,
    "Enables a disabled key."
);
key_action!(
    cancel_deletion,
    "/api/v1/kms/keys/{key}/cancel-deletion",
    cancel_deletion,
    "Cancels a scheduled deletion; the key comes back disabled."
);

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDeletion {
    /// Waiting period in days (7–30, default 30).
    pub days: Option<i64>,
}

/// Schedules the destruction of a key's material after a waiting period.
#[utoipa::path(post, path = "/api/v1/kms/keys/{key}/schedule-deletion", tag = "kms",
    params(("key" = String, Path)), request_body = ScheduleDeletion,
    responses((status = 200, body = KeyView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn schedule_deletion(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<ScheduleDeletion>,
) -> ApiResult<Json<KeyView>> {
    Ok(Json(key_view(
        &st.kms.schedule_deletion(&p, &key, req.days, &meta).await?,
    )))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReceiptView {
    /// The signed receipt: `<base64url(JSON)>.<base64url(signature)>`.
    pub receipt: String,
}

/// The signed deletion receipt of a destroyed key.
#[utoipa::path(get, path = "/api/v1/kms/keys/{key}/receipt", tag = "kms",
    params(("key" = String, Path)),
    responses((status = 200, body = ReceiptView), (status = 404, body = Problem),
        (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn receipt(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(key): Path<String>,
) -> ApiResult<Json<ReceiptView>> {
    Ok(Json(ReceiptView {
        receipt: st.kms.receipt(&p, &key, &meta).await?,
    }))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ExportedVersion {
    pub version: i64,
    /// The key material (standard base64).
    pub material: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ExportedKey {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: String,
    pub versions: Vec<ExportedVersion>,
}

impl std::fmt::Debug for ExportedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedKey")
            .field("id", &self.id)
            .field("versions", &"<redacted>")
            .finish()
    }
}

/// Exports the material of a key created exportable (key administrators; audited).
#[utoipa::path(post, path = "/api/v1/kms/keys/{key}/export", tag = "kms",
    params(("key" = String, Path)),
    responses((status = 200, body = ExportedKey), (status = 403, body = Problem),
        (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn export(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(key): Path<String>,
) -> ApiResult<Json<ExportedKey>> {
    let (k, versions) = st.kms.export_key(&p, &key, &meta).await?;
    Ok(Json(ExportedKey {
        id: k.id.to_string(),
        name: k.name,
        key_type: k.key_type,
        versions: versions
            .iter()
            .map(|(v, m)| ExportedVersion {
                version: *v,
                material: STANDARD.encode(m.as_slice()),
            })
            .collect(),
    }))
}

/// The encryption section of the SLA documentation (X.1642 7.2.2.2(3), 8.2), generated from the
/// running configuration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EncryptionStatement {
    #[schema(value_type = Object)]
    pub at_rest: parapet_kms::AtRest,
    pub in_transit: InTransit,
    /// How Parapet's own data is protected, item by item, as configured now.
    pub platform: Vec<DisclosureItem>,
}

/// One line of the encryption statement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DisclosureItem {
    pub what: String,
    pub how: String,
}

fn item(what: &str, how: impl Into<String>) -> DisclosureItem {
    DisclosureItem {
        what: what.into(),
        how: how.into(),
    }
}

/// Parapet's own data at rest, from the running configuration.
fn platform_items(st: &AppState) -> Vec<DisclosureItem> {
    let totp = if st.iam.secrets_under_kms() {
        match st.kms.platform_key() {
            Some((id, v)) => format!(
                "AES-256-GCM under the provider's platform key {} (id {id}, version {v}) of the \
                 key service, bound to tenant and user",
                parapet_kms::platform::PLATFORM_KEY
            ),
            None => "sealed under the key service's platform key; the key service is sealed, so \
                     second factors cannot be checked until custodians unseal it"
                .into(),
        }
    } else {
        "AES-256-GCM under the local secrets key file (parapet-secrets.key, mode 0600), bound to \
         tenant and user; moved under the key service once it is initialized"
            .into()
    };
    let db = parapet_store::Health::backend(st.store.as_ref());
    vec![
        item("TOTP secrets", totp),
        item(
            "Passwords",
            "Argon2id hashes with a random salt per password; never stored in clear",
        ),
        item(
            "Session and API token secrets, recovery codes",
            "SHA-256 hashes only; the secret is shown once",
        ),
        item(
            "Audit log",
            format!(
                "append-only, hashed into an RFC 9162 Merkle tree; checkpoints signed with \
                 Ed25519 (C2SP signed notes) by a key in a file of mode 0600{}",
                if st.kms.status().initialized {
                    ", sealed by the platform key of the key service (opened at unseal; while \
                     the service is sealed, records wait and the next checkpoint covers them)"
                } else {
                    " (in clear until the key service is initialized, then sealed by its \
                     platform key)"
                }
            ),
        ),
        item(
            "Webhook signing secrets",
            if st.notify.secrets_under_kms() {
                format!(
                    "AES-256-GCM under the provider's platform key {} of the key service, bound \
                     to tenant and channel",
                    parapet_kms::platform::PLATFORM_KEY
                )
            } else {
                "AES-256-GCM under the local secrets key file (parapet-secrets.key), bound to \
                 tenant and channel; moved under the key service once it is initialized"
                    .to_string()
            },
        ),
        item(
            "Key-ring backups",
            "AES-256-GCM under a fresh 256-bit key sealed for the custodians' X25519 key \
             (HKDF-SHA-256, AES-256-GCM), RSA-OAEP-SHA-256 key (3072 bits or more) or split by \
             Shamir's scheme",
        ),
        item(
            "Imported keys (bring your own key)",
            "wrapped by the tenant with RSA-OAEP-SHA-256 (3072 bits) or X25519 + HKDF-SHA-256 + \
             AES-256-GCM, then wrapped by the tenant's key-encryption key like every key",
        ),
        item(
            "Database",
            format!(
                "{db}: rows are not encrypted by Parapet beyond the items above; use the storage's \
                 own encryption (encrypted volumes)"
            ),
        ),
    ]
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InTransit {
    /// Whether this server listens with TLS.
    pub tls: bool,
    pub protocols: Vec<String>,
    /// The cipher suites the TLS stack offers, in preference order.
    pub cipher_suites: Vec<String>,
    pub key_exchange_groups: Vec<String>,
}

/// What is encrypted at rest and in transit, with which algorithms (for the SLA).
#[utoipa::path(get, path = "/api/v1/kms/encryption", tag = "kms",
    responses((status = 200, body = EncryptionStatement), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn encryption(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
) -> ApiResult<Json<EncryptionStatement>> {
    Ok(Json(statement(&st, &p, &meta).await?))
}

/// The encryption statement of the running configuration, as the caller's tenant sees it.
pub async fn statement(
    st: &AppState,
    p: &parapet_iam::Principal,
    meta: &parapet_iam::RequestMeta,
) -> Result<EncryptionStatement, KmsError> {
    let at_rest = st.kms.at_rest(p, meta).await?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut protocols: Vec<String> = Vec::new();
    for s in &provider.cipher_suites {
        let v = format!("{:?}", s.version().version);
        if !protocols.contains(&v) {
            protocols.push(v);
        }
    }
    Ok(EncryptionStatement {
        platform: platform_items(st),
        at_rest,
        in_transit: InTransit {
            tls: st.config.tls,
            protocols,
            cipher_suites: provider
                .cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect(),
            key_exchange_groups: provider
                .kx_groups
                .iter()
                .map(|g| format!("{:?}", g.name()))
                .collect(),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Operations.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptRequest {
    /// Standard base64.
    pub plaintext: String,
    /// Pairs bound to the ciphertext; the same must be given to decrypt.
    #[serde(default)]
    pub context: Context,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CiphertextView {
    pub ciphertext: String,
}

/// Encrypts with the key's newest version.
#[utoipa::path(post, path = "/api/v1/kms/keys/{key}/encrypt", tag = "kms",
    params(("key" = String, Path)), request_body = EncryptRequest,
    responses((status = 200, body = CiphertextView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn encrypt(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<EncryptRequest>,
) -> ApiResult<Json<CiphertextView>> {
    let plain = zeroize::Zeroizing::new(b64("plaintext", &req.plaintext)?);
    let ciphertext = st
        .kms
        .encrypt(&p, &key, &plain, &req.context, &meta)
        .await?;
    Ok(Json(CiphertextView { ciphertext }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    pub ciphertext: String,
    #[serde(default)]
    pub context: Context,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct PlaintextView {
    /// Standard base64.
    pub plaintext: String,
}

/// Decrypts a ciphertext (the key and version come from the ciphertext).
#[utoipa::path(post, path = "/api/v1/kms/decrypt", tag = "kms", request_body = DecryptRequest,
    responses((status = 200, body = PlaintextView), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn decrypt(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<DecryptRequest>,
) -> ApiResult<Json<PlaintextView>> {
    let plain = st
        .kms
        .decrypt(&p, &req.ciphertext, &req.context, &meta)
        .await?;
    Ok(Json(PlaintextView {
        plaintext: b64_encode(&plain),
    }))
}

/// Re-encrypts a ciphertext under its key's newest version.
#[utoipa::path(post, path = "/api/v1/kms/rewrap", tag = "kms", request_body = DecryptRequest,
    responses((status = 200, body = CiphertextView), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn rewrap(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<DecryptRequest>,
) -> ApiResult<Json<CiphertextView>> {
    let ciphertext = st
        .kms
        .rewrap(&p, &req.ciphertext, &req.context, &meta)
        .await?;
    Ok(Json(CiphertextView { ciphertext }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataKeyRequest {
    #[serde(default)]
    pub context: Context,
    /// Return only the wrapped data key.
    #[serde(default)]
    pub wrapped_only: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DataKeyView {
    pub ciphertext: String,
    /// The data key (standard base64), unless `wrapped_only`.
    pub plaintext: Option<String>,
}

/// Generates a 256-bit data key wrapped under the key.
#[utoipa::path(post, path = "/api/v1/kms/keys/{key}/datakey", tag = "kms",
    params(("key" = String, Path)), request_body = DataKeyRequest,
    responses((status = 200, body = DataKeyView), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn datakey(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<DataKeyRequest>,
) -> ApiResult<Json<DataKeyView>> {
    let dk = st
        .kms
        .data_key(&p, &key, &req.context, req.wrapped_only, &meta)
        .await?;
    Ok(Json(DataKeyView {
        ciphertext: dk.ciphertext,
        plaintext: dk.plaintext.map(|p| b64_encode(&p)),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// Standard base64.
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignatureView {
    pub signature: String,
}

/// Signs a message with an Ed25519 key's newest version.
#[utoipa::path(post, path = "/api/v1/kms/keys/{key}/sign", tag = "kms",
    params(("key" = String, Path)), request_body = MessageRequest,
    responses((status = 200, body = SignatureView)), security(("bearer" = [])))]
pub async fn sign(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<MessageRequest>,
) -> ApiResult<Json<SignatureView>> {
    let msg = b64("message", &req.message)?;
    Ok(Json(SignatureView {
        signature: st.kms.sign(&p, &key, &msg, &meta).await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub message: String,
    pub signature: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Valid {
    pub valid: bool,
}

/// Checks a signature.
#[utoipa::path(post, path = "/api/v1/kms/verify", tag = "kms", request_body = VerifyRequest,
    responses((status = 200, body = Valid)), security(("bearer" = [])))]
pub async fn verify(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Json<Valid>> {
    let msg = b64("message", &req.message)?;
    Ok(Json(Valid {
        valid: st.kms.verify(&p, &req.signature, &msg, &meta).await?,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MacView {
    pub mac: String,
}

/// HMAC-SHA-256 of a message.
#[utoipa::path(post, path = "/api/v1/kms/keys/{key}/hmac", tag = "kms",
    params(("key" = String, Path)), request_body = MessageRequest,
    responses((status = 200, body = MacView)), security(("bearer" = [])))]
pub async fn hmac(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<MessageRequest>,
) -> ApiResult<Json<MacView>> {
    let msg = b64("message", &req.message)?;
    Ok(Json(MacView {
        mac: st.kms.hmac(&p, &key, &msg, &meta).await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyMacRequest {
    pub message: String,
    pub mac: String,
}

/// Checks a MAC.
#[utoipa::path(post, path = "/api/v1/kms/verify-hmac", tag = "kms",
    request_body = VerifyMacRequest,
    responses((status = 200, body = Valid)), security(("bearer" = [])))]
pub async fn verify_hmac(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<VerifyMacRequest>,
) -> ApiResult<Json<Valid>> {
    let msg = b64("message", &req.message)?;
    Ok(Json(Valid {
        valid: st.kms.verify_hmac(&p, &req.mac, &msg, &meta).await?,
    }))
}

// ---------------------------------------------------------------------------------------------
// Batches: one request, many operations; each item succeeds or fails on its own.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptBatch {
    pub items: Vec<EncryptRequest>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptBatch {
    pub items: Vec<DecryptRequest>,
}

/// One item's result: its output, or the problem it met.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    pub ciphertext: Option<String>,
    pub plaintext: Option<String>,
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    pub items: Vec<BatchItem>,
}

fn batch_len(n: usize) -> ApiResult<()> {
    if n == 0 || n > BATCH_MAX {
        return Err(ApiError::bad_request(format!(
            "a batch has 1 to {BATCH_MAX} items"
        )));
    }
    Ok(())
}

/// A batch result written directly instead of through serde: every output is a Parapet
/// ciphertext (`parapet:v1:<uuid>:<n>:<base64url>`) or standard base64, so it needs no JSON
/// escaping and is copied as it is (serde_json scans every byte of such strings for characters
/// to escape, a tenth of a batch's time); error messages still go through serde_json. The shape
/// is [`BatchResult`]'s, with absent fields left out.
fn batch_response(field: &str, items: Vec<Result<String, String>>) -> ApiResult<Response> {
    let size: usize = items
        .iter()
        .map(|i| match i {
            Ok(v) => v.len() + field.len() + 8,
            Err(e) => e.len() + 16,
        })
        .sum();
    let mut body = Vec::with_capacity(size + 16);
    body.extend_from_slice(b"{\"items\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"");
        match item {
            Ok(v) => {
                body.extend_from_slice(field.as_bytes());
                body.extend_from_slice(b"\":\"");
                body.extend_from_slice(v.as_bytes());
                body.push(b'"');
            }
            Err(e) => {
                body.extend_from_slice(b"error\":");
                serde_json::to_writer(&mut body, e).map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        format!("batch result: {e}"),
                    )
                })?;
            }
        }
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

fn item_error(e: KmsError) -> ApiResult<String> {
    // Service-wide failures fail the whole request; per-item problems are reported per item.
    match e {
        KmsError::Sealed
        | KmsError::Uninitialized
        | KmsError::Unavailable(_)
        | KmsError::Internal(_)
        | KmsError::Forbidden(_) => Err(e.into()),
        other => Ok(other.to_string()),
    }
}

/// Encrypts many plaintexts with one key.
#[utoipa::path(post, path = "/api/v1/kms/keys/{key}/encrypt-batch", tag = "kms",
    params(("key" = String, Path)), request_body = EncryptBatch,
    responses((status = 200, body = BatchResult)), security(("bearer" = [])))]
pub async fn encrypt_batch(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<EncryptBatch>,
) -> ApiResult<Response> {
    batch_len(req.items.len())?;
    let decoded: Vec<Option<zeroize::Zeroizing<Vec<u8>>>> = req
        .items
        .iter()
        .map(|it| b64_decode(&it.plaintext).map(zeroize::Zeroizing::new))
        .collect();
    let good: Vec<(&[u8], &Context)> = decoded
        .iter()
        .zip(&req.items)
        .filter_map(|(d, it)| d.as_ref().map(|d| (d.as_slice(), &it.context)))
        .collect();
    let mut sealed = if good.is_empty() {
        Vec::new()
    } else {
        st.kms.encrypt_batch(&p, &key, &good, &meta).await?
    }
    .into_iter();
    let items = decoded
        .iter()
        .map(|d| match d {
            Some(_) => sealed
                .next()
                .ok_or_else(|| "the key service returned too few ciphertexts".to_string()),
            None => Err("plaintext must be standard base64".to_string()),
        })
        .collect();
    batch_response("ciphertext", items)
}

/// Decrypts many ciphertexts.
#[utoipa::path(post, path = "/api/v1/kms/decrypt-batch", tag = "kms",
    request_body = DecryptBatch,
    responses((status = 200, body = BatchResult)), security(("bearer" = [])))]
pub async fn decrypt_batch(
    State(st): State<AppState>,
    Auth(p): Auth,
    Meta(meta): Meta,
    ApiJson(req): ApiJson<DecryptBatch>,
) -> ApiResult<Response> {
    batch_len(req.items.len())?;
    let items: Vec<(&str, &Context)> = req
        .items
        .iter()
        .map(|it| (it.ciphertext.as_str(), &it.context))
        .collect();
    let results = st.kms.decrypt_batch(&p, &items, &meta).await?;
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        out.push(match r {
            Ok(plain) => Ok(b64_encode(&plain)),
            Err(e) => Err(item_error(e)?),
        });
    }
    batch_response("plaintext", out)
}

/// The routes of this module, to nest under `/api/v1`.
pub fn routes() -> axum::Router<AppState> {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/kms/status", get(status))
        .route("/kms/init", post(init))
        .route("/kms/unseal", post(unseal))
        .route("/kms/seal", post(seal))
        .route("/kms/receipt-key", get(receipt_key))
        .route("/kms/encryption", get(encryption))
        .route("/kms/keys", get(list_keys).post(create_key))
        .route("/kms/keys/{key}", get(get_key).patch(update_key))
        .route("/kms/keys/{key}/rotate", post(rotate))
        .route("/kms/keys/{key}/disable", post(disable))
        .route("/kms/keys/{key}/enable", post(enable))
        .route("/kms/keys/{key}/schedule-deletion", post(schedule_deletion))
        .route("/kms/keys/{key}/cancel-deletion", post(cancel_deletion))
        .route("/kms/keys/{key}/receipt", get(receipt))
        .route("/kms/keys/{key}/export", post(export))
        .route("/kms/keys/{key}/encrypt", post(encrypt))
        .route(
            "/kms/keys/{key}/encrypt-batch",
            post(encrypt_batch).layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
        .route("/kms/keys/{key}/datakey", post(datakey))
        .route("/kms/keys/{key}/sign", post(sign))
        .route("/kms/keys/{key}/hmac", post(hmac))
        .route("/kms/decrypt", post(decrypt))
        .route(
            "/kms/decrypt-batch",
            post(decrypt_batch).layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
        .route("/kms/rewrap", post(rewrap))
        .route("/kms/verify", post(verify))
        .route("/kms/verify-hmac", post(verify_hmac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_strict_standard_base64_as_before() {
        // The SIMD decoder accepts exactly what the base64 crate's STANDARD engine accepts.
        for s in [
            "aGVsbG8=",
            "aGVsbG8",
            "aGVsbG9=",
            "aGVs bG8=",
            "aGVs-G8=",
            "",
            "====",
            "aGVsbG8=\n",
        ] {
            assert_eq!(
                b64_decode(s.trim()),
                STANDARD.decode(s.trim()).ok(),
                "{s:?}"
            );
        }
        let data: Vec<u8> = (0..=255u8).cycle().take(1500).collect();
        assert_eq!(b64_encode(&data), STANDARD.encode(&data));
        assert_eq!(b64_decode(&b64_encode(&data)), Some(data));
    }
}
