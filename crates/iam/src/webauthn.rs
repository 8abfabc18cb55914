//! WebAuthn passkeys and security keys (W3C Web Authentication Level 2), X.1642 7.2.2.4(4) and
//! 8.1.2(1): registration, and authentication as a second factor after the password (which is
//! also the step-up that provider roles need). No WebAuthn crate: `webauthn-rs` pulls OpenSSL
//! and the tree uses aws-lc-rs only. What is checked here, for every ceremony:
//!
//! - the challenge: random, single use (removed from storage by the transaction that reads
//!   it), bound to the user and the ceremony, expiring after [`CHALLENGE_TTL_SECS`] of the
//!   injected clock;
//! - the client data: type (`webauthn.create` / `webauthn.get`), challenge, origin (exactly the
//!   relying party's), not cross-origin;
//! - the authenticator data: the SHA-256 of the RP ID, the user-present flag, and the signature
//!   counter, which must grow (a counter that does not reveals a cloned authenticator: refused
//!   and audited) unless the authenticator keeps none (always 0);
//! - the COSE public key: ES256 (P-256), EdDSA (Ed25519) or RS256 (RSA ≥ 2048), and the
//!   signature over `authenticatorData ‖ SHA-256(clientDataJSON)` verified with aws-lc-rs;
//! - attestation `none`, or `packed` self-attestation (signed by the credential's own key).
//!   Attestation with a certificate chain is refused with a clear message: Parapet asks for
//!   `none`, as passkey providers do.
//!
//! Failed assertions count towards the second-factor lockout, as wrong TOTP codes do.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use ciborium::value::Value as Cbor;
use parapet_store::{
    AccountPolicy, Attempt, AuditOutcome, Factor, StoreError, Tenant, User, WebAuthnChallenge,
    WebAuthnCredential, user_actor,
};
use parapet_types::TenantCtx;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::authz::Action;
use crate::policy::lock_for;
use crate::{IamError, IamResult, IamService, IssuedCredential, Principal, RequestMeta, event};

/// How long a browser has to answer a challenge.
pub const CHALLENGE_TTL_SECS: i64 = 300;
/// How many keys one user may register.
pub const MAX_KEYS: usize = 20;
const HANDLE_PREFIX: &str = "pwc_";
const COSE_ES256: i64 = -7;
const COSE_EDDSA: i64 = -8;
const COSE_RS256: i64 = -257;
const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;

/// The relying party a ceremony runs for: the RP ID (a host name) and the one origin allowed
/// (`https://host[:port]`, or `http://localhost:port` in development).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    pub id: String,
    pub origin: String,
}

impl RelyingParty {
    /// The relying party of a server reached at `origin` (`scheme://host[:port]`).
    pub fn from_origin(origin: &str) -> IamResult<RelyingParty> {
        let bad = || IamError::Invalid(format!("{origin:?} is not an origin for WebAuthn"));
        let origin = origin.trim_end_matches('/');
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .ok_or_else(bad)?;
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(bad());
        }
        let host = if rest.starts_with('[') {
            return Err(IamError::Invalid(
                "WebAuthn needs a host name, not an IP address: reach the server by name \
                 (e.g. localhost) or set --public-url"
                    .into(),
            ));
        } else {
            rest.rsplit_once(':').map_or(rest, |(h, _)| h)
        };
        if host.is_empty()
            || host.parse::<std::net::Ipv4Addr>().is_ok()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        {
            return Err(IamError::Invalid(
                "WebAuthn needs a host name, not an IP address: reach the server by name \
                 (e.g. localhost) or set --public-url"
                    .into(),
            ));
        }
        if origin.starts_with("http://") && host != "localhost" {
            return Err(IamError::Invalid(
                "WebAuthn needs https (plain http only on localhost)".into(),
            ));
        }
        Ok(RelyingParty {
            id: host.to_ascii_lowercase(),
            origin: origin.to_ascii_lowercase(),
        })
    }
}

/// A started ceremony: `handle` names it when the browser answers; `options` is the
/// `publicKey` member for `navigator.credentials.create/get`, binary fields in base64url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingKey {
    pub handle: String,
    pub options: Value,
}

