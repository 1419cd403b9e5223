#!/usr/bin/env bash
# Live ingest against replay (issue #18 item 4): the same corpus through `decnetd ingest`, then
# through a running daemon's file tail (appended in one go), then through its plain TCP syslog
# listener (one connection, LF framing, sent as fast as the socket takes it). Each live figure
# is lines/s from the first byte offered to the last log row committed, the end seen by counting
# the `logs` table (SQLite file or PostgreSQL) — not by the daemon's own counters; `+folded`
# is the same run until the attacker rows caught up with every log row too (the profiler
# cursor reached the last log id), which is the work replay's own figure includes (its
# `seconds` end after its last profiler and credential-reuse passes). The daemon runs only the
# ingester, heartbeat and API (as `decnetd ingest` runs only the pipeline).
#
#   scripts/bench/live_ingest.sh                       # 100 000 lines, 2 000 IPs, SQLite + PG
#   LINES=200000 RUNS=3 BACKENDS=sqlite scripts/bench/live_ingest.sh
#   BIN=/path/to/decnetd scripts/bench/live_ingest.sh  # skip the build
#   EXTRA_ENV="DECNET_BATCH_MAX_SIZE=100" ...          # e.g. the old fixed 100-line batches
#   LIVE_ORDER="tcp tail tls" ...                      # the live paths and their order (default "tail tcp"; tls = TLS listener)
set -euo pipefail

LINES=${LINES:-100000}
IPS=${IPS:-2000}
RUNS=${RUNS:-1}
BACKENDS=${BACKENDS:-"sqlite postgresql"}
EXTRA_ENV=${EXTRA_ENV:-}
# the live paths after replay, in this order (a run leaves the page cache and the disk busy
# for the next one)
LIVE_ORDER=${LIVE_ORDER:-"tail tcp"}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

if [[ -z "${BIN:-}" ]]; then
  cargo build --release --bin decnetd >&2
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/decnetd"
fi

WORK=$(mktemp -d)
PID=""
PG_STARTED=""
stop_daemon() {
  if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi
}
cleanup() { stop_daemon; rm -rf "$WORK"; }
trap cleanup EXIT

