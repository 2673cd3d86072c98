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
        /// Set when `close` begins: the event thread stops handing messages to librdkafka, whose
        /// handle is about to be destroyed. Read before each message, without the lock.
        let closing = Atomic(false)

        init(handle: RdKafkaHandle) {
            self.handle = handle
        }
    }

    private var handle: RdKafkaHandle { core.handle }

    private struct State {
        var nextBatch: UInt = 1
        /// The batches not yet done, by id: their senders wait for them.
        var batches: [UInt: Batch] = [:]
        /// The batches whose messages the event thread still has to hand to librdkafka, first
        /// come first served.
        var pending: [Pending] = []
        /// Callers of `flush` waiting for the event thread to hand over what was sent before them,
        /// by a number of their own (so that one whose time is up can leave).
        var flushWaiters: [Int: FlushWaiter] = [:]
        var nextFlushWaiter = 0
        var fatal: KafkaError?
        var closed = false
        /// The handle is destroyed: no delivery report will come any more.
        var stopped = false
    }

    /// A caller of `flush`: waits until every batch numbered below `target` left `pending`; ended
    /// `false` by `timer` at its deadline.
    private struct FlushWaiter {
        let target: UInt
        let continuation: CheckedContinuation<Bool, Never>
        var timer: Task<Void, Never>?

        func resume(_ handedOver: Bool) {
            timer?.cancel()
            continuation.resume(returning: handedOver)
        }
    }

    /// A batch's messages, and how many of them the event thread has handed to librdkafka. Holding
    /// `messages` here and in `send` keeps the values lent to librdkafka where they are.
    private struct Pending {
        let id: UInt
        let batch: Batch
        let messages: [KafkaOutgoingMessage]
        var next = 0
    }

    /// Messages sent together: where each landed (compact, so reports write little), the errors of
    /// those that failed, and the caller waiting for the last of them. Touched only under the
    /// state's lock until it is done (nothing pending); read only after that, through the
    /// ``KafkaDeliveryReports`` its sender returns.
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
    /// At most this many messages are handed to librdkafka in one turn of the event thread, so
    /// that it notices a stop in time, whatever the size of a batch.
    private static let messagesPerTurn = 4096

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
    ///
    /// The producer's own thread hands the messages to librdkafka, batch after batch in the order
    /// the calls came, and serves their delivery reports: librdkafka makes its record of each
    /// message and frees it on that one thread, as in its own poll loop. When librdkafka's queue
    /// is full, that thread waits for reports to make room, and senders wait with it.
    public func send(_ messages: [KafkaOutgoingMessage]) async -> KafkaDeliveryReports {
        guard !messages.isEmpty else { return KafkaDeliveryReports(messages: [], batch: Batch(count: 0)) }
        precondition(messages.count < 1 << Self.indexBits, "at most 16,777,215 messages per batch")
        let batch = Batch(count: messages.count)
        let core = self.core
        var wake = false
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let refusal = core.state.withLock { state -> KafkaError? in
                if let refusal = state.fatal ?? (state.closed ? KafkaError.closed() : nil) { return refusal }
                let id = state.nextBatch
                state.nextBatch &+= 1
                batch.waiter = continuation
                state.batches[id] = batch
                state.pending.append(Pending(id: id, batch: batch, messages: messages))
                wake = state.pending.count == 1
                return nil
            }
            if let refusal {
                batch.refusal = refusal
                continuation.resume()
            } else if wake {
                // Wakes the event thread if it waits for events (with batches pending before this
                // one, it does not wait). Refused once the handle is stopping: `close` then fails
                // what is pending.
                _ = try? core.handle.borrow { _ in rd_kafka_queue_yield(core.handle.eventQueue) }
            }
        }
        // librdkafka reads the messages' values in place (see `produce`) until each is reported
        // or its client is destroyed: `messages` lives at least until here, and the wait above
        // ends only then (never on cancellation).
        withExtendedLifetime(messages) {}
        return KafkaDeliveryReports(messages: messages, batch: batch)
    }

    /// One turn of the event thread: hands the next pending messages to librdkafka, serving the
    /// delivery reports as it goes; then serves what is ready, waiting for it when librdkafka's
    /// queue is full (up to 10 ms) or nothing is pending (up to 100 ms, or until a sender wakes it).
    private static func turn(core: Core, serve: (OpaquePointer) -> Void) {
        let queue = core.handle.eventQueue
        var wait: Int32 = 100
        if let next = nextPending(core: core) {
            var index = next.next
            let end = min(next.messages.count, index + messagesPerTurn)
            let full = next.messages.withUnsafeBufferPointer { messages in
                produceUntilFull(messages, from: &index, to: end, batch: next.id, core: core)
            }
            let (more, done, drained) = core.state.withLock { state in
                var done: CheckedContinuation<Void, Never>?
                if let head = state.pending.first, head.id == next.id {
                    state.pending[0].next = index
                    if index == next.messages.count { state.pending.removeFirst() }
                }
                // Every message failed as it was handed over: no report will finish the batch.
                if next.batch.remaining == 0, state.batches.removeValue(forKey: next.id) != nil {
                    done = next.batch.waiter
                    next.batch.waiter = nil
                }
                return (!state.pending.isEmpty, done, flushWaitersDone(&state))
            }
            done?.resume()
            for waiter in drained { waiter.resume(true) }
            wait = full ? 10 : (more ? 0 : 100)
        }
        if let event = rd_kafka_queue_poll(queue, wait) {
            serve(event)
            core.handle.serveReady { Self.serve($0, core: core) }
        }
    }

    /// The batch whose messages go to librdkafka next, or `nil`. When the producer is closing or
    /// has hit a fatal error, the messages still pending fail with that instead.
    private static func nextPending(core: Core) -> Pending? {
        let closing = core.closing.load(ordering: .acquiring)
        let (next, finished, drained) = core.state.withLock {
            state -> (Pending?, [CheckedContinuation<Void, Never>], [FlushWaiter]) in
            guard let refusal = closing ? .closed() : state.fatal else { return (state.pending.first, [], []) }
            var finished: [CheckedContinuation<Void, Never>] = []
            for pending in state.pending {
                for index in pending.next..<pending.messages.count { pending.batch.failed(index, refusal) }
                if pending.batch.remaining == 0, state.batches.removeValue(forKey: pending.id) != nil,
                    let waiter = pending.batch.waiter
                {
                    finished.append(waiter)
                    pending.batch.waiter = nil
                }
            }
            state.pending.removeAll()
            return (nil, finished, flushWaitersDone(&state))
        }
        for waiter in finished { waiter.resume() }
        for waiter in drained { waiter.resume(true) }
        return next
    }

    /// The callers of `flush` whose batches have all been handed over, taken out of the state to
    /// be woken.
    private static func flushWaitersDone(_ state: inout State) -> [FlushWaiter] {
        guard !state.flushWaiters.isEmpty else { return [] }
        let first = state.pending.first?.id ?? .max
        var done: [FlushWaiter] = []
        for (id, waiter) in state.flushWaiters where waiter.target <= first {
            done.append(waiter)
            state.flushWaiters[id] = nil
        }
        return done
    }

    /// Hands `messages` to librdkafka from `index` up to `end`, counting `index` up, until all are
    /// queued (or failed), the producer is closing, or librdkafka's queue is full. Returns whether
    /// it stopped at a full queue; the message at `index` is then still to be sent.
    private static func produceUntilFull(
        _ messages: UnsafeBufferPointer<KafkaOutgoingMessage>, from index: inout Int, to end: Int, batch: UInt,
        core: Core
    ) -> Bool {
        var queued = 0
        // The topic's name as a C string, made once for each run of messages to the same topic.
        var topic = TopicName()
        while index < end {
            if core.closing.load(ordering: .acquiring) { return false }
            let message = messages.baseAddress! + index
            topic.set(message.pointee.topic)
            let failure = topic.withCString { topic in
                produce(message, topic: topic, opaque: batch << Self.indexBits | UInt(index), handle: core.handle)
            }
            guard let failure else {
                index += 1
                // Reports are served after every 64 messages queued, not after each one: each
                // look at the queue takes its lock, which librdkafka's threads need to hand the
                // reports over.
                queued += 1
                if queued == 64 {
                    core.handle.serveReady { Self.serve($0, core: core) }
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
    private static func produce(
        _ message: UnsafePointer<KafkaOutgoingMessage>, topic: UnsafePointer<CChar>, opaque: UInt,
        handle: RdKafkaHandle
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

    /// Waits until every message sent before the call is delivered or failed (librdkafka's flush
    /// waits for those sent meanwhile too), or `timeout` passed. Cancelling the caller does not
    /// end it.
    ///
    /// - Throws: ``KafkaError`` `_TIMED_OUT` when messages are still queued after `timeout`.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        // First until the event thread has handed every message sent before this call to
        // librdkafka (or failed it: a close or a fatal error fails what is pending at once).
        guard await handedOver(before: deadline) else { throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT) }
        let handle = self.handle
        let milliseconds = Int32(clamping: max(.zero, deadline - clock.now).milliseconds)
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

    /// Waits until the event thread has handed over (or failed) every batch sent before the call,
    /// or the producer stopped: returns `true` then, `false` at `deadline` if that came first.
    private func handedOver(before deadline: ContinuousClock.Instant) async -> Bool {
        let core = self.core
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let id = core.state.withLock { state -> Int? in
                let target = state.nextBatch
                guard !state.stopped, let first = state.pending.first?.id, first < target else { return nil }
                let id = state.nextFlushWaiter
                state.nextFlushWaiter += 1
                state.flushWaiters[id] = FlushWaiter(target: target, continuation: continuation)
                return id
            }
            guard let id else { return continuation.resume(returning: true) }
            // A task of its own: it does not inherit the caller's cancellation.
            let timer = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                guard !Task.isCancelled else { return }
                core.state.withLock { $0.flushWaiters.removeValue(forKey: id) }?.continuation.resume(returning: false)
            }
            let waiting = core.state.withLock { state -> Bool in
                guard state.flushWaiters[id] != nil else { return false }
                state.flushWaiters[id]?.timer = timer
                return true
            }
            if !waiting { timer.cancel() }
        }
    }

    /// Flushes what is queued (at most `timeout`), stops, and frees librdkafka's resources. Sends
    /// still waiting then fail; messages not yet handed to librdkafka fail as closed at once.
    public func close(timeout: Duration = .seconds(30)) async {
        core.closing.store(true, ordering: .releasing)
        let alreadyClosed = core.state.withLock { state -> Bool in
            defer { state.closed = true }
            return state.closed
        }
        guard !alreadyClosed else { return }
        // The event thread fails what is pending on its next turn; wake it for that.
        let core = self.core
        _ = try? core.handle.borrow { _ in rd_kafka_queue_yield(core.handle.eventQueue) }
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
        let (waiting, flushing) = core.state.withLock { state in
            state.stopped = true
            let flushing = Array(state.flushWaiters.values)
            state.flushWaiters.removeAll()
            var waiting: [CheckedContinuation<Void, Never>] = []
            for batch in state.batches.values {
                if let waiter = batch.waiter {
                    waiting.append(waiter)
                    batch.waiter = nil
                }
            }
            state.batches.removeAll()
            state.pending.removeAll()
            return (waiting, flushing)
        }
        for continuation in waiting { continuation.resume() }
        for waiter in flushing { waiter.resume(true) }
    }

    /// Runs on the event thread.
    private static func serve(_ event: OpaquePointer, core: Core) {
        let handle = core.handle
        switch rd_kafka_event_type(event) {
        case RD_KAFKA_EVENT_DR:
            let mask = (UInt(1) << indexBits) - 1
            // Under the lock, librdkafka is only read (the event's messages, the fatal error): none
            // of those calls comes back into this producer.
            let finished = core.state.withLock { state in
                var finished: [CheckedContinuation<Void, Never>] = []
                // Reports come in runs of one batch: its entry is looked up, and its count of
                // messages still pending updated, once per run.
                var run: (id: UInt, batch: Batch?, delivered: Int)?
                func complete(_ run: (id: UInt, batch: Batch?, delivered: Int)?) {
                    guard let run, let batch = run.batch else { return }
                    batch.remaining -= run.delivered
                    guard batch.remaining == 0 else { return }
                    state.batches[run.id] = nil
                    if let waiter = batch.waiter {
                        finished.append(waiter)
                        batch.waiter = nil
                    }
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
                return finished
            }
            for continuation in finished { continuation.resume() }
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
