//! `backup run`: walks the given paths, stores new chunks and trees, and writes a signed
//! snapshot.
//!
//! Data flow for a large file: a reader thread reads 8 MiB blocks and cuts them into chunks with
//! FastCDC (seeded by the repository's secret); the calling thread hands each batch of chunks to
//! the rayon pool, which hashes them (keyed BLAKE3), claims the new ones, and compresses and
//! encrypts those; the calling thread appends them to the open pack; a writer thread stores
//! finished packs. Every few packs an index file is written, so a run that is killed leaves
//! indexed packs that the next run reuses instead of storing the data again.
//!
//! Memory is bounded: every hand-over between threads is a rendezvous (no queue), and pack
//! buffers come from a pool of [`PACK_BUFFERS`] that the writer gives back once a pack is
//! stored, so a run holds one pack being filled and one being written, whatever the data.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Instant;

use fastcdc::v2020::{FastCDC, Normalization};
use rayon::prelude::*;

use crate::crypto::{BlobId, OperatorKey};
use crate::repo::{BlobKind, IndexFile, IndexPack, LockKind, Manifest, PackEntry, Repository};
use crate::tree::{Node, NodeKind, Piece, Tree};
use crate::{Error, Progress, Result, SnapshotInfo};

const PACK_TARGET: usize = 16 * 1024 * 1024;
/// Pack buffers in use at once: one being filled, one being written.
const PACK_BUFFERS: usize = 2;
const BLOCK: usize = 4 * 1024 * 1024;
/// Write an index file after this many packs (bounds what an interrupted run must redo).
const INDEX_EVERY: usize = 4;

pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    pub hostname: Option<String>,
    /// Read every file even if the previous snapshot says it is unchanged.
    pub force: bool,
}

#[derive(Debug)]
pub struct BackupReport {
    pub snapshot: SnapshotInfo,
    pub warnings: Vec<String>,
    pub new_blobs: u64,
}

