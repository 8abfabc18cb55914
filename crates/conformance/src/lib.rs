//! The ITU-T X.1642 conformance map.
//!
//! `conformance/x1642.toml` states, for every requirement of the Recommendation listed in
//! `../shared/spec/x1642-requirements.tsv`, whether Parapet implements it, and which tests prove
//! it. This crate parses both files and checks that they agree:
//!
//! - every requirement id of the TSV has an entry, and the map names no other id;
//! - every status is one of `implemented`, `partial`, `planned`, `not-applicable`;
//! - `not-applicable` carries a non-empty note (the reason);
//! - `implemented` and `partial` name at least one test;
//! - every named test exists: `crates/<crate>/<path>.rs::<fn_name>` names a file of the workspace
//!   that contains `fn <fn_name>` (for longer `::` paths, the last segment is the function).
//!
//! The integration test `tests/map.rs` runs the check on the real files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the requirement list lives, relative to the workspace root (the shared folder sits beside
/// the checkout).
pub const REQUIREMENTS_TSV: &str = "../shared/spec/x1642-requirements.tsv";

/// Where the conformance map lives, relative to the workspace root.
pub const CONFORMANCE_MAP: &str = "conformance/x1642.toml";

/// One requirement of X.1642, a row of the TSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub id: String,
    pub clause: String,
    pub text: String,
}

/// How far Parapet is with a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Implemented,
    Partial,
    Planned,
    NotApplicable,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Implemented,
        Status::Partial,
        Status::Planned,
        Status::NotApplicable,
    ];

    /// The spelling used in the TOML file.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Implemented => "implemented",
            Status::Partial => "partial",
            Status::Planned => "planned",
            Status::NotApplicable => "not-applicable",
        }
    }

    /// Parses the TOML spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether an entry with this status must name at least one test.
    pub fn needs_tests(self) -> bool {
        matches!(self, Status::Implemented | Status::Partial)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the map, as written. The status stays a string so that an unknown status is
/// reported by [`check`] with the requirement id rather than as a bare parse error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub status: String,
    #[serde(default)]
    pub tests: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// The whole map file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConformanceMap {
    #[serde(default)]
    pub requirements: BTreeMap<String, Entry>,
}

