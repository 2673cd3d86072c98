import Kafka
import Logging
import SagaCore
import SagaStore

/// The orchestrator's services over one store and one producer: the ``InboundProcessor``
/// (requests, signals and replies in), the ``OutboxRelay`` (commands and events out), the
/// ``TimerService`` and ``Housekeeping``. ``run()`` runs them until the task is cancelled; the inbound processor
/// finishes the batch in hand first.
public struct SagaEngine: Sendable {
    public var inbound: InboundProcessor
    public var relay: OutboxRelay
    public var timers: TimerService
    public var housekeeping: Housekeeping

    public init(inbound: InboundProcessor, relay: OutboxRelay, timers: TimerService, housekeeping: Housekeeping) {
        self.inbound = inbound
        self.relay = relay
        self.timers = timers
        self.housekeeping = housekeeping
    }

    /// The three services with their defaults, reading with `consumer` and sending with `producer`.
    public init(
        store: SagaStore, consumer: KafkaConsumer, producer: KafkaProducer, definitions: DefinitionRegistry,
        settings: EngineSettings, outboxLanes: Int, logger: Logger
    ) {
        self.init(
            inbound: InboundProcessor(
                consumer: consumer, producer: producer, store: store, definitions: definitions, settings: settings,
                logger: logger),
            relay: OutboxRelay(store: store, producer: producer, lanes: outboxLanes, logger: logger),
            timers: TimerService(store: store, definitions: definitions, settings: settings, logger: logger),
            housekeeping: Housekeeping(store: store, settings: settings, logger: logger))
    }

    /// Runs the services until the task is cancelled, or until the inbound processor ends (its
    /// consumer closed, or failed: then the error is thrown).
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await inbound.run() }
            group.addTask { await relay.run() }
            group.addTask { await timers.run() }
            group.addTask { await housekeeping.run() }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}
