/// Where a saga stands.
public enum SagaStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// A command step (or parallel group) is in flight or between retries.
    case running
    /// Waiting for an external signal.
    case waiting
    /// Sleeping on a durable timer.
    case sleeping
    /// Undoing the steps that may have taken effect, in reverse order of completion.
    case compensating
    /// Every step ran. Terminal.
    case completed
    /// A step failed (or the deadline passed) and every step that may have taken effect was undone. Terminal.
    case compensated
    /// Cancelled on request and every step that may have taken effect was undone. Terminal.
    case cancelled
    /// Stopped by an operator without compensating. Terminal.
    case aborted
    /// A compensation (or, after the pivot, a step) could not finish: an operator must act, and
    /// `retry` resumes the saga from where it stopped. The only finished status that can change.
    case failed

    /// Completed, compensated, cancelled or aborted: nothing changes any more.
    public var isTerminal: Bool {
        switch self {
        case .completed, .compensated, .cancelled, .aborted: return true
        case .running, .waiting, .sleeping, .compensating, .failed: return false
        }
    }

    /// Terminal, or failed and waiting for an operator: nothing happens without outside action.
    public var isFinished: Bool { isTerminal || self == .failed }
}

/// Where one step stands.
public enum StepStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case pending
    case running
    case completed
    case failed
    case skipped
    case compensating
    case compensated
    case compensationFailed = "compensation-failed"
}

/// The two things that can be done for a command step.
public enum StepAction: String, Sendable, Hashable, Codable, CaseIterable {
    /// Do the step.
    case execute
    /// Undo it.
    case compensate
}

/// An error a participant reported, or the machine recorded.
public struct StepError: Sendable, Hashable, Codable {
    /// A machine-readable code, e.g. `CARD_DECLINED` or `TIMEOUT`.
    public var code: String
    /// A human-readable message.
    public var message: String
    /// Whether trying again may succeed. `false` short-circuits the retry policy.
    public var retryable: Bool

    public init(code: String, message: String = "", retryable: Bool) {
        self.code = code
        self.message = message
        self.retryable = retryable
    }

    static func timeout(attempt: Int) -> StepError {
        StepError(code: "TIMEOUT", message: "attempt \(attempt) got no reply in time", retryable: true)
    }
}

/// The state of one step of one saga.
public struct StepState: Sendable, Hashable, Codable {
    /// The step's name.
    public var name: String
    /// Where the step stands.
    public var status: StepStatus = .pending
    /// The number of the latest attempt of the action (0 before the first).
    public var attempt: Int = 0
    /// The attempt number after which the current retry budget of the action began (an operator's
    /// `retry` starts a new budget).
    public var attemptBudgetStart: Int = 0
    /// The number of the latest attempt of the compensation.
    public var compensationAttempt: Int = 0
    /// Where the compensation's current retry budget began.
    public var compensationBudgetStart: Int = 0
    /// Bumped when an operator's `retry` follows a non-retryable failure of the action, so the retry
    /// carries a fresh idempotency key (the old one would get the stored failure back).
    public var executeGeneration: Int = 0
    /// The same for the compensation.
    public var compensateGeneration: Int = 0
    /// The attempt whose reply is awaited, when one is in flight.
    public var inFlight: Int?
    /// Whether the action may have taken effect: true from the moment its command is sent (an attempt
    /// may time out, or a participant may see a command again after a retryable failure), false again
    /// only when a non-retryable failure proves nothing happened. Such a step is compensated.
    public var mayHaveTakenEffect: Bool = false
    /// Orders steps by when they (last) took effect; compensation runs in descending order.
    public var effectOrder: Int?
    /// The latest error.
    public var lastError: StepError?
    /// When the step began.
    public var startedAt: SagaTimestamp?
    /// When the step finished (completed, failed, skipped or compensated).
    public var finishedAt: SagaTimestamp?

    public init(name: String) {
        self.name = name
    }
}

