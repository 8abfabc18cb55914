//! Property tests of the incident life cycle and its SLA timers (pure, no storage): random
//! sequences of commands, the invariants checked after every one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use parapet_incident::{
    Change, EscalationLevel, EscalationPolicy, Incident, Opening, Severity, SlaPolicy, SlaTimer,
    Step,
};
use parapet_types::{TenantId, Timestamp};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Advance(usize, usize, usize),
    Reopen(Option<usize>, usize, usize),
    Assign(Option<usize>, usize),
    Pause(usize),
    Resume,
    Notify,
    Wait(i64),
    Fire,
}

const PEOPLE: [&str; 3] = ["", "responder", "oncall"];
const REASONS: [&str; 3] = ["", "   ", "because"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6usize, 0..3usize, 0..3usize).prop_map(|(s, p, r)| Op::Advance(s, p, r)),
        1 => (proptest::option::of(0..6usize), 0..3usize, 0..3usize)
            .prop_map(|(s, p, r)| Op::Reopen(s, p, r)),
        1 => (proptest::option::of(0..6usize), 0..3usize).prop_map(|(s, p)| Op::Assign(s, p)),
        1 => (0..3usize).prop_map(Op::Pause),
        1 => Just(Op::Resume),
        1 => Just(Op::Notify),
        2 => (1..7200i64).prop_map(Op::Wait),
        2 => Just(Op::Fire),
    ]
}

fn opened(at: Timestamp) -> Incident {
    let policy = SlaPolicy {
        escalation: EscalationPolicy {
            levels: vec![
                EscalationLevel {
                    notify: vec!["a".into()],
                    delay_secs: 600,
                },
                EscalationLevel {
                    notify: vec!["b".into()],
                    delay_secs: 900,
                },
            ],
            repeat: 2,
        },
        ..SlaPolicy::default()
    };
    Incident::open(Opening {
        id: uuid::Uuid::from_u128(1),
        tenant: TenantId(uuid::Uuid::from_u128(2)),
        title: "t".into(),
        description: String::new(),
        severity: Severity::Critical,
        category: String::new(),
        source: "manual".into(),
        alerts: Vec::new(),
        responsible: "responder".into(),
        actor: "admin".into(),
        at,
        sla: policy.start(Severity::Critical),
    })
    .unwrap()
}

/// The invariants every reachable incident keeps.
fn check(i: &Incident) {
    // Transitions chain: each starts where the previous ended, the first is the opening.
    let mut at: Option<Step> = None;
    for h in i.transitions() {
        let (from, to) = h.change.steps().unwrap();
        assert_eq!(from, at, "{:?}", h.change);
        at = Some(to);
        assert!(!h.actor.is_empty());
        // A responsible person for every step entered.
        match &h.change {
            Change::Opened { responsible, .. }
            | Change::Advanced { responsible, .. }
            | Change::Returned { responsible, .. }
            | Change::Reopened { responsible, .. } => assert!(!responsible.trim().is_empty()),
            _ => unreachable!(),
        }
        // Every move after opening has a reason; skipping steps is never without one.
        if from.is_some() {
            assert!(h.reason.as_deref().is_some_and(|r| !r.trim().is_empty()));
        }
        if let Change::Advanced {
            from, to, skipped, ..
        } = &h.change
        {
            assert!(from < to);
            assert_eq!(skipped, &from.between(*to));
        }
    }
    assert_eq!(at, Some(i.step));
    // The current step has its responsible person.
    assert!(!i.current_responsible().is_empty());
    assert_eq!(i.closed_at.is_some(), i.step == Step::Recorded);
    // History times never go backwards.
    assert!(i.history.windows(2).all(|w| w[0].at <= w[1].at));
    // Nothing is due while paused or closed; what is due is never before the opening.
    if i.sla.paused_since.is_some() || !i.is_open() {
        assert_eq!(i.next_due(), None);
    }
    if let Some(d) = i.next_due() {
        assert!(d >= i.opened_at);
    }
    // Each timer breaches at most once.
    for t in SlaTimer::ALL {
        assert!(i.sla.breaches.iter().filter(|b| b.timer == t).count() <= 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_life_cycle_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let mut now = Timestamp(1_800_000_000_000);
        let mut i = opened(now);
        check(&i);
        for op in ops {
            let before = i.clone();
            let result = match op {
                Op::Advance(s, p, r) => i.advance(Step::ALL[s], PEOPLE[p], REASONS[r], "x", now),
                Op::Reopen(s, p, r) => {
                    i.reopen(s.map(|s| Step::ALL[s]), PEOPLE[p], REASONS[r], "x", now)
                }
                Op::Assign(s, p) => i.assign(s.map(|s| Step::ALL[s]), PEOPLE[p], "", "x", now),
                Op::Pause(r) => i.pause_sla(REASONS[r], "x", now),
                Op::Resume => i.resume_sla("x", now),
                Op::Notify => i.notify_tenant("progress", "x", now),
                Op::Wait(s) => {
                    now = now.plus_secs(s);
                    Ok(())
                }
                Op::Fire => {
                    let due = i.next_due();
                    let fired = i.fire(now);
                    // Everything due by now fired, nothing later did, and in order.
                    prop_assert!(i.next_due().is_none_or(|d| d > now));
                    prop_assert!(fired.iter().all(|f| f.due_at <= now));
                    prop_assert!(fired.windows(2).all(|w| w[0].due_at <= w[1].due_at));
                    prop_assert_eq!(fired.is_empty(), due.is_none_or(|d| d > now));
                    Ok(())
                }
            };
            match result {
                // A refused command changes nothing.
                Err(_) => prop_assert_eq!(&i, &before),
                // The history only grows: what was recorded stays as it was.
                Ok(()) => prop_assert!(i.history.starts_with(&before.history)),
            }
            // A refused move without a reason or a responsible person.
            if let Op::Advance(_, p, r) = op
                && (PEOPLE[p].is_empty() || REASONS[r].trim().is_empty())
            {
                prop_assert!(result.is_err());
            }
            check(&i);
        }
    }
}

#[test]
fn skipping_needs_a_reason_and_records_what_was_skipped() {
    let now = Timestamp(1_800_000_000_000);
    let mut i = opened(now);
    assert!(i.advance(Step::Checking, "oncall", "", "x", now).is_err());
    assert_eq!(i.step, Step::Detecting);
    i.advance(Step::Checking, "oncall", "false positive check", "x", now)
        .unwrap();
    let h = i.history.last().unwrap();
    assert_eq!(
        h.change,
        Change::Advanced {
            from: Step::Detecting,
            to: Step::Checking,
            responsible: "oncall".into(),
            skipped: vec![Step::Analysing, Step::Disposing],
        }
    );
    assert_eq!(h.reason.as_deref(), Some("false positive check"));
    // Back to disposing: the check failed.
    i.advance(Step::Disposing, "responder", "fix incomplete", "x", now)
        .unwrap();
    assert!(matches!(
        i.history.last().unwrap().change,
        Change::Returned { .. }
    ));
    assert!(
        i.advance(Step::Detecting, "responder", "x", "x", now)
            .is_err()
    );
}

#[test]
fn an_escalation_policy_is_bounded() {
    let mut p = EscalationPolicy {
        levels: vec![EscalationLevel {
            notify: vec!["a".into()],
            delay_secs: 10,
        }],
        repeat: 1,
    };
    assert!(p.validate().is_err());
    p.levels[0].delay_secs = 60;
    assert!(p.validate().is_ok());
    p.repeat = 11;
    assert!(p.validate().is_err());
}
