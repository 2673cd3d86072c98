#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a transition asks the outside world to do. The engine writes them in the same transaction as
/// the new state: commands and lifecycle events as outbox rows, timers as timer rows, everything as
/// history.
public enum SagaEffect: Sendable, Hashable, Codable {
    /// Send a command (or compensation) to a participant.
    case send(StepCommand)
    /// Set a durable timer.
    case schedule(SagaTimer)
    /// Remove a timer that is no longer needed (its row is keyed by ``SagaTimer/id``).
    case cancelTimer(SagaTimer)
    /// Publish a lifecycle event.
    case publish(SagaLifecycleEvent)
    /// Tell the sender what became of a signal.
    case signalOutcome(SignalOutcome)
    /// Record something in the saga's history that sends nothing: a late reply, a stale timer.
    case note(SagaNote)
}

/// A command for a participant.
///
/// The command holds what it is made of — the saga's data as it was when the command was sent, the
/// parts of its idempotency key — and derives the wire values from them, so a transition builds no
/// strings or JSON objects it may not need; the engine writes them straight into the outbox row.
public struct StepCommand: Sendable, Hashable, Codable {
    /// What the command carries.
    public enum Content: Sendable, Hashable, Codable {
        /// An action: the saga's input, the results of earlier steps and the consumed signals.
        case execute(input: JSONValue, steps: [String: JSONValue], signals: [String: JSONValue])
        /// A compensation: the saga's input and the result of the action it undoes.
        case compensate(input: JSONValue, result: JSONValue)
    }

    /// The saga it belongs to.
    public var sagaID: String
    /// The saga's definition name.
    public var definitionName: String
    /// The step.
    public var step: String
    /// Do or undo.
    public var action: StepAction
    /// The participant that owns the step.
    public var participant: String
    /// The command type, e.g. `payments.charge` or `payments.refund`.
    public var commandType: String
    /// The generation of this action's key: 0 until an operator's retry follows a non-retryable failure.
    public var generation: Int
    /// The generation of the step's action key, which a compensation names.
    public var actionGeneration: Int
    /// The attempt number, from 1.
    public var attempt: Int
    /// When the orchestrator stops waiting for this attempt's reply.
    public var deadline: SagaTimestamp
    /// What the command carries.
    public var content: Content

    public init(
        sagaID: String, definitionName: String, step: String, action: StepAction, participant: String,
        commandType: String, generation: Int, actionGeneration: Int, attempt: Int, deadline: SagaTimestamp,
        content: Content
    ) {
        self.sagaID = sagaID
        self.definitionName = definitionName
        self.step = step
        self.action = action
        self.participant = participant
        self.commandType = commandType
        self.generation = generation
        self.actionGeneration = actionGeneration
        self.attempt = attempt
        self.deadline = deadline
        self.content = content
    }

    /// Stable across retries of this action: participants deduplicate by it.
    public var idempotencyKey: String {
        IdempotencyKey.make(sagaID: sagaID, step: step, action: action, generation: generation)
    }

    /// The idempotency key of the step's action; on a compensation it names what is undone.
    public var actionKey: String {
        IdempotencyKey.make(sagaID: sagaID, step: step, action: .execute, generation: actionGeneration)
    }

    /// The JSON the participant receives: `{input, steps, signals}` for an action, `{input, result}`
    /// for a compensation.
    public var payload: JSONValue {
        switch content {
        case .execute(let input, let steps, let signals):
            return .object(["input": input, "steps": .object(steps), "signals": .object(signals)])
        case .compensate(let input, let result):
            return .object(["input": input, "result": result])
        }
    }
}

/// What became of a signal.
public struct SignalOutcome: Sendable, Hashable, Codable {
    /// The outcome.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// Kept until a step waits for it.
        case buffered
        /// Used by a waiting step.
        case consumed
        /// Refused; ``SignalOutcome/reason`` says why.
        case rejected
        /// Buffered, but the saga finished before any step used it.
        case expired
    }

    public var signalID: String
    public var name: String
    public var kind: Kind
    /// The step that consumed it, for `consumed`.
    public var step: String?
    /// Why, for `rejected` and `expired`.
    public var reason: String?

    public init(signalID: String, name: String, kind: Kind, step: String? = nil, reason: String? = nil) {
        self.signalID = signalID
        self.name = name
        self.kind = kind
        self.step = step
        self.reason = reason
    }
}

/// A lifecycle event, published for listeners and kept as the saga's timeline.
public struct SagaLifecycleEvent: Sendable, Hashable, Codable {
    /// What happened.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        case sagaStarted = "saga.started"
        case startDuplicate = "saga.start-duplicate"
        case stepStarted = "step.started"
        case stepCompleted = "step.completed"
        case stepFailed = "step.failed"
        case stepTimedOut = "step.timed-out"
        case stepRetryScheduled = "step.retry-scheduled"
        case stepSkipped = "step.skipped"
        case waitingForSignal = "step.waiting-for-signal"
        case sleeping = "step.sleeping"
        case compensating = "saga.compensating"
        case compensationStarted = "step.compensation-started"
        case stepCompensated = "step.compensated"
        case compensationFailed = "step.compensation-failed"
        case sagaCompleted = "saga.completed"
        case sagaCompensated = "saga.compensated"
        case sagaCancelled = "saga.cancelled"
        case sagaAborted = "saga.aborted"
        case sagaFailed = "saga.failed"
        case sagaResumed = "saga.resumed"
        case requestRejected = "saga.request-rejected"
    }

    public var kind: Kind
    /// The step concerned, when there is one.
    public var step: String?
    /// The attempt concerned, when there is one.
    public var attempt: Int?
    /// The error concerned, when there is one.
    public var error: StepError?
    /// A short explanation: why the saga compensates, why a request was refused, which signals a
    /// step waits for.
    public var reason: String?
    /// A time the event announces: when a retry or a timeout is due.
    public var until: SagaTimestamp?
    /// For a duplicate start: whether the repeated start carried a different input.
    public var conflict: Bool?

    public init(
        kind: Kind, step: String? = nil, attempt: Int? = nil, error: StepError? = nil, reason: String? = nil,
        until: SagaTimestamp? = nil, conflict: Bool? = nil
    ) {
        self.kind = kind
        self.step = step
        self.attempt = attempt
        self.error = error
        self.reason = reason
        self.until = until
        self.conflict = conflict
    }
}

