#!/usr/bin/env bash
# Lints what canary ships besides its code, with the tools each kind of file has:
#   the Dockerfile                hadolint (every rule, style included)
#   the CI examples               check-jsonschema against GitHub's and GitLab's schemas
#   every YAML file               yamllint (.yamllint.yaml)
#   the Kubernetes manifests      kubernetes-validate --strict, for each Kubernetes version
#     under examples/             they claim (examples/kubernetes/README.md)
# Custom resources (HTTPRoute, VirtualService, …) have no schema here: the Rust test
# gateway-adapters/kubernetes/tests/kubernetes/examples.rs checks them, so they are the only kinds whose
# "no schema" warning is allowed below.
#
#   tests/lint-dist.sh [BIN_DIR]    (BIN_DIR holds the tools; tests/run.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/python-tools/bin}"

# The Kubernetes versions the manifests are for: the oldest is the first with the Job's
# podFailurePolicy generally available, the newest the newest kubernetes-validate knows.
kubernetes_versions=(1.31 1.32 1.33 1.34 1.35 1.36 1.37)
custom_kinds='HTTPRoute|VirtualService|TrafficSplit|TraefikService|IngressRoute|CanaryRollout'

claim="Kubernetes ${kubernetes_versions[0]} to ${kubernetes_versions[-1]}"
grep -qF "$claim" examples/kubernetes/README.md || {
  echo "examples/kubernetes/README.md does not say \"$claim\", the versions checked here" >&2
  exit 1
}

echo "hadolint: Dockerfile" >&2
"$bin/hadolint" --no-color --failure-threshold style Dockerfile

echo "check-jsonschema: examples/ci/" >&2
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows examples/ci/github-actions.yml
"$bin/check-jsonschema" --builtin-schema vendor.gitlab-ci examples/ci/gitlab-ci.yml

mapfile -t yaml_files < <(git ls-files --cached --others --exclude-standard -- '*.yml' '*.yaml')
echo "yamllint: ${#yaml_files[@]} files" >&2
"$bin/yamllint" --strict --format parsable "${yaml_files[@]}"

mapfile -t example_files < <(printf '%s\n' "${yaml_files[@]}" | grep '^examples/')
mapfile -t manifests < <(grep -lE '^apiVersion:' "${example_files[@]}")
echo "kubernetes-validate --strict: ${#manifests[@]} files, Kubernetes ${kubernetes_versions[*]}" >&2
for version in "${kubernetes_versions[@]}"; do
  set +e
  result="$("$bin/kubernetes-validate" --strict --quiet -k "$version.0" "${manifests[@]}" 2>&1)"
  code=$?
  set -e
  unexpected="$(grep -vE "^WARN .* Couldn't find schema for kind ($custom_kinds) with api version" <<<"$result" || true)"
  if [ "$code" != 0 ] || [ -n "$unexpected" ]; then
    echo "Kubernetes $version:" >&2
    echo "$result" >&2
    exit 1
  fi
done
echo "lint-dist: all passed" >&2
