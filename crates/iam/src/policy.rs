//! Account policies (X.1642 8.1.1(3), 8.1.2): lockout after consecutive failures (temporary with
//! an increasing wait, permanent after N temporary lockouts), throttling of rapid attempts per
//! name and per source address, password rules (length, classes, not the user name, history,
//! maximum age, common passwords), and dormant accounts disabled (and optionally deleted).
//!
//! Lockout is decided in storage before a password is checked: each attempt first reserves a
//! place under the threshold ([`AccountStore::reserve_attempt`]), so concurrent wrong passwords
//! never check more guesses than the threshold allows. A locked account answers exactly like a
//! wrong password.

use parapet_store::{
    AccountPolicy, AccountRow, AccountState, Attempt, AuditOutcome, Factor, Lock, StoreError,
    Tenant, TenantStatus, User, UserStatus,
};
use parapet_types::{Actor, Role, TenantCtx, TenantKind, Timestamp};
use serde_json::json;

use crate::authz::Action;
use crate::{IamError, IamResult, IamService, Principal, RequestMeta, event};

/// The provider's default policy, safe for any tenant.
pub fn default_policy() -> AccountPolicy {
    AccountPolicy {
        lockout_threshold: 5,
        lockout_base_secs: 60,
        lockout_multiplier: 2,
        permanent_after: 5,
        throttle_per_account: 10,
        throttle_per_address: 60,
        password_min_length: 12,
        password_min_classes: 2,
        password_history: 5,
        password_max_age_days: 0,
        password_deny_common: true,
        dormant_days: 90,
        dormant_delete_days: 0,
        mfa_lockout_threshold: 5,
        mfa_required: false,
        approval_required: false,
    }
}

/// Checks that every field of `p` is within safe bounds; the message names each field that is
/// not.
pub fn validate(p: &AccountPolicy) -> IamResult<()> {
    let checks: [(&str, u32, u32, u32); 13] = [
        ("lockout_threshold", p.lockout_threshold, 1, 20),
        ("lockout_base_secs", p.lockout_base_secs, 1, 86_400),
        ("lockout_multiplier", p.lockout_multiplier, 1, 10),
        ("permanent_after", p.permanent_after, 0, 100),
        ("throttle_per_account", p.throttle_per_account, 1, 1_000),
        ("throttle_per_address", p.throttle_per_address, 1, 100_000),
        ("password_min_length", p.password_min_length, 8, 128),
        ("password_min_classes", p.password_min_classes, 0, 4),
        ("password_history", p.password_history, 0, 24),
        ("password_max_age_days", p.password_max_age_days, 0, 3_650),
        ("dormant_days", p.dormant_days, 0, 3_650),
        ("dormant_delete_days", p.dormant_delete_days, 0, 3_650),
        ("mfa_lockout_threshold", p.mfa_lockout_threshold, 1, 20),
    ];
    let bad: Vec<String> = checks
        .iter()
        .filter(|(_, v, lo, hi)| v < lo || v > hi)
        .map(|(name, v, lo, hi)| format!("{name} must be between {lo} and {hi} (got {v})"))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(IamError::Invalid(bad.join("; ")))
    }
}

const COMMON: &str = include_str!("data/common-passwords.txt");

/// Whether `password` is a common password, also with digits or punctuation appended.
pub fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    COMMON
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|l| l == lower || l == stem)
}

/// Checks `password` for `username` against the rules of `p` that need no history; the message
/// lists every rule broken.
pub fn check_password(p: &AccountPolicy, username: &str, password: &str) -> IamResult<()> {
    let mut bad = Vec::new();
    let n = password.chars().count();
    if n < p.password_min_length as usize {
        bad.push(format!(
            "the password must have at least {} characters",
            p.password_min_length
        ));
    }
    if n > 1024 {
        bad.push("the password must have at most 1024 characters".to_string());
    }
    let classes = [
        password.chars().any(char::is_lowercase),
        password.chars().any(char::is_uppercase),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if classes < p.password_min_classes as usize {
        bad.push(format!(
            "the password must mix at least {} of: lower case, upper case, digits, other characters",
            p.password_min_classes
        ));
    }
    if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
        bad.push("the password must not contain the user name".to_string());
    }
    if p.password_deny_common && is_common(password) {
        bad.push("the password is too common".to_string());
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(IamError::Invalid(bad.join("; ")))
    }
}

