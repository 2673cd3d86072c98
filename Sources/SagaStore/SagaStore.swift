import Foundation
import Logging
import NIOSSL
import PostgresNIO
import SagaCore
import Synchronization

/// Where and how the store reaches PostgreSQL, and the limits it enforces.
public struct SagaStoreConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// `disable`, `prefer`, `require` (encrypted, certificate not checked) or `verify-full`.
    public var tlsMode: TLSMode
    /// The most connections the pool opens.
    public var maximumConnections: Int = 20
    /// The largest JSON document the store writes: a saga's state, a definition, a signal payload.
    public var maximumDocumentBytes: Int = 1 << 20
    /// The largest outbox message (payload plus key and headers).
    public var maximumMessageBytes: Int = 1 << 20
    /// How many relay lanes the outbox is split into; rows of one saga share a lane.
    public var outboxLanes: Int = 16
    /// How many saga states the store keeps in memory between batches (0: none). A batch then
    /// reads a state from PostgreSQL only when its revision changed since this store wrote it.
    public var stateCacheCapacity: Int = 50_000
    /// How long a `ROLLBACK` after a failed batch may take before the store gives up on the
    /// connection and closes it (the server rolls back what a closed connection held).
    public var rollbackTimeout: Duration = .seconds(10)

    /// How the connection is encrypted.
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable
        case prefer
        case require
        case verifyFull = "verify-full"
    }

    public init(
        host: String, port: Int = 5432, username: String, password: String?, database: String,
        tlsMode: TLSMode = .prefer
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tlsMode = tlsMode
    }

    /// Reads a URL such as `postgres://user:secret@db.example.com:5432/saga?sslmode=verify-full`.
    ///
    /// - Throws: ``SagaStoreError/configuration(_:)`` naming what is wrong (never the password).
    public init(url: String) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            ["postgres", "postgresql"].contains(scheme)
        else { throw SagaStoreError.configuration("the PostgreSQL URL must start with postgres:// or postgresql://") }
        guard let host = components.host, !host.isEmpty else {
            throw SagaStoreError.configuration("the PostgreSQL URL names no host")
        }
        guard let username = components.user, !username.isEmpty else {
            throw SagaStoreError.configuration("the PostgreSQL URL names no user")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw SagaStoreError.configuration("the PostgreSQL URL names no database") }
        var mode = TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let parsed = TLSMode(rawValue: value) else {
                    throw SagaStoreError.configuration(
                        "sslmode must be one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                mode = parsed
            default:
                throw SagaStoreError.configuration("unknown PostgreSQL URL parameter '\(item.name)'")
            }
        }
        self.init(
            host: host, port: components.port ?? 5432, username: username,
            password: components.password, database: database, tlsMode: mode)
    }

    /// The postgres-nio client configuration this describes, for components that keep a
    /// `PostgresClient` of their own (a participant's deduplication table, for example).
    public var clientConfiguration: PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch tlsMode {
        case .disable:
            tls = .disable
        case .prefer:
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            tls = .prefer(configuration)
        case .require:
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            tls = .require(configuration)
        case .verifyFull:
            tls = .require(TLSConfiguration.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = maximumConnections
        // The pool opens a connection again when one closes only to keep this many: with none,
        // requests queued while the last connection closed would wait for a request after them
        // (vapor/postgres-nio#657). The store closes connections that failed in ways it cannot
        // trust (see `rollBack`).
        configuration.options.minimumConnections = 1
        return configuration
    }
}

