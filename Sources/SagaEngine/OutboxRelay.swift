import Foundation
import Kafka
import Logging
import SagaCore
import SagaProtocol
import SagaStore

/// Publishes the outbox: the messages every batch wrote beside the states they follow (step
/// commands, lifecycle events), with the idempotent producer, in order per saga, and deletes them
/// once the broker acknowledged them. Woken by the store's notification after each batch that
/// wrote rows (`LISTEN saga_outbox`), and polls every `pollInterval` as well, so a lost
/// notification or a listener that lost its connection delays a message by one interval at most.
///
/// Any number of relays may run (one per instance): each round takes only lanes no other relay
/// holds. A row the broker did not acknowledge stays, and so do the later rows of its saga in that
/// round: they go again, in order, in the next round (participants deduplicate by idempotency key,
/// the engine by message id, so a repeat is harmless).
public struct OutboxRelay: Sendable {
    public let store: SagaStore
    public let producer: KafkaProducer
    /// The store's number of lanes (``SagaStoreConfiguration/outboxLanes``).
    public var lanes: Int
    /// The most rows published in one round.
    public var batchSize: Int
    public var pollInterval: Duration
    public let logger: Logger
    /// Called after each round that read rows: rows read, rows published.
    public var onRound: @Sendable (_ read: Int, _ published: Int) -> Void = { _, _ in }

    public init(
        store: SagaStore, producer: KafkaProducer, lanes: Int, batchSize: Int = 1000,
        pollInterval: Duration = .seconds(1), logger: Logger
    ) {
        self.store = store
        self.producer = producer
        self.lanes = lanes
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.logger = logger
    }

    /// Publishes until the task is cancelled.
    public func run() async {
        let (wakeUps, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await listen(wake) }
            group.addTask {
                // The poll: a wake-up every interval, whatever the notifications do.
                while !Task.isCancelled {
                    try? await Task.sleep(for: pollInterval)
                    wake.yield()
                }
            }
            await publishLoop(wakeUps)
            group.cancelAll()
        }
    }

    private func listen(_ wake: AsyncStream<Void>.Continuation) async {
        while !Task.isCancelled {
            do {
                try await store.listenForOutbox { wake.yield() }
            } catch {
                logger.warning(
                    "outbox notifications lost; polling until they are back", metadata: ["error.message": "\(error)"])
                try? await Task.sleep(for: pollInterval)
            }
        }
    }

    private func publishLoop(_ wakeUps: AsyncStream<Void>) async {
        let allLanes = Array(0..<max(1, lanes))
        var iterator = wakeUps.makeAsyncIterator()
        var pause = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                let (read, published) = try await round(allLanes)
                pause = .milliseconds(100)
                if read > 0 { onRound(read, published) }
                // A full round: more may wait; otherwise wait to be woken.
                if read >= batchSize && published == read { continue }
            } catch is CancellationError {
                return
            } catch {
                logger.warning(
                    "outbox round failed", metadata: ["error.message": "\(error)", "retry.pause": "\(pause)"])
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(10))
                continue
            }
            guard await iterator.next() != nil else { return }
        }
    }

    /// One round: the rows of the lanes this relay could take, published and deleted.
    func round(_ lanes: [Int]) async throws -> (read: Int, published: Int) {
        let producer = self.producer
        return try await store.relayOutbox(lanes: lanes, limit: batchSize) { rows in
            let messages = rows.map { row in
                KafkaOutgoingMessage(
                    topic: row.message.topic, key: row.message.key.map { Array($0.utf8) },
                    value: Array(row.message.payload.utf8),
                    headers: row.message.headers.sorted { $0.key < $1.key }.map {
                        KafkaHeader(name: $0.key, string: $0.value)
                    })
            }
            let reports = await producer.send(messages)
            var failedSagas = Set<String>()
            var published: [OutboxRow] = []
            published.reserveCapacity(rows.count)
            for (index, row) in rows.enumerated() {
                if case .failure(let error) = reports[index] {
                    if failedSagas.insert(row.sagaID).inserted {
                        logger.warning(
                            "outbox message not acknowledged; it goes again",
                            metadata: ["saga.id": "\(row.sagaID)", "error.message": "\(error)"])
                    }
                    continue
                }
                if !failedSagas.contains(row.sagaID) { published.append(row) }
            }
            return published
        }
    }
}

/// Fires due timers (attempt timeouts, retry backoff, signal timeouts, sleeps, deadlines) through
/// the same path as every other event: claimed with `FOR UPDATE SKIP LOCKED`, so any number of
/// instances share the work without a leader.
public struct TimerService: Sendable {
    public let store: SagaStore
    public let definitions: DefinitionRegistry
    public let settings: EngineSettings
    /// The most sagas whose timers fire in one transaction.
    public var batchSize: Int
    /// How often to look for due timers when the last look found none.
    public var pollInterval: Duration
    public let logger: Logger
    /// Called after each batch that fired timers.
    public var onBatch: @Sendable (_ fired: Int, _ plan: BatchPlan) -> Void = { _, _ in }
    /// Called for each saga parked.
    public var onPark: @Sendable (_ sagaID: String) -> Void = { _ in }

