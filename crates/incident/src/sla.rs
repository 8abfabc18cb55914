//! SLA timers of an incident (X.1642 7.2.2.3): time to acceptance (acknowledgement), to
//! notification of the tenant and to resolution, per severity; pausable while waiting for the
//! tenant; a breach escalates along a PagerDuty-style policy (levels with a delay and the people
//! to page, repeated a number of times) until the timer is met. Pure: the caller passes the time.

use std::collections::BTreeMap;

pub use parapet_notify::Hours;
use parapet_types::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::model::{Change, Incident, Refused, Severity};

/// The three timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlaTimer {
    Acknowledge,
    Notify,
    Resolve,
}

impl SlaTimer {
    pub const ALL: [SlaTimer; 3] = [SlaTimer::Acknowledge, SlaTimer::Notify, SlaTimer::Resolve];
    pub fn as_str(self) -> &'static str {
        match self {
            SlaTimer::Acknowledge => "acknowledge",
            SlaTimer::Notify => "notify",
            SlaTimer::Resolve => "resolve",
        }
    }
}

/// Targets of one severity, in seconds of SLA time (paused time does not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTargets {
    pub acknowledge_secs: i64,
    pub notify_secs: i64,
    pub resolve_secs: i64,
}

impl SlaTargets {
    pub fn secs(&self, t: SlaTimer) -> i64 {
        match t {
            SlaTimer::Acknowledge => self.acknowledge_secs,
            SlaTimer::Notify => self.notify_secs,
            SlaTimer::Resolve => self.resolve_secs,
        }
    }
}

/// One level of an escalation policy: who is paged, and how long to wait before the next level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationLevel {
    pub notify: Vec<String>,
    pub delay_secs: i64,
}

/// Levels paged in turn after a breach, repeated `repeat` more times after the last level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationPolicy {
    pub levels: Vec<EscalationLevel>,
    pub repeat: u32,
}

impl EscalationPolicy {
    /// Checks the policy: at most 10 levels and 10 repeats, delays of at least a minute.
    pub fn validate(&self) -> Result<(), Refused> {
        if self.levels.len() > 10 || self.repeat > 10 {
            return Err(Refused::Invalid(
                "an escalation policy has at most 10 levels and 10 repeats".into(),
            ));
        }
        for l in &self.levels {
            if l.delay_secs < 60 {
                return Err(Refused::Invalid(
                    "escalation delays are at least 60 seconds".into(),
                ));
            }
            if l.notify.is_empty() {
                return Err(Refused::Invalid(
                    "every escalation level pages at least one person".into(),
                ));
            }
        }
        Ok(())
    }
}

/// An SLA scheme (the provider's default, or a tenant's own): targets per severity, the
/// escalation policy, the service hours the timers count in, and which alerts open incidents
/// by themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicy {
    pub targets: BTreeMap<Severity, SlaTargets>,
    pub escalation: EscalationPolicy,
    /// `7x24`: timers count every hour; `5x8`: only Monday to Friday, 09:00 to 17:00 UTC.
    #[serde(default)]
    pub hours: Hours,
    /// Monitoring alerts of at least this severity open an incident by themselves.
    #[serde(default)]
    pub auto_open: Option<Severity>,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        let t = |a: i64, n: i64, r: i64| SlaTargets {
            acknowledge_secs: a * 60,
            notify_secs: n * 60,
            resolve_secs: r * 60,
        };
        SlaPolicy {
            targets: BTreeMap::from([
                (Severity::Critical, t(15, 60, 4 * 60)),
                (Severity::High, t(60, 4 * 60, 24 * 60)),
                (Severity::Medium, t(4 * 60, 24 * 60, 72 * 60)),
                (Severity::Low, t(24 * 60, 72 * 60, 7 * 24 * 60)),
            ]),
            escalation: EscalationPolicy {
                levels: vec![EscalationLevel {
                    notify: vec!["admin".into()],
                    delay_secs: 15 * 60,
                }],
                repeat: 2,
            },
            hours: Hours::AllHours,
            auto_open: None,
        }
    }
}

