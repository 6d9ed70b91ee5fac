//! The latency comparison on hand-made histograms: which bounds it compares on, when it
//! focuses, what it reports, and that it never calls a layout mismatch "no data".

use super::*;
use crate::policy::Criterion;

/// Prometheus' default bucket bounds.
const DEFAULT: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn subject() -> Subject {
    Subject {
        name: "latency/baseline".to_owned(),
        check: "latency".to_owned(),
        criterion: Criterion::Baseline,
        kind: "latency",
        alpha: 0.005,
    }
}

fn evaluator(slow_above: Option<f64>) -> LatencyComparison {
    LatencyComparison {
        quantile: 0.95,
        slow_above,
        test: RateRatioTest::new(0.0).unwrap(),
    }
}

/// Log-normal latencies with median `median` seconds and σ 0.6: the share at or below `le`.
fn share_below(le: f64, median: f64) -> f64 {
    crate::stats::normal_cdf((le / median).ln() / 0.6)
}

/// Cumulative buckets of `n` requests on `bounds` (and +Inf).
fn histogram(bounds: &[f64], n: f64, median: f64) -> Vec<HistogramBucket> {
    bounds
        .iter()
        .map(|&le| HistogramBucket {
            le,
            count: (n * share_below(le, median)).round(),
        })
        .chain([HistogramBucket {
            le: f64::INFINITY,
            count: n,
        }])
        .collect()
}

fn at(k: u32) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + 30 * i64::from(k)).unwrap()
}

struct Play<'a> {
    evaluator: LatencyComparison,
    canary_bounds: &'a [f64],
    baseline_bounds: &'a [f64],
    canary_median: f64,
}

impl Play<'_> {
    /// `ticks` ticks of 150 canary and 1350 baseline requests each.
    fn run(&self, ticks: u32) -> (LatencyComparisonMemory, Vec<Result<Option<f64>, Unusable>>) {
        let mut memory = self.evaluator.start();
        let mut outcomes = Vec::new();
        for k in 1..=ticks {
            let n = f64::from(k);
            let observation = CheckObservation::Histogram {
                canary: histogram(self.canary_bounds, 150.0 * n, self.canary_median),
                baseline: histogram(self.baseline_bounds, 1350.0 * n, 0.05).into(),
            };
            outcomes.push(self.evaluator.observe(&mut memory, &observation, at(k)));
        }
        (memory, outcomes)
    }
}

fn assess(evaluator: &LatencyComparison, memory: &mut LatencyComparisonMemory) -> CheckResult {
    evaluator.assess(&subject(), memory, Moment::MidStep)
}

#[test]
fn layouts_that_share_no_bound_are_an_error_naming_both_never_no_data() {
    let canary_bounds = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64];
    let baseline_bounds = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    let play = Play {
        evaluator: evaluator(None),
        canary_bounds: &canary_bounds,
        baseline_bounds: &baseline_bounds,
        canary_median: 0.05,
    };
    let (memory, outcomes) = play.run(20);
    for outcome in outcomes {
        let Err(Unusable::Invalid(reason)) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(
            reason.contains("canary le 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64"),
            "{reason}"
        );
        assert!(
            reason.contains("baseline le 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10"),
            "{reason}"
        );
        assert!(!reason.contains("no canary requests"), "{reason}");
    }
    assert_eq!(
        memory,
        LatencyComparisonMemory::default(),
        "nothing is fixed"
    );
}

#[test]
fn different_layouts_are_compared_on_the_bounds_both_have() {
    let canary_bounds = [0.025, 0.05, 0.1, 0.2, 0.4, 0.8];
    let healthy = Play {
        evaluator: evaluator(None),
        canary_bounds: &canary_bounds,
        baseline_bounds: &DEFAULT,
        canary_median: 0.05,
    };
    let (mut memory, outcomes) = healthy.run(10);
    assert!(outcomes.iter().all(Result::is_ok));
    let result = assess(&healthy.evaluator, &mut memory);
    assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
    let compared: Vec<f64> = result.evidence.bounds.iter().map(|b| b.bound).collect();
    assert_eq!(compared, [0.05, 0.1], "around the median up to below p95");

    let slow = Play {
        canary_median: 0.075,
        ..healthy
    };
    let (mut memory, _) = slow.run(10);
    let result = assess(&slow.evaluator, &mut memory);
    assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
}

#[test]
fn a_layout_that_starts_sharing_bounds_is_compared_from_then_on() {
    let evaluator = evaluator(None);
    let mut memory = evaluator.start();
    let disjoint = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64];
    for k in 1..=3 {
        let n = f64::from(k);
        let observation = CheckObservation::Histogram {
            canary: histogram(&disjoint, 150.0 * n, 0.075),
            baseline: histogram(&DEFAULT[2..], 1350.0 * n, 0.05).into(),
        };
        assert!(evaluator.observe(&mut memory, &observation, at(k)).is_err());
    }
    // The canary's pods now export the baseline's buckets (their totals since the start
    // of the analysis): nothing was frozen, the comparison starts.
    for k in 4..=14 {
        let n = f64::from(k);
        let observation = CheckObservation::Histogram {
            canary: histogram(&DEFAULT, 150.0 * n, 0.075),
            baseline: histogram(&DEFAULT, 1350.0 * n, 0.05).into(),
        };
        evaluator.observe(&mut memory, &observation, at(k)).unwrap();
    }
    let result = assess(&evaluator, &mut memory);
    assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
}

