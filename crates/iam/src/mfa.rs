//! Second factors (X.1642 8.1.2(1) multifactor authentication, 7.2.2.4(4) strong
//! authentication): TOTP (RFC 6238, HMAC-SHA-1, 30-second steps, 6 digits) with enrolment,
//! verification (one step of drift either way; a code, or any code of an earlier step, is
//! accepted once only), single-use recovery codes, removal, and the policy that makes a second
//! factor mandatory for a tenant's users (a session opened without one may only enrol one).
//!
//! TOTP secrets are sealed at rest with AES-256-GCM under the server's secrets key, bound to the
//! tenant and user (as additional data) so that a sealed secret copied to another row does not
//! open. Wrong codes count towards the second-factor lockout, apart from password failures.

use aws_lc_rs::{aead, hmac};
use base64::Engine;
use parapet_store::{
    AccountPolicy, Attempt, AuditOutcome, Factor, StoreError, Tenant, User, user_actor,
};
use parapet_types::{Env, TenantCtx, Timestamp};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::authz::Action;
use crate::policy::lock_for;
use crate::{IamError, IamResult, IamService, Principal, RequestMeta, event};

/// Length of a TOTP time step.
pub const STEP_MS: i64 = 30_000;
/// How many recovery codes an enrolment hands out.
pub const RECOVERY_CODES: usize = 10;
/// The session scope of a log-in that still has to enrol a mandatory second factor.
pub const ENROL_ONLY_SCOPE: &str = "mfa-enrol-only";

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (the form authenticator apps take).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buf: u32 = 0;
    let mut bits = 0u32;
    for b in bytes {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let i = ((buf >> bits) & 31) as usize;
            out.push(char::from(B32.get(i).copied().unwrap_or(b'A')));
        }
    }
    if bits > 0 {
        let i = ((buf << (5 - bits)) & 31) as usize;
        out.push(char::from(B32.get(i).copied().unwrap_or(b'A')));
    }
    out
}

/// The TOTP step containing `t`.
pub fn step_of(t: Timestamp) -> i64 {
    t.0.div_euclid(STEP_MS)
}

/// The HOTP value (RFC 4226) of `secret` at counter `step`, with `digits` digits.
pub fn hotp(secret: &[u8], step: i64, digits: u32) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = mac
        .get(offset..offset + 4)
        .map(|w| {
            (u32::from(w.first().copied().unwrap_or(0) & 0x7f) << 24)
                | (u32::from(w.get(1).copied().unwrap_or(0)) << 16)
                | (u32::from(w.get(2).copied().unwrap_or(0)) << 8)
                | u32::from(w.get(3).copied().unwrap_or(0))
        })
        .unwrap_or(0);
    let modulus = 10u32.saturating_pow(digits);
    format!("{:0width$}", word % modulus, width = digits as usize)
}

/// Seals `plain` under the server's secrets key (AES-256-GCM, `aad` binds it to its row).
/// Also used for notification webhook secrets.
pub fn seal_local(key: &[u8; 32], env: &Env, aad: &str, plain: &[u8]) -> IamResult<String> {
    let nonce: [u8; 12] = env
        .random()
        .map_err(|e| IamError::Internal(e.to_string()))?;
    let k = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, key)
            .map_err(|_| IamError::Internal("bad secrets key".into()))?,
    );
    let mut buf = plain.to_vec();
    k.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(aad.as_bytes()),
        &mut buf,
    )
    .map_err(|_| IamError::Internal("sealing failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(format!(
        "v1:{}",
        base64::engine::general_purpose::STANDARD.encode(out)
    ))
}

/// Opens what [`seal_local`] sealed with the same key and `aad`.
pub fn open_local(key: &[u8; 32], aad: &str, sealed: &str) -> IamResult<Vec<u8>> {
    let bad = || IamError::Internal("a sealed secret does not open with this server's key".into());
    let body = sealed.strip_prefix("v1:").ok_or_else(bad)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| bad())?;
    if raw.len() < 12 + 16 {
        return Err(bad());
    }
    let (nonce, ct) = raw.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| bad())?;
    let k =
        aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, key).map_err(|_| bad())?);
    let mut buf = ct.to_vec();
    let plain = k
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad.as_bytes()),
            &mut buf,
        )
        .map_err(|_| bad())?;
    Ok(plain.to_vec())
}

fn aad(t: &Tenant, u: &User) -> String {
    totp_aad(t.id, u.id)
}

/// What binds a sealed TOTP secret to its row.
pub(crate) fn totp_aad(t: parapet_types::TenantId, u: parapet_types::UserId) -> String {
    format!("parapet-totp:{t}:{u}")
}

fn code_hash(code: &str) -> String {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(norm.as_bytes()))
}

/// A user's second-factor state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaStatus {
    /// `none`, `pending` (enrolment not confirmed) or `enabled`.
    pub totp: &'static str,
    pub recovery_codes_left: u32,
    /// Whether the tenant's policy makes a second factor mandatory.
    pub required: bool,
}

