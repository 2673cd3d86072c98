import Foundation
import Logging
import PostgresNIO
import SagaCore

extension SagaStore {
    /// Applies a batch of inputs in one transaction:
    ///
    /// 1. records the inputs' message ids in the inbox, dropping inputs whose id was seen before
    ///    (or twice in the batch);
    /// 2. for start keys: takes an advisory lock per key (concurrent starts of one key serialize),
    ///    finds the sagas they already started and the signals pending for them;
    /// 3. locks the sagas concerned, all in one statement ordered by id (so batches never deadlock);
    /// 4. calls `compute`, which must be pure: it gets the batch and the locked sagas and returns
    ///    what to write;
    /// 5. writes states (new sagas inserted), history, timers (kept equal to each state's
    ///    timers), pending signals and outbox rows, a few multi-row statements in all, and commits;
    /// 6. when it wrote outbox rows, wakes the outbox relays (`NOTIFY saga_outbox`, sent after the
    ///    commit: see ``OutboxNotifier``).
    ///
    /// Nothing is written when anything fails: the error of `compute` comes out as it was thrown;
    /// PostgreSQL's as a ``SagaStoreError``.
    @discardableResult
    public func applyBatch<Input: SagaStoreInput>(
        _ inputs: [Input], now: SagaTimestamp, compute: (BatchContext<Input>) throws -> BatchWrites
    ) async throws -> BatchOutcome {
        let logger = self.logger
        let result = try await transaction { connection in
            // 1. The inbox.
            // Sorted, so two batches that share message ids take their index entries in one order.
            let messageIDs = Set(inputs.compactMap(\.messageID)).sorted()
            var fresh = Set<String>()
            if !messageIDs.isEmpty {
                let rows = try await connection.execute(InsertInboxStatement(messageIDs: messageIDs), logger: logger)
                for try await id in rows { fresh.insert(id) }
            }
            var kept: [Input] = []
            var duplicates: [Input] = []
            for input in inputs {
                if let id = input.messageID {
                    guard fresh.remove(id) != nil else {
                        duplicates.append(input)
                        continue
                    }
                }
                kept.append(input)
            }

            // 2. Start keys.
            let startKeys = Array(Set(kept.compactMap(\.startKey)))
            var existingStarts: [StartKey: String] = [:]
            var pendingSignals: [StartKey: [PendingSignal]] = [:]
            if !startKeys.isEmpty {
                let tenants = startKeys.map(\.tenant)
                let types = startKeys.map(\.sagaType)
                let keys = startKeys.map(\.key)
                try await connection.query(
                    """
                    SELECT pg_advisory_xact_lock(h) FROM (
                        SELECT DISTINCT hashtextextended(t || chr(31) || s || chr(31) || k, 0) AS h
                        FROM unnest(\(tenants)::text[], \(types)::text[], \(keys)::text[]) AS u(t, s, k)
                        ORDER BY h
                    ) AS locks
                    """, logger: logger)
                let found = try await connection.query(
                    """
                    SELECT tenant, saga_type, start_key, id FROM sagas
                    WHERE start_key IS NOT NULL AND (tenant, saga_type, start_key) IN (
                        SELECT * FROM unnest(\(tenants)::text[], \(types)::text[], \(keys)::text[]))
                    """, logger: logger)
                for try await (tenant, type, key, id) in found.decode((String, String, String, String).self) {
                    existingStarts[StartKey(tenant: tenant, sagaType: type, key: key)] = id
                }
                let pending = try await connection.query(
                    """
                    SELECT id, tenant, saga_type, start_key, signal_id, name, payload::text,
                        (extract(epoch FROM received_at) * 1000)::int8, (extract(epoch FROM expires_at) * 1000)::int8
                    FROM saga_pending_signals
                    WHERE (tenant, saga_type, start_key) IN (
                        SELECT * FROM unnest(\(tenants)::text[], \(types)::text[], \(keys)::text[]))
                        AND expires_at > to_timestamp(\(now.milliseconds)::float8 / 1000)
                    ORDER BY id FOR UPDATE
                    """, logger: logger)
                for try await row in pending.decode(
                    (Int64, String, String, String, String, String, String, Int64, Int64).self)
                {
                    let target = StartKey(tenant: row.1, sagaType: row.2, key: row.3)
                    let payload = try self.json(from: row.6, what: "the payload of pending signal \(row.4)")
                    var signal = PendingSignal(
                        target: target, signal: SignalDelivery(id: row.4, name: row.5, payload: payload),
                        receivedAt: SagaTimestamp(millisecondsSinceEpoch: row.7),
                        expiresAt: SagaTimestamp(millisecondsSinceEpoch: row.8))
                    signal.id = row.0
                    pendingSignals[target, default: []].append(signal)
                }
            }

            // 3. Lock the sagas.
            let ids = Array(Set(kept.compactMap(\.sagaID)).union(existingStarts.values)).sorted()
            let sagas = try await self.lockSagas(ids, skipLocked: false, connection: connection)

            // 4. Compute.
            let writes = try compute(
                BatchContext(
                    inputs: kept, duplicates: duplicates, sagas: sagas, existingStarts: existingStarts,
                    pendingSignals: pendingSignals))

            // 5. Write.
            var (outcome, written) = try await self.write(writes, loaded: sagas, now: now, connection: connection)
            outcome.duplicates = duplicates.count
            return (outcome, written)
        }
        // Committed: the states written are now the database's, and the relays may read the rows.
        cache.store(result.1)
        if result.0.outboxRows > 0 { outboxNotifier.wake() }
        return result.0
    }

