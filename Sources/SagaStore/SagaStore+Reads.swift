import Foundation
import Logging
import PostgresNIO
import SagaCore

extension SagaStore {
    // MARK: sagas

    /// The saga a start key started, if any (start idempotency outside a batch, e.g. for the API).
    public func sagaID(startedBy key: StartKey) async throws -> String? {
        let logger = self.logger
        return try await connection { connection in
            let rows = try await connection.query(
                """
                SELECT id FROM sagas WHERE tenant = \(key.tenant) AND saga_type = \(key.sagaType)
                    AND start_key = \(key.key)
                """, logger: logger)
            for try await id in rows.decode(String.self) { return id }
            return nil
        }
    }

    /// One saga with its whole timeline.
    ///
    /// - Throws: ``SagaStoreError/sagaNotFound(_:)`` when there is none with `id`.
    public func saga(_ id: String) async throws -> SagaDetail {
        let logger = self.logger
        return try await storeTransaction { connection in
            let rows = try await connection.query(
                """
                SELECT tenant, start_key, priority, revision, state::text,
                    (extract(epoch FROM created_at) * 1000)::int8, (extract(epoch FROM updated_at) * 1000)::int8
                FROM sagas WHERE id = \(id)
                """, logger: logger)
            var found: SagaDetail?
            for try await (tenant, startKey, priority, revision, state, created, updated) in rows.decode(
                (String, String?, Int, Int64, String, Int64, Int64).self)
            {
                let instance = try self.instance(from: state, id: id)
                var record = SagaRecord(instance: instance, tenant: tenant, startKey: startKey, priority: priority)
                record.revision = revision
                found = SagaDetail(
                    record: record, createdAt: SagaTimestamp(millisecondsSinceEpoch: created),
                    updatedAt: SagaTimestamp(millisecondsSinceEpoch: updated), history: [])
            }
            guard var detail = found else { throw SagaStoreError.sagaNotFound(id) }
            let history = try await connection.query(
                """
                SELECT sequence, (extract(epoch FROM at) * 1000)::int8, entry::text FROM saga_history
                WHERE saga_id = \(id) ORDER BY sequence
                """,
                logger: logger)
            for try await (sequence, at, entry) in history.decode((Int64, Int64, String).self) {
                let document = try self.json(from: entry, what: "history entry \(sequence) of saga \(id)")
                detail.history.append(
                    (sequence, HistoryRecord(at: SagaTimestamp(millisecondsSinceEpoch: at), entry: document)))
            }
            return detail
        }
    }

    /// A page of sagas, oldest first, filtered by `query`. Keyset pagination: a page starts after
    /// the cursor of the previous one, so sagas created meanwhile never shift the pages.
    public func sagas(_ query: SagaQuery) async throws -> SagaPage {
        let limit = min(max(query.limit, 1), 1_000)
        var sql = PostgresQuery(
            unsafeSQL: """
                SELECT id, tenant, saga_type, definition_version, status, start_key, priority, waiting_for,
                    waiting_detail, (extract(epoch FROM wait_until) * 1000)::int8,
                    (extract(epoch FROM created_at) * 1000)::int8, (extract(epoch FROM updated_at) * 1000)::int8
                FROM sagas WHERE true
                """)
        var binds = PostgresBindings()
        func add(_ clause: String) { sql.sql += " AND " + clause }
        if !query.statuses.isEmpty {
            binds.append(query.statuses.map(\.rawValue).sorted())
            add("status = ANY($\(binds.count)::text[])")
        }
        if let type = query.sagaType {
            binds.append(type)
            add("saga_type = $\(binds.count)")
        }
        if let tenant = query.tenant {
            binds.append(tenant)
            add("tenant = $\(binds.count)")
        }
        if let from = query.createdFrom {
            binds.append(from.milliseconds)
            add("created_at >= to_timestamp($\(binds.count)::float8 / 1000)")
        }
        if let before = query.createdBefore {
            binds.append(before.milliseconds)
            add("created_at < to_timestamp($\(binds.count)::float8 / 1000)")
        }
        if let waiting = query.waitingFor {
            binds.append(waiting)
            add("waiting_for = $\(binds.count)")
        }
        if let after = query.after {
            binds.append(after.createdAt.milliseconds)
            let time = binds.count
            binds.append(after.id)
            add("(created_at, id) > (to_timestamp($\(time)::float8 / 1000), $\(binds.count))")
        }
        binds.append(limit + 1)
        sql.sql += " ORDER BY created_at, id LIMIT $\(binds.count)"
        let finalQuery = PostgresQuery(unsafeSQL: sql.sql, binds: binds)
        let logger = self.logger
        let summaries: [SagaSummary] = try await connection { connection in
            var summaries: [SagaSummary] = []
            let rows = try await connection.query(finalQuery, logger: logger)
            for try await row in rows.decode(
                (String, String, String, Int, String, String?, Int, String?, String?, Int64?, Int64, Int64).self)
            {
                summaries.append(
                    SagaSummary(
                        id: row.0, tenant: row.1, sagaType: row.2, definitionVersion: row.3,
                        status: SagaStatus(rawValue: row.4) ?? .failed, startKey: row.5, priority: row.6,
                        waitingFor: row.7, waitingDetail: row.8,
                        waitUntil: row.9.map { SagaTimestamp(millisecondsSinceEpoch: $0) },
                        createdAt: SagaTimestamp(millisecondsSinceEpoch: row.10),
                        updatedAt: SagaTimestamp(millisecondsSinceEpoch: row.11)))
            }
            return summaries
        }
        guard summaries.count > limit else { return SagaPage(sagas: summaries, next: nil) }
        let page = Array(summaries.prefix(limit))
        let last = page[page.count - 1]
        return SagaPage(sagas: page, next: SagaCursor(createdAt: last.createdAt, id: last.id))
    }

