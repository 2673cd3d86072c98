import Foundation
import Logging
import SagaCore
import SagaProtocol
import SagaStore

/// Housekeeping, every `interval`: signals that waited for a saga that never started expire (each
/// gets its `signal.expired` event), and inbox entries older than `inboxRetention` are deleted.
public struct Housekeeping: Sendable {
    public let store: SagaStore
    public let settings: EngineSettings
    /// How long a message id stays in the inbox: longer than a message can be redelivered (the
    /// input topics' retention). Default 7 days.
    public var inboxRetention: SagaDuration = .days(7)
    public var interval: Duration = .seconds(60)
    public let logger: Logger

    public init(store: SagaStore, settings: EngineSettings, logger: Logger) {
        self.store = store
        self.settings = settings
        self.logger = logger
    }

    /// Runs until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            do {
                try await runOnce()
            } catch is CancellationError {
                return
            } catch {
                logger.warning("housekeeping failed", metadata: ["error.message": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// One round; returns how many signals expired and how many inbox entries were deleted.
    @discardableResult
    public func runOnce() async throws -> (expiredSignals: Int, inboxEntries: Int) {
        let now = SagaTimestamp.now
        let expired = try await store.expirePendingSignals(now: now)
        if !expired.isEmpty {
            let events = expired.map { pending -> OutboxMessage in
                let outcome = SignalOutcome(
                    signalID: pending.signal.id, name: pending.signal.name, kind: .expired,
                    reason: "no saga started with this key before the signal's time ran out")
                var event = SagaEventMessage(outcome, sagaID: nil, sagaType: pending.target.sagaType, status: nil)
                event.idempotencyKey = pending.target.key
                let wire = SagaWire.encode(
                    event, id: UUID().uuidString.lowercased(), source: settings.source, time: now,
                    key: pending.target.key)
                return OutboxMessage(topic: settings.topics.events, wire)
            }
            try await store.applyBatch([EngineInput](), now: now) { _ in BatchWrites(outbox: events) }
        }
        var deleted = 0
        while true {
            let count = try await store.pruneInbox(
                receivedBefore: now + SagaDuration(milliseconds: -inboxRetention.milliseconds))
            deleted += count
            if count < 10_000 { break }
        }
        if !expired.isEmpty || deleted > 0 {
            logger.info(
                "housekeeping", metadata: ["signals.expired": "\(expired.count)", "inbox.deleted": "\(deleted)"])
        }
        return (expired.count, deleted)
    }
}
