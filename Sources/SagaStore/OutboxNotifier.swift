import Logging
import PostgresNIO

/// Wakes the outbox relays (sessions that `LISTEN saga_outbox`) after batches that wrote outbox
/// rows, with `NOTIFY` sent on its own, after those batches committed, never inside them.
///
/// A transaction that notifies takes one lock for the whole PostgreSQL server and holds it until
/// its commit is flushed, so notifying inside every batch would put every batch's commit in a line,
/// one WAL flush after another. Sent alone, the notification still commits (and waits for its
/// flush under that lock), but the batches' commits no longer queue behind it, and a store has at
/// most one notification in flight: wake-ups that come while one is being sent are folded into one
/// more, sent after it. A relay is so woken after every batch's commit.
final class OutboxNotifier: Sendable {
    /// The notification channel relays listen on.
    static let channel = "saga_outbox"

    private let wakeUps: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (wakeUps, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks for a notification (at once, or right after the one being sent).
    func wake() {
        continuation.yield()
    }

    /// Stops sending; ``run(client:logger:)`` returns.
    func finish() {
        continuation.finish()
    }

    /// Sends the notifications asked for until ``finish()`` or cancellation.
    func run(client: PostgresClient, logger: Logger) async {
        for await _ in wakeUps {
            do {
                try await client.query("SELECT pg_notify(\(Self.channel), '')", logger: logger)
            } catch {
                // The relays' polling finds the rows anyway.
                logger.debug("outbox notification not sent", metadata: ["db.error": "\(String(reflecting: error))"])
            }
        }
    }
}
