import Foundation
import Logging
import PostgresNIO
import SagaCore
import SagaStore
import TestSupport
import Testing

/// Another transaction holding one saga's row (`SELECT … FOR UPDATE`) until it is let go.
struct HeldSaga: Sendable {
    let release: AsyncStream<Void>.Continuation
    let transaction: Task<Void, any Error>

    /// Lets the other transaction commit; returns at once.
    func letGo() {
        release.finish()
    }

    /// Lets the other transaction commit and waits until it has.
    func end() async throws {
        letGo()
        let transaction = self.transaction
        try await withDeadline(.seconds(30), "the other transaction to end") { try await transaction.value }
    }
}

extension TestDatabase {
    /// Starts another transaction that locks saga `id`, and returns once it holds the row.
    func hold(_ id: String) async throws -> HeldSaga {
        let (locked, lockedNow) = AsyncStream<Void>.makeStream()
        let (release, releaseNow) = AsyncStream<Void>.makeStream()
        let configuration = self.configuration
        let transaction = Task {
            defer { lockedNow.finish() }
            try await SQL.withClient(configuration) { client in
                try await client.withTransaction(logger: StoreTestEnvironment.logger) { connection in
                    _ = try await connection.query(
                        "SELECT id FROM sagas WHERE id = \(id) FOR UPDATE", logger: StoreTestEnvironment.logger)
                    lockedNow.yield()
                    for await _ in release { break }
                }
            }
        }
        let held = HeldSaga(release: releaseNow, transaction: transaction)
        let holds = try await withDeadline(.seconds(30), "the other transaction to lock saga \(id)") {
            var iterator = locked.makeAsyncIterator()
            return await iterator.next() != nil
        }
        guard holds else {
            held.letGo()
            throw StoreTestFailure("the other transaction could not lock saga \(id): \(await transaction.result)")
        }
        return held
    }
}

/// An input of the tests' batches: which message, which saga, which start key, and what to do.
struct TestInput: SagaStoreInput {
    var messageID: String?
    var sagaID: String?
    var startKey: StartKey?
    var tag: String = ""
}

/// Sagas for the tests: a two-step definition the machine can start.
enum Sagas {
    static let definition = SagaDefinition(
        name: "order", version: 1,
        steps: [
            StepDefinition(
                name: "reserve", kind: .command(CommandStep(participant: "inventory", command: "inventory.reserve"))),
            StepDefinition(
                name: "charge", kind: .command(CommandStep(participant: "payments", command: "payments.charge"))),
        ])

    static let t0 = SagaTimestamp(millisecondsSinceEpoch: 1_800_000_000_000)

    /// A started saga (its first command sent, its attempt timer set).
    static func started(
        _ id: String = UUID().uuidString.lowercased(), input: JSONValue = ["order": "o-1"], at now: SagaTimestamp = t0,
        tenant: String = "", startKey: String? = nil
    ) -> (SagaWrite, [SagaEffect]) {
        let transition = SagaMachine.start(id: id, definition: definition, input: input, now: now)
        let record = SagaRecord(instance: transition.saga, tenant: tenant, startKey: startKey)
        let write = SagaWrite(
            record: record,
            history: [
                HistoryRecord(at: now, entry: ["event": "start", "effects": .integer(Int64(transition.effects.count))])
            ],
            outbox: [OutboxMessage(topic: "saga.events", key: id, payload: "{\"started\":\"\(id)\"}")])
        return (write, transition.effects)
    }

    /// Inserts `count` started sagas, created one millisecond apart from `from`.
    @discardableResult
    static func insert(_ count: Int, into store: SagaStore, from: SagaTimestamp = t0, tenant: String = "")
        async throws -> [String]
    {
        var ids: [String] = []
        var writes: [SagaWrite] = []
        for index in 0..<count {
            let at = SagaTimestamp(millisecondsSinceEpoch: from.millisecondsSinceEpoch + Int64(index))
            let (write, _) = started(at: at, tenant: tenant)
            ids.append(write.record.id)
            writes.append(write)
        }
        try await store.applyBatch([TestInput](), now: from) { _ in BatchWrites(sagas: writes) }
        return ids
    }
}

/// Runs `body` against a fresh database, or records that the server is missing (a failure under
/// CI, where the test command always starts one).
func withDatabase(_ body: (TestDatabase) async throws -> Void) async throws {
    guard StoreTestEnvironment.url != nil else {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            Issue.record("POSTGRES_URL is not set under CI: the test command must start PostgreSQL")
        }
        return
    }
    try await TestDatabase.with(body)
}
