import SagaCore
import Testing

/// The shape of a generated definition and the choices that drive one saga through it. Plain
/// integers, so the property checker can shrink a failing case to a small one.
struct SimulationInput: Sendable, CustomStringConvertible {
    /// One number per top-level step, decoded into its kind and settings.
    var steps: [Int]
    /// The index of the pivot step; ignored when it is not a command step or group.
    var pivot: Int
    /// Whether the saga has a deadline.
    var deadline: Bool
    /// One number per event.
    var choices: [Int]

    var description: String { "steps: \(steps), pivot: \(pivot), deadline: \(deadline), choices: \(choices)" }

    /// The definition these numbers describe. It always passes validation.
    var definition: SagaDefinition {
        var result: [StepDefinition] = []
        let pivotIndex =
            steps.indices.contains(pivot) && [0, 1, 2, 3, 4, 5, 8, 9].contains(steps[pivot] % 10) ? pivot : nil
        for (index, spec) in steps.enumerated() {
            let name = "s\(index)"
            let afterPivot = pivotIndex.map { index > $0 } ?? false
            func command(_ participant: String, _ seed: Int) -> CommandStep {
                CommandStep(
                    participant: participant, command: "\(participant).do",
                    compensation: (seed / 10) % 4 != 0 && !afterPivot ? "\(participant).undo" : nil,
                    timeout: .seconds(Int64(5 + seed % 7)),
                    retry: RetryPolicy(
                        maxAttempts: 1 + (seed / 40) % 3, backoff: [.fixed, .linear, .exponential][seed % 3],
                        initialDelay: .seconds(1), maxDelay: .seconds(20), multiplier: 2, jitter: 0.3),
                    compensationRetry: RetryPolicy(
                        maxAttempts: 1 + (seed / 120) % 3, backoff: .fixed, initialDelay: .seconds(2), maxDelay: nil,
                        jitter: 0),
                    nonRetryableErrors: seed % 5 == 0 ? ["FATAL"] : [])
            }
            let when: Condition? = spec % 13 == 0 ? try! Condition("input.flag == true") : nil
            switch spec % 10 {
            case 6:
                let names = (spec / 10) % 3 == 0 ? ["go", "override"] : ["go"]
                result.append(
                    StepDefinition(
                        name: name, when: when,
                        kind: .signal(
                            SignalStep(
                                signals: names, timeout: .minutes(30),
                                onTimeout: afterPivot || (spec / 10) % 2 == 0 ? .continue : .compensate,
                                failWhen: afterPivot || (spec / 20) % 2 == 0
                                    ? nil : try! Condition("signals.go.approved == false")))))
            case 7:
                result.append(StepDefinition(name: name, when: when, kind: .sleep(SleepStep(duration: .minutes(5)))))
            case 8, 9:
                let count = 2 + spec % 2
                let members = (0..<count).map { member in
                    ParallelGroup.Member(
                        name: "\(name)m\(member)",
                        when: member == 1 && spec % 3 == 0 ? try! Condition("input.flag == true") : nil,
                        command: command("p\(index)m\(member)", spec / (member + 1)))
                }
                result.append(
                    StepDefinition(
                        name: name, when: when, isPivot: index == pivotIndex,
                        kind: .parallel(ParallelGroup(steps: members))))
            default:
                result.append(
                    StepDefinition(
                        name: name, when: when, isPivot: index == pivotIndex, kind: .command(command("p\(index)", spec))
                    ))
            }
        }
        return SagaDefinition(name: "generated", version: 1, deadline: deadline ? .minutes(10) : nil, steps: result)
    }
}

/// Runs a saga through the events its input chooses, then drains it to a finished status the way
/// the world eventually does (replies arrive, timers fire), recording every step.
struct Simulation {
    struct Record {
        var event: SagaEvent
        var now: SagaTimestamp
        var before: SagaInstance
        var after: SagaInstance
        var effects: [SagaEffect]
    }

    var harness: SagaHarness
    var records: [Record] = []
    let input: JSONValue

