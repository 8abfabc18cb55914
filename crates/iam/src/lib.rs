//! Identity and access management (X.1642 8.1): tenants, users and roles, passwords, log-in
//! sessions, API tokens, and the one place where authorization is decided ([`authz`]).
//!
//! The service knows nothing of HTTP: callers pass a [`RequestMeta`] with what they know of the
//! request, and every state change is handed to storage together with its audit record.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use parapet_store::{
    AuditEvent, AuditFilter, AuditOutcome, AuditRecord, Credential, CredentialKind, Page, Store,
    StoreError, Tenant, TenantStatus, User, UserStatus, user_actor,
};
use parapet_types::{
    Actor, CredentialId, Env, Role, TenantCtx, TenantKind, TenantName, Timestamp, UserId, Username,
};
use serde_json::json;

pub mod access;
pub mod approval;
pub mod authz;
pub mod group;
pub mod ldap;
pub mod mfa;
pub mod oidc;
pub mod policy;
pub mod report;
pub mod sealer;
pub mod secret;
mod sessions;
pub mod subaccount;
pub mod webauthn;

pub use authz::{Action, Denied, KeyOp, authorize, authorize_key};
pub use secret::PasswordCost;

/// What can go wrong, in terms a caller can map to a response.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// No or bad credentials. Deliberately says nothing more.
    #[error("authentication failed")]
    Unauthenticated,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// Too many log-in attempts in a short time; retry after this many seconds.
    #[error("too many log-in attempts; retry in {0} s")]
    Throttled(i64),
    /// The password was right and the account has a second factor: send a code.
    #[error("a second factor is required")]
    MfaRequired,
    /// The password was right but is older than the policy allows: it must be changed.
    #[error("the password has expired and must be changed")]
    PasswordExpired,
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A tenant's LDAP directory cannot be used (down, refusing the service account, …): the
    /// log-in is refused, never let through.
    #[error("directory unavailable: {0}")]
    DirectoryUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for IamError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => IamError::NotFound("not found".into()),
            StoreError::Conflict(m) => IamError::Conflict(m),
            StoreError::Unavailable(m) => IamError::Unavailable(m),
            StoreError::Other(m) => IamError::Internal(m),
        }
    }
}

impl From<parapet_types::NameError> for IamError {
    fn from(e: parapet_types::NameError) -> Self {
        IamError::Invalid(e.to_string())
    }
}

pub type IamResult<T> = Result<T, IamError>;

/// What the caller knows of the request, for the audit record.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Tenant,
    pub user: User,
    pub credential: CredentialId,
    pub kind: CredentialKind,
    pub scopes: Vec<String>,
    /// A just-in-time grant in force: `user.role` is then the lent role (see [`access`]).
    pub elevation: Option<access::Elevation>,
    /// Roles held through groups, besides `user.role` (see [`group`]).
    pub group_roles: Vec<Role>,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        user_actor(&self.user)
    }
    /// Sessions hold every scope; API tokens only those they were given.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.kind == CredentialKind::Session || self.scopes.iter().any(|s| s == scope)
    }
    /// The name a person logs in with: `admin` for provider staff, `alice@acme` for tenants.
    pub fn login_name(&self) -> String {
        login_name(&self.tenant, &self.user.username)
    }
}

fn login_name(tenant: &Tenant, username: &str) -> String {
    if tenant.kind == TenantKind::Provider {
        username.to_string()
    } else {
        format!("{username}@{}", tenant.name)
    }
}

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct IamConfig {
    pub password_cost: PasswordCost,
    /// Name of the provider tenant created at first start.
    pub provider_name: String,
    /// Lifetime of a log-in session, in seconds.
    pub session_ttl_secs: i64,
    /// Longest lifetime of an API token, in seconds.
    pub max_token_ttl_secs: i64,
    /// Longest time a log-in session may go unused before it ends, in seconds (checked to the
    /// minute).
    pub session_idle_secs: i64,
    /// How long an authenticated credential may be served from memory (revocations take effect
    /// within this time on every replica), in milliseconds.
    pub auth_cache_ms: i64,
    /// The provider's default account policy (tenants without their own use it; the per-address
    /// throttle comes from the provider tenant's policy, this one unless it set its own).
    pub account_policy: parapet_store::AccountPolicy,
    /// The key that seals second-factor secrets at rest (AES-256-GCM). Every replica needs the
    /// same; `None` makes a random one, good for one process only (tests).
    pub secrets_key: Option<[u8; 32]>,
    /// Holders of provider roles must log in with a second factor (step-up, X.1642 7.2.2.4(4));
    /// until they enrol one their sessions may only enrol it. On by default.
    pub provider_mfa_required: bool,
}

