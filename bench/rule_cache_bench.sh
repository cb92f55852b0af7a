#!/usr/bin/env bash
# The compiled rule cache (match/database_cache.h): `vigil rules check` of the whole SigmaHQ
# tree with an empty cache (every Hyperscan database compiled, then written) and with a warm
# one (every database loaded), rounds alternated ROUNDS times; wall time, user CPU and the
# tool's own "Hyperscan databases: ... loaded in ..., ... compiled in ..." line.
#
# Run: bash bench/rule_cache_bench.sh   (after building vigil in BUILD, default build/release;
#      RULES, ROUNDS override)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
RULES=${RULES:-../shared/corpus/sigma_rules}
ROUNDS=${ROUNDS:-3}
DIR=$(mktemp -d --suffix=.vigil-rule-cache-bench)  # a scratch directory of our own
trap 'rm -rf "$DIR"' EXIT

run() {  # $1: cold|warm
  /usr/bin/time -o "$DIR/time" -f "%e %U" env VIGIL_RULE_CACHE="$DIR/cache" \
    "$BUILD/app/vigil" rules check "$RULES" >"$DIR/out" 2>/dev/null || true
  printf '%-5s wall %6.2f s  user %6.2f s  %s\n' "$1" $(tail -1 "$DIR/time") \
    "$(grep '^Hyperscan databases' "$DIR/out")"
}
for ((i = 0; i < ROUNDS; ++i)); do
  rm -rf "$DIR/cache"
  run cold
  run warm
done
echo "cache size: $(du -sh "$DIR/cache" | cut -f1) ($(ls "$DIR/cache" | wc -l) entries)"
