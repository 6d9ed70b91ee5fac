#!/usr/bin/env python3
"""Times scipy's Mann–Whitney U test on the same data canary's bench uses.

The samples are generated exactly as in `stats.rs` (`samples(n, 42)`): a 64-bit LCG with
Knuth's MMIX constants, 53-bit uniforms in [0, 1), y shifted by −0.02. The call is the one
canary's `mann_whitney_u` reproduces (`use_continuity=True, alternative="greater",
method="asymptotic"`); the U statistic and p-value are printed so the two can be compared.

    python3 analyzer/core/benches/mann_whitney_scipy.py
"""

import sys
import timeit

import numpy as np
import scipy
from scipy import stats

MASK = (1 << 64) - 1


def samples(n, seed):
    state = seed
    values = []
    for _ in range(2 * n):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        values.append((state >> 11) / float(1 << 53))
    return values[:n], [v - 0.02 for v in values[n:]]


def main():
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, scipy {scipy.__version__}")
    for n in (50, 500, 5000):
        x, y = (np.array(s) for s in samples(n, 42))
        call = lambda: stats.mannwhitneyu(
            x, y, use_continuity=True, alternative="greater", method="asymptotic"
        )
        result = call()
        number = 2000 if n < 5000 else 200
        best = min(timeit.repeat(call, number=number, repeat=5)) / number
        print(
            f"n = {n:5}: U = {result.statistic:.1f}, p = {result.pvalue:.6e}, "
            f"{best * 1e6:9.1f} µs per call"
        )


if __name__ == "__main__":
    main()