impl Default for IamConfig {
    fn default() -> Self {
        IamConfig {
            password_cost: PasswordCost::default(),
            provider_name: "provider".into(),
            session_ttl_secs: 12 * 3600,
            session_idle_secs: 30 * 60,
            max_token_ttl_secs: 365 * 24 * 3600,
            auth_cache_ms: 1000,
            account_policy: policy::default_policy(),
            secrets_key: None,
            provider_mfa_required: true,
        }
    }
}

/// A new log-in session or API token. `secret` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedCredential {
    pub id: CredentialId,
    pub secret: String,
    pub expires_at: Timestamp,
    pub principal: Principal,
}

/// Where a log-in stands after its first step.
#[derive(Debug, Clone)]
pub enum LoginStep {
    /// Every factor passed: the session.
    Done(Box<IssuedCredential>),
    /// The password passed; the account's security key must now sign this challenge.
    SecurityKey(webauthn::PendingKey),
}

const AUTH_CACHE_MAX: usize = 65_536;

/// The identity and access service.
pub struct IamService {
    store: Arc<dyn Store>,
    env: Env,
    config: IamConfig,
    /// A hash verified when the user does not exist, so that timing does not reveal which names
    /// exist.
    dummy_hash: String,
    auth_cache: RwLock<HashMap<[u8; 32], (Principal, Timestamp)>>,
    /// Tenants resolved by (viewer, id or name), kept as long as authentications: ids and names
    /// never change, and a status change clears the entry on this replica.
    tenant_cache: RwLock<HashMap<(parapet_types::TenantId, String), (Tenant, Timestamp)>>,
    /// Seals platform secrets: under the key service once it is in use, else with
    /// [`IamConfig::secrets_key`] (`sealer.rs`).
    secrets: sealer::SecretBox,
    /// Each tenant's OIDC signing keys, kept as long as authentications.
    oidc_keys: RwLock<oidc::KeyCache>,
}

impl std::fmt::Debug for IamService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamService").finish_non_exhaustive()
    }
}

/// Builds the audit record of an action; the arguments are the record's fields.
#[allow(clippy::too_many_arguments)]
pub(crate) fn event(
    env: &Env,
    tenant: Option<&Tenant>,
    actor: Actor,
    action: &str,
    target: String,
    meta: &RequestMeta,
    outcome: AuditOutcome,
    details: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        time: env.now(),
        tenant: tenant.map(|t| t.id),
        actor,
        action: action.to_string(),
        target,
        source_ip: meta.source_ip.clone(),
        user_agent: meta.user_agent.clone(),
        outcome,
        details,
    }
}

fn page(after: Option<String>, limit: u32) -> Page {
    Page {
        after,
        limit: limit.clamp(1, 1000),
    }
}

/// The outcome of the first start.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub provider: Tenant,
    /// The administrator's password when Parapet generated it (shown once).
    pub generated_password: Option<String>,
    /// Whether this call created the provider (false: it existed already).
    pub created: bool,
}

