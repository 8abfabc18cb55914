//! Parsing of an ingestion body (a JSON array or JSON lines) and normalization of each event to
//! the common fields: time, host, source, severity, message. Pure: no I/O, no clock.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use parapet_types::Timestamp;

/// The largest event, as JSON text.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// The most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Why a body was refused; `line` is 1-based (for a JSON array, the element's position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEvent {
    pub line: usize,
    pub message: String,
    /// Whether the event was refused for its size (HTTP 413) rather than its content.
    pub too_large: bool,
}

/// One parsed event and where it was in the body.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub line: usize,
    pub value: Value,
    /// Its JSON text.
    pub raw: String,
}

fn bad(line: usize, message: impl Into<String>) -> BadEvent {
    BadEvent {
        line,
        message: message.into(),
        too_large: false,
    }
}

fn check(line: usize, value: Value) -> Result<Parsed, BadEvent> {
    if !value.is_object() {
        return Err(bad(line, "an event must be a JSON object"));
    }
    let raw = serde_json::to_string(&value).map_err(|e| bad(line, e.to_string()))?;
    if raw.len() > MAX_EVENT_BYTES {
        return Err(BadEvent {
            line,
            message: format!(
                "the event is {} bytes, more than the limit of {MAX_EVENT_BYTES}",
                raw.len()
            ),
            too_large: true,
        });
    }
    Ok(Parsed { line, value, raw })
}

fn too_many() -> BadEvent {
    BadEvent {
        line: MAX_BATCH_EVENTS + 1,
        message: format!("a batch holds at most {MAX_BATCH_EVENTS} events"),
        too_large: true,
    }
}

/// Parses a body: a JSON array of objects, or one JSON object a line (blank lines skipped).
/// The first bad event stops the parse, so nothing of a bad batch is stored.
pub fn parse_body(body: &[u8]) -> Result<Vec<Parsed>, BadEvent> {
    let text =
        std::str::from_utf8(body).map_err(|e| bad(line_of(body, e.valid_up_to()), "not UTF-8"))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(text).map_err(|e| {
            bad(
                e.line(),
                format!(
                    "invalid JSON at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        if values.len() > MAX_BATCH_EVENTS {
            return Err(too_many());
        }
        return values
            .into_iter()
            .enumerate()
            .map(|(i, v)| check(i + 1, v))
            .collect();
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_EVENT_BYTES * 2 {
            return Err(BadEvent {
                line: i + 1,
                message: format!(
                    "the line is {} bytes, more than the event limit",
                    line.len()
                ),
                too_large: true,
            });
        }
        if out.len() >= MAX_BATCH_EVENTS {
            return Err(too_many());
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| bad(i + 1, format!("invalid JSON at column {}: {e}", e.column())))?;
        out.push(check(i + 1, v)?);
    }
    if out.is_empty() {
        return Err(bad(1, "the batch holds no event"));
    }
    Ok(out)
}

fn line_of(body: &[u8], at: usize) -> usize {
    body.get(..at)
        .map_or(1, |b| b.iter().filter(|c| **c == b'\n').count() + 1)
}

/// The normalized fields of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub time: Option<Timestamp>,
    pub host: Option<String>,
    pub source: Option<String>,
    pub severity: String,
    pub message: Option<String>,
    /// Addresses the event names for its host (to attribute it to an asset).
    pub addresses: Vec<String>,
}

/// The value at a dotted path (`a.b.c`), or at the literal key when it contains dots.
pub fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(path) {
        return Some(x);
    }
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// A scalar as text (strings as they are, numbers and booleans in JSON form).
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn first_text(v: &Value, paths: &[&str]) -> Option<String> {
    paths
        .iter()
        .filter_map(|p| field(v, p).and_then(scalar))
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// Parses a timestamp: RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` (taken as UTC), or seconds or
/// milliseconds since the epoch.
pub fn parse_time(v: &Value) -> Option<Timestamp> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64()?;
            if !f.is_finite() || f < 0.0 {
                return None;
            }
            // Below 10^11 it is seconds (until the year 5138), else milliseconds.
            let ms = if f < 1e11 { f * 1000.0 } else { f };
            if ms > 1e15 {
                return None;
            }
            #[allow(clippy::cast_possible_truncation)]
            Some(Timestamp(ms as i64))
        }
        Value::String(s) => {
            let s = s.trim();
            if let Ok(dt) = OffsetDateTime::parse(s, &Rfc3339) {
                return Some(Timestamp::from_datetime(dt));
            }
            if s.len() >= 19 && s.is_char_boundary(10) && s.get(10..11) == Some(" ") {
                let mut fixed = String::with_capacity(s.len() + 1);
                fixed.push_str(s.get(..10)?);
                fixed.push('T');
                fixed.push_str(s.get(11..)?);
                if !fixed.ends_with('Z') && !fixed.get(19..).is_some_and(|r| r.contains(['+', '-']))
                {
                    fixed.push('Z');
                }
                if let Ok(dt) = OffsetDateTime::parse(&fixed, &Rfc3339) {
                    return Some(Timestamp::from_datetime(dt));
                }
            }
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return s
                    .parse::<f64>()
                    .ok()
                    .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                    .and_then(|n| parse_time(&n));
            }
            None
        }
        _ => None,
    }
}

