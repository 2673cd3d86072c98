import CRdKafka
import Logging

/// A topic to create.
public struct KafkaTopicSpecification: Sendable, Hashable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    /// Topic settings, e.g. `["retention.ms": "604800000"]`.
    public var settings: [String: String]

    public init(name: String, partitions: Int, replicationFactor: Int = 1, settings: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.settings = settings
    }
}

/// What the cluster says about its brokers and topics.
public struct KafkaMetadata: Sendable, Hashable {
    public struct Broker: Sendable, Hashable {
        public var id: Int32
        public var host: String
        public var port: Int
    }

    public struct Partition: Sendable, Hashable {
        public var id: Int32
        /// The leader's broker id; -1 when there is none.
        public var leader: Int32
        public var replicas: [Int32]
        public var inSyncReplicas: [Int32]
    }

    public struct Topic: Sendable, Hashable {
        public var name: String
        public var partitions: [Partition]
        /// An error the broker reported for the topic, e.g. unknown topic.
        public var error: KafkaError?
    }

    public var brokers: [Broker]
    public var topics: [Topic]

    /// The topic named `name`, when the cluster knows it.
    public func topic(_ name: String) -> Topic? { topics.first { $0.name == name && $0.error == nil } }
}

/// Creates topics and reads cluster metadata.
public final class KafkaAdmin: Sendable {
    private let handle: RdKafkaHandle

    public init(configuration: KafkaClientConfiguration, logger: Logger) throws(KafkaError) {
        var properties = configuration.librdkafkaProperties
        properties.merge(configuration.properties) { _, explicit in explicit }
        handle = try RdKafkaHandle(type: RD_KAFKA_PRODUCER, properties: properties, events: 0, logger: logger)
        handle.start { _ in }
    }

    deinit {
        let handle = self.handle
        Task.detached { await handle.stop() }
    }

    /// Stops and frees librdkafka's resources.
    public func close() async { await handle.stop() }

    /// Creates `topics`. A topic that exists already counts as created when `ignoreExisting`.
    ///
    /// - Throws: ``KafkaError`` for the first topic that could not be created.
    public func createTopics(
        _ topics: [KafkaTopicSpecification], ignoreExisting: Bool = true, timeout: Duration = .seconds(30)
    )
        async throws
    {
        let handle = self.handle
        let milliseconds = Int32(clamping: timeout.milliseconds)
        let result = await RdKafkaHandle.blocking { () -> KafkaError? in
            do throws(KafkaError) {
                return try handle.borrow { pointer in
                    Self.createTopics(
                        topics, ignoreExisting: ignoreExisting, milliseconds: milliseconds, client: pointer)
                }
            } catch {
                return error
            }
        }
        if let result { throw result }
    }

    /// CreateTopics, on the calling thread (which blocks until the answer or the timeout).
    private static func createTopics(
        _ topics: [KafkaTopicSpecification], ignoreExisting: Bool, milliseconds: Int32, client pointer: OpaquePointer
    ) -> KafkaError? {
        let client = SendablePointer(pointer: pointer)
        do {
            var message = [CChar](repeating: 0, count: 512)
            var newTopics: [OpaquePointer?] = []
            defer { for topic in newTopics { rd_kafka_NewTopic_destroy(topic) } }
            for topic in topics {
                guard
                    let newTopic = rd_kafka_NewTopic_new(
                        topic.name, Int32(topic.partitions), Int32(topic.replicationFactor), &message, message.count)
                else { return KafkaError.configuration(String(cBuffer: message)) }
                newTopics.append(newTopic)
                for (name, value) in topic.settings { rd_kafka_NewTopic_set_config(newTopic, name, value) }
            }
            guard let queue = rd_kafka_queue_new(client.pointer) else { return KafkaError.configuration("no queue") }
            defer { rd_kafka_queue_destroy(queue) }
            let options = rd_kafka_AdminOptions_new(client.pointer, RD_KAFKA_ADMIN_OP_CREATETOPICS)
            defer { rd_kafka_AdminOptions_destroy(options) }
            _ = rd_kafka_AdminOptions_set_operation_timeout(options, milliseconds, &message, message.count)
            _ = rd_kafka_AdminOptions_set_request_timeout(options, milliseconds, &message, message.count)
            newTopics.withUnsafeMutableBufferPointer { buffer in
                rd_kafka_CreateTopics(client.pointer, buffer.baseAddress, buffer.count, options, queue)
            }
            guard let event = rd_kafka_queue_poll(queue, milliseconds &+ 1000) else {
                return KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, message: "no answer to CreateTopics")
            }
            defer { rd_kafka_event_destroy(event) }
            let code = rd_kafka_event_error(event)
            if code != RD_KAFKA_RESP_ERR_NO_ERROR {
                return KafkaError(code, message: rd_kafka_event_error_string(event).map { String(cString: $0) })
            }
            guard let created = rd_kafka_event_CreateTopics_result(event) else { return nil }
            var count = 0
            guard let results = rd_kafka_CreateTopics_result_topics(created, &count) else { return nil }
            for index in 0..<count {
                let result = results[index]
                let code = rd_kafka_topic_result_error(result)
                if code == RD_KAFKA_RESP_ERR_NO_ERROR
                    || (ignoreExisting && code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                {
                    continue
                }
                let name = String(cString: rd_kafka_topic_result_name(result))
                let text = rd_kafka_topic_result_error_string(result).map { String(cString: $0) } ?? ""
                return KafkaError(code, message: "topic \(name): \(text)")
            }
            return nil
        }
    }

    /// The metadata of every topic and broker.
    public func metadata(timeout: Duration = .seconds(10)) async throws -> KafkaMetadata {
        let handle = self.handle
        let milliseconds = Int32(clamping: timeout.milliseconds)
        let result = await RdKafkaHandle.blocking { () -> Result<KafkaMetadata, KafkaError> in
            var pointer: UnsafePointer<rd_kafka_metadata>?
            let code: rd_kafka_resp_err_t
            do throws(KafkaError) {
                code = try handle.borrow { client in rd_kafka_metadata(client, 1, nil, &pointer, milliseconds) }
            } catch {
                return .failure(error)
            }
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata = pointer else { return .failure(KafkaError(code)) }
            defer { rd_kafka_metadata_destroy(metadata) }
            let raw = metadata.pointee
            let brokers = (0..<Int(raw.broker_cnt)).map { index in
                let broker = raw.brokers[index]
                return KafkaMetadata.Broker(id: broker.id, host: String(cString: broker.host), port: Int(broker.port))
            }
            let topics = (0..<Int(raw.topic_cnt)).map { index -> KafkaMetadata.Topic in
                let topic = raw.topics[index]
                let partitions = (0..<Int(topic.partition_cnt)).map { position -> KafkaMetadata.Partition in
                    let partition = topic.partitions[position]
                    return KafkaMetadata.Partition(
                        id: partition.id, leader: partition.leader,
                        replicas: (0..<Int(partition.replica_cnt)).map { partition.replicas[$0] },
                        inSyncReplicas: (0..<Int(partition.isr_cnt)).map { partition.isrs[$0] })
                }
                return KafkaMetadata.Topic(
                    name: String(cString: topic.topic), partitions: partitions.sorted { $0.id < $1.id },
                    error: topic.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(topic.err))
            }
            return .success(KafkaMetadata(brokers: brokers, topics: topics))
        }
        return try result.get()
    }
}