CORPUS="$WORK/corpus.log"
python3 "$ROOT/scripts/bench/gen_corpus.py" "$CORPUS" "$LINES" "$IPS"
echo "corpus: $LINES lines, $IPS attacker IPs, $(du -h "$CORPUS" | cut -f1); load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_count BACKEND DATA_DIR DB_URL WANT: seconds (float) until the logs table holds WANT rows,
# then seconds until the attacker rows caught up with them (the profiler cursor at the last row).
# The poller shares the 2 cores with the daemon, and replay pays no poller, so it is kept cheap:
# one process and one connection for the whole wait (on PostgreSQL one `psql` fed queries on its
# stdin), polling `max(id)` (an index lookup) every 20 ms and counting the rows only once that
# reaches WANT (ids may have gaps, never more rows than the largest id). A full `count(*)` of
# the logs table every 20 ms was ~3 ms of CPU each (15 % of a core), and a process per poll
# (python or psql start-up) ~30 ms each.
wait_count() {
  python3 - "$@" <<'EOF'
import subprocess, sys, time
backend, data, url, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t0 = time.monotonic()
if backend == "sqlite":
    import sqlite3
    conn = None
    def query(q):
        global conn
        try:
            if conn is None:
                conn = sqlite3.connect(f"file:{data}/decnet.db?mode=ro", uri=True, timeout=5)
            return str(conn.execute(q).fetchone()[0])
        except sqlite3.Error:
            conn = None
            return ""
    cursor = "cast(json_extract(value, '$.log_id') as integer)"
else:
    psql = subprocess.Popen(["psql", url, "-qtAX"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, bufsize=1)
    def query(q):
        # a failed query (the table not there yet) prints nothing: each query is followed by
        # a marker row
        psql.stdin.write(f"{q};\nselect 'END';\n")
        psql.stdin.flush()
        out = []
        while (line := psql.stdout.readline().strip()) != "END":
            out.append(line)
        return out[-1] if out else ""
    cursor = "(value::json->>'log_id')::bigint"
def number(q):
    v = query(q)
    return int(v) if v not in ("", "None") else 0
def folded():
    # the profiler cursor has reached the last log row
    q = ("select (select max(id) from logs) <= coalesce((select " + cursor +
         " from state where key = 'attacker_profile_cursor'), 0)")
    return query(q) in ("1", "t")
committed = None
while time.monotonic() - t0 < 300:
    if committed is None and number("select max(id) from logs") >= want:
        if number("select count(*) from logs") >= want:
            committed = time.monotonic() - t0
    if committed is not None and folded():
        print(f"{committed:.3f} {time.monotonic() - t0:.3f}")
        sys.exit(0)
    time.sleep(0.02)
print(f"timeout: {number('select count(*) from logs')} of {want} rows (committed: {committed})", file=sys.stderr)
sys.exit(1)
EOF
}

# make_pki: a CA, a listener certificate for 127.0.0.1 and a client certificate with a CN
# (the TLS listener closes a peer without one) under $WORK/pki, made once with openssl
make_pki() {
  local d="$WORK/pki"
  [[ -f "$d/client.pem" ]] && return
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  local who ext
  for who in server client; do
    if [[ $who == server ]]; then ext="subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"; else ext="extendedKeyUsage=clientAuth"; fi
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench-$who" \
      -keyout "$d/$who.key" -out "$d/$who.csr" 2>/dev/null
    openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
      -extfile <(printf '%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' "$ext") \
      -out "$d/$who.pem" 2>/dev/null
  done
}

# serve BACKEND DATA_DIR DB_URL TCP_PORT [TLS_PORT]: a release daemon with only the intake
# workers (and the TLS listener on TLS_PORT when given)
serve() {
  local port api tls=()
  api=$(free_port)
  if [[ -n "${5:-}" ]]; then
    tls=(DECNET_SYSLOG_TLS_CA="$WORK/pki/ca.pem" DECNET_SYSLOG_TLS_CERT="$WORK/pki/server.pem"
         DECNET_SYSLOG_TLS_KEY="$WORK/pki/server.key" DECNET_LISTENER_HOST=127.0.0.1
         DECNET_SWARM_SYSLOG_PORT="$5")
  fi
  # shellcheck disable=SC2086
  env DECNET_DATA_DIR="$2" ${3:+DECNET_DB_URL="$3"} DECNET_API_HOST=127.0.0.1 DECNET_API_PORT="$api" \
      DECNET_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')" \
      DECNET_ADMIN_USER=admin DECNET_ADMIN_PASSWORD=bench-live-ingest-pw \
      DECNET_LOG_LEVEL=warn DECNET_INTEL_ENABLED=false \
      DECNET_DISABLED_WORKERS=clusterer,campaign-clusterer,ttp,planner,mail-dripper,enricher,canary,reconciler,webhooks \
      DECNET_INGEST_LOG_FILE="$2/ingest.log" DECNET_SYSLOG_TCP_BIND="127.0.0.1:$4" "${tls[@]}" $EXTRA_ENV \
      "$BIN" serve >>"$2/decnetd.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api/api/v1/health" || true)" == 401 ]] && return
    if ! kill -0 "$PID" 2>/dev/null; then echo "decnetd exited:" >&2; tail -20 "$2/decnetd.log" >&2; exit 1; fi
    sleep 0.2
  done
}

rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):9.0f}')" "$1" "$2"; }

