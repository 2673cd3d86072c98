import Foundation
import Kafka
import TestSupport
import Testing

/// Faults injected with the mock cluster: broker outages, request errors, fatal producer errors,
/// a consumer that dies without leaving its group. These need the mock cluster's fault injection,
/// so the interop run against another broker leaves them out.
@Suite("Kafka faults", .enabled(if: KafkaTestEnvironment.usesMockCluster), .timeLimit(.minutes(3)))
struct KafkaFaultTests {
    static let produceAPI: Int16 = 0
    static let initProducerIDAPI: Int16 = 22

    @Test("the idempotent producer delivers every message once while produce requests fail")
    func idempotentUnderProduceErrors() async throws {
        let broker = try TestBroker()
        let mock = try broker.requireMock()
        let topic = try await broker.topic(partitions: 4)
        let producer = try broker.producer()
        // Warm up so the producer has its id, then make the next produce requests fail in ways
        // that make librdkafka retry (the broker may or may not have written the batch).
        _ = try await sendNumbered(4, to: topic, with: producer)
        mock.pushRequestErrors(
            apiKey: Self.produceAPI,
            errors: [6, 7, 6, 7, 19, 6, 7, 6, 7, 19]  // NOT_LEADER, REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS
        )
        _ = try await sendNumbered(300, to: topic, with: producer)

        let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group"))
        try consumer.subscribe(to: [topic])
        let messages = try await collect(304, from: consumer)
        let counts = Dictionary(grouping: messages.map { $0.stringValue ?? "" }, by: { $0 }).mapValues(\.count)
        // value-0…3 were sent twice (the warm-up and the run), every other value exactly once.
        #expect(counts.count == 300)
        for index in 0..<300 { #expect(counts["value-\(index)"] == (index < 4 ? 2 : 1), "value-\(index)") }
        // Nothing more arrives: no duplicates hidden behind the count.
        await #expect(throws: TimedOut.self) { _ = try await collect(1, from: consumer, timeout: .seconds(2)) }
        await consumer.close()
        await producer.close()
    }

    @Test("with every broker down, a send fails with a retriable error after the message timeout; then recovers")
    func brokersDown() async throws {
        let broker = try TestBroker(brokers: 1)
        let mock = try broker.requireMock()
        let topic = try await broker.topic(partitions: 1)
        let producer = try broker.producer {
            $0.messageTimeoutMilliseconds = 2_000
            $0.client.properties["reconnect.backoff.max.ms"] = "500"
        }
        _ = try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "before"))

