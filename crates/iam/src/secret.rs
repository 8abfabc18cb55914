//! Passwords (Argon2id) and bearer secrets (random, stored as SHA-256).

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use parapet_types::Env;
use sha2::{Digest, Sha256};

use crate::IamError;

/// Argon2id cost. The default follows OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        PasswordCost {
            memory_kib: 19 * 1024,
            iterations: 2,
            lanes: 1,
        }
    }
}

impl PasswordCost {
    fn argon2(&self) -> Result<Argon2<'static>, IamError> {
        let params = Params::new(self.memory_kib, self.iterations, self.lanes, None)
            .map_err(|e| IamError::Internal(format!("invalid Argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes `password` into a PHC string with a fresh salt.
pub fn hash_password(env: &Env, cost: PasswordCost, password: &str) -> Result<String, IamError> {
    let salt_bytes: [u8; 16] = env
        .random()
        .map_err(|e| IamError::Internal(e.to_string()))?;
    cost.argon2()?
        .hash_password_with_salt(password.as_bytes(), &salt_bytes)
        .map(|h| h.to_string())
        .map_err(|e| IamError::Internal(format!("hashing failed: {e}")))
}

/// Checks `password` against a PHC string. Any malformed hash counts as a mismatch.
pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Minimal password rules (the identity issue adds per-tenant policies): at least 12 characters,
/// at most 1024, and not containing the user name.
pub fn check_password_policy(username: &str, password: &str) -> Result<(), IamError> {
    let n = password.chars().count();
    if n < 12 {
        return Err(IamError::Invalid(
            "the password must have at least 12 characters".into(),
        ));
    }
    if n > 1024 {
        return Err(IamError::Invalid(
            "the password must have at most 1024 characters".into(),
        ));
    }
    if !username.is_empty()
        && password
            .to_ascii_lowercase()
            .contains(&username.to_ascii_lowercase())
    {
        return Err(IamError::Invalid(
            "the password must not contain the user name".into(),
        ));
    }
    Ok(())
}

/// Prefix of session secrets and of API token secrets, so that a leaked secret is recognisable
/// by secret scanners.
pub const SESSION_PREFIX: &str = "pps_";
pub const API_TOKEN_PREFIX: &str = "ppt_";

/// A new bearer secret: prefix + 256 random bits in unpadded base64url.
pub fn new_secret(env: &Env, prefix: &str) -> Result<String, IamError> {
    let b: [u8; 32] = env
        .random()
        .map_err(|e| IamError::Internal(e.to_string()))?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    ))
}

/// What is stored of a bearer secret.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A random password for the first administrator: 24 characters from an unambiguous alphabet.
pub fn generate_password(env: &Env) -> Result<String, IamError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let b: [u8; 24] = env
        .random()
        .map_err(|e| IamError::Internal(e.to_string()))?;
    Ok(b.iter()
        .map(|x| {
            let i = usize::from(*x) % ALPHABET.len();
            char::from(ALPHABET.get(i).copied().unwrap_or(b'x'))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordCost {
        PasswordCost {
            memory_kib: 64,
            iterations: 1,
            lanes: 1,
        }
    }

    #[test]
    fn hashes_verify_and_are_salted() {
        let env = Env::system();
        let a = hash_password(&env, cheap(), "correct horse battery").unwrap();
        let b = hash_password(&env, cheap(), "correct horse battery").unwrap();
        assert_ne!(a, b, "salts must differ");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password(&a, "correct horse battery"));
        assert!(!verify_password(&a, "correct horse battery!"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn policy_rejects_short_and_name_containing_passwords() {
        assert!(check_password_policy("alice", "short").is_err());
        assert!(check_password_policy("alice", "xxAliceyyyyyyyy").is_err());
        assert!(check_password_policy("alice", "a perfectly fine one").is_ok());
    }

    #[test]
    fn secrets_are_prefixed_and_distinct() {
        let env = Env::system();
        let a = new_secret(&env, API_TOKEN_PREFIX).unwrap();
        let b = new_secret(&env, API_TOKEN_PREFIX).unwrap();
        assert!(a.starts_with("ppt_") && a.len() == 4 + 43);
        assert_ne!(a, b);
        assert_ne!(secret_hash(&a), secret_hash(&b));
        let p = generate_password(&env).unwrap();
        assert_eq!(p.chars().count(), 24);
    }
}
