import SagaCore

/// A message body of the protocol: a JSON document with a known CloudEvents type.
public protocol SagaMessageBody: Sendable, Hashable {
    /// The CloudEvents type the body travels under.
    static var messageType: SagaMessageType { get }
    /// The JSON document.
    var json: JSONValue { get }
    /// Reads the document; errors name the field.
    init(json: JSONValue) throws(WireError)
}

/// `saga.start.v1`: start a saga. Key: the idempotency key.
public struct StartSagaRequest: SagaMessageBody {
    public static let messageType = SagaMessageType.start
    /// The definition's name, e.g. `order-fulfillment`.
    public var sagaType: String
    /// The definition version; the latest one when `nil`.
    public var version: Int?
    /// The saga's input.
    public var input: JSONValue
    /// A repeated start with the same key (per tenant and saga type) starts nothing and is answered
    /// with the existing saga's id.
    public var idempotencyKey: String
    /// The tenant it belongs to; empty for none.
    public var tenant: String
    /// Higher starts first when work queues up; default 0.
    public var priority: Int

    public init(
        sagaType: String, version: Int? = nil, input: JSONValue, idempotencyKey: String, tenant: String = "",
        priority: Int = 0
    ) {
        self.sagaType = sagaType
        self.version = version
        self.input = input
        self.idempotencyKey = idempotencyKey
        self.tenant = tenant
        self.priority = priority
    }

    public init(json: JSONValue) throws(WireError) {
        let reader = try FieldReader(json)
        sagaType = try reader.text("sagaType")
        version = try reader.optionalInteger("version")
        if let version, version < 1 { throw WireError(field: "version", reason: "must be 1 or more") }
        input = reader.optional("input") ?? .emptyObject
        idempotencyKey = try reader.text("idempotencyKey")
        tenant = try reader.optionalString("tenant") ?? ""
        priority = try reader.optionalInteger("priority") ?? 0
    }

    public var json: JSONValue {
        var object = ObjectBuilder()
        object["sagaType"] = sagaType
        object["version"] = version
        object["input"] = input
        object["idempotencyKey"] = idempotencyKey
        object["tenant"] = tenant.isEmpty ? nil : tenant
        object["priority"] = priority == 0 ? nil : priority
        return object.value
    }
}

/// `saga.cancel.v1`: stop a saga and undo what it did. Key: the saga id.
public struct CancelSagaRequest: SagaMessageBody {
    public static let messageType = SagaMessageType.cancel
    public var sagaID: String
    /// Why; kept in the saga's history.
    public var reason: String

    public init(sagaID: String, reason: String = "") {
        self.sagaID = sagaID
        self.reason = reason
    }

    public init(json: JSONValue) throws(WireError) {
        let reader = try FieldReader(json)
        sagaID = try reader.text("sagaId")
        reason = try reader.optionalString("reason") ?? ""
    }

    public var json: JSONValue {
        var object = ObjectBuilder()
        object["sagaId"] = sagaID
        object["reason"] = reason.isEmpty ? nil : reason
        return object.value
    }
}

/// Which saga a signal is for.
public enum SignalTarget: Sendable, Hashable {
    /// The saga with this id.
    case saga(id: String)
    /// The saga started with this idempotency key: usable before the saga's id is known, even
    /// before the saga exists (the signal waits for it).
    case start(tenant: String, sagaType: String, idempotencyKey: String)
}

/// `saga.signal.v1`: an external signal, such as a manager's approval. Key: the saga id, or the
/// start's idempotency key.
public struct SignalRequest: SagaMessageBody {
    public static let messageType = SagaMessageType.signal
    public var target: SignalTarget
    /// The sender's id for the signal; a repeated id is ignored.
    public var signalID: String
    /// The signal's name, e.g. `approval`.
    public var name: String
    /// Its payload; joins the saga's data as `signals.<name>`.
    public var payload: JSONValue

    public init(target: SignalTarget, signalID: String, name: String, payload: JSONValue = .emptyObject) {
        self.target = target
        self.signalID = signalID
        self.name = name
        self.payload = payload
    }

