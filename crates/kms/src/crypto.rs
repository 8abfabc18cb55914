//! The cryptographic primitives (aws-lc-rs) and Parapet's text formats for ciphertexts,
//! signatures and MACs. Pure functions: randomness comes in as arguments.
//!
//! A ciphertext is one line of text, `parapet:v1:<key id>:<version>:<base64url(nonce ‖ ct ‖ tag)>`
//! with a 96-bit nonce. The associated data bound by the AEAD is
//! `parapet:v1:<key id>:<version>\n` followed by the encryption context: for each pair, sorted
//! by key, the key's and the value's UTF-8 bytes each preceded by its length as a 4-byte
//! big-endian integer. A ciphertext therefore cannot be moved to another key, version or context.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Length of every symmetric key, Ed25519 seed and HMAC key.
pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
const PREFIX: &str = "parapet:v1:";

/// The kinds of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Aes256Gcm,
    ChaCha20Poly1305,
    Ed25519,
    HmacSha256,
}

impl KeyType {
    pub const ALL: [KeyType; 4] = [
        KeyType::Aes256Gcm,
        KeyType::ChaCha20Poly1305,
        KeyType::Ed25519,
        KeyType::HmacSha256,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Aes256Gcm => "aes256-gcm",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::Ed25519 => "ed25519",
            KeyType::HmacSha256 => "hmac-sha256",
        }
    }
    pub fn parse(s: &str) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// Whether the key encrypts (as opposed to signing or MACing).
    pub fn encrypts(self) -> bool {
        matches!(self, KeyType::Aes256Gcm | KeyType::ChaCha20Poly1305)
    }
}

/// Why a cryptographic operation failed. Deliberately vague for authentication failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("not a Parapet ciphertext: {0}")]
    Format(String),
    #[error(
        "decryption failed: the ciphertext was altered, or the key, version or encryption context differs"
    )]
    Authentication,
    #[error("{0}")]
    Key(String),
}

/// An encryption context: pairs bound to a ciphertext as associated data.
pub type Context = BTreeMap<String, String>;

/// The canonical encoding of a context (see the module documentation).
pub fn encode_context(ctx: &Context) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in ctx {
        for part in [k.as_bytes(), v.as_bytes()] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

/// SHA-256 (hex) of the context's encoding: what the audit log records instead of the context.
pub fn context_hash(ctx: &Context) -> String {
    hex::encode(Sha256::digest(encode_context(ctx)))
}

/// The header of a ciphertext, signature or MAC: `parapet:v1:<key id>:<version>`.
pub fn header(key: Uuid, version: i64) -> String {
    format!("{PREFIX}{key}:{version}")
}

/// The associated data of a ciphertext.
pub fn aad(key: Uuid, version: i64, ctx: &Context) -> Vec<u8> {
    let mut out = header(key, version).into_bytes();
    out.push(b'\n');
    out.extend_from_slice(&encode_context(ctx));
    out
}

/// A token of the form `parapet:v1:<key id>:<version>:<payload>`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub key: Uuid,
    pub version: i64,
    pub payload: Vec<u8>,
}

impl Token {
    pub fn encode(&self) -> String {
        encode_with_header(&header(self.key, self.version), &self.payload)
    }

    pub fn parse(text: &str) -> Result<Token, CryptoError> {
        let text = text.trim();
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| {
            CryptoError::Format("expected text starting with 'parapet:v1:'".into())
        })?;
        let mut parts = rest.splitn(3, ':');
        let (Some(key), Some(version), Some(payload)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Format(
                "expected parapet:v1:<key id>:<version>:<data>".into(),
            ));
        };
        let key = Uuid::parse_str(key)
            .map_err(|_| CryptoError::Format(format!("invalid key id {key:?}")))?;
        let version = version
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| CryptoError::Format(format!("invalid key version {version:?}")))?;
        let payload = base64_simd::URL_SAFE_NO_PAD
            .decode_to_vec(payload)
            .map_err(|_| CryptoError::Format("the data is not unpadded base64url".into()))?;
        Ok(Token {
            key,
            version,
            payload,
        })
    }
}

/// `header:base64url(payload)` in one allocation.
pub fn encode_with_header(header: &str, payload: &[u8]) -> String {
    let mut out = String::with_capacity(header.len() + 1 + payload.len().div_ceil(3) * 4);
    out.push_str(header);
    out.push(':');
    base64_simd::URL_SAFE_NO_PAD.encode_append(payload, &mut out);
    out
}

/// An AEAD key set up once for many operations (a batch): the key schedule is computed once.
pub struct Aead(LessSafeKey);

