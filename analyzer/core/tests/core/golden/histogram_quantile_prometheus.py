#!/usr/bin/env python3
"""Golden values for histogram_quantile, computed by a real Prometheus.

Re-run from the repository root (needs `prometheus` and `promtool`, Debian package
`prometheus`, 2.42; a few seconds):

    python3 analyzer/core/tests/core/golden/histogram_quantile_prometheus.py

What it does: writes every bucket set below as one series per bucket,
`golden_hq_bucket{case="<name>", le="<bound>"} <count> <timestamp>`, into an OpenMetrics
file; backfills it into a fresh TSDB with `promtool tsdb create-blocks-from openmetrics`;
starts `prometheus` on a free loopback port with that data directory (retention 100y, so
the fixed 2023 timestamp is not dropped); asks the HTTP API for
`histogram_quantile(<q>, golden_hq_bucket{case="<name>"})` at that timestamp for every
(case, q); and writes histogram_quantile.json next to this script. Bounds, counts and
results are kept as the strings Prometheus read and printed, so the Rust test parses the
same doubles.

The committed file was made with Prometheus 2.42.0+ds (Debian 2.42.0+ds-5+deb12u1) and
Python 3.11.7.
"""

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMESTAMP = 1_700_000_000
QS = ["0", "0.01", "0.25", "0.5", "0.75", "0.9", "0.95", "0.99", "1"]

# (name, [(le, cumulative count)], extra quantiles). Order within a case does not matter to
# Prometheus (it sorts), so some are given unsorted on purpose.
CASES = [
    ("basic", [("0.1", "10"), ("0.5", "60"), ("1", "90"), ("+Inf", "100")], ["NaN", "-0.5", "1.5", "0.6", "0.1"]),
    ("inf-landing", [("0.1", "0"), ("0.2", "0"), ("+Inf", "5")], []),
    ("empty", [("0.1", "0"), ("1", "0"), ("+Inf", "0")], []),
    ("only-inf", [("+Inf", "7")], []),
    ("no-inf", [("0.1", "3"), ("1", "7")], []),
    ("non-monotonic", [("0.1", "10"), ("0.2", "8"), ("0.5", "15"), ("1", "12"), ("+Inf", "20")], []),
    ("non-monotonic-first", [("0.1", "10"), ("0.2", "0"), ("+Inf", "10")], []),
    ("non-monotonic-inf", [("0.1", "4"), ("1", "9"), ("+Inf", "6")], []),
    ("duplicate-bounds", [("0.5", "3"), ("0.50", "2"), ("5e-1", "1"), ("1", "8"), ("+Inf", "10")], []),
    ("duplicate-inf", [("1", "2"), ("+Inf", "5"), ("Inf", "3")], []),
    ("negative-bounds", [("-1", "5"), ("0", "7"), ("1", "10"), ("+Inf", "10")], []),
    ("all-negative", [("-10", "1"), ("-5", "3"), ("-1", "6"), ("+Inf", "6")], []),
    ("zero-lowest", [("0", "4"), ("1", "10"), ("+Inf", "10")], []),
    ("first-bucket-empty", [("0.1", "0"), ("1", "5"), ("+Inf", "5")], []),
    ("fractional", [("0.005", "0.3333333333"), ("0.01", "1.25"), ("0.025", "2.5"), ("0.05", "2.75"), ("+Inf", "3.1")], []),
    ("prometheus-default-buckets", [
        ("0.005", "120"), ("0.01", "480"), ("0.025", "2210"), ("0.05", "5120"), ("0.1", "8811"),
        ("0.25", "9512"), ("0.5", "9870"), ("1", "9961"), ("2.5", "9993"), ("5", "9999"),
        ("10", "10000"), ("+Inf", "10000"),
    ], ["0.999", "0.9999"]),
    ("large-counts", [("0.25", "1e9"), ("0.5", "3.5e9"), ("1", "3.999999e9"), ("+Inf", "4e9")], []),
    ("rank-on-boundary", [("1", "25"), ("2", "50"), ("4", "75"), ("+Inf", "100")], []),
    ("two-buckets", [("0.3", "9"), ("+Inf", "10")], []),
    ("unsorted", [("+Inf", "40"), ("2", "30"), ("0.5", "10"), ("1", "20")], []),
    ("tiny-and-huge-bounds", [("1e-9", "1"), ("1e-6", "2"), ("1e6", "3"), ("1e12", "4"), ("+Inf", "4")], []),
    ("single-observation", [("0.1", "0"), ("0.25", "1"), ("0.5", "1"), ("+Inf", "1")], []),
    ("all-in-inf", [("0.5", "0"), ("1", "0"), ("+Inf", "12")], ["0.0001"]),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": str(TIMESTAMP)})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def main():
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y prometheus")
    version = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    with tempfile.TemporaryDirectory(prefix="canary-hq-") as tmp:
        tmp = Path(tmp)
        lines = ["# TYPE golden_hq_bucket gauge"]
        for name, buckets, _ in CASES:
            for le, count in buckets:
                lines.append(f'golden_hq_bucket{{case="{name}",le="{le}"}} {count} {TIMESTAMP}')
        lines.append("# EOF")
        (tmp / "input.om").write_text("\n".join(lines) + "\n")
        data = tmp / "data"
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(tmp / "input.om"), str(data)],
                       check=True, capture_output=True)
        (tmp / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
        port = free_port()
        server = subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"prometheus did not become ready: {server.stderr.read() if server.stderr else ''}")
                time.sleep(0.2)
            out = []
            for name, buckets, extra in CASES:
                # the data must be there: one series per bucket
                assert len(query(port, f'golden_hq_bucket{{case="{name}"}}')) == len(buckets), name
                results = []
                for q in QS + extra:
                    result = query(port, f'histogram_quantile({q}, golden_hq_bucket{{case="{name}"}})')
                    if len(result) != 1:
                        raise SystemExit(f"{name} q={q}: expected one result, got {result}")
                    results.append({"q": q, "value": result[0]["value"][1]})
                out.append({"name": name, "buckets": [{"le": le, "count": c} for le, c in buckets], "results": results})
        finally:
            server.terminate()
            server.wait(timeout=30)
    path = HERE / "histogram_quantile.json"
    path.write_text(json.dumps({
        "source": "histogram_quantile(q, golden_hq_bucket{case=...}) answered by a real Prometheus from backfilled OpenMetrics",
        "prometheus": version,
        "cases": out,
    }, indent=1) + "\n")
    print(f"wrote {path} ({sum(len(c['results']) for c in out)} values from {version})")


if __name__ == "__main__":
    main()
