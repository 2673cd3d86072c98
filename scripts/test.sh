#!/usr/bin/env bash
# The project's test command. It installs what the tests need, builds with warnings as errors,
# checks formatting, runs every test against the brokers it starts, and stops what it started:
#
#   1. every test, with librdkafka's mock cluster (in the test process, or the kafka-mock-broker
#      executable the tests launch) and Debian's librdkafka, and PostgreSQL (Debian's, started in a
#      temporary data directory by deploy/local/postgres.sh; each store test makes a database);
#   2. the Kafka tests and the end-to-end tests (sagad and the participants as processes) again
#      against Tansu, an independent Kafka-compatible broker, with a current librdkafka (both from
#      PyPI wheels; see deploy/local/tansu.sh);
#   3. the definition schema against the examples, the protocol's schemas against its examples,
#      and a build of the benchmarks.
#
# Run from anywhere: ./scripts/test.sh
#   SKIP_BENCHMARK_BUILD=1  skip building the benchmarks
#   SKIP_INTEROP=1          skip the Tansu run (not allowed under CI=true)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)
total_tests=0

postgres_dir="${TMPDIR:-/tmp}/saga-postgres-test-$$"

cleanup() {
    deploy/local/tansu.sh stop "$PWD/.local/tansu-test" >/dev/null 2>&1 || true
    deploy/local/postgres.sh stop "$postgres_dir" >/dev/null 2>&1 || true
    rm -f "${output:-}"
}
trap cleanup EXIT

# Runs `swift test` with the given arguments, fails on a failure or on no test at all, and adds
# the number of tests run to total_tests.
run_tests() {
    output=$(mktemp)
    set +e
    swift test --skip-build "$@" 2>&1 | tee "$output"
    local status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
        echo "swift test failed (exit $status)" >&2
        exit "$status"
    fi
    local count
    count=$(grep -E 'Test run with [0-9]+ tests? .*passed' "$output" | tail -1 | sed -E 's/.*Test run with ([0-9]+) tests?.*/\1/')
    if [ -z "$count" ] || [ "$count" -eq 0 ]; then
        echo "no test ran" >&2
        exit 1
    fi
    total_tests=$((total_tests + count))
}

log "Dependencies"
swift --version 2>&1 | head -1
deploy/local/install-deps.sh
if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
    python3 -m pip install --quiet jsonschema PyYAML
fi

log "Formatting (swift format lint --strict)"
swift format lint --strict --recursive Sources Tests examples/participants Benchmarks/Benchmarks Benchmarks/Sources Package.swift \
    Benchmarks/Package.swift

log "Build (warnings are errors)"
swift build --build-tests -Xswiftc -warnings-as-errors

log "PostgreSQL"
POSTGRES_URL=$(deploy/local/postgres.sh start "$postgres_dir")
export POSTGRES_URL
echo "PostgreSQL at ${POSTGRES_URL%%:*}://…@${POSTGRES_URL##*@}"

log "Tests (mock cluster, librdkafka $(pkg-config --modversion rdkafka); PostgreSQL)"
run_tests

if [ "${SKIP_INTEROP:-0}" = 1 ] && [ "${CI:-}" != true ]; then
    log "Interop run skipped (SKIP_INTEROP=1)"
else
    log "Kafka tests against Tansu with a current librdkafka"
    deploy/local/tansu.sh install
    bootstrap=$(deploy/local/tansu.sh start "$PWD/.local/tansu-test")
    libdir=$(deploy/local/tansu.sh libdir)
    expected=$(echo "${CONFLUENT_KAFKA_VERSION:-2.16.1}" | cut -d. -f1,2)
    echo "Tansu at $bootstrap; librdkafka $expected from $libdir"
    KAFKA_BOOTSTRAP_SERVERS="$bootstrap" KAFKA_EXPECT_LIBRDKAFKA="$expected." LD_LIBRARY_PATH="$libdir" \
        run_tests --filter 'KafkaTests.KafkaIntegrationTests' --filter 'KafkaTests.MockBrokerProcessTests' \
        --filter 'EndToEndTests'
    echo "(the fault-injection suite needs the mock cluster's controls; it ran in the first pass)"
    deploy/local/tansu.sh stop "$PWD/.local/tansu-test"
fi

log "Definition schema against the examples"
python3 scripts/check-schema.py

log "Protocol: message schemas, examples and the AsyncAPI document"
python3 scripts/check-protocol.py

if [ "${SKIP_BENCHMARK_BUILD:-0}" != 1 ]; then
    log "Benchmarks build"
    swift build --package-path Benchmarks -c release
fi

log "Done in $(( $(date +%s) - started )) s"
echo "tests: ${total_tests} passed, 0 failed"
