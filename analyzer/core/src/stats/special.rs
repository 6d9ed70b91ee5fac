//! Special functions written for accuracy at the counts canary sees.
//!
//! A rollout step easily serves 10⁶ requests. ln Γ(10⁶) ≈ 1.3·10⁷, so differencing
//! log-gamma values naively (ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b), or log-factorials
//! for a hypergeometric probability) loses about 1e−9 absolute to cancellation before any
//! statistics is done. These routines work with Stirling's correction instead, the
//! approach of Loader (2000), "Fast and accurate computation of binomial probabilities",
//! which R's `dbinom`/`dhyper` and the Cephes `lbeta` also follow.
//!
//! statrs 0.19 (a dependency for the normal quantile) has each of these, computed the naive
//! way: against mpmath at the arguments canary meets its `ln_beta` is 4.4e−10 off, its
//! binomial and hypergeometric log-probabilities 1e−10 and 2e−10, and its Lanczos `ln_gamma`
//! 3.6e−15 (this module: 4e−16, 1.2e−15, 4e−16, 3e−16). So they stay here; each function says
//! what it is measured against (`cargo bench -p canary-core --bench special_functions`).

/// ln √(2π).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Below this argument the Stirling series is not used directly (see [`stirling_correction`]).
const SERIES_FROM: f64 = 15.0;

/// Stirling's correction δ(x) = ln Γ(x) − [(x − ½) ln x − x + ln √(2π)] for x > 0.
///
/// For an integer n, δ(n) = ln n! − ln(√(2πn) (n/e)ⁿ) is Loader's `stirlerr(n)`. For
/// x ≥ 15 the asymptotic series (Abramowitz & Stegun 6.1.41) up to x⁻¹¹ is accurate to
/// about 3e−18; below, the recurrence δ(x) = δ(x + 1) + (x + ½) ln(1 + 1/x) − 1 (from
/// Γ(x + 1) = x Γ(x)) climbs to the series' range, each step exact to about 1e−16.
pub fn stirling_correction(x: f64) -> f64 {
    let mut acc = 0.0;
    let mut y = x;
    while y < SERIES_FROM {
        acc += (y + 0.5) * (1.0 / y).ln_1p() - 1.0;
        y += 1.0;
    }
    acc + stirling_series(y)
}

/// The Stirling series 1/(12y) − 1/(360y³) + 1/(1260y⁵) − 1/(1680y⁷) + 1/(1188y⁹) −
/// 691/(360360y¹¹), for y ≥ 15.
fn stirling_series(y: f64) -> f64 {
    const COEFFICIENTS: [f64; 6] = [
        1.0 / 12.0,
        -1.0 / 360.0,
        1.0 / 1260.0,
        -1.0 / 1680.0,
        1.0 / 1188.0,
        -691.0 / 360_360.0,
    ];
    let inv = 1.0 / y;
    let inv2 = inv * inv;
    inv * COEFFICIENTS
        .iter()
        .rev()
        .fold(0.0, |acc, &c| acc * inv2 + c)
}

/// ln Γ(x) for x > 0, as (x − ½) ln x − x + ln √(2π) + δ(x): 3.3e−16 from mpmath where
/// statrs' Lanczos `ln_gamma`, 4× faster, is 3.6e−15 off; it costs three lines on top of the
/// Stirling correction [`ln_beta`] needs anyway.
pub fn ln_gamma(x: f64) -> f64 {
    (x - 0.5) * x.ln() - x + LN_SQRT_2PI + stirling_correction(x)
}

/// ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b) for a, b > 0, without the cancellation of
/// the naive form when an argument is large (statrs' `ln_beta` is that naive form: 4.4e−10
/// off at (3.5, 10⁷), and half as fast).
///
/// With both arguments large, the large terms are gathered analytically:
/// ln B = ln √(2π) − ½ ln(a + b) + (a − ½) ln(a/(a + b)) + (b − ½) ln(b/(a + b))
///        + δ(a) + δ(b) − δ(a + b),
/// and with only b large, ln Γ(b) − ln Γ(a + b) = −(b − ½) ln(1 + a/b) − a ln(a + b) + a
/// + δ(b) − δ(a + b). The same decomposition as Cephes' `lbeta` and TOMS 708's `betaln`.
pub fn ln_beta(a: f64, b: f64) -> f64 {
    let (small, large) = if a <= b { (a, b) } else { (b, a) };
    let sum = small + large;
    if small >= SERIES_FROM {
        let corrections =
            stirling_correction(small) + stirling_correction(large) - stirling_correction(sum);
        LN_SQRT_2PI - 0.5 * sum.ln()
            + (small - 0.5) * (small / sum).ln()
            + (large - 0.5) * (-small / sum).ln_1p()
            + corrections
    } else if large >= SERIES_FROM {
        let ratio_term = -(large - 0.5) * (small / large).ln_1p() - small * sum.ln() + small;
        ln_gamma(small) + ratio_term + stirling_correction(large) - stirling_correction(sum)
    } else {
        ln_gamma(small) + ln_gamma(large) - ln_gamma(sum)
    }
}

/// Loader's deviance term bd0(x, m) = x ln(x/m) + m − x, for x ≥ 0, m > 0.
///
/// Near x = m the direct form cancels; there the series
/// 2x Σ_{j≥0} v^{2j+1}/(2j + 1) − (x − m)·v with v = (x − m)/(x + m) is summed instead
/// (Loader 2000, section 2).
pub fn bd0(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let v2 = v * v;
        let mut sum = (x - m) * v;
        let mut term = 2.0 * x * v;
        for j in 1..1000 {
            term *= v2;
            let next = sum + term / f64::from(2 * j + 1);
            if next == sum {
                return sum;
            }
            sum = next;
        }
        sum
    } else if x == 0.0 {
        m
    } else {
        x * (x / m).ln() + m - x
    }
}