/// Backs up `opts.paths` into `repo` and signs the snapshot with `key`.
pub fn backup(
    repo: &mut Repository,
    opts: &BackupOptions,
    key: &OperatorKey,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let started = Instant::now();
    let _lock = repo.lock(LockKind::Shared)?;
    // Index files written meanwhile by others (another run, a killed run) count too.
    repo.load_index()?;
    if opts.paths.is_empty() {
        return Err(Error::Invalid(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let mut roots: Vec<(OsString, PathBuf)> = Vec::new();
    for p in &opts.paths {
        let abs = std::path::absolute(p).map_err(Error::io(p))?;
        std::fs::symlink_metadata(&abs).map_err(Error::io(&abs))?;
        let name = abs
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| OsString::from("root"));
        if roots.iter().any(|(n, _)| *n == name) {
            return Err(Error::Invalid(format!(
                "two paths end in the same name {:?}: back them up separately",
                name
            )));
        }
        roots.push((name, abs));
    }
    let hostname = opts.hostname.clone().unwrap_or_else(crate::repo::hostname);
    let paths: Vec<String> = roots.iter().map(|(_, p)| p.display().to_string()).collect();
    // The parent: the latest snapshot of the same paths from the same host.
    let (snaps, _) = repo.snapshots()?;
    let parent = if opts.force {
        None
    } else {
        snaps
            .iter()
            .rev()
            .find(|s| s.manifest.hostname == hostname && s.manifest.paths == paths)
            .cloned()
    };
    let repo: &Repository = repo;
    let parent_root = match &parent {
        Some(p) => load_tree(repo, &BlobId::parse(&p.manifest.root)?).ok(),
        None => None,
    };

    // A rendezvous: a finished pack waits for the writer instead of queueing.
    let (pack_tx, pack_rx) = mpsc::sync_channel::<(Vec<u8>, Vec<PackEntry>)>(0);
    let (done_tx, done_rx) = mpsc::channel::<Result<IndexPack>>();
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    let pack_capacity = pack_capacity(repo);
    let result = std::thread::scope(|s| {
        s.spawn(move || {
            for (mut bytes, blobs) in pack_rx {
                let r = repo.write_pack(&bytes).map(|id| IndexPack { id, blobs });
                // The buffer goes back to the pool before the next pack is taken.
                bytes.clear();
                let _ = free_tx.send(bytes);
                if done_tx.send(r).is_err() {
                    break;
                }
            }
        });
        let mut saver = Saver {
            repo,
            claimed: Mutex::new(HashSet::new()),
            pack: Vec::with_capacity(pack_capacity),
            pack_capacity,
            free_rx,
            pack_buffers: 1,
            entries: Vec::new(),
            pack_tx: Some(pack_tx),
            done_rx,
            done: Vec::new(),
            packs_sent: 0,
            index_files: Vec::new(),
            progress,
            warnings: Vec::new(),
            files: 0,
            dirs: 0,
            bytes: 0,
            new_bytes: 0,
            stored_bytes: 0,
            new_blobs: 0,
        };
        let r = saver.save_roots(&roots, parent_root.as_ref());
        let r2 = saver.finish();
        r.and_then(|root| r2.map(|()| (root, saver)))
    });
    let (root, saver) = result?;
    let manifest = Manifest {
        version: 1,
        time_ms: repo.env.now().0,
        hostname,
        paths,
        root: root.to_hex(),
        parent: parent.map(|p| p.id),
        tags: opts.tags.clone(),
        operator: key.public(),
        files: saver.files,
        dirs: saver.dirs,
        bytes: saver.bytes,
        new_bytes: saver.new_bytes,
        stored_bytes: saver.stored_bytes,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let snapshot = repo.write_snapshot(&manifest, key)?;
    Ok(BackupReport {
        snapshot,
        warnings: saver.warnings,
        new_blobs: saver.new_blobs,
    })
}

/// The most a pack can hold: the target, the largest sealed blob that may push it past the
/// target, and its header.
fn pack_capacity(repo: &Repository) -> usize {
    PACK_TARGET + (repo.config.chunk_max as usize).max(BLOCK) + 1024 * 1024
}

pub(crate) fn load_tree(repo: &Repository, id: &BlobId) -> Result<Tree> {
    let bytes = repo.read_blob(id)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(format!("tree {}", id.to_hex()), e.to_string()))
}

/// A chunk's id, raw length, and its sealed form if this run stores it.
type Hashed = (BlobId, u32, Option<Vec<u8>>);

struct Saver<'a> {
    repo: &'a Repository,
    /// Blobs stored by this run (not yet in the repository's index).
    claimed: Mutex<HashSet<BlobId>>,
    pack: Vec<u8>,
    /// The capacity of a pack buffer: a pack never outgrows it (no reallocation).
    pack_capacity: usize,
    /// Pack buffers the writer gave back, and how many exist.
    free_rx: mpsc::Receiver<Vec<u8>>,
    pack_buffers: usize,
    entries: Vec<PackEntry>,
    pack_tx: Option<mpsc::SyncSender<(Vec<u8>, Vec<PackEntry>)>>,
    done_rx: mpsc::Receiver<Result<IndexPack>>,
    done: Vec<IndexPack>,
    packs_sent: usize,
    index_files: Vec<String>,
    progress: &'a dyn Progress,
    warnings: Vec<String>,
    files: u64,
    dirs: u64,
    bytes: u64,
    new_bytes: u64,
    stored_bytes: u64,
    new_blobs: u64,
}

impl Saver<'_> {
    fn save_roots(
        &mut self,
        roots: &[(OsString, PathBuf)],
        parent: Option<&Tree>,
    ) -> Result<BlobId> {
        let mut nodes = Vec::new();
        for (name, path) in roots {
            let prev = parent.and_then(|t| find(t, name));
            nodes.push(self.save_node(path, name, prev)?);
        }
        self.save_tree(nodes)
    }

    fn save_node(&mut self, path: &Path, name: &OsString, prev: Option<&Node>) -> Result<Node> {
        let mut node = Node::from_path(path, name)?;
        match node.kind {
            NodeKind::Dir => {
                let prev_tree = match prev.and_then(|p| p.subtree.as_deref()) {
                    Some(id) => load_tree(self.repo, &BlobId::parse(id)?).ok(),
                    None => None,
                };
                let id = self.save_dir(path, prev_tree.as_ref())?;
                node.subtree = Some(id.to_hex());
                self.dirs += 1;
            }
            NodeKind::File => {
                self.files += 1;
                self.bytes += node.size;
                let reusable = prev
                    .filter(|p| node.unchanged(p))
                    .and_then(|p| p.content.clone())
                    .filter(|c| self.all_present(c));
                match reusable {
                    Some(c) => {
                        node.content = Some(c);
                        self.progress.advance(node.size);
                    }
                    None => node.content = Some(self.save_file(path, node.size)?),
                }
            }
            _ => {}
        }
        Ok(node)
    }

    fn all_present(&self, content: &[Piece]) -> bool {
        content.iter().all(|p| match p {
            Piece::Hole { .. } => true,
            Piece::Chunk(id) => BlobId::parse(id)
                .map(|id| self.repo.index.blobs.contains_key(&id))
                .unwrap_or(false),
        })
    }

    fn save_dir(&mut self, path: &Path, prev: Option<&Tree>) -> Result<BlobId> {
        let mut names: Vec<OsString> = Vec::new();
        for e in std::fs::read_dir(path).map_err(Error::io(path))? {
            match e {
                Ok(e) => names.push(e.file_name()),
                Err(e) => self.warnings.push(format!("{}: {e}", path.display())),
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut nodes = Vec::with_capacity(names.len());
        for name in names {
            let child = path.join(&name);
            let prev_node = prev.and_then(|t| find(t, &name));
            match self.save_node(&child, &name, prev_node) {
                Ok(n) => nodes.push(n),
                // A file that vanished or cannot be read: warn and go on.
                Err(Error::Io { path, source }) => {
                    self.warnings.push(format!("{}: {source}", path.display()))
                }
                Err(e) => return Err(e),
            }
        }
        self.save_tree(nodes)
    }

    fn save_tree(&mut self, nodes: Vec<Node>) -> Result<BlobId> {
        let bytes =
            serde_json::to_vec(&Tree { nodes }).map_err(|e| Error::Invalid(e.to_string()))?;
        let ids = self.save_blobs(vec![bytes], BlobKind::Tree)?;
        ids.into_iter()
            .next()
            .ok_or_else(|| Error::Invalid("tree not saved".into()))
    }

    /// Stores a file's data extents; holes of sparse files are recorded as lengths.
    fn save_file(&mut self, path: &Path, size: u64) -> Result<Vec<Piece>> {
        let repo = self.repo;
        file_pieces(repo, path, size, &mut |chunks| {
            self.save_blobs(chunks, BlobKind::Data)
        })
    }

    /// Hashes the blobs, stores the new ones, and returns their ids in order.
    fn save_blobs(&mut self, blobs: Vec<Vec<u8>>, kind: BlobKind) -> Result<Vec<BlobId>> {
        let repo = self.repo;
        let claimed = &self.claimed;
        let results: Vec<Result<Hashed>> = blobs
            .par_iter()
            .map(|data| {
                let id = repo.keys.blob_id(data);
                let raw = u32::try_from(data.len())
                    .map_err(|_| Error::Invalid("chunk too large".into()))?;
                let new = !repo.index.blobs.contains_key(&id)
                    && claimed
                        .lock()
                        .map_err(|_| Error::Invalid("poisoned".into()))?
                        .insert(id);
                let sealed = if new {
                    Some(repo.encode_blob(&id, data)?)
                } else {
                    None
                };
                Ok((id, raw, sealed))
            })
            .collect();
        let mut ids = Vec::with_capacity(results.len());
        for r in results {
            let (id, raw, sealed) = r?;
            self.progress.advance(u64::from(raw));
            if let Some(sealed) = sealed {
                self.append(id, kind, raw, &sealed)?;
            }
            ids.push(id);
        }
        Ok(ids)
    }

    fn append(&mut self, id: BlobId, kind: BlobKind, raw: u32, sealed: &[u8]) -> Result<()> {
        let o =
            u32::try_from(self.pack.len()).map_err(|_| Error::Invalid("pack too large".into()))?;
        let l = u32::try_from(sealed.len()).map_err(|_| Error::Invalid("blob too large".into()))?;
        self.pack.extend_from_slice(sealed);
        self.entries.push(PackEntry {
            id: id.to_hex(),
            t: kind,
            o,
            l,
            r: raw,
        });
        self.new_blobs += 1;
        self.new_bytes += u64::from(raw);
        self.stored_bytes += u64::from(l);
        if self.pack.len() >= PACK_TARGET {
            self.flush_pack()?;
        }
        Ok(())
    }

    fn flush_pack(&mut self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let header = self.repo.seal_pack_header(&self.entries)?;
        let mut bytes = std::mem::take(&mut self.pack);
        bytes.extend_from_slice(&header);
        let entries = std::mem::take(&mut self.entries);
        let tx = self
            .pack_tx
            .as_ref()
            .ok_or_else(|| Error::Invalid("pack writer closed".into()))?;
        // Blocks until the writer has stored the previous pack (and given its buffer back).
        tx.send((bytes, entries))
            .map_err(|_| Error::Invalid("the pack writer stopped".into()))?;
        self.packs_sent += 1;
        self.pack = match self.free_rx.try_recv() {
            Ok(b) => b,
            Err(_) if self.pack_buffers < PACK_BUFFERS => {
                self.pack_buffers += 1;
                Vec::with_capacity(self.pack_capacity)
            }
            Err(_) => self
                .free_rx
                .recv()
                .map_err(|_| Error::Invalid("the pack writer stopped".into()))?,
        };
        self.collect_done(false)?;
        if self.done.len() >= INDEX_EVERY {
            self.write_partial_index()?;
        }
        Ok(())
    }

    fn collect_done(&mut self, wait_all: bool) -> Result<()> {
        loop {
            let r = if wait_all {
                match self.done_rx.recv() {
                    Ok(r) => r,
                    Err(_) => return Ok(()),
                }
            } else {
                match self.done_rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => return Ok(()),
                }
            };
            self.done.push(r?);
        }
    }

    fn write_partial_index(&mut self) -> Result<()> {
        if self.done.is_empty() {
            return Ok(());
        }
        let file = IndexFile {
            packs: std::mem::take(&mut self.done),
        };
        let name = self.repo.write_index(&file)?;
        self.index_files.push(name);
        Ok(())
    }

    /// Stores the last pack, waits for the writer, and leaves one index file for this run.
    fn finish(&mut self) -> Result<()> {
        self.flush_pack()?;
        self.pack_tx = None;
        self.collect_done(true)?;
        self.write_partial_index()?;
        if self.index_files.len() > 1 {
            // Merge this run's index files into one.
            let mut merged = IndexFile::default();
            for name in &self.index_files {
                let bytes = self
                    .repo
                    .backend
                    .read(&format!("index/{name}"))?
                    .ok_or_else(|| Error::corrupt(format!("index file {name}"), "missing"))?;
                let plain = self.repo.keys.open(b"index", &bytes).ok_or_else(|| {
                    Error::corrupt(format!("index file {name}"), "authentication failed")
                })?;
                let f: IndexFile = serde_json::from_slice(&plain)
                    .map_err(|e| Error::corrupt(format!("index file {name}"), e.to_string()))?;
                merged.packs.extend(f.packs);
            }
            self.repo.write_index(&merged)?;
            for name in std::mem::take(&mut self.index_files) {
                self.repo.remove_index(&name)?;
            }
        }
        Ok(())
    }
}

/// Opens `path` for reading, keeping its access time as it was where permitted.
pub(crate) fn open_source(path: &Path) -> Result<File> {
    // O_NOATIME keeps the source's access times as they were (allowed for the file's owner
    // and root; others fall back to a plain open).
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOATIME.bits() as i32)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(_) => File::open(path).map_err(Error::io(path)),
    }
}

