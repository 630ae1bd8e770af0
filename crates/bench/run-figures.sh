#!/usr/bin/env bash
# Reproduces the figures of docs/benchmarks.md: each scenario 3 times against a fresh release
# `tideline` (durable in a temp dir, then --in-memory), one JSON line per run on stdout, with the
# CPU seconds used by the server, by tideline-bench and by everything else on the machine (a run
# where "others" used more than a second or two was disturbed by other work: run it again).
#
#   cargo build --release -p tideline-bench -p tideline-server
#   crates/bench/run-figures.sh > figures.jsonl
#
# Every run is bounded (10 s measured + 1 s warm-up by default) and talks to 127.0.0.1 only.
set -euo pipefail
TARGET=${CARGO_TARGET_DIR:-target}/release
SERVER=$TARGET/tideline
BENCH=$TARGET/tideline-bench
RUNS=${RUNS:-3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

one() { # MODE LABEL BENCH-ARGS...
    local mode=$1 label=$2; shift 2
    local args=(--in-memory)
    [ "$mode" = durable ] && args=(--data-dir "$WORK/data")
    "$SERVER" serve --listen 127.0.0.1:0 "${args[@]}" >"$WORK/server.out" 2>"$WORK/server.err" &
    local server=$!
    for _ in $(seq 100); do grep -q listening "$WORK/server.out" && break; sleep 0.05; done
    local endpoint
    endpoint=$(sed 's/tideline listening on //' "$WORK/server.out")
    local s0 c0 s1 c1
    s0=$(ticks $server); c0=$(busy)
    /usr/bin/time -f '%U %S %e' -o "$WORK/time" "$BENCH" --endpoint "$endpoint" --json "$@" >"$WORK/out.json" 2>"$WORK/bench.err" || true
    s1=$(ticks $server); c1=$(busy)
    kill $server; wait $server 2>/dev/null || true
    rm -rf "$WORK/data"
    python3 - "$label" "$mode" "$s0" "$s1" "$c0" "$c1" "$WORK/time" "$WORK/out.json" <<'PY'
import json, sys
label, mode, s0, s1, c0, c1, time_file, out = sys.argv[1:]
user, system, wall = map(float, open(time_file).read().split()[-3:])
try:
    report = json.load(open(out))
except ValueError:
    report = {"error": "no report"}
server = (float(s1) - float(s0)) / 100
machine = (float(c1) - float(c0)) / 100
report.update(label=label, mode=mode, wall_s=wall, server_cpu_s=server, bench_cpu_s=user + system,
              others_cpu_s=round(machine - server - user - system, 2))
print(json.dumps(report), flush=True)
PY
}

for mode in durable memory; do
    for _ in $(seq "$RUNS"); do
        one $mode ingest-100B put-records
        one $mode ingest-10KiB --record-size 10240 put-records
        one $mode put-record put-record
        one $mode get-records get-records
        one $mode e2e e2e
        one $mode subscribe subscribe
    done
done
"$BENCH" --json startup --server "$SERVER" --runs 10 -- serve --in-memory
"$BENCH" --json startup --server "$SERVER" --runs 10 --fresh-data-dir -- serve