    /// Fires due timers: in one transaction, takes up to `limit` sagas with timers due at `now`,
    /// earliest first, and locks them with `FOR UPDATE SKIP LOCKED` (instances never share a saga;
    /// a saga another transaction holds keeps its timers for the next round), reads their due
    /// timers, calls `compute`, and writes as ``applyBatch(_:now:compute:)`` does. Returns what was
    /// done; `timersFired` counts the timers handed to `compute`.
    @discardableResult
    ///
    /// With `only`, claims only those sagas (to apply one saga's timers alone). Parked sagas (see
    /// ``park(_:reason:now:)``) are never claimed.
    public func applyDueTimers(
        now: SagaTimestamp, limit: Int = 500, only sagaIDs: [String]? = nil,
        compute: (TimerBatchContext) throws -> BatchWrites
    ) async throws -> BatchOutcome {
        let logger = self.logger
        let result = try await transaction { connection in
            // The sagas with due timers, earliest first, chosen and locked in one statement that
            // skips any another transaction holds: skipped rows do not count towards the limit, so
            // claimers running together take different sagas instead of all reaching for the same
            // first ones. Timer rows are written only under their saga's lock, so the timers of the
            // locked sagas need no lock of their own (locking timer rows could split one saga's
            // timers between claimers, each waiting for the other).
            let chosen = try await connection.query(
                """
                SELECT s.id FROM sagas s
                JOIN (SELECT saga_id, min(due_at) AS due FROM saga_timers
                    WHERE due_at <= to_timestamp(\(now.milliseconds)::float8 / 1000) GROUP BY saga_id) AS t
                    ON t.saga_id = s.id
                WHERE s.parked_reason IS NULL AND (\(sagaIDs == nil) OR s.id = ANY(\(sagaIDs ?? [])::text[]))
                ORDER BY t.due LIMIT \(max(1, limit)) FOR UPDATE OF s SKIP LOCKED
                """, logger: logger)
            var ids: [String] = []
            for try await id in chosen.decode(String.self) { ids.append(id) }
            guard !ids.isEmpty else {
                // Nothing to claim: due timers of sagas that no longer exist are dropped.
                try await connection.query(
                    """
                    DELETE FROM saga_timers WHERE due_at <= to_timestamp(\(now.milliseconds)::float8 / 1000)
                        AND NOT EXISTS (SELECT 1 FROM sagas WHERE sagas.id = saga_timers.saga_id)
                    """, logger: logger)
                return (BatchOutcome(duplicates: 0, sagasWritten: 0, outboxRows: 0, timersFired: 0), [SagaRecord]())
            }
            ids.sort()
            // Locked already: this reads them, and waits for nothing.
            let sagas = try await self.lockSagas(ids, skipLocked: false, connection: connection)
            let locked = ids.filter { sagas[$0] != nil }
            var claimed: [DueTimer] = []
            if !locked.isEmpty {
                let rows = try await connection.query(
                    """
                    SELECT saga_id, timer_id, (extract(epoch FROM due_at) * 1000)::int8 FROM saga_timers
                    WHERE saga_id = ANY(\(locked)::text[]) AND due_at <= to_timestamp(\(now.milliseconds)::float8 / 1000)
                    ORDER BY due_at, saga_id, timer_id
                    """, logger: logger)
                for try await (sagaID, timerID, due) in rows.decode((String, String, Int64).self) {
                    claimed.append(
                        DueTimer(sagaID: sagaID, timerID: timerID, dueAt: SagaTimestamp(millisecondsSinceEpoch: due)))
                }
            }
            let timers = claimed
            let writes = try compute(TimerBatchContext(timers: timers, sagas: sagas))
            // Every saga whose timers fired gets its timer rows made equal to its state, written or
            // not (a timer its state no longer holds is stale and goes, instead of firing again).
            let writtenIDs = Set(writes.sagas.map(\.record.id))
            let fired = Set(timers.map(\.sagaID))
            let unwritten = fired.subtracting(writtenIDs).sorted().compactMap { sagas[$0] }
            var (outcome, written) = try await self.write(
                writes, loaded: sagas, now: now, connection: connection, syncTimersOnly: unwritten,
                alwaysSyncTimers: fired)
            outcome.timersFired = timers.count
            return (outcome, written)
        }
        cache.store(result.1)
        if result.0.outboxRows > 0 { outboxNotifier.wake() }
        return result.0
    }

