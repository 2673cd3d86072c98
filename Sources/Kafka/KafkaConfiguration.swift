/// Settings every Kafka client shares: where the brokers are, who we are, how we authenticate.
///
/// Only what the project uses is typed; anything else librdkafka knows goes into ``properties``,
/// which wins over the typed fields. An invalid property fails when the client is created, with
/// librdkafka's own message.
public struct KafkaClientConfiguration: Sendable, Hashable {
    /// How the client connects.
    public enum SecurityProtocol: String, Sendable, Hashable, CaseIterable {
        case plaintext
        case ssl
        case saslPlaintext = "sasl_plaintext"
        case saslSSL = "sasl_ssl"
    }

    /// `host:port` of one or more brokers.
    public var bootstrapServers: [String]
    /// Names this client in the brokers' logs and metrics. Default `saga-orchestrator`.
    public var clientID: String = "saga-orchestrator"
    /// Default `plaintext`.
    public var securityProtocol: SecurityProtocol = .plaintext
    /// E.g. `SCRAM-SHA-512` or `PLAIN`.
    public var saslMechanism: String?
    public var saslUsername: String?
    /// A secret: never logged.
    public var saslPassword: String?
    /// A file of CA certificates to verify the brokers with.
    public var sslCALocation: String?
    /// This client's certificate (mutual TLS).
    public var sslCertificateLocation: String?
    /// This client's private key (mutual TLS); a secret.
    public var sslKeyLocation: String?
    /// Any other librdkafka property, e.g. `["socket.keepalive.enable": "true"]`.
    public var properties: [String: String] = [:]

    public init(bootstrapServers: [String]) {
        self.bootstrapServers = bootstrapServers
    }

    /// The librdkafka properties these settings stand for.
    var librdkafkaProperties: [String: String] {
        var result: [String: String] = [
            "bootstrap.servers": bootstrapServers.joined(separator: ","),
            "client.id": clientID,
            "security.protocol": securityProtocol.rawValue,
        ]
        result["sasl.mechanisms"] = saslMechanism
        result["sasl.username"] = saslUsername
        result["sasl.password"] = saslPassword
        result["ssl.ca.location"] = sslCALocation
        result["ssl.certificate.location"] = sslCertificateLocation
        result["ssl.key.location"] = sslKeyLocation
        return result
    }

    /// Property names whose values are secrets.
    static let secretProperties: Set<String> = [
        "sasl.password", "ssl.key.password", "ssl.key.pem", "ssl_key", "sasl.oauthbearer.client.secret",
    ]
}

/// Settings of a ``KafkaProducer``. The defaults suit a service that must not lose or duplicate
/// messages: idempotent, acknowledged by all in-sync replicas.
public struct KafkaProducerConfiguration: Sendable, Hashable {
    public var client: KafkaClientConfiguration
    /// Exactly-once, in-order delivery per partition for this producer's lifetime. Default `true`.
    public var idempotent: Bool = true
    /// How many replicas must acknowledge: `-1` (all), `0` or `1`. Default `-1`.
    public var acks: Int = -1
    /// How long to wait to fill a batch, in milliseconds. Default 5.
    public var lingerMilliseconds: Int = 5
    /// The largest batch in bytes. Default 1 MiB.
    public var batchSize: Int = 1 << 20
    /// How long a message may wait for delivery, retries included, before it fails. Default 30 s.
    public var messageTimeoutMilliseconds: Int = 30_000
    /// The most messages waiting for delivery; past it, `send` waits for room. Default 100,000.
    public var maximumQueuedMessages: Int = 100_000

    public init(bootstrapServers: [String]) {
        client = KafkaClientConfiguration(bootstrapServers: bootstrapServers)
    }

    var librdkafkaProperties: [String: String] {
        var result = client.librdkafkaProperties
        result["enable.idempotence"] = idempotent ? "true" : "false"
        result["acks"] = String(acks)
        result["linger.ms"] = String(lingerMilliseconds)
        result["batch.size"] = String(batchSize)
        result["message.timeout.ms"] = String(messageTimeoutMilliseconds)
        result["queue.buffering.max.messages"] = String(maximumQueuedMessages)
        result.merge(client.properties) { _, explicit in explicit }
        return result
    }
}

/// Settings of a ``KafkaConsumer``: a member of a consumer group that commits offsets itself,
/// after it has processed them. Auto commit is off and cannot be turned on through ``properties``.
public struct KafkaConsumerConfiguration: Sendable, Hashable {
    public var client: KafkaClientConfiguration
    /// The consumer group.
    public var groupID: String
    /// Where to start a partition the group has no offset for: `earliest` or `latest`. Default `earliest`.
    public var autoOffsetReset: String = "earliest"
    /// How long the group waits for a silent member before it rebalances, in milliseconds. Default 10 s.
    public var sessionTimeoutMilliseconds: Int = 10_000
    /// How often the member tells the group it is alive, in milliseconds. Default 1 s.
    public var heartbeatIntervalMilliseconds: Int = 1_000
    /// librdkafka's `max.poll.interval.ms`. The consumer's event thread polls all the time, so this
    /// does not notice a reader that stopped reading; it bounds librdkafka's own stalls. Default 5 min.
    public var maxPollIntervalMilliseconds: Int = 300_000
    /// The most messages the reader takes from librdkafka at once, to hand out one by one (at
    /// most 512); the rest stay in librdkafka, which fetches ahead only up to `queued.min.messages`
    /// and `queued.max.messages.kbytes`. Default 512.
    public var maximumBufferedMessages: Int = 512

    public init(bootstrapServers: [String], groupID: String) {
        client = KafkaClientConfiguration(bootstrapServers: bootstrapServers)
        self.groupID = groupID
    }

    var librdkafkaProperties: [String: String] {
        var result = client.librdkafkaProperties
        result["group.id"] = groupID
        result["auto.offset.reset"] = autoOffsetReset
        result["session.timeout.ms"] = String(sessionTimeoutMilliseconds)
        result["heartbeat.interval.ms"] = String(heartbeatIntervalMilliseconds)
        result["max.poll.interval.ms"] = String(maxPollIntervalMilliseconds)
        result["enable.partition.eof"] = "false"
        result.merge(client.properties) { _, explicit in explicit }
        // Offsets are committed by the application after processing, never by librdkafka.
        result["enable.auto.commit"] = "false"
        result["enable.auto.offset.store"] = "false"
        return result
    }
}
