import Foundation
import Kafka
import Logging
import SagaCore
import SagaProtocol
import SagaStore

/// Reads the orchestrator's input topics (requests, signals, replies) in batches and applies each
/// batch in one transaction, through the store and the state machine; commits the batch's offsets
/// only after the transaction committed.
///
/// A message that cannot be read goes to the dead-letter topic with the reason, and its offset is
/// committed with the rest: a partition never stops on one bad message. A message that can be read
/// but not applied (the store refuses what it would write) goes there too, found by applying the
/// batch's messages one by one. When the database cannot be reached, the batch is tried again
/// with a growing pause, and nothing is committed meanwhile.
public struct InboundProcessor: Sendable {
    public let consumer: KafkaConsumer
    /// Sends dead-letter records.
    public let producer: KafkaProducer
    public let store: SagaStore
    public let definitions: DefinitionRegistry
    public let settings: EngineSettings
    /// The most messages in one batch.
    public var batchSize: Int
    public let logger: Logger
    /// Called after each batch that was applied, with what it did.
    public var onBatch: @Sendable (InboundBatchReport) -> Void = { _ in }

    public init(
        consumer: KafkaConsumer, producer: KafkaProducer, store: SagaStore, definitions: DefinitionRegistry,
        settings: EngineSettings, batchSize: Int = 500, logger: Logger
    ) {
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.definitions = definitions
        self.settings = settings
        self.batchSize = batchSize
        self.logger = logger
    }

    /// Subscribes to the input topics and processes batches until the task is cancelled or the
    /// consumer is closed. The batch in hand is finished first (applied and committed) when the
    /// task is cancelled while it is being applied.
    public func run() async throws {
        try consumer.subscribe(to: settings.topics.inbound)
        for await batch in consumer.batches(maximumCount: batchSize) {
            // Shielded from cancellation: a stop finishes the batch in hand (apply, then commit).
            let task = Task { try await process(batch) }
            try await task.value
            if Task.isCancelled { break }
        }
    }

