import SagaCore
import Testing

/// Drives one saga through the state machine with a test clock, keeping every effect, and checks
/// after each transition that the saga's timers match the timers its effects set and cancelled.
struct SagaHarness {
    let definition: SagaDefinition
    var saga: SagaInstance
    var now: SagaTimestamp
    /// Every effect so far, in order.
    var effects: [SagaEffect]
    /// The effects of the latest transition.
    var last: [SagaEffect]
    /// The timers as the effects left them: what the store would hold.
    var timerTable: [String: SagaTimer] = [:]

    static let sagaID = "saga-1"
    static let start = SagaTimestamp(millisecondsSinceEpoch: 1_700_000_000_000)

    init(_ definition: SagaDefinition, input: JSONValue = ["orderId": "o-1", "amount": 100]) {
        self.definition = definition
        now = Self.start
        let transition = SagaMachine.start(id: Self.sagaID, definition: definition, input: input, now: now)
        saga = transition.saga
        effects = transition.effects
        last = transition.effects
        track(transition.effects)
    }

    mutating func track(_ new: [SagaEffect]) {
        for effect in new {
            switch effect {
            case .schedule(let timer): timerTable[timer.id] = timer
            case .cancelTimer(let timer): timerTable[timer.id] = nil
            case .send, .publish, .signalOutcome, .note: break
            }
        }
    }

    @discardableResult
    mutating func apply(_ event: SagaEvent, sourceLocation: SourceLocation = #_sourceLocation) -> [SagaEffect] {
        let transition = SagaMachine.apply(event, to: saga, definition: definition, now: now)
        saga = transition.saga
        last = transition.effects
        effects += transition.effects
        track(transition.effects)
        if case .timerFired(let id) = event { timerTable[id] = nil }
        #expect(
            Set(timerTable.keys) == Set(saga.timers.map(\.id)), "timers in the saga and in the effects differ",
            sourceLocation: sourceLocation)
        return transition.effects
    }

    mutating func advance(by duration: SagaDuration) { now = now + duration }

    // MARK: reading effects

    var commands: [StepCommand] {
        effects.compactMap { if case .send(let command) = $0 { return command } else { return nil } }
    }

    var lastCommands: [StepCommand] {
        last.compactMap { if case .send(let command) = $0 { return command } else { return nil } }
    }

    /// Commands as `step/action/attempt`, e.g. `charge/execute/2`.
    var commandLog: [String] { commands.map { "\($0.step)/\($0.action.rawValue)/\($0.attempt)" } }

    /// The steps compensated, in the order their first compensation command went out.
    var compensationOrder: [String] {
        commands.filter { $0.action == .compensate && $0.attempt == 1 }.map(\.step)
    }

    var events: [SagaLifecycleEvent] {
        effects.compactMap { if case .publish(let event) = $0 { return event } else { return nil } }
    }

    var lastEvents: [SagaLifecycleEvent] {
        last.compactMap { if case .publish(let event) = $0 { return event } else { return nil } }
    }

    var lastNotes: [SagaNote] {
        last.compactMap { if case .note(let note) = $0 { return note } else { return nil } }
    }

    var signalOutcomes: [SignalOutcome] {
        effects.compactMap { if case .signalOutcome(let outcome) = $0 { return outcome } else { return nil } }
    }

    var lastSignalOutcomes: [SignalOutcome] {
        last.compactMap { if case .signalOutcome(let outcome) = $0 { return outcome } else { return nil } }
    }

    func latestCommand(_ step: String, _ action: StepAction = .execute) -> StepCommand? {
        commands.last { $0.step == step && $0.action == action }
    }

    func timer(_ kind: SagaTimer.Kind, step: String? = nil) -> SagaTimer? {
        saga.timers.first { $0.kind == kind && (step == nil || $0.step == step) }
    }

    func status(_ step: String) -> StepStatus? { saga.step(step)?.status }

    // MARK: driving

    /// Replies success to the latest command of `step`.
    @discardableResult
    mutating func succeed(
        _ step: String, _ action: StepAction = .execute, result: JSONValue = ["ok": true],
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> [SagaEffect] {
        guard let command = latestCommand(step, action) else {
            Issue.record("no \(action) command for \(step)", sourceLocation: sourceLocation)
            return []
        }
        return reply(command, .success(result: result), sourceLocation: sourceLocation)
    }

    /// Replies failure to the latest command of `step`.
    @discardableResult
    mutating func fail(
        _ step: String, _ action: StepAction = .execute, code: String = "BOOM", retryable: Bool,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> [SagaEffect] {
        guard let command = latestCommand(step, action) else {
            Issue.record("no \(action) command for \(step)", sourceLocation: sourceLocation)
            return []
        }
        return reply(
            command, .failure(StepError(code: code, message: "failed", retryable: retryable)),
            sourceLocation: sourceLocation)
    }

    @discardableResult
    mutating func reply(
        _ command: StepCommand, _ outcome: StepReply.Outcome, sourceLocation: SourceLocation = #_sourceLocation
    ) -> [SagaEffect] {
        apply(
            .reply(
                StepReply(
                    step: command.step, action: command.action, attempt: command.attempt,
                    idempotencyKey: command.idempotencyKey, outcome: outcome)), sourceLocation: sourceLocation)
    }

    /// Moves the clock to the timer's due time and fires it.
    @discardableResult
    mutating func fire(
        _ kind: SagaTimer.Kind, step: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) -> [SagaEffect] {
        guard let timer = timer(kind, step: step) else {
            Issue.record("no \(kind) timer for \(step ?? "the saga")", sourceLocation: sourceLocation)
            return []
        }
        if now < timer.dueAt { now = timer.dueAt }
        return apply(.timerFired(timerID: timer.id), sourceLocation: sourceLocation)
    }

    @discardableResult
    mutating func signal(
        _ name: String, id: String, payload: JSONValue = [:], sourceLocation: SourceLocation = #_sourceLocation
    ) -> [SagaEffect] {
        apply(.signal(SignalDelivery(id: id, name: name, payload: payload)), sourceLocation: sourceLocation)
    }
}

/// Small definitions for the stories.
enum Definitions {
    static func command(
        _ participant: String, compensation: Bool = true, timeout: SagaDuration = .seconds(10),
        attempts: Int = 3, backoff: RetryPolicy.Backoff = .exponential, compensationAttempts: Int = 3,
        nonRetryable: Set<String> = []
    ) -> CommandStep {
        CommandStep(
            participant: participant, command: "\(participant).do",
            compensation: compensation ? "\(participant).undo" : nil, timeout: timeout,
            retry: RetryPolicy(
                maxAttempts: attempts, backoff: backoff, initialDelay: .seconds(1), maxDelay: .seconds(30),
                multiplier: 2, jitter: 0),
            compensationRetry: RetryPolicy(
                maxAttempts: compensationAttempts, backoff: .fixed, initialDelay: .seconds(5), maxDelay: nil, jitter: 0),
            nonRetryableErrors: nonRetryable)
    }

    static func step(_ name: String, _ command: CommandStep, when: String? = nil, pivot: Bool = false)
        -> StepDefinition
    {
        StepDefinition(name: name, when: when.map { try! Condition($0) }, isPivot: pivot, kind: .command(command))
    }

    /// reserve → charge → ship, each compensatable.
    static let threeSteps = SagaDefinition(
        name: "order", version: 1,
        steps: [
            step("reserve", command("inventory")),
            step("charge", command("payments")),
            step("ship", command("shipping")),
        ])
}