    public init(
        store: SagaStore, definitions: DefinitionRegistry, settings: EngineSettings, batchSize: Int = 500,
        pollInterval: Duration = .milliseconds(250), logger: Logger
    ) {
        self.store = store
        self.definitions = definitions
        self.settings = settings
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.logger = logger
    }

    /// Fires timers until the task is cancelled.
    public func run() async {
        var pause = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                let fired = try await fireDue()
                pause = .milliseconds(100)
                if fired >= batchSize { continue }
            } catch is CancellationError {
                return
            } catch {
                logger.warning(
                    "timer round failed", metadata: ["error.message": "\(error)", "retry.pause": "\(pause)"])
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(10))
                continue
            }
            try? await Task.sleep(for: pollInterval)
        }
    }

    /// Fires the timers due now; returns how many timers fired.
    ///
    /// When the store refuses the batch because of what one of its sagas holds or would write
    /// (a state it cannot read, a command over the size limit), the due sagas are tried one at a
    /// time, and each one refused alone is parked (``SagaStore/park(_:reason:now:)``): its timers
    /// are no longer claimed until an operator resumes it, so the others go on firing.
    @discardableResult
    public func fireDue() async throws -> Int {
        do {
            return try await fire(only: nil)
        } catch let error as SagaStoreError where error.isCausedByInput {
            logger.warning(
                "timer batch refused; firing one saga at a time", metadata: ["error.message": "\(error)"])
            var fired = 0
            for id in try await store.dueSagaIDs(now: .now, limit: batchSize) {
                do {
                    fired += try await fire(only: [id])
                } catch let error as SagaStoreError where error.isCausedByInput {
                    try await store.park(id, reason: "its timers could not be applied: \(error)", now: .now)
                    logger.error("saga parked", metadata: ["saga.id": "\(id)", "error.message": "\(error)"])
                    onPark(id)
                }
            }
            return fired
        }
    }

    private func fire(only sagaIDs: [String]?) async throws -> Int {
        let planner = BatchPlanner(
            definitions: definitions, settings: settings, now: .now,
            makeID: { UUID().uuidString.lowercased() })
        let box = InboundProcessor.PlanBox()
        let outcome = try await store.applyDueTimers(
            now: planner.now, limit: sagaIDs?.count ?? batchSize, only: sagaIDs
        ) { context in
            let plan = planner.plan(context)
            box.plan = plan
            return plan.writes
        }
        if outcome.timersFired > 0, let plan = box.plan {
            InboundProcessor.log(plan.events, logger)
            onBatch(outcome.timersFired, plan)
        }
        return outcome.timersFired
    }
}

/// Housekeeping, every `interval`: signals that waited for a saga that never started expire (each
/// gets its `signal.expired` event), and inbox entries older than `inboxRetention` are deleted.
public struct Housekeeping: Sendable {
    public let store: SagaStore
    public let settings: EngineSettings
    /// How long a message id stays in the inbox: longer than a message can be redelivered (the
    /// input topics' retention). Default 7 days.
    public var inboxRetention: SagaDuration = .days(7)
    public var interval: Duration = .seconds(60)
    public let logger: Logger

    public init(store: SagaStore, settings: EngineSettings, logger: Logger) {
        self.store = store
        self.settings = settings
        self.logger = logger
    }

    /// Runs until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            do {
                try await runOnce()
            } catch is CancellationError {
                return
            } catch {
                logger.warning("housekeeping failed", metadata: ["error.message": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// One round; returns how many signals expired and how many inbox entries were deleted.
    @discardableResult
    public func runOnce() async throws -> (expiredSignals: Int, inboxEntries: Int) {
        let now = SagaTimestamp.now
        let expired = try await store.expirePendingSignals(now: now)
        if !expired.isEmpty {
            let events = expired.map { pending -> OutboxMessage in
                let outcome = SignalOutcome(
                    signalID: pending.signal.id, name: pending.signal.name, kind: .expired,
                    reason: "no saga started with this key before the signal's time ran out")
                var event = SagaEventMessage(outcome, sagaID: nil, sagaType: pending.target.sagaType, status: nil)
                event.idempotencyKey = pending.target.key
                let wire = SagaWire.encode(
                    event, id: UUID().uuidString.lowercased(), source: settings.source, time: now,
                    key: pending.target.key)
                return OutboxMessage(topic: settings.topics.events, wire)
            }
            try await store.applyBatch([EngineInput](), now: now) { _ in BatchWrites(outbox: events) }
        }
        var deleted = 0
        while true {
            let count = try await store.pruneInbox(
                receivedBefore: now + SagaDuration(milliseconds: -inboxRetention.milliseconds))
            deleted += count
            if count < 10_000 { break }
        }
        if !expired.isEmpty || deleted > 0 {
            logger.info(
                "housekeeping", metadata: ["signals.expired": "\(expired.count)", "inbox.deleted": "\(deleted)"])
        }
        return (expired.count, deleted)
    }
}
