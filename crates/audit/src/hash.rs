//! RFC 9162 §2.1 hashing: SHA-256 with domain separation between leaves and interior nodes.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Size in bytes of every hash in the tree.
pub const HASH_SIZE: usize = 32;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

/// A hash given as text or bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashDecodeError {
    #[error("a hash is {HASH_SIZE} bytes, not {0}")]
    Length(usize),
    #[error("a hash must be {} hexadecimal digits", HASH_SIZE * 2)]
    Hex,
    #[error("a hash must be standard base64 (RFC 4648 §4) of {HASH_SIZE} bytes")]
    Base64,
}

impl Hash {
    /// The hash as bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_SIZE] {
        &self.0
    }

    /// A hash from a slice that must be exactly [`HASH_SIZE`] bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashDecodeError> {
        <[u8; HASH_SIZE]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| HashDecodeError::Length(bytes.len()))
    }

    /// Lower-case hexadecimal, 64 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// From 64 hexadecimal digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, HashDecodeError> {
        let mut out = [0u8; HASH_SIZE];
        hex::decode_to_slice(text, &mut out).map_err(|_| HashDecodeError::Hex)?;
        Ok(Hash(out))
    }

    /// Standard base64 with padding, as in a checkpoint's root line.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// From standard base64 with padding; non-canonical encodings are refused.
    pub fn from_base64(text: &str) -> Result<Self, HashDecodeError> {
        let bytes = STANDARD.decode(text).map_err(|_| HashDecodeError::Base64)?;
        Hash::from_slice(&bytes).map_err(|_| HashDecodeError::Base64)
    }
}

impl From<[u8; HASH_SIZE]> for Hash {
    fn from(bytes: [u8; HASH_SIZE]) -> Self {
        Hash(bytes)
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The leaf hash of an entry: `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The Merkle Tree Hash of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// A complete subtree of the log: the `2^level` leaves starting at leaf `index << level`.
///
/// Level 0 holds the leaf hashes; the node `(level, index)` is the hash of the nodes
/// `(level - 1, 2 index)` and `(level - 1, 2 index + 1)`. A node exists in a tree of size `n`
/// when `(index + 1) << level <= n`. This is the unit a storage layer keeps (in tiles, see
/// [`crate::tile`]) and that [`crate::HashReader`] serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub const fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// The leaf hash of entry `index`.
    pub const fn leaf(index: u64) -> Self {
        NodeId { level: 0, index }
    }

    /// The first leaf covered and one past the last, or `None` if that range does not fit in a
    /// `u64` tree.
    pub fn leaf_range(&self) -> Option<(u64, u64)> {
        let shift = u32::from(self.level);
        if shift >= u64::BITS {
            return None;
        }
        let start = u128::from(self.index) << shift;
        let end = (u128::from(self.index) + 1) << shift;
        Some((u64::try_from(start).ok()?, u64::try_from(end).ok()?))
    }

    /// Whether this subtree is complete in a tree of `size` leaves.
    pub fn is_in_tree(&self, size: u64) -> bool {
        self.leaf_range().is_some_and(|(_, end)| end <= size)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node (level {}, index {})", self.level, self.index)
    }
}
