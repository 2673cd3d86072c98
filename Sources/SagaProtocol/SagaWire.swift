import SagaCore

/// A message ready for Kafka: its key, its headers (the CloudEvents attributes) and its value (the
/// JSON document). The topic is the sender's choice (see ``SagaTopics``).
public struct WireMessage: Sendable, Hashable {
    public var key: String?
    public var headers: [String: String]
    public var value: String

    public init(key: String?, headers: [String: String], value: String) {
        self.key = key
        self.headers = headers
        self.value = value
    }
}

/// A message the orchestrator reads: its attributes and its body.
public struct InboundMessage: Sendable, Hashable {
    /// What an inbound message asks.
    public enum Body: Sendable, Hashable {
        case start(StartSagaRequest)
        case cancel(CancelSagaRequest)
        case signal(SignalRequest)
        case reply(StepReplyMessage)
    }

    public var attributes: CloudEventAttributes
    public var body: Body
}

/// Encoding and decoding of the protocol's messages.
public enum SagaWire {
    /// `body` as a message: binary-mode CloudEvents headers and the JSON value.
    public static func encode<Body: SagaMessageBody>(
        _ body: Body, id: String, source: String, time: SagaTimestamp? = nil, subject: String? = nil, key: String?
    ) -> WireMessage {
        let attributes = CloudEventAttributes(
            id: id, type: Body.messageType.rawValue, source: source, time: time, subject: subject)
        return WireMessage(key: key, headers: attributes.headers, value: body.json.jsonText)
    }

    /// The attributes and JSON document of a message, in binary or structured content mode.
    ///
    /// - Throws: ``WireError`` naming the header or what is wrong with the value.
    public static func envelope(headers: [String: String], value: [UInt8]?) throws(WireError) -> (
        CloudEventAttributes, JSONValue
    ) {
        let contentType = headers["content-type"] ?? headers["ce_datacontenttype"]
        let structured = contentType.map { $0.lowercased().hasPrefix("application/cloudevents+json") } ?? false
        if let contentType, !structured, !CloudEventAttributes.isJSON(contentType) {
            throw WireError(type: headers["ce_type"], field: "header content-type", reason: "expected application/json")
        }
        let attributes = structured ? nil : try CloudEventAttributes(headers: headers)
        guard let value else { throw WireError(type: attributes?.type, reason: "no value (a tombstone)") }
        guard let text = String(validating: value, as: UTF8.self) else {
            throw WireError(type: attributes?.type, reason: "the value is not UTF-8 text")
        }
        let json: JSONValue
        do throws(JSONParseError) {
            json = try JSONValue(parsing: text)
        } catch {
            throw WireError(type: attributes?.type, reason: "the value is not JSON: \(error)")
        }
        if let attributes { return (attributes, json) }
        return try CloudEventAttributes.structured(json)
    }

    /// A message of type `Body`.
    ///
    /// - Throws: ``WireError`` when it is of another type or does not decode.
    public static func decode<Body: SagaMessageBody>(
        _: Body.Type, headers: [String: String], value: [UInt8]?
    ) throws(WireError) -> (CloudEventAttributes, Body) {
        let (attributes, json) = try envelope(headers: headers, value: value)
        guard attributes.type == Body.messageType.rawValue else {
            throw WireError(
                type: attributes.type, reason: "expected a message of type \(Body.messageType.rawValue)")
        }
        do throws(WireError) {
            return (attributes, try Body(json: json))
        } catch {
            throw error.with(type: attributes.type)
        }
    }

    /// A message for the orchestrator: a start, cancel, signal or reply.
    ///
    /// - Throws: ``WireError`` when it is of another type or does not decode.
    public static func decodeInbound(headers: [String: String], value: [UInt8]?) throws(WireError) -> InboundMessage {
        let (attributes, json) = try envelope(headers: headers, value: value)
        do throws(WireError) {
            let body: InboundMessage.Body
            switch SagaMessageType(rawValue: attributes.type) {
            case .start: body = .start(try StartSagaRequest(json: json))
            case .cancel: body = .cancel(try CancelSagaRequest(json: json))
            case .signal: body = .signal(try SignalRequest(json: json))
            case .stepReply: body = .reply(try StepReplyMessage(json: json))
            case .stepCommand, .event, .deadLetter, nil:
                let known = [SagaMessageType.start, .cancel, .signal, .stepReply].map(\.rawValue)
                throw WireError(
                    reason: "not a message for the orchestrator (expected one of \(known.joined(separator: ", ")))")
            }
            return InboundMessage(attributes: attributes, body: body)
        } catch {
            throw error.with(type: attributes.type)
        }
    }
}

/// The topics of the protocol. Every name is configurable; the defaults are below.
public struct SagaTopics: Sendable, Hashable {
    /// Starts and cancels, to the orchestrator.
    public var requests: String = "saga.requests"
    /// Signals, to the orchestrator.
    public var signals: String = "saga.signals"
    /// Participants' replies, to the orchestrator.
    public var replies: String = "saga.replies"
    /// Lifecycle events and signal outcomes, from the orchestrator.
    public var events: String = "saga.events"
    /// Messages the orchestrator could not read or apply.
    public var deadLetter: String = "saga.dead-letter"
    /// The command topic of a participant is this prefix and its name: `saga.participant.payments`.
    public var participantPrefix: String = "saga.participant."
    /// Command topics that do not follow the prefix, by participant name.
    public var participantOverrides: [String: String] = [:]

    public init() {}

    /// The command topic of `participant`.
    public func commands(for participant: String) -> String {
        participantOverrides[participant] ?? participantPrefix + participant
    }

    /// The topics the orchestrator reads.
    public var inbound: [String] { [requests, signals, replies] }
}
