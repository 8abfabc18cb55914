//! `backup verify --against PATH`: compares a snapshot with the live source, by hash.
//!
//! Each live file is cut with the repository's own chunker and hashed with its keyed hash, so a
//! file is identical when its list of chunk ids equals the snapshot's: no data is read from the
//! repository for the files that match. When only the layout differs (a file that was sparse
//! then and is not now, or the other way round) the snapshot's chunks are read and compared
//! byte for byte, so a difference reported is a difference in content, never in layout.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::crypto::BlobId;
use crate::repo::{LockKind, Repository, SnapshotInfo, short};
use crate::save::{file_pieces, load_tree, open_source};
use crate::tree::{Node, NodeKind, Piece};
use crate::{Error, Progress, Result};

/// How an entry differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// In the snapshot, not in the live tree.
    Missing,
    /// In the live tree, not in the snapshot.
    Added,
    /// A different type (file, directory, symlink …).
    Type,
    /// Different file content.
    Content,
    /// A symlink pointing elsewhere.
    Target,
    /// Same content, different mode, owner, modification time or extended attributes.
    Metadata,
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The live path.
    pub path: String,
    pub kind: DiffKind,
    pub detail: String,
}

#[derive(Debug, Default, Serialize)]
pub struct CompareReport {
    pub snapshot: String,
    pub files: u64,
    pub dirs: u64,
    /// Bytes of live files cut and hashed.
    pub bytes_hashed: u64,
    /// Bytes read back from the repository where only the layout differed.
    pub bytes_read: u64,
    pub differences: Vec<Difference>,
}

impl CompareReport {
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Compares `snapshot` (after checking its operator's signature) with the live `paths`; each
/// must be one of the paths the snapshot was taken of.
/// Compares a snapshot restored into `dir` (as `restore` lays it out: each root entry of the
/// snapshot under `dir`) with the snapshot, by hash: a restore test's check.
pub fn compare_restored(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    trusted: &BTreeSet<String>,
    dir: &std::path::Path,
    progress: &dyn Progress,
) -> Result<CompareReport> {
    snapshot.check_signature(trusted)?;
    let _lock = repo.lock(LockKind::Shared)?;
    let root = load_tree(repo, &BlobId::parse(&snapshot.manifest.root)?)?;
    let mut c = Comparer {
        repo,
        progress,
        report: CompareReport {
            snapshot: snapshot.id.clone(),
            ..CompareReport::default()
        },
    };
    progress.total(snapshot.manifest.bytes);
    for node in &root.nodes {
        c.node(&dir.join(node.os_name()), node)?;
    }
    Ok(c.report)
}

pub fn compare(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    trusted: &BTreeSet<String>,
    paths: &[PathBuf],
    progress: &dyn Progress,
) -> Result<CompareReport> {
    snapshot.check_signature(trusted)?;
    let _lock = repo.lock(LockKind::Shared)?;
    if paths.is_empty() {
        return Err(Error::Invalid(
            "give at least one path to compare with".into(),
        ));
    }
    let root = load_tree(repo, &BlobId::parse(&snapshot.manifest.root)?)?;
    let mut c = Comparer {
        repo,
        progress,
        report: CompareReport {
            snapshot: snapshot.id.clone(),
            ..CompareReport::default()
        },
    };
    let mut roots = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(Error::io(p))?;
        let shown = abs.display().to_string();
        if !snapshot.manifest.paths.contains(&shown) {
            return Err(Error::Invalid(format!(
                "snapshot {} was not taken of {shown}; it holds {}",
                short(&snapshot.id),
                snapshot.manifest.paths.join(", ")
            )));
        }
        let name = abs
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| OsString::from("root"));
        let node = root
            .nodes
            .iter()
            .find(|n| n.os_name() == name)
            .ok_or_else(|| {
                Error::corrupt(
                    format!("snapshot {}", short(&snapshot.id)),
                    format!("no root entry for {shown}"),
                )
            })?;
        roots.push((abs, node));
    }
    let total: u64 = if roots.len() == root.nodes.len() {
        snapshot.manifest.bytes
    } else {
        0
    };
    if total > 0 {
        progress.total(total);
    }
    for (abs, node) in roots {
        c.node(&abs, node)?;
    }
    Ok(c.report)
}

struct Comparer<'a> {
    repo: &'a Repository,
    progress: &'a dyn Progress,
    report: CompareReport,
}