/// A file that could not be read as a requirement list or a conformance map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    TsvEmpty,
    TsvHeader { found: String },
    TsvRow { line: usize, reason: String },
    TsvDuplicate { line: usize, id: String },
    Toml(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TsvEmpty => f.write_str("the requirement list has no requirements"),
            ParseError::TsvHeader { found } => write!(
                f,
                "the requirement list must start with the header `id<TAB>clause<TAB>text`, found {found:?}"
            ),
            ParseError::TsvRow { line, reason } => {
                write!(f, "requirement list, line {line}: {reason}")
            }
            ParseError::TsvDuplicate { line, id } => {
                write!(f, "requirement list, line {line}: duplicate id {id}")
            }
            ParseError::Toml(e) => write!(f, "conformance map: {e}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses the TSV of requirements (`id`, `clause`, `text`, tab-separated, with a header line).
pub fn parse_requirements(tsv: &str) -> Result<Vec<Requirement>, ParseError> {
    let mut lines = tsv
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(ParseError::TsvEmpty);
    };
    if header.split('\t').map(str::trim).collect::<Vec<_>>() != ["id", "clause", "text"] {
        return Err(ParseError::TsvHeader {
            found: header.to_string(),
        });
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (line, row) in lines {
        let fields: Vec<&str> = row.split('\t').collect();
        let [id, clause, text] = fields.as_slice() else {
            return Err(ParseError::TsvRow {
                line,
                reason: format!("expected 3 tab-separated fields, found {}", fields.len()),
            });
        };
        let id = id.trim();
        if id.is_empty() {
            return Err(ParseError::TsvRow {
                line,
                reason: "empty id".to_string(),
            });
        }
        if !seen.insert(id.to_string()) {
            return Err(ParseError::TsvDuplicate {
                line,
                id: id.to_string(),
            });
        }
        out.push(Requirement {
            id: id.to_string(),
            clause: clause.trim().to_string(),
            text: text.trim().to_string(),
        });
    }
    if out.is_empty() {
        return Err(ParseError::TsvEmpty);
    }
    Ok(out)
}

/// Parses the conformance map (TOML).
pub fn parse_map(text: &str) -> Result<ConformanceMap, ParseError> {
    toml::from_str(text).map_err(|e| ParseError::Toml(e.to_string()))
}

/// A test named by an entry: a Rust file of the workspace and a function in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRef<'a> {
    /// Path relative to the workspace root, such as `crates/iam/tests/login.rs`.
    pub file: &'a str,
    /// The function name (the last `::` segment).
    pub function: &'a str,
}

/// Splits `crates/<crate>/<path>.rs::[module::]<fn_name>` into file and function.
pub fn parse_test_ref(s: &str) -> Result<TestRef<'_>, String> {
    let Some((file, rest)) = s.split_once("::") else {
        return Err("expected `crates/<crate>/<path>.rs::<fn_name>`".to_string());
    };
    if !file.starts_with("crates/") {
        return Err("the file must be under `crates/`".to_string());
    }
    if !file.ends_with(".rs") {
        return Err("the file must be a `.rs` file".to_string());
    }
    if file
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
        || file.contains('\\')
    {
        return Err("the file path must be a plain relative path".to_string());
    }
    let function = rest.rsplit("::").next().unwrap_or(rest);
    if rest.split("::").any(|seg| !is_identifier(seg)) {
        return Err("every `::` segment after the file must be a Rust identifier".to_string());
    }
    Ok(TestRef { file, function })
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => chars.all(is_ident_char),
        _ => false,
    }
}

/// Whether `source` contains `fn <name>` as whole words (any whitespace between).
pub fn defines_fn(source: &str, name: &str) -> bool {
    let mut from = 0;
    while let Some(pos) = source.get(from..).and_then(|s| s.find("fn")) {
        let start = from + pos;
        let end = start + 2;
        from = end;
        let before_ok = source
            .get(..start)
            .and_then(|s| s.chars().next_back())
            .is_none_or(|c| !is_ident_char(c));
        let Some(after) = source.get(end..) else {
            break;
        };
        if !before_ok || !after.starts_with(char::is_whitespace) {
            continue;
        }
        let after = after.trim_start();
        let ident_len = after
            .char_indices()
            .find(|&(_, c)| !is_ident_char(c))
            .map_or(after.len(), |(i, _)| i);
        if after.get(..ident_len) == Some(name) {
            return true;
        }
    }
    false
}

/// Read access to the workspace's files, so that the check can run on an in-memory tree in tests.
pub trait SourceTree {
    /// The text of the file at `relative` (a path relative to the workspace root), if it exists.
    fn read(&self, relative: &str) -> Option<String>;
}

/// The files of a directory on disk.
#[derive(Debug, Clone)]
pub struct DirTree(pub PathBuf);

impl SourceTree for DirTree {
    fn read(&self, relative: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(relative)).ok()
    }
}

impl SourceTree for BTreeMap<String, String> {
    fn read(&self, relative: &str) -> Option<String> {
        self.get(relative).cloned()
    }
}

