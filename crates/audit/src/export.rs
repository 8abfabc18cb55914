//! Offline verification of an audit log export against a signed checkpoint.
//!
//! An export is the log's entries in index order, one per line; the bytes of an entry are its
//! line without the newline (so an exportable entry holds no newline byte; canonical JSON
//! never does). [`ExportVerifier`] takes them one at a time, in constant memory, and checks:
//!
//! 1. the checkpoint carries a valid signature by the trusted key (and, if asked, names the
//!    expected origin);
//! 2. the export holds exactly `size` entries and their Merkle Tree Hash is the checkpoint's
//!    root.
//!
//! Together these prove, as long as SHA-256 is collision resistant and the key is the log's,
//! that the export is **exactly** the sequence of entries the log had committed to when it
//! signed the checkpoint: none changed, reordered, removed or added. A root alone cannot say
//! *which* entry differs. For that, add what the verifier already trusts:
//!
//! - **earlier signed checkpoints** ([`ExportVerifier::earlier_checkpoint`]): the root of the
//!   first `m` entries is recomputed and compared with each, which proves the log only
//!   appended since (the prefix it had signed is intact) and, on a mismatch, bounds where the
//!   change is;
//! - **known leaf hashes** ([`ExportVerifier::known_leaf_hashes`]), e.g. receipts kept when
//!   entries were written: the first index whose entry no longer hashes to its receipt is
//!   reported.
//!
//! A verifier that holds two checkpoints but no entries checks that the log only appended
//! between them with [`verify_checkpoint_consistency`] and a consistency proof.

use std::collections::BTreeMap;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hash::{Hash, leaf_hash};
use crate::note::NoteVerifier;
use crate::tree::RootBuilder;
use crate::verify::{VerifyError, verify_consistency};