    init(_ simulationInput: SimulationInput) {
        let definition = simulationInput.definition
        input = ["flag": .bool(simulationInput.choices.count % 2 == 0)]
        harness = SagaHarness(definition, input: input)
        for choice in simulationInput.choices { step(choice) }
        drain()
    }

    var saga: SagaInstance { harness.saga }
    var definition: SagaDefinition { harness.definition }

    mutating func apply(_ event: SagaEvent) {
        let before = harness.saga
        let effects = harness.apply(event)
        records.append(Record(event: event, now: harness.now, before: before, after: harness.saga, effects: effects))
    }

    /// Commands whose reply is awaited now.
    var inFlight: [StepCommand] {
        harness.commands.filter { command in
            guard let state = saga.step(command.step), state.inFlight == command.attempt else { return false }
            return (command.action == .execute && state.status == .running)
                || (command.action == .compensate && state.status == .compensating)
        }
    }

    mutating func step(_ choice: Int) {
        harness.advance(by: .milliseconds(Int64(choice % 700)))
        switch choice % 12 {
        case 0...4:
            let live = inFlight
            let pool = !live.isEmpty && choice % 5 < 4 ? live : harness.commands
            guard !pool.isEmpty else { return }
            let command = pool[(choice / 12) % pool.count]
            let outcome: StepReply.Outcome
            switch (choice / 100) % 4 {
            case 0, 1: outcome = .success(result: ["v": .integer(Int64(choice))])
            case 2: outcome = .failure(StepError(code: "BUSY", retryable: true))
            default: outcome = .failure(StepError(code: choice % 2 == 0 ? "FATAL" : "NO", retryable: false))
            }
            apply(
                .reply(
                    StepReply(
                        step: command.step, action: command.action, attempt: command.attempt,
                        idempotencyKey: command.idempotencyKey, outcome: outcome)))
        case 5:
            if let last = records.last { apply(last.event) }
        case 6, 7:
            guard !saga.timers.isEmpty else { return }
            let timer = saga.timers[(choice / 12) % saga.timers.count]
            if harness.now < timer.dueAt { harness.now = timer.dueAt }
            apply(.timerFired(timerID: timer.id))
        case 8:
            let names = ["go", "override", "stray"]
            apply(
                .signal(
                    SignalDelivery(
                        id: "sig-\((choice / 12) % 6)", name: names[(choice / 3) % names.count],
                        payload: ["approved": .bool(choice % 2 == 0)])))
        case 9:
            apply(.cancel(reason: "test"))
        case 10:
            let cancelled = harness.effects.compactMap { effect -> String? in
                if case .cancelTimer(let timer) = effect { return timer.id } else { return nil }
            }
            apply(.timerFired(timerID: cancelled.isEmpty ? "nothing" : cancelled[(choice / 12) % cancelled.count]))
        default:
            apply(choice % 7 == 0 ? .abort(reason: "test") : .retry(reason: "test"))
        }
    }

    /// Replies arrive and timers fire until the saga is finished; a failed saga gets an operator's retry.
    mutating func drain() {
        for _ in 0..<5_000 {
            if saga.status.isTerminal { return }
            if saga.status == .failed {
                apply(.retry(reason: "drain"))
            } else if let command = inFlight.first {
                apply(
                    .reply(
                        StepReply(
                            step: command.step, action: command.action, attempt: command.attempt,
                            idempotencyKey: command.idempotencyKey, outcome: .success(result: ["drained": true]))))
            } else if let timer = saga.timers.min(by: { $0.dueAt < $1.dueAt }) {
                if harness.now < timer.dueAt { harness.now = timer.dueAt }
                apply(.timerFired(timerID: timer.id))
            } else {
                return
            }
        }
    }

    /// The whole run again from the same start: the transitions it gives.
    func replay() -> [SagaTransition] {
        var saga = SagaMachine.start(
            id: SagaHarness.sagaID, definition: definition, input: input, now: SagaHarness.start
        ).saga
        var transitions: [SagaTransition] = []
        for record in records {
            let transition = SagaMachine.apply(record.event, to: saga, definition: definition, now: record.now)
            transitions.append(transition)
            saga = transition.saga
        }
        return transitions
    }
}
