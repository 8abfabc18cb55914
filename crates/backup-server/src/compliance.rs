//! Whether a tenant's backups meet its policy (X.1642 8.10, 7.2.2.2(7)): pure evaluation of a
//! policy against its reports at a given time.

use parapet_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::policy::PolicySpec;

/// What a report says (the stored body of a report row, plus the row's columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub id: String,
    pub policy: String,
    /// `backup`, `copy`, `verify` or `restore-test`.
    pub kind: String,
    pub ok: bool,
    /// `on-site` or `off-site`.
    pub site: String,
    /// When the server received it.
    pub at: Timestamp,
    pub snapshot: Option<String>,
    /// The repository, without secrets.
    pub repository: String,
    pub bytes_added: u64,
    pub total_bytes: u64,
    pub files: u64,
    pub duration_ms: u64,
    /// The operator key id that signed the snapshot.
    pub signer: Option<String>,
    pub encrypted: bool,
    pub error: Option<String>,
    /// Who reported it.
    pub reporter: String,
}

/// A term of the policy not met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// `rpo-exceeded`, `offsite-missing`, `onsite-missing`, `copies-missing`,
    /// `restore-test-overdue`, `restore-test-failed`, `rto-exceeded`, `unencrypted`.
    pub kind: String,
    pub detail: String,
}

fn age(now: Timestamp, t: Timestamp) -> String {
    let s = (now.0 - t.0).max(0) / 1000;
    if s >= 86_400 {
        format!("{:.1} days", s as f64 / 86_400.0)
    } else {
        format!("{:.1} h", s as f64 / 3600.0)
    }
}

