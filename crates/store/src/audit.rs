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
    pub action: Option<String>,
    pub actor: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}
