//! Seeded simulation of `samples` criteria: two versions' per-interval series (AR(1) noise
//! around a level, optionally with white measurement noise or heavy-tailed innovations),
//! a common component that hits both (trend, step), missing ticks, and a canary shift.
//! Shared by `tests/core/samples_validity.rs` (the fast assertions) and
//! `examples/samples_tables.rs` (the full tables of `docs/statistics.md`).

#![allow(dead_code)]

use canary_core::stats::Alternative;
use canary_core::stats::autocorrelated_mean::{self, AutocorrelatedMeanTest};
use canary_core::stats::mann_whitney;
use canary_core::stats::wilson_interval;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, StudentT};

/// The level both versions' samples move around (10 units: a shift of 1 is 10 %).
pub(crate) const LEVEL: f64 = 10.0;

/// What both versions share.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Common {
    /// Nothing.
    Flat,
    /// A linear rise of 5 standard deviations over the rollout (load growing).
    Trend,
    /// A jump of 3 standard deviations at a random tick in the middle half (an incident).
    Step,
}

/// The innovations of each version's noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Innovations {
    /// Gaussian.
    Normal,
    /// Student t with 3 degrees of freedom, scaled to unit variance (heavy tails).
    StudentT3,
}

/// One scenario: per-version AR(1) noise with marginal standard deviation 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Series {
    /// The AR(1) coefficient of each version's noise.
    pub(crate) phi: f64,
    /// Share of each version's variance that is white measurement noise on top.
    pub(crate) white_share: f64,
    /// Innovations.
    pub(crate) innovations: Innovations,
    /// What both versions share.
    pub(crate) common: Common,
    /// The canary's shift, in standard deviations of one version's noise.
    pub(crate) shift: f64,
    /// Multiply the canary by `1 + scale_canary` as well (a relative regression).
    pub(crate) scale_canary: f64,
    /// Probability that the canary's sample is missing at a tick.
    pub(crate) canary_missing: f64,
    /// Probability that the baseline's sample is missing at a tick.
    pub(crate) baseline_missing: f64,
    /// Ticks.
    pub(crate) ticks: usize,
}

impl Series {
    /// An A/A scenario: AR(1) with coefficient `phi`, Gaussian, flat, nothing missing, 90
    /// ticks (three steps of 30).
    pub(crate) fn aa(phi: f64) -> Series {
        Series {
            phi,
            white_share: 0.0,
            innovations: Innovations::Normal,
            common: Common::Flat,
            shift: 0.0,
            scale_canary: 0.0,
            canary_missing: 0.0,
            baseline_missing: 0.0,
            ticks: 90,
        }
    }
}

/// How a criterion is judged in the simulation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Method {
    /// The default: the AR(2) universal-inference e-process at every tick.
    Sequential {
        /// κ.
        max_autocorrelation: f64,
    },
    /// Kayenta: Mann–Whitney / Hodges–Lehmann once at the end of each of `steps` equal steps,
    /// on that step's samples, α split across steps (the judge's `method: mann-whitney`).
    MannWhitney {
        /// Steps.
        steps: usize,
    },
}

/// One version's noise: AR(1) with unit marginal variance, plus white noise.
fn noise(rng: &mut ChaCha8Rng, series: &Series) -> Vec<f64> {
    let t3 = StudentT::new(3.0).expect("3 degrees of freedom");
    let draw = |rng: &mut ChaCha8Rng| match series.innovations {
        Innovations::Normal => StandardNormal.sample(rng),
        Innovations::StudentT3 => t3.sample(rng) / 3f64.sqrt(),
    };
    let innovation_sd = (1.0 - series.phi * series.phi).sqrt();
    let mut x = Vec::with_capacity(series.ticks);
    let mut state: f64 = draw(rng);
    for _ in 0..series.ticks {
        x.push(state);
        state = series.phi * state + innovation_sd * draw(rng);
    }
    let persistent = (1.0 - series.white_share).sqrt();
    let white = series.white_share.sqrt();
    x.iter()
        .map(|v| {
            let measurement: f64 = StandardNormal.sample(rng);
            persistent * v + white * measurement
        })
        .collect()
}

/// Both versions' samples, `None` where missing.
pub(crate) fn draw(rng: &mut ChaCha8Rng, series: &Series) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    let n = series.ticks;
    let step_at = rng.random_range(n / 4..3 * n / 4);
    let common: Vec<f64> = (0..n)
        .map(|t| match series.common {
            Common::Flat => 0.0,
            Common::Trend => 5.0 * t as f64 / n as f64,
            Common::Step => {
                if t >= step_at {
                    3.0
                } else {
                    0.0
                }
            }
        })
        .collect();
    let a = noise(rng, series);
    let b = noise(rng, series);
    let mut canary = Vec::with_capacity(n);
    let mut baseline = Vec::with_capacity(n);
    for t in 0..n {
        let x = (LEVEL + common[t] + a[t] + series.shift) * (1.0 + series.scale_canary);
        let y = LEVEL + common[t] + b[t];
        canary.push((rng.random::<f64>() >= series.canary_missing).then_some(x));
        baseline.push((rng.random::<f64>() >= series.baseline_missing).then_some(y));
    }
    (canary, baseline)
}

