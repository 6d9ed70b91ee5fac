#!/usr/bin/env bash
# A fuzzing campaign over every target of tests/fuzz with cargo-fuzz (libFuzzer), as
# docs/reliability.md reports it: each target runs for SECONDS (default 300), JOBS targets at a
# time (default 2), from its checked-in seed corpus; new inputs go to a scratch corpus
# directory, crashes to tests/fuzz/artifacts/TARGET/. At the end, one line per target: runs,
# seconds, crashes. Needs the nightly toolchain and `cargo install cargo-fuzz`.
#
#   tests/fuzz/campaign.sh [SECONDS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-300}"
jobs="${2:-2}"
targets=(policy_yaml recording rollout_state control_request prometheus_answer generic_answer
  datadog_answer cloudwatch_answer
  exposition_page haproxy_answer nginx_upstream command_output)
# No sanitizer: canary's own crates forbid unsafe code, and a sanitizer halves the runs per
# second; panics, overflows (debug assertions are on), timeouts and memory blow-ups are what
# is looked for. -rss_limit_mb and -timeout make the last two crashes.
cargo +nightly fuzz build --fuzz-dir tests/fuzz --features libfuzzer -s none
scratch="$(mktemp -d)"
logs="$scratch/logs"
mkdir -p "$logs"
run() {
  local target="$1"
  mkdir -p "$scratch/$target" "tests/fuzz/artifacts/$target"
  cargo +nightly fuzz run --fuzz-dir tests/fuzz --features libfuzzer -s none "$target" \
    "$scratch/$target" "tests/fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -print_final_stats=1 >"$logs/$target.log" 2>&1 || true
}
for target in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do sleep 1; done
  run "$target" &
done
wait
total=0
printf '%-18s %12s %8s %8s\n' target runs seconds crashes
for target in "${targets[@]}"; do
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$target.log" | grep -o '[0-9]*$' || echo 0)
  time=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$logs/$target.log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$seconds")
  crashes=$(find "tests/fuzz/artifacts/$target" -type f | wc -l)
  total=$((total + ${runs:-0}))
  printf '%-18s %12s %8s %8s\n' "$target" "${runs:-0}" "${time:-?}" "$crashes"
done
printf '%-18s %12s\n' total "$total"
echo "logs: $logs"