    // MARK: outbox

    /// Up to `limit` outbox rows of `lanes`, in the order they were written (per saga, the order
    /// of its transitions). The engine's relay reads through ``relayOutbox(lanes:limit:publish:)``,
    /// which holds the lanes while it publishes; this is for inspection and tests.
    public func outbox(lanes: [Int], limit: Int) async throws -> [OutboxRow] {
        try await connection { connection in try await self.readOutbox(lanes: lanes, limit: limit, connection) }
    }

    func readOutbox(lanes: [Int], limit: Int, _ connection: PostgresConnection) async throws -> [OutboxRow] {
        let decodeHeaders = { (text: String) throws(SagaStoreError) -> [String: String] in
            guard case .object(let members) = try self.json(from: text, what: "outbox headers") else { return [:] }
            return members.compactMapValues(\.stringValue)
        }
        let rows = try await connection.query(
            """
            SELECT id, saga_id, lane, topic, message_key, headers::text, payload,
                (extract(epoch FROM created_at) * 1000)::int8
            FROM saga_outbox WHERE lane = ANY(\(lanes)::int8[]) ORDER BY id LIMIT \(max(1, limit))
            """, logger: logger)
        var result: [OutboxRow] = []
        for try await row in rows.decode((Int64, String, Int, String, String?, String, String, Int64).self) {
            result.append(
                OutboxRow(
                    id: row.0, sagaID: row.1, lane: row.2,
                    message: OutboxMessage(topic: row.3, key: row.4, headers: try decodeHeaders(row.5), payload: row.6),
                    createdAt: Date(timeIntervalSince1970: Double(row.7) / 1000)))
        }
        return result
    }

    /// One round of an outbox relay, in one transaction: takes those of `lanes` that no other relay
    /// holds (transaction-level advisory locks: one relay at a time per lane, so a saga's rows go
    /// out in order even with many instances), reads up to `limit` of their rows in order, calls
    /// `publish` with them, deletes the rows it returns (those the broker acknowledged), and
    /// commits, which lets the lanes go. Returns how many rows were read and how many deleted.
    ///
    /// `publish` runs while the transaction is open: it should only hand the rows to the broker and
    /// wait for the acknowledgements.
    public func relayOutbox(
        lanes: [Int], limit: Int, publish: ([OutboxRow]) async throws -> [OutboxRow]
    ) async throws -> (read: Int, published: Int) {
        let logger = self.logger
        return try await transaction { connection in
            let lanes64 = lanes.map(Int64.init)
            var held: [Int] = []
            let rows = try await connection.query(
                """
                SELECT lane FROM unnest(\(lanes64)::int8[]) AS lane
                WHERE pg_try_advisory_xact_lock(\(Self.outboxLaneLockClass)::int4, lane::int4)
                """, logger: logger)
            for try await lane in rows.decode(Int64.self) { held.append(Int(lane)) }
            guard !held.isEmpty else { return (0, 0) }
            let read = try await self.readOutbox(lanes: held, limit: limit, connection)
            guard !read.isEmpty else { return (0, 0) }
            let published = try await publish(read)
            if !published.isEmpty {
                let publishedLanes = published.map { Int64($0.lane) }
                let ids = published.map(\.id)
                try await connection.query(
                    """
                    DELETE FROM saga_outbox WHERE (lane, id) IN (
                        SELECT * FROM unnest(\(publishedLanes)::int8[], \(ids)::int8[]))
                    """, logger: logger)
            }
            return (read.count, published.count)
        }
    }

