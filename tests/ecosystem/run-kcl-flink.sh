#!/usr/bin/env bash
# The KCL 3.x and Flink 1.20 proofs (tests/ecosystem/{kcl,flink}, one Maven reactor:
# pom-kcl-flink.xml) against the real tideline binary; the KCL's lease table lives in moto's
# DynamoDB server. Called by scripts/test; runnable alone:
#   TIDELINE_BIN=target/debug/tideline TIDELINE_PYTHON=.venv/bin/python tests/ecosystem/run-kcl-flink.sh
# Skips (exit 0, with a message) when java or mvn is missing. Reuses ~/.m2.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    echo "KCL/Flink ecosystem tests: SKIPPED — java and mvn are needed (Java 17, Maven 3.8)"
    exit 0
fi
: "${TIDELINE_BIN:?TIDELINE_BIN must name the tideline binary}"
export TIDELINE_BIN
export TIDELINE_PYTHON="${TIDELINE_PYTHON:-python3}"
if ! "$TIDELINE_PYTHON" -c 'import moto.server, moto.dynamodb' 2>/dev/null; then
    echo "KCL/Flink ecosystem tests: $TIDELINE_PYTHON lacks moto[server,dynamodb] (tests/python/requirements.txt)" >&2
    exit 1
fi
started=$SECONDS
status=0
rm -rf kcl/target/surefire-reports flink/target/surefire-reports  # count this run's tests only
# --fail-at-end: a KCL failure still lets the Flink tests run and report.
mvn -B -q -Dstyle.color=never --fail-at-end -f pom-kcl-flink.xml test "$@" || status=$?

# -q hides Surefire's totals; one closing line for both modules, from their reports.
count() {
    cat kcl/target/surefire-reports/TEST-*.xml flink/target/surefire-reports/TEST-*.xml 2>/dev/null \
        | grep -o "<testsuite [^>]*" | grep -o " $1=\"[0-9]*\"" | tr -dc '0-9\n' \
        | awk '{ n += $1 } END { print n + 0 }'
}
failed=$(( $(count failures) + $(count errors) ))
echo "tests/ecosystem kcl, flink: $(( $(count tests) - failed - $(count skipped) )) passed, $failed failed ($((SECONDS - started)) s)"
exit "$status"