/// What the browser sends back: a `PublicKeyCredential` in its JSON form (binary fields in
/// base64url).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyResponse {
    #[serde(default)]
    pub id: String,
    pub raw_id: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    pub response: KeyResponseBody,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyResponseBody {
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// Registration.
    #[serde(default)]
    pub attestation_object: Option<String>,
    /// Authentication.
    #[serde(default)]
    pub authenticator_data: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub user_handle: Option<String>,
}

/// A parsed COSE public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoseKey {
    /// Uncompressed P-256 point.
    Es256(Vec<u8>),
    Ed25519(Vec<u8>),
    Rs256 {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl CoseKey {
    pub fn alg(&self) -> i64 {
        match self {
            CoseKey::Es256(_) => COSE_ES256,
            CoseKey::Ed25519(_) => COSE_EDDSA,
            CoseKey::Rs256 { .. } => COSE_RS256,
        }
    }

    /// Verifies a WebAuthn signature (ECDSA signatures are ASN.1 DER).
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            CoseKey::Es256(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(message, sig)
                .is_ok(),
            CoseKey::Ed25519(pk) => UnparsedPublicKey::new(&ED25519, pk)
                .verify(message, sig)
                .is_ok(),
            CoseKey::Rs256 { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
        }
    }
}

fn invalid(m: impl Into<String>) -> IamError {
    IamError::Invalid(m.into())
}

fn map_get(m: &[(Cbor, Cbor)], key: &Cbor) -> Option<Cbor> {
    m.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn cbor_int(v: &Cbor) -> Option<i64> {
    match v {
        Cbor::Integer(i) => i64::try_from(i128::from(*i)).ok(),
        _ => None,
    }
}

/// Parses a COSE_Key (RFC 9053) of a supported algorithm.
pub fn parse_cose_key(v: &Cbor) -> IamResult<CoseKey> {
    let Cbor::Map(m) = v else {
        return Err(invalid("the credential public key is not a COSE map"));
    };
    let int = |k: i64| map_get(m, &Cbor::Integer(k.into())).and_then(|v| cbor_int(&v));
    let bytes = |k: i64| match map_get(m, &Cbor::Integer(k.into())) {
        Some(Cbor::Bytes(b)) => Some(b),
        _ => None,
    };
    let kty = int(1);
    let alg = int(3);
    match (kty, alg) {
        (Some(2), Some(COSE_ES256)) => {
            let (Some(1), Some(x), Some(y)) = (int(-1), bytes(-2), bytes(-3)) else {
                return Err(invalid("an ES256 key must be on P-256 with x and y"));
            };
            if x.len() != 32 || y.len() != 32 {
                return Err(invalid("a P-256 coordinate must have 32 bytes"));
            }
            let mut point = vec![4u8];
            point.extend(x);
            point.extend(y);
            Ok(CoseKey::Es256(point))
        }
        (Some(1), Some(COSE_EDDSA)) => match (int(-1), bytes(-2)) {
            (Some(6), Some(x)) if x.len() == 32 => Ok(CoseKey::Ed25519(x)),
            _ => Err(invalid("an EdDSA key must be Ed25519 with 32 bytes")),
        },
        (Some(3), Some(COSE_RS256)) => match (bytes(-1), bytes(-2)) {
            (Some(n), Some(e)) if n.len() >= 256 && !e.is_empty() => Ok(CoseKey::Rs256 { n, e }),
            _ => Err(invalid(
                "an RS256 key needs a modulus of at least 2048 bits",
            )),
        },
        _ => Err(invalid(format!(
            "unsupported key type {kty:?} / algorithm {alg:?} (ES256, EdDSA and RS256 are)"
        ))),
    }
}

/// The authenticator data (WebAuthn §6.1).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthData {
    pub rp_id_hash: Vec<u8>,
    pub flags: u8,
    pub sign_count: u32,
    /// (AAGUID, credential id, COSE key) when the AT flag is set.
    pub attested: Option<(Vec<u8>, Vec<u8>, Cbor)>,
}

pub fn parse_auth_data(b: &[u8]) -> IamResult<AuthData> {
    let short = || invalid("the authenticator data is too short");
    let rp_id_hash = b.get(..32).ok_or_else(short)?.to_vec();
    let flags = *b.get(32).ok_or_else(short)?;
    let count: [u8; 4] = b
        .get(33..37)
        .ok_or_else(short)?
        .try_into()
        .map_err(|_| short())?;
    let sign_count = u32::from_be_bytes(count);
    let attested = if flags & FLAG_AT != 0 {
        let aaguid = b.get(37..53).ok_or_else(short)?.to_vec();
        let len = b.get(53..55).ok_or_else(short)?;
        let len = usize::from(u16::from_be_bytes([
            len.first().copied().unwrap_or(0),
            len.get(1).copied().unwrap_or(0),
        ]));
        if len == 0 || len > 1023 {
            return Err(invalid("the credential id must have 1 to 1023 bytes"));
        }
        let id = b.get(55..55 + len).ok_or_else(short)?.to_vec();
        let mut rest = b.get(55 + len..).ok_or_else(short)?;
        let key: Cbor = ciborium::de::from_reader(&mut rest)
            .map_err(|_| invalid("the credential public key is not CBOR"))?;
        Some((aaguid, id, key))
    } else {
        None
    };
    Ok(AuthData {
        rp_id_hash,
        flags,
        sign_count,
        attested,
    })
}

fn b64u(what: &str, s: &str) -> IamResult<Vec<u8>> {
    if s.len() > 64 * 1024 {
        return Err(invalid(format!("{what} is too long")));
    }
    B64U.decode(s.trim_end_matches('='))
        .map_err(|_| invalid(format!("{what} is not base64url")))
}

/// Checks the client data of a ceremony; returns its SHA-256.
pub fn check_client_data(
    raw: &[u8],
    kind: &str,
    challenge: &str,
    rp: &RelyingParty,
) -> IamResult<Vec<u8>> {
    let v: Value =
        serde_json::from_slice(raw).map_err(|_| invalid("clientDataJSON is not JSON"))?;
    if v.get("type").and_then(Value::as_str) != Some(kind) {
        return Err(invalid(format!("the client data is not of type {kind}")));
    }
    let got = v.get("challenge").and_then(Value::as_str).unwrap_or("");
    if got.trim_end_matches('=') != challenge {
        return Err(invalid("the client data answers another challenge"));
    }
    let origin = v.get("origin").and_then(Value::as_str).unwrap_or("");
    if !origin.eq_ignore_ascii_case(&rp.origin) {
        return Err(invalid(format!(
            "the origin {origin:?} is not this server's ({})",
            rp.origin
        )));
    }
    if v.get("crossOrigin").and_then(Value::as_bool) == Some(true) {
        return Err(invalid("cross-origin ceremonies are refused"));
    }
    Ok(Sha256::digest(raw).to_vec())
}

fn check_rp_and_presence(ad: &AuthData, rp: &RelyingParty) -> IamResult<()> {
    if ad.rp_id_hash != Sha256::digest(rp.id.as_bytes()).as_slice() {
        return Err(invalid(format!(
            "the authenticator signed for another relying party than {}",
            rp.id
        )));
    }
    if ad.flags & FLAG_UP == 0 {
        return Err(invalid("the user was not present (UP flag clear)"));
    }
    Ok(())
}

/// A registration checked against its challenge: the credential to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRegistration {
    pub id: String,
    pub key: CoseKey,
    /// The COSE key as stored (base64url of its CBOR).
    pub cose: String,
    pub sign_count: u32,
    pub aaguid: String,
    pub attestation: String,
    pub user_verified: bool,
}

