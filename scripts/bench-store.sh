#!/usr/bin/env bash
# SagaStore's throughput next to pgbench on the same PostgreSQL server, in the same run.
#
#   ./scripts/bench-store.sh [SECONDS] [CONNECTIONS]
#
# Starts a PostgreSQL server of its own (deploy/local/postgres.sh), then
#   1. store-throughput (Benchmarks/Sources/store-throughput): saga transitions per second through
#      SagaStore at batch sizes 1, 10 and 500, CONNECTIONS concurrent workers, once;
#   2. ROUNDS rounds (default 3) of: store-throughput at batch 100, then pgbench with the same number
#      of clients running Benchmarks/pgbench/update-insert.sql (per transaction one row update and
#      one row insert, on 20,000 rows);
# and prints the median of each at batch 100 and their ratio (the target: at least 5). Both get
# WARMUP seconds (default 20) of the same work first, not counted; each round's store run then
# ROUND_WARMUP seconds (default 5), enough to load its cache again. Figures on a shared machine move by 10–20 % from run to run (pgbench's
# as much as the store's): compare medians of the same run.
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
POSTGRES_URL="$base/saga_bench" Benchmarks/.build/release/store-throughput "$duration" "$clients" 1 10 500

psql -q "$base/pgbench_bench" <<'SQL'
CREATE TABLE bench_rows (id integer PRIMARY KEY, counter bigint NOT NULL DEFAULT 0, updated_at timestamptz);
INSERT INTO bench_rows (id) SELECT generate_series(1, 20000);
CREATE TABLE bench_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, row_id integer NOT NULL,
    at timestamptz NOT NULL, payload text NOT NULL);
SQL
# The same warm-up as the store's: a first run, not counted.
"$bindir/pgbench" -n -c "$clients" -j "$clients" -T "${WARMUP:-20}" -f Benchmarks/pgbench/update-insert.sql \
    "$base/pgbench_bench" >/dev/null

results=.build/bench-store-rounds.out
: >"$results"
rounds="${ROUNDS:-3}"
[ "$rounds" -ge 1 ] || { echo "ROUNDS must be at least 1" >&2; exit 64; }
for round in $(seq 1 "$rounds"); do
    line=$(WARMUP="${ROUND_WARMUP:-5}" POSTGRES_URL="$base/saga_bench" Benchmarks/.build/release/store-throughput "$duration" "$clients" 100)
    echo "round $round  store    $line"
    echo "store $(echo "$line" | sed -E 's/.*: ([0-9]+) transitions\/s.*/\1/')" >>"$results"
    tps=$("$bindir/pgbench" -n -c "$clients" -j "$clients" -T "$duration" -f Benchmarks/pgbench/update-insert.sql \
        "$base/pgbench_bench" | grep '^tps' | sed -E 's/tps = ([0-9.]+).*/\1/')
    echo "round $round  pgbench  $tps tx/s ($clients clients, one update + one insert per transaction)"
    echo "pgbench $tps" >>"$results"
done
python3 - "$results" "$clients" <<'PYTHON'
import statistics, sys
values = {}
for line in open(sys.argv[1]):
    name, value = line.split()
    values.setdefault(name, []).append(float(value))
store, pgbench = statistics.median(values["store"]), statistics.median(values["pgbench"])
rounds = " ".join(f"{s / p:.1f}" for s, p in zip(values["store"], values["pgbench"]))
print(f"== batch 100, {sys.argv[2]} connections, median of {len(values['store'])} rounds: "
      f"{store:,.0f} transitions/s; pgbench {pgbench:,.0f} tx/s; ratio {store / pgbench:.1f} (rounds: {rounds})")
PYTHON
