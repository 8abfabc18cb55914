//! Random appends; proofs between random sizes verify.

use std::collections::BTreeMap;

use super::{Rng, entry, flip};
use crate::hash::{Hash, NodeId, leaf_hash};
use crate::tree::{HashReader, MemoryTree, RootBuilder};
use crate::verify::{verify_consistency, verify_inclusion};

#[test]
fn random_appends_and_proofs() {
    let mut rng = Rng::new(3);
    let mut tree = MemoryTree::new();
    let mut builder = RootBuilder::new();
    let mut roots: Vec<Hash> = vec![tree.root()];
    let mut entries: Vec<Vec<u8>> = Vec::new();
    for _round in 0..120 {
        let limit = if rng.below(4) == 0 { 200 } else { 20 };
        let batch = 1 + rng.below(limit);
        for _ in 0..batch {
            let len = rng.below(64) as usize;
            let e: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert_eq!(tree.append(&e), entries.len() as u64);
            builder.push_entry(&e);
            entries.push(e);
            roots.push(tree.root());
        }
        let size = tree.size();
        assert_eq!(builder.root(), tree.root());
        for _ in 0..25 {
            let n = 1 + rng.below(size);
            let m = rng.below(n + 1);
            let index = rng.below(n);
            let leaf = leaf_hash(&entries[index as usize]);

            let proof = tree.inclusion_proof(index, n).unwrap();
            verify_inclusion(&leaf, index, n, &proof, &roots[n as usize]).unwrap();
            if let Some(first) = proof.first() {
                let mut bad = proof.clone();
                bad[0] = flip(first, rng.below(256) as usize);
                assert!(verify_inclusion(&leaf, index, n, &bad, &roots[n as usize]).is_err());
            }

            let proof = tree.consistency_proof(m, n).unwrap();
            verify_consistency(m, n, &roots[m as usize], &roots[n as usize], &proof).unwrap();
            if m > 0 && m < n {
                let j = rng.below(proof.len() as u64) as usize;
                let mut bad = proof.clone();
                bad[j] = flip(&bad[j], rng.below(256) as usize);
                assert!(
                    verify_consistency(m, n, &roots[m as usize], &roots[n as usize], &bad).is_err()
                );
                // A different earlier tree (its last entry changed) is not a prefix.
                if rng.below(8) != 0 {
                    continue;
                }
                let mut changed = RootBuilder::new();
                for (i, e) in entries[..m as usize].iter().enumerate() {
                    if i as u64 == m - 1 {
                        changed.push_entry(b"tampered");
                    } else {
                        changed.push_entry(e);
                    }
                }
                assert!(
                    verify_consistency(m, n, &changed.root(), &roots[n as usize], &proof).is_err()
                );
            }
        }
    }
    assert!(tree.size() > 2000, "{}", tree.size());
}

#[test]
fn a_sequencer_can_resume_and_store_every_node() {
    let size = 3000;
    let tree = MemoryTree::from_entries((0..size).map(entry));
    let mut rng = Rng::new(5);
    // Every node a push completes is a node of the tree, and together they are all of them.
    let mut stored: BTreeMap<NodeId, Hash> = BTreeMap::new();
    let mut builder = RootBuilder::new();
    for i in 0..size {
        let nodes = builder.push_leaf_hash_nodes(leaf_hash(&entry(i)));
        assert_eq!(nodes.first().map(|(n, _)| *n), Some(NodeId::leaf(i)));
        for (node, h) in nodes {
            assert_eq!(tree.read_hash(node).unwrap(), h, "{node}");
            assert!(node.is_in_tree(i + 1));
            assert!(stored.insert(node, h).is_none(), "{node} completed twice");
        }
    }
    assert_eq!(stored.len() as u64, 2 * size - u64::from(size.count_ones()));
    // Resuming from stored hashes at any size continues the same tree.
    for _ in 0..40 {
        let at = rng.below(size + 1);
        let mut resumed = RootBuilder::resume(&stored, at).unwrap();
        assert_eq!(resumed.size(), at);
        assert_eq!(resumed.root(), tree.root_at(at).unwrap());
        for i in at..(at + 50).min(size) {
            for (node, h) in resumed.push_leaf_hash_nodes(leaf_hash(&entry(i))) {
                assert_eq!(stored.get(&node), Some(&h));
            }
            assert_eq!(resumed.root(), tree.root_at(i + 1).unwrap());
        }
    }
    assert!(RootBuilder::resume(&BTreeMap::new(), 5).is_err());
    assert_eq!(
        RootBuilder::resume(&BTreeMap::new(), 0).unwrap().root(),
        crate::empty_root()
    );
}
