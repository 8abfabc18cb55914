//! Parapet's tamper-evident audit log (issue 3). Every module but [`log`] is pure: no I/O, no
//! clock, no randomness of its own; [`log`] is the sequencer and proof service, reaching storage
//! only through `parapet-store`'s traits.
//!
//! - [`hash`]: RFC 9162 §2.1 hashing — leaf `SHA-256(0x00 ‖ entry)`, node
//!   `SHA-256(0x01 ‖ left ‖ right)`, empty tree `SHA-256("")` — and [`NodeId`], a complete
//!   subtree `(level, index)`.
//! - [`tree`]: Merkle Tree Hashes, inclusion and consistency proofs (RFC 9162 §2.1.3.1,
//!   §2.1.4.1) generated from any [`HashReader`] (a store of complete-subtree hashes);
//!   [`MemoryTree`] keeps every level in memory; [`RootBuilder`] computes a root in constant
//!   memory.
//! - [`verify`]: proof verification exactly as RFC 9162 §2.1.3.2 and §2.1.4.2 write it.
//! - [`tile`]: C2SP tlog-tiles (height 8): tile coordinates of a stored hash, tile and entry
//!   bundle paths, the tiles of a tree, tile and bundle bodies, and a [`HashReader`] over tiles.
//! - [`integrate`]: the sequencer's arithmetic — a tree grown leaf by leaf from its stored
//!   right edge, yielding the tiles that changed.
//! - [`report`]: account and access reports drawn from the log's records.
//! - [`note`] and [`checkpoint`]: C2SP signed notes with Ed25519 and C2SP tlog-checkpoints.
//! - [`export`]: offline verification of an export against a signed checkpoint.

pub mod checkpoint;
pub mod export;
pub mod hash;
pub mod integrate;
pub mod log;
pub mod note;
pub mod report;
pub mod tile;
pub mod tree;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use export::{
    ExportError, ExportReport, ExportVerifier, export_lines, verify_checkpoint_consistency,
    verify_export,
};
pub use hash::{HASH_SIZE, Hash, HashDecodeError, NodeId, empty_root, leaf_hash, node_hash};
pub use integrate::{IntegrateError, Integrator};
pub use log::{AuditLog, IntegrateReport, LogConfig, LogError, LogResult};
pub use note::{Note, NoteError, NoteSignature, NoteSigner, NoteVerifier};
pub use report::{AccessReport, Account, access_report};
pub use tile::{EntryBundle, Tile, TileError, TileHashReader, TileReader};
pub use tree::{
    HashReader, MemoryTree, ProofError, ReadError, RootBuilder, consistency_proof,
    consistency_proof_nodes, inclusion_proof, inclusion_proof_nodes, tree_root, tree_root_nodes,
};
pub use verify::{VerifyError, root_from_inclusion_proof, verify_consistency, verify_inclusion};

#[cfg(test)]
mod tests;
