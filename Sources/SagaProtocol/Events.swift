import Foundation
import SagaCore

/// `saga.event.v1`: something that happened to a saga — a lifecycle event (`saga.started`,
/// `step.completed`, `saga.compensated`, …) or what became of a signal (`signal.buffered`,
/// `signal.consumed`, `signal.rejected`, `signal.expired`). Key: the saga id (the start's
/// idempotency key for a signal that reached no saga).
public struct SagaEventMessage: SagaMessageBody {
    public static let messageType = SagaMessageType.event

    /// Every event name of version 1.
    public static let eventNames: Set<String> = Set(
        SagaLifecycleEvent.Kind.allCases.map(\.rawValue) + SignalOutcome.Kind.allCases.map { "signal.\($0.rawValue)" })

    /// The saga; `nil` for a signal outcome when no saga was found.
    public var sagaID: String?
    /// The saga's type; empty (and left out of the document) when the event answers a request
    /// for a saga that does not exist.
    public var sagaType: String
    /// What happened, one of ``eventNames``.
    public var event: String
    /// The saga's status after it; `nil` when no saga was found.
    public var status: SagaStatus?
    public var step: String?
    public var attempt: Int?
    public var error: StepError?
    /// Why: the cause of a compensation, why a request or signal was refused.
    public var reason: String?
    /// A time the event announces: when a retry or a timeout is due.
    public var until: SagaTimestamp?
    /// For `saga.start-duplicate`: whether the repeated start carried a different input.
    public var conflict: Bool?
    /// For `saga.started` and `saga.start-duplicate`: the start's idempotency key, so the requester
    /// can match the saga id to its request.
    public var idempotencyKey: String?
    /// For signal outcomes: the signal's id and name.
    public var signalID: String?
    public var signalName: String?

    public init(sagaID: String?, sagaType: String, event: String, status: SagaStatus? = nil) {
        self.sagaID = sagaID
        self.sagaType = sagaType
        self.event = event
        self.status = status
    }

    /// The message for a lifecycle event of the state machine.
    public init(
        _ lifecycle: SagaLifecycleEvent, sagaID: String, sagaType: String, status: SagaStatus,
        idempotencyKey: String? = nil
    ) {
        self.init(sagaID: sagaID, sagaType: sagaType, event: lifecycle.kind.rawValue, status: status)
        step = lifecycle.step
        attempt = lifecycle.attempt
        error = lifecycle.error
        reason = lifecycle.reason
        until = lifecycle.until
        conflict = lifecycle.conflict
        if lifecycle.kind == .sagaStarted || lifecycle.kind == .startDuplicate { self.idempotencyKey = idempotencyKey }
    }

    /// The message for what became of a signal.
    public init(_ outcome: SignalOutcome, sagaID: String?, sagaType: String, status: SagaStatus?) {
        self.init(sagaID: sagaID, sagaType: sagaType, event: "signal.\(outcome.kind.rawValue)", status: status)
        step = outcome.step
        reason = outcome.reason
        signalID = outcome.signalID
        signalName = outcome.name
    }

    public init(json: JSONValue) throws(WireError) {
        let reader = try FieldReader(json)
        sagaID = try reader.optionalText("sagaId")
        sagaType = try reader.optionalString("sagaType") ?? ""
        event = try reader.text("event")
        guard Self.eventNames.contains(event) else {
            throw WireError(field: "event", reason: "unknown event \"\(event.prefix(40))\"")
        }
        if reader.optional("status") != nil { status = try reader.oneOf("status", SagaStatus.self) }
        step = try reader.optionalString("step")
        attempt = try reader.optionalInteger("attempt")
        if let error = try reader.optionalObject("error") {
            self.error = StepError(
                code: try error.text("code"), message: try error.optionalString("message") ?? "",
                retryable: try error.bool("retryable"))
        }
        reason = try reader.optionalString("reason")
        until = try reader.optionalTime("until")
        if reader.optional("conflict") != nil { conflict = try reader.bool("conflict") }
        idempotencyKey = try reader.optionalString("idempotencyKey")
        signalID = try reader.optionalString("signalId")
        signalName = try reader.optionalString("signalName")
    }