impl IamService {
    pub fn new(store: Arc<dyn Store>, env: Env, config: IamConfig) -> IamResult<Self> {
        let random = secret::generate_password(&env)?;
        let dummy_hash = secret::hash_password(&env, config.password_cost, &random)?;
        let secrets_key = match config.secrets_key {
            Some(k) => k,
            None => env
                .random()
                .map_err(|e| IamError::Internal(e.to_string()))?,
        };
        Ok(IamService {
            secrets: sealer::SecretBox::new(secrets_key, env.clone()),
            store,
            env,
            config,
            dummy_hash,
            auth_cache: RwLock::new(HashMap::new()),
            tenant_cache: RwLock::new(HashMap::new()),
            oidc_keys: RwLock::new(HashMap::new()),
        })
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn hash(&self, password: &str) -> IamResult<String> {
        let env = self.env.clone();
        let cost = self.config.password_cost;
        let pw = password.to_string();
        tokio::task::spawn_blocking(move || secret::hash_password(&env, cost, &pw))
            .await
            .map_err(|e| IamError::Internal(e.to_string()))?
    }

    async fn verify(&self, phc: &str, password: &str) -> IamResult<bool> {
        let phc = phc.to_string();
        let pw = password.to_string();
        tokio::task::spawn_blocking(move || secret::verify_password(&phc, &pw))
            .await
            .map_err(|e| IamError::Internal(e.to_string()))
    }

    /// First start: creates the provider tenant and the administrator `admin` unless a provider
    /// exists. The password is `password` or, when `None`, generated and returned once.
    pub async fn bootstrap(&self, password: Option<String>) -> IamResult<Bootstrap> {
        if let Some(p) = self.store.provider_tenant().await? {
            return Ok(Bootstrap {
                provider: p,
                generated_password: None,
                created: false,
            });
        }
        let name = TenantName::parse(&self.config.provider_name)?;
        let (password, generated) = match password {
            Some(p) => {
                secret::check_password_policy("admin", &p).map_err(|e| {
                    IamError::Invalid(format!("PARAPET_BOOTSTRAP_PASSWORD is not acceptable: {e}"))
                })?;
                (p, false)
            }
            None => (secret::generate_password(&self.env)?, true),
        };
        let now = self.env.now();
        let provider = Tenant {
            id: parapet_types::TenantId(self.new_id()?),
            name: name.to_string(),
            kind: TenantKind::Provider,
            status: TenantStatus::Active,
            created_at: now,
        };
        let hash = self.hash(&password).await?;
        let admin = self.user_record(&provider, "admin", Role::SecurityAdmin, hash)?;
        let audit = event(
            &self.env,
            Some(&provider),
            Actor::System,
            "system.bootstrap",
            format!("tenant:{}", provider.name),
            &RequestMeta::default(),
            AuditOutcome::Success,
            json!({"admin": "admin"}),
        );
        let created = self
            .store
            .bootstrap_provider(&provider, &admin, &audit)
            .await?;
        let provider =
            self.store.provider_tenant().await?.ok_or_else(|| {
                IamError::Internal("provider tenant missing after bootstrap".into())
            })?;
        Ok(Bootstrap {
            provider,
            generated_password: (created && generated).then_some(password),
            created,
        })
    }

    fn new_id(&self) -> IamResult<uuid::Uuid> {
        self.env
            .new_id()
            .map_err(|e| IamError::Internal(e.to_string()))
    }

    /// A new active customer tenant record.
    fn customer_tenant(&self, name: &str) -> IamResult<Tenant> {
        Ok(Tenant {
            id: parapet_types::TenantId(self.new_id()?),
            name: name.to_string(),
            kind: TenantKind::Customer,
            status: TenantStatus::Active,
            created_at: self.env.now(),
        })
    }

    /// A new active user record of `tenant` with an already computed password hash.
    fn user_record(
        &self,
        tenant: &Tenant,
        username: &str,
        role: Role,
        password_hash: String,
    ) -> IamResult<User> {
        Ok(User {
            id: UserId(self.new_id()?),
            tenant: tenant.id,
            username: username.to_string(),
            role,
            status: UserStatus::Active,
            password_hash,
            created_at: self.env.now(),
            last_login_at: None,
        })
    }

    /// Splits a log-in name: `alice@acme` → (`acme`, `alice`); a bare name belongs to the
    /// provider tenant.
    fn split_login<'a>(&'a self, login: &'a str) -> (&'a str, &'a str) {
        match login.rsplit_once('@') {
            Some((user, tenant)) => (tenant, user),
            None => (self.config.provider_name.as_str(), login),
        }
    }

