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

/// Writes the new states of sagas that exist.
struct UpdateSagasStatement: PostgresPreparedStatement {
    static let sql = """
        UPDATE sagas SET status = u.status, state = u.state, priority = u.priority,
            waiting_for = nullif(u.waiting_for, ''), waiting_detail = nullif(u.waiting_detail, ''),
            wait_until = CASE WHEN u.wait_until < 0 THEN NULL ELSE to_timestamp(u.wait_until::float8 / 1000) END,
            revision = sagas.revision + 1, updated_at = to_timestamp(u.updated::float8 / 1000)
        FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::int8[], $8::int8[])
            AS u(id, status, state, priority, waiting_for, waiting_detail, wait_until, updated)
        WHERE sagas.id = u.id
        """
    typealias Row = ()

    var columns: SagaColumns

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 8)
        bindings.append(columns.ids)
        bindings.append(columns.statuses)
        bindings.append(columns.states)
        bindings.append(columns.priorities)
        bindings.append(columns.waitingFor)
        bindings.append(columns.waitingDetails)
        bindings.append(columns.waitUntil)
        bindings.append(columns.updated)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws {}
}

/// Appends history rows, in the order given.
struct InsertHistoryStatement: PostgresPreparedStatement {
    static let sql = """
        INSERT INTO saga_history (saga_id, at, entry)
        SELECT u.saga_id, to_timestamp(u.at::float8 / 1000), u.entry
        FROM unnest($1::text[], $2::int8[], $3::text[]) WITH ORDINALITY AS u(saga_id, at, entry, n)
        ORDER BY u.n
        """
    typealias Row = ()

    var sagas: [String]
    var times: [Int64]
    var entries: [String]

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(sagas)
        bindings.append(times)
        bindings.append(entries)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws {}
}

/// Appends outbox rows, in the order given.
struct InsertOutboxStatement: PostgresPreparedStatement {
    static let sql = """
        INSERT INTO saga_outbox (saga_id, lane, topic, message_key, headers, payload)
        SELECT u.saga_id, u.lane, u.topic, CASE WHEN u.has_key THEN u.message_key END, u.headers::json, u.payload
        FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[])
            WITH ORDINALITY AS u(saga_id, lane, topic, message_key, headers, payload, has_key, n)
        ORDER BY u.n
        """
    typealias Row = ()

    var columns: OutboxColumns

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 7)
        bindings.append(columns.sagas)
        bindings.append(columns.lanes)
        bindings.append(columns.topics)
        bindings.append(columns.keys)
        bindings.append(columns.headers)
        bindings.append(columns.payloads)
        bindings.append(columns.hasKeys)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws {}
}
