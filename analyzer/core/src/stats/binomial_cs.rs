//! Anytime-valid confidence sequence for one binomial rate: the beta-binomial mixture
//! martingale, for absolute bounds such as "canary error rate ≤ 0.1 %".
//!
//! After n trials with e events, mix the likelihood over a Beta(a, b) prior on the rate and
//! divide by the likelihood at p:
//!
//! ```text
//! M_n(p) = [B(a + e, b + n − e) / B(a, b)] / [pᵉ (1 − p)ⁿ⁻ᵉ].
//! ```
//!
//! For the true p, M_n(p) is a nonnegative martingale with M₀ = 1 (a mixture of likelihood
//! ratios), so by Ville's inequality P(∃n: M_n(p) ≥ 1/α) ≤ α, and {p : M_n(p) < 1/α} is a
//! confidence sequence: it covers the true rate at every n at once with probability ≥ 1 − α
//! (Robbins 1970, "Statistical methods related to the law of the iterated logarithm";
//! Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic
//! confidence sequences", Annals of Statistics 49(2), the beta-binomial mixture). Since
//! −ln pᵉ(1 − p)ⁿ⁻ᵉ is convex in p the set is an interval around e/n.
//!
//! The default prior is Jeffreys', Beta(½, ½): invariant to reparametrisation, and with
//! much of its mass near 0 and 1, so the small rates SLOs are about (0.1 %) are not
//! penalised as they would be by a uniform prior. A rollout can decide "rate above the
//! bound p₀" as soon as the lower end of the interval passes p₀, and "rate below" when the
//! upper end falls under it; both decisions are valid at any stopping time.

use super::invalid;
use super::special::ln_beta;
use crate::Result;

const TEST: &str = "binomial-confidence-sequence";

/// The beta-binomial mixture confidence sequence with a Beta(a, b) prior on the rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BinomialConfidenceSequence {
    prior_a: f64,
    prior_b: f64,
}

impl Default for BinomialConfidenceSequence {
    /// The Jeffreys prior, Beta(½, ½).
    fn default() -> Self {
        Self::jeffreys()
    }
}

impl BinomialConfidenceSequence {
    /// With the Jeffreys prior Beta(½, ½), the default.
    pub fn jeffreys() -> Self {
        BinomialConfidenceSequence {
            prior_a: 0.5,
            prior_b: 0.5,
        }
    }

    /// With a Beta(a, b) prior; errors unless both are finite and positive.
    pub fn with_prior(a: f64, b: f64) -> Result<Self> {
        if !(a.is_finite() && a > 0.0 && b.is_finite() && b > 0.0) {
            return Err(invalid(
                TEST,
                format!("prior parameters must be finite and > 0, found a = {a}, b = {b}"),
            ));
        }
        Ok(BinomialConfidenceSequence {
            prior_a: a,
            prior_b: b,
        })
    }

    /// ln M_n(p) after `trials` trials with `events` events (see the [module docs](self)).
    ///
    /// +∞ where the likelihood is 0 (p = 0 with an event, p = 1 with a non-event). Errors
    /// when `events > trials` or `p` is not in [0, 1].
    pub fn log_mixture(&self, events: u64, trials: u64, p: f64) -> Result<f64> {
        check_counts(events, trials)?;
        if !(0.0..=1.0).contains(&p) {
            return Err(invalid(TEST, format!("p must be in [0, 1], found {p}")));
        }
        Ok(self.log_mixture_at(events, trials, p.ln(), (-p).ln_1p()))
    }

    /// The e-value M_n(p₀) against the point null p = p₀. It is valid (Ville) for that
    /// point null only: it also grows when the data say p < p₀. For the one-sided decisions a
    /// rollout takes, compare p₀ with the ends of [`interval`](Self::interval) instead.
    pub fn e_value(&self, events: u64, trials: u64, p0: f64) -> Result<f64> {
        Ok(self.log_mixture(events, trials, p0)?.exp())
    }