# report PATH "COMMITTED_S FOLDED_S": two result rows (PATH and PATH+folded); uses $backend $want
report() {
  local committed=${2% *} folded=${2#* }
  printf '%-10s %-7s %8d rows in %7.2f s = %s lines/s\n' "$backend" "$1" "$want" "$committed" "$(rate "$LINES" "$committed")" | tee -a "$WORK/results"
  printf '%-10s %-7s %8d rows in %7.2f s = %s lines/s\n' "$backend" "$1+folded" "$want" "$folded" "$(rate "$LINES" "$folded")" | tee -a "$WORK/results"
}

# finish_sent PATH SENDER_PID: wait for the rows, then for the sender; stop the daemon and report
# (uses backend, data, url of the live_* caller and want of `one`)
finish_sent() {
  local times
  times=$(wait_count "$backend" "$data" "$url" "$want")
  wait "$2"
  stop_daemon
  report "$1" "$times"
}

# live_tail / live_tcp / live_tls: one live run (uses backend, i, url, want of `one`)
live_tail() {
  local data port url=$url
  # the corpus appended in one go
  data="$WORK/$backend-tail-$i"; mkdir -p "$data"; : >"$data/ingest.log"
  [[ -z "$url" ]] || url=$(fresh_pg "tail_$i")
  port=$(free_port)
  serve "$backend" "$data" "$url" "$port"
  cat "$CORPUS" >>"$data/ingest.log"
  report tail "$(wait_count "$backend" "$data" "$url" "$want")"
  stop_daemon
}

live_tcp() {
  local data port url=$url
  # one connection, LF framing
  data="$WORK/$backend-tcp-$i"; mkdir -p "$data"; : >"$data/ingest.log"
  [[ -z "$url" ]] || url=$(fresh_pg "tcp_$i")
  port=$(free_port)
  serve "$backend" "$data" "$url" "$port"
  python3 - "$CORPUS" "$port" <<'EOF' &
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1 << 20):
        s.sendall(chunk)
s.shutdown(socket.SHUT_WR)
s.close()
EOF
  finish_sent tcp $!
}

live_tls() {
  local data port tls_port url=$url
  # one TLS 1.3 connection with a client certificate (RFC 5425 port), LF framing
  make_pki
  data="$WORK/$backend-tls-$i"; mkdir -p "$data"; : >"$data/ingest.log"
  [[ -z "$url" ]] || url=$(fresh_pg "tls_$i")
  port=$(free_port); tls_port=$(free_port)
  serve "$backend" "$data" "$url" "$port" "$tls_port"
  python3 - "$CORPUS" "$tls_port" "$WORK/pki" <<'EOF' &
import socket, ssl, sys, time
pki = sys.argv[3]
ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
ctx.load_cert_chain(f"{pki}/client.pem", f"{pki}/client.key")
for _ in range(100):
    try:
        raw = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
        break
    except OSError:
        time.sleep(0.05)
s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1 << 20):
        s.sendall(chunk)
try:
    s.unwrap()  # close_notify; the listener then closes without answering one
except (ssl.SSLError, OSError):
    pass
raw.close()
EOF
  finish_sent tls $!
}

# one BACKEND RUN DB_URL_OR_EMPTY: replay, then the live paths in LIVE_ORDER
one() {
  local backend=$1 i=$2 url=$3 data out want secs
  # replay
  data="$WORK/$backend-replay-$i"; mkdir -p "$data"
  [[ -z "$url" ]] || url=$(fresh_pg "replay_$i")
  # shellcheck disable=SC2086
  out=$(env DECNET_DATA_DIR="$data" ${url:+DECNET_DB_URL="$url"} DECNET_LOG_LEVEL=warn $EXTRA_ENV "$BIN" ingest "$CORPUS")
  want=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['logs_inserted'])" "$out")
  secs=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['seconds'])" "$out")
  printf '%-10s %-7s %8d rows in %7.2f s = %s lines/s\n' "$backend" replay "$want" "$secs" "$(rate "$LINES" "$secs")" | tee -a "$WORK/results"

  local path
  for path in $LIVE_ORDER; do "live_$path"; done
}

fresh_pg() {
  local db="bench_live_$$_$1"
  psql "$DECNETD_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  psql "$DECNETD_TEST_PG_URL" -qc "CREATE DATABASE $db" >/dev/null
  echo "${DECNETD_TEST_PG_URL%/*}/$db"
}

for backend in $BACKENDS; do
  url=""
  if [[ $backend == postgresql ]]; then
    if ! PG_ENV=$(scripts/pg start 2>/dev/null); then echo "postgresql: scripts/pg could not start; skipped" >&2; continue; fi
    eval "$PG_ENV"
    url=pg
  fi
  for i in $(seq 1 "$RUNS"); do one "$backend" "$i" "$url"; done
done

python3 - "$WORK/results" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    runs.setdefault((f[0], f[1]), []).append(float(f[-2]))
print("medians (lines/s):")
for (backend, path), v in sorted(runs.items()):
    print(f"  {backend:<10} {path:<11} {statistics.median(v):9.0f}  (runs: {', '.join(f'{x:.0f}' for x in v)})")
EOF
