//! The Mann–Whitney U test and the Hodges–Lehmann shift estimate, for generic metric
//! samples (CPU, memory, any per-interval value per version), the way Kayenta judges them.
//!
//! These are fixed-sample tests: unlike [`super::rate_ratio`], their p-values are only
//! valid for one look. They reproduce scipy and R exactly so a user can check a verdict
//! with the tools they know:
//! - [`mann_whitney_u`] is `scipy.stats.mannwhitneyu(x, y, use_continuity=True,
//!   alternative=…, method="asymptotic")` (scipy `stats/_mannwhitneyu.py`);
//! - [`hodges_lehmann`] is the estimate and interval of R's `wilcox.test(x, y,
//!   conf.int = TRUE, exact = FALSE, correct = TRUE)` (R `stats:::wilcox.test.default`).

use serde::Serialize;

pub use super::Alternative;
use super::invalid;
use super::normal::{normal_quantile, normal_sf};
use crate::Result;

const TEST: &str = "mann-whitney";

/// The result of [`mann_whitney_u`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MannWhitney {
    /// U of `x`: the number of pairs (xᵢ, yⱼ) with xᵢ > yⱼ, ties counting ½.
    pub u: f64,
    /// The standardized statistic (U − n_x n_y/2)/σ, σ corrected for ties, without continuity
    /// correction: positive when `x` tends to be larger. 0 when every value is tied.
    pub z: f64,
    /// The p-value for `alternative` (normal approximation with tie and continuity
    /// correction, as scipy computes it).
    pub p_value: f64,
    /// The alternative the p-value is for.
    pub alternative: Alternative,
    /// Size of `x`.
    pub n_x: usize,
    /// Size of `y`.
    pub n_y: usize,
}

/// The Hodges–Lehmann shift of `x` relative to `y` with its confidence interval: the result
/// of [`hodges_lehmann`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ShiftEstimate {
    /// The location shift x − y.
    pub estimate: f64,
    /// Lower end of the interval (−∞ for [`Alternative::Less`]).
    pub lower: f64,
    /// Upper end of the interval (+∞ for [`Alternative::Greater`]).
    pub upper: f64,
    /// The confidence level asked for.
    pub conf_level: f64,
}

/// The Mann–Whitney U test of `x` against `y` (two independent samples), normal
/// approximation with tie correction and continuity correction.
///
/// Exactly `scipy.stats.mannwhitneyu(x, y, use_continuity=True, alternative=…,
/// method="asymptotic")`: with U₁ the U of `x` and U₂ = n_x n_y − U₁, the statistic is U₁
/// for "greater", U₂ for "less" and max(U₁, U₂) for two-sided; z = (U − n_x n_y/2 − ½)/σ with
/// σ² = n_x n_y/12 · ((n + 1) − Σ(t³ − t)/(n(n − 1))), p = 1 − Φ(z), doubled for two-sided
/// and clipped to 1. When every value is tied (σ = 0) p = 1, as scipy gives.
///
/// Errors when a sample is empty or holds a non-finite value.
pub fn mann_whitney_u(x: &[f64], y: &[f64], alternative: Alternative) -> Result<MannWhitney> {
    check_sample("x", x)?;
    check_sample("y", y)?;
    let n_x = x.len() as f64;
    let n_y = y.len() as f64;
    let mut xs = x.to_vec();
    let mut ys = y.to_vec();
    xs.sort_by(f64::total_cmp);
    ys.sort_by(f64::total_cmp);
    let ranks = rank_sums(xs.iter().copied(), &ys);
    let u1 = ranks.x_rank_sum - n_x * (n_x + 1.0) / 2.0;
    let u2 = n_x * n_y - u1;
    let (u, factor) = match alternative {
        Alternative::Greater => (u1, 1.0),
        Alternative::Less => (u2, 1.0),
        Alternative::TwoSided => (u1.max(u2), 2.0),
    };
    let n = n_x + n_y;
    let mean = n_x * n_y / 2.0;
    let sigma = (n_x * n_y / 12.0 * ((n + 1.0) - ranks.tie_term / (n * (n - 1.0)))).sqrt();
    let (z, p_value) = if sigma > 0.0 {
        let z_for_p = (u - mean - 0.5) / sigma;
        (
            (u1 - mean) / sigma,
            (factor * normal_sf(z_for_p)).clamp(0.0, 1.0),
        )
    } else {
        (0.0, 1.0)
    };
    Ok(MannWhitney {
        u: u1,
        z,
        p_value,
        alternative,
        n_x: x.len(),
        n_y: y.len(),
    })
}

