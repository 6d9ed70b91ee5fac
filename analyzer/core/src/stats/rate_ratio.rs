//! Anytime-valid comparison of event counts, canary against baseline.
//!
//! The question: is the canary's event rate (errors, or requests slower than a bound)
//! worse than the baseline's by more than the policy allows — asked at every analysis tick,
//! while the canary's share of traffic moves from step to step, with the probability of
//! *ever* wrongly saying "worse" held under α.
//!
//! # Model
//!
//! In one tick (one increment of the counters) the canary served `n_c` requests with `x_c`
//! events and the baseline `n_b` with `x_b`. If events arrive as Poisson processes with
//! rates λ_c n_c and λ_b n_b, then given the tick's total m = x_c + x_b,
//!
//! ```text
//! x_c ~ Binomial(m, q(θ)),   q(θ) = θρ / (θρ + 1 − ρ),   ρ = n_c / (n_c + n_b),
//! ```
//!
//! where θ = λ_c/λ_b is the relative risk. This is the conditional-binomial (two-arm
//! multinomial) model of Lindon & Malek (2022), "Anytime-valid inference for multinomial
//! count data" (NeurIPS), whose Dirichlet-multinomial Bayes factor is the multi-arm form;
//! here the mixture is over θ directly, so that the null can be "θ ≤ θ₀" rather than
//! "θ = 1". The null hypothesis is H₀: θ ≤ θ₀ with θ₀ = 1 + allowed increase.
//!
//! # The e-value
//!
//! The log-likelihood ℓ(θ) = Σ_ticks [x_c ln q_i(θ) + (m_i − x_c) ln(1 − q_i(θ))] is kept on
//! the grid θ_k = θ₀ · r^k, k = −K..=K, r = 2^(1/8), K = 64 (so θ₀/256 … 256·θ₀), relative
//! to ℓ(θ₀). The e-value against H₀ⱼ: θ ≤ θⱼ is the mixture of likelihood ratios of the grid
//! points above θⱼ,
//!
//! ```text
//! Eⱼ = Σ_{d ≥ 1, j + d ≤ K} w_d · exp(ℓ(θ_{j+d}) − ℓ(θ_j)),
//! w_d ∝ exp(−(d ln r)² / (2τ²)),  Σ_{d=1}^{2K} w_d = 1,  τ = 0.6 (log scale),
//! ```
//!
//! a half-normal prior on ln(θ/θⱼ). The weights are normalised over d = 1..=2K although
//! the grid ends at K, so truncation at the top of the grid only makes E smaller.
//!
//! # Why it is valid, at every tick and every traffic share
//!
//! Each term exp(ℓ(θ') − ℓ(θⱼ)), θ' > θⱼ, is a product over ticks of likelihood ratios
//! (q'/qⱼ)^x ((1 − q')/(1 − qⱼ))^(m − x) = c·e^{λx} with λ > 0. Under θ = θⱼ its conditional
//! expectation given the past (and the tick's m and ρ, which may change in any predictable
//! way) is exactly 1; under any θ < θⱼ it is at most 1, because the binomial family has a
//! monotone likelihood ratio in θ. So each term, and any fixed mixture of them, is a
//! nonnegative supermartingale with initial value ≤ 1 under every θ ≤ θⱼ, and Ville's
//! inequality gives P(sup_t Eⱼ(t) ≥ 1/α) ≤ α. Rolling back when E₀ ≥ 1/α therefore wrongly
//! rolls back a healthy canary with probability at most α, however often it looks and
//! however ρ moves.
//!
//! The Poisson model is exact for Poisson arrivals. For requests that fail independently
//! with probability p (Bernoulli) and θ₀ = 1, the conditional law of x_c given m under the
//! null is hypergeometric, which is dominated in convex order by the binomial with the same
//! mean (Hoeffding 1963, theorem 4); e^{λx} is convex, so each term's expectation is still
//! ≤ 1 and validity holds. For θ₀ > 1 and Bernoulli requests it is an approximation, accurate
//! when rates are small (as error rates are).
//!
//! # Bounds
//!
//! The confidence sequence for θ is the set of θ not rejected. [`RateRatioTest::lower_bound`]
//! reports the largest grid point θ_{j−1} such that θⱼ is the first grid point whose null is
//! not rejected; every θ ≤ θ_{j−1} is then rejected, and the true θ lies above it with
//! probability ≥ 1 − α at all times. (Reporting θⱼ itself would be anti-conservative by up to
//! one grid ratio, 2^(1/8) ≈ 9 %, for a true θ between θ_{j−1} and θⱼ.)
//! [`RateRatioTest::upper_bound`] is the mirror image, mixing over the grid points below.

