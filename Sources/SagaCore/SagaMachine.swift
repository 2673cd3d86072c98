/// The saga state machine: pure and deterministic. It reads no clock and no random source: `now`
/// comes in, jitter is derived from the saga, step and attempt. The same events in the same order
/// always give the same states and effects.
///
/// Every rule of the saga model lives here: attempt timeouts and retries with backoff,
/// non-retryable errors, `when` skips, the pivot and forward recovery after it, the saga deadline,
/// cancel and abort, compensation in reverse order of taking effect (a timed-out attempt included),
/// operator retry of a failed saga, signal buffering and outcomes, late and unknown replies.
public enum SagaMachine {
    /// Begins a new saga: records it, sets its deadline and starts its first step.
    ///
    /// - Parameters:
    ///   - id: the saga's id, chosen by the caller (the engine makes a UUID).
    ///   - definition: the validated definition, whose version the saga keeps.
    ///   - input: the start's input.
    ///   - now: the current time.
    public static func start(id: String, definition: SagaDefinition, input: JSONValue, now: SagaTimestamp)
        -> SagaTransition
    {
        var steps: [StepState] = []
        steps.reserveCapacity(definition.stepCount)
        for step in definition.steps {
            steps.append(StepState(name: step.name))
            if case .parallel(let group) = step.kind {
                for member in group.steps { steps.append(StepState(name: member.name)) }
            }
        }
        let saga = SagaInstance(
            id: id, definitionName: definition.name, definitionVersion: definition.version, status: .running,
            input: input, cursor: 0, steps: steps, results: Dictionary(minimumCapacity: steps.count), signals: [:],
            seenSignalIDs: [], bufferedSignals: [],
            timers: [], compensation: nil, pastPivot: false, failure: nil, effectCounter: 0, createdAt: now,
            updatedAt: now)
        var runner = Runner(saga: saga, definition: definition, now: now)
        runner.publish(.sagaStarted)
        if let deadline = definition.deadline {
            runner.schedule(SagaTimer(kind: .deadline, dueAt: now + deadline))
        }
        runner.advance()
        return runner.transition
    }

    /// Applies one event to a saga and returns its new state and the effects to carry out.
    ///
    /// Never traps: an event that does not fit (a late reply, a stale timer, a signal for a finished
    /// saga) leaves the state as it was and yields a note or a rejection. The engine, which keeps
    /// only the new state, uses ``SagaInstance/apply(_:definition:now:)`` to change it in place.
    public static func apply(
        _ event: SagaEvent, to saga: SagaInstance, definition: SagaDefinition, now: SagaTimestamp
    ) -> SagaTransition {
        var next = saga
        let effects = next.apply(event, definition: definition, now: now)
        return SagaTransition(saga: next, effects: effects)
    }
}

extension SagaInstance {
    /// Applies one event to this saga in place and returns the effects to carry out: the same
    /// transition as ``SagaMachine/apply(_:to:definition:now:)``, without copying the saga's state
    /// when nothing else holds it.
    public mutating func apply(_ event: SagaEvent, definition: SagaDefinition, now: SagaTimestamp) -> [SagaEffect] {
        // Hand the state to the runner alone (a swap: no copy, no reference counting), so its
        // changes need no copy either; it comes back when the transition is done.
        var runner = Runner(saga: .placeholder, definition: definition, now: now)
        swap(&self, &runner.saga)
        defer { swap(&self, &runner.saga) }
        guard definition.version == runner.saga.definitionVersion, definition.name == runner.saga.definitionName,
            definition.stepCount == runner.saga.steps.count
        else {
            runner.note(
                .definitionMismatch,
                detail: "saga runs \(runner.saga.definitionName) v\(runner.saga.definitionVersion), got "
                    + "\(definition.name) v\(definition.version)")
            return runner.effects
        }
        switch event {
        case .start(let input): runner.duplicateStart(input: input)
        case .reply(let reply): runner.reply(reply)
        case .signal(let signal): runner.signal(signal)
        case .timerFired(let timerID): runner.timerFired(timerID)
        case .cancel(let reason): runner.cancel(reason: reason)
        case .abort(let reason): runner.abort(reason: reason)
        case .retry(let reason): runner.retry(reason: reason)
        }
        if runner.changed { runner.saga.updatedAt = now }
        return runner.effects
    }

