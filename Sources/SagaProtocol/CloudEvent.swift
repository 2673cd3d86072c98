import SagaCore

/// The CloudEvents 1.0 attributes of a message. On Kafka they travel in binary content mode: one
/// `ce_<attribute>` header each, `content-type: application/json`, and the message's JSON document
/// as the value. Reading also accepts structured mode (`content-type:
/// application/cloudevents+json`, the attributes and `data` in the value).
public struct CloudEventAttributes: Sendable, Hashable {
    /// The CloudEvents version every message carries.
    public static let specVersion = "1.0"
    /// The content type of every message's value.
    public static let contentType = "application/json"

    /// Unique per message from one source; the orchestrator deduplicates input by it.
    public var id: String
    /// The message type with its version, e.g. `saga.start.v1` (see ``SagaMessageType``).
    public var type: String
    /// Who sent it, e.g. `/sagad` or `/services/checkout`.
    public var source: String
    /// When it was sent.
    public var time: SagaTimestamp?
    /// What it is about; the orchestrator puts the saga id here.
    public var subject: String?

    public init(id: String, type: String, source: String, time: SagaTimestamp? = nil, subject: String? = nil) {
        self.id = id
        self.type = type
        self.source = source
        self.time = time
        self.subject = subject
    }

    /// The Kafka headers of binary content mode.
    public var headers: [String: String] {
        var headers: [String: String] = [
            "ce_specversion": Self.specVersion, "ce_id": id, "ce_type": type, "ce_source": source,
            "content-type": Self.contentType,
        ]
        if let time { headers["ce_time"] = WireTime.format(time) }
        if let subject { headers["ce_subject"] = subject }
        return headers
    }

    /// Reads the attributes from binary-mode headers.
    init(headers: [String: String]) throws(WireError) {
        let type = headers["ce_type"]
        func required(_ name: String) throws(WireError) -> String {
            guard let value = headers[name], !value.isEmpty else {
                throw WireError(type: type, field: "header \(name)", reason: "missing")
            }
            return value
        }
        let version = try required("ce_specversion")
        guard version == Self.specVersion else {
            throw WireError(
                type: type, field: "header ce_specversion", reason: "expected 1.0, found \(version.prefix(20))")
        }
        id = try required("ce_id")
        self.type = try required("ce_type")
        source = try required("ce_source")
        subject = headers["ce_subject"]
        if let text = headers["ce_time"] {
            guard let time = WireTime.parse(text) else {
                throw WireError(type: type, field: "header ce_time", reason: "expected an RFC 3339 time")
            }
            self.time = time
        }
    }

    /// Reads the attributes of a structured-mode event and returns its `data`.
    static func structured(_ event: JSONValue) throws(WireError) -> (CloudEventAttributes, JSONValue) {
        let reader = try FieldReader(event)
        let type = try? reader.string("type")
        do throws(WireError) {
            let version = try reader.string("specversion")
            guard version == specVersion else {
                throw WireError(field: "specversion", reason: "expected 1.0, found \(version.prefix(20))")
            }
            if let contentType = try reader.optionalString("datacontenttype"), !isJSON(contentType) {
                throw WireError(field: "datacontenttype", reason: "expected application/json")
            }
            let attributes = CloudEventAttributes(
                id: try reader.text("id"), type: try reader.text("type"), source: try reader.text("source"),
                time: try reader.optionalTime("time"), subject: try reader.optionalString("subject"))
            return (attributes, try reader.value("data"))
        } catch {
            throw error.with(type: type ?? "")
        }
    }

    static func isJSON(_ contentType: String) -> Bool {
        let media = contentType.split(separator: ";").first.map { $0.trimmingSpaces.lowercased() } ?? ""
        return media == "application/json" || media.hasSuffix("+json")
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var text = self
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return text
    }
}

/// Every message type of the protocol, versioned: a change that an existing reader could not
/// read gets a new version, and the orchestrator reads the versions it knows.
public enum SagaMessageType: String, Sendable, Hashable, CaseIterable {
    /// Start a saga (to the orchestrator's requests topic).
    case start = "saga.start.v1"
    /// Cancel a saga: compensate what it did (requests topic).
    case cancel = "saga.cancel.v1"
    /// A signal for a saga, such as a manager's approval (signals topic).
    case signal = "saga.signal.v1"
    /// A step's action or compensation, to the participant that owns the step.
    case stepCommand = "saga.step.command.v1"
    /// A participant's reply to a step command (replies topic).
    case stepReply = "saga.step.reply.v1"
    /// What happened to a saga: lifecycle events and signal outcomes (events topic).
    case event = "saga.event.v1"
    /// A message the orchestrator could not read or apply, with the reason (dead-letter topic).
    case deadLetter = "saga.dead-letter.v1"
}
