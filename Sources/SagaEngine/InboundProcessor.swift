import Foundation
import Kafka
import Logging
import SagaCore
import SagaProtocol
import SagaStore
import Synchronization

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
        let stopping = StopFlag()
        for await batch in consumer.batches(maximumCount: batchSize) {
            // Shielded from cancellation: a stop finishes the batch in hand (apply, then commit).
            // Only waits that could last (a database that cannot be reached, a dead letter that
            // cannot be sent) give up when a stop is asked for; the batch is then not committed,
            // and comes again.
            let task = Task { try await process(batch, stopping: stopping) }
            try await withTaskCancellationHandler {
                try await task.value
            } onCancel: {
                stopping.set()
            }
            if Task.isCancelled { break }
        }
    }

    /// Set when a stop was asked for.
    final class StopFlag: Sendable {
        private let flag = Atomic(false)
        func set() { flag.store(true, ordering: .relaxed) }
        var isSet: Bool { flag.load(ordering: .relaxed) }

        /// Sleeps `pause` unless a stop was asked for; throws `CancellationError` if it was.
        func pause(_ pause: Duration) async throws {
            guard !isSet else { throw CancellationError() }
            try await Task.sleep(for: pause)
            guard !isSet else { throw CancellationError() }
        }
    }

    /// Decodes, applies and commits one batch.
    func process(_ batch: [KafkaMessage], stopping: StopFlag = StopFlag()) async throws {
        var inputs: [EngineInput] = []
        var deadLetters: [KafkaOutgoingMessage] = []
        inputs.reserveCapacity(batch.count)
        for message in batch {
            let headers = message.headersByName
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
        if !deadLetters.isEmpty { try await sendDeadLetters(deadLetters, stopping: stopping) }
        var report = InboundBatchReport(messages: batch.count, deadLettered: deadLetters.count)
        if !inputs.isEmpty { try await apply(inputs, report: &report, stopping: stopping) }
        if !report.unapplied.isEmpty {
            for (input, reason) in report.unapplied {
                logger.error(
                    "message not applied",
                    metadata: ["kafka.origin": "\(input.origin.map(\.description) ?? "-")", "reason": "\(reason)"])
            }
            try await sendDeadLetters(
                report.unapplied.map {
                    deadLetter(refused: $0.input, reason: $0.reason + "; send it again with a new ce_id once it is")
                },
                stopping: stopping)
            report.deadLettered += report.unapplied.count
        }
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

    /// Applies `inputs` in one transaction, trying again while the database cannot take it (down,
    /// read-only, out of space: anything but the input's own fault). A batch refused because of
    /// its input is applied one input at a time, and an input refused alone goes to the
    /// dead-letter topic with the reason.
    func apply(_ inputs: [EngineInput], report: inout InboundBatchReport, stopping: StopFlag) async throws {
        do {
            try await applyRetrying(inputs, report: &report, stopping: stopping)
        } catch let error as SagaStoreError where error.isCausedByInput && inputs.count > 1 {
            logger.warning(
                "batch refused; applying its messages one by one",
                metadata: ["error.message": "\(error)", "batch.size": "\(inputs.count)"])
            for input in inputs {
                try await apply([input], report: &report, stopping: stopping)
            }
        } catch let error as SagaStoreError where error.isCausedByInput {
            let input = inputs[0]
            logger.error(
                "message could not be applied",
                metadata: ["kafka.origin": "\(input.origin.map(\.description) ?? "-")", "error.message": "\(error)"])
            try await sendDeadLetters([deadLetter(refused: input, error: error)], stopping: stopping)
            report.deadLettered += 1
        }
    }

    func applyRetrying(_ inputs: [EngineInput], report: inout InboundBatchReport, stopping: StopFlag) async throws {
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
                    report.unapplied += plan.unapplied
                    for note in plan.notes { logger.notice("\(note.kind.rawValue)", metadata: ["detail": "\(note)"]) }
                    Self.log(plan.events, logger)
                }
                return
            } catch let error as SagaStoreError where !error.isCausedByInput {
                logger.warning(
                    "batch not applied; trying again",
                    metadata: ["error.message": "\(error)", "retry.pause": "\(pause)"])
                try await stopping.pause(pause)
                pause = min(pause * 2, .seconds(10))
            }
        }
    }

    func sendDeadLetters(_ messages: [KafkaOutgoingMessage], stopping: StopFlag) async throws {
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
            try await stopping.pause(pause)
            pause = min(pause * 2, .seconds(10))
        }
    }

    /// The most bytes of the original value a dead-letter record keeps: the record must stay
    /// under the producer's (and the broker's) message size limit, about 1 MB by default.
    static let deadLetterValueLimit = 256 * 1024

    /// `value`, cut to ``deadLetterValueLimit``, and the note that says so.
    static func kept(_ value: [UInt8]?) -> (value: [UInt8]?, note: String) {
        guard let value, value.count > deadLetterValueLimit else { return (value, "") }
        let note = " (the value is cut to its first \(deadLetterValueLimit) of \(value.count) bytes)"
        return (Array(value.prefix(deadLetterValueLimit)), note)
    }

    func deadLetter(_ error: WireError, message: KafkaMessage, headers: [String: String]) -> KafkaOutgoingMessage {
        let (value, note) = Self.kept(message.value)
        var record = DeadLetterRecord(
            error, topic: message.topic, partition: Int(message.partition), offset: message.offset,
            timestamp: message.timestamp.map { SagaTimestamp(millisecondsSinceEpoch: $0) }, key: message.key,
            headers: headers, value: value)
        record.reason += note
        return outgoing(record, key: message.key)
    }

    func deadLetter(refused input: EngineInput, error: any Error) -> KafkaOutgoingMessage {
        deadLetter(refused: input, reason: "could not be applied: \(error)")
    }

    func deadLetter(refused input: EngineInput, reason: String) -> KafkaOutgoingMessage {
        let origin = input.origin
        let (value, note) = Self.kept(Array(Self.describe(input.request).utf8))
        let record = DeadLetterRecord(
            reason: reason + note, type: nil, field: nil, topic: origin?.topic ?? "",
            partition: Int(origin?.partition ?? -1), offset: origin?.offset ?? -1,
            key: input.sagaID.map { Array($0.utf8) },
            headers: [:], value: value)
        return outgoing(record, key: input.sagaID.map { Array($0.utf8) })
    }

    func outgoing(_ record: DeadLetterRecord, key: [UInt8]?) -> KafkaOutgoingMessage {
        let wire = SagaWire.encode(
            record, id: UUID().uuidString.lowercased(), source: settings.source, time: .now, key: nil)
        return KafkaOutgoingMessage(
            topic: settings.topics.deadLetter, key: key, value: Array(wire.value.utf8),
            headers: KafkaHeader.headers(wire.headers))
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

    /// Logs what a committed batch published, with the saga id, type, step and attempt as
    /// metadata: a saga's start and end at `info`, everything else at `debug`.
    static func log(_ events: [SagaEventMessage], _ logger: Logger) {
        for event in events {
            let level: Logger.Level
            switch event.event {
            case "saga.started", "saga.completed", "saga.compensated", "saga.cancelled", "saga.aborted", "saga.failed",
                "saga.compensating":
                level = .info
            default:
                level = .debug
            }
            guard logger.logLevel <= level else { continue }
            var metadata: Logger.Metadata = ["saga.type": "\(event.sagaType)"]
            if let id = event.sagaID { metadata["saga.id"] = "\(id)" }
            if let step = event.step { metadata["saga.step"] = "\(step)" }
            if let attempt = event.attempt { metadata["saga.attempt"] = "\(attempt)" }
            if let reason = event.reason { metadata["saga.reason"] = "\(reason)" }
            if let error = event.error { metadata["error.type"] = "\(error.code)" }
            logger.log(level: level, "\(event.event)", metadata: metadata)
        }
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
    /// Inputs not applied (their saga's definition is not loaded), sent to the dead-letter topic.
    public var unapplied: [(input: EngineInput, reason: String)] = []
}

extension SagaTimestamp {
    /// The wall clock's time now.
    public static var now: SagaTimestamp {
        SagaTimestamp(millisecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }
}
