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
# --fail-at-end: a KCL failure still lets the Flink tests run and report.
exec mvn -B -q --fail-at-end -f pom-kcl-flink.xml test "$@"