/// A durable timer the saga owns. The store keeps it as a row; when it is due, it comes back as a
/// ``SagaEvent/timerFired(_:)`` event.
public struct SagaTimer: Sendable, Hashable, Codable {
    /// What the timer is for.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// An attempt of a step's action or compensation got no reply in time.
        case attemptTimeout = "attempt-timeout"
        /// The backoff before the next attempt is over.
        case retryBackoff = "retry-backoff"
        /// A signal wait is over.
        case signalTimeout = "signal-timeout"
        /// A sleep step is over.
        case sleep
        /// The saga's deadline passed.
        case deadline
    }

    /// What it is for.
    public var kind: Kind
    /// The step it belongs to; `nil` for the deadline.
    public var step: String?
    /// The action it belongs to, for attempt timeouts and backoffs.
    public var action: StepAction?
    /// The attempt it belongs to, for attempt timeouts and backoffs.
    public var attempt: Int?
    /// When it fires.
    public var dueAt: SagaTimestamp

    public init(
        kind: Kind, step: String? = nil, action: StepAction? = nil, attempt: Int? = nil, dueAt: SagaTimestamp
    ) {
        self.kind = kind
        self.step = step
        self.action = action
        self.attempt = attempt
        self.dueAt = dueAt
    }

    /// Unique within the saga and stable, derived from what the timer is for:
    /// `saga:deadline`, `<step>:signal`, `<step>:sleep`, `<step>:<action>:<attempt>:timeout|retry`.
    /// The store keys its timer rows by it; a firing names it.
    public var id: String {
        switch kind {
        case .deadline: return "saga:deadline"
        case .signalTimeout: return .concatenating(step ?? "", ":signal")
        case .sleep: return .concatenating(step ?? "", ":sleep")
        case .attemptTimeout, .retryBackoff:
            return .concatenating(
                step ?? "", action == .compensate ? ":compensate:" : ":execute:", String(attempt ?? 0),
                kind == .attemptTimeout ? ":timeout" : ":retry")
        }
    }
}

/// A signal that arrived before the saga waited for it.
public struct BufferedSignal: Sendable, Hashable, Codable {
    /// The sender's signal id.
    public var id: String
    /// The signal's name.
    public var name: String
    /// Its payload.
    public var payload: JSONValue
    /// When it arrived.
    public var receivedAt: SagaTimestamp
}

/// The compensation in progress (or stopped, when the saga is `failed`).
public struct CompensationState: Sendable, Hashable, Codable {
    /// Why the saga compensates.
    public var reason: String
    /// The steps to undo, in order: reverse order of taking effect.
    public var plan: [String]
    /// The index in ``plan`` of the step being undone.
    public var position: Int
    /// The status the saga ends with when every compensation succeeded.
    public var outcome: SagaStatus
}

/// Why a saga is `failed`.
public struct SagaFailure: Sendable, Hashable, Codable {
    /// Whether the saga stopped while compensating, or while moving forward after its pivot.
    public enum Phase: String, Sendable, Hashable, Codable {
        case compensation
        case forward
    }

    public var phase: Phase
    /// The step that could not finish.
    public var step: String
    /// Its last error.
    public var error: StepError
}

/// One saga: everything the state machine needs to decide what happens next. Persisted as JSON.
public struct SagaInstance: Sendable, Hashable, Codable {
    /// The saga's id.
    public var id: String
    /// The definition's name.
    public var definitionName: String
    /// The definition's version, pinned at start.
    public var definitionVersion: Int
    /// Where the saga stands.
    public var status: SagaStatus
    /// The input it was started with.
    public var input: JSONValue
    /// The index of the current top-level step; equal to the step count once every step ran.
    public var cursor: Int
    /// Every step's state, members of parallel groups included, in definition order.
    public var steps: [StepState]
    /// The result of every step whose action succeeded (a command's reply, a signal step's payload),
    /// by step name; a compensation receives the result of the action it undoes.
    public var results: [String: JSONValue]
    /// Payloads of consumed signals, by signal name.
    public var signals: [String: JSONValue]
    /// Ids of every signal that got an outcome; a repeated id is ignored.
    public var seenSignalIDs: Set<String>
    /// Signals that arrived before a step waited for them.
    public var bufferedSignals: [BufferedSignal]
    /// The timers that are set.
    public var timers: [SagaTimer]
    /// The compensation, once the saga turned to compensating.
    public var compensation: CompensationState?
    /// Whether the pivot step completed: from then on nothing is compensated.
    public var pastPivot: Bool
    /// Why the saga is `failed`, when it is.
    public var failure: SagaFailure?
    /// A counter that orders steps by when they took effect.
    public var effectCounter: Int
    /// When the saga started.
    public var createdAt: SagaTimestamp
    /// When its state last changed.
    public var updatedAt: SagaTimestamp

    /// The maximum number of signals buffered per saga; more are rejected.
    public static let maximumBufferedSignals = 64

    /// The state of the step named `name`.
    public func step(_ name: String) -> StepState? {
        steps.first { $0.name == name }
    }

    func stepIndex(_ name: String) -> Int? {
        steps.firstIndex { $0.name == name }
    }

