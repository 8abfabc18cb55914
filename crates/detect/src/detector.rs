//! The detection engine: Sigma rules compiled into one evaluator per log source, and events
//! routed to the evaluators whose log source they belong to.

use rsigma_eval::{CompiledRule, Engine, JsonEvent, compile_rule};
use serde_json::Value;

use crate::rules::{RuleError, RuleSet};
use crate::{Detection, EventSource, Matches, windows};

/// The rules of one log source (product, service, category; `None` is "any").
struct Bucket {
    product: Option<String>,
    service: Option<String>,
    category: Option<String>,
    engine: Engine,
}

impl Bucket {
    /// Whether events from `source` are in this bucket's log source.
    fn accepts(&self, source: &EventSource) -> bool {
        fn one(rule: &Option<String>, event: &Option<String>) -> bool {
            match (rule, event) {
                (None, _) => true,
                (Some(r), Some(e)) => r.eq_ignore_ascii_case(e),
                (Some(_), None) => false,
            }
        }
        one(&self.product, &source.product)
            && one(&self.service, &source.service)
            && match &self.category {
                None => true,
                Some(c) => source.categories.iter().any(|e| e.eq_ignore_ascii_case(c)),
            }
    }
}

/// Compiled detection rules, ready to evaluate events (from any number of threads).
pub struct Detector {
    buckets: Vec<Bucket>,
    rules: usize,
}

/// Rules grouped by log source: (product, service, category, rules).
type Group = (
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<CompiledRule>,
);

fn key_part(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|v| v.trim().to_ascii_lowercase())
}

impl Detector {
    /// Compiles the detection rules of `set` (correlations are compiled by
    /// [`crate::Correlator`]). Rules that do not compile are returned with their file and line,
    /// and left out.
    pub fn build(set: &RuleSet) -> (Detector, Vec<RuleError>) {
        let mut errors = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut rules = 0;
        for (rule, origin) in &set.rules {
            match compile_rule(rule) {
                Ok(compiled) => {
                    rules += 1;
                    let (p, s, c) = (
                        key_part(&rule.logsource.product),
                        key_part(&rule.logsource.service),
                        key_part(&rule.logsource.category),
                    );
                    match groups.iter_mut().find(|g| g.0 == p && g.1 == s && g.2 == c) {
                        Some(g) => g.3.push(compiled),
                        None => groups.push((p, s, c, vec![compiled])),
                    }
                }
                Err(e) => errors.push(RuleError {
                    file: origin.file.clone(),
                    line: origin.line,
                    reason: format!("rule '{}' does not compile: {e}", rule.title),
                }),
            }
        }
        let mut buckets: Vec<Bucket> = groups
            .into_iter()
            .map(|(product, service, category, compiled)| {
                let mut engine = Engine::new();
                engine.extend_compiled_rules(compiled);
                Bucket {
                    product,
                    service,
                    category,
                    engine,
                }
            })
            .collect();
        for (filter, origin) in &set.filters {
            for bucket in &mut buckets {
                if let Err(e) = bucket.engine.apply_filter(filter) {
                    errors.push(RuleError {
                        file: origin.file.clone(),
                        line: origin.line,
                        reason: format!("filter '{}' cannot be applied: {e}", filter.title),
                    });
                    break;
                }
            }
        }
        (Detector { buckets, rules }, errors)
    }

    /// How many detection rules are loaded.
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// Evaluates one event as received (an `evtx_dump` Windows event is flattened and routed by
    /// channel and event id; any other JSON object is evaluated as it is against every rule).
    pub fn detect(&self, event: &Value) -> Vec<Detection> {
        let prepared = prepare(event);
        let (fields, source) = match &prepared {
            Some((flat, source)) => (flat, Some(source)),
            None => (event, None),
        };
        self.evaluate(fields, source).detections()
    }

    /// Evaluates flattened event fields from a known log source (`None`: unknown, every rule
    /// applies) and returns the engine's results.
    pub fn evaluate(&self, fields: &Value, source: Option<&EventSource>) -> Matches {
        let event = JsonEvent::borrow(fields);
        let mut out = Vec::new();
        for bucket in &self.buckets {
            if source.is_none_or(|s| bucket.accepts(s)) {
                out.extend(bucket.engine.evaluate(&event));
            }
        }
        Matches(out)
    }
}

/// Normalizes an event of a known shape (today: Windows `evtx_dump` JSON) into Sigma fields and
/// its log source; `None` for events to be taken as they are.
pub fn prepare(event: &Value) -> Option<(Value, EventSource)> {
    windows::normalize(event)
}