impl SlaPolicy {
    pub fn targets_for(&self, s: Severity) -> SlaTargets {
        self.targets.get(&s).copied().unwrap_or(SlaTargets {
            acknowledge_secs: 3600,
            notify_secs: 4 * 3600,
            resolve_secs: 24 * 3600,
        })
    }

    /// Checks the policy: a target for every severity, each from one minute to a year, the
    /// acknowledgement due no later than the resolution, and a valid escalation policy.
    pub fn validate(&self) -> Result<(), Refused> {
        for s in Severity::ALL {
            let Some(t) = self.targets.get(&s) else {
                return Err(Refused::Invalid(format!("no targets for severity {s}")));
            };
            for timer in SlaTimer::ALL {
                let v = t.secs(timer);
                if !(60..=366 * 86_400).contains(&v) {
                    return Err(Refused::Invalid(format!(
                        "the {} target of severity {s} must be from 1 minute to 1 year",
                        timer.as_str()
                    )));
                }
            }
            if t.acknowledge_secs > t.resolve_secs {
                return Err(Refused::Invalid(format!(
                    "severity {s}: acknowledgement cannot be due after resolution"
                )));
            }
        }
        self.escalation.validate()
    }

    /// The state a new incident of severity `s` starts with.
    pub fn start(&self, s: Severity) -> SlaState {
        SlaState {
            targets: self.targets_for(s),
            hours: self.hours,
            escalation: self.escalation.clone(),
            paused_since: None,
            paused_ms: 0,
            breaches: Vec::new(),
        }
    }
}

/// A breached timer and where its escalation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    pub timer: SlaTimer,
    pub due_at: Timestamp,
    /// The next level to page and its round, with when (None: escalation finished).
    pub next_level: u32,
    pub round: u32,
    pub next_at: Option<Timestamp>,
}

/// An incident's SLA clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaState {
    pub targets: SlaTargets,
    /// The service hours the timers count in (`7x24` for incidents stored before there were
    /// any).
    #[serde(default)]
    pub hours: Hours,
    pub escalation: EscalationPolicy,
    pub paused_since: Option<Timestamp>,
    /// Total time paused so far (ms).
    pub paused_ms: i64,
    pub breaches: Vec<Breach>,
}

impl SlaState {
    /// Ends a pause at `at`; returns its length and moves pending escalations by it.
    pub(crate) fn resume(&mut self, at: Timestamp) -> i64 {
        let Some(since) = self.paused_since.take() else {
            return 0;
        };
        let d = (at.0 - since.0).max(0);
        // The pause moves the deadlines by the service time it took.
        self.paused_ms = self
            .paused_ms
            .saturating_add(service_elapsed(self.hours, since, at));
        for b in &mut self.breaches {
            if let Some(n) = b.next_at.as_mut() {
                n.0 = n.0.saturating_add(d);
            }
        }
        d
    }
}

/// Something a timer did, for the caller's notifications and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub tenant: TenantId,
    pub incident: uuid::Uuid,
    pub timer: SlaTimer,
    /// When it was due.
    pub due_at: Timestamp,
    /// `None` for the breach itself, else the escalation level (0-based) and round.
    pub escalation: Option<(u32, u32)>,
    pub notify: Vec<String>,
}

impl Incident {
    /// When timer `t` falls due, if it is running (not met, not breached, clock not paused).
    pub fn deadline(&self, t: SlaTimer) -> Option<Timestamp> {
        if self.timer_met(t).is_some()
            || !self.is_open()
            || self.sla.paused_since.is_some()
            || self.sla.breaches.iter().any(|b| b.timer == t)
        {
            return None;
        }
        let start = self
            .detected_at
            .unwrap_or(self.opened_at)
            .min(self.opened_at);
        Some(service_add(
            self.sla.hours,
            start,
            self.sla
                .targets
                .secs(t)
                .saturating_mul(1000)
                .saturating_add(self.sla.paused_ms),
        ))
    }

