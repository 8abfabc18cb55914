//! The repository, on a [`Backend`]: a local directory or an S3 prefix.
//!
//! ```text
//! REPO/config              plain JSON: format version, repository id, chunk sizes
//! REPO/keys/ID             the master key wrapped by a passphrase (Argon2id + AES-256-GCM)
//! REPO/operators           sealed: the operator public keys trusted to sign snapshots
//! REPO/data/XX/ID          packs: sealed blobs, then the sealed list of them, then its length
//! REPO/index/ID            sealed: which blob is in which pack, where
//! REPO/snapshots/ID        sealed: a manifest and the operator's signature over it
//! REPO/locks/ID            plain JSON: who holds a shared or exclusive lock
//! ```
//!
//! Every file except `operators` and locks is named after the BLAKE3 hash of its bytes and never
//! changes; every write of a whole file is atomic (see `backend.rs`).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use crate::backend::Backend;

use parapet_types::Env;
use serde::{Deserialize, Serialize};

use crate::crypto::{BlobId, KeyFile, Keys, MasterKey, OperatorKey, verify_signature};
use crate::{Error, Result};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Config {
    pub version: u32,
    pub id: String,
    pub chunk_min: u32,
    pub chunk_avg: u32,
    pub chunk_max: u32,
}

/// Options of `init`.
pub struct InitOptions {
    pub password: Vec<u8>,
    /// Operator public keys (`ed25519:…`) trusted to sign snapshots.
    pub trusted_operators: Vec<String>,
}

/// What a blob holds.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlobKind {
    #[serde(rename = "d")]
    Data,
    #[serde(rename = "t")]
    Tree,
}

/// One blob of a pack, as listed in the pack's header and in index files.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PackEntry {
    pub id: String,
    pub t: BlobKind,
    /// Offset of the sealed blob in the pack.
    pub o: u32,
    /// Length of the sealed blob.
    pub l: u32,
    /// Length of the chunk before compression and encryption.
    pub r: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct IndexPack {
    pub id: String,
    pub blobs: Vec<PackEntry>,
}

#[derive(Serialize, Deserialize, Default)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
}

/// Where a blob is.
#[derive(Clone, Copy, Debug)]
pub struct Loc {
    pub pack: u32,
    pub offset: u32,
    pub length: u32,
    pub raw_len: u32,
    pub kind: BlobKind,
}

/// The in-memory index: every blob of every indexed pack.
#[derive(Default)]
pub struct Index {
    pub packs: Vec<String>,
    pack_pos: HashMap<String, u32>,
    pub blobs: HashMap<BlobId, Loc>,
    /// Index file name → the packs it lists.
    pub files: Vec<(String, Vec<u32>)>,
}

impl Index {
    pub fn pack_number(&mut self, id: &str) -> u32 {
        if let Some(n) = self.pack_pos.get(id) {
            return *n;
        }
        let n = u32::try_from(self.packs.len()).unwrap_or(u32::MAX);
        self.packs.push(id.to_string());
        self.pack_pos.insert(id.to_string(), n);
        n
    }
    pub fn pack_id(&self, n: u32) -> Option<&str> {
        self.packs.get(n as usize).map(String::as_str)
    }
    /// Adds the blobs of one pack; the first location of a blob wins.
    pub fn add_pack(&mut self, pack: &IndexPack) -> Result<u32> {
        let n = self.pack_number(&pack.id);
        for e in &pack.blobs {
            let id = BlobId::parse(&e.id)?;
            self.blobs.entry(id).or_insert(Loc {
                pack: n,
                offset: e.o,
                length: e.l,
                raw_len: e.r,
                kind: e.t,
            });
        }
        Ok(n)
    }
}

/// What a snapshot records (signed by the operator).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Manifest {
    pub version: u32,
    pub time_ms: i64,
    pub hostname: String,
    pub paths: Vec<String>,
    /// The root hash: the keyed BLAKE3 id of the root tree. Trees list the ids of their subtrees
    /// and of every chunk of every file, so it covers all the snapshot's data and metadata.
    pub root: String,
    pub parent: Option<String>,
    pub tags: Vec<String>,
    /// The signer's public key, `ed25519:…`.
    pub operator: String,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub new_bytes: u64,
    pub stored_bytes: u64,
    pub duration_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    manifest: String,
    signature: String,
}

