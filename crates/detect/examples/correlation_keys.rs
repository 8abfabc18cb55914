//! Memory of live correlation keys (issue 6: "1,000,000 live correlation keys in under 256
//! MiB"): an `event_count` correlation grouped by a field that never repeats, fed N events, so
//! every event opens a key. Prints the live keys, the process's peak resident memory and the
//! correlation rate. Run by `bench/correlation.sh` (release build).
//!
//!   cargo run --release -p parapet-detect --example correlation_keys -- 1000000

use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parapet_detect::{Correlator, CorrelatorConfig, Detector, RuleSet};
use parapet_types::{ManualClock, Timestamp};

const RULES: &str = "title: Failed log-in
id: 0e000000-0000-4000-8000-000000000001
name: failed
logsource:
  product: bench
detection:
  selection:
    outcome: failure
  condition: selection
level: low
---
title: Many failures from one address
id: 0e000000-0000-4000-8000-000000000002
correlation:
  type: event_count
  rules:
    - failed
  group-by:
    - src
  timespan: 1h
  condition:
    gte: 1000000000
level: high
";

/// A line of /proc/self/status, in KiB.
fn status_kib(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    set.add_text(Path::new("bench.yml"), RULES, &mut errors);
    if !errors.is_empty() {
        return Err(format!("{errors:?}").into());
    }
    let (detector, _) = Detector::build(&set);
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let config = CorrelatorConfig {
        max_keys: n.max(1),
        ..CorrelatorConfig::default()
    };
    let (mut correlator, _) = Correlator::build(&set, config, clock);
    let base_kib = status_kib("VmRSS:");
    let started = Instant::now();
    let t0 = 1_800_000_000i64;
    for i in 0..n {
        // Addresses 10.x.y.z, all distinct; one second of event time per 1,000 events.
        let ev = serde_json::json!({
            "outcome": "failure",
            "src": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
            "n": i,
        });
        let m = detector.evaluate(&ev, None);
        correlator.process_at(&ev, m, t0 + (i / 1000) as i64);
    }
    let secs = started.elapsed().as_secs_f64();
    let keys = correlator.key_count();
    let rss = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");
    let snap = Instant::now();
    let bytes = correlator.snapshot()?.len();
    println!(
        "events={n} live_keys={keys} rss_mib={:.1} peak_rss_mib={:.1} keys_rss_mib={:.1} \
         events_per_s={:.0} snapshot_mib={:.1} snapshot_s={:.2}",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss.saturating_sub(base_kib) as f64 / 1024.0,
        n as f64 / secs.max(1e-9),
        bytes as f64 / 1_048_576.0,
        snap.elapsed().as_secs_f64()
    );
    Ok(())
}