/// A fact for the history that changes nothing: counted and shown, never fatal.
public struct SagaNote: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// A reply for an attempt that is no longer awaited (it timed out, or the saga moved on).
        case lateReply = "late-reply"
        /// A success for an earlier attempt of a step still waiting: accepted, since every attempt
        /// carries the same idempotency key.
        case earlierAttemptAccepted = "earlier-attempt-accepted"
        /// A success for a step that was not in the compensation set: it joins it.
        case lateSuccessJoinsCompensation = "late-success-joins-compensation"
        /// A success arrived after the saga finished for a step never compensated: an operator should look.
        case lateSuccessAfterFinish = "late-success-after-finish"
        /// The same reply again.
        case duplicateReply = "duplicate-reply"
        /// A reply naming a step the definition does not have.
        case unknownStep = "unknown-step"
        /// A reply for an attempt that was never sent.
        case unknownAttempt = "unknown-attempt"
        /// A reply whose idempotency key does not match its saga, step and action: refused.
        case keyMismatch = "key-mismatch"
        /// A timer that is no longer set fired (a duplicate firing, or one cancelled in a race).
        case staleTimer = "stale-timer"
        /// A signal id seen before.
        case duplicateSignal = "duplicate-signal"
        /// The deadline passed after the pivot: the saga goes on forward.
        case deadlineAfterPivot = "deadline-after-pivot"
        /// The deadline passed while compensating: the compensation goes on.
        case deadlineWhileCompensating = "deadline-while-compensating"
        /// A step in the compensation set has no compensation to run.
        case noCompensationDefined = "no-compensation-defined"
        /// An event for a saga of another definition version.
        case definitionMismatch = "definition-mismatch"
    }

    public var kind: Kind
    public var step: String?
    public var attempt: Int?
    public var detail: String?

    public init(kind: Kind, step: String? = nil, attempt: Int? = nil, detail: String? = nil) {
        self.kind = kind
        self.step = step
        self.attempt = attempt
        self.detail = detail
    }
}

/// The outcome of a transition: the saga's new state and the effects to carry out.
public struct SagaTransition: Sendable, Hashable {
    public var saga: SagaInstance
    public var effects: [SagaEffect]
}

/// Idempotency keys of step actions: derived from saga id, step and action, stable across retries of
/// that action. An operator's retry after a non-retryable failure adds a generation, so the participant
/// does not answer with the failure it stored.
public enum IdempotencyKey {
    public static func make(sagaID: String, step: String, action: StepAction, generation: Int = 0) -> String {
        let suffix = action == .execute ? ":execute" : ":compensate"
        if generation == 0 { return .concatenating(sagaID, ":", step, suffix) }
        return .concatenating(sagaID, ":", step, suffix, ":", String(generation))
    }

    /// Whether `key` is the key ``make(sagaID:step:action:generation:)`` gives, compared byte by
    /// byte without building it (every reply is checked this way).
    public static func matches(
        _ key: String, sagaID: String, step: String, action: StepAction, generation: Int = 0
    ) -> Bool {
        var key = key
        var sagaID = sagaID
        var step = step
        var suffix = action == .execute ? ":execute" : ":compensate"
        return key.withUTF8 { key in
            sagaID.withUTF8 { sagaID in
                step.withUTF8 { step in
                    suffix.withUTF8 { suffix in
                        var offset = 0
                        func take(_ part: UnsafeBufferPointer<UInt8>) -> Bool {
                            guard key.count - offset >= part.count else { return false }
                            if let target = key.baseAddress, let source = part.baseAddress,
                                memcmp(target + offset, source, part.count) != 0
                            {
                                return false
                            }
                            offset += part.count
                            return true
                        }
                        guard take(sagaID), offset < key.count, key[offset] == UInt8(ascii: ":") else { return false }
                        offset += 1
                        guard take(step), take(suffix) else { return false }
                        if generation == 0 { return offset == key.count }
                        guard offset < key.count, key[offset] == UInt8(ascii: ":") else { return false }
                        offset += 1
                        // The generation in decimal, without leading zeros.
                        guard offset < key.count, key[offset] != UInt8(ascii: "0") else { return false }
                        var value = 0
                        while offset < key.count {
                            let digit = Int(key[offset]) - Int(UInt8(ascii: "0"))
                            guard (0...9).contains(digit), value <= (Int.max - digit) / 10 else { return false }
                            value = value * 10 + digit
                            offset += 1
                        }
                        return value == generation
                    }
                }
            }
        }
    }
}