/// A snapshot as stored: its id (the hash of its file), manifest and signature.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    pub id: String,
    pub manifest: Manifest,
    manifest_text: String,
    signature: String,
}

impl SnapshotInfo {
    /// Checks the operator's signature and that the operator is trusted.
    pub fn check_signature(&self, trusted: &BTreeSet<String>) -> Result<()> {
        verify_signature(
            &self.manifest.operator,
            self.manifest_text.as_bytes(),
            &self.signature,
        )?;
        if !trusted.contains(&self.manifest.operator) {
            return Err(Error::Signature(format!(
                "snapshot {} is signed by {}, which is not a trusted operator key",
                short(&self.id),
                self.manifest.operator
            )));
        }
        Ok(())
    }
}

pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[derive(Serialize, Deserialize)]
struct LockFile {
    exclusive: bool,
    hostname: String,
    pid: u32,
    time_ms: i64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockKind {
    Shared,
    Exclusive,
}

/// A held lock; released when dropped.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    name: String,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.backend.remove(&self.name);
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A file that could not be read: its name and why.
pub type Unreadable = (String, String);

/// An open repository.
pub struct Repository {
    pub backend: Arc<dyn Backend>,
    pub env: Env,
    pub keys: Keys,
    pub config: Config,
    pub index: Index,
    /// Index files that could not be read, with the reason.
    pub index_problems: Vec<(String, String)>,
    pub fsync: bool,
}

impl Repository {
    /// Creates a repository at `backend`'s location, which must not exist or be empty.
    pub fn init(backend: Arc<dyn Backend>, env: Env, opts: &InitOptions) -> Result<Repository> {
        if backend.size("config")?.is_some() {
            return Err(Error::AlreadyExists(backend.location()));
        }
        if !backend.is_empty()? {
            return Err(Error::Invalid(format!(
                "{} exists and is not empty",
                backend.location()
            )));
        }
        for t in &opts.trusted_operators {
            crate::crypto::parse_public_key(t)?;
        }
        backend.create()?;
        let master = MasterKey::generate(&env)?;
        let kf = KeyFile::wrap(&env, &opts.password, &master, hostname())?;
        let kf_bytes = serde_json::to_vec_pretty(&kf).map_err(|e| Error::Invalid(e.to_string()))?;
        backend.write(&format!("keys/{}", hash_name(&kf_bytes)), &kf_bytes, true)?;
        let id: [u8; 16] = env.random().map_err(|e| Error::Entropy(e.to_string()))?;
        let config = Config {
            version: FORMAT_VERSION,
            id: hex::encode(id),
            chunk_min: 64 * 1024,
            chunk_avg: 256 * 1024,
            chunk_max: 2 * 1024 * 1024,
        };
        let keys = master.keys()?;
        let repo = Repository {
            backend,
            env,
            keys,
            config: config.clone(),
            index: Index::default(),
            index_problems: Vec::new(),
            fsync: true,
        };
        repo.write_operators(&opts.trusted_operators.iter().cloned().collect())?;
        let cfg = serde_json::to_vec_pretty(&config).map_err(|e| Error::Invalid(e.to_string()))?;
        // The config is written last: a repository without one is not a repository.
        repo.backend.write("config", &cfg, true)?;
        Ok(repo)
    }

    /// Records that the repository's password is the plaintext of `ciphertext` under the key
    /// service's key `key_name` (see [`KeyFile::kms_record`]).
    pub fn write_kms_record(&self, key_name: &str, ciphertext: &str) -> Result<()> {
        let kf = KeyFile::kms_record(&self.env, key_name, ciphertext, hostname());
        let bytes = serde_json::to_vec_pretty(&kf).map_err(|e| Error::Invalid(e.to_string()))?;
        self.backend
            .write(&format!("keys/{}", hash_name(&bytes)), &bytes, true)
    }

