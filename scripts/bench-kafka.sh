#!/usr/bin/env bash
# The Kafka wrapper's throughput next to librdkafka's C API doing the same work, in the same run,
# on both brokers: the mock cluster (Debian's librdkafka) and Tansu (the current librdkafka from
# the confluent-kafka wheel). 200,000 messages of 200 bytes: each program produces them to a
# 16-partition topic on a freshly started broker of its own, then both consumers read the C
# program's topic; in rounds (ROUNDS, default 5; the target is judged on 15), then the median of
# each program's figures and their ratio. Figures on a
# shared machine move by ±30 % from run to run, for both programs alike: compare medians of the
# same run, not single figures.
#
#   ./scripts/bench-kafka.sh [COUNT] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-200000}"
size="${2:-200}"
rounds="${ROUNDS:-5}"
# Both consumers may fetch ahead up to a million messages. With librdkafka's default (100,000), a
# consumer that falls that far behind stops fetching for a second (librdkafka 2.0.2; the
# fetch.queue.backoff.ms of later versions), which then dominates the figure; set
# CONSUME_PROPERTIES= to measure with the defaults.
consume_properties="${CONSUME_PROPERTIES-queued.min.messages=1000000}"

deploy/local/install-deps.sh >/dev/null
swift build --package-path Benchmarks -c release --product kafka-throughput >&2
swift build --product kafka-mock-broker >&2
mkdir -p .build
gcc -O2 -o .build/rdkafka_bench Benchmarks/c/rdkafka_bench.c $(pkg-config --cflags --libs rdkafka)

results=$(mktemp)
work="$PWD/.local/bench-kafka"
trap 'for p in c swift; do deploy/local/kafka-mock.sh stop "$work/mock-$p"; deploy/local/tansu.sh stop "$work/tansu-$p"; done; rm -f "$results"' EXIT

run() { # broker-name: uses <name>_start DIR (prints the bootstrap address), <name>_topic DIR BOOTSTRAP TOPIC,
    # <name>_stop DIR
    local name="$1"
    for round in $(seq 1 "$rounds"); do
        # Each producer meets a freshly started broker of its own. On a broker kept across rounds
        # (80 topics grew the mock cluster to 3.4 GB), whichever program produced second came out
        # at two thirds of the first one's rate from about the tenth round on; on one fresh broker
        # per round, whichever produced first was the slower, by about a tenth. With a broker
        # each, neither meets what the other left behind.
        # Then both consumers read the C program's topic, each in a group of its own: the data a
        # consumer reads (how the producer batched it) changes its pace by as much as a fifth, so
        # both read the same. Which program goes first alternates from round to round.
        local order="c swift"
        [ $((round % 2)) = 0 ] && order="swift c"
        local reference="" bootstrap=""
        for program in $order; do
            local dir="$work/$name-$program" address
            address=$("${name}_start" "$dir")
            local topic="bench-$program-$round-$RANDOM"
            "${name}_topic" "$dir" "$address" "$topic"
            local line
            line=$("$(binary "$program")" produce "$address" "$topic" "$count" "$size")
            printf '%-6s %-6s round %d  %s\n' "$name" "$program" "$round" "$line"
            echo "$name $program $round $line" >>"$results"
            if [ "$program" = c ]; then
                reference="$topic"
                bootstrap="$address"
            else
                "${name}_stop" "$dir"
            fi
        done
        for program in $order; do
            local line
            line=$(KAFKA_PROPERTIES="$consume_properties" "$(binary "$program")" consume "$bootstrap" "$reference" \
                "$count" "group-$program-$reference")
            printf '%-6s %-6s round %d  %s\n' "$name" "$program" "$round" "$line"
            echo "$name $program $round $line" >>"$results"
        done
        "${name}_stop" "$work/$name-c"
    done
}

binary() { if [ "$1" = swift ]; then echo Benchmarks/.build/release/kafka-throughput; else echo .build/rdkafka_bench; fi; }

mock_start() { deploy/local/kafka-mock.sh start "$1"; }
mock_topic() { deploy/local/kafka-mock.sh command "$1" "topic $3 16"; sleep 0.2; }
mock_stop() { deploy/local/kafka-mock.sh stop "$1" >/dev/null; }
tansu_start() { deploy/local/tansu.sh start "$1"; }
tansu_topic() { Benchmarks/.build/release/kafka-throughput create "$2" "$3" 16 -; }
tansu_stop() { deploy/local/tansu.sh stop "$1" >/dev/null; }

run mock

deploy/local/tansu.sh install
libdir=$(deploy/local/tansu.sh libdir)
export LD_LIBRARY_PATH="$libdir"
run tansu

# Medians: "<broker> <program> <round> <mode> <count> messages in <s> s: <rate> msg/s, CPU <n> ns/msg".
# Next to the ratio of the medians, the median of each round's ratio (C and Swift ran one after the
# other, so a slow spell of the machine weighs on both) with the middle half of those ratios and,
# from six rounds on, a 95 % confidence interval of that median; and the median CPU time per
# message of each program.
echo
echo "median msg/s over $rounds rounds:"
python3 - "$results" <<'PYTHON'
import math, re, statistics, sys
rates, cpus = {}, {}
for line in open(sys.argv[1]):
    words = line.split()
    rate = next(i for i, word in enumerate(words) if word.startswith("msg/s"))
    key = (words[0], words[3], words[1])
    rates.setdefault(key, {})[words[2]] = float(words[rate - 1])
    cpu = re.search(r"CPU (\d+) ns/msg", line)
    if cpu:
        cpus.setdefault(key, []).append(float(cpu.group(1)))
def interval(values):
    """A distribution-free confidence interval of at least 95 % for the median: the k-th lowest
    and k-th highest value, with k the largest rank that keeps the chance of the true median
    lying outside at or below 5 % (binomial order statistics)."""
    ordered, n = sorted(values), len(values)
    k, tail = 0, 0.0
    while k < n // 2:
        tail_next = tail + math.comb(n, k) / 2**n
        if 2 * tail_next > 0.05:
            break
        tail, k = tail_next, k + 1
    return (ordered[k - 1], ordered[n - k]) if k else (None, None)
def spread(values):
    """The lowest and highest of the middle half."""
    ordered = sorted(values)
    quarter = len(ordered) // 4
    return ordered[quarter], ordered[len(ordered) - 1 - quarter]
for broker in ("mock", "tansu"):
    for mode in ("produce", "consume"):
        c, swift = rates.get((broker, mode, "c")), rates.get((broker, mode, "swift"))
        if c and swift:
            ratios = [swift[r] / c[r] for r in c if r in swift]
            low, high = spread(ratios)
            lowest, highest = interval(ratios)
            confidence = f", 95 % interval {lowest:.0%}–{highest:.0%}" if lowest is not None else ""
            c_cpu = statistics.median(cpus.get((broker, mode, "c"), [0]))
            swift_cpu = statistics.median(cpus.get((broker, mode, "swift"), [0]))
            c, swift = statistics.median(c.values()), statistics.median(swift.values())
            print(f"{broker:6} {mode:8} C {c:>10,.0f}  Swift {swift:>10,.0f}  Swift/C {swift / c:6.0%}"
                  f"  (rounds' ratios: median {statistics.median(ratios):.0%}, middle half {low:.0%}–{high:.0%}{confidence};"
                  f" CPU per message C {c_cpu:.0f} ns, Swift {swift_cpu:.0f} ns)")
PYTHON
