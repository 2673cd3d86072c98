/// Something that happened to a saga. HTTP, Kafka and timers all turn into one of these, and the
/// engine applies it with ``SagaMachine/apply(_:to:definition:now:)``.
public enum SagaEvent: Sendable, Hashable, Codable {
    /// A start for a saga that already exists (a repeated start idempotency key): the saga stays as it
    /// is and a duplicate-start event answers the requester. A new saga begins with
    /// ``SagaMachine/start(id:definition:input:now:)`` instead.
    case start(input: JSONValue)
    /// A participant's reply to a step command or compensation.
    case reply(StepReply)
    /// An external signal, such as a manager's approval.
    case signal(SignalDelivery)
    /// A durable timer the saga set is due.
    case timerFired(timerID: String)
    /// A request to stop the saga and undo what it did.
    case cancel(reason: String)
    /// An operator's order to stop the saga at once, without compensating.
    case abort(reason: String)
    /// An operator's order to resume a `failed` saga from where it stopped.
    case retry(reason: String)
}

/// A participant's reply.
public struct StepReply: Sendable, Hashable, Codable {
    /// The outcome the participant reports.
    public enum Outcome: Sendable, Hashable, Codable {
        /// The action (or compensation) took effect; `result` joins the saga's data.
        case success(result: JSONValue)
        /// It did not take effect. A failure that is not retryable short-circuits the retry policy.
        case failure(StepError)
    }

    /// The step the reply is for.
    public var step: String
    /// Whether it answers the action or the compensation.
    public var action: StepAction
    /// The attempt it answers.
    public var attempt: Int
    /// The idempotency key of the command it answers; must match the saga, step and action.
    public var idempotencyKey: String
    /// What happened.
    public var outcome: Outcome

    public init(step: String, action: StepAction, attempt: Int, idempotencyKey: String, outcome: Outcome) {
        self.step = step
        self.action = action
        self.attempt = attempt
        self.idempotencyKey = idempotencyKey
        self.outcome = outcome
    }
}

/// A signal delivered to a saga.
public struct SignalDelivery: Sendable, Hashable, Codable {
    /// The sender's id for the signal; a repeated id is ignored.
    public var id: String
    /// The signal's name, e.g. `approval`.
    public var name: String
    /// Its payload; readable by conditions as `signals.<name>`.
    public var payload: JSONValue

    public init(id: String, name: String, payload: JSONValue = .emptyObject) {
        self.id = id
        self.name = name
        self.payload = payload
    }
}
