//! The OpenID Connect provider (X.1642 8.1.1(1), issue 4 §5), one issuer per tenant so that the
//! provider's other cloud applications federate with Parapet: relying parties registered per
//! tenant (confidential or public, exact redirect URIs, allowed grants, secrets shown once and
//! stored as SHA-256), ES256 signing keys per tenant with rotation (retired keys stay in the JWKS
//! until every token they signed has expired), the authorization code flow with PKCE (S256 only)
//! on top of the console log-in (second factor included), client credentials, refresh tokens
//! rotated at every use with reuse detection (a reused refresh token or code revokes its whole
//! family), userinfo, revocation (RFC 7009) and introspection (RFC 7662). Every grant is audited.
//!
//! Nothing here knows HTTP: the app layer turns [`OAuthError`] into the RFC 6749 JSON error and a
//! status code.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use parapet_store::{
    AuditOutcome, CodeRedemption, OidcClient, OidcCode, OidcKey, OidcToken, StoreError, Tenant,
    TenantStatus, User, UserStatus, user_actor,
};
use parapet_types::{Actor, TenantCtx, TenantId, Timestamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Action, IamError, IamResult, IamService, Principal, RequestMeta, event, mfa, secret};

/// Grant types a client may be allowed.
pub const GRANT_CODE: &str = "authorization_code";
pub const GRANT_REFRESH: &str = "refresh_token";
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANTS: [&str; 3] = [GRANT_CODE, GRANT_REFRESH, GRANT_CLIENT_CREDENTIALS];
/// Scopes with a meaning to the provider (others asked for in the code flow are dropped).
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// Lifetime of access and ID tokens.
pub const ACCESS_TTL_SECS: i64 = 300;
/// Lifetime of a refresh token (each use replaces it with a new one).
pub const REFRESH_TTL_SECS: i64 = 8 * 3600;
/// Lifetime of an authorization code.
pub const CODE_TTL_SECS: i64 = 60;
const CLIENT_ID_PREFIX: &str = "pco_";
const CLIENT_SECRET_PREFIX: &str = "pcs_";
const CODE_PREFIX: &str = "pac_";
const REFRESH_PREFIX: &str = "pcr_";
/// JWS algorithms of the issuer's keys: each tenant has one active key of each.
pub const ALG_ES256: &str = "ES256";
pub const ALG_RS256: &str = "RS256";
pub const ALGS: [&str; 2] = [ALG_ES256, ALG_RS256];
/// Access tokens are always ES256 (fast to sign and verify); ID tokens use the client's choice.
const ACCESS_ALG: &str = ALG_ES256;

/// An OAuth 2.0 protocol error (RFC 6749 §5.2, RFC 7009, RFC 7662).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_token`, `server_error`, …
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
        }
    }
}

impl From<IamError> for OAuthError {
    fn from(e: IamError) -> Self {
        match e {
            IamError::Unavailable(m) | IamError::DirectoryUnavailable(m) => {
                OAuthError::new("temporarily_unavailable", m)
            }
            IamError::Invalid(m) => OAuthError::new("invalid_request", m),
            IamError::NotFound(m) => OAuthError::new("invalid_request", m),
            other => {
                tracing::error!(error = %other, "OIDC request failed");
                OAuthError::new("server_error", "internal error; it has been logged")
            }
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        IamError::from(e).into()
    }
}

pub type OAuthResult<T> = Result<T, OAuthError>;

/// What registering a client takes.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    /// Empty: `authorization_code` and `refresh_token` (plus `client_credentials` for a
    /// confidential client).
    pub grants: Vec<String>,
    /// `id_token_signed_response_alg`: `ES256` (the default) or `RS256`.
    pub id_token_alg: Option<String>,
}

/// A parameterised authorization request (`/authorize`).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
}

/// What the browser is sent to after an authorization request that could be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// Redirect to the client (with a code, or with an error).
    Redirect(String),
    /// The user must log in (to this tenant) first, then come back.
    LoginRequired,
}

/// How a client authenticated at the token, introspection or revocation endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientAuth {
    pub client_id: Option<String>,
    pub secret: Option<String>,
}

/// The form of a token request.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub grant_type: String,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: String,
}

enum Signer {
    Es(EcdsaKeyPair),
    Rs(RsaKeyPair),
}

enum Verifier {
    /// The uncompressed P-256 point.
    Es(Vec<u8>),
    Rs(RsaPublicKeyComponents<Vec<u8>>),
}

/// A published key of the issuer.
struct PublicKeyEntry {
    kid: String,
    alg: String,
    verifier: Verifier,
    jwk: Value,
}

/// A tenant's signing keys, ready to use.
pub(crate) struct KeyRing {
    /// (alg, kid, key) of the active key of each algorithm.
    signing: Vec<(String, String, Signer)>,
    /// Every published key (active, and retired ones until their tokens expire).
    public: Vec<PublicKeyEntry>,
}

/// Reads the modulus and exponent of a DER `RSAPublicKey` (RFC 8017 A.1.1).
fn rsa_public_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    fn tlv(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = b.split_first()?;
        if t != tag {
            return None;
        }
        let (&l, rest) = rest.split_first()?;
        let (len, rest) = if l < 0x80 {
            (usize::from(l), rest)
        } else {
            let n = usize::from(l & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (lb, rest) = (rest.get(..n)?, rest.get(n..)?);
            (
                lb.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x)),
                rest,
            )
        };
        Some((rest.get(..len)?, rest.get(len..)?))
    }
    let strip = |v: &[u8]| {
        let i = v.iter().position(|&x| x != 0).unwrap_or(v.len());
        v.get(i..).unwrap_or_default().to_vec()
    };
    let (seq, _) = tlv(der, 0x30)?;
    let (n, rest) = tlv(seq, 0x02)?;
    let (e, _) = tlv(rest, 0x02)?;
    Some((strip(n), strip(e)))
}

fn verifier_of(alg: &str, jwk: &Value) -> IamResult<Verifier> {
    let field = |n: &str| {
        jwk.get(n)
            .and_then(Value::as_str)
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| IamError::Internal(format!("a stored JWK lacks {n}")))
    };
    match alg {
        ALG_ES256 => {
            let mut point = vec![4u8];
            point.extend(field("x")?);
            point.extend(field("y")?);
            Ok(Verifier::Es(point))
        }
        ALG_RS256 => Ok(Verifier::Rs(RsaPublicKeyComponents {
            n: field("n")?,
            e: field("e")?,
        })),
        other => Err(IamError::Internal(format!(
            "a stored signing key has the unknown algorithm {other:?}"
        ))),
    }
}

