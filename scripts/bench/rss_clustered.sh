#!/usr/bin/env bash
# RSS of a release daemon after a live 100k-line file-tail ingest with the clusterers on.
set -euo pipefail
# Prints VmRSS/VmHWM at boot, after the ingest, once both clustering layers are clean, and
# after IDLE_S seconds of idle. DISABLED= picks the workers that stay off (default: all but
# intake, TTP and the two clusterers); NOCLUSTER=1 does not wait for the clusterers;
# PAUSE_AT_END=S prints the pid and keeps the daemon S more seconds (for /proc/PID/smaps, gdb).
#
#   BIN=/path/to/release/decnetd scripts/bench/rss_clustered.sh
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/decnetd}
LINES=${LINES:-100000}; IPS=${IPS:-2000}; MODE=${MODE:-shared}
WORK=$(mktemp -d)
python3 $ROOT/scripts/bench/gen_corpus.py $WORK/corpus.log $LINES $IPS $MODE
data=$WORK/data; mkdir -p $data; : > $data/ingest.log
api=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env DECNET_DATA_DIR=$data DECNET_API_HOST=127.0.0.1 DECNET_API_PORT=$api \
  DECNET_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')" \
  DECNET_ADMIN_USER=admin DECNET_ADMIN_PASSWORD=bench-rss-pw DECNET_LOG_LEVEL=warn DECNET_INTEL_ENABLED=false \
  DECNET_DISABLED_WORKERS=${DISABLED:-planner,mail-dripper,enricher,canary,reconciler,webhooks} \
  DECNET_CLUSTERER_TICK_S=${TICK_S:-5} DECNET_INGEST_LOG_FILE=$data/ingest.log \
  $BIN serve >>$data/decnetd.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf $WORK' EXIT
for _ in $(seq 1 300); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$api/api/v1/health || true)" == 401 ]] && break; sleep 0.2
done
st() { grep -E "^($1):" /proc/$PID/status | awk '{printf "%s %.0f MiB  ", $1, $2/1024}'; }
echo "boot: $(st 'VmRSS|VmHWM'); load $(cut -d' ' -f1-3 /proc/loadavg)"
q() { python3 - "$data/decnet.db" "$1" <<'PY'
import sqlite3, sys
try:
    c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
    print(c.execute(sys.argv[2]).fetchone()[0])
except sqlite3.Error:
    print(-1)
PY
}
t0=$(date +%s.%N)
cat $WORK/corpus.log >> $data/ingest.log
want=$(wc -l < $WORK/corpus.log)
# wait for the ingest (log rows stop growing) and then for both layers to be clean
prev=-1; same=0
while :; do
  n=$(q "select count(*) from logs"); sleep 1
  if [[ $n == "$prev" && $n -gt 0 ]]; then same=$((same+1)); else same=0; fi
  [[ $same -ge 4 ]] && break; prev=$n
done
echo "ingested: $n log rows after $(python3 -c "print(round($(date +%s.%N)-$t0,1))") s; $(st 'VmRSS|VmHWM')"
for _ in $(seq 1 600); do
  d1=$(q "select count(*) from attackers where clustered_at is null or clustered_at <> updated_at")
  d2=$(q "select count(*) from attacker_identities where campaign_clustered_at is null or campaign_clustered_at <> updated_at")
  ids=$(q "select count(*) from attacker_identities")
  [[ $d1 == 0 && $d2 == 0 && ( $ids -gt 0 || -n "${NOCLUSTER:-}" ) ]] && break; [[ -n "${NOCLUSTER:-}" ]] && break; sleep 1
done
echo "clustered: attackers $(q 'select count(*) from attackers'), identities $ids, campaigns $(q 'select count(*) from campaigns') after $(python3 -c "print(round($(date +%s.%N)-$t0,1))") s; $(st 'VmRSS|VmHWM')"
sleep ${IDLE_S:-15}; [[ -n "${PAUSE_AT_END:-}" ]] && { echo "pid $PID"; sleep $PAUSE_AT_END; }
echo "idle ${IDLE_S:-15} s later: $(st 'VmRSS|VmHWM'); load $(cut -d' ' -f1-3 /proc/loadavg)"
