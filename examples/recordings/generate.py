#!/usr/bin/env python3
"""Generates the recorded-data examples that `canary analyze --input` judges.

    python3 examples/recordings/generate.py     # rewrites examples/recordings/*.json

Deterministic (numpy seeded). Each file is 20 minutes of 30-second ticks of the checkout
service (policies/checkout.yaml: checks `errors`, `latency`, `no-restarts`) at 40 requests/s
in all, a quarter of them on the canary. Values are cumulative since `started_at`, as the
sources record them (docs/recording-format.md).

  healthy.json         canary like baseline: 0.2 % errors, same latency
  errors-3x.json       canary errors at 0.6 % (3x baseline)
  latency-p95-up.json  canary latency scaled by 1.5 (p95 +50 %)
  no-canary.json       the canary serves nothing
  empty.json           no ticks at all
"""
import json
import math
import pathlib
from datetime import datetime, timedelta, timezone

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
START = datetime(2026, 11, 22, 10, 0, 0, tzinfo=timezone.utc)
TICK = 30
TICKS = 40
RPS = 40.0
CANARY_SHARE = 0.25


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def version_stream(rng, rps, error_rate, latency_scale):
    """Per-tick increments of one version: requests, errors, bucket counts."""
    for _ in range(TICKS):
        n = rng.poisson(rps * TICK)
        errors = rng.binomial(n, error_rate)
        # Log-normal latency, median 60 ms, sigma 0.6: p95 ≈ 160 ms.
        latencies = np.exp(rng.normal(math.log(0.060), 0.6, size=n)) * latency_scale
        counts = [int((latencies <= le).sum()) for le in BUCKETS]
        yield n, errors, counts


def scenario(seed, canary_error, baseline_error=0.002, canary_latency=1.0, canary_rps=None):
    rng = np.random.default_rng(seed)
    canary_rps = RPS * CANARY_SHARE if canary_rps is None else canary_rps
    canary = version_stream(rng, canary_rps, canary_error, canary_latency)
    baseline = version_stream(rng, RPS * (1 - CANARY_SHARE), baseline_error, 1.0)
    totals = {
        "canary": {"n": 0, "e": 0, "b": [0] * len(BUCKETS)},
        "baseline": {"n": 0, "e": 0, "b": [0] * len(BUCKETS)},
    }
    ticks = []
    for i, (c, b) in enumerate(zip(canary, baseline)):
        for name, (n, e, counts) in (("canary", c), ("baseline", b)):
            t = totals[name]
            t["n"] += int(n)
            t["e"] += int(e)
            t["b"] = [x + y for x, y in zip(t["b"], counts)]

        def buckets(name):
            t = totals[name]
            return [{"le": le, "count": c} for le, c in zip(BUCKETS, t["b"])] + [
                {"le": "+Inf", "count": t["n"]}
            ]

        at = START + timedelta(seconds=TICK * (i + 1))
        readings = {
            "errors": {
                "reading": "observed",
                "kind": "counts",
                "canary": {"requests": totals["canary"]["n"], "errors": totals["canary"]["e"]},
                "baseline": {"requests": totals["baseline"]["n"], "errors": totals["baseline"]["e"]},
            },
            "latency": {
                "reading": "observed",
                "kind": "histogram",
                "canary": buckets("canary"),
                "baseline": buckets("baseline"),
            },
            "no-restarts": {"reading": "observed", "kind": "value", "value": 0},
        }
        if totals["canary"]["n"] == 0:
            readings["errors"] = {"reading": "no_data", "reason": "no series for version=\"canary\""}
            readings["latency"] = {"reading": "no_data", "reason": "no series for version=\"canary\""}
        ticks.append({"at": stamp(at), "window_seconds": TICK * (i + 1), "readings": readings})
    return ticks


def write(name, ticks):
    recording = {
        "format": "canary-recording/1",
        "service": "checkout",
        "started_at": stamp(START),
        "source": "examples/recordings/generate.py",
        "ticks": ticks,
    }
    (HERE / name).write_text(json.dumps(recording, indent=1) + "\n")


write("healthy.json", scenario(1, canary_error=0.002))
write("errors-3x.json", scenario(2, canary_error=0.006))
write("latency-p95-up.json", scenario(3, canary_error=0.002, canary_latency=1.5))
write("no-canary.json", scenario(4, canary_error=0.002, canary_rps=0.0))
write("empty.json", [])