/// Verifies a registration response (WebAuthn §7.1) for `challenge` (base64url).
pub fn verify_registration(
    resp: &KeyResponse,
    challenge: &str,
    rp: &RelyingParty,
) -> IamResult<VerifiedRegistration> {
    if !resp.kind.is_empty() && resp.kind != "public-key" {
        return Err(invalid("the credential is not a public-key credential"));
    }
    let client_data = b64u("clientDataJSON", &resp.response.client_data_json)?;
    let cd_hash = check_client_data(&client_data, "webauthn.create", challenge, rp)?;
    let att = b64u(
        "attestationObject",
        resp.response
            .attestation_object
            .as_deref()
            .ok_or_else(|| invalid("attestationObject is missing"))?,
    )?;
    let att: Cbor = ciborium::de::from_reader(att.as_slice())
        .map_err(|_| invalid("the attestation object is not CBOR"))?;
    let Cbor::Map(att) = att else {
        return Err(invalid("the attestation object is not a map"));
    };
    let text = |k: &str| map_get(&att, &Cbor::Text(k.into()));
    let fmt = match text("fmt") {
        Some(Cbor::Text(f)) => f,
        _ => return Err(invalid("the attestation format is missing")),
    };
    let Some(Cbor::Bytes(auth_data)) = text("authData") else {
        return Err(invalid("the authenticator data is missing"));
    };
    let Some(Cbor::Map(stmt)) = text("attStmt") else {
        return Err(invalid("the attestation statement is missing"));
    };
    let ad = parse_auth_data(&auth_data)?;
    check_rp_and_presence(&ad, rp)?;
    let Some((aaguid, cred_id, key_cbor)) = &ad.attested else {
        return Err(invalid("the authenticator data holds no credential"));
    };
    let raw_id = b64u("rawId", &resp.raw_id)?;
    if &raw_id != cred_id {
        return Err(invalid(
            "rawId differs from the credential id the authenticator made",
        ));
    }
    let key = parse_cose_key(key_cbor)?;
    match fmt.as_str() {
        "none" => {
            if !stmt.is_empty() {
                return Err(invalid("attestation 'none' must have an empty statement"));
            }
        }
        "packed" => {
            if map_get(&stmt, &Cbor::Text("x5c".into())).is_some() {
                return Err(invalid(
                    "attestation with a certificate chain is not accepted; register with \
                     attestation 'none'",
                ));
            }
            let alg = map_get(&stmt, &Cbor::Text("alg".into())).and_then(|v| cbor_int(&v));
            if alg != Some(key.alg()) {
                return Err(invalid(
                    "the self-attestation algorithm differs from the key's",
                ));
            }
            let Some(Cbor::Bytes(sig)) = map_get(&stmt, &Cbor::Text("sig".into())) else {
                return Err(invalid("the self-attestation has no signature"));
            };
            let mut msg = auth_data.clone();
            msg.extend_from_slice(&cd_hash);
            if !key.verify(&msg, &sig) {
                return Err(invalid("the self-attestation signature does not verify"));
            }
        }
        other => {
            return Err(invalid(format!(
                "attestation format {other:?} is not accepted (none and packed are)"
            )));
        }
    }
    let mut cose = Vec::new();
    ciborium::ser::into_writer(key_cbor, &mut cose)
        .map_err(|_| IamError::Internal("cannot encode a COSE key".into()))?;
    Ok(VerifiedRegistration {
        id: B64U.encode(cred_id),
        key,
        cose: B64U.encode(cose),
        sign_count: ad.sign_count,
        aaguid: hex::encode(aaguid),
        attestation: fmt,
        user_verified: ad.flags & FLAG_UV != 0,
    })
}

