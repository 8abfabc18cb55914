//! Keys and sealing: the repository's master key (wrapped by passphrase-derived keys), the keyed
//! hash that names chunks, AES-256-GCM sealing of every stored object, and the operator's Ed25519
//! signing key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use parapet_types::Env;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its plaintext: nonce and tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// A chunk's or tree's name: BLAKE3 keyed with the repository's secret id key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
    pub fn parse(s: &str) -> Result<BlobId> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)
            .map_err(|_| Error::corrupt("blob id", format!("{s:?} is not 64 hex digits")))?;
        Ok(BlobId(b))
    }
}

impl std::fmt::Debug for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The secret material of a repository (stored only wrapped by a key file).
#[derive(Serialize, Deserialize)]
pub struct MasterKey {
    enc: String,
    id: String,
    chunker_seed: u64,
}

impl MasterKey {
    pub fn generate(env: &Env) -> Result<MasterKey> {
        let enc: [u8; 32] = env.random().map_err(|e| Error::Entropy(e.to_string()))?;
        let id: [u8; 32] = env.random().map_err(|e| Error::Entropy(e.to_string()))?;
        let seed: [u8; 8] = env.random().map_err(|e| Error::Entropy(e.to_string()))?;
        Ok(MasterKey {
            enc: B64.encode(enc),
            id: B64.encode(id),
            // A zero seed would mean the public gear table: never use it.
            chunker_seed: u64::from_le_bytes(seed) | 1,
        })
    }

    pub fn keys(&self) -> Result<Keys> {
        let enc = decode32(&self.enc).ok_or_else(|| Error::corrupt("master key", "bad length"))?;
        let id = decode32(&self.id).ok_or_else(|| Error::corrupt("master key", "bad length"))?;
        Keys::new(&enc, id, self.chunker_seed)
    }
}

fn decode32(s: &str) -> Option<[u8; 32]> {
    B64.decode(s).ok()?.try_into().ok()
}

/// The working keys of an open repository.
pub struct Keys {
    aead: LessSafeKey,
    id_key: [u8; 32],
    pub chunker_seed: u64,
}

impl Keys {
    fn new(enc: &[u8; 32], id_key: [u8; 32], chunker_seed: u64) -> Result<Keys> {
        let unbound = UnboundKey::new(&AES_256_GCM, enc)
            .map_err(|_| Error::corrupt("master key", "unusable AES key"))?;
        Ok(Keys {
            aead: LessSafeKey::new(unbound),
            id_key,
            chunker_seed,
        })
    }

    /// The keyed hash naming `data`.
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.id_key, data).as_bytes())
    }

    /// Encrypts `plaintext` bound to `aad`: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, env: &Env, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.aead, env, aad, plaintext)
    }

    /// Decrypts what [`Keys::seal`] produced; fails if any byte or the `aad` differs.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.aead, aad, sealed)
    }
}