    public var json: JSONValue {
        var object = ObjectBuilder(capacity: 12)
        object["sagaId"] = sagaID
        object["sagaType"] = sagaType.isEmpty ? nil : sagaType
        object["event"] = event
        object["status"] = status?.rawValue
        object["step"] = step
        object["attempt"] = attempt
        object["error"] = error.map(StepReplyMessage.json)
        object["reason"] = reason
        object[time: "until"] = until
        object["conflict"] = conflict
        object["idempotencyKey"] = idempotencyKey
        object["signalId"] = signalID
        object["signalName"] = signalName
        return object.value
    }
}

/// `saga.dead-letter.v1`: a message the orchestrator could not read or apply, kept whole with the
/// reason. Key: the original message's key.
public struct DeadLetterRecord: SagaMessageBody {
    public static let messageType = SagaMessageType.deadLetter

    /// Why it was refused, e.g. `saga.start.v1: field idempotencyKey: missing`.
    public var reason: String
    /// The original message's type, when it was known.
    public var type: String?
    /// The field at fault, when one was.
    public var field: String?
    /// Where the original message was read.
    public var topic: String
    public var partition: Int
    public var offset: Int64
    /// The original message's timestamp.
    public var timestamp: SagaTimestamp?
    /// The original message's key, headers and value. A value that is not UTF-8 text is kept in
    /// ``valueBase64``.
    public var key: String?
    public var headers: [String: String]
    public var value: String?
    public var valueBase64: String?

    public init(
        reason: String, type: String? = nil, field: String? = nil, topic: String, partition: Int, offset: Int64,
        timestamp: SagaTimestamp? = nil, key: [UInt8]?, headers: [String: String], value: [UInt8]?
    ) {
        self.reason = reason
        self.type = type
        self.field = field
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key.map { String(decoding: $0, as: UTF8.self) }
        self.headers = headers
        if let value {
            if let text = String(validating: value, as: UTF8.self) {
                self.value = text
            } else {
                valueBase64 = Data(value).base64EncodedString()
            }
        }
    }

    /// The record for a message that could not be read.
    public init(
        _ error: WireError, topic: String, partition: Int, offset: Int64, timestamp: SagaTimestamp? = nil,
        key: [UInt8]?, headers: [String: String], value: [UInt8]?
    ) {
        self.init(
            reason: error.description, type: error.type, field: error.field, topic: topic, partition: partition,
            offset: offset, timestamp: timestamp, key: key, headers: headers, value: value)
    }

    public init(json: JSONValue) throws(WireError) {
        let reader = try FieldReader(json)
        reason = try reader.text("reason")
        type = try reader.optionalString("type")
        field = try reader.optionalString("field")
        let source = try reader.object("source")
        topic = try source.text("topic")
        partition = try source.integer("partition")
        offset = Int64(try source.integer("offset"))
        timestamp = try source.optionalTime("timestamp")
        key = try reader.optionalString("key")
        var headers: [String: String] = [:]
        if let object = try reader.optionalObject("headers") {
            for (name, _) in object.members { headers[name] = try object.string(name) }
        }
        self.headers = headers
        value = try reader.optionalString("value")
        valueBase64 = try reader.optionalString("valueBase64")
    }

    public var json: JSONValue {
        var source = ObjectBuilder()
        source["topic"] = topic
        source["partition"] = partition
        source["offset"] = Int(offset)
        source[time: "timestamp"] = timestamp
        var object = ObjectBuilder()
        object["reason"] = reason
        object["type"] = type
        object["field"] = field
        object["source"] = source.value
        object["key"] = key
        object["headers"] = JSONValue.object(headers.mapValues { .string($0) })
        object["value"] = value
        object["valueBase64"] = valueBase64
        return object.value
    }
}