/// ln P(X = x) for X ~ Binomial(n, p), with q = 1 − p given separately so neither loses
/// precision (Loader 2000, `dbinom_raw`). Counts are whole numbers held as `f64`. (statrs'
/// `Binomial::ln_pmf` differences log-factorials: 9.6e−11 off at n = 10⁶.)
pub fn ln_binomial_pmf(x: f64, n: f64, p: f64, q: f64) -> f64 {
    if x < 0.0 || x > n {
        return f64::NEG_INFINITY;
    }
    if p == 0.0 {
        return if x == 0.0 { 0.0 } else { f64::NEG_INFINITY };
    }
    if q == 0.0 {
        return if x == n { 0.0 } else { f64::NEG_INFINITY };
    }
    if x == 0.0 {
        if n == 0.0 {
            return 0.0;
        }
        return if p < 0.1 {
            -bd0(n, n * q) - n * p
        } else {
            n * q.ln()
        };
    }
    if x == n {
        return if q < 0.1 {
            -bd0(n, n * p) - n * q
        } else {
            n * p.ln()
        };
    }
    let lc = stirling_correction(n)
        - stirling_correction(x)
        - stirling_correction(n - x)
        - bd0(x, n * p)
        - bd0(n - x, n * q);
    let lf = std::f64::consts::TAU.ln() + x.ln() + (-x / n).ln_1p();
    lc - 0.5 * lf
}

/// ln P(X = x) for the hypergeometric X: `drawn` items taken without replacement from
/// `marked + unmarked`, X of them marked. As a ratio of three binomial probabilities with
/// p = drawn/(marked + unmarked), each by [`ln_binomial_pmf`] (Loader 2000; R's `dhyper`).
/// (statrs' `Hypergeometric::ln_pmf` differences log-binomials: 1.9e−10 off at 10⁶ items,
/// and 1.6× slower.)
pub fn ln_hypergeometric_pmf(x: f64, marked: f64, unmarked: f64, drawn: f64) -> f64 {
    let total = marked + unmarked;
    if x < 0.0 || x > marked || drawn - x > unmarked || x > drawn {
        return f64::NEG_INFINITY;
    }
    if drawn == 0.0 {
        return 0.0;
    }
    let p = drawn / total;
    let q = (total - drawn) / total;
    ln_binomial_pmf(x, marked, p, q) + ln_binomial_pmf(drawn - x, unmarked, p, q)
        - ln_binomial_pmf(drawn, total, p, q)
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values as the references print them
mod tests {
    use super::*;

    fn assert_close(actual: f64, expected: f64, tolerance: f64) {
        let scale = expected.abs().max(1.0);
        assert!(
            (actual - expected).abs() <= tolerance * scale,
            "{actual} vs {expected}"
        );
    }

    #[test]
    fn ln_gamma_matches_mpmath() {
        // mpmath.loggamma at 40 digits
        for (x, expected) in [
            (0.5, 0.572_364_942_924_700_087_07),
            (1.0, 0.0),
            (2.5, 0.284_682_870_472_919_159_63),
            (10.0, 12.801_827_480_081_469_611),
            (14.9, 24.924_132_002_217_278_3),
            (15.0, 25.191_221_182_738_681_5),
            (100.0, 359.134_205_369_575_398_78),
            (1e6, 12_815_504.569_147_611_66),
        ] {
            assert_close(ln_gamma(x), expected, 2e-15);
        }
    }

    #[test]
    fn ln_beta_matches_mpmath() {
        // mpmath.log(mpmath.beta(a, b)) at 40 digits. (scipy 1.17's betaln(0.5, 1e6) is
        // -6.3353902120143175, 1e-9 off: the cancellation this module avoids.)
        for (a, b, expected) in [
            (0.5, 0.5, 1.144_729_885_849_400_174_1),
            (0.5, 1e6, -6.335_390_211_057_436_965),
            (1e6, 1e6, -1_386_300.003_362_921_116_3),
            (20.5, 30.5, -34.692_794_793_072_825_634),
            (3.5, 1e7 + 0.5, -55.212_361_788_506_975_034),
            (1e-3, 2.0, 6.906_755_778_649_053_498),
            (14.5, 15.5, -20.857_358_634_363_310_48),
            (100.5, 0.5, -1.731_470_144_861_168_501_8),
            (999_999.5, 1.5, -20.844_047_699_581_531_378),
        ] {
            assert_close(ln_beta(a, b), expected, 2e-15);
        }
    }

    #[test]
    fn binomial_pmf_sums_to_one() {
        let n = 40.0;
        let p: f64 = 0.3;
        let total: f64 = (0..=40)
            .map(|x| ln_binomial_pmf(f64::from(x), n, p, 1.0 - p).exp())
            .sum();
        assert_close(total, 1.0, 1e-14);
    }

    #[test]
    fn hypergeometric_pmf_matches_direct_count() {
        // P(X = 2) drawing 5 from 7 marked + 9 unmarked = C(7,2) C(9,3) / C(16,5) = 21·84/4368.
        let p = ln_hypergeometric_pmf(2.0, 7.0, 9.0, 5.0).exp();
        assert_close(p, 21.0 * 84.0 / 4368.0, 1e-15);
        assert_eq!(ln_hypergeometric_pmf(6.0, 7.0, 9.0, 5.0), f64::NEG_INFINITY);
        assert_eq!(ln_hypergeometric_pmf(0.0, 7.0, 9.0, 0.0), 0.0);
    }
}
