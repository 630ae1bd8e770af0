#!/usr/bin/env bash
# Flink's side of the sql-tumble benchmark (docs/benchmarks.md, "SQL: TUMBLE over 1,000,000
# records"): writes the input with `tideline-bench sql-tumble --write-jsonl` and runs TumbleBench
# (the same TUMBLE count/sum on an embedded MiniCluster, filesystem connector). Not part of
# scripts/test. Usage:
#   TIDELINE_BENCH_BIN=target/release/tideline-bench tests/ecosystem/flink/bench.sh [records] [runs] [parallelism]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
records="${1:-1000000}"
export TIDELINE_BENCH_RUNS="${2:-3}" TIDELINE_BENCH_PARALLELISM="${3:-2}" TIDELINE_BENCH_RECORDS="$records"
bench="${TIDELINE_BENCH_BIN:-../../../target/release/tideline-bench}"
input="$(mktemp -d)/sql-tumble.jsonl"
trap 'rm -rf "$(dirname "$input")"' EXIT
"$bench" sql-tumble --records "$records" --write-jsonl "$input" >/dev/null
export TIDELINE_BENCH_JSONL="$input" TIDELINE_BENCH_REPORT="$PWD/target/tumble-bench.txt"
mvn -B -q -Dstyle.color=never -f ../pom-kcl-flink.xml -pl flink -am test \
    -Dtest=TumbleBench -Dsurefire.failIfNoSpecifiedTests=false
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$TIDELINE_BENCH_REPORT"
