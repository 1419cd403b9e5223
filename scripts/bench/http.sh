#!/usr/bin/env bash
# Whole-daemon HTTP load benchmark: starts a release `decnetd serve` on loopback with a fresh
# SQLite data dir and the rate limiter off, logs in (completing the forced password change),
# then drives GET /api/v1/workers and one list route with wrk at 64 connections and prints
# requests/s and p50/p99 latency for each.
#
#   scripts/bench/http.sh                 # defaults: 64 connections, 2 threads, 15 s per route
#   CONNS=128 DURATION=30s scripts/bench/http.sh
set -euo pipefail

CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15s}
PORT=${PORT:-18765}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE="http://127.0.0.1:${PORT}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk not found; installing it with apt-get" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi

cd "$ROOT"
cargo build --release --bin decnetd >&2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/decnetd"

DATA=$(mktemp -d)
LOG="$DATA/decnetd.log"
PW_INITIAL="bench-initial-pw-$RANDOM$RANDOM"
PW_FINAL="bench-final-pw-$RANDOM$RANDOM"
cleanup() {
  if [[ -n "${PID:-}" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT

env DECNET_DATA_DIR="$DATA" \
    DECNET_API_HOST=127.0.0.1 DECNET_API_PORT="$PORT" \
    DECNET_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')" \
    DECNET_ADMIN_USER=admin DECNET_ADMIN_PASSWORD="$PW_INITIAL" \
    DECNET_LIMITER_ENABLED=false DECNET_LOG_LEVEL=warn \
    "$BIN" serve >"$LOG" 2>&1 &
PID=$!

for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null -X POST "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
       -d "{\"username\":\"admin\",\"password\":\"$PW_INITIAL\"}"; then break; fi
  if ! kill -0 "$PID" 2>/dev/null; then echo "decnetd exited:" >&2; cat "$LOG" >&2; exit 1; fi
  sleep 0.2
done

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
login() {
  curl -fsS -X POST "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$1\"}" | json_field access_token
}
TMP_TOKEN=$(login "$PW_INITIAL")
curl -fsS -o /dev/null -X POST "$BASE/api/v1/auth/change-password" \
  -H "authorization: Bearer $TMP_TOKEN" -H 'content-type: application/json' \
  -d "{\"old_password\":\"$PW_INITIAL\",\"new_password\":\"$PW_FINAL\"}"
TOKEN=$(login "$PW_FINAL")

# the list route: the first one of these this build serves (/config lists the users from the DB)
LIST=""
for path in "/api/v1/identities?limit=50" "/api/v1/attackers?limit=50" "/api/v1/credentials?limit=50" "/api/v1/campaigns?limit=50" "/api/v1/config"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $TOKEN" "$BASE$path")
  if [[ "$code" == "200" ]]; then LIST="$path"; break; fi
done

run() {
  local path=$1 out
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $TOKEN" "$BASE$path")
  [[ "$code" == "200" ]] || { echo "GET $path answered $code" >&2; exit 1; }
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$BASE$path")
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
  printf '%-34s %10s req/s   p50 %-9s p99 %-9s %s\n' "GET $path" "$rps" "$p50" "$p99" "$errors"
}

echo "decnetd $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') — wrk ${THREADS} threads, ${CONNS} connections, ${DURATION} per route, $(nproc) cores"
run "/api/v1/workers"
if [[ -n "$LIST" ]]; then run "$LIST"; else echo "no list route answered 200; skipped" >&2; fi
