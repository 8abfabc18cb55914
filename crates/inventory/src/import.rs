//! Bulk import of assets from CSV or JSON (an array, or one object a line).
//!
//! CSV: a header line naming the columns, of which `name` and `kind` are required; the others
//! are `os_name`, `os_version`, `applications` (`name=version` pairs separated by `;`),
//! `addresses` (separated by `;`), `location`, `owner`, `criticality` and `tags` (`key=value`
//! pairs separated by `;`). An unknown column is an error, not something silently dropped.

use std::collections::BTreeMap;

use parapet_store::Software;
use serde::Serialize;

use crate::AssetSpec;

/// Most rows one import may carry.
pub const MAX_ROWS: usize = 100_000;

/// A row that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line of the file (for a JSON array: the 1-based position of the item).
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Rows of an import, each with its line, or every row error found.
pub type Rows = Result<Vec<(usize, AssetSpec)>, Vec<RowError>>;

const COLUMNS: [&str; 10] = [
    "name",
    "kind",
    "os_name",
    "os_version",
    "applications",
    "addresses",
    "location",
    "owner",
    "criticality",
    "tags",
];

fn err(line: usize, message: impl Into<String>) -> RowError {
    RowError {
        line,
        message: message.into(),
    }
}

fn pairs(line: usize, column: &str, value: &str) -> Result<Vec<(String, String)>, RowError> {
    value
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.rsplit_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(err(
                line,
                format!("{column}: {p:?} is not a key=value pair (pairs are separated by ';')"),
            )),
        })
        .collect()
}

