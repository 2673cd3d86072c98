import CRdKafka
import Logging
import Synchronization

/// Sends messages to Kafka. Idempotent by default; each `send` returns when the broker acknowledged
/// the message (or throws the delivery error). Its queue is bounded: when it is full, `send` waits
/// for room instead of growing memory.
///
/// ```swift
/// let producer = try KafkaProducer(configuration: .init(bootstrapServers: ["localhost:9092"]), logger: logger)
/// let report = try await producer.send(KafkaOutgoingMessage(topic: "orders", key: "o-1", value: "{}"))
/// await producer.close()   // flushes what is queued
/// ```
///
/// A fatal error (for example `UNKNOWN_PRODUCER_ID` after a broker lost its state) makes every later
/// `send` throw an error with `isFatal`; the owner closes this producer and creates a new one.
public final class KafkaProducer: Sendable {
    private let core: Core

    /// What the event thread shares with the callers.
    private final class Core: Sendable {
        let handle: RdKafkaHandle
        let state = Mutex(State())

        init(handle: RdKafkaHandle) {
            self.handle = handle
        }
    }

    private var handle: RdKafkaHandle { core.handle }

    private struct State {
        var nextID: UInt = 1
        var pending: [UInt: CheckedContinuation<Attempt, any Error>] = [:]
        var roomWaiters: [CheckedContinuation<Void, Never>] = []
        var fatal: KafkaError?
        var closed = false
    }

    private enum Attempt: Sendable {
        case delivered(KafkaDeliveryReport)
        case queueFull
    }