use serde::{Deserialize, Serialize};

use super::invalid;
use crate::Result;

/// K: the grid runs from θ₀·r^(−K) to θ₀·r^K.
pub const GRID_HALF_WIDTH: usize = 64;

/// 1/log₂ r: grid points per doubling of θ (r = 2^(1/8)).
pub const GRID_POINTS_PER_DOUBLING: u32 = 8;

/// τ, the scale of the half-normal prior on ln(θ/θⱼ). τ = 0.6 puts about 68 % of the prior
/// mass on alternatives up to e^0.6 ≈ 1.8 times the null's rate and 95 % up to 3.3 times:
/// the 1.2–3× regressions canaries are for. (Larger ones are caught within a few errors
/// whatever the prior.) Chosen on the simulated benchmark (`docs/benchmarks.md`): against
/// τ = 1, it caught 71 % instead of 67 % of ×1.5 error regressions and needed 3 % fewer
/// requests at p95 +20 %, with false rollbacks still 0–0.20 % at α = 1 %. Any τ keeps the
/// test valid; it only moves where the power is.
pub const PRIOR_SCALE: f64 = 0.6;

const GRID_LEN: usize = 2 * GRID_HALF_WIDTH + 1;
const TEST: &str = "rate-ratio";

/// Requests and events in one increment of one version's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCounts {
    /// Requests served (trials).
    pub trials: u64,
    /// Of those, requests with the event (an error, or slower than the bound).
    pub events: u64,
}

impl EventCounts {
    /// Counts of `events` among `trials`.
    pub fn new(trials: u64, events: u64) -> Self {
        EventCounts { trials, events }
    }

    fn check(self, which: &str) -> Result<()> {
        if self.events > self.trials {
            return Err(invalid(
                TEST,
                format!(
                    "{which}: {} events among {} requests (more events than requests)",
                    self.events, self.trials
                ),
            ));
        }
        Ok(())
    }

    fn add(&mut self, other: EventCounts) {
        self.trials = self.trials.saturating_add(other.trials);
        self.events = self.events.saturating_add(other.events);
    }
}

/// The sequential test of H₀: canary rate ≤ θ₀ × baseline rate (see the [module
/// docs](self)). Immutable; the evidence so far lives in a [`RateRatioState`].
#[derive(Clone, Debug)]
pub struct RateRatioTest {
    null_ratio: f64,
    /// ln w_d for d = 1..=2K, at index d − 1.
    log_weights: Vec<f64>,
    /// k ln r for grid index i = k + K.
    log_grid_ratio: Vec<f64>,
    /// r^k − 1 for grid index i = k + K.
    grid_ratio_minus_one: Vec<f64>,
}

/// The evidence of a [`RateRatioTest`] so far: the log-likelihood on the grid and the
/// cumulative counts. Serializable, so a rollout resumes with its evidence after a restart;
/// deserializing checks the shape and rejects a state that is not one this module made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StateRepr")]
pub struct RateRatioState {
    /// θ₀ of the test this state belongs to.
    null_ratio: f64,
    /// ℓ(θ_k) − ℓ(θ₀) for grid index i = k + K.
    log_likelihood_ratio: Vec<f64>,
    /// The canary's counts over all increments.
    canary: EventCounts,
    /// The baseline's counts over all increments.
    baseline: EventCounts,
    /// Increments seen, including those that carried no information.
    ticks: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateRepr {
    null_ratio: f64,
    log_likelihood_ratio: Vec<f64>,
    canary: EventCounts,
    baseline: EventCounts,
    ticks: u64,
}

impl TryFrom<StateRepr> for RateRatioState {
    type Error = String;