/// Verifies an assertion (WebAuthn §7.2) by `cred` for `challenge`; returns the new counter.
/// A counter that does not grow is `Err(CounterError)` — the caller audits it.
pub fn verify_assertion(
    resp: &KeyResponse,
    cred: &WebAuthnCredential,
    challenge: &str,
    rp: &RelyingParty,
) -> Result<u32, AssertionError> {
    let client_data =
        b64u("clientDataJSON", &resp.response.client_data_json).map_err(AssertionError::Bad)?;
    let cd_hash = check_client_data(&client_data, "webauthn.get", challenge, rp)
        .map_err(AssertionError::Bad)?;
    let auth_data = b64u(
        "authenticatorData",
        resp.response.authenticator_data.as_deref().unwrap_or(""),
    )
    .map_err(AssertionError::Bad)?;
    let sig = b64u(
        "signature",
        resp.response.signature.as_deref().unwrap_or(""),
    )
    .map_err(AssertionError::Bad)?;
    let ad = parse_auth_data(&auth_data).map_err(AssertionError::Bad)?;
    check_rp_and_presence(&ad, rp).map_err(AssertionError::Bad)?;
    let cose = b64u("the stored key", &cred.public_key).map_err(AssertionError::Bad)?;
    let key: Cbor = ciborium::de::from_reader(cose.as_slice())
        .map_err(|_| AssertionError::Bad(IamError::Internal("a stored key is corrupt".into())))?;
    let key = parse_cose_key(&key).map_err(AssertionError::Bad)?;
    let mut msg = auth_data;
    msg.extend_from_slice(&cd_hash);
    if !key.verify(&msg, &sig) {
        return Err(AssertionError::Bad(invalid(
            "the signature does not verify",
        )));
    }
    let new = ad.sign_count;
    if (new != 0 || cred.sign_count != 0) && i64::from(new) <= cred.sign_count {
        return Err(AssertionError::Counter {
            stored: cred.sign_count,
            got: new,
        });
    }
    Ok(new)
}

