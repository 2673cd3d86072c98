import CRdKafka
import Dispatch
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
        /// Set when `close` begins: senders stop handing messages to librdkafka, whose handle is
        /// about to be destroyed. Read before each message, without the lock.
        let closing = Atomic(false)
        /// Whether a sender serves the delivery reports now: the one handing messages to librdkafka
        /// serves them itself meanwhile, as librdkafka's own poll loop does (librdkafka frees its
        /// record of each delivered message where the report is served, and the record was made
        /// on the sender's thread). Set from when a sender takes the turn to produce until the last one
        /// gives it up, and cleared while the sender waits for room; the event thread serves the
        /// reports whenever it is clear.
        let senderServes = Atomic(false)
        /// Signalled whenever `senderServes` is cleared: the event thread takes over at once.
        let senderStopped = DispatchSemaphore(value: 0)

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
        /// Senders inside `send` (waiting for the turn, or producing); `close` waits for none
        /// before destroying the handle.
        var inSend = 0
        /// The handle is destroyed: no delivery report will come any more.
        var stopped = false
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        /// A sender holds the turn to hand messages to librdkafka; the others wait for it, first
        /// come first served.
        var turnTaken = false
        var turnWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Messages sent together: where each landed (compact, so reports write little), the errors of
    /// those that failed, and the caller waiting for the last of them. Touched only under the
    /// state's lock until its sender removes it from the state; read only after that, through the
    /// ``KafkaDeliveryReports`` the sender returns.
    final class Batch: @unchecked Sendable {
        static let pending = Int32.min
        static let failedMark = Int32.min + 1
        /// Each message's partition (`pending` until reported, `failedMark` when it failed) and
        /// offset, in buffers of their own: a report writes them without the exclusivity checks of
        /// a class's stored arrays.
        let partitions: UnsafeMutableBufferPointer<Int32>
        let offsets: UnsafeMutableBufferPointer<Int64>
        var errors: [Int: KafkaError] = [:]
        var remaining: Int
        var waiter: CheckedContinuation<Void, Never>?

        init(count: Int) {
            partitions = .allocate(capacity: count)
            partitions.initialize(repeating: Self.pending)
            offsets = .allocate(capacity: count)
            offsets.initialize(repeating: -1)
            remaining = count
        }

        deinit {
            partitions.deallocate()
            offsets.deallocate()
        }

        /// Records a delivery; returns whether it was the message's first report. The caller
        /// counts it out of `remaining`.
        func delivered(_ index: Int, partition: Int32, offset: Int64) -> Bool {
            guard index >= 0, index < partitions.count, partitions[index] == Self.pending else { return false }
            partitions[index] = partition
            offsets[index] = offset
            return true
        }

        func failed(_ index: Int, _ error: KafkaError) {
            guard index >= 0, index < partitions.count, partitions[index] == Self.pending else { return }
            partitions[index] = Self.failedMark
            errors[index] = error
            remaining -= 1
        }

        /// Why the messages still pending at the end failed: the producer closed, unless set.
        var refusal: KafkaError?
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
        handle.start(turn: { serve in Self.turn(core: core, serve: serve) }, { event in Self.serve(event, core: core) })
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
    /// or failed. Cheaper per message than one ``send(_:)`` each: one wait for the whole batch, and
    /// each outcome is made only when read, from where its delivery report was recorded.
    /// Messages with the same key keep their order. The values are lent to librdkafka, not
    /// copied: it reads them from the arrays in `messages`, which this call holds until each
    /// message is reported, or the producer is closed and librdkafka's client destroyed. The call
    /// does not end on cancellation.
    public func send(_ messages: [KafkaOutgoingMessage]) async -> KafkaDeliveryReports {
        guard !messages.isEmpty else { return KafkaDeliveryReports(messages: [], batch: Batch(count: 0)) }
        precondition(messages.count < 1 << Self.indexBits, "at most 16,777,215 messages per batch")
        let registered = core.state.withLock { state -> Result<UInt, KafkaError> in
            if let refusal = state.fatal ?? (state.closed ? KafkaError.closed() : nil) { return .failure(refusal) }
            let id = state.nextBatch
            state.nextBatch &+= 1
            state.batches[id] = Batch(count: messages.count)
            state.inSend += 1
            return .success(id)
        }
        let batch: UInt
        switch registered {
        case .failure(let refusal):
            let refused = Batch(count: messages.count)
            refused.refusal = refusal
            return KafkaDeliveryReports(messages: messages, batch: refused)
        case .success(let id): batch = id
        }
        var index = 0
        var checked = true
        await startProducing()
        while index < messages.count {
            // A close stops the loop at once; a fatal error is checked after each wait for room
            // (one met in between fails the deliveries anyway).
            if core.closing.load(ordering: .acquiring) || !checked {
                checked = true
                let refusal = core.closing.load(ordering: .acquiring) ? .closed() : core.state.withLock { $0.fatal }
                if let refusal {
                    core.state.withLock { state in
                        for rest in index..<messages.count { state.batches[batch]?.failed(rest, refusal) }
                    }
                    break
                }
            }
            // The messages are read in place (see `produce`).
            let queueFull = messages.withUnsafeBufferPointer { produceUntilFull($0, from: &index, batch: batch) }
            guard queueFull else { continue }
            // Reports waiting to be served hold room; without any, wait for room while the event
            // thread serves them.
            if serveReports() { continue }
            // The sender keeps its turn: the others would find the queue full as well.
            core.senderServes.store(false, ordering: .releasing)
            core.senderStopped.signal()
            await waitForRoom()
            core.senderServes.store(true, ordering: .releasing)
            checked = false
        }
        serveReports()
        stopProducing()
        let idle = core.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.inSend -= 1
            guard state.inSend == 0 else { return [] }
            defer { state.idleWaiters.removeAll() }
            return state.idleWaiters
        }
        for waiter in idle { waiter.resume() }
        await withCheckedContinuation { continuation in
            let done = core.state.withLock { state -> Bool in
                guard let remaining = state.batches[batch]?.remaining, remaining > 0, !state.stopped else {
                    return true
                }
                state.batches[batch]?.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
        // librdkafka reads the messages' values in place (see `produce`) until each is reported
        // or its client is destroyed: `messages` lives at least until here, and the wait above
        // ends only then (never on cancellation).
        withExtendedLifetime(messages) {}
        let finished = core.state.withLock { $0.batches.removeValue(forKey: batch) }
        return KafkaDeliveryReports(messages: messages, batch: finished ?? Batch(count: messages.count))
    }

    /// Hands `messages` to librdkafka from `index` on, counting `index` up, until all are queued
    /// (or failed), the producer is closing, or librdkafka's queue is full. Returns whether it
    /// stopped at a full queue; the message at `index` is then still to be sent.
    private func produceUntilFull(
        _ messages: UnsafeBufferPointer<KafkaOutgoingMessage>, from index: inout Int, batch: UInt
    ) -> Bool {
        var queued = 0
        // The topic's name as a C string, made once for each run of messages to the same topic.
        var topic = TopicName()
        while index < messages.count {
            if core.closing.load(ordering: .acquiring) { return false }
            let message = messages.baseAddress! + index
            topic.set(message.pointee.topic)
            let failure = topic.withCString { topic in
                produce(message, topic: topic, opaque: batch << Self.indexBits | UInt(index))
            }
            guard let failure else {
                index += 1
                // Reports are served after every 64 messages queued (and by `send` before it
                // passes the turn on), not after each one: each look at the queue takes its lock,
                // which librdkafka's threads need to hand the reports over.
                queued += 1
                if queued == 64 {
                    serveReports()
                    queued = 0
                }
                continue
            }
            if rd_kafka_error_code(failure) == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                rd_kafka_error_destroy(failure)
                return true
            }
            let error = KafkaError(consuming: failure)
            let failed = index
            core.state.withLock { $0.batches[batch]?.failed(failed, error) }
            index += 1
        }
        return false
    }

    /// Takes the turn to hand messages to librdkafka. One sender at a time: librdkafka's produce
    /// path locks the topic and the partition, so senders producing at once only contend for
    /// those locks (and for the cores librdkafka's own threads need).
    private func startProducing() async {
        let core = self.core
        let taken = core.state.withLock { state -> Bool in
            guard !state.turnTaken else { return false }
            state.turnTaken = true
            core.senderServes.store(true, ordering: .releasing)
            return true
        }
        guard !taken else { return }
        // The sender that passes the turn on leaves `senderServes` set.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = core.state.withLock { state -> Bool in
                guard state.turnTaken else {
                    state.turnTaken = true
                    core.senderServes.store(true, ordering: .releasing)
                    return true
                }
                state.turnWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Passes the turn on to the next sender waiting; without one, the event thread takes over the
    /// delivery reports.
    private func stopProducing() {
        let next = core.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.turnWaiters.isEmpty else {
                state.turnTaken = false
                core.senderServes.store(false, ordering: .releasing)
                return nil
            }
            return state.turnWaiters.removeFirst()
        }
        if let next {
            next.resume()
        } else {
            core.senderStopped.signal()
        }
    }

    /// Serves the delivery reports waiting now, on the sender's thread. Returns whether there were any.
    @discardableResult
    private func serveReports() -> Bool {
        let core = self.core
        return core.handle.serveReady { Self.serve($0, core: core) }
    }

    private func waitForRoom() async {
        // A delivery report is on its way for each message in flight; with none in flight, the
        // queue has room already. (Asked before taking the lock: no C call under it.)
        guard rd_kafka_outq_len(core.handle.pointer) > 0 else { return }
        await withCheckedContinuation { continuation in
            let wait = core.state.withLock { state -> Bool in
                guard !state.closed else { return false }
                state.roomWaiters.append(continuation)
                return true
            }
            if !wait { continuation.resume() }
        }
    }

    /// Hands the message to librdkafka, to `topic` (its topic's name as a C string). Returns `nil`
    /// when it was queued, else librdkafka's error (the caller's to destroy).
    ///
    /// The message is read in place through a pointer: `messages[index]` would copy it out of the
    /// array first. Its key and value are not copied either: read in place around a call into
    /// librdkafka, which for all Swift knows might change them, each array would be retained before
    /// the call and released after it, on arrays that callers often share between messages (and so
    /// between threads). Their bytes are taken first instead, with nothing in between that Swift
    /// cannot see through. The pointers outlive `withUnsafeBufferPointer`, which Swift documents as
    /// their limit: a native array's storage stays where it is, unchanged, for as long as an array
    /// holds it and nobody mutates it, and `send` holds `messages` until each message is reported
    /// or the client is destroyed.
    private func produce(
        _ message: UnsafePointer<KafkaOutgoingMessage>, topic: UnsafePointer<CChar>, opaque: UInt
    ) -> OpaquePointer? {
        let key = message.pointee.key?.withUnsafeBufferPointer { $0 }
        let value = message.pointee.value?.withUnsafeBufferPointer { $0 }
        var headers: OpaquePointer?
        if !message.pointee.headers.isEmpty {
            headers = rd_kafka_headers_new(message.pointee.headers.count)
            for header in message.pointee.headers {
                if let value = header.value {
                    value.withUnsafeBytes { bytes in
                        _ = rd_kafka_header_add(headers, header.name, -1, bytes.baseAddress, bytes.count)
                    }
                } else {
                    _ = rd_kafka_header_add(headers, header.name, -1, nil, 0)
                }
            }
        }
        let error: OpaquePointer? = withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 7) { values in
            var count = 0
            func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                values[count] = rd_kafka_vu_t()
                values[count].vtype = type
                set(&values[count])
                count += 1
            }
            add(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = topic }
            // No `RD_KAFKA_MSG_F_COPY`: librdkafka points at the value instead of copying it (the
            // key it always copies). The value's storage is the caller's array, immutable while
            // `messages` holds it, and `send` holds `messages` until every message is reported or
            // the client is destroyed.
            add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = 0 }
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
            if let partition = message.pointee.partition {
                add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = partition }
            }
            return rd_kafka_produceva(handle.pointer, values.baseAddress, count)
        }
        guard let error else { return nil }
        // On failure the headers are still ours.
        if let headers { rd_kafka_headers_destroy(headers) }
        return error
    }

    /// Waits until every queued message is delivered or failed, or `timeout` passed.
    ///
    /// - Throws: ``KafkaError`` `_TIMED_OUT` when messages are still queued after `timeout`.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        let handle = self.handle
        let milliseconds = Int32(clamping: timeout.milliseconds)
        let result = await RdKafkaHandle.blocking { () -> Result<rd_kafka_resp_err_t, KafkaError> in
            do throws(KafkaError) {
                return .success(try handle.borrow { rd_kafka_flush($0, milliseconds) })
            } catch {
                return .failure(error)
            }
        }
        let code = try result.get()
        if code != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code) }
    }

    /// Flushes what is queued (at most `timeout`), stops, and frees librdkafka's resources. Sends
    /// still waiting then fail.
    public func close(timeout: Duration = .seconds(30)) async {
        core.closing.store(true, ordering: .releasing)
        let (alreadyClosed, rooms) = core.state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
            defer {
                state.closed = true
                state.roomWaiters.removeAll()
            }
            return (state.closed, state.roomWaiters)
        }
        // Senders waiting for room go on, see the close and stop.
        for room in rooms { room.resume() }
        guard !alreadyClosed else { return }
        // No sender may be inside librdkafka when the handle is destroyed.
        await withCheckedContinuation { continuation in
            let wait = core.state.withLock { state -> Bool in
                guard state.inSend > 0 else { return false }
                state.idleWaiters.append(continuation)
                return true
            }
            if !wait { continuation.resume() }
        }
        do {
            try await flush(timeout: timeout)
        } catch {
            handle.logger.warning("producer closed with messages undelivered", metadata: ["error.type": "\(error)"])
        }
        // Destroys the client and returns only once librdkafka's threads are joined (flags 0, never
        // `RD_KAFKA_DESTROY_F_IMMEDIATE`): after that nothing reads the values lent to it, and only
        // then may `stopped` release the senders, and with them their messages.
        await handle.stop()
        // Senders still waiting get what is known; the messages still pending count as failed.
        let waiting = core.state.withLock { state in
            state.stopped = true
            var waiting: [CheckedContinuation<Void, Never>] = []
            for id in Array(state.batches.keys) {
                if let waiter = state.batches[id]?.waiter {
                    waiting.append(waiter)
                    state.batches[id]?.waiter = nil
                }
            }
            return waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    /// One turn of the event thread: while a sender produces, it stands by (the sender serves the
    /// delivery reports); otherwise it serves one event, or waits up to 100 ms for one.
    private static func turn(core: Core, serve: (OpaquePointer) -> Void) {
        if core.senderServes.load(ordering: .acquiring) {
            _ = core.senderStopped.wait(timeout: .now() + .milliseconds(100))
            // Signals given while this thread was not waiting count for nothing: drop them, so
            // that the next stand-by waits.
            while core.senderStopped.wait(timeout: .now()) == .success {}
            return
        }
        // Events come in bursts: wait up to 1 ms for the next before calling the queue idle, so a
        // burst is served in one piece.
        let queue = core.handle.eventQueue
        var next = rd_kafka_queue_poll(queue, 0) ?? rd_kafka_queue_poll(queue, 1)
        if next == nil {
            // Room waiters are woken whenever the queue went idle: a report served while a waiter
            // registered still counted in the queue length until it was freed.
            wakeRoomWaiters(core: core)
            next = rd_kafka_queue_poll(queue, 100)
        }
        if let next { serve(next) }
    }

    private static func wakeRoomWaiters(core: Core) {
        let rooms = core.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.roomWaiters.removeAll() }
            return state.roomWaiters
        }
        for room in rooms { room.resume() }
    }

    /// Runs on the event thread.
    private static func serve(_ event: OpaquePointer, core: Core) {
        let handle = core.handle
        switch rd_kafka_event_type(event) {
        case RD_KAFKA_EVENT_DR:
            let mask = (UInt(1) << indexBits) - 1
            // Under the lock, librdkafka is only read (the event's messages, the fatal error): none
            // of those calls comes back into this producer.
            let (finished, rooms) = core.state.withLock { state in
                var finished: [CheckedContinuation<Void, Never>] = []
                // Reports come in runs of one batch: its entry is looked up, and its count of
                // messages still pending updated, once per run.
                var run: (id: UInt, batch: Batch?, delivered: Int)?
                func complete(_ run: (id: UInt, batch: Batch?, delivered: Int)?) {
                    guard let run, let batch = run.batch else { return }
                    batch.remaining -= run.delivered
                    guard batch.remaining == 0, let waiter = batch.waiter else { return }
                    finished.append(waiter)
                    batch.waiter = nil
                }
                while let message = rd_kafka_event_message_next(event) {
                    let opaque = UInt(bitPattern: message.pointee._private)
                    let id = opaque >> indexBits
                    if run?.id != id {
                        complete(run)
                        run = (id, state.batches[id], 0)
                    }
                    guard let batch = run?.batch else { continue }
                    if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                        if batch.delivered(
                            Int(opaque & mask), partition: message.pointee.partition, offset: message.pointee.offset)
                        {
                            run?.delivered += 1
                        }
                    } else {
                        let error = deliveryError(message.pointee.err, handle: handle)
                        if error.isFatal { state.fatal = state.fatal ?? error }
                        batch.failed(Int(opaque & mask), error)
                    }
                }
                complete(run)
                defer { state.roomWaiters.removeAll() }
                return (finished, state.roomWaiters)
            }
            for continuation in finished { continuation.resume() }
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

/// A topic's name as a C string, for a run of messages to that topic: made again only when the
/// topic changes. Reading a `String` as a C string in place (`withCString`) would retain and
/// release it around every call into librdkafka.
struct TopicName {
    private var name: String?
    private var cString: ContiguousArray<CChar> = [0]

    /// Makes `topic` the name. (Kept apart from ``withCString(_:)``, so that `topic` is needed
    /// only for the comparison, not across the call that uses the C string.)
    mutating func set(_ topic: String) {
        guard name != topic else { return }
        name = topic
        cString = topic.utf8CString
    }

    /// Calls `body` with the name as a NUL-terminated C string.
    func withCString<R>(_ body: (UnsafePointer<CChar>) -> R) -> R {
        cString.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}

/// The outcomes of one batch `send` (``KafkaProducer``), one per message
/// in the order sent: where it landed, or why it failed. Each element is made when it is read,
/// from what the delivery reports recorded, so a caller that only needs ``failureCount`` or
/// ``failures`` pays nothing for the messages delivered. Holds the messages sent (for their
/// topics) as long as it lives.
///
/// ```swift
/// let reports = await producer.send(messages)
/// for (index, error) in reports.failures { retry.append(messages[index]); logger.warning("\(error)") }
/// ```
public struct KafkaDeliveryReports: RandomAccessCollection, Sendable {
    private let messages: [KafkaOutgoingMessage]
    /// No longer written: the producer let go of it before handing it over.
    private let batch: KafkaProducer.Batch

    init(messages: [KafkaOutgoingMessage], batch: KafkaProducer.Batch) {
        self.messages = messages
        self.batch = batch
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { messages.count }

    /// The outcome of the message at `position`.
    public subscript(position: Int) -> Result<KafkaDeliveryReport, KafkaError> {
        precondition(position >= 0 && position < messages.count, "index out of range")
        switch batch.partitions[position] {
        case KafkaProducer.Batch.pending: return .failure(batch.refusal ?? .closed())
        case KafkaProducer.Batch.failedMark: return .failure(batch.errors[position] ?? .closed())
        case let partition:
            return .success(
                KafkaDeliveryReport(
                    topic: messages[position].topic, partition: partition, offset: batch.offsets[position]))
        }
    }

    /// How many messages failed.
    public var failureCount: Int {
        // A message never reported (the producer closed, or refused the batch) still counts in
        // `remaining`.
        batch.errors.count + batch.remaining
    }

    /// Whether every message was delivered.
    public var allDelivered: Bool { failureCount == 0 }

    /// The messages that failed, by position in the batch, in order, with their errors.
    public var failures: [(index: Int, error: KafkaError)] {
        guard failureCount > 0 else { return [] }
        return indices.compactMap { index in
            let partition = batch.partitions[index]
            guard partition == KafkaProducer.Batch.pending || partition == KafkaProducer.Batch.failedMark,
                case .failure(let error) = self[index]
            else { return nil }
            return (index, error)
        }
    }
}
