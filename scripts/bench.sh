#!/usr/bin/env bash
# Runs the micro benchmarks in release mode and prints their tables (see BENCHMARKS.md).
#   ./scripts/bench.sh                 every benchmark
#   ./scripts/bench.sh --filter 'completing.*'
set -euo pipefail
cd "$(dirname "$0")/.."
exec swift package --package-path Benchmarks benchmark --no-progress "$@"