/// The Hodges–Lehmann estimate of the location shift x − y and its confidence interval,
/// exactly as R's `wilcox.test(x, y, conf.int = TRUE, conf.level = …, alternative = …,
/// exact = FALSE, correct = TRUE)` computes them (`stats:::wilcox.test.default`, R 4.2).
///
/// R's non-exact method: W(d) is the standardized rank-sum statistic of x − d against y,
/// W(d) = (U(d) − n_x n_y/2 − c)/σ(d), with σ(d) tie-corrected from the ranks of
/// c(x − d, y) and c the continuity correction (sign(U − n_x n_y/2)·½ two-sided, +½
/// "greater", −½ "less"). It is a non-increasing step function of d with jumps at the
/// pairwise differences xᵢ − yⱼ, and on [min x − max y, max x − min y]:
/// - the interval ends are where W(d) crosses ±z_{α/2} (two-sided) or z_α (one-sided); when
///   the crossing is not inside the range, the range's end is returned, as R does;
/// - the estimate is where W(d) crosses 0 — with the continuity correction switched off,
///   as R switches it off (`correct <- FALSE`) before computing the estimate.
///
/// R finds each crossing with `uniroot(tol = 1e-4)`, Brent's zeroin (R's `zeroin.c`). On a
/// step function the answer depends on the iterates (when W is exactly 0 over an interval,
/// which happens when n_x n_y is even, any point in it may be returned), so this routine
/// runs the same algorithm on the same W, evaluated with the same floating-point operations,
/// and returns what R returns, not merely something within R's tolerance.
///
/// Errors when a sample is empty or holds a non-finite value, when `conf_level` is not in
/// (0, 1), and where R stops with an error: when every value is tied (σ = 0 at the end of
/// the range), or when W does not change sign over the range.
pub fn hodges_lehmann(
    x: &[f64],
    y: &[f64],
    conf_level: f64,
    alternative: Alternative,
) -> Result<ShiftEstimate> {
    const HL: &str = "hodges-lehmann";
    check_sample("x", x)?;
    check_sample("y", y)?;
    if !(conf_level > 0.0 && conf_level < 1.0) {
        return Err(invalid(
            HL,
            format!("confidence level must be in (0, 1), found {conf_level}"),
        ));
    }
    let shift = ShiftStatistic::new(x, y);
    let alpha = 1.0 - conf_level;
    let lo = shift.x_min - shift.y_max;
    let hi = shift.x_max - shift.y_min;
    let corrected = |d: f64| shift.w(d, Some(alternative));
    let w_lo = corrected(lo);
    let w_hi = corrected(hi);
    if w_lo.is_nan() || w_hi.is_nan() {
        return Err(invalid(
            HL,
            "cannot compute a confidence interval when all observations are tied",
        ));
    }
    // R's `root(zq)`: the range's end when the crossing is not inside it.
    let root = |zq: f64| {
        let f_lo = w_lo - zq;
        if f_lo <= 0.0 {
            return lo;
        }
        let f_hi = w_hi - zq;
        if f_hi >= 0.0 {
            return hi;
        }
        zeroin(|d| corrected(d) - zq, lo, hi, f_lo, f_hi, R_UNIROOT_TOL)
    };
    let (lower, upper) = match alternative {
        Alternative::TwoSided => (
            root(-normal_quantile(alpha / 2.0)),
            root(normal_quantile(alpha / 2.0)),
        ),
        Alternative::Greater => (root(-normal_quantile(alpha)), f64::INFINITY),
        Alternative::Less => (f64::NEG_INFINITY, root(normal_quantile(alpha))),
    };

    let uncorrected = |d: f64| shift.w(d, None);
    let f_lo = uncorrected(lo);
    let f_hi = uncorrected(hi);
    if f_lo.is_nan() || f_hi.is_nan() {
        return Err(invalid(
            HL,
            "cannot compute the estimate when all observations are tied",
        ));
    }
    if lo >= hi {
        return Err(invalid(
            HL,
            "cannot compute the estimate: the shifts range over a single value",
        ));
    }
    if sign(f_lo) * sign(f_hi) > 0.0 {
        return Err(invalid(
            HL,
            "cannot compute the estimate: the rank statistic does not change sign over the range",
        ));
    }
    let estimate = zeroin(uncorrected, lo, hi, f_lo, f_hi, R_UNIROOT_TOL);
    Ok(ShiftEstimate {
        estimate,
        lower,
        upper,
        conf_level,
    })
}

