//! Wrapping of keys for, and by, parties outside Parapet (X.1642 8.2(2), 8.2(3)): the recovery
//! key of a key-ring backup held by custodians, and the wrapping key a tenant uses to bring its
//! own key material. Pure functions over aws-lc-rs.
//!
//! * **X25519**: `ephemeral public key (32) ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag`, the
//!   AES key being HKDF-SHA-256 of the X25519 shared secret with salt `ephemeral public key ‖
//!   recipient public key` and info the purpose label, which is also the associated data.
//! * **RSA-OAEP** with SHA-256 and MGF1-SHA-256, no label.
//!
//! Keys are accepted as PEM, as base64 text or as raw bytes: X25519 public keys raw (32 bytes) or
//! as SubjectPublicKeyInfo, private keys raw or PKCS#8; RSA public keys as SubjectPublicKeyInfo,
//! private keys as PKCS#8. RSA-OAEP draws its padding randomness inside aws-lc (it never needs to
//! be reproduced in a test).

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::crypto::{self, CryptoError, KEY_LEN, KeyType, NONCE_LEN};

const X25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];
const X25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];

/// The smallest RSA key accepted as a recipient.
pub const RSA_MIN_BITS: usize = 3072;

/// Reads key bytes given as PEM, as base64 text, or raw.
pub fn key_bytes(input: &[u8]) -> Vec<u8> {
    if let Ok(text) = std::str::from_utf8(input) {
        let t = text.trim();
        if t.starts_with("-----BEGIN") {
            let body: String = t
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::trim)
                .collect();
            if let Ok(b) = STANDARD.decode(body) {
                return b;
            }
        } else {
            let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
            if !compact.is_empty()
                && let Ok(b) = STANDARD.decode(&compact)
            {
                return b;
            }
        }
    }
    input.to_vec()
}

/// PEM text of `der` under `label` (`PUBLIC KEY`, `PRIVATE KEY`).
pub fn pem(label: &str, der: &[u8]) -> String {
    let b = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// An X25519 public key given raw or as SubjectPublicKeyInfo.
pub fn x25519_public(input: &[u8]) -> Result<[u8; 32], String> {
    let b = key_bytes(input);
    let raw = match b.len() {
        32 => b.as_slice(),
        44 if b.starts_with(&X25519_SPKI_PREFIX) => b.get(12..).unwrap_or_default(),
        _ => {
            return Err("an X25519 public key is 32 bytes, or a SubjectPublicKeyInfo (PEM)".into());
        }
    };
    let mut out = [0u8; 32];
    out.copy_from_slice(raw);
    Ok(out)
}

/// An X25519 private key given raw or as PKCS#8.
pub fn x25519_private(input: &[u8]) -> Result<Zeroizing<[u8; 32]>, String> {
    let b = Zeroizing::new(key_bytes(input));
    let raw = match b.len() {
        32 => b.as_slice(),
        48 if b.starts_with(&X25519_PKCS8_PREFIX) => b.get(16..).unwrap_or_default(),
        _ => return Err("an X25519 private key is 32 bytes, or PKCS#8 (PEM)".into()),
    };
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(raw);
    Ok(out)
}

/// The SubjectPublicKeyInfo (DER) of a raw X25519 public key.
pub fn x25519_spki(public: &[u8; 32]) -> Vec<u8> {
    let mut out = X25519_SPKI_PREFIX.to_vec();
    out.extend_from_slice(public);
    out
}

/// The public key of an X25519 private key.
pub fn x25519_public_of(private: &[u8; 32]) -> Result<[u8; 32], CryptoError> {
    let k = PrivateKey::from_private_key(&X25519, private)
        .map_err(|_| CryptoError::Key("invalid X25519 private key".into()))?;
    let p = k
        .compute_public_key()
        .map_err(|_| CryptoError::Key("invalid X25519 private key".into()))?;
    let mut out = [0u8; 32];
    if p.as_ref().len() != 32 {
        return Err(CryptoError::Key("invalid X25519 public key".into()));
    }
    out.copy_from_slice(p.as_ref());
    Ok(out)
}

fn x25519_kek(
    private: &[u8; 32],
    peer: &[u8; 32],
    salt: &[u8],
    info: &str,
) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let k = PrivateKey::from_private_key(&X25519, private)
        .map_err(|_| CryptoError::Key("invalid X25519 private key".into()))?;
    let fail = CryptoError::Key("X25519 key agreement failed".into());
    let shared: Zeroizing<Vec<u8>> = agreement::agree(
        &k,
        UnparsedPublicKey::new(&X25519, peer.as_slice()),
        fail.clone(),
        |s| Ok(Zeroizing::new(s.to_vec())),
    )?;
    let prk = Salt::new(HKDF_SHA256, salt).extract(&shared);
    let info = [info.as_bytes()];
    let okm = prk.expand(&info, HKDF_SHA256).map_err(|_| fail.clone())?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    okm.fill(out.as_mut_slice()).map_err(|_| fail)?;
    Ok(out)
}