impl Comparer<'_> {
    fn differ(&mut self, path: &Path, kind: DiffKind, detail: String) {
        self.report.differences.push(Difference {
            path: path.display().to_string(),
            kind,
            detail,
        });
    }

    fn node(&mut self, path: &Path, snap: &Node) -> Result<()> {
        let live = match Node::from_path(path, &snap.os_name()) {
            Ok(n) => n,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.differ(path, DiffKind::Missing, format!("{:?} gone", snap.kind));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if live.kind != snap.kind {
            self.differ(
                path,
                DiffKind::Type,
                format!("{:?} in the snapshot, {:?} now", snap.kind, live.kind),
            );
            return Ok(());
        }
        match snap.kind {
            NodeKind::Dir => {
                self.report.dirs += 1;
                self.dir(path, snap)?;
            }
            NodeKind::File => {
                self.report.files += 1;
                if !self.same_content(path, snap, &live)? {
                    return Ok(());
                }
            }
            NodeKind::Symlink if live.target != snap.target => {
                let show = |n: &Node| {
                    n.link_target()
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                self.differ(
                    path,
                    DiffKind::Target,
                    format!("{} in the snapshot, {} now", show(snap), show(&live)),
                );
                return Ok(());
            }
            _ => {}
        }
        self.metadata(path, snap, &live);
        Ok(())
    }

    fn dir(&mut self, path: &Path, snap: &Node) -> Result<()> {
        let id = snap
            .subtree
            .as_deref()
            .ok_or_else(|| Error::corrupt(format!("directory {}", path.display()), "no subtree"))?;
        let tree = load_tree(self.repo, &BlobId::parse(id)?)?;
        let mut seen: HashSet<OsString> = HashSet::new();
        for child in &tree.nodes {
            let name = child.os_name();
            self.node(&path.join(&name), child)?;
            seen.insert(name);
        }
        let mut added: Vec<OsString> = Vec::new();
        for e in std::fs::read_dir(path).map_err(Error::io(path))? {
            let name = e.map_err(Error::io(path))?.file_name();
            if !seen.contains(&name) {
                added.push(name);
            }
        }
        added.sort();
        for name in added {
            self.differ(
                &path.join(name),
                DiffKind::Added,
                "not in the snapshot".into(),
            );
        }
        Ok(())
    }

    /// Whether the live file has the snapshot's content; records the difference if not.
    fn same_content(&mut self, path: &Path, snap: &Node, live: &Node) -> Result<bool> {
        if live.size != snap.size {
            self.differ(
                path,
                DiffKind::Content,
                format!("{} bytes in the snapshot, {} now", snap.size, live.size),
            );
            return Ok(false);
        }
        let repo = self.repo;
        let progress = self.progress;
        let pieces = file_pieces(repo, path, live.size, &mut |chunks| {
            Ok(chunks
                .par_iter()
                .map(|d| {
                    progress.advance(d.len() as u64);
                    repo.keys.blob_id(d)
                })
                .collect())
        })?;
        self.report.bytes_hashed += live.size;
        let snap_pieces = snap.content.as_deref().unwrap_or(&[]);
        if pieces == snap_pieces {
            return Ok(true);
        }
        // The same content laid out otherwise (holes against zeros) hashes otherwise: decide by
        // the bytes.
        if self.same_bytes(path, snap_pieces)? {
            return Ok(true);
        }
        self.differ(
            path,
            DiffKind::Content,
            "content differs from the snapshot".into(),
        );
        Ok(false)
    }

    fn same_bytes(&mut self, path: &Path, pieces: &[Piece]) -> Result<bool> {
        let f = open_source(path)?;
        let mut off = 0u64;
        for p in pieces {
            let expected = match p {
                Piece::Hole { hole } => {
                    let mut left = *hole;
                    let mut buf = vec![0u8; 1 << 20];
                    while left > 0 {
                        let n = left.min(buf.len() as u64) as usize;
                        let Some(b) = buf.get_mut(..n) else {
                            return Ok(false);
                        };
                        f.read_exact_at(b, off).map_err(Error::io(path))?;
                        if b.iter().any(|x| *x != 0) {
                            return Ok(false);
                        }
                        off += n as u64;
                        left -= n as u64;
                    }
                    continue;
                }
                Piece::Chunk(id) => self.repo.read_blob(&BlobId::parse(id)?)?,
            };
            self.report.bytes_read += expected.len() as u64;
            let mut got = vec![0u8; expected.len()];
            f.read_exact_at(&mut got, off).map_err(Error::io(path))?;
            if got != expected {
                return Ok(false);
            }
            off += expected.len() as u64;
        }
        Ok(true)
    }

    fn metadata(&mut self, path: &Path, snap: &Node, live: &Node) {
        let mut what = Vec::new();
        if snap.mode != live.mode && snap.kind != NodeKind::Symlink {
            what.push(format!("mode {:o} → {:o}", snap.mode, live.mode));
        }
        if (snap.uid, snap.gid) != (live.uid, live.gid) {
            what.push(format!(
                "owner {}:{} → {}:{}",
                snap.uid, snap.gid, live.uid, live.gid
            ));
        }
        // Directories' times change with their entries, which are compared themselves.
        if snap.kind != NodeKind::Dir && (snap.mtime, snap.mtime_ns) != (live.mtime, live.mtime_ns)
        {
            what.push("modification time".into());
        }
        if snap.xattrs != live.xattrs {
            what.push("extended attributes".into());
        }
        if !what.is_empty() {
            self.differ(path, DiffKind::Metadata, what.join(", "));
        }
    }
}
