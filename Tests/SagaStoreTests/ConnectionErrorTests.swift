import PostgresNIO
import SagaStore
import Testing

/// Which errors mean the server ended the connection, so that no `ROLLBACK` is sent on it.
@Suite("Errors that end a connection")
struct ConnectionErrorTests {
    @Test("the connection lost or unreadable ends it")
    func connectionErrors() {
        for code: PSQLError.Code in [
            .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .connectionError,
            .messageDecodingFailure, .unexpectedBackendMessage, .invalidCommandTag,
        ] {
            #expect(SagaStore.endsConnection(code: code, severity: nil, sqlState: nil), "\(code)")
        }
    }

    @Test("a server error ends it when FATAL or PANIC, without SQLSTATE, or of class 08 or 57P0")
    func serverErrors() {
        // pg_terminate_backend: FATAL 57P01.
        #expect(SagaStore.endsConnection(code: .server, severity: "FATAL", sqlState: "57P01"))
        #expect(SagaStore.endsConnection(code: .server, severity: "PANIC", sqlState: "XX000"))
        #expect(SagaStore.endsConnection(code: .server, severity: "ERROR", sqlState: nil))
        // A server that sends only the localised severity still names the shutdown by its SQLSTATE.
        #expect(SagaStore.endsConnection(code: .server, severity: nil, sqlState: "57P02"))
        #expect(SagaStore.endsConnection(code: .server, severity: nil, sqlState: "08006"))
    }

    @Test("an ordinary error leaves the connection usable: the transaction is rolled back on it")
    func ordinaryErrors() {
        // A deadlock, a unique violation, a serialization failure, invalid JSON.
        for state in ["40P01", "23505", "40001", "22P02"] {
            #expect(!SagaStore.endsConnection(code: .server, severity: "ERROR", sqlState: state), "\(state)")
        }
        #expect(!SagaStore.endsConnection(code: .queryCancelled, severity: nil, sqlState: nil))
        #expect(!SagaStore.endsConnection(code: .tooManyParameters, severity: nil, sqlState: nil))
    }

    @Test("after the rollback, a connection goes when a prepared statement failed other than on its data")
    func closedAfterRollback() {
        #expect(SagaStore.preparedSQL.count == 4)
        let prepared = SagaStore.preparedSQL.first { $0.hasPrefix("INSERT INTO saga_inbox") } ?? ""
        #expect(SagaStore.closesAfterRollback(code: .server, sqlState: "42P01", query: prepared))
        // A cancel, a lock or statement timeout, a deadlock while waiting for a table's lock, an
        // error without SQLSTATE, a client-side error: a failed prepare may stay with the connection.
        for state in ["57014", "55P03", "40P01", "42P01", "XX000"] {
            #expect(SagaStore.closesAfterRollback(code: .server, sqlState: state, query: prepared), "\(state)")
        }
        #expect(SagaStore.closesAfterRollback(code: .server, sqlState: nil, query: prepared))
        #expect(SagaStore.closesAfterRollback(code: .queryCancelled, sqlState: nil, query: prepared))
        // A data error or a constraint violation comes from executing, not preparing: the connection stays.
        for state in ["22P02", "23505"] {
            #expect(!SagaStore.closesAfterRollback(code: .server, sqlState: state, query: prepared), "\(state)")
        }
        // Any error of a statement that is not prepared leaves the connection as it was.
        let other = "SELECT pg_advisory_xact_lock(1)"
        #expect(!SagaStore.closesAfterRollback(code: .server, sqlState: "55P03", query: other))
        #expect(!SagaStore.closesAfterRollback(code: .server, sqlState: "57014", query: nil))
    }
}
