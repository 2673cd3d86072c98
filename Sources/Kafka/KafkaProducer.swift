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
        var nextBatch: UInt = 1
        var batches: [UInt: Batch] = [:]
        var roomWaiters: [CheckedContinuation<Void, Never>] = []
        var fatal: KafkaError?
        var closed = false
    }

    /// Messages sent together: their outcomes, and the caller waiting for the last of them.
    private struct Batch {
        var results: [Result<KafkaDeliveryReport, KafkaError>?]
        var remaining: Int
        var waiter: CheckedContinuation<[Result<KafkaDeliveryReport, KafkaError>], Never>?

        mutating func record(_ index: Int, _ result: Result<KafkaDeliveryReport, KafkaError>) {
            guard results.indices.contains(index), results[index] == nil else { return }
            results[index] = result
            remaining -= 1
        }

        var outcomes: [Result<KafkaDeliveryReport, KafkaError>] {
            results.map { $0 ?? .failure(.closed()) }
        }
    }

    /// A message's opaque value for librdkafka: its batch and its index in the batch.
    private static let indexBits: UInt = 24

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
        try await send([message])[0].get()
    }

    /// Sends `messages` and returns each one's outcome, in order, once every one was acknowledged
    /// or failed. Cheaper per message than one ``send(_:)`` each: one wait for the whole batch.
    /// Messages with the same key keep their order.
    public func send(_ messages: [KafkaOutgoingMessage]) async -> [Result<KafkaDeliveryReport, KafkaError>] {
        guard !messages.isEmpty else { return [] }
        precondition(messages.count < 1 << Self.indexBits, "at most 16,777,215 messages per batch")
        let batch = core.state.withLock { state -> UInt in
            let id = state.nextBatch
            state.nextBatch &+= 1
            state.batches[id] = Batch(results: Array(repeating: nil, count: messages.count), remaining: messages.count)
            return id
        }
        var index = 0
        var checked = false
        while index < messages.count {
            // Checked once, and again after each wait for room: a fatal error or a close can come
            // only while we wait (a fatal error met between checks fails the deliveries anyway).
            let refusal =
                checked
                ? nil
                : core.state.withLock { state -> KafkaError? in
                    state.fatal ?? (state.closed ? KafkaError.closed() : nil)
                }
            checked = true
            if let refusal {
                core.state.withLock { state in
                    for rest in index..<messages.count { state.batches[batch]?.record(rest, .failure(refusal)) }
                }
                break
            }
            let opaque = batch << Self.indexBits | UInt(index)
            guard let error = produce(messages[index], opaque: opaque) else {
                index += 1
                continue
            }
            if error.code == RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue {
                await waitForRoom()
                checked = false
                continue
            }
            core.state.withLock { $0.batches[batch]?.record(index, .failure(error)) }
            index += 1
        }
        return await withCheckedContinuation { continuation in
            let done = core.state.withLock { state -> [Result<KafkaDeliveryReport, KafkaError>]? in
                guard let current = state.batches[batch] else { return [] }
                if current.remaining == 0 {
                    state.batches[batch] = nil
                    return current.outcomes
                }
                state.batches[batch]?.waiter = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    private func waitForRoom() async {
        await withCheckedContinuation { continuation in
            let wait = core.state.withLock { state -> Bool in
                // A delivery report is on its way for each message in flight; with none in flight,
                // the queue has room already.
                guard rd_kafka_outq_len(core.handle.pointer) > 0 else { return false }
                state.roomWaiters.append(continuation)
                return true
            }
            if !wait { continuation.resume() }
        }
    }

    /// Hands the message to librdkafka. Returns `nil` when it was queued.
    private func produce(_ message: KafkaOutgoingMessage, opaque: UInt) -> KafkaError? {
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
                    withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 7) { values in
                        var count = 0
                        func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                            values[count] = rd_kafka_vu_t()
                            values[count].vtype = type
                            set(&values[count])
                            count += 1
                        }
                        add(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = topic }
                        add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                        add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = UnsafeMutableRawPointer(bitPattern: opaque) }
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
                        return rd_kafka_produceva(handle.pointer, values.baseAddress, count)
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
                state.batches.removeAll()
                state.roomWaiters.removeAll()
            }
            return (
                state.batches.values.compactMap { batch in batch.waiter.map { ($0, batch.outcomes) } },
                state.roomWaiters
            )
        }
        for (continuation, outcomes) in waiting { continuation.resume(returning: outcomes) }
        for room in rooms { room.resume() }
    }

    /// Runs on the event thread.
    private static func serve(_ event: OpaquePointer, core: Core) {
        let handle = core.handle
        switch rd_kafka_event_type(event) {
        case RD_KAFKA_EVENT_DR:
            var outcomes: [(UInt, Result<KafkaDeliveryReport, KafkaError>)] = []
            var topicCache: (OpaquePointer, String)?
            while let message = rd_kafka_event_message_next(event) {
                let opaque = UInt(bitPattern: message.pointee._private)
                if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    var topic = ""
                    if let rkt = message.pointee.rkt {
                        if let cached = topicCache, cached.0 == rkt {
                            topic = cached.1
                        } else {
                            topic = String(cString: rd_kafka_topic_name(rkt))
                            topicCache = (rkt, topic)
                        }
                    }
                    outcomes.append(
                        (
                            opaque,
                            .success(
                                KafkaDeliveryReport(
                                    topic: topic, partition: message.pointee.partition, offset: message.pointee.offset))
                        ))
                } else {
                    let error = deliveryError(message.pointee.err, handle: handle)
                    if error.isFatal { core.state.withLock { $0.fatal = $0.fatal ?? error } }
                    outcomes.append((opaque, .failure(error)))
                }
            }
            let mask = (UInt(1) << indexBits) - 1
            let (finished, rooms) = core.state.withLock { state in
                var finished:
                    [(
                        CheckedContinuation<[Result<KafkaDeliveryReport, KafkaError>], Never>,
                        [Result<KafkaDeliveryReport, KafkaError>]
                    )] = []
                for (opaque, outcome) in outcomes {
                    let batch = opaque >> indexBits
                    state.batches[batch]?.record(Int(opaque & mask), outcome)
                    // Read in place: a copy of the batch would copy its results on the next record.
                    if state.batches[batch]?.remaining == 0, state.batches[batch]?.waiter != nil,
                        let done = state.batches.removeValue(forKey: batch), let waiter = done.waiter
                    {
                        finished.append((waiter, done.outcomes))
                    }
                }
                defer { state.roomWaiters.removeAll() }
                return (finished, state.roomWaiters)
            }
            for (continuation, results) in finished { continuation.resume(returning: results) }
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