    /// The confidence sequence at n = `trials`: (lower, upper), the ends of
    /// {p : M_n(p) < 1/α}, found by bracketing (halving p, or 1 − p, from the estimate e/n)
    /// and then bisecting down to adjacent floats: a robust root finder that cannot miss,
    /// accurate to about 1e−15 relative.
    ///
    /// (0, 1) when there are no trials; the lower end is 0 when there are no events and the
    /// upper end 1 when every trial is an event. Errors when `events > trials` or α is not in
    /// (0, 1).
    pub fn interval(&self, events: u64, trials: u64, alpha: f64) -> Result<(f64, f64)> {
        check_counts(events, trials)?;
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(invalid(
                TEST,
                format!("alpha must be in (0, 1), found {alpha}"),
            ));
        }
        if trials == 0 {
            return Ok((0.0, 1.0));
        }
        let threshold = -alpha.ln();
        let p_hat = events as f64 / trials as f64;
        // f < 0 inside the set. At the maximum-likelihood estimate M ≤ 1 (a mixture never
        // beats the best single likelihood), so f(p̂) < 0 and each end is a single crossing.
        // The mixture's marginal likelihood does not depend on p: compute it once.
        let marginal = self.log_marginal(events, trials);
        let f =
            |p: f64| marginal - log_likelihood(events, trials, p.ln(), (-p).ln_1p()) - threshold;
        let lower = if events == 0 {
            0.0
        } else {
            // Bracket by halving p towards 0.
            let (mut inside, mut outside) = (p_hat, p_hat / 2.0);
            while f(outside) < 0.0 {
                inside = outside;
                outside /= 2.0;
            }
            bisect(f, inside, outside)
        };
        let upper = if events == trials {
            1.0
        } else {
            // Bracket by halving 1 − p towards 0 (exact: 1 − p has no rounding for p ≥ ½).
            let (mut inside, mut outside) = (p_hat, 1.0 - (1.0 - p_hat) / 2.0);
            while f(outside) < 0.0 {
                inside = outside;
                outside = 1.0 - (1.0 - outside) / 2.0;
            }
            bisect(f, inside, outside)
        };
        Ok((lower, upper))
    }

    /// ln M with ln p and ln(1 − p) given, so either may be the accurate one.
    fn log_mixture_at(&self, events: u64, trials: u64, ln_p: f64, ln_q: f64) -> f64 {
        self.log_marginal(events, trials) - log_likelihood(events, trials, ln_p, ln_q)
    }

    /// ln of the prior-mixed likelihood, B(a + e, b + n − e) / B(a, b).
    fn log_marginal(&self, events: u64, trials: u64) -> f64 {
        let e = events as f64;
        let f = (trials - events) as f64;
        ln_beta(self.prior_a + e, self.prior_b + f) - ln_beta(self.prior_a, self.prior_b)
    }
}

/// ln of the binomial likelihood p^e (1 − p)^(n − e), from ln p and ln(1 − p).
fn log_likelihood(events: u64, trials: u64, ln_p: f64, ln_q: f64) -> f64 {
    let e = events as f64;
    let f = (trials - events) as f64;
    // 0 · ln 0 counts as 0: a rate of 0 explains no events perfectly well.
    (if events == 0 { 0.0 } else { e * ln_p }) + if events == trials { 0.0 } else { f * ln_q }
}

/// ln M_n(p) with the Jeffreys prior; see [`BinomialConfidenceSequence::log_mixture`].
pub fn log_mixture(events: u64, trials: u64, p: f64) -> Result<f64> {
    BinomialConfidenceSequence::jeffreys().log_mixture(events, trials, p)
}

/// The e-value M_n(p₀) with the Jeffreys prior; see [`BinomialConfidenceSequence::e_value`].
pub fn e_value(events: u64, trials: u64, p0: f64) -> Result<f64> {
    BinomialConfidenceSequence::jeffreys().e_value(events, trials, p0)
}

/// The confidence sequence (lower, upper) with the Jeffreys prior; see
/// [`BinomialConfidenceSequence::interval`].
pub fn interval(events: u64, trials: u64, alpha: f64) -> Result<(f64, f64)> {
    BinomialConfidenceSequence::jeffreys().interval(events, trials, alpha)
}

