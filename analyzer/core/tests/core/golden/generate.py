#!/usr/bin/env python3
"""Golden values for canary-core's statistics, checked by analyzer/core/tests/core/golden_*.rs.

Re-run from the repository root (about ten seconds):

    python3 analyzer/core/tests/core/golden/generate.py

It rewrites mann_whitney.json, rate_ratio.json, binomial_cs.json, fisher.json and
wilson.json next to this script. (histogram_quantile.json comes from a real Prometheus:
see histogram_quantile_prometheus.py.) Every case is drawn from a seeded numpy Generator,
so with the same versions a re-run reproduces the files byte for byte. Made with:

    Python 3.11.7, numpy 2.4.6, scipy 1.17.1, mpmath 1.3.0,
    R 4.2.2 Patched (2022-11-10 r83330) through wilcox.R,
    savvi 0.3.1 (only for the qualitative comparison in rate_ratio.json).

Where each expected value comes from:

- Mann-Whitney p-values: scipy.stats.mannwhitneyu(x, y, use_continuity=True,
  alternative=..., method="asymptotic"). Hodges-Lehmann estimate and interval: R's
  wilcox.test(x, y, conf.int=TRUE, exact=FALSE, correct=TRUE), run by wilcox.R on the
  exact same doubles (passed in hexadecimal).
- Rate-ratio e-values and bounds: the formula of the design, written here directly in
  numpy (full log-likelihood of the conditional binomial on the grid, then the mixture),
  independently of the Rust code, which keeps a likelihood ratio relative to theta_0.
- Binomial confidence sequence: log M from mpmath at 50 digits (scipy 1.17's betaln is
  off by ~1e-9 absolute for B(0.5, 1e6), too much for a 1e-9 comparison; the file also
  records scipy.special.betaln's value so the difference is visible), interval ends by
  scipy.optimize.brentq on that function.
- Fisher: scipy.stats.fisher_exact for the three alternatives, and the same p-values
  summed in 50-digit mpmath arithmetic (scipy's own are off by up to ~1.5e-10 relative on
  tables of 10^6 requests; the Rust code is held to 1e-9 against scipy and 1e-12 against
  mpmath).
- Wilson: scipy.stats.binomtest(k, n).proportion_ci(level, method="wilson").
"""

import json
import math
import subprocess
from pathlib import Path

import mpmath
import numpy as np
import scipy
from scipy import optimize, special, stats

HERE = Path(__file__).resolve().parent
mpmath.mp.dps = 50


def write(name, payload):
    path = HERE / name
    path.write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
    print(f"wrote {path.relative_to(HERE.parents[3])}")


def versions():
    return {
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "mpmath": mpmath.__version__,
    }


# ---------------------------------------------------------------------------------------
# Mann-Whitney U and Hodges-Lehmann
# ---------------------------------------------------------------------------------------


