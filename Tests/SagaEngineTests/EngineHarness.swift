import Foundation
import Kafka
import Logging
import SagaCore
import SagaDefinitions
import SagaEngine
import SagaProtocol
import SagaStore
import Synchronization
import TestSupport
import Testing

/// A running engine for one test: a database of its own, librdkafka's mock cluster in the
/// process, the example definitions, example participants that answer as each test tells them,
/// and a reader of the events topic.
final class EngineHarness: Sendable {
    static let logger: Logger = {
        var logger = Logger(label: "engine-tests")
        logger.logLevel = ProcessInfo.processInfo.environment["ENGINE_TEST_LOG"] != nil ? .debug : .warning
        return logger
    }()

    static let examples = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples/definitions")

    let cluster: KafkaMockCluster
    let settings: EngineSettings
    let producer: KafkaProducer
    let events = Mutex<[SagaEventMessage]>([])
    let commands = Mutex<[StepCommandMessage]>([])
    let deadLetters = Mutex<[DeadLetterRecord]>([])
    /// How participants answer a command; the default succeeds with `{"done": <command type>}`.
    let behaviour: Mutex<@Sendable (StepCommandMessage) -> StepReply.Outcome?>

    private init(cluster: KafkaMockCluster, settings: EngineSettings, producer: KafkaProducer) {
        self.cluster = cluster
        self.settings = settings
        self.producer = producer
        behaviour = Mutex({ command in .success(result: ["done": .string(command.commandType)]) })
    }