    /// The next moment a timer or an escalation is due, if any.
    pub fn next_due(&self) -> Option<Timestamp> {
        if !self.is_open() || self.sla.paused_since.is_some() {
            return None;
        }
        let deadlines = SlaTimer::ALL.into_iter().filter_map(|t| self.deadline(t));
        let escalations = self
            .sla
            .breaches
            .iter()
            .filter(|b| self.timer_met(b.timer).is_none())
            .filter_map(|b| b.next_at);
        deadlines.chain(escalations).min()
    }

    /// Fires every timer and escalation due at or before `now`, recording each in the history
    /// (actor `system`). Returns what fired, in order of due time.
    pub fn fire(&mut self, now: Timestamp) -> Vec<Fired> {
        let mut fired = Vec::new();
        // Bounded: each escalation step moves forward by at least a minute, and a policy has at
        // most 10 levels × 11 rounds per timer.
        for _ in 0..400 {
            let Some(due) = self.next_due().filter(|d| *d <= now) else {
                break;
            };
            if let Some(t) = SlaTimer::ALL
                .into_iter()
                .find(|t| self.deadline(*t) == Some(due))
            {
                self.sla.breaches.push(Breach {
                    timer: t,
                    due_at: due,
                    next_level: 0,
                    round: 0,
                    next_at: (!self.sla.escalation.levels.is_empty()).then_some(due),
                });
                self.push(
                    now,
                    "system",
                    None,
                    Change::SlaBreached {
                        timer: t,
                        due_at: due,
                    },
                );
                metrics::counter!("parapet_incident_sla_breaches_total", "timer" => t.as_str())
                    .increment(1);
                fired.push(Fired {
                    tenant: self.tenant,
                    incident: self.id,
                    timer: t,
                    due_at: due,
                    escalation: None,
                    notify: Vec::new(),
                });
                continue;
            }
            let levels = self.sla.escalation.levels.clone();
            let repeat = self.sla.escalation.repeat;
            let met: Vec<SlaTimer> = SlaTimer::ALL
                .into_iter()
                .filter(|t| self.timer_met(*t).is_some())
                .collect();
            let Some(b) = self
                .sla
                .breaches
                .iter_mut()
                .find(|b| b.next_at == Some(due) && !met.contains(&b.timer))
            else {
                break;
            };
            let (level, round, timer) = (b.next_level, b.round, b.timer);
            let Some(l) = levels.get(level as usize) else {
                b.next_at = None;
                continue;
            };
            let next = due.plus_secs(l.delay_secs.max(60));
            if (level as usize) + 1 < levels.len() {
                b.next_level = level + 1;
                b.next_at = Some(next);
            } else if round < repeat {
                b.next_level = 0;
                b.round = round + 1;
                b.next_at = Some(next);
            } else {
                b.next_at = None;
            }
            self.push(
                now,
                "system",
                None,
                Change::Escalated {
                    timer,
                    level,
                    round,
                    notify: l.notify.clone(),
                    due_at: due,
                },
            );
            fired.push(Fired {
                tenant: self.tenant,
                incident: self.id,
                timer,
                due_at: due,
                escalation: Some((level, round)),
                notify: l.notify.clone(),
            });
        }
        fired
    }
}

const DAY_MS: i64 = 86_400_000;
const OPEN_MS: i64 = 9 * 3_600_000;
const CLOSE_MS: i64 = 17 * 3_600_000;

