#!/usr/bin/env bash
# API benchmark at real data sizes (issue #18): every list and detail route the dashboard
# calls, driven by wrk at 64 connections against a release `decnetd serve`, on SQLite and on
# PostgreSQL, over a data set built through the real intake path and the real clusterers:
#
#   1. a synthetic corpus (scripts/bench/gen_corpus.py, `distinct` mode: IPs in small groups
#      with their own fingerprints, so identities number about one per group);
#   2. `decnetd ingest` of it (attackers, logs, credentials, bounty, reuse findings);
#   3. `decnetd serve` until both clusterers have formed identities and campaigns;
#   4. wrk per route: req/s, p50, p99, non-2xx; then the daemon's RSS (now and peak).
#
#   scripts/bench/api.sh                          # 100k attackers, 1.2M lines, both backends
#   BACKENDS=sqlite DURATION=5s scripts/bench/api.sh
#   IPS=10000 LINES=120000 scripts/bench/api.sh  # a quick, smaller set
#   ACCEPT_ENCODING=gzip scripts/bench/api.sh     # ask as a browser does: pages of 1 KiB or more
#                                                 # come gzip-compressed
#
# The built data sets are kept under $CACHE (default /var/tmp/decnetd-bench-api) keyed by
# their size, and reused (REBUILD=1 rebuilds them, RESETTLE=1 runs the clusterers on the cached
# SQLite set again); BIN=path benchmarks another build of decnetd.
# The SQLite runs work on a copy, so that a run never changes the cached set.
set -euo pipefail

IPS=${IPS:-100000}
LINES=${LINES:-1200000}
BACKENDS=${BACKENDS:-sqlite postgres}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
PORT=${PORT:-18766}
ROUTES=${ROUTES:-}
ACCEPT_ENCODING=${ACCEPT_ENCODING:-}
ENC=()
if [[ -n "$ACCEPT_ENCODING" ]]; then ENC=(-H "Accept-Encoding: $ACCEPT_ENCODING"); fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CACHE:-/var/tmp/decnetd-bench-api}
BASE="http://127.0.0.1:${PORT}"
cd "$ROOT"
# shellcheck source=scripts/bench/lib.sh
. "$ROOT/scripts/bench/lib.sh"

for tool in wrk curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool not found; installing it with apt-get" >&2
    apt-get install -y -qq "$tool" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "$tool" >/dev/null; }
  fi
done

if [[ -z "${BIN:-}" ]]; then
  cargo build --release --bin decnetd >&2
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/decnetd"
fi

# A cached set is migrated forward by the daemon under test (`serve` runs pending migrations).
KEY="${IPS}-${LINES}"
mkdir -p "$CACHE" && chmod 700 "$CACHE"
CORPUS="$CACHE/corpus-$IPS-$LINES.log"
if [[ ! -s "$CORPUS" || "${REBUILD:-}" == 1 ]]; then
  echo "api bench: generating $LINES lines from $IPS IPs" >&2
  python3 scripts/bench/gen_corpus.py "$CORPUS.tmp" "$LINES" "$IPS" distinct
  mv "$CORPUS.tmp" "$CORPUS"
fi

WORK=$(mktemp -d)
PID=""
stop_daemon() {
  if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi
}
cleanup() { stop_daemon; rm -rf "$WORK"; }
trap cleanup EXIT

JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
PW_INITIAL="bench-initial-pw-0001"  # fixed: cached sets keep their users
PW_FINAL="bench-final-pw-0002"

