//! The OpenID Connect provider's state (X.1642 8.1.1(1), issue 4 §5): clients registered per
//! tenant, the tenant's signing keys (sealed by the service), authorization codes and issued
//! tokens (access and refresh), with their revocation and refresh-token families.

use parapet_types::{TenantCtx, TenantId, Timestamp, UserId};

use crate::{AuditEvent, StoreResult};

/// A relying party registered in a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcClient {
    /// The `client_id` (random, unique across tenants).
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    /// A public client (browser or native app) has no secret and must use PKCE.
    pub public: bool,
    /// SHA-256 (hex) of the client secret; `None` for public clients. The secret itself is shown
    /// once and never stored.
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Grant types allowed: `authorization_code`, `refresh_token`, `client_credentials`.
    pub grants: Vec<String>,
    pub created_at: Timestamp,
    pub secret_rotated_at: Option<Timestamp>,
    /// The JWS algorithm of its ID tokens (`ES256` or `RS256`).
    pub id_token_alg: String,
}

/// A tenant's token-signing key. The private part is sealed by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcKey {
    pub kid: String,
    pub tenant: TenantId,
    /// JWS algorithm (`ES256` or `RS256`).
    pub alg: String,
    pub sealed_private: String,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    pub created_at: Timestamp,
    /// When a newer key replaced it; it stays published until the tokens it signed expire.
    pub retired_at: Option<Timestamp>,
}

/// An authorization code (stored by its hash), single use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcCode {
    pub code_hash: String,
    pub tenant: TenantId,
    pub client_id: String,
    pub user: UserId,
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    pub scope: String,
    pub nonce: Option<String>,
    /// When the user authenticated (the session's log-in time).
    pub auth_time: Timestamp,
    /// The token family the code's tokens will belong to (revoked together on code reuse).
    pub family: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// An issued access or refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcToken {
    /// The `jti` of an access token, or the id of a refresh token.
    pub id: String,
    pub tenant: TenantId,
    pub client_id: String,
    /// The user the token acts for; `None` for client-credentials tokens.
    pub user: Option<UserId>,
    /// `access` or `refresh`.
    pub kind: String,
    /// SHA-256 (hex) of a refresh token's secret; `None` for access tokens (JWTs).
    pub secret_hash: Option<String>,
    /// Tokens descending from one authorization are one family.
    pub family: String,
    pub scope: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// When a refresh token was exchanged (a second use is a reuse).
    pub used_at: Option<Timestamp>,
}

/// What redeeming an authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// The code was unused and is now used.
    Fresh(OidcCode),
    /// The code had been used already: the caller must revoke its family.
    Reused(OidcCode),
    /// No such code in the tenant.
    Unknown,
}

#[async_trait::async_trait]
pub trait OidcStore: Send + Sync {
    /// The user a code or token acts for, by id (`NotFound` when deleted).
    async fn oidc_user(&self, ctx: TenantCtx, user: UserId) -> StoreResult<crate::User>;
    async fn create_oidc_client(
        &self,
        ctx: TenantCtx,
        client: &OidcClient,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    async fn list_oidc_clients(&self, ctx: TenantCtx) -> StoreResult<Vec<OidcClient>>;
    /// `NotFound` when the client is not registered in `ctx`'s tenant.
    async fn get_oidc_client(&self, ctx: TenantCtx, id: &str) -> StoreResult<OidcClient>;
    /// Replaces the secret hash (the old secret stops working at once).
    async fn set_oidc_client_secret(
        &self,
        ctx: TenantCtx,
        id: &str,
        secret_hash: &str,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Removes the client and its codes and revokes every token issued to it.
    async fn delete_oidc_client(
        &self,
        ctx: TenantCtx,
        id: &str,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// The tenant's signing keys, newest first.
    async fn list_oidc_keys(&self, ctx: TenantCtx) -> StoreResult<Vec<OidcKey>>;
    /// Adds a signing key and retires (at `key.created_at`) every key of the same algorithm not
    /// yet retired.
    async fn add_oidc_key(
        &self,
        ctx: TenantCtx,
        key: &OidcKey,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Removes keys retired before `before` (no token they signed is still valid).
    async fn purge_oidc_keys(&self, ctx: TenantCtx, before: Timestamp) -> StoreResult<u64>;
    /// Every tenant's signing keys whose private part is not sealed by the key service (`ctx`
    /// must be the provider): the migration path of `migrate_secrets`.
    async fn oidc_local_keys(&self, ctx: TenantCtx) -> StoreResult<Vec<OidcKey>>;
    /// Replaces a key's sealed private part if it is still `old`, with `audit`; false when it
    /// changed meanwhile.
    async fn oidc_reseal_key(
        &self,
        ctx: TenantCtx,
        kid: &str,
        old: &str,
        new: &str,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;

    async fn create_oidc_code(
        &self,
        ctx: TenantCtx,
        code: &OidcCode,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Marks the code used, atomically (two redemptions cannot both be fresh).
    async fn redeem_oidc_code(
        &self,
        ctx: TenantCtx,
        code_hash: &str,
        at: Timestamp,
    ) -> StoreResult<CodeRedemption>;

    /// Records newly issued tokens with the audit record of the grant.
    async fn issue_oidc_tokens(
        &self,
        ctx: TenantCtx,
        tokens: &[OidcToken],
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Exchanges refresh token `old` for `tokens`: false (and nothing written) when `old` was
    /// used or revoked already.
    async fn rotate_oidc_refresh(
        &self,
        ctx: TenantCtx,
        old: &str,
        at: Timestamp,
        tokens: &[OidcToken],
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    async fn get_oidc_token(&self, ctx: TenantCtx, id: &str) -> StoreResult<Option<OidcToken>>;
    async fn find_oidc_refresh(
        &self,
        ctx: TenantCtx,
        secret_hash: &str,
    ) -> StoreResult<Option<OidcToken>>;
    /// Revokes one token (`family` = false) or its whole family (true). Returns how many tokens
    /// were revoked.
    async fn revoke_oidc_tokens(
        &self,
        ctx: TenantCtx,
        id: &str,
        family: bool,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<u64>;
}
