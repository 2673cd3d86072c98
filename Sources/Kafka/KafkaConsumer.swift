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
/// commit for a partition this member no longer owns is dropped rather than sent.
///
/// The reader takes messages straight from librdkafka, up to `maximumBufferedMessages` (at most
/// 512) at a time, on its own task and without blocking: what it has not taken stays in
/// librdkafka, which fetches ahead only up to its own bounds (`queued.min.messages`,
/// `queued.max.messages.kbytes`). Only when librdkafka holds nothing does the reader wait, and then
/// the consumer's event thread, which serves the group's events all the time, takes the next
/// messages for it. The partitions are never paused for back-pressure: a pause drops what
/// librdkafka fetched ahead, and a resume waits for the broker's next fetch round.
public final class KafkaConsumer: Sendable {
    private let core: Core

    private final class Core: Sendable {
        let handle: RdKafkaHandle
        /// Where the assigned partitions' messages arrive (each partition's queue is forwarded
        /// here), apart from the group's events on the handle's event queue.
        let messages: SendablePointer
        let state = Mutex(State())
        /// The most messages taken from librdkafka at once.
        let batchLimit: Int
        /// Room for the messages the reader takes (used under the state's lock).
        let readerSlots: Slots
        /// Room for the messages the event thread takes for a waiting reader (the event thread's alone).
        let eventSlots: Slots

        init(handle: RdKafkaHandle, messages: OpaquePointer, batchLimit: Int) {
            self.handle = handle
            self.messages = SendablePointer(pointer: messages)
            self.batchLimit = batchLimit
            readerSlots = Slots(capacity: batchLimit)
            eventSlots = Slots(capacity: batchLimit)
        }
    }

