import Foundation
import Kafka
import Logging
import PostgresNIO
import SagaCore
import SagaProtocol

/// What a participant's handler gets with each command: the command, and the database
/// connection of the transaction that records its reply, so the handler's own writes commit
/// together with it (and are never applied twice).
public struct ParticipantContext: Sendable {
    public let command: StepCommandMessage
    public let connection: PostgresConnection
    public let logger: Logger
}

/// Settings of a ``SagaParticipant``.
public struct ParticipantConfiguration: Sendable {
    /// The participant's name; its command topic is `saga.participant.<name>` unless ``commandTopic`` says otherwise.
    public var name: String
    public var kafka: KafkaClientConfiguration
    /// The consumer group; default `participant-<name>`.
    public var groupID: String
    public var commandTopic: String
    /// The CloudEvents `source` of the replies; default `/participants/<name>`.
    public var source: String
    /// The most commands read at once.
    public var batchSize: Int = 100
    /// How many times each reply is sent: more than 1 only to test that the orchestrator ignores
    /// repeated replies.
    public var replyCopies: Int = 1

    public init(name: String, bootstrapServers: [String], topics: SagaTopics = SagaTopics()) {
        self.name = name
        kafka = KafkaClientConfiguration(bootstrapServers: bootstrapServers)
        groupID = "participant-\(name)"
        commandTopic = topics.commands(for: name)
        source = "/participants/\(name)"
    }
}

/// A participant service's side of the saga protocol (protocols/PARTICIPANTS.md): reads step
/// commands from its topic, keeps the contract, calls the handler, replies.
///
/// - A repeated idempotency key gets the first reply again, and the handler is not called again.
/// - A compensation that arrives before its action is answered as done (there is nothing to undo),
///   and remembered: the action, when it comes, is refused with the non-retryable error
///   `COMPENSATED` and the handler is not called.
/// - A handler's reply and its writes on ``ParticipantContext/connection`` commit in one
///   transaction; the reply is sent after the commit, and the command's offset is committed after
///   the reply was acknowledged. A crash in between sends the stored reply again.
///
/// The table it keeps (`saga_participant_replies`) is created by ``migrate()``.
public final class SagaParticipant: Sendable {
    /// A command's handler: returns the outcome to reply with. A thrown error is replied as a
    /// retryable failure with the code `HANDLER_ERROR`, and nothing the handler wrote is kept.
    public typealias Handler = @Sendable (ParticipantContext) async throws -> StepReply.Outcome

    public let configuration: ParticipantConfiguration
    let client: PostgresClient
    let consumer: KafkaConsumer
    let producer: KafkaProducer
    let handler: Handler
    let logger: Logger