    /// Decodes, applies and commits one batch.
    func process(_ batch: [KafkaMessage]) async throws {
        var inputs: [EngineInput] = []
        var deadLetters: [KafkaOutgoingMessage] = []
        inputs.reserveCapacity(batch.count)
        for message in batch {
            let headers = Self.headers(of: message)
            let origin = MessageOrigin(topic: message.topic, partition: message.partition, offset: message.offset)
            do throws(WireError) {
                let inbound = try SagaWire.decodeInbound(headers: headers, value: message.value)
                inputs.append(EngineInput(inbound, origin: origin))
            } catch {
                logger.warning(
                    "message refused", metadata: ["kafka.origin": "\(origin)", "error.message": "\(error)"])
                deadLetters.append(deadLetter(error, message: message, headers: headers))
            }
        }
        if !deadLetters.isEmpty { try await sendDeadLetters(deadLetters) }
        var report = InboundBatchReport(messages: batch.count, deadLettered: deadLetters.count)
        if !inputs.isEmpty { try await apply(inputs, report: &report) }
        var offsets: [KafkaTopicPartition: Int64] = [:]
        for message in batch {
            let partition = KafkaTopicPartition(topic: message.topic, partition: message.partition)
            offsets[partition] = max(offsets[partition] ?? 0, message.offset + 1)
        }
        do {
            try await consumer.commit(
                offsets.map { KafkaCommitOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) })
        } catch {
            // The messages come again after a restart or a rebalance; the inbox drops them then.
            logger.warning("offset commit failed", metadata: ["error.message": "\(error)"])
        }
        onBatch(report)
    }

    /// Applies `inputs` in one transaction, trying again while the database cannot be reached. A
    /// batch the store refuses is applied one input at a time, and the inputs refused alone go to
    /// the dead-letter topic.
    func apply(_ inputs: [EngineInput], report: inout InboundBatchReport) async throws {
        do {
            try await applyRetrying(inputs, report: &report)
        } catch let error as SagaStoreError where !error.isTransient && inputs.count > 1 {
            logger.warning(
                "batch refused; applying its messages one by one",
                metadata: ["error.message": "\(error)", "batch.size": "\(inputs.count)"])
            for input in inputs {
                try await apply([input], report: &report)
            }
        } catch let error as SagaStoreError where !error.isTransient {
            let input = inputs[0]
            logger.error(
                "message could not be applied",
                metadata: ["kafka.origin": "\(input.origin.map(\.description) ?? "-")", "error.message": "\(error)"])
            try await sendDeadLetters([deadLetter(refused: input, error: error)])
            report.deadLettered += 1
        }
    }

    func applyRetrying(_ inputs: [EngineInput], report: inout InboundBatchReport) async throws {
        var pause = Duration.milliseconds(100)
        while true {
            let planner = BatchPlanner(
                definitions: definitions, settings: settings, now: .now, makeID: { UUID().uuidString.lowercased() })
            let box = PlanBox()
            do {
                let outcome = try await store.applyBatch(inputs, now: planner.now) { context in
                    let plan = planner.plan(context)
                    box.plan = plan
                    return plan.writes
                }
                report.duplicates += outcome.duplicates
                report.sagasWritten += outcome.sagasWritten
                report.outboxRows += outcome.outboxRows
                if let plan = box.plan {
                    report.notes += plan.notes
                    report.started.merge(plan.started, uniquingKeysWith: +)
                    report.finished += plan.finished
                    report.stepsCompleted += plan.stepsCompleted
                    for note in plan.notes { logger.notice("\(note.kind.rawValue)", metadata: ["detail": "\(note)"]) }
                }
                return
            } catch let error as SagaStoreError where error.isTransient {
                logger.warning(
                    "batch not applied; trying again",
                    metadata: ["error.message": "\(error)", "retry.pause": "\(pause)"])
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(10))
            }
        }
    }

    func sendDeadLetters(_ messages: [KafkaOutgoingMessage]) async throws {
        var pending = messages
        var pause = Duration.milliseconds(200)
        while !pending.isEmpty {
            let reports = await producer.send(pending)
            let failed = reports.failures
            if failed.isEmpty { return }
            logger.warning(
                "dead-letter records not sent; trying again",
                metadata: ["error.message": "\(failed[0].error)", "records": "\(failed.count)"])
            pending = failed.map { pending[$0.index] }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .seconds(10))
        }
    }

    func deadLetter(_ error: WireError, message: KafkaMessage, headers: [String: String]) -> KafkaOutgoingMessage {
        let record = DeadLetterRecord(
            error, topic: message.topic, partition: Int(message.partition), offset: message.offset,
            timestamp: message.timestamp.map { SagaTimestamp(millisecondsSinceEpoch: $0) }, key: message.key,
            headers: headers, value: message.value)
        return outgoing(record, key: message.key)
    }

    func deadLetter(refused input: EngineInput, error: any Error) -> KafkaOutgoingMessage {
        let origin = input.origin
        let record = DeadLetterRecord(
            reason: "could not be applied: \(error)", type: nil, field: nil, topic: origin?.topic ?? "",
            partition: Int(origin?.partition ?? -1), offset: origin?.offset ?? -1,
            key: input.sagaID.map { Array($0.utf8) },
            headers: [:], value: Array(Self.describe(input.request).utf8))
        return outgoing(record, key: input.sagaID.map { Array($0.utf8) })
    }

    func outgoing(_ record: DeadLetterRecord, key: [UInt8]?) -> KafkaOutgoingMessage {
        let wire = SagaWire.encode(
            record, id: UUID().uuidString.lowercased(), source: settings.source, time: .now, key: nil)
        return KafkaOutgoingMessage(
            topic: settings.topics.deadLetter, key: key, value: Array(wire.value.utf8),
            headers: wire.headers.sorted { $0.key < $1.key }.map { KafkaHeader(name: $0.key, string: $0.value) })
    }

    /// The request as its JSON document, for a dead-letter record.
    static func describe(_ request: EngineInput.Request) -> String {
        switch request {
        case .start(let body): return body.json.jsonText
        case .cancel(let body): return body.json.jsonText
        case .signal(let body): return body.json.jsonText
        case .reply(let body): return body.json.jsonText
        case .operatorCommand(let id, let event): return #"{"sagaId":"\#(id)","operator":"\#(event)"}"#
        }
    }

    /// A message's headers by name (the last of a repeated name wins; a header without a value
    /// reads as empty).
    static func headers(of message: KafkaMessage) -> [String: String] {
        var headers: [String: String] = [:]
        for header in message.headers { headers[header.name] = header.stringValue ?? "" }
        return headers
    }

    /// Carries the plan out of the store's closure.
    final class PlanBox: @unchecked Sendable {
        var plan: BatchPlan?
    }
}

/// What one inbound batch did.
public struct InboundBatchReport: Sendable {
    public var messages: Int
    public var deadLettered: Int
    public var duplicates = 0
    public var sagasWritten = 0
    public var outboxRows = 0
    public var notes: [PlanNote] = []
    public var started: [String: Int] = [:]
    public var finished: [(sagaType: String, status: SagaStatus, milliseconds: Int64)] = []
    public var stepsCompleted: [(sagaType: String, step: String, milliseconds: Int64)] = []
}

extension SagaTimestamp {
    /// The wall clock's time now.
    public static var now: SagaTimestamp {
        SagaTimestamp(millisecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }
}