    /// An empty saga that stands in while a transition holds the real state; built afresh each
    /// time, which costs less than copying a stored one (its empty collections are static).
    static var placeholder: SagaInstance {
        SagaInstance(
            id: "", definitionName: "", definitionVersion: 0, status: .aborted, input: .null, cursor: 0, steps: [],
            results: [:], signals: [:], seenSignalIDs: [], bufferedSignals: [], timers: [], compensation: nil,
            pastPivot: false, failure: nil, effectCounter: 0, createdAt: SagaTimestamp(millisecondsSinceEpoch: 0),
            updatedAt: SagaTimestamp(millisecondsSinceEpoch: 0))
    }
}

/// One transition in progress: the saga being changed and the effects collected so far.
struct Runner {
    var saga: SagaInstance
    let definition: SagaDefinition
    let now: SagaTimestamp
    var effects: [SagaEffect] = []
    /// Set when the saga's state changed in a way no effect shows (a timer fired, a late result kept).
    var touched = false

    init(saga: SagaInstance, definition: SagaDefinition, now: SagaTimestamp) {
        self.saga = saga
        self.definition = definition
        self.now = now
        effects.reserveCapacity(6)
    }

    var transition: SagaTransition { SagaTransition(saga: saga, effects: effects) }

    /// Effects that change nothing: notes, and refusals of a request (a rejected request, a duplicate
    /// start).
    var quietEffects = 0

    /// Whether the transition changed the saga: every change either yields a command, a timer, a
    /// lifecycle event or a signal outcome, or sets ``touched``. Notes and refusals change nothing.
    var changed: Bool { touched || effects.count > quietEffects }

    // MARK: effects

    mutating func publish(
        _ kind: SagaLifecycleEvent.Kind, step: String? = nil, attempt: Int? = nil, error: StepError? = nil,
        reason: String? = nil, until: SagaTimestamp? = nil, conflict: Bool? = nil
    ) {
        if kind == .requestRejected || kind == .startDuplicate { quietEffects += 1 }
        effects.append(
            .publish(
                SagaLifecycleEvent(
                    kind: kind, step: step, attempt: attempt, error: error, reason: reason, until: until,
                    conflict: conflict)))
    }

    mutating func note(_ kind: SagaNote.Kind, step: String? = nil, attempt: Int? = nil, detail: String? = nil) {
        quietEffects += 1
        effects.append(.note(SagaNote(kind: kind, step: step, attempt: attempt, detail: detail)))
    }

    mutating func schedule(_ timer: SagaTimer) {
        saga.timers.append(timer)
        effects.append(.schedule(timer))
    }

    /// Cancels the timer of `kind` for `step`, when it is set.
    mutating func cancelTimer(_ kind: SagaTimer.Kind, step: String) {
        guard let index = saga.timers.firstIndex(where: { $0.kind == kind && $0.step == step }) else { return }
        effects.append(.cancelTimer(saga.timers.remove(at: index)))
    }

    /// Cancels the attempt timer of `kind` for a step's action and attempt, when it is set.
    mutating func cancelTimer(_ kind: SagaTimer.Kind, _ step: String, _ action: StepAction, _ attempt: Int) {
        guard
            let index = saga.timers.firstIndex(where: {
                $0.attempt == attempt && $0.kind == kind && $0.action == action && $0.step == step
            })
        else { return }
        effects.append(.cancelTimer(saga.timers.remove(at: index)))
    }

    mutating func cancelAllTimers() {
        for timer in saga.timers { effects.append(.cancelTimer(timer)) }
        saga.timers.removeAll()
    }

    mutating func signalOutcome(
        _ signal: SignalDelivery, _ kind: SignalOutcome.Kind, step: String? = nil, reason: String? = nil
    ) {
        effects.append(
            .signalOutcome(
                SignalOutcome(signalID: signal.id, name: signal.name, kind: kind, step: step, reason: reason)))
    }

    // MARK: looking things up

    func index(of step: String) -> Int? { definition.layout.indexByName[step] }

    /// The index among the definition's top-level steps of the step (or group) that holds `name`.
    func topLevelIndex(of name: String) -> Int? {
        definition.layout.indexByName[name].map { definition.layout.locations[$0].top }
    }

    func isAfterPivot(_ name: String) -> Bool {
        guard let pivot = definition.layout.pivotIndex, let index = topLevelIndex(of: name) else { return false }
        return index > pivot
    }

