import Foundation
import Hummingbird
import Kafka
import Logging
import Metrics
import Prometheus
import SagaCore
import SagaDefinitions
import SagaEngine
import SagaStore
import ServiceLifecycle
import Synchronization
import UnixSignals

/// sagad: the saga orchestrator. Kafka in, PostgreSQL state, Kafka out.
///
/// Starts by reading its configuration and every definition (a bad one stops it, naming the file,
/// step and field), migrates the database, then runs the engine, the metrics and the health
/// endpoints until SIGTERM or SIGINT: it then stops reading, finishes the batch in hand, commits,
/// flushes the producer and exits 0.
@main
struct Sagad {
    static func main() async {
        let configuration: SagadConfiguration
        do {
            configuration = try await SagadConfiguration.load()
        } catch {
            fail("sagad: \(error)")
        }
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        let json = configuration.logFormat == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                json ? JSONLogHandler(label: label) : StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sagad")

        let definitions: DefinitionRegistry
        do {
            let loaded = try DefinitionLoader.loadDirectory(URL(fileURLWithPath: configuration.definitionsDirectory))
            for definition in loaded {
                for warning in definition.warnings {
                    logger.warning(
                        "definition warning",
                        metadata: ["saga.type": "\(definition.definition.name)", "warning": "\(warning)"])
                }
            }
            guard !loaded.isEmpty else {
                fail("sagad: no saga definition in \(configuration.definitionsDirectory)")
            }
            definitions = DefinitionRegistry(loaded.map(\.definition))
            logger.info(
                "definitions loaded",
                metadata: ["definitions": "\(loaded.map { "\($0.definition.name)@\($0.definition.version)" })"])
        } catch {
            fail("sagad: \(error)")
        }

        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        let producer: KafkaProducer
        let consumer: KafkaConsumer
        do {
            var producerConfiguration = KafkaProducerConfiguration(
                bootstrapServers: configuration.kafkaBootstrapServers)
            producerConfiguration.client = configuration.kafkaClient
            producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
            var consumerConfiguration = KafkaConsumerConfiguration(
                bootstrapServers: configuration.kafkaBootstrapServers, groupID: configuration.consumerGroup)
            consumerConfiguration.client = configuration.kafkaClient
            consumerConfiguration.maximumBufferedMessages = min(512, configuration.inboundBatchSize)
            consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: logger)
        } catch {
            fail("sagad: \(error)")
        }

        let store = SagaStore(configuration: configuration.postgres, logger: logger)
        let metrics = EngineMetrics()
        var engine = SagaEngine(
            store: store, consumer: consumer, producer: producer, definitions: definitions,
            settings: configuration.settings, outboxLanes: configuration.postgres.outboxLanes, logger: logger)
        engine.inbound.batchSize = configuration.inboundBatchSize
        engine.inbound.onBatch = { metrics.record($0) }
        engine.relay.batchSize = configuration.outboxBatchSize
        engine.relay.pollInterval = configuration.outboxPollInterval
        engine.relay.onRound = { read, published in metrics.recordRelay(read: read, published: published) }
        engine.timers.batchSize = configuration.timerBatchSize
        engine.timers.pollInterval = configuration.timerPollInterval
        engine.timers.onBatch = { fired, plan in metrics.recordTimers(fired: fired, plan: plan) }

        let health = Health()
        let router = Router()
        router.get("/health/live") { _, _ in "ok\n" }
        router.get("/health/ready") { _, _ -> Response in
            let ready = health.isReady
            return Response(
                status: ready ? .ok : .serviceUnavailable,
                body: .init(byteBuffer: ByteBuffer(string: ready ? "ready\n" : "not ready\n")))
        }
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        let http = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort)),
            logger: logger)

        let services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(
                service: ClosureService { await cancelWhenGracefulShutdown { await store.run() } }, serviceName: "store"
            ),
            .init(
                service: EngineService(
                    engine: engine, store: store, consumer: consumer, producer: producer,
                    migrate: configuration.migrate, health: health, logger: logger),
                serviceName: "engine"),
            .init(
                service: ClosureService {
                    await cancelWhenGracefulShutdown {
                        await metrics.sample(
                            store: store, consumer: consumer, producer: producer, every: configuration.metricsInterval,
                            health: health)
                    }
                },
                serviceName: "metrics"),
            .init(service: http, serviceName: "http"),
        ]
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
            logger.info("stopped")
        } catch {
            logger.critical("stopped on an error", metadata: ["error.message": "\(error)"])
            exit(1)
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(78)  // EX_CONFIG
    }
}

/// The engine as a service: migrates, runs until a graceful shutdown, then stops reading (the
/// batch in hand is finished and committed), leaves the consumer group and flushes the producer.
struct EngineService: Service {
    let engine: SagaEngine
    let store: SagaStore
    let consumer: KafkaConsumer
    let producer: KafkaProducer
    let migrate: Bool
    let health: Health
    let logger: Logger

    func run() async throws {
        if migrate {
            let (store, logger) = (self.store, self.logger)
            try await cancelWhenGracefulShutdown {
                var pause = Duration.milliseconds(200)
                while true {
                    do {
                        let applied = try await store.migrate()
                        if !applied.isEmpty {
                            logger.info("database migrated", metadata: ["migrations": "\(applied)"])
                        }
                        return
                    } catch let error as SagaStoreError where !error.isCausedByInput {
                        logger.warning(
                            "database not ready; trying again", metadata: ["error.message": "\(error)"])
                        try await Task.sleep(for: pause)
                        pause = min(pause * 2, .seconds(5))
                    }
                }
            }
        }
        health.setEngineRunning(true)
        logger.info("engine started")
        defer { health.setEngineRunning(false) }
        do {
            try await cancelWhenGracefulShutdown { try await engine.run() }
        } catch is CancellationError {
        }
        logger.info("engine stopping: leaving the group, flushing the producer")
        await consumer.close()
        await producer.close()
    }
}

/// What `/health/ready` answers: ready while the engine runs, the database answers and the
/// producer has no fatal error.
final class Health: Sendable {
    private let state = Mutex((engine: false, database: false, producer: true))

    var isReady: Bool { state.withLock { $0.engine && $0.database && $0.producer } }

    func setEngineRunning(_ running: Bool) { state.withLock { $0.engine = running } }
    func setDatabase(_ reachable: Bool) { state.withLock { $0.database = reachable } }
    func setProducer(_ healthy: Bool) { state.withLock { $0.producer = healthy } }
}