/// An export or a pair of checkpoints did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("checkpoint: {0}")]
    Checkpoint(#[source] CheckpointError),
    #[error("earlier checkpoint: {0}")]
    EarlierCheckpoint(#[source] CheckpointError),
    #[error("the checkpoint is for the log {found:?}, not {expected:?}")]
    Origin { expected: String, found: String },
    #[error(
        "the earlier checkpoint of size {earlier} is larger than the checkpoint of size {size}"
    )]
    EarlierLarger { earlier: u64, size: u64 },
    #[error("the export has more entries than the checkpoint's {size}")]
    TooManyEntries { size: u64 },
    #[error("the export has {entries} entries, the checkpoint {size}")]
    TooFewEntries { entries: u64, size: u64 },
    #[error("entry {index} hashes to {found}, its known leaf hash is {expected}")]
    LeafMismatch {
        index: u64,
        expected: Hash,
        found: Hash,
    },
    #[error(
        "the first {size} entries have root {computed}, the earlier checkpoint signed {expected}"
    )]
    EarlierRootMismatch {
        size: u64,
        expected: Hash,
        computed: Hash,
    },
    #[error(
        "the entries have root {computed}, the checkpoint signed {expected} (the first {intact} entries match an earlier checkpoint)"
    )]
    RootMismatch {
        expected: Hash,
        computed: Hash,
        /// Entries before this index are proven intact by an earlier checkpoint (0 if none).
        intact: u64,
    },
    #[error("the export is not a sequence of newline-terminated lines")]
    Lines,
    #[error("consistency proof: {0}")]
    Consistency(#[source] VerifyError),
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportReport {
    /// The verified checkpoint: its origin, size and root.
    pub checkpoint: Checkpoint,
    /// Sizes of the earlier checkpoints whose roots the export's prefixes reproduce.
    pub earlier_sizes: Vec<u64>,
    /// Number of entries checked against a known leaf hash.
    pub known_leaves_checked: u64,
}

/// Checks an export entry by entry against a signed checkpoint (see the module documentation).
#[derive(Debug)]
pub struct ExportVerifier {
    checkpoint: Checkpoint,
    verifier: NoteVerifier,
    /// Earlier checkpoints not yet reached, by size.
    earlier: BTreeMap<u64, Checkpoint>,
    earlier_done: Vec<u64>,
    known: BTreeMap<u64, Hash>,
    known_checked: u64,
    builder: RootBuilder,
}

impl ExportVerifier {
    /// Verifies the signed checkpoint with the trusted key and prepares to read its entries.
    pub fn new(signed_checkpoint: &str, verifier: &NoteVerifier) -> Result<Self, ExportError> {
        let checkpoint =
            Checkpoint::open(signed_checkpoint, verifier).map_err(ExportError::Checkpoint)?;
        Ok(ExportVerifier {
            checkpoint,
            verifier: verifier.clone(),
            earlier: BTreeMap::new(),
            earlier_done: Vec::new(),
            known: BTreeMap::new(),
            known_checked: 0,
            builder: RootBuilder::new(),
        })
    }

    /// The verified checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Requires the checkpoint to name the log `origin`.
    pub fn expect_origin(self, origin: &str) -> Result<Self, ExportError> {
        if self.checkpoint.origin != origin {
            return Err(ExportError::Origin {
                expected: origin.to_owned(),
                found: self.checkpoint.origin.clone(),
            });
        }
        Ok(self)
    }

    /// Adds an earlier checkpoint of the same log, verified with the same key, whose root the
    /// export's first `size` entries must reproduce. Call before the first entry.
    pub fn earlier_checkpoint(mut self, signed: &str) -> Result<Self, ExportError> {
        let earlier =
            Checkpoint::open(signed, &self.verifier).map_err(ExportError::EarlierCheckpoint)?;
        if earlier.origin != self.checkpoint.origin {
            return Err(ExportError::Origin {
                expected: self.checkpoint.origin.clone(),
                found: earlier.origin,
            });
        }
        if earlier.size > self.checkpoint.size {
            return Err(ExportError::EarlierLarger {
                earlier: earlier.size,
                size: self.checkpoint.size,
            });
        }
        if earlier.size <= self.builder.size() {
            // The empty tree is a prefix of every tree; a prefix already passed is checked at
            // its own size only.
            self.check_prefix(&earlier)?;
            self.earlier_done.push(earlier.size);
        } else {
            self.earlier.insert(earlier.size, earlier);
        }
        Ok(self)
    }

    /// Adds known leaf hashes by entry index (e.g. receipts kept when the entries were
    /// written); indices at or beyond the checkpoint's size are ignored.
    pub fn known_leaf_hashes(mut self, hashes: impl IntoIterator<Item = (u64, Hash)>) -> Self {
        self.known.extend(hashes);
        self
    }

    fn check_prefix(&self, earlier: &Checkpoint) -> Result<(), ExportError> {
        if earlier.size != self.builder.size() {
            // Only reachable when an earlier checkpoint is added after its size was passed.
            return Err(ExportError::EarlierCheckpoint(CheckpointError::Malformed(
                "earlier checkpoints must be given before the entries",
            )));
        }
        let computed = self.builder.root();
        if computed != earlier.root {
            return Err(ExportError::EarlierRootMismatch {
                size: earlier.size,
                expected: earlier.root,
                computed,
            });
        }
        Ok(())
    }

    /// Takes the next entry (the line without its newline).
    pub fn push_entry(&mut self, entry: &[u8]) -> Result<(), ExportError> {
        let index = self.builder.size();
        if index >= self.checkpoint.size {
            return Err(ExportError::TooManyEntries {
                size: self.checkpoint.size,
            });
        }
        let leaf = leaf_hash(entry);
        if let Some(expected) = self.known.get(&index) {
            if *expected != leaf {
                return Err(ExportError::LeafMismatch {
                    index,
                    expected: *expected,
                    found: leaf,
                });
            }
            self.known_checked += 1;
        }
        self.builder.push_leaf_hash(leaf);
        let size = self.builder.size();
        if let Some(earlier) = self.earlier.remove(&size) {
            self.check_prefix(&earlier)?;
            self.earlier_done.push(size);
        }
        Ok(())
    }

    /// Checks the count and the root once every entry has been given.
    pub fn finish(self) -> Result<ExportReport, ExportError> {
        let entries = self.builder.size();
        if entries != self.checkpoint.size {
            return Err(ExportError::TooFewEntries {
                entries,
                size: self.checkpoint.size,
            });
        }
        let computed = self.builder.root();
        if computed != self.checkpoint.root {
            return Err(ExportError::RootMismatch {
                expected: self.checkpoint.root,
                computed,
                intact: self.earlier_done.iter().copied().max().unwrap_or(0),
            });
        }
        let mut earlier_sizes = self.earlier_done;
        earlier_sizes.sort_unstable();
        earlier_sizes.dedup();
        Ok(ExportReport {
            checkpoint: self.checkpoint,
            earlier_sizes,
            known_leaves_checked: self.known_checked,
        })
    }
}

/// Verifies a whole export given as entries (see [`ExportVerifier`] for more checks).
pub fn verify_export<I, E>(
    entries: I,
    signed_checkpoint: &str,
    verifier: &NoteVerifier,
) -> Result<ExportReport, ExportError>
where
    I: IntoIterator<Item = E>,
    E: AsRef<[u8]>,
{
    let mut v = ExportVerifier::new(signed_checkpoint, verifier)?;
    for e in entries {
        v.push_entry(e.as_ref())?;
    }
    v.finish()
}

/// The entries of an export's bytes: every line must end with `\n` (an empty export is empty).
/// No other byte is stripped: a `\r` before the newline is part of the entry.
pub fn export_lines(export: &[u8]) -> Result<impl Iterator<Item = &[u8]>, ExportError> {
    let body = match export {
        [] => None,
        [body @ .., b'\n'] => Some(body),
        _ => return Err(ExportError::Lines),
    };
    Ok(body.into_iter().flat_map(|b| b.split(|c| *c == b'\n')))
}

/// Verifies two signed checkpoints of one log and a consistency proof between them: the newer
/// tree extends the older one, so nothing the log had signed was changed since. Returns the
/// older and the newer checkpoint.
pub fn verify_checkpoint_consistency(
    older: &str,
    newer: &str,
    verifier: &NoteVerifier,
    proof: &[Hash],
) -> Result<(Checkpoint, Checkpoint), ExportError> {
    let old = Checkpoint::open(older, verifier).map_err(ExportError::EarlierCheckpoint)?;
    let new = Checkpoint::open(newer, verifier).map_err(ExportError::Checkpoint)?;
    if old.origin != new.origin {
        return Err(ExportError::Origin {
            expected: new.origin,
            found: old.origin,
        });
    }
    if old.size > new.size {
        return Err(ExportError::EarlierLarger {
            earlier: old.size,
            size: new.size,
        });
    }
    verify_consistency(old.size, new.size, &old.root, &new.root, proof)
        .map_err(ExportError::Consistency)?;
    Ok((old, new))
}