    mutating func nextEffectOrder() -> Int {
        saga.effectCounter += 1
        return saga.effectCounter
    }

    // MARK: moving forward

    /// Starts the step at the cursor, skipping steps whose `when` is false, until something waits;
    /// completes the saga when no step is left.
    mutating func advance() {
        while saga.cursor < definition.steps.count {
            let step = definition.steps[saga.cursor]
            let index = definition.layout.topStateIndex[saga.cursor]
            if let when = step.when, !when.evaluate(input: saga.input, steps: saga.results, signals: saga.signals) {
                skip(index)
                saga.cursor += 1
                continue
            }
            saga.steps[index].startedAt = now
            saga.steps[index].status = .running
            switch step.kind {
            case .command(let command):
                saga.status = .running
                beginExecute(index, command)
                return
            case .parallel(let group):
                saga.status = .running
                var started = false
                for member in group.steps {
                    guard let memberIndex = self.index(of: member.name) else { continue }
                    if let when = member.when,
                        !when.evaluate(input: saga.input, steps: saga.results, signals: saga.signals)
                    {
                        skip(memberIndex)
                    } else {
                        saga.steps[memberIndex].startedAt = now
                        beginExecute(memberIndex, member.command)
                        started = true
                    }
                }
                if started { return }
                completeTopLevel(index)
            case .signal(let wait):
                if let buffered = saga.bufferedSignals.firstIndex(where: { wait.signals.contains($0.name) }) {
                    let signal = saga.bufferedSignals.remove(at: buffered)
                    let delivery = SignalDelivery(id: signal.id, name: signal.name, payload: signal.payload)
                    if !consume(delivery, stepIndex: index, wait: wait) { return }
                    continue
                }
                saga.status = .waiting
                let due = now + wait.timeout
                schedule(SagaTimer(kind: .signalTimeout, step: step.name, dueAt: due))
                publish(.waitingForSignal, step: step.name, reason: wait.signals.joined(separator: ","), until: due)
                return
            case .sleep(let sleep):
                saga.status = .sleeping
                let due = now + sleep.duration
                schedule(SagaTimer(kind: .sleep, step: step.name, dueAt: due))
                publish(.sleeping, step: step.name, until: due)
                return
            }
        }
        saga.status = .completed
        publish(.sagaCompleted)
        finish()
    }

    mutating func skip(_ index: Int) {
        saga.steps[index].status = .skipped
        saga.steps[index].finishedAt = now
        publish(.stepSkipped, step: saga.steps[index].name)
    }

    /// A top-level step (or group) finished: mark the pivot, move the cursor, go on.
    mutating func completeTopLevel(_ index: Int) {
        if saga.steps[index].status != .completed {
            saga.steps[index].status = .completed
            saga.steps[index].finishedAt = now
        }
        if definition.layout.locations[index].top == definition.layout.pivotIndex { saga.pastPivot = true }
        saga.cursor += 1
        advance()
    }

    mutating func beginExecute(_ index: Int, _ command: CommandStep) {
        saga.steps[index].attempt += 1
        saga.steps[index].status = .running
        // From the moment a command is sent it may take effect, until a non-retryable failure (the
        // reply the participant stored for this key) proves it did not.
        saga.steps[index].mayHaveTakenEffect = true
        saga.steps[index].effectOrder = nextEffectOrder()
        let attempt = saga.steps[index].attempt
        let name = saga.steps[index].name
        saga.steps[index].inFlight = attempt
        let deadline = now + command.timeout
        let generation = saga.steps[index].executeGeneration
        effects.append(
            .send(
                StepCommand(
                    sagaID: saga.id, definitionName: saga.definitionName, step: name, action: .execute,
                    participant: command.participant, commandType: command.command, generation: generation,
                    actionGeneration: generation, attempt: attempt, deadline: deadline,
                    content: .execute(input: saga.input, steps: saga.results, signals: saga.signals))))
        schedule(
            SagaTimer(
                kind: .attemptTimeout, step: name,
                action: .execute, attempt: attempt, dueAt: deadline))
        publish(.stepStarted, step: name, attempt: attempt, until: deadline)
    }

