import Foundation
import Kafka
import Logging
import PostgresNIO
import SagaCore
import SagaParticipant
import SagaProtocol
import SagaStore
import Synchronization
import TestSupport
import Testing

/// The participant SDK against PostgreSQL and librdkafka's mock cluster: the test sends step
/// commands as the orchestrator would and reads the replies.
@Suite("Participant SDK", .enabled(if: StoreTestEnvironment.enabled), .timeLimit(.minutes(3)))
struct SagaParticipantTests {
    static let logger: Logger = {
        var logger = Logger(label: "participant-tests")
        logger.logLevel = .warning
        return logger
    }()

    /// Runs `body` with a participant named `payments` whose handler is `handler`, a producer of
    /// commands and a reader of replies.
    func withParticipant(
        _ handler: @escaping SagaParticipant.Handler,
        _ body: (_ send: (StepCommandMessage) async throws -> Void, _ replies: Replies) async throws -> Void
    ) async throws {
        try await TestDatabase.with { database in
            let cluster = try KafkaMockCluster(brokers: 1, logger: Self.logger)
            let topics = SagaTopics()
            try cluster.createTopic(topics.commands(for: "payments"), partitions: 1)
            try cluster.createTopic(topics.replies, partitions: 1)
            let client = PostgresClient(
                configuration: database.configuration.clientConfiguration, backgroundLogger: Self.logger)
            let producer = try KafkaProducer(
                configuration: KafkaProducerConfiguration(bootstrapServers: [cluster.bootstrapServers]),
                logger: Self.logger)
            let replies = Replies()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                let participant = try SagaParticipant(
                    configuration: ParticipantConfiguration(
                        name: "payments", bootstrapServers: [cluster.bootstrapServers]),
                    client: client, logger: Self.logger, handler: handler)
                try await participant.migrate()
                group.addTask { try await participant.run() }
                group.addTask {
                    var configuration = KafkaConsumerConfiguration(
                        bootstrapServers: [cluster.bootstrapServers], groupID: "replies")
                    configuration.sessionTimeoutMilliseconds = 6_000
                    let consumer = try KafkaConsumer(configuration: configuration, logger: Self.logger)
                    try consumer.subscribe(to: [topics.replies])
                    for await batch in consumer.batches() {
                        for message in batch {
                            let reply = try SagaWire.decode(
                                StepReplyMessage.self, headers: message.headersByName, value: message.value
                            ).1
                            replies.list.withLock { $0.append(reply) }
                        }
                    }
                    await consumer.close()
                }
                let send: (StepCommandMessage) async throws -> Void = { command in
                    let wire = SagaWire.encode(command, id: UUID().uuidString, source: "/tests", key: command.sagaID)
                    _ = try await producer.send(
                        KafkaOutgoingMessage(
                            topic: topics.commands(for: "payments"), key: Array(command.sagaID.utf8),
                            value: Array(wire.value.utf8),
                            headers: KafkaHeader.headers(wire.headers)))
                }
                try await body(send, replies)
                group.cancelAll()
            }
            await producer.close()
        }
    }

    /// The replies read so far.
    final class Replies: Sendable {
        let list = Mutex<[StepReplyMessage]>([])
    }

    func command(_ saga: String, _ action: StepAction, attempt: Int = 1) -> StepCommandMessage {
        StepCommandMessage(
            sagaID: saga, sagaType: "order-fulfillment", step: "charge-payment", action: action,
            commandType: action == .execute ? "payments.charge" : "payments.refund",
            idempotencyKey: "\(saga):charge-payment:\(action.rawValue)", actionKey: "\(saga):charge-payment:execute",
            attempt: attempt, deadline: SagaTimestamp(millisecondsSinceEpoch: 4_102_444_800_000),
            payload: ["input": ["amount": 5]], replyTopic: SagaTopics().replies)
    }

    func reply(_ replies: Replies, count: Int) async throws -> [StepReplyMessage] {
        try await withDeadline(.seconds(60), "\(count) replies") {
            while true {
                let all = replies.list.withLock { $0 }
                if all.count >= count { return all }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test("a repeated key gets the first reply again; the handler ran once")
    func repeatedKey() async throws {
        let calls = Atomic(0)
        let handler: SagaParticipant.Handler = { context in
            calls.add(1, ordering: .relaxed)
            return .success(result: ["chargeId": .string("c-\(context.command.sagaID)")])
        }
        try await withParticipant(handler) { send, replies in
            try await send(command("s-1", .execute, attempt: 1))
            try await send(command("s-1", .execute, attempt: 2))
            let answers = try await reply(replies, count: 2)
            #expect(answers.map(\.reply.attempt) == [1, 2])
            #expect(answers.allSatisfy { $0.reply.outcome == .success(result: ["chargeId": "c-s-1"]) })
            #expect(calls.load(ordering: .relaxed) == 1)
        }
    }

    @Test("a retryable failure is not kept: the next attempt runs the handler again")
    func retryableNotStored() async throws {
        let calls = Atomic(0)
        let handler: SagaParticipant.Handler = { _ in
            calls.add(1, ordering: .relaxed).newValue == 1
                ? .failure(StepError(code: "PROVIDER_DOWN", message: "try later", retryable: true))
                : .success(result: ["chargeId": "c-1"])
        }
        try await withParticipant(handler) { send, replies in
            try await send(command("s-2", .execute, attempt: 1))
            _ = try await reply(replies, count: 1)
            try await send(command("s-2", .execute, attempt: 2))
            let answers = try await reply(replies, count: 2)
            #expect(
                answers[0].reply.outcome
                    == .failure(StepError(code: "PROVIDER_DOWN", message: "try later", retryable: true)))
            #expect(answers[1].reply.outcome == .success(result: ["chargeId": "c-1"]))
            #expect(calls.load(ordering: .relaxed) == 2)
        }
    }

    @Test("a compensation before its action: done with nothing to undo, and the late action is refused")
    func compensationFirst() async throws {
        let calls = Atomic(0)
        let handler: SagaParticipant.Handler = { _ in
            calls.add(1, ordering: .relaxed)
            return .success(result: .emptyObject)
        }
        try await withParticipant(handler) { send, replies in
            try await send(command("s-3", .compensate))
            try await send(command("s-3", .execute))
            let answers = try await reply(replies, count: 2)
            #expect(answers[0].reply.action == .compensate)
            #expect(answers[0].reply.outcome == .success(result: ["compensatedBeforeAction": true]))
            guard case .failure(let error) = answers[1].reply.outcome else {
                Issue.record("the late action was not refused: \(answers[1])")
                return
            }
            #expect(error.code == "COMPENSATED" && !error.retryable)
            #expect(calls.load(ordering: .relaxed) == 0)
        }
    }

    @Test("a handler that throws is answered with the retryable HANDLER_ERROR")
    func handlerThrows() async throws {
        struct Broken: Error {}
        let handler: SagaParticipant.Handler = { context in
            try await context.connection.query("CREATE TABLE written (x int)", logger: context.logger)
            throw Broken()
        }
        try await withParticipant(handler) { send, replies in
            try await send(command("s-4", .execute))
            let answers = try await reply(replies, count: 1)
            guard case .failure(let error) = answers[0].reply.outcome else {
                Issue.record("expected a failure: \(answers[0])")
                return
            }
            #expect(error.code == "HANDLER_ERROR" && error.retryable)
        }
    }
}