/// Maps a severity word or a syslog severity number (0 emergency … 7 debug) to Parapet's levels.
pub fn severity_of(v: &Value) -> Option<&'static str> {
    let text = match v {
        Value::Number(n) => {
            return match n.as_u64()? {
                0..=2 => Some("critical"),
                3 => Some("high"),
                4 => Some("medium"),
                5 => Some("low"),
                6 | 7 => Some("informational"),
                _ => None,
            };
        }
        Value::String(s) => s.trim().to_ascii_lowercase(),
        _ => return None,
    };
    Some(match text.as_str() {
        "critical" | "crit" | "emerg" | "emergency" | "alert" | "fatal" | "panic" => "critical",
        "high" | "err" | "error" | "severe" => "high",
        "medium" | "warning" | "warn" | "moderate" => "medium",
        "low" | "notice" | "minor" => "low",
        "informational" | "info" | "information" | "debug" | "trace" | "verbose" => "informational",
        n if n.parse::<u64>().is_ok() => {
            return severity_of(&Value::Number(n.parse::<u64>().ok()?.into()));
        }
        _ => return None,
    })
}

/// The common fields of an event, from the names the usual shippers use (ECS, syslog-style,
/// Windows `evtx_dump` JSON).
pub fn normalize(v: &Value) -> Normalized {
    let time = [
        "@timestamp",
        "timestamp",
        "time",
        "ts",
        "Event.System.TimeCreated_attributes.SystemTime",
        "Event.System.TimeCreated.#attributes.SystemTime",
    ]
    .iter()
    .find_map(|p| field(v, p).and_then(parse_time));
    let host = first_text(
        v,
        &[
            "host.name",
            "host.hostname",
            "host",
            "hostname",
            "Computer",
            "Event.System.Computer",
        ],
    );
    let source = first_text(
        v,
        &[
            "source",
            "log_source",
            "event.module",
            "logsource.product",
            "app_name",
            "program",
            "Channel",
            "Event.System.Channel",
        ],
    );
    let severity = ["severity", "level", "log.level", "event.severity"]
        .iter()
        .find_map(|p| field(v, p).and_then(severity_of))
        .unwrap_or("informational")
        .to_string();
    let message = first_text(v, &["message", "msg", "event.original"]).map(|m| {
        if m.len() > 4096 {
            let mut end = 4096;
            while !m.is_char_boundary(end) {
                end -= 1;
            }
            m.get(..end).unwrap_or_default().to_string()
        } else {
            m
        }
    });
    let mut addresses = Vec::new();
    for p in ["host.ip", "ip", "host_ip", "address", "peer"] {
        match field(v, p) {
            Some(Value::Array(items)) => {
                addresses.extend(items.iter().filter_map(scalar));
            }
            Some(x) => addresses.extend(scalar(x)),
            None => {}
        }
    }
    Normalized {
        time,
        host,
        source,
        severity,
        message,
        addresses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ndjson_and_arrays_name_the_bad_line() {
        let ok = parse_body(b"{\"a\":1}\n\n{\"b\":2}\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].line, 3);
        let e = parse_body(b"{\"a\":1}\n{\"b\":\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_body(b"{\"a\":1}\n[1]\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("object"));
        let e = parse_body(b"[{\"a\":1}, 5]").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_body(b"[{\"a\":1},\n{\"b\" 2}]").unwrap_err();
        assert_eq!(e.line, 2);
        let big = format!("{{\"m\":\"{}\"}}", "x".repeat(MAX_EVENT_BYTES));
        let e = parse_body(format!("{{}}\n{big}\n").as_bytes()).unwrap_err();
        assert!(e.too_large);
        assert_eq!(e.line, 2);
        assert!(parse_body(b"\n \n").is_err());
        let many = "{}\n".repeat(MAX_BATCH_EVENTS + 1);
        assert!(parse_body(many.as_bytes()).unwrap_err().too_large);
    }

    #[test]
    fn common_fields_from_usual_names() {
        let n = normalize(&json!({
            "@timestamp": "2026-01-02T03:04:05.5Z",
            "host": {"name": "web-1", "ip": ["10.0.0.5"]},
            "event": {"module": "sshd"},
            "log": {"level": "warning"},
            "message": "Failed password for root"
        }));
        assert_eq!(n.time, Some(Timestamp(1_767_323_045_500)));
        assert_eq!(n.host.as_deref(), Some("web-1"));
        assert_eq!(n.source.as_deref(), Some("sshd"));
        assert_eq!(n.severity, "medium");
        assert_eq!(n.addresses, vec!["10.0.0.5"]);
        let n = normalize(&json!({"time": 1_767_323_045, "hostname": "db", "severity": 3}));
        assert_eq!(n.time, Some(Timestamp(1_767_323_045_000)));
        assert_eq!(n.severity, "high");
        let n = normalize(&json!({"timestamp": "2026-01-02 03:04:05", "level": "bogus"}));
        assert_eq!(n.time, Some(Timestamp(1_767_323_045_000)));
        assert_eq!(n.severity, "informational");
        let n = normalize(&json!({"Event": {"System": {"Computer": "DC1",
            "Channel": "Security", "TimeCreated_attributes": {"SystemTime": "2019-03-19T23:34:25.847283Z"}}}}));
        assert_eq!(n.host.as_deref(), Some("DC1"));
        assert_eq!(n.source.as_deref(), Some("Security"));
        assert!(n.time.is_some());
        assert_eq!(normalize(&json!({"time": "yesterday"})).time, None);
    }
}
