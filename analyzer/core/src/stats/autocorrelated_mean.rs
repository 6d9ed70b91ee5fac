//! Anytime-valid comparison of per-interval samples (CPU, memory, any value read once per
//! tick per version) when the samples are autocorrelated, as such series are.
//!
//! The question, asked at every tick: is the canary worse than the baseline by more than the
//! policy allows — with the probability of *ever* wrongly saying so held under α, although
//! each version's series remembers its past (a CPU reading tells a lot about the next one)
//! and both versions share whatever hits the service (load trends, incidents).
//!
//! # What is tested
//!
//! Each tick where both versions have a sample gives the canary's **excess** over what is
//! allowed, in the direction that is worse ([`excess`]):
//!
//! ```text
//! D_t = h·(x_t − y_t) − m·|y_t|,    h = +1 when higher is worse, −1 when lower is worse,
//! ```
//!
//! with x the canary's sample, y the baseline's and m the policy's `max-increase`. A common
//! trend or step that hits both versions cancels in x − y. The criterion is "the canary is
//! worse than the baseline by more than m × |baseline level|", E[h(x − y)] > m·|E[y]|; since
//! E|y| ≥ |E[y]|, every canary within the allowance has E[D] ≤ 0, so testing
//! H₀: μ = E[D] ≤ 0 is valid for it (exactly the criterion when the baseline's values keep
//! one sign, as CPU and memory do).
//!
//! # Model (the assumption)
//!
//! D is a Gaussian AR(2) process around its mean μ,
//!
//! ```text
//! D_t − μ = φ₁ (D_{t−1} − μ) + φ₂ (D_{t−2} − μ) + ε_t,   ε_t ~ N(0, σ²) independent,
//! φ₁ + φ₂ ≤ κ,
//! ```
//!
//! with μ, φ₁, φ₂ and σ unknown. κ (`max-autocorrelation`, default
//! [`DEFAULT_MAX_AUTOCORRELATION`]) bounds the persistence: for an AR(1) series it is the
//! largest lag-1 autocorrelation allowed. The bound is what makes a mean testable at all: a
//! difference series that never forgets (a random walk) has no mean to test, and one with
//! persistence near 1 looks, over a rollout, like a constant offset. The AR(2) form (rather
//! than AR(1)) also covers a persistent series seen through white measurement noise (an
//! ARMA(1,1)), which an AR(1) model fits with too little persistence and then trusts too much
//! (measured: `docs/statistics.md`). Ticks where a version has no sample are gaps; the test
//! assumes a sample is missing for reasons unrelated to the value it would have had.
//!
//! # The e-process: sequential universal inference
//!
//! Wasserman, Ramdas & Balakrishnan (2020), *Universal inference*, PNAS 117(29), §6: for any
//! predictable sequence of densities q_t (each a density of D_t given what was seen before t),
//!
//! ```text
//! E_t(c) = Π_{s ≤ t} q_s(D_s) / sup_{θ ∈ H₀(c)} Π_{s ≤ t} f_θ(D_s | D_{s−1}, D_{s−2}),
//! H₀(c) = {μ ≤ c, φ₁ + φ₂ ≤ κ, σ > 0},
//! ```
//!
//! is an e-process for H₀(c): for the true θ* ∈ H₀(c) the denominator is at least
//! Π f_θ*(D_s | …), and Π q_s / f_θ* is a nonnegative martingale with mean 1 (each factor
//! has conditional expectation ∫ q_s = 1 under θ*). Ville's inequality then gives
//! P(sup_t E_t ≥ 1/α) ≤ α: the criterion fails when E_t(0) ≥ 1/α, at any tick, however often
//! it looks. The products run over the **scored** ticks: those with D_t, D_{t−1} and D_{t−2}
//! all present and the numerator ready; whether a tick is scored is decided before D_t is
//! seen, so this stays a martingale.
//!
//! - **Numerator** q_t: the Student-t posterior predictive of the AR(1) regression
//!   D_t = b₀ + b₁ D_{t−1} + e fitted to the complete pairs before t, under the prior 1/σ,
//!   flat on (b₀, b₁) (the right-Haar prior of the location-scale group): t with n − 2
//!   degrees of freedom, centre b̂₀ + b̂₁ u, scale² s²(1 + 1/n + (u − ū)²/S_uu). It starts
//!   after [`PAIRS_BEFORE_SCORING`] pairs. Any predictable density keeps the test valid; this
//!   one is chosen for power (an AR(2) predictive has one more coefficient to learn and was
//!   slower to catch regressions in the same simulations).
//! - **Denominator**: the Gaussian likelihood maximised over H₀(c),
//!   (2π·RSS/n)^(−n/2) e^(−n/2), RSS the least residual sum of squares of
//!   D_t − c = β₀ + ψ (D_{t−1} − c) + φ₂ (D_{t−2} − D_{t−1}) over β₀ ≤ 0 and ψ = φ₁ + φ₂ ≤ κ
//!   (μ ≤ c ⟺ β₀ = (μ − c)(1 − ψ) ≤ 0, as 1 − ψ > 0). For fixed coefficients the best
//!   β₀ is min(a, 0), a the mean residual, so RSS = min over ψ ≤ κ of
//!   Q(ψ, φ₂) + n·max(a, 0)², a convex, continuously differentiable function: its minimum is
//!   the unconstrained minimiser of Q or of Q + n·a², or the same on the edge ψ = κ; all four
//!   are computed in closed form and the least feasible value is taken (a point slightly
//!   outside the feasible set only makes the denominator larger: conservative).
//!
//! The state keeps running means and co-moments (Welford), so a tick costs O(1) and a
//! rollout resumed from saved state continues with the same evidence.
//!
//! # Bounds
//!
//! E_t(c) decreases in c (the null set grows), so {c : E_t(c) < 1/α} is an anytime-valid
//! confidence sequence for μ, one-sided: [`AutocorrelatedMeanTest::lower_bound`] finds its
//! lower end by bisection.

