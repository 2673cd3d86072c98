import CRdKafka
import Logging
import Synchronization

/// A member of a Kafka consumer group that commits offsets itself, after processing.
///
/// ```swift
/// let consumer = try KafkaConsumer(
///     configuration: .init(bootstrapServers: ["localhost:9092"], groupID: "sagad"), logger: logger)
/// try consumer.subscribe(to: ["saga.commands"])
/// for await message in consumer.messages {
///     try await process(message)
///     try await consumer.commit([KafkaCommitOffset(after: message)])
/// }
/// ```
///
/// Rebalances are handled inside: when partitions are revoked, messages of those partitions that
/// were fetched but not yet read are dropped (the partition's new owner reads them again), and a
/// commit for a partition this member no longer owns is dropped rather than sent. When
/// `maximumBufferedMessages` are waiting to be read, the consumer takes no more from librdkafka
/// until the reader has caught up by half; librdkafka meanwhile fetches ahead only up to its own
/// bounds (`queued.min.messages`, `queued.max.messages.kbytes`). The partitions are not paused for
/// this: a pause drops what librdkafka fetched ahead, and a resume waits for the broker's next
/// fetch round.
public final class KafkaConsumer: Sendable {
    private let core: Core

    private final class Core: Sendable {
        let handle: RdKafkaHandle
        /// Where the assigned partitions' messages arrive (each partition's queue is forwarded
        /// here), apart from the group's events on the handle's event queue, so the event thread
        /// can stop taking messages while it still serves rebalances.
        let messages: SendablePointer
        let state = Mutex(State())
        let maximumBuffered: Int
        /// What only the event thread touches: no lock per message.
        let local = EventThreadLocal()
        let stream: AsyncStream<[KafkaMessage]>
        let continuation: AsyncStream<[KafkaMessage]>.Continuation
        /// `State.revocations`, readable without the lock.
        let revocationCount = Atomic<UInt64>(0)

        init(handle: RdKafkaHandle, messages: OpaquePointer, maximumBuffered: Int) {
            self.handle = handle
            self.messages = SendablePointer(pointer: messages)
            self.maximumBuffered = maximumBuffered
            (stream, continuation) = AsyncStream.makeStream(of: [KafkaMessage].self)
        }
    }

    private struct State {
        /// Each assigned partition and the epoch of its assignment.
        var assignment: [KafkaTopicPartition: UInt64] = [:]
        var epoch: UInt64 = 0
        var buffered = 0
        /// The most messages that were ever waiting for the reader at once.
        var mostBuffered = 0
        /// Set when the buffer filled; the reader wakes the event thread when it has read half.
        var full = false
        var closed = false
        var closing = false
        var lastError: KafkaError?
        /// Moves on whenever partitions are taken away, so the reader checks the messages it holds
        /// again before handing them out.
        var revocations: UInt64 = 0

        /// The messages of `batch` whose partition this member still owns under the assignment
        /// that fetched them. Messages come in runs of one partition: decided once per run.
        /// Usually every message is still owned, and the batch comes back as it is, without a copy.
        func owned(_ batch: [KafkaMessage]) -> [KafkaMessage] {
            var run: (topic: String, partition: Int32, epoch: UInt64, owned: Bool)?
            func isOwned(_ message: KafkaMessage) -> Bool {
                if let run, run.partition == message.partition, run.epoch == message.assignmentEpoch,
                    run.topic == message.topic
                {
                    return run.owned
                }
                let owned =
                    assignment[KafkaTopicPartition(topic: message.topic, partition: message.partition)]
                    == message.assignmentEpoch
                run = (message.topic, message.partition, message.assignmentEpoch, owned)
                return owned
            }
            guard let firstLost = batch.firstIndex(where: { !isOwned($0) }) else { return batch }
            var owned = Array(batch[..<firstLost])
            for message in batch[(firstLost + 1)...] where isOwned(message) { owned.append(message) }
            return owned
        }
    }

