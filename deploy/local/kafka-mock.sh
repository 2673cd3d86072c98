#!/usr/bin/env bash
# Starts and stops a local Kafka-protocol broker: librdkafka's mock cluster in the
# kafka-mock-broker process. Needs nothing beyond librdkafka-dev.
#
#   deploy/local/kafka-mock.sh start [DIR] [TOPIC:PARTITIONS …]   prints the bootstrap address
#   deploy/local/kafka-mock.sh command DIR "down 1"                 fault injection (see the binary)
#   deploy/local/kafka-mock.sh stop [DIR]
#
# DIR (default .local/kafka-mock) holds the bootstrap file, the control FIFO, the pid and the log.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
action="${1:-}"
dir="${2:-$root/.local/kafka-mock}"

case "$action" in
start)
    shift $(( $# >= 2 ? 2 : $# ))
    mkdir -p "$dir"
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        cat "$dir/bootstrap"
        exit 0
    fi
    binary="$root/.build/debug/kafka-mock-broker"
    if [ ! -x "$binary" ]; then
        (cd "$root" && swift build --product kafka-mock-broker >&2)
    fi
    topics=()
    for topic in "$@"; do topics+=(--topic "$topic"); done
    rm -f "$dir/bootstrap"
    "$binary" --brokers "${KAFKA_MOCK_BROKERS:-3}" ${topics[@]+"${topics[@]}"} \
        --bootstrap-file "$dir/bootstrap" --control "$dir/control" >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 100); do
        [ -s "$dir/bootstrap" ] && break
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/log" >&2; exit 1; }
        sleep 0.1
    done
    [ -s "$dir/bootstrap" ] || { echo "the mock broker did not start" >&2; cat "$dir/log" >&2; exit 1; }
    cat "$dir/bootstrap"
    ;;
command)
    shift 2
    echo "$*" >"$dir/control"
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
    ;;
*)
    echo "usage: $0 start|command|stop [DIR] …" >&2
    exit 64
    ;;
esac
