#!/usr/bin/env bash
# A real rollout on this machine: two demo services (stable and canary) behind HAProxy, a
# Prometheus scraping them, load flowing, and the CI stage's command, `canary rollout --policy
# … --id … --output junit:… --output html:…`, driving HAProxy's weights.
#
#   examples/local-stack/run.sh                      # a healthy canary: promoted (exit 0)
#   examples/local-stack/run.sh --error-rate 0.05    # a bad canary: rolled back (exit 1)
#
# Arguments go to the canary demo service (`canary-demo-service serve --help`). Needs haproxy,
# prometheus, curl and python3 (Debian: apt-get install -y haproxy prometheus curl python3;
# tests/run.sh installs them). Settings, all optional:
#   STEP                  the step duration (default 20s)
#   OUT                   where the reports go (default target/local-stack)
#   CANARY_BUILD_PROFILE  the cargo profile the binaries are built with (default release;
#                         the test suite uses dev, which it has built already)
#   CANARY_BIN_DIR        a directory holding canary and canary-demo-service already built
#                         (then nothing is built)
# Its exit code is canary's (docs/exit-codes.md). Everything it starts is stopped when it
# ends, however it ends: Ctrl-C or a TERM reaches the rollout (state saved, reports written,
# exit 130) before the stack is taken down.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
step="${STEP:-20s}"
out="${OUT:-$root/target/local-stack}"
profile="${CANARY_BUILD_PROFILE:-release}"
service_flags=("$@")

for program in haproxy prometheus curl python3; do
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || {
    echo "$program is not installed: apt-get install -y $program" >&2
    exit 2
  }
done
export PATH="$PATH:/usr/sbin"

if [ -n "${CANARY_BIN_DIR:-}" ]; then
  bin="$CANARY_BIN_DIR"
else
  # Both binaries, wherever cargo puts them (CARGO_TARGET_DIR and .cargo/config.toml count).
  cargo build --locked --profile "$profile" --manifest-path "$root/Cargo.toml" \
    --workspace --bin canary --bin canary-demo-service
  target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  case "$profile" in
    dev | test) bin="$target_dir/debug" ;;
    bench) bin="$target_dir/release" ;;
    *) bin="$target_dir/$profile" ;;
  esac
fi

# Every process started below is in `pids` (of this shell: never appended to in a `$(…)`
# subshell, whose variables die with it); `cleanup` stops them all on any exit.
dir="$(mktemp -d)"
pids=()
rollout_pid=""
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Up to 10 s to stop (Prometheus flushes its head block), then SIGKILL.
  for _ in $(seq 50); do
    local running=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
    [ "$running" = 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
# A signal before the rollout starts ends the script (exit 130, through `cleanup`); during the
# rollout it is passed on to canary, which saves its state, writes its reports and exits 130.
on_signal() {
  if [ -n "$rollout_pid" ]; then
    kill -s "$1" "$rollout_pid" 2>/dev/null || true
  else
    exit 130
  fi
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Fails with the last lines of `log` unless `condition` holds within 20 s.
wait_for() {
  local what="$1" log="$2"; shift 2
  for _ in $(seq 100); do
    "$@" && return 0
    sleep 0.2
  done
  echo "$what did not start; the end of $log:" >&2
  tail -n 20 "$log" >&2 || true
  exit 4
}
listening() { grep -q 'listening on' "$1" 2>/dev/null; }

# A demo service on a free port; it prints `listening on http://ADDR` once bound.
"$bin/canary-demo-service" serve --version stable --listen 127.0.0.1:0 --seed 1 \
  >"$dir/stable.out" 2>"$dir/stable.err" &
pids+=($!)
"$bin/canary-demo-service" serve --version canary --listen 127.0.0.1:0 --seed 2 \
  ${service_flags[@]+"${service_flags[@]}"} >"$dir/canary.out" 2>"$dir/canary.err" &
pids+=($!)
wait_for "the stable demo service" "$dir/stable.err" listening "$dir/stable.out"
wait_for "the canary demo service" "$dir/canary.err" listening "$dir/canary.out"
stable="$(sed -n 's#listening on http://##p' "$dir/stable.out")"
canary="$(sed -n 's#listening on http://##p' "$dir/canary.out")"

prometheus_port="$(free_port)"
cat >"$dir/prometheus.yml" <<YAML
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: demo
    static_configs: [{targets: ['$stable', '$canary']}]
YAML
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --web.listen-address="127.0.0.1:$prometheus_port" >"$dir/prometheus.log" 2>&1 &
pids+=($!)

haproxy_port="$(free_port)"
cat >"$dir/haproxy.cfg" <<CFG
global
  stats socket $dir/haproxy.sock mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend web
  bind 127.0.0.1:$haproxy_port
  default_backend app
backend app
  server stable $stable weight 100
  server canary $canary weight 0
CFG
haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
pids+=($!)

wait_for Prometheus "$dir/prometheus.log" curl -fsS -o /dev/null "http://127.0.0.1:$prometheus_port/-/ready"
wait_for HAProxy "$dir/haproxy.log" test -S "$dir/haproxy.sock"

"$bin/canary-demo-service" load --target "http://127.0.0.1:$haproxy_port/api/checkout" --rps 200 \
  >"$dir/load.out" 2>&1 &
pids+=($!)

sed -e "s#@PROMETHEUS_PORT@#$prometheus_port#" -e "s#@STEP@#$step#" -e "s#@DIR@#$dir#" \
  "$root/examples/local-stack/policy.template.yaml" >"$dir/policy.yaml"
mkdir -p "$out"
echo "stable $stable, canary $canary, HAProxy http://127.0.0.1:$haproxy_port, Prometheus http://127.0.0.1:$prometheus_port" >&2

# The CI stage (examples/ci/): the same command and reports, the rollout id a pipeline's.
"$bin/canary" rollout \
  --policy "$dir/policy.yaml" \
  --id "local-stack-$(date +%s)" \
  --state-dir "$dir/state" \
  --output "junit:$out/junit.xml" \
  --output "html:$out/report.html" \
  --output "markdown:$out/report.md" \
  --output "json:$out/report.json" &
rollout_pid=$!
# `wait` returns early (above 128) when a trapped signal arrives; canary is then still
# finishing, so wait again for its own exit code.
code=0
wait "$rollout_pid" || code=$?
while [ "$code" -gt 128 ] && kill -0 "$rollout_pid" 2>/dev/null; do
  code=0
  wait "$rollout_pid" || code=$?
done
echo "reports in $out" >&2
exit "$code"
