//! The crate against a naive implementation written straight from RFC 9162 §2.1: MTH, PATH,
//! PROOF and SUBPROOF as recursive definitions, hashing with `sha2` directly.

use std::cell::RefCell;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::{Rng, entry, flip};
use crate::hash::{Hash, leaf_hash};
use crate::tree::{MemoryTree, RootBuilder};
use crate::verify::{VerifyError, verify_consistency, verify_inclusion};

const MAX_SIZE: u64 = 300;

/// RFC 9162 §2.1.1–§2.1.4 on one list of entries. Every tree of the tests is a prefix of that
/// list, so MTH(D[a:b]) is the same wherever it appears and is memoized by range.
struct Reference {
    entries: Vec<Vec<u8>>,
    memo: RefCell<HashMap<(u64, u64), [u8; 32]>>,
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The largest power of two smaller than `n` (`n > 1`), by counting up.
fn k_of(n: u64) -> u64 {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

impl Reference {
    fn new(size: u64) -> Self {
        Reference {
            entries: (0..size).map(entry).collect(),
            memo: RefCell::new(HashMap::new()),
        }
    }

    /// MTH(D[a:b]).
    fn mth(&self, a: u64, b: u64) -> [u8; 32] {
        let n = b - a;
        if n == 0 {
            return sha256(&[]);
        }
        if n == 1 {
            return sha256(&[&[0x00], &self.entries[a as usize]]);
        }
        if let Some(h) = self.memo.borrow().get(&(a, b)) {
            return *h;
        }
        let k = k_of(n);
        let h = sha256(&[&[0x01], &self.mth(a, a + k), &self.mth(a + k, b)]);
        self.memo.borrow_mut().insert((a, b), h);
        h
    }

    /// PATH(m, D[a:b]).
    fn path(&self, m: u64, a: u64, b: u64) -> Vec<[u8; 32]> {
        let n = b - a;
        if n == 1 {
            return vec![];
        }
        let k = k_of(n);
        if m < k {
            let mut p = self.path(m, a, a + k);
            p.push(self.mth(a + k, b));
            p
        } else {
            let mut p = self.path(m - k, a + k, b);
            p.push(self.mth(a, a + k));
            p
        }
    }

    /// For each element of PATH(m, D[n]), whether it is a right sibling.
    fn path_shape(m: u64, n: u64) -> Vec<bool> {
        if n == 1 {
            return vec![];
        }
        let k = k_of(n);
        let mut s = if m < k {
            Self::path_shape(m, k)
        } else {
            Self::path_shape(m - k, n - k)
        };
        s.push(m < k);
        s
    }

    /// PROOF(m, D[n]) for 0 < m < n.
    fn proof(&self, m: u64, n: u64) -> Vec<[u8; 32]> {
        self.subproof(m, 0, n, true)
    }

    /// SUBPROOF(m, D[a:b], b).
    fn subproof(&self, m: u64, a: u64, b: u64, whole: bool) -> Vec<[u8; 32]> {
        let n = b - a;
        if m == n {
            return if whole { vec![] } else { vec![self.mth(a, b)] };
        }
        let k = k_of(n);
        if m <= k {
            let mut p = self.subproof(m, a, a + k, whole);
            p.push(self.mth(a + k, b));
            p
        } else {
            let mut p = self.subproof(m - k, a + k, b, false);
            p.push(self.mth(a, a + k));
            p
        }
    }

    /// Length of PROOF(m, D[n]); 0 when there is nothing to prove.
    fn proof_len(m: u64, n: u64) -> usize {
        if m == 0 || m >= n {
            0
        } else {
            Self::subproof_len(m, n, true)
        }
    }

    /// Length of SUBPROOF(m, D[n], b), following the same recursion without hashing.
    fn subproof_len(m: u64, n: u64, whole: bool) -> usize {
        if m == n {
            return usize::from(!whole);
        }
        let k = k_of(n);
        if m <= k {
            Self::subproof_len(m, k, whole) + 1
        } else {
            Self::subproof_len(m - k, n - k, false) + 1
        }
    }
}

fn raw(proof: &[Hash]) -> Vec<[u8; 32]> {
    proof.iter().map(|h| h.0).collect()
}

fn tree(size: u64) -> MemoryTree {
    MemoryTree::from_entries((0..size).map(entry))
}

#[test]
fn roots_match_reference() {
    let r = Reference::new(MAX_SIZE);
    let t = tree(MAX_SIZE);
    let mut grown = MemoryTree::new();
    let mut builder = RootBuilder::new();
    for n in 0..=MAX_SIZE {
        let want = Hash(r.mth(0, n));
        assert_eq!(t.root_at(n).unwrap(), want, "root_at({n})");
        assert_eq!(grown.root(), want, "MemoryTree::root at size {n}");
        assert_eq!(builder.root(), want, "RootBuilder at size {n}");
        assert_eq!(builder.size(), n);
        if n < MAX_SIZE {
            grown.append(&entry(n));
            builder.push_entry(&entry(n));
            assert_eq!(t.leaf_hash(n), Some(leaf_hash(&entry(n))));
        }
    }
    assert_eq!(t.leaf_hash(MAX_SIZE), None);
}

#[test]
fn inclusion_proofs_match_reference_and_fail_when_tampered() {
    let r = Reference::new(MAX_SIZE);
    let t = tree(MAX_SIZE);
    let roots: Vec<Hash> = (0..=MAX_SIZE).map(|n| Hash(r.mth(0, n))).collect();
    let mut same_shape_other_size = 0;
    for n in 1..=MAX_SIZE {
        let root = roots[n as usize];
        for m in 0..n {
            let leaf = t.leaf_hash(m).unwrap();
            let proof = t.inclusion_proof(m, n).unwrap();
            assert_eq!(raw(&proof), r.path(m, 0, n), "PATH({m}, D[{n}])");
            verify_inclusion(&leaf, m, n, &proof, &root).unwrap();

            // Any flipped bit in any element.
            for (j, _) in proof.iter().enumerate() {
                let mut bad = proof.clone();
                bad[j] = flip(&bad[j], (m as usize * 7 + j * 31) % 256);
                assert!(verify_inclusion(&leaf, m, n, &bad, &root).is_err());
            }
            // Wrong leaf, wrong root.
            assert!(verify_inclusion(&flip(&leaf, 3), m, n, &proof, &root).is_err());
            assert!(verify_inclusion(&leaf, m, n, &proof, &flip(&root, 200)).is_err());
            // Wrong index.
            for other in [m.wrapping_sub(1), m + 1, m ^ 1, m ^ 2, m ^ 4, n] {
                if other != m {
                    assert!(
                        verify_inclusion(&leaf, other, n, &proof, &root).is_err(),
                        "proof of {m} in {n} accepted for index {other}"
                    );
                }
            }
            // Wrong size: a proof does not carry the size, so it fails exactly when the path
            // to the leaf has another shape in the other tree.
            for other in [n - 1, n + 1, n + 2, 2 * n, n / 2] {
                if other == n {
                    continue;
                }
                let result = verify_inclusion(&leaf, m, other, &proof, &root);
                if other > m && Reference::path_shape(m, other) == Reference::path_shape(m, n) {
                    assert!(result.is_ok());
                    same_shape_other_size += 1;
                } else {
                    assert!(
                        result.is_err(),
                        "proof of {m} in {n} accepted for size {other}"
                    );
                }
            }
            // Truncated and extended proofs.
            if !proof.is_empty() {
                assert!(verify_inclusion(&leaf, m, n, &proof[1..], &root).is_err());
                assert!(verify_inclusion(&leaf, m, n, &proof[..proof.len() - 1], &root).is_err());
            }
            let mut longer = proof.clone();
            longer.push(root);
            assert_eq!(
                verify_inclusion(&leaf, m, n, &longer, &root),
                Err(VerifyError::ProofTooLong)
            );
        }
    }
    // The size-blind cases exist (e.g. leaf 0 of 3 and of 4): the test saw them.
    assert!(same_shape_other_size > 0);
}

/// Pairs (m, n) tested: all for n <= 64, a sample above.
fn consistency_pairs(rng: &mut Rng) -> Vec<(u64, u64)> {
    let mut pairs = Vec::new();
    for n in 1..=MAX_SIZE {
        if n <= 64 {
            pairs.extend((0..=n).map(|m| (m, n)));
            continue;
        }
        let mut ms = vec![0, 1, 2, n - 2, n - 1, n];
        ms.extend((0..8).map(|i| 1u64 << i).filter(|p| *p < n));
        ms.extend((0..8).map(|_| rng.below(n + 1)));
        ms.sort_unstable();
        ms.dedup();
        pairs.extend(ms.into_iter().map(|m| (m, n)));
    }
    pairs
}

#[test]
fn consistency_proofs_match_reference_and_fail_when_tampered() {
    let r = Reference::new(MAX_SIZE);
    let t = tree(MAX_SIZE);
    let roots: Vec<Hash> = (0..=MAX_SIZE).map(|n| Hash(r.mth(0, n))).collect();
    let mut rng = Rng::new(9162);
    for (m, n) in consistency_pairs(&mut rng) {
        let (root1, root2) = (roots[m as usize], roots[n as usize]);
        let proof = t.consistency_proof(m, n).unwrap();
        if m == 0 || m == n {
            assert!(proof.is_empty());
        } else {
            assert_eq!(raw(&proof), r.proof(m, n), "PROOF({m}, D[{n}])");
        }
        verify_consistency(m, n, &root1, &root2, &proof).unwrap();
        if m == 0 || m == n {
            // Nothing to prove; any proof hash, or the wrong roots, is refused.
            assert!(verify_consistency(m, n, &root1, &root2, &[root1]).is_err());
            assert!(verify_consistency(m, n, &flip(&root1, 1), &root2, &proof).is_err());
            if m == n {
                assert!(verify_consistency(m, n, &root1, &flip(&root2, 1), &proof).is_err());
            }
            continue;
        }
        for (j, _) in proof.iter().enumerate() {
            let mut bad = proof.clone();
            bad[j] = flip(&bad[j], (n as usize * 5 + j * 17) % 256);
            assert!(verify_consistency(m, n, &root1, &root2, &bad).is_err());
        }
        assert!(verify_consistency(m, n, &flip(&root1, 9), &root2, &proof).is_err());
        assert!(verify_consistency(m, n, &root1, &flip(&root2, 9), &proof).is_err());
        assert!(verify_consistency(m, n, &root2, &root1, &proof).is_err());
        assert!(verify_consistency(m, n, &root1, &root2, &[]).is_err());
        assert!(verify_consistency(m, n, &root1, &root2, &proof[..proof.len() - 1]).is_err());
        assert!(verify_consistency(m, n, &root1, &root2, &proof[1..]).is_err());
        let mut longer = proof.clone();
        longer.push(root2);
        assert!(verify_consistency(m, n, &root1, &root2, &longer).is_err());
        let mut longer = vec![root1];
        longer.extend_from_slice(&proof);
        assert!(verify_consistency(m, n, &root1, &root2, &longer).is_err());
        assert_eq!(
            verify_consistency(n, m, &root2, &root1, &proof),
            Err(VerifyError::SizeOrder { size1: n, size2: m })
        );
        // Other sizes whose proofs have another length never verify.
        let others = [
            (m - 1, n),
            (m + 1, n),
            (m ^ 2, n),
            (m, n + 1),
            (m, n - 1),
            (m, 2 * n),
            (m, n / 2),
        ];
        for (m2, n2) in others {
            if (m2, n2) != (m, n) && Reference::proof_len(m2, n2) != proof.len() {
                assert!(
                    verify_consistency(m2, n2, &root1, &root2, &proof).is_err(),
                    "proof {m}→{n} accepted for {m2}→{n2}"
                );
            }
        }
    }
}

#[test]
fn out_of_range_arguments_are_refused() {
    let t = tree(10);
    assert!(t.inclusion_proof(10, 10).is_err());
    assert!(t.inclusion_proof(0, 11).is_err());
    assert!(t.consistency_proof(5, 4).is_err());
    assert!(t.consistency_proof(5, 11).is_err());
    assert!(t.root_at(11).is_err());
    let root = t.root();
    let leaf = t.leaf_hash(0).unwrap();
    assert_eq!(
        verify_inclusion(&leaf, 0, 0, &[], &root),
        Err(VerifyError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        verify_inclusion(&leaf, 10, 10, &[], &root),
        Err(VerifyError::IndexOutOfRange {
            index: 10,
            size: 10
        })
    );
    // A one-leaf tree: the root is the leaf hash and the proof is empty.
    let one = tree(1);
    verify_inclusion(&one.leaf_hash(0).unwrap(), 0, 1, &[], &one.root()).unwrap();
    // The empty tree is consistent with any tree, but only under its own root.
    verify_consistency(0, 10, &crate::empty_root(), &root, &[]).unwrap();
    assert!(verify_consistency(0, 10, &root, &root, &[]).is_err());
    assert!(verify_consistency(0, 0, &root, &root, &[]).is_err());
}
