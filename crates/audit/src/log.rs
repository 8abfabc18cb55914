//! The audit log service: sequences stored records into the Merkle tree, signs checkpoints, and
//! serves tiles and proofs. Storage is reached only through [`parapet_store`]'s traits.
//!
//! One process at a time integrates (PostgreSQL replicas elect the sequencer with an advisory
//! lock); each integration step is applied by the store only if the tree has not moved since the
//! step was computed, so two checkpoints can never disagree even if two processes tried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parapet_store::{
    AuditRecord, Integration, LogHead, Store, StoreError, StoredCheckpoint, StoredTile,
};
use parapet_types::{Env, TenantCtx, Timestamp};

use crate::checkpoint::Checkpoint;
use crate::hash::{Hash, empty_root, leaf_hash};
use crate::integrate::{IntegrateError, Integrator};
use crate::note::{NoteSigner, NoteVerifier};
use crate::tile::{Tile, TileHashReader, TileReader, decode_tile, encode_tile, locate_hash};
use crate::tree::{
    ProofError, ReadError, consistency_proof, consistency_proof_nodes, inclusion_proof,
    inclusion_proof_nodes,
};

/// Records read from storage per query while integrating.
const READ_PAGE: u32 = 5_000;
/// Full tiles kept in memory (8 KiB each).
const CACHE_TILES: usize = 8_192;

/// What the audit log service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// Stored data contradicts itself: tampering or corruption.
    #[error("the audit log's stored data is inconsistent: {0}")]
    Integrity(String),
    #[error("{0}")]
    Key(String),
}

impl From<ProofError> for LogError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::Read(r) => LogError::Integrity(r.to_string()),
            e => LogError::BadRequest(e.to_string()),
        }
    }
}

impl From<IntegrateError> for LogError {
    fn from(e: IntegrateError) -> Self {
        LogError::Integrity(e.to_string())
    }
}

pub type LogResult<T> = Result<T, LogError>;

/// One integration step's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegrateReport {
    pub old_size: u64,
    pub new_size: u64,
    /// Time from the oldest record of the step to its checkpoint, in milliseconds.
    pub lag_ms: i64,
}

/// Settings of the audit log service.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Most records integrated into one checkpoint.
    pub max_batch: u64,
    /// Pause between integrations while records keep arriving (they are batched meanwhile).
    pub min_interval: Duration,
    /// How often an idle sequencer (or a replica that is not the sequencer) looks again.
    pub poll_interval: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_batch: 100_000,
            min_interval: Duration::from_millis(50),
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// A tile's hashes as cached: a partial tile may be cached and later replaced by a wider one.
type CachedTile = Arc<Vec<Hash>>;

/// The audit log service (see the module documentation).
pub struct AuditLog {
    store: Arc<dyn Store>,
    env: Env,
    /// The checkpoint signer; `None` while its key waits for the key service to be unsealed
    /// (records are kept and integrated once it arrives).
    signer: std::sync::RwLock<Option<Arc<NoteSigner>>>,
    origin: String,
    verifier: NoteVerifier,
    /// The provider's context: the sequencer reads every record.
    provider: TenantCtx,
    config: LogConfig,
    /// The sequencer's tree, while this process is the sequencer.
    state: tokio::sync::Mutex<Option<Integrator>>,
    tiles: Mutex<HashMap<(u8, u64), CachedTile>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

struct MapTiles<'a>(&'a HashMap<(u8, u64), CachedTile>);

impl TileReader for MapTiles<'_> {
    fn read_tile(&self, tile: Tile) -> Result<Vec<Hash>, ReadError> {
        self.0
            .get(&(tile.level(), tile.index()))
            .map(|h| h.as_ref().clone())
            .ok_or(ReadError::Missing(crate::hash::NodeId::new(
                tile.level().saturating_mul(crate::tile::TILE_HEIGHT),
                tile.index(),
            )))
    }
}

fn decode_stored(t: &StoredTile) -> LogResult<Vec<Hash>> {
    let tile = Tile::new(t.level, t.index, t.width).ok_or_else(|| {
        LogError::Integrity(format!(
            "tile ({}, {}) has width {}",
            t.level, t.index, t.width
        ))
    })?;
    decode_tile(tile, &t.hashes).map_err(|e| LogError::Integrity(e.to_string()))
}

