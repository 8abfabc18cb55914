//! Loading Sigma rules from files and directories. Every problem is reported with the file, the
//! line and the reason; nothing is skipped silently.

use std::path::{Path, PathBuf};

use rsigma_parser::{CorrelationRule, FilterRule, SigmaRule, parse_sigma_yaml};

/// A rule that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    /// 1-based line of the document (or the offending key) the problem is in.
    pub line: u32,
    pub reason: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// Where a rule was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: u32,
}

/// The rules read from a set of files, with where each came from.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<(SigmaRule, Origin)>,
    pub correlations: Vec<(CorrelationRule, Origin)>,
    pub filters: Vec<(FilterRule, Origin)>,
    /// Files read (YAML files found under the directories).
    pub files: usize,
}

impl RuleSet {
    /// Reads every `.yml`/`.yaml` file under each path (directories searched recursively, in
    /// name order; a path may also be one file). Returns the rules and every problem found.
    pub fn load(paths: &[PathBuf]) -> (RuleSet, Vec<RuleError>) {
        let mut set = RuleSet::default();
        let mut errors = Vec::new();
        for path in paths {
            let mut files = Vec::new();
            if let Err(e) = collect_yaml(path, &mut files) {
                errors.push(e);
                continue;
            }
            for file in files {
                match std::fs::read_to_string(&file) {
                    Ok(text) => set.add_text(&file, &text, &mut errors),
                    Err(e) => errors.push(RuleError {
                        file: file.clone(),
                        line: 1,
                        reason: format!("cannot read the file: {e}"),
                    }),
                }
            }
        }
        (set, errors)
    }

    /// Adds the rules of one YAML text (one or more documents) read from `file`.
    pub fn add_text(&mut self, file: &Path, text: &str, errors: &mut Vec<RuleError>) {
        self.files += 1;
        let collection = match parse_sigma_yaml(text) {
            Ok(c) => c,
            Err(e) => {
                let reason = e.to_string();
                errors.push(RuleError {
                    file: file.to_path_buf(),
                    line: locate_error(text, &reason),
                    reason,
                });
                return;
            }
        };
        for reason in &collection.errors {
            errors.push(RuleError {
                file: file.to_path_buf(),
                line: locate_error(text, reason),
                reason: reason.clone(),
            });
        }
        if collection.rules.is_empty()
            && collection.correlations.is_empty()
            && collection.filters.is_empty()
            && collection.errors.is_empty()
        {
            errors.push(RuleError {
                file: file.to_path_buf(),
                line: 1,
                reason: "no Sigma rule in the file".into(),
            });
        }
        let origin = |id: Option<&str>, title: &str| Origin {
            file: file.to_path_buf(),
            line: locate_rule(text, id, title),
        };
        for rule in collection.rules {
            let o = origin(rule.id.as_deref(), &rule.title);
            self.rules.push((rule, o));
        }
        for corr in collection.correlations {
            let o = origin(corr.id.as_deref(), &corr.title);
            self.correlations.push((corr, o));
        }
        for filter in collection.filters {
            let o = origin(filter.id.as_deref(), &filter.title);
            self.filters.push((filter, o));
        }
    }
}

fn collect_yaml(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), RuleError> {
    let meta = std::fs::metadata(path).map_err(|e| RuleError {
        file: path.to_path_buf(),
        line: 0,
        reason: format!("cannot read: {e}"),
    })?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut stack = vec![path.to_path_buf()];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| RuleError {
            file: dir.clone(),
            line: 0,
            reason: format!("cannot read the directory: {e}"),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| RuleError {
                file: dir.clone(),
                line: 0,
                reason: format!("cannot read the directory: {e}"),
            })?;
            let p = entry.path();
            let kind = entry.file_type().map_err(|e| RuleError {
                file: p.clone(),
                line: 0,
                reason: format!("cannot read: {e}"),
            })?;
            if kind.is_dir() || (kind.is_symlink() && p.is_dir()) {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
            {
                found.push(p);
            }
        }
    }
    found.sort();
    out.extend(found);
    Ok(())
}

