//! Merkle Tree Hashes and proof generation (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1) over any
//! source of complete-subtree hashes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::hash::{Hash, NodeId, empty_root, leaf_hash, node_hash};

/// A source of the hashes of complete subtrees.
///
/// Proof generation asks only for nodes that are complete in the tree size it works on, so a
/// store that keeps every complete subtree (as tiles do) can serve any proof without
/// recomputing the tree. To serve an asynchronous store, list the nodes a proof needs with
/// [`inclusion_proof_nodes`] / [`consistency_proof_nodes`] / [`tree_root_nodes`], fetch them,
/// and pass them in a `HashMap<NodeId, Hash>` or `BTreeMap<NodeId, Hash>`, which implement this
/// trait.
pub trait HashReader {
    fn read_hash(&self, node: NodeId) -> Result<Hash, ReadError>;
}

/// A [`HashReader`] could not give a hash.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the hash of {0} is not stored")]
    Missing(NodeId),
    #[error("tile {tile} holds {found} hashes, fewer than the {needed} needed")]
    ShortTile {
        tile: String,
        found: usize,
        needed: usize,
    },
    #[error("reading the hash of {node}: {source}")]
    Storage {
        node: NodeId,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A proof or root could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size1} is larger than tree size {size2}")]
    SizeOrder { size1: u64, size2: u64 },
    #[error("tree size {requested} is larger than the {available} leaves held")]
    BeyondTree { requested: u64, available: u64 },
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl<R: HashReader + ?Sized> HashReader for &R {
    fn read_hash(&self, node: NodeId) -> Result<Hash, ReadError> {
        (**self).read_hash(node)
    }
}

impl<S: std::hash::BuildHasher> HashReader for HashMap<NodeId, Hash, S> {
    fn read_hash(&self, node: NodeId) -> Result<Hash, ReadError> {
        self.get(&node).copied().ok_or(ReadError::Missing(node))
    }
}

impl HashReader for BTreeMap<NodeId, Hash> {
    fn read_hash(&self, node: NodeId) -> Result<Hash, ReadError> {
        self.get(&node).copied().ok_or(ReadError::Missing(node))
    }
}

