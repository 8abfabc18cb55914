//! `parapet detect test` as a user runs it: the SigmaHQ regression corpus with the whole SigmaHQ
//! rule set loaded, JSON output, bad rules and bad events.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The SigmaHQ rules and regression data beside the checkout (`../shared/data/sigma`).
fn sigma_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/sigma");
    assert!(
        dir.join("regression").is_dir(),
        "the SigmaHQ data is missing: expected {} (the shared folder beside the checkout)",
        dir.display()
    );
    dir
}

/// Every SigmaHQ rule directory.
fn all_rule_dirs() -> Vec<PathBuf> {
    let base = sigma_dir();
    let dirs: Vec<PathBuf> = [
        "rules",
        "rules-emerging-threats",
        "rules-threat-hunting",
        "rules-compliance",
        "rules-dfir",
    ]
    .iter()
    .map(|d| base.join(d))
    .filter(|d| d.is_dir())
    .collect();
    assert!(
        dirs.len() >= 3,
        "SigmaHQ rule directories missing under {}",
        base.display()
    );
    dirs
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let out = Command::new(common::bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run parapet");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn temp(tag: &str) -> PathBuf {
    let dir = parapet_store_sql::testkit::temp_dir("detect").join(tag);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One regression case: the rule that must fire and how often (`None`: at least once).
struct Case {
    dir: PathBuf,
    rule_id: String,
    match_count: Option<usize>,
    events: Vec<Value>,
}

/// Reads `info.yml` (the rule id under `rule_metadata`, the `match_count` if given) and the
/// case's JSON events.
fn read_case(info: &Path) -> Case {
    let text = std::fs::read_to_string(info).unwrap();
    let mut rule_id = None;
    let mut match_count = None;
    let mut in_meta = false;
    for line in text.lines() {
        let t = line.trim();
        if !line.starts_with(' ') && !line.starts_with('-') {
            in_meta = t.starts_with("rule_metadata:");
        }
        if in_meta
            && rule_id.is_none()
            && let Some(v) = t.strip_prefix("- id:")
        {
            rule_id = Some(v.trim().trim_matches(['\'', '"']).to_string());
        }
        if let Some(v) = t.strip_prefix("match_count:") {
            match_count = Some(v.trim().parse().unwrap());
        }
    }
    let dir = info.parent().unwrap().to_path_buf();
    let mut events = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for v in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            events.push(v.unwrap());
        }
    }
    Case {
        rule_id: rule_id.unwrap_or_else(|| panic!("no rule id in {}", info.display())),
        match_count,
        events,
        dir,
    }
}

fn find_infos(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            find_infos(&p, out);
        } else if p.file_name().is_some_and(|n| n == "info.yml") {
            out.push(p);
        }
    }
}

/// Cases whose `match_count` disagrees with their own events under Sigma's semantics, with the
/// count every Sigma engine must give (checked by hand against the events):
/// - Anydesk artefact (`TargetFilename|contains: '\AppData\Roaming\AnyDesk\user.conf'`): the
///   events hold `user.conf.new` twice and `user.conf~RF2d9c20d.TMP` once: 3, not 1.
/// - Credential-dump tools dropped (`TargetFilename|endswith` procdump names): procdump64.exe,
///   procdump64a.exe and procdump.exe are created: 3, not 1.
/// - Security zones changed: three ZoneMap values set to 2 (https, http, `*`): 3, not 1.
/// - Administrative shares disabled: AutoShareServer and AutoShareWks both set to 0 by two
///   reg.exe runs: 2, not 1.
///
/// Both numbers are checked: the rule must fire exactly this many times.
const COUNT_ERRATA: &[(&str, usize, usize)] = &[
    ("0b9ad457-2554-44c1-82c2-d56a99c42377", 1, 3),
    ("8fbf3271-1ef6-4e94-8210-03c2317947f6", 1, 3),
    ("45e112d0-7759-4c2a-aa36-9f8fb79d3393", 1, 3),
    ("c7dcacd0-cc59-4004-b0a4-1d6cdebe6f3e", 1, 2),
];