    /// Runs `body` with an engine, participants and an event reader running.
    static func with(_ body: (EngineHarness) async throws -> Void) async throws {
        try await TestDatabase.with { database in
            try await database.withStore { store in
                let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
                var settings = EngineSettings()
                settings.pendingSignalLifetime = .minutes(5)
                for topic in settings.topics.inbound + [settings.topics.events, settings.topics.deadLetter] {
                    try cluster.createTopic(topic, partitions: 4)
                }
                for participant in ["inventory", "payments", "shipping"] {
                    try cluster.createTopic(settings.topics.commands(for: participant), partitions: 2)
                }
                let producer = try KafkaProducer(
                    configuration: KafkaProducerConfiguration(bootstrapServers: [cluster.bootstrapServers]),
                    logger: logger)
                let harness = EngineHarness(cluster: cluster, settings: settings, producer: producer)
                let definitions = try DefinitionLoader.loadDirectory(examples).map(\.definition)
                let consumer = try harness.consumer(group: "sagad")
                var configured = SagaEngine(
                    store: store, consumer: consumer, producer: producer,
                    definitions: DefinitionRegistry(definitions), settings: settings, outboxLanes: 16, logger: logger)
                configured.relay.pollInterval = .milliseconds(200)
                configured.timers.pollInterval = .milliseconds(50)
                let engine = configured
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await engine.run() }
                    group.addTask { try await harness.runParticipants() }
                    group.addTask { try await harness.readEvents() }
                    group.addTask { try await harness.readDeadLetters() }
                    defer { group.cancelAll() }
                    try await body(harness)
                }
                await consumer.close()
                await producer.close()
            }
        }
    }

    func consumer(group: String) throws -> KafkaConsumer {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: [cluster.bootstrapServers], groupID: group)
        configuration.sessionTimeoutMilliseconds = 6_000
        configuration.heartbeatIntervalMilliseconds = 500
        return try KafkaConsumer(configuration: configuration, logger: Self.logger)
    }

    /// The example participants: each command is recorded and answered as ``behaviour`` says
    /// (`nil`: no answer, as a participant that is down).
    func runParticipants() async throws {
        let consumer = try consumer(group: "participants")
        try consumer.subscribe(to: ["inventory", "payments", "shipping"].map(settings.topics.commands(for:)))
        try await closing(consumer) {
            for await batch in consumer.batches() {
                try await answer(batch)
            }
        }
    }

    func answer(_ batch: [KafkaMessage]) async throws {
        for message in batch {
            let (_, command) = try SagaWire.decode(
                StepCommandMessage.self, headers: message.headersByName, value: message.value)
            commands.withLock { $0.append(command) }
            let answer = behaviour.withLock { $0 }
            guard let outcome = answer(command) else { continue }
            try await send(command.reply(outcome), id: "\(command.idempotencyKey)#\(command.attempt)")
        }
    }

    /// Runs `body`, then closes `consumer` (leaving its group) before the cluster goes away.
    func closing(_ consumer: KafkaConsumer, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    func readEvents() async throws {
        let consumer = try consumer(group: "events-\(UUID().uuidString)")
        try consumer.subscribe(to: [settings.topics.events])
        try await closing(consumer) {
            for await batch in consumer.batches() {
                let decoded = try batch.map { message in
                    try SagaWire.decode(SagaEventMessage.self, headers: message.headersByName, value: message.value).1
                }
                events.withLock { $0.append(contentsOf: decoded) }
            }
        }
    }

    func readDeadLetters() async throws {
        let consumer = try consumer(group: "dead-letters-\(UUID().uuidString)")
        try consumer.subscribe(to: [settings.topics.deadLetter])
        try await closing(consumer) {
            for await batch in consumer.batches() {
                let decoded = try batch.map { message in
                    try SagaWire.decode(DeadLetterRecord.self, headers: message.headersByName, value: message.value).1
                }
                deadLetters.withLock { $0.append(contentsOf: decoded) }
            }
        }
    }

    /// Sends a protocol message to the topic it belongs on.
    func send<Body: SagaMessageBody>(_ body: Body, id: String = UUID().uuidString) async throws {
        let topic: String
        let key: String
        switch body {
        case let start as StartSagaRequest:
            (topic, key) = (settings.topics.requests, start.idempotencyKey)
        case let cancel as CancelSagaRequest:
            (topic, key) = (settings.topics.requests, cancel.sagaID)
        case let signal as SignalRequest:
            switch signal.target {
            case .saga(let id): key = id
            case .start(_, _, let idempotencyKey): key = idempotencyKey
            }
            topic = settings.topics.signals
        case let reply as StepReplyMessage:
            (topic, key) = (settings.topics.replies, reply.sagaID)
        default:
            Issue.record("no topic for \(Body.messageType)")
            return
        }
        let wire = SagaWire.encode(body, id: id, source: "/engine-tests", time: .now, key: key)
        try await sendRaw(topic: topic, key: key, headers: wire.headers, value: wire.value)
    }

    func sendRaw(topic: String, key: String?, headers: [String: String], value: String) async throws {
        _ = try await producer.send(
            KafkaOutgoingMessage(
                topic: topic, key: key.map { Array($0.utf8) }, value: Array(value.utf8),
                headers: KafkaHeader.headers(headers)))
    }

    /// Waits for an event of a saga (by the start's idempotency key, or the saga id) and returns it.
    @discardableResult
    func event(
        _ name: String, key: String, step: String? = nil, timeout: Duration = .seconds(60)
    ) async throws -> SagaEventMessage {
        try await withDeadline(timeout, "event \(name) of \(key)") {
            while true {
                let found = self.events.withLock { events in
                    let ids = Set(events.filter { $0.idempotencyKey == key }.compactMap(\.sagaID)).union([key])
                    return events.first {
                        $0.event == name && (ids.contains($0.sagaID ?? "") || $0.idempotencyKey == key)
                            && (step == nil || $0.step == step)
                    }
                }
                if let found { return found }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// The events of saga `id`, in the order they were read.
    func events(of id: String) -> [SagaEventMessage] {
        events.withLock { $0.filter { $0.sagaID == id } }
    }

    /// The commands sent for saga `id`, in the order participants read them.
    func commands(of id: String) -> [StepCommandMessage] {
        commands.withLock { $0.filter { $0.sagaID == id } }
    }
}