    fn try_from(repr: StateRepr) -> std::result::Result<Self, String> {
        if !(repr.null_ratio.is_finite() && repr.null_ratio >= 1.0) {
            return Err(format!(
                "null_ratio must be a finite number ≥ 1, found {}",
                repr.null_ratio
            ));
        }
        if repr.log_likelihood_ratio.len() != GRID_LEN {
            return Err(format!(
                "log_likelihood_ratio must have {GRID_LEN} entries, found {}",
                repr.log_likelihood_ratio.len()
            ));
        }
        if repr.log_likelihood_ratio.iter().any(|v| !v.is_finite()) {
            return Err("log_likelihood_ratio must be finite".to_owned());
        }
        if repr.log_likelihood_ratio[GRID_HALF_WIDTH] != 0.0 {
            return Err("log_likelihood_ratio at the null must be 0".to_owned());
        }
        for (which, counts) in [("canary", repr.canary), ("baseline", repr.baseline)] {
            if counts.events > counts.trials {
                return Err(format!("{which}: more events than trials"));
            }
        }
        Ok(RateRatioState {
            null_ratio: repr.null_ratio,
            log_likelihood_ratio: repr.log_likelihood_ratio,
            canary: repr.canary,
            baseline: repr.baseline,
            ticks: repr.ticks,
        })
    }
}

impl RateRatioState {
    /// θ₀ of the test this state belongs to.
    pub fn null_ratio(&self) -> f64 {
        self.null_ratio
    }

    /// The canary's counts over all increments so far.
    pub fn canary(&self) -> EventCounts {
        self.canary
    }

    /// The baseline's counts over all increments so far.
    pub fn baseline(&self) -> EventCounts {
        self.baseline
    }

    /// Increments seen so far (including empty ones).
    pub fn ticks(&self) -> u64 {
        self.ticks
    }
}

impl RateRatioTest {
    /// The test of H₀: θ ≤ 1 + `allowed_increase`, where θ is the canary's event rate over
    /// the baseline's (0.2 allows the canary to be 20 % worse).
    ///
    /// Errors when `allowed_increase` is negative or not finite.
    pub fn new(allowed_increase: f64) -> Result<Self> {
        if !(allowed_increase.is_finite() && allowed_increase >= 0.0) {
            return Err(invalid(
                TEST,
                format!("allowed increase must be a finite number ≥ 0, found {allowed_increase}"),
            ));
        }
        let ln_r = std::f64::consts::LN_2 / f64::from(GRID_POINTS_PER_DOUBLING);
        let raw: Vec<f64> = (1..=2 * GRID_HALF_WIDTH)
            .map(|d| {
                let offset = d as f64 * ln_r;
                -(offset * offset) / (2.0 * PRIOR_SCALE * PRIOR_SCALE)
            })
            .collect();
        let norm = log_sum_exp(raw.iter().copied());
        let log_weights = raw.into_iter().map(|w| w - norm).collect();
        let log_grid_ratio: Vec<f64> = (0..GRID_LEN)
            .map(|i| (i as f64 - GRID_HALF_WIDTH as f64) * ln_r)
            .collect();
        let grid_ratio_minus_one = log_grid_ratio.iter().map(|l| l.exp_m1()).collect();
        Ok(RateRatioTest {
            null_ratio: 1.0 + allowed_increase,
            log_weights,
            log_grid_ratio,
            grid_ratio_minus_one,
        })
    }

    /// θ₀ = 1 + allowed increase.
    pub fn null_ratio(&self) -> f64 {
        self.null_ratio
    }

    /// The grid of θ values the likelihood is kept on, ascending; θ₀ is the middle one.
    pub fn grid(&self) -> Vec<f64> {
        self.log_grid_ratio
            .iter()
            .map(|l| self.null_ratio * l.exp())
            .collect()
    }

    /// A state with no evidence yet. Its e-value is Σ_{d ≤ K} w_d, the part of the prior that
    /// fits on the grid: just below 1.
    pub fn start(&self) -> RateRatioState {
        RateRatioState {
            null_ratio: self.null_ratio,
            log_likelihood_ratio: vec![0.0; GRID_LEN],
            canary: EventCounts::default(),
            baseline: EventCounts::default(),
            ticks: 0,
        }
    }

