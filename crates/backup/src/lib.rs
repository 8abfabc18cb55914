//! The backup engine (X.1642 8.10): deduplicating, encrypted backups whose snapshots are signed
//! by the operator's Ed25519 key.
//!
//! A repository is a directory (see `repo.rs` for the layout) of immutable files: packs holding
//! encrypted, compressed chunks of content-defined size (FastCDC with a secret seed), index files
//! saying which chunk is where, and snapshot manifests. Chunks are named by a keyed BLAKE3 hash,
//! so the repository never reveals the plain hash of any content. Every file written is named
//! after the BLAKE3 hash of its bytes and written under a temporary name first, so an interrupted
//! run leaves only complete files (or temporary ones that are ignored and cleaned by `prune`).
//! This crate does file I/O but no HTTP, SQL or terminal output: callers observe progress through
//! [`Progress`].

mod backend;
mod compare;
mod copy;
mod crypto;
mod error;
mod policy;
mod prune;
mod repo;
mod restore;
mod save;
mod tree;
mod verify;

pub use backend::{Backend, Limited, Local, Pacer, RealPacer, open_location};
pub use compare::{CompareReport, DiffKind, Difference, compare, compare_restored};
pub use copy::{CopyReport, copy};
pub use crypto::{OperatorKey, parse_public_key};
pub use error::Error;
pub use policy::{KeepPolicy, select_keep};
pub use prune::{PruneOptions, PruneReport, prune};
pub use repo::{InitOptions, LockKind, Manifest, Repository, SnapshotInfo, hostname};
pub use restore::{RestoreReport, restore};
pub use save::{BackupOptions, BackupReport, backup};
pub use tree::{Node, NodeKind};
pub use verify::{Problem, VerifyOptions, VerifyReport, verify};

/// Receives progress of long operations (a progress bar in the CLI).
pub trait Progress: Sync {
    /// The total amount of work in bytes, once known.
    fn total(&self, _bytes: u64) {}
    /// `bytes` more were processed.
    fn advance(&self, _bytes: u64) {}
}

/// A [`Progress`] that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