/// One disagreement between the requirement list, the map and the source tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A requirement of the TSV has no entry.
    Missing { id: String },
    /// The map has an entry for an id that is not in the TSV.
    UnknownId { id: String },
    /// The status is not one of the four.
    BadStatus { id: String, status: String },
    /// `not-applicable` without a reason.
    NoteRequired { id: String },
    /// `implemented` or `partial` without any test.
    TestsRequired { id: String, status: Status },
    /// A test reference that cannot be parsed.
    BadTestRef {
        id: String,
        test: String,
        reason: String,
    },
    /// The same test named twice by one entry.
    DuplicateTest { id: String, test: String },
    /// The file of a test reference does not exist.
    TestFileMissing { id: String, test: String },
    /// The file exists but has no `fn <name>`.
    TestFnMissing { id: String, test: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { id } => write!(f, "{id}: no entry in {CONFORMANCE_MAP}"),
            Problem::UnknownId { id } => {
                write!(f, "{id}: not a requirement id of {REQUIREMENTS_TSV}")
            }
            Problem::BadStatus { id, status } => write!(
                f,
                "{id}: unknown status {status:?} (expected one of implemented, partial, planned, not-applicable)"
            ),
            Problem::NoteRequired { id } => {
                write!(
                    f,
                    "{id}: not-applicable needs a non-empty note giving the reason"
                )
            }
            Problem::TestsRequired { id, status } => {
                write!(f, "{id}: status {status} needs at least one test")
            }
            Problem::BadTestRef { id, test, reason } => {
                write!(f, "{id}: bad test reference {test:?}: {reason}")
            }
            Problem::DuplicateTest { id, test } => write!(f, "{id}: test {test:?} named twice"),
            Problem::TestFileMissing { id, test } => {
                write!(f, "{id}: the file of test {test:?} does not exist")
            }
            Problem::TestFnMissing { id, test } => {
                write!(f, "{id}: test {test:?}: the file has no such `fn`")
            }
        }
    }
}

/// Checks the map against the requirement list and the source tree; an empty result means the
/// map is consistent.
pub fn check(
    requirements: &[Requirement],
    map: &ConformanceMap,
    tree: &dyn SourceTree,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let known: BTreeSet<&str> = requirements.iter().map(|r| r.id.as_str()).collect();
    for r in requirements {
        if !map.requirements.contains_key(&r.id) {
            problems.push(Problem::Missing { id: r.id.clone() });
        }
    }
    let mut files: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (id, entry) in &map.requirements {
        if !known.contains(id.as_str()) {
            problems.push(Problem::UnknownId { id: id.clone() });
        }
        let status = Status::parse(&entry.status);
        match status {
            None => problems.push(Problem::BadStatus {
                id: id.clone(),
                status: entry.status.clone(),
            }),
            Some(Status::NotApplicable)
                if entry.note.as_deref().is_none_or(|n| n.trim().is_empty()) =>
            {
                problems.push(Problem::NoteRequired { id: id.clone() });
            }
            Some(st) if st.needs_tests() && entry.tests.is_empty() => {
                problems.push(Problem::TestsRequired {
                    id: id.clone(),
                    status: st,
                });
            }
            Some(_) => {}
        }
        let mut seen = BTreeSet::new();
        for test in &entry.tests {
            if !seen.insert(test.as_str()) {
                problems.push(Problem::DuplicateTest {
                    id: id.clone(),
                    test: test.clone(),
                });
                continue;
            }
            let tref = match parse_test_ref(test) {
                Ok(t) => t,
                Err(reason) => {
                    problems.push(Problem::BadTestRef {
                        id: id.clone(),
                        test: test.clone(),
                        reason,
                    });
                    continue;
                }
            };
            let source = files
                .entry(tref.file.to_string())
                .or_insert_with(|| tree.read(tref.file));
            match source {
                None => problems.push(Problem::TestFileMissing {
                    id: id.clone(),
                    test: test.clone(),
                }),
                Some(src) if !defines_fn(src, tref.function) => {
                    problems.push(Problem::TestFnMissing {
                        id: id.clone(),
                        test: test.clone(),
                    });
                }
                Some(_) => {}
            }
        }
    }
    problems
}

/// How many entries have each status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub by_status: BTreeMap<Status, usize>,
    pub unknown_status: usize,
    pub tests: usize,
}