    /// A command step's action succeeded.
    mutating func completeCommand(_ index: Int, result: JSONValue) {
        saga.steps[index].status = .completed
        saga.results[saga.steps[index].name] = result
        saga.steps[index].inFlight = nil
        saga.steps[index].mayHaveTakenEffect = true
        saga.steps[index].effectOrder = nextEffectOrder()
        saga.steps[index].finishedAt = now
        publish(.stepCompleted, step: saga.steps[index].name, attempt: saga.steps[index].attempt)
        let location = definition.layout.locations[index]
        guard location.member != nil else {
            completeTopLevel(index)
            return
        }
        // A member of a parallel group: the group is done when no member is still going.
        let groupIndex = definition.layout.topStateIndex[location.top]
        var member = groupIndex + 1
        while member < saga.steps.count && definition.layout.locations[member].top == location.top {
            let status = saga.steps[member].status
            guard status == .completed || status == .skipped else { return }
            member += 1
        }
        publish(.stepCompleted, step: saga.steps[groupIndex].name)
        completeTopLevel(groupIndex)
    }

    /// A failure reply or a timeout of the action: retry within the budget (always after the pivot),
    /// else fail the step and compensate.
    mutating func executeFailed(_ index: Int, _ command: CommandStep, error: StepError) {
        saga.steps[index].lastError = error
        saga.steps[index].inFlight = nil
        let state = saga.steps[index]
        let afterPivot = isAfterPivot(state.name)
        let nonRetryable = !error.retryable || command.nonRetryableErrors.contains(error.code)
        if nonRetryable {
            saga.steps[index].status = .failed
            saga.steps[index].finishedAt = now
            saga.steps[index].mayHaveTakenEffect = false
            publish(.stepFailed, step: state.name, attempt: state.attempt, error: error)
            if afterPivot {
                failSaga(.forward, step: state.name, error: error)
            } else {
                startCompensation(reason: "step '\(state.name)' failed: \(error.code)", outcome: .compensated)
            }
            return
        }
        let used = state.attempt - state.attemptBudgetStart
        if afterPivot || used < command.retry.maxAttempts {
            let unit = Jitter.unit(saga.id, state.name, StepAction.execute.rawValue, String(state.attempt))
            let due = now + command.retry.delay(afterAttempt: used, unit: unit)
            schedule(
                SagaTimer(
                    kind: .retryBackoff,
                    step: state.name, action: .execute, attempt: state.attempt, dueAt: due))
            publish(.stepRetryScheduled, step: state.name, attempt: state.attempt + 1, error: error, until: due)
        } else {
            saga.steps[index].status = .failed
            saga.steps[index].finishedAt = now
            // It may have taken effect as late as now: undo it first.
            saga.steps[index].effectOrder = nextEffectOrder()
            publish(
                .stepFailed, step: state.name, attempt: state.attempt, error: error,
                reason: "retries exhausted after \(used) attempts")
            startCompensation(
                reason: "step '\(state.name)' failed after \(used) attempts: \(error.code)", outcome: .compensated)
        }
    }

    // MARK: compensating

    /// Turns the saga to compensating: stops every timer, adds steps in flight to the set of steps that
    /// may have taken effect, and undoes that set in reverse order of taking effect.
    mutating func startCompensation(reason: String, outcome: SagaStatus) {
        cancelAllTimers()
        for index in saga.steps.indices {
            switch saga.steps[index].status {
            case .running:
                if saga.steps[index].inFlight != nil {
                    // The command may still arrive and take effect: it is the latest, so it is undone
                    // first (participants refuse an action that arrives after its compensation).
                    saga.steps[index].effectOrder = nextEffectOrder()
                    saga.steps[index].inFlight = nil
                    saga.steps[index].status = .failed
                } else {
                    // Between retries, or a group whose members are handled on their own: it failed.
                    // A wait or a sleep that is cut short: it never finished.
                    saga.steps[index].status = definition.layout.locations[index].isWait ? .skipped : .failed
                }
                saga.steps[index].finishedAt = now
            case .pending, .completed, .failed, .skipped, .compensating, .compensated, .compensationFailed:
                break
            }
        }
        let plan =
            saga.steps
            .filter { $0.mayHaveTakenEffect && $0.status != .compensated && isCommand($0.name) }
            .sorted { ($0.effectOrder ?? 0) > ($1.effectOrder ?? 0) }
            .map(\.name)
        saga.compensation = CompensationState(reason: reason, plan: plan, position: 0, outcome: outcome)
        saga.status = .compensating
        publish(.compensating, reason: reason)
        compensateNext()
    }

