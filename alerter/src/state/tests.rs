//! Direct tests of the alert state machine (`super::step`, sending, synthetic series, restore).

use super::*;

fn el(inst: &str, v: f64) -> Element {
    Element {
        labels: BTreeMap::from([("alertname".into(), "A".into()), ("instance".into(), inst.into())]),
        annotations: BTreeMap::from([("summary".into(), format!("v={v}"))]),
        value: v,
    }
}

fn only(s: &RuleState) -> &Alert {
    assert_eq!(s.alerts.len(), 1, "{s:?}");
    s.alerts.values().next().unwrap()
}

const T: Timing = Timing { for_ms: 60_000, keep_firing_for_ms: 0, limit: 0 };

#[test]
fn pending_then_firing_then_resolved() {
    let (s, e) = step(&RuleState::default(), vec![el("a", 1.0)], 0, T);
    assert!(e.is_none());
    assert_eq!(only(&s).state, AlertState::Pending);
    let (s, _) = step(&s, vec![el("a", 2.0)], 30_000, T);
    assert_eq!(only(&s).state, AlertState::Pending);
    assert_eq!(only(&s).value, 2.0);
    assert_eq!(only(&s).annotations["summary"], "v=2");
    let (s, _) = step(&s, vec![el("a", 3.0)], 60_000, T);
    assert_eq!(only(&s).state, AlertState::Firing);
    assert_eq!(only(&s).fired_at, Some(60_000));
    assert_eq!(only(&s).active_at, 0);
    let (s, _) = step(&s, vec![], 90_000, T);
    assert_eq!(only(&s).state, AlertState::Inactive);
    assert_eq!(only(&s).resolved_at, Some(90_000));
    // Kept for the retention window, then dropped.
    let (s2, _) = step(&s, vec![], 90_000 + RESOLVED_RETENTION_MS, T);
    assert_eq!(s2.alerts.len(), 1);
    let (s3, _) = step(&s2, vec![], 90_001 + RESOLVED_RETENTION_MS, T);
    assert!(s3.alerts.is_empty());
}

#[test]
fn pending_that_vanishes_is_dropped_and_for_zero_fires_at_once() {
    let (s, _) = step(&RuleState::default(), vec![el("a", 1.0)], 0, T);
    let (s, _) = step(&s, vec![], 10_000, T);
    assert!(s.alerts.is_empty());
    let (s, _) = step(&RuleState::default(), vec![el("a", 1.0)], 0, Timing { for_ms: 0, ..T });
    assert_eq!(only(&s).state, AlertState::Firing);
}

#[test]
fn resolved_alert_that_returns_starts_pending_again() {
    let t0 = Timing { for_ms: 0, ..T };
    let (s, _) = step(&RuleState::default(), vec![el("a", 1.0)], 0, t0);
    let (s, _) = step(&s, vec![], 10_000, t0);
    let (s, _) = step(&s, vec![el("a", 1.0)], 20_000, T);
    assert_eq!(only(&s).state, AlertState::Pending);
    assert_eq!(only(&s).active_at, 20_000);
    assert_eq!(only(&s).resolved_at, None);
}

#[test]
fn keep_firing_for_holds_then_resolves() {
    let t = Timing { for_ms: 0, keep_firing_for_ms: 60_000, limit: 0 };
    let (s, _) = step(&RuleState::default(), vec![el("a", 1.0)], 0, t);
    let (s, _) = step(&s, vec![], 10_000, t);
    assert_eq!(only(&s).state, AlertState::Firing);
    assert_eq!(only(&s).keep_firing_since, Some(10_000));
    let (s, _) = step(&s, vec![], 69_999, t);
    assert_eq!(only(&s).state, AlertState::Firing);
    // Condition back: the keep-firing clock resets.
    let (s, _) = step(&s, vec![el("a", 1.0)], 70_000, t);
    assert_eq!(only(&s).keep_firing_since, None);
    let (s, _) = step(&s, vec![], 80_000, t);
    let (s, _) = step(&s, vec![], 140_000, t);
    assert_eq!(only(&s).state, AlertState::Inactive);
    assert_eq!(only(&s).resolved_at, Some(140_000));
}

#[test]
fn duplicates_and_limit() {
    let (s, _) = step(&RuleState::default(), vec![el("a", 1.0)], 0, T);
    let (s2, e) = step(&s, vec![el("b", 1.0), el("b", 2.0)], 1, T);
    assert_eq!(e, Some(StepError::DuplicateLabelset));
    assert_eq!(s2, s);
    let (s3, e) = step(&s, vec![el("a", 1.0), el("b", 1.0)], 1, Timing { limit: 1, ..T });
    assert_eq!(e, Some(StepError::Limit { limit: 1, count: 2 }));
    assert!(s3.alerts.is_empty());
}