fn seal_with(key: &LessSafeKey, env: &Env, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = env.random().map_err(|e| Error::Entropy(e.to_string()))?;
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let body = out
        .get_mut(NONCE_LEN..)
        .ok_or_else(|| Error::Invalid("seal".into()))?;
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
        .map_err(|_| Error::Invalid("encryption failed".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

fn open_with(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = sealed.get(..NONCE_LEN)?.try_into().ok()?;
    let mut body = sealed.get(NONCE_LEN..)?.to_vec();
    let n = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .ok()?
        .len();
    body.truncate(n);
    Some(body)
}

/// A key file: the master key wrapped by a key derived from a passphrase with Argon2id.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    pub kdf: String,
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
    pub salt: String,
    pub created_ms: i64,
    pub hostname: String,
    pub data: String,
}

/// Argon2id parameters of new key files (OWASP's recommended minimum: 19 MiB, 2 passes).
pub const KDF_M_KIB: u32 = 19 * 1024;
pub const KDF_T: u32 = 2;

fn derive(password: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> Result<LessSafeKey> {
    let params = argon2::Params::new(m, t, p, Some(32))
        .map_err(|e| Error::Invalid(format!("key derivation parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut kek = [0u8; 32];
    argon
        .hash_password_into(password, salt, &mut kek)
        .map_err(|e| Error::Invalid(format!("key derivation: {e}")))?;
    let unbound =
        UnboundKey::new(&AES_256_GCM, &kek).map_err(|_| Error::Invalid("key derivation".into()))?;
    Ok(LessSafeKey::new(unbound))
}

impl KeyFile {
    pub fn wrap(
        env: &Env,
        password: &[u8],
        master: &MasterKey,
        hostname: String,
    ) -> Result<KeyFile> {
        if password.is_empty() {
            return Err(Error::Invalid(
                "the repository password must not be empty".into(),
            ));
        }
        let salt: [u8; 32] = env.random().map_err(|e| Error::Entropy(e.to_string()))?;
        let kek = derive(password, &salt, KDF_M_KIB, KDF_T, 1)?;
        let plain = serde_json::to_vec(master).map_err(|e| Error::Invalid(e.to_string()))?;
        let sealed = seal_with(&kek, env, b"parapet-backup-key", &plain)?;
        Ok(KeyFile {
            kdf: "argon2id".into(),
            m_kib: KDF_M_KIB,
            t: KDF_T,
            p: 1,
            salt: B64.encode(salt),
            created_ms: env.now().0,
            hostname,
            data: B64.encode(sealed),
        })
    }

    /// A record that the repository's secret is held by a key service: `ciphertext` is the
    /// secret (the password of an Argon2id key file) encrypted under the service's key
    /// `key_name` (X.1642 8.2). It unwraps nothing by itself.
    pub fn kms_record(env: &Env, key_name: &str, ciphertext: &str, hostname: String) -> KeyFile {
        KeyFile {
            kdf: "kms".into(),
            m_kib: 0,
            t: 0,
            p: 0,
            salt: key_name.to_string(),
            created_ms: env.now().0,
            hostname,
            data: ciphertext.to_string(),
        }
    }

    /// For a key-service record: the key's name and the ciphertext of the secret.
    pub fn kms_wrapped(&self) -> Option<(&str, &str)> {
        (self.kdf == "kms").then_some((self.salt.as_str(), self.data.as_str()))
    }

    /// The master key if `password` is this key file's; `None` if it is not.
    pub fn unwrap_with(&self, password: &[u8]) -> Result<Option<MasterKey>> {
        if self.kdf == "kms" {
            return Ok(None);
        }
        if self.kdf != "argon2id" || self.m_kib > 4 * 1024 * 1024 || self.t > 100 || self.p > 64 {
            return Err(Error::corrupt("key file", "unsupported key derivation"));
        }
        let salt = B64
            .decode(&self.salt)
            .map_err(|_| Error::corrupt("key file", "bad salt"))?;
        let data = B64
            .decode(&self.data)
            .map_err(|_| Error::corrupt("key file", "bad data"))?;
        let kek = derive(password, &salt, self.m_kib, self.t, self.p)?;
        let Some(plain) = open_with(&kek, b"parapet-backup-key", &data) else {
            return Ok(None);
        };
        let mk = serde_json::from_slice(&plain)
            .map_err(|e| Error::corrupt("key file", e.to_string()))?;
        Ok(Some(mk))
    }
}

/// The operator's Ed25519 key that signs snapshot manifests (X.1642 8.10(3)).
pub struct OperatorKey(SigningKey);

const OPERATOR_KEY_LABEL: &str = "parapet-backup-operator-key";

impl OperatorKey {
    pub fn generate(env: &Env) -> Result<OperatorKey> {
        let seed: [u8; 32] = env.random().map_err(|e| Error::Entropy(e.to_string()))?;
        Ok(OperatorKey(SigningKey::from_bytes(&seed)))
    }
    /// The file form: one line `parapet-backup-operator-key <base64 seed>`.
    pub fn to_file_text(&self) -> String {
        format!("{OPERATOR_KEY_LABEL} {}\n", B64.encode(self.0.to_bytes()))
    }
    pub fn from_file_text(text: &str) -> Result<OperatorKey> {
        let bad = || Error::Invalid("not a Parapet backup operator key file".into());
        let rest = text
            .trim()
            .strip_prefix(OPERATOR_KEY_LABEL)
            .ok_or_else(bad)?;
        let seed = decode32(rest.trim()).ok_or_else(bad)?;
        Ok(OperatorKey(SigningKey::from_bytes(&seed)))
    }
    /// `ed25519:<base64 public key>`.
    pub fn public(&self) -> String {
        format!("ed25519:{}", B64.encode(self.0.verifying_key().to_bytes()))
    }
    pub fn sign(&self, msg: &[u8]) -> String {
        B64.encode(self.0.sign(msg).to_bytes())
    }
}

/// Parses `ed25519:<base64>` into a verifying key.
pub fn parse_public_key(s: &str) -> Result<VerifyingKey> {
    let bad = || {
        Error::Invalid(format!(
            "{s:?} is not an operator public key (ed25519:BASE64)"
        ))
    };
    let b = decode32(s.trim().strip_prefix("ed25519:").ok_or_else(bad)?).ok_or_else(bad)?;
    VerifyingKey::from_bytes(&b).map_err(|_| bad())
}

/// Checks `signature` (base64) over `msg` by `public` (`ed25519:…`).
pub fn verify_signature(public: &str, msg: &[u8], signature: &str) -> Result<()> {
    let key = parse_public_key(public)?;
    let sig: [u8; 64] = B64
        .decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Signature("malformed signature".into()))?;
    key.verify_strict(msg.as_ref(), &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| Error::Signature("the signature does not match the manifest".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn sealing_detects_any_change() {
        let env = Env::system();
        let keys = MasterKey::generate(&env).unwrap().keys().unwrap();
        let sealed = keys.seal(&env, b"aad", b"hello world").unwrap();
        assert_eq!(keys.open(b"aad", &sealed).unwrap(), b"hello world");
        assert!(keys.open(b"other", &sealed).is_none());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            if let Some(b) = bad.get_mut(i) {
                *b ^= 1;
            }
            assert!(keys.open(b"aad", &bad).is_none(), "byte {i}");
        }
        // Another repository's key opens nothing.
        let other = MasterKey::generate(&env).unwrap().keys().unwrap();
        assert!(other.open(b"aad", &sealed).is_none());
        // The keyed hash depends on the key: it reveals nothing about plain hashes.
        assert_ne!(keys.blob_id(b"x"), other.blob_id(b"x"));
        assert_ne!(keys.blob_id(b"x").0, *blake3::hash(b"x").as_bytes());
    }

    #[test]
    fn key_files_open_only_with_their_password() {
        let env = Env::system();
        let mk = MasterKey::generate(&env).unwrap();
        let kf = KeyFile::wrap(&env, b"secret", &mk, "host".into()).unwrap();
        assert!(kf.unwrap_with(b"wrong").unwrap().is_none());
        let back = kf.unwrap_with(b"secret").unwrap().unwrap();
        assert_eq!(back.id, mk.id);
        assert!(KeyFile::wrap(&env, b"", &mk, "h".into()).is_err());
    }

    #[test]
    fn operator_signatures() {
        let env = Env::system();
        let k = OperatorKey::generate(&env).unwrap();
        let k2 = OperatorKey::from_file_text(&k.to_file_text()).unwrap();
        assert_eq!(k.public(), k2.public());
        let sig = k.sign(b"manifest");
        verify_signature(&k.public(), b"manifest", &sig).unwrap();
        assert!(verify_signature(&k.public(), b"manifest!", &sig).is_err());
        let other = OperatorKey::generate(&env).unwrap();
        assert!(verify_signature(&other.public(), b"manifest", &sig).is_err());
        assert!(OperatorKey::from_file_text("nonsense").is_err());
        assert!(parse_public_key("ed25519:AAAA").is_err());
    }
}