# start_daemon DATA_DIR DB_URL TICK_S [extra env…]: a release `serve` with intel off, the
# limiter off and the given clustering tick; waits until it answers.
start_daemon() {
  local data=$1 url=$2 tick=$3; shift 3
  env DECNET_DATA_DIR="$data" DECNET_DB_URL="$url" \
      DECNET_API_HOST=127.0.0.1 DECNET_API_PORT="$PORT" \
      DECNET_JWT_SECRET="$JWT_SECRET" DECNET_ADMIN_USER=admin DECNET_ADMIN_PASSWORD="$PW_INITIAL" \
      DECNET_LIMITER_ENABLED=false DECNET_LOG_LEVEL=warn DECNET_INTEL_ENABLED=false \
      DECNET_CLUSTERER_TICK_S="$tick" DECNET_INGEST_LOG_FILE="$data/ingest.log" "$@" \
      "$BIN" serve >>"$data/decnetd.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/v1/health" || true)" == 401 ]] && break
    if ! kill -0 "$PID" 2>/dev/null; then echo "decnetd exited:" >&2; tail -20 "$data/decnetd.log" >&2; exit 1; fi
    sleep 0.2
  done
}

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }
login() {
  curl -fsS -X POST "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$1\"}" | json "d['access_token']"
}
token() {
  local t
  if t=$(login "$PW_FINAL" 2>/dev/null); then echo "$t"; return; fi
  t=$(login "$PW_INITIAL")
  curl -fsS -o /dev/null -X POST "$BASE/api/v1/auth/change-password" \
    -H "authorization: Bearer $t" -H 'content-type: application/json' \
    -d "{\"old_password\":\"$PW_INITIAL\",\"new_password\":\"$PW_FINAL\"}"
  login "$PW_FINAL"
}
get() { curl -fsS -H "authorization: Bearer $TOKEN" "$BASE$1"; }
rss() { awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {printf "RSS %.0f MiB (anon %.0f, file %.0f; peak %.0f MiB)", r/1024, a/1024, f/1024, h/1024}' "/proc/$PID/status"; }

# Shared infrastructure for the campaign level: intake fills no C2 endpoints (nothing in the
# corpus names one per actor), so about 65k buckets of attackers (by the first four hex digits
# of their uuid) get one C2 endpoint each, and the campaign clusterer links the identities
# behind a bucket. The same statement on both backends.
SEED_INFRA="UPDATE attackers SET c2_endpoints = '[\"c2-' || substr(uuid, 1, 4) || '.bench.example:443\"]'"

# settle DATA_DIR DB_URL [campaigns]: serve until both clusterers have stopped changing the
# counts (with `campaigns`: and some campaigns exist).
settle() {
  local data=$1 url=$2 need=${3:-}
  start_daemon "$data" "$url" 5
  TOKEN=$(token)
  local last="" now t0=$SECONDS
  echo "api bench: waiting for the clusterers" >&2
  while :; do
    sleep 15
    now="$(get '/api/v1/identities?limit=1' | json "d['total']") $(get '/api/v1/campaigns?limit=1' | json "d['total']")"
    echo "  after $((SECONDS - t0)) s: identities campaigns = $now" >&2
    if [[ "$now" == "$last" && ( -z "$need" || "${now#* }" != "0" ) ]] || (( SECONDS - t0 > 900 )); then break; fi
    last=$now
  done
  echo "  settled: $(rss)" >&2
  stop_daemon
}

# build DATA_DIR DB_URL BACKEND TARGET SQL_CLIENT…: ingest the corpus, seed the C2 buckets,
# let the identity clusterer run, seed the keystroke buckets (seed_keystroke.py), then let the
# campaign clusterer run.
build() {
  local data=$1 url=$2 backend=$3 target=$4; shift 4
  echo "api bench: ingesting $CORPUS into $url" >&2
  env DECNET_DATA_DIR="$data" DECNET_DB_URL="$url" DECNET_LOG_LEVEL=warn "$BIN" ingest "$CORPUS" >&2
  "$@" "$SEED_INFRA" >/dev/null
  settle "$data" "$url"
  python3 scripts/bench/seed_keystroke.py "$backend" "$target"
  settle "$data" "$url" campaigns
}

# run PATH: one wrk run, one table row; a PATH starting with `~` asks for a random page each
# time; one starting with `=` revalidates, as a browser holding the page does: every request
# carries the page's ETag in If-None-Match (answered 304 while the page is unchanged).
run() {
  local path=$1 out code script=() extra=() label=""
  if [[ "$path" == "~"* ]]; then
    path=${path#\~}
    script=(-s "$ROOT/scripts/bench/random_offset.lua")
  fi
  if [[ "$path" == "="* ]]; then
    path=${path#=}
    local etag
    etag=$(curl -s -o /dev/null -D - "${ENC[@]}" -H "authorization: Bearer $TOKEN" "$BASE$path" | tr -d '\r' | awk 'tolower($1)=="etag:" {print $2}')
    extra=(-H "If-None-Match: $etag")
    label=" (If-None-Match)"
  fi
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $TOKEN" "$BASE$path")
  if [[ "$code" != "200" ]]; then printf '%-58s answered %s; skipped\n' "GET $path" "$code"; return; fi
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${script[@]}" "${extra[@]}" "${ENC[@]}" -H "Authorization: Bearer $TOKEN" "$BASE$path")
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' || true)
  local shown="GET ${path//$ATTACKER/\{a\}}"
  if (( ${#script[@]} )); then shown="$shown&offset=random"; fi
  shown="$shown$label"
  printf '%-58s %8s req/s   p50 %-9s p99 %-9s %s\n' "$shown" "$rps" "$p50" "$p99" "$errors"
}

bench() { # bench LABEL DATA_DIR DB_URL
  local label=$1 data=$2 url=$3
  # No clustering tick during the load (each route is measured alone); the boot tick runs and
  # is waited out.
  start_daemon "$data" "$url" 3600
  TOKEN=$(token)
  wait_idle "$PID"
  echo "== $label: $(get '/api/v1/attackers?limit=1' | json "d['total']") attackers, $(get '/api/v1/logs?limit=1' | json "d['total']") logs, $(get '/api/v1/identities?limit=1' | json "d['total']") identities, $(get '/api/v1/campaigns?limit=1' | json "d['total']") campaigns, $(get '/api/v1/credentials?limit=1' | json "d['total']") credentials; idle $(rss)"
  ATTACKER=$(get '/api/v1/attackers?limit=1&sort_by=active' | json "(d['data'] or [{'uuid': 'none'}])[0]['uuid']")
  IDENTITY=$(get '/api/v1/identities?limit=1' | json "(d['data'] or [{'uuid': 'none'}])[0]['uuid']")
  CAMPAIGN=$(get '/api/v1/campaigns?limit=1' | json "(d['data'] or [{'uuid': 'none'}])[0]['uuid']")
  REUSE=$(get '/api/v1/credential-reuse?limit=1' | json "(d['data'] or [{'id': 0}])[0]['id']")
  local routes=(
    "/api/v1/logs?limit=50"
    "/api/v1/logs?limit=50&search=wp-admin"
    "/api/v1/attackers?limit=50&sort_by=recent"
    "/api/v1/attackers?limit=50&sort_by=active"
    "/api/v1/attackers?limit=50&sort_by=traversals"
    "/api/v1/attackers?limit=50&search=10.&service=ssh"
    "/api/v1/attackers?limit=50&offset=50000"
    "~/api/v1/attackers?limit=50&sort_by=recent"
    "~/api/v1/logs?limit=50"
    "~/api/v1/identities?limit=50"
    "/api/v1/identities?limit=50"
    "/api/v1/campaigns?limit=50"
    "/api/v1/credentials?limit=50"
    "/api/v1/credentials?limit=50&search=root"
    "/api/v1/credential-reuse?limit=25"
    "/api/v1/credential-reuse?limit=500"
    "=/api/v1/credential-reuse?limit=25"
    "=/api/v1/credential-reuse?limit=500"
    "=/api/v1/attackers?limit=50&sort_by=recent"
    "/api/v1/orchestrator/events?limit=50"
    "/api/v1/canary/tokens"
    "/api/v1/realism/synthetic-files?limit=50"
    "/api/v1/identities/$IDENTITY/observations?limit=50"
    "/api/v1/campaigns/$CAMPAIGN/identities?limit=50"
    "/api/v1/attackers/$ATTACKER"
    "/api/v1/attackers/$ATTACKER/intel"
    "/api/v1/attackers/$ATTACKER/commands?limit=50"
    "/api/v1/attackers/$ATTACKER/attribution"
    "/api/v1/ttp/by-attacker/$ATTACKER"
    "/api/v1/identities/$IDENTITY"
    "/api/v1/campaigns/$CAMPAIGN"
    "/api/v1/credential-reuse/$REUSE"
  )
  for path in "${routes[@]}"; do
    if [[ -n "$ROUTES" && ! "$path" =~ $ROUTES ]]; then continue; fi
    run "$path"
  done
  echo "== $label after the load: $(rss)"
  sleep 5
  echo "== $label 5 s after the load: $(rss)"
  sleep 15
  echo "== $label 20 s after the load: $(rss)"
  stop_daemon
}

echo "decnetd $(git rev-parse --short HEAD 2>/dev/null || echo '?') — wrk $THREADS threads, $CONNS connections, $DURATION per route, $(nproc) cores${ACCEPT_ENCODING:+, Accept-Encoding: $ACCEPT_ENCODING}"
for backend in $BACKENDS; do
  case $backend in
    sqlite)
      SET="$CACHE/sqlite-$KEY"
      if [[ ! -s "$SET/decnet.db" || "${REBUILD:-}" == 1 ]]; then
        rm -rf "$SET" && mkdir -p "$SET"
        build "$SET" "sqlite://$SET/decnet.db" sqlite "$SET/decnet.db" sqlite3 "$SET/decnet.db"
        rm -f "$SET/decnetd.log" "$SET/ingest.log"
      elif [[ "${RESETTLE:-}" == 1 ]]; then
        settle "$SET" "sqlite://$SET/decnet.db" campaigns
      fi
      mkdir -p "$WORK/sqlite"
      cp -r "$SET/." "$WORK/sqlite/"
      bench "SQLite" "$WORK/sqlite" "sqlite://$WORK/sqlite/decnet.db"
      ;;
    postgres)
      if ! eval "$(scripts/pg start)"; then echo "PostgreSQL could not start; skipped" >&2; continue; fi
      PGURL_BASE=${DECNETD_TEST_PG_URL%/*}
      DBNAME="bench_$(printf '%s' "$KEY" | tr -c 'a-z0-9\n' '_')"
      mkdir -p "$WORK/pg"
      if ! psql "$DECNETD_TEST_PG_URL" -tAc "SELECT 1 FROM pg_database WHERE datname='$DBNAME'" | grep -q 1 \
         || [[ "${REBUILD:-}" == 1 ]]; then
        psql "$DECNETD_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $DBNAME" -c "CREATE DATABASE $DBNAME" >/dev/null
        build "$WORK/pg" "$PGURL_BASE/$DBNAME" postgres "$PGURL_BASE/$DBNAME" psql -q "$PGURL_BASE/$DBNAME" -c
        psql "$PGURL_BASE/$DBNAME" -qc "VACUUM ANALYZE" >/dev/null
      fi
      bench "PostgreSQL" "$WORK/pg" "$PGURL_BASE/$DBNAME"
      ;;
  esac
done
