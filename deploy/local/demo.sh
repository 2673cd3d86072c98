#!/usr/bin/env bash
# The demo: on a fresh machine, installs what is missing, starts PostgreSQL and a Kafka-protocol
# broker (librdkafka's mock cluster), builds and runs sagad with the example participants, runs
# three orders of the order-fulfillment saga, prints each saga's timeline, and stops everything
# it started.
#
#   ./deploy/local/demo.sh
#
# The orders: o-1 is approved up front (the approval waits for the saga) and completes; o-2's card
# is declined, so its reservation is released and it ends compensated; o-3 waits for a manager's
# approval, which the script then sends, and completes.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
work="${TMPDIR:-/tmp}/saga-demo-$$"
mkdir -p "$work"
pids=()

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    deploy/local/kafka-mock.sh stop "$work/kafka" >/dev/null 2>&1 || true
    deploy/local/postgres.sh stop "$work/postgres" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

say "Dependencies"
deploy/local/install-deps.sh
if ! command -v kcat >/dev/null 2>&1; then
    echo "installing kcat (to send the demo's messages)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq kcat >/dev/null 2>&1 \
        || { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq kcat >/dev/null; }
fi

say "Build (sagad, the participants, the broker)"
swift build --product sagad
for product in kafka-mock-broker inventory-participant payments-participant shipping-participant; do
    swift build --product "$product" >/dev/null
done
bin="$(swift build --show-bin-path)"

say "PostgreSQL and the broker"
POSTGRES_URL=$(deploy/local/postgres.sh start "$work/postgres")
export POSTGRES_URL
topics=(saga.requests:4 saga.signals:4 saga.replies:4 saga.events:4 saga.dead-letter:1
    saga.participant.inventory:2 saga.participant.payments:2 saga.participant.shipping:2)
KAFKA_BOOTSTRAP_SERVERS=$(deploy/local/kafka-mock.sh start "$work/kafka" "${topics[@]}")
export KAFKA_BOOTSTRAP_SERVERS
echo "PostgreSQL at ${POSTGRES_URL##*@}, the broker at $KAFKA_BOOTSTRAP_SERVERS"

say "sagad and the participants (logs in $work)"
DEFINITIONS_DIRECTORY=examples/definitions HTTP_PORT="${HTTP_PORT:-8080}" "$bin/sagad" >"$work/sagad.log" 2>&1 &
pids+=($!)
"$bin/inventory-participant" >"$work/inventory.log" 2>&1 &
pids+=($!)
FAIL_COMMANDS=payments.charge FAIL_WHEN=orderId=o-2 "$bin/payments-participant" >"$work/payments.log" 2>&1 &
pids+=($!)
"$bin/shipping-participant" >"$work/shipping.log" 2>&1 &
pids+=($!)

# send TOPIC KEY TYPE JSON: one CloudEvents message in binary mode.
send() {
    printf '%s' "$4" | kcat -P -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$1" -k "$2" \
        -H "ce_specversion=1.0" -H "ce_id=$(cat /proc/sys/kernel/random/uuid)" -H "ce_type=$3" \
        -H "ce_source=/demo" -H "content-type=application/json"
}
status() {
    psql "$POSTGRES_URL" -Atc "SELECT status FROM sagas WHERE start_key = '$1'" 2>/dev/null || true
}
wait_for() { # KEY STATUS...
    local key="$1"
    shift
    for _ in $(seq 1 600); do
        local now
        now=$(status "$key")
        for wanted in "$@"; do [ "$now" = "$wanted" ] && return 0; done
        sleep 0.2
    done
    echo "order $key did not reach $* (it is '$(status "$key")'); sagad's log:" >&2
    tail -20 "$work/sagad.log" >&2
    return 1
}
approval() { # KEY APPROVED
    send saga.signals "$1" saga.signal.v1 \
        "{\"sagaType\":\"order-fulfillment\",\"idempotencyKey\":\"$1\",\"signalId\":\"approval-$1\",\"name\":\"approval\",\"payload\":{\"approved\":$2}}"
}

say "Three orders"
approval o-1 true
for order in o-1 o-2 o-3; do
    send saga.requests "$order" saga.start.v1 \
        "{\"sagaType\":\"order-fulfillment\",\"idempotencyKey\":\"$order\",\"input\":{\"orderId\":\"$order\",\"amount\":4200}}"
    echo "started $order"
done
wait_for o-1 completed
echo "o-1 completed (its approval was sent before it started)"
wait_for o-2 compensated
echo "o-2 compensated (the card was declined)"
wait_for o-3 waiting
echo "o-3 waits for a manager's approval; sending it"
approval o-3 true
wait_for o-3 completed
echo "o-3 completed"

say "Timelines"
for order in o-1 o-2 o-3; do
    echo "-- $order ($(status "$order"))"
    psql "$POSTGRES_URL" -Atc "
        SELECT to_char(h.at, 'HH24:MI:SS.MS') || '  ' || coalesce(e->>'event', 'note ' || (e->>'note'))
            || coalesce('  ' || (e->>'step'), '') || coalesce('  (' || (e->>'reason') || ')', '')
        FROM sagas s JOIN saga_history h ON h.saga_id = s.id, LATERAL (SELECT h.entry::jsonb AS e) x
        WHERE s.start_key = '$order' ORDER BY h.sequence"
done

say "Metrics (a few lines of http://localhost:${HTTP_PORT:-8080}/metrics)"
curl -fsS "http://localhost:${HTTP_PORT:-8080}/metrics" 2>/dev/null | grep -E '^saga_(started|finished)_total' || true

say "Stopping"