/// Sets a member of a JSON object (claims, responses).
pub fn set_claim(v: &mut Value, k: &str, x: Value) {
    if let Some(m) = v.as_object_mut() {
        m.insert(k.to_string(), x);
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn key_aad(tenant: TenantId, kid: &str) -> String {
    format!("parapet-oidc-key:{tenant}:{kid}")
}

/// Checks a redirect URI a client registers: absolute `https`, or `http` on a loopback address
/// (native apps, RFC 8252), no fragment.
pub fn check_redirect_uri(u: &str) -> IamResult<()> {
    let bad = |why: &str| IamError::Invalid(format!("redirect URI {u:?}: {why}"));
    if u.len() > 2000 || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("too long or contains spaces"));
    }
    if u.contains('#') {
        return Err(bad("must not contain a fragment"));
    }
    let rest = if let Some(r) = u.strip_prefix("https://") {
        r
    } else if let Some(r) = u.strip_prefix("http://") {
        let host = r.split(['/', '?']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
            return Err(bad("plain http is allowed only on a loopback address"));
        }
        r
    } else {
        return Err(bad(
            "must be an absolute https:// (or loopback http://) URI",
        ));
    };
    if rest.split(['/', '?']).next().unwrap_or("").is_empty() {
        return Err(bad("has no host"));
    }
    Ok(())
}

/// The actor of a client acting on its own behalf (it is authenticated by its secret, but is no
/// user of the tenant): audit records name it by its client id.
fn client_actor(c: &OidcClient) -> Actor {
    Actor::Service {
        client: format!("oidc-client:{}", c.id),
    }
}

fn client_target(t: &Tenant, id: &str) -> String {
    format!("oidc-client:{}/{id}", t.name)
}