    /// Adds one increment: the requests and events of canary and baseline since the last
    /// update.
    ///
    /// An increment where either version served nothing, or where there was no event, carries
    /// no information about θ and changes only the counts. Errors (leaving the state as it
    /// was) when a version reports more events than requests, or when the state belongs to a
    /// test with another θ₀.
    pub fn update(
        &self,
        state: &mut RateRatioState,
        canary: EventCounts,
        baseline: EventCounts,
    ) -> Result<()> {
        canary.check("canary")?;
        baseline.check("baseline")?;
        if state.null_ratio.to_bits() != self.null_ratio.to_bits() {
            return Err(invalid(
                TEST,
                format!(
                    "the saved evidence was gathered for a null ratio of {}, not {}",
                    state.null_ratio, self.null_ratio
                ),
            ));
        }
        let Some(events) = canary.events.checked_add(baseline.events) else {
            return Err(invalid(
                TEST,
                format!(
                    "{} canary and {} baseline events in one tick overflow a count",
                    canary.events, baseline.events
                ),
            ));
        };
        state.canary.add(canary);
        state.baseline.add(baseline);
        state.ticks = state.ticks.saturating_add(1);

        if canary.trials == 0 || baseline.trials == 0 || events == 0 {
            return Ok(());
        }
        // q(θ₀) = θ₀ n_c / (θ₀ n_c + n_b), and (θρ + 1 − ρ)/(θ₀ρ + 1 − ρ) = 1 + q(θ₀)(θ/θ₀ − 1),
        // so ℓ(θ) − ℓ(θ₀) gains x_c ln(θ/θ₀) − m ln(1 + q(θ₀)(θ/θ₀ − 1)) per tick.
        let weighted_canary = self.null_ratio * canary.trials as f64;
        let q0 = weighted_canary / (weighted_canary + baseline.trials as f64);
        let x = canary.events as f64;
        let m = events as f64;
        for ((llr, &log_ratio), &ratio_minus_one) in state
            .log_likelihood_ratio
            .iter_mut()
            .zip(&self.log_grid_ratio)
            .zip(&self.grid_ratio_minus_one)
        {
            if ratio_minus_one != 0.0 {
                *llr += x * log_ratio - m * (q0 * ratio_minus_one).ln_1p();
            }
        }
        Ok(())
    }

    /// The e-value against H₀: θ ≤ θ₀. Reject (roll back) when it reaches 1/α. May be +∞
    /// when the evidence is overwhelming; [`log_e_value`](Self::log_e_value) never overflows.
    pub fn e_value(&self, state: &RateRatioState) -> f64 {
        self.log_e_value(state).exp()
    }

    /// The natural logarithm of [`e_value`](Self::e_value). Reject when it reaches ln(1/α).
    pub fn log_e_value(&self, state: &RateRatioState) -> f64 {
        self.log_e_above(state, GRID_HALF_WIDTH)
    }

    /// ln Eⱼ against H₀ⱼ: θ ≤ θⱼ, mixing the grid points above j.
    fn log_e_above(&self, state: &RateRatioState, j: usize) -> f64 {
        let llr = &state.log_likelihood_ratio;
        let base = llr[j];
        log_sum_exp(
            llr[j + 1..]
                .iter()
                .zip(&self.log_weights)
                .map(|(l, w)| w + l - base),
        )
    }

    /// ln E⁻ⱼ against H₀ⱼ: θ ≥ θⱼ, mixing the grid points below j.
    fn log_e_below(&self, state: &RateRatioState, j: usize) -> f64 {
        let llr = &state.log_likelihood_ratio;
        let base = llr[j];
        log_sum_exp(
            llr[..j]
                .iter()
                .rev()
                .zip(&self.log_weights)
                .map(|(l, w)| w + l - base),
        )
    }

    /// The pooled ratio of event rates, (x_c/n_c) / (x_b/n_b) over all increments; `None`
    /// when it is undefined (a version without requests, or a baseline without events).
    ///
    /// This is the plain point estimate for reports; when the traffic share moved while the
    /// rates drifted, it is not the maximum-likelihood θ of the model.
    pub fn estimate(&self, state: &RateRatioState) -> Option<f64> {
        let (c, b) = (state.canary, state.baseline);
        if c.trials == 0 || b.trials == 0 || b.events == 0 {
            return None;
        }
        Some((c.events as f64 / c.trials as f64) / (b.events as f64 / b.trials as f64))
    }

    /// An anytime-valid lower confidence bound on θ at level 1 − α: θ exceeds it, at every
    /// tick at once, with probability ≥ 1 − α.
    ///
    /// With j the first grid point whose null "θ ≤ θⱼ" is not rejected (Eⱼ < 1/α), this is
    /// θ_{j−1}, the largest grid point at and below which every θ is rejected; 0 when not even
    /// the lowest grid point is rejected. It is therefore capped at θ₀·2^(8 − 1/8) (the grid's
    /// second-highest point). Errors when α is not in (0, 1).
    pub fn lower_bound(&self, state: &RateRatioState, alpha: f64) -> Result<f64> {
        let threshold = log_threshold(alpha)?;
        // ℓ is concave in ln θ (each tick's term is a binomial log-likelihood in a logistic
        // parameter), so every term ℓ(θ_{j+d}) − ℓ(θ_j) of Eⱼ shrinks as j grows: Eⱼ is
        // non-increasing in j, and the first kept point is found by bisection, O(K log K).
        let first_kept = first_index(GRID_LEN, |j| self.log_e_above(state, j) < threshold)
            .unwrap_or(GRID_LEN - 1);
        Ok(match first_kept {
            0 => 0.0,
            j => self.grid_point(j - 1),
        })
    }