    /// The first key of the advisory locks on outbox lanes (the second is the lane).
    static let outboxLaneLockClass: Int32 = 0x5A_0B

    /// Listens for the notification that outbox rows were written (`LISTEN saga_outbox`, on a
    /// connection of its own) and calls `onNotification` for each, and once when listening
    /// starts, so rows written before are not missed. Returns when the task is cancelled; throws
    /// when the connection fails (listen again after a pause; the relay polls meanwhile).
    public func listenForOutbox(_ onNotification: @escaping @Sendable () -> Void) async throws {
        do {
            try await client.withConnection { connection in
                try await connection.listen(on: OutboxNotifier.channel) { notifications in
                    onNotification()
                    for try await _ in notifications { onNotification() }
                }
            }
        } catch is CancellationError {
            return
        } catch {
            if Task.isCancelled { return }
            throw SagaStoreError.wrapping(error)
        }
    }

    /// Deletes published outbox rows (those ``outbox(lanes:limit:)`` returned).
    public func deleteOutbox(_ rows: [OutboxRow]) async throws {
        guard !rows.isEmpty else { return }
        let logger = self.logger
        let lanes = rows.map { Int64($0.lane) }
        let ids = rows.map(\.id)
        try await connection { connection in
            try await connection.query(
                """
                DELETE FROM saga_outbox WHERE (lane, id) IN (
                    SELECT * FROM unnest(\(lanes)::int8[], \(ids)::int8[]))
                """, logger: logger)
        }
    }

    /// How many outbox rows wait, and the age of the oldest in milliseconds (for metrics).
    public func outboxBacklog(now: SagaTimestamp) async throws -> (rows: Int, oldestAge: Int64) {
        let logger = self.logger
        return try await connection { connection in
            let rows = try await connection.query(
                """
                SELECT count(*)::int8, coalesce(\(now.milliseconds)::int8
                    - (extract(epoch FROM min(created_at)) * 1000)::int8, 0)
                FROM saga_outbox
                """, logger: logger)
            for try await (count, age) in rows.decode((Int64, Int64).self) { return (Int(count), max(0, age)) }
            return (0, 0)
        }
    }

    /// How late the most overdue timer is, in milliseconds (0 when none is due): a timer service
    /// that keeps up holds this near its poll interval.
    public func oldestDueTimerLag(now: SagaTimestamp) async throws -> Int64 {
        let logger = self.logger
        return try await connection { connection in
            let rows = try await connection.query(
                """
                SELECT coalesce(\(now.milliseconds)::int8 - (extract(epoch FROM min(due_at)) * 1000)::int8, 0)
                FROM saga_timers WHERE due_at <= to_timestamp(\(now.milliseconds)::float8 / 1000)
                """, logger: logger)
            for try await lag in rows.decode(Int64.self) { return max(0, lag) }
            return 0
        }
    }

    /// How many sagas are stuck: not finished, and with no timer set. Every saga that is not
    /// finished waits for something that will come — a reply (under an attempt timeout), a timer, a
    /// signal (under its timeout) — and each of those sets a timer; a saga without one waits for
    /// nothing. `failed` sagas wait for an operator and are not counted here.
    public func stuckSagaCount() async throws -> Int {
        let logger = self.logger
        return try await connection { connection in
            let rows = try await connection.query(
                """
                SELECT count(*)::int8 FROM sagas s
                WHERE s.status IN ('running', 'waiting', 'sleeping', 'compensating')
                    AND NOT EXISTS (SELECT 1 FROM saga_timers t WHERE t.saga_id = s.id)
                """, logger: logger)
            for try await count in rows.decode(Int64.self) { return Int(count) }
            return 0
        }
    }