    /// Locks `ids` (sorted) and loads their records; a state is transferred only when the row's
    /// revision differs from the cached one.
    func lockSagas(_ ids: [String], skipLocked: Bool, connection: PostgresConnection) async throws
        -> [String: SagaRecord]
    {
        guard !ids.isEmpty else { return [:] }
        let cached = cache.records(ids)
        let revisions = ids.map { cached[$0]?.revision ?? -1 }
        let rows =
            skipLocked
            ? try await connection.execute(LockSagasSkippingStatement(ids: ids, revisions: revisions), logger: logger)
            : try await connection.execute(LockSagasStatement(ids: ids, revisions: revisions), logger: logger)
        var sagas: [String: SagaRecord] = [:]
        for try await (id, tenant, startKey, priority, revision, state) in rows {
            let instance: SagaInstance
            if let state {
                instance = try self.instance(from: state, id: id)
            } else if let hit = cached[id] {
                instance = hit.instance
            } else {
                throw SagaStoreError.invalidJSON(what: "the state of saga \(id)", reason: "missing")
            }
            var record = SagaRecord(instance: instance, tenant: tenant, startKey: startKey, priority: priority)
            record.revision = revision
            sagas[id] = record
        }
        return sagas
    }

    /// Writes a batch's results with one statement per table and kind of change.
    func write(
        _ writes: BatchWrites, loaded: [String: SagaRecord], now: SagaTimestamp, connection: PostgresConnection,
        syncTimersOnly: [SagaRecord] = [], alwaysSyncTimers: Set<String> = []
    ) async throws -> (BatchOutcome, [SagaRecord]) {
        let logger = self.logger
        var seen = Set<String>()
        for write in writes.sagas where !seen.insert(write.record.id).inserted {
            throw SagaStoreError.invalidBatch("saga \(write.record.id) is written twice in one batch")
        }
        var written: [SagaRecord] = []
        var inserts = SagaColumns()
        var updates = SagaColumns()
        var historySagas: [String] = []
        var historyTimes: [Int64] = []
        var historyEntries: [String] = []
        var outbox = OutboxColumns()
        var timerSagas: [String] = syncTimersOnly.map(\.id)
        var timerRows = TimerColumns()
        for record in syncTimersOnly { timerRows.append(record.instance) }

        for write in writes.sagas {
            var record = write.record
            let state = try self.state(of: record.instance)
            if let before = loaded[record.id] {
                updates.append(record, state: state)
                record.revision = before.revision + 1
            } else {
                inserts.append(record, state: state)
                record.revision = 1
            }
            written.append(record)
            for entry in write.history {
                historySagas.append(record.id)
                historyTimes.append(entry.at.milliseconds)
                historyEntries.append(try document(entry.entry, what: "a history entry of saga \(record.id)"))
            }
            for message in write.outbox {
                try outbox.append(message, sagaID: record.id, lane: outboxLane(of: record.id), store: self)
            }
            // The timer rows mirror the state's timers: rewritten only when those changed.
            if alwaysSyncTimers.contains(record.id) || loaded[record.id]?.instance.timers != record.instance.timers {
                timerSagas.append(record.id)
                timerRows.append(record.instance)
            }
        }
        for message in writes.outbox {
            let owner = message.key ?? ""
            try outbox.append(message, sagaID: owner, lane: outboxLane(of: owner), store: self)
        }

        if !inserts.ids.isEmpty {
            try await connection.query(
                """
                INSERT INTO sagas (id, tenant, saga_type, definition_version, status, state, start_key, priority,
                    waiting_for, waiting_detail, wait_until, revision, created_at, updated_at)
                SELECT u.id, u.tenant, u.saga_type, u.version, u.status, u.state,
                    CASE WHEN u.has_start_key THEN u.start_key END,
                    u.priority, nullif(u.waiting_for, ''), nullif(u.waiting_detail, ''),
                    CASE WHEN u.wait_until < 0 THEN NULL ELSE to_timestamp(u.wait_until::float8 / 1000) END, 1,
                    to_timestamp(u.created::float8 / 1000), to_timestamp(u.updated::float8 / 1000)
                FROM unnest(\(inserts.ids)::text[], \(inserts.tenants)::text[], \(inserts.types)::text[],
                    \(inserts.versions)::int8[], \(inserts.statuses)::text[], \(inserts.states)::text[],
                    \(inserts.startKeys)::text[], \(inserts.priorities)::int8[], \(inserts.waitingFor)::text[],
                    \(inserts.waitingDetails)::text[], \(inserts.waitUntil)::int8[], \(inserts.created)::int8[],
                    \(inserts.updated)::int8[], \(inserts.hasStartKey)::bool[])
                    AS u(id, tenant, saga_type, version, status, state, start_key, priority, waiting_for,
                        waiting_detail, wait_until, created, updated, has_start_key)
                """, logger: logger)
        }
        if !updates.ids.isEmpty || !historySagas.isEmpty || !outbox.sagas.isEmpty {
            _ = try await connection.execute(
                WriteBatchStatement(
                    updates: updates, historySagas: historySagas, historyTimes: historyTimes,
                    historyEntries: historyEntries, outbox: outbox),
                logger: logger)
        }
        if !timerSagas.isEmpty {
            try await connection.query(
                "DELETE FROM saga_timers WHERE saga_id = ANY(\(timerSagas)::text[])", logger: logger)
        }
        if !timerRows.sagas.isEmpty {
            try await connection.query(
                """
                INSERT INTO saga_timers (saga_id, timer_id, kind, due_at)
                SELECT u.saga_id, u.timer_id, u.kind, to_timestamp(u.due::float8 / 1000)
                FROM unnest(\(timerRows.sagas)::text[], \(timerRows.ids)::text[], \(timerRows.kinds)::text[],
                    \(timerRows.due)::int8[]) AS u(saga_id, timer_id, kind, due)
                ON CONFLICT (saga_id, timer_id) DO UPDATE SET kind = excluded.kind, due_at = excluded.due_at
                """, logger: logger)
        }
        if !writes.pendSignals.isEmpty {
            var tenants: [String] = []
            var types: [String] = []
            var keys: [String] = []
            var signalIDs: [String] = []
            var names: [String] = []
            var payloads: [String] = []
            var received: [Int64] = []
            var expires: [Int64] = []
            for pending in writes.pendSignals {
                tenants.append(pending.target.tenant)
                types.append(pending.target.sagaType)
                keys.append(pending.target.key)
                signalIDs.append(pending.signal.id)
                names.append(pending.signal.name)
                payloads.append(
                    try document(pending.signal.payload, what: "the payload of signal \(pending.signal.id)"))
                received.append(pending.receivedAt.milliseconds)
                expires.append(pending.expiresAt.milliseconds)
            }
            try await connection.query(
                """
                INSERT INTO saga_pending_signals (tenant, saga_type, start_key, signal_id, name, payload,
                    received_at, expires_at)
                SELECT u.tenant, u.saga_type, u.start_key, u.signal_id, u.name, u.payload,
                    to_timestamp(u.received::float8 / 1000), to_timestamp(u.expires::float8 / 1000)
                FROM unnest(\(tenants)::text[], \(types)::text[], \(keys)::text[], \(signalIDs)::text[],
                    \(names)::text[], \(payloads)::text[], \(received)::int8[], \(expires)::int8[])
                    AS u(tenant, saga_type, start_key, signal_id, name, payload, received, expires)
                ON CONFLICT (tenant, saga_type, start_key, signal_id) DO NOTHING
                """, logger: logger)
        }
        if !writes.consumedPendingSignals.isEmpty {
            try await connection.query(
                "DELETE FROM saga_pending_signals WHERE id = ANY(\(writes.consumedPendingSignals)::int8[])",
                logger: logger)
        }
        let outcome = BatchOutcome(
            duplicates: 0, sagasWritten: writes.sagas.count, outboxRows: outbox.sagas.count, timersFired: 0)
        return (outcome, written)
    }
}

