//! `backup restore`: recreates a snapshot's trees under a target directory, bit for bit, with
//! modes, ownership (when permitted), times, symlinks, hard links, extended attributes and the
//! holes of sparse files. The operator's signature is checked first.

use std::collections::{BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::crypto::BlobId;
use crate::repo::{LockKind, Repository, SnapshotInfo};
use crate::save::load_tree;
use crate::tree::{Node, NodeKind, Piece, apply_metadata};
use crate::{Error, Progress, Result};

#[derive(Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    pub warnings: Vec<String>,
}

/// Restores `snapshot` into `target` (created if missing).
pub fn restore(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    trusted: &BTreeSet<String>,
    target: &Path,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let started = Instant::now();
    snapshot.check_signature(trusted)?;
    let _lock = repo.lock(LockKind::Shared)?;
    progress.total(snapshot.manifest.bytes);
    std::fs::create_dir_all(target).map_err(Error::io(target))?;
    let mut r = Restorer {
        repo,
        progress,
        links: HashMap::new(),
        report: RestoreReport::default(),
    };
    let root = load_tree(repo, &BlobId::parse(&snapshot.manifest.root)?)?;
    for node in &root.nodes {
        r.restore_node(&target.join(node.os_name()), node)?;
    }
    r.report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(r.report)
}

struct Restorer<'a> {
    repo: &'a Repository,
    progress: &'a dyn Progress,
    /// (device, inode) of multiply-linked files → where the first one was restored.
    links: HashMap<(u64, u64), PathBuf>,
    report: RestoreReport,
}

impl Restorer<'_> {
    fn restore_node(&mut self, path: &Path, node: &Node) -> Result<()> {
        match node.kind {
            NodeKind::Dir => {
                match std::fs::create_dir(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
                    Err(e) => return Err(Error::io(path)(e)),
                }
                let id = node.subtree.as_deref().ok_or_else(|| {
                    Error::corrupt(format!("directory {}", path.display()), "no subtree")
                })?;
                let tree = load_tree(self.repo, &BlobId::parse(id)?)?;
                for child in &tree.nodes {
                    self.restore_node(&path.join(child.os_name()), child)?;
                }
                self.report.dirs += 1;
            }
            NodeKind::File => {
                if node.links > 1 {
                    if let Some(first) = self.links.get(&(node.dev, node.inode)) {
                        remove_existing(path)?;
                        std::fs::hard_link(first, path).map_err(Error::io(path))?;
                        self.report.files += 1;
                        return Ok(());
                    }
                    self.links
                        .insert((node.dev, node.inode), path.to_path_buf());
                }
                self.restore_file(path, node)?;
                self.report.files += 1;
            }
            NodeKind::Symlink => {
                remove_existing(path)?;
                let t = node.link_target().ok_or_else(|| {
                    Error::corrupt(format!("symlink {}", path.display()), "no target")
                })?;
                std::os::unix::fs::symlink(&t, path).map_err(Error::io(path))?;
            }
            NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev => {
                remove_existing(path)?;
                let ft = match node.kind {
                    NodeKind::Fifo => rustix::fs::FileType::Fifo,
                    NodeKind::Chardev => rustix::fs::FileType::CharacterDevice,
                    _ => rustix::fs::FileType::BlockDevice,
                };
                if let Err(e) = rustix::fs::mknodat(
                    rustix::fs::CWD,
                    path,
                    ft,
                    rustix::fs::Mode::from_raw_mode(node.mode),
                    node.rdev.unwrap_or(0),
                ) {
                    self.report.warnings.push(format!(
                        "{}: cannot create special file: {e}",
                        path.display()
                    ));
                    return Ok(());
                }
            }
            NodeKind::Socket => {
                self.report
                    .warnings
                    .push(format!("{}: sockets are not restored", path.display()));
                return Ok(());
            }
        }
        apply_metadata(path, node, &mut self.report.warnings);
        Ok(())
    }

    fn restore_file(&mut self, path: &Path, node: &Node) -> Result<()> {
        remove_existing(path)?;
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(Error::io(path))?;
        let mut jobs: Vec<(u64, BlobId)> = Vec::new();
        let mut off = 0u64;
        for p in node.content.as_deref().unwrap_or(&[]) {
            match p {
                Piece::Hole { hole } => off += hole,
                Piece::Chunk(id) => {
                    let id = BlobId::parse(id)?;
                    let loc = self.repo.index.blobs.get(&id).ok_or_else(|| {
                        Error::corrupt(
                            format!("{}", path.display()),
                            format!("chunk {} is not in any index", id.to_hex()),
                        )
                    })?;
                    jobs.push((off, id));
                    off += u64::from(loc.raw_len);
                }
            }
        }
        let repo = self.repo;
        let progress = self.progress;
        jobs.par_iter().try_for_each(|(off, id)| -> Result<()> {
            let data = repo.read_blob(id)?;
            f.write_all_at(&data, *off).map_err(Error::io(path))?;
            progress.advance(data.len() as u64);
            Ok(())
        })?;
        f.set_len(node.size).map_err(Error::io(path))?;
        self.report.bytes += node.size;
        Ok(())
    }
}

fn remove_existing(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => Err(Error::Invalid(format!(
            "{} is a directory in the target but a file in the snapshot",
            path.display()
        ))),
        Ok(_) => std::fs::remove_file(path).map_err(Error::io(path)),
        Err(_) => Ok(()),
    }
}
