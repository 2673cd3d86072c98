import Foundation
import Logging
import SagaCore
import SagaDefinitions
import SagaEngine
import SagaProtocol
import SagaStore
import TestSupport
import Testing

/// A saga whose timers cannot be applied is parked; the other sagas' timers go on firing.
@Suite("Timer service", .enabled(if: StoreTestEnvironment.enabled), .timeLimit(.minutes(2)))
struct TimerParkingTests {
    @Test("a saga whose state cannot be read is parked; the others' timers fire; resumed, it is claimed again")
    func parksWhatCannotBeApplied() async throws {
        try await TestDatabase.with { database in
            let definitions = DefinitionRegistry(
                try DefinitionLoader.loadDirectory(EngineHarness.examples).map(\.definition))
            // Two sagas started an hour ago: their first attempt's timeout is long due.
            let past = SagaTimestamp(millisecondsSinceEpoch: SagaTimestamp.now.millisecondsSinceEpoch - 3_600_000)
            let planner = BatchPlanner(
                definitions: definitions, settings: EngineSettings(), now: past, makeID: { UUID().uuidString })
            let starts = ["o-1", "o-2"].map { key in
                EngineInput(
                    request: .start(
                        StartSagaRequest(sagaType: "order-fulfillment", input: .emptyObject, idempotencyKey: key)),
                    messageID: "/tests \(key)")
            }
            let (a, b) = try await database.withStoreResult { store in
                try await store.migrate()
                try await store.applyBatch(starts, now: past) { planner.plan($0).writes }
                let a = try await store.sagaID(startedBy: StartKey(sagaType: "order-fulfillment", key: "o-1"))
                let b = try await store.sagaID(startedBy: StartKey(sagaType: "order-fulfillment", key: "o-2"))
                return (a ?? "", b ?? "")
            }
            // Saga a's state is damaged.
            try await database.run("UPDATE sagas SET state = '{\"broken' WHERE id = '\(a)'")
            // A store of its own: nothing cached.
            try await database.withStore(migrated: false) { store in
                let parked = ParkedIDs()
                var timers = TimerService(
                    store: store, definitions: definitions, settings: EngineSettings(), logger: Logger(label: "tests"))
                timers.onPark = { parked.add($0) }
                let fired = try await timers.fireDue()
                #expect(fired == 1)
                #expect(parked.ids == [a])
                #expect(try await store.parkedSagaCount() == 1)
                let reasons = try await store.parkedSagas()
                #expect(reasons.first?.id == a && reasons.first?.reason.contains("could not be applied") == true)
                // Saga b's first attempt timed out; a is no longer claimed.
                let detail = try await store.saga(b)
                #expect(detail.record.instance.step("reserve-inventory")?.lastError?.code == "TIMEOUT")
                #expect(try await !store.dueSagaIDs(now: .now, limit: 10).contains(a))
                try await timers.fireDue()
                #expect(parked.ids == [a], "a parked saga is not tried again")
                // Resumed: claimed again (and parked again, as long as its state stays damaged).
                #expect(try await store.unpark(a, now: .now))
                #expect(try await store.dueSagaIDs(now: .now, limit: 10).contains(a))
                #expect(try await store.unpark(a, now: .now) == false)
            }
        }
    }

    final class ParkedIDs: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [String] = []
        func add(_ id: String) { lock.withLock { list.append(id) } }
        var ids: [String] { lock.withLock { list } }
    }
}