    public init(json: JSONValue) throws(WireError) {
        let reader = try FieldReader(json)
        if let id = try reader.optionalText("sagaId") {
            target = .saga(id: id)
        } else if let sagaType = try reader.optionalText("sagaType") {
            guard let key = try reader.optionalText("idempotencyKey") else {
                throw WireError(field: "idempotencyKey", reason: "missing: a signal by saga type names the start's key")
            }
            target = .start(tenant: try reader.optionalString("tenant") ?? "", sagaType: sagaType, idempotencyKey: key)
        } else {
            throw WireError(
                field: "sagaId", reason: "missing: name the saga by sagaId, or by sagaType and idempotencyKey")
        }
        signalID = try reader.text("signalId")
        name = try reader.text("name")
        payload = reader.optional("payload") ?? .emptyObject
    }

    public var json: JSONValue {
        var object = ObjectBuilder()
        switch target {
        case .saga(let id):
            object["sagaId"] = id
        case .start(let tenant, let sagaType, let key):
            object["sagaType"] = sagaType
            object["idempotencyKey"] = key
            object["tenant"] = tenant.isEmpty ? nil : tenant
        }
        object["signalId"] = signalID
        object["name"] = name
        object["payload"] = payload
        return object.value
    }

    /// The delivery the state machine takes.
    public var delivery: SignalDelivery { SignalDelivery(id: signalID, name: name, payload: payload) }
}

/// `saga.step.command.v1`: one execution or compensation of a step, to the participant that owns
/// it. Key: the saga id.
public struct StepCommandMessage: SagaMessageBody {
    public static let messageType = SagaMessageType.stepCommand
    public var sagaID: String
    public var sagaType: String
    public var step: String
    /// `execute` or `compensate`.
    public var action: StepAction
    /// What to do, e.g. `payments.charge` or `payments.refund`.
    public var commandType: String
    /// Stable across retries of this action: the participant deduplicates by it.
    public var idempotencyKey: String
    /// The key of the step's action: a compensation names what it undoes by it.
    public var actionKey: String
    /// From 1; travels beside the key, which stays the same for every attempt.
    public var attempt: Int
    /// When the orchestrator stops waiting for this attempt's reply.
    public var deadline: SagaTimestamp
    /// `{input, steps, signals}` for an action, `{input, result}` for a compensation.
    public var payload: JSONValue
    /// Where the reply goes.
    public var replyTopic: String

    public init(
        sagaID: String, sagaType: String, step: String, action: StepAction, commandType: String,
        idempotencyKey: String, actionKey: String, attempt: Int, deadline: SagaTimestamp, payload: JSONValue,
        replyTopic: String
    ) {
        self.sagaID = sagaID
        self.sagaType = sagaType
        self.step = step
        self.action = action
        self.commandType = commandType
        self.idempotencyKey = idempotencyKey
        self.actionKey = actionKey
        self.attempt = attempt
        self.deadline = deadline
        self.payload = payload
        self.replyTopic = replyTopic
    }

    /// The message for a command of the state machine.
    public init(_ command: StepCommand, replyTopic: String) {
        self.init(
            sagaID: command.sagaID, sagaType: command.definitionName, step: command.step, action: command.action,
            commandType: command.commandType, idempotencyKey: command.idempotencyKey, actionKey: command.actionKey,
            attempt: command.attempt, deadline: command.deadline, payload: command.payload, replyTopic: replyTopic)
    }

    public init(json: JSONValue) throws(WireError) {
        let reader = try FieldReader(json)
        sagaID = try reader.text("sagaId")
        sagaType = try reader.text("sagaType")
        step = try reader.text("step")
        action = try reader.oneOf("action", StepAction.self)
        commandType = try reader.text("commandType")
        idempotencyKey = try reader.text("idempotencyKey")
        actionKey = try reader.text("actionKey")
        attempt = try reader.integer("attempt")
        guard attempt >= 1 else { throw WireError(field: "attempt", reason: "must be 1 or more") }
        deadline = try reader.time("deadline")
        payload = reader.optional("payload") ?? .emptyObject
        replyTopic = try reader.text("replyTopic")
    }

