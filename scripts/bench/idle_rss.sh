#!/usr/bin/env bash
# Idle memory of `decnetd serve` on a built data set (issue #18 item 3): serves a copy of the
# SQLite set that scripts/bench/api.sh caches, with every worker on, waits until the boot work
# is over (CPU under 5 % for three seconds), then prints RSS (anonymous and file-backed) and the
# peak at each of WAITS (seconds, cumulative), and the credential-reuse passes and idle
# connection closes the daemon logged meanwhile.
#
#   BIN=target/release/decnetd scripts/bench/idle_rss.sh
#   WAITS="10 60 60" SET=/var/tmp/decnetd-bench-api/sqlite-100000-1200000 BIN=… scripts/bench/idle_rss.sh
#   EXTRA_ENV="DECNET_DB_IDLE_CLOSE_S=0" BIN=… scripts/bench/idle_rss.sh   # connections never closed
#   FULL_CAMPAIGN_PASS=1 BIN=… scripts/bench/idle_rss.sh   # the boot runs a full campaign pass
#   FULL_IDENTITY_PASS=1 BIN=… scripts/bench/idle_rss.sh   # … a full identity pass (then campaigns)
set -euo pipefail
: "${BIN:?BIN=path/to/decnetd}"
SET=${SET:-/var/tmp/decnetd-bench-api/sqlite-100000-1200000}
PORT=${PORT:-18799}
WAITS=${WAITS:-10 60 60}
# shellcheck source=scripts/bench/lib.sh
. "$(dirname "$0")/lib.sh"
[[ -s "$SET/decnet.db" ]] || { echo "no data set at $SET (run scripts/bench/api.sh first)" >&2; exit 1; }
W=$(mktemp -d /var/tmp/decnetd-idle.XXXXXX)
PID=""
cleanup() { if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; rm -rf "$W"; }
trap cleanup EXIT
cp -r "$SET/." "$W/"
if [[ "${FULL_IDENTITY_PASS:-}" == 1 ]]; then
  # Every observation marked changed: the boot's identity tick reads and plans them all (what
  # the first tick after a large `decnetd ingest` does), then the campaign tick follows.
  python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); n=c.execute("UPDATE attackers SET clustered_at = NULL").rowcount; c.commit(); print(f"{n} observations marked for the identity pass")' "$W/decnet.db"
fi
if [[ "${FULL_CAMPAIGN_PASS:-}" == 1 ]]; then
  # Every identity marked changed: the boot's campaign tick reads and plans them all (the
  # full pass of a first tick over a big database, or of a large backlog).
  python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); n=c.execute("UPDATE attacker_identities SET campaign_clustered_at = NULL").rowcount; c.commit(); print(f"{n} identities marked for the campaign pass")' "$W/decnet.db"
fi
# shellcheck disable=SC2086  # EXTRA_ENV is a list of NAME=value words
env DECNET_DATA_DIR="$W" DECNET_DB_URL="sqlite://$W/decnet.db" DECNET_API_HOST=127.0.0.1 DECNET_API_PORT="$PORT" \
  DECNET_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')" DECNET_ADMIN_USER=admin \
  DECNET_ADMIN_PASSWORD=bench-initial-pw-0001 DECNET_LIMITER_ENABLED=false DECNET_INTEL_ENABLED=false \
  DECNET_LOG_LEVEL="warn,decnetd::app=debug,decnetd::actors::ingester=debug" \
  DECNET_INGEST_LOG_FILE="$W/ingest.log" ${EXTRA_ENV:-} "$BIN" serve >>"$W/decnetd.log" 2>&1 &
PID=$!
wait_idle "$PID"
at=0
for t in 0 $WAITS; do
  sleep "$t"; at=$((at + t))
  awk -v at="$at" '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2}
    END {printf "+%3d s: RSS %.0f MiB (anon %.0f, file %.0f; peak %.0f MiB)\n", at, r/1024, a/1024, f/1024, h/1024}' "/proc/$PID/status"
done
grep -E "credential-reuse pass|connections closed" "$W/decnetd.log" | sed 's/^[^ ]* *DEBUG //' || true