/// Why an assertion was refused.
#[derive(Debug)]
pub enum AssertionError {
    Bad(IamError),
    /// The signature counter did not grow: the authenticator may have been cloned.
    Counter {
        stored: i64,
        got: u32,
    },
}

fn handle_hash(handle: &str) -> String {
    hex::encode(Sha256::digest(handle.as_bytes()))
}

fn check_key_name(name: &str) -> IamResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(invalid(
            "a security key's name must have 1 to 64 printable characters",
        ));
    }
    Ok(name.to_string())
}

fn key_target(t: &Tenant, u: &User, id: &str) -> String {
    let short: String = id.chars().take(16).collect();
    format!("webauthn:{}/{}/{short}", t.name, u.username)
}

fn descriptors(creds: &[WebAuthnCredential]) -> Vec<Value> {
    creds
        .iter()
        .map(|c| json!({"type": "public-key", "id": c.id}))
        .collect()
}

impl IamService {
    /// Whether the user has a registered security key.
    pub(crate) async fn has_security_key(&self, t: &Tenant, u: &User) -> IamResult<bool> {
        Ok(!self
            .store
            .list_webauthn_credentials(TenantCtx::new(t.id), u.id)
            .await?
            .is_empty())
    }

    async fn new_challenge(
        &self,
        t: &Tenant,
        u: &User,
        purpose: &str,
    ) -> IamResult<(String, String)> {
        let handle = crate::secret::new_secret(&self.env, HANDLE_PREFIX)?;
        let raw: [u8; 32] = self
            .env
            .random()
            .map_err(|e| IamError::Internal(e.to_string()))?;
        let challenge = B64U.encode(raw);
        let now = self.env.now();
        self.store
            .put_webauthn_challenge(
                TenantCtx::new(t.id),
                &WebAuthnChallenge {
                    id_hash: handle_hash(&handle),
                    tenant: t.id,
                    user: u.id,
                    purpose: purpose.into(),
                    challenge: challenge.clone(),
                    expires_at: now.plus_secs(CHALLENGE_TTL_SECS),
                },
                now,
            )
            .await?;
        Ok((handle, challenge))
    }

    /// Takes the challenge `handle` names if it is the user's, of `purpose`, and live.
    async fn take_challenge(
        &self,
        t: &Tenant,
        handle: &str,
        purpose: &str,
    ) -> IamResult<WebAuthnChallenge> {
        let gone =
            || invalid("the security key challenge is unknown, used or expired: start again");
        if !handle.starts_with(HANDLE_PREFIX) || handle.len() > 128 {
            return Err(gone());
        }
        let c = self
            .store
            .take_webauthn_challenge(TenantCtx::new(t.id), &handle_hash(handle))
            .await?
            .ok_or_else(gone)?;
        if c.purpose != purpose || c.expires_at.0 <= self.env.now().0 {
            return Err(gone());
        }
        Ok(c)
    }

    /// Starts registering a security key for the caller (a session that must still enrol a
    /// second factor may do it).
    pub async fn webauthn_register_begin(
        &self,
        p: &Principal,
        rp: &RelyingParty,
    ) -> IamResult<PendingKey> {
        if p.kind != parapet_store::CredentialKind::Session {
            return Err(IamError::Forbidden(
                "security keys are registered from a log-in session, not with an API token".into(),
            ));
        }
        let existing = self
            .store
            .list_webauthn_credentials(TenantCtx::new(p.tenant.id), p.user.id)
            .await?;
        if existing.len() >= MAX_KEYS {
            return Err(invalid(format!(
                "at most {MAX_KEYS} security keys per user"
            )));
        }
        let (handle, challenge) = self.new_challenge(&p.tenant, &p.user, "register").await?;
        let options = json!({
            "challenge": challenge,
            "rp": {"id": rp.id, "name": "Parapet"},
            "user": {"id": B64U.encode(p.user.id.0.as_bytes()), "name": p.login_name(),
                     "displayName": p.user.username},
            "pubKeyCredParams": [
                {"type": "public-key", "alg": COSE_ES256},
                {"type": "public-key", "alg": COSE_EDDSA},
                {"type": "public-key", "alg": COSE_RS256},
            ],
            "timeout": CHALLENGE_TTL_SECS * 1000,
            "attestation": "none",
            "excludeCredentials": descriptors(&existing),
            "authenticatorSelection": {"residentKey": "preferred", "userVerification": "preferred"},
        });
        Ok(PendingKey { handle, options })
    }

