#!/usr/bin/env bash
# SagaStore's throughput next to pgbench on the same PostgreSQL server, in the same run.
#
#   ./scripts/bench-store.sh [SECONDS] [CONNECTIONS]
#
# Starts a PostgreSQL server of its own (deploy/local/postgres.sh), then
#   1. store-throughput (Benchmarks/Sources/store-throughput): saga transitions per second through
#      SagaStore at batch sizes 1, 10, 100 and 500, CONNECTIONS concurrent workers;
#   2. pgbench with the same number of clients, running Benchmarks/pgbench/update-insert.sql: per
#      transaction one row update and one row insert, on 20,000 rows.
# and prints the ratio at batch 100 (the target: at least 5). Both get WARMUP seconds (default 20)
# of the same work first, not counted.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
clients="${2:-4}"
dir="${TMPDIR:-/tmp}/saga-postgres-bench-$$"
trap 'deploy/local/postgres.sh stop "$dir" >/dev/null 2>&1 || true' EXIT

swift build --package-path Benchmarks -c release --product store-throughput >&2
url=$(deploy/local/postgres.sh start "$dir")
base="${url%/*}"
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
psql -q "$url" -c "DROP DATABASE IF EXISTS saga_bench" -c "CREATE DATABASE saga_bench"
psql -q "$url" -c "DROP DATABASE IF EXISTS pgbench_bench" -c "CREATE DATABASE pgbench_bench"

echo "== SagaStore, $clients connections, ${duration} s per batch size"
POSTGRES_URL="$base/saga_bench" Benchmarks/.build/release/store-throughput "$duration" "$clients" 1 10 100 500 |
    tee .build/bench-store.out

echo "== pgbench, $clients clients, ${duration} s (one update + one insert per transaction)"
psql -q "$base/pgbench_bench" <<'SQL'
CREATE TABLE bench_rows (id integer PRIMARY KEY, counter bigint NOT NULL DEFAULT 0, updated_at timestamptz);
INSERT INTO bench_rows (id) SELECT generate_series(1, 20000);
CREATE TABLE bench_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, row_id integer NOT NULL,
    at timestamptz NOT NULL, payload text NOT NULL);
SQL
# The same warm-up as the store's: a first run, not counted.
"$bindir/pgbench" -n -c "$clients" -j "$clients" -T "${WARMUP:-20}" -f Benchmarks/pgbench/update-insert.sql \
    "$base/pgbench_bench" >/dev/null
"$bindir/pgbench" -n -c "$clients" -j "$clients" -T "$duration" -f Benchmarks/pgbench/update-insert.sql \
    "$base/pgbench_bench" | tee .build/bench-pgbench.out | grep -E "^(tps|number of transactions|latency)"

store=$(grep '^batch 100:' .build/bench-store.out | sed -E 's/.*: ([0-9]+) transitions\/s.*/\1/')
pgbench=$(grep '^tps' .build/bench-pgbench.out | sed -E 's/tps = ([0-9.]+).*/\1/')
echo "== batch 100: $store transitions/s; pgbench: $pgbench tx/s; ratio $(python3 -c "print(round($store / $pgbench, 1))")"
