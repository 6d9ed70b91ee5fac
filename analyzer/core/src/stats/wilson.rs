//! The Wilson score interval for a proportion.

use super::invalid;
use super::normal::normal_quantile;
use crate::Result;

/// The two-sided Wilson score interval (lower, upper) for `successes` out of `trials` at
/// confidence `conf_level` (Wilson 1927, "Probable inference, the law of succession, and
/// statistical inference", JASA 22; in the form of Newcombe 1998, "Two-sided confidence
/// intervals for the single proportion", method 3, without continuity correction). As
/// scipy's `binomtest(k, n).proportion_ci(confidence_level, method="wilson")`: with
/// z = Φ⁻¹(½ + ½·level),
///
/// ```text
/// (2np̂ + z² ± z √(z² + 4np̂(1 − p̂))) / (2(n + z²)),
/// ```
///
/// and the lower end is exactly 0 when there are no successes, the upper end exactly 1
/// when every trial is a success. Used to report a simulated false-rollback rate with its
/// uncertainty. (0, 1) for no trials; errors when `successes > trials` or the level is not
/// in (0, 1).
pub fn wilson_interval(successes: u64, trials: u64, conf_level: f64) -> Result<(f64, f64)> {
    const TEST: &str = "wilson";
    if successes > trials {
        return Err(invalid(
            TEST,
            format!("{successes} successes among {trials} trials"),
        ));
    }
    if !(conf_level > 0.0 && conf_level < 1.0) {
        return Err(invalid(
            TEST,
            format!("confidence level must be in (0, 1), found {conf_level}"),
        ));
    }
    if trials == 0 {
        return Ok((0.0, 1.0));
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z = normal_quantile(0.5 + 0.5 * conf_level);
    let z2 = z * z;
    let denominator = 2.0 * (n + z2);
    let center = (2.0 * n * p + z2) / denominator;
    let half_width = z / denominator * (4.0 * n * p * (1.0 - p) + z2).sqrt();
    let lower = if successes == 0 {
        0.0
    } else {
        center - half_width
    };
    let upper = if successes == trials {
        1.0
    } else {
        center + half_width
    };
    Ok((lower, upper))
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values as the references print them
mod tests {
    use super::*;

    #[test]
    fn matches_scipy() {
        // scipy 1.17: binomtest(7, 50).proportion_ci(0.95, method="wilson")
        let (lo, hi) = wilson_interval(7, 50, 0.95).unwrap();
        assert!((lo - 0.069_508_334_270_162_92).abs() < 1e-15, "{lo}");
        assert!((hi - 0.261_861_937_105_855_37).abs() < 1e-15, "{hi}");
    }

    #[test]
    fn ends_are_exact_at_the_extremes() {
        let (lo, hi) = wilson_interval(0, 2000, 0.95).unwrap();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.002);
        let (lo, hi) = wilson_interval(30, 30, 0.95).unwrap();
        assert_eq!(hi, 1.0);
        assert!(lo > 0.85);
        assert_eq!(wilson_interval(0, 0, 0.95).unwrap(), (0.0, 1.0));
    }

    #[test]
    fn bad_inputs() {
        assert!(wilson_interval(3, 2, 0.95).is_err());
        assert!(wilson_interval(1, 2, 1.0).is_err());
        assert!(wilson_interval(1, 2, f64::NAN).is_err());
    }
}
