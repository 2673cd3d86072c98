import PostgresNIO

// The statements every batch runs, prepared once per connection (postgres-nio keeps them by
// name): PostgreSQL parses, analyzes and plans each once per connection instead of on every
// batch, which at a hundred transitions per batch was about a tenth of the server's time. Their
// parameters are arrays, one element per row, so one plan serves every batch size.

/// Records message ids in the inbox; returns those not seen before.
struct InsertInboxStatement: PostgresPreparedStatement {
    static let sql = """
        INSERT INTO saga_inbox (message_id) SELECT unnest($1::text[])
        ON CONFLICT DO NOTHING RETURNING message_id
        """
    typealias Row = String

    var messageIDs: [String]

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(messageIDs)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> String { try row.decode(String.self) }
}

/// The columns `lockSagas` reads: id, tenant, start key, priority, revision, and the state unless
/// the row's revision is the one given (the caller has that state cached).
typealias LockedSagaRow = (String, String, String?, Int, Int64, String?)

/// The two lock statements: the same bindings and rows, their SQL differs in `SKIP LOCKED`.
protocol LockSagasPreparedStatement: PostgresPreparedStatement where Row == LockedSagaRow {
    var ids: [String] { get }
    var revisions: [Int64] { get }
}

extension LockSagasPreparedStatement {
    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(ids)
        bindings.append(revisions)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> LockedSagaRow { try row.decode(LockedSagaRow.self) }
}

/// Locks sagas by id, in id order, waiting for any another transaction holds.
struct LockSagasStatement: LockSagasPreparedStatement {
    static let sql = """
        SELECT s.id, s.tenant, s.start_key, s.priority, s.revision,
            CASE WHEN s.revision = k.revision THEN NULL ELSE s.state::text END
        FROM sagas s JOIN unnest($1::text[], $2::int8[]) AS k(id, revision) ON k.id = s.id
        ORDER BY s.id FOR UPDATE OF s
        """
    typealias Row = LockedSagaRow

    var ids: [String]
    var revisions: [Int64]
}

/// ``LockSagasStatement``, skipping the sagas another transaction holds.
struct LockSagasSkippingStatement: LockSagasPreparedStatement {
    static let sql = LockSagasStatement.sql + " SKIP LOCKED"
    typealias Row = LockedSagaRow

    var ids: [String]
    var revisions: [Int64]
}

/// Writes a batch's rows in one statement (one round trip instead of three): the new states of
/// sagas that exist, then history rows and outbox rows, each in the order given. Empty arrays write
/// nothing.
struct WriteBatchStatement: PostgresPreparedStatement {
    static let sql = """
        WITH updated AS (
            UPDATE sagas SET status = u.status, state = u.state, priority = u.priority,
                waiting_for = nullif(u.waiting_for, ''), waiting_detail = nullif(u.waiting_detail, ''),
                wait_until = CASE WHEN u.wait_until < 0 THEN NULL ELSE to_timestamp(u.wait_until::float8 / 1000) END,
                revision = sagas.revision + 1, updated_at = to_timestamp(u.updated::float8 / 1000)
            FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::int8[], $8::int8[])
                AS u(id, status, state, priority, waiting_for, waiting_detail, wait_until, updated)
            WHERE sagas.id = u.id
        ), history AS (
            INSERT INTO saga_history (saga_id, at, entry)
            SELECT u.saga_id, to_timestamp(u.at::float8 / 1000), u.entry
            FROM unnest($9::text[], $10::int8[], $11::text[]) WITH ORDINALITY AS u(saga_id, at, entry, n)
            ORDER BY u.n
        )
        INSERT INTO saga_outbox (saga_id, lane, topic, message_key, headers, payload)
        SELECT u.saga_id, u.lane, u.topic, CASE WHEN u.has_key THEN u.message_key END, u.headers::json, u.payload
        FROM unnest($12::text[], $13::int8[], $14::text[], $15::text[], $16::text[], $17::text[], $18::bool[])
            WITH ORDINALITY AS u(saga_id, lane, topic, message_key, headers, payload, has_key, n)
        ORDER BY u.n
        """
    typealias Row = ()

    var updates: SagaColumns
    var historySagas: [String]
    var historyTimes: [Int64]
    var historyEntries: [String]
    var outbox: OutboxColumns

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 18)
        bindings.append(updates.ids)
        bindings.append(updates.statuses)
        bindings.append(updates.states)
        bindings.append(updates.priorities)
        bindings.append(updates.waitingFor)
        bindings.append(updates.waitingDetails)
        bindings.append(updates.waitUntil)
        bindings.append(updates.updated)
        bindings.append(historySagas)
        bindings.append(historyTimes)
        bindings.append(historyEntries)
        bindings.append(outbox.sagas)
        bindings.append(outbox.lanes)
        bindings.append(outbox.topics)
        bindings.append(outbox.keys)
        bindings.append(outbox.headers)
        bindings.append(outbox.payloads)
        bindings.append(outbox.hasKeys)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws {}
}
