//! Fisher's exact test for a 2×2 table.
//!
//! A fixed-sample test (valid for one look), kept as a cross-check of the sequential
//! [`super::rate_ratio`] test and for one-off `canary analyze` comparisons of small counts.

use serde::Serialize;

use super::special::ln_hypergeometric_pmf;
use super::{Alternative, invalid};
use crate::Result;

/// The result of [`fisher_exact`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FisherExact {
    /// The sample odds ratio (a·d)/(b·c) of the table [[a, b], [c, d]]; +∞ when b·c = 0,
    /// NaN when a row or column is empty.
    pub odds_ratio: f64,
    /// The p-value for the alternative asked for.
    pub p_value: f64,
}

/// Fisher's exact test of independence for the 2×2 table `[[a, b], [c, d]]`, as
/// `scipy.stats.fisher_exact(table, alternative=…)` computes it (scipy 1.17,
/// `stats/_stats_py.py`).
///
/// Given the margins, a follows the hypergeometric law. "less" is P(X ≤ a), "greater" is
/// P(X ≥ a) (odds ratio above 1), and two-sided sums the probabilities of all tables no
/// more likely than the observed one, with scipy's relative tolerance: tables with
/// probability ≤ P(a)·(1 + 1e−14) count, and the p-value is 1 when P(a) is within 1e−14 of
/// the mode's probability. A table with an empty row or column gives (NaN, 1), as scipy.
///
/// Probabilities come from Loader's saddle-point form of the hypergeometric (as in R's
/// `dhyper`) rather than from differences of log-factorials, which at 10⁶ requests would
/// lose ~1e−9 to cancellation; tails are summed from the far side of the mode outward.
///
/// Errors when a count is too large to be held exactly in a float (> 2⁵³).
pub fn fisher_exact(table: [[u64; 2]; 2], alternative: Alternative) -> Result<FisherExact> {
    const EXACT: u64 = 1 << 53;
    let [[a, b], [c, d]] = table;
    if a.max(b).max(c).max(d) > EXACT / 4 {
        return Err(invalid(
            "fisher-exact",
            "counts above 2^51 cannot be handled exactly",
        ));
    }
    let (a, b, c, d) = (a as f64, b as f64, c as f64, d as f64);
    if a + b == 0.0 || c + d == 0.0 || a + c == 0.0 || b + d == 0.0 {
        return Ok(FisherExact {
            odds_ratio: f64::NAN,
            p_value: 1.0,
        });
    }
    let odds_ratio = if c > 0.0 && b > 0.0 {
        (a * d) / (c * b)
    } else {
        f64::INFINITY
    };
    let law = Hypergeometric::new(a + b, c + d, a + c);
    let p_value = match alternative {
        Alternative::Less => law.cdf(a),
        Alternative::Greater => law.sf(a - 1.0),
        Alternative::TwoSided => law.two_sided(a),
    };
    Ok(FisherExact {
        odds_ratio,
        p_value: p_value.min(1.0),
    })
}

/// The law of the top-left cell given the margins: `drawn` (first column total) taken from
/// `marked` (first row total) + `unmarked` (second row total).
struct Hypergeometric {
    marked: f64,
    unmarked: f64,
    drawn: f64,
    low: f64,
    high: f64,
    mode: f64,
}

/// Stop summing a tail when what is left is below this fraction of the sum.
const TAIL_PRECISION: f64 = 1e-17;

impl Hypergeometric {
    fn new(marked: f64, unmarked: f64, drawn: f64) -> Self {
        let total = marked + unmarked;
        Hypergeometric {
            marked,
            unmarked,
            drawn,
            low: (drawn - unmarked).max(0.0),
            high: drawn.min(marked),
            mode: ((drawn + 1.0) * (marked + 1.0) / (total + 2.0)).floor(),
        }
    }

    fn pmf(&self, x: f64) -> f64 {
        ln_hypergeometric_pmf(x, self.marked, self.unmarked, self.drawn).exp()
    }

    /// P(X ≤ k).
    fn cdf(&self, k: f64) -> f64 {
        if k < self.low {
            0.0
        } else if k >= self.high {
            1.0
        } else if k < self.mode {
            self.sum_away_from_mode(k, -1.0)
        } else {
            1.0 - self.sum_away_from_mode(k + 1.0, 1.0)
        }
    }

    /// P(X > k).
    fn sf(&self, k: f64) -> f64 {
        if k < self.low {
            1.0
        } else if k >= self.high {
            0.0
        } else if k >= self.mode {
            self.sum_away_from_mode(k + 1.0, 1.0)
        } else {
            1.0 - self.sum_away_from_mode(k, -1.0)
        }
    }