use serde::{Deserialize, Serialize};

use super::invalid;
use crate::Result;

/// κ when the policy does not say: the largest persistence (sum of the AR coefficients; for
/// an AR(1) series its lag-1 autocorrelation) of the canary − baseline difference between
/// consecutive ticks that the test allows for.
pub const DEFAULT_MAX_AUTOCORRELATION: f64 = 0.9;

/// The largest κ a policy may set. At κ → 1 a mean can no longer be told from a slow
/// excursion and the test loses all power.
pub const MAX_AUTOCORRELATION_LIMIT: f64 = 0.99;

/// Complete pairs (D_{t−1}, D_t) the numerator's AR(1) fit needs before it scores a tick.
/// Earlier predictives (Student t with one or two degrees of freedom) cost more evidence than
/// they bring; 4 to 8 gave the same power in the prototype's simulations.
pub const PAIRS_BEFORE_SCORING: u64 = 6;

/// The numerator's AR(1) fit must leave this share of its responses' variation unexplained
/// before its predictive is used: an exact fit (e.g. both versions constant) has no scale to
/// predict with.
const MIN_RESIDUAL_SHARE: f64 = 1e-12;

/// The null's best fit counts as exact (E = 0) when it leaves less than this share of the
/// scored responses' sum of squares around c: with as many scored ticks as coefficients it
/// always does, and rounding must not turn that into a finite e-value.
const NULL_EXACT_FIT: f64 = 1e-12;

/// Bisection steps for the confidence bound (interval halved each time).
const BISECTION_STEPS: usize = 200;

const TEST: &str = "autocorrelated-mean";

/// The canary's excess over what the policy allows at one tick, in the worse direction:
/// `h·(canary − baseline) − max_increase·|baseline|`, h = +1 when higher is worse and −1
/// otherwise. Positive means worse than allowed at this tick.
pub fn excess(canary: f64, baseline: f64, max_increase: f64, higher_is_worse: bool) -> f64 {
    let difference = if higher_is_worse {
        canary - baseline
    } else {
        baseline - canary
    };
    difference - max_increase * baseline.abs()
}

/// The sequential test of H₀: the mean excess is ≤ 0 (see the [module docs](self)).
/// Immutable; the evidence lives in an [`AutocorrelatedMeanState`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AutocorrelatedMeanTest {
    max_autocorrelation: f64,
}

