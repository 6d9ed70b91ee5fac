#!/usr/bin/env bash
# The one test command: installs what the tests need when it is missing (Debian packages:
# prometheus, haproxy, nginx-light, chromium), then checks formatting and lints and runs the
# whole suite. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The binary without its default features (`kubernetes`): it must lint clean too, and must
# not compile a Kubernetes client.
cargo clippy --workspace --all-targets --no-default-features --locked -- -D warnings
if cargo tree -p canary --no-default-features -e normal --prefix none --locked |
  grep -E '^(kube|k8s-openapi|gateway-api) '; then
  echo "canary --no-default-features still depends on the Kubernetes crates above" >&2
  exit 1
fi
# The whole suite includes tests/fuzz/tests/smoke.rs: every fuzz target over its seed corpus and
# 1500 mutated inputs, on stable (the cargo-fuzz campaign itself: docs/reliability.md).
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