/// How a failure at the threshold locks an account that had `lockouts` temporary lockouts.
pub fn lock_for(p: &AccountPolicy, lockouts: u32, now: Timestamp) -> Lock {
    if p.permanent_after > 0 && lockouts.saturating_add(1) >= p.permanent_after {
        return Lock::Permanent(now);
    }
    let factor = i64::from(p.lockout_multiplier).saturating_pow(lockouts.min(30));
    let wait = i64::from(p.lockout_base_secs)
        .saturating_mul(factor)
        .min(30 * 86_400);
    Lock::Until(now.plus_secs(wait))
}

/// Length of a throttling window.
const WINDOW_MS: i64 = 60_000;

/// What the dormancy sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DormancyReport {
    /// Log-in names disabled for dormancy.
    pub disabled: Vec<String>,
    /// Log-in names deleted after their dormancy period.
    pub deleted: Vec<String>,
}

/// A tenant's effective policy and where it comes from.
#[derive(Debug, Clone)]
pub struct EffectivePolicy {
    pub policy: AccountPolicy,
    /// Whether the tenant set its own (otherwise the provider's defaults apply).
    pub own: bool,
}

impl IamService {
    /// The policy that applies to `tenant`.
    pub async fn effective_policy(&self, tenant: &Tenant) -> IamResult<EffectivePolicy> {
        Ok(
            match self
                .store
                .get_account_policy(TenantCtx::new(tenant.id))
                .await?
            {
                Some(policy) => EffectivePolicy { policy, own: true },
                None => EffectivePolicy {
                    policy: self.config.account_policy.clone(),
                    own: false,
                },
            },
        )
    }

    /// The policy of `tenant` as `p` may see it.
    pub async fn get_policy(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, EffectivePolicy)> {
        let t = self.resolve(p, tenant, Action::PolicyRead, meta).await?;
        let eff = self.effective_policy(&t).await?;
        Ok((t, eff))
    }