    /// The key-service records of the repository at `backend`: (key name, ciphertext).
    pub fn kms_records(backend: &dyn Backend) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (name, bytes) in read_all(backend, "keys")? {
            let kf: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt(format!("key file {name}"), e.to_string()))?;
            if let Some((k, c)) = kf.kms_wrapped() {
                out.push((k.to_string(), c.to_string()));
            }
        }
        Ok(out)
    }

    /// Opens a repository with a password and loads its index.
    pub fn open(backend: Arc<dyn Backend>, env: Env, password: &[u8]) -> Result<Repository> {
        let Some(cfg) = backend.read("config")? else {
            return Err(Error::NotARepository(format!(
                "{} has no config file (run `parapet backup init` first)",
                backend.location()
            )));
        };
        let config: Config =
            serde_json::from_slice(&cfg).map_err(|e| Error::corrupt("config", e.to_string()))?;
        if config.version != FORMAT_VERSION {
            return Err(Error::Invalid(format!(
                "repository format version {} is not supported (this build reads {FORMAT_VERSION})",
                config.version
            )));
        }
        let mut master = None;
        for (name, bytes) in read_all(backend.as_ref(), "keys")? {
            let kf: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt(format!("key file {name}"), e.to_string()))?;
            if let Some(m) = kf.unwrap_with(password)? {
                master = Some(m);
                break;
            }
        }
        let master = master.ok_or(Error::WrongPassword)?;
        let mut repo = Repository {
            backend,
            env,
            keys: master.keys()?,
            config,
            index: Index::default(),
            index_problems: Vec::new(),
            fsync: true,
        };
        repo.load_index()?;
        Ok(repo)
    }

    /// (Re)reads every index file. Unreadable ones are recorded in `index_problems`.
    pub fn load_index(&mut self) -> Result<()> {
        let mut index = Index::default();
        let mut problems = Vec::new();
        for (name, bytes) in read_all(self.backend.as_ref(), "index")? {
            match self.decode_index(&name, &bytes) {
                Ok(file) => {
                    let mut packs = Vec::new();
                    for p in &file.packs {
                        packs.push(index.add_pack(p)?);
                    }
                    index.files.push((name, packs));
                }
                Err(e) => problems.push((name, e.to_string())),
            }
        }
        self.index = index;
        self.index_problems = problems;
        Ok(())
    }

    fn decode_index(&self, name: &str, bytes: &[u8]) -> Result<IndexFile> {
        if hash_name(bytes) != name {
            return Err(Error::corrupt(
                format!("index file {name}"),
                "its contents do not match its name",
            ));
        }
        let plain = self
            .keys
            .open(b"index", bytes)
            .ok_or_else(|| Error::corrupt(format!("index file {name}"), "authentication failed"))?;
        serde_json::from_slice(&plain)
            .map_err(|e| Error::corrupt(format!("index file {name}"), e.to_string()))
    }

    /// Writes an index file; returns its name.
    pub fn write_index(&self, file: &IndexFile) -> Result<String> {
        let plain = serde_json::to_vec(file).map_err(|e| Error::Invalid(e.to_string()))?;
        let sealed = self.keys.seal(&self.env, b"index", &plain)?;
        let name = hash_name(&sealed);
        self.backend
            .write(&format!("index/{name}"), &sealed, self.fsync)?;
        Ok(name)
    }

    pub fn remove_index(&self, name: &str) -> Result<()> {
        self.backend.remove(&format!("index/{name}"))
    }

    /// A pack's name in the repository: `data/XX/ID`.
    pub fn pack_name(&self, id: &str) -> String {
        format!("data/{}/{id}", id.get(..2).unwrap_or("00"))
    }

    /// Writes a finished pack; returns its id.
    pub fn write_pack(&self, bytes: &[u8]) -> Result<String> {
        let id = hash_name(bytes);
        self.backend
            .write(&self.pack_name(&id), bytes, self.fsync)?;
        Ok(id)
    }

    /// Reads a whole pack.
    pub fn read_pack(&self, id: &str) -> Result<Vec<u8>> {
        self.backend
            .read(&self.pack_name(id))?
            .ok_or_else(|| Error::corrupt(format!("pack {id}"), "missing"))
    }

    /// The size of a pack, if it exists.
    pub fn pack_size(&self, id: &str) -> Result<Option<u64>> {
        self.backend.size(&self.pack_name(id))
    }

    /// Removes a pack.
    pub fn remove_pack(&self, id: &str) -> Result<()> {
        self.backend.remove(&self.pack_name(id))
    }

    /// Every pack (complete ones, not temporary files), by id.
    pub fn list_packs(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .backend
            .list("data")?
            .into_iter()
            .filter_map(|n| n.rsplit('/').next().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Files left half-written by interrupted runs.
    pub fn list_temporary(&self) -> Result<Vec<String>> {
        self.backend.temporaries()
    }

    /// Reads, decrypts, decompresses and checks one blob.
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc =
            *self.index.blobs.get(id).ok_or_else(|| {
                Error::corrupt(format!("blob {}", id.to_hex()), "not in any index")
            })?;
        let pack = self
            .index
            .pack_id(loc.pack)
            .ok_or_else(|| Error::corrupt("index", "unknown pack number"))?;
        let buf = self
            .backend
            .read_range(
                &self.pack_name(pack),
                u64::from(loc.offset),
                u64::from(loc.length),
            )
            .map_err(|e| Error::corrupt(format!("blob {}", id.to_hex()), e.to_string()))?;
        self.decode_blob(id, &buf, loc.raw_len)
    }

    /// Decrypts and decompresses a sealed blob and checks it hashes to `id`.
    pub fn decode_blob(&self, id: &BlobId, sealed: &[u8], raw_len: u32) -> Result<Vec<u8>> {
        let bad = |d: &str| Error::corrupt(format!("blob {}", id.to_hex()), d.to_string());
        let plain = self
            .keys
            .open(&id.0, sealed)
            .ok_or_else(|| bad("authentication failed"))?;
        let data = match plain.split_first() {
            Some((0, rest)) => rest.to_vec(),
            Some((1, rest)) => zstd::bulk::decompress(rest, raw_len as usize)
                .map_err(|e| bad(&format!("decompression: {e}")))?,
            _ => return Err(bad("unknown encoding")),
        };
        if data.len() != raw_len as usize || self.keys.blob_id(&data) != *id {
            return Err(bad("content does not match its hash"));
        }
        Ok(data)
    }

    /// Compresses (when it helps) and seals a chunk for a pack.
    pub fn encode_blob(&self, id: &BlobId, data: &[u8]) -> Result<Vec<u8>> {
        let mut plain = Vec::with_capacity(data.len() + 1);
        // Compress only what compresses: a sample decides, so random data costs little.
        let sample = data.get(..data.len().min(16 * 1024)).unwrap_or(data);
        let worth = sample.len() < 512
            || zstd::bulk::compress(sample, 1)
                .map(|c| c.len() * 10 < sample.len() * 9)
                .unwrap_or(false);
        let compressed = if worth {
            zstd::bulk::compress(data, 3)
                .ok()
                .filter(|c| c.len() < data.len())
        } else {
            None
        };
        match compressed {
            Some(c) => {
                plain.push(1);
                plain.extend_from_slice(&c);
            }
            None => {
                plain.push(0);
                plain.extend_from_slice(data);
            }
        }
        self.keys.seal(&self.env, &id.0, &plain)
    }

    /// Reads a pack's header (the list of its blobs).
    pub fn read_pack_header(&self, id: &str, bytes: &[u8]) -> Result<Vec<PackEntry>> {
        let bad = |d: &str| Error::corrupt(format!("pack {id}"), d.to_string());
        let n = bytes.len();
        let len_bytes: [u8; 4] = bytes
            .get(n.saturating_sub(4)..)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("too short"))?;
        let hlen = u32::from_le_bytes(len_bytes) as usize;
        let start = n
            .checked_sub(4 + hlen)
            .ok_or_else(|| bad("bad header length"))?;
        let sealed = bytes
            .get(start..n - 4)
            .ok_or_else(|| bad("bad header length"))?;
        let plain = self
            .keys
            .open(b"pack-header", sealed)
            .ok_or_else(|| bad("header authentication failed"))?;
        serde_json::from_slice(&plain).map_err(|e| bad(&e.to_string()))
    }

    /// Seals a pack header.
    pub fn seal_pack_header(&self, entries: &[PackEntry]) -> Result<Vec<u8>> {
        let plain = serde_json::to_vec(entries).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut sealed = self.keys.seal(&self.env, b"pack-header", &plain)?;
        let len = u32::try_from(sealed.len())
            .map_err(|_| Error::Invalid("pack header too large".into()))?;
        sealed.extend_from_slice(&len.to_le_bytes());
        Ok(sealed)
    }

    // --- operators -------------------------------------------------------------------------

    pub fn trusted_operators(&self) -> Result<BTreeSet<String>> {
        let bytes = self
            .backend
            .read("operators")?
            .ok_or_else(|| Error::corrupt("operators file", "missing"))?;
        let plain = self
            .keys
            .open(b"operators", &bytes)
            .ok_or_else(|| Error::corrupt("operators file", "authentication failed"))?;
        serde_json::from_slice(&plain).map_err(|e| Error::corrupt("operators file", e.to_string()))
    }

    pub fn write_operators(&self, keys: &BTreeSet<String>) -> Result<()> {
        for k in keys {
            crate::crypto::parse_public_key(k)?;
        }
        let plain = serde_json::to_vec(keys).map_err(|e| Error::Invalid(e.to_string()))?;
        let sealed = self.keys.seal(&self.env, b"operators", &plain)?;
        self.backend.write("operators", &sealed, true)
    }

    // --- snapshots -------------------------------------------------------------------------

    /// Signs and stores a manifest; returns the snapshot.
    pub fn write_snapshot(&self, manifest: &Manifest, key: &OperatorKey) -> Result<SnapshotInfo> {
        let text = serde_json::to_string(manifest).map_err(|e| Error::Invalid(e.to_string()))?;
        let signature = key.sign(text.as_bytes());
        let file = SnapshotFile {
            manifest: text.clone(),
            signature: signature.clone(),
        };
        let plain = serde_json::to_vec(&file).map_err(|e| Error::Invalid(e.to_string()))?;
        let sealed = self.keys.seal(&self.env, b"snapshot", &plain)?;
        let id = hash_name(&sealed);
        self.backend
            .write(&format!("snapshots/{id}"), &sealed, true)?;
        Ok(SnapshotInfo {
            id,
            manifest: manifest.clone(),
            manifest_text: text,
            signature,
        })
    }

    /// Every snapshot, oldest first, and the snapshot files that could not be read.
    pub fn snapshots(&self) -> Result<(Vec<SnapshotInfo>, Vec<Unreadable>)> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for (name, bytes) in read_all(self.backend.as_ref(), "snapshots")? {
            match self.decode_snapshot(&name, &bytes) {
                Ok(s) => out.push(s),
                Err(e) => bad.push((name, e.to_string())),
            }
        }
        out.sort_by(|a, b| (a.manifest.time_ms, &a.id).cmp(&(b.manifest.time_ms, &b.id)));
        Ok((out, bad))
    }

    fn decode_snapshot(&self, name: &str, bytes: &[u8]) -> Result<SnapshotInfo> {
        let what = || format!("snapshot {}", short(name));
        if hash_name(bytes) != name {
            return Err(Error::corrupt(what(), "its contents do not match its name"));
        }
        let plain = self
            .keys
            .open(b"snapshot", bytes)
            .ok_or_else(|| Error::corrupt(what(), "authentication failed"))?;
        let file: SnapshotFile =
            serde_json::from_slice(&plain).map_err(|e| Error::corrupt(what(), e.to_string()))?;
        let manifest: Manifest = serde_json::from_str(&file.manifest)
            .map_err(|e| Error::corrupt(what(), e.to_string()))?;
        Ok(SnapshotInfo {
            id: name.to_string(),
            manifest,
            manifest_text: file.manifest,
            signature: file.signature,
        })
    }

    /// Finds a snapshot by id prefix or `latest`.
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotInfo> {
        let (all, _) = self.snapshots()?;
        if spec == "latest" {
            return all
                .into_iter()
                .last()
                .ok_or_else(|| Error::NoSnapshot(spec.into()));
        }
        if spec.len() < 4 {
            return Err(Error::Invalid(
                "give at least 4 characters of a snapshot id".into(),
            ));
        }
        let mut found: Vec<SnapshotInfo> =
            all.into_iter().filter(|s| s.id.starts_with(spec)).collect();
        match found.len() {
            0 => Err(Error::NoSnapshot(spec.into())),
            1 => found.pop().ok_or_else(|| Error::NoSnapshot(spec.into())),
            _ => Err(Error::Invalid(format!(
                "{spec:?} matches several snapshots: give more characters"
            ))),
        }
    }

    pub fn remove_snapshot(&self, id: &str) -> Result<()> {
        self.backend.remove(&format!("snapshots/{id}"))
    }

    // --- locks -----------------------------------------------------------------------------

    /// Takes a lock: shared locks coexist (backups, restores, verification); an exclusive lock
    /// (prune) excludes every other. Locks of dead processes on this host are removed.
    pub fn lock(&self, kind: LockKind) -> Result<LockGuard> {
        let me = LockFile {
            exclusive: kind == LockKind::Exclusive,
            hostname: hostname(),
            pid: std::process::id(),
            time_ms: self.env.now().0,
        };
        let bytes = serde_json::to_vec(&me).map_err(|e| Error::Invalid(e.to_string()))?;
        let rnd: [u8; 16] = self
            .env
            .random()
            .map_err(|e| Error::Entropy(e.to_string()))?;
        let name = hex::encode(rnd);
        self.backend
            .write(&format!("locks/{name}"), &bytes, false)?;
        let guard = LockGuard {
            backend: self.backend.clone(),
            name: format!("locks/{name}"),
        };
        for (other, content) in read_all(self.backend.as_ref(), "locks")? {
            if other == name {
                continue;
            }
            let Ok(l) = serde_json::from_slice::<LockFile>(&content) else {
                continue;
            };
            if l.hostname == me.hostname && !Path::new(&format!("/proc/{}", l.pid)).exists() {
                // A dead process's lock.
                let _ = self.backend.remove(&format!("locks/{other}"));
                continue;
            }
            if l.exclusive || me.exclusive {
                return Err(Error::Locked(format!(
                    "{} lock held by process {} on {} since {} (remove REPO/locks/{other} if that process is gone)",
                    if l.exclusive { "an exclusive" } else { "a" },
                    l.pid,
                    l.hostname,
                    parapet_types::Timestamp(l.time_ms).rfc3339()
                )));
            }
        }
        Ok(guard)
    }
}

