import Foundation
import Logging
import SagaCore
import SagaStore

// Saga transitions per second through SagaStore, for comparison with pgbench on the same server
// (scripts/bench-store.sh runs both).
//
//   POSTGRES_URL=postgres://… store-throughput [SECONDS] [CONNECTIONS] [BATCH…]
//
// Before the measurements, WARMUP seconds (environment, default 20) of batches of 100 touch every
// saga once more after their insert, so that the first write of each page after the insert (a full
// page image in the WAL) does not count; the figures are those of a store in use.
//
// Each transition is what the engine does for one event: the message id into the inbox, the saga
// loaded and locked, its state changed and written back (a JSON document of about 1.5 KB), one
// history row, one outbox row of 200 bytes, and its timer rows made equal to its state. A batch of
// B transitions is one transaction. CONNECTIONS workers run batches concurrently, each on sagas of
// its own (the engine's partitions). Prints one line per batch size:
// "batch <B>: <transitions> transitions in <s> s: <transitions/s> transitions/s (<tx/s> tx/s)".

struct Input: SagaStoreInput {
    var messageID: String?
    var sagaID: String?
    var startKey: StartKey? { nil }
}

let arguments = CommandLine.arguments
let seconds = arguments.count > 1 ? Double(arguments[1]) ?? 10 : 10
let connections = arguments.count > 2 ? Int(arguments[2]) ?? 4 : 4
let batches = arguments.count > 3 ? arguments[3...].compactMap { Int($0) } : [1, 10, 100, 500]
let sagaCount = 20_000

guard let url = ProcessInfo.processInfo.environment["POSTGRES_URL"] else {
    FileHandle.standardError.write(Data("store-throughput: set POSTGRES_URL\n".utf8))
    exit(64)
}
var logger = Logger(label: "store-throughput")
logger.logLevel = .error
var configuration = try SagaStoreConfiguration(url: url)
configuration.tlsMode = .disable
configuration.maximumConnections = connections

let definition = SagaDefinition(
    name: "bench", version: 1,
    steps: (1...5).map { index in
        StepDefinition(
            name: "step-\(index)",
            kind: .command(
                CommandStep(participant: "participant-\(index)", command: "do-\(index)", compensation: "undo")))
    })
let now = SagaTimestamp(date: Date())
let payload = String(repeating: "x", count: 200)
/// Message ids of this run: a second run on the same database must not meet its inbox entries.
let run = UUID().uuidString.prefix(8)

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

try await SagaStore.withStore(configuration: configuration, logger: logger) { store in
    try await store.migrate()
    // Sagas started by the machine; a database that has them from an earlier run is used as it is.
    var ids: [String] = (0..<sagaCount).map { String(format: "bench-%08d", $0) }
    let existing = try? await store.saga(ids[sagaCount - 1])
    if existing != nil { ids = [] }
    for chunk in stride(from: 0, to: existing == nil ? sagaCount : 0, by: 500) {
        var writes: [SagaWrite] = []
        for index in chunk..<min(sagaCount, chunk + 500) {
            let id = String(format: "bench-%08d", index)
            let input: JSONValue = ["order": .string(id), "amount": 125, "items": ["a", "b", "c"]]
            let transition = SagaMachine.start(id: id, definition: definition, input: input, now: now)
            writes.append(SagaWrite(record: SagaRecord(instance: transition.saga)))
        }
        try await store.applyBatch([Input](), now: now) { _ in BatchWrites(sagas: writes) }
    }

    let allIDs = (0..<sagaCount).map { String(format: "bench-%08d", $0) }
    let warmup = Double(ProcessInfo.processInfo.environment["WARMUP"] ?? "") ?? 20
    for (batch, duration, report) in [(100, warmup, false)] + batches.map({ ($0, seconds, true) }) {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(duration)
        let start = clock.now
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<connections {
                group.addTask {
                    let mine = allIDs.enumerated().filter { $0.offset % connections == worker }.map(\.element)
                    var done = 0
                    var position = 0
                    var message = 0
                    while clock.now < deadline {
                        var inputs: [Input] = []
                        inputs.reserveCapacity(batch)
                        for _ in 0..<batch {
                            inputs.append(
                                Input(
                                    messageID: "\(run)-\(report ? "" : "warm-")b\(batch)-w\(worker)-\(message)",
                                    sagaID: mine[position % mine.count]))
                            position += 1
                            message += 1
                        }
                        try await store.applyBatch(inputs, now: now) { context in
                            BatchWrites(
                                sagas: context.inputs.compactMap { input in
                                    guard let id = input.sagaID, var record = context.sagas[id] else { return nil }
                                    record.instance.effectCounter += 1
                                    record.instance.updatedAt = now
                                    return SagaWrite(
                                        record: record,
                                        history: [
                                            HistoryRecord(
                                                at: now,
                                                entry: [
                                                    "event": "reply", "step": "step-1", "attempt": 1,
                                                    "effects": ["step.completed", "step.started"],
                                                ])
                                        ],
                                        outbox: [
                                            OutboxMessage(
                                                topic: "saga.events", key: id, headers: ["ce_type": "step.completed"],
                                                payload: payload)
                                        ])
                                })
                        }
                        done += batch
                    }
                    return done
                }
            }
            var total = 0
            for try await count in group { total += count }
            return total
        }
        let elapsed = seconds(clock.now - start)
        guard report else { continue }
        print(
            String(
                format: "batch %d: %d transitions in %.1f s: %.0f transitions/s (%.0f tx/s)", batch, counts, elapsed,
                Double(counts) / elapsed, Double(counts) / elapsed / Double(batch)))
    }
}
