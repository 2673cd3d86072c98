/// A Kafka header: a name and bytes.
public struct KafkaHeader: Sendable, Hashable {
    public var name: String
    /// The value; `nil` for a header without one.
    public var value: [UInt8]?

    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    public init(name: String, string: String) {
        self.init(name: name, value: Array(string.utf8))
    }

    /// The value as UTF-8 text, when it is.
    public var stringValue: String? {
        value.flatMap { String(validating: $0, as: UTF8.self) }
    }

    /// Headers from names and text values, in the order of their names.
    public static func headers(_ values: [String: String]) -> [KafkaHeader] {
        values.sorted { $0.key < $1.key }.map { KafkaHeader(name: $0.key, string: $0.value) }
    }
}

/// A message to send.
public struct KafkaOutgoingMessage: Sendable, Hashable {
    public var topic: String
    /// Messages with the same key go to the same partition, in order.
    public var key: [UInt8]?
    /// The body; `nil` for a tombstone.
    public var value: [UInt8]?
    public var headers: [KafkaHeader]
    /// A partition to send to, instead of the one the key chooses.
    public var partition: Int32?

    public init(
        topic: String, key: [UInt8]? = nil, value: [UInt8]?, headers: [KafkaHeader] = [], partition: Int32? = nil
    ) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
    }

    public init(topic: String, key: String?, value: String, headers: [KafkaHeader] = []) {
        self.init(topic: topic, key: key.map { Array($0.utf8) }, value: Array(value.utf8), headers: headers)
    }
}

/// Where a message landed.
public struct KafkaDeliveryReport: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
}

/// A message read from Kafka, copied out of librdkafka's buffers.
public struct KafkaMessage: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    /// The body; `nil` for a tombstone.
    public var value: [UInt8]?
    public var headers: [KafkaHeader]
    /// The message's timestamp in milliseconds since the epoch, when it has one.
    public var timestamp: Int64?
    /// Which assignment of its partition delivered it; a message from an assignment that was revoked
    /// is not handed out (its partition belongs to another member now).
    var assignmentEpoch: UInt64 = 0

    /// The value as UTF-8 text, when it is.
    public var stringValue: String? { value.flatMap { String(validating: $0, as: UTF8.self) } }
    /// The key as UTF-8 text, when it is.
    public var keyString: String? { key.flatMap { String(validating: $0, as: UTF8.self) } }
    /// The value of the header `name`, as UTF-8 text.
    public func header(_ name: String) -> String? { headers.first { $0.name == name }?.stringValue }
    /// The headers by name, as UTF-8 text: the last of a repeated name wins, and a header without a
    /// value (or whose value is not text) reads as empty.
    public var headersByName: [String: String] {
        var byName: [String: String] = [:]
        for header in headers { byName[header.name] = header.stringValue ?? "" }
        return byName
    }

    public init(
        topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader],
        timestamp: Int64?
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }
}

/// A topic and one of its partitions.
public struct KafkaTopicPartition: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// An offset to commit: the offset of the next message to read (the last processed one + 1).
public struct KafkaCommitOffset: Sendable, Hashable {
    public var topicPartition: KafkaTopicPartition
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        topicPartition = KafkaTopicPartition(topic: topic, partition: partition)
        self.offset = offset
    }

    /// The offset that marks `message` as processed: its offset + 1.
    public init(after message: KafkaMessage) {
        self.init(topic: message.topic, partition: message.partition, offset: message.offset + 1)
    }
}