def mann_whitney_cases(rng):
    """(kind, x, y) samples: sizes 3..60, continuous and integer-valued, with and without
    ties, shifted and not."""
    cases = []

    def add(kind, x, y):
        cases.append((kind, [float(v) for v in x], [float(v) for v in y]))

    for i in range(8):
        nx, ny = rng.integers(3, 61, size=2)
        shift = rng.choice([0.0, 0.3, -0.5, 1.0])
        add("continuous", np.round(rng.normal(shift, 1.0, nx), 6), np.round(rng.normal(0.0, 1.0, ny), 6))
    for i in range(6):
        nx, ny = rng.integers(3, 61, size=2)
        high = int(rng.integers(3, 12))
        add("integer", rng.integers(0, high, nx) + rng.integers(0, 2), rng.integers(0, high, ny))
    for i in range(5):
        # latency-like: log-normal, rounded to whole milliseconds (ties across samples)
        nx, ny = rng.integers(5, 61, size=2)
        scale = rng.choice([1.0, 1.15, 1.4])
        add("latency-ms", np.round(rng.lognormal(np.log(120 * scale), 0.4, nx)), np.round(rng.lognormal(np.log(120), 0.4, ny)))
    for i in range(4):
        # CPU-like: one decimal, heavy ties
        nx, ny = rng.integers(3, 40, size=2)
        add("one-decimal", np.round(rng.normal(0.5, 0.15, nx), 1), np.round(rng.normal(0.45, 0.15, ny), 1))
    # small and extreme cases
    add("tiny-separated", [10.0, 11.0, 12.0], [1.0, 2.0, 3.0])
    add("tiny-overlap", [1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    add("zeros-and-ones", rng.integers(0, 2, 25), rng.integers(0, 2, 30))
    add("constant-vs-spread", [5.0] * 7, np.round(rng.normal(5.0, 1.0, 9), 3))
    add("large-separated", np.round(rng.normal(3.0, 0.5, 60), 4), np.round(rng.normal(0.0, 0.5, 60), 4))
    add("unequal-sizes", np.round(rng.exponential(2.0, 3), 5), np.round(rng.exponential(1.0, 60), 5))
    return cases


def run_wilcox(requests):
    """requests: list of (id, alternative, conf, x, y) -> {id: (est, lo, hi) or error}."""
    lines = []
    for rid, alternative, conf, x, y in requests:
        hx = ",".join(float(v).hex() for v in x)
        hy = ",".join(float(v).hex() for v in y)
        lines.append(f"{rid} {alternative} {float(conf).hex()} {hx} {hy}")
    out = subprocess.run(
        ["Rscript", str(HERE / "wilcox.R")],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    results = {}
    for line in out.splitlines():
        fields = line.split(" ")
        if fields[1] == "error":
            results[fields[0]] = {"error": fields[2]}
        else:
            results[fields[0]] = tuple(parse_r_hex(v) for v in fields[1:4])
    return results


def parse_r_hex(text):
    if text in ("Inf", "-Inf", "NaN"):
        return float(text.lower())
    return float.fromhex(text)


def finite_or_none(v):
    return v if math.isfinite(v) else None


def generate_mann_whitney(rng):
    cases = mann_whitney_cases(rng)
    requests = []
    for i, (kind, x, y) in enumerate(cases):
        requests.append((f"{i}-two.sided", "two.sided", 0.95, x, y))
        requests.append((f"{i}-greater", "greater", 0.95, x, y))
        requests.append((f"{i}-less", "less", 0.9, x, y))
    r = run_wilcox(requests)
    out = []
    for i, (kind, x, y) in enumerate(cases):
        p = {}
        for alt in ("two-sided", "greater", "less"):
            res = stats.mannwhitneyu(x, y, use_continuity=True, alternative=alt, method="asymptotic")
            p[alt] = float(res.pvalue)
            u = float(res.statistic)
        hl = []
        for rid, alt, conf in ((f"{i}-two.sided", "two-sided", 0.95), (f"{i}-greater", "greater", 0.95), (f"{i}-less", "less", 0.9)):
            res = r[rid]
            if isinstance(res, dict):
                raise SystemExit(f"R failed on case {i} ({kind}): {res['error']}")
            est, lo, hi = res
            hl.append({"alternative": alt, "conf_level": conf, "estimate": est, "lower": finite_or_none(lo), "upper": finite_or_none(hi)})
        out.append({"id": i, "kind": kind, "x": x, "y": y, "u": u, "p_value": p, "hodges_lehmann": hl})
    write("mann_whitney.json", {
        "source": "scipy.stats.mannwhitneyu(method='asymptotic', use_continuity=True); R wilcox.test(conf.int=TRUE, exact=FALSE, correct=TRUE)",
        "versions": {**versions(), "R": r_version()},
        "cases": out,
    })


def r_version():
    return subprocess.run(["Rscript", "-e", "cat(R.version.string)"], capture_output=True, text=True, check=True).stdout.strip()


# ---------------------------------------------------------------------------------------
# Rate-ratio e-value (the design's formula, directly)
# ---------------------------------------------------------------------------------------

K = 64
LN_R = math.log(2.0) / 8.0
TAU = 0.6


def rate_ratio_reference(ticks, allowed_increase, alpha):
    """ticks: list of (n_c, x_c, n_b, x_b). Returns log E_0, lower and upper bound."""
    theta0 = 1.0 + allowed_increase
    k = np.arange(-K, K + 1)
    theta = theta0 * 2.0 ** (k / 8.0)
    ell = np.zeros_like(theta)
    for n_c, x_c, n_b, x_b in ticks:
        if n_c + n_b == 0:
            continue
        rho = n_c / (n_c + n_b)
        q = theta * rho / (theta * rho + 1.0 - rho)
        m = x_c + x_b
        # x ln q + (m - x) ln(1 - q), with 0 ln 0 = 0
        ell += special.xlogy(x_c, q) + special.xlog1py(m - x_c, -q)
    d = np.arange(1, 2 * K + 1)
    log_w = -((d * LN_R) ** 2) / (2 * TAU**2)
    log_w -= special.logsumexp(log_w)
    n = len(theta)

    def log_e_above(j):
        terms = [log_w[dd - 1] + ell[j + dd] - ell[j] for dd in range(1, n - j)]
        return special.logsumexp(terms) if terms else -math.inf

    def log_e_below(j):
        terms = [log_w[dd - 1] + ell[j - dd] - ell[j] for dd in range(1, j + 1)]
        return special.logsumexp(terms) if terms else -math.inf

    threshold = math.log(1.0 / alpha)
    above = [log_e_above(j) for j in range(n)]
    below = [log_e_below(j) for j in range(n)]
    margin = min(abs(v - threshold) for v in above + below if math.isfinite(v))
    first_kept = next(j for j in range(n) if above[j] < threshold)
    lower = 0.0 if first_kept == 0 else float(theta[first_kept - 1])
    last_kept = next(j for j in reversed(range(n)) if below[j] < threshold)
    upper = math.inf if last_kept == n - 1 else float(theta[last_kept + 1])
    return float(above[K]), lower, upper, margin


def rate_ratio_cases(rng):
    cases = []
    schedules = [
        [0.1] * 30 + [0.25] * 30 + [0.5] * 30,
        [0.05] * 10 + [0.1] * 10 + [0.2] * 10 + [0.5] * 10,
        [0.5] * 12,
        [0.01] * 20 + [0.1] * 20,
    ]
    for i in range(22):
        schedule = schedules[i % len(schedules)]
        start = int(rng.integers(0, len(schedule) // 2))
        schedule = schedule[start:]
        base_rate = float(rng.choice([0.001, 0.01, 0.05, 0.2]))
        true_ratio = float(rng.choice([0.5, 1.0, 1.0, 1.2, 1.5, 2.0, 3.0]))
        allowed = float(rng.choice([0.0, 0.0, 0.1, 0.2, 0.5, 1.0]))
        alpha = float(rng.choice([0.01, 0.05, 0.001]))
        per_tick = float(rng.choice([50.0, 500.0, 5000.0]))
        ticks = []
        for share in schedule:
            total = int(rng.poisson(per_tick))
            n_c = int(rng.binomial(total, share))
            n_b = total - n_c
            x_c = int(rng.binomial(n_c, min(1.0, base_rate * true_ratio)))
            x_b = int(rng.binomial(n_b, base_rate))
            ticks.append((n_c, x_c, n_b, x_b))
        cases.append((f"random-{i}", ticks, allowed, alpha))
    # hand-made edges: ticks without canary or baseline traffic, without events, and huge
    # evidence (log E in the thousands).
    cases.append(("one-sided-ticks", [(0, 0, 100, 3), (100, 2, 0, 0), (100, 0, 100, 0), (0, 0, 0, 0), (200, 9, 800, 8)], 0.0, 0.01))
    cases.append(("overwhelming", [(1_000_000, 30_000, 1_000_000, 10_000)] * 5, 0.2, 0.01))
    cases.append(("big-counts-healthy", [(250_000, 2_500, 750_000, 7_400), (500_000, 4_900, 500_000, 5_050)], 0.1, 0.01))
    return cases


def savvi_comparison():
    """One case with a constant share: savvi's Dirichlet-multinomial Bayes factor (Lindon &
    Malek 2022) for the point null 'canary's share of errors = its share of traffic', next
    to this design's e-value for H0: theta <= 1 on the same counts. Different priors and
    nulls (two-sided point vs one-sided), so only the decisions are expected to agree."""
    from savvi.multinomial import Multinomial

    rng = np.random.default_rng(20240607)
    share, alpha = 0.1, 0.01
    out = []
    for ratio in (1.0, 2.0):
        ticks = []
        for _ in range(60):
            n = int(rng.poisson(500))
            n_c = int(rng.binomial(n, share))
            ticks.append((n_c, int(rng.binomial(n_c, 0.01 * ratio)), n - n_c, int(rng.binomial(n - n_c, 0.01))))
        m = Multinomial(alpha, np.array([share, 1.0 - share]))
        for n_c, x_c, n_b, x_b in ticks:
            m.update(np.array([x_c, x_b]))
        log_e, _, _, _ = rate_ratio_reference(ticks, 0.0, alpha)
        out.append({
            "true_ratio": ratio,
            "ticks": [list(t) for t in ticks],
            "alpha": alpha,
            "design_e_value": math.exp(log_e),
            "savvi_multinomial_bayes_factor": float(m.odds),
        })
    return out


def generate_rate_ratio(rng):
    out = []
    for name, ticks, allowed, alpha in rate_ratio_cases(rng):
        log_e, lower, upper, margin = rate_ratio_reference(ticks, allowed, alpha)
        if margin < 1e-6:
            raise SystemExit(f"{name}: an e-value is within {margin} of 1/alpha; pick another seed")
        out.append({
            "name": name,
            "allowed_increase": allowed,
            "alpha": alpha,
            "ticks": [{"canary": [n_c, x_c], "baseline": [n_b, x_b]} for n_c, x_c, n_b, x_b in ticks],
            "log_e_value": log_e,
            "lower_bound": lower,
            "upper_bound": finite_or_none(upper),
        })
    try:
        import savvi  # noqa: F401

        comparison = savvi_comparison()
        savvi_version = __import__("importlib.metadata").metadata.version("savvi")
    except ImportError:
        comparison, savvi_version = [], None
    write("rate_ratio.json", {
        "source": "numpy, the design's formula: grid theta0*2^(k/8), k=-64..64; prior w_d ~ exp(-(d ln r)^2/2), d=1..128",
        "ticks_format": "canary and baseline are [requests, events] of one increment",
        "versions": {**versions(), "savvi": savvi_version},
        "cases": out,
        "savvi_comparison": comparison,
    })


# ---------------------------------------------------------------------------------------
# Beta-binomial confidence sequence
# ---------------------------------------------------------------------------------------

A = B = 0.5  # Jeffreys


def log_mixture_mp(e, n, p):
    e, n, p = mpmath.mpf(e), mpmath.mpf(n), mpmath.mpf(p)
    value = mpmath.log(mpmath.beta(A + e, B + n - e)) - mpmath.log(mpmath.beta(A, B))
    if e > 0:
        value -= e * mpmath.log(p)
    if n - e > 0:
        value -= (n - e) * mpmath.log1p(-p)
    return value


def log_mixture_scipy(e, n, p):
    value = special.betaln(A + e, B + n - e) - special.betaln(A, B)
    return value - special.xlogy(e, p) - special.xlog1py(n - e, -p)


def cs_interval(e, n, alpha):
    if n == 0:
        return 0.0, 1.0
    threshold = mpmath.log(1 / mpmath.mpf(alpha))

    def f(p):
        return float(log_mixture_mp(e, n, p) - threshold)

    p_hat = e / n
    lower = 0.0
    if e > 0:
        out = p_hat / 2
        while f(out) < 0:
            out /= 2
        lower = optimize.brentq(f, out, p_hat, xtol=1e-300, rtol=8.9e-16, maxiter=500)
    upper = 1.0
    if e < n:
        out = 1 - (1 - p_hat) / 2
        while f(out) < 0:
            out = 1 - (1 - out) / 2
        upper = optimize.brentq(f, p_hat, out, xtol=1e-300, rtol=8.9e-16, maxiter=500)
    return lower, upper


def generate_binomial_cs(rng):
    combos = [
        (0, 0, 0.05), (0, 1, 0.05), (1, 1, 0.05), (0, 10, 0.05), (3, 10, 0.05), (10, 10, 0.01),
        (1, 100, 0.01), (50, 100, 0.05), (99, 100, 0.05), (0, 1000, 0.01), (2, 1000, 0.01),
        (10, 10_000, 0.001), (100, 10_000, 0.01), (1, 100_000, 0.05), (5_000, 100_000, 0.01),
        (0, 1_000_000, 0.01), (120, 1_000_000, 0.01), (999_999, 1_000_000, 0.05),
        (37, 12_345, 0.01), (7, 10_000_000, 0.01),
    ]
    for _ in range(6):
        n = int(10 ** rng.uniform(1, 6.5))
        e = int(rng.binomial(n, float(rng.choice([0.0005, 0.01, 0.1, 0.5]))))
        combos.append((e, n, float(rng.choice([0.01, 0.05]))))
    out = []
    worst_scipy = 0.0
    for e, n, alpha in combos:
        lower, upper = cs_interval(e, n, alpha)
        probes = sorted({0.001, 0.01, 0.5} | ({e / n} if n else set()))
        if 0 < lower:
            probes.append(lower)
        probe_values = []
        for p in probes:
            if p <= 0 or p >= 1:
                continue
            exact = float(log_mixture_mp(e, n, p))
            approx = float(log_mixture_scipy(e, n, p))
            worst_scipy = max(worst_scipy, abs(approx - exact) / max(1.0, abs(exact)))
            # p as its repr string: the Rust test parses it with a correctly rounded parser
            probe_values.append({"p": repr(float(p)), "log_mixture": exact, "scipy_betaln_log_mixture": approx})
        out.append({"events": e, "trials": n, "alpha": alpha, "lower": lower, "upper": upper, "probes": probe_values})
    print(f"binomial_cs: scipy betaln vs mpmath, worst relative difference of log M: {worst_scipy:.2e}")
    write("binomial_cs.json", {
        "source": "mpmath (50 digits) for log M with the Jeffreys prior Beta(1/2, 1/2); interval ends by scipy.optimize.brentq on it",
        "versions": versions(),
        "cases": out,
    })


# ---------------------------------------------------------------------------------------
# Fisher and Wilson
# ---------------------------------------------------------------------------------------


def generate_fisher(rng):
    tables = [
        [[3, 1], [1, 3]], [[8, 2], [1, 5]], [[0, 5], [5, 0]], [[5, 0], [2, 4]], [[0, 0], [3, 4]],
        [[5, 5], [5, 5]], [[1, 9], [11, 3]], [[0, 10], [0, 10]], [[2, 7], [8, 2]],
        [[12, 988], [30, 8970]], [[30, 9970], [90, 89910]], [[150, 99850], [400, 899600]],
        [[1, 99999], [12, 899988]], [[0, 50000], [40, 449960]], [[25, 4975], [10, 4990]],
        [[100, 0], [0, 100]], [[1, 0], [0, 1]], [[7, 13], [13, 7]],
    ]
    for _ in range(8):
        n_c = int(10 ** rng.uniform(1, 6))
        n_b = int(10 ** rng.uniform(1, 6))
        rate = float(rng.choice([0.001, 0.01, 0.1, 0.4]))
        ratio = float(rng.choice([1.0, 1.5, 3.0]))
        x_c = int(rng.binomial(n_c, min(1.0, rate * ratio)))
        x_b = int(rng.binomial(n_b, rate))
        tables.append([[x_c, n_c - x_c], [x_b, n_b - x_b]])
    out = []
    worst_scipy = 0.0
    for t in tables:
        entry = {"table": t}
        exact = fisher_mp(t)
        for alt in ("two-sided", "greater", "less"):
            res = stats.fisher_exact(t, alternative=alt)
            entry[alt] = float(res.pvalue)
            entry[f"{alt}-mpmath"] = exact[alt]
            if exact[alt] > 0:
                worst_scipy = max(worst_scipy, abs(entry[alt] - exact[alt]) / exact[alt])
            odds = float(res.statistic)
        entry["odds_ratio"] = odds if math.isfinite(odds) else ("inf" if odds > 0 else "nan")
        out.append(entry)
    print(f"fisher: scipy vs mpmath, worst relative difference of a p-value: {worst_scipy:.2e}")
    write("fisher.json", {
        "source": "scipy.stats.fisher_exact; the '-mpmath' values sum the same tables' hypergeometric probabilities at 50 digits",
        "versions": versions(),
        "cases": out,
    })


def fisher_mp(table):
    """The three p-values of scipy's definitions, in 50-digit arithmetic."""
    (a, b), (c, d) = table
    marked, unmarked, drawn = a + b, c + d, a + c
    if marked == 0 or unmarked == 0 or drawn == 0 or b + d == 0:
        return {"two-sided": 1.0, "greater": 1.0, "less": 1.0}

    def log_choose(n, k):
        return mpmath.loggamma(n + 1) - mpmath.loggamma(k + 1) - mpmath.loggamma(n - k + 1)

    log_total = log_choose(marked + unmarked, drawn)
    support = range(max(0, drawn - unmarked), min(drawn, marked) + 1)
    pmf = {x: mpmath.exp(log_choose(marked, x) + log_choose(unmarked, drawn - x) - log_total) for x in support}
    limit = pmf[a] * (1 + mpmath.mpf("1e-14"))
    return {
        "less": float(mpmath.fsum(p for x, p in pmf.items() if x <= a)),
        "greater": float(mpmath.fsum(p for x, p in pmf.items() if x >= a)),
        "two-sided": float(min(1, mpmath.fsum(p for p in pmf.values() if p <= limit))),
    }


def generate_wilson():
    out = []
    for k, n, level in [(7, 50, 0.95), (0, 2000, 0.95), (30, 30, 0.95), (1, 2000, 0.95), (12, 2000, 0.95),
                        (500, 1000, 0.99), (3, 10, 0.9), (999, 1000, 0.95), (20, 2000, 0.5), (1, 1, 0.95)]:
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
        out.append({"successes": k, "trials": n, "conf_level": level, "lower": float(ci.low), "upper": float(ci.high)})
    write("wilson.json", {"source": "scipy.stats.binomtest(k, n).proportion_ci(method='wilson')", "versions": versions(), "cases": out})


def main():
    generate_mann_whitney(np.random.default_rng(1))
    generate_rate_ratio(np.random.default_rng(2))
    generate_binomial_cs(np.random.default_rng(3))
    generate_fisher(np.random.default_rng(4))
    generate_wilson()


if __name__ == "__main__":
    main()
