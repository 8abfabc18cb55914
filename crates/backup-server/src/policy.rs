//! The backup policy document (X.1642 8.10(1), 7.2.2.2(7)) and its validation, and time windows.

use parapet_types::Timestamp;
use serde::{Deserialize, Serialize};

/// How many snapshots prune keeps (the same rules as `parapet backup prune --keep-…`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default)]
    pub last: u32,
    #[serde(default)]
    pub hourly: u32,
    #[serde(default)]
    pub daily: u32,
    #[serde(default)]
    pub weekly: u32,
    #[serde(default)]
    pub monthly: u32,
    #[serde(default)]
    pub yearly: u32,
}

impl Retention {
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }

    /// The `--keep-…` options of `parapet backup prune` that enforce it.
    pub fn prune_args(&self) -> String {
        [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("--keep-{k} {n}"))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

/// What a provider agrees with a tenant about backups of the tenant (policy `default`) or of one
/// of its services (any other name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Recovery point objective: the most data, in seconds of changes, that may be lost; the
    /// last good backup must never be older.
    pub rpo_secs: u64,
    /// Recovery time objective: how long a restore may take; restore tests measure it.
    pub rto_secs: u64,
    #[serde(default)]
    pub retention: Retention,
    /// How many copies of each backup exist (on-site and off-site together).
    #[serde(default = "one")]
    pub copies: u32,
    /// A copy on-site (a local repository) is required.
    #[serde(default = "yes")]
    pub onsite: bool,
    /// A copy off-site (an S3-compatible repository) is required.
    #[serde(default)]
    pub offsite: bool,
    /// Backups must be encrypted (Parapet repositories always are).
    #[serde(default = "yes")]
    pub encryption: bool,
    /// Back up every this many seconds (0: as often as the RPO needs, i.e. every RPO).
    #[serde(default)]
    pub schedule_secs: u64,
    /// Backups run only inside this daily window (UTC), `HH:MM-HH:MM`, so that they do not
    /// disturb the tenant; it may span midnight.
    #[serde(default)]
    pub window: Option<String>,
    /// A restore test is due every this many seconds (0: none required).
    #[serde(default)]
    pub restore_test_secs: u64,
    /// What is backed up (X.1642 8.10-13): `file` (file trees), `vm-image` (virtual machines'
    /// disk images, copied into the repository) and/or `vm-snapshot` (the hypervisor's own
    /// snapshots, which are no backup: X.1642 8.10-20). Policies stored before levels existed
    /// back up files.
    #[serde(default = "file_level")]
    pub levels: Vec<String>,
}

/// The backup levels a policy may combine.
pub const LEVELS: &[&str] = &["file", "vm-image", "vm-snapshot"];

fn file_level() -> Vec<String> {
    vec!["file".into()]
}

const MAX_SECS: u64 = 400 * 24 * 3600;

/// Checks a policy name: `default` or 1 to 64 of `a-z0-9._-` (a service name).
pub fn valid_name(name: &str) -> Result<String, String> {
    let n = name.trim().to_ascii_lowercase();
    if n.is_empty()
        || n.len() > 64
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "invalid policy name {name:?}: use 'default' (the whole tenant) or a service name of 1 \
             to 64 letters, digits and '._-'"
        ));
    }
    Ok(n)
}