/// The findings of `spec` (in force since `since`) given its `reports` (any order) at `now`.
/// A term is given its own period of grace from `since` before a missing report counts.
pub fn evaluate(
    spec: &PolicySpec,
    since: Timestamp,
    reports: &[Report],
    now: Timestamp,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let newest = |f: &dyn Fn(&Report) -> bool| -> Option<&Report> {
        reports.iter().filter(|r| f(r)).max_by_key(|r| r.at.0)
    };
    let rpo_ms = i64::try_from(spec.rpo_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let late = |t: Option<Timestamp>, limit_ms: i64| match t {
        Some(t) => now.0 - t.0 > limit_ms,
        None => now.0 - since.0 > limit_ms,
    };
    let last_backup = newest(&|r| r.kind == "backup" && r.ok).map(|r| r.at);
    if late(last_backup, rpo_ms) {
        out.push(Finding {
            kind: "rpo-exceeded".into(),
            detail: match last_backup {
                Some(t) => format!(
                    "the last good backup is {} old, more than the RPO of {} s",
                    age(now, t),
                    spec.rpo_secs
                ),
                None => format!("no good backup within the RPO of {} s", spec.rpo_secs),
            },
        });
    }
    for (required, site, kind) in [
        (spec.offsite, "off-site", "offsite-missing"),
        (spec.onsite, "on-site", "onsite-missing"),
    ] {
        if !required {
            continue;
        }
        let last = newest(&|r| (r.kind == "backup" || r.kind == "copy") && r.ok && r.site == site)
            .map(|r| r.at);
        if late(last, rpo_ms) {
            out.push(Finding {
                kind: kind.into(),
                detail: match last {
                    Some(t) => format!(
                        "the last {site} copy is {} old, more than the RPO",
                        age(now, t)
                    ),
                    None => format!("no {site} copy within the RPO of {} s", spec.rpo_secs),
                },
            });
        }
    }
    // The number of copies: distinct repositories holding a good backup or copy within the RPO
    // (only once there is one at all: none at all is already the RPO's finding).
    let mut fresh: Vec<&str> = reports
        .iter()
        .filter(|r| (r.kind == "backup" || r.kind == "copy") && r.ok && now.0 - r.at.0 <= rpo_ms)
        .map(|r| r.repository.as_str())
        .collect();
    fresh.sort_unstable();
    fresh.dedup();
    if !fresh.is_empty() && fresh.len() < usize::try_from(spec.copies).unwrap_or(usize::MAX) {
        out.push(Finding {
            kind: "copies-missing".into(),
            detail: format!(
                "{} of the {} copies required hold a backup within the RPO",
                fresh.len(),
                spec.copies
            ),
        });
    }
    if spec.encryption
        && let Some(r) = newest(&|r| r.kind == "backup" && r.ok)
        && !r.encrypted
    {
        out.push(Finding {
            kind: "unencrypted".into(),
            detail: format!("the last backup ({}) is not encrypted", r.id),
        });
    }
    if spec.restore_test_secs > 0 {
        let every_ms =
            i64::try_from(spec.restore_test_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let last_test = newest(&|r| r.kind == "restore-test");
        let last_good = newest(&|r| r.kind == "restore-test" && r.ok).map(|r| r.at);
        if late(last_good, every_ms) {
            out.push(Finding {
                kind: "restore-test-overdue".into(),
                detail: match last_good {
                    Some(t) => format!("the last successful restore test is {} old", age(now, t)),
                    None => "no successful restore test yet".into(),
                },
            });
        }
        if let Some(t) = last_test {
            if !t.ok {
                out.push(Finding {
                    kind: "restore-test-failed".into(),
                    detail: format!(
                        "the last restore test failed: {}",
                        t.error.as_deref().unwrap_or("no reason given")
                    ),
                });
            } else if t.duration_ms > spec.rto_secs.saturating_mul(1000) {
                out.push(Finding {
                    kind: "rto-exceeded".into(),
                    detail: format!(
                        "the last restore test took {:.1} s, more than the RTO of {} s",
                        t.duration_ms as f64 / 1000.0,
                        spec.rto_secs
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Retention;

    fn spec() -> PolicySpec {
        PolicySpec {
            rpo_secs: 3600 * 24,
            rto_secs: 600,
            retention: Retention {
                last: 3,
                ..Retention::default()
            },
            copies: 2,
            onsite: true,
            offsite: true,
            encryption: true,
            schedule_secs: 0,
            window: None,
            restore_test_secs: 7 * 86_400,
            levels: vec!["file".into()],
        }
    }

    fn report(kind: &str, ok: bool, site: &str, at_h: i64, duration_ms: u64) -> Report {
        Report {
            id: format!("{kind}-{at_h}"),
            policy: "default".into(),
            kind: kind.into(),
            ok,
            site: site.into(),
            at: Timestamp(at_h * 3_600_000),
            snapshot: None,
            repository: "/r".into(),
            bytes_added: 0,
            total_bytes: 0,
            files: 0,
            duration_ms,
            signer: None,
            encrypted: true,
            error: None,
            reporter: "t".into(),
        }
    }

    fn kinds(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.kind.as_str()).collect()
    }

    #[test]
    fn each_term_raises_its_finding_and_clears() {
        let s = spec();
        let h = |n: i64| Timestamp(n * 3_600_000);
        // Within the grace period nothing is due.
        assert!(evaluate(&s, h(0), &[], h(23)).is_empty());
        assert_eq!(
            kinds(&evaluate(&s, h(0), &[], h(25))),
            ["rpo-exceeded", "offsite-missing", "onsite-missing"]
        );
        let mut r = vec![report("backup", true, "on-site", 30, 1000)];
        assert_eq!(
            kinds(&evaluate(&s, h(0), &r, h(31))),
            ["offsite-missing", "copies-missing"]
        );
        let mut copy = report("copy", true, "off-site", 31, 1000);
        copy.repository = "s3://b/p".into();
        r.push(copy);
        assert!(evaluate(&s, h(0), &r, h(32)).is_empty());
        // A day later the RPO is exceeded again, for both sites.
        assert_eq!(
            kinds(&evaluate(&s, h(0), &r, h(56))),
            ["rpo-exceeded", "offsite-missing", "onsite-missing"]
        );
        // Restore tests: overdue after a week without one, failed, slower than the RTO.
        let mut off = report("backup", true, "off-site", 200, 1000);
        off.repository = "s3://b/p".into();
        r.push(off);
        r.push(report("backup", true, "on-site", 200, 1000));
        assert_eq!(
            kinds(&evaluate(&s, h(0), &r, h(201))),
            ["restore-test-overdue"]
        );
        r.push(report("restore-test", false, "on-site", 200, 1000));
        assert_eq!(
            kinds(&evaluate(&s, h(0), &r, h(201))),
            ["restore-test-overdue", "restore-test-failed"]
        );
        r.push(report("restore-test", true, "on-site", 201, 700_000));
        assert_eq!(kinds(&evaluate(&s, h(0), &r, h(202))), ["rto-exceeded"]);
        r.push(report("restore-test", true, "on-site", 202, 5_000));
        assert!(evaluate(&s, h(0), &r, h(203)).is_empty());
        // Failed backups do not count as good ones.
        r.push(report("backup", false, "on-site", 220, 1000));
        assert!(evaluate(&s, h(0), &r, h(221)).is_empty());
        let mut plain = report("backup", true, "on-site", 222, 1);
        plain.encrypted = false;
        r.push(plain);
        assert_eq!(kinds(&evaluate(&s, h(0), &r, h(223))), ["unencrypted"]);
    }
}