    /// An anytime-valid upper confidence bound on θ at level 1 − α, the mirror image of
    /// [`lower_bound`](Self::lower_bound): with j the last grid point whose null "θ ≥ θⱼ" is
    /// not rejected, θ_{j+1}; +∞ when not even the highest grid point is rejected. Errors when
    /// α is not in (0, 1).
    ///
    /// Use α/2 for each of the two bounds to get a two-sided confidence sequence at 1 − α.
    pub fn upper_bound(&self, state: &RateRatioState, alpha: f64) -> Result<f64> {
        let threshold = log_threshold(alpha)?;
        // The mirror image: E⁻ⱼ is non-decreasing in j, so the points kept form a prefix.
        let last_kept = first_index(GRID_LEN, |j| self.log_e_below(state, j) >= threshold)
            .map_or(GRID_LEN - 1, |first_rejected| {
                first_rejected.saturating_sub(1)
            });
        Ok(if last_kept == GRID_LEN - 1 {
            f64::INFINITY
        } else {
            self.grid_point(last_kept + 1)
        })
    }

    fn grid_point(&self, index: usize) -> f64 {
        self.null_ratio * self.log_grid_ratio[index].exp()
    }
}

fn log_threshold(alpha: f64) -> Result<f64> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(invalid(
            TEST,
            format!("alpha must be in (0, 1), found {alpha}"),
        ));
    }
    Ok(-alpha.ln())
}

