#!/usr/bin/env bash
# The container image, built and run here (ctest label "image"): the Dockerfile's runtime
# stage on a locally made Debian 12 base with the vigild and vigil CI has just built, run
# --read-only as its non-root user with a data volume: vigild starts embedded, /healthz and
# /readyz answer, alerts appear through the API, the CLI works inside, SIGTERM exits 0 within
# the grace period.
#
#   tests/image/image_test.sh VIGILD VIGIL
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
vigild="$1"
vigil="$2"
image=localhost/vigil-test
grace=30

work="$(mktemp -d "${TMPDIR:-/tmp}/vigil-image-test.XXXXXX")"
name="vigil-image-test-$$"
pod() { "$src/scripts/image" podman "$@"; }
cleanup() {
  pod rm -f -t 0 "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  pod logs "$name" 2>&1 | tail -40 >&2 || true
  exit 1
}

# The binaries CI built, stripped (the image carries no debug info).
mkdir -p "$work/bin" "$work/data"
install -m 0755 -s "$vigild" "$work/bin/vigild"
install -m 0755 -s "$vigil" "$work/bin/vigil"
VIGIL_IMAGE="$image" "$src/scripts/image" build --prebuilt "$work/bin" >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; fail "image build"; }

# What the image declares.
user="$(pod image inspect --format '{{.Config.User}}' "$image:latest")"
[ "$user" = "10001:10001" ] || fail "image user is '$user', not 10001:10001"
entry="$(pod image inspect --format '{{json .Config.Entrypoint}}' "$image:latest")"
[ "$entry" = '["/usr/local/bin/vigild"]' ] || fail "entrypoint is $entry"
for label in org.opencontainers.image.version org.opencontainers.image.revision \
  org.opencontainers.image.created org.opencontainers.image.title; do
  v="$(pod image inspect --format "{{index .Config.Labels \"$label\"}}" "$image:latest")"
  [ -n "$v" ] && [ "$v" != "<no value>" ] || fail "label $label missing"
done

# Run it read-only, as its user, with a data volume owned by that user.
chown 10001:10001 "$work/data"
port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
pod run -d --name "$name" --read-only -p "127.0.0.1:$port:8080" \
  -v "$work/data:/var/lib/vigil" "$image:latest" >/dev/null || fail "podman run"
base="http://127.0.0.1:$port"

wait_for() {  # wait_for PATH SECONDS: until PATH answers 200
  local deadline=$((SECONDS + $2))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$base$1")" = 200 ]; do
    [ $SECONDS -lt $deadline ] || fail "$1 did not answer 200 within $2 s"
    [ "$(pod inspect --format '{{.State.Running}}' "$name")" = true ] || fail "vigild exited"
    sleep 0.5
  done
}
wait_for /healthz 60
wait_for /readyz 60

# The process runs as 10001, and the root filesystem refuses writes.
[ "$(pod exec "$name" id -u)" = 10001 ] || fail "vigild does not run as uid 10001"
[ "$(pod inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$name")" = true ] || fail "not read-only"
if pod exec --user 0 "$name" sh -c 'echo x > /etc/probe' 2>/dev/null; then
  fail "the root filesystem is writable"
fi
pod exec "$name" sh -c 'echo x > /tmp/probe' || fail "/tmp is not writable"

# Alerts from the simulator's attacks, through the API with the token vigild made.
token="$(cat "$work/data/data/api-token" 2>/dev/null)" || fail "no api-token in the data volume"
deadline=$((SECONDS + 90))
until curl -sf -H "Authorization: Bearer $token" "$base/api/v1/alerts?limit=5" |
  /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get("alerts") else 1)'; do
  [ $SECONDS -lt $deadline ] || fail "no alerts through the API within 90 s"
  sleep 1
done
curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/alerts" | grep -qx 401 ||
  fail "the alerts route answered without a token"

# The CLI inside the image reads the token from the data directory.
pod exec "$name" vigil stats >"$work/stats.txt" 2>&1 || { cat "$work/stats.txt" >&2; fail "vigil stats"; }
grep -qi "shard" "$work/stats.txt" || { cat "$work/stats.txt" >&2; fail "vigil stats printed no shards"; }

# SIGTERM: a clean stop well within the grace period, exit code 0.
start=$SECONDS
pod stop -t "$grace" "$name" >/dev/null
took=$((SECONDS - start))
code="$(pod inspect --format '{{.State.ExitCode}}' "$name")"
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
[ $took -lt $grace ] || fail "SIGTERM took ${took}s, the grace period is ${grace}s"
# Into a file first: with pipefail, `pod logs | grep -q` fails when grep stops reading at its
# match before podman has written the rest (SIGPIPE), although the line is there.
pod logs "$name" >"$work/logs.txt" 2>&1 || true
grep -q "stopped" "$work/logs.txt" || fail "vigild did not log its clean stop"

echo "image test passed: built, healthz/readyz, alerts, CLI, read-only, SIGTERM exit 0 in ${took}s"
