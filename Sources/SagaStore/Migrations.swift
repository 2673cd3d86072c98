import Logging
import PostgresNIO

/// A numbered change of the schema, applied once, in a transaction.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    /// The statements, run in order.
    public var statements: [String]
}

extension SagaStore {
    /// The advisory lock key that serializes migrators (any sagad starting at the same time).
    static let migrationLock: Int64 = 0x5341_4741_4D49_4752  // "SAGAMIGR"

    /// The schema, version by version. A released migration never changes; a change is a new one.
    public static let migrations: [Migration] = [
        Migration(
            version: 1, name: "sagas, history, outbox, inbox, timers, pending signals, definitions",
            statements: [
                """
                CREATE TABLE saga_definitions (
                    name text NOT NULL,
                    version integer NOT NULL,
                    definition jsonb NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (name, version)
                )
                """,
                """
                CREATE TABLE sagas (
                    id text PRIMARY KEY,
                    tenant text NOT NULL DEFAULT '',
                    saga_type text NOT NULL,
                    definition_version integer NOT NULL,
                    status text NOT NULL,
                    state text NOT NULL,
                    start_key text,
                    priority integer NOT NULL DEFAULT 0,
                    waiting_for text,
                    waiting_detail text,
                    wait_until timestamptz,
                    revision bigint NOT NULL DEFAULT 1,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL
                ) WITH (fillfactor = 70)
                """,
                // Room left on each page lets PostgreSQL update a saga in place (a HOT update, no
                // index touched) whenever its indexed columns stay the same, as most transitions
                // leave them: status, type, tenant, creation time, what it waits for.
                // Start idempotency: one saga per tenant, type and key.
                "CREATE UNIQUE INDEX sagas_start_key ON sagas (tenant, saga_type, start_key) WHERE start_key IS NOT NULL",
                // Listings: by creation time and id (keyset pagination), under each filter.
                "CREATE INDEX sagas_created ON sagas (created_at, id)",
                "CREATE INDEX sagas_status_created ON sagas (status, created_at, id)",
                "CREATE INDEX sagas_type_created ON sagas (saga_type, created_at, id)",
                "CREATE INDEX sagas_tenant_created ON sagas (tenant, created_at, id)",
                "CREATE INDEX sagas_waiting ON sagas (waiting_for, created_at, id) WHERE waiting_for IS NOT NULL",
                """
                CREATE TABLE saga_history (
                    saga_id text NOT NULL,
                    sequence bigint GENERATED ALWAYS AS IDENTITY,
                    at timestamptz NOT NULL,
                    entry text NOT NULL,
                    PRIMARY KEY (saga_id, sequence)
                )
                """,
                """
                CREATE TABLE saga_outbox (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    saga_id text NOT NULL,
                    lane integer NOT NULL,
                    topic text NOT NULL,
                    message_key text,
                    headers json NOT NULL,
                    payload text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX saga_outbox_lane ON saga_outbox (lane, id)",
                """
                CREATE TABLE saga_inbox (
                    message_id text PRIMARY KEY,
                    received_at timestamptz NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX saga_inbox_received ON saga_inbox (received_at)",
                """
                CREATE TABLE saga_timers (
                    saga_id text NOT NULL,
                    timer_id text NOT NULL,
                    kind text NOT NULL,
                    due_at timestamptz NOT NULL,
                    PRIMARY KEY (saga_id, timer_id)
                )
                """,
                "CREATE INDEX saga_timers_due ON saga_timers (due_at)",
                """
                CREATE TABLE saga_pending_signals (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    tenant text NOT NULL,
                    saga_type text NOT NULL,
                    start_key text NOT NULL,
                    signal_id text NOT NULL,
                    name text NOT NULL,
                    payload text NOT NULL,
                    received_at timestamptz NOT NULL,
                    expires_at timestamptz NOT NULL,
                    UNIQUE (tenant, saga_type, start_key, signal_id)
                )
                """,
                "CREATE INDEX saga_pending_signals_expiry ON saga_pending_signals (expires_at)",
            ]),
        // The tables stay as they are. What changed is the state document: it leaves out the
        // members at their usual value, which a version of schema 1 cannot read. Recording the
        // new version makes such a version refuse the database at start-up
        // (`SagaStoreError.schemaTooNew`) instead of failing on every saga a newer one wrote.
        Migration(
            version: 2, name: "saga states leave out members at their usual value",
            statements: [
                """
                COMMENT ON COLUMN sagas.state IS
                    'the saga''s state as compact JSON; members at their usual value are left out'
                """
            ]),
        // Every transition inserts an inbox row and an outbox row: one B-tree each instead of two.
        // The outbox is read by lane in id order and deleted by lane and id, which its primary
        // key `(lane, id)` serves alone. The inbox is pruned by age: a BRIN index on the time of
        // receipt (which rises with the rows' order on disk) costs an insert almost nothing.
        Migration(
            version: 3, name: "one index each on the outbox and the inbox",
            statements: [
                "ALTER TABLE saga_outbox DROP CONSTRAINT saga_outbox_pkey",
                "DROP INDEX saga_outbox_lane",
                "ALTER TABLE saga_outbox ADD PRIMARY KEY (lane, id)",
                "DROP INDEX saga_inbox_received",
                "CREATE INDEX saga_inbox_received ON saga_inbox USING brin (received_at)",
            ]),
        // A saga whose timers cannot be applied is parked: its timers are no longer claimed (they
        // would fail again and hold the timer service at the head of the queue) until an
        // operator resumes it. Nullable columns without a default: no table rewrite.
        Migration(
            version: 4, name: "parked sagas",
            statements: [
                "ALTER TABLE sagas ADD COLUMN parked_reason text, ADD COLUMN parked_at timestamptz"
            ]),
    ]

    /// The newest schema version this code knows.
    public static var schemaVersion: Int { migrations.last?.version ?? 0 }

    /// Brings the schema to ``schemaVersion``: applies the missing migrations in one transaction,
    /// under an advisory lock so that instances starting together apply each once. Returns the
    /// versions applied.
    ///
    /// - Throws: ``SagaStoreError/schemaTooNew(database:known:)`` when a newer saga-orchestrator
    ///   migrated the database.
    @discardableResult
    public func migrate() async throws -> [Int] {
        let known = Self.schemaVersion
        let logger = self.logger
        let applied: [Int] = try await storeTransaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS saga_schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var current = 0
            for try await version in try await connection.query(
                "SELECT coalesce(max(version), 0) FROM saga_schema_migrations", logger: logger
            ).decode(Int.self) {
                current = version
            }
            guard current <= known else { throw SagaStoreError.schemaTooNew(database: current, known: known) }
            var applied: [Int] = []
            for migration in Self.migrations where migration.version > current {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO saga_schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                applied.append(migration.version)
            }
            return applied
        }
        if !applied.isEmpty {
            logger.info("schema migrated", metadata: ["schema.versions": "\(applied)", "schema.version": "\(known)"])
        }
        return applied
    }

    /// The schema version the database is at; 0 when it was never migrated.
    public func databaseSchemaVersion() async throws -> Int {
        let logger = self.logger
        return try await connection { connection in
            var exists = false
            for try await found in try await connection.query(
                "SELECT to_regclass('saga_schema_migrations') IS NOT NULL", logger: logger
            ).decode(Bool.self) {
                exists = found
            }
            guard exists else { return 0 }
            var version = 0
            for try await found in try await connection.query(
                "SELECT coalesce(max(version), 0) FROM saga_schema_migrations", logger: logger
            ).decode(Int.self) {
                version = found
            }
            return version
        }
    }
}
