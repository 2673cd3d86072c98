import Foundation
import Kafka
import Logging

// The Kafka wrapper's throughput, for comparison with librdkafka's C API doing the same work
// (Benchmarks/c/rdkafka_bench.c) in the same run; scripts/bench-kafka.sh runs both.
//
//   kafka-throughput produce BOOTSTRAP TOPIC COUNT SIZE
//   kafka-throughput consume BOOTSTRAP TOPIC COUNT GROUP
//   kafka-throughput create BOOTSTRAP TOPIC PARTITIONS -   (creates the topic through the admin API)
//
// Prints one line: "<mode> <count> messages in <seconds> s: <messages/s> msg/s".
// Producer: the wrapper's defaults (idempotent, acks=all, linger.ms=5), keys key-<i % 64> (the 64
// made once), sent in batches of 10,000 (SEND_BATCH) with up to 10 batches in flight
// (SEND_IN_FLIGHT): as many messages in flight as the producer's queue holds (100,000), as for the
// C reference, which keeps its queue full. One warm-up message goes first (librdkafka learns a new
// topic's metadata on a 1 s timer, which would otherwise dominate); WARMUP=N sends N more the same
// way before the clock starts. Consumer: a group member reading until COUNT messages arrived
// (manual commits, none made), in batches of up to 512 (CONSUME_BATCH; 1 reads one message at a
// time).

let arguments = CommandLine.arguments
guard arguments.count == 6, let count = Int(arguments[4]) else {
    FileHandle.standardError.write(
        Data("usage: kafka-throughput produce|consume BOOTSTRAP TOPIC COUNT SIZE|GROUP\n".utf8))
    exit(64)
}
let (mode, bootstrap, topic) = (arguments[1], arguments[2], arguments[3])
var logger = Logger(label: "kafka-throughput")
logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning

/// Extra librdkafka properties for experiments: KAFKA_PROPERTIES="queued.min.messages=1000000,…".
let extraProperties: [String: String] = Dictionary(
    (ProcessInfo.processInfo.environment["KAFKA_PROPERTIES"] ?? "").split(separator: ",").compactMap { pair in
        let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }, uniquingKeysWith: { _, last in last })

/// The CPU time of the whole process, in seconds.
func cpuSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Reads `count` messages; returns the seconds from the first timed message to the last, how many
/// messages that time covers, and the process's CPU time over it. Off the main actor, as a
/// service's reader task is. In batches (`consumer.batches()`, as the engine reads), or one message
/// at a time (`consumer.messages`) with CONSUME_BATCH=1.
nonisolated func readAll(_ count: Int, from consumer: KafkaConsumer) async -> (seconds: Double, count: Int, cpu: Double)
{
    let clock = ContinuousClock()
    var start: ContinuousClock.Instant?
    var cpuStart = 0.0
    var received = 0
    var untimed = 0
    var bytes = 0
    let environment = ProcessInfo.processInfo.environment
    let batchSize = environment["CONSUME_BATCH"].flatMap(Int.init) ?? 512
    // DRAIN_MS: after the first message, let librdkafka fetch for this long before the clock starts,
    // so that what is timed is the reader alone, not the broker.
    let drain = environment["DRAIN_MS"].flatMap(Int.init).map { Duration.milliseconds($0) }
    func started(holding held: Int) async {
        guard start == nil else { return }
        if let drain {
            try? await Task.sleep(for: drain)
            untimed = held
        }
        start = clock.now
        cpuStart = cpuSeconds()
    }
    if batchSize > 1 {
        for await batch in consumer.batches(maximumCount: batchSize) {
            await started(holding: batch.count)
            for message in batch { bytes += message.value?.count ?? 0 }
            received += batch.count
            if received >= count { break }
        }
    } else {
        for await message in consumer.messages {
            await started(holding: 1)
            received += 1
            bytes += message.value?.count ?? 0
            if received == count { break }
        }
    }
    return (seconds(clock.now - (start ?? clock.now)), received - untimed, cpuSeconds() - cpuStart)
}

if mode == "create" {
    let admin = try KafkaAdmin(configuration: KafkaClientConfiguration(bootstrapServers: [bootstrap]), logger: logger)
    try await admin.createTopics([KafkaTopicSpecification(name: topic, partitions: count)])
    await admin.close()
} else if mode == "produce" {
    guard let size = Int(arguments[5]) else { exit(64) }
    var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: [bootstrap])
    producerConfiguration.client.properties = extraProperties
    let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
    let value = [UInt8](repeating: UInt8(ascii: "x"), count: size)
    let keys = (0..<64).map { Array("key-\($0)".utf8) }
    let environment = ProcessInfo.processInfo.environment
    let batchSize = environment["SEND_BATCH"].flatMap(Int.init) ?? 10_000
    let inFlight = environment["SEND_IN_FLIGHT"].flatMap(Int.init) ?? 10
    /// Sends `count` messages in batches with up to `inFlight` of them in flight; returns how many failed.
    func produceAll(_ count: Int) async -> Int {
        await withTaskGroup(of: Int.self) { group in
            var failed = 0
            var next = 0
            func addBatch() {
                let range = next..<min(count, next + batchSize)
                next = range.upperBound
                let messages = range.map { KafkaOutgoingMessage(topic: topic, key: keys[$0 % 64], value: value) }
                group.addTask {
                    await producer.send(messages).failureCount
                }
            }
            for _ in 0..<inFlight where next < count { addBatch() }
            for await batchFailures in group {
                failed += batchFailures
                if next < count { addBatch() }
            }
            return failed
        }
    }
    // Warm up outside the measurement: the producer id, the topic's metadata, the connections;
    // with WARMUP=N, N messages sent the same way, so that what is timed is a process that has
    // run (its heaps grown, its threads started), not one that starts.
    _ = try await producer.send(KafkaOutgoingMessage(topic: topic, key: keys[0], value: value))
    let warmup = environment["WARMUP"].flatMap(Int.init) ?? 0
    if warmup > 0, await produceAll(warmup) > 0 { exit(1) }
    let clock = ContinuousClock()
    let start = clock.now
    let cpuStart = cpuSeconds()
    let failed = await produceAll(count)
    let elapsed = seconds(clock.now - start)
    print(
        String(
            format: "produce %d messages in %.3f s: %.0f msg/s, CPU %.0f ns/msg (%d failed)", count, elapsed,
            Double(count) / elapsed, (cpuSeconds() - cpuStart) * 1e9 / Double(count), failed))
    await producer.close()
    exit(failed == 0 ? 0 : 1)
} else {
    var configuration = KafkaConsumerConfiguration(bootstrapServers: [bootstrap], groupID: arguments[5])
    configuration.sessionTimeoutMilliseconds = 6_000
    configuration.client.properties = extraProperties
    let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
    try consumer.subscribe(to: [topic])
    let (elapsed, timed, cpu) = await readAll(count, from: consumer)
    print(
        String(
            format: "consume %d messages in %.3f s: %.0f msg/s, CPU %.0f ns/msg", timed, elapsed,
            Double(timed) / elapsed,
            cpu * 1e9 / Double(timed)))
    await consumer.close()
}
