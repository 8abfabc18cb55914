//! Proof verification, step by step as RFC 9162 §2.1.3.2 and §2.1.4.2 write it.

use crate::hash::{Hash, empty_root, node_hash};

/// A proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size1} is larger than tree size {size2}")]
    SizeOrder { size1: u64, size2: u64 },
    #[error("the proof has more hashes than these tree sizes need")]
    ProofTooLong,
    #[error("the proof has fewer hashes than these tree sizes need")]
    ProofTooShort,
    #[error("the proof must be empty: there is nothing to prove between these tree sizes")]
    ProofNotEmpty,
    #[error("the proof leads to root {computed}, not {expected}")]
    RootMismatch { computed: Hash, expected: Hash },
    #[error("the proof leads to the first tree's root {computed}, not {expected}")]
    FirstRootMismatch { computed: Hash, expected: Hash },
    #[error("the proof leads to the second tree's root {computed}, not {expected}")]
    SecondRootMismatch { computed: Hash, expected: Hash },
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1 to 4 and the `sn` check
/// of step 5).
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, VerifyError> {
    // 1. The leaf must be in the tree.
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    // 2.–3.
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf_hash;
    // 4.
    for p in proof {
        // a.
        if s == 0 {
            return Err(VerifyError::ProofTooLong);
        }
        // b.
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        // c.
        f >>= 1;
        s >>= 1;
    }
    // 5. (first half)
    if s != 0 {
        return Err(VerifyError::ProofTooShort);
    }
    Ok(r)
}

/// Verifies that the leaf with hash `leaf_hash` is at `index` in the tree of `size` leaves
/// whose root is `root` (RFC 9162 §2.1.3.2).
///
/// A proof does not commit to the tree size by itself: the same proof can also lead to `root`
/// for another size whose path has the same shape. Always take `size` and `root` together from
/// one verified checkpoint.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    let computed = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    if computed != *root {
        return Err(VerifyError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// Verifies that the tree of `size2` leaves with root `root2` extends the tree of `size1`
/// leaves with root `root1` (RFC 9162 §2.1.4.2).
///
/// The RFC defines the algorithm for `0 < size1 < size2`. The two trivial cases have nothing
/// to prove and need an empty proof: equal sizes are consistent when the roots are equal, and
/// the empty tree (whose root must be `SHA-256("")`) is consistent with every tree.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if size1 > size2 {
        return Err(VerifyError::SizeOrder { size1, size2 });
    }
    if size1 == size2 || size1 == 0 {
        if !proof.is_empty() {
            return Err(VerifyError::ProofNotEmpty);
        }
        if size1 == 0 && *root1 != empty_root() {
            return Err(VerifyError::FirstRootMismatch {
                computed: empty_root(),
                expected: *root1,
            });
        }
        if size1 == size2 && root1 != root2 {
            return Err(VerifyError::SecondRootMismatch {
                computed: *root1,
                expected: *root2,
            });
        }
        return Ok(());
    }
    // 1. An empty path proves nothing.
    if proof.is_empty() {
        return Err(VerifyError::ProofTooShort);
    }
    // 2. A first tree of a power-of-two size is itself a node of the second tree: its root
    //    starts the path.
    let mut rest = proof.iter();
    let start = if size1.is_power_of_two() {
        *root1
    } else {
        match rest.next() {
            Some(h) => *h,
            None => return Err(VerifyError::ProofTooShort),
        }
    };
    // 3.
    let mut f = size1 - 1;
    let mut s = size2 - 1;
    // 4.
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    // 5.
    let mut fr = start;
    let mut sr = start;
    // 6.
    for c in rest {
        // a.
        if s == 0 {
            return Err(VerifyError::ProofTooLong);
        }
        // b.
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        // c.
        f >>= 1;
        s >>= 1;
    }
    // 7.
    if s != 0 {
        return Err(VerifyError::ProofTooShort);
    }
    if fr != *root1 {
        return Err(VerifyError::FirstRootMismatch {
            computed: fr,
            expected: *root1,
        });
    }
    if sr != *root2 {
        return Err(VerifyError::SecondRootMismatch {
            computed: sr,
            expected: *root2,
        });
    }
    Ok(())
}