/// A started enrolment: the secret to put in an authenticator app (shown once).
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    pub secret_base32: String,
    pub uri: String,
}

impl IamService {
    /// The caller's second factors.
    pub async fn mfa_status(&self, p: &Principal) -> IamResult<MfaStatus> {
        let ctx = TenantCtx::new(p.tenant.id);
        let totp = self.store.get_totp(ctx, p.user.id).await?;
        let policy = self.effective_policy(&p.tenant).await?.policy;
        Ok(MfaStatus {
            totp: match &totp {
                None => "none",
                Some(t) if t.confirmed_at.is_none() => "pending",
                Some(_) => "enabled",
            },
            recovery_codes_left: self.store.recovery_codes_left(ctx, p.user.id).await?,
            required: self.mfa_required_for(&policy, &p.user),
        })
    }

    /// Starts a TOTP enrolment for the caller.
    pub async fn totp_begin(&self, p: &Principal, meta: &RequestMeta) -> IamResult<TotpEnrolment> {
        let secret: [u8; 20] = self
            .env
            .random()
            .map_err(|e| IamError::Internal(e.to_string()))?;
        let sealed = self.seal_secret(&aad(&p.tenant, &p.user), &secret)?;
        let e = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            "mfa.totp.begin",
            format!("user:{}/{}", p.tenant.name, p.user.username),
            meta,
            AuditOutcome::Success,
            json!({}),
        );
        self.store
            .begin_totp(TenantCtx::new(p.tenant.id), p.user.id, &sealed, e.time, &e)
            .await?;
        let secret_base32 = base32(&secret);
        let issuer = "Parapet";
        let label = p.login_name().replace(['/', '?', '#', '&', '%', ' '], "_");
        Ok(TotpEnrolment {
            uri: format!(
                "otpauth://totp/{issuer}:{label}?secret={secret_base32}&issuer={issuer}\
                 &algorithm=SHA1&digits=6&period=30"
            ),
            secret_base32,
        })
    }

    /// The step of `code` for `secret` within one step of `now`, if any.
    fn matching_step(secret: &[u8], code: &str, now: Timestamp) -> Option<i64> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let s = step_of(now);
        [s - 1, s, s + 1].into_iter().find(|st| {
            let want = hotp(secret, *st, 6);
            want.len() == code.len()
                && want
                    .bytes()
                    .zip(code.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }

    /// Confirms the caller's pending enrolment with a first code; returns the recovery codes
    /// (shown once).
    pub async fn totp_confirm(
        &self,
        p: &Principal,
        code: &str,
        meta: &RequestMeta,
    ) -> IamResult<Vec<String>> {
        let ctx = TenantCtx::new(p.tenant.id);
        let rec = match self.store.get_totp(ctx, p.user.id).await? {
            Some(r) if r.confirmed_at.is_none() => r,
            Some(_) => {
                return Err(IamError::Conflict(
                    "the authenticator is confirmed already".into(),
                ));
            }
            None => {
                return Err(IamError::NotFound(
                    "no enrolment in progress: start one first".into(),
                ));
            }
        };
        let secret = self.open_secret(&aad(&p.tenant, &p.user), &rec.sealed_secret)?;
        let now = self.env.now();
        let Some(step) = Self::matching_step(&secret, code, now) else {
            return Err(IamError::Invalid(
                "the code does not match: check the authenticator's clock and try the next code"
                    .into(),
            ));
        };
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let raw: [u8; 10] = self
                .env
                .random()
                .map_err(|e| IamError::Internal(e.to_string()))?;
            let s = base32(&raw);
            codes.push(format!(
                "{}-{}",
                s.get(..8).unwrap_or(""),
                s.get(8..16).unwrap_or("")
            ));
        }
        let hashes: Vec<String> = codes.iter().map(|c| code_hash(c)).collect();
        let e = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            "mfa.totp.enable",
            format!("user:{}/{}", p.tenant.name, p.user.username),
            meta,
            AuditOutcome::Success,
            json!({"recovery_codes": RECOVERY_CODES}),
        );
        self.store
            .confirm_totp(ctx, p.user.id, step, &hashes, now, &e)
            .await?;
        Ok(codes)
    }

    /// Removes the caller's TOTP factor; needs the caller's password.
    pub async fn totp_remove(
        &self,
        p: &Principal,
        password: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        if !p.has_scope("write") {
            return Err(IamError::Forbidden(
                "this token lacks the 'write' scope".into(),
            ));
        }
        if !self.verify(&p.user.password_hash, password).await? {
            let e = event(
                &self.env,
                Some(&p.tenant),
                p.actor(),
                "mfa.totp.remove",
                format!("user:{}/{}", p.tenant.name, p.user.username),
                meta,
                AuditOutcome::Failure,
                json!({"reason": "wrong password"}),
            );
            self.store.append_audit(&e).await?;
            return Err(IamError::Forbidden("wrong password".into()));
        }
        let e = event(
            &self.env,
            Some(&p.tenant),
            p.actor(),
            "mfa.totp.remove",
            format!("user:{}/{}", p.tenant.name, p.user.username),
            meta,
            AuditOutcome::Success,
            json!({}),
        );
        match self
            .store
            .remove_totp(TenantCtx::new(p.tenant.id), p.user.id, &e)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => {
                Err(IamError::NotFound("no authenticator enrolled".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a user's second factors (an administrator, for a lost device).
    pub async fn reset_mfa(
        &self,
        p: &Principal,
        tenant: &str,
        username: &str,
        meta: &RequestMeta,
    ) -> IamResult<()> {
        let t = self.resolve(p, tenant, Action::AccountUnlock, meta).await?;
        let u = self.user_in(&t, username).await?;
        let e = event(
            &self.env,
            Some(&t),
            p.actor(),
            "mfa.reset",
            format!("user:{}/{}", t.name, u.username),
            meta,
            AuditOutcome::Success,
            json!({"id": u.id}),
        );
        match self.store.remove_totp(TenantCtx::new(t.id), u.id, &e).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(IamError::NotFound(format!(
                "{} has no second factor",
                u.username
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// After a correct password: whether the user has a confirmed TOTP factor.
    pub(crate) async fn has_totp(&self, t: &Tenant, u: &User) -> IamResult<bool> {
        Ok(self
            .store
            .get_totp(TenantCtx::new(t.id), u.id)
            .await?
            .is_some_and(|r| r.confirmed_at.is_some()))
    }

    /// Checks a second factor (a TOTP code or a recovery code) under the second-factor lockout.
    /// Every failure is `Unauthenticated` and recorded.
    pub(crate) async fn second_factor(
        &self,
        t: &Tenant,
        u: &User,
        policy: &AccountPolicy,
        otp: &str,
        meta: &RequestMeta,
    ) -> IamResult<&'static str> {
        let ctx = TenantCtx::new(t.id);
        let now = self.env.now();
        let target = format!("user:{}/{}", t.name, u.username);
        let fail = |reason: &str, details: serde_json::Value| {
            let mut d = json!({"reason": reason, "factor": "second"});
            if let (Some(m), Some(extra)) = (d.as_object_mut(), details.as_object()) {
                m.extend(extra.clone());
            }
            event(
                &self.env,
                Some(t),
                user_actor(u),
                "auth.login",
                target.clone(),
                meta,
                AuditOutcome::Failure,
                d,
            )
        };
        let attempt = self
            .store
            .reserve_attempt(
                ctx,
                u.id,
                Factor::SecondFactor,
                policy.mfa_lockout_threshold,
                now,
            )
            .await?;
        let Attempt::Allowed { failures, lockouts } = attempt else {
            self.store
                .append_audit(&fail("account locked", json!({})))
                .await?;
            return Err(IamError::Unauthenticated);
        };
        let rec = self
            .store
            .get_totp(ctx, u.id)
            .await?
            .ok_or(IamError::Unauthenticated)?;
        let secret = self.open_secret(&aad(t, u), &rec.sealed_secret)?;
        let method = if let Some(step) = Self::matching_step(&secret, otp, now) {
            if self.store.use_totp_step(ctx, u.id, step).await? {
                Some("totp")
            } else {
                self.store
                    .append_audit(&fail("replayed code", json!({})))
                    .await?;
                None
            }
        } else if otp.trim().len() > 6
            && self
                .store
                .use_recovery_code(ctx, u.id, &code_hash(otp), now)
                .await?
        {
            Some("recovery-code")
        } else {
            None
        };
        match method {
            Some(m) => {
                self.store
                    .clear_failures(ctx, u.id, Factor::SecondFactor, true)
                    .await?;
                Ok(m)
            }
            None => {
                if failures >= policy.mfa_lockout_threshold {
                    let lock = lock_for(policy, lockouts, now);
                    self.store
                        .lock_account(
                            ctx,
                            u.id,
                            Factor::SecondFactor,
                            lock,
                            &fail(
                                "wrong code; account locked",
                                json!({"lockouts": lockouts + 1}),
                            ),
                        )
                        .await?;
                } else {
                    self.store
                        .append_audit(&fail("wrong code", json!({"failures": failures})))
                        .await?;
                }
                Err(IamError::Unauthenticated)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B (SHA-1 rows) and RFC 4226 appendix D.
    #[test]
    fn rfc_vectors() {
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59_i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(hotp(secret, step_of(Timestamp(t * 1000)), 8), want, "T={t}");
        }
        for (c, want) in [(0, "755224"), (1, "287082"), (9, "520489")] {
            assert_eq!(hotp(secret, c, 6), want);
        }
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_row() {
        let env = Env::system();
        let key = [7u8; 32];
        let s = seal_local(&key, &env, "a", b"secret").unwrap();
        assert!(!s.contains("secret"));
        assert_eq!(open_local(&key, "a", &s).unwrap(), b"secret");
        assert!(open_local(&key, "b", &s).is_err());
        assert!(open_local(&[8u8; 32], "a", &s).is_err());
    }
}
