#!/usr/bin/env bash
# Macro bench of the API (issue: REST API): wrk with keep-alive against
# GET /api/v1/alerts?limit=100 over a store of ALERTS alerts (default 1,000,000) while the
# pipeline consumes simulated events (embedded Kafka, SIM_RATE events/s), beside the same
# wrk run against /healthz (no store work) and against whole documents (view=full) in the
# same session for ratios.
#
# Run: bash bench/api_bench.sh   (after `make build`; ALERTS, SIM_RATE, DURATION, CONNS override;
#      TLS=1 serves HTTPS with the test certificate of tests/data/tls; PAGE_CACHE_MB=0 turns
#      the alert page cache off, so that every request reads the store)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
ALERTS=${ALERTS:-1000000}
SIM_RATE=${SIM_RATE:-2000}
DURATION=${DURATION:-15s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
PORT=${PORT:-18099}
# A scratch directory of our own (mktemp's template); a DIR given by the caller is kept.
if [ -n "${DIR:-}" ]; then OWN_DIR=0; mkdir -p "$DIR"; else OWN_DIR=1; DIR=$(mktemp -d /tmp/vigil-api-bench.XXXXXX); fi
TOKEN=api-bench-token-0123456789abcdef
SCHEME=http
TLS_FLAGS=()
if [ "${TLS:-0}" = 1 ]; then
  SCHEME=https
  TLS_FLAGS=(--tls-cert tests/data/tls/server_a.pem --tls-key tests/data/tls/server_a.key)
fi

echo "api bench ($SCHEME): $ALERTS alerts in $DIR/data, pipeline at $SIM_RATE events/s, wrk -t$THREADS -c$CONNS -d$DURATION"
"$BUILD/bench/vigil_store_bench" --events 0 --alerts "$ALERTS" --dir "$DIR/data" --keep | grep -E "written|p99" || true

printf 'api:\n  page_cache_mb: %s\n' "${PAGE_CACHE_MB:-16}" > "$DIR/vigild.yml"
VIGIL_API_TOKENS="reader:$TOKEN" "$BUILD/app/vigild" --data-dir "$DIR/data" --listen "127.0.0.1:$PORT" \
  --simulator-rate "$SIM_RATE" --log-level warn --config "$DIR/vigild.yml" "${TLS_FLAGS[@]}" \
  > "$DIR/vigild.out" 2> "$DIR/vigild.err" &
VIGILD=$!
trap 'kill $VIGILD 2>/dev/null; wait $VIGILD 2>/dev/null; if [ "$OWN_DIR" = 1 ]; then rm -rf "$DIR"; fi' EXIT
for _ in $(seq 1 100); do
  curl -sf --cacert tests/data/tls/ca_a.pem "$SCHEME://127.0.0.1:$PORT/readyz" > /dev/null && break
  sleep 0.2
done
curl -sf --cacert tests/data/tls/ca_a.pem "$SCHEME://127.0.0.1:$PORT/readyz" > /dev/null || { echo "vigild did not become ready"; cat "$DIR/vigild.err"; exit 1; }
# Another process on the port would answer the readiness check in our vigild's place.
kill -0 "$VIGILD" 2>/dev/null || { echo "vigild exited (port $PORT taken?)"; cat "$DIR/vigild.err"; exit 1; }
sleep 2

run() {  # name target
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$SCHEME://127.0.0.1:$PORT$2")
  local rps p50 p99 errors
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  printf "%-34s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n" "$1" "$rps" "$p50" "$p99" "${errors:-0}"
  echo "$rps" > "$DIR/$1.rps"
}
run healthz /healthz
run alerts_page_100 "/api/v1/alerts?limit=100"
run alerts_page_100_full "/api/v1/alerts?limit=100&view=full"
consumed=$(curl -s --cacert tests/data/tls/ca_a.pem "$SCHEME://127.0.0.1:$PORT/metrics" | awk '/^vigil_events_consumed_total/ {s += $2} END {print s}')
metrics=$(curl -s --cacert tests/data/tls/ca_a.pem "$SCHEME://127.0.0.1:$PORT/metrics")
metric() { echo "$metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%d", s}'; }
echo "pipeline consumed $consumed events meanwhile and wrote $(metric vigil_alerts_total) alerts"
echo "alert page cache (page_cache_mb ${PAGE_CACHE_MB:-16}): hits $(metric vigil_api_alert_page_cache_hits_total), misses $(metric vigil_api_alert_page_cache_misses_total)"
awk -v a="$(cat "$DIR/alerts_page_100.rps")" -v h="$(cat "$DIR/healthz.rps")" \
  'BEGIN {printf "ratio alerts page / healthz: %.2f\n", a / h}'