/// The tick (1-based) at which the criterion first fails, if it does.
pub(crate) fn first_failure(
    method: Method,
    canary: &[Option<f64>],
    baseline: &[Option<f64>],
    max_increase: f64,
    alpha: f64,
) -> Option<usize> {
    match method {
        Method::Sequential {
            max_autocorrelation,
        } => {
            let test = AutocorrelatedMeanTest::new(max_autocorrelation).expect("a valid κ");
            let mut state = test.start();
            let threshold = (1.0 / alpha).ln();
            for (t, (x, y)) in canary.iter().zip(baseline).enumerate() {
                let d = match (x, y) {
                    (Some(x), Some(y)) => {
                        Some(autocorrelated_mean::excess(*x, *y, max_increase, true))
                    }
                    _ => None,
                };
                test.update(&mut state, d).expect("finite samples");
                if test.log_e_value(&state) >= threshold {
                    return Some(t + 1);
                }
            }
            None
        }
        Method::MannWhitney { steps } => {
            let per_step = canary.len() / steps;
            let step_alpha = alpha / steps as f64;
            for step in 0..steps {
                let range = step * per_step..(step + 1) * per_step;
                let x: Vec<f64> = canary[range.clone()].iter().flatten().copied().collect();
                let y: Vec<f64> = baseline[range].iter().flatten().copied().collect();
                if x.len() < 3 || y.len() < 3 {
                    continue;
                }
                let mut sorted = y.clone();
                sorted.sort_by(f64::total_cmp);
                let median = sorted[sorted.len() / 2];
                let tolerance = max_increase * median.abs();
                let shift =
                    mann_whitney::hodges_lehmann(&x, &y, 1.0 - step_alpha, Alternative::Greater)
                        .expect("finite samples");
                if shift.lower > tolerance {
                    return Some((step + 1) * per_step);
                }
            }
            None
        }
    }
}

/// Results of many seeded runs of one scenario.
#[derive(Clone, Debug)]
pub(crate) struct Tally {
    /// Runs.
    pub(crate) runs: u64,
    /// Runs where the criterion failed.
    pub(crate) failed: u64,
    /// Ticks at which they failed, sorted.
    pub(crate) ticks: Vec<usize>,
}

impl Tally {
    /// The failure rate.
    pub(crate) fn rate(&self) -> f64 {
        self.failed as f64 / self.runs as f64
    }

    /// The Wilson 95 % interval of the failure rate.
    pub(crate) fn wilson(&self) -> (f64, f64) {
        wilson_interval(self.failed, self.runs, 0.95).expect("runs > 0")
    }

    /// The median tick of failure, if any failed.
    pub(crate) fn median_tick(&self) -> Option<usize> {
        (!self.ticks.is_empty()).then(|| self.ticks[self.ticks.len() / 2])
    }
}

/// `runs` seeded runs of `series` judged by `method`.
pub(crate) fn tally(
    series: &Series,
    method: Method,
    max_increase: f64,
    alpha: f64,
    runs: u64,
    seed: u64,
) -> Tally {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ticks = Vec::new();
    for _ in 0..runs {
        let (canary, baseline) = draw(&mut rng, series);
        if let Some(t) = first_failure(method, &canary, &baseline, max_increase, alpha) {
            ticks.push(t);
        }
    }
    ticks.sort_unstable();
    Tally {
        runs,
        failed: ticks.len() as u64,
        ticks,
    }
}

/// The largest ln E the sequential criterion reaches over a run (the run fails at α when it
/// reaches ln(1/α)), for several α from the same runs.
pub(crate) fn max_log_e(
    max_autocorrelation: f64,
    canary: &[Option<f64>],
    baseline: &[Option<f64>],
    max_increase: f64,
) -> f64 {
    let test = AutocorrelatedMeanTest::new(max_autocorrelation).expect("a valid κ");
    let mut state = test.start();
    let mut max = f64::NEG_INFINITY;
    for (x, y) in canary.iter().zip(baseline) {
        let d = match (x, y) {
            (Some(x), Some(y)) => Some(autocorrelated_mean::excess(*x, *y, max_increase, true)),
            _ => None,
        };
        test.update(&mut state, d).expect("finite samples");
        max = max.max(test.log_e_value(&state));
    }
    max
}

/// `runs` seeded A/A-style runs of `series` (sequential criterion): the largest ln E of each.
pub(crate) fn maxima(
    series: &Series,
    max_autocorrelation: f64,
    max_increase: f64,
    runs: u64,
    seed: u64,
) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..runs)
        .map(|_| {
            let (canary, baseline) = draw(&mut rng, series);
            max_log_e(max_autocorrelation, &canary, &baseline, max_increase)
        })
        .collect()
}
