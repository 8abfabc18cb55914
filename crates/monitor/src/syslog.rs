//! Syslog messages (RFC 5424 and RFC 3164, leniently, through `syslog_loose`) and Linux auditd
//! records (`type=… msg=audit(…): key=value …`) turned into event objects. Pure: the year of
//! RFC 3164 timestamps (which have none) comes from the caller's clock.

use serde_json::{Map, Value, json};

use parapet_types::Timestamp;

/// One received syslog line as an event object, and whether it was well formed (a malformed
/// line is kept whole as the message, never dropped).
pub fn parse_line(line: &str, peer: &str, now: Timestamp) -> (Value, bool) {
    let year = now.to_datetime().year();
    let line = line.trim_end_matches(['\r', '\n', '\0']);
    let parsed =
        syslog_loose::parse_message_with_year_exact(line, |_| year, syslog_loose::Variant::Either);
    let mut ev = Map::new();
    ev.insert("source".into(), json!("syslog"));
    ev.insert("peer".into(), json!(peer));
    let ok = match parsed {
        Ok(m) => {
            if let Some(ts) = m.timestamp {
                ev.insert("@timestamp".into(), json!(ts.to_rfc3339()));
            }
            ev.insert("host".into(), json!(m.hostname.unwrap_or(peer)));
            if let Some(s) = m.severity {
                ev.insert("severity".into(), json!(s.as_str()));
            }
            if let Some(f) = m.facility {
                ev.insert("facility".into(), json!(f.as_str()));
            }
            if let Some(a) = m.appname {
                ev.insert("app_name".into(), json!(a));
            }
            match m.procid {
                Some(syslog_loose::ProcId::PID(p)) => {
                    ev.insert("procid".into(), json!(p));
                }
                Some(syslog_loose::ProcId::Name(n)) => {
                    ev.insert("procid".into(), json!(n));
                }
                None => {}
            }
            if let Some(id) = m.msgid {
                ev.insert("msgid".into(), json!(id));
            }
            let mut sd = Map::new();
            for el in &m.structured_data {
                let params: Map<String, Value> = el
                    .params
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), json!(v)))
                    .collect();
                sd.insert(el.id.to_string(), Value::Object(params));
            }
            if !sd.is_empty() {
                ev.insert("structured_data".into(), Value::Object(sd));
            }
            ev.insert("message".into(), json!(m.msg));
            if let Some(audit) = auditd(m.msg) {
                ev.insert("audit".into(), audit);
            }
            true
        }
        Err(_) => {
            ev.insert("host".into(), json!(peer));
            ev.insert("message".into(), json!(line));
            false
        }
    };
    (Value::Object(ev), ok)
}

/// Parses a Linux audit record `type=T msg=audit(SECONDS.MS:SERIAL): key=value …` (values
/// quoted or bare) into `{"type": T, "time": …, "serial": …, key: value, …}`; `None` when the
/// text is not an audit record.
pub fn auditd(text: &str) -> Option<Value> {
    let text = text.trim();
    let start = text.find("type=")?;
    let text = text.get(start..)?;
    let mut out = Map::new();
    let mut rest = text;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let key = rest.get(..eq)?.trim().to_string();
        rest = rest.get(eq + 1..)?;
        let (value, next) = if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"')?;
            (r.get(..end)?.to_string(), r.get(end + 1..)?)
        } else if let Some(r) = rest.strip_prefix('\'') {
            let end = r.find('\'')?;
            (r.get(..end)?.to_string(), r.get(end + 1..)?)
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            (rest.get(..end)?.to_string(), rest.get(end..)?)
        };
        rest = next;
        if key.is_empty() || key.contains(' ') {
            return None;
        }
        if key == "msg" && value.starts_with("audit(") {
            let inner = value.trim_start_matches("audit(").trim_end_matches("):");
            let inner = inner.trim_end_matches(')');
            let (time, serial) = inner.split_once(':')?;
            out.insert("time".into(), json!(time));
            out.insert("serial".into(), json!(serial));
            rest = rest.trim_start().trim_start_matches(':');
            continue;
        }
        out.insert(key, json!(value));
    }
    out.contains_key("type").then_some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_780_000_000_000);

    #[test]
    fn rfc5424_and_3164() {
        let (v, ok) = parse_line(
            "<34>1 2026-03-01T10:00:00Z web-1 sshd 4242 ID47 [meta user=\"root\"] Failed password for root",
            "10.0.0.5",
            NOW,
        );
        assert!(ok);
        assert_eq!(v["host"], "web-1");
        assert_eq!(v["app_name"], "sshd");
        assert_eq!(v["severity"], "crit");
        assert_eq!(v["structured_data"]["meta"]["user"], "root");
        assert_eq!(v["message"], "Failed password for root");
        let (v, ok) = parse_line(
            "<13>Mar  1 10:00:00 db-1 cron[12]: job done",
            "10.0.0.6",
            NOW,
        );
        assert!(ok);
        assert_eq!(v["host"], "db-1");
        assert_eq!(v["app_name"], "cron");
        assert_eq!(v["message"], "job done");
        assert!(v["@timestamp"].as_str().unwrap().starts_with("2026-03-01"));
    }

    #[test]
    fn malformed_lines_are_kept_whole() {
        let (v, ok) = parse_line("\u{1}garbage without any header", "10.0.0.9", NOW);
        assert!(!ok);
        assert_eq!(v["host"], "10.0.0.9");
        assert!(v["message"].as_str().unwrap().contains("garbage"));
    }

    #[test]
    fn auditd_records_become_fields() {
        let a = auditd(
            "type=USER_LOGIN msg=audit(1700000000.123:456): pid=99 uid=0 auid=1000 \
             exe=\"/usr/sbin/sshd\" hostname=? addr=198.51.100.7 terminal=ssh res=failed",
        )
        .unwrap();
        assert_eq!(a["type"], "USER_LOGIN");
        assert_eq!(a["time"], "1700000000.123");
        assert_eq!(a["serial"], "456");
        assert_eq!(a["exe"], "/usr/sbin/sshd");
        assert_eq!(a["addr"], "198.51.100.7");
        assert_eq!(a["res"], "failed");
        assert!(auditd("no audit here").is_none());
    }
}
