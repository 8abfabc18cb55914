//! Human and JSON output: aligned tables, key/value lists, and times.

use std::io::Write;

use anyhow::Context;
use serde::Serialize;

/// Writes `text` to standard output. A closed pipe (`parapet tenant list | head -1`) is not an
/// error.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).context("cannot write to standard output"),
    }
}

/// Writes one line to standard error (notes that are not part of the result).
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut s = serde_json::to_string_pretty(value).context("cannot encode the output")?;
    s.push('\n');
    out(&s)
}

/// Makes a server-supplied string safe for a terminal: control characters (escape sequences,
/// new lines) are shown escaped.
pub fn clean(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        s.to_string()
    }
}

/// An aligned table: a header line, then one line per row; columns separated by two spaces, the
/// last one not padded. Cells are [`clean`]ed.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            let n = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(n),
                None => widths.push(n),
            }
        }
    }
    let mut s = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i < last {
                let w = widths.get(i).copied().unwrap_or(0);
                let pad = w.saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// Key/value lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    for (k, v) in pairs {
        let pad = width.saturating_sub(k.chars().count()) + 2;
        s.push_str(k);
        s.push(':');
        s.extend(std::iter::repeat_n(' ', pad.saturating_sub(1)));
        s.push_str(&clean(v));
        s.push('\n');
    }
    s
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC, to the second (`1970-01-01T00:00:00Z`).
pub fn rfc3339_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_escape() {
        let t = table(
            &["NAME", "KIND", "STATUS"],
            &[
                vec!["provider".into(), "provider".into(), "active".into()],
                vec!["acme".into(), "customer".into(), "suspended".into()],
                vec!["x\u{1b}[31m".into(), "".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME         KIND      STATUS\n\
             provider     provider  active\n\
             acme         customer  suspended\n\
             x\\u{1b}[31m\n"
        );
        assert_eq!(table(&["A", "B"], &[]), "A  B\n");
    }

    #[test]
    fn fields_align() {
        assert_eq!(
            fields(&[("name", "acme".into()), ("status", "active".into())]),
            "name:   acme\nstatus: active\n"
        );
    }

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_millis(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59Z");
    }
}