    /// Creates the producer and starts serving its delivery reports.
    ///
    /// - Throws: ``KafkaError`` when a property is invalid, with librdkafka's message.
    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        let handle = try RdKafkaHandle(
            type: RD_KAFKA_PRODUCER, properties: configuration.librdkafkaProperties, events: RD_KAFKA_EVENT_DR,
            logger: logger)
        let core = Core(handle: handle)
        self.core = core
        handle.start { event in Self.serve(event, core: core) }
    }

    deinit {
        // Stops the event thread, which then destroys the client; nothing waits for it here.
        let handle = core.handle
        Task.detached { await handle.stop() }
    }

    /// The fatal error that ended this producer, when one did.
    public var fatalError: KafkaError? { core.state.withLock { $0.fatal } }

    /// Sends `message` and returns where it landed once the broker acknowledged it.
    ///
    /// - Throws: ``KafkaError``: the delivery failed (e.g. `_MSG_TIMED_OUT` when no broker took it
    ///   within the message timeout), the producer hit a fatal error, or it is closed.
    public func send(_ message: KafkaOutgoingMessage) async throws -> KafkaDeliveryReport {
        while true {
            switch try await attempt(message) {
            case .delivered(let report): return report
            case .queueFull: await waitForRoom()
            }
        }
    }

    private func attempt(_ message: KafkaOutgoingMessage) async throws -> Attempt {
        try await withCheckedThrowingContinuation { continuation in
            let registered = core.state.withLock { state -> Result<UInt, KafkaError> in
                if let fatal = state.fatal { return .failure(fatal) }
                if state.closed { return .failure(.closed()) }
                let id = state.nextID
                state.nextID &+= 1
                state.pending[id] = continuation
                return .success(id)
            }
            let id: UInt
            switch registered {
            case .failure(let error):
                continuation.resume(throwing: error)
                return
            case .success(let value): id = value
            }
            guard let error = produce(message, id: id) else { return }
            let waiting = core.state.withLock { $0.pending.removeValue(forKey: id) }
            if error.code == RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue {
                waiting?.resume(returning: .queueFull)
            } else {
                waiting?.resume(throwing: error)
            }
        }
    }

    private func waitForRoom() async {
        await withCheckedContinuation { continuation in
            let wait = core.state.withLock { state -> Bool in
                // A delivery report is on its way for each pending message; with none pending, the
                // queue has room already.
                guard !state.pending.isEmpty else { return false }
                state.roomWaiters.append(continuation)
                return true
            }
            if !wait { continuation.resume() }
        }
    }

    /// Hands the message to librdkafka. Returns `nil` when it was queued.
    private func produce(_ message: KafkaOutgoingMessage, id: UInt) -> KafkaError? {
        var headers: OpaquePointer?
        if !message.headers.isEmpty {
            headers = rd_kafka_headers_new(message.headers.count)
            for header in message.headers {
                if let value = header.value {
                    value.withUnsafeBytes { bytes in
                        _ = rd_kafka_header_add(headers, header.name, -1, bytes.baseAddress, bytes.count)
                    }
                } else {
                    _ = rd_kafka_header_add(headers, header.name, -1, nil, 0)
                }
            }
        }
        let error: OpaquePointer? = message.topic.withCString { topic in
            withOptionalBytes(message.key) { key in
                withOptionalBytes(message.value) { value in
                    var values = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 7)
                    var count = 0
                    func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                        values[count].vtype = type
                        set(&values[count])
                        count += 1
                    }
                    add(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = topic }
                    add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                    add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = UnsafeMutableRawPointer(bitPattern: id) }
                    if let value {
                        add(RD_KAFKA_VTYPE_VALUE) {
                            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                            $0.u.mem.size = value.count
                        }
                    }
                    if let key {
                        add(RD_KAFKA_VTYPE_KEY) {
                            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                            $0.u.mem.size = key.count
                        }
                    }
                    if let headers { add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers } }
                    if let partition = message.partition { add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = partition } }
                    return values.withUnsafeMutableBufferPointer { buffer in
                        rd_kafka_produceva(handle.pointer, buffer.baseAddress, count)
                    }
                }
            }
        }
        guard let error else { return nil }
        // On failure the headers are still ours.
        if let headers { rd_kafka_headers_destroy(headers) }
        return KafkaError(consuming: error)
    }

    /// Waits until every queued message is delivered or failed, or `timeout` passed.
    ///
    /// - Throws: ``KafkaError`` `_TIMED_OUT` when messages are still queued after `timeout`.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        let client = SendablePointer(pointer: handle.pointer)
        let milliseconds = Int32(clamping: timeout.milliseconds)
        let code = await RdKafkaHandle.blocking { rd_kafka_flush(client.pointer, milliseconds) }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code) }
    }

    /// Flushes what is queued (at most `timeout`), stops, and frees librdkafka's resources. Sends
    /// still waiting then fail.
    public func close(timeout: Duration = .seconds(30)) async {
        let alreadyClosed = core.state.withLock { state -> Bool in
            defer { state.closed = true }
            return state.closed
        }
        guard !alreadyClosed else { return }
        do {
            try await flush(timeout: timeout)
        } catch {
            handle.logger.warning("producer closed with messages undelivered", metadata: ["error.type": "\(error)"])
        }
        await handle.stop()
        let (waiting, rooms) = core.state.withLock { state in
            defer {
                state.pending.removeAll()
                state.roomWaiters.removeAll()
            }
            return (Array(state.pending.values), state.roomWaiters)
        }
        for continuation in waiting { continuation.resume(throwing: KafkaError.closed()) }
        for room in rooms { room.resume() }
    }

    /// Runs on the event thread.
    private static func serve(_ event: OpaquePointer, core: Core) {
        let handle = core.handle
        switch rd_kafka_event_type(event) {
        case RD_KAFKA_EVENT_DR:
            var outcomes: [(UInt, Result<Attempt, KafkaError>)] = []
            while let message = rd_kafka_event_message_next(event) {
                let id = UInt(bitPattern: message.pointee._private)
                if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
                    outcomes.append(
                        (
                            id,
                            .success(
                                .delivered(
                                    KafkaDeliveryReport(
                                        topic: topic, partition: message.pointee.partition,
                                        offset: message.pointee.offset)))
                        ))
                } else {
                    let error = deliveryError(message.pointee.err, handle: handle)
                    if error.isFatal { core.state.withLock { $0.fatal = $0.fatal ?? error } }
                    outcomes.append((id, .failure(error)))
                }
            }
            let (resumptions, rooms) = core.state.withLock { state in
                let resumptions = outcomes.compactMap { id, outcome in
                    state.pending.removeValue(forKey: id).map { ($0, outcome) }
                }
                defer { state.roomWaiters.removeAll() }
                return (resumptions, state.roomWaiters)
            }
            for (continuation, outcome) in resumptions { continuation.resume(with: outcome.mapError { $0 }) }
            for room in rooms { room.resume() }
        case RD_KAFKA_EVENT_ERROR:
            let code = rd_kafka_event_error(event)
            if rd_kafka_event_error_is_fatal(event) != 0 {
                var message = [CChar](repeating: 0, count: 512)
                let original = rd_kafka_fatal_error(handle.pointer, &message, message.count)
                let error = KafkaError(original, message: String(cBuffer: message), isFatal: true)
                handle.logger.error("producer hit a fatal error", metadata: ["error.type": "\(error.name)"])
                core.state.withLock { $0.fatal = error }
            } else {
                let text = rd_kafka_event_error_string(event).map { String(cString: $0) } ?? ""
                handle.logger.warning(
                    "producer error", metadata: ["error.type": "\(KafkaError(code).name)", "error.message": "\(text)"])
            }
        default:
            break
        }
    }

    /// The error of a failed delivery. When the producer has hit a fatal error, that error (the
    /// cause, marked fatal) is what the delivery reports.
    private static func deliveryError(_ code: rd_kafka_resp_err_t, handle: RdKafkaHandle) -> KafkaError {
        var message = [CChar](repeating: 0, count: 512)
        let fatal = rd_kafka_fatal_error(handle.pointer, &message, message.count)
        if fatal != RD_KAFKA_RESP_ERR_NO_ERROR {
            return KafkaError(fatal, message: String(cBuffer: message), isFatal: true)
        }
        return KafkaError(code)
    }
}

/// Calls `body` with the bytes of `array`, or with `nil`.
func withOptionalBytes<R>(_ array: [UInt8]?, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0) }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
