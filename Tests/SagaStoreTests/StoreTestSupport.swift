import Foundation
import Logging
import PostgresNIO
import SagaCore
import SagaStore
import TestSupport
import Testing

/// Where the store tests find PostgreSQL: `POSTGRES_URL`, which the test command sets to the server
/// it started (`deploy/local/postgres.sh`). Every test gets a database of its own, dropped after.
enum StoreTestEnvironment {
    static let url: String? = {
        let value = ProcessInfo.processInfo.environment["POSTGRES_URL"] ?? ""
        return value.isEmpty ? nil : value
    }()

    /// Under CI the server must be there: a missing one fails the tests instead of skipping them.
    static var enabled: Bool { url != nil || ProcessInfo.processInfo.environment["CI"] == "true" }

    static let logger: Logger = {
        var logger = Logger(label: "store-tests")
        logger.logLevel = ProcessInfo.processInfo.environment["STORE_TEST_LOG"] != nil ? .debug : .error
        return logger
    }()

    static func adminConfiguration() throws -> SagaStoreConfiguration {
        guard let url else {
            throw StoreTestFailure("POSTGRES_URL is not set: run the tests through scripts/test.sh")
        }
        var configuration = try SagaStoreConfiguration(url: url)
        configuration.tlsMode = .disable
        return configuration
    }
}

struct StoreTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A database for one test, created empty and dropped afterwards.
struct TestDatabase: Sendable {
    let configuration: SagaStoreConfiguration

    /// Runs `body` with a fresh database's configuration.
    static func with<T: Sendable>(_ body: (TestDatabase) async throws -> T) async throws -> T {
        let admin = try StoreTestEnvironment.adminConfiguration()
        let name = "saga_test_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        try await SQL.run(admin, "CREATE DATABASE \(name)")
        var configuration = admin
        configuration.database = name
        let database = TestDatabase(configuration: configuration)
        do {
            let result = try await body(database)
            try await SQL.run(admin, "DROP DATABASE \(name) WITH (FORCE)")
            return result
        } catch {
            try? await SQL.run(admin, "DROP DATABASE \(name) WITH (FORCE)")
            throw error
        }
    }

    /// Runs `body` with a running store on this database, migrated unless told otherwise.
    func withStore(
        migrated: Bool = true, connections: Int = 4, maximumDocumentBytes: Int? = nil,
        maximumMessageBytes: Int? = nil, _ body: (SagaStore) async throws -> Void
    ) async throws {
        var configuration = self.configuration
        configuration.maximumConnections = connections
        if let maximumDocumentBytes { configuration.maximumDocumentBytes = maximumDocumentBytes }
        if let maximumMessageBytes { configuration.maximumMessageBytes = maximumMessageBytes }
        try await SagaStore.withStore(configuration: configuration, logger: StoreTestEnvironment.logger) { store in
            if migrated { try await store.migrate() }
            try await body(store)
        }
    }

    /// Runs `body` with a store of its own (an empty state cache) and returns its result.
    func withStoreResult<T: Sendable>(_ body: (SagaStore) async throws -> T) async throws -> T {
        try await SagaStore.withStore(configuration: configuration, logger: StoreTestEnvironment.logger) { store in
            try await body(store)
        }
    }

    /// Migrates this database with a store of its own; returns the versions applied.
    func migrate() async throws -> [Int] {
        try await SagaStore.withStore(configuration: configuration, logger: StoreTestEnvironment.logger) { store in
            try await store.migrate()
        }
    }

    /// Runs one statement on this database, outside the store.
    func run(_ sql: String) async throws {
        try await SQL.run(configuration, sql)
    }

    /// The first column of the first row of `sql`, as an integer.
    func count(_ sql: String) async throws -> Int {
        try await SQL.count(configuration, sql)
    }
}

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

/// Direct SQL for tests, over a client of its own.
enum SQL {
    static func withClient<T: Sendable>(
        _ configuration: SagaStoreConfiguration, _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = PostgresClient(
            configuration: PostgresClient.Configuration(
                host: configuration.host, port: configuration.port, username: configuration.username,
                password: configuration.password, database: configuration.database, tls: .disable),
            backgroundLogger: StoreTestEnvironment.logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    static func run(_ configuration: SagaStoreConfiguration, _ sql: String) async throws {
        try await withClient(configuration) { client in
            _ = try await client.query(PostgresQuery(unsafeSQL: sql), logger: StoreTestEnvironment.logger)
        }
    }

    static func count(_ configuration: SagaStoreConfiguration, _ sql: String) async throws -> Int {
        try await withClient(configuration) { client in
            let rows = try await client.query(PostgresQuery(unsafeSQL: sql), logger: StoreTestEnvironment.logger)
            for try await value in rows.decode(Int.self) { return value }
            return 0
        }
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