impl PolicySpec {
    /// Refuses terms that cannot be met or make no sense, saying why.
    pub fn validate(&self) -> Result<(), String> {
        if !(60..=MAX_SECS).contains(&self.rpo_secs) {
            return Err("the RPO must be between 60 seconds and 400 days".into());
        }
        if !(60..=MAX_SECS).contains(&self.rto_secs) {
            return Err("the RTO must be between 60 seconds and 400 days".into());
        }
        if self.schedule_secs > self.rpo_secs {
            return Err(format!(
                "backups every {} s cannot meet an RPO of {} s: the schedule must be at most the RPO",
                self.schedule_secs, self.rpo_secs
            ));
        }
        if self.schedule_secs != 0 && self.schedule_secs < 60 {
            return Err("the schedule must be at least 60 seconds".into());
        }
        if !self.onsite && !self.offsite {
            return Err("a policy needs an on-site or an off-site copy (or both)".into());
        }
        let sites = u32::from(self.onsite) + u32::from(self.offsite);
        if !(1..=10).contains(&self.copies) {
            return Err("the number of copies must be between 1 and 10".into());
        }
        if self.copies < sites {
            return Err(format!(
                "{sites} sites are required, so at least {sites} copies are needed"
            ));
        }
        if self.retention.is_empty() {
            return Err(
                "the retention keeps nothing: give at least one of last, hourly, daily, weekly, \
                 monthly, yearly"
                    .into(),
            );
        }
        if self.restore_test_secs != 0 && !(3600..=MAX_SECS).contains(&self.restore_test_secs) {
            return Err("restore tests must be due every 1 hour to 400 days (or 0: none)".into());
        }
        if self.levels.is_empty() {
            return Err(format!(
                "a policy needs at least one backup level: {}",
                LEVELS.join(", ")
            ));
        }
        for (i, l) in self.levels.iter().enumerate() {
            if !LEVELS.contains(&l.as_str()) {
                return Err(format!(
                    "unknown backup level {l:?}; expected {}",
                    LEVELS.join(", ")
                ));
            }
            if self
                .levels
                .get(..i)
                .is_some_and(|before| before.contains(l))
            {
                return Err(format!("the backup level {l} is given twice"));
            }
        }
        if let Some(w) = &self.window {
            let w = Window::parse(w)?;
            // Backups every RPO must fit: a window shorter than a day with an RPO shorter than
            // the time outside the window cannot be met.
            let outside = (24 * 60 - w.minutes()) * 60;
            if u64::from(outside) >= self.rpo_secs {
                return Err(format!(
                    "the window {w} leaves {} h without backups, longer than the RPO of {} s",
                    outside / 3600,
                    self.rpo_secs
                ));
            }
        }
        Ok(())
    }

    /// Whether the policy backs up at `level` (`file`, `vm-image`, `vm-snapshot`).
    pub fn has_level(&self, level: &str) -> bool {
        self.levels.iter().any(|l| l == level)
    }

    /// Terms that can be met but are unwise, each a sentence for the provider and the tenant
    /// (X.1642 8.10-20: VM snapshots are not backups and should not be frequent).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.has_level("vm-snapshot") && !self.has_level("file") && !self.has_level("vm-image") {
            out.push(
                "VM snapshots only: a snapshot is not a backup (X.1642 8.10-20); it stays on the \
                 storage of the machine it protects, and a chain of differential snapshots is \
                 lost with its first one. Add file-level or VM-image backups."
                    .to_string(),
            );
        }
        if self.has_level("vm-snapshot") && self.interval_secs() < 86_400 {
            out.push(format!(
                "VM snapshots every {} h: frequent snapshots multiply data and degrade the \
                 performance of the platform (X.1642 8.10-21); take them at most daily and keep \
                 the chains short.",
                self.interval_secs() / 3600
            ));
        }
        out
    }

    /// The interval between scheduled backups.
    pub fn interval_secs(&self) -> u64 {
        if self.schedule_secs == 0 {
            self.rpo_secs
        } else {
            self.schedule_secs
        }
    }
}

/// A daily time window in UTC, `HH:MM-HH:MM`; the end is excluded; it may span midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: u32,
    end: u32,
}