/// The columns of saga rows, for `unnest`.
struct SagaColumns {
    var ids: [String] = []
    var tenants: [String] = []
    var types: [String] = []
    var versions: [Int] = []
    var statuses: [String] = []
    var states: [String] = []
    var startKeys: [String] = []
    var hasStartKey: [Bool] = []
    var priorities: [Int] = []
    var waitingFor: [String] = []
    var waitingDetails: [String] = []
    var waitUntil: [Int64] = []
    var created: [Int64] = []
    var updated: [Int64] = []

    mutating func append(_ record: SagaRecord, state: String) {
        let instance = record.instance
        ids.append(instance.id)
        tenants.append(record.tenant)
        types.append(instance.definitionName)
        versions.append(instance.definitionVersion)
        statuses.append(instance.status.rawValue)
        states.append(state)
        startKeys.append(record.startKey ?? "")
        hasStartKey.append(record.startKey != nil)
        priorities.append(record.priority)
        let wait = instance.waitClassification
        waitingFor.append(wait?.kind ?? "")
        waitingDetails.append(wait?.detail ?? "")
        waitUntil.append(wait?.until?.milliseconds ?? -1)
        created.append(instance.createdAt.milliseconds)
        updated.append(instance.updatedAt.milliseconds)
    }
}

/// The columns of timer rows, for `unnest`.
struct TimerColumns {
    var sagas: [String] = []
    var ids: [String] = []
    var kinds: [String] = []
    var due: [Int64] = []

