#!/usr/bin/env bash
# Whole-daemon ingest benchmark: lines/s from an RFC 5424 file to committed rows (logs,
# bounty, credentials, attackers, credential reuse) with a release `decnetd ingest`, on SQLite
# and on PostgreSQL (throwaway server from scripts/pg; skipped when it cannot start).
#
#   scripts/bench/ingest.sh                  # 200 000 lines, 2 000 attacker IPs
#   (BATCH sets DECNET_BATCH_SIZE, default 2 000; `decnetd ingest` replays in batches of at
#   least 10 000, so smaller values only matter to the live tail)
#   LINES=500000 BATCH=5000 scripts/bench/ingest.sh
#   RUNS=5 LINES=100000 scripts/bench/ingest.sh   # each backend 5 times, then the medians
set -euo pipefail

LINES=${LINES:-200000}
IPS=${IPS:-2000}
BATCH=${BATCH:-2000}
RUNS=${RUNS:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

cargo build --release --bin decnetd >&2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/decnetd"

WORK=$(mktemp -d)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
CORPUS="$WORK/corpus.log"

# A realistic mix: auth attempts with credentials (reused across deckies), HTTP requests with
# headers (UA / proxy / quirks fingerprints), JA4H, TLS hellos, prober results, wrapped bash
# commands, SMTP chatter, native sshd noise.
python3 "$ROOT/scripts/bench/gen_corpus.py" "$CORPUS" "$LINES" "$IPS"
echo "corpus: $LINES lines, $IPS attacker IPs, $(du -h "$CORPUS" | cut -f1)" >&2

run() { # $1 = label, rest = env assignments
  local label=$1; shift
  local out
  out=$(env "$@" DECNET_BATCH_SIZE="$BATCH" DECNET_LOG_LEVEL=warn "$BIN" ingest "$CORPUS")
  python3 -c "import json,sys; s=json.loads(sys.argv[2]); print(f\"{sys.argv[1]:<11} {s['lines']:>8} lines in {s['seconds']:7.2f} s = {s['lines_per_s']:>9.0f} lines/s  (logs {s['logs_inserted']}, bounties {s['bounties']}, credential attempts {s['credentials']}, reuse findings {s['reuse_findings']})\")" "$label" "$out" | tee -a "$WORK/results"
}

median() { # $1 = label: median lines/s of that label's runs
  awk -v l="$1" '$1 == l { print $8 }' "$WORK/results" | sort -n |
    awk -v l="$1" '{ v[NR] = $1 } END { if (NR) printf "%-11s median of %d run(s): %.0f lines/s\n", l, NR, (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2) }'
}

for i in $(seq 1 "$RUNS"); do
  run sqlite DECNET_DATA_DIR="$WORK/sqlite-$i"
  rm -rf "$WORK/sqlite-$i"
done
median sqlite

if PG_ENV=$(scripts/pg start 2>/dev/null); then
  eval "$PG_ENV"
  for i in $(seq 1 "$RUNS"); do
    DB="bench_ingest_$$_$i"
    psql "$DECNETD_TEST_PG_URL" -qc "CREATE DATABASE $DB" >/dev/null 2>&1 || true
    PG_URL="${DECNETD_TEST_PG_URL%/*}/$DB"
    if psql "$PG_URL" -qc "select 1" >/dev/null 2>&1; then
      run postgresql DECNET_DATA_DIR="$WORK/pg" DECNET_DB_URL="$PG_URL"
      psql "$DECNETD_TEST_PG_URL" -qc "DROP DATABASE $DB" >/dev/null 2>&1 || true
    else
      echo "postgresql: could not create database $DB (psql missing?); skipped" >&2
      break
    fi
  done
  median postgresql
else
  echo "postgresql: scripts/pg could not start a server; skipped" >&2
fi
