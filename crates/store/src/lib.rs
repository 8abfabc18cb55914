//! Storage traits for Parapet, one trait per domain, and the plain records they carry.
//!
//! Rules every implementation keeps:
//! - every call takes the [`TenantCtx`] it acts within and never reads or changes a row of another
//!   tenant (the two documented exceptions resolve *which* tenant a credential belongs to:
//!   [`IamStore::find_login`] and [`IamStore::authenticate`]);
//! - every state-changing call takes the [`AuditEvent`] describing it and writes it in the same
//!   transaction as the change: no change without its record, no record without its change.

use async_trait::async_trait;
use parapet_types::{
    Actor, CredentialId, Role, TenantCtx, TenantId, TenantKind, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};

pub mod access;
pub mod account;
pub mod alert;
pub mod approval;
pub mod asset;
pub mod audit;
pub mod backup;
pub mod escalation;
pub mod event;
pub mod group;
pub mod incident;
pub mod kms;
pub mod ldap;
pub mod login_profile;
pub mod metric;
pub mod mfa;
pub mod notify;
pub mod oidc;
pub mod session;
pub mod subaccount;
pub mod webauthn;
pub use access::{AccessGrant, AccessStore};
pub use account::{AccountPolicy, AccountRow, AccountState, AccountStore, Attempt, Factor, Lock};
pub use alert::{
    Alert, AlertCounts, AlertFilter, AlertHit, AlertStatus, AlertStore, StoredRule, Suppression,
};
pub use approval::{ApprovalEffect, ApprovalKind, ApprovalRequest, ApprovalStore};
pub use asset::{
    Asset, AssetFilter, AssetHealth, AssetKind, AssetStore, Criticality, ImportCounts, Software,
    TenantMatch,
};
pub use audit::{
    AuditEvent, AuditFilter, AuditLogStore, AuditOutcome, AuditRecord, Integration, LogHead,
    StoredCheckpoint, StoredTile,
};
pub use backup::{BackupFindingRow, BackupJobRow, BackupPolicyRow, BackupReportRow, BackupStore};
pub use escalation::{EscalationCandidate, EscalationStore};
pub use event::{EventFilter, EventStore, Ingested, Purged, StoredEvent};
pub use group::{Group, GroupStore};
pub use incident::{AlertLink, IncidentFilter, IncidentRow, IncidentStore, PlanRow, SlaPolicyRow};
pub use kms::{KeyPolicy, KmsKey, KmsKeyVersion, KmsRoot, KmsStore, LocalSecret};
pub use ldap::{LdapDirectory, LdapRoleMapping, LdapSettings, LdapStore};
pub use login_profile::{LoginProfile, LoginProfileStore};
pub use metric::{
    MetricPoint, MetricRule, MetricRuleKind, MetricRuleState, MetricSample, MetricSeries,
    MetricStore, MetricTarget, MetricsPurged,
};
pub use mfa::{MfaStore, TotpRecord};
pub use notify::{AttemptResult, ChannelRecord, NotifyStore, OutboxItem, OutboxStatus};
pub use oidc::{CodeRedemption, OidcClient, OidcCode, OidcKey, OidcStore, OidcToken};
pub use session::{SessionInfo, SessionStore};
pub use subaccount::{SubAccountChange, SubAccountStore};
pub use webauthn::{WebAuthnChallenge, WebAuthnCredential, WebAuthnStore};

/// What a storage call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule would be broken (the message names what already exists).
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached or did not answer in time.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Keyset pagination: rows strictly after `after` (an opaque key from a previous page), at most
/// `limit` of them.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(TenantStatus::Active),
            "suspended" => Some(TenantStatus::Suspended),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub kind: TenantKind,
    pub status: TenantStatus,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(UserStatus::Active),
            "disabled" => Some(UserStatus::Disabled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub tenant: TenantId,
    pub username: String,
    pub role: Role,
    pub status: UserStatus,
    /// PHC string (Argon2id). Never serialized to a client.
    pub password_hash: String,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// A console or CLI log-in session.
    Session,
    /// A long-lived API token with scopes.
    ApiToken,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Session => "session",
            CredentialKind::ApiToken => "api-token",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "session" => Some(CredentialKind::Session),
            "api-token" => Some(CredentialKind::ApiToken),
            _ => None,
        }
    }
}

/// A bearer credential. Only the SHA-256 of the secret is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: CredentialId,
    pub tenant: TenantId,
    pub user: UserId,
    pub kind: CredentialKind,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// What authentication of a bearer secret finds: the credential, its user and its tenant.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub credential: Credential,
    pub user: User,
    pub tenant: Tenant,
}