impl AuditLog {
    /// Opens the log: registers it on first start, and refuses to run with a signing key other
    /// than the one the log was registered with.
    pub async fn open(
        store: Arc<dyn Store>,
        env: Env,
        signer: NoteSigner,
        provider: TenantCtx,
        config: LogConfig,
    ) -> LogResult<Self> {
        let verifier = signer.verifier();
        let head = store
            .init_log(&LogHead {
                origin: signer.name().to_owned(),
                vkey: verifier.to_vkey(),
                size: 0,
                root: empty_root().0,
                updated_at: env.now(),
            })
            .await?;
        if head.vkey != verifier.to_vkey() {
            return Err(LogError::Key(format!(
                "the audit log of this database is signed by the key {}, but this server holds \
                 the key {} (give every replica the same --audit-key file)",
                head.vkey,
                verifier.to_vkey()
            )));
        }
        Ok(AuditLog {
            store,
            env,
            origin: signer.name().to_owned(),
            signer: std::sync::RwLock::new(Some(Arc::new(signer))),
            verifier,
            provider,
            config,
            state: tokio::sync::Mutex::new(None),
            tiles: Mutex::new(HashMap::new()),
        })
    }

    /// Opens a registered log whose signing key is not available yet (sealed by the key
    /// service): records are appended as usual and wait; checkpoints are signed from the moment
    /// [`install_signer`](Self::install_signer) gives the key, and the first one covers them
    /// all (the tree is append-only).
    pub async fn open_pending(
        store: Arc<dyn Store>,
        env: Env,
        provider: TenantCtx,
        config: LogConfig,
    ) -> LogResult<Self> {
        let head = store.log_head().await?.ok_or_else(|| {
            LogError::Key(
                "the audit signing key is sealed by the key service, but this database has no \
                 audit log yet"
                    .into(),
            )
        })?;
        let verifier =
            NoteVerifier::from_vkey(&head.vkey).map_err(|e| LogError::Key(e.to_string()))?;
        Ok(AuditLog {
            store,
            env,
            origin: head.origin,
            signer: std::sync::RwLock::new(None),
            verifier,
            provider,
            config,
            state: tokio::sync::Mutex::new(None),
            tiles: Mutex::new(HashMap::new()),
        })
    }

    /// Gives a log opened with [`open_pending`](Self::open_pending) its signing key, which must
    /// be the one the log was registered with.
    pub fn install_signer(&self, signer: NoteSigner) -> LogResult<()> {
        if signer.verifier().to_vkey() != self.verifier.to_vkey() {
            return Err(LogError::Key(format!(
                "the audit log is signed by the key {}, not by {}",
                self.verifier.to_vkey(),
                signer.verifier().to_vkey()
            )));
        }
        let mut s = self
            .signer
            .write()
            .map_err(|_| LogError::Key("the signer lock is poisoned".into()))?;
        *s = Some(Arc::new(signer));
        Ok(())
    }

    /// Whether checkpoints can be signed now (false while the key waits for an unseal).
    pub fn signing(&self) -> bool {
        self.signer.read().map(|s| s.is_some()).unwrap_or(false)
    }

    /// The log's origin (the first line of its checkpoints).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key (`name+keyid+base64`), as `parapet audit verify --public-key` takes it.
    pub fn public_key(&self) -> String {
        self.verifier.to_vkey()
    }

    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The latest signed checkpoint, or that of exactly `size`.
    pub async fn checkpoint(&self, size: Option<u64>) -> LogResult<StoredCheckpoint> {
        self.store.checkpoint(size).await?.ok_or_else(|| {
            LogError::NotFound(match size {
                Some(s) => format!("no checkpoint of size {s} was signed"),
                None => "no checkpoint has been signed yet".into(),
            })
        })
    }

    /// The size of the latest checkpoint.
    pub async fn size(&self) -> LogResult<u64> {
        Ok(self.store.log_head().await?.map(|h| h.size).unwrap_or(0))
    }

