#!/usr/bin/env bash
# A real rollout on this machine: two demo services (stable and canary) behind HAProxy, a
# Prometheus scraping them, load flowing, and `canary rollout` driving HAProxy's weights.
#
#   examples/local-stack/run.sh                      # a healthy canary: promoted
#   examples/local-stack/run.sh --error-rate 0.05    # a bad canary: rolled back (exit 1)
#
# Needs haproxy and prometheus (Debian: apt-get install -y haproxy prometheus; tests/run.sh
# installs them). STEP (default 20s) sets the step duration; OUT the report directory;
# CANARY_BIN_DIR a directory with already-built binaries.
# Everything it starts is stopped when it ends; its exit code is canary's.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
step="${STEP:-20s}"
out="${OUT:-$root/target/local-stack}"
canary_flags=("$@")

for program in haproxy prometheus; do
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || {
    echo "$program is not installed: apt-get install -y $program" >&2
    exit 2
  }
done

# CANARY_BIN_DIR: where canary and canary-demo-service already are (the tests use their
# debug build); otherwise they are built in release mode.
if [ -n "${CANARY_BIN_DIR:-}" ]; then
  bin="$CANARY_BIN_DIR"
else
  cargo build --quiet --release --manifest-path "$root/Cargo.toml" --bin canary --bin canary-demo-service
  bin="$root/target/release"
fi
dir="$(mktemp -d)"
mkdir -p "$out"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a demo service and prints its address once it listens.
start_service() {
  local version="$1"; shift
  "$bin/canary-demo-service" serve --version "$version" --listen 127.0.0.1:0 "$@" >"$dir/$version.out" 2>"$dir/$version.err" &
  pids+=($!)
  for _ in $(seq 100); do
    if grep -q 'listening on' "$dir/$version.out" 2>/dev/null; then
      sed -n 's#listening on http://##p' "$dir/$version.out"
      return
    fi
    sleep 0.1
  done
  echo "the $version demo service did not start" >&2
  exit 4
}
stable="$(start_service stable --seed 1)"
canary="$(start_service canary --seed 2 "${canary_flags[@]}")"

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

for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null 2>&1 && [ -S "$dir/haproxy.sock" ] && break
  sleep 0.2
done

"$bin/canary-demo-service" load --target "http://127.0.0.1:$haproxy_port/api/checkout" --rps 200 >"$dir/load.out" 2>&1 &
pids+=($!)

sed -e "s#@PROMETHEUS_PORT@#$prometheus_port#" -e "s#@STEP@#$step#" -e "s#@DIR@#$dir#" \
  "$root/examples/local-stack/policy.template.yaml" >"$dir/policy.yaml"
echo "stable $stable, canary $canary, HAProxy http://127.0.0.1:$haproxy_port, Prometheus http://127.0.0.1:$prometheus_port" >&2

set +e
"$bin/canary" rollout --policy "$dir/policy.yaml" --state-dir "$dir/state" \
  --output "json:$out/report.json" --output "markdown:$out/report.md" --output "html:$out/report.html"
code=$?
set -e
echo "reports in $out" >&2
exit "$code"
