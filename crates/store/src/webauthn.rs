//! WebAuthn credentials (passkeys, security keys) and their single-use challenges (X.1642
//! 7.2.2.4(4), issue 4 §3).

use parapet_types::{TenantCtx, TenantId, Timestamp, UserId};

use crate::{AuditEvent, StoreResult};

/// A public-key credential registered by a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnCredential {
    /// The credential id (base64url), unique across the installation.
    pub id: String,
    pub tenant: TenantId,
    pub user: UserId,
    /// A name the user chose (unique per user).
    pub name: String,
    /// The COSE public key (base64url of its CBOR encoding).
    pub public_key: String,
    /// COSE algorithm (-7 ES256, -8 EdDSA, -257 RS256).
    pub alg: i64,
    /// The last signature counter seen (0 for authenticators without one).
    pub sign_count: i64,
    /// The authenticator model (hex), all zero when not disclosed.
    pub aaguid: String,
    /// The attestation format accepted at registration (`none`, `packed`).
    pub attestation: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// A challenge handed to a browser, kept by the hash of its handle until used or expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnChallenge {
    pub id_hash: String,
    pub tenant: TenantId,
    pub user: UserId,
    /// `register` or `login`.
    pub purpose: String,
    /// The challenge bytes (base64url).
    pub challenge: String,
    pub expires_at: Timestamp,
}

#[async_trait::async_trait]
pub trait WebAuthnStore: Send + Sync {
    /// Stores a challenge (and drops the tenant's expired ones).
    async fn put_webauthn_challenge(
        &self,
        ctx: TenantCtx,
        c: &WebAuthnChallenge,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Removes and returns the challenge (single use): `None` when unknown or used.
    async fn take_webauthn_challenge(
        &self,
        ctx: TenantCtx,
        id_hash: &str,
    ) -> StoreResult<Option<WebAuthnChallenge>>;
    /// Registers a credential with its audit record (`Conflict` for a duplicate name or id).
    async fn add_webauthn_credential(
        &self,
        ctx: TenantCtx,
        c: &WebAuthnCredential,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// A user's credentials, oldest first.
    async fn list_webauthn_credentials(
        &self,
        ctx: TenantCtx,
        user: UserId,
    ) -> StoreResult<Vec<WebAuthnCredential>>;
    /// Renames a credential of `user`; `NotFound` when it has none of that id.
    async fn rename_webauthn_credential(
        &self,
        ctx: TenantCtx,
        user: UserId,
        id: &str,
        name: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Removes a credential of `user`; `NotFound` when it has none of that id.
    async fn remove_webauthn_credential(
        &self,
        ctx: TenantCtx,
        user: UserId,
        id: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Records a use: the counter moves from `old` to `new` atomically (false, and nothing
    /// written, when it is no longer `old`: a concurrent use of the same authenticator).
    async fn use_webauthn_credential(
        &self,
        ctx: TenantCtx,
        id: &str,
        old: i64,
        new: i64,
        at: Timestamp,
    ) -> StoreResult<bool>;
}
