#!/usr/bin/env bash
# The project's test command: installs what the tests need, builds with warnings as errors, checks
# formatting, runs every test, checks the definition schema against the examples, and builds the
# benchmarks so they cannot rot. Run from anywhere: ./scripts/test.sh
#
# Environment:
#   SKIP_BENCHMARK_BUILD=1  skip building the benchmarks (saves a few minutes locally)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

log "Tools"
swift --version 2>&1 | head -1
if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
    log "Installing the Python packages the schema check needs"
    python3 -m pip install --quiet jsonschema PyYAML
fi

log "Formatting (swift format lint --strict)"
swift format lint --strict --recursive Sources Tests Benchmarks/Benchmarks Benchmarks/Sources Package.swift Benchmarks/Package.swift

log "Build (warnings are errors)"
swift build --build-tests -Xswiftc -warnings-as-errors

log "Tests"
output=$(mktemp)
trap 'rm -f "$output"' EXIT
set +e
swift test --skip-build 2>&1 | tee "$output"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo "swift test failed (exit $status)" >&2
    exit "$status"
fi
summary=$(grep -E 'Test run with [0-9]+ tests? .*passed' "$output" | tail -1 || true)
tests=$(printf '%s' "$summary" | sed -E 's/.*Test run with ([0-9]+) tests?.*/\1/')
if [ -z "$tests" ] || [ "$tests" -eq 0 ]; then
    echo "no test ran" >&2
    exit 1
fi

log "Definition schema against the examples"
python3 scripts/check-schema.py

if [ "${SKIP_BENCHMARK_BUILD:-0}" != 1 ]; then
    log "Benchmarks build"
    swift build --package-path Benchmarks -c release
fi

log "Done in $(( $(date +%s) - started )) s"
echo "tests: ${tests} passed, 0 failed"