/// Splits a scope string into its known, distinct words (in a stable order).
fn known_scopes(scope: Option<&str>) -> String {
    let asked: Vec<&str> = scope.unwrap_or("").split_whitespace().collect();
    SCOPES
        .iter()
        .filter(|s| asked.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

fn has_scope(scope: &str, s: &str) -> bool {
    scope.split_whitespace().any(|w| w == s)
}

/// Whether `v` is a PKCE code verifier (RFC 7636 §4.1).
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = uri.to_string();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in pairs {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&urlencode(v));
        sep = '&';
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The claims of a verified token of ours.
struct Verified {
    claims: Value,
}

impl IamService {
    // -- client registration ------------------------------------------------------------------

    /// Registers a relying party in `tenant`. Returns the client and, for a confidential client,
    /// its secret (shown once).
    pub async fn oidc_client_add(
        &self,
        p: &Principal,
        tenant: &str,
        req: &NewClient,
        meta: &RequestMeta,
    ) -> IamResult<(OidcClient, Option<String>)> {
        let t = self
            .resolve(p, tenant, Action::OidcClientManage, meta)
            .await?;
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(IamError::Invalid(
                "the client name must have 1 to 100 printable characters".into(),
            ));
        }
        let mut grants: Vec<String> = if req.grants.is_empty() {
            let mut g = vec![GRANT_CODE.to_string(), GRANT_REFRESH.to_string()];
            if !req.public {
                g.push(GRANT_CLIENT_CREDENTIALS.to_string());
            }
            g
        } else {
            req.grants.clone()
        };
        grants.sort();
        grants.dedup();
        for g in &grants {
            if !GRANTS.contains(&g.as_str()) {
                return Err(IamError::Invalid(format!(
                    "unknown grant type {g:?}; expected one of {}",
                    GRANTS.join(", ")
                )));
            }
        }
        if req.public && grants.iter().any(|g| g == GRANT_CLIENT_CREDENTIALS) {
            return Err(IamError::Invalid(
                "a public client cannot use client_credentials (it has no secret)".into(),
            ));
        }
        if grants.iter().any(|g| g == GRANT_CODE) && req.redirect_uris.is_empty() {
            return Err(IamError::Invalid(
                "the authorization code flow needs at least one redirect URI".into(),
            ));
        }
        if req.redirect_uris.len() > 20 {
            return Err(IamError::Invalid("at most 20 redirect URIs".into()));
        }
        for u in &req.redirect_uris {
            check_redirect_uri(u)?;
        }
        let id_token_alg = req.id_token_alg.as_deref().unwrap_or(ALG_ES256);
        if !ALGS.contains(&id_token_alg) {
            return Err(IamError::Invalid(format!(
                "unsupported ID token algorithm {id_token_alg:?}; expected one of {}",
                ALGS.join(", ")
            )));
        }
        let id = secret::new_secret(&self.env, CLIENT_ID_PREFIX)?;
        let id: String = id.chars().take(CLIENT_ID_PREFIX.len() + 22).collect();
        let secret_value = if req.public {
            None
        } else {
            Some(secret::new_secret(&self.env, CLIENT_SECRET_PREFIX)?)
        };
        let client = OidcClient {
            id: id.clone(),
            tenant: t.id,
            name: name.to_string(),
            public: req.public,
            secret_hash: secret_value.as_deref().map(sha256_hex),
            redirect_uris: req.redirect_uris.clone(),
            grants: grants.clone(),
            created_at: self.env.now(),
            secret_rotated_at: None,
            id_token_alg: id_token_alg.to_string(),
        };
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "oidc.client.create",
            client_target(&t, &id),
            meta,
            AuditOutcome::Success,
            json!({"name": name, "public": req.public, "grants": grants,
                   "redirect_uris": req.redirect_uris, "id_token_alg": id_token_alg}),
        );
        self.store
            .create_oidc_client(TenantCtx::new(t.id), &client, &e)
            .await?;
        Ok((client, secret_value))
    }

    pub async fn oidc_client_list(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<(Tenant, Vec<OidcClient>)> {
        let t = self
            .resolve(p, tenant, Action::OidcClientRead, meta)
            .await?;
        let list = self.store.list_oidc_clients(TenantCtx::new(t.id)).await?;
        Ok((t, list))
    }

    async fn client_in(&self, t: &Tenant, id: &str) -> IamResult<OidcClient> {
        match self.store.get_oidc_client(TenantCtx::new(t.id), id).await {
            Ok(c) => Ok(c),
            Err(StoreError::NotFound) => Err(IamError::NotFound(format!(
                "no client {id:?} in tenant {}",
                t.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives a confidential client a new secret (shown once); the old one stops working.
    pub async fn oidc_client_rotate_secret(
        &self,
        p: &Principal,
        tenant: &str,
        id: &str,
        meta: &RequestMeta,
    ) -> IamResult<(OidcClient, String)> {
        let t = self
            .resolve(p, tenant, Action::OidcClientManage, meta)
            .await?;
        let mut c = self.client_in(&t, id).await?;
        if c.public {
            return Err(IamError::Invalid("a public client has no secret".into()));
        }
        let s = secret::new_secret(&self.env, CLIENT_SECRET_PREFIX)?;
        let now = self.env.now();
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "oidc.client.rotate-secret",
            client_target(&t, id),
            meta,
            AuditOutcome::Success,
            json!({"name": c.name}),
        );
        self.store
            .set_oidc_client_secret(TenantCtx::new(t.id), id, &sha256_hex(&s), now, &e)
            .await?;
        c.secret_hash = Some(sha256_hex(&s));
        c.secret_rotated_at = Some(now);
        Ok((c, s))
    }

    /// Removes a client; every token issued to it is revoked.
    pub async fn oidc_client_remove(
        &self,
        p: &Principal,
        tenant: &str,
        id: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let t = self
            .resolve(p, tenant, Action::OidcClientManage, meta)
            .await?;
        let c = self.client_in(&t, id).await?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "oidc.client.delete",
            client_target(&t, id),
            meta,
            AuditOutcome::Success,
            json!({"name": c.name}),
        );
        self.store
            .delete_oidc_client(TenantCtx::new(t.id), id, e.time, &e)
            .await?;
        Ok(())
    }

    /// Replaces the tenant's signing keys (one per algorithm); the old ones stay published until
    /// their tokens expire. Returns the kid of the new ES256 key (the access-token key).
    pub async fn oidc_rotate_key(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<String> {
        let t = self
            .resolve(p, tenant, Action::OidcClientManage, meta)
            .await?;
        let kid = self.new_signing_key(&t, ALG_ES256, p.actor(), meta).await?;
        self.new_signing_key(&t, ALG_RS256, p.actor(), meta).await?;
        let cutoff = Timestamp(
            self.env
                .now()
                .0
                .saturating_sub((ACCESS_TTL_SECS + 60).saturating_mul(1000)),
        );
        self.store
            .purge_oidc_keys(TenantCtx::new(t.id), cutoff)
            .await?;
        Ok(kid)
    }

    /// The tenant's published signing keys (kid, created, retired).
    pub async fn oidc_keys(
        &self,
        p: &Principal,
        tenant: &str,
        meta: &RequestMeta,
    ) -> IamResult<Vec<OidcKey>> {
        let t = self
            .resolve(p, tenant, Action::OidcClientRead, meta)
            .await?;
        let mut keys = self.store.list_oidc_keys(TenantCtx::new(t.id)).await?;
        for k in &mut keys {
            k.sealed_private = String::new();
        }
        Ok(keys)
    }

    async fn new_signing_key(
        &self,
        t: &Tenant,
        alg: &str,
        actor: Actor,
        meta: &RequestMeta,
    ) -> IamResult<String> {
        let (pkcs8, jwk, kid) = match alg {
            ALG_ES256 => {
                let rng = SystemRandom::new();
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| IamError::Internal("cannot generate a P-256 key".into()))?;
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                        .map_err(|_| IamError::Internal("cannot load a P-256 key".into()))?;
                let point = pair.public_key().as_ref();
                let (x, y) = match (point.get(1..33), point.get(33..65)) {
                    (Some(x), Some(y)) if point.len() == 65 => (B64.encode(x), B64.encode(y)),
                    _ => return Err(IamError::Internal("unexpected P-256 public key".into())),
                };
                let kid = B64.encode(Sha256::digest(point).get(..12).unwrap_or_default());
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid,
                                 "use": "sig", "alg": ALG_ES256});
                (pkcs8.as_ref().to_vec(), jwk, kid)
            }
            ALG_RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| IamError::Internal("cannot generate an RSA key".into()))?;
                let der: Pkcs8V1Der<'static> = pair
                    .as_der()
                    .map_err(|_| IamError::Internal("cannot encode an RSA key".into()))?;
                let public = pair.public_key().as_ref();
                let (n, e) = rsa_public_components(public)
                    .ok_or_else(|| IamError::Internal("unexpected RSA public key".into()))?;
                let kid = B64.encode(Sha256::digest(public).get(..12).unwrap_or_default());
                let jwk = json!({"kty": "RSA", "n": B64.encode(&n), "e": B64.encode(&e),
                                 "kid": kid, "use": "sig", "alg": ALG_RS256});
                (der.as_ref().to_vec(), jwk, kid)
            }
            other => {
                return Err(IamError::Invalid(format!(
                    "unsupported signing algorithm {other:?}"
                )));
            }
        };
        // The private part is a platform secret: sealed under the key service once it is in
        // use (re-sealed by `migrate_secrets` otherwise).
        let sealed = self.seal_secret(&key_aad(t.id, &kid), &pkcs8)?;
        let key = OidcKey {
            kid: kid.clone(),
            tenant: t.id,
            alg: alg.into(),
            sealed_private: sealed,
            public_jwk: jwk.to_string(),
            created_at: self.env.now(),
            retired_at: None,
        };
        let e = event(
            &self.env,
            Some(t),
            actor,
            "oidc.key.create",
            format!("oidc-key:{}/{kid}", t.name),
            meta,
            AuditOutcome::Success,
            json!({"alg": alg}),
        );
        self.store
            .add_oidc_key(TenantCtx::new(t.id), &key, &e)
            .await?;
        if let Ok(mut c) = self.oidc_keys.write() {
            c.remove(&t.id);
        }
        Ok(kid)
    }

    /// Re-seals under the key service the signing keys still sealed by the local key; returns
    /// how many (part of [`IamService::migrate_secrets`]).
    pub(crate) async fn migrate_oidc_keys(&self, provider: &Tenant) -> IamResult<u64> {
        let mut n = 0;
        for k in self
            .store
            .oidc_local_keys(TenantCtx::new(provider.id))
            .await?
        {
            let aad = key_aad(k.tenant, &k.kid);
            let Some(new) = self.secrets.reseal_local(&aad, &k.sealed_private)? else {
                continue;
            };
            let e = parapet_store::AuditEvent {
                time: self.env.now(),
                tenant: Some(k.tenant),
                actor: Actor::System,
                action: "kms.platform-secret.reseal".into(),
                target: format!("oidc-key:{}", k.kid),
                source_ip: None,
                user_agent: None,
                outcome: AuditOutcome::Success,
                details: json!({"secret": "oidc-signing-key", "alg": k.alg,
                                "from": "local-key", "to": "kms"}),
            };
            if self
                .store
                .oidc_reseal_key(
                    TenantCtx::new(k.tenant),
                    &k.kid,
                    &k.sealed_private,
                    &new,
                    &e,
                )
                .await?
            {
                n += 1;
            }
        }
        if n > 0
            && let Ok(mut c) = self.oidc_keys.write()
        {
            c.clear();
        }
        Ok(n)
    }

    /// The tenant's key ring (made on first use), cached as long as authentications.
    async fn key_ring(&self, t: &Tenant) -> IamResult<Arc<KeyRing>> {
        let now = self.env.now();
        if let Ok(c) = self.oidc_keys.read()
            && let Some((ring, at)) = c.get(&t.id)
            && (0..self.config.auth_cache_ms).contains(&(now.0 - at.0))
        {
            return Ok(ring.clone());
        }
        let mut keys = self.store.list_oidc_keys(TenantCtx::new(t.id)).await?;
        let mut made = false;
        for alg in ALGS {
            if !keys.iter().any(|k| k.retired_at.is_none() && k.alg == alg) {
                self.new_signing_key(t, alg, Actor::System, &RequestMeta::default())
                    .await?;
                made = true;
            }
        }
        if made {
            keys = self.store.list_oidc_keys(TenantCtx::new(t.id)).await?;
        }
        let keep_after = now
            .0
            .saturating_sub((ACCESS_TTL_SECS + 60).saturating_mul(1000));
        let mut ring = KeyRing {
            signing: Vec::new(),
            public: Vec::new(),
        };
        for k in &keys {
            if k.retired_at.is_some_and(|r| r.0 < keep_after) {
                continue;
            }
            let jwk: Value = serde_json::from_str(&k.public_jwk)
                .map_err(|e| IamError::Internal(format!("corrupt JWK: {e}")))?;
            let verifier = verifier_of(&k.alg, &jwk)?;
            if k.retired_at.is_none() && !ring.signing.iter().any(|(a, _, _)| *a == k.alg) {
                let pkcs8 = self.open_secret(&key_aad(t.id, &k.kid), &k.sealed_private)?;
                let corrupt = || IamError::Internal("a stored signing key is corrupt".into());
                let signer = if k.alg == ALG_RS256 {
                    Signer::Rs(RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| corrupt())?)
                } else {
                    Signer::Es(
                        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                            .map_err(|_| corrupt())?,
                    )
                };
                ring.signing.push((k.alg.clone(), k.kid.clone(), signer));
            }
            ring.public.push(PublicKeyEntry {
                kid: k.kid.clone(),
                alg: k.alg.clone(),
                verifier,
                jwk,
            });
        }
        let ring = Arc::new(ring);
        if let Ok(mut c) = self.oidc_keys.write() {
            if c.len() >= 65_536 {
                c.clear();
            }
            c.insert(t.id, (ring.clone(), now));
        }
        Ok(ring)
    }

    /// The JSON Web Key Set of the tenant's issuer.
    pub async fn oidc_jwks(&self, t: &Tenant) -> IamResult<Value> {
        let ring = self.key_ring(t).await?;
        Ok(json!({"keys": ring.public.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}))
    }

    fn sign(&self, ring: &KeyRing, alg: &str, claims: &Value) -> IamResult<String> {
        let (_, kid, signer) = ring
            .signing
            .iter()
            .find(|(a, _, _)| a == alg)
            .ok_or_else(|| IamError::Internal(format!("no {alg} signing key")))?;
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let failed = || IamError::Internal("signing failed".into());
        let sig = match signer {
            Signer::Es(pair) => pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .map_err(|_| failed())?
                .as_ref()
                .to_vec(),
            Signer::Rs(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| failed())?;
                sig
            }
        };
        Ok(format!("{input}.{}", B64.encode(sig)))
    }

    /// Verifies a JWT of the tenant's issuer (signature, issuer, expiry); `None` when it is not
    /// one.
    async fn verify_jwt(
        &self,
        t: &Tenant,
        issuer: &str,
        token: &str,
    ) -> IamResult<Option<Verified>> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let header: Value = match B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(v) => v,
            None => return Ok(None),
        };
        let Some(alg) = header.get("alg").and_then(Value::as_str) else {
            return Ok(None);
        };
        let Some(kid) = header.get("kid").and_then(Value::as_str) else {
            return Ok(None);
        };
        let ring = self.key_ring(t).await?;
        // The key's own algorithm decides, never the header's alone (no algorithm confusion).
        let Some(key) = ring.public.iter().find(|k| k.kid == kid && k.alg == alg) else {
            return Ok(None);
        };
        let Ok(sig) = B64.decode(s) else {
            return Ok(None);
        };
        let input_len = h.len() + 1 + c.len();
        let input = token.get(..input_len).unwrap_or("");
        let ok = match &key.verifier {
            Verifier::Es(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), &sig)
                .is_ok(),
            Verifier::Rs(c) => c
                .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &sig)
                .is_ok(),
        };
        if !ok {
            return Ok(None);
        }
        let claims: Value = match B64
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(v) => v,
            None => return Ok(None),
        };
        let now = self.env.now().0 / 1000;
        if claims.get("iss").and_then(Value::as_str) != Some(issuer)
            || claims
                .get("exp")
                .and_then(Value::as_i64)
                .is_none_or(|e| e <= now)
        {
            return Ok(None);
        }
        Ok(Some(Verified { claims }))
    }

    // -- protocol -----------------------------------------------------------------------------

    /// The active tenant named `name`, whose issuer the protocol endpoints serve.
    pub async fn oidc_tenant(&self, name: &str) -> IamResult<Tenant> {
        let now = self.env.now();
        let key = (TenantId(uuid::Uuid::nil()), name.to_string());
        if let Ok(cache) = self.tenant_cache.read()
            && let Some((t, at)) = cache.get(&key)
            && (0..self.config.auth_cache_ms).contains(&(now.0 - at.0))
        {
            return Ok(t.clone());
        }
        let provider = self
            .store
            .provider_tenant()
            .await?
            .ok_or_else(|| IamError::NotFound("no such issuer".into()))?;
        let t = match self
            .store
            .get_tenant(TenantCtx::new(provider.id), name)
            .await
        {
            Ok(t) if t.status == TenantStatus::Active && t.name == name => t,
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(IamError::NotFound("no such issuer".into()));
            }
            Err(e) => return Err(e.into()),
        };
        if let Ok(mut cache) = self.tenant_cache.write() {
            if cache.len() >= 65_536 {
                cache.clear();
            }
            cache.insert(key, (t.clone(), now));
        }
        Ok(t)
    }

    /// Handles an authorization request for tenant `t` by the console session `session` (if
    /// any). `Err` when the client or the redirect URI cannot be trusted: then the browser must
    /// not be redirected.
    pub async fn oidc_authorize(
        &self,
        t: &Tenant,
        issuer: &str,
        session: Option<&Principal>,
        req: &AuthorizeRequest,
        meta: &RequestMeta,
    ) -> IamResult<AuthorizeOutcome> {
        let client_id = req
            .client_id
            .as_deref()
            .ok_or_else(|| IamError::Invalid("client_id is missing".into()))?;
        let client = match self
            .store
            .get_oidc_client(TenantCtx::new(t.id), client_id)
            .await
        {
            Ok(c) => c,
            Err(StoreError::NotFound) => {
                return Err(IamError::Invalid(format!(
                    "no client {client_id:?} is registered with this issuer"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let redirect = req
            .redirect_uri
            .as_deref()
            .ok_or_else(|| IamError::Invalid("redirect_uri is missing".into()))?;
        if !client.redirect_uris.iter().any(|u| u == redirect) {
            let e = event(
                &self.env,
                Some(t),
                session.map_or(Actor::Anonymous { claimed: None }, Principal::actor),
                "oidc.authorize",
                client_target(t, client_id),
                meta,
                AuditOutcome::Failure,
                json!({"reason": "unregistered redirect URI", "redirect_uri": redirect}),
            );
            self.store.append_audit(&e).await?;
            return Err(IamError::Invalid(
                "the redirect_uri is not registered for this client".into(),
            ));
        }
        let state = req.state.clone().unwrap_or_default();
        let fail = |error: &str, desc: &str| {
            let mut pairs = vec![("error", error), ("error_description", desc)];
            if !state.is_empty() {
                pairs.push(("state", state.as_str()));
            }
            pairs.push(("iss", issuer));
            Ok(AuthorizeOutcome::Redirect(append_query(redirect, &pairs)))
        };
        if req.response_type.as_deref() != Some("code") {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
        if !client.grants.iter().any(|g| g == GRANT_CODE) {
            return fail(
                "unauthorized_client",
                "this client may not use the authorization code flow",
            );
        }
        let challenge = req.code_challenge.clone().unwrap_or_default();
        if req.code_challenge_method.as_deref() != Some("S256")
            || challenge.len() != 43
            || B64.decode(&challenge).is_err()
        {
            return fail(
                "invalid_request",
                "PKCE is required: code_challenge (43 characters) with code_challenge_method=S256",
            );
        }
        if let Some(p) = session
            && p.tenant.id == t.id
            && p.scopes.iter().any(|s| s == mfa::ENROL_ONLY_SCOPE)
        {
            return fail(
                "interaction_required",
                "the account must enrol a second factor in the Parapet console first",
            );
        }
        let p = match session {
            Some(p)
                if p.tenant.id == t.id
                    && !p.scopes.iter().any(|s| s == mfa::ENROL_ONLY_SCOPE)
                    && p.kind == parapet_store::CredentialKind::Session =>
            {
                p
            }
            _ => {
                if req.prompt.as_deref() == Some("none") {
                    return fail("login_required", "the user is not logged in");
                }
                return Ok(AuthorizeOutcome::LoginRequired);
            }
        };
        let scope = known_scopes(req.scope.as_deref());
        let code = secret::new_secret(&self.env, CODE_PREFIX)?;
        let now = self.env.now();
        let auth_time = self
            .store
            .list_credentials(TenantCtx::new(t.id), p.user.id, now)
            .await?
            .into_iter()
            .find(|c| c.id == p.credential)
            .map_or(now, |c| c.created_at);
        let rec = OidcCode {
            code_hash: sha256_hex(&code),
            tenant: t.id,
            client_id: client.id.clone(),
            user: p.user.id,
            redirect_uri: redirect.to_string(),
            code_challenge: challenge,
            scope: scope.clone(),
            nonce: req
                .nonce
                .clone()
                .filter(|n| !n.is_empty() && n.len() <= 512),
            auth_time,
            family: self.new_id()?.to_string(),
            created_at: now,
            expires_at: now.plus_secs(CODE_TTL_SECS),
            used_at: None,
        };
        let e = event(
            &self.env,
            Some(t),
            p.actor(),
            "oidc.authorize",
            client_target(t, &client.id),
            meta,
            AuditOutcome::Success,
            json!({"client": client.name, "scope": scope, "family": rec.family}),
        );
        self.store
            .create_oidc_code(TenantCtx::new(t.id), &rec, &e)
            .await?;
        let mut pairs = vec![("code", code.as_str())];
        if !state.is_empty() {
            pairs.push(("state", state.as_str()));
        }
        pairs.push(("iss", issuer));
        Ok(AuthorizeOutcome::Redirect(append_query(redirect, &pairs)))
    }

    /// Authenticates a client at the token, introspection or revocation endpoint. Failures are
    /// audited (with the client id given, never the secret).
    async fn authenticate_client(
        &self,
        t: &Tenant,
        auth: &ClientAuth,
        meta: &RequestMeta,
    ) -> OAuthResult<OidcClient> {
        let id = auth.client_id.as_deref().unwrap_or("").trim();
        let found = if id.is_empty() || id.len() > 100 {
            None
        } else {
            match self.store.get_oidc_client(TenantCtx::new(t.id), id).await {
                Ok(c) => Some(c),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(client) = found {
            match (&client.secret_hash, &auth.secret) {
                (Some(h), Some(s)) if constant_eq(h.as_bytes(), sha256_hex(s).as_bytes()) => {
                    return Ok(client);
                }
                (None, None) if client.public => return Ok(client),
                _ => {}
            }
        }
        let shown: String = id.chars().take(100).collect();
        let e = event(
            &self.env,
            Some(t),
            Actor::Anonymous {
                claimed: Some(format!("oidc-client:{shown}")),
            },
            "oidc.client.authenticate",
            client_target(t, &shown),
            meta,
            AuditOutcome::Failure,
            json!({"reason": "client authentication failed"}),
        );
        self.store.append_audit(&e).await?;
        Err(OAuthError::new(
            "invalid_client",
            "client authentication failed",
        ))
    }

    fn grant_event(
        &self,
        t: &Tenant,
        client: &OidcClient,
        user: Option<&User>,
        meta: &RequestMeta,
        outcome: AuditOutcome,
        details: Value,
    ) -> parapet_store::AuditEvent {
        event(
            &self.env,
            Some(t),
            user.map_or_else(|| client_actor(client), user_actor),
            "oidc.token",
            client_target(t, &client.id),
            meta,
            outcome,
            details,
        )
    }

    async fn refuse_grant(
        &self,
        t: &Tenant,
        client: &OidcClient,
        grant: &str,
        reason: &str,
        meta: &RequestMeta,
    ) -> OAuthError {
        let e = self.grant_event(
            t,
            client,
            None,
            meta,
            AuditOutcome::Failure,
            json!({"grant_type": grant, "reason": reason}),
        );
        if let Err(err) = self.store.append_audit(&e).await {
            return err.into();
        }
        OAuthError::new("invalid_grant", reason)
    }

    /// The token endpoint.
    pub async fn oidc_token(
        &self,
        t: &Tenant,
        issuer: &str,
        auth: &ClientAuth,
        req: &TokenRequest,
        meta: &RequestMeta,
    ) -> OAuthResult<TokenResponse> {
        let client = self.authenticate_client(t, auth, meta).await?;
        let grant = req.grant_type.as_str();
        if !GRANTS.contains(&grant) {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant_type must be one of {}", GRANTS.join(", ")),
            ));
        }
        if !client.grants.iter().any(|g| g == grant) {
            return Err(OAuthError::new(
                "unauthorized_client",
                format!("this client may not use the {grant} grant"),
            ));
        }
        match grant {
            GRANT_CODE => self.code_grant(t, issuer, &client, req, meta).await,
            GRANT_REFRESH => self.refresh_grant(t, issuer, &client, req, meta).await,
            _ => {
                self.client_credentials_grant(t, issuer, &client, req, meta)
                    .await
            }
        }
    }

    async fn code_grant(
        &self,
        t: &Tenant,
        issuer: &str,
        client: &OidcClient,
        req: &TokenRequest,
        meta: &RequestMeta,
    ) -> OAuthResult<TokenResponse> {
        let code = req
            .code
            .as_deref()
            .ok_or_else(|| OAuthError::new("invalid_request", "code is missing"))?;
        let verifier = req.code_verifier.as_deref().unwrap_or("");
        let now = self.env.now();
        let ctx = TenantCtx::new(t.id);
        let rec = match self
            .store
            .redeem_oidc_code(ctx, &sha256_hex(code), now)
            .await?
        {
            CodeRedemption::Fresh(c) => c,
            CodeRedemption::Reused(c) => {
                // RFC 6749 §4.1.2: a second use revokes what the first one got.
                let e = self.grant_event(
                    t,
                    client,
                    None,
                    meta,
                    AuditOutcome::Failure,
                    json!({"grant_type": GRANT_CODE, "reason": "authorization code reused; its tokens are revoked", "family": c.family}),
                );
                self.store
                    .revoke_oidc_tokens(ctx, &c.family, true, now, &e)
                    .await?;
                return Err(OAuthError::new(
                    "invalid_grant",
                    "the authorization code was used already",
                ));
            }
            CodeRedemption::Unknown => {
                return Err(self
                    .refuse_grant(t, client, GRANT_CODE, "unknown authorization code", meta)
                    .await);
            }
        };
        if rec.client_id != client.id {
            return Err(self
                .refuse_grant(
                    t,
                    client,
                    GRANT_CODE,
                    "the code was issued to another client",
                    meta,
                )
                .await);
        }
        if rec.expires_at.0 <= now.0 {
            return Err(self
                .refuse_grant(
                    t,
                    client,
                    GRANT_CODE,
                    "the authorization code has expired",
                    meta,
                )
                .await);
        }
        if req.redirect_uri.as_deref() != Some(rec.redirect_uri.as_str()) {
            return Err(self
                .refuse_grant(
                    t,
                    client,
                    GRANT_CODE,
                    "redirect_uri differs from the authorization request's",
                    meta,
                )
                .await);
        }
        let computed = B64.encode(Sha256::digest(verifier.as_bytes()));
        if !valid_verifier(verifier)
            || !constant_eq(computed.as_bytes(), rec.code_challenge.as_bytes())
        {
            return Err(self
                .refuse_grant(
                    t,
                    client,
                    GRANT_CODE,
                    "the PKCE code_verifier does not match",
                    meta,
                )
                .await);
        }
        let user = match self.store.oidc_user(ctx, rec.user).await {
            Ok(u) if u.status == UserStatus::Active => u,
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(self
                    .refuse_grant(
                        t,
                        client,
                        GRANT_CODE,
                        "the user is disabled or deleted",
                        meta,
                    )
                    .await);
            }
            Err(e) => return Err(e.into()),
        };
        self.issue(
            t,
            issuer,
            client,
            Some(&user),
            &rec.scope,
            &rec.family,
            rec.nonce.as_deref(),
            Some(rec.auth_time),
            None,
            GRANT_CODE,
            meta,
        )
        .await
    }

    async fn refresh_grant(
        &self,
        t: &Tenant,
        issuer: &str,
        client: &OidcClient,
        req: &TokenRequest,
        meta: &RequestMeta,
    ) -> OAuthResult<TokenResponse> {
        let token = req
            .refresh_token
            .as_deref()
            .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing"))?;
        let ctx = TenantCtx::new(t.id);
        let now = self.env.now();
        let Some(old) = self
            .store
            .find_oidc_refresh(ctx, &sha256_hex(token))
            .await?
        else {
            return Err(self
                .refuse_grant(t, client, GRANT_REFRESH, "unknown refresh token", meta)
                .await);
        };
        if old.client_id != client.id {
            return Err(self
                .refuse_grant(
                    t,
                    client,
                    GRANT_REFRESH,
                    "the token was issued to another client",
                    meta,
                )
                .await);
        }
        if old.used_at.is_some() {
            // Reuse of a rotated refresh token: someone holds a copy. Revoke the family.
            let e = self.grant_event(
                t,
                client,
                None,
                meta,
                AuditOutcome::Failure,
                json!({"grant_type": GRANT_REFRESH, "reason": "refresh token reused; its family is revoked", "family": old.family}),
            );
            self.store
                .revoke_oidc_tokens(ctx, &old.family, true, now, &e)
                .await?;
            return Err(OAuthError::new(
                "invalid_grant",
                "the refresh token was used already; every token of this grant is revoked",
            ));
        }
        if old.revoked_at.is_some() || old.expires_at.0 <= now.0 {
            return Err(self
                .refuse_grant(
                    t,
                    client,
                    GRANT_REFRESH,
                    "the refresh token is revoked or expired",
                    meta,
                )
                .await);
        }
        let user = match old.user {
            Some(u) => match self.store.oidc_user(ctx, u).await {
                Ok(u) if u.status == UserStatus::Active => Some(u),
                Ok(_) | Err(StoreError::NotFound) => {
                    return Err(self
                        .refuse_grant(
                            t,
                            client,
                            GRANT_REFRESH,
                            "the user is disabled or deleted",
                            meta,
                        )
                        .await);
                }
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        // A refresh may narrow the scope, never widen it.
        let scope = match req.scope.as_deref() {
            Some(s) if !s.trim().is_empty() => {
                if s.split_whitespace().any(|w| !has_scope(&old.scope, w)) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        "a refresh cannot add scopes the grant did not have",
                    ));
                }
                s.split_whitespace().collect::<Vec<_>>().join(" ")
            }
            _ => old.scope.clone(),
        };
        self.issue(
            t,
            issuer,
            client,
            user.as_ref(),
            &scope,
            &old.family,
            None,
            None,
            Some(&old.id),
            GRANT_REFRESH,
            meta,
        )
        .await
    }

    async fn client_credentials_grant(
        &self,
        t: &Tenant,
        issuer: &str,
        client: &OidcClient,
        req: &TokenRequest,
        meta: &RequestMeta,
    ) -> OAuthResult<TokenResponse> {
        if client.public {
            return Err(OAuthError::new(
                "unauthorized_client",
                "a public client cannot use client_credentials",
            ));
        }
        let scope = req.scope.as_deref().unwrap_or("").trim().to_string();
        if scope.len() > 1000
            || scope
                .chars()
                .any(|c| !(c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\')))
        {
            return Err(OAuthError::new("invalid_scope", "malformed scope"));
        }
        let scope = scope.split_whitespace().collect::<Vec<_>>().join(" ");
        let family = self.new_id()?.to_string();
        self.issue(
            t,
            issuer,
            client,
            None,
            &scope,
            &family,
            None,
            None,
            None,
            GRANT_CLIENT_CREDENTIALS,
            meta,
        )
        .await
    }

    /// Signs and records the tokens of a grant (and its audit record, in one transaction).
    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &self,
        t: &Tenant,
        issuer: &str,
        client: &OidcClient,
        user: Option<&User>,
        scope: &str,
        family: &str,
        nonce: Option<&str>,
        auth_time: Option<Timestamp>,
        rotates: Option<&str>,
        grant: &str,
        meta: &RequestMeta,
    ) -> OAuthResult<TokenResponse> {
        let ring = self.key_ring(t).await?;
        let now = self.env.now();
        let iat = now.0 / 1000;
        let exp = iat + ACCESS_TTL_SECS;
        let jti = self.new_id()?.to_string();
        let sub = user.map_or_else(|| client.id.clone(), |u| u.id.to_string());
        let mut access = json!({
            "iss": issuer, "sub": sub, "aud": client.id, "client_id": client.id,
            "iat": iat, "exp": exp, "jti": jti, "scope": scope, "tenant": t.name,
        });
        if let Some(u) = user {
            set_claim(&mut access, "preferred_username", json!(u.username));
        }
        let access_token = self.sign(&ring, ACCESS_ALG, &access)?;
        let base = OidcToken {
            id: jti.clone(),
            tenant: t.id,
            client_id: client.id.clone(),
            user: user.map(|u| u.id),
            kind: "access".into(),
            secret_hash: None,
            family: family.to_string(),
            scope: scope.to_string(),
            created_at: now,
            expires_at: Timestamp(exp * 1000),
            revoked_at: None,
            used_at: None,
        };
        let mut rows = vec![base.clone()];
        let refresh = if user.is_some() && client.grants.iter().any(|g| g == GRANT_REFRESH) {
            let r = secret::new_secret(&self.env, REFRESH_PREFIX)?;
            rows.push(OidcToken {
                id: self.new_id()?.to_string(),
                kind: "refresh".into(),
                secret_hash: Some(sha256_hex(&r)),
                expires_at: now.plus_secs(REFRESH_TTL_SECS),
                ..base
            });
            Some(r)
        } else {
            None
        };
        let id_token = match user {
            Some(u) if has_scope(scope, "openid") => {
                let mut claims = json!({
                    "iss": issuer, "sub": u.id.to_string(), "aud": client.id, "azp": client.id,
                    "iat": iat, "exp": exp,
                    "auth_time": auth_time.map_or(iat, |a| a.0 / 1000),
                });
                if let Some(n) = nonce {
                    set_claim(&mut claims, "nonce", json!(n));
                }
                if has_scope(scope, "profile") {
                    set_claim(&mut claims, "preferred_username", json!(u.username));
                    set_claim(&mut claims, "name", json!(u.username));
                }
                let digest = Sha256::digest(access_token.as_bytes());
                set_claim(
                    &mut claims,
                    "at_hash",
                    json!(B64.encode(digest.get(..16).unwrap_or_default())),
                );
                Some(self.sign(&ring, &client.id_token_alg, &claims)?)
            }
            _ => None,
        };
        let e = self.grant_event(
            t,
            client,
            user,
            meta,
            AuditOutcome::Success,
            json!({"grant_type": grant, "scope": scope, "jti": jti, "family": family,
                   "refresh_token": refresh.is_some(), "id_token": id_token.is_some()}),
        );
        let ctx = TenantCtx::new(t.id);
        match rotates {
            None => self.store.issue_oidc_tokens(ctx, &rows, &e).await?,
            Some(old) => {
                if !self
                    .store
                    .rotate_oidc_refresh(ctx, old, now, &rows, &e)
                    .await?
                {
                    // Lost a race with another use of the same refresh token: a reuse.
                    let e = self.grant_event(
                        t,
                        client,
                        user,
                        meta,
                        AuditOutcome::Failure,
                        json!({"grant_type": grant, "reason": "refresh token reused; its family is revoked", "family": family}),
                    );
                    self.store
                        .revoke_oidc_tokens(ctx, family, true, now, &e)
                        .await?;
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "the refresh token was used already; every token of this grant is revoked",
                    ));
                }
            }
        }
        Ok(TokenResponse {
            access_token,
            expires_in: ACCESS_TTL_SECS,
            refresh_token: refresh,
            id_token,
            scope: scope.to_string(),
        })
    }

    /// The stored record of a live token of ours: an access JWT or a refresh token.
    async fn live_token(
        &self,
        t: &Tenant,
        issuer: &str,
        token: &str,
    ) -> IamResult<Option<(OidcToken, Option<Value>)>> {
        let ctx = TenantCtx::new(t.id);
        let now = self.env.now();
        let (rec, claims) = if token.starts_with(REFRESH_PREFIX) {
            match self
                .store
                .find_oidc_refresh(ctx, &sha256_hex(token))
                .await?
            {
                Some(r) => (r, None),
                None => return Ok(None),
            }
        } else {
            let Some(v) = self.verify_jwt(t, issuer, token).await? else {
                return Ok(None);
            };
            let Some(jti) = v.claims.get("jti").and_then(Value::as_str) else {
                return Ok(None);
            };
            match self.store.get_oidc_token(ctx, jti).await? {
                Some(r) if r.kind == "access" => (r, Some(v.claims)),
                _ => return Ok(None),
            }
        };
        if rec.revoked_at.is_some() || rec.used_at.is_some() || rec.expires_at.0 <= now.0 {
            return Ok(None);
        }
        if let Some(u) = rec.user {
            match self.store.oidc_user(ctx, u).await {
                Ok(u) if u.status == UserStatus::Active => {}
                Ok(_) | Err(StoreError::NotFound) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some((rec, claims)))
    }

    /// The userinfo endpoint: claims about the user an access token acts for.
    pub async fn oidc_userinfo(&self, t: &Tenant, issuer: &str, token: &str) -> OAuthResult<Value> {
        let invalid = || OAuthError::new("invalid_token", "the access token is invalid or expired");
        if token.starts_with(REFRESH_PREFIX) {
            return Err(invalid());
        }
        let Some((rec, _)) = self.live_token(t, issuer, token).await? else {
            return Err(invalid());
        };
        let Some(uid) = rec.user else {
            return Err(OAuthError::new(
                "invalid_token",
                "a client-credentials token acts for no user",
            ));
        };
        if !has_scope(&rec.scope, "openid") {
            return Err(OAuthError::new(
                "insufficient_scope",
                "the token lacks the openid scope",
            ));
        }
        let u = self.store.oidc_user(TenantCtx::new(t.id), uid).await?;
        let mut out = json!({"sub": u.id.to_string()});
        if has_scope(&rec.scope, "profile") {
            set_claim(&mut out, "preferred_username", json!(u.username));
            set_claim(&mut out, "name", json!(u.username));
            set_claim(&mut out, "tenant", json!(t.name));
            set_claim(&mut out, "role", json!(u.role));
        }
        Ok(out)
    }

    /// Token introspection (RFC 7662), for the tenant's confidential clients.
    pub async fn oidc_introspect(
        &self,
        t: &Tenant,
        issuer: &str,
        auth: &ClientAuth,
        token: &str,
        meta: &RequestMeta,
    ) -> OAuthResult<Value> {
        let client = self.authenticate_client(t, auth, meta).await?;
        if client.public {
            return Err(OAuthError::new(
                "invalid_client",
                "public clients may not introspect tokens",
            ));
        }
        let Some((rec, _)) = self.live_token(t, issuer, token).await? else {
            return Ok(json!({"active": false}));
        };
        let mut out = json!({
            "active": true, "scope": rec.scope, "client_id": rec.client_id,
            "token_type": if rec.kind == "refresh" { "refresh_token" } else { "Bearer" },
            "exp": rec.expires_at.0 / 1000, "iat": rec.created_at.0 / 1000, "iss": issuer,
            "sub": rec.user.map_or_else(|| rec.client_id.clone(), |u| u.to_string()),
        });
        if rec.kind == "access" {
            set_claim(&mut out, "jti", json!(rec.id));
        }
        if let Some(u) = rec.user {
            let u = self.store.oidc_user(TenantCtx::new(t.id), u).await?;
            set_claim(&mut out, "username", json!(u.username));
        }
        Ok(out)
    }

    /// Token revocation (RFC 7009): a client revokes a token issued to it (a refresh token
    /// takes its whole family along). Unknown tokens are not an error.
    pub async fn oidc_revoke(
        &self,
        t: &Tenant,
        issuer: &str,
        auth: &ClientAuth,
        token: &str,
        meta: &RequestMeta,
    ) -> OAuthResult<()> {
        let client = self.authenticate_client(t, auth, meta).await?;
        let Some((rec, _)) = self.live_token(t, issuer, token).await? else {
            return Ok(());
        };
        if rec.client_id != client.id {
            return Ok(());
        }
        let family = rec.kind == "refresh";
        let e = event(
            &self.env,
            Some(t),
            client_actor(&client),
            "oidc.revoke",
            client_target(t, &client.id),
            meta,
            AuditOutcome::Success,
            json!({"kind": rec.kind, "token": rec.id, "family": if family { Some(&rec.family) } else { None }}),
        );
        let key = if family { &rec.family } else { &rec.id };
        self.store
            .revoke_oidc_tokens(TenantCtx::new(t.id), key, family, self.env.now(), &e)
            .await?;
        Ok(())
    }
}

/// The discovery document of an issuer (OpenID Connect Discovery 1.0, RFC 8414).
pub fn discovery(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GRANTS,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ALGS,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp",
                             "at_hash", "preferred_username", "name"],
        "authorization_response_iss_parameter_supported": true,
    })
}

/// Keeps the unused-import lint quiet where `HashMap` is only named in the service's field.
pub(crate) type KeyCache = HashMap<TenantId, (Arc<KeyRing>, Timestamp)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_https_or_loopback() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("http://app.example/cb").is_err());
        assert!(check_redirect_uri("https://app.example/cb#frag").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("https:///cb").is_err());
    }

    #[test]
    fn verifiers_and_scopes() {
        assert!(valid_verifier(&"a".repeat(43)));
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(!valid_verifier(&format!("{}!", "a".repeat(43))));
        assert_eq!(
            known_scopes(Some("email openid foo openid")),
            "openid email"
        );
        assert_eq!(
            append_query("https://a/cb?x=1", &[("code", "a b"), ("state", "s&t")]),
            "https://a/cb?x=1&code=a%20b&state=s%26t"
        );
    }
}
