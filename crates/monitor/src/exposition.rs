//! The Prometheus text exposition format (version 0.0.4), parsed by hand: `# HELP` / `# TYPE`
//! comments, `name{label="value",…} value [timestamp]` lines, label values with `\\`, `\"` and
//! `\n` escapes, `NaN`, `+Inf`, `-Inf`. Non-finite values are dropped (they cannot be charted or
//! compared); a malformed line is counted and skipped, never fatal to the rest.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// The canonical label text `a="1",b="x"` (sorted by name, values escaped).
    pub fn label_text(&self) -> String {
        label_text(&self.labels)
    }
}

/// The canonical text of a label set.
pub fn label_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What a page held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub samples: Vec<Sample>,
    /// Lines that were not valid samples (their 1-based numbers, at most 20 kept).
    pub bad_lines: Vec<usize>,
    pub bad: usize,
    /// Samples with a non-finite value (skipped).
    pub non_finite: usize,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses an exposition page.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(Some(s)) => out.samples.push(s),
            Some(None) => out.non_finite += 1,
            None => {
                out.bad += 1;
                if out.bad_lines.len() < 20 {
                    out.bad_lines.push(i + 1);
                }
            }
        }
    }
    out
}

/// `None`: malformed; `Some(None)`: a valid line with a non-finite value.
fn parse_line(line: &str) -> Option<Option<Sample>> {
    let mut chars = line.char_indices().peekable();
    let (_, first) = chars.next()?;
    if !is_name_start(first) {
        return None;
    }
    let mut end = line.len();
    for (i, c) in chars.by_ref() {
        if !is_name_char(c) {
            end = i;
            break;
        }
    }
    let name = line.get(..end)?.to_string();
    let mut rest = line.get(end..)?;
    let mut labels = BTreeMap::new();
    if rest.starts_with('{') {
        rest = parse_labels(rest.get(1..)?, &mut labels)?;
    }
    let mut parts = rest.split_whitespace();
    let value = parse_value(parts.next()?)?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    if !value.is_finite() {
        return Some(None);
    }
    Some(Some(Sample {
        name,
        labels,
        value,
    }))
}

/// Reads `name="value",…}` and returns what follows the closing brace.
fn parse_labels<'a>(mut s: &'a str, labels: &mut BTreeMap<String, String>) -> Option<&'a str> {
    loop {
        s = s.trim_start();
        if let Some(r) = s.strip_prefix('}') {
            return Some(r);
        }
        let eq = s.find('=')?;
        let key = s.get(..eq)?.trim();
        let mut kc = key.chars();
        if !kc
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            || !kc.all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return None;
        }
        s = s.get(eq + 1..)?.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut it = s.char_indices();
        let close = loop {
            let (i, c) = it.next()?;
            match c {
                '"' => break i,
                '\\' => match it.next()?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                },
                c => value.push(c),
            }
        };
        labels.insert(key.to_string(), value);
        s = s.get(close + 1..)?.trim_start();
        if let Some(r) = s.strip_prefix(',') {
            s = r;
        } else if !s.starts_with('}') {
            return None;
        }
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn reads_names_labels_escapes_and_special_values() {
        let page = "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.25\n\
            node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12345.5\n\
            weird{path=\"C:\\\\x\",msg=\"say \\\"hi\\\"\\n\",} 1e3 1700000000000\n\
            nan_metric NaN\ninf_metric{a=\"b\"} +Inf\n\
            bad line here\n{no=\"name\"} 1\nunterminated{a=\"b} 1\nnovalue{a=\"b\"}\n";
        let p = parse(page);
        assert_eq!(p.samples.len(), 3, "{p:?}");
        assert_eq!(p.samples[0].name, "node_load1");
        assert_eq!(p.samples[0].value, 0.25);
        assert_eq!(
            p.samples[1].label_text(),
            "cpu=\"0\",mode=\"idle\"",
            "sorted canonical labels"
        );
        assert_eq!(p.samples[2].labels["path"], "C:\\x");
        assert_eq!(p.samples[2].labels["msg"], "say \"hi\"\n");
        assert_eq!(p.samples[2].value, 1000.0);
        assert_eq!(p.non_finite, 2);
        assert_eq!(p.bad, 4, "{p:?}");
        assert_eq!(p.bad_lines, vec![8, 9, 10, 11]);
    }
}