    /// Integrates the records not yet in the tree (at most `max_batch`) and signs a checkpoint.
    /// `Ok(None)` when there was nothing to do or another process is the sequencer.
    pub async fn integrate_once(&self) -> LogResult<Option<IntegrateReport>> {
        let Some(signer) = self.signer.read().ok().and_then(|s| s.clone()) else {
            // The key waits for the key service: the records wait with it.
            metrics::gauge!("parapet_audit_signing_pending").set(1.0);
            return Ok(None);
        };
        metrics::gauge!("parapet_audit_signing_pending").set(0.0);
        if !self.store.lead_sequencer().await? {
            *self.state.lock().await = None;
            return Ok(None);
        }
        let mut state = self.state.lock().await;
        let head = self
            .store
            .log_head()
            .await?
            .ok_or_else(|| LogError::Integrity("the audit log is not registered".into()))?;
        let mut tree = match state.take() {
            Some(t) if t.size() == head.size && t.root().0 == head.root => t,
            _ => self.resume(&head).await?,
        };
        let old_size = tree.size();
        let end = old_size.saturating_add(self.config.max_batch);
        let mut oldest: Option<Timestamp> = None;
        while tree.size() < end {
            let from = tree.size();
            let records = self
                .store
                .audit_range(self.provider, from, end, READ_PAGE)
                .await?;
            if records.is_empty() {
                break;
            }
            for r in &records {
                let index = u64::try_from(r.id).unwrap_or(u64::MAX);
                if index != tree.size() {
                    return Err(LogError::Integrity(format!(
                        "record {} follows record {} in the log (a record is missing)",
                        r.id,
                        tree.size().saturating_sub(1)
                    )));
                }
                oldest = Some(oldest.map_or(r.event.time, |o| o.min(r.event.time)));
                tree.push_leaf_hash(leaf_hash(r.canonical_json().as_bytes()));
            }
            if records.len() < READ_PAGE as usize {
                break;
            }
        }
        let new_size = tree.size();
        if new_size == old_size && self.store.checkpoint(None).await?.is_some() {
            *state = Some(tree);
            return Ok(None);
        }
        let root = tree.root();
        let now = self.env.now();
        let signed = Checkpoint::new(self.origin(), new_size, root)
            .sign(&signer)
            .map_err(|e| LogError::Key(e.to_string()))?;
        let tiles = tree
            .take_tiles()
            .into_iter()
            .map(|(t, h)| StoredTile {
                level: t.level(),
                index: t.index(),
                width: t.width(),
                hashes: encode_tile(&h),
            })
            .collect();
        let step = Integration {
            old_size,
            tiles,
            checkpoint: StoredCheckpoint {
                size: new_size,
                root: root.0,
                time: now,
                signed,
            },
        };
        match self.store.integrate(&step).await {
            Ok(()) => {}
            Err(StoreError::Conflict(m)) => {
                // Another process moved the tree: start again from what it stored.
                tracing::warn!("audit log integration skipped: {m}");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        *state = Some(tree);
        let lag_ms = oldest.map_or(0, |o| now.0.saturating_sub(o.0));
        metrics::gauge!("parapet_audit_log_size").set(new_size as f64);
        metrics::histogram!("parapet_audit_checkpoint_lag_seconds").record(lag_ms as f64 / 1000.0);
        Ok(Some(IntegrateReport {
            old_size,
            new_size,
            lag_ms,
        }))
    }

    async fn resume(&self, head: &LogHead) -> LogResult<Integrator> {
        let wanted: Vec<(u8, u64)> = Integrator::edge_tiles(head.size)
            .iter()
            .map(|t| (t.level(), t.index()))
            .collect();
        let stored = self.store.read_tiles(&wanted).await?;
        let mut edge = Vec::with_capacity(stored.len());
        for t in &stored {
            edge.push((t.level, t.index, decode_stored(t)?));
        }
        let tree = Integrator::resume(head.size, &edge)?;
        if tree.root().0 != head.root {
            return Err(LogError::Integrity(format!(
                "the stored tiles give root {} for size {}, the log signed {}",
                tree.root(),
                head.size,
                Hash(head.root)
            )));
        }
        Ok(tree)
    }

    /// Runs the sequencer until `stop` turns true, then integrates once more.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let pause = match self.integrate_once().await {
                Ok(Some(_)) => self.config.min_interval,
                Ok(None) => self.config.poll_interval,
                Err(e) => {
                    tracing::error!("audit log integration failed: {e}");
                    metrics::counter!("parapet_audit_integration_errors_total").increment(1);
                    self.config.poll_interval.max(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
        }
        if let Err(e) = self.integrate_once().await {
            tracing::error!("final audit log integration failed: {e}");
        }
    }

    /// The hashes of `tiles` (each at least as wide as asked), from the cache or the store.
    async fn fetch_tiles(&self, tiles: &[Tile]) -> LogResult<HashMap<(u8, u64), CachedTile>> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.tiles.lock().map_err(|_| poisoned())?;
            for t in tiles {
                match cache.get(&(t.level(), t.index())) {
                    Some(h) if h.len() >= usize::from(t.width()) => {
                        out.insert((t.level(), t.index()), h.clone());
                    }
                    _ => missing.push((t.level(), t.index())),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        missing.sort_unstable();
        missing.dedup();
        let stored = self.store.read_tiles(&missing).await?;
        let mut cache = self.tiles.lock().map_err(|_| poisoned())?;
        if cache.len() >= CACHE_TILES {
            cache.clear();
        }
        for t in &stored {
            let hashes = Arc::new(decode_stored(t)?);
            cache.insert((t.level, t.index), hashes.clone());
            out.insert((t.level, t.index), hashes);
        }
        for t in tiles {
            match out.get(&(t.level(), t.index())) {
                Some(h) if h.len() >= usize::from(t.width()) => {}
                _ => {
                    return Err(LogError::Integrity(format!(
                        "tile {} is missing from storage",
                        t.path()
                    )));
                }
            }
        }
        Ok(out)
    }

    /// The tiles that hold `nodes` in a tree of `size` leaves.
    fn tiles_of(nodes: &[crate::hash::NodeId], size: u64) -> Vec<Tile> {
        let mut tiles: Vec<Tile> = nodes
            .iter()
            .filter_map(|n| locate_hash(*n))
            .filter_map(|loc| Tile::in_tree(loc.tile_level, loc.tile_index, size))
            .collect();
        tiles.sort_unstable();
        tiles.dedup();
        tiles
    }

    async fn checked_size(&self, size: Option<u64>) -> LogResult<u64> {
        let head = self.size().await?;
        match size {
            None => Ok(head),
            Some(s) if s > head => Err(LogError::BadRequest(format!(
                "tree size {s} is beyond the latest checkpoint ({head})"
            ))),
            Some(s) => Ok(s),
        }
    }

    /// The inclusion proof of record `index` in the tree of `size` records (the latest
    /// checkpoint's by default): returns the size used and the proof.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> LogResult<(u64, Vec<Hash>)> {
        let size = self.checked_size(size).await?;
        Ok((size, self.inclusion_proof_within(index, size).await?))
    }

    /// The inclusion proof of `index` in the tree of `size` records, for a `size` the caller
    /// already checked against the latest checkpoint (many proofs against one checkpoint).
    pub async fn inclusion_proof_within(&self, index: u64, size: u64) -> LogResult<Vec<Hash>> {
        let nodes = inclusion_proof_nodes(index, size)?;
        let tiles = self.fetch_tiles(&Self::tiles_of(&nodes, size)).await?;
        let reader = TileHashReader::new(MapTiles(&tiles), size);
        Ok(inclusion_proof(&reader, index, size)?)
    }

    /// The consistency proof between the trees of `from` and `to` records (`to` defaults to the
    /// latest checkpoint's size).
    pub async fn consistency_proof(
        &self,
        from: u64,
        to: Option<u64>,
    ) -> LogResult<(u64, Vec<Hash>)> {
        let to = self.checked_size(to).await?;
        let nodes = consistency_proof_nodes(from, to)?;
        let tiles = self.fetch_tiles(&Self::tiles_of(&nodes, to)).await?;
        let reader = TileHashReader::new(MapTiles(&tiles), to);
        Ok((to, consistency_proof(&reader, from, to)?))
    }

    /// The body of the tile at `path` (`tile/<L>/<N>[.p/<W>]`) in the latest tree. Entry bundles
    /// are not served: they would show every tenant's records.
    pub async fn tile(&self, path: &str) -> LogResult<Vec<u8>> {
        let tile = Tile::parse_path(path).map_err(|e| LogError::BadRequest(e.to_string()))?;
        let size = self.size().await?;
        let in_tree = Tile::in_tree(tile.level(), tile.index(), size)
            .filter(|t| t.width() >= tile.width())
            .ok_or_else(|| {
                LogError::NotFound(format!("{path} is not in the tree of size {size}"))
            })?;
        let tiles = self.fetch_tiles(&[in_tree]).await?;
        let hashes = tiles
            .get(&(tile.level(), tile.index()))
            .and_then(|h| h.get(..usize::from(tile.width())))
            .ok_or_else(|| LogError::Integrity(format!("tile {path} is short")))?;
        Ok(encode_tile(hashes))
    }

    /// Records of `ctx` with index in `from..to`, in index order, at most `limit`, and only
    /// those the latest checkpoint covers.
    pub async fn entries(
        &self,
        ctx: TenantCtx,
        from: u64,
        to: Option<u64>,
        limit: u32,
    ) -> LogResult<(u64, Vec<AuditRecord>)> {
        let size = self.size().await?;
        let to = to.map_or(size, |t| t.min(size));
        if from >= to {
            return Ok((size, Vec::new()));
        }
        Ok((size, self.store.audit_range(ctx, from, to, limit).await?))
    }
}

fn poisoned() -> LogError {
    LogError::Integrity("the tile cache lock is poisoned".into())
}
