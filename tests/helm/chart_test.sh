#!/usr/bin/env bash
# The Helm chart (ctest label "chart"), checked by real helm and the Kubernetes schemas:
# `helm lint --strict` and `helm template` for the default values and each value set in
# values/, every rendered object validated offline against the Kubernetes OpenAPI schemas
# (validate.mjs, with kubernetes-models), the chart's promises asserted per value set, the
# rendered vigild.yml accepted by `vigild --check-config`, and the values schema refusing
# misspelt and mistyped values.
#
#   tests/helm/chart_test.sh VIGILD
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
vigild="$1"
chart="$src/helm/vigil"
tools="${VIGIL_TOOLS_DIR:-$src/build/tools}"
"$src/scripts/install-chart-tools"
helm="$tools/helm"
work="$(mktemp -d "${TMPDIR:-/tmp}/vigil-chart-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp "$src/tests/helm/validate.mjs" "$tools/chart-node/validate.mjs"
failed=0
fail() {
  echo "FAIL: $*" >&2
  failed=1
}

for values in "$src"/tests/helm/values/*.yaml; do
  case_name="$(basename "$values" .yaml)"
  "$helm" lint --strict "$chart" -f "$values" >"$work/lint.txt" 2>&1 ||
    { cat "$work/lint.txt" >&2; fail "$case_name: helm lint --strict"; continue; }
  "$helm" template vigil "$chart" --namespace security -f "$values" >"$work/$case_name.yaml" 2>"$work/err.txt" ||
    { cat "$work/err.txt" >&2; fail "$case_name: helm template"; continue; }
  node "$tools/chart-node/validate.mjs" "$work/$case_name.yaml" "$case_name" >"$work/validate.txt" 2>&1 ||
    { cat "$work/validate.txt" >&2; fail "$case_name: rendered objects"; continue; }
  tail -1 "$work/validate.txt"
  # Cluster mode: the pod name vigild gets from the StatefulSet ($(POD_NAME)).
  self=()
  grep -q '^cluster:' "$work/$case_name.yaml.vigild.yml" && self=(--cluster-self vigil-0)
  "$vigild" --config "$work/$case_name.yaml.vigild.yml" "${self[@]}" --check-config >"$work/check.txt" 2>&1 ||
    { cat "$work/check.txt" >&2; fail "$case_name: vigild refuses the rendered vigild.yml"; }
done

# The values schema refuses what a user gets wrong, naming it.
refused() {  # refused WHAT EXPECTED-TEXT helm-args...
  local what="$1" text="$2"
  shift 2
  if "$helm" template vigil "$chart" "$@" >/dev/null 2>"$work/err.txt"; then
    fail "the schema accepted $what"
  elif ! grep -q -- "$text" "$work/err.txt"; then
    cat "$work/err.txt" >&2
    fail "$what refused without naming '$text'"
  fi
}
refused "a misspelt value (replicaCont)" "replicaCont" --set replicaCont=3
refused "a misspelt nested value (kafka.broker)" "broker" --set kafka.broker=k:9092
refused "a mistyped value (replicaCount: three)" "replicaCount" --set replicaCount=three
refused "an unknown rollout policy" "policy" --set rollout.policy=yolo
refused "a duration without a unit" "watchInterval" --set rules.watchInterval=10
refused "SASL without credentials" "password" --set kafka.sasl.enabled=true --set kafka.sasl.username=u
refused "API TLS without its Secret" "secretName" --set api.tls.enabled=true
refused "a short API token" "token" --set 'api.tokens[0].role=admin' --set 'api.tokens[0].token=short'

# A misspelt key in config: passes the chart (free-form) and is refused by vigild.
"$helm" template vigil "$chart" --set config.workerz=4 >"$work/bad.yaml"
node "$tools/chart-node/validate.mjs" "$work/bad.yaml" default >/dev/null 2>&1 || true
if "$vigild" --config "$work/bad.yaml.vigild.yml" --check-config >"$work/check.txt" 2>&1; then
  fail "vigild accepted config.workerz"
elif ! grep -q "workerz" "$work/check.txt"; then
  cat "$work/check.txt" >&2
  fail "vigild refused config.workerz without naming it"
fi

[ $failed -eq 0 ] && echo "chart test passed"
exit $failed