/// Every case of the regression corpus, in one run of `detect test` with every SigmaHQ rule
/// loaded: each case's events are lines of one JSON-lines file, and each case's rule must match
/// within its lines exactly `match_count` times (at least once when the case gives no count).
#[test]
fn regression_corpus_with_all_sigmahq_rules() {
    let mut infos = Vec::new();
    find_infos(&sigma_dir().join("regression"), &mut infos);
    infos.sort();
    assert!(
        infos.len() >= 100,
        "only {} regression cases found",
        infos.len()
    );
    let cases: Vec<Case> = infos.iter().map(|i| read_case(i)).collect();

    let dir = temp("regression");
    let events = dir.join("all.jsonl");
    let mut text = String::new();
    let mut ranges = Vec::new();
    let mut line = 0usize;
    for case in &cases {
        assert!(
            !case.events.is_empty(),
            "no events in {}",
            case.dir.display()
        );
        let start = line;
        for e in &case.events {
            text.push_str(&serde_json::to_string(e).unwrap());
            text.push('\n');
            line += 1;
        }
        ranges.push(start..line);
    }
    std::fs::write(&events, text).unwrap();

    let mut args = vec!["detect".to_string(), "test".to_string()];
    for d in all_rule_dirs() {
        args.push("--rules".into());
        args.push(d.display().to_string());
    }
    args.extend([
        "--events".into(),
        events.display().to_string(),
        "--json".into(),
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&argv);
    assert_eq!(out.code, Some(0), "detect test failed: {}", out.stderr);
    assert!(
        out.stderr.contains("detection and"),
        "no load summary: {}",
        out.stderr
    );

    // event_index -> rule ids that matched there.
    let mut by_event: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for l in out.stdout.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        for key in ["rule_id", "title", "level", "event_index"] {
            assert!(v.get(key).is_some(), "{key} missing in {l}");
        }
        let idx = v["event_index"].as_u64().unwrap() as usize;
        by_event
            .entry(idx)
            .or_default()
            .push(v["rule_id"].as_str().unwrap().to_string());
    }

    let mut failures = Vec::new();
    for (case, range) in cases.iter().zip(&ranges) {
        let count = range
            .clone()
            .flat_map(|i| by_event.get(&i).into_iter().flatten())
            .filter(|id| **id == case.rule_id)
            .count();
        let erratum = COUNT_ERRATA
            .iter()
            .find(|(id, listed, _)| *id == case.rule_id && case.match_count == Some(*listed));
        let ok = match (erratum, case.match_count) {
            (Some((_, _, actual)), _) => count == *actual,
            (None, Some(n)) => count == n,
            (None, None) => count >= 1,
        };
        if !ok {
            failures.push(format!(
                "{}: rule {} matched {count} times, expected {}",
                case.dir.display(),
                case.rule_id,
                case.match_count
                    .map_or("at least 1".to_string(), |n| n.to_string())
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} regression cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

const RULE: &str = "title: Whoami
id: 11111111-2222-3333-4444-555555555555
status: test
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\whoami.exe'
    filter:
        CommandLine|contains|all:
            - '/groups'
            - '/fo'
    condition: selection and not filter
level: medium
";

fn sysmon(event_id: u32, data: Value) -> Value {
    serde_json::json!({"Event": {
        "System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
            "EventID": event_id,
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": "pc1",
            "TimeCreated": {"#attributes": {"SystemTime": "2026-01-01T10:00:00Z"}}
        },
        "EventData": data
    }})
}

/// Matches are printed per event (0-based line numbers, blank lines counted), logsource routing
/// keeps a process-creation rule away from other event ids, and the human output names the rule.
#[test]
fn json_output_indexes_lines_and_routes_by_logsource() {
    let dir = temp("routing");
    std::fs::create_dir_all(dir.join("rules/sub")).unwrap();
    std::fs::write(dir.join("rules/sub/whoami.yml"), RULE).unwrap();
    let lines = [
        sysmon(
            1,
            serde_json::json!({"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami"}),
        ),
        // Same fields, but a file event (id 11): not a process creation.
        sysmon(
            11,
            serde_json::json!({"Image": "C:\\Windows\\System32\\whoami.exe"}),
        ),
        // Filtered out by the rule's filter.
        sysmon(
            1,
            serde_json::json!({"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami /groups /fo csv"}),
        ),
        // A flat event: no log source, evaluated against every rule.
        serde_json::json!({"Image": "D:\\tools\\WHOAMI.EXE", "CommandLine": "x"}),
    ];
    let mut text = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i == 2 {
            text.push('\n'); // a blank line still counts as a line
        }
        text.push_str(&serde_json::to_string(l).unwrap());
        text.push('\n');
    }
    std::fs::write(dir.join("events.jsonl"), text).unwrap();
    let rules = dir.join("rules");
    let events = dir.join("events.jsonl");
    let out = run(&[
        "detect",
        "test",
        "--rules",
        rules.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let got: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let idx: Vec<u64> = got
        .iter()
        .map(|v| v["event_index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![0, 4], "{}", out.stdout);
    assert_eq!(got[0]["rule_id"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(got[0]["title"], "Whoami");
    assert_eq!(got[0]["level"], "medium");

    let human = run(&[
        "detect",
        "test",
        "--rules",
        rules.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ]);
    assert_eq!(human.code, Some(0));
    assert_eq!(human.stdout.lines().count(), 2, "{}", human.stdout);
    assert!(
        human
            .stdout
            .contains("event 0  medium  11111111-2222-3333-4444-555555555555  Whoami")
    );
}

/// A broken rule is reported with file, line and reason (and fails with --strict); broken
/// event lines are reported, the others still evaluated, and the exit status says so.
#[test]
fn broken_rules_and_events_are_reported() {
    let dir = temp("broken");
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/good.yml"), RULE).unwrap();
    let broken = "title: Broken\nid: b1\nlogsource:\n    product: windows\ndetection:\n    selection:\n        Image|nosuchmodifier: x\n    condition: selection\n";
    std::fs::write(dir.join("rules/broken.yml"), broken).unwrap();
    std::fs::write(dir.join("rules/cond.yml"), "title: Cond\nid: c1\nlogsource:\n    product: windows\ndetection:\n    selection:\n        Image: x\n    condition: selection and (\n").unwrap();
    let events = dir.join("events.jsonl");
    std::fs::write(
        &events,
        format!(
            "{}\n{{not json\n[1,2]\n",
            serde_json::to_string(&sysmon(1, serde_json::json!({"Image": "C:\\whoami.exe"})))
                .unwrap()
        ),
    )
    .unwrap();
    let rules = dir.join("rules");
    let out = run(&[
        "detect",
        "test",
        "--rules",
        rules.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--json",
    ]);
    // Both broken rules named with file and line.
    let broken_line = out
        .stderr
        .lines()
        .find(|l| l.contains("broken.yml:"))
        .unwrap_or_else(|| panic!("broken.yml not reported: {}", out.stderr));
    assert!(broken_line.contains("nosuchmodifier"), "{broken_line}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("cond.yml:") && l.contains("ondition")),
        "cond.yml not reported: {}",
        out.stderr
    );
    // The good rule still ran on the good event; the bad lines make the run fail.
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let last = out.stderr.lines().last().unwrap();
    assert!(last.starts_with("error: 2 event(s)"), "{last}");
    assert!(
        out.stderr.contains("event 1: not valid JSON"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("event 2: not a JSON object"),
        "{}",
        out.stderr
    );

    let strict = run(&[
        "detect",
        "test",
        "--rules",
        rules.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--strict",
    ]);
    assert_eq!(strict.code, Some(1));
    assert!(
        strict
            .stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("error: 2 rule problem(s)"),
        "{}",
        strict.stderr
    );
    assert!(strict.stdout.is_empty());

    let missing = run(&[
        "detect",
        "test",
        "--rules",
        "/nonexistent-rules",
        "--events",
        events.to_str().unwrap(),
    ]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("/nonexistent-rules"),
        "{}",
        missing.stderr
    );
}

fn python() -> PathBuf {
    common::python_for(&differential_script(), "pysigma and pysigma-backend-sqlite")
}

fn differential_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/independent/sigma_differential.py")
}

/// Differential test against pySigma: a sample of SigmaHQ rules converted to SQL by
/// pySigma-backend-sqlite and run in SQLite over events generated from the rules' values must
/// give exactly the (rule, event) matches Parapet gives.
#[test]
fn matches_equal_pysigma_sqlite() {
    let python = python();
    let work = temp("differential");
    let out = Command::new(&python)
        .arg(differential_script())
        .args(["--rules", sigma_dir().join("rules").to_str().unwrap()])
        .args(["--sample", "200", "--work", work.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("expected.json")).unwrap())
            .unwrap();
    assert!(expected["rules"].as_u64().unwrap() >= 150, "{expected}");
    let want: std::collections::BTreeSet<(String, u64)> = expected["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m[0].as_str().unwrap().to_string(), m[1].as_u64().unwrap()))
        .collect();
    assert!(
        want.len() >= 100,
        "too few reference matches: {}",
        want.len()
    );

    let rules = work.join("rules");
    let events = work.join("events.jsonl");
    let got = run(&[
        "detect",
        "test",
        "--rules",
        rules.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--json",
        "--strict",
    ]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    let got: std::collections::BTreeSet<(String, u64)> = got
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["rule_id"].as_str().unwrap().to_string(),
                v["event_index"].as_u64().unwrap(),
            )
        })
        .collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "Parapet and pySigma/SQLite differ ({} matches expected): only pySigma: {missing:?}; only Parapet: {extra:?}",
        want.len()
    );
}