    /// Password log-in. Every attempt, successful or not, is recorded; failures all look alike to
    /// the caller.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> IamResult<IssuedCredential> {
        self.login_with_otp(login, password, None, meta).await
    }

    /// Log-in with a password and, for an account with a second factor, a TOTP or recovery
    /// code (`MfaRequired` without one, after a correct password). An account of a tenant whose
    /// policy requires a second factor but that has none gets a session that may only enrol one.
    /// An account whose only second factor is a security key must log in through
    /// [`IamService::login_step`] with a relying party (`MfaRequired` here).
    pub async fn login_with_otp(
        &self,
        login: &str,
        password: &str,
        otp: Option<&str>,
        meta: &RequestMeta,
    ) -> IamResult<IssuedCredential> {
        match self.login_step(login, password, otp, None, meta).await? {
            LoginStep::Done(issued) => Ok(*issued),
            LoginStep::SecurityKey(_) => Err(IamError::MfaRequired),
        }
    }

    /// The first step of a log-in: the password and, if given, a TOTP or recovery code. When
    /// the account has a security key, no code was given and the caller can run WebAuthn
    /// (`rp`), the answer is a challenge for the key ([`IamService::webauthn_login_finish`]
    /// ends the log-in) instead of a session.
    pub async fn login_step(
        &self,
        login: &str,
        password: &str,
        otp: Option<&str>,
        rp: Option<&webauthn::RelyingParty>,
        meta: &RequestMeta,
    ) -> IamResult<LoginStep> {
        let (tenant, user, policy) = self
            .password_attempt(login, password, meta, "auth.login")
            .await?;
        if self.password_expired(&tenant, &user, &policy).await? {
            let e = event(
                &self.env,
                Some(&tenant),
                user_actor(&user),
                "auth.login",
                format!("user:{}/{}", tenant.name, user.username),
                meta,
                AuditOutcome::Failure,
                json!({"reason": "password expired"}),
            );
            self.store.append_audit(&e).await?;
            return Err(IamError::PasswordExpired);
        }
        let mut scopes = vec![];
        let totp = self.has_totp(&tenant, &user).await?;
        let keys = self.has_security_key(&tenant, &user).await?;
        let code = otp.filter(|c| !c.trim().is_empty());
        let method = if totp && code.is_some() {
            match self
                .second_factor(&tenant, &user, &policy, code.unwrap_or_default(), meta)
                .await?
            {
                "totp" => "password+totp",
                _ => "password+recovery-code",
            }
        } else if keys && let Some(rp) = rp {
            let pending = self.webauthn_login_begin(&tenant, &user, rp).await?;
            return Ok(LoginStep::SecurityKey(pending));
        } else if totp || keys {
            return Err(IamError::MfaRequired);
        } else {
            if self.mfa_required_for(&policy, &user) {
                scopes.push(mfa::ENROL_ONLY_SCOPE.to_string());
            }
            // The last factor passed: temporary lockouts start counting again.
            self.store
                .clear_failures(
                    TenantCtx::new(tenant.id),
                    user.id,
                    parapet_store::Factor::Password,
                    true,
                )
                .await?;
            "password"
        };
        let issued = self
            .open_session(tenant, user, scopes, method, meta)
            .await?;
        Ok(LoginStep::Done(Box::new(issued)))
    }

    /// Opens a console/API session for a user who passed every factor `method` names.
    pub(crate) async fn open_session(
        &self,
        tenant: Tenant,
        user: User,
        scopes: Vec<String>,
        method: &str,
        meta: &RequestMeta,
    ) -> IamResult<IssuedCredential> {
        let group_roles = self.group_roles(&tenant, &user).await?;
        let secret = secret::new_secret(&self.env, secret::SESSION_PREFIX)?;
        let now = self.env.now();
        let cred = Credential {
            id: CredentialId(self.new_id()?),
            tenant: tenant.id,
            user: user.id,
            kind: CredentialKind::Session,
            name: meta.user_agent.clone().unwrap_or_else(|| "session".into()),
            secret_hash: secret::secret_hash(&secret).to_vec(),
            scopes: scopes.clone(),
            created_at: now,
            expires_at: now.plus_secs(self.config.session_ttl_secs),
            revoked_at: None,
        };
        let e = event(
            &self.env,
            Some(&tenant),
            user_actor(&user),
            "auth.login",
            format!("user:{}/{}", tenant.name, user.username),
            meta,
            AuditOutcome::Success,
            json!({"session": cred.id, "method": method, "enrol_only": !scopes.is_empty()}),
        );
        self.store
            .create_session(TenantCtx::new(tenant.id), &cred, &e)
            .await?;
        // Where the session was opened, for the session listings (not for authentication).
        self.store
            .touch_credential(
                TenantCtx::new(tenant.id),
                cred.id,
                cred.created_at,
                meta.source_ip.as_deref(),
                meta.user_agent.as_deref(),
            )
            .await?;
        Ok(IssuedCredential {
            id: cred.id,
            secret,
            expires_at: cred.expires_at,
            principal: Principal {
                tenant,
                user,
                credential: cred.id,
                kind: CredentialKind::Session,
                scopes,
                elevation: None,
                group_roles,
            },
        })
    }

    /// Resolves a bearer secret (session or API token) to its principal. Results are cached for
    /// at most `auth_cache_ms`.
    pub async fn authenticate(&self, secret: &str) -> IamResult<Principal> {
        if !(secret.starts_with(secret::SESSION_PREFIX)
            || secret.starts_with(secret::API_TOKEN_PREFIX))
            || secret.len() > 128
        {
            return Err(IamError::Unauthenticated);
        }
        let hash = secret::secret_hash(secret);
        let now = self.env.now();
        if let Ok(cache) = self.auth_cache.read()
            && let Some((p, at)) = cache.get(&hash)
            && now.0 - at.0 < self.config.auth_cache_ms
            && now.0 >= at.0
            && p.elevation.as_ref().is_none_or(|e| now.0 < e.expires_at.0)
        {
            return Ok(p.clone());
        }
        let idle_since = Timestamp(
            now.0
                .saturating_sub(self.config.session_idle_secs.saturating_mul(1000)),
        );
        let found = self
            .store
            .authenticate(&hash, now, idle_since)
            .await?
            .ok_or(IamError::Unauthenticated)?;
        if found.user.status != UserStatus::Active || found.tenant.status != TenantStatus::Active {
            return Err(IamError::Unauthenticated);
        }
        let group_roles = self.group_roles(&found.tenant, &found.user).await?;
        let mut p = Principal {
            credential: found.credential.id,
            kind: found.credential.kind,
            scopes: found.credential.scopes,
            tenant: found.tenant,
            user: found.user,
            elevation: None,
            group_roles,
        };
        self.apply_elevation(&mut p, now).await?;
        if let Ok(mut cache) = self.auth_cache.write() {
            if cache.len() >= AUTH_CACHE_MAX {
                cache.clear();
            }
            cache.insert(hash, (p.clone(), now));
        }
        Ok(p)
    }

    /// Whether `user` must log in with a second factor: the tenant's policy, or (by default) a
    /// provider role.
    pub(crate) fn mfa_required_for(
        &self,
        policy: &parapet_store::AccountPolicy,
        user: &User,
    ) -> bool {
        policy.mfa_required || (self.config.provider_mfa_required && user.role.is_provider_role())
    }

    pub(crate) fn forget_cached(&self, credential: Option<CredentialId>, user: Option<UserId>) {
        if let Ok(mut cache) = self.auth_cache.write() {
            cache.retain(|_, (p, _)| Some(p.credential) != credential && Some(p.user.id) != user);
        }
    }

    /// Ends the caller's session (or revokes the API token it used).
    pub async fn logout(&self, p: &Principal, meta: &RequestMeta) -> IamResult<()> {
        let e = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            "auth.logout",
            format!("user:{}/{}", p.tenant.name, p.user.username),
            meta,
            AuditOutcome::Success,
            json!({"credential": p.credential}),
        );
        self.store
            .revoke_credential(TenantCtx::new(p.tenant.id), p.credential, e.time, &e)
            .await?;
        self.forget_cached(Some(p.credential), None);
        Ok(())
    }

    /// Records a refused request in the audit trail.
    pub async fn record_denied(
        &self,
        p: &Principal,
        action: &str,
        target: &str,
        reason: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let e = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            action,
            target.to_string(),
            meta,
            AuditOutcome::Denied,
            json!({"reason": reason}),
        );
        self.store.append_audit(&e).await?;
        Ok(())
    }

    /// Resolves the tenant `id_or_name` as seen by `p`, and checks `action` on it.
    pub async fn resolve(
        &self,
        p: &Principal,
        id_or_name: &str,
        action: Action,
        meta: &RequestMeta,
    ) -> IamResult<Tenant> {
        let t = self.lookup(p, id_or_name).await?;
        self.check(p, action, &t, meta).await?;
        Ok(t)
    }

    /// The tenant `id_or_name` if `p` may see it at all (its own, or any for provider staff).
    async fn lookup(&self, p: &Principal, id_or_name: &str) -> IamResult<Tenant> {
        let now = self.env.now();
        let key = (p.tenant.id, id_or_name.to_string());
        if let Ok(cache) = self.tenant_cache.read()
            && let Some((t, at)) = cache.get(&key)
            && (0..self.config.auth_cache_ms).contains(&(now.0 - at.0))
        {
            return Ok(t.clone());
        }
        match self
            .store
            .get_tenant(TenantCtx::new(p.tenant.id), id_or_name)
            .await
        {
            Ok(t) => {
                if let Ok(mut cache) = self.tenant_cache.write() {
                    if cache.len() >= AUTH_CACHE_MAX {
                        cache.clear();
                    }
                    cache.insert(key, (t.clone(), now));
                }
                Ok(t)
            }
            Err(StoreError::NotFound) => Err(IamError::NotFound("no such tenant".into())),
            Err(e) => Err(e.into()),
        }
    }

    async fn check(
        &self,
        p: &Principal,
        action: Action,
        target: &Tenant,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        if let Err(Denied(reason)) = authorize(p, action, target) {
            self.record_denied(
                p,
                &format!("authz.{action:?}").to_ascii_lowercase(),
                &format!("tenant:{}", target.name),
                &reason,
                meta,
            )
            .await?;
            return Err(IamError::Forbidden(reason));
        }
        Ok(())
    }

    pub async fn list_tenants(
        &self,
        p: &Principal,
        after: Option<String>,
        limit: u32,
    ) -> IamResult<Vec<Tenant>> {
        let own = p.tenant.clone();
        authorize(p, Action::TenantRead, &own).map_err(|Denied(r)| IamError::Forbidden(r))?;
        let list = self
            .store
            .list_tenants(TenantCtx::new(p.tenant.id), &page(after, limit))
            .await?;
        Ok(list)
    }

    pub async fn create_tenant(
        &self,
        p: &Principal,
        name: &str,
        meta: &RequestMeta,
    ) -> IamResult<Tenant> {
        let name = TenantName::parse(name)?;
        let provider = p.tenant.clone();
        self.check(p, Action::TenantCreate, &provider, meta).await?;
        let t = self.customer_tenant(name.as_str())?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "tenant.create",
            format!("tenant:{}", t.name),
            meta,
            AuditOutcome::Success,
            json!({"id": t.id}),
        );
        self.store
            .create_tenant(TenantCtx::new(p.tenant.id), &t, &e)
            .await?;
        Ok(t)
    }

    pub async fn set_tenant_status(
        &self,
        p: &Principal,
        tenant: &str,
        status: TenantStatus,
        meta: &RequestMeta,
    ) -> IamResult<Tenant> {
        let mut t = self
            .resolve(p, tenant, Action::TenantSetStatus, meta)
            .await?;
        let action = match status {
            TenantStatus::Suspended => "tenant.suspend",
            TenantStatus::Active => "tenant.activate",
        };
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            action,
            format!("tenant:{}", t.name),
            meta,
            AuditOutcome::Success,
            json!({"from": t.status, "to": status}),
        );
        self.store
            .set_tenant_status(TenantCtx::new(p.tenant.id), t.id, status, &e)
            .await?;
        if let Ok(mut cache) = self.auth_cache.write() {
            cache.retain(|_, (q, _)| q.tenant.id != t.id);
        }
        if let Ok(mut cache) = self.tenant_cache.write() {
            cache.retain(|_, (q, _)| q.id != t.id);
        }
        t.status = status;
        Ok(t)
    }

    pub async fn list_users(
        &self,
        p: &Principal,
        tenant: &str,
        after: Option<String>,
        limit: u32,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, Vec<User>)> {
        let t = self.resolve(p, tenant, Action::UserList, meta).await?;
        let users = self
            .store
            .list_users(TenantCtx::new(t.id), &page(after, limit))
            .await?;
        Ok((t, users))
    }

    pub async fn create_user(
        &self,
        p: &Principal,
        tenant: &str,
        username: &str,
        password: &str,
        role: Role,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, User)> {
        let username = Username::parse(username)?;
        let t = self.lookup(p, tenant).await?;
        if !role.fits(t.kind) {
            return Err(IamError::Invalid(format!(
                "role {role} cannot be held in a {} tenant",
                t.kind.as_str()
            )));
        }
        self.check(p, Action::UserCreate(role), &t, meta).await?;
        let policy = self.effective_policy(&t).await?.policy;
        if policy.approval_required {
            return Err(IamError::Forbidden(format!(
                "tenant {}'s policy requires an approval request for new users \
                 ('parapet approval request-user')",
                t.name
            )));
        }
        policy::check_password(&policy, username.as_str(), password)?;
        let hash = self.hash(password).await?;
        let user = self.user_record(&t, username.as_str(), role, hash)?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "user.create",
            format!("user:{}/{}", t.name, user.username),
            meta,
            AuditOutcome::Success,
            json!({"role": role, "id": user.id}),
        );
        self.store
            .create_user(TenantCtx::new(t.id), &user, &e)
            .await?;
        Ok((t, user))
    }

    pub async fn set_user_status(
        &self,
        p: &Principal,
        tenant: &str,
        username: &str,
        status: UserStatus,
        meta: &RequestMeta,
    ) -> IamResult<User> {
        let t = self.resolve(p, tenant, Action::UserDisable, meta).await?;
        let mut u = match self
            .store
            .get_user(TenantCtx::new(t.id), &username.to_ascii_lowercase())
            .await
        {
            Ok(u) => u,
            Err(StoreError::NotFound) => {
                return Err(IamError::NotFound(format!(
                    "no such user in tenant {}",
                    t.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if u.id == p.user.id && status == UserStatus::Disabled {
            return Err(IamError::Invalid("you cannot disable yourself".into()));
        }
        let action = match status {
            UserStatus::Disabled => "user.disable",
            UserStatus::Active => "user.enable",
        };
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            action,
            format!("user:{}/{}", t.name, u.username),
            meta,
            AuditOutcome::Success,
            json!({"id": u.id}),
        );
        self.store
            .set_user_status(TenantCtx::new(t.id), u.id, status, &e)
            .await?;
        self.forget_cached(None, Some(u.id));
        if status == UserStatus::Disabled {
            self.disable_sub_accounts(p, &t, &u, meta).await?;
        }
        u.status = status;
        Ok(u)
    }

    /// Issues an API token for the caller. Its scopes cannot exceed the caller's own.
    pub async fn create_token(
        &self,
        p: &Principal,
        name: &str,
        scopes: &[String],
        ttl_secs: Option<i64>,
        meta: &RequestMeta,
    ) -> IamResult<IssuedCredential> {
        let own = p.tenant.clone();
        self.check(p, Action::TokenCreate, &own, meta).await?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(IamError::Invalid(
                "the token name must have 1 to 100 characters".into(),
            ));
        }
        let scopes: Vec<String> = if scopes.is_empty() {
            vec!["read".into(), "write".into()]
        } else {
            scopes.to_vec()
        };
        for s in &scopes {
            if s != "read" && s != "write" && s != "ingest" && s != "backup" {
                return Err(IamError::Invalid(format!(
                    "unknown scope {s:?}; expected 'read', 'write', 'ingest' (sending events \
                     only) or 'backup' (reporting backups only)"
                )));
            }
            if !p.has_scope(s) {
                return Err(IamError::Forbidden(format!(
                    "a token cannot get the scope {s:?}, which the caller lacks"
                )));
            }
        }
        let ttl = ttl_secs.unwrap_or(90 * 24 * 3600);
        if ttl < 60 || ttl > self.config.max_token_ttl_secs {
            return Err(IamError::Invalid(format!(
                "the token lifetime must be between 60 and {} seconds",
                self.config.max_token_ttl_secs
            )));
        }
        let secret = secret::new_secret(&self.env, secret::API_TOKEN_PREFIX)?;
        let now = self.env.now();
        let cred = Credential {
            id: CredentialId(self.new_id()?),
            tenant: p.tenant.id,
            user: p.user.id,
            kind: CredentialKind::ApiToken,
            name: name.to_string(),
            secret_hash: secret::secret_hash(&secret).to_vec(),
            scopes: scopes.clone(),
            created_at: now,
            expires_at: now.plus_secs(ttl),
            revoked_at: None,
        };
        let e = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            "token.create",
            format!("token:{}", cred.id),
            meta,
            AuditOutcome::Success,
            json!({"name": name, "scopes": scopes, "expires_at": cred.expires_at}),
        );
        self.store
            .create_api_token(TenantCtx::new(p.tenant.id), &cred, &e)
            .await?;
        Ok(IssuedCredential {
            id: cred.id,
            secret,
            expires_at: cred.expires_at,
            principal: Principal {
                scopes,
                kind: CredentialKind::ApiToken,
                credential: cred.id,
                ..p.clone()
            },
        })
    }

    /// The caller's live sessions and API tokens (never their secrets).
    pub async fn list_own_credentials(&self, p: &Principal) -> IamResult<Vec<Credential>> {
        Ok(self
            .store
            .list_credentials(TenantCtx::new(p.tenant.id), p.user.id, self.env.now())
            .await?)
    }

    /// Revokes one of the caller's own sessions or API tokens.
    pub async fn revoke_own_credential(
        &self,
        p: &Principal,
        id: CredentialId,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let own = self.list_own_credentials(p).await?;
        let Some(c) = own.iter().find(|c| c.id == id) else {
            return Err(IamError::NotFound(
                "no such live session or token of yours".into(),
            ));
        };
        if !p.has_scope("write") {
            return Err(IamError::Forbidden(
                "this token lacks the 'write' scope".into(),
            ));
        }
        let e = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            "token.revoke",
            format!("token:{}", c.id),
            meta,
            AuditOutcome::Success,
            json!({"kind": c.kind, "name": c.name}),
        );
        self.store
            .revoke_credential(TenantCtx::new(p.tenant.id), id, e.time, &e)
            .await?;
        self.forget_cached(Some(id), None);
        Ok(())
    }

    /// The audit trail of `tenant` as `p` may see it (the provider's trail includes every tenant).
    pub async fn list_audit(
        &self,
        p: &Principal,
        tenant: &str,
        filter: &AuditFilter,
        after: Option<String>,
        limit: u32,
        meta: &RequestMeta,
    ) -> IamResult<Vec<AuditRecord>> {
        let t = self.resolve(p, tenant, Action::AuditRead, meta).await?;
        Ok(self
            .store
            .list_audit(TenantCtx::new(t.id), filter, &page(after, limit))
            .await?)
    }
}

