import CRdKafka
import Foundation
import Logging
import Synchronization

/// A C pointer that may cross threads: librdkafka's handles are thread-safe.
struct SendablePointer: @unchecked Sendable {
    let pointer: OpaquePointer
}

extension String {
    /// The text in a NUL-terminated C buffer.
    init(cBuffer buffer: [CChar]) {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        self = String(decoding: bytes, as: UTF8.self)
    }
}

/// Owns one `rd_kafka_t` and the thread that serves its event queue. librdkafka's polling and
/// callbacks never run on Swift's cooperative thread pool: the thread blocks in
/// `rd_kafka_queue_poll`, which returns as soon as an event arrives, and destroys the handle when
/// it stops, so `rd_kafka_destroy` (which may block) never runs on the pool either.
final class RdKafkaHandle: @unchecked Sendable {
    /// The `rd_kafka_t`. Valid until the event thread has stopped.
    let pointer: OpaquePointer
    /// The queue the event thread serves.
    let eventQueue: OpaquePointer
    let logger: Logger
    private let thread: EventThread
    private let users = Mutex(Users())

    /// Calls into librdkafka from threads other than the event thread, counted so that the
    /// handle is destroyed only when none is in progress.
    private struct Users {
        var count = 0
        var stopping = false
        var idle: [CheckedContinuation<Void, Never>] = []
    }

    /// Creates the client. `events` is the set of `RD_KAFKA_EVENT_*` flags the queue delivers;
    /// librdkafka's log lines and errors always come through it, the log mapped to `logger`.
    init(
        type: rd_kafka_type_t, properties: [String: String], events: Int32, logger: Logger,
        queue: (OpaquePointer) -> OpaquePointer? = { rd_kafka_queue_get_main($0) }
    ) throws(KafkaError) {
        var properties = properties
        properties["log.queue"] = "true"
        let conf = try Self.makeConfiguration(properties)
        rd_kafka_conf_set_events(conf, events | RD_KAFKA_EVENT_LOG | RD_KAFKA_EVENT_ERROR)
        var message = [CChar](repeating: 0, count: 512)
        guard let pointer = rd_kafka_new(type, conf, &message, message.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError.configuration(String(cBuffer: message))
        }
        guard let eventQueue = queue(pointer) else {
            rd_kafka_destroy(pointer)
            throw KafkaError.configuration("librdkafka gave no event queue")
        }
        self.pointer = pointer
        self.eventQueue = eventQueue
        self.logger = logger
        rd_kafka_set_log_queue(pointer, eventQueue)
        thread = EventThread(
            queue: eventQueue, client: pointer,
            name: type == RD_KAFKA_PRODUCER ? "rdkafka-producer" : "rdkafka-consumer")
    }

    /// Starts serving events with `handler`, which runs on the event thread.
    ///
    /// With `turn`, the thread runs `turn` over and over instead of its own loop (serve one event,
    /// or wait up to 100 ms for one): a client that reads a second queue (the consumer's messages)
    /// serves both there, passing the events of ``eventQueue`` to the function it is given. A turn
    /// should return within about 100 ms, so the thread notices a stop.
    func start(
        turn: (@Sendable (_ serve: (OpaquePointer) -> Void) -> Void)? = nil,
        _ handler: @escaping @Sendable (OpaquePointer) -> Void
    ) {
        let logger = self.logger
        thread.start(turn: turn) { event in
            if rd_kafka_event_type(event) == RD_KAFKA_EVENT_LOG {
                Self.log(event, to: logger)
            } else {
                handler(event)
            }
        }
    }

    /// Serves the events waiting in the event queue now, with `handler`, on the calling thread,
    /// without waiting: for a turn of the event thread that serves events between other work (a
    /// producer's delivery reports, between the messages it hands to librdkafka). The caller must
    /// keep the handle from being destroyed meanwhile.
    func serveReady(_ handler: (OpaquePointer) -> Void) {
        while let event = rd_kafka_queue_poll(eventQueue, 0) {
            if rd_kafka_event_type(event) == RD_KAFKA_EVENT_LOG {
                Self.log(event, to: logger)
            } else {
                handler(event)
            }
            rd_kafka_event_destroy(event)
        }
    }

    /// Stops the event thread: runs `lastly` on it, serves events until `until` holds (at most 30 s),
    /// then destroys the client there. Returns when the client is destroyed.
    func stop(lastly: (@Sendable () -> Void)? = nil, until: (@Sendable () -> Bool)? = nil, destroyFlags: Int32 = 0)
        async
    {
        // Refuse new calls, and wait for those in progress (a commit, a metadata request).
        await withCheckedContinuation { continuation in
            let wait = users.withLock { users -> Bool in
                users.stopping = true
                guard users.count > 0 else { return false }
                users.idle.append(continuation)
                return true
            }
            if !wait { continuation.resume() }
        }
        await thread.stop(lastly: lastly, until: until, destroyFlags: destroyFlags)
    }

