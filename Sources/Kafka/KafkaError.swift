import CRdKafka

/// An error from Kafka or from librdkafka: its code, its message, and whether it is fatal (the
/// client must be recreated) or retriable (the same call may succeed later).
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// librdkafka's error code (`rd_kafka_resp_err_t`): negative for local errors, positive for
    /// errors the broker returned.
    public var code: Int32
    /// librdkafka's name for the code, e.g. `_MSG_TIMED_OUT` or `UNKNOWN_PRODUCER_ID`.
    public var name: String
    /// What went wrong.
    public var message: String
    /// The client can no longer be used: close it and create a new one.
    public var isFatal: Bool
    /// Trying again may succeed.
    public var isRetriable: Bool
    /// Where the error was raised.
    public var file: String
    public var line: Int

    public init(
        code: Int32, message: String, isFatal: Bool = false, isRetriable: Bool = false, file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.name = String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(code)))
        self.message = message
        self.isFatal = isFatal
        self.isRetriable = isRetriable
        self.file = file
        self.line = line
    }

    init(
        _ code: rd_kafka_resp_err_t, message: String? = nil, isFatal: Bool = false, file: String = #fileID,
        line: Int = #line
    ) {
        self.init(
            code: code.rawValue, message: message ?? String(cString: rd_kafka_err2str(code)), isFatal: isFatal,
            isRetriable: Self.retriableCodes.contains(code.rawValue), file: file, line: line)
    }

    /// Takes ownership of a `rd_kafka_error_t` and destroys it.
    init(consuming error: OpaquePointer, file: String = #fileID, line: Int = #line) {
        defer { rd_kafka_error_destroy(error) }
        self.init(
            code: rd_kafka_error_code(error).rawValue, message: String(cString: rd_kafka_error_string(error)),
            isFatal: rd_kafka_error_is_fatal(error) != 0, isRetriable: rd_kafka_error_is_retriable(error) != 0,
            file: file, line: line)
    }

    /// A configuration property librdkafka refused, with librdkafka's own message.
    static func configuration(_ message: String, file: String = #fileID, line: Int = #line) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue, message: message, file: file, line: line)
    }

    /// The client was closed, or is closing.
    static func closed(file: String = #fileID, line: Int = #line) -> KafkaError {
        KafkaError(RD_KAFKA_RESP_ERR__DESTROY, message: "the client is closed", file: file, line: line)
    }

    private static let retriableCodes: Set<Int32> = [
        RD_KAFKA_RESP_ERR__MSG_TIMED_OUT.rawValue, RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue,
        RD_KAFKA_RESP_ERR__TRANSPORT.rawValue, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue,
        RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE.rawValue,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS.rawValue, RD_KAFKA_RESP_ERR_NOT_COORDINATOR.rawValue,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE.rawValue, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS.rawValue,
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS.rawValue,
        RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION.rawValue, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND.rawValue,
        RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE.rawValue,
    ]

    public var description: String { "KafkaError(\(name): \(message)\(isFatal ? ", fatal" : ""))" }
}
