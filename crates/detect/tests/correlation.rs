//! Sigma correlation rules driven by an injected clock: event_count, value_count, temporal,
//! temporal_ordered, group-by and timespan; a restart in the middle of a window; bounded state.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::Arc;

use parapet_detect::{Correlator, CorrelatorConfig, Detector, RuleSet};
use parapet_types::{ManualClock, Timestamp};
use serde_json::{Value, json};

const BASE: &str = "
title: Failed log-in
id: 0a000000-0000-4000-8000-000000000001
name: failed_login
logsource:
    product: parapet
    service: auth
detection:
    selection:
        outcome: failure
    condition: selection
level: low
---
title: Successful log-in
id: 0a000000-0000-4000-8000-000000000002
name: successful_login
logsource:
    product: parapet
    service: auth
detection:
    selection:
        outcome: success
    condition: selection
level: informational
";

fn rules(correlation: &str) -> RuleSet {
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    set.add_text(
        Path::new("corr.yml"),
        &format!("{BASE}---\n{correlation}"),
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    set
}

struct Harness {
    detector: Detector,
    correlator: Correlator,
    clock: Arc<ManualClock>,
    set: RuleSet,
}

impl Harness {
    fn new(correlation: &str, max_keys: usize) -> Self {
        let set = rules(correlation);
        let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)));
        let (detector, errs) = Detector::build(&set);
        assert!(errs.is_empty(), "{errs:?}");
        let config = CorrelatorConfig {
            max_keys,
            ..CorrelatorConfig::default()
        };
        let (correlator, errs) = Correlator::build(&set, config, clock.clone());
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(correlator.correlation_count(), 1);
        Harness {
            detector,
            correlator,
            clock,
            set,
        }
    }

    /// Feeds one event at the clock's time; returns the correlation rule ids that fired.
    fn feed(&mut self, event: Value) -> Vec<String> {
        let matches = self.detector.evaluate(&event, None);
        self.correlator
            .process(&event, matches)
            .into_iter()
            .map(|d| {
                assert!(d.correlation);
                d.rule_id
            })
            .collect()
    }

    /// Simulates a restart: a new correlator from the same rules and the stored snapshot.
    fn restart(&mut self) {
        let snapshot = self.correlator.snapshot().unwrap();
        let (mut fresh, errs) =
            Correlator::build(&self.set, CorrelatorConfig::default(), self.clock.clone());
        assert!(errs.is_empty());
        fresh.restore(&snapshot).unwrap();
        self.correlator = fresh;
    }
}

fn login(outcome: &str, user: &str, ip: &str) -> Value {
    json!({"outcome": outcome, "user": user, "ip": ip})
}

const BRUTE: &str = "
title: Brute force
id: 0b000000-0000-4000-8000-000000000001
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - user
    timespan: 5m
    condition:
        gte: 3
level: high
";

#[test]
fn event_count_within_timespan_per_group() {
    let mut h = Harness::new(BRUTE, 1000);
    assert!(h.feed(login("failure", "alice", "10.0.0.1")).is_empty());
    h.clock.advance_secs(60);
    assert!(h.feed(login("failure", "alice", "10.0.0.1")).is_empty());
    // Another user's failures are another group.
    assert!(h.feed(login("failure", "bob", "10.0.0.1")).is_empty());
    h.clock.advance_secs(60);
    assert_eq!(
        h.feed(login("failure", "alice", "10.0.0.2")),
        vec!["0b000000-0000-4000-8000-000000000001"]
    );
    assert!(h.feed(login("success", "alice", "10.0.0.2")).is_empty());
}

#[test]
fn event_count_outside_timespan_does_not_fire() {
    let mut h = Harness::new(BRUTE, 1000);
    for _ in 0..5 {
        assert!(h.feed(login("failure", "carol", "10.0.0.1")).is_empty());
        h.clock.advance_secs(200); // 3 failures never fall within 5 minutes
    }
}

