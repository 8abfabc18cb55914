//! Detection (X.1642 8.3, 8.6.1): Sigma detection rules and Sigma correlation rules.
//!
//! - [`RuleSet::load`] reads rules from files and directories and reports every rule it cannot
//!   read with the file, the line and the reason.
//! - [`Detector`] compiles the detection rules (the `rsigma` evaluator, pinned behind this
//!   crate's own types) into one evaluator per log source, and routes each event to the
//!   evaluators of its log source. Windows events in the `evtx_dump` JSON shape are flattened to
//!   Sigma field names and routed by channel and event id ([`windows`]).
//! - [`Correlator`] runs Sigma correlation rules (`event_count`, `value_count`, `temporal`,
//!   `temporal_ordered`, group-by, timespan) over the detections, with time given by the caller
//!   (the event's own time, else the injected clock), state bounded by a number of keys, and a
//!   snapshot that survives a restart.

mod correlator;
mod detector;
mod rules;
pub mod windows;

pub use correlator::{Correlator, CorrelatorConfig, CorrelatorError};
pub use detector::{Detector, prepare};
pub use rules::{Origin, RuleError, RuleSet};

use rsigma_eval::EvaluationResult;

/// Where an event comes from, in Sigma's terms. An empty `categories` list means the event
/// belongs to no category (rules written for a category do not see it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSource {
    pub product: Option<String>,
    pub service: Option<String>,
    pub categories: Vec<String>,
}

/// The raw results of evaluating one event, to be listed ([`Matches::detections`]) and fed to a
/// [`Correlator`].
#[derive(Debug, Clone, Default)]
pub struct Matches(pub(crate) Vec<EvaluationResult>);

impl Matches {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// The rules that matched.
    pub fn detections(&self) -> Vec<Detection> {
        self.0.iter().map(Detection::from_result).collect()
    }
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Detection {
    /// The rule's `id` (its title when it has none).
    pub rule_id: String,
    pub title: String,
    /// `informational`, `low`, `medium`, `high` or `critical`, when the rule says.
    pub level: Option<String>,
    /// Whether this is a correlation rule's result.
    pub correlation: bool,
    /// A correlation's group-by fields and values (empty for detection rules).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<(String, String)>,
}

impl Detection {
    pub(crate) fn from_result(r: &EvaluationResult) -> Self {
        Detection {
            rule_id: r
                .header
                .rule_id
                .clone()
                .unwrap_or_else(|| r.header.rule_title.clone()),
            title: r.header.rule_title.clone(),
            level: r.header.level.map(|l| l.as_str().to_string()),
            correlation: r.is_correlation(),
            group: r
                .as_correlation()
                .map(|c| c.group_key.clone())
                .unwrap_or_default(),
        }
    }
}