/// The 1-based line numbers where each YAML document of `text` starts.
fn document_starts(text: &str) -> Vec<(u32, usize)> {
    let mut starts = vec![(1u32, 0usize)];
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" && offset > 0 {
            let n = u32::try_from(i).unwrap_or(u32::MAX).saturating_add(2);
            starts.push((n, offset + line.len()));
        }
        offset += line.len();
    }
    starts
}

/// The line of a rule: where its `id:` (else its `title:`) is written.
fn locate_rule(text: &str, id: Option<&str>, title: &str) -> u32 {
    let find = |key: &str, value: &str| {
        text.lines().position(|l| {
            l.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|v| v.trim().trim_matches(['\'', '"']) == value)
        })
    };
    id.and_then(|id| find("id", id))
        .or_else(|| find("title", title))
        .map_or(1, |i| u32::try_from(i + 1).unwrap_or(u32::MAX))
}

/// The line a parse error is about: the YAML parser's own line when it gives one, else the
/// document that fails alone with the same message (and within it the `condition:` line for
/// condition errors), else the first line.
fn locate_error(text: &str, reason: &str) -> u32 {
    if let Some(line) = line_in_message(reason) {
        return line;
    }
    let starts = document_starts(text);
    let mut docs = Vec::new();
    for (k, (line, begin)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(text.len(), |(_, b)| *b);
        if let Some(doc) = text.get(*begin..end) {
            docs.push((*line, doc));
        }
    }
    for (line, doc) in &docs {
        let alone = parse_sigma_yaml(doc).map(|c| c.errors);
        let same = match alone {
            Ok(errs) => errs.iter().any(|e| same_reason(e, reason)),
            Err(e) => same_reason(&e.to_string(), reason),
        };
        if same {
            let within = line_in_message(reason)
                .map(|l| l.saturating_sub(1))
                .or_else(|| {
                    let key = if reason.to_ascii_lowercase().contains("condition") {
                        "condition:"
                    } else {
                        return None;
                    };
                    doc.lines()
                        .position(|l| l.trim_start().starts_with(key))
                        .and_then(|p| u32::try_from(p).ok())
                });
            return line.saturating_add(within.unwrap_or(0));
        }
    }
    1
}

fn same_reason(a: &str, b: &str) -> bool {
    a == b || strip_location(a) == strip_location(b)
}

fn strip_location(s: &str) -> &str {
    s.split(" at line ").next().unwrap_or(s)
}

/// `… at line N column M` (the YAML parser's format).
fn line_in_message(reason: &str) -> Option<u32> {
    let rest = reason.split(" at line ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn broken_rules_are_reported_with_line() {
        let text = "title: ok\nid: r1\nlogsource:\n  product: windows\ndetection:\n  sel:\n    a: 1\n  condition: sel\n---\ntitle: bad\nid: r2\nlogsource:\n  product: windows\ndetection:\n  sel:\n    a: 1\n  condition: sel and (\n";
        let mut set = RuleSet::default();
        let mut errors = Vec::new();
        set.add_text(Path::new("x.yml"), text, &mut errors);
        assert_eq!(set.rules.len() + errors.len(), 2, "{errors:?}");
        assert_eq!(set.rules[0].1.line, 2);
        // The second rule's condition is broken: compiled later, or reported here.
        if let Some(e) = errors.first() {
            assert!(e.line >= 10, "{e}");
        }
    }

    #[test]
    fn yaml_errors_carry_their_line() {
        let mut set = RuleSet::default();
        let mut errors = Vec::new();
        set.add_text(Path::new("y.yml"), "title: x\n  bad: [\n", &mut errors);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].line >= 1);
        assert!(errors[0].to_string().starts_with("y.yml:"));
    }
}