        mock.setBrokerDown(1)
        let error = try await #require(throws: KafkaError.self) {
            try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "during"))
        }
        #expect(error.name == "_MSG_TIMED_OUT")
        #expect(error.isRetriable)
        #expect(!error.isFatal)

        mock.setBrokerUp(1)
        // The client reconnects within its backoff; a caller (the outbox relay) sends again until
        // the broker takes the message.
        let report = try await withDeadline(.seconds(30), "a delivery after the broker came back") {
            while true {
                do {
                    return try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "after"))
                } catch let error as KafkaError where error.isRetriable {
                    continue
                }
            }
        }
        #expect(report.topic == topic)
        #expect(producer.fatalError == nil)
        await producer.close()
    }

    @Test(
        "more messages than librdkafka's queue holds, the broker down: flush gives up in its time, close fails the rest as closed"
    )
    func flushAndCloseWithMessagesPending() async throws {
        let broker = try TestBroker(brokers: 1)
        let mock = try broker.requireMock()
        let topic = try await broker.topic(partitions: 2)
        let producer = try broker.producer { $0.maximumQueuedMessages = 10 }
        _ = try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "warm-up"))
        mock.setBrokerDown(1)
        // Ten fit in librdkafka's queue; the other ninety wait for room that the broker's absence
        // does not make until the message timeout (20 s).
        let sending = Task {
            await producer.send((0..<100).map { KafkaOutgoingMessage(topic: topic, key: "k-\($0)", value: "v-\($0)") })
        }
        try await waitUntilStuck(producer)
        let error = try await withDeadline(.seconds(10), "flush to give up") {
            try await #require(throws: KafkaError.self) { try await producer.flush(timeout: .milliseconds(200)) }
        }
        #expect(error.name == "_TIMED_OUT")

        await producer.close(timeout: .zero)
        let reports = try await withDeadline(.seconds(30), "the send to end after close") { await sending.value }
        #expect(reports.failureCount == 100)
        // What never reached librdkafka failed as closed, by the close itself.
        let closed = reports.failures.filter { $0.error.name == "_DESTROY" }
        #expect(closed.count >= 90)
        for (index, error) in reports.failures { #expect(!error.isFatal, "message \(index): \(error)") }
        let refused = await producer.send([KafkaOutgoingMessage(topic: topic, key: "k", value: "after")])
        #expect(refused.failures.map(\.error.name) == ["_DESTROY"])
    }

    @Test("a flush called from a cancelled task still waits for every message it covers (a close on shutdown does)")
    func flushIgnoresCancellation() async throws {
        let broker = try TestBroker(brokers: 1)
        let mock = try broker.requireMock()
        let topic = try await broker.topic(partitions: 2)
        let producer = try broker.producer {
            $0.maximumQueuedMessages = 10
            $0.client.properties["reconnect.backoff.max.ms"] = "500"
        }
        _ = try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "warm-up"))
        mock.setBrokerDown(1)
        let sending = Task {
            await producer.send((0..<30).map { KafkaOutgoingMessage(topic: topic, key: "k-\($0)", value: "v-\($0)") })
        }
        try await waitUntilStuck(producer)
        // Some messages wait in librdkafka's queue and the rest wait to be handed over; the task
        // that flushes is cancelled (as a service's task is on shutdown) before the broker returns.
        let flushing = Task { try await producer.flush(timeout: .seconds(60)) }
        flushing.cancel()
        mock.setBrokerUp(1)
        try await withDeadline(.seconds(60), "the flush to end") { try await flushing.value }
        let reports = await sending.value
        #expect(reports.allDelivered)
        await producer.close()
    }

    @Test("a close with lent values still in flight (the broker down) ends the send only once the client is gone")
    func closeWithLentValuesInFlight() async throws {
        let broker = try TestBroker(brokers: 1)
        let mock = try broker.requireMock()
        let topic = try await broker.topic(partitions: 2)
        let producer = try broker.producer()
        _ = try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "warm-up"))
        mock.setBrokerDown(1)
        // Each value is held by nothing but its message, large ones among them (librdkafka sends
        // those from where they are): librdkafka must be done with them before `send` lets go.
        let sending = Task {
            await producer.send(
                (0..<50).map { index in
                    KafkaOutgoingMessage(
                        topic: topic, key: Array("key-\(index)".utf8),
                        value: [UInt8](
                            repeating: UInt8(truncatingIfNeeded: index), count: index % 5 == 0 ? 100_000 : 200))
                })
        }
        try await waitUntilStuck(producer)
        await producer.close(timeout: .zero)
        let reports = try await withDeadline(.seconds(30), "the send to end after close") { await sending.value }
        #expect(reports.count == 50)
        #expect(reports.failureCount == 50)
        for (index, error) in reports.failures { #expect(!error.isFatal, "message \(index): \(error)") }
    }

    @Test("a fatal producer error is reported as fatal, and every later send fails with it")
    func fatalProducerError() async throws {
        let broker = try TestBroker()
        let mock = try broker.requireMock()
        let topic = try await broker.topic(partitions: 1)
        // With the gap-less guarantee, a sequence the broker cannot follow (its state of this
        // producer is gone or different) cannot be repaired in place: the producer must be recreated.
        let producer = try broker.producer { $0.client.properties["enable.gapless.guarantee"] = "true" }
        _ = try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "first"))
        mock.pushRequestErrors(apiKey: Self.produceAPI, errors: [45])  // OUT_OF_ORDER_SEQUENCE_NUMBER
        let error = try await #require(throws: KafkaError.self) {
            try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "second"))
        }
        #expect(error.isFatal)
        #expect(producer.fatalError?.isFatal == true)
        let later = try await #require(throws: KafkaError.self) {
            try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "third"))
        }
        #expect(later.isFatal)
        await producer.close(timeout: .seconds(1))

        // The owner creates a new producer, which works.
        let replacement = try broker.producer()
        _ = try await replacement.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "fourth"))
        await replacement.close()
    }

    @Test("a broker that lost the producer's state (UNKNOWN_PRODUCER_ID) is recovered in place, without duplicates")
    func unknownProducerIDRecovered() async throws {
        let broker = try TestBroker()
        let mock = try broker.requireMock()
        let topic = try await broker.topic(partitions: 1)
        let producer = try broker.producer()
        _ = try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "value-0"))
        mock.pushRequestErrors(apiKey: Self.produceAPI, errors: [59, 59])
        for index in 1..<20 {
            _ = try await producer.send(KafkaOutgoingMessage(topic: topic, key: "k", value: "value-\(index)"))
        }
        #expect(producer.fatalError == nil)
        let consumer = try broker.consumer(group: KafkaTestEnvironment.unique("group"))
        try consumer.subscribe(to: [topic])
        let messages = try await collect(20, from: consumer)
        #expect(messages.map { $0.stringValue ?? "" } == (0..<20).map { "value-\($0)" })
        await #expect(throws: TimedOut.self) { _ = try await collect(1, from: consumer, timeout: .seconds(2)) }
        await consumer.close()
        await producer.close()
    }

    @Test("leader moves and slow brokers: every message still arrives once, in order per key")
    func leaderMovesAndLatency() async throws {
        let broker = try TestBroker()
        let mock = try broker.requireMock()
        let topic = try await broker.topic(partitions: 2)
        let producer = try broker.producer()
        mock.setRoundTripTime(broker: 2, milliseconds: 50)
        let first = try await sendNumbered(100, to: topic, keys: 4, with: producer)
        mock.setPartitionLeader(topic: topic, partition: 0, broker: 3)
        mock.setPartitionLeader(topic: topic, partition: 1, broker: 2)
        let second = try await sendNumbered(100, to: topic, keys: 4, with: producer)
        #expect(first.count + second.count == 200)

        let group = KafkaTestEnvironment.unique("group")
        mock.setGroupCoordinator(group: group, broker: 2)
        let consumer = try broker.consumer(group: group)
        try consumer.subscribe(to: [topic])
        let messages = try await collect(200, from: consumer)
        #expect(messages.count == 200)
        await consumer.close()
        await producer.close()
    }
}