    /// Ends a registration: verifies the authenticator's answer and stores the key (audited).
    pub async fn webauthn_register_finish(
        &self,
        p: &Principal,
        rp: &RelyingParty,
        handle: &str,
        name: &str,
        resp: &KeyResponse,
        meta: &RequestMeta,
    ) -> IamResult<WebAuthnCredential> {
        let name = check_key_name(name)?;
        let c = self.take_challenge(&p.tenant, handle, "register").await?;
        if c.user != p.user.id {
            return Err(invalid(
                "the security key challenge is unknown, used or expired: start again",
            ));
        }
        let target = format!("user:{}/{}", p.tenant.name, p.user.username);
        let v = match verify_registration(resp, &c.challenge, rp) {
            Ok(v) => v,
            Err(e) => {
                let ev = event(
                    &self.env,
                    Some(&p.tenant),
                    p.actor(),
                    "mfa.webauthn.register",
                    target,
                    meta,
                    AuditOutcome::Failure,
                    json!({"reason": e.to_string()}),
                );
                self.store.append_audit(&ev).await?;
                return Err(e);
            }
        };
        let cred = WebAuthnCredential {
            id: v.id.clone(),
            tenant: p.tenant.id,
            user: p.user.id,
            name: name.clone(),
            public_key: v.cose,
            alg: v.key.alg(),
            sign_count: i64::from(v.sign_count),
            aaguid: v.aaguid,
            attestation: v.attestation.clone(),
            created_at: self.env.now(),
            last_used_at: None,
        };
        let ev = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            "mfa.webauthn.register",
            key_target(&p.tenant, &p.user, &cred.id),
            meta,
            AuditOutcome::Success,
            json!({"name": name, "alg": cred.alg, "attestation": v.attestation,
                   "user_verified": v.user_verified, "aaguid": cred.aaguid}),
        );
        self.store
            .add_webauthn_credential(TenantCtx::new(p.tenant.id), &cred, &ev)
            .await?;
        self.forget_cached(None, Some(p.user.id));
        Ok(cred)
    }

    /// The caller's security keys.
    pub async fn webauthn_list(&self, p: &Principal) -> IamResult<Vec<WebAuthnCredential>> {
        Ok(self
            .store
            .list_webauthn_credentials(TenantCtx::new(p.tenant.id), p.user.id)
            .await?)
    }

    /// Renames one of the caller's keys.
    pub async fn webauthn_rename(
        &self,
        p: &Principal,
        id: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        if !p.has_scope("write") {
            return Err(IamError::Forbidden(
                "this token lacks the 'write' scope".into(),
            ));
        }
        let name = check_key_name(name)?;
        let ev = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            "mfa.webauthn.rename",
            key_target(&p.tenant, &p.user, id),
            meta,
            AuditOutcome::Success,
            json!({"name": name}),
        );
        match self
            .store
            .rename_webauthn_credential(TenantCtx::new(p.tenant.id), p.user.id, id, &name, &ev)
            .await
        {
            Err(StoreError::NotFound) => Err(IamError::NotFound("no such security key".into())),
            r => Ok(r?),
        }
    }

    /// Removes one of the caller's keys.
    pub async fn webauthn_remove(
        &self,
        p: &Principal,
        id: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        if !p.has_scope("write") {
            return Err(IamError::Forbidden(
                "this token lacks the 'write' scope".into(),
            ));
        }
        let ev = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            "mfa.webauthn.remove",
            key_target(&p.tenant, &p.user, id),
            meta,
            AuditOutcome::Success,
            json!({"by": "owner"}),
        );
        match self
            .store
            .remove_webauthn_credential(TenantCtx::new(p.tenant.id), p.user.id, id, &ev)
            .await
        {
            Err(StoreError::NotFound) => Err(IamError::NotFound("no such security key".into())),
            r => Ok(r?),
        }
    }

    /// A user's security keys, for an administrator of the tenant.
    pub async fn webauthn_list_of(
        &self,
        p: &Principal,
        tenant: &str,
        username: &str,
        meta: &RequestMeta,
    ) -> IamResult<Vec<WebAuthnCredential>> {
        let t = self.resolve(p, tenant, Action::AccountUnlock, meta).await?;
        let u = self.user_in(&t, username).await?;
        Ok(self
            .store
            .list_webauthn_credentials(TenantCtx::new(t.id), u.id)
            .await?)
    }

    /// Removes a user's security key (an administrator, for a lost or stolen key); audited.
    pub async fn webauthn_remove_of(
        &self,
        p: &Principal,
        tenant: &str,
        username: &str,
        id: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let t = self.resolve(p, tenant, Action::AccountUnlock, meta).await?;
        let u = self.user_in(&t, username).await?;
        let ev = event(
            &self.env,
            Some(&t),
            p.actor(),
            "mfa.webauthn.remove",
            key_target(&t, &u, id),
            meta,
            AuditOutcome::Success,
            json!({"by": "administrator", "user": u.id}),
        );
        match self
            .store
            .remove_webauthn_credential(TenantCtx::new(t.id), u.id, id, &ev)
            .await
        {
            Err(StoreError::NotFound) => Err(IamError::NotFound(format!(
                "{} has no such security key",
                u.username
            ))),
            r => Ok(r?),
        }
    }

    /// After a correct password: the challenge for the user's keys.
    pub(crate) async fn webauthn_login_begin(
        &self,
        t: &Tenant,
        u: &User,
        rp: &RelyingParty,
    ) -> IamResult<PendingKey> {
        let creds = self
            .store
            .list_webauthn_credentials(TenantCtx::new(t.id), u.id)
            .await?;
        let (handle, challenge) = self.new_challenge(t, u, "login").await?;
        Ok(PendingKey {
            handle,
            options: json!({
                "challenge": challenge,
                "rpId": rp.id,
                "allowCredentials": descriptors(&creds),
                "userVerification": "preferred",
                "timeout": CHALLENGE_TTL_SECS * 1000,
            }),
        })
    }

    /// Ends a log-in whose password passed ([`IamService::login_step`]) with the security
    /// key's assertion. Every failure is `Unauthenticated`, recorded, and counted towards the
    /// second-factor lockout; a counter that does not grow is audited as a possible clone.
    pub async fn webauthn_login_finish(
        &self,
        login: &str,
        rp: &RelyingParty,
        handle: &str,
        resp: &KeyResponse,
        meta: &RequestMeta,
    ) -> IamResult<IssuedCredential> {
        let (tenant, user, policy) = self.login_target(login).await?;
        let c = match self.take_challenge(&tenant, handle, "login").await {
            Ok(c) if c.user == user.id => c,
            Ok(_) | Err(IamError::Invalid(_)) => {
                let ev = self.key_fail(
                    &tenant,
                    &user,
                    meta,
                    json!({"reason": "unknown, used or expired challenge"}),
                );
                self.store.append_audit(&ev).await?;
                return Err(IamError::Unauthenticated);
            }
            Err(e) => return Err(e),
        };
        let ctx = TenantCtx::new(tenant.id);
        let now = self.env.now();
        let attempt = self
            .store
            .reserve_attempt(
                ctx,
                user.id,
                Factor::SecondFactor,
                policy.mfa_lockout_threshold,
                now,
            )
            .await?;
        let Attempt::Allowed { failures, lockouts } = attempt else {
            let ev = self.key_fail(&tenant, &user, meta, json!({"reason": "account locked"}));
            self.store.append_audit(&ev).await?;
            return Err(IamError::Unauthenticated);
        };
        let creds = self.store.list_webauthn_credentials(ctx, user.id).await?;
        let raw = B64U
            .decode(resp.raw_id.trim_end_matches('='))
            .unwrap_or_default();
        let cred = creds
            .iter()
            .find(|k| B64U.decode(&k.id).ok().as_deref() == Some(raw.as_slice()));
        let outcome = match cred {
            None => Err(json!({"reason": "unknown security key"})),
            Some(k) => match verify_assertion(resp, k, &c.challenge, rp) {
                Ok(n) => {
                    if self
                        .store
                        .use_webauthn_credential(ctx, &k.id, k.sign_count, i64::from(n), now)
                        .await?
                    {
                        Ok(k)
                    } else {
                        Err(json!({"reason": "the key was used concurrently", "key": k.name}))
                    }
                }
                Err(AssertionError::Counter { stored, got }) => Err(json!({
                    "reason": "signature counter did not grow: the security key may be cloned",
                    "key": k.name, "stored_counter": stored, "received_counter": got,
                    "possible_clone": true})),
                Err(AssertionError::Bad(e)) => Err(json!({"reason": e.to_string(), "key": k.name})),
            },
        };
        match outcome {
            Ok(k) => {
                self.store
                    .clear_failures(ctx, user.id, Factor::SecondFactor, true)
                    .await?;
                let key_name = k.name.clone();
                let mut issued = self
                    .open_session(tenant, user, vec![], "password+webauthn", meta)
                    .await?;
                issued.principal.scopes.clear();
                tracing::debug!(key = %key_name, "log-in with a security key");
                Ok(issued)
            }
            Err(details) => {
                let ev = self.key_fail(&tenant, &user, meta, details);
                if failures >= policy.mfa_lockout_threshold {
                    let lock = lock_for(&policy, lockouts, now);
                    self.store
                        .lock_account(ctx, user.id, Factor::SecondFactor, lock, &ev)
                        .await?;
                } else {
                    self.store.append_audit(&ev).await?;
                }
                Err(IamError::Unauthenticated)
            }
        }
    }

    /// The active account a log-in name designates (for the second step of a log-in, whose
    /// first step checked the password).
    async fn login_target(&self, login: &str) -> IamResult<(Tenant, User, AccountPolicy)> {
        let (tenant_name, username) = self.split_login(login);
        let (t, u) = match self
            .store
            .find_login(tenant_name, &username.to_ascii_lowercase())
            .await
        {
            Ok(f) => f,
            Err(StoreError::NotFound) => return Err(IamError::Unauthenticated),
            Err(e) => return Err(e.into()),
        };
        if t.status != parapet_store::TenantStatus::Active
            || u.status != parapet_store::UserStatus::Active
        {
            return Err(IamError::Unauthenticated);
        }
        let policy = self.effective_policy(&t).await?.policy;
        Ok((t, u, policy))
    }

    fn key_fail(
        &self,
        t: &Tenant,
        u: &User,
        meta: &RequestMeta,
        details: Value,
    ) -> parapet_store::AuditEvent {
        let mut d = json!({"factor": "second", "method": "webauthn"});
        if let (Some(m), Some(extra)) = (d.as_object_mut(), details.as_object()) {
            m.extend(extra.clone());
        }
        event(
            &self.env,
            Some(t),
            user_actor(u),
            "auth.login",
            format!("user:{}/{}", t.name, u.username),
            meta,
            AuditOutcome::Failure,
            d,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relying_parties_need_a_host_name_and_https_off_localhost() {
        let rp = RelyingParty::from_origin("http://localhost:8443").unwrap();
        assert_eq!(rp.id, "localhost");
        assert_eq!(rp.origin, "http://localhost:8443");
        let rp = RelyingParty::from_origin("https://Parapet.Example/").unwrap();
        assert_eq!(rp.id, "parapet.example");
        assert!(RelyingParty::from_origin("http://parapet.example").is_err());
        assert!(RelyingParty::from_origin("http://127.0.0.1:80").is_err());
        assert!(RelyingParty::from_origin("https://[::1]:80").is_err());
        assert!(RelyingParty::from_origin("https://a.example/x").is_err());
        assert!(RelyingParty::from_origin("ftp://a.example").is_err());
    }

    #[test]
    fn short_or_odd_authenticator_data_is_refused() {
        assert!(parse_auth_data(&[0u8; 36]).is_err());
        let mut ad = vec![0u8; 37];
        ad[32] = FLAG_UP;
        ad[36] = 5;
        let p = parse_auth_data(&ad).unwrap();
        assert_eq!(p.sign_count, 5);
        assert!(p.attested.is_none());
        // AT set but nothing follows.
        ad[32] = FLAG_UP | FLAG_AT;
        assert!(parse_auth_data(&ad).is_err());
    }
}