fn check_counts(events: u64, trials: u64) -> Result<()> {
    if events > trials {
        return Err(invalid(
            TEST,
            format!("{events} events among {trials} trials (more events than trials)"),
        ));
    }
    Ok(())
}

/// Bisects between a point `inside` the set (f < 0) and one `outside` it (f ≥ 0) until they
/// are adjacent floating-point numbers, and returns the outside one, so the interval errs on
/// the wide side by at most one unit in the last place. Bisecting in p itself keeps the
/// relative accuracy of ends near 0; an end near 1 has the absolute accuracy of its float.
fn bisect(f: impl Fn(f64) -> f64, mut inside: f64, mut outside: f64) -> f64 {
    loop {
        let mid = inside + (outside - inside) / 2.0;
        if mid == inside || mid == outside {
            return outside;
        }
        if f(mid) < 0.0 {
            inside = mid;
        } else {
            outside = mid;
        }
    }
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values as the references print them
mod tests {
    use super::*;

    #[test]
    fn no_trials_gives_the_unit_interval() {
        assert_eq!(interval(0, 0, 0.05).unwrap(), (0.0, 1.0));
        assert_eq!(log_mixture(0, 0, 0.3).unwrap(), 0.0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(interval(3, 2, 0.05).is_err());
        assert!(interval(1, 2, 0.0).is_err());
        assert!(interval(1, 2, 1.0).is_err());
        assert!(log_mixture(1, 2, 1.5).is_err());
        assert!(log_mixture(1, 2, f64::NAN).is_err());
        assert!(BinomialConfidenceSequence::with_prior(0.0, 1.0).is_err());
        assert!(BinomialConfidenceSequence::with_prior(1.0, f64::INFINITY).is_err());
    }

    #[test]
    fn extreme_counts_pin_the_ends() {
        let (lo, hi) = interval(0, 1000, 0.05).unwrap();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.02, "{hi}");
        let (lo, hi) = interval(1000, 1000, 0.05).unwrap();
        assert_eq!(hi, 1.0);
        assert!(lo > 0.98 && lo < 1.0, "{lo}");
        assert_eq!(
            log_mixture(0, 10, 0.0).unwrap(),
            log_mixture(0, 10, 0.0).unwrap()
        );
        assert_eq!(log_mixture(1, 10, 0.0).unwrap(), f64::INFINITY);
        assert_eq!(log_mixture(9, 10, 1.0).unwrap(), f64::INFINITY);
    }

    #[test]
    fn ends_sit_on_the_threshold() {
        let alpha = 0.01;
        let (lo, hi) = interval(37, 12_345, alpha).unwrap();
        assert!(lo < 37.0 / 12_345.0 && 37.0 / 12_345.0 < hi);
        for end in [lo, hi] {
            let value = log_mixture(37, 12_345, end).unwrap();
            assert!((value - (1.0 / alpha).ln()).abs() < 1e-9, "{value}");
        }
        // Tiny rates keep their relative accuracy.
        let (lo, _) = interval(1, 10_000_000_000, alpha).unwrap();
        let value = log_mixture(1, 10_000_000_000, lo).unwrap();
        assert!(lo > 0.0 && (value - (1.0 / alpha).ln()).abs() < 1e-9);
    }

    #[test]
    fn narrower_with_more_data_and_wider_with_smaller_alpha() {
        let (a_lo, a_hi) = interval(10, 1000, 0.05).unwrap();
        let (b_lo, b_hi) = interval(100, 10_000, 0.05).unwrap();
        assert!(b_lo > a_lo && b_hi < a_hi);
        let (c_lo, c_hi) = interval(10, 1000, 0.01).unwrap();
        assert!(c_lo < a_lo && c_hi > a_hi);
    }

    #[test]
    fn e_value_is_the_mixture_ratio() {
        let m = e_value(3, 10, 0.5).unwrap();
        // B(3.5, 7.5)/B(0.5, 0.5) / 0.5^10
        let expected = (statrs::function::beta::ln_beta(3.5, 7.5)
            - statrs::function::beta::ln_beta(0.5, 0.5)
            + 10.0 * std::f64::consts::LN_2)
            .exp();
        assert!((m - expected).abs() < 1e-12 * expected);
    }
}