#[test]
fn sending_follows_needs_sending() {
    let t0 = Timing { for_ms: 0, ..T };
    let (mut s, _) = step(&RuleState::default(), vec![el("a", 1.0)], 0, T);
    assert!(take_sendable(&mut s, 0, 60_000, 15_000, "u").is_empty(), "pending is never sent");
    let (mut s, _) = step(&s, vec![el("a", 1.0)], 60_000, t0);
    let sent = take_sendable(&mut s, 60_000, 60_000, 15_000, "http://g");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].starts_at.unwrap().timestamp_millis(), 60_000);
    assert_eq!(sent[0].ends_at.unwrap().timestamp_millis(), 60_000 + 240_000);
    assert_eq!(sent[0].generator_url, "http://g");
    assert!(take_sendable(&mut s, 75_000, 60_000, 15_000, "u").is_empty(), "not due yet");
    assert_eq!(take_sendable(&mut s, 120_001, 60_000, 15_000, "u").len(), 1, "resent after resend delay");
    let (mut s, _) = step(&s, vec![], 130_000, t0);
    let sent = take_sendable(&mut s, 130_000, 60_000, 15_000, "u");
    assert_eq!(sent[0].ends_at.unwrap().timestamp_millis(), 130_000, "resolved carries endsAt = resolvedAt");
    assert!(take_sendable(&mut s, 140_000, 60_000, 15_000, "u").is_empty(), "resolution sent once");
}

#[test]
fn synthetic_series_shapes() {
    let (s, _) = step(&RuleState::default(), vec![el("a", 1.0)], 5_000, T);
    let series = synthetic_series(&s);
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].0["__name__"], "ALERTS");
    assert_eq!(series[0].0["alertstate"], "pending");
    assert_eq!(series[0].1, 1.0);
    assert_eq!(series[1].0["__name__"], "ALERTS_FOR_STATE");
    assert!(!series[1].0.contains_key("alertstate"));
    assert_eq!(series[1].1, 5.0);
}

#[test]
fn restore_resumes_timers_and_keeps_firing() {
    let (s, _) = step(&RuleState::default(), vec![el("a", 1.0), el("b", 1.0)], 0, Timing { for_ms: 600_000, ..T });
    let mut s = s;
    s.alerts.values_mut().last().unwrap().state = AlertState::Firing;
    // Down at 300s (5 of 10 minutes pending), back at 400s: timer resumes, 5 minutes left.
    let mut r = s.clone();
    restore(&mut r, 300_000, 400_000, 600_000, 3_600_000, 60_000);
    let a: Vec<_> = r.alerts.values().collect();
    assert_eq!(a[0].active_at, 100_000);
    assert_eq!(a[1].state, AlertState::Firing);
    assert_eq!(a[1].active_at, 0);
    // Less than the grace period left: fires no sooner than grace after restart.
    let mut r = s.clone();
    restore(&mut r, 590_000, 700_000, 600_000, 3_600_000, 60_000);
    assert_eq!(r.alerts.values().next().unwrap().active_at, 700_000 + 60_000 - 600_000);
    // Long outage: pending timers restart.
    let mut r = s;
    restore(&mut r, 300_000, 5_000_000, 600_000, 3_600_000, 60_000);
    assert_eq!(r.alerts.values().next().unwrap().active_at, 5_000_000);
}

proptest::proptest! {
    /// Whatever the sequence of results, alerts are firing only after `for` and never pending
    /// beyond it; the number of active alerts never exceeds the distinct elements seen.
    #[test]
    fn invariants_hold(steps in proptest::collection::vec(proptest::collection::btree_set(0u8..4, 0..4), 1..30)) {
        let mut s = RuleState::default();
        for (i, present) in steps.iter().enumerate() {
            let now = i as i64 * 15_000;
            let els = present.iter().map(|p| el(&p.to_string(), 1.0)).collect();
            let (n, e) = step(&s, els, now, T);
            proptest::prop_assert!(e.is_none());
            for a in n.alerts.values() {
                match a.state {
                    AlertState::Pending => proptest::prop_assert!(now - a.active_at < T.for_ms),
                    AlertState::Firing => proptest::prop_assert!(now - a.active_at >= T.for_ms),
                    AlertState::Inactive => proptest::prop_assert!(a.resolved_at.is_some()),
                }
            }
            let active = n.alerts.values().filter(|a| a.state != AlertState::Inactive).count();
            proptest::prop_assert_eq!(active, present.len());
            s = n;
        }
    }
}