    /// - Parameters:
    ///   - client: the participant's own database (it must be running).
    ///   - handler: called once per idempotency key (an action, or a compensation).
    public init(
        configuration: ParticipantConfiguration, client: PostgresClient, logger: Logger, handler: @escaping Handler
    ) throws {
        self.configuration = configuration
        self.client = client
        self.logger = logger
        self.handler = handler
        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: configuration.kafka.bootstrapServers)
        producerConfiguration.client = configuration.kafka
        producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        var consumerConfiguration = KafkaConsumerConfiguration(
            bootstrapServers: configuration.kafka.bootstrapServers, groupID: configuration.groupID)
        consumerConfiguration.client = configuration.kafka
        consumerConfiguration.sessionTimeoutMilliseconds = 6_000
        consumerConfiguration.heartbeatIntervalMilliseconds = 500
        consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: logger)
    }

    /// Creates the reply table when it is missing. Participants that share a database may call
    /// this at the same time: an advisory lock makes them take turns (PostgreSQL's `CREATE TABLE IF
    /// NOT EXISTS` is not safe against a concurrent one).
    public func migrate() async throws {
        let logger = self.logger
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS saga_participant_replies (
                    idempotency_key text PRIMARY KEY,
                    action text NOT NULL,
                    outcome text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
        }
    }

    /// The advisory lock ``migrate()`` takes.
    public static let migrationLock: Int64 = 0x5A_0B_9A27

    /// Reads and answers commands until the task is cancelled, then leaves the group.
    public func run() async throws {
        try consumer.subscribe(to: [configuration.commandTopic])
        do {
            for await batch in consumer.batches(maximumCount: configuration.batchSize) {
                try await process(batch)
                if Task.isCancelled { break }
            }
        } catch {
            await close()
            throw error
        }
        await close()
    }

    func close() async {
        await consumer.close()
        await producer.close()
    }

    func process(_ batch: [KafkaMessage]) async throws {
        var replies: [KafkaOutgoingMessage] = []
        var offsets: [KafkaTopicPartition: Int64] = [:]
        for message in batch {
            defer {
                let partition = KafkaTopicPartition(topic: message.topic, partition: message.partition)
                offsets[partition] = max(offsets[partition] ?? 0, message.offset + 1)
            }
            let headers = message.headersByName
            let command: StepCommandMessage
            do {
                command = try SagaWire.decode(StepCommandMessage.self, headers: headers, value: message.value).1
            } catch {
                logger.warning(
                    "command refused",
                    metadata: ["kafka.offset": "\(message.offset)", "error.message": "\(error)"])
                continue
            }
            let outcome = try await answer(command)
            let reply = command.reply(outcome)
            let wire = SagaWire.encode(
                reply, id: "\(command.idempotencyKey)#\(command.attempt)", source: configuration.source, time: nil,
                subject: command.sagaID, key: command.sagaID)
            let replyHeaders = KafkaHeader.headers(wire.headers)
            let outgoing = KafkaOutgoingMessage(
                topic: command.replyTopic, key: Array(command.sagaID.utf8), value: Array(wire.value.utf8),
                headers: replyHeaders)
            replies.append(contentsOf: Array(repeating: outgoing, count: max(1, configuration.replyCopies)))
        }
        var pending = replies
        while !pending.isEmpty {
            let reports = await producer.send(pending)
            let failed = reports.failures
            pending = failed.map { pending[$0.index] }
            if let first = failed.first {
                logger.warning("replies not sent; trying again", metadata: ["error.message": "\(first.error)"])
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        try await consumer.commit(
            offsets.map { KafkaCommitOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) })
    }

    /// The outcome for `command`: the stored one, or the handler's, stored in the same transaction.
    ///
    /// A retryable failure is not stored (the next attempt calls the handler again) and what the
    /// handler wrote is rolled back. An error the handler throws is replied as the retryable
    /// `HANDLER_ERROR`. An error of the participant's own database is not replied at all: nobody
    /// can tell whether the work took effect, so the command is tried again after a pause, until
    /// the database answers or the participant stops.
    func answer(_ command: StepCommandMessage) async throws -> StepReply.Outcome {
        var metadata: Logger.Metadata = [
            "saga.id": "\(command.sagaID)", "saga.step": "\(command.step)", "saga.attempt": "\(command.attempt)",
            "saga.action": "\(command.action.rawValue)",
        ]
        metadata["saga.idempotency_key"] = "\(command.idempotencyKey)"
        var pause = Duration.milliseconds(200)
        while true {
            do {
                return try await answerOnce(command, metadata: metadata)
            } catch {
                // The transaction wraps what its closure threw.
                let cause = (error as? PostgresTransactionError)?.closureError ?? error
                if let failure = cause as? NotStored { return failure.outcome }
                if let failed = cause as? HandlerFailed {
                    logger.warning(
                        "handler failed", metadata: metadata.merging(["error.message": "\(failed.error)"]) { $1 })
                    return .failure(StepError(code: "HANDLER_ERROR", message: "\(failed.error)", retryable: true))
                }
                if Task.isCancelled || error is CancellationError { throw CancellationError() }
                logger.warning(
                    "command not answered: the database failed; trying again",
                    metadata: metadata.merging(["error.message": "\(error)"]) { $1 })
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(10))
            }
        }
    }

    /// An outcome replied but not stored: a retryable failure.
    struct NotStored: Error {
        var outcome: StepReply.Outcome
    }

    /// The handler threw.
    struct HandlerFailed: Error {
        var error: any Error
    }

    private func answerOnce(_ command: StepCommandMessage, metadata: Logger.Metadata) async throws
        -> StepReply.Outcome
    {
        let logger = self.logger
        let handler = self.handler
        return try await client.withTransaction(logger: logger) { connection in
            if let stored = try await Self.stored(command.idempotencyKey, connection, logger) {
                logger.info("repeated command: the first reply again", metadata: metadata)
                return stored
            }
            if command.action == .compensate {
                switch try await Self.stored(command.actionKey, connection, logger) {
                case nil:
                    // The compensation came first: nothing to undo; the action is refused when it comes.
                    let refusal = StepReply.Outcome.failure(
                        StepError(code: "COMPENSATED", message: "compensated before it arrived", retryable: false))
                    try await Self.store(refusal, key: command.actionKey, action: .execute, connection, logger)
                    let done = StepReply.Outcome.success(result: ["compensatedBeforeAction": true])
                    try await Self.store(done, key: command.idempotencyKey, action: .compensate, connection, logger)
                    logger.info("compensation before its action: nothing to undo", metadata: metadata)
                    return done
                case .failure?:
                    // The action failed (or was refused): it changed nothing, so there is nothing to undo.
                    let done = StepReply.Outcome.success(result: ["nothingToUndo": true])
                    try await Self.store(done, key: command.idempotencyKey, action: .compensate, connection, logger)
                    logger.info("compensation of an action that failed: nothing to undo", metadata: metadata)
                    return done
                case .success?:
                    break
                }
            }
            let outcome: StepReply.Outcome
            do {
                outcome = try await handler(
                    ParticipantContext(command: command, connection: connection, logger: logger))
            } catch {
                throw HandlerFailed(error: error)
            }
            if case .failure(let error) = outcome, error.retryable {
                // Rolls back what the handler wrote; the next attempt runs the handler again.
                throw NotStored(outcome: outcome)
            }
            try await Self.store(outcome, key: command.idempotencyKey, action: command.action, connection, logger)
            logger.info("command handled", metadata: metadata)
            return outcome
        }
    }

    static func stored(_ key: String, _ connection: PostgresConnection, _ logger: Logger) async throws
        -> StepReply.Outcome?
    {
        let rows = try await connection.query(
            "SELECT outcome FROM saga_participant_replies WHERE idempotency_key = \(key) FOR UPDATE", logger: logger)
        for try await text in rows.decode(String.self) {
            return try StepReply.Outcome(json: JSONValue(parsing: text))
        }
        return nil
    }

    static func store(
        _ outcome: StepReply.Outcome, key: String, action: StepAction, _ connection: PostgresConnection,
        _ logger: Logger
    ) async throws {
        try await connection.query(
            """
            INSERT INTO saga_participant_replies (idempotency_key, action, outcome)
            VALUES (\(key), \(action.rawValue), \(outcome.json.jsonText))
            """, logger: logger)
    }
}