    public var json: JSONValue {
        var object = ObjectBuilder(capacity: 12)
        object["sagaId"] = sagaID
        object["sagaType"] = sagaType
        object["step"] = step
        object["action"] = action.rawValue
        object["commandType"] = commandType
        object["idempotencyKey"] = idempotencyKey
        object["actionKey"] = actionKey
        object["attempt"] = attempt
        object[time: "deadline"] = deadline
        object["payload"] = payload
        object["replyTopic"] = replyTopic
        return object.value
    }

    /// A reply to this command.
    public func reply(_ outcome: StepReply.Outcome) -> StepReplyMessage {
        StepReplyMessage(
            sagaID: sagaID,
            reply: StepReply(
                step: step, action: action, attempt: attempt, idempotencyKey: idempotencyKey, outcome: outcome))
    }
}

/// `saga.step.reply.v1`: a participant's reply to a step command. Key: the saga id.
public struct StepReplyMessage: SagaMessageBody {
    public static let messageType = SagaMessageType.stepReply
    public var sagaID: String
    /// The step, action, attempt and key of the command it answers, and the outcome.
    public var reply: StepReply

    public init(sagaID: String, reply: StepReply) {
        self.sagaID = sagaID
        self.reply = reply
    }

    public init(json: JSONValue) throws(WireError) {
        let reader = try FieldReader(json)
        sagaID = try reader.text("sagaId")
        let step = try reader.text("step")
        let action = try reader.oneOf("action", StepAction.self)
        let attempt = try reader.integer("attempt")
        guard attempt >= 1 else { throw WireError(field: "attempt", reason: "must be 1 or more") }
        let key = try reader.text("idempotencyKey")
        let outcome = try StepReply.Outcome(reader)
        reply = StepReply(step: step, action: action, attempt: attempt, idempotencyKey: key, outcome: outcome)
    }

    public var json: JSONValue {
        var object = ObjectBuilder()
        object["sagaId"] = sagaID
        object["step"] = reply.step
        object["action"] = reply.action.rawValue
        object["attempt"] = reply.attempt
        object["idempotencyKey"] = reply.idempotencyKey
        reply.outcome.write(into: &object)
        return object.value
    }

    static func json(_ error: StepError) -> JSONValue {
        var object = ObjectBuilder()
        object["code"] = error.code
        object["message"] = error.message
        object["retryable"] = error.retryable
        return object.value
    }

    enum ReplyOutcome: String, CaseIterable {
        case success, failure
    }
}

extension StepReply.Outcome {
    /// The outcome's part of a reply document: `{"outcome": "success", "result": …}` or
    /// `{"outcome": "failure", "error": {code, message, retryable}}`. A participant keeps it to
    /// answer a repeated command with the first reply.
    public var json: JSONValue {
        var object = ObjectBuilder()
        write(into: &object)
        return object.value
    }

    /// Reads what ``json`` wrote (or the same members of a whole reply).
    public init(json: JSONValue) throws(WireError) {
        try self.init(FieldReader(json))
    }

    init(_ reader: FieldReader) throws(WireError) {
        switch try reader.oneOf("outcome", StepReplyMessage.ReplyOutcome.self) {
        case .success:
            self = .success(result: reader.optional("result") ?? .emptyObject)
        case .failure:
            let error = try reader.object("error")
            self = .failure(
                StepError(
                    code: try error.text("code"), message: try error.optionalString("message") ?? "",
                    retryable: try error.bool("retryable")))
        }
    }

    func write(into object: inout ObjectBuilder) {
        switch self {
        case .success(let result):
            object["outcome"] = StepReplyMessage.ReplyOutcome.success.rawValue
            object["result"] = result
        case .failure(let error):
            object["outcome"] = StepReplyMessage.ReplyOutcome.failure.rawValue
            object["error"] = StepReplyMessage.json(error)
        }
    }
}