    func isCommand(_ name: String) -> Bool {
        definition.layout.indexByName[name].map { definition.layout.locations[$0].isCommand } ?? false
    }

    /// Starts the compensation at the plan's position, passing over steps with nothing to undo; ends
    /// the saga when the plan is done.
    mutating func compensateNext() {
        guard var compensation = saga.compensation else { return }
        while compensation.position < compensation.plan.count {
            let name = compensation.plan[compensation.position]
            if let index = index(of: name), let command = definition.commandStep(at: index),
                command.compensation != nil
            {
                saga.compensation = compensation
                beginCompensate(index, command)
                return
            }
            note(.noCompensationDefined, step: name)
            compensation.position += 1
        }
        saga.compensation = compensation
        saga.status = compensation.outcome
        switch compensation.outcome {
        case .cancelled: publish(.sagaCancelled, reason: compensation.reason)
        case .compensated: publish(.sagaCompensated, reason: compensation.reason)
        case .running, .waiting, .sleeping, .compensating, .completed, .aborted, .failed:
            publish(.sagaCompensated, reason: compensation.reason)
        }
        finish()
    }

    mutating func beginCompensate(_ index: Int, _ command: CommandStep) {
        saga.steps[index].compensationAttempt += 1
        saga.steps[index].status = .compensating
        let state = saga.steps[index]
        let attempt = state.compensationAttempt
        saga.steps[index].inFlight = attempt
        let deadline = now + (command.compensationTimeout ?? command.timeout)
        effects.append(
            .send(
                StepCommand(
                    sagaID: saga.id, definitionName: saga.definitionName, step: state.name, action: .compensate,
                    participant: command.participant, commandType: command.compensation ?? command.command,
                    generation: state.compensateGeneration, actionGeneration: state.executeGeneration,
                    attempt: attempt, deadline: deadline,
                    content: .compensate(input: saga.input, result: saga.results[state.name] ?? .null))))
        schedule(
            SagaTimer(
                kind: .attemptTimeout,
                step: state.name, action: .compensate, attempt: attempt, dueAt: deadline))
        publish(.compensationStarted, step: state.name, attempt: attempt, until: deadline)
    }

    mutating func compensated(_ index: Int) {
        saga.steps[index].status = .compensated
        saga.steps[index].inFlight = nil
        saga.steps[index].finishedAt = now
        publish(.stepCompensated, step: saga.steps[index].name, attempt: saga.steps[index].compensationAttempt)
        saga.compensation?.position += 1
        compensateNext()
    }

    mutating func compensationFailed(_ index: Int, _ command: CommandStep, error: StepError) {
        saga.steps[index].lastError = error
        saga.steps[index].inFlight = nil
        let state = saga.steps[index]
        let used = state.compensationAttempt - state.compensationBudgetStart
        if error.retryable && used < command.compensationRetry.maxAttempts {
            let unit = Jitter.unit(
                saga.id, state.name, StepAction.compensate.rawValue, String(state.compensationAttempt))
            let due = now + command.compensationRetry.delay(afterAttempt: used, unit: unit)
            schedule(
                SagaTimer(
                    kind: .retryBackoff, step: state.name, action: .compensate, attempt: state.compensationAttempt,
                    dueAt: due))
            publish(
                .stepRetryScheduled, step: state.name, attempt: state.compensationAttempt + 1, error: error,
                reason: "compensation", until: due)
            return
        }
        saga.steps[index].status = .compensationFailed
        saga.steps[index].finishedAt = now
        publish(.compensationFailed, step: state.name, attempt: state.compensationAttempt, error: error)
        failSaga(.compensation, step: state.name, error: error)
    }

    mutating func failSaga(_ phase: SagaFailure.Phase, step: String, error: StepError) {
        cancelAllTimers()
        // Attempts still in flight (siblings in a parallel group) are abandoned: their replies become
        // late replies, and an operator's retry sends them again under the same key.
        for index in saga.steps.indices { saga.steps[index].inFlight = nil }
        saga.status = .failed
        saga.failure = SagaFailure(phase: phase, step: step, error: error)
        let what = phase == .compensation ? "compensation of step '\(step)'" : "step '\(step)' after the pivot"
        publish(.sagaFailed, step: step, error: error, reason: "\(what) could not finish: an operator must act")
    }