/// Why a store operation failed.
public enum SagaStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The configuration is unusable.
    case configuration(String)
    /// The database was migrated by a newer version of saga-orchestrator.
    case schemaTooNew(database: Int, known: Int)
    /// A document or message is larger than the configured limit; nothing was written.
    case tooLarge(what: String, bytes: Int, limit: Int)
    /// PostgreSQL refused a JSON document; nothing was written.
    case invalidJSON(what: String, reason: String)
    /// No saga with this id.
    case sagaNotFound(String)
    /// What a batch's closure returned cannot be written (a saga written twice); nothing was.
    case invalidBatch(String)
    /// PostgreSQL reported an error, or the connection failed; the transaction was rolled back.
    case database(message: String, sqlState: String?)

    public var description: String {
        switch self {
        case .configuration(let message): return "store configuration: \(message)"
        case .schemaTooNew(let database, let known):
            return "the database schema is at version \(database), newer than this saga-orchestrator knows "
                + "(\(known)): run a newer version, or restore a backup"
        case .tooLarge(let what, let bytes, let limit):
            return "\(what) is \(bytes) bytes, more than the limit of \(limit)"
        case .invalidJSON(let what, let reason): return "\(what) is not valid JSON: \(reason)"
        case .sagaNotFound(let id): return "no saga with id '\(id)'"
        case .invalidBatch(let message): return "invalid batch: \(message)"
        case .database(let message, let sqlState):
            return "PostgreSQL: \(message)\(sqlState.map { " (SQLSTATE \($0))" } ?? "")"
        }
    }

    /// Whether the input of a batch caused it, so that trying the same input again cannot
    /// succeed: a document or message over its limit, JSON PostgreSQL refuses, a batch that
    /// writes a saga twice, bad data (SQLSTATE class 22) or a violated constraint (class 23).
    /// Anything else — the server down, read-only, out of disk or memory, timeouts, permissions —
    /// is the database's state, not the input's: wait and try again.
    public var isCausedByInput: Bool {
        switch self {
        case .tooLarge, .invalidJSON, .invalidBatch: return true
        case .database(_, let state):
            guard let state else { return false }
            return state.hasPrefix("22") || state.hasPrefix("23") || state == "54000" || state == "54001"
        case .configuration, .schemaTooNew, .sagaNotFound: return false
        }
    }

    /// Whether trying again may succeed: a lost connection, a serialization failure, a deadlock.
    public var isTransient: Bool {
        guard case .database(_, let state) = self else { return false }
        guard let state else { return true }
        return state.hasPrefix("08") || state == "40001" || state == "40P01" || state.hasPrefix("57P")
    }

    /// The store's error for anything a PostgreSQL call threw.
    static func wrapping(_ error: any Error) -> SagaStoreError {
        if let error = error as? SagaStoreError { return error }
        if let error = error as? PSQLError {
            let message = error.serverInfo?[.message] ?? "\(error.code)"
            return .database(message: message, sqlState: error.serverInfo?[.sqlState])
        }
        if let error = error as? PostgresTransactionError {
            if let closure = error.closureError { return wrapping(closure) }
            if let commit = error.commitError { return wrapping(commit) }
            if let begin = error.beginError { return wrapping(begin) }
            if let rollback = error.rollbackError { return wrapping(rollback) }
        }
        return .database(message: "\(error)", sqlState: nil)
    }
}

/// Every saga's state in PostgreSQL, through a pool of non-blocking connections.
///
/// The engine changes sagas only through ``applyBatch(_:now:compute:)`` and
/// ``applyDueTimers(now:limit:compute:)``: one transaction per batch that records the inbox, locks
/// the sagas concerned, lets a pure closure compute their new states, and writes states, history,
/// timers, signals and outbox rows together. ``run()`` must run for the store to reach the server
/// (it is a swift-service-lifecycle service).
public final class SagaStore: Sendable {
    let client: PostgresClient
    let configuration: SagaStoreConfiguration
    let logger: Logger
    let cache: SagaStateCache
    let outboxNotifier = OutboxNotifier()

    public init(configuration: SagaStoreConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        cache = SagaStateCache(capacity: configuration.stateCacheCapacity)
        client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
    }

    /// Runs the connection pool, and the notifications that wake outbox relays, until the task is
    /// cancelled or a graceful shutdown ends the pool.
    ///
    /// The notifications stop first and the pool after them: a pool shut down under a statement in
    /// flight may leave that statement unanswered (postgres-nio 1.33), and `run()` would then wait
    /// for it forever.
    public func run() async {
        let client = self.client
        let notifier = outboxNotifier
        let logger = self.logger
        // Not a child task: it must not be cancelled with this one, only once the notifier ended.
        let pool = Task {
            await client.run()
            notifier.finish()
        }
        await withTaskCancellationHandler {
            await notifier.run(client: client, logger: logger)
        } onCancel: {
            notifier.finish()
        }
        pool.cancel()
        await pool.value
    }