/// Running count, means and co-moments of a few variables (Welford's update), so that sums of
/// squares around any centre are exact to rounding even for values around 10⁹ (bytes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moments {
    /// Observations added.
    pub count: u64,
    /// Mean of each variable.
    pub mean: Vec<f64>,
    /// Co-moments Σ (zᵢ − z̄ᵢ)(zⱼ − z̄ⱼ), row-major.
    pub comoment: Vec<f64>,
}

impl Moments {
    fn new(dimension: usize) -> Moments {
        Moments {
            count: 0,
            mean: vec![0.0; dimension],
            comoment: vec![0.0; dimension * dimension],
        }
    }

    fn dimension(&self) -> usize {
        self.mean.len()
    }

    fn add(&mut self, z: &[f64]) {
        let k = self.dimension();
        self.count += 1;
        let n = self.count as f64;
        let before: Vec<f64> = z.iter().zip(&self.mean).map(|(x, m)| x - m).collect();
        for (m, d) in self.mean.iter_mut().zip(&before) {
            *m += d / n;
        }
        let after: Vec<f64> = z.iter().zip(&self.mean).map(|(x, m)| x - m).collect();
        for (row, d) in self.comoment.chunks_exact_mut(k).zip(&before) {
            for (cell, e) in row.iter_mut().zip(&after) {
                *cell += d * e;
            }
        }
    }

    fn c(&self, i: usize, j: usize) -> f64 {
        self.comoment[i * self.dimension() + j]
    }

    fn check(&self, which: &str, dimension: usize) -> std::result::Result<(), String> {
        if self.mean.len() != dimension || self.comoment.len() != dimension * dimension {
            return Err(format!("{which}: expected {dimension} variables"));
        }
        if self
            .mean
            .iter()
            .chain(&self.comoment)
            .any(|v| !v.is_finite())
        {
            return Err(format!("{which}: moments must be finite"));
        }
        if (0..dimension).any(|i| self.c(i, i) < 0.0) {
            return Err(format!("{which}: a variance is negative"));
        }
        Ok(())
    }
}

/// The evidence of an [`AutocorrelatedMeanTest`] so far. Serializable, so a rollout resumes
/// with its evidence; deserializing checks the shape and rejects a state this module did not
/// make.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StateRepr")]
pub struct AutocorrelatedMeanState {
    /// κ of the test this state belongs to.
    max_autocorrelation: f64,
    /// D_{t−1} and D_{t−2} (`None`: no value at that tick, or before the first).
    previous: [Option<f64>; 2],
    /// Complete pairs (D_{t−1}, D_t): the numerator's AR(1) fit.
    pairs: Moments,
    /// Scored ticks (D_{t−1}, D_{t−2}, D_t): the denominator.
    scored: Moments,
    /// ln Π q_s(D_s) over the scored ticks.
    log_numerator: f64,
    /// Every present value of D: its count and mean.
    values: Moments,
    /// Ticks seen, with or without a value.
    ticks: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateRepr {
    max_autocorrelation: f64,
    previous: [Option<f64>; 2],
    pairs: Moments,
    scored: Moments,
    log_numerator: f64,
    values: Moments,
    ticks: u64,
}

impl TryFrom<StateRepr> for AutocorrelatedMeanState {
    type Error = String;

    fn try_from(repr: StateRepr) -> std::result::Result<Self, String> {
        check_max_autocorrelation(repr.max_autocorrelation)?;
        repr.pairs.check("pairs", 2)?;
        repr.scored.check("scored", 3)?;
        repr.values.check("values", 1)?;
        if !repr.log_numerator.is_finite() {
            return Err("log_numerator must be finite".to_owned());
        }
        if repr.previous.iter().flatten().any(|v| !v.is_finite()) {
            return Err("previous values must be finite".to_owned());
        }
        if repr.scored.count > repr.pairs.count
            || repr.pairs.count > repr.values.count
            || repr.values.count > repr.ticks
        {
            return Err("counts out of order (scored ≤ pairs ≤ values ≤ ticks)".to_owned());
        }
        Ok(AutocorrelatedMeanState {
            max_autocorrelation: repr.max_autocorrelation,
            previous: repr.previous,
            pairs: repr.pairs,
            scored: repr.scored,
            log_numerator: repr.log_numerator,
            values: repr.values,
            ticks: repr.ticks,
        })
    }
}

fn check_max_autocorrelation(kappa: f64) -> std::result::Result<(), String> {
    if kappa.is_finite() && (0.0..=MAX_AUTOCORRELATION_LIMIT).contains(&kappa) {
        Ok(())
    } else {
        Err(format!(
            "max-autocorrelation must be from 0 to {MAX_AUTOCORRELATION_LIMIT}, found {kappa}"
        ))
    }
}

impl AutocorrelatedMeanState {
    /// κ of the test this state belongs to.
    pub fn max_autocorrelation(&self) -> f64 {
        self.max_autocorrelation
    }

