import Foundation
import Logging
import PostgresNIO
import SagaStore

/// Where the store tests find PostgreSQL: `POSTGRES_URL`, which the test command sets to the server
/// it started (`deploy/local/postgres.sh`). Every test gets a database of its own, dropped after.
public enum StoreTestEnvironment {
    public static let url: String? = {
        let value = ProcessInfo.processInfo.environment["POSTGRES_URL"] ?? ""
        return value.isEmpty ? nil : value
    }()

    /// Under CI the server must be there: a missing one fails the tests instead of skipping them.
    public static var enabled: Bool { url != nil || ProcessInfo.processInfo.environment["CI"] == "true" }

    public static let logger: Logger = {
        var logger = Logger(label: "store-tests")
        logger.logLevel = ProcessInfo.processInfo.environment["STORE_TEST_LOG"] != nil ? .debug : .error
        return logger
    }()

    public static func adminConfiguration() throws -> SagaStoreConfiguration {
        guard let url else {
            throw StoreTestFailure("POSTGRES_URL is not set: run the tests through scripts/test.sh")
        }
        var configuration = try SagaStoreConfiguration(url: url)
        configuration.tlsMode = .disable
        return configuration
    }
}

public struct StoreTestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A database for one test, created empty and dropped afterwards.
public struct TestDatabase: Sendable {
    public let configuration: SagaStoreConfiguration

    /// Runs `body` with a fresh database's configuration.
    public static func with<T: Sendable>(_ body: (TestDatabase) async throws -> T) async throws -> T {
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
    public func withStore(
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
    public func withStoreResult<T: Sendable>(_ body: (SagaStore) async throws -> T) async throws -> T {
        try await SagaStore.withStore(configuration: configuration, logger: StoreTestEnvironment.logger) { store in
            try await body(store)
        }
    }

    /// Migrates this database with a store of its own; returns the versions applied.
    public func migrate() async throws -> [Int] {
        try await SagaStore.withStore(configuration: configuration, logger: StoreTestEnvironment.logger) { store in
            try await store.migrate()
        }
    }

    /// Runs one statement on this database, outside the store.
    public func run(_ sql: String) async throws {
        try await SQL.run(configuration, sql)
    }

    /// The first column of the first row of `sql`, as an integer.
    public func count(_ sql: String) async throws -> Int {
        try await SQL.count(configuration, sql)
    }
}

/// Direct SQL for tests, over a client of its own.
public enum SQL {
    public static func withClient<T: Sendable>(
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

    public static func run(_ configuration: SagaStoreConfiguration, _ sql: String) async throws {
        try await withClient(configuration) { client in
            _ = try await client.query(PostgresQuery(unsafeSQL: sql), logger: StoreTestEnvironment.logger)
        }
    }

    public static func count(_ configuration: SagaStoreConfiguration, _ sql: String) async throws -> Int {
        try await withClient(configuration) { client in
            let rows = try await client.query(PostgresQuery(unsafeSQL: sql), logger: StoreTestEnvironment.logger)
            for try await value in rows.decode(Int.self) { return value }
            return 0
        }
    }
}
