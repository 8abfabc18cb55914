//! Checks `conformance/x1642.toml` against the requirement list of ITU-T X.1642 in
//! `../shared/spec/x1642-requirements.tsv` and against the tests it names.
//!
//! CI has the shared folder beside the checkout; without it this test fails (it never passes
//! without having checked anything).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use parapet_conformance::{
    CONFORMANCE_MAP, DirTree, REQUIREMENTS_TSV, Status, Summary, check, parse_map,
    parse_requirements, workspace_root,
};

fn root() -> PathBuf {
    workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn read(relative: &str, what: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {what} at {}: {e}\n(the requirement list comes from the shared folder, \
             which must sit beside the checkout as ../shared; CI provides it)",
            path.display()
        )
    })
}

#[test]
fn every_requirement_is_mapped_and_every_named_test_exists() {
    let tsv = read(REQUIREMENTS_TSV, "the X.1642 requirement list");
    let requirements =
        parse_requirements(&tsv).unwrap_or_else(|e| panic!("{REQUIREMENTS_TSV}: {e}"));
    let map_text = read(CONFORMANCE_MAP, "the conformance map");
    let map = parse_map(&map_text).unwrap_or_else(|e| panic!("{CONFORMANCE_MAP}: {e}"));

    let problems = check(&requirements, &map, &DirTree(root()));
    let summary = Summary::of(&map);
    eprintln!(
        "conformance: {} requirements; {summary}",
        requirements.len()
    );
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        panic!(
            "{} problem(s) in {CONFORMANCE_MAP}:\n{}",
            problems.len(),
            list.join("\n")
        );
    }
    assert_eq!(map.requirements.len(), requirements.len());
}

#[test]
fn every_entry_says_which_module_carries_it() {
    // Honesty check: planned entries say where the work will land, so the map stays a plan and
    // not a list of ids.
    let map = parse_map(&read(CONFORMANCE_MAP, "the conformance map"))
        .unwrap_or_else(|e| panic!("{CONFORMANCE_MAP}: {e}"));
    let silent: Vec<&str> = map
        .requirements
        .iter()
        .filter(|(_, e)| {
            Status::parse(&e.status) == Some(Status::Planned)
                && e.note.as_deref().is_none_or(|n| n.trim().is_empty())
        })
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        silent.is_empty(),
        "planned entries without a note naming the module: {silent:?}"
    );
}
