#!/usr/bin/env bash
# Macro bench of cluster mode (issue: cluster mode), on one standalone broker (`vigil dev
# kafka`, PARTITIONS partitions):
#  1. throughput of the deployment with 1, 2 and 3 replicas (each a vigild with WORKERS shard
#     workers and its own store, one consumer group per round) reading the same EVENTS
#     simulated events, rounds alternated (1,2,3,1,2,3,...) ROUNDS times; the rate is taken
#     between 10% and 90% of the events consumed (all replicas summed through one replica's
#     deployment-wide /api/v1/stats), so that start-up and group joins are left out. Every
#     process shares this machine's cores: the ratio is bounded by them (printed).
#  2. the latency a fanned-out query adds: wrk against /api/v1/events?limit=100 and
#     /api/v1/stats on one of 3 replicas, scope=local against the deployment-wide answer.
#
# Run: bash bench/cluster_bench.sh   (after building vigild and vigil in BUILD, default
#      build/release; EVENTS, PARTITIONS, WORKERS, ROUNDS, DURATION override)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
EVENTS=${EVENTS:-360000}  # the mock broker keeps about 5 MB per partition: 360k events of ~560 B over 48
PARTITIONS=${PARTITIONS:-48}
WORKERS=${WORKERS:-2}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
BASE_PORT=${BASE_PORT:-18150}
# A scratch directory of our own, removed on exit.
DIR=$(mktemp -d --suffix=.vigil-cluster-bench)
TOKEN=cluster-bench-token-0123456789abcdef
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

"$BUILD/app/vigil" dev kafka --partitions "$PARTITIONS" --topic vigil.events > "$DIR/broker.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$DIR/broker.out" ] && break; sleep 0.1; done
BROKERS=$(head -1 "$DIR/broker.out")
"$BUILD/app/vigil" simulate --brokers "$BROKERS" --rate 0 --count "$EVENTS" --seed 5 > /dev/null
head -c 32 /dev/urandom | base64 > "$DIR/cursor-key"
printf 'kafka:\n  properties: {session.timeout.ms: "6000", heartbeat.interval.ms: "300", auto.offset.reset: earliest}\n' > "$DIR/vigild.yml"
echo "cluster bench: $EVENTS events on $PARTITIONS partitions, $WORKERS workers per replica, $(nproc) cores"

# start_replicas N GROUP: N vigild in consumer group GROUP, cluster mode among them.
start_replicas() {
  local n=$1 group=$2 peers="" i
  for i in $(seq 0 $((n - 1))); do
    peers+="${peers:+,}r$i=http://127.0.0.1:$((BASE_PORT + i))"
  done
  REPLICA_PIDS=()
  for i in $(seq 0 $((n - 1))); do
    rm -rf "$DIR/data-$i"
    VIGIL_API_TOKENS="reader:$TOKEN" "$BUILD/app/vigild" --config "$DIR/vigild.yml" \
      --kafka-brokers "$BROKERS" --group "$group" --group-instance-id "r$i" --workers "$WORKERS" \
      --data-dir "$DIR/data-$i" --listen "127.0.0.1:$((BASE_PORT + i))" --log-level warn \
      --cluster-self "r$i" --cluster-peers "$peers" --cluster-cursor-key-file "$DIR/cursor-key" \
      > "$DIR/r$i.out" 2> "$DIR/r$i.err" &
    REPLICA_PIDS+=($!)
    PIDS+=($!)
  done
}
stop_replicas() {
  for p in "${REPLICA_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${REPLICA_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
consumed() {  # events consumed by every replica, through replica 0's deployment-wide stats
  curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$BASE_PORT/api/v1/stats" 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(r["events"] for r in d.get("replicas",[d])))' 2>/dev/null ||
    echo 0
}
now() { date +%s.%N; }

declare -A RATES
round=0
for r in $(seq 1 "$ROUNDS"); do
  for n in 1 2 3; do
    round=$((round + 1))
    start_replicas "$n" "bench-$round"
    t10="" t100=""
    deadline=$(( $(date +%s) + 120 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
      c=$(consumed)
      if [ -z "$t10" ] && [ "$c" -ge $((EVENTS / 10)) ]; then t10=$(now); c10=$c; continue; fi
      if [ -n "$t10" ] && [ "$c" -ge $((EVENTS * 9 / 10)) ]; then t100=$(now); c100=$c; break; fi
      sleep 0.02
    done
    stop_replicas
    if [ -z "$t100" ]; then echo "round $round ($n replicas): not all events consumed"; exit 1; fi
    rate=$(/usr/bin/python3 -c "print(int(($c100 - $c10) / ($t100 - $t10)))")
    RATES[$n]="${RATES[$n]:-} $rate"
    printf "round %d: %d replica(s) %9d events/s\n" "$round" "$n" "$rate"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m1=$(echo "${RATES[1]}" | median)
for n in 1 2 3; do
  m=$(echo "${RATES[$n]}" | median)
  printf "%d replica(s): median %9d events/s, %.2fx one replica (cores: %d, so at most %.2fx)\n" \
    "$n" "$m" "$(/usr/bin/python3 -c "print($m / $m1)")" "$(nproc)" \
    "$(/usr/bin/python3 -c "import os; print(min($n * $WORKERS, os.cpu_count()) / min($WORKERS, os.cpu_count()))")"
done

# 2. Fanned-out queries: 3 replicas holding the events, wrk on replica 0.
start_replicas 3 bench-queries
for _ in $(seq 1 600); do [ "$(consumed)" -ge "$EVENTS" ] && break; sleep 0.2; done
query() {  # name target
  local out rps p50 p99
  out=$(wrk -t1 -c4 -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$BASE_PORT$2")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  printf "%-28s %9s req/s   p50 %8s   p99 %8s\n" "$1" "$rps" "$p50" "$p99"
}
query events_local "/api/v1/events?limit=100&scope=local"
query events_deployment "/api/v1/events?limit=100"
query stats_local "/api/v1/stats?scope=local"
query stats_deployment "/api/v1/stats"
stop_replicas