/// ln Σ exp(vᵢ), shifted by the maximum so nothing overflows; −∞ for no terms.
fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// The first index in `0..len` where the monotone predicate holds (false…false true…true),
/// or `None` when it never does.
fn first_index(len: usize, holds: impl Fn(usize) -> bool) -> Option<usize> {
    let (mut low, mut high) = (0, len);
    while low < high {
        let mid = low + (high - low) / 2;
        if holds(mid) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    (low < len).then_some(low)
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values as the references print them
mod tests {
    use super::*;

    fn counts(trials: u64, events: u64) -> EventCounts {
        EventCounts::new(trials, events)
    }

    #[test]
    fn counts_whose_sum_overflows_are_an_error_not_a_wrap() {
        let test = RateRatioTest::new(1.2).unwrap();
        let mut state = test.start();
        let huge = counts(u64::MAX, u64::MAX);
        assert!(test.update(&mut state, huge, huge).is_err());
        assert_eq!(state.ticks, 0, "nothing was counted");
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(RateRatioTest::new(-0.1).is_err());
        assert!(RateRatioTest::new(f64::NAN).is_err());
        assert!(RateRatioTest::new(f64::INFINITY).is_err());
        let test = RateRatioTest::new(0.0).unwrap();
        let state = test.start();
        assert!(test.lower_bound(&state, 0.0).is_err());
        assert!(test.lower_bound(&state, 1.0).is_err());
        assert!(test.upper_bound(&state, f64::NAN).is_err());
    }

    #[test]
    fn weights_sum_to_one_over_twice_the_grid() {
        let test = RateRatioTest::new(0.2).unwrap();
        assert_eq!(test.log_weights.len(), 2 * GRID_HALF_WIDTH);
        let total: f64 = test.log_weights.iter().map(|w| w.exp()).sum();
        assert!((total - 1.0).abs() < 1e-14);
        // Before any evidence E₀ is the weight of the offsets that fit on the grid.
        let state = test.start();
        let expected: f64 = test.log_weights[..GRID_HALF_WIDTH]
            .iter()
            .map(|w| w.exp())
            .sum();
        assert!((test.e_value(&state) - expected).abs() < 1e-14);
        assert!(
            test.e_value(&state) <= 1.0 + 1e-12,
            "no evidence, no more than 1"
        );
        let grid = test.grid();
        assert_eq!(grid.len(), GRID_LEN);
        assert_eq!(grid[GRID_HALF_WIDTH], 1.2);
    }

    #[test]
    fn events_above_trials_is_an_error_and_leaves_state() {
        let test = RateRatioTest::new(0.0).unwrap();
        let mut state = test.start();
        let before = state.clone();
        let err = test
            .update(&mut state, counts(10, 11), counts(10, 1))
            .unwrap_err();
        assert!(err.to_string().contains("canary"), "{err}");
        assert!(
            test.update(&mut state, counts(10, 1), counts(0, 1))
                .is_err()
        );
        assert_eq!(state, before);
    }

    #[test]
    fn one_sided_traffic_carries_no_information() {
        let test = RateRatioTest::new(0.0).unwrap();
        let mut state = test.start();
        let e0 = test.e_value(&state);
        test.update(&mut state, counts(0, 0), counts(100, 50))
            .unwrap();
        test.update(&mut state, counts(100, 50), counts(0, 0))
            .unwrap();
        test.update(&mut state, counts(100, 0), counts(100, 0))
            .unwrap();
        test.update(&mut state, counts(0, 0), counts(0, 0)).unwrap();
        assert_eq!(test.e_value(&state), e0);
        assert_eq!(state.ticks(), 4);
        assert_eq!(state.canary(), counts(200, 50));
        assert_eq!(state.baseline(), counts(200, 50));
        assert_eq!(test.estimate(&state), Some(1.0));
    }

    #[test]
    fn estimate_is_undefined_without_baseline_events() {
        let test = RateRatioTest::new(0.0).unwrap();
        let mut state = test.start();
        assert_eq!(test.estimate(&state), None);
        test.update(&mut state, counts(100, 3), counts(100, 0))
            .unwrap();
        assert_eq!(test.estimate(&state), None);
        test.update(&mut state, counts(100, 0), counts(300, 6))
            .unwrap();
        assert_eq!(test.estimate(&state), Some((3.0 / 200.0) / (6.0 / 400.0)));
    }

    #[test]
    fn clear_regression_is_rejected_and_bounded() {
        let test = RateRatioTest::new(0.0).unwrap();
        let mut state = test.start();
        for _ in 0..20 {
            // canary 10 % of traffic with 3 % errors, baseline 1 %.
            test.update(&mut state, counts(100, 3), counts(900, 9))
                .unwrap();
        }
        assert!(test.e_value(&state) > 100.0);
        let lower = test.lower_bound(&state, 0.01).unwrap();
        let upper = test.upper_bound(&state, 0.01).unwrap();
        assert!(lower > 1.0 && lower < 3.0, "{lower}");
        assert!(upper > 3.0 && upper.is_finite(), "{upper}");
    }

    #[test]
    fn healthy_canary_keeps_small_e_value() {
        let test = RateRatioTest::new(0.2).unwrap();
        let mut state = test.start();
        for _ in 0..50 {
            test.update(&mut state, counts(250, 2), counts(250, 3))
                .unwrap();
        }
        assert!(test.e_value(&state) < 1.0);
        assert!(test.lower_bound(&state, 0.05).unwrap() < 0.67);
        assert!(test.upper_bound(&state, 0.05).unwrap() > 0.67);
    }

    #[test]
    fn overwhelming_evidence_does_not_overflow() {
        let test = RateRatioTest::new(0.0).unwrap();
        let mut state = test.start();
        for _ in 0..1000 {
            test.update(
                &mut state,
                counts(1_000_000, 500_000),
                counts(1_000_000, 10),
            )
            .unwrap();
        }
        let log_e = test.log_e_value(&state);
        assert!(log_e.is_finite() && log_e > 1e6, "{log_e}");
        assert_eq!(test.e_value(&state), f64::INFINITY);
        // The lower bound saturates at the grid's second-highest point.
        let lower = test.lower_bound(&state, 0.01).unwrap();
        assert_eq!(lower, test.grid()[GRID_LEN - 2]);
        assert_eq!(test.upper_bound(&state, 0.01).unwrap(), f64::INFINITY);
    }

    #[test]
    fn state_round_trips_and_rejects_tampering() {
        let test = RateRatioTest::new(0.1).unwrap();
        let mut state = test.start();
        test.update(&mut state, counts(120, 4), counts(880, 7))
            .unwrap();
        let json = serde_json::to_string(&state).unwrap();
        let back: RateRatioState = serde_json::from_str(&json).unwrap();
        assert_eq!(back.canary(), state.canary());
        assert_eq!(back.ticks(), 1);
        let e = test.e_value(&state);
        assert!((test.e_value(&back) - e).abs() <= 1e-15 * e);

        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["log_likelihood_ratio"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<RateRatioState>(value).is_err());

        // A state saved for another allowed increase is refused, not silently reused.
        let other = RateRatioTest::new(0.0).unwrap();
        assert!(
            other
                .update(&mut state, counts(1, 0), counts(1, 0))
                .is_err()
        );
    }
}
