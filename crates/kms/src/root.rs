//! The root key: split into Shamir shares for key custodians (blahaj), or read from a key file in
//! development, and checked against a value sealed under it.

use blahaj::{Share, Sharks};
use zeroize::Zeroizing;

use crate::crypto::{self, KEY_LEN, NONCE_LEN};

const CHECK_LABEL: &str = "parapet-kms/root-check/v1";
const CHECK_VALUE: &[u8] = b"parapet root key";

/// The root key in memory.
pub type RootKey = Zeroizing<[u8; KEY_LEN]>;

/// Splits `root` into `shares` hex-encoded shares of which `threshold` recover it.
pub fn split(root: &RootKey, shares: u8, threshold: u8) -> Vec<Zeroizing<String>> {
    Sharks(threshold)
        .dealer(root.as_slice())
        .take(usize::from(shares))
        .map(|s| Zeroizing::new(hex::encode(Vec::<u8>::from(&s))))
        .collect()
}

/// Parses one share as custodians hold it (hex; surrounding space ignored).
pub fn parse_share(text: &str) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(text.trim())
        .map_err(|_| "a share is the hexadecimal text printed by 'parapet kms init'".to_string())?;
    if bytes.len() != KEY_LEN + 1 {
        return Err(format!(
            "a share is {} hexadecimal digits, not {}",
            2 * (KEY_LEN + 1),
            text.trim().len()
        ));
    }
    Ok(bytes)
}

/// Recovers the root from shares (the check decides whether it is the right one).
pub fn combine(threshold: u8, shares: &[Vec<u8>]) -> Result<RootKey, String> {
    let parsed: Vec<Share> = shares
        .iter()
        .map(|s| Share::try_from(s.as_slice()).map_err(str::to_string))
        .collect::<Result<_, _>>()?;
    let secret = Zeroizing::new(Sharks(threshold).recover(&parsed).map_err(str::to_string)?);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if secret.len() != KEY_LEN {
        return Err("the shares do not have the length of a root key".into());
    }
    key.copy_from_slice(&secret);
    Ok(key)
}

/// The check value stored beside the root's description.
pub fn make_check(root: &RootKey, nonce: [u8; NONCE_LEN]) -> Result<Vec<u8>, crypto::CryptoError> {
    crypto::wrap(root.as_slice(), nonce, CHECK_LABEL, CHECK_VALUE)
}

/// Whether `root` is the key the check was made with.
pub fn verify_check(root: &RootKey, check: &[u8]) -> bool {
    crypto::unwrap(root.as_slice(), CHECK_LABEL, check).is_ok_and(|v| v == CHECK_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_of_n_recovers_and_fewer_do_not() {
        let root: RootKey = Zeroizing::new([42u8; KEY_LEN]);
        let shares = split(&root, 5, 3);
        assert_eq!(shares.len(), 5);
        let bytes: Vec<Vec<u8>> = shares.iter().map(|s| parse_share(s).unwrap()).collect();
        let check = make_check(&root, [9; NONCE_LEN]).unwrap();
        // Any three recover the key.
        for pick in [[0, 1, 2], [1, 3, 4], [0, 2, 4]] {
            let some: Vec<Vec<u8>> = pick.iter().map(|&i| bytes[i].clone()).collect();
            let k = combine(3, &some).unwrap();
            assert_eq!(*k, *root);
            assert!(verify_check(&k, &check));
        }
        // Two do not.
        assert!(combine(3, &bytes[..2]).is_err());
        // Three with one altered give a key the check refuses.
        let mut bad = bytes[..3].to_vec();
        bad[2][5] ^= 1;
        let k = combine(3, &bad).unwrap();
        assert!(!verify_check(&k, &check));
        assert!(parse_share("zz").is_err());
        assert!(parse_share("abcd").is_err());
    }
}
