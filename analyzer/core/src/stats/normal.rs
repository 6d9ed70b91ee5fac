//! The standard normal distribution: distribution function, upper tail, quantile.
//!
//! The distribution function is written here for accuracy in both tails; the quantile is
//! statrs' (each function's comment gives the measurement behind the choice).

/// 1/√(2π).
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The standard normal distribution function Φ(x) = P(Z ≤ x), to about 1e−15 relative in
/// both tails (Φ(−30) ≈ 4.9e−198 keeps its digits). NaN gives NaN.
///
/// Hand-written rather than statrs' `Normal::cdf` (½·erfc(−x/√2)): statrs is 50× faster, but
/// 8.6e−11 off at x = −1 (relative, against mpmath), where the Mann–Whitney goldens need
/// 1.4e−14 (`cargo bench -p canary-core --bench special_functions`).
///
/// For |x| ≤ 1 the series Φ(x) = ½ + φ(x) Σ x^(2n+1)/(1·3·…·(2n+1)) (Abramowitz & Stegun
/// 26.2.11, all terms of one sign); beyond, the tail φ(x)·R(x) with Mills' ratio R from
/// Laplace's continued fraction R(x) = 1/(x + 1/(x + 2/(x + 3/(x + …)))) (A&S 26.2.14),
/// evaluated by the modified Lentz method (Numerical Recipes §5.2). φ(x) = e^(−x²/2)/√(2π)
/// is computed with x split into a short head and a tail so that x² is not rounded, as
/// Cody's algorithm in R's `pnorm.c` does.
pub fn normal_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.abs() <= 1.0 {
        0.5 + density(x) * central_series(x)
    } else if x < 0.0 {
        upper_tail(-x)
    } else {
        1.0 - upper_tail(x)
    }
}

/// The standard normal upper tail 1 − Φ(x) = P(Z > x), accurate far in the tail (see
/// [`normal_cdf`]; this is Φ(−x), not 1 − Φ(x), which would lose every digit beyond
/// x ≈ 8). scipy: `special.ndtr(-x)`; R: `pnorm(x, lower.tail = FALSE)`. NaN gives NaN.
pub fn normal_sf(x: f64) -> f64 {
    normal_cdf(-x)
}

/// φ(x), with x² formed exactly from a 4-fractional-bit head: e^(−h²/2)·e^(−(x−h)(x+h)/2).
fn density(x: f64) -> f64 {
    let x = x.abs();
    if x > 40.0 {
        return 0.0;
    }
    let head = (x * 16.0).trunc() / 16.0;
    let rest = (x - head) * (x + head);
    FRAC_1_SQRT_2PI * (-0.5 * head * head).exp() * (-0.5 * rest).exp()
}

/// Σ x^(2n+1)/(1·3·…·(2n+1)) for |x| ≤ 1.
fn central_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut odd = 1.0;
    loop {
        odd += 2.0;
        term *= x2 / odd;
        let next = sum + term;
        if next == sum {
            return sum;
        }
        sum = next;
    }
}

/// P(Z > x) for x > 1, as φ(x)·R(x).
fn upper_tail(x: f64) -> f64 {
    if x == f64::INFINITY {
        return 0.0;
    }
    let density = density(x);
    if density == 0.0 {
        return 0.0;
    }
    // Lentz: f = x + 1/(x + 2/(x + 3/(x + …))), R = 1/f.
    const TINY: f64 = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for n in 1..10_000 {
        let a = f64::from(n);
        d = x + a * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = x + a / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() <= f64::EPSILON {
            break;
        }
    }
    density / f
}

/// The standard normal quantile Φ⁻¹(p) = −√2 · erfc⁻¹(2p), with statrs' `erfc_inv` (the
/// Boost rational approximations). Against mpmath it is as accurate as Wichura's AS 241,
/// the algorithm R's `qnorm` uses (largest error 2.1e−16 relative over p from 1e−300 to
/// 0.999, `cargo bench -p canary-core --bench special_functions`). `p` outside [0, 1] or NaN
/// gives NaN; `p = 0` gives −∞ and `p = 1` gives +∞.
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    -std::f64::consts::SQRT_2 * statrs::function::erf::erfc_inv(2.0 * p)
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference values as the references print them
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn quantile_matches_reference_values() {
        // Reference values from R 4.2 `sprintf("%.17g", qnorm(p))`.
        let cases = [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_053_6),
            (0.025, -1.959_963_984_540_053_8),
            (0.995, 2.575_829_303_548_899_9),
            (0.9, 1.281_551_565_544_600_8),
            (1e-10, -6.361_340_902_404_055_7),
            (1e-300, -37.047_096_299_361_201),
        ];
        for (p, z) in cases {
            assert!(
                close(normal_quantile(p), z, 1e-15),
                "{p}: {}",
                normal_quantile(p)
            );
        }
    }

    #[test]
    fn quantile_edges() {
        assert!(normal_quantile(f64::NAN).is_nan());
        assert!(normal_quantile(-0.1).is_nan());
        assert!(normal_quantile(1.1).is_nan());
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
    }

    #[test]
    fn quantile_inverts_cdf() {
        for i in 1..1000 {
            let p = f64::from(i) / 1000.0;
            assert!(close(normal_cdf(normal_quantile(p)), p, 1e-14), "{p}");
        }
    }

    #[test]
    fn cdf_matches_mpmath() {
        // mpmath.ncdf at 40 digits.
        let cases = [
            (-37.5, 4.605_353_009_581_954_84e-308),
            (-30.0, 4.906_713_927_148_187_06e-198),
            (-20.25, 1.776_199_864_949_570_03e-91),
            (-10.0, 7.619_853_024_160_526_07e-24),
            (-8.3, 5.205_569_744_890_254_02e-17),
            (-5.0, 2.866_515_718_791_939_12e-7),
            (-3.3, 0.000_483_424_142_383_777_507),
            (-2.0, 0.022_750_131_948_179_207_2),
            (-1.5, 0.066_807_201_268_858_066),
            (-1.000_000_1, 0.158_655_229_734_385_795),
            (-1.0, 0.158_655_253_931_457_051),
            (-0.7, 0.241_963_652_223_073_029),
            (-0.2, 0.420_740_290_560_896_973),
            (0.0, 0.5),
            (1e-9, 0.500_000_000_398_942_28),
            (0.3, 0.617_911_422_188_952_633),
            (0.99, 0.838_912_940_489_169_087),
            (1.01, 0.843_752_354_978_745_404),
            (2.5, 0.993_790_334_674_223_865),
            (4.0, 0.999_968_328_758_166_88),
            (6.0, 0.999_999_999_013_412_355),
            (8.5, 0.999_999_999_999_999_991),
        ];
        for (x, expected) in cases {
            let got = normal_cdf(x);
            assert!(close(got, expected, 4e-15), "{x}: {got} vs {expected}");
            assert!(close(normal_sf(-x), expected, 4e-15), "sf({}): {got}", -x);
        }
    }

    #[test]
    fn tails_stay_accurate() {
        // R: pnorm(30, lower.tail = FALSE) = 4.906713927148187e-198
        // mpmath.ncdf(-30) = 4.9067139271481870595e-198
        assert!(close(normal_sf(30.0), 4.906_713_927_148_187e-198, 1e-14));
        assert!(close(normal_cdf(-30.0), 4.906_713_927_148_187e-198, 1e-14));
        assert!(close(normal_cdf(1.959_963_984_540_054), 0.975, 1e-15));
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
        assert_eq!(normal_sf(f64::INFINITY), 0.0);
        assert!(normal_cdf(f64::NAN).is_nan());
    }
}