impl Aead {
    pub fn new(kt: KeyType, key: &[u8]) -> Result<Aead, CryptoError> {
        aead_key(kt, key).map(Aead)
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext`.
    pub fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                out.get_mut(NONCE_LEN..).unwrap_or_default(),
            )
            .map_err(|_| CryptoError::Key("encryption failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `nonce ‖ ciphertext ‖ tag`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Format("the ciphertext is truncated".into()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| CryptoError::Format("bad nonce".into()))?;
        let mut buf = body.to_vec();
        let n = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Authentication)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}

fn aead_key(kt: KeyType, key: &[u8]) -> Result<LessSafeKey, CryptoError> {
    let alg = match kt {
        KeyType::Aes256Gcm => &AES_256_GCM,
        KeyType::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        other => {
            return Err(CryptoError::Key(format!(
                "a {} key does not encrypt",
                other.as_str()
            )));
        }
    };
    UnboundKey::new(alg, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Key("invalid key length".into()))
}

/// Encrypts `plaintext`: returns `nonce ‖ ciphertext ‖ tag`.
pub fn seal(
    kt: KeyType,
    key: &[u8],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    Aead::new(kt, key)?.seal(nonce, aad, plaintext)
}

/// Decrypts `nonce ‖ ciphertext ‖ tag`.
pub fn open(kt: KeyType, key: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    Aead::new(kt, key)?.open(aad, sealed)
}

fn ed25519(seed: &[u8]) -> Result<Ed25519KeyPair, CryptoError> {
    Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| CryptoError::Key("invalid Ed25519 seed".into()))
}

/// The public key of an Ed25519 seed.
pub fn ed25519_public(seed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    Ok(ed25519(seed)?.public_key().as_ref().to_vec())
}

pub fn ed25519_sign(seed: &[u8], msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
    Ok(ed25519(seed)?.sign(msg).as_ref().to_vec())
}

pub fn ed25519_verify(public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public)
        .verify(msg, sig)
        .is_ok()
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&k, msg).as_ref().to_vec()
}

/// Constant-time check of an HMAC-SHA-256 tag.
pub fn hmac_sha256_verify(key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::verify(&k, msg, tag).is_ok()
}

/// Wraps key material under a wrapping key (AES-256-GCM), binding `label` as associated data.
pub fn wrap(
    wrapping: &[u8],
    nonce: [u8; NONCE_LEN],
    label: &str,
    material: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    seal(
        KeyType::Aes256Gcm,
        wrapping,
        nonce,
        label.as_bytes(),
        material,
    )
}

pub fn unwrap(wrapping: &[u8], label: &str, wrapped: &[u8]) -> Result<Vec<u8>, CryptoError> {
    open(KeyType::Aes256Gcm, wrapping, label.as_bytes(), wrapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let t = Token {
            key: Uuid::from_u128(5),
            version: 3,
            payload: vec![1, 2, 3, 250],
        };
        let s = t.encode();
        assert!(s.starts_with("parapet:v1:00000000-0000-0000-0000-000000000005:3:"));
        assert_eq!(Token::parse(&format!("  {s}\n")), Ok(t));
        for bad in [
            "",
            "parapet:v2:x",
            "parapet:v1:nope:1:AA",
            "parapet:v1:00000000-0000-0000-0000-000000000005:0:AA",
            "parapet:v1:00000000-0000-0000-0000-000000000005:1:***",
            "parapet:v1:00000000-0000-0000-0000-000000000005",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn context_encoding_is_canonical_and_unambiguous() {
        let mut a = Context::new();
        a.insert("b".into(), "2".into());
        a.insert("a".into(), "1".into());
        assert_eq!(
            encode_context(&a),
            b"\0\0\0\x01a\0\0\0\x011\0\0\0\x01b\0\0\0\x012".to_vec()
        );
        let mut x = Context::new();
        x.insert("ab".into(), "c".into());
        let mut y = Context::new();
        y.insert("a".into(), "bc".into());
        assert_ne!(encode_context(&x), encode_context(&y));
        assert_eq!(context_hash(&Context::new()).len(), 64);
    }

    #[test]
    fn aead_binds_the_associated_data() {
        for kt in [KeyType::Aes256Gcm, KeyType::ChaCha20Poly1305] {
            let key = [7u8; KEY_LEN];
            let ct = seal(kt, &key, [1; NONCE_LEN], b"ad", b"hello").unwrap_or_default();
            assert_eq!(open(kt, &key, b"ad", &ct).ok(), Some(b"hello".to_vec()));
            assert_eq!(open(kt, &key, b"AD", &ct), Err(CryptoError::Authentication));
            assert!(open(kt, &key, b"ad", &ct[..ct.len() - 1]).is_err());
            assert!(open(kt, &key, b"ad", &ct[..20]).is_err());
        }
        assert!(seal(KeyType::Ed25519, &[0; 32], [0; 12], b"", b"").is_err());
    }
}