fn opt(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The 1-based line of byte `offset` of `data` (counting `\n`, so CRLF files number their lines
/// the same way).
fn line_at(data: &[u8], offset: u64) -> usize {
    let mut end = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    // After a CRLF the reader places the next record at the LF: step over line ends.
    while matches!(data.get(end), Some(b'\r' | b'\n')) {
        end += 1;
    }
    1 + data
        .get(..end)
        .map_or(0, |d| d.iter().filter(|b| **b == b'\n').count())
}

/// Parses a CSV import.
pub fn parse_csv(data: &[u8]) -> Rows {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::Headers)
        .from_reader(data);
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(vec![err(1, format!("cannot read the header line: {e}"))]),
    };
    let mut index = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.to_ascii_lowercase();
        if !COLUMNS.contains(&h.as_str()) {
            errors.push(err(
                1,
                format!(
                    "unknown column {h:?}; the columns are: {}",
                    COLUMNS.join(", ")
                ),
            ));
        } else if index.insert(h.clone(), i).is_some() {
            errors.push(err(1, format!("column {h:?} appears twice")));
        }
    }
    for required in ["name", "kind"] {
        if !index.contains_key(required) {
            errors.push(err(1, format!("the header has no {required:?} column")));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| line_at(data, p.byte()));
                errors.push(err(line, format!("malformed CSV: {e}")));
                if errors.len() >= 100 {
                    break;
                }
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_at(data, p.byte()));
        if rows.len() >= MAX_ROWS {
            errors.push(err(
                line,
                format!("an import holds at most {MAX_ROWS} rows"),
            ));
            break;
        }
        let get = |c: &str| {
            index
                .get(c)
                .and_then(|i| record.get(*i))
                .unwrap_or_default()
                .to_string()
        };
        let row = (|| -> Result<AssetSpec, RowError> {
            let os = match (opt(&get("os_name")), opt(&get("os_version"))) {
                (Some(name), version) => Some(Software {
                    name,
                    version: version.unwrap_or_default(),
                }),
                (None, Some(_)) => {
                    return Err(err(line, "os_version is given without os_name"));
                }
                (None, None) => None,
            };
            Ok(AssetSpec {
                name: get("name").trim().to_string(),
                kind: get("kind").trim().to_string(),
                os,
                applications: pairs(line, "applications", &get("applications"))?
                    .into_iter()
                    .map(|(name, version)| Software { name, version })
                    .collect(),
                addresses: get("addresses")
                    .split(';')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect(),
                location: opt(&get("location")),
                owner: opt(&get("owner")),
                criticality: opt(&get("criticality")),
                tags: pairs(line, "tags", &get("tags"))?.into_iter().collect(),
            })
        })();
        match row {
            Ok(spec) => rows.push((line, spec)),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// Parses a JSON import: an array of assets, or one asset object a line (JSON lines).
pub fn parse_json(data: &[u8]) -> Rows {
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) => return Err(vec![err(1, format!("the file is not UTF-8: {e}"))]),
    };
    if text.trim_start().starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| vec![err(e.line(), format!("invalid JSON: {e}"))])?;
        if items.len() > MAX_ROWS {
            return Err(vec![err(
                1,
                format!("an import holds at most {MAX_ROWS} rows"),
            )]);
        }
        let mut rows = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match serde_json::from_value::<AssetSpec>(item) {
                Ok(spec) => rows.push((i + 1, spec)),
                Err(e) => errors.push(err(i + 1, format!("item {}: {e}", i + 1))),
            }
        }
        return if errors.is_empty() {
            Ok(rows)
        } else {
            Err(errors)
        };
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        if rows.len() >= MAX_ROWS {
            errors.push(err(
                i + 1,
                format!("an import holds at most {MAX_ROWS} rows"),
            ));
            break;
        }
        match serde_json::from_str::<AssetSpec>(l) {
            Ok(spec) => rows.push((i + 1, spec)),
            Err(e) => {
                errors.push(err(i + 1, e.to_string()));
                if errors.len() >= 100 {
                    break;
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_with_quotes_lists_and_tags() {
        let data = b"name,kind,os_name,os_version,applications,addresses,tags,criticality\n\
web-1,vm,Ubuntu,22.04,\"nginx=1.24.0; openssl=3.0.13\",10.0.0.5;2001:db8::5,env=prod;team=web,high\n\
\"db, primary\",database,,,postgresql=15.6,,,\n";
        let rows = parse_csv(data).unwrap();
        assert_eq!(rows.len(), 2);
        let (line, web) = &rows[0];
        assert_eq!(*line, 2);
        assert_eq!(web.name, "web-1");
        assert_eq!(
            web.os,
            Some(Software {
                name: "Ubuntu".into(),
                version: "22.04".into()
            })
        );
        assert_eq!(web.applications.len(), 2);
        assert_eq!(web.applications[1].name, "openssl");
        assert_eq!(web.applications[1].version, "3.0.13");
        assert_eq!(web.addresses, vec!["10.0.0.5", "2001:db8::5"]);
        assert_eq!(web.tags.get("team").map(String::as_str), Some("web"));
        assert_eq!(web.criticality.as_deref(), Some("high"));
        let (line, db) = &rows[1];
        assert_eq!(*line, 3);
        assert_eq!(db.name, "db, primary");
        assert_eq!(db.os, None);
        assert_eq!(db.criticality, None);
    }

    #[test]
    fn csv_errors_name_the_line_and_the_column() {
        let e = parse_csv(b"name,kind,colour\nx,vm,red\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("unknown column \"colour\""), "{e:?}");
        let e = parse_csv(b"name,os_name\nx,linux\n").unwrap_err();
        assert!(e[0].message.contains("no \"kind\" column"), "{e:?}");
        let e = parse_csv(b"name,kind,tags\nok,vm,a=b\nbad,vm,novalue\n").unwrap_err();
        assert_eq!(e[0].line, 3, "{e:?}");
        assert!(e[0].message.contains("tags"));
        let e = parse_csv(b"name,kind\nok,vm\nshort\n").unwrap_err();
        assert_eq!(e[0].line, 3, "{e:?}");
        let e = parse_csv(b"name,kind,os_version\nx,vm,1.0\n").unwrap_err();
        assert!(e[0].message.contains("without os_name"));
    }

    #[test]
    fn json_array_and_lines() {
        let rows = parse_json(br#"[{"name":"a","kind":"vm"},{"name":"b","kind":"database","os":{"name":"Debian","version":"12"}}]"#).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].0, 2);
        assert_eq!(rows[1].1.os.as_ref().unwrap().version, "12");
        let rows =
            parse_json(b"{\"name\":\"a\",\"kind\":\"vm\"}\n\n{\"name\":\"b\",\"kind\":\"vm\"}\n")
                .unwrap();
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3]);
        let e = parse_json(b"{\"name\":\"a\",\"kind\":\"vm\"}\n{\"name\":\"b\",\"colour\":1}\n")
            .unwrap_err();
        assert_eq!(e[0].line, 2);
        assert!(e[0].message.contains("colour"), "{e:?}");
        let e = parse_json(b"[{\"name\":\"a\",\"kind\":\"vm\"},{\"kind\":\"vm\"}]").unwrap_err();
        assert_eq!(e[0].line, 2);
        assert!(e[0].message.contains("name"), "{e:?}");
        assert!(parse_json(b"[{").is_err());
    }
}

#[cfg(test)]
mod crlf_tests {
    use super::*;

    #[test]
    fn crlf_lines_are_counted_like_lf_lines() {
        let rows =
            parse_csv(b"name,kind\r\nok-1,vm\r\n\"two\r\nlines\",vm\r\nlast,vm\r\n").unwrap();
        let lines: Vec<usize> = rows.iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![2, 3, 5]);
    }
}