    /// Runs `body` with the client, unless the handle is stopping (then throws `_DESTROY`). The
    /// handle is not destroyed while `body` runs. For calls from any thread but the event thread.
    func borrow<T>(_ body: (OpaquePointer) -> T) throws(KafkaError) -> T {
        let admitted = users.withLock { users -> Bool in
            guard !users.stopping else { return false }
            users.count += 1
            return true
        }
        guard admitted else { throw KafkaError.closed() }
        defer {
            let idle = users.withLock { users -> [CheckedContinuation<Void, Never>] in
                users.count -= 1
                guard users.count == 0 else { return [] }
                defer { users.idle.removeAll() }
                return users.idle
            }
            for waiter in idle { waiter.resume() }
        }
        return body(pointer)
    }

    /// Runs a call that may block (flush, commit, metadata) on a thread of its own, never on the
    /// cooperative pool.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: body()) }
        }
    }

    static func makeConfiguration(_ properties: [String: String]) throws(KafkaError) -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else { throw KafkaError.configuration("out of memory") }
        var message = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &message, message.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                if KafkaClientConfiguration.secretProperties.contains(key) {
                    throw KafkaError.configuration("invalid value for configuration property \"\(key)\"")
                }
                throw KafkaError.configuration(String(cBuffer: message))
            }
        }
        return conf
    }

    static func log(_ event: OpaquePointer, to logger: Logger) {
        var facility: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        var level: Int32 = 0
        guard rd_kafka_event_log(event, &facility, &text, &level) == 0 else { return }
        let logLevel: Logger.Level
        switch level {
        case ...2: logLevel = .critical
        case 3: logLevel = .error
        case 4: logLevel = .warning
        case 5: logLevel = .notice
        case 6: logLevel = .info
        default: logLevel = .debug
        }
        logger.log(
            level: logLevel, "\(text.map { String(cString: $0) } ?? "")",
            metadata: ["rdkafka.facility": "\(facility.map { String(cString: $0) } ?? "")"])
    }
}

/// The thread that serves one librdkafka queue.
final class EventThread: @unchecked Sendable {
    private let queue: OpaquePointer
    private let client: OpaquePointer
    private let name: String
    private struct State {
        var started = false
        var stopping = false
        var stopped = false
        var lastly: [@Sendable () -> Void] = []
        var until: @Sendable () -> Bool = { true }
        var destroyFlags: Int32 = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    init(queue: OpaquePointer, client: OpaquePointer, name: String) {
        self.queue = queue
        self.client = client
        self.name = name
    }

    func start(
        turn: (@Sendable (_ serve: (OpaquePointer) -> Void) -> Void)?,
        _ handler: @escaping @Sendable (OpaquePointer) -> Void
    ) {
        let begin = state.withLock { state -> Bool in
            guard !state.started else { return false }
            state.started = true
            return true
        }
        guard begin else { return }
        let thread = Thread { [self] in run(turn: turn, handler) }
        thread.name = name
        thread.start()
    }

    private func run(
        turn: (@Sendable (_ serve: (OpaquePointer) -> Void) -> Void)?,
        _ handler: @escaping @Sendable (OpaquePointer) -> Void
    ) {
        let serve = { (event: OpaquePointer) in
            handler(event)
            rd_kafka_event_destroy(event)
        }
        while true {
            if let turn {
                turn(serve)
            } else {
                if let event = rd_kafka_queue_poll(queue, 100) { serve(event) }
            }
            let shutdown = state.withLock { state -> (steps: [@Sendable () -> Void], until: @Sendable () -> Bool)? in
                state.stopping ? (state.lastly, state.until) : nil
            }
            guard let shutdown else { continue }
            for step in shutdown.steps { step() }
            // Serve what the last steps produce (a consumer leaving its group) until they are done.
            let deadline = ContinuousClock.now + .seconds(30)
            while !shutdown.until() && ContinuousClock.now < deadline {
                if let event = rd_kafka_queue_poll(queue, 100) {
                    handler(event)
                    rd_kafka_event_destroy(event)
                }
            }
            while let event = rd_kafka_queue_poll(queue, 0) {
                handler(event)
                rd_kafka_event_destroy(event)
            }
            break
        }
        destroy()
    }

    private func destroy() {
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy_flags(client, state.withLock { $0.destroyFlags })
        // The last steps hold their owner (a consumer's core, which holds this thread): kept,
        // they would keep both alive for good. They are let go of after the lock is released, so
        // that an owner freed with them is not freed under it.
        let (waiters, lastly, until) = state.withLock { state in
            state.stopped = true
            defer {
                state.waiters.removeAll()
                state.lastly.removeAll()
                state.until = { true }
            }
            return (state.waiters, state.lastly, state.until)
        }
        withExtendedLifetime((lastly, until)) {}
        for waiter in waiters { waiter.resume() }
    }

    func stop(lastly: (@Sendable () -> Void)?, until: (@Sendable () -> Bool)?, destroyFlags: Int32) async {
        let notStarted = state.withLock { state -> Bool in
            // A second stop of a handle that never started must not destroy it twice. Once the
            // client is destroyed, `lastly` is dropped, not run: it would call into the client.
            if state.stopped || (!state.started && state.stopping) { return false }
            state.stopping = true
            state.destroyFlags = destroyFlags
            if let lastly { state.lastly.append(lastly) }
            if let until { state.until = until }
            return !state.started
        }
        if notStarted {
            // Nothing serves the queue: run the last steps and destroy on a thread of our own.
            lastly?()
            await RdKafkaHandle.blocking { [self] in destroy() }
            return
        }
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.stopped { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
