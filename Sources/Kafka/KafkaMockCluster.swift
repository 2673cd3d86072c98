import CRdKafka
import Logging

/// librdkafka's built-in mock Kafka cluster: brokers on random loopback ports, in this process,
/// with fault injection. For tests and local development; it keeps only a few MiB per partition.
///
/// ```swift
/// let cluster = try KafkaMockCluster(brokers: 3, logger: logger)
/// try cluster.createTopic("orders", partitions: 8)
/// let producer = try KafkaProducer(configuration: .init(bootstrapServers: [cluster.bootstrapServers]), logger: logger)
/// cluster.setBrokerDown(1)
/// ```
public final class KafkaMockCluster: @unchecked Sendable {
    private let handle: RdKafkaHandle
    private let cluster: OpaquePointer
    /// `host:port,host:port,…` of the mock brokers.
    public let bootstrapServers: String
    /// The broker ids, from 1.
    public let brokerIDs: [Int32]

    /// Starts a cluster of `brokers` brokers.
    public init(brokers: Int = 3, logger: Logger) throws(KafkaError) {
        let handle = try RdKafkaHandle(type: RD_KAFKA_PRODUCER, properties: [:], events: 0, logger: logger)
        guard let cluster = rd_kafka_mock_cluster_new(handle.pointer, Int32(brokers)) else {
            Task.detached { await handle.stop() }
            throw KafkaError.configuration("the mock cluster did not start")
        }
        self.handle = handle
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        brokerIDs = (1...Int32(brokers)).map { $0 }
        handle.start { _ in }
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        let handle = self.handle
        Task.detached { await handle.stop() }
    }

    /// Creates a topic (the mock cluster has no CreateTopics API of its own).
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) {
        let code = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor))
        if code != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code) }
    }

    /// Takes a broker down: its connections close and it accepts none.
    public func setBrokerDown(_ broker: Int32) {
        _ = rd_kafka_mock_broker_set_down(cluster, broker)
    }

    /// Brings a broker back up.
    public func setBrokerUp(_ broker: Int32) {
        _ = rd_kafka_mock_broker_set_up(cluster, broker)
    }

    /// Adds `milliseconds` to every round trip to `broker`.
    public func setRoundTripTime(broker: Int32, milliseconds: Int) {
        _ = rd_kafka_mock_broker_set_rtt(cluster, broker, Int32(milliseconds))
    }

    /// Makes the next requests of Kafka API `apiKey` (0 Produce, 1 Fetch, 3 Metadata, 8 OffsetCommit,
    /// 10 FindCoordinator, 22 InitProducerId, …) fail with `errors`, one each, in order.
    public func pushRequestErrors(apiKey: Int16, errors: [Int32]) {
        var codes = errors.map { rd_kafka_resp_err_t($0) }
        codes.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_mock_push_request_errors_array(cluster, apiKey, buffer.count, buffer.baseAddress)
        }
    }

    /// Drops the errors still queued for `apiKey`.
    public func clearRequestErrors(apiKey: Int16) {
        rd_kafka_mock_clear_request_errors(cluster, apiKey)
    }

    /// Moves the leadership of a partition to `broker` (-1: no leader).
    public func setPartitionLeader(topic: String, partition: Int32, broker: Int32) {
        _ = rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker)
    }

    /// Makes `broker` the coordinator of consumer group `group`.
    public func setGroupCoordinator(group: String, broker: Int32) {
        _ = rd_kafka_mock_coordinator_set(cluster, "group", group, broker)
    }

    /// Makes `broker` the coordinator of transactional id `id`.
    public func setTransactionCoordinator(id: String, broker: Int32) {
        _ = rd_kafka_mock_coordinator_set(cluster, "transaction", id, broker)
    }
}

/// The librdkafka this process runs with.
public enum KafkaLibrary {
    /// E.g. `2.0.2`.
    public static var version: String { String(cString: rd_kafka_version_str()) }

    /// The version as librdkafka encodes it: `0xMMmmrrpp`.
    public static var versionNumber: Int { Int(rd_kafka_version()) }

    /// Whether the version is at least `major.minor`.
    public static func isAtLeast(major: Int, minor: Int) -> Bool {
        versionNumber >= (major << 24 | minor << 16)
    }
}