    /// The event thread's own state, never touched by another thread.
    private final class EventThreadLocal: @unchecked Sendable {
        /// Messages fetched and not yet handed to the reader.
        var fetched: [KafkaMessage] = []
        /// Room for the messages one call takes from librdkafka.
        let slots = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: batchSize)
        /// Whether the message queue is released (the consumer is stopping).
        var released = false

        deinit { slots.deallocate() }
        /// The epoch of each assigned partition, as the event thread last set it.
        var epochs: [KafkaTopicPartition: UInt64] = [:] {
            didSet { cache.removeAll() }
        }
        /// Topic name and epoch by librdkafka's topic handle and partition: no string work per message.
        var cache: [CacheKey: (topic: String, epoch: UInt64)] = [:] {
            didSet { last = nil }
        }

        struct CacheKey: Hashable {
            var topic: OpaquePointer
            var partition: Int32
        }

        /// The last entry looked up: a fetch delivers a partition's messages one after another.
        var last: (key: CacheKey, topic: String, epoch: UInt64)?

        func lookup(_ topic: OpaquePointer?, _ partition: Int32) -> (topic: String, epoch: UInt64) {
            guard let topic else { return ("", 0) }
            let key = CacheKey(topic: topic, partition: partition)
            if let last, last.key == key { return (last.topic, last.epoch) }
            let entry: (topic: String, epoch: UInt64)
            if let hit = cache[key] {
                entry = hit
            } else {
                let name = String(cString: rd_kafka_topic_name(topic))
                entry = (name, epochs[KafkaTopicPartition(topic: name, partition: partition)] ?? 0)
                cache[key] = entry
            }
            last = (key, entry.topic, entry.epoch)
            return entry
        }
    }

    /// The most messages handed to the reader at once.
    private static let batchSize = 512

    /// Creates the consumer; it joins its group on ``subscribe(to:)``.
    ///
    /// - Throws: ``KafkaError`` when a property is invalid, with librdkafka's message.
    public init(configuration: KafkaConsumerConfiguration, logger: Logger) throws(KafkaError) {
        let handle = try RdKafkaHandle(
            type: RD_KAFKA_CONSUMER, properties: configuration.librdkafkaProperties,
            events: RD_KAFKA_EVENT_REBALANCE | RD_KAFKA_EVENT_OFFSET_COMMIT, logger: logger,
            queue: { client in
                rd_kafka_poll_set_consumer(client)
                return rd_kafka_queue_get_consumer(client)
            })
        let messages: OpaquePointer = rd_kafka_queue_new(handle.pointer)
        // An event for the group wakes the event thread from its wait for messages.
        rd_kafka_queue_cb_event_enable(
            handle.eventQueue, { _, messages in messages.map { rd_kafka_queue_yield(OpaquePointer($0)) } },
            UnsafeMutableRawPointer(messages))
        let core = Core(
            handle: handle, messages: messages, maximumBuffered: max(1, configuration.maximumBufferedMessages))
        self.core = core
        handle.start(
            idle: { Self.handOver(core: core) }, turn: { serve in Self.turn(core: core, serve: serve) },
            { event in Self.serve(event, core: core) })
    }

    deinit {
        let core = self.core
        Task.detached { await Self.shutDown(core) }
    }

    /// Joins the group for `topics`. Partitions are assigned in the background.
    public func subscribe(to topics: [String]) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let code = try core.handle.borrow { rd_kafka_subscribe($0, list) }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code) }
    }

    /// The messages, in order per partition. Ends when the consumer is closed.
    public var messages: KafkaMessageSequence { KafkaMessageSequence(consumer: self) }

    /// The partitions this member owns now.
    public var assignment: Set<KafkaTopicPartition> { core.state.withLock { Set($0.assignment.keys) } }

    /// The latest error the group reported (for example all brokers down), if any.
    public var lastError: KafkaError? { core.state.withLock { $0.lastError } }

    /// Commits `offsets` (each the offset of the next message to read) and returns when the group
    /// coordinator stored them. Offsets of partitions this member no longer owns are dropped, not
    /// sent: they belong to the partition's new owner now. Returns the offsets that were dropped.
    ///
    /// - Throws: ``KafkaError`` when the commit failed; the offsets may or may not be stored.
    @discardableResult
    public func commit(_ offsets: [KafkaCommitOffset]) async throws -> [KafkaCommitOffset] {
        let owned = core.state.withLock { $0.assignment }
        var latest: [KafkaTopicPartition: Int64] = [:]
        var dropped: [KafkaCommitOffset] = []
        for offset in offsets {
            guard owned[offset.topicPartition] != nil else {
                dropped.append(offset)
                continue
            }
            latest[offset.topicPartition] = max(latest[offset.topicPartition] ?? 0, offset.offset)
        }
        if !dropped.isEmpty {
            core.handle.logger.debug(
                "commit dropped for partitions no longer owned", metadata: ["kafka.offsets": "\(dropped.count)"])
        }
        guard !latest.isEmpty else { return dropped }
        let handle = core.handle
        let entries = latest.map { ($0.key.topic, $0.key.partition, $0.value) }
        let result = await RdKafkaHandle.blocking { () -> Result<rd_kafka_resp_err_t, KafkaError> in
            let list = rd_kafka_topic_partition_list_new(Int32(entries.count))
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for (topic, partition, offset) in entries {
                rd_kafka_topic_partition_list_add(list, topic, partition)?.pointee.offset = offset
            }
            do throws(KafkaError) {
                return .success(try handle.borrow { rd_kafka_commit($0, list, 0) })
            } catch {
                return .failure(error)
            }
        }
        let code = try result.get()
        if code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR__NO_OFFSET { throw KafkaError(code) }
        return dropped
    }

    /// The committed offsets of `partitions` (the next offset to read; `nil` when none is stored).
    public func committed(_ partitions: [KafkaTopicPartition], timeout: Duration = .seconds(10)) async throws
        -> [KafkaTopicPartition: Int64]
    {
        let handle = core.handle
        let milliseconds = Int32(clamping: timeout.milliseconds)
        let result = await RdKafkaHandle.blocking { () -> Result<[KafkaTopicPartition: Int64], KafkaError> in
            let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for partition in partitions {
                rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition)
            }
            let code: rd_kafka_resp_err_t
            do throws(KafkaError) {
                code = try handle.borrow { rd_kafka_committed($0, list, milliseconds) }
            } catch {
                return .failure(error)
            }
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return .failure(KafkaError(code)) }
            var offsets: [KafkaTopicPartition: Int64] = [:]
            for index in 0..<Int(list.pointee.cnt) {
                let element = list.pointee.elems[index]
                if element.offset >= 0 {
                    offsets[KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition)] =
                        element.offset
                }
            }
            return .success(offsets)
        }
        return try result.get()
    }

    /// Stops fetching from `partitions` until ``resume(_:)``. May wait briefly for librdkafka's
    /// broker threads.
    public func pause(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        try core.handle.borrow { client in Self.setPaused(true, partitions, client: client) }
    }

    /// Fetches from `partitions` again. May wait briefly for librdkafka's broker threads.
    public func resume(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        try core.handle.borrow { client in Self.setPaused(false, partitions, client: client) }
    }

    /// Leaves the group (the revoked partitions are handed to the other members at once), stops and
    /// frees librdkafka's resources. ``messages`` ends.
    public func close() async {
        await Self.shutDown(core)
    }

    /// The most messages that were ever waiting for the reader at once: never more than
    /// `maximumBufferedMessages`.
    package var mostBufferedMessages: Int { core.state.withLock { $0.mostBuffered } }

    /// Test hook: stops as if the process died — no commit, no leaving the group, so the group
    /// notices only when the session times out.
    package func crashForTesting() async {
        let first = core.state.withLock { state -> Bool in
            defer { state.closing = true }
            return !state.closing
        }
        guard first else { return }
        let core = self.core
        await core.handle.stop(
            lastly: { Self.releaseMessageQueue(core: core) }, destroyFlags: RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE)
        core.state.withLock { $0.closed = true }
        core.continuation.finish()
    }

    private static func shutDown(_ core: Core) async {
        let first = core.state.withLock { state -> Bool in
            defer { state.closing = true }
            return !state.closing
        }
        guard first else { return }
        let client = SendablePointer(pointer: core.handle.pointer)
        let queue = SendablePointer(pointer: core.handle.eventQueue)
        let refused = Atomic(false)
        // Leaving the group runs on the event thread, whose queue receives the revocation; the
        // handle is then destroyed without a second close.
        await core.handle.stop(
            lastly: {
                Self.releaseMessageQueue(core: core)
                if let error = rd_kafka_consumer_close_queue(client.pointer, queue.pointer) {
                    refused.store(true, ordering: .releasing)
                    core.handle.logger.warning(
                        "consumer close refused", metadata: ["error.type": "\(KafkaError(consuming: error))"])
                }
            },
            until: { refused.load(ordering: .acquiring) || rd_kafka_consumer_closed(client.pointer) != 0 },
            destroyFlags: RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE)
        core.state.withLock { $0.closed = true }
        core.continuation.finish()
    }

    private static func setPaused(_ paused: Bool, _ partitions: [KafkaTopicPartition], client: OpaquePointer) {
        guard !partitions.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in partitions { rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition) }
        // librdkafka reports per partition; only a partition it does not know fails.
        _ = paused ? rd_kafka_pause_partitions(client, list) : rd_kafka_resume_partitions(client, list)
    }

    /// The reader took `batch`: count it out of the buffer, resume fetching when the buffer has
    /// drained to half, and keep only the messages of partitions this member still owns. Returns
    /// them with the revocation count they were checked at.
    fileprivate func took(_ batch: [KafkaMessage]) -> (messages: [KafkaMessage], revocations: UInt64) {
        let (owned, revocations, resume) = core.state.withLock { state -> ([KafkaMessage], UInt64, Bool) in
            state.buffered -= batch.count
            var resume = false
            if state.full && state.buffered <= core.maximumBuffered / 2 {
                state.full = false
                resume = true
            }
            return (state.owned(batch), state.revocations, resume)
        }
        // Wake the event thread from its wait on the group's events: there is room again.
        if resume { _ = try? core.handle.borrow { _ in rd_kafka_queue_yield(core.handle.eventQueue) } }
        return (owned, revocations)
    }

    /// How often partitions were taken away so far (one atomic read: checked per message).
    fileprivate var revocations: UInt64 { core.revocationCount.load(ordering: .acquiring) }

    /// The messages of `messages` still owned, after a rebalance took partitions away while the
    /// reader held them; and the revocation count they were checked at.
    fileprivate func stillOwned(_ messages: [KafkaMessage]) -> (messages: [KafkaMessage], revocations: UInt64) {
        core.state.withLock { state in (state.owned(messages), state.revocations) }
    }

    /// Runs on the event thread: hands the fetched messages to the reader, and notes when the
    /// reader has fallen `maximumBufferedMessages` behind.
    private static func handOver(core: Core) {
        let batch = core.local.fetched
        guard !batch.isEmpty else { return }
        core.local.fetched.removeAll(keepingCapacity: true)
        core.state.withLock { state in
            state.buffered += batch.count
            state.mostBuffered = max(state.mostBuffered, state.buffered)
            if state.buffered >= core.maximumBuffered { state.full = true }
        }
        core.continuation.yield(batch)
    }

    /// One turn of the event thread: serves the group's events, then takes the messages there is
    /// room for, or waits up to 100 ms for either.
    private static func turn(core: Core, serve: (OpaquePointer) -> Void) {
        let events = core.handle.eventQueue
        var served = false
        while let event = rd_kafka_queue_poll(events, 0) {
            serve(event)
            served = true
        }
        guard !core.local.released else {
            if let event = rd_kafka_queue_poll(events, 100) { serve(event) }
            return
        }
        let room = core.maximumBuffered - core.local.fetched.count - core.state.withLock { $0.buffered }
        guard room > 0 else {
            // The reader is behind: take nothing; it wakes this thread when it has read half.
            handOver(core: core)
            if let event = rd_kafka_queue_poll(events, 100) { serve(event) }
            return
        }
        let wanted = min(room, batchSize)
        let messages = core.messages.pointer
        var count = rd_kafka_consume_batch_queue(messages, 0, core.local.slots, wanted)
        if count <= 0 && !served {
            // Nothing to do: hand on what there is, then wait for one message (or for an event of
            // the group, which yields the message queue).
            handOver(core: core)
            count = rd_kafka_consume_batch_queue(messages, 100, core.local.slots, 1)
        }
        for index in 0..<max(0, count) {
            guard let message = core.local.slots[index] else { continue }
            deliver(UnsafePointer(message), core: core)
            rd_kafka_message_destroy(message)
        }
        // The queue is drained: hand on at once rather than wait for a fuller batch.
        if count < wanted { handOver(core: core) }
    }

    /// Runs on the event thread when the consumer stops: no wake-ups into the message queue any
    /// more, then the queue is let go (librdkafka frees it with the partitions that forward to it).
    private static func releaseMessageQueue(core: Core) {
        guard !core.local.released else { return }
        core.local.released = true
        rd_kafka_queue_cb_event_enable(core.handle.eventQueue, nil, nil)
        rd_kafka_queue_destroy(core.messages.pointer)
    }

    fileprivate var stream: AsyncStream<[KafkaMessage]> { core.stream }

    /// Runs on the event thread.
    private static func serve(_ event: OpaquePointer, core: Core) {
        switch rd_kafka_event_type(event) {
        case RD_KAFKA_EVENT_FETCH:
            while let message = rd_kafka_event_message_next(event) {
                deliver(message, core: core)
            }
        case RD_KAFKA_EVENT_REBALANCE:
            rebalance(event, core: core)
        case RD_KAFKA_EVENT_OFFSET_COMMIT:
            break
        case RD_KAFKA_EVENT_ERROR:
            let code = rd_kafka_event_error(event)
            let text = rd_kafka_event_error_string(event).map { String(cString: $0) } ?? ""
            let error = KafkaError(code, message: text, isFatal: rd_kafka_event_error_is_fatal(event) != 0)
            core.state.withLock { $0.lastError = error }
            if error.isFatal {
                // Nothing more will come: end the messages, so a reader does not wait forever.
                handOver(core: core)
                core.continuation.finish()
            }
            core.handle.logger.warning(
                "consumer error", metadata: ["error.type": "\(error.name)", "error.message": "\(text)"])
        default:
            break
        }
    }

    private static func deliver(_ pointer: UnsafePointer<rd_kafka_message_t>, core: Core) {
        let raw = pointer.pointee
        if raw.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if raw.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                core.handle.logger.warning(
                    "consumer fetch error", metadata: ["error.type": "\(KafkaError(raw.err).name)"])
            }
            return
        }
        let (topic, epoch) = core.local.lookup(raw.rkt, raw.partition)
        let key = raw.key.map { Array(UnsafeRawBufferPointer(start: $0, count: raw.key_len)) }
        let value = raw.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: raw.len)) }
        var headers: [KafkaHeader] = []
        var list: OpaquePointer?
        if rd_kafka_message_headers(pointer, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
            var index = 0
            var name: UnsafePointer<CChar>?
            var bytes: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(list, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                headers.append(
                    KafkaHeader(
                        name: name.map { String(cString: $0) } ?? "",
                        value: bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
                index += 1
            }
        }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(pointer, &timestampType)
        var message = KafkaMessage(
            topic: topic, partition: raw.partition, offset: raw.offset, key: key, value: value, headers: headers,
            timestamp: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp)
        message.assignmentEpoch = epoch
        core.local.fetched.append(message)
        if core.local.fetched.count >= batchSize { handOver(core: core) }
    }

    private static func rebalance(_ event: OpaquePointer, core: Core) {
        let client = core.handle.pointer
        let code = rd_kafka_event_error(event)
        let list = rd_kafka_event_topic_partition_list(event)
        var partitions: [KafkaTopicPartition] = []
        if let list {
            for index in 0..<Int(list.pointee.cnt) {
                let element = list.pointee.elems[index]
                partitions.append(
                    KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition))
            }
        }
        let cooperative = String(cString: rd_kafka_rebalance_protocol(client)) == "COOPERATIVE"
        switch code {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            // Messages fetched under the old assignment go first, with their old epochs.
            handOver(core: core)
            let assignment = core.state.withLock { state in
                state.epoch += 1
                if !cooperative && !state.assignment.isEmpty {
                    state.assignment.removeAll()
                    state.revocations += 1
                    core.revocationCount.store(state.revocations, ordering: .releasing)
                }
                for partition in partitions { state.assignment[partition] = state.epoch }
                return state.assignment
            }
            core.local.epochs = assignment
            if let list, !core.local.released {
                // The partitions' messages go to the message queue, before fetching starts.
                for index in 0..<Int(list.pointee.cnt) {
                    let element = list.pointee.elems[index]
                    guard let queue = rd_kafka_queue_get_partition(client, element.topic, element.partition)
                    else { continue }
                    rd_kafka_queue_forward(queue, core.messages.pointer)
                    rd_kafka_queue_destroy(queue)
                }
            }
            if cooperative {
                if let error = rd_kafka_incremental_assign(client, list) {
                    logFailure(KafkaError(consuming: error), core: core)
                }
            } else {
                let result = rd_kafka_assign(client, list)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR { logFailure(KafkaError(result), core: core) }
            }
            core.handle.logger.info(
                "partitions assigned", metadata: ["kafka.partitions": "\(partitions.map(\.description))"])
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            handOver(core: core)
            core.local.epochs = core.state.withLock { state in
                if cooperative {
                    for partition in partitions { state.assignment[partition] = nil }
                } else {
                    state.assignment.removeAll()
                }
                state.revocations += 1
                core.revocationCount.store(state.revocations, ordering: .releasing)
                return state.assignment
            }
            if cooperative {
                if let error = rd_kafka_incremental_unassign(client, list) {
                    logFailure(KafkaError(consuming: error), core: core)
                }
            } else {
                let result = rd_kafka_assign(client, nil)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR { logFailure(KafkaError(result), core: core) }
            }
            core.handle.logger.info(
                "partitions revoked", metadata: ["kafka.partitions": "\(partitions.map(\.description))"])
        default:
            // A rebalance error: give everything up; the group assigns again.
            handOver(core: core)
            core.state.withLock { state in
                state.assignment.removeAll()
                state.revocations += 1
                core.revocationCount.store(state.revocations, ordering: .releasing)
            }
            core.local.epochs.removeAll()
            _ = rd_kafka_assign(client, nil)
            logFailure(KafkaError(code), core: core)
        }
    }

    private static func logFailure(_ error: KafkaError, core: Core) {
        core.handle.logger.warning("rebalance step failed", metadata: ["error.type": "\(error.name)"])
    }
}

/// The messages of a ``KafkaConsumer``, as an `AsyncSequence`. Iterate it from one task.
public struct KafkaMessageSequence: AsyncSequence, Sendable {
    public typealias Element = KafkaMessage
    let consumer: KafkaConsumer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: KafkaConsumer
        var base: AsyncStream<[KafkaMessage]>.AsyncIterator
        var batch: [KafkaMessage] = []
        var position = 0
        /// The revocation count `batch` was checked at.
        var revocations: UInt64 = 0

        public mutating func next() async -> KafkaMessage? {
            await next(isolation: #isolation)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> KafkaMessage? {
            while true {
                while position == batch.count {
                    guard let fetched = await base.next(isolation: actor) else { return nil }
                    (batch, revocations) = consumer.took(fetched)
                    position = 0
                }
                // A rebalance took partitions away since the batch was checked: what is left of it
                // is checked again, so no message of a partition now another member's comes out.
                if consumer.revocations != revocations {
                    (batch, revocations) = consumer.stillOwned(Array(batch[position...]))
                    position = 0
                    continue
                }
                defer { position += 1 }
                return batch[position]
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(consumer: consumer, base: consumer.stream.makeAsyncIterator())
    }
}
