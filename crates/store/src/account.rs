//! Account policies and account state (X.1642 8.1.1(3), 8.1.2): lockout counters, throttling
//! windows, password history and age, dormancy.

use parapet_types::{TenantCtx, Timestamp, UserId};
use serde::{Deserialize, Serialize};

use crate::{AuditEvent, StoreResult, User};

/// A tenant's account policy. Every field has a safe provider default (see `parapet-iam`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPolicy {
    /// Consecutive failed log-ins that lock an account (temporarily).
    pub lockout_threshold: u32,
    /// Wait of the first temporary lockout, in seconds; each further one multiplies it.
    pub lockout_base_secs: u32,
    /// Factor by which the wait grows with each temporary lockout.
    pub lockout_multiplier: u32,
    /// After this many temporary lockouts in a row the account is locked until an administrator
    /// unlocks it (0: never permanently).
    pub permanent_after: u32,
    /// Log-in attempts per name and per minute before further attempts are refused (attempts
    /// with the right password are given back).
    pub throttle_per_account: u32,
    /// Log-in attempts per source address and per minute.
    pub throttle_per_address: u32,
    pub password_min_length: u32,
    /// How many of the four classes (lower case, upper case, digit, other) a password needs.
    pub password_min_classes: u32,
    /// How many previous passwords may not be used again.
    pub password_history: u32,
    /// Days after which a password must be changed (0: never).
    pub password_max_age_days: u32,
    /// Refuse passwords from the list of common passwords.
    pub password_deny_common: bool,
    /// Days without log-in after which an account is disabled (0: never).
    pub dormant_days: u32,
    /// Days after being disabled for dormancy after which the account is deleted (0: never).
    pub dormant_delete_days: u32,
    /// Consecutive wrong second-factor codes that lock an account (counted apart from passwords).
    pub mfa_lockout_threshold: u32,
    /// Every user of the tenant must log in with a second factor; a session opened without one
    /// may only enrol one (step-up).
    #[serde(default)]
    pub mfa_required: bool,
    /// New users and role changes go through an approval request that another administrator
    /// decides.
    #[serde(default)]
    pub approval_required: bool,
}

/// The log-in state of an account.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountState {
    /// Consecutive failed password attempts (counted before the password is checked).
    pub failures: u32,
    /// Consecutive failed second-factor attempts.
    pub mfa_failures: u32,
    /// Temporary lockouts since the last successful log-in.
    pub lockouts: u32,
    /// End of the current temporary lockout.
    pub locked_until: Option<Timestamp>,
    /// When the account was locked until an administrator unlocks it.
    pub locked_permanently_at: Option<Timestamp>,
    /// When the password was last set (the account's creation if never since).
    pub password_changed_at: Option<Timestamp>,
    /// When the account was disabled for dormancy.
    pub dormant_disabled_at: Option<Timestamp>,
    /// When an administrator last enabled the account (counts as activity for dormancy).
    pub enabled_at: Option<Timestamp>,
}

impl AccountState {
    pub fn is_locked(&self, now: Timestamp) -> bool {
        self.locked_permanently_at.is_some() || self.locked_until.is_some_and(|t| t > now)
    }
}

/// An account with its state, for listings and reports.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    pub user: User,
    pub state: AccountState,
}

/// Which counter an attempt uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Password,
    SecondFactor,
}

/// The answer to a reservation of a log-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The attempt may check its credential; `failures` counts it (pessimistically) already and
    /// `lockouts` is the number of temporary lockouts so far.
    Allowed { failures: u32, lockouts: u32 },
    /// The account is locked, or as many attempts as the threshold allows are in flight.
    Refused,
}

/// How a failed attempt at the threshold locks the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    Until(Timestamp),
    Permanent(Timestamp),
}

#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {
    /// The tenant's own policy, if it set one.
    async fn get_account_policy(&self, ctx: TenantCtx) -> StoreResult<Option<AccountPolicy>>;
    async fn set_account_policy(
        &self,
        ctx: TenantCtx,
        policy: &AccountPolicy,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    async fn get_account_state(&self, ctx: TenantCtx, user: UserId) -> StoreResult<AccountState>;

    /// Every user of `ctx` with its state.
    async fn list_accounts(&self, ctx: TenantCtx) -> StoreResult<Vec<AccountRow>>;

    /// Atomically counts an attempt on `user` before its credential is checked, unless the account
    /// is locked at `now` or the failures counted already reach `threshold`; concurrent callers
    /// therefore never check more credentials than the threshold allows.
    async fn reserve_attempt(
        &self,
        ctx: TenantCtx,
        user: UserId,
        factor: Factor,
        threshold: u32,
        now: Timestamp,
    ) -> StoreResult<Attempt>;

    /// Locks the account after a failed attempt at the threshold: resets the counter of `factor`
    /// and counts a temporary lockout. The event is written in the same transaction.
    async fn lock_account(
        &self,
        ctx: TenantCtx,
        user: UserId,
        factor: Factor,
        lock: Lock,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Clears the counter of `factor` after a successful check (and, for the last factor, the
    /// temporary lockouts).
    async fn clear_failures(
        &self,
        ctx: TenantCtx,
        user: UserId,
        factor: Factor,
        all: bool,
    ) -> StoreResult<()>;

    /// Unlocks an account (administrator): clears counters and locks.
    async fn unlock_account(
        &self,
        ctx: TenantCtx,
        user: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Counts a hit on throttling `key` in the window starting at `window_start` (a new window
    /// restarts the count) and returns the hits in the window, this one included. Atomic under
    /// concurrent callers.
    async fn throttle_hit(
        &self,
        ctx: TenantCtx,
        key: &str,
        window_start: Timestamp,
    ) -> StoreResult<u32>;

    /// Gives back a hit counted by [`throttle_hit`](Self::throttle_hit) in the same window (a
    /// successful log-in does not use up the allowance).
    async fn throttle_release(
        &self,
        ctx: TenantCtx,
        key: &str,
        window_start: Timestamp,
    ) -> StoreResult<()>;

    /// Forgets throttling windows that started before `before`.
    async fn prune_throttle(&self, ctx: TenantCtx, before: Timestamp) -> StoreResult<u64>;

    /// The password hashes `user` had before, newest first, at most `limit`.
    async fn password_history(
        &self,
        ctx: TenantCtx,
        user: UserId,
        limit: u32,
    ) -> StoreResult<Vec<String>>;

    /// Replaces the password hash of `user`, keeping the old one in the history (of which the
    /// newest `keep` are kept), and records when. The event is written in the same transaction.
    async fn set_password(
        &self,
        ctx: TenantCtx,
        user: UserId,
        new_hash: &str,
        keep: u32,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Active users of `ctx` whose last activity (log-in, creation or re-enabling) is before
    /// `cutoff`.
    async fn dormant_users(&self, ctx: TenantCtx, cutoff: Timestamp) -> StoreResult<Vec<User>>;

    /// Disables `user` for dormancy (revoking its credentials). The event is written in the same
    /// transaction.
    async fn disable_dormant(
        &self,
        ctx: TenantCtx,
        user: UserId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Users of `ctx` disabled for dormancy before `cutoff` and still disabled.
    async fn expired_dormant(&self, ctx: TenantCtx, cutoff: Timestamp) -> StoreResult<Vec<User>>;

    /// Deletes `user` and everything that belongs to it (credentials, state, history); the audit
    /// trail keeps its records. The event is written in the same transaction.
    async fn delete_user(
        &self,
        ctx: TenantCtx,
        user: UserId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
}