/// Cuts a file's data into chunks with the repository's chunker (FastCDC with its secret seed),
/// hands them to `store` in batches, in order, and returns the file's pieces: the ids `store`
/// gives back, and the holes of a sparse file as lengths. Used to save a file and to compare a
/// live file with a snapshot by hash (`verify --against`).
pub(crate) fn file_pieces(
    repo: &Repository,
    path: &Path,
    size: u64,
    store: &mut dyn FnMut(Vec<Vec<u8>>) -> Result<Vec<BlobId>>,
) -> Result<Vec<Piece>> {
    let f = open_source(path)?;
    let md = f.metadata().map_err(Error::io(path))?;
    let extents = if md.blocks().saturating_mul(512) < size {
        data_extents(&f, size).map_err(Error::io(path))?
    } else {
        vec![(0, size)]
    };
    let mut pieces = Vec::new();
    let mut pos = 0u64;
    for (start, len) in extents {
        if start > pos {
            pieces.push(Piece::Hole { hole: start - pos });
        }
        chunk_range(repo, &f, path, start, len, &mut |chunks| {
            let ids = store(chunks)?;
            pieces.extend(ids.into_iter().map(|id| Piece::Chunk(id.to_hex())));
            Ok(())
        })?;
        pos = start + len;
    }
    if size > pos {
        pieces.push(Piece::Hole { hole: size - pos });
    }
    Ok(pieces)
}

