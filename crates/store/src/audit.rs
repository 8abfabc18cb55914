//! The audit record: one per state change and per log-in attempt.
//!
//! The record is designed to be sequenced later into a tamper-evident log: its content is fixed
//! when it is written (no field is ever updated), and [`AuditRecord::canonical_json`] gives the
//! exact bytes to hash.

use parapet_types::{Actor, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditOutcome {
    Success,
    Failure,
    Denied,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Denied => "denied",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(AuditOutcome::Success),
            "failure" => Some(AuditOutcome::Failure),
            "denied" => Some(AuditOutcome::Denied),
            _ => None,
        }
    }
}

/// An event to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub time: Timestamp,
    /// The tenant the action happened within; `None` when it is not known (a log-in attempt with
    /// an unknown tenant), which only the provider sees.
    pub tenant: Option<TenantId>,
    pub actor: Actor,
    /// Dotted verb, e.g. `tenant.create`, `auth.login`.
    pub action: String,
    /// What was acted on, e.g. `tenant:acme` or `user:acme/alice`.
    pub target: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub outcome: AuditOutcome,
    /// Extra facts (never secrets).
    pub details: serde_json::Value,
}

/// A stored event with its position in the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
}

impl AuditRecord {
    /// The record's canonical serialization: JSON with fields in a fixed order and no insignificant
    /// white space. The tamper-evident log hashes these bytes.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Filters for searching the trail.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only records of this tenant (a provider searching one tenant's records).
    pub tenant: Option<parapet_types::TenantId>,
    pub target: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// The identity and latest integrated state of the tamper-evident log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    /// The checkpoint origin line (also the signing key's name).
    pub origin: String,
    /// The signed-note verifier key of the log (`name+keyid+base64`).
    pub vkey: String,
    /// Number of records integrated into the tree and signed.
    pub size: u64,
    /// The root of the tree of `size` records.
    pub root: [u8; 32],
    pub updated_at: Timestamp,
}

/// A C2SP tlog-tiles hash tile as stored: `width` hashes of 32 bytes, concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTile {
    pub level: u8,
    pub index: u64,
    pub width: u16,
    pub hashes: Vec<u8>,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: [u8; 32],
    pub time: Timestamp,
    /// The signed note, exactly as served.
    pub signed: String,
}

/// One integration step of the sequencer: the tree grows from `old_size` to
/// `checkpoint.size`, with the tiles that changed and the checkpoint signing the new root.
#[derive(Debug, Clone)]
pub struct Integration {
    pub old_size: u64,
    pub tiles: Vec<StoredTile>,
    pub checkpoint: StoredCheckpoint,
}

/// The tamper-evident log's storage (issue 3). The log structure (head, tiles, checkpoints)
/// holds only hashes and is global; records are read within a tenant.
#[async_trait::async_trait]
pub trait AuditLogStore: Send + Sync {
    /// Appends events in one transaction and returns the log index of the first (bulk import;
    /// the sequencer benchmark). An empty slice appends nothing.
    async fn append_audit_batch(&self, events: &[AuditEvent]) -> crate::StoreResult<u64>;
    /// The number of records written so far (the next log index).
    async fn audit_record_count(&self) -> crate::StoreResult<u64>;
    /// Records of `ctx` (all of them for the provider) with log index in `from..to`, in index
    /// order, at most `limit`.
    async fn audit_range(
        &self,
        ctx: parapet_types::TenantCtx,
        from: u64,
        to: u64,
        limit: u32,
    ) -> crate::StoreResult<Vec<AuditRecord>>;
    /// The log's head, `None` before the first start registered it.
    async fn log_head(&self) -> crate::StoreResult<Option<LogHead>>;
    /// Registers the log (origin, key, empty tree) unless one is registered; returns the
    /// registered head either way.
    async fn init_log(&self, head: &LogHead) -> crate::StoreResult<LogHead>;
    /// Applies one integration atomically: fails with `Conflict` (and changes nothing) unless
    /// the head's size is still `old_size`.
    async fn integrate(&self, step: &Integration) -> crate::StoreResult<()>;
    /// The stored tiles among `(level, index)`; absent ones are left out.
    async fn read_tiles(&self, tiles: &[(u8, u64)]) -> crate::StoreResult<Vec<StoredTile>>;
    /// The checkpoint of exactly `size`, or the latest with `None`.
    async fn checkpoint(&self, size: Option<u64>) -> crate::StoreResult<Option<StoredCheckpoint>>;
    /// Checkpoints with size greater than `after`, oldest first, at most `limit`.
    async fn checkpoints_after(
        &self,
        after: u64,
        limit: u32,
    ) -> crate::StoreResult<Vec<StoredCheckpoint>>;
    /// Tries to become (or confirms being) the only sequencer among the processes sharing this
    /// database; `false` means another holds the role.
    async fn lead_sequencer(&self) -> crate::StoreResult<bool>;
}