    /// Whether the database answers: one round trip.
    public func ping() async throws {
        let logger = self.logger
        try await connection { connection in _ = try await connection.query("SELECT 1", logger: logger) }
    }

    // MARK: parked sagas

    /// The sagas with timers due at `now`, earliest first, that are not parked: what
    /// ``applyDueTimers(now:limit:only:compute:)`` would claim, read without locking.
    public func dueSagaIDs(now: SagaTimestamp, limit: Int) async throws -> [String] {
        let logger = self.logger
        return try await connection { connection in
            let rows = try await connection.query(
                """
                SELECT s.id FROM sagas s
                JOIN (SELECT saga_id, min(due_at) AS due FROM saga_timers
                    WHERE due_at <= to_timestamp(\(now.milliseconds)::float8 / 1000) GROUP BY saga_id) AS t
                    ON t.saga_id = s.id
                WHERE s.parked_reason IS NULL
                ORDER BY t.due LIMIT \(max(1, limit))
                """, logger: logger)
            var ids: [String] = []
            for try await id in rows.decode(String.self) { ids.append(id) }
            return ids
        }
    }

    /// Parks saga `id`: its timers are no longer claimed until ``unpark(_:now:)``, and its history
    /// says why. For a saga whose timers cannot be applied (its state or what it would write is
    /// refused), which would otherwise fail again on every round.
    public func park(_ id: String, reason: String, now: SagaTimestamp) async throws {
        let logger = self.logger
        let entry = JSONValue.object(["event": "saga.parked", "reason": .string(reason)]).jsonText
        try await storeTransaction { connection in
            try await connection.query(
                """
                UPDATE sagas SET parked_reason = \(reason),
                    parked_at = to_timestamp(\(now.milliseconds)::float8 / 1000) WHERE id = \(id)
                """, logger: logger)
            try await connection.query(
                """
                INSERT INTO saga_history (saga_id, at, entry)
                VALUES (\(id), to_timestamp(\(now.milliseconds)::float8 / 1000), \(entry))
                """, logger: logger)
        }
    }

    /// Resumes a parked saga: its timers are claimed again. Returns whether it was parked.
    @discardableResult
    public func unpark(_ id: String, now: SagaTimestamp) async throws -> Bool {
        let logger = self.logger
        let entry = JSONValue.object(["event": "saga.unparked"]).jsonText
        return try await storeTransaction { connection in
            let rows = try await connection.query(
                """
                UPDATE sagas SET parked_reason = NULL, parked_at = NULL
                WHERE id = \(id) AND parked_reason IS NOT NULL RETURNING id
                """, logger: logger)
            var found = false
            for try await _ in rows.decode(String.self) { found = true }
            guard found else { return false }
            try await connection.query(
                """
                INSERT INTO saga_history (saga_id, at, entry)
                VALUES (\(id), to_timestamp(\(now.milliseconds)::float8 / 1000), \(entry))
                """, logger: logger)
            return true
        }
    }

    /// How many sagas are parked.
    public func parkedSagaCount() async throws -> Int {
        let logger = self.logger
        return try await connection { connection in
            let rows = try await connection.query(
                "SELECT count(*)::int8 FROM sagas WHERE parked_reason IS NOT NULL", logger: logger)
            for try await count in rows.decode(Int64.self) { return Int(count) }
            return 0
        }
    }

    /// The parked sagas and why, oldest first.
    public func parkedSagas(limit: Int = 100) async throws -> [(id: String, reason: String)] {
        let logger = self.logger
        return try await connection { connection in
            let rows = try await connection.query(
                """
                SELECT id, parked_reason FROM sagas WHERE parked_reason IS NOT NULL
                ORDER BY parked_at, id LIMIT \(max(1, limit))
                """, logger: logger)
            var parked: [(id: String, reason: String)] = []
            for try await (id, reason) in rows.decode((String, String).self) { parked.append((id, reason)) }
            return parked
        }
    }