/// The largest power of two smaller than `n`, for `n >= 2` (the split point `k` of RFC 9162).
fn split(n: u64) -> u64 {
    1u64 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// `MTH(D[start : start + len])` for `len >= 1`, reading complete aligned subtrees whole.
fn range_hash<R: HashReader + ?Sized>(r: &R, start: u64, len: u64) -> Result<Hash, ReadError> {
    if len.is_power_of_two() && start.is_multiple_of(len) {
        let level = len.trailing_zeros();
        // `level` < 64, so the cast cannot truncate.
        return r.read_hash(NodeId::new(level as u8, start >> level));
    }
    let k = split(len);
    let left = range_hash(r, start, k)?;
    let right = range_hash(r, start + k, len - k)?;
    Ok(node_hash(&left, &right))
}

/// The Merkle Tree Hash of the first `size` leaves (RFC 9162 §2.1.1).
pub fn tree_root<R: HashReader + ?Sized>(r: &R, size: u64) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    Ok(range_hash(r, 0, size)?)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves: `PATH(index, D[size])` of
/// RFC 9162 §2.1.3.1, the sibling nearest the leaf first.
pub fn inclusion_proof<R: HashReader + ?Sized>(
    r: &R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(r, index, 0, size, &mut out)?;
    Ok(out)
}

fn path<R: HashReader + ?Sized>(
    r: &R,
    m: u64,
    start: u64,
    n: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ReadError> {
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(r, m, start, k, out)?;
        out.push(range_hash(r, start + k, n - k)?);
    } else {
        path(r, m - k, start + k, n - k, out)?;
        out.push(range_hash(r, start, k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of `size1` and `size2` leaves:
/// `PROOF(size1, D[size2])` of RFC 9162 §2.1.4.1. Empty when `size1` is 0 or equal to `size2`,
/// where there is nothing to prove.
pub fn consistency_proof<R: HashReader + ?Sized>(
    r: &R,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizeOrder { size1, size2 });
    }
    let mut out = Vec::new();
    if size1 > 0 && size1 < size2 {
        subproof(r, size1, 0, size2, true, &mut out)?;
    }
    Ok(out)
}

fn subproof<R: HashReader + ?Sized>(
    r: &R,
    m: u64,
    start: u64,
    n: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ReadError> {
    if m == n {
        if !whole {
            out.push(range_hash(r, start, n)?);
        }
        return Ok(());
    }
    // Here 0 < m < n, so n >= 2.
    let k = split(n);
    if m <= k {
        subproof(r, m, start, k, whole, out)?;
        out.push(range_hash(r, start + k, n - k)?);
    } else {
        subproof(r, m - k, start + k, n - k, false, out)?;
        out.push(range_hash(r, start, k)?);
    }
    Ok(())
}

/// A [`HashReader`] that notes which nodes are asked for.
struct Recorder(RefCell<BTreeSet<NodeId>>);

impl HashReader for Recorder {
    fn read_hash(&self, node: NodeId) -> Result<Hash, ReadError> {
        self.0.borrow_mut().insert(node);
        Ok(Hash::default())
    }
}

fn recorded<F>(f: F) -> Result<Vec<NodeId>, ProofError>
where
    F: FnOnce(&Recorder) -> Result<(), ProofError>,
{
    let rec = Recorder(RefCell::new(BTreeSet::new()));
    f(&rec)?;
    Ok(rec.0.into_inner().into_iter().collect())
}

/// The complete subtrees [`tree_root`] reads for `size` (at most one per level), sorted.
pub fn tree_root_nodes(size: u64) -> Vec<NodeId> {
    recorded(|r| tree_root(r, size).map(drop)).unwrap_or_default()
}

/// The complete subtrees [`inclusion_proof`] reads, sorted: fetch these from an asynchronous
/// store, then generate the proof from a map holding them.
pub fn inclusion_proof_nodes(index: u64, size: u64) -> Result<Vec<NodeId>, ProofError> {
    recorded(|r| inclusion_proof(r, index, size).map(drop))
}

/// The complete subtrees [`consistency_proof`] reads, sorted.
pub fn consistency_proof_nodes(size1: u64, size2: u64) -> Result<Vec<NodeId>, ProofError> {
    recorded(|r| consistency_proof(r, size1, size2).map(drop))
}

/// The root of a growing tree from its leaves in order, keeping only one hash per level (a
/// compact range): what an offline verifier needs to recompute a root over millions of
/// entries in constant memory.
#[derive(Debug, Clone, Default)]
pub struct RootBuilder {
    size: u64,
    /// The roots of the complete subtrees that make up the tree, largest (leftmost) first.
    stack: Vec<Hash>,
}

impl RootBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry (its leaf hash is computed here).
    pub fn push_entry(&mut self, entry: &[u8]) {
        self.push_leaf_hash(leaf_hash(entry));
    }

    /// Resumes a tree of `size` leaves from stored hashes: reads the complete subtrees that
    /// make it up (the nodes of [`tree_root_nodes`]).
    pub fn resume<R: HashReader + ?Sized>(r: &R, size: u64) -> Result<Self, ReadError> {
        let mut stack = Vec::new();
        let mut start = 0u64;
        for level in (0..u64::BITS).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                // `level` < 64, so the cast cannot truncate.
                stack.push(r.read_hash(NodeId::new(level as u8, start >> level))?);
                start += width;
            }
        }
        Ok(RootBuilder { size, stack })
    }

    /// Appends a leaf by its leaf hash.
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        self.push_with(leaf, |_, _| {});
    }

    /// Appends a leaf by its leaf hash and returns every node it completes, the leaf first and
    /// then up the levels: what a store adds to keep every complete subtree (and so its tiles).
    pub fn push_leaf_hash_nodes(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut nodes = Vec::new();
        self.push_with(leaf, |node, h| nodes.push((node, h)));
        nodes
    }

    pub(crate) fn push_with(&mut self, leaf: Hash, mut completed: impl FnMut(NodeId, Hash)) {
        let index = self.size;
        let mut h = leaf;
        let mut s = index;
        let mut level = 0u8;
        completed(NodeId::new(0, index), h);
        while s & 1 == 1 {
            let Some(left) = self.stack.pop() else { break };
            h = node_hash(&left, &h);
            s >>= 1;
            level += 1;
            completed(NodeId::new(level, index >> level), h);
        }
        self.stack.push(h);
        self.size += 1;
    }

    /// Number of leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The Merkle Tree Hash of the leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.stack.iter().rev();
        let Some(last) = subtrees.next() else {
            return empty_root();
        };
        subtrees.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// An in-memory tree that keeps every complete subtree hash: for tests, offline tools and
/// small logs. It is a [`HashReader`], so every proof function works on it.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of the node `(l, i)`; `levels[l].len() == size >> l`.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree holding `entries` in order.
    pub fn from_entries<I, E>(entries: I) -> Self
    where
        I: IntoIterator<Item = E>,
        E: AsRef<[u8]>,
    {
        let mut tree = Self::new();
        for e in entries {
            tree.append(e.as_ref());
        }
        tree
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends an entry and returns its index.
    pub fn append(&mut self, entry: &[u8]) -> u64 {
        self.append_leaf_hash(leaf_hash(entry))
    }

    /// Appends a leaf by its leaf hash and returns its index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        let mut h = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                break;
            };
            row.push(h);
            if !row.len().is_multiple_of(2) {
                break;
            }
            let [left, right] = match row.last_chunk::<2>() {
                Some(pair) => *pair,
                None => break,
            };
            h = node_hash(&left, &right);
            level += 1;
        }
        index
    }

    /// The leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        self.read_hash(NodeId::leaf(index)).ok()
    }

    /// The Merkle Tree Hash of the whole tree.
    pub fn root(&self) -> Hash {
        // A level holds an odd number of nodes exactly when the tree's decomposition into
        // complete subtrees uses its last node; fold those from the smallest (rightmost) up.
        self.levels
            .iter()
            .filter(|row| !row.len().is_multiple_of(2))
            .filter_map(|row| row.last())
            .fold(None, |acc: Option<Hash>, left| {
                Some(match acc {
                    None => *left,
                    Some(right) => node_hash(left, &right),
                })
            })
            .unwrap_or_else(empty_root)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let available = self.size();
        if size > available {
            return Err(ProofError::BeyondTree {
                requested: size,
                available,
            });
        }
        Ok(())
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        tree_root(self, size)
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        inclusion_proof(self, index, size)
    }

    /// The consistency proof between the trees of the first `size1` and `size2` leaves.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size2)?;
        consistency_proof(self, size1, size2)
    }
}

impl HashReader for MemoryTree {
    fn read_hash(&self, node: NodeId) -> Result<Hash, ReadError> {
        usize::try_from(node.index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(node.level))?.get(i))
            .copied()
            .ok_or(ReadError::Missing(node))
    }
}