    mutating func append(_ instance: SagaInstance) {
        for timer in instance.timers {
            sagas.append(instance.id)
            ids.append(timer.id)
            kinds.append(timer.kind.rawValue)
            due.append(timer.dueAt.milliseconds)
        }
    }
}

/// The columns of outbox rows, for `unnest`.
struct OutboxColumns {
    var sagas: [String] = []
    var lanes: [Int] = []
    var topics: [String] = []
    var keys: [String] = []
    var hasKeys: [Bool] = []
    var headers: [String] = []
    var payloads: [String] = []

    mutating func append(_ message: OutboxMessage, sagaID: String, lane: Int, store: SagaStore) throws(SagaStoreError) {
        let headerText = JSONValue.object(message.headers.mapValues { .string($0) }).jsonText
        let size = message.payload.utf8.count + (message.key?.utf8.count ?? 0) + headerText.utf8.count
        let limit = store.configuration.maximumMessageBytes
        guard size <= limit else {
            throw .tooLarge(what: "a message to \(message.topic) for saga \(sagaID)", bytes: size, limit: limit)
        }
        sagas.append(sagaID)
        lanes.append(lane)
        topics.append(message.topic)
        keys.append(message.key ?? "")
        hasKeys.append(message.key != nil)
        headers.append(headerText)
        payloads.append(message.payload)
    }
}

extension SagaInstance {
    /// What the saga waits for, as the store indexes it: a kind, a description and a time.
    var waitClassification: (kind: String, detail: String, until: SagaTimestamp?)? {
        if status == .failed {
            let detail = failure.map { "an operator: step '\($0.step)' failed with \($0.error.code)" } ?? "an operator"
            return ("operator", detail, nil)
        }
        guard !status.isFinished, let waiting = waitingFor else { return nil }
        let relevant = timers.filter { $0.kind != .deadline }
        let timer = relevant.min(by: { $0.dueAt < $1.dueAt }) ?? timers.first
        let kind: String
        switch timer?.kind {
        case .attemptTimeout: kind = timer?.action == .compensate ? "compensation" : "reply"
        case .retryBackoff: kind = "retry"
        case .signalTimeout: kind = "signal"
        case .sleep: kind = "sleep"
        case .deadline: kind = "deadline"
        case nil: kind = "unknown"
        }
        return (kind, waiting.description, waiting.until)
    }
}
