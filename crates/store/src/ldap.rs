//! LDAP v3 directories per tenant (X.1642 8.1.2(1)): where a tenant's users are authenticated
//! when their accounts are marked as directory accounts, how their groups map to roles. The
//! service account's bind password is stored only as the service sealed it.

use parapet_types::{Role, TenantCtx, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{AuditEvent, StoreResult};

/// One group-to-role rule: a member of `group` (a DN, compared case-insensitively) gets `role`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdapRoleMapping {
    pub group: String,
    pub role: Role,
}

/// A tenant's directory settings (everything but the bind password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdapSettings {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[serde(default)]
    pub starttls: bool,
    /// The service account that searches the directory.
    pub bind_dn: String,
    /// Where users are searched (subtree).
    pub user_base: String,
    /// The user search filter; `{username}` is replaced by the typed name escaped per RFC 4515.
    pub user_filter: String,
    /// Where groups are searched (subtree); none: groups come only from `member_of_attribute`.
    #[serde(default)]
    pub group_base: Option<String>,
    /// The group search filter; `{dn}` is the user's DN and `{username}` the name, both escaped.
    #[serde(default)]
    pub group_filter: Option<String>,
    /// An attribute of the user's entry listing its groups (`memberOf`), if the directory has one.
    #[serde(default)]
    pub member_of_attribute: Option<String>,
    /// Group-to-role rules, first match wins.
    #[serde(default)]
    pub role_mappings: Vec<LdapRoleMapping>,
    /// The role of a directory user in no mapped group; none: such users may not log in.
    #[serde(default)]
    pub default_role: Option<Role>,
    /// Create the local account at the first successful bind (just-in-time provisioning).
    #[serde(default)]
    pub provision: bool,
    /// Connection and operation timeout, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
}

fn default_timeout() -> u32 {
    5
}

/// A stored directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapDirectory {
    pub tenant: TenantId,
    pub settings: LdapSettings,
    /// The bind password as the service sealed it (never in clear).
    pub sealed_bind_password: String,
    pub updated_at: Timestamp,
}

#[async_trait::async_trait]
pub trait LdapStore: Send + Sync {
    async fn get_ldap(&self, ctx: TenantCtx) -> StoreResult<Option<LdapDirectory>>;

    /// Creates or replaces the tenant's directory, with its audit record in the same transaction.
    async fn put_ldap(
        &self,
        ctx: TenantCtx,
        dir: &LdapDirectory,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Removes the tenant's directory (`NotFound` when there is none), with its audit record.
    async fn delete_ldap(&self, ctx: TenantCtx, audit: &AuditEvent) -> StoreResult<()>;

    /// Every tenant's directory whose bind password is not sealed by the key service (`ctx` must
    /// be the provider): the migration path of `migrate_secrets`.
    async fn ldap_local_secrets(&self, ctx: TenantCtx) -> StoreResult<Vec<LdapDirectory>>;

    /// Replaces a sealed bind password if it is still `old`, with its audit record; false if it
    /// changed meanwhile.
    async fn ldap_reseal(
        &self,
        ctx: TenantCtx,
        old: &str,
        new: &str,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
}
