//! The standard normal distribution: distribution function, upper tail, quantile.

/// 1/√(2π).
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The standard normal distribution function Φ(x) = P(Z ≤ x), to about 1e−15 relative in
/// both tails (Φ(−30) ≈ 4.9e−198 keeps its digits). NaN gives NaN.
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

/// The standard normal quantile Φ⁻¹(p).
///
/// Wichura's algorithm AS 241 (PPND16), *Applied Statistics* 37 (1988) 477–484: rational
/// approximations accurate to about 1e−16 relative, the algorithm R's `qnorm` uses. The
/// coefficients are those published in the paper. `p` outside [0, 1] or NaN gives NaN;
/// `p = 0` gives −∞ and `p = 1` gives +∞.
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
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        let num = poly(&CENTRAL_NUM, r);
        let den = poly(&CENTRAL_DEN, r);
        return q * num / den;
    }
    // The tail nearest to p, as it was given: for p near 1 the caller's 1 − p is already
    // rounded, nothing more is lost here.
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let value = if r <= 5.0 {
        let r = r - 1.6;
        poly(&INTERMEDIATE_NUM, r) / poly(&INTERMEDIATE_DEN, r)
    } else {
        let r = r - 5.0;
        poly(&FAR_NUM, r) / poly(&FAR_DEN, r)
    };
    if q < 0.0 { -value } else { value }
}

/// Evaluates c₀ + c₁x + … + c₇x⁷ by Horner's rule.
fn poly(coefficients: &[f64; 8], x: f64) -> f64 {
    coefficients.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

// AS 241, |p − ½| ≤ 0.425: coefficients a₀…a₇ and b₀…b₇ (b₀ = 1).
#[allow(clippy::excessive_precision)] // the digits the paper publishes
const CENTRAL_NUM: [f64; 8] = [
    3.387_132_872_796_366_608,
    133.141_667_891_784_377_45,
    1_971.590_950_306_551_442_7,
    13_731.693_765_509_461_125,
    45_921.953_931_549_871_457,
    67_265.770_927_008_700_853,
    33_430.575_583_588_128_105,
    2_509.080_928_730_122_672_7,
];
#[allow(clippy::excessive_precision)] // the digits the paper publishes
const CENTRAL_DEN: [f64; 8] = [
    1.0,
    42.313_330_701_600_911_252,
    687.187_007_492_057_908_3,
    5_394.196_021_424_751_107_7,
    21_213.794_301_586_595_867,
    39_307.895_800_092_710_61,
    28_729.085_735_721_942_674,
    5_226.495_278_852_854_561,
];
// r = √(−ln min(p, 1 − p)) ≤ 5: coefficients c₀…c₇ and d₀…d₇ (d₀ = 1).
#[allow(clippy::excessive_precision)] // the digits the paper publishes
const INTERMEDIATE_NUM: [f64; 8] = [
    1.423_437_110_749_683_577_34,
    4.630_337_846_156_545_295_9,
    5.769_497_221_460_691_405_5,
    3.647_848_324_763_204_605_04,
    1.270_458_252_452_368_382_58,
    0.241_780_725_177_450_611_77,
    0.022_723_844_989_269_184_583_3,
    7.745_450_142_783_414_076_4e-4,
];
#[allow(clippy::excessive_precision)] // the digits the paper publishes
const INTERMEDIATE_DEN: [f64; 8] = [
    1.0,
    2.053_191_626_637_758_821_87,
    1.676_384_830_183_803_849_4,
    0.689_767_334_985_100_004_55,
    0.148_103_976_427_480_074_59,
    0.015_198_666_563_616_457_196_6,
    5.475_938_084_995_344_946e-4,
    1.050_750_071_644_416_843_24e-9,
];
// r > 5: coefficients e₀…e₇ and f₀…f₇ (f₀ = 1).
#[allow(clippy::excessive_precision)] // the digits the paper publishes
const FAR_NUM: [f64; 8] = [
    6.657_904_643_501_103_777_2,
    5.463_784_911_164_114_369_9,
    1.784_826_539_917_291_335_8,
    0.296_560_571_828_504_891_23,
    0.026_532_189_526_576_123_093,
    0.001_242_660_947_388_078_438_6,
    2.711_555_568_743_487_578_15e-5,
    2.010_334_399_292_288_132_65e-7,
];
#[allow(clippy::excessive_precision)] // the digits the paper publishes
const FAR_DEN: [f64; 8] = [
    1.0,
    0.599_832_206_555_887_937_69,
    0.136_929_880_922_735_805_31,
    0.014_875_361_290_850_614_852_5,
    7.868_691_311_456_132_591e-4,
    1.846_318_317_510_054_681_8e-5,
    1.421_511_758_316_445_888_7e-7,
    2.044_263_103_389_939_785_64e-15,
];

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
