import Foundation
import SagaCore
import SagaProtocol
import Testing

/// The example messages in `protocols/examples/`, which the protocol's documentation shows and
/// scripts/check-protocol.py validates against the JSON Schemas, decode here, and encode back to
/// the same document: the documentation and the code agree.
@Suite("Protocol examples")
struct ExampleTests {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("protocols/examples")

    static var files: [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { directory.appendingPathComponent($0) }
    }

    @Test("there is an example of every message type")
    func everyType() throws {
        var types = Set<String>()
        for file in Self.files {
            let example = try Self.load(file)
            types.insert(example.headers["ce_type"] ?? "")
        }
        #expect(types == Set(SagaMessageType.allCases.map(\.rawValue)))
    }

    @Test("each example decodes, and encodes back to the same document", arguments: files)
    func example(file: URL) throws {
        let example = try Self.load(file)
        let type = try #require(
            SagaMessageType(rawValue: example.headers["ce_type"] ?? ""), "\(file.lastPathComponent)")
        let value = Array(example.value.jsonText.utf8)
        func check<Body: SagaMessageBody>(_: Body.Type) throws -> Body {
            let (attributes, body) = try SagaWire.decode(Body.self, headers: example.headers, value: value)
            #expect(body.json == example.value, "\(file.lastPathComponent)")
            #expect(attributes.headers == example.headers, "\(file.lastPathComponent)")
            return body
        }
        switch type {
        case .start:
            let start = try check(StartSagaRequest.self)
            #expect(example.key == start.idempotencyKey)
            #expect(example.topic == SagaTopics().requests)
        case .cancel:
            #expect(example.key == (try check(CancelSagaRequest.self)).sagaID)
            #expect(example.topic == SagaTopics().requests)
        case .signal:
            let signal = try check(SignalRequest.self)
            switch signal.target {
            case .saga(let id): #expect(example.key == id)
            case .start(_, _, let key): #expect(example.key == key)
            }
            #expect(example.topic == SagaTopics().signals)
        case .stepCommand:
            let command = try check(StepCommandMessage.self)
            #expect(example.key == command.sagaID)
            #expect(example.topic.hasPrefix(SagaTopics().participantPrefix))
            let keyAction = command.action == .execute ? ":execute" : ":compensate"
            #expect(command.idempotencyKey.hasPrefix(command.sagaID + ":" + command.step + keyAction))
        case .stepReply:
            #expect(example.key == (try check(StepReplyMessage.self)).sagaID)
            #expect(example.topic == SagaTopics().replies)
        case .event:
            let event = try check(SagaEventMessage.self)
            #expect(example.key == (event.sagaID ?? event.idempotencyKey))
            #expect(example.topic == SagaTopics().events)
        case .deadLetter:
            let record = try check(DeadLetterRecord.self)
            #expect(example.key == record.key)
            #expect(example.topic == SagaTopics().deadLetter)
        }
    }

    struct Example {
        var topic: String
        var key: String?
        var headers: [String: String]
        var value: JSONValue
    }

    static func load(_ file: URL) throws -> Example {
        let json = try JSONValue(parsing: String(contentsOf: file, encoding: .utf8))
        var headers: [String: String] = [:]
        if case .object(let members) = json["headers"] ?? .null {
            for (name, value) in members { headers[name] = value.stringValue }
        }
        return Example(
            topic: json["topic"]?.stringValue ?? "", key: json["key"]?.stringValue, headers: headers,
            value: json["value"] ?? .null)
    }
}