    // MARK: housekeeping

    /// Deletes inbox entries received before `cutoff`, at most `limit`; returns how many. A message
    /// redelivered after its entry is gone would be applied again, so the retention must be longer
    /// than any redelivery (the topics' retention, at least).
    @discardableResult
    public func pruneInbox(receivedBefore cutoff: SagaTimestamp, limit: Int = 10_000) async throws
        -> Int
    {
        let logger = self.logger
        return try await connection { connection in
            let rows = try await connection.query(
                """
                WITH old AS (
                    SELECT message_id FROM saga_inbox
                    WHERE received_at < to_timestamp(\(cutoff.milliseconds)::float8 / 1000)
                    ORDER BY received_at LIMIT \(max(1, limit))
                )
                DELETE FROM saga_inbox WHERE message_id IN (SELECT message_id FROM old) RETURNING 1
                """, logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
    }

    /// Removes pending signals whose time ran out and returns them, so that their senders can be
    /// told (a `signal expired` outcome).
    public func expirePendingSignals(now: SagaTimestamp, limit: Int = 1_000) async throws
        -> [PendingSignal]
    {
        let logger = self.logger
        return try await storeTransaction { connection in
            let rows = try await connection.query(
                """
                DELETE FROM saga_pending_signals WHERE id IN (
                    SELECT id FROM saga_pending_signals
                    WHERE expires_at <= to_timestamp(\(now.milliseconds)::float8 / 1000)
                    ORDER BY expires_at LIMIT \(max(1, limit)) FOR UPDATE SKIP LOCKED)
                RETURNING id, tenant, saga_type, start_key, signal_id, name, payload::text,
                    (extract(epoch FROM received_at) * 1000)::int8, (extract(epoch FROM expires_at) * 1000)::int8
                """, logger: logger)
            var expired: [PendingSignal] = []
            for try await row in rows.decode(
                (Int64, String, String, String, String, String, String, Int64, Int64).self)
            {
                let payload = try self.json(from: row.6, what: "the payload of pending signal \(row.4)")
                var signal = PendingSignal(
                    target: StartKey(tenant: row.1, sagaType: row.2, key: row.3),
                    signal: SignalDelivery(id: row.4, name: row.5, payload: payload),
                    receivedAt: SagaTimestamp(millisecondsSinceEpoch: row.7),
                    expiresAt: SagaTimestamp(millisecondsSinceEpoch: row.8))
                signal.id = row.0
                expired.append(signal)
            }
            return expired.sorted { $0.id < $1.id }
        }
    }

    // MARK: definitions

    /// Records a definition's JSON form under its name and version; the same again is a no-op.
    ///
    /// - Throws: ``SagaStoreError/tooLarge(what:bytes:limit:)`` or
    ///   ``SagaStoreError/invalidJSON(what:reason:)`` (PostgreSQL's reason) — nothing is written.
    public func saveDefinition(name: String, version: Int, json: String) async throws {
        let what = "definition \(name) v\(version)"
        let size = json.utf8.count
        guard size <= configuration.maximumDocumentBytes else {
            throw SagaStoreError.tooLarge(what: what, bytes: size, limit: configuration.maximumDocumentBytes)
        }
        let logger = self.logger
        do {
            try await connection { connection in
                try await connection.query(
                    """
                    INSERT INTO saga_definitions (name, version, definition) VALUES (\(name), \(version), \(json)::jsonb)
                    ON CONFLICT (name, version) DO NOTHING
                    """, logger: logger)
            }
        } catch {
            // 22P02: invalid text representation; 22032: invalid JSON text.
            if case .database(let message, let state) = error, state == "22P02" || state == "22032" {
                throw SagaStoreError.invalidJSON(what: what, reason: message)
            }
            throw error
        }
    }

    /// The JSON form of a definition, as saved.
    public func definition(name: String, version: Int) async throws -> String? {
        let logger = self.logger
        return try await connection { connection in
            let rows = try await connection.query(
                "SELECT definition::text FROM saga_definitions WHERE name = \(name) AND version = \(version)",
                logger: logger)
            for try await text in rows.decode(String.self) { return text }
            return nil
        }
    }
}
