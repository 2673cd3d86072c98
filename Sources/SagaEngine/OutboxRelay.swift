import Foundation
import Kafka
import Logging
import SagaCore
import SagaProtocol
import SagaStore

/// Publishes the outbox: the messages every batch wrote beside the states they follow (step
/// commands, lifecycle events), with the idempotent producer, in order per saga, and deletes them
/// once the broker acknowledged them. Woken by the store's notification after each batch that
/// wrote rows (`LISTEN saga_outbox`), and polls every `pollInterval` as well, so a lost
/// notification or a listener that lost its connection delays a message by one interval at most.
///
/// Any number of relays may run (one per instance): each round takes only lanes no other relay
/// holds. A row the broker did not acknowledge stays, and so do the later rows of its saga in that
/// round: they go again, in order, in the next round (participants deduplicate by idempotency key,
/// the engine by message id, so a repeat is harmless).
public struct OutboxRelay: Sendable {
    public let store: SagaStore
    public let producer: KafkaProducer
    /// The store's number of lanes (``SagaStoreConfiguration/outboxLanes``).
    public var lanes: Int
    /// The most rows published in one round.
    public var batchSize: Int
    public var pollInterval: Duration
    public let logger: Logger
    /// Called after each round that read rows: rows read, rows published.
    public var onRound: @Sendable (_ read: Int, _ published: Int) -> Void = { _, _ in }

    public init(
        store: SagaStore, producer: KafkaProducer, lanes: Int, batchSize: Int = 1000,
        pollInterval: Duration = .seconds(1), logger: Logger
    ) {
        self.store = store
        self.producer = producer
        self.lanes = lanes
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.logger = logger
    }

    /// Publishes until the task is cancelled.
    public func run() async {
        let (wakeUps, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await listen(wake) }
            group.addTask {
                // The poll: a wake-up every interval, whatever the notifications do.
                while !Task.isCancelled {
                    try? await Task.sleep(for: pollInterval)
                    wake.yield()
                }
            }
            await publishLoop(wakeUps)
            group.cancelAll()
        }
    }

    private func listen(_ wake: AsyncStream<Void>.Continuation) async {
        while !Task.isCancelled {
            do {
                try await store.listenForOutbox { wake.yield() }
            } catch {
                logger.warning(
                    "outbox notifications lost; polling until they are back", metadata: ["error.message": "\(error)"])
                try? await Task.sleep(for: pollInterval)
            }
        }
    }

    private func publishLoop(_ wakeUps: AsyncStream<Void>) async {
        let allLanes = Array(0..<max(1, lanes))
        var iterator = wakeUps.makeAsyncIterator()
        var pause = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                let (read, published) = try await round(allLanes)
                pause = .milliseconds(100)
                if read > 0 { onRound(read, published) }
                // A full round: more may wait; otherwise wait to be woken.
                if read >= batchSize && published == read { continue }
            } catch is CancellationError {
                return
            } catch {
                logger.warning(
                    "outbox round failed", metadata: ["error.message": "\(error)", "retry.pause": "\(pause)"])
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(10))
                continue
            }
            guard await iterator.next() != nil else { return }
        }
    }

    /// One round: the rows of the lanes this relay could take, published and deleted.
    func round(_ lanes: [Int]) async throws -> (read: Int, published: Int) {
        let producer = self.producer
        return try await store.relayOutbox(lanes: lanes, limit: batchSize) { rows in
            let messages = rows.map { row in
                KafkaOutgoingMessage(
                    topic: row.message.topic, key: row.message.key.map { Array($0.utf8) },
                    value: Array(row.message.payload.utf8),
                    headers: KafkaHeader.headers(row.message.headers))
            }
            let reports = await producer.send(messages)
            var failedSagas = Set<String>()
            var published: [OutboxRow] = []
            published.reserveCapacity(rows.count)
            for (index, row) in rows.enumerated() {
                if case .failure(let error) = reports[index] {
                    if failedSagas.insert(row.sagaID).inserted {
                        logger.warning(
                            "outbox message not acknowledged; it goes again",
                            metadata: ["saga.id": "\(row.sagaID)", "error.message": "\(error)"])
                    }
                    continue
                }
                if !failedSagas.contains(row.sagaID) { published.append(row) }
            }
            return published
        }
    }
}