impl Summary {
    pub fn of(map: &ConformanceMap) -> Summary {
        let mut s = Summary::default();
        for entry in map.requirements.values() {
            match Status::parse(&entry.status) {
                Some(st) => *s.by_status.entry(st).or_insert(0) += 1,
                None => s.unknown_status += 1,
            }
            s.tests += entry.tests.len();
        }
        s
    }

    pub fn count(&self, status: Status) -> usize {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Status::ALL
            .iter()
            .map(|st| format!("{} {}", self.count(*st), st))
            .collect();
        write!(f, "{}; {} test references", parts.join(", "), self.tests)?;
        if self.unknown_status > 0 {
            write!(f, "; {} with an unknown status", self.unknown_status)?;
        }
        Ok(())
    }
}

/// The workspace root, given the manifest directory of a crate under `crates/`.
pub fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir.join("..").join("..")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const TSV: &str = "id\tclause\ttext\n\
        X1642-8.1.1-05\t8.1.1\tThe name of the identity account should be unique.\n\
        X1642-8.1.1-06\t8.1.1\tThe identity account should be locked.\n\
        X1642-3-01\t3\tA definition.\n";

    const MAP: &str = r#"
[requirements."X1642-8.1.1-05"]
status = "implemented"
tests = ["crates/iam/tests/names.rs::unique_names"]
note = "foundation: iam"

[requirements."X1642-8.1.1-06"]
status = "partial"
tests = ["crates/iam/src/lockout.rs::tests::locks_after_five_failures"]