    /// Runs `body` with a running store, and stops the store when `body` returns.
    public static func withStore<Result: Sendable>(
        configuration: SagaStoreConfiguration, logger: Logger, _ body: (SagaStore) async throws -> Result
    ) async throws -> Result {
        let store = SagaStore(configuration: configuration, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            defer { group.cancelAll() }
            return try await body(store)
        }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    /// PostgreSQL's errors come out as ``SagaStoreError``; any other error `body` throws comes out
    /// as it was thrown.
    ///
    /// When the server ended the connection (a FATAL error such as `pg_terminate_backend`'s, or the
    /// connection lost), no `ROLLBACK` is sent: the server rolled back already, and a statement
    /// sent on a connection that is closing may never be answered (postgres-nio 1.33 leaves it
    /// waiting). The connection is closed instead, and the pool opens a new one.
    func transaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        let logger = self.logger
        let rollbackTimeout = configuration.rollbackTimeout
        do {
            return try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                let value: Result
                do {
                    value = try await body(connection)
                } catch {
                    await Self.rollBack(connection, after: error, timeout: rollbackTimeout, logger: logger)
                    throw error
                }
                try await connection.query("COMMIT", logger: logger)
                return value
            }
        } catch {
            throw Self.unwrapped(error)
        }
    }

    /// Whether `error` means the server ended the connection: nothing more can be sent on it.
    static func endsConnection(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError else { return false }
        return endsConnection(
            code: error.code, severity: error.serverInfo?[.severity], sqlState: error.serverInfo?[.sqlState])
    }

    /// The rule of ``endsConnection(_:)``, over an error's parts. It follows the errors on which
    /// postgres-nio closes the connection itself: the connection lost or unreadable, and a server
    /// error that is FATAL or PANIC, carries no SQLSTATE, or is of class 08 (connection exception)
    /// or 57P0 (the server shutting down, or the database dropped).
    package static func endsConnection(code: PSQLError.Code, severity: String?, sqlState: String?) -> Bool {
        switch code {
        case .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .connectionError,
            .messageDecodingFailure, .unexpectedBackendMessage, .invalidCommandTag:
            return true
        case .server:
            if severity == "FATAL" || severity == "PANIC" { return true }
            guard let sqlState else { return true }
            return sqlState.hasPrefix("08") || sqlState.hasPrefix("57P0")
        default:
            return false
        }
    }

    /// The SQL of the statements prepared once per connection (see `PreparedStatements.swift`).
    package static let preparedSQL: Set<String> = [
        InsertInboxStatement.sql, LockSagasStatement.sql, LockSagasSkippingStatement.sql, WriteBatchStatement.sql,
    ]

    /// Whether a connection whose transaction failed with an error of `query` is closed after the
    /// rollback instead of going back to the pool: when `query` is one of the prepared statements
    /// and the error is not a data error (class 22) or a constraint violation (23), which only
    /// their execution raises. postgres-nio keeps a failed prepare (a lock or statement timeout, a
    /// cancel, a deadlock while waiting for a table's lock, a missing table) for the rest of the
    /// connection's life, so every later batch on it would fail the same way; a fresh connection
    /// prepares again. Errors of other statements leave the connection as it was.
    package static func closesAfterRollback(code: PSQLError.Code, sqlState: String?, query: String?) -> Bool {
        guard let query, preparedSQL.contains(query) else { return false }
        guard code == .server, let sqlState else { return true }
        return !(sqlState.hasPrefix("22") || sqlState.hasPrefix("23"))
    }

    /// Rolls back the transaction `body` failed in; closes the connection instead when the server
    /// ended it, and when the rollback does not come back within `timeout`; closes it after the
    /// rollback when ``closesAfterRollback(code:sqlState:)`` says so.
    static func rollBack(
        _ connection: PostgresConnection, after error: any Error, timeout: Duration, logger: Logger
    ) async {
        if connection.isClosed || endsConnection(error) {
            try? await connection.close()
            return
        }
        // The rollback is raced against a timer without waiting for the loser: a statement that is
        // never answered must not hold the batch (and so the whole engine) forever.
        let rolledBack = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let once = Mutex(Optional(continuation))
            let finish: @Sendable (Bool) -> Void = { outcome in
                once.withLock { $0.take() }?.resume(returning: outcome)
            }
            let timer = Task {
                try? await Task.sleep(for: timeout)
                finish(false)
            }
            Task {
                do {
                    try await connection.query("ROLLBACK", logger: logger)
                    finish(true)
                } catch {
                    finish(false)
                }
                // No timer left sleeping once the rollback answered.
                timer.cancel()
            }
        }
        if !rolledBack {
            logger.warning("rollback failed or timed out; closing the connection", metadata: ["db.error": "\(error)"])
            try? await connection.close()
        } else if let failure = error as? PSQLError,
            closesAfterRollback(
                code: failure.code, sqlState: failure.serverInfo?[.sqlState], query: failure.query?.sql)
        {
            try? await connection.close()
        }
    }

    /// ``transaction(_:)`` for operations whose every error is the store's.
    @discardableResult
    func storeTransaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result)
        async throws(SagaStoreError) -> Result
    {
        do {
            return try await transaction(body)
        } catch {
            throw SagaStoreError.wrapping(error)
        }
    }

    /// Runs `body` with a connection, outside a transaction.
    @discardableResult
    func connection<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws(SagaStoreError)
        -> Result
    {
        do {
            return try await client.withConnection { connection in try await body(connection) }
        } catch {
            throw SagaStoreError.wrapping(error)
        }
    }

    /// The error to report for what a transaction threw: the closure's own error, PostgreSQL's as
    /// a ``SagaStoreError``.
    static func unwrapped(_ error: any Error) -> any Error {
        if let error = error as? PostgresTransactionError {
            if let closure = error.closureError { return unwrapped(closure) }
            return SagaStoreError.wrapping(error)
        }
        if error is PSQLError { return SagaStoreError.wrapping(error) }
        return error
    }

    /// The outbox relay lane of a saga: a stable hash of its id (FNV-1a), modulo the lane count.
    public func outboxLane(of sagaID: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sagaID.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return Int(hash % UInt64(max(1, configuration.outboxLanes)))
    }

    /// `value` as JSON text, refused when larger than the configured limit.
    func document(_ value: JSONValue, what: @autoclosure () -> String) throws(SagaStoreError) -> String {
        try limited(value.jsonText, what: what())
    }

    /// `text`, refused when larger than the configured limit for documents.
    func limited(_ text: String, what: @autoclosure () -> String) throws(SagaStoreError) -> String {
        let size = text.utf8.count
        guard size <= configuration.maximumDocumentBytes else {
            throw .tooLarge(what: what(), bytes: size, limit: configuration.maximumDocumentBytes)
        }
        return text
    }

    /// A saga's state as stored; refused when it would nest too deeply to be read back.
    func state(of instance: SagaInstance) throws(SagaStoreError) -> String {
        let depth = instance.jsonDepth
        guard depth <= SagaInstance.maximumStateDepth else {
            throw .invalidJSON(
                what: "the state of saga \(instance.id)",
                reason: "nested \(depth) levels deep, more than \(SagaInstance.maximumStateDepth)")
        }
        return try limited(instance.jsonText, what: "the state of saga \(instance.id)")
    }

    /// A saga's state from its stored text.
    func instance(from text: String, id: String) throws(SagaStoreError) -> SagaInstance {
        // (The state parser allows deeper nesting than documents from outside, which are capped at
        // JSONValue.maximumParseDepth: a result stored under `results.<step>` sits a few levels
        // deeper than it arrived.)
        do {
            return try SagaInstance(jsonText: text)
        } catch {
            throw .invalidJSON(what: "the state of saga \(id)", reason: "\(error)")
        }
    }

    /// A JSON document from its stored text.
    func json(from text: String, what: @autoclosure () -> String) throws(SagaStoreError) -> JSONValue {
        do {
            return try JSONValue(parsing: text)
        } catch {
            throw .invalidJSON(what: what(), reason: "\(error)")
        }
    }
}

extension SagaTimestamp {
    /// The time as milliseconds for binding; SQL turns it into `timestamptz` with `to_timestamp`.
    var milliseconds: Int64 { millisecondsSinceEpoch }

    /// The time of `date`, to the millisecond.
    public init(date: Date) {
        self.init(millisecondsSinceEpoch: Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }

    /// The time as a `Date`.
    public var date: Date { Date(timeIntervalSince1970: Double(millisecondsSinceEpoch) / 1000) }
}
