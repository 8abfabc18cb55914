//! Signed deletion receipts (X.1642 7.2.2.2(6)): proof, verifiable offline, that a key's
//! material was destroyed, so that data encrypted under it can no longer be read.
//!
//! A receipt is one line, `<base64url(JSON)>.<base64url(Ed25519 signature of the JSON bytes)>`.
//! The signing key is derived from the root key (HMAC-SHA-256 of a fixed label), so it is the
//! same on every replica and needs no storage; its public key is published by the server
//! (`GET /api/v1/kms/receipt-key`) and is what a tenant pins to verify receipts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{self, CryptoError};
use crate::root::RootKey;

pub const KIND: &str = "parapet-kms-deletion-receipt/v1";
const SEED_LABEL: &[u8] = b"parapet-kms/receipt-signing-key/v1";

/// What a receipt states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionReceipt {
    /// Always [`KIND`].
    pub kind: String,
    pub tenant_id: String,
    pub tenant: String,
    pub key_id: String,
    pub key_name: String,
    pub key_type: String,
    /// Every version whose material was destroyed.
    pub versions: Vec<i64>,
    /// Who scheduled (approved) the deletion.
    pub scheduled_by: String,
    pub due_at: String,
    pub destroyed_at: String,
}

fn seed(root: &RootKey) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(crypto::hmac_sha256(root.as_slice(), SEED_LABEL))
}

/// The receipt-signing public key of the installation whose root is `root`.
pub fn public_key(root: &RootKey) -> Result<Vec<u8>, CryptoError> {
    crypto::ed25519_public(&seed(root))
}

/// Signs a receipt.
pub fn sign(root: &RootKey, r: &DeletionReceipt) -> Result<String, CryptoError> {
    let body = serde_json::to_vec(r).map_err(|e| CryptoError::Key(e.to_string()))?;
    let sig = crypto::ed25519_sign(&seed(root), &body)?;
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&body),
        URL_SAFE_NO_PAD.encode(sig)
    ))
}

/// Verifies a receipt against the pinned public key; returns what it states.
pub fn verify_receipt(text: &str, public_key: &[u8]) -> Result<DeletionReceipt, String> {
    let (body, sig) = text
        .trim()
        .split_once('.')
        .ok_or("not a deletion receipt: expected <data>.<signature>")?;
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| "not a deletion receipt: the data is not base64url")?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| "not a deletion receipt: the signature is not base64url")?;
    if !crypto::ed25519_verify(public_key, &body, &sig) {
        return Err("the receipt's signature does not verify with this public key".into());
    }
    let r: DeletionReceipt = serde_json::from_slice(&body)
        .map_err(|e| format!("the signed receipt is malformed: {e}"))?;
    if r.kind != KIND {
        return Err(format!("unknown receipt kind {:?}", r.kind));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_verify_only_unaltered_and_with_the_right_key() {
        let root: RootKey = Zeroizing::new([3u8; 32]);
        let r = DeletionReceipt {
            kind: KIND.into(),
            tenant_id: "t".into(),
            tenant: "acme".into(),
            key_id: "k".into(),
            key_name: "payroll".into(),
            key_type: "aes256-gcm".into(),
            versions: vec![1, 2],
            scheduled_by: "alice@acme".into(),
            due_at: "2026-01-01T00:00:00Z".into(),
            destroyed_at: "2026-01-01T00:00:00Z".into(),
        };
        let text = sign(&root, &r).unwrap();
        let pk = public_key(&root).unwrap();
        assert_eq!(verify_receipt(&text, &pk).unwrap(), r);
        let other = public_key(&Zeroizing::new([4u8; 32])).unwrap();
        assert!(verify_receipt(&text, &other).is_err());
        let (body, sig) = text.split_once('.').unwrap();
        let mut json = URL_SAFE_NO_PAD.decode(body).unwrap();
        let pos = json.iter().position(|&b| b == b'2').unwrap();
        json[pos] = b'3';
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(&json));
        assert!(verify_receipt(&forged, &pk).is_err());
        assert!(verify_receipt("garbage", &pk).is_err());
    }
}