fn minute_of(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    if h == 24 && m == 0 {
        return Some(24 * 60);
    }
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Window {
    pub fn parse(s: &str) -> Result<Window, String> {
        let bad =
            || format!("invalid time window {s:?}: expected HH:MM-HH:MM (UTC), e.g. 01:00-05:00");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let start = minute_of(a).ok_or_else(bad)?;
        let end = minute_of(b).ok_or_else(bad)?;
        if start == end || start >= 24 * 60 {
            return Err(bad());
        }
        Ok(Window { start, end })
    }

    /// How many minutes a day the window is open.
    pub fn minutes(&self) -> u32 {
        if self.start < self.end {
            self.end - self.start
        } else {
            24 * 60 - self.start + self.end
        }
    }

    fn minute_of_day(t: Timestamp) -> u32 {
        let ms = t.0.rem_euclid(86_400_000);
        u32::try_from(ms / 60_000).unwrap_or(0)
    }

    /// Whether `t` is inside the window.
    pub fn contains(&self, t: Timestamp) -> bool {
        let m = Self::minute_of_day(t);
        if self.start < self.end {
            (self.start..self.end).contains(&m)
        } else {
            m >= self.start || m < self.end
        }
    }

    /// Milliseconds from `t` until the window opens (0 inside it).
    pub fn wait_ms(&self, t: Timestamp) -> i64 {
        if self.contains(t) {
            return 0;
        }
        let day_ms = t.0.rem_euclid(86_400_000);
        let start_ms = i64::from(self.start) * 60_000;
        let wait = start_ms - day_ms;
        if wait > 0 { wait } else { wait + 86_400_000 }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// A repository location without secrets: user info, query and fragment removed.
pub fn redact_repository(repo: &str) -> String {
    let repo = repo.trim();
    let cut = repo.split(['?', '#']).next().unwrap_or("");
    match cut.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = authority.rsplit('@').next().unwrap_or("");
            format!("{scheme}://{host}{path}")
        }
        None => cut.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PolicySpec {
        PolicySpec {
            rpo_secs: 86_400,
            rto_secs: 3600,
            retention: Retention {
                daily: 7,
                ..Retention::default()
            },
            copies: 2,
            onsite: true,
            offsite: true,
            encryption: true,
            schedule_secs: 0,
            window: Some("01:00-05:00".into()),
            restore_test_secs: 7 * 86_400,
            levels: vec!["file".into(), "vm-image".into()],
        }
    }

    #[test]
    fn windows_contain_their_hours_and_span_midnight() {
        let w = Window::parse("01:00-05:00").unwrap();
        let at = |h: i64, m: i64| Timestamp(86_400_000 * 100 + h * 3_600_000 + m * 60_000);
        assert!(w.contains(at(1, 0)));
        assert!(w.contains(at(4, 59)));
        assert!(!w.contains(at(5, 0)));
        assert!(!w.contains(at(0, 59)));
        assert_eq!(w.wait_ms(at(0, 30)), 30 * 60_000);
        assert_eq!(w.wait_ms(at(6, 0)), 19 * 3_600_000);
        let n = Window::parse("22:30-02:00").unwrap();
        assert!(n.contains(at(23, 0)) && n.contains(at(1, 59)) && !n.contains(at(2, 0)));
        assert_eq!(n.minutes(), 210);
        assert_eq!(n.to_string(), "22:30-02:00");
        for bad in [
            "",
            "1:00-2:00",
            "25:00-01:00",
            "01:00-01:00",
            "01:00",
            "aa:bb-cc:dd",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policies_that_cannot_be_met_are_refused() {
        assert_eq!(spec().validate(), Ok(()));
        let bad = [
            PolicySpec {
                rpo_secs: 10,
                ..spec()
            },
            PolicySpec {
                schedule_secs: 2 * 86_400,
                ..spec()
            },
            PolicySpec {
                copies: 1,
                ..spec()
            },
            PolicySpec {
                onsite: false,
                offsite: false,
                ..spec()
            },
            PolicySpec {
                retention: Retention::default(),
                ..spec()
            },
            PolicySpec {
                rpo_secs: 3600,
                ..spec()
            },
            PolicySpec {
                window: Some("5-6".into()),
                ..spec()
            },
            PolicySpec {
                restore_test_secs: 60,
                ..spec()
            },
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
        for levels in [vec![], vec!["tape"], vec!["file", "file"]] {
            let b = PolicySpec {
                levels: levels.iter().map(|l| l.to_string()).collect(),
                ..spec()
            };
            assert!(b.validate().is_err(), "{levels:?}");
        }
        assert!(valid_name("web-shop").is_ok());
        assert!(valid_name("a b").is_err());
        assert_eq!(spec().retention.prune_args(), "--keep-daily 7");
    }

    #[test]
    fn repository_secrets_are_removed() {
        assert_eq!(
            redact_repository("s3://KEY:SECRET@bucket/prefix?token=abc"),
            "s3://bucket/prefix"
        );
        assert_eq!(redact_repository("/srv/backup#x"), "/srv/backup");
        assert_eq!(
            redact_repository("https://u:p@h:9000/b"),
            "https://h:9000/b"
        );
    }

    #[test]
    fn vm_snapshot_only_and_frequent_snapshots_are_warned_about() {
        assert!(spec().warnings().is_empty());
        let only = PolicySpec {
            levels: vec!["vm-snapshot".into()],
            ..spec()
        };
        assert_eq!(only.validate(), Ok(()));
        let w = only.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("not a backup"));
        let frequent = PolicySpec {
            levels: vec!["file".into(), "vm-snapshot".into()],
            rpo_secs: 6 * 3600,
            window: None,
            ..spec()
        };
        let w = frequent.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("every 6 h"));
        // Stored policies without levels back up files.
        let old: PolicySpec = serde_json::from_value(serde_json::json!({
            "rpo_secs": 86400, "rto_secs": 3600, "retention": {"daily": 7}
        }))
        .unwrap();
        assert_eq!(old.levels, ["file"]);
    }
}
