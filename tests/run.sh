#!/usr/bin/env bash
# The one test command: installs what the tests need when it is missing (Debian packages:
# prometheus, haproxy, nginx-light, chromium, python3; pinned Python linters; cargo-machete),
# then checks formatting, unused dependencies and lints, lints the files canary ships
# (tests/lint-dist.sh) and runs the whole suite. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v curl >/dev/null 2>&1 || need+=(curl)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3 python3-venv)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The linters of tests/lint-dist.sh (hadolint, check-jsonschema, yamllint,
# kubernetes-validate), pinned in tests/python-tools.txt, in a virtualenv under target/;
# installed again only when that file changes (about a minute from PyPI, once).
tools=target/python-tools
if ! cmp -s tests/python-tools.txt "$tools/installed.txt"; then
  echo "installing the Python linters into $tools" >&2
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check --no-deps -r tests/python-tools.txt
  cp tests/python-tools.txt "$tools/installed.txt"
fi

# Incremental compilation gains nothing on a fresh clone and its caches double the size of
# target/ (3.7 of 7.3 GB here); CI's disk is small and shared, and a full disk fails the suite
# in the middle ("no space left on device" from promtool). Set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
disk_report() {
  echo "disk $1: $(df -Ph target /tmp | awk 'NR > 1 { printf "%s %s free of %s; ", $6, $4, $2 }')" >&2
}
mkdir -p target
disk_report "before the build"
trap 'disk_report "at the end"' EXIT

cargo fmt --all -- --check
# No dependency a crate does not use (issue 14): cargo-machete, pinned, built once into
# target/tools (about 3 CPU-minutes; it reads the sources, so it needs no nightly).
machete=target/tools/bin/cargo-machete
if ! "$machete" --version 2>/dev/null | grep -qx '0.9.2'; then
  cargo install --quiet --locked cargo-machete@0.9.2 --root target/tools
fi
"$machete"
tests/lint-dist.sh "$tools/bin"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The binary without its default features (`kubernetes`, `demo`): it must lint clean too, and
# must compile neither a Kubernetes client nor the demo (an example crate).
cargo clippy --workspace --all-targets --no-default-features --locked -- -D warnings
if cargo tree -p canary --no-default-features -e normal --prefix none --locked |
  grep -E '^(kube|k8s-openapi|gateway-api|canary-kubernetes|canary-demo) '; then
  echo "canary --no-default-features still depends on the crates above" >&2
  exit 1
fi
# The binaries the end-to-end tests start (`tests/lib.rs`, `binary`): built here, once, rather
# than by the first test that needs them while every other test slot waits on cargo's lock
# (about 40 s at the start of a fresh clone's run, docs/benchmarks.md "Test suite").
cargo build --workspace --locked --bin canary --bin canary-demo-service
# The whole suite includes tests/fuzz/tests/smoke.rs: every fuzz target over its seed corpus and
# 1500 mutated inputs, on stable (the cargo-fuzz campaign itself: docs/reliability.md).
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