#[test]
fn restart_in_the_middle_of_a_window_keeps_the_count() {
    let mut h = Harness::new(BRUTE, 1000);
    h.feed(login("failure", "dave", "10.0.0.1"));
    h.clock.advance_secs(30);
    h.feed(login("failure", "dave", "10.0.0.1"));
    assert!(h.correlator.key_count() >= 1);
    h.restart();
    h.clock.advance_secs(30);
    assert_eq!(h.feed(login("failure", "dave", "10.0.0.1")).len(), 1);

    // Without the snapshot the third failure alone does not fire.
    let mut cold = Harness::new(BRUTE, 1000);
    cold.feed(login("failure", "dave", "10.0.0.1"));
    cold.feed(login("failure", "dave", "10.0.0.1"));
    let (fresh, _) = Correlator::build(&cold.set, CorrelatorConfig::default(), cold.clock.clone());
    cold.correlator = fresh;
    assert!(cold.feed(login("failure", "dave", "10.0.0.1")).is_empty());
}

#[test]
fn value_count_password_spraying() {
    let spray = "
title: Password spraying
id: 0b000000-0000-4000-8000-000000000002
correlation:
    type: value_count
    rules:
        - failed_login
    group-by:
        - ip
    timespan: 10m
    condition:
        field: user
        gte: 3
level: high
";
    let mut h = Harness::new(spray, 1000);
    // The same user again and again is not spraying.
    for _ in 0..4 {
        assert!(h.feed(login("failure", "erin", "192.0.2.7")).is_empty());
    }
    assert!(h.feed(login("failure", "frank", "192.0.2.7")).is_empty());
    h.clock.advance_secs(120);
    assert_eq!(h.feed(login("failure", "grace", "192.0.2.7")).len(), 1);
}

#[test]
fn temporal_and_temporal_ordered() {
    let temporal = "
title: Failure and success
id: 0b000000-0000-4000-8000-000000000003
correlation:
    type: temporal
    rules:
        - failed_login
        - successful_login
    group-by:
        - user
    timespan: 5m
level: high
";
    let mut h = Harness::new(temporal, 1000);
    assert!(h.feed(login("success", "heidi", "10.0.0.1")).is_empty());
    h.clock.advance_secs(10);
    // Any order counts for `temporal`.
    assert_eq!(h.feed(login("failure", "heidi", "10.0.0.1")).len(), 1);

    let ordered = temporal
        .replace("type: temporal", "type: temporal_ordered")
        .replace(
            "0b000000-0000-4000-8000-000000000003",
            "0b000000-0000-4000-8000-000000000004",
        );
    let mut h = Harness::new(&ordered, 1000);
    assert!(h.feed(login("success", "ivan", "10.0.0.1")).is_empty());
    h.clock.advance_secs(10);
    // Success before failure: not the ordered sequence.
    assert!(h.feed(login("failure", "ivan", "10.0.0.1")).is_empty());
    h.clock.advance_secs(10);
    // Failure then success: fires.
    assert_eq!(h.feed(login("success", "ivan", "10.0.0.1")).len(), 1);
    // Too late: a failure, then a success after the timespan.
    assert!(h.feed(login("failure", "judy", "10.0.0.1")).is_empty());
    h.clock.advance_secs(600);
    assert!(h.feed(login("success", "judy", "10.0.0.1")).is_empty());
}

#[test]
fn event_time_wins_over_the_clock() {
    let mut h = Harness::new(BRUTE, 1000);
    // Events carry their own times five minutes apart: no burst, whatever the clock says.
    for minute in 0..4 {
        let mut e = login("failure", "mallory", "10.0.0.1");
        e["@timestamp"] = json!(format!("2026-01-01T10:{:02}:00Z", minute * 5));
        assert!(h.feed(e).is_empty());
    }
}

#[test]
fn state_is_bounded() {
    let mut h = Harness::new(BRUTE, 50);
    for i in 0..1000 {
        h.feed(login("failure", &format!("user{i}"), "10.0.0.1"));
        assert!(
            h.correlator.key_count() <= 50,
            "{} keys",
            h.correlator.key_count()
        );
    }
}

#[test]
fn unknown_rule_reference_is_reported() {
    let bad = BRUTE.replace("- failed_login", "- no_such_rule");
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    set.add_text(
        Path::new("c.yml"),
        &format!("{BASE}---\n{bad}"),
        &mut errors,
    );
    let (c, errs) = Correlator::build(
        &set,
        CorrelatorConfig::default(),
        Arc::new(ManualClock::default()),
    );
    assert_eq!(c.correlation_count(), 0);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].reason.contains("no_such_rule"), "{}", errs[0]);
    assert_eq!(errs[0].line, 28, "{}", errs[0]);
}