/// The lowercase hex BLAKE3 hash of `bytes`: the name of every content-addressed file.
pub fn hash_name(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The files directly under `dir` with their contents, sorted by name (the name without the
/// directory); files removed meanwhile (a lock released, a prune) are left out.
pub fn read_all(backend: &dyn Backend, dir: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for n in backend.list(dir)? {
        let Some(short) = n.strip_prefix(&format!("{dir}/")) else {
            continue;
        };
        if short.contains('/') {
            continue;
        }
        if let Some(b) = backend.read(&n)? {
            out.push((short.to_string(), b));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_manifest_changed_after_signing_is_refused() {
        let dir = std::env::temp_dir().join(format!("parapet-backup-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let env = Env::system();
        let op = OperatorKey::generate(&env).unwrap();
        let repo = Repository::init(
            crate::backend::open_location(dir.to_str().unwrap()).unwrap(),
            env.clone(),
            &InitOptions {
                password: b"pw".to_vec(),
                trusted_operators: vec![op.public()],
            },
        )
        .unwrap();
        let trusted = repo.trusted_operators().unwrap();
        let m = Manifest {
            version: 1,
            root: "00".repeat(32),
            operator: op.public(),
            bytes: 10,
            ..Manifest::default()
        };
        let snap = repo.write_snapshot(&m, &op).unwrap();
        snap.check_signature(&trusted).unwrap();
        let reread = repo.find_snapshot("latest").unwrap();
        reread.check_signature(&trusted).unwrap();
        // Claiming more bytes than were signed.
        let mut forged = reread.clone();
        forged.manifest_text = forged.manifest_text.replace("\"bytes\":10", "\"bytes\":11");
        assert!(forged.check_signature(&trusted).is_err());
        // A trusted list without the signer.
        assert!(snap.check_signature(&BTreeSet::new()).is_err());
        // Wrong password.
        assert!(matches!(
            Repository::open(
                crate::backend::open_location(dir.to_str().unwrap()).unwrap(),
                env,
                b"nope"
            ),
            Err(Error::WrongPassword)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