    /// Ticks seen.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Ticks with a value of D (both versions sampled).
    pub fn values(&self) -> u64 {
        self.values.count
    }

    /// Ticks scored so far (the test's sample size).
    pub fn scored(&self) -> u64 {
        self.scored.count
    }

    /// The mean of D over the ticks that had one.
    pub fn mean_excess(&self) -> Option<f64> {
        (self.values.count > 0).then(|| self.values.mean[0])
    }

    /// The lag-1 autocorrelation of D estimated by the numerator's AR(1) fit (its slope), for
    /// the report: how close the data come to `max-autocorrelation`.
    pub fn autocorrelation(&self) -> Option<f64> {
        let p = &self.pairs;
        (p.count >= 3 && p.c(0, 0) > 0.0).then(|| p.c(0, 1) / p.c(0, 0))
    }
}

impl AutocorrelatedMeanTest {
    /// The test with persistence bound κ = `max_autocorrelation` (0 to
    /// [`MAX_AUTOCORRELATION_LIMIT`]).
    pub fn new(max_autocorrelation: f64) -> Result<Self> {
        check_max_autocorrelation(max_autocorrelation).map_err(|reason| invalid(TEST, reason))?;
        Ok(AutocorrelatedMeanTest {
            max_autocorrelation,
        })
    }

    /// κ.
    pub fn max_autocorrelation(&self) -> f64 {
        self.max_autocorrelation
    }

    /// The state before any tick.
    pub fn start(&self) -> AutocorrelatedMeanState {
        AutocorrelatedMeanState {
            max_autocorrelation: self.max_autocorrelation,
            previous: [None, None],
            pairs: Moments::new(2),
            scored: Moments::new(3),
            log_numerator: 0.0,
            values: Moments::new(1),
            ticks: 0,
        }
    }

    fn check_state(&self, state: &AutocorrelatedMeanState) -> Result<()> {
        if state.max_autocorrelation != self.max_autocorrelation {
            return Err(invalid(
                TEST,
                format!(
                    "the state was made with max-autocorrelation {}, the test has {}",
                    state.max_autocorrelation, self.max_autocorrelation
                ),
            ));
        }
        Ok(())
    }

    /// Takes one tick: D_t, or `None` when a version had no sample. A non-finite value is an
    /// error and leaves the state as it was.
    pub fn update(&self, state: &mut AutocorrelatedMeanState, value: Option<f64>) -> Result<()> {
        self.check_state(state)?;
        if let Some(v) = value
            && !v.is_finite()
        {
            return Err(invalid(
                TEST,
                format!("the excess is not a finite number ({v})"),
            ));
        }
        let [lag1, lag2] = state.previous;
        if let (Some(v), Some(u1), Some(u2)) = (value, lag1, lag2)
            && let Some(log_density) = predictive_log_density(&state.pairs, u1, v)
        {
            state.log_numerator += log_density;
            state.scored.add(&[u1, u2, v]);
        }
        if let (Some(v), Some(u1)) = (value, lag1) {
            state.pairs.add(&[u1, v]);
        }
        if let Some(v) = value {
            state.values.add(&[v]);
        }
        state.previous = [value, lag1];
        state.ticks += 1;
        Ok(())
    }

    /// ln E_t(c) against H₀(c): μ ≤ `null_mean`. 0 before the first scored tick; −∞ when the
    /// null fits the scored ticks exactly.
    pub fn log_e_value_at(&self, state: &AutocorrelatedMeanState, null_mean: f64) -> f64 {
        let n = state.scored.count;
        if n == 0 {
            return 0.0;
        }
        let rss = null_residual_sum(&state.scored, null_mean, self.max_autocorrelation);
        if rss.is_nan() || rss <= 0.0 {
            return f64::NEG_INFINITY;
        }
        let n = n as f64;
        state.log_numerator + 0.5 * n * ((2.0 * std::f64::consts::PI * rss / n).ln() + 1.0)
    }