/// The service window (start, end) of `day` (days since the epoch), if it has one (5×8:
/// Monday to Friday, 09:00 to 17:00 UTC, as [`Hours::in_service`]).
fn window(day: i64) -> Option<(i64, i64)> {
    // 1970-01-01 was a Thursday: 0 = Monday.
    let weekday = (day + 3).rem_euclid(7);
    (weekday < 5).then(|| {
        let base = day.saturating_mul(DAY_MS);
        (base.saturating_add(OPEN_MS), base.saturating_add(CLOSE_MS))
    })
}

/// The moment `ms` of service time after `start` (a 5×8 clock stops outside its hours).
pub fn service_add(hours: Hours, start: Timestamp, ms: i64) -> Timestamp {
    let ms = ms.max(0);
    match hours {
        Hours::AllHours => Timestamp(start.0.saturating_add(ms)),
        Hours::OfficeHours => {
            let mut left = ms;
            let mut cur = start.0;
            let mut day = cur.div_euclid(DAY_MS);
            // Whole weeks first (40 service hours each), then day by day: at most ~7 turns.
            let week = 5 * (CLOSE_MS - OPEN_MS);
            let weeks = left / week;
            if weeks > 1 {
                let skip = weeks - 1;
                left -= skip * week;
                day = day.saturating_add(skip * 7);
                cur = cur.saturating_add(skip * 7 * DAY_MS);
            }
            for _ in 0..64 {
                if let Some((open, close)) = window(day) {
                    let from = cur.max(open);
                    if from < close {
                        let avail = close - from;
                        if left <= avail {
                            return Timestamp(from + left);
                        }
                        left -= avail;
                    }
                }
                day += 1;
                cur = day.saturating_mul(DAY_MS);
            }
            Timestamp(cur.saturating_add(left))
        }
    }
}

/// Service time (ms) between `from` and `to`.
pub fn service_elapsed(hours: Hours, from: Timestamp, to: Timestamp) -> i64 {
    if to.0 <= from.0 {
        return 0;
    }
    match hours {
        Hours::AllHours => to.0 - from.0,
        Hours::OfficeHours => {
            let (first, last) = (from.0.div_euclid(DAY_MS), to.0.div_euclid(DAY_MS));
            let span = last - first;
            let week = 5 * (CLOSE_MS - OPEN_MS);
            // Whole weeks in the middle count 40 hours each.
            let (mid_weeks, tail_start) = if span > 14 {
                let w = (span - 7) / 7;
                (w, first + 7 + w * 7)
            } else {
                (0, first + 7)
            };
            let overlap = |day: i64| match window(day) {
                Some((open, close)) => (close.min(to.0) - open.max(from.0)).max(0),
                None => 0,
            };
            let mut total = mid_weeks.saturating_mul(week);
            for d in first..(first + 7).min(last + 1) {
                total += overlap(d);
            }
            for d in tail_start.max(first + 7)..=last {
                total += overlap(d);
            }
            total
        }
    }
}

/// The times of one incident that the statistics need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub tenant: TenantId,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub breaches: u32,
}

/// Incidents, MTTA and MTTR (mean and median, seconds) of one tenant in one month (UTC) of
/// opening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthStats {
    pub tenant: TenantId,
    /// `YYYY-MM`.
    pub month: String,
    pub opened: u64,
    pub acknowledged: u64,
    pub resolved: u64,
    pub breaches: u64,
    pub mtta_mean_secs: Option<f64>,
    pub mtta_median_secs: Option<f64>,
    pub mttr_mean_secs: Option<f64>,
    pub mttr_median_secs: Option<f64>,
}

/// `YYYY-MM` of a time (UTC).
pub fn month_of(t: Timestamp) -> String {
    let d = t.to_datetime();
    format!("{:04}-{:02}", d.year(), u8::from(d.month()))
}

