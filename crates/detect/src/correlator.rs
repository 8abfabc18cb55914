//! Sigma correlation rules over the detections of [`crate::Detector`].

use std::collections::HashSet;
use std::sync::Arc;

use parapet_types::Clock;
use rsigma_eval::{CorrelationConfig, CorrelationEngine, JsonEvent};
use rsigma_parser::{ConditionOperator, CorrelationCondition, CorrelationRule, CorrelationType};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::rules::{RuleError, RuleSet};
use crate::{Detection, Matches};

/// Limits and time fields of a [`Correlator`].
#[derive(Debug, Clone)]
pub struct CorrelatorConfig {
    /// Most live correlation keys (correlation × group) kept; past it, expired windows are
    /// dropped first, then the oldest.
    pub max_keys: usize,
    /// Event fields holding the event's time (RFC 3339, or seconds / milliseconds since the
    /// epoch), tried in order; an event without one is placed at the clock's time.
    pub timestamp_fields: Vec<String>,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        CorrelatorConfig {
            max_keys: 1_000_000,
            timestamp_fields: [
                "@timestamp",
                "timestamp",
                "TimeCreated",
                "EventTime",
                "time",
            ]
            .iter()
            .map(|s| (*s).to_string())
            .collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CorrelatorError {
    #[error("the correlation state cannot be encoded: {0}")]
    Encode(serde_json::Error),
    #[error("the correlation state cannot be read: {0}")]
    Decode(serde_json::Error),
    #[error("the correlation state was written by an incompatible version")]
    Incompatible,
}

/// Correlation rules and their live windows.
pub struct Correlator {
    engine: CorrelationEngine,
    config: CorrelatorConfig,
    clock: Arc<dyn Clock>,
    correlations: usize,
    /// Ids of detection rules referenced only by correlations with `generate: false` (the
    /// Sigma default): their matches feed the windows but are no finding of their own.
    correlation_only: HashSet<String>,
}

impl Correlator {
    /// Compiles the correlation rules of `set`. The detection rules they refer to (by `id` or
    /// `name`) are registered so that references by name resolve; a correlation that refers to
    /// a rule not in `set` is reported.
    pub fn build(
        set: &RuleSet,
        config: CorrelatorConfig,
        clock: Arc<dyn Clock>,
    ) -> (Correlator, Vec<RuleError>) {
        let engine_config = CorrelationConfig {
            max_state_entries: config.max_keys.max(1),
            timestamp_fields: config.timestamp_fields.clone(),
            ..CorrelationConfig::default()
        };
        let mut engine = CorrelationEngine::new(engine_config);
        let mut errors = Vec::new();
        let referenced: HashSet<&str> = set
            .correlations
            .iter()
            .flat_map(|(c, _)| c.rules.iter().map(String::as_str))
            .collect();
        let mut known: HashSet<&str> = HashSet::new();
        for (rule, _) in &set.rules {
            let names = [rule.id.as_deref(), rule.name.as_deref()];
            if names.iter().flatten().any(|n| referenced.contains(n)) {
                // Compile errors are reported by the Detector.
                if engine.add_rule(rule).is_ok() {
                    known.extend(names.into_iter().flatten());
                }
            }
        }
        for (corr, _) in &set.correlations {
            known.extend(
                [corr.id.as_deref(), corr.name.as_deref()]
                    .into_iter()
                    .flatten(),
            );
        }
        let mut correlations = 0;
        let mut generated: HashSet<&str> = HashSet::new();
        let mut silent: HashSet<&str> = HashSet::new();
        for (corr, _) in &set.correlations {
            let refs = corr.rules.iter().map(String::as_str);
            if corr.generate {
                generated.extend(refs);
            } else {
                silent.extend(refs);
            }
        }
        let correlation_only: HashSet<String> = set
            .rules
            .iter()
            .filter_map(|(r, _)| {
                let names = [r.id.as_deref(), r.name.as_deref()];
                let named = |s: &HashSet<&str>| names.iter().flatten().any(|n| s.contains(n));
                (named(&silent) && !named(&generated))
                    .then(|| r.id.clone().unwrap_or_else(|| r.title.clone()))
            })
            .collect();
        for (corr, origin) in &set.correlations {
            if let Some(missing) = corr.rules.iter().find(|r| !known.contains(r.as_str())) {
                errors.push(RuleError {
                    file: origin.file.clone(),
                    line: origin.line,
                    reason: format!(
                        "correlation '{}' refers to rule '{missing}', which is not loaded",
                        corr.title
                    ),
                });
                continue;
            }
            let corr = with_spec_default(corr);
            match engine.add_correlation(&corr) {
                Ok(()) => correlations += 1,
                Err(e) => errors.push(RuleError {
                    file: origin.file.clone(),
                    line: origin.line,
                    reason: format!("correlation '{}' does not compile: {e}", corr.title),
                }),
            }
        }
        (
            Correlator {
                engine,
                config,
                clock,
                correlations,
                correlation_only,
            },
            errors,
        )
    }

    /// How many correlation rules are loaded.
    pub fn correlation_count(&self) -> usize {
        self.correlations
    }

    /// Whether the matches of detection rule `rule_id` are findings of their own: false for
    /// rules that only feed correlations with `generate: false`.
    pub fn generates(&self, rule_id: &str) -> bool {
        !self.correlation_only.contains(rule_id)
    }

    /// How many correlation keys (correlation × group) are live.
    pub fn key_count(&self) -> usize {
        self.engine.state_count()
    }

    /// The time of an event in seconds since the epoch: its own time field, else the clock's.
    pub fn event_time(&self, fields: &Value) -> i64 {
        for name in &self.config.timestamp_fields {
            if let Some(t) = fields.get(name).and_then(parse_time) {
                return t;
            }
        }
        self.clock.now().0.div_euclid(1000)
    }

    /// Feeds one event's detections (from [`crate::Detector::evaluate`]) into the correlation
    /// windows and returns the correlation rules that fired.
    pub fn process(&mut self, fields: &Value, detections: Matches) -> Vec<Detection> {
        if self.correlations == 0 || detections.is_empty() {
            return Vec::new();
        }
        let ts = self.event_time(fields);
        self.process_at(fields, detections, ts)
    }

    /// Like [`Correlator::process`], with the event's time given (seconds since the epoch).
    pub fn process_at(&mut self, fields: &Value, detections: Matches, ts: i64) -> Vec<Detection> {
        if self.correlations == 0 || detections.is_empty() {
            return Vec::new();
        }
        let event = JsonEvent::borrow(fields);
        self.engine
            .process_with_detections(&event, detections.0, ts)
            .iter()
            .filter(|r| r.is_correlation())
            .map(Detection::from_result)
            .collect()
    }

    /// Drops the windows that have expired at the clock's time.
    pub fn evict_expired(&mut self) {
        let now = self.clock.now().0.div_euclid(1000);
        self.engine.evict_expired(now);
    }

    /// The live correlation state, to be stored and given to [`Correlator::restore`] after a
    /// restart.
    pub fn snapshot(&self) -> Result<String, CorrelatorError> {
        serde_json::to_string(&self.engine.export_state()).map_err(CorrelatorError::Encode)
    }

    /// Restores a state written by [`Correlator::snapshot`] (windows of correlations no longer
    /// loaded are dropped).
    pub fn restore(&mut self, snapshot: &str) -> Result<(), CorrelatorError> {
        let state = serde_json::from_str(snapshot).map_err(CorrelatorError::Decode)?;
        if self.engine.import_state(state) {
            Ok(())
        } else {
            Err(CorrelatorError::Incompatible)
        }
    }
}

/// A temporal correlation without a condition fires when *all* its rules matched within the
/// timespan (Sigma specification); rsigma-parser 0.23 reads the missing condition as "at least
/// one", so the parsed default (`gte: 1`, no field) is replaced by `gte: <number of rules>`.
fn with_spec_default(corr: &CorrelationRule) -> CorrelationRule {
    let mut corr = corr.clone();
    let temporal = matches!(
        corr.correlation_type,
        CorrelationType::Temporal | CorrelationType::TemporalOrdered
    );
    if temporal
        && let CorrelationCondition::Threshold {
            predicates,
            field: None,
            ..
        } = &mut corr.condition
        && predicates.as_slice() == [(ConditionOperator::Gte, 1)]
    {
        let all = u64::try_from(corr.rules.len()).unwrap_or(u64::MAX);
        *predicates = vec![(ConditionOperator::Gte, all)];
    }
    corr
}

/// RFC 3339 text, or a number of seconds (or milliseconds, when too large for seconds) since
/// the epoch.
fn parse_time(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => OffsetDateTime::parse(s.trim(), &Rfc3339)
            .ok()
            .map(OffsetDateTime::unix_timestamp),
        Value::Number(n) => {
            let v = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?;
            Some(if v > 100_000_000_000 { v / 1000 } else { v })
        }
        _ => None,
    }
}