/// Log-in name of a user of `tenant` (for display).
pub fn display_login(tenant: &Tenant, user: &User) -> String {
    login_name(tenant, &user.username)
}

/// The current time of the service's clock.
pub fn now(svc: &IamService) -> Timestamp {
    svc.env.now()
}

/// The password of every demo account (`parapet serve --demo`); never for production.
pub const DEMO_PASSWORD: &str = "parapet-demo-password";

impl IamService {
    /// Seeds a small provider for newcomers: three customer tenants with a tenant administrator,
    /// a member and an auditor each, and two provider staff. Existing names are left alone.
    /// Returns the log-in names created.
    pub async fn seed_demo(&self, provider: &Tenant) -> IamResult<Vec<String>> {
        let mut created = Vec::new();
        let hash = self.hash(DEMO_PASSWORD).await?;
        let meta = RequestMeta::default();
        let staff = [("olivia", Role::Operator), ("audrey", Role::Auditor)];
        for (name, role) in staff {
            if self.seed_user(provider, name, role, &hash, &meta).await? {
                created.push(name.to_string());
            }
        }
        for tenant in ["acme", "globex", "initech"] {
            let t = match self
                .store
                .get_tenant(TenantCtx::new(provider.id), tenant)
                .await
            {
                Ok(t) => t,
                Err(StoreError::NotFound) => {
                    let t = self.customer_tenant(tenant)?;
                    let e = event(
                        &self.env,
                        Some(&t),
                        Actor::System,
                        "tenant.create",
                        format!("tenant:{tenant}"),
                        &meta,
                        AuditOutcome::Success,
                        json!({"demo": true}),
                    );
                    self.store
                        .create_tenant(TenantCtx::new(provider.id), &t, &e)
                        .await?;
                    t
                }
                Err(e) => return Err(e.into()),
            };
            for (name, role) in [
                ("alice", Role::TenantAdmin),
                ("bob", Role::TenantMember),
                ("carol", Role::TenantAuditor),
            ] {
                if self.seed_user(&t, name, role, &hash, &meta).await? {
                    created.push(format!("{name}@{tenant}"));
                }
            }
        }
        Ok(created)
    }

    async fn seed_user(
        &self,
        t: &Tenant,
        name: &str,
        role: Role,
        hash: &str,
        meta: &RequestMeta,
    ) -> IamResult<bool> {
        let user = self.user_record(t, name, role, hash.to_string())?;
        let e = event(
            &self.env,
            Some(t),
            Actor::System,
            "user.create",
            format!("user:{}/{name}", t.name),
            meta,
            AuditOutcome::Success,
            json!({"role": role, "demo": true}),
        );
        match self
            .store
            .create_user(TenantCtx::new(t.id), &user, &e)
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