/// Tenants, users and credentials (X.1642 8.1).
#[async_trait]
pub trait IamStore: Send + Sync {
    /// Creates the provider tenant and its first administrator unless a provider tenant exists.
    /// Returns `true` when it created them. Safe when several replicas start at once.
    async fn bootstrap_provider(
        &self,
        provider: &Tenant,
        admin: &User,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;

    /// The provider tenant, if bootstrapped.
    async fn provider_tenant(&self) -> StoreResult<Option<Tenant>>;

    /// Creates a customer tenant. `ctx` must be the provider tenant.
    async fn create_tenant(
        &self,
        ctx: TenantCtx,
        tenant: &Tenant,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Tenants visible within `ctx`: all of them for the provider, only itself for a customer.
    async fn list_tenants(&self, ctx: TenantCtx, page: &Page) -> StoreResult<Vec<Tenant>>;

    /// A tenant by id or name, if visible within `ctx`.
    async fn get_tenant(&self, ctx: TenantCtx, id_or_name: &str) -> StoreResult<Tenant>;

    /// Sets a customer tenant's status. `ctx` must be the provider tenant.
    async fn set_tenant_status(
        &self,
        ctx: TenantCtx,
        tenant: TenantId,
        status: TenantStatus,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    async fn create_user(&self, ctx: TenantCtx, user: &User, audit: &AuditEvent)
    -> StoreResult<()>;
    async fn list_users(&self, ctx: TenantCtx, page: &Page) -> StoreResult<Vec<User>>;
    async fn get_user(&self, ctx: TenantCtx, username: &str) -> StoreResult<User>;
    /// Sets a user's status; disabling also revokes all of the user's credentials.
    async fn set_user_status(
        &self,
        ctx: TenantCtx,
        user: UserId,
        status: UserStatus,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Resolves a log-in name: the tenant named `tenant_name` and its user `username`.
    async fn find_login(&self, tenant_name: &str, username: &str) -> StoreResult<(Tenant, User)>;

    /// Records a successful log-in: the new session and the user's last log-in time.
    async fn create_session(
        &self,
        ctx: TenantCtx,
        session: &Credential,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    async fn create_api_token(
        &self,
        ctx: TenantCtx,
        token: &Credential,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    async fn list_credentials(
        &self,
        ctx: TenantCtx,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<Vec<Credential>>;

    async fn revoke_credential(
        &self,
        ctx: TenantCtx,
        id: CredentialId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Finds the live (unrevoked, unexpired) credential whose secret hashes to `secret_hash`.
    /// A session unused since `idle_since` (to the minute) is not live.
    async fn authenticate(
        &self,
        secret_hash: &[u8],
        now: Timestamp,
        idle_since: Timestamp,
    ) -> StoreResult<Option<Authenticated>>;
}

/// The audit trail (X.1642 8.11, 8.1.1(5)).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Records an event that changes no other state (a log-in attempt, a denied request).
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<i64>;
    /// Events within `ctx` (all for the provider), newest first.
    async fn list_audit(
        &self,
        ctx: TenantCtx,
        filter: &AuditFilter,
        page: &Page,
    ) -> StoreResult<Vec<AuditRecord>>;
}

/// Health of the storage backend.
#[async_trait]
pub trait Health: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;
    fn backend(&self) -> &'static str;
}

/// Everything the application needs from storage.
pub trait Store:
    IamStore
    + AuditStore
    + AuditLogStore
    + SessionStore
    + AssetStore
    + AccountStore
    + MfaStore
    + KmsStore
    + ApprovalStore
    + IncidentStore
    + OidcStore
    + AccessStore
    + LdapStore
    + GroupStore
    + SubAccountStore
    + WebAuthnStore
    + NotifyStore
    + EventStore
    + AlertStore
    + BackupStore
    + MetricStore
    + EscalationStore
    + LoginProfileStore
    + Health
{
}
impl<T> Store for T where
    T: IamStore
        + AuditStore
        + AuditLogStore
        + SessionStore
        + AssetStore
        + AccountStore
        + MfaStore
        + KmsStore
        + ApprovalStore
        + IncidentStore
        + OidcStore
        + AccessStore
        + LdapStore
        + GroupStore
        + SubAccountStore
        + WebAuthnStore
        + NotifyStore
        + EventStore
        + AlertStore
        + BackupStore
        + MetricStore
        + EscalationStore
        + LoginProfileStore
        + Health
{
}

/// Helper to build the actor of a user.
pub fn user_actor(user: &User) -> Actor {
    Actor::User {
        tenant: user.tenant,
        user: user.id,
        username: user.username.clone(),
    }
}