fn mean(v: &[i64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    Some(v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64)
}

fn median(v: &mut [i64]) -> Option<f64> {
    v.sort_unstable();
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    if n % 2 == 1 {
        v.get(mid).map(|x| *x as f64)
    } else {
        match (v.get(mid - 1), v.get(mid)) {
            (Some(a), Some(b)) => Some((*a as f64 + *b as f64) / 2.0),
            _ => None,
        }
    }
}

/// MTTA and MTTR per tenant and month, ordered by tenant then month.
pub fn monthly_stats(times: &[Times]) -> Vec<MonthStats> {
    type Acc = (u64, u64, Vec<i64>, Vec<i64>);
    let mut groups: BTreeMap<(TenantId, String), Acc> = BTreeMap::new();
    for t in times {
        let g = groups
            .entry((t.tenant, month_of(t.opened_at)))
            .or_insert_with(|| (0, 0, Vec::new(), Vec::new()));
        g.0 += 1;
        g.1 += u64::from(t.breaches);
        if let Some(a) = t.acknowledged_at {
            g.2.push((a.0 - t.opened_at.0).max(0) / 1000);
        }
        if let Some(r) = t.resolved_at {
            g.3.push((r.0 - t.opened_at.0).max(0) / 1000);
        }
    }
    groups
        .into_iter()
        .map(
            |((tenant, month), (opened, breaches, mut ack, mut res))| MonthStats {
                tenant,
                month,
                opened,
                acknowledged: ack.len() as u64,
                resolved: res.len() as u64,
                breaches,
                mtta_mean_secs: mean(&ack),
                mtta_median_secs: median(&mut ack),
                mttr_mean_secs: mean(&res),
                mttr_median_secs: median(&mut res),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// Friday 2027-01-15 08:00 UTC.
    const FRI_0800: i64 = 1_800_000_000_000;
    const H: i64 = 3_600_000;

    #[test]
    fn office_hours_skip_nights_and_weekends() {
        let o = Hours::OfficeHours;
        // Friday 08:00 + 1 h of service = Friday 10:00 (the day opens at 09:00).
        assert_eq!(
            service_add(o, Timestamp(FRI_0800), H),
            Timestamp(FRI_0800 + 2 * H)
        );
        // Friday 16:30 + 1 h = Monday 09:30.
        let fri_1630 = FRI_0800 + 8 * H + H / 2;
        assert_eq!(
            service_add(o, Timestamp(fri_1630), H),
            Timestamp(FRI_0800 + 3 * 24 * H + H + H / 2)
        );
        assert_eq!(
            service_elapsed(
                o,
                Timestamp(fri_1630),
                Timestamp(fri_1630 + 3 * 24 * H - 7 * H)
            ),
            H
        );
        // 7x24 is plain time.
        assert_eq!(service_add(Hours::AllHours, Timestamp(5), 7), Timestamp(12));
        assert_eq!(
            service_elapsed(Hours::AllHours, Timestamp(12), Timestamp(5)),
            0
        );
    }

    proptest! {
        #[test]
        fn service_time_added_is_service_time_elapsed(
            start in FRI_0800 - 400 * 24 * H..FRI_0800 + 400 * 24 * H,
            ms in 0i64..200 * 24 * H,
        ) {
            let o = Hours::OfficeHours;
            let end = service_add(o, Timestamp(start), ms);
            prop_assert!(end.0 >= start + ms);
            prop_assert_eq!(service_elapsed(o, Timestamp(start), end), ms);
            // A deadline with time left falls within the service hours.
            if ms > 0 {
                prop_assert!(Hours::OfficeHours.in_service(Timestamp(end.0 - 1)));
            }
        }

        #[test]
        fn elapsed_adds_up(a in 0i64..60 * 24 * H, b in 0i64..60 * 24 * H, c in 0i64..60 * 24 * H) {
            let o = Hours::OfficeHours;
            let mut v = [a, b, c];
            v.sort_unstable();
            let [x, y, z] = v.map(|t| Timestamp(FRI_0800 + t));
            prop_assert_eq!(
                service_elapsed(o, x, y) + service_elapsed(o, y, z),
                service_elapsed(o, x, z)
            );
        }
    }
}
