//! Retention: which snapshots a `--keep-…` policy keeps (the same rules as restic's `forget`:
//! for each period, the newest snapshot of each of the last N periods that have one).

use std::collections::BTreeMap;

use time::OffsetDateTime;

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeepPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    /// Keep everything younger than this many seconds (relative to `now`).
    pub within_secs: u64,
}

impl KeepPolicy {
    pub fn is_empty(&self) -> bool {
        *self == KeepPolicy::default()
    }
}

/// Given `(id, time_ms)` of snapshots, returns id → the reasons it is kept; ids absent are to
/// be removed.
pub fn select_keep(
    snaps: &[(String, i64)],
    policy: &KeepPolicy,
    now_ms: i64,
) -> BTreeMap<String, Vec<String>> {
    let mut sorted: Vec<&(String, i64)> = snaps.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let mut keep: BTreeMap<String, Vec<String>> = BTreeMap::new();
    type Bucket = fn(OffsetDateTime) -> i64;
    let rules: [(&str, u32, Bucket); 6] = [
        ("last", policy.last, |_| 0),
        ("hourly", policy.hourly, |t| {
            i64::from(t.year()) * 1_000_000 + i64::from(t.ordinal()) * 100 + i64::from(t.hour())
        }),
        ("daily", policy.daily, |t| {
            i64::from(t.year()) * 1000 + i64::from(t.ordinal())
        }),
        ("weekly", policy.weekly, |t| {
            let (y, w, _) = t.to_iso_week_date();
            i64::from(y) * 100 + i64::from(w)
        }),
        ("monthly", policy.monthly, |t| {
            i64::from(t.year()) * 100 + i64::from(t.month() as u8)
        }),
        ("yearly", policy.yearly, |t| i64::from(t.year())),
    ];
    for (name, count, bucket) in rules {
        if count == 0 {
            continue;
        }
        let mut last: Option<i64> = None;
        let mut n = 0;
        for (i, (id, ms)) in sorted.iter().enumerate() {
            if n >= count {
                break;
            }
            let t = parapet_types::Timestamp(*ms).to_datetime();
            // "last" keeps every snapshot: give each its own bucket.
            let b = if name == "last" { i as i64 } else { bucket(t) };
            if last != Some(b) {
                keep.entry(id.clone()).or_default().push(name.to_string());
                last = Some(b);
                n += 1;
            }
        }
    }
    if policy.within_secs > 0 {
        let limit = now_ms.saturating_sub(
            i64::try_from(policy.within_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        );
        for (id, ms) in &sorted {
            if *ms >= limit {
                keep.entry(id.clone()).or_default().push("within".into());
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: i64, h: i64) -> i64 {
        // 2026-01-01T00:00:00Z is 1767225600.
        (1_767_225_600 + d * 86_400 + h * 3_600) * 1000
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let snaps: Vec<(String, i64)> = (0..10)
            .flat_map(|d| [(format!("{d}a"), day(d, 1)), (format!("{d}b"), day(d, 5))])
            .collect();
        let k = select_keep(
            &snaps,
            &KeepPolicy {
                daily: 3,
                ..Default::default()
            },
            day(10, 0),
        );
        let ids: Vec<&String> = k.keys().collect();
        assert_eq!(ids, ["7b", "8b", "9b"]);
    }

    #[test]
    fn last_and_monthly_combine() {
        let snaps: Vec<(String, i64)> = (0..90).map(|d| (format!("{d:02}"), day(d, 0))).collect();
        let k = select_keep(
            &snaps,
            &KeepPolicy {
                last: 2,
                monthly: 3,
                ..Default::default()
            },
            day(90, 0),
        );
        // Newest two, plus the newest of March (day 89), February (day 58) and January (day 30).
        let ids: Vec<&String> = k.keys().collect();
        assert_eq!(ids, ["30", "58", "88", "89"]);
        assert_eq!(k.get("89").map(Vec::len), Some(2));
    }

    #[test]
    fn within_keeps_recent() {
        let snaps: Vec<(String, i64)> = (0..5).map(|d| (format!("{d}"), day(d, 0))).collect();
        let k = select_keep(
            &snaps,
            &KeepPolicy {
                within_secs: 2 * 86_400,
                ..Default::default()
            },
            day(4, 12),
        );
        let ids: Vec<&String> = k.keys().collect();
        assert_eq!(ids, ["3", "4"]);
    }
}
