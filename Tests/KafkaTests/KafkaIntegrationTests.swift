import Foundation
import Kafka
import Logging
import Synchronization
import TestSupport
import Testing

/// Producer, consumer and admin against a real Kafka-protocol broker: librdkafka's mock cluster,
/// or the broker named by `KAFKA_BOOTSTRAP_SERVERS` in the interop run.
@Suite("Kafka integration", .timeLimit(.minutes(3)))
struct KafkaIntegrationTests {
    @Test("produce and consume with keys and headers over 8 partitions; a key always lands on one partition")
    func produceConsume() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 8)
        let producer = try broker.producer()
        let reports = try await sendNumbered(400, to: topic, keys: 20, with: producer)
        #expect(reports.count == 400)
        #expect(Set(reports.map(\.partition)).count > 1)

        let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group"))
        try consumer.subscribe(to: [topic])
        let messages = try await collect(400, from: consumer)
        #expect(Set(messages.map { $0.stringValue ?? "" }) == Set((0..<400).map { "value-\($0)" }))
        var partitionOfKey: [String: Set<Int32>] = [:]
        for message in messages {
            partitionOfKey[message.keyString ?? "", default: []].insert(message.partition)
            let index = Int((message.stringValue ?? "").dropFirst("value-".count)) ?? -1
            #expect(message.keyString == "key-\(index % 20)")
            #expect(message.header("ce_id") == "id-\(index)")
            #expect(message.header("ce_type") == "test.numbered")
            #expect(message.topic == topic)
            #expect(message.timestamp != nil)
        }
        #expect(partitionOfKey.count == 20)
        #expect(partitionOfKey.values.allSatisfy { $0.count == 1 })
        // Per partition, messages arrive in offset order.
        for partition in Set(messages.map(\.partition)) {
            let offsets = messages.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == offsets.sorted())
        }
        await consumer.close()
        await producer.close()
    }

    @Test("a tombstone and a message without key or headers survive the round trip")
    func tombstone() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 1)
        let producer = try broker.producer()
        _ = try await producer.send(KafkaOutgoingMessage(topic: topic, key: Array("k".utf8), value: nil))
        _ = try await producer.send(KafkaOutgoingMessage(topic: topic, value: Array("plain".utf8)))
        let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group"))
        try consumer.subscribe(to: [topic])
        let messages = try await collect(2, from: consumer)
        #expect(messages[0].value == nil)
        #expect(messages[0].keyString == "k")
        #expect(messages[1].key == nil)
        #expect(messages[1].headers.isEmpty)
        #expect(messages[1].stringValue == "plain")
        await consumer.close()
        await producer.close()
    }

    @Test(
        "values are lent to librdkafka, not copied: each arrives as sent, small or large, held only by the messages sent"
    )
    func lentValues() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 4)
        let producer = try broker.producer()
        // Values of 200 bytes and of 100,000 (which librdkafka sends from where they are rather
        // than copying them into its requests), each held by nothing but its message: `send` has
        // to keep them alive until librdkafka is done with them.
        func body(_ index: Int) -> [UInt8] {
            (0..<(index % 10 == 0 ? 100_000 : 200)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
        }
        let reports = await producer.send(
            (0..<200).map { KafkaOutgoingMessage(topic: topic, key: Array("key-\($0)".utf8), value: body($0)) })
        #expect(reports.allDelivered)

        let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group"))
        try consumer.subscribe(to: [topic])
        let messages = try await collect(200, from: consumer)
        #expect(Set(messages.compactMap(\.keyString)) == Set((0..<200).map { "key-\($0)" }))
        for message in messages {
            let index = Int((message.keyString ?? "").dropFirst("key-".count)) ?? -1
            #expect(message.value == body(index), "value of message \(index)")
        }
        await consumer.close()
        await producer.close()
    }

    @Test("one send to two topics, in runs that switch back and forth: each message lands on its own topic")
    func oneSendManyTopics() async throws {
        let broker = try TestBroker()
        // A name short enough for Swift to keep inside the string itself, and a long one kept in
        // storage of its own: the producer makes each topic's C string once per run of messages.
        let short = try await broker.topic("s", partitions: 2)
        let long = try await broker.topic("a-topic-whose-name-is-longer-than-fifteen-bytes", partitions: 2)
        let producer = try broker.producer()
        let topics = (0..<60).map { [short, long][($0 / 3 + $0 / 7) % 2] }
        let messages = topics.enumerated().map { index, topic in
            KafkaOutgoingMessage(topic: topic, key: nil, value: "\(topic) \(index)")
        }
        let reports = await producer.send(messages)
        #expect(reports.allDelivered)
        #expect(reports.map { try? $0.get().topic } == topics)

        for topic in [short, long] {
            let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group"))
            try consumer.subscribe(to: [topic])
            let expected = topics.enumerated().filter { $0.element == topic }.map { "\(topic) \($0.offset)" }
            let received = try await collect(expected.count, from: consumer)
            #expect(Set(received.compactMap(\.stringValue)) == Set(expected))
            #expect(received.allSatisfy { $0.topic == topic })
            await consumer.close()
        }
        await producer.close()
    }

    @Test("committed offsets survive a consumer restart; nothing committed is redelivered, the rest is")
    func commitsSurviveRestart() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 1)
        let group = KafkaTestEnvironment.unique("group")
        let producer = try broker.producer()
        _ = try await sendNumbered(10, to: topic, keys: 1, with: producer)

        let first = try broker.consumer(group: group)
        try first.subscribe(to: [topic])
        let read = try await collect(10, from: first)
        // Processed and committed the first six; the last four were read but not committed.
        let dropped = try await first.commit([KafkaCommitOffset(after: read[5])])
        #expect(dropped.isEmpty)
        let committed = try await first.committed([KafkaTopicPartition(topic: topic, partition: 0)])
        #expect(committed[KafkaTopicPartition(topic: topic, partition: 0)] == read[5].offset + 1)
        await first.close()

        let second = try broker.consumer(group: group)
        try second.subscribe(to: [topic])
        let again = try await collect(4, from: second)
        // The sends ran concurrently, so offsets, not values, give the order.
        #expect(again.map(\.offset) == read[6...].map(\.offset))
        #expect(again.map(\.value) == read[6...].map(\.value))
        await second.close()
        await producer.close()
    }

    @Test("two consumers in one group split the partitions; one takes all when the other leaves")
    func groupSplitsAndTakesOver() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 8)
        let group = KafkaTestEnvironment.unique("group")
        let one = try broker.consumer(group: group)
        let two = try broker.consumer(group: group)
        try one.subscribe(to: [topic])
        try two.subscribe(to: [topic])
        // Reading is what serves the group's events; read in the background.
        let readers = [one, two].map { consumer in
            Task { for await _ in consumer.messages {} }
        }
        try await eventually("both members to own partitions") {
            one.assignment.count + two.assignment.count == 8 && !one.assignment.isEmpty && !two.assignment.isEmpty
        }
        #expect(one.assignment.isDisjoint(with: two.assignment))

        await two.close()
        try await eventually("the remaining member to own every partition") { one.assignment.count == 8 }
        await one.close()
        for reader in readers { await reader.value }
    }

    @Test("when a member dies without leaving, the group gives its partitions to the other after the session timeout")
    func memberKilled() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 6)
        let group = KafkaTestEnvironment.unique("group")
        let survivor = try broker.consumer(group: group)
        let victim = try broker.consumer(group: group)
        try survivor.subscribe(to: [topic])
        try victim.subscribe(to: [topic])
        let readers = [survivor, victim].map { consumer in Task { for await _ in consumer.messages {} } }
        try await eventually("both members to own partitions") {
            !survivor.assignment.isEmpty && !victim.assignment.isEmpty
                && survivor.assignment.count + victim.assignment.count == 6
        }
        let started = ContinuousClock.now
        await victim.crashForTesting()
        try await eventually("the survivor to own every partition", timeout: .seconds(40)) {
            survivor.assignment.count == 6
        }
        // Not before the session timeout (6 s): the group had no word from the dead member.
        #expect(ContinuousClock.now - started > .seconds(3))
        await survivor.close()
        for reader in readers { await reader.value }
    }

    @Test("a commit for a partition the member no longer owns is dropped, not sent")
    func commitAfterRevocationIsDropped() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 4)
        let group = KafkaTestEnvironment.unique("group")
        let producer = try broker.producer()
        _ = try await sendNumbered(40, to: topic, keys: 40, with: producer)
        let one = try broker.consumer(group: group)
        try one.subscribe(to: [topic])
        let read = try await collect(40, from: one)
        #expect(one.assignment.count == 4)

        // A second member joins: the partitions are shared out again while `one` holds the messages.
        let two = try broker.consumer(group: group)
        try two.subscribe(to: [topic])
        let reader = Task { for await _ in two.messages {} }
        let background = Task { for await _ in one.messages {} }
        try await eventually("the partitions to be shared") { !two.assignment.isEmpty && one.assignment.count < 4 }
        let lost = read.filter {
            !one.assignment.contains(KafkaTopicPartition(topic: $0.topic, partition: $0.partition))
        }
        let dropped = try await one.commit(lost.map(KafkaCommitOffset.init(after:)))
        #expect(!lost.isEmpty)
        #expect(
            Set(dropped.map(\.topicPartition))
                == Set(lost.map { KafkaTopicPartition(topic: $0.topic, partition: $0.partition) }))
        await one.close()
        await two.close()
        await reader.value
        await background.value
        await producer.close()
    }

    /// What the members of ``heldMessagesOfRevokedPartitions()`` read.
    final class Seen: Sendable {
        private let state = Mutex<(values: Set<String>, foreign: [String])>(([], []))

        func withLock<T>(_ body: (inout (values: Set<String>, foreign: [String])) -> T) -> T {
            state.withLock { body(&$0) }
        }
    }

    @Test("messages the reader already holds for a partition taken away in a rebalance are not handed out")
    func heldMessagesOfRevokedPartitions() async throws {
        let broker = try TestBroker(brokers: 1)  // one fetch brings every partition's messages at once
        let topic = try await broker.topic(partitions: 4)
        let group = KafkaTestEnvironment.unique("group")
        let producer = try broker.producer()
        let count = 200
        _ = try await sendNumbered(count, to: topic, keys: 40, with: producer)
        let one = try broker.consumer(group: group)
        try one.subscribe(to: [topic])
        // `one` takes its first message, and with it a batch of others that stay in its reader's
        // hands while a second member joins and takes partitions away.
        let (held, heldNow) = AsyncStream<Void>.makeStream()
        let (resume, resumeNow) = AsyncStream<Void>.makeStream()
        let seen = Seen()
        // librdkafka's queue holds every message, besides a few entries of its own.
        try await eventually("every message fetched") { one.queuedMessages >= count }
        let reader = Task {
            var iterator = one.messages.makeAsyncIterator()
            guard await iterator.next() != nil else { return }
            heldNow.yield()
            for await _ in resume { break }
            while let message = await iterator.next() {
                let owned = one.assignment.contains(
                    KafkaTopicPartition(topic: message.topic, partition: message.partition))
                seen.withLock { seen in
                    seen.values.insert(message.stringValue ?? "")
                    if !owned { seen.foreign.append("\(message.topic)[\(message.partition)]@\(message.offset)") }
                }
            }
        }
        try await withDeadline(.seconds(30), "the first message") {
            var iterator = held.makeAsyncIterator()
            _ = await iterator.next()
        }
        let two = try broker.consumer(group: group)
        try two.subscribe(to: [topic])
        let other = Task {
            for await message in two.messages {
                seen.withLock { _ = $0.values.insert(message.stringValue ?? "") }
            }
        }
        try await eventually("the partitions to be shared") { !two.assignment.isEmpty && one.assignment.count < 4 }
        resumeNow.yield()
        // Both members read their partitions from the start again (nothing was committed).
        try await eventually("every message read again") { seen.withLock { $0.values.count } == count }
        #expect(seen.withLock { $0.foreign } == [])
        await one.close()
        await two.close()
        await reader.value
        await other.value
        await producer.close()
    }

    @Test("a reader cancelled while it waits ends; the next reader gets every message, in order per partition")
    func cancelledReader() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 4)
        let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group"))
        try consumer.subscribe(to: [topic])
        try await eventually("the partitions to be assigned") { consumer.assignment.count == 4 }
        // Nothing to read yet: the reader waits, and is cancelled while it does.
        let waiting = Task {
            var iterator = consumer.messages.makeAsyncIterator()
            return await iterator.next()
        }
        try await eventually("the reader to wait") { consumer.readerIsWaiting }
        waiting.cancel()
        #expect(await waiting.value == nil)
        let producer = try broker.producer()
        let count = 300
        _ = try await sendNumbered(count, to: topic, with: producer)
        let messages = try await collect(count, from: consumer)
        #expect(Set(messages.map { $0.stringValue ?? "" }).count == count)
        for partition in Set(messages.map(\.partition)) {
            let offsets = messages.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == offsets.sorted() && Set(offsets).count == offsets.count, "partition \(partition)")
        }
        await consumer.close()
        await producer.close()
    }

    @Test("batches hold what is there, up to their limit, never empty; in order per partition; end on close")
    func batches() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 4)
        let producer = try broker.producer()
        let count = 600
        _ = try await sendNumbered(count, to: topic, with: producer)
        let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group"))
        try consumer.subscribe(to: [topic])
        let read = Atomic(0)
        let reader = Task {
            var batches: [[KafkaMessage]] = []
            for await batch in consumer.batches(maximumCount: 64) {
                batches.append(batch)
                read.add(batch.count, ordering: .relaxed)
            }
            return batches
        }
        try await eventually("every message to be read", timeout: .seconds(60)) {
            read.load(ordering: .relaxed) >= count
        }
        try await eventually("the reader to wait for more") { consumer.readerIsWaiting }
        await consumer.close()
        let batches = try await withDeadline(.seconds(30), "the batch sequence to end") { await reader.value }
        let messages = batches.flatMap { $0 }
        #expect(batches.allSatisfy { !$0.isEmpty && $0.count <= 64 })
        #expect(batches.count >= count / 64)
        #expect(messages.count == count)
        #expect(Set(messages.map { $0.stringValue ?? "" }).count == count)
        #expect(messages.allSatisfy { $0.header("ce_type") == "test.numbered" })
        for partition in Set(messages.map(\.partition)) {
            let offsets = messages.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == offsets.sorted() && Set(offsets).count == offsets.count, "partition \(partition)")
        }
        await producer.close()
    }

    @Test("the lag is what the reader has not read yet")
    func lag() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 1)
        let producer = try broker.producer()
        _ = try await sendNumbered(50, to: topic, with: producer)
        let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group")) {
            $0.maximumBufferedMessages = 1
        }
        try consumer.subscribe(to: [topic])
        _ = try await collect(20, from: consumer)
        try await eventually("the lag to show the 30 messages not read") {
            consumer.lag() == [KafkaTopicPartition(topic: topic, partition: 0): 30]
        }
        _ = try await collect(30, from: consumer)
        try await eventually("the lag to reach 0") { consumer.lag().values.reduce(0, +) == 0 }
        await consumer.close()
        await producer.close()
    }

    @Test("a consumer with a small buffer never holds more than it, and still reads everything")
    func backPressure() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 2)
        let producer = try broker.producer()
        _ = try await sendNumbered(500, to: topic, with: producer)
        let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group")) {
            $0.maximumBufferedMessages = 20
        }
        try consumer.subscribe(to: [topic])
        let messages = try await collect(500, from: consumer)
        #expect(Set(messages.map { $0.stringValue ?? "" }).count == 500)
        #expect(consumer.mostBufferedMessages <= 20)
        #expect(consumer.mostBufferedMessages > 0)
        await consumer.close()
        await producer.close()
    }

    @Test("a producer with a small queue waits for room: many senders at once, every message delivered once")
    func producerBackPressure() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 4)
        // Far fewer messages fit in the queue than the senders hand over together, so senders find
        // it full, wait for room, and take turns.
        let producer = try broker.producer { $0.maximumQueuedMessages = 50 }
        let senders = 8
        let perSender = 400
        let outcomes = try await withDeadline(.seconds(60), "every send to end") {
            await withTaskGroup(of: [Result<KafkaDeliveryReport, KafkaError>].self) { group in
                for sender in 0..<senders {
                    group.addTask {
                        let reports = await producer.send(
                            (0..<perSender).map {
                                KafkaOutgoingMessage(
                                    topic: topic, key: "key-\($0 % 8)", value: "value-\(sender)-\($0)")
                            })
                        #expect(reports.allDelivered && reports.failures.isEmpty)
                        return Array(reports)
                    }
                }
                var all: [Result<KafkaDeliveryReport, KafkaError>] = []
                for await results in group { all += results }
                return all
            }
        }
        #expect(outcomes.count == senders * perSender)
        let reports = outcomes.compactMap { try? $0.get() }
        #expect(reports.count == senders * perSender)
        // Every message landed once: one offset each, none shared.
        #expect(Set(reports.map { "\($0.partition)@\($0.offset)" }).count == senders * perSender)
        let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group"))
        try consumer.subscribe(to: [topic])
        let messages = try await collect(senders * perSender, from: consumer)
        #expect(Set(messages.map { $0.stringValue ?? "" }).count == senders * perSender)
        await consumer.close()
        await producer.close()
    }

    @Test("closing while sends are in flight ends every send: delivered, or failed as closed")
    func closeWithSendsInFlight() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 4)
        let producer = try broker.producer()
        let batches = (0..<8).map { batch in
            (0..<2_000).map { KafkaOutgoingMessage(topic: topic, key: "key-\($0 % 8)", value: "value-\(batch)-\($0)") }
        }
        let outcomes = try await withDeadline(.seconds(60), "every send to end after close") {
            await withTaskGroup(of: [Result<KafkaDeliveryReport, KafkaError>].self) { group in
                for batch in batches {
                    group.addTask {
                        let reports = await producer.send(batch)
                        // The counts agree with the outcomes, which are read one by one.
                        let failed = reports.filter { if case .failure = $0 { true } else { false } }.count
                        #expect(reports.failureCount == failed)
                        let failedAt = reports.indices.filter { (try? reports[$0].get()) == nil }
                        #expect(reports.failures.map(\.index) == failedAt)
                        return Array(reports)
                    }
                }
                group.addTask {
                    await producer.close(timeout: .seconds(5))
                    return []
                }
                var all: [Result<KafkaDeliveryReport, KafkaError>] = []
                for await results in group { all += results }
                return all
            }
        }
        #expect(outcomes.count == 16_000)
        for outcome in outcomes {
            if case .failure(let error) = outcome { #expect(error.name == "_DESTROY", "\(error)") }
        }
        // A send after close fails at once.
        await #expect(throws: KafkaError.self) {
            try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "late"))
        }
        let refused = await producer.send(batches[0].prefix(3).map { $0 })
        #expect(refused.count == 3)
        #expect(refused.failureCount == 3 && !refused.allDelivered)
        #expect(refused.failures.map(\.error.name) == ["_DESTROY", "_DESTROY", "_DESTROY"])
    }

    @Test("a closed producer and a closed consumer let go of everything they held, their logger included")
    func closedClientsAreFreed() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 2)
        // The logger is the one thing a client is given that a test can watch being let go of.
        func logger(holding owner: LoggerOwner) -> Logger {
            Logger(label: "held") { _ in HoldingLogHandler(owner: owner) }
        }
        let producerLogger = WeakReference()
        let consumerLogger = WeakReference()
        do {
            let producerOwner = LoggerOwner()
            let consumerOwner = LoggerOwner()
            producerLogger.object = producerOwner
            consumerLogger.object = consumerOwner
            var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: [broker.bootstrapServers])
            producerConfiguration.messageTimeoutMilliseconds = 20_000
            let producer = try KafkaProducer(
                configuration: producerConfiguration, logger: logger(holding: producerOwner))
            _ = try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "v"))
            var consumerConfiguration = KafkaConsumerConfiguration(
                bootstrapServers: [broker.bootstrapServers], groupID: KafkaTestEnvironment.unique("group"))
            consumerConfiguration.sessionTimeoutMilliseconds = 6_000
            let consumer = try KafkaConsumer(
                configuration: consumerConfiguration, logger: logger(holding: consumerOwner))
            try consumer.subscribe(to: [topic])
            let messages = try await collect(1, from: consumer)
            try await consumer.commit(messages.map(KafkaCommitOffset.init(after:)))
            // While they are open, the clients hold their loggers (what the check below relies on).
            #expect(producerLogger.object != nil && consumerLogger.object != nil)
            await consumer.close()
            await producer.close()
        }
        // The event threads let go of their clients as they end, just after `close` returned.
        try await eventually("the producer to let go of its logger", timeout: .seconds(10)) {
            producerLogger.object == nil
        }
        try await eventually("the consumer to let go of its logger", timeout: .seconds(10)) {
            consumerLogger.object == nil
        }
    }

    @Test("the cluster's metadata lists the topic and its partitions")
    func metadata() async throws {
        let broker = try TestBroker()
        let topic = try await broker.topic(partitions: 3)
        let admin = try KafkaAdmin(
            configuration: KafkaClientConfiguration(bootstrapServers: [broker.bootstrapServers]),
            logger: KafkaTestEnvironment.logger)
        let metadata = try await admin.metadata()
        let described = try #require(metadata.topic(topic))
        #expect(described.partitions.map(\.id) == [0, 1, 2])
        #expect(!metadata.brokers.isEmpty)
        await admin.close()
    }

    @Test("an invalid property fails at creation with librdkafka's own message")
    func invalidProperty() throws {
        var configuration = KafkaProducerConfiguration(bootstrapServers: ["localhost:9092"])
        configuration.client.properties["no.such.property"] = "1"
        let error = try #require(throws: KafkaError.self) {
            try KafkaProducer(configuration: configuration, logger: KafkaTestEnvironment.logger)
        }
        #expect(error.message.contains("No such configuration property"))
        #expect(error.message.contains("no.such.property"))

        var bad = KafkaConsumerConfiguration(bootstrapServers: ["localhost:9092"], groupID: "g")
        bad.client.properties["session.timeout.ms"] = "not-a-number"
        let consumerError = try #require(throws: KafkaError.self) {
            try KafkaConsumer(configuration: bad, logger: KafkaTestEnvironment.logger)
        }
        #expect(consumerError.message.contains("session.timeout.ms"))
    }

    @Test("a secret's value never appears in a configuration error")
    func secretNotInError() throws {
        var configuration = KafkaProducerConfiguration(bootstrapServers: ["localhost:9092"])
        configuration.client.properties["ssl.key.password"] = "sentinel-secret-4711"
        configuration.client.properties["no.such.property"] = "x"
        let error = try #require(throws: KafkaError.self) {
            try KafkaProducer(configuration: configuration, logger: KafkaTestEnvironment.logger)
        }
        #expect(!error.description.contains("sentinel-secret-4711"))
    }

    @Test("a bad bootstrap address gives a clear error within the message timeout, not a hang")
    func badBootstrap() async throws {
        var configuration = KafkaProducerConfiguration(bootstrapServers: ["127.0.0.1:1"])
        configuration.messageTimeoutMilliseconds = 2_000
        let producer = try KafkaProducer(configuration: configuration, logger: KafkaTestEnvironment.logger)
        let started = ContinuousClock.now
        let error = try await #require(throws: KafkaError.self) {
            try await producer.send(KafkaOutgoingMessage(topic: "nowhere", key: nil, value: "x"))
        }
        #expect(error.name == "_MSG_TIMED_OUT")
        #expect(error.isRetriable)
        #expect(ContinuousClock.now - started < .seconds(15))
        await producer.close(timeout: .seconds(1))
    }

    @Test("the librdkafka in use is the one the run asked for")
    func version() {
        #expect(KafkaLibrary.isAtLeast(major: 2, minor: 0))
        // The interop run swaps in a current librdkafka through LD_LIBRARY_PATH and says which.
        let expected = ProcessInfo.processInfo.environment["KAFKA_EXPECT_LIBRDKAFKA"] ?? "2."
        #expect(KafkaLibrary.version.hasPrefix(expected), "running with librdkafka \(KafkaLibrary.version)")
    }
}

/// Holds an object without keeping it alive.
final class WeakReference: @unchecked Sendable {
    private let lock = Mutex<Void>(())
    private weak var stored: AnyObject?

    var object: AnyObject? {
        get { lock.withLock { _ in stored } }
        set { lock.withLock { _ in stored = newValue } }
    }
}

/// What a ``HoldingLogHandler`` holds.
final class LoggerOwner: Sendable {}

/// A log handler that drops every line and holds `owner` for as long as it lives.
struct HoldingLogHandler: LogHandler {
    let owner: LoggerOwner
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .critical

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {}
}
