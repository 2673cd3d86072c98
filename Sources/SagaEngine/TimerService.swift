import Foundation
import Logging
import SagaCore
import SagaProtocol
import SagaStore

/// Fires due timers (attempt timeouts, retry backoff, signal timeouts, sleeps, deadlines) through
/// the same path as every other event: claimed with `FOR UPDATE SKIP LOCKED`, so any number of
/// instances share the work without a leader.
public struct TimerService: Sendable {
    public let store: SagaStore
    public let definitions: DefinitionRegistry
    public let settings: EngineSettings
    /// The most sagas whose timers fire in one transaction.
    public var batchSize: Int
    /// How often to look for due timers when the last look found none.
    public var pollInterval: Duration
    public let logger: Logger
    /// Called after each batch that fired timers.
    public var onBatch: @Sendable (_ fired: Int, _ plan: BatchPlan) -> Void = { _, _ in }
    /// Called for each saga parked.
    public var onPark: @Sendable (_ sagaID: String) -> Void = { _ in }

    public init(
        store: SagaStore, definitions: DefinitionRegistry, settings: EngineSettings, batchSize: Int = 500,
        pollInterval: Duration = .milliseconds(250), logger: Logger
    ) {
        self.store = store
        self.definitions = definitions
        self.settings = settings
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.logger = logger
    }

    /// Fires timers until the task is cancelled.
    public func run() async {
        var pause = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                let fired = try await fireDue()
                pause = .milliseconds(100)
                if fired >= batchSize { continue }
            } catch is CancellationError {
                return
            } catch {
                logger.warning(
                    "timer round failed", metadata: ["error.message": "\(error)", "retry.pause": "\(pause)"])
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(10))
                continue
            }
            try? await Task.sleep(for: pollInterval)
        }
    }

    /// Fires the timers due now; returns how many timers fired.
    ///
    /// When the store refuses the batch because of what one of its sagas holds or would write
    /// (a state it cannot read, a command over the size limit), the due sagas are tried one at a
    /// time, and each one refused alone is parked (``SagaStore/park(_:reason:now:)``): its timers
    /// are no longer claimed until an operator resumes it, so the others go on firing.
    @discardableResult
    public func fireDue() async throws -> Int {
        do {
            return try await fire(only: nil)
        } catch let error as SagaStoreError where error.isCausedByInput {
            logger.warning(
                "timer batch refused; firing one saga at a time", metadata: ["error.message": "\(error)"])
            var fired = 0
            for id in try await store.dueSagaIDs(now: .now, limit: batchSize) {
                do {
                    fired += try await fire(only: [id])
                } catch let error as SagaStoreError where error.isCausedByInput {
                    try await store.park(id, reason: "its timers could not be applied: \(error)", now: .now)
                    logger.error("saga parked", metadata: ["saga.id": "\(id)", "error.message": "\(error)"])
                    onPark(id)
                }
            }
            return fired
        }
    }

    private func fire(only sagaIDs: [String]?) async throws -> Int {
        let planner = BatchPlanner(
            definitions: definitions, settings: settings, now: .now,
            makeID: { UUID().uuidString.lowercased() })
        let box = InboundProcessor.PlanBox()
        let outcome = try await store.applyDueTimers(
            now: planner.now, limit: sagaIDs?.count ?? batchSize, only: sagaIDs
        ) { context in
            let plan = planner.plan(context)
            box.plan = plan
            return plan.writes
        }
        if outcome.timersFired > 0, let plan = box.plan {
            InboundProcessor.log(plan.events, logger)
            onBatch(outcome.timersFired, plan)
        }
        return outcome.timersFired
    }
}
