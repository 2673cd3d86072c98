import Configuration
import Foundation
import Kafka
import SagaCore
import SagaEngine
import SagaProtocol
import SagaStore
import SystemPackage

/// Everything sagad reads at start, from (highest first) command-line flags, environment
/// variables and the config file (`--config FILE` or `SAGAD_CONFIG`, YAML or JSON). A key
/// `kafka.bootstrapServers` is the flag `--kafka-bootstrap-servers`, the environment variable
/// `KAFKA_BOOTSTRAP_SERVERS` and, in the file, `kafka: {bootstrapServers: …}`.
struct SagadConfiguration: Sendable {
    var kafkaBootstrapServers: [String]
    var kafkaClient: KafkaClientConfiguration
    var consumerGroup: String
    var postgres: SagaStoreConfiguration
    var migrate: Bool
    var settings: EngineSettings
    var definitionsDirectory: String
    var inboundBatchSize: Int
    var outboxBatchSize: Int
    var outboxPollInterval: Duration
    var timerBatchSize: Int
    var timerPollInterval: Duration
    var metricsInterval: Duration
    var httpHost: String
    var httpPort: Int
    var logFormat: String
    var logLevel: String

    /// A configuration that cannot be used: the key and why.
    struct Invalid: Error, CustomStringConvertible {
        var key: String
        var reason: String
        var description: String { "configuration \(key): \(reason)" }
    }

    static func load(arguments: [String] = CommandLine.arguments) async throws -> SagadConfiguration {
        var providers: [any ConfigProvider] = [
            CommandLineArgumentsProvider(
                arguments: arguments, secretsSpecifier: .dynamic { key, _ in key.contains("password") }),
            EnvironmentVariablesProvider(secretsSpecifier: .dynamic { key, _ in key.contains("PASSWORD") }),
        ]
        let early = ConfigReader(providers: providers)
        if let file = early.string(forKey: "config") ?? early.string(forKey: "sagad.config") {
            if file.hasSuffix(".json") {
                providers.append(try await FileProvider<JSONSnapshot>(filePath: .init(file)))
            } else {
                providers.append(try await FileProvider<YAMLSnapshot>(filePath: .init(file)))
            }
        }
        return try SagadConfiguration(ConfigReader(providers: providers))
    }

    init(_ config: ConfigReader) throws {
        let servers = config.string(forKey: "kafka.bootstrapServers", default: "localhost:9092")
        kafkaBootstrapServers = servers.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        var client = KafkaClientConfiguration(bootstrapServers: kafkaBootstrapServers)
        client.clientID = config.string(forKey: "kafka.clientId", default: "sagad")
        let security = config.string(forKey: "kafka.securityProtocol", default: "plaintext")
        guard let securityProtocol = KafkaClientConfiguration.SecurityProtocol(rawValue: security) else {
            let allowed = KafkaClientConfiguration.SecurityProtocol.allCases.map(\.rawValue).joined(separator: ", ")
            throw Invalid(key: "kafka.securityProtocol", reason: "expected one of \(allowed), found \(security)")
        }
        client.securityProtocol = securityProtocol
        client.saslMechanism = config.string(forKey: "kafka.saslMechanism")
        client.saslUsername = config.string(forKey: "kafka.saslUsername")
        client.saslPassword = config.string(forKey: "kafka.saslPassword", isSecret: true)
        client.sslCALocation = config.string(forKey: "kafka.sslCaLocation")
        client.sslCertificateLocation = config.string(forKey: "kafka.sslCertificateLocation")
        client.sslKeyLocation = config.string(forKey: "kafka.sslKeyLocation")
        kafkaClient = client
        consumerGroup = config.string(forKey: "kafka.group", default: "sagad")

        let url = config.string(forKey: "postgres.url", isSecret: true) ?? "postgres://postgres@localhost:5432/saga"
        do {
            postgres = try SagaStoreConfiguration(url: url)
        } catch {
            throw Invalid(key: "postgres.url", reason: "\(error)")
        }
        if let tls = config.string(forKey: "postgres.tls") {
            switch tls {
            case "disable": postgres.tlsMode = .disable
            case "prefer": postgres.tlsMode = .prefer
            case "require": postgres.tlsMode = .require
            default: throw Invalid(key: "postgres.tls", reason: "expected disable, prefer or require, found \(tls)")
            }
        }
        postgres.maximumConnections = try Self.positive(config, "postgres.connections", default: 20)
        // Every outbox message must fit what the producer (and a broker with default settings)
        // takes: 1,000,000 bytes with the record's overhead.
        postgres.maximumMessageBytes = min(postgres.maximumMessageBytes, 900_000)
        postgres.outboxLanes = try Self.positive(config, "outbox.lanes", default: postgres.outboxLanes)
        migrate = config.bool(forKey: "postgres.migrate", default: true)

        var settings = EngineSettings()
        settings.source = config.string(forKey: "source", default: settings.source)
        settings.topics.requests = config.string(forKey: "topics.requests", default: settings.topics.requests)
        settings.topics.signals = config.string(forKey: "topics.signals", default: settings.topics.signals)
        settings.topics.replies = config.string(forKey: "topics.replies", default: settings.topics.replies)
        settings.topics.events = config.string(forKey: "topics.events", default: settings.topics.events)
        settings.topics.deadLetter = config.string(forKey: "topics.deadLetter", default: settings.topics.deadLetter)
        settings.topics.participantPrefix = config.string(
            forKey: "topics.participantPrefix", default: settings.topics.participantPrefix)
        let signalHours = try Self.positive(config, "signals.pendingHours", default: 24)
        settings.pendingSignalLifetime = .hours(Int64(signalHours))
        self.settings = settings

        definitionsDirectory = config.string(forKey: "definitions.directory", default: "definitions")
        inboundBatchSize = try Self.positive(config, "inbound.batchSize", default: 500)
        outboxBatchSize = try Self.positive(config, "outbox.batchSize", default: 1000)
        outboxPollInterval = .milliseconds(try Self.positive(config, "outbox.pollIntervalMs", default: 1000))
        timerBatchSize = try Self.positive(config, "timers.batchSize", default: 500)
        timerPollInterval = .milliseconds(try Self.positive(config, "timers.pollIntervalMs", default: 250))
        metricsInterval = .milliseconds(try Self.positive(config, "metrics.intervalMs", default: 15_000))
        httpHost = config.string(forKey: "http.host", default: "0.0.0.0")
        httpPort = config.int(forKey: "http.port", default: 8080)
        guard (0...65535).contains(httpPort) else { throw Invalid(key: "http.port", reason: "out of range") }
        logFormat = config.string(forKey: "log.format", default: "text")
        guard ["text", "json"].contains(logFormat) else {
            throw Invalid(key: "log.format", reason: "expected text or json, found \(logFormat)")
        }
        logLevel = config.string(forKey: "log.level", default: "info")
    }

    private static func positive(_ config: ConfigReader, _ key: ConfigKey, default value: Int) throws -> Int {
        let read = config.int(forKey: key, default: value)
        guard read > 0 else { throw Invalid(key: "\(key)", reason: "must be more than 0, found \(read)") }
        return read
    }
}
