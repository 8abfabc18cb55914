//! What the audit event source learned about each account's successful log-ins to the
//! management platform (X.1642 8.3(2)): the addresses it logged in from and how many log-ins
//! fell in each UTC hour. Read by key at every log-in instead of searching the audit events.

use parapet_types::{TenantCtx, Timestamp};
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// One account's log-in profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginProfile {
    /// The log-in name, lower-cased (`alice@acme`, `admin`).
    pub account: String,
    /// Source addresses seen, oldest first (at most the newest 64 are kept).
    pub sources: Vec<String>,
    /// Log-ins per UTC hour (24 entries).
    pub hours: Vec<u64>,
    pub logins: u64,
}

/// Log-in profile storage (derived data: no audit record of its own).
#[async_trait::async_trait]
pub trait LoginProfileStore: Send + Sync {
    /// The profiles of `accounts` that exist.
    async fn login_profiles(
        &self,
        ctx: TenantCtx,
        accounts: &[String],
    ) -> StoreResult<Vec<LoginProfile>>;

    /// Creates or replaces the profiles, in one transaction.
    async fn put_login_profiles(
        &self,
        ctx: TenantCtx,
        profiles: &[LoginProfile],
        now: Timestamp,
    ) -> StoreResult<()>;
}