    /// The saga reached a final status: drop its timers and expire signals nobody used.
    mutating func finish() {
        cancelAllTimers()
        for signal in saga.bufferedSignals {
            signalOutcome(
                SignalDelivery(id: signal.id, name: signal.name, payload: signal.payload), .expired,
                reason: "the saga ended (\(saga.status.rawValue)) before a step waited for it")
        }
        saga.bufferedSignals.removeAll()
    }

    // MARK: events

    mutating func duplicateStart(input: JSONValue) {
        publish(
            .startDuplicate, reason: input == saga.input ? nil : "the repeated start carries a different input",
            conflict: input != saga.input)
    }

    mutating func reply(_ reply: StepReply) {
        guard let index = index(of: reply.step), let command = definition.commandStep(at: index) else {
            note(.unknownStep, step: reply.step, attempt: reply.attempt)
            return
        }
        let state = saga.steps[index]
        let generation = reply.action == .execute ? state.executeGeneration : state.compensateGeneration
        if !IdempotencyKey.matches(
            reply.idempotencyKey, sagaID: saga.id, step: state.name, action: reply.action, generation: generation)
        {
            let earlier = (0..<generation).contains { old in
                IdempotencyKey.make(sagaID: saga.id, step: state.name, action: reply.action, generation: old)
                    == reply.idempotencyKey
            }
            if earlier {
                note(.lateReply, step: reply.step, attempt: reply.attempt, detail: "reply to an earlier generation")
            } else {
                note(
                    .keyMismatch, step: reply.step, attempt: reply.attempt,
                    detail: "idempotency key does not match saga, step and action")
            }
            return
        }
        switch reply.action {
        case .execute: executeReply(reply, index, command)
        case .compensate: compensateReply(reply, index, command)
        }
    }

    mutating func executeReply(_ reply: StepReply, _ index: Int, _ command: CommandStep) {
        let state = saga.steps[index]
        guard reply.attempt >= 1, reply.attempt <= state.attempt else {
            note(.unknownAttempt, step: state.name, attempt: reply.attempt)
            return
        }
        let waiting = state.status == .running && !saga.status.isFinished && saga.status != .compensating
        if waiting && state.inFlight == reply.attempt {
            cancelTimer(.attemptTimeout, state.name, .execute, reply.attempt)
            switch reply.outcome {
            case .success(let result): completeCommand(index, result: result)
            case .failure(let error): executeFailed(index, command, error: error)
            }
            return
        }
        guard case .success(let result) = reply.outcome else {
            note(.lateReply, step: state.name, attempt: reply.attempt, detail: "late failure")
            return
        }
        if waiting {
            // Every attempt carries the same idempotency key, so an earlier attempt's success is the
            // step's success: stop waiting for the retry.
            if let inFlight = state.inFlight { cancelTimer(.attemptTimeout, state.name, .execute, inFlight) }
            cancelTimer(.retryBackoff, state.name, .execute, state.attempt)
            note(.earlierAttemptAccepted, step: state.name, attempt: reply.attempt)
            completeCommand(index, result: result)
            return
        }
        if state.status == .completed || state.status == .compensated {
            note(.duplicateReply, step: state.name, attempt: reply.attempt)
            return
        }
        // A success for a step that is not completed: it may have taken effect after all.
        if saga.results[state.name] == nil {
            saga.results[state.name] = result
            touched = true
        }
        if state.mayHaveTakenEffect {
            note(.lateReply, step: state.name, attempt: reply.attempt, detail: "late success; compensated anyway")
            return
        }
        saga.steps[index].mayHaveTakenEffect = true
        saga.steps[index].effectOrder = nextEffectOrder()
        touched = true
        if saga.status == .compensating || saga.status == .failed, var compensation = saga.compensation {
            // Undo it next: it is the latest step to take effect.
            compensation.plan.insert(state.name, at: min(compensation.position + 1, compensation.plan.count))
            saga.compensation = compensation
            note(.lateSuccessJoinsCompensation, step: state.name, attempt: reply.attempt)
        } else {
            note(.lateSuccessAfterFinish, step: state.name, attempt: reply.attempt)
        }
    }