/// Wraps `plaintext` for the holder of the X25519 key `recipient` (see the module
/// documentation); `ephemeral` and `nonce` are fresh random values.
pub fn x25519_seal(
    recipient: &[u8; 32],
    ephemeral: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    info: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let eph_pub = x25519_public_of(ephemeral)?;
    let salt = [eph_pub.as_slice(), recipient.as_slice()].concat();
    let kek = x25519_kek(ephemeral, recipient, &salt, info)?;
    let ct = crypto::seal(
        KeyType::Aes256Gcm,
        kek.as_slice(),
        nonce,
        info.as_bytes(),
        plaintext,
    )?;
    Ok([eph_pub.as_slice(), &ct].concat())
}

/// Unwraps what [`x25519_seal`] made for the holder of `private`.
pub fn x25519_open(
    private: &[u8; 32],
    info: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (eph, rest) = sealed
        .split_at_checked(32)
        .ok_or_else(|| CryptoError::Format("the wrapped data is truncated".into()))?;
    let mut eph_pub = [0u8; 32];
    eph_pub.copy_from_slice(eph);
    let mine = x25519_public_of(private)?;
    let salt = [eph_pub.as_slice(), mine.as_slice()].concat();
    let kek = x25519_kek(private, &eph_pub, &salt, info)?;
    Ok(Zeroizing::new(crypto::open(
        KeyType::Aes256Gcm,
        kek.as_slice(),
        info.as_bytes(),
        rest,
    )?))
}

/// An RSA public key (SubjectPublicKeyInfo, PEM or DER) of at least [`RSA_MIN_BITS`].
pub fn rsa_public(input: &[u8]) -> Result<PublicEncryptingKey, String> {
    let k = PublicEncryptingKey::from_der(&key_bytes(input))
        .map_err(|_| "not an RSA public key (SubjectPublicKeyInfo, PEM or DER)".to_string())?;
    if k.key_size_bits() < RSA_MIN_BITS {
        return Err(format!(
            "the RSA key has {} bits; at least {RSA_MIN_BITS} are required",
            k.key_size_bits()
        ));
    }
    Ok(k)
}

/// An RSA private key (PKCS#8, PEM or DER).
pub fn rsa_private(input: &[u8]) -> Result<PrivateDecryptingKey, String> {
    PrivateDecryptingKey::from_pkcs8(&Zeroizing::new(key_bytes(input)))
        .map_err(|_| "not an RSA private key (PKCS#8, PEM or DER)".to_string())
}

/// A fresh RSA-3072 key pair.
pub fn rsa_generate() -> Result<PrivateDecryptingKey, CryptoError> {
    PrivateDecryptingKey::generate(KeySize::Rsa3072)
        .map_err(|_| CryptoError::Key("RSA key generation failed".into()))
}

