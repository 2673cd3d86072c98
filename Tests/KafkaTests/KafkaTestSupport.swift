import Foundation
import Kafka
import Logging
import TestSupport
import Testing

/// Where the Kafka tests find a broker.
///
/// By default each test starts librdkafka's mock cluster in the process. With
/// `KAFKA_BOOTSTRAP_SERVERS` set (the interop run against Tansu), the tests use that broker and
/// create their topics through the admin API; tests of fault injection need the mock cluster and
/// run only without it.
enum KafkaTestEnvironment {
    static let externalBootstrap: String? = {
        let value = ProcessInfo.processInfo.environment["KAFKA_BOOTSTRAP_SERVERS"] ?? ""
        return value.isEmpty ? nil : value
    }()

    static var usesMockCluster: Bool { externalBootstrap == nil }

    static let logger: Logger = {
        var logger = Logger(label: "kafka-tests")
        logger.logLevel = ProcessInfo.processInfo.environment["KAFKA_TEST_LOG"] != nil ? .debug : .warning
        return logger
    }()

    /// A name no other test uses.
    static func unique(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// A broker for one test: the mock cluster (with its fault injection) or the external broker.
final class TestBroker: Sendable {
    let mock: KafkaMockCluster?
    let bootstrapServers: String

    init(brokers: Int = 3) throws {
        if let external = KafkaTestEnvironment.externalBootstrap {
            mock = nil
            bootstrapServers = external
        } else {
            let cluster = try KafkaMockCluster(brokers: brokers, logger: KafkaTestEnvironment.logger)
            mock = cluster
            bootstrapServers = cluster.bootstrapServers
        }
    }

    /// The mock cluster, for tests of fault injection.
    func requireMock(sourceLocation: SourceLocation = #_sourceLocation) throws -> KafkaMockCluster {
        try #require(mock, "this test injects faults and needs the mock cluster", sourceLocation: sourceLocation)
    }

    /// Creates a topic with a unique name and returns the name.
    func topic(_ prefix: String = "topic", partitions: Int) async throws -> String {
        let name = KafkaTestEnvironment.unique(prefix)
        if let mock {
            try mock.createTopic(name, partitions: partitions)
        } else {
            let admin = try KafkaAdmin(
                configuration: KafkaClientConfiguration(bootstrapServers: [bootstrapServers]),
                logger: KafkaTestEnvironment.logger)
            try await admin.createTopics([KafkaTopicSpecification(name: name, partitions: partitions)])
            await admin.close()
        }
        return name
    }

    func producer(_ configure: (inout KafkaProducerConfiguration) -> Void = { _ in }) throws -> KafkaProducer {
        var configuration = KafkaProducerConfiguration(bootstrapServers: [bootstrapServers])
        configuration.messageTimeoutMilliseconds = 20_000
        configure(&configuration)
        return try KafkaProducer(configuration: configuration, logger: KafkaTestEnvironment.logger)
    }

    func consumer(group: String, _ configure: (inout KafkaConsumerConfiguration) -> Void = { _ in }) throws
        -> KafkaConsumer
    {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: [bootstrapServers], groupID: group)
        configuration.sessionTimeoutMilliseconds = 6_000
        configuration.heartbeatIntervalMilliseconds = 500
        configure(&configuration)
        return try KafkaConsumer(configuration: configuration, logger: KafkaTestEnvironment.logger)
    }
}

/// Collects messages from `consumer` until `count` arrived, within `timeout`.
func collect(_ count: Int, from consumer: KafkaConsumer, timeout: Duration = .seconds(60)) async throws
    -> [KafkaMessage]
{
    try await withDeadline(timeout, "\(count) messages") {
        var messages: [KafkaMessage] = []
        for await message in consumer.messages {
            messages.append(message)
            if messages.count == count { break }
        }
        return messages
    }
}

/// Sends `count` messages, keys `key-<i % keys>`, values `value-<i>`, each with two headers.
func sendNumbered(_ count: Int, to topic: String, keys: Int = 16, with producer: KafkaProducer) async throws
    -> [KafkaDeliveryReport]
{
    try await withThrowingTaskGroup(of: KafkaDeliveryReport.self) { group in
        for index in 0..<count {
            group.addTask {
                try await producer.send(
                    KafkaOutgoingMessage(
                        topic: topic, key: "key-\(index % keys)", value: "value-\(index)",
                        headers: [
                            KafkaHeader(name: "ce_id", string: "id-\(index)"),
                            KafkaHeader(name: "ce_type", string: "test.numbered"),
                        ]))
            }
        }
        var reports: [KafkaDeliveryReport] = []
        for try await report in group { reports.append(report) }
        return reports
    }
}

/// Waits until `producer` holds messages that a flush can no longer deliver (its broker down).
func waitUntilStuck(_ producer: KafkaProducer) async throws {
    try await eventually("messages the producer cannot deliver") {
        do {
            try await producer.flush(timeout: .milliseconds(10))
            return false
        } catch {
            return true
        }
    }
}