    mutating func compensateReply(_ reply: StepReply, _ index: Int, _ command: CommandStep) {
        let state = saga.steps[index]
        guard reply.attempt >= 1, reply.attempt <= state.compensationAttempt else {
            note(.unknownAttempt, step: state.name, attempt: reply.attempt)
            return
        }
        let waiting = state.status == .compensating && saga.status == .compensating
        if waiting && state.inFlight == reply.attempt {
            cancelTimer(.attemptTimeout, state.name, .compensate, reply.attempt)
            switch reply.outcome {
            case .success: compensated(index)
            case .failure(let error): compensationFailed(index, command, error: error)
            }
            return
        }
        if waiting, case .success = reply.outcome {
            if let inFlight = state.inFlight { cancelTimer(.attemptTimeout, state.name, .compensate, inFlight) }
            cancelTimer(.retryBackoff, state.name, .compensate, state.compensationAttempt)
            note(.earlierAttemptAccepted, step: state.name, attempt: reply.attempt)
            compensated(index)
            return
        }
        note(
            state.status == .compensated ? .duplicateReply : .lateReply, step: state.name, attempt: reply.attempt)
    }

    mutating func timerFired(_ id: String) {
        guard let position = saga.timers.firstIndex(where: { $0.id == id }) else {
            note(.staleTimer, detail: id)
            return
        }
        let timer = saga.timers.remove(at: position)
        touched = true
        switch timer.kind {
        case .deadline:
            if saga.pastPivot {
                note(.deadlineAfterPivot)
            } else if saga.status == .compensating {
                note(.deadlineWhileCompensating)
            } else {
                startCompensation(reason: "the saga deadline passed", outcome: .compensated)
            }
        case .attemptTimeout:
            guard let name = timer.step, let index = index(of: name), let command = definition.commandStep(at: index),
                let attempt = timer.attempt
            else { return }
            publish(.stepTimedOut, step: name, attempt: attempt)
            if timer.action == .compensate {
                compensationFailed(index, command, error: .timeout(attempt: attempt))
            } else {
                executeFailed(index, command, error: .timeout(attempt: attempt))
            }
        case .retryBackoff:
            guard let name = timer.step, let index = index(of: name), let command = definition.commandStep(at: index)
            else { return }
            if timer.action == .compensate { beginCompensate(index, command) } else { beginExecute(index, command) }
        case .signalTimeout:
            guard let name = timer.step, let index = index(of: name), let top = topLevelIndex(of: name),
                case .signal(let wait) = definition.steps[top].kind
            else { return }
            switch wait.onTimeout {
            case .continue:
                publish(.stepCompleted, step: name, reason: "no signal came in time; going on without it")
                completeTopLevel(index)
            case .compensate:
                saga.steps[index].status = .failed
                saga.steps[index].finishedAt = now
                let error = StepError(code: "SIGNAL_TIMEOUT", message: "no signal came in time", retryable: false)
                saga.steps[index].lastError = error
                publish(.stepFailed, step: name, error: error)
                startCompensation(reason: "step '\(name)' got no signal in time", outcome: .compensated)
            }
        case .sleep:
            guard let name = timer.step, let index = index(of: name) else { return }
            publish(.stepCompleted, step: name)
            completeTopLevel(index)
        }
    }

    mutating func signal(_ signal: SignalDelivery) {
        guard saga.seenSignalIDs.insert(signal.id).inserted else {
            note(.duplicateSignal, detail: signal.id)
            return
        }
        if saga.status.isFinished {
            signalOutcome(signal, .rejected, reason: "the saga is \(saga.status.rawValue)")
            return
        }
        if saga.status == .compensating {
            signalOutcome(signal, .rejected, reason: "the saga is compensating")
            return
        }
        if saga.cursor < definition.steps.count, case .signal(let wait) = definition.steps[saga.cursor].kind,
            wait.signals.contains(signal.name), let index = index(of: definition.steps[saga.cursor].name),
            saga.steps[index].status == .running
        {
            cancelTimer(.signalTimeout, step: definition.steps[saga.cursor].name)
            if consume(signal, stepIndex: index, wait: wait) { advance() }
            return
        }
        let laterWait = definition.steps[min(saga.cursor, definition.steps.count)...].contains { step in
            if case .signal(let wait) = step.kind, wait.signals.contains(signal.name),
                saga.step(step.name)?.status == .pending
            {
                return true
            }
            return false
        }
        guard laterWait else {
            signalOutcome(signal, .rejected, reason: "no step of the saga waits for signal '\(signal.name)' any more")
            return
        }
        guard saga.bufferedSignals.count < SagaInstance.maximumBufferedSignals else {
            signalOutcome(signal, .rejected, reason: "too many buffered signals")
            return
        }
        saga.bufferedSignals.append(
            BufferedSignal(id: signal.id, name: signal.name, payload: signal.payload, receivedAt: now))
        signalOutcome(signal, .buffered)
    }