/// The SubjectPublicKeyInfo (DER) of an RSA key pair.
pub fn rsa_public_der(k: &PrivateDecryptingKey) -> Result<Vec<u8>, CryptoError> {
    k.public_key()
        .as_der()
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| CryptoError::Key("RSA public key encoding failed".into()))
}

/// The PKCS#8 (DER) of an RSA key pair.
pub fn rsa_private_der(k: &PrivateDecryptingKey) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let d: aws_lc_rs::encoding::Pkcs8V1Der<'static> = k
        .as_der()
        .map_err(|_| CryptoError::Key("RSA private key encoding failed".into()))?;
    Ok(Zeroizing::new(d.as_ref().to_vec()))
}

/// RSA-OAEP-SHA-256 encryption of a short `plaintext` (a key).
pub fn rsa_oaep_seal(k: &PublicEncryptingKey, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let fail = || CryptoError::Key("RSA-OAEP encryption failed".into());
    let k = OaepPublicEncryptingKey::new(k.clone()).map_err(|_| fail())?;
    let mut out = vec![0u8; k.ciphertext_size()];
    let n = k
        .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
        .map_err(|_| fail())?
        .len();
    out.truncate(n);
    Ok(out)
}

/// RSA-OAEP-SHA-256 decryption.
pub fn rsa_oaep_open(
    k: &PrivateDecryptingKey,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let k = OaepPrivateDecryptingKey::new(k.clone())
        .map_err(|_| CryptoError::Key("invalid RSA key".into()))?;
    let mut out = Zeroizing::new(vec![0u8; k.min_output_size()]);
    let n = k
        .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None)
        .map_err(|_| CryptoError::Authentication)?
        .len();
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x25519_wraps_for_the_holder_only() {
        let recipient_priv = [3u8; 32];
        let recipient = x25519_public_of(&recipient_priv).unwrap();
        let sealed = x25519_seal(&recipient, &[5u8; 32], [1; NONCE_LEN], "t", b"secret").unwrap();
        assert_eq!(
            x25519_open(&recipient_priv, "t", &sealed)
                .unwrap()
                .as_slice(),
            b"secret"
        );
        assert!(x25519_open(&recipient_priv, "u", &sealed).is_err());
        assert!(x25519_open(&[4u8; 32], "t", &sealed).is_err());
        assert!(x25519_open(&recipient_priv, "t", &sealed[..40]).is_err());
        // Formats: raw, base64, SPKI PEM.
        let spki = pem("PUBLIC KEY", &x25519_spki(&recipient));
        assert_eq!(x25519_public(spki.as_bytes()).unwrap(), recipient);
        assert_eq!(
            x25519_public(STANDARD.encode(recipient).as_bytes()).unwrap(),
            recipient
        );
        assert!(x25519_public(b"short").is_err());
        let mut pkcs8 = X25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&recipient_priv);
        assert_eq!(
            *x25519_private(pem("PRIVATE KEY", &pkcs8).as_bytes()).unwrap(),
            recipient_priv
        );
    }

    #[test]
    fn rsa_oaep_round_trips_and_small_keys_are_refused() {
        let k = rsa_generate().unwrap();
        let public =
            rsa_public(pem("PUBLIC KEY", &rsa_public_der(&k).unwrap()).as_bytes()).unwrap();
        let ct = rsa_oaep_seal(&public, &[9u8; 32]).unwrap();
        assert_eq!(ct.len(), 384);
        let again = rsa_private(&rsa_private_der(&k).unwrap()).unwrap();
        assert_eq!(rsa_oaep_open(&again, &ct).unwrap().as_slice(), &[9u8; 32]);
        let mut bad = ct.clone();
        bad[10] ^= 1;
        assert!(rsa_oaep_open(&again, &bad).is_err());
        let small = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        assert!(rsa_public(&rsa_public_der(&small).unwrap()).is_err());
    }
}