    /// Sets the policy of `tenant`.
    pub async fn set_policy(
        &self,
        p: &Principal,
        tenant: &str,
        policy: &AccountPolicy,
        meta: &RequestMeta,
    ) -> IamResult<Tenant> {
        let t = self.resolve(p, tenant, Action::PolicyWrite, meta).await?;
        validate(policy)?;
        let before = self.effective_policy(&t).await?.policy;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "policy.account.set",
            format!("tenant:{}", t.name),
            meta,
            AuditOutcome::Success,
            json!({"from": before, "to": policy}),
        );
        self.store
            .set_account_policy(TenantCtx::new(t.id), policy, &e)
            .await?;
        Ok(t)
    }

    /// The accounts of `tenant` with their log-in state.
    pub async fn list_accounts(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, Vec<AccountRow>)> {
        let t = self.resolve(p, tenant, Action::UserList, meta).await?;
        let rows = self.store.list_accounts(TenantCtx::new(t.id)).await?;
        Ok((t, rows))
    }

    /// Unlocks an account locked by failed log-ins.
    pub async fn unlock_account(
        &self,
        p: &Principal,
        tenant: &str,
        username: &str,
        meta: &RequestMeta,
    ) -> IamResult<AccountState> {
        let t = self.resolve(p, tenant, Action::AccountUnlock, meta).await?;
        let u = self.user_in(&t, username).await?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "user.unlock",
            format!("user:{}/{}", t.name, u.username),
            meta,
            AuditOutcome::Success,
            json!({"id": u.id}),
        );
        self.store
            .unlock_account(TenantCtx::new(t.id), u.id, &e)
            .await?;
        Ok(self
            .store
            .get_account_state(TenantCtx::new(t.id), u.id)
            .await?)
    }

    pub(crate) async fn user_in(&self, t: &Tenant, username: &str) -> IamResult<User> {
        match self
            .store
            .get_user(TenantCtx::new(t.id), &username.to_ascii_lowercase())
            .await
        {
            Ok(u) => Ok(u),
            Err(StoreError::NotFound) => Err(IamError::NotFound(format!(
                "no such user in tenant {}",
                t.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Counts a log-in attempt against the throttles of the typed name (in the tenant it names,
    /// or the provider's when there is no such tenant) and of the source address (in the
    /// provider's). Refused attempts are recorded.
    pub(crate) async fn throttle(
        &self,
        tenant: Option<&Tenant>,
        login: &str,
        meta: &RequestMeta,
    ) -> IamResult<Vec<(TenantCtx, String, Timestamp)>> {
        let Some(provider) = self.store.provider_tenant().await? else {
            return Ok(vec![]);
        };
        let now = self.env.now();
        let window = Timestamp(now.0 - now.0.rem_euclid(WINDOW_MS));
        let retry = ((window.0 + WINDOW_MS - now.0) / 1000).max(1);
        let home = tenant.unwrap_or(&provider);
        let policy = self.effective_policy(home).await?.policy;
        let name_key = format!("name:{}", login.to_lowercase());
        let name_hits = self
            .store
            .throttle_hit(TenantCtx::new(home.id), &name_key, window)
            .await?;
        let mut counted = vec![(TenantCtx::new(home.id), name_key, window)];
        let mut refused = (name_hits > policy.throttle_per_account).then_some("name");
        if let Some(ip) = &meta.source_ip {
            // The provider's policy (its own, or the configured default) sets this limit.
            let limit = if home.id == provider.id {
                policy.throttle_per_address
            } else {
                self.effective_policy(&provider)
                    .await?
                    .policy
                    .throttle_per_address
            };
            let addr_key = format!("addr:{ip}");
            let addr_hits = self
                .store
                .throttle_hit(TenantCtx::new(provider.id), &addr_key, window)
                .await?;
            counted.push((TenantCtx::new(provider.id), addr_key, window));
            if addr_hits > limit {
                refused = refused.or(Some("address"));
            }
        }
        if let Some(what) = refused {
            let e = event(
                &self.env,
                tenant,
                Actor::Anonymous {
                    claimed: Some(login.to_string()),
                },
                "auth.login",
                format!("login:{login}"),
                meta,
                AuditOutcome::Denied,
                json!({"reason": format!("throttled ({what})")}),
            );
            self.store.append_audit(&e).await?;
            return Err(IamError::Throttled(retry));
        }
        Ok(counted)
    }

    /// Checks a password for a log-in name under the throttles and the lockout policy; every
    /// failure looks the same to the caller and is recorded under `action`. Returns the tenant,
    /// the user and the tenant's policy.
    pub(crate) async fn password_attempt(
        &self,
        login: &str,
        password: &str,
        meta: &RequestMeta,
        action: &str,
    ) -> IamResult<(Tenant, User, AccountPolicy)> {
        let (tenant_name, username) = self.split_login(login);
        let username_norm = username.to_ascii_lowercase();
        let found = match self.store.find_login(tenant_name, &username_norm).await {
            Ok(f) => Some(f),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let attacked = match &found {
            Some((t, _)) => Some(t.clone()),
            None => match self.store.provider_tenant().await? {
                Some(p) => self
                    .store
                    .get_tenant(TenantCtx::new(p.id), tenant_name)
                    .await
                    .ok(),
                None => None,
            },
        };
        let counted = self.throttle(attacked.as_ref(), login, meta).await?;
        let anonymous = Actor::Anonymous {
            claimed: Some(login.to_string()),
        };
        // A name unknown locally may be a directory user of the attacked tenant (provisioned
        // at its first successful bind).
        let mut provisioned = false;
        let found = match (found, &attacked) {
            (None, Some(t)) if t.status == TenantStatus::Active => {
                match self
                    .directory_login(t, None, username, password, meta)
                    .await
                {
                    Ok(crate::ldap::DirectoryLogin::Ok(u)) => {
                        provisioned = true;
                        Some((t.clone(), u))
                    }
                    Ok(crate::ldap::DirectoryLogin::Refused(reason, _))
                        if reason == "the tenant has no directory"
                            || reason == "unknown user or tenant" =>
                    {
                        None
                    }
                    Ok(crate::ldap::DirectoryLogin::Refused(reason, details)) => {
                        let mut d = json!({"reason": reason});
                        if let (Some(m), Some(extra)) = (d.as_object_mut(), details.as_object()) {
                            m.extend(extra.clone());
                        }
                        let e = event(
                            &self.env,
                            Some(t),
                            anonymous.clone(),
                            action,
                            format!("login:{login}"),
                            meta,
                            AuditOutcome::Failure,
                            d,
                        );
                        self.store.append_audit(&e).await?;
                        return Err(IamError::Unauthenticated);
                    }
                    Err(e) => {
                        let ev = event(
                            &self.env,
                            Some(t),
                            anonymous.clone(),
                            action,
                            format!("login:{login}"),
                            meta,
                            AuditOutcome::Failure,
                            json!({"reason": "directory unavailable", "error": e.to_string()}),
                        );
                        self.store.append_audit(&ev).await?;
                        return Err(e);
                    }
                }
            }
            (f, _) => f,
        };
        let Some((t, u)) = found else {
            // Same work as for an existing user, so timing reveals nothing; an attempt on an
            // unknown user of an existing tenant belongs to that tenant's trail (8.1.1(5)).
            let _ = self.verify(&self.dummy_hash, password).await?;
            let e = event(
                &self.env,
                attacked.as_ref(),
                anonymous,
                action,
                format!("login:{login}"),
                meta,
                AuditOutcome::Failure,
                json!({"reason": "unknown user or tenant"}),
            );
            self.store.append_audit(&e).await?;
            return Err(IamError::Unauthenticated);
        };
        let ctx = TenantCtx::new(t.id);
        let policy = self.effective_policy(&t).await?.policy;
        let now = self.env.now();
        let target = format!("user:{}/{}", t.name, u.username);
        let fail = |reason: &str, details: serde_json::Value| {
            let mut d = json!({"reason": reason});
            if let (Some(m), Some(extra)) = (d.as_object_mut(), details.as_object()) {
                m.extend(extra.clone());
            }
            event(
                &self.env,
                Some(&t),
                anonymous.clone(),
                action,
                target.clone(),
                meta,
                AuditOutcome::Failure,
                d,
            )
        };
        let attempt = self
            .store
            .reserve_attempt(ctx, u.id, Factor::Password, policy.lockout_threshold, now)
            .await?;
        let Attempt::Allowed { failures, lockouts } = attempt else {
            let _ = self.verify(&self.dummy_hash, password).await?;
            self.store
                .append_audit(&fail("account locked", json!({})))
                .await?;
            return Err(IamError::Unauthenticated);
        };
        let (u, right) = if provisioned {
            // The directory has just accepted this password.
            (u, true)
        } else if crate::ldap::is_directory_account(&u) {
            if u.status != UserStatus::Active || t.status != TenantStatus::Active {
                // Not worth asking the directory: refused below all the same.
                (u, true)
            } else {
                match self
                    .directory_login(&t, Some(&u), &u.username, password, meta)
                    .await
                {
                    Ok(crate::ldap::DirectoryLogin::Ok(u)) => (u, true),
                    Ok(crate::ldap::DirectoryLogin::Refused(reason, details)) => {
                        if reason == "wrong password (directory)" {
                            (u, false)
                        } else {
                            self.store.append_audit(&fail(reason, details)).await?;
                            return Err(IamError::Unauthenticated);
                        }
                    }
                    Err(e) => {
                        self.store
                            .append_audit(&fail(
                                "directory unavailable",
                                json!({"error": e.to_string()}),
                            ))
                            .await?;
                        return Err(e);
                    }
                }
            }
        } else {
            let right = self.verify(&u.password_hash, password).await?;
            (u, right)
        };
        if !right {
            if failures >= policy.lockout_threshold {
                let lock = lock_for(&policy, lockouts, now);
                let details = match lock {
                    Lock::Until(until) => json!({"locked_until": until, "lockouts": lockouts + 1}),
                    Lock::Permanent(_) => {
                        json!({"locked": "permanently", "lockouts": lockouts + 1})
                    }
                };
                self.store
                    .lock_account(
                        ctx,
                        u.id,
                        Factor::Password,
                        lock,
                        &fail("wrong password; account locked", details),
                    )
                    .await?;
            } else {
                self.store
                    .append_audit(&fail("wrong password", json!({"failures": failures})))
                    .await?;
            }
            return Err(IamError::Unauthenticated);
        }
        self.store
            .clear_failures(ctx, u.id, Factor::Password, false)
            .await?;
        // A right password gives its throttling hits back: only failures use up the allowance
        // (attempts in flight still count, so concurrent guesses cannot exceed it).
        for (c, key, window) in &counted {
            self.store.throttle_release(*c, key, *window).await?;
        }
        let reason = if u.status != UserStatus::Active {
            Some("user disabled")
        } else if t.status != TenantStatus::Active {
            Some("tenant suspended")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.store.append_audit(&fail(reason, json!({}))).await?;
            return Err(IamError::Unauthenticated);
        }
        Ok((t, u, policy))
    }

    /// Whether the password of `u` is older than the policy allows at `now`.
    pub(crate) async fn password_expired(
        &self,
        t: &Tenant,
        u: &User,
        policy: &AccountPolicy,
    ) -> IamResult<bool> {
        if policy.password_max_age_days == 0 || crate::ldap::is_directory_account(u) {
            return Ok(false);
        }
        let state = self
            .store
            .get_account_state(TenantCtx::new(t.id), u.id)
            .await?;
        let changed = state.password_changed_at.unwrap_or(u.created_at);
        let max = i64::from(policy.password_max_age_days).saturating_mul(86_400_000);
        Ok(self.env.now().0.saturating_sub(changed.0) > max)
    }

    /// Checks a new password of `u` against the policy, including the history.
    pub(crate) async fn check_new_password(
        &self,
        t: &Tenant,
        u: &User,
        policy: &AccountPolicy,
        new_password: &str,
    ) -> IamResult<()> {
        check_password(policy, &u.username, new_password)?;
        if policy.password_history > 0 {
            let mut old = vec![u.password_hash.clone()];
            old.extend(
                self.store
                    .password_history(TenantCtx::new(t.id), u.id, policy.password_history)
                    .await?,
            );
            old.truncate(policy.password_history as usize);
            for h in &old {
                if self.verify(h, new_password).await? {
                    return Err(IamError::Invalid(format!(
                        "the password must differ from the last {} passwords",
                        policy.password_history
                    )));
                }
            }
        }
        Ok(())
    }

    /// Self-service password change with the current password (works also when the password
    /// has expired, so no session is needed). Goes through the same throttles and lockout as a
    /// log-in.
    pub async fn change_password(
        &self,
        login: &str,
        current: &str,
        new_password: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let (t, u, policy) = self
            .password_attempt(login, current, meta, "user.password.change")
            .await?;
        if crate::ldap::is_directory_account(&u) {
            return Err(IamError::Invalid(
                "this account's password is kept by its tenant's directory: change it there".into(),
            ));
        }
        self.check_new_password(&t, &u, &policy, new_password)
            .await?;
        let hash = self.hash(new_password).await?;
        let e = event(
            &self.env,
            Some(&t),
            parapet_store::user_actor(&u),
            "user.password.change",
            format!("user:{}/{}", t.name, u.username),
            meta,
            AuditOutcome::Success,
            json!({"id": u.id}),
        );
        self.store
            .set_password(
                TenantCtx::new(t.id),
                u.id,
                &hash,
                policy.password_history,
                e.time,
                &e,
            )
            .await?;
        Ok(())
    }

    /// Disables accounts without log-in for longer than their tenant's `dormant_days`, and
    /// deletes those disabled for dormancy longer than `dormant_delete_days`, in every tenant.
    /// The provider's last active security administrator is never disabled. Run by the server
    /// periodically, and by provider security administrators on demand.
    pub async fn sweep_dormant(&self) -> IamResult<DormancyReport> {
        let mut report = DormancyReport::default();
        let Some(provider) = self.store.provider_tenant().await? else {
            return Ok(report);
        };
        let now = self.env.now();
        let meta = RequestMeta::default();
        let mut after = None;
        loop {
            let tenants = self
                .store
                .list_tenants(
                    TenantCtx::new(provider.id),
                    &parapet_store::Page {
                        after: after.clone(),
                        limit: 500,
                    },
                )
                .await?;
            let Some(last) = tenants.last() else { break };
            after = Some(last.id.to_string());
            for t in &tenants {
                self.sweep_tenant(t, now, &meta, &mut report).await?;
            }
        }
        Ok(report)
    }

    async fn sweep_tenant(
        &self,
        t: &Tenant,
        now: Timestamp,
        meta: &RequestMeta,
        report: &mut DormancyReport,
    ) -> IamResult<()> {
        let ctx = TenantCtx::new(t.id);
        let policy = self.effective_policy(t).await?.policy;
        self.store
            .prune_throttle(ctx, Timestamp(now.0 - 2 * WINDOW_MS))
            .await?;
        let day = 86_400_000_i64;
        if policy.dormant_days > 0 {
            let cutoff = Timestamp(now.0 - i64::from(policy.dormant_days) * day);
            let dormant = self.store.dormant_users(ctx, cutoff).await?;
            for u in dormant {
                if t.kind == TenantKind::Provider
                    && u.role == Role::SecurityAdmin
                    && self.active_security_admins(t).await? <= 1
                {
                    continue;
                }
                let e = event(
                    &self.env,
                    Some(t),
                    Actor::System,
                    "user.disable",
                    format!("user:{}/{}", t.name, u.username),
                    meta,
                    AuditOutcome::Success,
                    json!({"id": u.id, "reason": "dormant",
                           "last_login_at": u.last_login_at, "dormant_days": policy.dormant_days}),
                );
                match self.store.disable_dormant(ctx, u.id, now, &e).await {
                    Ok(()) => {
                        self.forget_cached(None, Some(u.id));
                        report.disabled.push(crate::display_login(t, &u));
                    }
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if policy.dormant_delete_days > 0 {
            let cutoff = Timestamp(now.0 - i64::from(policy.dormant_delete_days) * day);
            for u in self.store.expired_dormant(ctx, cutoff).await? {
                let e = event(
                    &self.env,
                    Some(t),
                    Actor::System,
                    "user.delete",
                    format!("user:{}/{}", t.name, u.username),
                    meta,
                    AuditOutcome::Success,
                    json!({"id": u.id, "reason": "dormant",
                           "dormant_delete_days": policy.dormant_delete_days}),
                );
                match self.store.delete_user(ctx, u.id, &e).await {
                    Ok(()) => report.deleted.push(crate::display_login(t, &u)),
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    async fn active_security_admins(&self, t: &Tenant) -> IamResult<usize> {
        let rows = self.store.list_accounts(TenantCtx::new(t.id)).await?;
        Ok(rows
            .iter()
            .filter(|r| r.user.role == Role::SecurityAdmin && r.user.status == UserStatus::Active)
            .count())
    }

    /// [`sweep_dormant`](Self::sweep_dormant) on demand (provider security administrators).
    pub async fn sweep_dormant_as(
        &self,
        p: &Principal,
        meta: &RequestMeta,
    ) -> IamResult<DormancyReport> {
        let own = p.tenant.clone();
        self.check(p, Action::DormancySweep, &own, meta).await?;
        self.sweep_dormant().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_are_enforced() {
        let d = default_policy();
        assert!(validate(&d).is_ok());
        let bad = AccountPolicy {
            lockout_threshold: 0,
            password_min_length: 4,
            ..d
        };
        let Err(IamError::Invalid(m)) = validate(&bad) else {
            panic!("accepted")
        };
        assert!(m.contains("lockout_threshold") && m.contains("password_min_length"));
    }

    #[test]
    fn password_rules() {
        let p = AccountPolicy {
            password_min_classes: 3,
            ..default_policy()
        };
        assert!(check_password(&p, "alice", "Correct-horse-battery").is_ok());
        let Err(IamError::Invalid(m)) = check_password(&p, "alice", "short") else {
            panic!()
        };
        assert!(m.contains("at least 12"), "{m}");
        let Err(IamError::Invalid(m)) = check_password(&p, "alice", "xxAlice-is-here-1") else {
            panic!()
        };
        assert!(m.contains("user name"), "{m}");
        let Err(IamError::Invalid(m)) = check_password(&p, "bob", "alllowercaseletters") else {
            panic!()
        };
        assert!(m.contains("at least 3"), "{m}");
        assert!(is_common("Password123!"));
        assert!(is_common("qwertyuiop"));
        assert!(!is_common("Correct-horse-battery"));
        let Err(IamError::Invalid(m)) = check_password(&p, "bob", "Qwertyuiop12345!") else {
            panic!()
        };
        assert!(m.contains("too common"), "{m}");
    }

    #[test]
    fn lockout_waits_grow_then_become_permanent() {
        let p = AccountPolicy {
            lockout_base_secs: 60,
            lockout_multiplier: 3,
            permanent_after: 3,
            ..default_policy()
        };
        let now = Timestamp(1_000_000);
        assert_eq!(lock_for(&p, 0, now), Lock::Until(now.plus_secs(60)));
        assert_eq!(lock_for(&p, 1, now), Lock::Until(now.plus_secs(180)));
        assert_eq!(lock_for(&p, 2, now), Lock::Permanent(now));
        let never = AccountPolicy {
            permanent_after: 0,
            ..p
        };
        assert_eq!(
            lock_for(&never, 40, now),
            Lock::Until(now.plus_secs(30 * 86_400))
        );
    }
}