[requirements."X1642-3-01"]
status = "not-applicable"
note = "a definition"
"#;

    fn tree() -> BTreeMap<String, String> {
        let mut t = BTreeMap::new();
        t.insert(
            "crates/iam/tests/names.rs".to_string(),
            "#[test]\nfn unique_names() {}\n".to_string(),
        );
        t.insert(
            "crates/iam/src/lockout.rs".to_string(),
            "mod tests {\n    #[tokio::test]\n    async fn  locks_after_five_failures() {}\n}\n"
                .to_string(),
        );
        t
    }

    fn run(tsv: &str, map: &str) -> Vec<Problem> {
        let reqs = parse_requirements(tsv).unwrap();
        let map = parse_map(map).unwrap();
        check(&reqs, &map, &tree())
    }

    #[test]
    fn consistent_map_passes() {
        assert_eq!(run(TSV, MAP), vec![]);
    }

    #[test]
    fn catches_missing_id() {
        let tsv = format!("{TSV}X1642-8.1.1-07\t8.1.1\tDisable dormant accounts.\n");
        assert_eq!(
            run(&tsv, MAP),
            vec![Problem::Missing {
                id: "X1642-8.1.1-07".into()
            }]
        );
    }

    #[test]
    fn catches_unknown_id() {
        let map = format!("{MAP}\n[requirements.\"X1642-9-01\"]\nstatus = \"planned\"\n");
        assert_eq!(
            run(TSV, &map),
            vec![Problem::UnknownId {
                id: "X1642-9-01".into()
            }]
        );
    }

    #[test]
    fn catches_unknown_status() {
        let map = MAP.replace("status = \"partial\"", "status = \"done\"");
        assert_eq!(
            run(TSV, &map),
            vec![Problem::BadStatus {
                id: "X1642-8.1.1-06".into(),
                status: "done".into()
            }]
        );
    }

    #[test]
    fn catches_not_applicable_without_note() {
        for note in ["", "note = \"  \""] {
            let map = MAP.replace("note = \"a definition\"", note);
            assert_eq!(
                run(TSV, &map),
                vec![Problem::NoteRequired {
                    id: "X1642-3-01".into()
                }]
            );
        }
    }

    #[test]
    fn catches_implemented_without_tests() {
        let map = MAP.replace(
            "tests = [\"crates/iam/tests/names.rs::unique_names\"]",
            "tests = []",
        );
        assert_eq!(
            run(TSV, &map),
            vec![Problem::TestsRequired {
                id: "X1642-8.1.1-05".into(),
                status: Status::Implemented
            }]
        );
    }

    #[test]
    fn catches_nonexistent_test_file() {
        let map = MAP.replace("tests/names.rs", "tests/no_such_file.rs");
        assert_eq!(
            run(TSV, &map),
            vec![Problem::TestFileMissing {
                id: "X1642-8.1.1-05".into(),
                test: "crates/iam/tests/no_such_file.rs::unique_names".into()
            }]
        );
    }

    #[test]
    fn catches_nonexistent_test_fn() {
        // A prefix of an existing name is not enough.
        let map = MAP.replace("::unique_names", "::unique_name");
        assert_eq!(
            run(TSV, &map),
            vec![Problem::TestFnMissing {
                id: "X1642-8.1.1-05".into(),
                test: "crates/iam/tests/names.rs::unique_name".into()
            }]
        );
    }

    #[test]
    fn catches_malformed_and_duplicate_test_refs() {
        let map = MAP.replace(
            "tests = [\"crates/iam/tests/names.rs::unique_names\"]",
            "tests = [\"crates/iam/tests/names.rs::unique_names\", \
             \"crates/iam/tests/names.rs::unique_names\", \"unique_names\", \
             \"crates/../secret.rs::x\", \"crates/iam/tests/names.rs::a-b\"]",
        );
        let problems = run(TSV, &map);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(matches!(
            problems.first(),
            Some(Problem::DuplicateTest { .. })
        ));
        assert!(
            problems
                .iter()
                .skip(1)
                .all(|p| matches!(p, Problem::BadTestRef { .. }))
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        let map = MAP.replace("note = \"foundation: iam\"", "notes = \"typo\"");
        assert!(parse_map(&map).is_err());
    }

    #[test]
    fn tsv_errors() {
        assert_eq!(parse_requirements(""), Err(ParseError::TsvEmpty));
        assert_eq!(
            parse_requirements("id\tclause\ttext\n"),
            Err(ParseError::TsvEmpty)
        );
        assert!(matches!(
            parse_requirements("a\tb\n"),
            Err(ParseError::TsvHeader { .. })
        ));
        assert!(matches!(
            parse_requirements("id\tclause\ttext\nX-1\t1\n"),
            Err(ParseError::TsvRow { line: 2, .. })
        ));
        assert!(matches!(
            parse_requirements("id\tclause\ttext\r\nX-1\t1\tt\r\nX-1\t1\tu\r\n"),
            Err(ParseError::TsvDuplicate { line: 3, .. })
        ));
    }

    #[test]
    fn fn_detection_is_by_whole_word() {
        assert!(defines_fn("fn a() {}", "a"));
        assert!(defines_fn(
            "pub async fn\n  login_works<T>() {}",
            "login_works"
        ));
        assert!(!defines_fn("fn ab() {}", "a"));
        assert!(!defines_fn("fn a() {}", "ab"));
        assert!(!defines_fn("let myfn a = 1;", "a"));
        assert!(!defines_fn("fn", "a"));
        assert!(!defines_fn("", "a"));
    }

    #[test]
    fn test_ref_takes_last_segment() {
        let t = parse_test_ref("crates/app/src/console.rs::tests::renders").unwrap();
        assert_eq!(t.file, "crates/app/src/console.rs");
        assert_eq!(t.function, "renders");
    }

    #[test]
    fn summary_counts() {
        let s = Summary::of(&parse_map(MAP).unwrap());
        assert_eq!(s.count(Status::Implemented), 1);
        assert_eq!(s.count(Status::Partial), 1);
        assert_eq!(s.count(Status::NotApplicable), 1);
        assert_eq!(s.tests, 2);
        assert_eq!(
            s.to_string(),
            "1 implemented, 1 partial, 0 planned, 1 not-applicable; 2 test references"
        );
    }
}