    /// Room for the pointers that one `rd_kafka_consume_batch_queue` call fills.
    private final class Slots: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>
        init(capacity: Int) { pointer = .allocate(capacity: capacity) }
        deinit { pointer.deallocate() }
    }

    /// Messages taken from librdkafka and not yet handed out, with the assignment they were taken
    /// under. Each is destroyed once handed out or dropped, and all before the client is.
    private struct Taken: @unchecked Sendable {
        var messages: [UnsafeMutablePointer<rd_kafka_message_t>]
        var next = 0
        var assignment: [KafkaTopicPartition: UInt64]
        /// `State.generation` when they were taken.
        var generation: Generation

        init(_ slots: Slots, count: Int, under state: State) {
            messages = (0..<count).compactMap { slots.pointer[$0] }
            assignment = state.assignment
            generation = state.generation
        }

        /// Whether messages remain to be handed out or destroyed.
        var hasMore: Bool { next < messages.count }

        /// The next message, now the caller's to destroy.
        mutating func pop() -> UnsafeMutablePointer<rd_kafka_message_t>? {
            guard next < messages.count else { return nil }
            defer { next += 1 }
            return messages[next]
        }

        /// Destroys the messages not handed out.
        mutating func destroy() {
            while let message = pop() { rd_kafka_message_destroy(message) }
        }
    }

    /// Moves on with every change of the assignment.
    struct Generation: Equatable {
        var epoch: UInt64
        var revocations: UInt64
    }

    /// What the reader gets when it asks for a message.
    @usableFromInline
    enum Next {
        case message(KafkaMessage)
        /// librdkafka holds nothing right now.
        case none
        /// The consumer closed (or hit a fatal error): nothing more will come.
        case ended
    }

    private struct State {
        /// Each assigned partition and the epoch of its assignment.
        var assignment: [KafkaTopicPartition: UInt64] = [:]
        var epoch: UInt64 = 0
        /// How often partitions were taken away.
        var revocations: UInt64 = 0
        /// The most messages taken from librdkafka at once.
        var mostBuffered = 0
        var closed = false
        var closing = false
        /// No message will come any more: the consumer closed, or hit a fatal error.
        var ended = false
        var lastError: KafkaError?
        /// The reader, waiting because librdkafka held no message.
        var waiter: CheckedContinuation<Void, Never>?
        /// The messages the reader is handing out, in order; moved out while it hands them out.
        var reading: Taken?
        /// Messages the event thread took for the waiting reader.
        var handed: Taken?
        /// Messages that reached the group's event queue instead of the message queue, copied out.
        var early: [KafkaMessage] = []
        /// The message queue is let go (the consumer is stopping): nothing may be taken from it.
        var released = false
        /// The event thread is taking messages for a reader that waited: nobody else takes any
        /// from librdkafka meanwhile, or a later message could be handed out before them.
        var taking = false
        /// Errors librdkafka reported instead of messages, logged once the lock is let go.
        var fetchErrors: [rd_kafka_resp_err_t] = []
        var cache = TopicCache()

        var generation: Generation { Generation(epoch: epoch, revocations: revocations) }

        /// The reader's next message, copied out of librdkafka's buffers: from the messages it is
        /// reading, those the event thread took for it, or what librdkafka holds now (taken
        /// without waiting). A message is handed out only while its partition is still assigned
        /// under the assignment it was fetched under, so none of a partition now another
        /// member's comes out.
        mutating func next(core: Core) -> Next {
            while true {
                if var taken = reading.take() {
                    if let message = handOutNext(of: &taken) {
                        if taken.hasMore { reading = taken }
                        return .message(message)
                    }
                    continue
                }
                switch refill(core: core) {
                case .reading: continue
                case .message(let message): return .message(message)
                case .none: return .none
                case .ended: return .ended
                }
            }
        }

        /// Appends the reader's next messages to `batch`, up to `limit` in all, as ``next(core:)``
        /// would hand them out one by one; `true` when the consumer ended.
        mutating func fill(_ batch: inout [KafkaMessage], limit: Int, core: Core) -> Bool {
            while batch.count < limit {
                if var taken = reading.take() {
                    while batch.count < limit, let message = handOutNext(of: &taken) { batch.append(message) }
                    if taken.hasMore { reading = taken }
                    continue
                }
                switch refill(core: core) {
                case .reading: continue
                case .message(let message): batch.append(message)
                case .none: return false
                case .ended: return true
                }
            }
            return false
        }

        /// What ``refill(core:)`` found.
        private enum Refill {
            /// Messages to read, in ``reading``.
            case reading
            /// A message that reached the group's queue.
            case message(KafkaMessage)
            case none
            case ended
        }

        /// Once ``reading`` is done: a message that reached the group's queue, the messages the
        /// event thread took for the reader, or those librdkafka holds now (taken without waiting).
        private mutating func refill(core: Core) -> Refill {
            assert(reading == nil, "refill would drop the messages still in reading")
            while !early.isEmpty {
                let message = early.removeFirst()
                let partition = KafkaTopicPartition(topic: message.topic, partition: message.partition)
                if assignment[partition] == message.assignmentEpoch { return .message(message) }
            }
            if let handed {
                reading = handed
                self.handed = nil
                return .reading
            }
            guard !ended, !released else { return .ended }
            guard !taking else { return .none }
            let count = rd_kafka_consume_batch_queue(
                core.messages.pointer, 0, core.readerSlots.pointer, core.batchLimit)
            guard count > 0 else { return .none }
            reading = Taken(core.readerSlots, count: count, under: self)
            mostBuffered = max(mostBuffered, count)
            return .reading
        }

        /// The next message of `taken` that may be handed out, copied out: one of a partition still
        /// assigned under the assignment it was taken under. `taken` is moved out of ``reading``
        /// meanwhile, so nothing of it is copied per message.
        private mutating func handOutNext(of taken: inout Taken) -> KafkaMessage? {
            cache.use(taken.generation)
            // A rebalance since the messages were taken: is the partition still this member's?
            let rebalanced = taken.generation != generation
            while let pointer = taken.pop() {
                defer { rd_kafka_message_destroy(pointer) }
                let raw = pointer.pointee
                if raw.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    if raw.err != RD_KAFKA_RESP_ERR__PARTITION_EOF { fetchErrors.append(raw.err) }
                    continue
                }
                let (topic, epoch) = cache.lookup(raw.rkt, raw.partition, in: taken.assignment)
                guard let epoch else { continue }
                if rebalanced && assignment[KafkaTopicPartition(topic: topic, partition: raw.partition)] != epoch {
                    continue
                }
                return KafkaConsumer.copy(pointer, topic: topic, epoch: epoch)
            }
            return nil
        }
    }

    /// Topic names and assignment epochs by librdkafka's topic handle and partition: no string
    /// work per message.
    struct TopicCache {
        struct Key: Hashable {
            var topic: OpaquePointer
            var partition: Int32
        }

        var generation = Generation(epoch: .max, revocations: .max)
        var entries: [Key: (topic: String, epoch: UInt64?)] = [:]
        /// The last entry looked up: a fetch delivers a partition's messages one after another.
        var last: (key: Key, topic: String, epoch: UInt64?)?

        /// The topic of a message and the epoch of its partition's assignment in `assignment`;
        /// `nil` for a partition that is not assigned.
        mutating func lookup(
            _ topic: OpaquePointer?, _ partition: Int32, in assignment: [KafkaTopicPartition: UInt64]
        ) -> (topic: String, epoch: UInt64?) {
            guard let topic else { return ("", nil) }
            let key = Key(topic: topic, partition: partition)
            if let last, last.key == key { return (last.topic, last.epoch) }
            let entry: (topic: String, epoch: UInt64?)
            if let hit = entries[key] {
                entry = hit
            } else {
                let name = String(cString: rd_kafka_topic_name(topic))
                entry = (name, assignment[KafkaTopicPartition(topic: name, partition: partition)])
                entries[key] = entry
            }
            last = (key, entry.topic, entry.epoch)
            return entry
        }

        /// Forgets what an earlier assignment said.
        mutating func use(_ generation: Generation) {
            guard generation != self.generation else { return }
            self.generation = generation
            entries.removeAll()
            last = nil
        }
    }

    /// The most messages taken from librdkafka at once.
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
            handle: handle, messages: messages,
            batchLimit: min(Self.batchSize, max(1, configuration.maximumBufferedMessages)))
        self.core = core
        handle.start(turn: { serve in Self.turn(core: core, serve: serve) }, { event in Self.serve(event, core: core) })
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

    /// The messages in batches: each batch holds what is there when it is asked for, up to
    /// `maximumCount` messages (never an empty batch), in order per partition. A batch costs one
    /// lock and one suspension point instead of one per message, and suits a reader that
    /// processes messages in batches anyway (one database transaction per batch). Ends when the
    /// consumer is closed. Iterate either this or ``messages``, from one task.
    public func batches(maximumCount: Int = 512) -> KafkaMessageBatchSequence {
        KafkaMessageBatchSequence(consumer: self, maximumCount: max(1, maximumCount))
    }

    /// The partitions this member owns now.
    public var assignment: Set<KafkaTopicPartition> { core.state.withLock { Set($0.assignment.keys) } }

    /// How far behind this member's reader is, per assigned partition: the partition's end (its
    /// high watermark as librdkafka last learned it from a fetch; no request is sent) minus the
    /// reader's position. A partition librdkafka knows no end of yet is left out.
    public func lag() -> [KafkaTopicPartition: Int64] {
        let assigned = core.state.withLock { Array($0.assignment.keys) }
        guard !assigned.isEmpty else { return [:] }
        let measured = try? core.handle.borrow { client -> [KafkaTopicPartition: Int64] in
            let list = rd_kafka_topic_partition_list_new(Int32(assigned.count))
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for partition in assigned {
                rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition)
            }
            _ = rd_kafka_position(client, list)
            guard let list else { return [:] }
            var result: [KafkaTopicPartition: Int64] = [:]
            for index in 0..<Int(list.pointee.cnt) {
                let element = list.pointee.elems[index]
                var low: Int64 = 0
                var high: Int64 = 0
                guard
                    rd_kafka_get_watermark_offsets(client, element.topic, element.partition, &low, &high)
                        == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0
                else { continue }
                // No position yet (nothing read): the reader is behind by everything there is.
                let position = element.offset >= 0 ? element.offset : max(0, low)
                result[KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition)] =
                    max(0, high - position)
            }
            return result
        }
        return measured ?? [:]
    }

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

    /// The most messages the reader took from librdkafka at once: never more than
    /// `maximumBufferedMessages`.
    package var mostBufferedMessages: Int { core.state.withLock { $0.mostBuffered } }

    /// Whether a reader waits for messages now.
    package var readerIsWaiting: Bool { core.state.withLock { $0.waiter != nil } }

    /// How many entries librdkafka holds for the reader: the messages fetched and not yet taken,
    /// and a few entries of its own.
    package var queuedMessages: Int {
        (try? core.handle.borrow { _ in Int(rd_kafka_queue_length(core.messages.pointer)) }) ?? 0
    }

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
        Self.end(core, closed: true)
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
        Self.end(core, closed: true)
    }

    /// No message will come any more: a reader waiting is woken, and finds the end.
    private static func end(_ core: Core, closed: Bool) {
        let waiter = core.state.withLock { state in
            state.ended = true
            if closed { state.closed = true }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    private static func setPaused(_ paused: Bool, _ partitions: [KafkaTopicPartition], client: OpaquePointer) {
        guard !partitions.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in partitions { rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition) }
        // librdkafka reports per partition; only a partition it does not know fails.
        _ = paused ? rd_kafka_pause_partitions(client, list) : rd_kafka_resume_partitions(client, list)
    }

    /// Runs on the reader's task: the next message, without waiting.
    @usableFromInline
    func nextMessage() -> Next {
        let core = self.core
        let (next, errors) = core.state.withLock { state -> (Next, [rd_kafka_resp_err_t]) in
            let next = state.next(core: core)
            guard !state.fetchErrors.isEmpty else { return (next, []) }
            defer { state.fetchErrors.removeAll() }
            return (next, state.fetchErrors)
        }
        for error in errors {
            core.handle.logger.warning("consumer fetch error", metadata: ["error.type": "\(KafkaError(error).name)"])
        }
        return next
    }

    /// Runs on the reader's task: up to `limit` messages that are there now, without waiting; an
    /// empty batch when there are none yet, `nil` when the consumer ended. One lock for the batch.
    @usableFromInline
    func nextBatch(limit: Int) -> [KafkaMessage]? {
        let core = self.core
        let (batch, errors) = core.state.withLock { state -> ([KafkaMessage]?, [rd_kafka_resp_err_t]) in
            var batch: [KafkaMessage] = []
            batch.reserveCapacity(min(limit, core.batchLimit))
            let ended = state.fill(&batch, limit: limit, core: core)
            let result = ended && batch.isEmpty ? nil : batch
            guard !state.fetchErrors.isEmpty else { return (result, []) }
            defer { state.fetchErrors.removeAll() }
            return (result, state.fetchErrors)
        }
        for error in errors {
            core.handle.logger.warning("consumer fetch error", metadata: ["error.type": "\(KafkaError(error).name)"])
        }
        return batch
    }

    /// Runs on the reader's task when librdkafka held nothing: waits until the event thread has
    /// taken messages for the reader, the consumer ends, or the task is cancelled.
    @usableFromInline
    func waitForMessages() async {
        let core = self.core
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let wait = core.state.withLock { state -> Bool in
                    guard state.reading == nil, state.handed == nil, state.early.isEmpty, !state.ended, !state.released,
                        !Task.isCancelled
                    else {
                        return false
                    }
                    state.waiter = continuation
                    return true
                }
                guard wait else { return continuation.resume() }
                // The event thread may be waiting up to 100 ms for the group's events: wake it.
                _ = try? core.handle.borrow { _ in rd_kafka_queue_yield(core.handle.eventQueue) }
            }
        } onCancel: {
            let waiter = core.state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }

    /// One message, copied out of librdkafka's buffers.
    fileprivate static func copy(_ pointer: UnsafePointer<rd_kafka_message_t>, topic: String, epoch: UInt64)
        -> KafkaMessage
    {
        let raw = pointer.pointee
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
        return message
    }

    /// One turn of the event thread: serves the group's events; then, while the reader waits for
    /// messages, takes the next ones for it (waiting up to 100 ms: an event of the group cuts the
    /// wait short), or else waits up to 100 ms for an event of the group.
    private static func turn(core: Core, serve: (OpaquePointer) -> Void) {
        let events = core.handle.eventQueue
        var served = false
        while let event = rd_kafka_queue_poll(events, 0) {
            serve(event)
            served = true
        }
        guard !served else { return }
        let readerWaits = core.state.withLock { state in
            state.taking = state.waiter != nil && state.handed == nil && !state.released && !state.ended
            return state.taking
        }
        guard readerWaits else {
            if let event = rd_kafka_queue_poll(events, 100) { serve(event) }
            return
        }
        // Only this thread changes the assignment, so the one read after the wait is the one the
        // messages were fetched under. Nobody else takes messages meanwhile (`taking`), not even
        // a later reader when this one's task was cancelled.
        // A batch call waits until its batch is full or the time is up: wait for one message, then
        // take what else is there without waiting.
        let slots = core.eventSlots.pointer
        var count = max(0, rd_kafka_consume_batch_queue(core.messages.pointer, 100, slots, 1))
        if count > 0 && core.batchLimit > 1 {
            count += max(0, rd_kafka_consume_batch_queue(core.messages.pointer, 0, slots + 1, core.batchLimit - 1))
        }
        let waiter = core.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.taking = false
            guard count > 0 else { return nil }
            state.handed = Taken(core.eventSlots, count: count, under: state)
            state.mostBuffered = max(state.mostBuffered, count)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Runs on the event thread when the consumer stops, once no reader is taking messages: the
    /// messages taken for the reader are destroyed, no wake-ups go into the message queue any more,
    /// and the queue is let go (librdkafka frees it with the partitions that forward to it).
    private static func releaseMessageQueue(core: Core) {
        let (first, waiter) = core.state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.released else { return (false, nil) }
            state.released = true
            state.reading?.destroy()
            state.handed?.destroy()
            (state.reading, state.handed) = (nil, nil)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        // A reader waiting finds the end at once, not after the group was left.
        waiter?.resume()
        guard first else { return }
        rd_kafka_queue_cb_event_enable(core.handle.eventQueue, nil, nil)
        rd_kafka_queue_destroy(core.messages.pointer)
    }

    /// Runs on the event thread.
    private static func serve(_ event: OpaquePointer, core: Core) {
        switch rd_kafka_event_type(event) {
        case RD_KAFKA_EVENT_FETCH:
            // Messages come through the message queue; any that reach the group's queue instead
            // are copied out here and handed to the reader first.
            var cache = TopicCache()
            let (assignment, generation) = core.state.withLock { ($0.assignment, $0.generation) }
            cache.use(generation)
            var early: [KafkaMessage] = []
            while let message = rd_kafka_event_message_next(event) {
                guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
                let (topic, epoch) = cache.lookup(message.pointee.rkt, message.pointee.partition, in: assignment)
                guard let epoch else { continue }
                early.append(copy(message, topic: topic, epoch: epoch))
            }
            let waiter = core.state.withLock { state in
                state.early.append(contentsOf: early)
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        case RD_KAFKA_EVENT_REBALANCE:
            rebalance(event, core: core)
        case RD_KAFKA_EVENT_OFFSET_COMMIT:
            break
        case RD_KAFKA_EVENT_ERROR:
            let code = rd_kafka_event_error(event)
            let text = rd_kafka_event_error_string(event).map { String(cString: $0) } ?? ""
            let error = KafkaError(code, message: text, isFatal: rd_kafka_event_error_is_fatal(event) != 0)
            core.state.withLock { $0.lastError = error }
            // Nothing more will come: end the messages, so a reader does not wait forever.
            if error.isFatal { end(core, closed: false) }
            core.handle.logger.warning(
                "consumer error", metadata: ["error.type": "\(error.name)", "error.message": "\(text)"])
        default:
            break
        }
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
            // Messages taken from now on are judged by the new assignment: the reader reads it under
            // the lock it takes them under.
            let released = core.state.withLock { state in
                state.epoch += 1
                if !cooperative && !state.assignment.isEmpty {
                    state.assignment.removeAll()
                    state.revocations += 1
                }
                for partition in partitions { state.assignment[partition] = state.epoch }
                return state.released
            }
            if let list, !released {
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
            core.state.withLock { state in
                if cooperative {
                    for partition in partitions { state.assignment[partition] = nil }
                } else {
                    state.assignment.removeAll()
                }
                state.revocations += 1
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
            core.state.withLock { state in
                state.assignment.removeAll()
                state.revocations += 1
            }
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
        @usableFromInline let consumer: KafkaConsumer

        @inlinable
        public mutating func next() async -> KafkaMessage? {
            await next(isolation: #isolation)
        }

        // Inlinable: a message that is there already is handed over without a call into another
        // module's async function (an async frame and an executor check per message).
        @inlinable
        public mutating func next(isolation actor: isolated (any Actor)?) async -> KafkaMessage? {
            while true {
                switch consumer.nextMessage() {
                case .message(let message): return message
                case .ended: return nil
                case .none:
                    if Task.isCancelled { return nil }
                    await consumer.waitForMessages()
                }
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(consumer: consumer)
    }
}

/// The messages of a ``KafkaConsumer`` in batches, as an `AsyncSequence` (see
/// ``KafkaConsumer/batches(maximumCount:)``). Iterate it from one task.
public struct KafkaMessageBatchSequence: AsyncSequence, Sendable {
    public typealias Element = [KafkaMessage]
    let consumer: KafkaConsumer
    let maximumCount: Int

    public struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline let consumer: KafkaConsumer
        @usableFromInline let maximumCount: Int

        @inlinable
        public mutating func next() async -> [KafkaMessage]? {
            await next(isolation: #isolation)
        }

        @inlinable
        public mutating func next(isolation actor: isolated (any Actor)?) async -> [KafkaMessage]? {
            while true {
                guard let batch = consumer.nextBatch(limit: maximumCount) else { return nil }
                if !batch.isEmpty { return batch }
                if Task.isCancelled { return nil }
                await consumer.waitForMessages()
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(consumer: consumer, maximumCount: maximumCount)
    }
}