    /// ln E_t against H₀: the mean excess is ≤ 0.
    pub fn log_e_value(&self, state: &AutocorrelatedMeanState) -> f64 {
        self.log_e_value_at(state, 0.0)
    }

    /// E_t against H₀: the mean excess is ≤ 0. The criterion fails when it reaches 1/α.
    pub fn e_value(&self, state: &AutocorrelatedMeanState) -> f64 {
        self.log_e_value(state).exp()
    }

    /// The lower end of the anytime-valid (1 − α) confidence sequence for the mean excess μ:
    /// every c up to it is rejected (E_t(c) ≥ 1/α). −∞ before the first scored tick; +∞ when
    /// every mean is rejected, which happens only when the model itself does not fit (more
    /// persistence than κ allows).
    pub fn lower_bound(&self, state: &AutocorrelatedMeanState, alpha: f64) -> Result<f64> {
        self.check_state(state)?;
        if !(0.0..1.0).contains(&alpha) || alpha == 0.0 {
            return Err(invalid(
                TEST,
                format!("alpha must be in (0, 1), found {alpha}"),
            ));
        }
        let s = &state.scored;
        if s.count == 0 {
            return Ok(f64::NEG_INFINITY);
        }
        let target = (1.0 / alpha).ln();
        let rejected = |c: f64| self.log_e_value_at(state, c) >= target;
        let centre = s.mean[2];
        let first_step =
            (s.c(2, 2) / s.count as f64).sqrt() + 1e-9 * centre.abs() + f64::MIN_POSITIVE;
        let mut hi = centre;
        let mut step = first_step;
        let mut bracketed = false;
        for _ in 0..BISECTION_STEPS {
            if !rejected(hi) {
                bracketed = true;
                break;
            }
            hi += step;
            step *= 2.0;
        }
        if !bracketed {
            return Ok(f64::INFINITY);
        }
        let mut lo = centre;
        step = first_step;
        bracketed = false;
        for _ in 0..BISECTION_STEPS {
            if rejected(lo) {
                bracketed = true;
                break;
            }
            lo -= step;
            step *= 2.0;
        }
        if !bracketed {
            return Ok(f64::NEG_INFINITY);
        }
        // Invariant: lo rejected, hi not. lo is reported: every c ≤ lo is rejected too.
        for _ in 0..BISECTION_STEPS {
            let mid = lo + (hi - lo) / 2.0;
            if mid <= lo || mid >= hi {
                break;
            }
            if rejected(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// ln q(v | u): the Student-t posterior predictive of the AR(1) regression fitted to `pairs`
/// (prior 1/σ, flat on the coefficients), or `None` while the fit is not ready.
fn predictive_log_density(pairs: &Moments, u: f64, v: f64) -> Option<f64> {
    if pairs.count < PAIRS_BEFORE_SCORING {
        return None;
    }
    let (suu, suv, svv) = (pairs.c(0, 0), pairs.c(0, 1), pairs.c(1, 1));
    if suu.is_nan() || suu <= 0.0 {
        return None;
    }
    let rss = svv - suv * suv / suu;
    if rss.is_nan() || rss <= MIN_RESIDUAL_SHARE * svv {
        return None;
    }
    let n = pairs.count as f64;
    let dof = n - 2.0;
    let slope = suv / suu;
    let centred = u - pairs.mean[0];
    let prediction = pairs.mean[1] + slope * centred;
    let scale2 = rss / dof * (1.0 + 1.0 / n + centred * centred / suu);
    let z2 = (v - prediction).powi(2) / scale2;
    use statrs::function::gamma::ln_gamma;
    Some(
        ln_gamma((dof + 1.0) / 2.0)
            - ln_gamma(dof / 2.0)
            - 0.5 * (dof * std::f64::consts::PI * scale2).ln()
            - (dof + 1.0) / 2.0 * (z2 / dof).ln_1p(),
    )
}

/// The least residual sum of squares of the scored ticks over H₀(c) (see the module docs):
/// v − c = β₀ + ψ(u₁ − c) + φ₂(u₂ − u₁) + e with β₀ ≤ 0 and ψ ≤ κ, where (u₁, u₂, v) =
/// (D_{t−1}, D_{t−2}, D_t).
fn null_residual_sum(scored: &Moments, c: f64, kappa: f64) -> f64 {
    let n = scored.count as f64;
    let (m1, m2, mv) = (scored.mean[0], scored.mean[1], scored.mean[2]);
    let (c11, c12, c22) = (scored.c(0, 0), scored.c(0, 1), scored.c(1, 1));
    let (c1v, c2v, cvv) = (scored.c(0, 2), scored.c(1, 2), scored.c(2, 2));
    // Regressors w = (u₁, u₂ − u₁): their co-moments, and their co-moments with v.
    let cww = [[c11, c12 - c11], [c12 - c11, c22 - 2.0 * c12 + c11]];
    let cwv = [c1v, c2v - c1v];
    // Mean residual a(b) = av − b·A with the intercept left out.
    let a_vec = [m1 - c, m2 - m1];
    let av = mv - c;
    let objective = |b: [f64; 2]| {
        let q = cvv - 2.0 * (b[0] * cwv[0] + b[1] * cwv[1])
            + b[0] * b[0] * cww[0][0]
            + 2.0 * b[0] * b[1] * cww[0][1]
            + b[1] * b[1] * cww[1][1];
        let a = av - b[0] * a_vec[0] - b[1] * a_vec[1];
        q + n * a.max(0.0).powi(2)
    };
    // Q + n·a² (the mean residual counted in full): its normal equations.
    let full = [
        [
            cww[0][0] + n * a_vec[0] * a_vec[0],
            cww[0][1] + n * a_vec[0] * a_vec[1],
        ],
        [
            cww[1][0] + n * a_vec[1] * a_vec[0],
            cww[1][1] + n * a_vec[1] * a_vec[1],
        ],
    ];
    let full_rhs = [cwv[0] + n * av * a_vec[0], cwv[1] + n * av * a_vec[1]];
    let mut best = f64::INFINITY;
    for (matrix, rhs) in [(cww, cwv), (full, full_rhs)] {
        let free = solve_symmetric(matrix, rhs);
        // A candidate a hair outside ψ ≤ κ can only lower the minimum: conservative.
        if free[0] <= kappa + 1e-12 {
            best = best.min(objective(free));
        }
        let on_edge = if matrix[1][1] > 0.0 {
            (rhs[1] - kappa * matrix[0][1]) / matrix[1][1]
        } else {
            0.0
        };
        best = best.min(objective([kappa, on_edge]));
    }
    let total = cvv + n * av * av;
    if best <= NULL_EXACT_FIT * total {
        0.0
    } else {
        best
    }
}

/// A minimiser of b'Mb − 2b'r for a symmetric positive semidefinite 2×2 M: M⁻¹r, or the
/// minimum-norm one (pseudo-inverse) when M is singular.
fn solve_symmetric(m: [[f64; 2]; 2], r: [f64; 2]) -> [f64; 2] {
    let (a, b, d) = (m[0][0], m[0][1], m[1][1]);
    let det = a * d - b * b;
    let trace = a + d;
    if det > 1e-12 * trace * trace {
        return [(d * r[0] - b * r[1]) / det, (a * r[1] - b * r[0]) / det];
    }
    // Rank one (or zero): project r on the leading eigenvector.
    let half_gap = ((a - d) / 2.0).hypot(b);
    let largest = trace / 2.0 + half_gap;
    if largest.is_nan() || largest <= 0.0 {
        return [0.0, 0.0];
    }
    let (x, y) = if b != 0.0 {
        (largest - d, b)
    } else if a >= d {
        (1.0, 0.0)
    } else {
        (0.0, 1.0)
    };
    let norm = x.hypot(y);
    let (x, y) = (x / norm, y / norm);
    let along = (x * r[0] + y * r[1]) / largest;
    [x * along, y * along]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(test: &AutocorrelatedMeanTest, values: &[Option<f64>]) -> AutocorrelatedMeanState {
        let mut state = test.start();
        for v in values {
            test.update(&mut state, *v).unwrap();
        }
        state
    }

    #[test]
    fn excess_is_in_the_worse_direction_beyond_the_allowance() {
        assert_eq!(excess(12.0, 10.0, 0.1, true), 1.0);
        assert_eq!(excess(8.0, 10.0, 0.1, false), 1.0);
        assert_eq!(excess(12.0, 10.0, 0.0, false), -2.0);
        // A negative baseline level: the allowance is on its magnitude.
        assert_eq!(excess(-4.0, -5.0, 0.1, true), 0.5);
    }

    #[test]
    fn nothing_is_scored_before_the_fit_is_ready() {
        let test = AutocorrelatedMeanTest::new(0.9).unwrap();
        let values: Vec<Option<f64>> = (0..8).map(|i| Some((i * 7 % 5) as f64)).collect();
        let state = feed(&test, &values);
        assert_eq!(
            state.scored(),
            1,
            "pairs reach 6 at the 7th value, the 8th is scored"
        );
        let state = feed(&test, &values[..7]);
        assert_eq!(state.scored(), 0);
        assert_eq!(test.log_e_value(&state), 0.0);
        assert_eq!(test.lower_bound(&state, 0.05).unwrap(), f64::NEG_INFINITY);
    }

    #[test]
    fn constant_differences_are_never_scored() {
        let test = AutocorrelatedMeanTest::new(0.9).unwrap();
        let state = feed(&test, &[Some(3.0); 40]);
        assert_eq!(state.scored(), 0);
        assert_eq!(test.e_value(&state), 1.0);
    }

    #[test]
    fn a_gap_breaks_the_chain() {
        let test = AutocorrelatedMeanTest::new(0.9).unwrap();
        let mut values: Vec<Option<f64>> = (0..12).map(|i| Some(((i * 7) % 5) as f64)).collect();
        let full = feed(&test, &values);
        values[9] = None;
        let gapped = feed(&test, &values);
        // Tick 9 is missing: ticks 9, 10 and 11 lose their triple, and the pairs ending at
        // 9 and 10 are gone.
        assert_eq!(full.scored() - gapped.scored(), 3);
        assert_eq!(gapped.values(), 11);
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(AutocorrelatedMeanTest::new(1.0).is_err());
        assert!(AutocorrelatedMeanTest::new(-0.1).is_err());
        assert!(AutocorrelatedMeanTest::new(f64::NAN).is_err());
        let test = AutocorrelatedMeanTest::new(0.9).unwrap();
        let mut state = test.start();
        assert!(test.update(&mut state, Some(f64::INFINITY)).is_err());
        assert_eq!(state.ticks(), 0);
        assert!(test.lower_bound(&state, 0.0).is_err());
        let other = AutocorrelatedMeanTest::new(0.5).unwrap();
        assert!(other.update(&mut state, Some(1.0)).is_err());
    }

    #[test]
    fn the_state_round_trips_and_bad_states_are_refused() {
        let test = AutocorrelatedMeanTest::new(0.9).unwrap();
        let values: Vec<Option<f64>> = (0..30).map(|i| Some(((i * 13) % 7) as f64)).collect();
        let state = feed(&test, &values);
        let json = serde_json::to_string(&state).unwrap();
        let back: AutocorrelatedMeanState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        let broken = json.replace("\"max_autocorrelation\":0.9", "\"max_autocorrelation\":1.5");
        assert!(serde_json::from_str::<AutocorrelatedMeanState>(&broken).is_err());
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value["scored"]["mean"] = serde_json::json!([0.0]);
        assert!(serde_json::from_value::<AutocorrelatedMeanState>(value).is_err());
    }

    #[test]
    fn the_pseudo_inverse_solves_rank_one_systems() {
        // M = [[1, 1], [1, 1]], r = [2, 2]: minimisers b₀ + b₁ = 2, minimum norm (1, 1).
        let b = solve_symmetric([[1.0, 1.0], [1.0, 1.0]], [2.0, 2.0]);
        assert!((b[0] - 1.0).abs() < 1e-12 && (b[1] - 1.0).abs() < 1e-12);
        assert_eq!(
            solve_symmetric([[0.0, 0.0], [0.0, 0.0]], [1.0, 1.0]),
            [0.0, 0.0]
        );
        let b = solve_symmetric([[2.0, 0.0], [0.0, 4.0]], [2.0, 2.0]);
        assert_eq!(b, [1.0, 0.5]);
    }
}