    /// A waiting step takes a signal. Returns `true` when the saga goes on forward, `false` when the
    /// payload failed the saga.
    mutating func consume(_ signal: SignalDelivery, stepIndex index: Int, wait: SignalStep) -> Bool {
        let name = saga.steps[index].name
        saga.signals[signal.name] = signal.payload
        saga.results[name] = signal.payload
        signalOutcome(signal, .consumed, step: name)
        if let failWhen = wait.failWhen,
            failWhen.evaluate(input: saga.input, steps: saga.results, signals: saga.signals)
        {
            let error = StepError(
                code: "SIGNAL_REJECTED", message: "signal '\(signal.name)' failed the saga: \(failWhen.source)",
                retryable: false)
            saga.steps[index].status = .failed
            saga.steps[index].lastError = error
            saga.steps[index].finishedAt = now
            publish(.stepFailed, step: name, error: error)
            startCompensation(
                reason: "signal '\(signal.name)' to step '\(name)' failed the saga", outcome: .compensated)
            return false
        }
        saga.steps[index].status = .completed
        saga.steps[index].finishedAt = now
        publish(.stepCompleted, step: name, reason: .concatenating("signal '", signal.name, "'"))
        if definition.layout.locations[index].top == definition.layout.pivotIndex { saga.pastPivot = true }
        saga.cursor += 1
        return true
    }

    mutating func cancel(reason: String) {
        let refusal: String?
        if saga.status.isFinished {
            refusal = "the saga is \(saga.status.rawValue)"
        } else if saga.status == .compensating {
            refusal = "the saga is already compensating"
        } else if saga.pastPivot {
            refusal = "the saga is past its pivot: it can only go forward"
        } else {
            refusal = nil
        }
        if let refusal {
            publish(.requestRejected, reason: "cancel refused: \(refusal)")
            return
        }
        startCompensation(reason: reason.isEmpty ? "cancelled" : "cancelled: \(reason)", outcome: .cancelled)
    }

    mutating func abort(reason: String) {
        guard !saga.status.isTerminal else {
            publish(.requestRejected, reason: "abort refused: the saga is \(saga.status.rawValue)")
            return
        }
        for index in saga.steps.indices where saga.steps[index].inFlight != nil {
            saga.steps[index].inFlight = nil
        }
        saga.status = .aborted
        publish(.sagaAborted, reason: reason)
        finish()
    }

    mutating func retry(reason: String) {
        guard saga.status == .failed, let failure = saga.failure, let index = index(of: failure.step),
            let command = definition.commandStep(at: index)
        else {
            publish(.requestRejected, reason: "retry refused: the saga is \(saga.status.rawValue), not failed")
            return
        }
        saga.failure = nil
        publish(.sagaResumed, step: failure.step, reason: reason)
        switch failure.phase {
        case .compensation:
            let freshKey = !failure.error.retryable
            saga.status = .compensating
            saga.steps[index].compensationBudgetStart = saga.steps[index].compensationAttempt
            if freshKey { saga.steps[index].compensateGeneration += 1 }
            beginCompensate(index, command)
        case .forward:
            saga.status = .running
            // Resume the failed step and, in a parallel group, every member that has not finished.
            var resume: [(Int, CommandStep)] = [(index, command)]
            if let top = topLevelIndex(of: failure.step), case .parallel(let group) = definition.steps[top].kind {
                resume = group.steps.compactMap { member in
                    guard let memberIndex = self.index(of: member.name) else { return nil }
                    let status = saga.steps[memberIndex].status
                    return status == .completed || status == .skipped ? nil : (memberIndex, member.command)
                }
            }
            for (memberIndex, memberCommand) in resume {
                let state = saga.steps[memberIndex]
                saga.steps[memberIndex].attemptBudgetStart = state.attempt
                if let error = state.lastError,
                    !error.retryable || memberCommand.nonRetryableErrors.contains(error.code),
                    state.status == .failed
                {
                    saga.steps[memberIndex].executeGeneration += 1
                }
                saga.steps[memberIndex].finishedAt = nil
                beginExecute(memberIndex, memberCommand)
            }
        }
    }
}