/// `tol.root` of R's `wilcox.test`.
const R_UNIROOT_TOL: f64 = 1e-4;

fn check_sample(name: &str, sample: &[f64]) -> Result<()> {
    if sample.is_empty() {
        return Err(invalid(TEST, format!("sample {name} is empty")));
    }
    if let Some(bad) = sample.iter().find(|v| !v.is_finite()) {
        return Err(invalid(
            TEST,
            format!("sample {name} holds a non-finite value ({bad})"),
        ));
    }
    Ok(())
}

/// The sum of the (average) ranks of the x values in the pooled sample, and Σ(t³ − t) over
/// the groups of tied values.
struct RankSums {
    x_rank_sum: f64,
    tie_term: f64,
}

/// Ranks of the pooled sample of `x` (ascending, possibly with new ties) and `y` (sorted)
/// by one merge; ties share their average rank, as R's `rank` and scipy's `rankdata`.
/// Every rank is a multiple of ½ and every sum here an exact float, as in R.
fn rank_sums(x: impl Iterator<Item = f64>, y: &[f64]) -> RankSums {
    let mut x = x.peekable();
    let mut y = y.iter().copied().peekable();
    let mut next_rank = 1.0;
    let mut x_rank_sum = 0.0;
    let mut tie_term = 0.0;
    loop {
        let value = match (x.peek(), y.peek()) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let mut in_x = 0.0;
        while x.next_if(|&v| v == value).is_some() {
            in_x += 1.0;
        }
        let mut in_y = 0.0;
        while y.next_if(|&v| v == value).is_some() {
            in_y += 1.0;
        }
        let group: f64 = in_x + in_y;
        let average_rank = next_rank + (group - 1.0) / 2.0;
        x_rank_sum += in_x * average_rank;
        tie_term += group * group * group - group;
        next_rank += group;
    }
    RankSums {
        x_rank_sum,
        tie_term,
    }
}

/// R's `W(d)` inside `wilcox.test.default`, on sorted copies of the samples.
struct ShiftStatistic {
    x_sorted: Vec<f64>,
    y_sorted: Vec<f64>,
    x_min: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
}

impl ShiftStatistic {
    fn new(x: &[f64], y: &[f64]) -> Self {
        let mut x_sorted = x.to_vec();
        let mut y_sorted = y.to_vec();
        x_sorted.sort_by(f64::total_cmp);
        y_sorted.sort_by(f64::total_cmp);
        ShiftStatistic {
            x_min: x_sorted[0],
            x_max: x_sorted[x_sorted.len() - 1],
            y_min: y_sorted[0],
            y_max: y_sorted[y_sorted.len() - 1],
            x_sorted,
            y_sorted,
        }
    }

