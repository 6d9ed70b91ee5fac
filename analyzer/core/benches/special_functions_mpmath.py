"""Reference values for `cargo bench -p canary-core --bench special_functions`.

mpmath at 50 significant digits for the special functions canary's statistics use, at the
arguments canary meets (counts up to 10^7, tails down to 1e-300). Writes
`special_functions.json` next to this file:

    python3 analyzer/core/benches/special_functions_mpmath.py

Each case is [arguments..., reference]; references are printed with 20 significant digits
(more than a double holds).
"""

import json
import pathlib

import mpmath

mpmath.mp.dps = 50


def num(x):
    return float(mpmath.nstr(x, 20, strip_zeros=False))


def ln_binomial_pmf(x, n, p):
    x, n, p = mpmath.mpf(x), mpmath.mpf(n), mpmath.mpf(p)
    return mpmath.log(mpmath.binomial(n, x)) + x * mpmath.log(p) + (n - x) * mpmath.log(1 - p)


def ln_hypergeometric_pmf(x, marked, unmarked, drawn):
    b = mpmath.binomial
    return mpmath.log(b(marked, x) * b(unmarked, drawn - x) / b(marked + unmarked, drawn))


def normal_quantile(p):
    # Newton's method on ln Φ(z) = ln p, which stays well conditioned far in the lower tail.
    p = mpmath.mpf(p)
    target = mpmath.log(min(p, 1 - p))
    z = -mpmath.sqrt(-2 * target)
    for _ in range(200):
        step = (mpmath.log(mpmath.ncdf(z)) - target) * mpmath.ncdf(z) / mpmath.npdf(z)
        z -= step
        if abs(step) < mpmath.mpf(10) ** -45:
            break
    return z if p < 0.5 else -z


cases = {
    "ln_gamma": [
        [x, num(mpmath.loggamma(mpmath.mpf(x)))]
        for x in [0.5, 1.0, 1.5, 2.5, 7.3, 10.0, 14.9, 15.0, 20.5, 100.0, 1234.5, 1e4,
                  100000.5, 1e6, 10000000.5]
    ],
    "ln_beta": [
        [a, b, num(mpmath.log(mpmath.beta(mpmath.mpf(a), mpmath.mpf(b))))]
        for a, b in [(0.5, 0.5), (0.5, 1e6), (1e6, 1e6), (20.5, 30.5), (3.5, 1e7 + 0.5),
                     (1e-3, 2.0), (14.5, 15.5), (100.5, 0.5), (999999.5, 1.5),
                     (45.5, 4455.5), (12.5, 100000.5), (0.5, 50.5), (500.5, 1e6 - 499.5),
                     (3.5, 7.5)]
    ],
    "normal_cdf": [
        [x, num(mpmath.ncdf(mpmath.mpf(x)))]
        for x in [-38.0, -30.0, -20.0, -10.0, -5.0, -3.0, -1.959963984540054, -1.0, -0.5,
                  0.0, 0.3, 1.0, 2.0, 5.0, 8.0]
    ],
    "normal_sf": [
        [x, num(mpmath.ncdf(-mpmath.mpf(x)))]
        for x in [-2.0, 0.0, 0.5, 1.0, 1.644853626951472, 3.0, 5.0, 8.0, 10.0, 20.0, 30.0]
    ],
    "normal_quantile": [
        [p, num(normal_quantile(p))]
        for p in [1e-300, 1e-100, 1e-20, 1e-10, 1e-5, 0.001, 0.01, 0.025, 0.1, 0.3, 0.5,
                  0.7, 0.975, 0.99, 0.999]
    ],
    "ln_binomial_pmf": [
        [x, n, p, num(ln_binomial_pmf(x, n, p))]
        for x, n, p in [(0, 10, 0.3), (3, 10, 0.3), (500, 1000, 0.5), (12, 100000, 1e-4),
                        (500000, 1000000, 0.5), (1234, 1000000, 0.001), (7, 7, 0.9)]
    ],
    "ln_hypergeometric_pmf": [
        [x, marked, unmarked, drawn, num(ln_hypergeometric_pmf(x, marked, unmarked, drawn))]
        for x, marked, unmarked, drawn in [(2, 7, 9, 5), (50, 1000, 9000, 500),
                                           (100, 10000, 90000, 1000),
                                           (5000, 100000, 900000, 50000),
                                           (30, 45, 4455, 100)]
    ],
}

out = pathlib.Path(__file__).with_name("special_functions.json")
out.write_text(json.dumps(cases, indent=1) + "\n")
print(f"wrote {out}")
