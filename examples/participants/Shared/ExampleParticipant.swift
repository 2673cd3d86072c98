import Foundation
import Kafka
import Logging
import PostgresNIO
import SagaCore
import SagaParticipant
import SagaProtocol
import SagaStore
import UnixSignals

/// What every example participant shares: settings from the environment, a database client, the
/// switches the tests and the demo use to make it misbehave, and the run loop.
///
/// Environment: `KAFKA_BOOTSTRAP_SERVERS`, `POSTGRES_URL` (its own database; the orchestrator's
/// works too: its tables are its own), and the switches:
///
/// - `FAIL_COMMANDS`: command types (comma-separated) that fail with a non-retryable error
///   (`<PARTICIPANT>_REFUSED`), e.g. `payments.charge`;
/// - `FAIL_WHEN`: `field=value`: fail those commands only when the saga's input has that value,
///   e.g. `orderId=o-2`;
/// - `SLOW_MS`: wait this long before answering each command (a participant past its timeout);
/// - `SLOW_WHEN`: `field=value`: be slow only when the saga's input has that value;
/// - `REPLY_TWICE`: `1` sends every reply twice;
/// - `TOPIC_PREFIX`: put before the command topic's and the consumer group's names.
public struct ExampleParticipant {
    public let name: String
    public let logger: Logger

    public init(name: String) {
        self.name = name
        var logger = Logger(label: "participant-\(name)")
        logger.logLevel =
            ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        self.logger = logger
    }

    /// Runs the participant with `setup` (its tables) and `handle` (its work) until SIGTERM/SIGINT.
    public func run(
        setup: String,
        handle: @escaping @Sendable (ParticipantContext) async throws -> StepReply.Outcome
    ) async throws {
        let environment = ProcessInfo.processInfo.environment
        let servers = (environment["KAFKA_BOOTSTRAP_SERVERS"] ?? "localhost:9092").split(separator: ",").map(
            String.init)
        var store = try SagaStoreConfiguration(url: environment["POSTGRES_URL"] ?? "postgres://postgres@localhost/saga")
        if environment["POSTGRES_TLS"] == "disable" { store.tlsMode = .disable }
        let client = PostgresClient(configuration: store.clientConfiguration, backgroundLogger: logger)
        var configuration = ParticipantConfiguration(name: name, bootstrapServers: servers)
        // TOPIC_PREFIX: put before the command topic and the consumer group (tests that share a broker).
        let prefix = environment["TOPIC_PREFIX"] ?? ""
        configuration.commandTopic = prefix + configuration.commandTopic
        configuration.groupID = prefix + configuration.groupID
        configuration.replyCopies = environment["REPLY_TWICE"] == "1" ? 2 : 1
        let failing = Set((environment["FAIL_COMMANDS"] ?? "").split(separator: ",").map(String.init))
        let failWhen = (environment["FAIL_WHEN"] ?? "").split(separator: "=", maxSplits: 1).map(String.init)
        let slow = Int(environment["SLOW_MS"] ?? "") ?? 0
        let slowWhen = (environment["SLOW_WHEN"] ?? "").split(separator: "=", maxSplits: 1).map(String.init)
        let name = self.name
        let participant = try SagaParticipant(configuration: configuration, client: client, logger: logger) {
            context in
            let command = context.command
            let input = command.payload["input"]
            func holds(_ condition: [String]) -> Bool {
                condition.count == 2 ? input?[condition[0]]?.stringValue == condition[1] : true
            }
            if slow > 0 && holds(slowWhen) { try await Task.sleep(for: .milliseconds(slow)) }
            if failing.contains(command.commandType) {
                if holds(failWhen) {
                    return .failure(
                        StepError(
                            code: "\(name.uppercased())_REFUSED", message: "\(command.commandType) refused",
                            retryable: false))
                }
            }
            return try await handle(context)
        }
        let logger = self.logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            try await participant.migrate()
            // The participant's own tables, created under the same lock as the reply table.
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query(
                    "SELECT pg_advisory_xact_lock(\(SagaParticipant.migrationLock))", logger: logger)
                try await connection.query(PostgresQuery(unsafeSQL: setup), logger: logger)
            }
            logger.info("participant started", metadata: ["topic": "\(configuration.commandTopic)"])
            group.addTask { try await participant.run() }
            // Stop on SIGTERM or SIGINT: the participant leaves its group.
            for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) { break }
            logger.info("participant stopping")
            group.cancelAll()
        }
    }
}
