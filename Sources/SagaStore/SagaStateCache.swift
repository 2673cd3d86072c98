import SagaCore
import Synchronization

/// Recently written saga states by id, with the revision they were written at. A batch asks
/// PostgreSQL for a saga's state only when the row's revision differs from the cached one, so an
/// instance that keeps handling the same sagas (Kafka partitions are keyed by saga id) neither
/// transfers nor parses their states again. Entries go in only after their transaction committed;
/// the revision check makes an entry that another instance overtook harmless.
final class SagaStateCache: Sendable {
    private struct State {
        var records: [String: SagaRecord] = [:]
        /// Insertion order, for eviction; an id may appear more than once.
        var order: [String] = []
        var head = 0
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// The cached records of `ids` that there are.
    func records(_ ids: [String]) -> [String: SagaRecord] {
        guard capacity > 0 else { return [:] }
        return state.withLock { state in
            var found: [String: SagaRecord] = [:]
            for id in ids { if let record = state.records[id] { found[id] = record } }
            return found
        }
    }

    /// Keeps `records`, each at the revision it now has in the database.
    func store(_ records: [SagaRecord]) {
        guard capacity > 0, !records.isEmpty else { return }
        state.withLock { state in
            for record in records {
                if state.records.updateValue(record, forKey: record.id) == nil { state.order.append(record.id) }
            }
            while state.records.count > capacity && state.head < state.order.count {
                state.records[state.order[state.head]] = nil
                state.head += 1
            }
            if state.head > 1_024 && state.head * 2 > state.order.count {
                state.order.removeFirst(state.head)
                state.head = 0
            }
        }
    }

    /// Forgets everything (a test that changes rows behind the store's back).
    func removeAll() {
        state.withLock { $0 = State() }
    }

    var count: Int { state.withLock { $0.records.count } }
}