/// Chunks `len` bytes of `f` from `start`; a reader thread reads ahead in 8 MiB blocks while
/// `batch` works on the chunks already cut.
fn chunk_range(
    repo: &Repository,
    f: &File,
    path: &Path,
    start: u64,
    len: u64,
    batch: &mut dyn FnMut(Vec<Vec<u8>>) -> Result<()>,
) -> Result<()> {
    let cfg = &repo.config;
    let (min, avg, max) = (
        cfg.chunk_min as usize,
        cfg.chunk_avg as usize,
        cfg.chunk_max as usize,
    );
    let seed = repo.keys.chunker_seed;
    let cut = move |buf: &[u8], eof: bool| -> (Vec<Vec<u8>>, usize) {
        let mut chunks = Vec::new();
        let mut used = 0;
        let cdc = FastCDC::with_level_and_seed(buf, min, avg, max, Normalization::Level1, seed);
        for c in cdc {
            let end = c.offset + c.length;
            if !eof && end == buf.len() {
                break; // may continue in the next block
            }
            if let Some(d) = buf.get(c.offset..end) {
                chunks.push(d.to_vec());
            }
            used = end;
        }
        (chunks, used)
    };
    if len <= BLOCK as u64 {
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, start).map_err(Error::io(path))?;
        let (chunks, _) = cut(&buf, true);
        return batch(chunks);
    }
    // A rendezvous: the reader cuts the next block while this one is stored, no more.
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Vec<Vec<u8>>>>(0);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut buf: Vec<u8> = Vec::with_capacity(BLOCK + max);
            let mut off = start;
            let end = start + len;
            while off < end {
                let n = (end - off).min(BLOCK as u64) as usize;
                let old = buf.len();
                buf.resize(old + n, 0);
                let Some(dst) = buf.get_mut(old..) else { break };
                if let Err(e) = f.read_exact_at(dst, off) {
                    let _ = tx.send(Err(e));
                    return;
                }
                off += n as u64;
                let (chunks, used) = cut(&buf, off >= end);
                buf.drain(..used);
                if tx.send(Ok(chunks)).is_err() {
                    return;
                }
            }
        });
        for chunks in rx {
            batch(chunks.map_err(Error::io(path))?)?;
        }
        Ok(())
    })
}

fn find<'t>(tree: &'t Tree, name: &OsString) -> Option<&'t Node> {
    tree.nodes.iter().find(|n| n.os_name() == *name)
}

/// The data extents `(start, len)` of a sparse file, found with SEEK_DATA / SEEK_HOLE.
fn data_extents(f: &File, size: u64) -> std::io::Result<Vec<(u64, u64)>> {
    use rustix::fs::{SeekFrom, seek};
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match seek(f, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = seek(f, SeekFrom::Hole(data))
            .map_err(std::io::Error::from)?
            .min(size);
        if hole > data {
            out.push((data, hole - data));
        }
        pos = hole.max(data + 1);
    }
    Ok(out)
}
