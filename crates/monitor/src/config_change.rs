//! Configuration changes (X.1642 8.3(2) "abnormal modifications of the configurations of
//! network equipment and virtual machines"): recognizes change records of network devices
//! (Cisco IOS `%SYS-5-CONFIG_I`, Juniper `UI_COMMIT`), hosts (auditd `PATH` records of writes
//! under `/etc`) and hypervisors (libvirt `Defined` lifecycle events), and marks them against
//! the asset's change policy — its tags `maintenance_window` (`HH:MM-HH:MM`, UTC, may span
//! midnight) and `change_accounts` (the accounts that normally change it, comma-separated) — so
//! that the built-in Sigma rules (`rules/parapet_config_change*.yml`) can tell a change outside
//! the window or by an unusual account. Pure.

use serde_json::{Value, json};

use parapet_types::Timestamp;

/// The asset tag of its daily maintenance window.
pub const WINDOW_TAG: &str = "maintenance_window";
/// The asset tag of the accounts that normally change it.
pub const ACCOUNTS_TAG: &str = "change_accounts";

/// A recognized configuration change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `network-device`, `host` or `vm`.
    pub kind: &'static str,
    /// The account that made it, when the record says.
    pub user: Option<String>,
}

/// An asset's change policy, from its tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangePolicy {
    /// Minutes after midnight UTC: `[start, end)`, spanning midnight when start > end.
    pub window: Option<(u32, u32)>,
    /// Lower-cased.
    pub accounts: Option<Vec<String>>,
}

fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl ChangePolicy {
    /// From an asset's tags; `None` when it sets neither tag (or they do not parse).
    pub fn from_tags(tags: &std::collections::BTreeMap<String, String>) -> Option<Self> {
        let window = tags.get(WINDOW_TAG).and_then(|w| {
            let (a, b) = w.split_once('-')?;
            Some((minutes(a)?, minutes(b)?))
        });
        let accounts = tags.get(ACCOUNTS_TAG).map(|a| {
            a.split(',')
                .map(|x| x.trim().to_lowercase())
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
        });
        (window.is_some() || accounts.is_some()).then_some(ChangePolicy { window, accounts })
    }

    /// Whether `t` is inside the window (true when there is none).
    pub fn in_window(&self, t: Timestamp) -> bool {
        let Some((start, end)) = self.window else {
            return true;
        };
        let m = u32::try_from(t.0.div_euclid(60_000).rem_euclid(1440)).unwrap_or(0);
        if start <= end {
            (start..end).contains(&m)
        } else {
            m >= start || m < end
        }
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The word after `marker` in `s` (up to a space, comma or quote).
fn word_after(s: &str, marker: &str) -> Option<String> {
    let rest = s.get(s.find(marker)? + marker.len()..)?;
    let w: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',' && *c != '\'' && *c != '"')
        .collect();
    (!w.is_empty()).then_some(w)
}

/// Recognizes a configuration change in an event.
pub fn classify(ev: &Value) -> Option<Change> {
    let msg = text(ev, "message").unwrap_or("");
    if msg.contains("%SYS-5-CONFIG_I") {
        return Some(Change {
            kind: "network-device",
            user: word_after(msg, " by "),
        });
    }
    if msg.contains("UI_COMMIT") {
        return Some(Change {
            kind: "network-device",
            user: word_after(msg, "User '"),
        });
    }
    if msg.contains("event 'lifecycle' for domain") && msg.contains("Defined") {
        return Some(Change {
            kind: "vm",
            user: None,
        });
    }
    if let Some(a) = ev.get("audit")
        && text(a, "type") == Some("PATH")
        && text(a, "name").is_some_and(|n| n.starts_with("/etc/"))
        && matches!(
            text(a, "nametype"),
            Some("NORMAL" | "CREATE" | "DELETE" | "PARENT")
        )
    {
        return Some(Change {
            kind: "host",
            user: None,
        });
    }
    None
}

/// Adds `config_change`, `config_user`, `outside_maintenance_window` and `unusual_account` to
/// a change event (the last two only when the asset's policy says).
pub fn mark(ev: &mut Value, policy: Option<&ChangePolicy>, time: Timestamp) {
    let Some(change) = classify(ev) else { return };
    let Value::Object(map) = ev else { return };
    map.insert("config_change".into(), json!(change.kind));
    if let Some(u) = &change.user {
        map.insert("config_user".into(), json!(u));
    }
    let Some(p) = policy else { return };
    if p.window.is_some() {
        map.insert(
            "outside_maintenance_window".into(),
            json!(!p.in_window(time)),
        );
    }
    if let (Some(accounts), Some(u)) = (&p.accounts, &change.user) {
        map.insert(
            "unusual_account".into(),
            json!(!accounts.contains(&u.to_lowercase())),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn recognizes_cisco_juniper_auditd_and_libvirt_changes() {
        let cisco = json!({"message": "%SYS-5-CONFIG_I: Configured from console by netadmin on vty0 (10.0.0.9)"});
        assert_eq!(
            classify(&cisco),
            Some(Change {
                kind: "network-device",
                user: Some("netadmin".into())
            })
        );
        let juniper = json!({"message": "UI_COMMIT: User 'jdoe' requested 'commit' operation (comment: none)"});
        assert_eq!(classify(&juniper).unwrap().user.as_deref(), Some("jdoe"));
        let path = json!({"audit": {"type": "PATH", "name": "/etc/ssh/sshd_config", "nametype": "NORMAL"}});
        assert_eq!(classify(&path).unwrap().kind, "host");
        let tmp = json!({"audit": {"type": "PATH", "name": "/tmp/x", "nametype": "NORMAL"}});
        assert_eq!(classify(&tmp), None);
        let virt = json!({"message": "event 'lifecycle' for domain 'web-1': Defined Updated"});
        assert_eq!(classify(&virt).unwrap().kind, "vm");
        assert_eq!(classify(&json!({"message": "link up"})), None);
    }

    #[test]
    fn windows_span_midnight_and_accounts_are_compared_without_case() {
        let tags = [
            (WINDOW_TAG.to_string(), "22:00-02:00".to_string()),
            (ACCOUNTS_TAG.to_string(), "NetAdmin, ops".to_string()),
        ]
        .into();
        let p = ChangePolicy::from_tags(&tags).unwrap();
        assert!(p.in_window(Timestamp(23 * H)) && p.in_window(Timestamp(H)));
        assert!(!p.in_window(Timestamp(12 * H)) && !p.in_window(Timestamp(2 * H)));
        let mut ev =
            json!({"message": "%SYS-5-CONFIG_I: Configured from console by netadmin on vty0"});
        mark(&mut ev, Some(&p), Timestamp(12 * H));
        assert_eq!(ev["config_change"], "network-device");
        assert_eq!(ev["outside_maintenance_window"], true);
        assert_eq!(ev["unusual_account"], false);
        let mut ev =
            json!({"message": "%SYS-5-CONFIG_I: Configured from console by mallory on vty0"});
        mark(&mut ev, Some(&p), Timestamp(23 * H));
        assert_eq!(ev["outside_maintenance_window"], false);
        assert_eq!(ev["unusual_account"], true);
        assert!(ChangePolicy::from_tags(&Default::default()).is_none());
    }
}