#[test]
fn a_missing_baseline_is_no_data_naming_what_matched_nothing() {
    let evaluator = evaluator(None);
    let mut memory = evaluator.start();
    let observation = CheckObservation::Histogram {
        canary: histogram(&DEFAULT, 150.0, 0.05),
        baseline: BaselineData::Missing(
            "no http_request_duration_seconds_bucket series for version=\"stable\" in the window"
                .to_owned(),
        ),
    };
    let err = evaluator
        .observe(&mut memory, &observation, at(1))
        .unwrap_err();
    let Unusable::NoData(reason) = err else {
        panic!("{err:?}")
    };
    assert!(reason.contains("version=\"stable\""), "{reason}");
}

#[test]
fn the_counts_shown_are_the_tests_own_since_its_start() {
    let play = Play {
        evaluator: evaluator(None),
        canary_bounds: &DEFAULT,
        baseline_bounds: &DEFAULT,
        canary_median: 0.05,
    };
    let (mut memory, _) = play.run(6);
    let result = assess(&play.evaluator, &mut memory);
    // Exploring took in the first tick from the analysis' start; the focused bounds kept
    // their counts: all six ticks' requests.
    assert_eq!(result.evidence.canary_n, Some(900));
    assert_eq!(result.evidence.baseline_n, Some(8100));
    for bound in &result.evidence.bounds {
        assert_eq!((bound.canary_n, bound.baseline_n), (900, 8100));
        let expected_slow = (900.0 * (1.0 - share_below(bound.bound, 0.05))).round() as u64;
        assert!(
            bound.canary_events.abs_diff(expected_slow) <= 1,
            "{bound:?}"
        );
        assert_eq!(bound.since, None, "since the analysis started");
    }
    assert!(
        result
            .evidence
            .measure
            .contains("since the analysis started"),
        "{}",
        result.evidence.measure
    );
}

#[test]
fn slow_above_focuses_from_the_first_tick_on_a_shared_bound() {
    let play = Play {
        evaluator: evaluator(Some(0.3)),
        canary_bounds: &DEFAULT,
        baseline_bounds: &DEFAULT,
        canary_median: 0.05,
    };
    let (mut memory, _) = play.run(2);
    let result = assess(&play.evaluator, &mut memory);
    let compared: Vec<f64> = result.evidence.bounds.iter().map(|b| b.bound).collect();
    assert_eq!(compared, [0.5], "0.3 s rounded up to a bucket bound");
    assert_eq!(result.evidence.canary_n, Some(300));

    let too_high = Play {
        evaluator: evaluator(Some(20.0)),
        ..play
    };
    let (_, outcomes) = too_high.run(1);
    let Err(Unusable::Invalid(reason)) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert!(reason.contains("slow-above 20s"), "{reason}");
}

#[test]
fn before_the_focus_every_shared_bound_weighs_the_same() {
    let play = Play {
        evaluator: evaluator(None),
        canary_bounds: &DEFAULT,
        baseline_bounds: &DEFAULT,
        canary_median: 0.05,
    };
    let mut memory = play.evaluator.start();
    // 100 baseline requests: not enough to focus.
    let observation = CheckObservation::Histogram {
        canary: histogram(&DEFAULT, 10.0, 0.05),
        baseline: histogram(&DEFAULT, 100.0, 0.05).into(),
    };
    play.evaluator
        .observe(&mut memory, &observation, at(1))
        .unwrap();
    assert!(matches!(memory.combination, Combination::Exploring { .. }));
    let result = assess(&play.evaluator, &mut memory);
    assert_eq!(result.evidence.bounds.len(), 11);
    assert!(
        result
            .evidence
            .bounds
            .iter()
            .all(|b| (b.weight - 1.0 / 11.0).abs() < 1e-15)
    );
    assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
}

#[test]
fn falling_totals_are_counted() {
    let evaluator = evaluator(None);
    let mut memory = evaluator.start();
    for (k, n) in [(1, 10.0), (2, 9.0), (3, 12.0)] {
        let observation = CheckObservation::Histogram {
            canary: histogram(&DEFAULT, 150.0 * n, 0.05),
            baseline: histogram(&DEFAULT, 1350.0 * n, 0.05).into(),
        };
        evaluator.observe(&mut memory, &observation, at(k)).unwrap();
    }
    let result = assess(&evaluator, &mut memory);
    let fell = result.evidence.counter_decreases.unwrap();
    assert_eq!(fell.ticks, 1);
    assert_eq!(fell.requests, 150 + 1350);
}

#[test]
fn the_state_round_trips_through_json() {
    let play = Play {
        evaluator: evaluator(None),
        canary_bounds: &DEFAULT,
        baseline_bounds: &DEFAULT,
        canary_median: 0.06,
    };
    let (mut memory, _) = play.run(4);
    let json = serde_json::to_string(&memory).unwrap();
    let mut back: LatencyComparisonMemory = serde_json::from_str(&json).unwrap();
    assert_eq!(back, memory);
    assert_eq!(
        assess(&play.evaluator, &mut back),
        assess(&play.evaluator, &mut memory)
    );
}
