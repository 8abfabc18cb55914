//! Key management storage (X.1642 8.2): the sealed root's description, tenant key-encryption
//! keys, keys with their versions (material only ever stored wrapped), and deletion receipts.

use parapet_types::{TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AuditEvent, StoreResult};

/// How the root key is kept at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsRoot {
    /// `shamir` (split among custodians) or `key-file` (development).
    pub mode: String,
    pub shares: u8,
    pub threshold: u8,
    /// A known value sealed under the root key: proves that an unseal recovered the right key.
    pub check: Vec<u8>,
    pub created_at: Timestamp,
}

/// Who may do what with one key (X.1642 8.2(1): key users, key administrators and auditors are
/// separate). An empty list leaves the decision to the roles alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    /// May encrypt, decrypt, sign, … with the key.
    #[serde(default)]
    pub users: Vec<String>,
    /// May rotate, disable, schedule deletion and change the policy.
    #[serde(default)]
    pub admins: Vec<String>,
    /// May read the key's metadata and operations.
    #[serde(default)]
    pub auditors: Vec<String>,
}

/// A key's metadata (never its material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKey {
    pub id: Uuid,
    pub tenant: TenantId,
    pub name: String,
    /// `aes256-gcm`, `chacha20-poly1305`, `ed25519`, `hmac-sha256`.
    pub key_type: String,
    /// `enabled`, `disabled`, `pending-deletion`, `destroyed`.
    pub state: String,
    pub latest_version: i64,
    pub min_decryption_version: i64,
    pub rotation_period_secs: Option<i64>,
    pub next_rotation_at: Option<Timestamp>,
    pub exportable: bool,
    pub policy: KeyPolicy,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// While pending deletion: when the material is destroyed.
    pub deletion_due_at: Option<Timestamp>,
    /// Who scheduled the deletion (the approver named in the receipt).
    pub deletion_requested_by: Option<String>,
    pub destroyed_at: Option<Timestamp>,
    /// The signed deletion receipt, once destroyed.
    pub receipt: Option<String>,
    /// Where the material came from: `parapet` (generated here) or `external` (imported by the
    /// tenant, X.1642 8.2(3)).
    pub origin: String,
}

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKeyVersion {
    pub key: Uuid,
    pub version: i64,
    /// The material wrapped under the tenant's key-encryption key; `None` once destroyed.
    pub material: Option<Vec<u8>>,
    /// Ed25519 keys: the public key.
    pub public_key: Option<Vec<u8>>,
    pub created_at: Timestamp,
}

/// A platform secret still sealed by the local secrets key (before the key service sealed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSecret {
    pub tenant: TenantId,
    pub user: parapet_types::UserId,
    pub sealed: String,
}

#[async_trait::async_trait]
pub trait KmsStore: Send + Sync {
    /// TOTP secrets of every tenant still sealed by the local key (not `kms:`), by user id after
    /// `after` (`ctx` must be the provider).
    async fn platform_local_secrets(
        &self,
        ctx: TenantCtx,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<LocalSecret>>;
    /// Replaces a sealed TOTP secret if it is still `old`, with its audit record; false if it
    /// changed meanwhile.
    async fn platform_reseal_secret(
        &self,
        ctx: TenantCtx,
        user: parapet_types::UserId,
        old: &str,
        new: &str,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    /// The root's description (`ctx` is the provider tenant).
    async fn kms_root(&self, ctx: TenantCtx) -> StoreResult<Option<KmsRoot>>;
    /// Records the root at initialization; `Conflict` if one exists.
    async fn kms_init_root(
        &self,
        ctx: TenantCtx,
        root: &KmsRoot,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// The tenant's wrapped key-encryption key, if made.
    async fn kms_tenant_kek(&self, ctx: TenantCtx) -> StoreResult<Option<Vec<u8>>>;
    /// Stores the tenant's wrapped KEK unless one exists; returns the one stored (safe when
    /// two requests race).
    async fn kms_put_tenant_kek(
        &self,
        ctx: TenantCtx,
        wrapped: &[u8],
        at: Timestamp,
    ) -> StoreResult<Vec<u8>>;
    async fn kms_create_key(
        &self,
        ctx: TenantCtx,
        key: &KmsKey,
        first: &KmsKeyVersion,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// A key of `ctx` by id or name.
    async fn kms_get_key(&self, ctx: TenantCtx, id_or_name: &str) -> StoreResult<KmsKey>;
    async fn kms_list_keys(&self, ctx: TenantCtx) -> StoreResult<Vec<KmsKey>>;
    async fn kms_key_version(
        &self,
        ctx: TenantCtx,
        key: Uuid,
        version: i64,
    ) -> StoreResult<KmsKeyVersion>;
    async fn kms_key_versions(&self, ctx: TenantCtx, key: Uuid) -> StoreResult<Vec<KmsKeyVersion>>;
    /// Adds version `v.version` (which must be the key's latest + 1: `Conflict` otherwise) and
    /// stores `key` (with the new latest version).
    async fn kms_add_version(
        &self,
        ctx: TenantCtx,
        key: &KmsKey,
        v: &KmsKeyVersion,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Stores the key's mutable fields (state, versions bounds, rotation, policy, deletion).
    async fn kms_update_key(
        &self,
        ctx: TenantCtx,
        key: &KmsKey,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Destroys every version's material and stores `key` (destroyed, with its receipt).
    async fn kms_destroy_key(
        &self,
        ctx: TenantCtx,
        key: &KmsKey,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Stores whole keys with their versions (restored from a backup, or imported) and `audit`,
    /// in one transaction: all or none. `Conflict` if a key id or name is taken.
    async fn kms_import_keys(
        &self,
        ctx: TenantCtx,
        keys: &[(KmsKey, Vec<KmsKeyVersion>)],
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Keys of every tenant pending deletion and due at `now` (`ctx` must be the provider).
    async fn kms_due_deletions(&self, ctx: TenantCtx, now: Timestamp) -> StoreResult<Vec<KmsKey>>;
    /// `(tenant, key)` of every key of every tenant changed at or after `since` (by its
    /// `updated_at`), at most `limit` (`ctx` must be the provider): what replicas poll to drop
    /// their cached copies.
    async fn kms_changed_keys(
        &self,
        ctx: TenantCtx,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(TenantId, Uuid)>>;
}