    /// The data that conditions read and commands carry: `input`, `steps` (``results``) and `signals`
    /// (payloads of consumed signals).
    public var data: JSONValue {
        .object(["input": input, "steps": .object(results), "signals": .object(signals)])
    }

    /// What the saga is waiting for, and until when: the earliest timer, described for people.
    /// `nil` when the saga is finished (a `failed` saga waits for an operator, see ``failure``).
    public var waitingFor: WaitingFor? {
        guard !status.isFinished else { return nil }
        let relevant = timers.filter { $0.kind != .deadline }
        guard let timer = relevant.min(by: { $0.dueAt < $1.dueAt }) ?? timers.first else { return nil }
        let description: String
        switch timer.kind {
        case .attemptTimeout:
            let action = timer.action == .compensate ? "compensation" : "reply"
            description = "\(action) from step '\(timer.step ?? "")' attempt \(timer.attempt ?? 0)"
        case .retryBackoff:
            description = "retry of step '\(timer.step ?? "")' (attempt \((timer.attempt ?? 0) + 1))"
        case .signalTimeout:
            description = "signal for step '\(timer.step ?? "")'"
        case .sleep:
            description = "end of sleep step '\(timer.step ?? "")'"
        case .deadline:
            description = "saga deadline"
        }
        return WaitingFor(description: description, until: timer.dueAt)
    }
}

/// What a saga waits for, in one line, and until when.
public struct WaitingFor: Sendable, Hashable, Codable, CustomStringConvertible {
    public var description: String
    public var until: SagaTimestamp
}

// The stored form (``SagaInstance/jsonText``) leaves out counters at zero, flags at false and
// empty collections; the `Codable` form reads such a document with those values.

extension StepState {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try container.decode(String.self, forKey: .name))
        status = try container.decode(StepStatus.self, forKey: .status)
        attempt = try container.decodeIfPresent(Int.self, forKey: .attempt) ?? 0
        attemptBudgetStart = try container.decodeIfPresent(Int.self, forKey: .attemptBudgetStart) ?? 0
        compensationAttempt = try container.decodeIfPresent(Int.self, forKey: .compensationAttempt) ?? 0
        compensationBudgetStart = try container.decodeIfPresent(Int.self, forKey: .compensationBudgetStart) ?? 0
        executeGeneration = try container.decodeIfPresent(Int.self, forKey: .executeGeneration) ?? 0
        compensateGeneration = try container.decodeIfPresent(Int.self, forKey: .compensateGeneration) ?? 0
        inFlight = try container.decodeIfPresent(Int.self, forKey: .inFlight)
        mayHaveTakenEffect = try container.decodeIfPresent(Bool.self, forKey: .mayHaveTakenEffect) ?? false
        effectOrder = try container.decodeIfPresent(Int.self, forKey: .effectOrder)
        lastError = try container.decodeIfPresent(StepError.self, forKey: .lastError)
        startedAt = try container.decodeIfPresent(SagaTimestamp.self, forKey: .startedAt)
        finishedAt = try container.decodeIfPresent(SagaTimestamp.self, forKey: .finishedAt)
    }
}

extension SagaInstance {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try container.decode(String.self, forKey: .id),
            definitionName: try container.decode(String.self, forKey: .definitionName),
            definitionVersion: try container.decode(Int.self, forKey: .definitionVersion),
            status: try container.decode(SagaStatus.self, forKey: .status),
            input: try container.decode(JSONValue.self, forKey: .input),
            cursor: try container.decode(Int.self, forKey: .cursor),
            steps: try container.decode([StepState].self, forKey: .steps),
            results: try container.decodeIfPresent([String: JSONValue].self, forKey: .results) ?? [:],
            signals: try container.decodeIfPresent([String: JSONValue].self, forKey: .signals) ?? [:],
            seenSignalIDs: try container.decodeIfPresent(Set<String>.self, forKey: .seenSignalIDs) ?? [],
            bufferedSignals: try container.decodeIfPresent([BufferedSignal].self, forKey: .bufferedSignals) ?? [],
            timers: try container.decodeIfPresent([SagaTimer].self, forKey: .timers) ?? [],
            compensation: try container.decodeIfPresent(CompensationState.self, forKey: .compensation),
            pastPivot: try container.decodeIfPresent(Bool.self, forKey: .pastPivot) ?? false,
            failure: try container.decodeIfPresent(SagaFailure.self, forKey: .failure),
            effectCounter: try container.decode(Int.self, forKey: .effectCounter),
            createdAt: try container.decode(SagaTimestamp.self, forKey: .createdAt),
            updatedAt: try container.decode(SagaTimestamp.self, forKey: .updatedAt))
    }
}