    /// Σ P(X = x) for x = start, start + step, … to the end of the support, where `start` is
    /// on the far side of the mode so the terms only shrink. The law is log-concave, so once
    /// a term is t with ratio r to the one before, what is left is at most t·r/(1 − r).
    fn sum_away_from_mode(&self, start: f64, step: f64) -> f64 {
        let mut x = start;
        let mut sum = 0.0;
        let mut previous = f64::INFINITY;
        while x >= self.low && x <= self.high {
            let term = self.pmf(x);
            sum += term;
            if term == 0.0 {
                break;
            }
            if previous.is_finite() {
                let ratio = term / previous;
                if ratio < 1.0 && term * ratio / (1.0 - ratio) < TAIL_PRECISION * sum {
                    break;
                }
            }
            previous = term;
            x += step;
        }
        sum
    }

    /// The two-sided p-value of scipy's `fisher_exact`.
    fn two_sided(&self, observed: f64) -> f64 {
        const EPSILON: f64 = 1e-14;
        let gamma = 1.0 + EPSILON;
        let p_observed = self.pmf(observed);
        let p_mode = self.pmf(self.mode);
        if (p_observed - p_mode).abs() / p_observed.max(p_mode) <= EPSILON {
            return 1.0;
        }
        let limit = p_observed * gamma;
        if observed < self.mode {
            // The other tail: x > mode with P(x) < limit. P falls monotonically above the
            // mode; find the first such x by bisection.
            let (mut inside, mut beyond) = (self.mode, self.high + 1.0);
            while beyond - inside > 1.0 {
                let mid = (inside + (beyond - inside) / 2.0).floor();
                if self.pmf(mid) >= limit {
                    inside = mid;
                } else {
                    beyond = mid;
                }
            }
            let upper = if beyond > self.high {
                0.0
            } else {
                self.sum_away_from_mode(beyond, 1.0)
            };
            self.cdf(observed) + upper
        } else {
            // The other tail: x < mode with P(x) ≤ limit; P rises monotonically up to the mode.
            let (mut beyond, mut inside) = (self.low - 1.0, self.mode);
            while inside - beyond > 1.0 {
                let mid = (beyond + (inside - beyond) / 2.0).floor();
                if self.pmf(mid) <= limit {
                    beyond = mid;
                } else {
                    inside = mid;
                }
            }
            let lower = if beyond < self.low {
                0.0
            } else {
                self.sum_away_from_mode(beyond, -1.0)
            };
            self.sf(observed - 1.0) + lower
        }
    }
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values as the references print them
mod tests {
    use super::*;

    fn p(table: [[u64; 2]; 2], alternative: Alternative) -> f64 {
        fisher_exact(table, alternative).unwrap().p_value
    }

    #[test]
    fn tea_tasting() {
        // Fisher's lady tasting tea: [[3, 1], [1, 3]]; scipy: two-sided 0.48571428571428565,
        // greater 0.24285714285714283, less 0.9857142857142858.
        let t = [[3, 1], [1, 3]];
        assert!((p(t, Alternative::TwoSided) - 0.485_714_285_714_285_7).abs() < 1e-15);
        assert!((p(t, Alternative::Greater) - 0.242_857_142_857_142_85).abs() < 1e-15);
        assert!((p(t, Alternative::Less) - 0.985_714_285_714_285_8).abs() < 1e-15);
        assert_eq!(fisher_exact(t, Alternative::Less).unwrap().odds_ratio, 9.0);
    }

    #[test]
    fn empty_margin_gives_nan_and_one() {
        let r = fisher_exact([[0, 0], [3, 4]], Alternative::TwoSided).unwrap();
        assert!(r.odds_ratio.is_nan());
        assert_eq!(r.p_value, 1.0);
        let r = fisher_exact([[0, 5], [0, 4]], Alternative::Greater).unwrap();
        assert_eq!(r.p_value, 1.0);
    }

    #[test]
    fn infinite_odds_ratio() {
        let r = fisher_exact([[5, 0], [2, 4]], Alternative::TwoSided).unwrap();
        assert_eq!(r.odds_ratio, f64::INFINITY);
        assert!(r.p_value < 0.1);
    }

    #[test]
    fn table_at_the_mode_has_p_one() {
        assert_eq!(p([[5, 5], [5, 5]], Alternative::TwoSided), 1.0);
    }

    #[test]
    fn huge_counts_are_refused() {
        assert!(fisher_exact([[1 << 60, 0], [0, 1]], Alternative::Less).is_err());
    }
}