    /// (dz − correction)/σ for the ranks of c(x − d, y), in R's order of operations so the
    /// floats are R's. `correction` is `None` for R's `correct = FALSE`.
    fn w(&self, d: f64, correction: Option<Alternative>) -> f64 {
        let n_x = self.x_sorted.len() as f64;
        let n_y = self.y_sorted.len() as f64;
        // x − d keeps the order of x (rounding may create ties, which R sees too).
        let ranks = rank_sums(self.x_sorted.iter().map(|v| v - d), &self.y_sorted);
        let dz = ranks.x_rank_sum - n_x * (n_x + 1.0) / 2.0 - n_x * n_y / 2.0;
        let correction = match correction {
            None => 0.0,
            Some(Alternative::TwoSided) => sign(dz) * 0.5,
            Some(Alternative::Greater) => 0.5,
            Some(Alternative::Less) => -0.5,
        };
        let sigma = ((n_x * n_y / 12.0)
            * ((n_x + n_y + 1.0) - ranks.tie_term / ((n_x + n_y) * (n_x + n_y - 1.0))))
            .sqrt();
        (dz - correction) / sigma
    }
}

/// R's `sign`: −1, 0 or 1.
fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// A zero of `f` in [a, b], given f(a) and f(b) of opposite signs (or one of them 0), by
/// Brent's method in the form of Forsythe, Malcolm & Moler, *Computer Methods for
/// Mathematical Computations* (1977), `zeroin` — the algorithm of R's `uniroot`
/// (`R_zeroin2` in R's `zeroin.c`, netlib `c/brent.shar`), step for step, with R's
/// iteration limit of 1000. Returns the best approximation b when |c − b|/2 ≤
/// 2ε|b| + tol/2 or f(b) = 0.
fn zeroin(mut f: impl FnMut(f64) -> f64, ax: f64, bx: f64, fa: f64, fb: f64, tol: f64) -> f64 {
    const MAX_ITERATIONS: usize = 1000;
    let (mut a, mut b, mut c) = (ax, bx, ax);
    let (mut fa, mut fb, mut fc) = (fa, fb, fa);
    if fa == 0.0 {
        return a;
    }
    if fb == 0.0 {
        return b;
    }
    for _ in 0..=MAX_ITERATIONS {
        let prev_step = b - a;
        if fc.abs() < fb.abs() {
            // Make b the best approximation so far.
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol_act = 2.0 * f64::EPSILON * b.abs() + tol / 2.0;
        let mut new_step = (c - b) / 2.0;
        if new_step.abs() <= tol_act || fb == 0.0 {
            return b;
        }
        // Interpolate when the previous step was large enough and in the right direction.
        if prev_step.abs() >= tol_act && fa.abs() > fb.abs() {
            let cb = c - b;
            let (mut p, mut q);
            if a == c {
                // Two distinct points: the secant.
                let t1 = fb / fa;
                p = cb * t1;
                q = 1.0 - t1;
            } else {
                // Inverse quadratic interpolation.
                let qa = fa / fc;
                let t1 = fb / fc;
                let t2 = fb / fa;
                p = t2 * (cb * qa * (qa - t1) - (b - a) * (t1 - 1.0));
                q = (qa - 1.0) * (t1 - 1.0) * (t2 - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            // Accept it when it falls well inside [b, c] and is not larger than half the
            // step before last; otherwise bisect.
            if p < 0.75 * cb * q - (tol_act * q).abs() / 2.0 && p < (prev_step * q / 2.0).abs() {
                new_step = p / q;
            }
        }
        if new_step.abs() < tol_act {
            new_step = if new_step > 0.0 { tol_act } else { -tol_act };
        }
        a = b;
        fa = fb;
        b += new_step;
        fb = f(b);
        if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) {
            c = a;
            fc = fa;
        }
    }
    b
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values as the references print them
mod tests {
    use super::*;

    #[test]
    fn u_counts_pairs() {
        let r = mann_whitney_u(&[3.0, 4.0, 5.0], &[1.0, 2.0, 4.0], Alternative::Greater).unwrap();
        // pairs with x > y: 3>1,3>2,4>1,4>2,5>1,5>2,5>4 = 7, plus the tie 4=4 as ½.
        assert_eq!(r.u, 7.5);
        assert!(r.z > 0.0);
        assert_eq!((r.n_x, r.n_y), (3, 3));
    }

    #[test]
    fn p_values_match_scipy() {
        // scipy 1.17: mannwhitneyu([1.1, 2.3, 2.3, 4.0, 5.5], [0.5, 1.1, 1.9, 2.0],
        //   method="asymptotic", alternative=…).pvalue
        let x = [1.1, 2.3, 2.3, 4.0, 5.5];
        let y = [0.5, 1.1, 1.9, 2.0];
        let expected = [
            (Alternative::TwoSided, 0.083_788_938_042_391_39),
            (Alternative::Greater, 0.041_894_469_021_195_695),
            (Alternative::Less, 0.975_929_900_208_989_1),
        ];
        for (alternative, p) in expected {
            let r = mann_whitney_u(&x, &y, alternative).unwrap();
            assert!(
                (r.p_value - p).abs() < 1e-12 * p,
                "{alternative:?}: {}",
                r.p_value
            );
        }
    }

    #[test]
    fn all_tied_gives_p_one() {
        let r = mann_whitney_u(&[2.0, 2.0], &[2.0, 2.0, 2.0], Alternative::TwoSided).unwrap();
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.z, 0.0);
    }

    #[test]
    fn bad_samples_are_errors() {
        assert!(mann_whitney_u(&[], &[1.0], Alternative::TwoSided).is_err());
        assert!(mann_whitney_u(&[1.0], &[f64::NAN], Alternative::TwoSided).is_err());
        assert!(hodges_lehmann(&[1.0, 2.0], &[], 0.95, Alternative::TwoSided).is_err());
        assert!(hodges_lehmann(&[1.0, 2.0], &[1.0], 1.0, Alternative::TwoSided).is_err());
        assert!(hodges_lehmann(&[1.0, f64::INFINITY], &[1.0], 0.9, Alternative::Less).is_err());
    }

    #[test]
    fn all_tied_hodges_lehmann_is_an_error_as_in_r() {
        let err =
            hodges_lehmann(&[3.0, 3.0, 3.0], &[1.0, 1.0], 0.95, Alternative::TwoSided).unwrap_err();
        assert!(err.to_string().contains("tied"), "{err}");
    }

    #[test]
    fn hodges_lehmann_matches_r() {
        // R 4.2: wilcox.test(c(1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30),
        //   c(0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.15, 1.29),
        //   conf.int = TRUE, exact = FALSE, correct = TRUE)
        let x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30];
        let y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.15, 1.29];
        let r = hodges_lehmann(&x, &y, 0.95, Alternative::TwoSided).unwrap();
        assert!(
            (r.estimate - 0.560_025_010_452_746_44).abs() < 1e-12,
            "{r:?}"
        );
        assert!((r.lower - -0.369_995_307_105_574_54).abs() < 1e-12, "{r:?}");
        assert!((r.upper - 1.182_989_589_998_540_1).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn one_sided_intervals_are_open_on_one_end() {
        let x = [5.0, 6.0, 7.0, 8.0, 9.0];
        let y = [1.0, 2.0, 3.0, 4.0, 5.5];
        let g = hodges_lehmann(&x, &y, 0.9, Alternative::Greater).unwrap();
        assert_eq!(g.upper, f64::INFINITY);
        assert!(g.lower < g.estimate);
        let l = hodges_lehmann(&x, &y, 0.9, Alternative::Less).unwrap();
        assert_eq!(l.lower, f64::NEG_INFINITY);
        assert!(l.upper > l.estimate);
        assert_eq!(g.estimate, l.estimate);
    }

    #[test]
    fn zeroin_finds_a_smooth_root() {
        let f = |x: f64| x * x - 2.0;
        let root = zeroin(f, 0.0, 2.0, f(0.0), f(2.0), 1e-12);
        assert!((root - std::f64::consts::SQRT_2).abs() < 1e-11);
    }
}
