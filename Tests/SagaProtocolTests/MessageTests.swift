import Foundation
import SagaCore
import SagaProtocol
import Testing

/// Binary-mode headers for a message of `type`.
func headers(_ type: SagaMessageType, id: String = "m-1") -> [String: String] {
    CloudEventAttributes(id: id, type: type.rawValue, source: "/tests").headers
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// The error `body` throws, when it is a ``WireError``.
func wireError(_ body: () throws -> Void) -> WireError? {
    do {
        try body()
        return nil
    } catch {
        return error as? WireError
    }
}

@Suite("Wire messages")
struct MessageTests {
    static let time = SagaTimestamp(millisecondsSinceEpoch: 1_796_321_964_123)

    @Test("every message survives encoding and decoding, attributes included")
    func roundTrip() throws {
        let bodies: [any SagaMessageBody] = [
            StartSagaRequest(
                sagaType: "order-fulfillment", version: 2, input: ["orderId": "o-1", "amount": 4200],
                idempotencyKey: "order-o-1", tenant: "acme", priority: 5),
            StartSagaRequest(sagaType: "order-fulfillment", input: .emptyObject, idempotencyKey: "k"),
            CancelSagaRequest(sagaID: "s-1", reason: "customer asked"),
            SignalRequest(target: .saga(id: "s-1"), signalID: "sig-1", name: "approval", payload: ["approved": true]),
            SignalRequest(
                target: .start(tenant: "acme", sagaType: "order-fulfillment", idempotencyKey: "order-o-1"),
                signalID: "sig-2", name: "approval"),
            StepCommandMessage(
                sagaID: "s-1", sagaType: "order-fulfillment", step: "charge-payment", action: .compensate,
                commandType: "payments.refund", idempotencyKey: "s-1:charge-payment:compensate",
                actionKey: "s-1:charge-payment:execute", attempt: 2, deadline: Self.time,
                payload: ["input": ["orderId": "o-1"], "result": ["chargeId": "c-9"]], replyTopic: "saga.replies"),
            StepReplyMessage(
                sagaID: "s-1",
                reply: StepReply(
                    step: "reserve-inventory", action: .execute, attempt: 1,
                    idempotencyKey: "s-1:reserve-inventory:execute", outcome: .success(result: ["reservation": "r-1"]))),
            StepReplyMessage(
                sagaID: "s-1",
                reply: StepReply(
                    step: "charge-payment", action: .execute, attempt: 3, idempotencyKey: "s-1:charge-payment:execute",
                    outcome: .failure(StepError(code: "CARD_DECLINED", message: "declined", retryable: false)))),
            {
                var event = SagaEventMessage(
                    SagaLifecycleEvent(
                        kind: .stepFailed, step: "charge-payment", attempt: 3,
                        error: StepError(code: "CARD_DECLINED", retryable: false), reason: "r", until: Self.time),
                    sagaID: "s-1", sagaType: "order-fulfillment", status: .compensating)
                event.conflict = false
                return event
            }(),
            SagaEventMessage(
                SignalOutcome(signalID: "sig-1", name: "approval", kind: .rejected, step: nil, reason: "finished"),
                sagaID: nil, sagaType: "order-fulfillment", status: nil),
            DeadLetterRecord(
                reason: "saga.start.v1: field sagaType: missing", type: "saga.start.v1", field: "sagaType",
                topic: "saga.requests", partition: 3, offset: 42, timestamp: Self.time, key: bytes("k"),
                headers: ["ce_id": "m-1"], value: bytes("{}")),
            DeadLetterRecord(
                reason: "the value is not UTF-8 text", topic: "saga.requests", partition: 0, offset: 7, key: nil,
                headers: [:], value: [0xFF, 0xFE, 0x00]),
        ]
        for body in bodies {
            try checkRoundTrip(body)
        }
    }

    func checkRoundTrip<Body: SagaMessageBody>(_ body: Body) throws {
        let message = SagaWire.encode(body, id: "id-1", source: "/sagad", time: Self.time, subject: "s-1", key: "s-1")
        #expect(message.headers["ce_type"] == Body.messageType.rawValue)
        #expect(message.headers["content-type"] == "application/json")
        #expect(message.headers["ce_time"] == "2026-12-03T18:19:24.123Z")
        let (attributes, decoded) = try SagaWire.decode(
            Body.self, headers: message.headers, value: bytes(message.value))
        #expect(decoded == body)
        #expect(
            attributes
                == CloudEventAttributes(
                    id: "id-1", type: Body.messageType.rawValue, source: "/sagad", time: Self.time, subject: "s-1"))
    }

    @Test("a dead-letter record keeps a value that is not text, in base64")
    func deadLetterBinary() {
        let record = DeadLetterRecord(
            reason: "x", topic: "t", partition: 0, offset: 0, key: nil, headers: [:], value: [0xFF, 0x00])
        #expect(record.value == nil)
        #expect(record.valueBase64 == "/wA=")
    }

    @Test("a command of the state machine becomes a step command with its keys and payload")
    func commandFromMachine() {
        let command = StepCommand(
            sagaID: "s-1", definitionName: "order-fulfillment", step: "charge-payment", action: .compensate,
            participant: "payments", commandType: "payments.refund", generation: 0, actionGeneration: 1, attempt: 1,
            deadline: Self.time, content: .compensate(input: ["orderId": "o-1"], result: ["chargeId": "c-9"]))
        let message = StepCommandMessage(command, replyTopic: "saga.replies")
        #expect(message.idempotencyKey == "s-1:charge-payment:compensate")
        #expect(message.actionKey == "s-1:charge-payment:execute:1")
        #expect(message.payload == ["input": ["orderId": "o-1"], "result": ["chargeId": "c-9"]])
        #expect(message.sagaType == "order-fulfillment")
        let reply = message.reply(.success(result: .emptyObject))
        #expect(reply.reply.idempotencyKey == message.idempotencyKey)
        #expect(reply.reply.attempt == 1 && reply.reply.action == .compensate && reply.sagaID == "s-1")
    }

    @Test("inbound messages decode to what they ask")
    func inbound() throws {
        let start = SagaWire.encode(
            StartSagaRequest(sagaType: "t", input: ["a": 1], idempotencyKey: "k"), id: "m-1", source: "/x", key: "k")
        let decoded = try SagaWire.decodeInbound(headers: start.headers, value: bytes(start.value))
        #expect(decoded.body == .start(StartSagaRequest(sagaType: "t", input: ["a": 1], idempotencyKey: "k")))
        #expect(decoded.attributes.id == "m-1")
        let command = SagaWire.encode(
            StepCommandMessage(
                sagaID: "s", sagaType: "t", step: "a", action: .execute, commandType: "c", idempotencyKey: "k",
                actionKey: "k", attempt: 1, deadline: Self.time, payload: .emptyObject, replyTopic: "r"),
            id: "m-2", source: "/x", key: "s")
        let error = wireError { _ = try SagaWire.decodeInbound(headers: command.headers, value: bytes(command.value)) }
        #expect(error?.type == "saga.step.command.v1")
        #expect(error?.description.contains("not a message for the orchestrator") == true)
    }

    @Test("structured content mode is read as well as binary mode")
    func structuredMode() throws {
        let value = """
            {"specversion":"1.0","id":"m-9","type":"saga.cancel.v1","source":"/ops",
             "time":"2026-12-03T18:19:24.123Z","datacontenttype":"application/json",
             "data":{"sagaId":"s-1","reason":"duplicate order"}}
            """
        let message = try SagaWire.decodeInbound(
            headers: ["content-type": "application/cloudevents+json; charset=utf-8"], value: bytes(value))
        #expect(message.body == .cancel(CancelSagaRequest(sagaID: "s-1", reason: "duplicate order")))
        #expect(message.attributes.id == "m-9" && message.attributes.source == "/ops")
        #expect(message.attributes.time == Self.time)
    }
}

@Suite("Decoding errors name the field")
struct DecodingErrorTests {
    func error(_ type: SagaMessageType, _ value: String, headers: [String: String]? = nil) -> WireError? {
        wireError {
            _ = try SagaWire.decodeInbound(headers: headers ?? SagaProtocolTests.headers(type), value: bytes(value))
        }
    }

    @Test(
        "a body with a field missing, of the wrong type or out of range",
        arguments: [
            (SagaMessageType.start, #"{"input":{},"idempotencyKey":"k"}"#, "sagaType", "missing"),
            (.start, #"{"sagaType":"t","input":{}}"#, "idempotencyKey", "missing"),
            (.start, #"{"sagaType":"t","idempotencyKey":""}"#, "idempotencyKey", "must not be empty"),
            (.start, #"{"sagaType":7,"idempotencyKey":"k"}"#, "sagaType", "expected a string, found integer"),
            (.start, #"{"sagaType":"t","idempotencyKey":"k","version":0}"#, "version", "must be 1 or more"),
            (.start, #"{"sagaType":"t","idempotencyKey":"k","priority":1.5}"#, "priority", "expected an integer"),
            (.cancel, #"{"reason":"x"}"#, "sagaId", "missing"),
            (.signal, #"{"signalId":"s","name":"approval"}"#, "sagaId", "name the saga by sagaId"),
            (.signal, #"{"sagaType":"t","signalId":"s","name":"a"}"#, "idempotencyKey", "missing"),
            (.signal, #"{"sagaId":"s-1","name":"a"}"#, "signalId", "missing"),
            (
                .stepReply,
                #"{"sagaId":"s","step":"a","action":"undo","attempt":1,"idempotencyKey":"k","outcome":"success"}"#,
                "action", #"expected one of "execute", "compensate", found "undo""#
            ),
            (
                .stepReply,
                #"{"sagaId":"s","step":"a","action":"execute","attempt":"1","idempotencyKey":"k","outcome":"success"}"#,
                "attempt", "expected an integer, found string"
            ),
            (
                .stepReply,
                #"{"sagaId":"s","step":"a","action":"execute","attempt":1,"idempotencyKey":"k","outcome":"failure"}"#,
                "error", "missing"
            ),
            (
                .stepReply,
                #"{"sagaId":"s","step":"a","action":"execute","attempt":1,"idempotencyKey":"k","outcome":"failure","error":{"code":"X"}}"#,
                "error.retryable", "missing"
            ),
            (
                .stepReply,
                #"{"sagaId":"s","step":"a","action":"execute","attempt":1,"idempotencyKey":"k","outcome":"maybe"}"#,
                "outcome", "expected one of"
            ),
        ] as [(SagaMessageType, String, String, String)])
    func fieldErrors(type: SagaMessageType, value: String, field: String, reason: String) {
        let error = error(type, value)
        #expect(error?.type == type.rawValue)
        #expect(error?.field == field)
        #expect(error?.reason.contains(reason) == true, "\(String(describing: error))")
        #expect(error?.description.hasPrefix("\(type.rawValue): field \(field): ") == true)
    }

    @Test("a missing or wrong CloudEvents header is named")
    func headerErrors() {
        var missingID = headers(.start)
        missingID["ce_id"] = nil
        #expect(error(.start, "{}", headers: missingID)?.field == "header ce_id")
        var oldVersion = headers(.start)
        oldVersion["ce_specversion"] = "0.3"
        #expect(error(.start, "{}", headers: oldVersion)?.field == "header ce_specversion")
        var badTime = headers(.start)
        badTime["ce_time"] = "yesterday"
        #expect(error(.start, "{}", headers: badTime)?.field == "header ce_time")
        var xml = headers(.start)
        xml["content-type"] = "application/xml"
        #expect(error(.start, "{}", headers: xml)?.field == "header content-type")
        #expect(error(.start, "{}", headers: [:])?.field == "header ce_specversion")
    }

    @Test("a value that is not there, not text or not JSON is refused as a whole")
    func valueErrors() {
        let tombstone = wireError { _ = try SagaWire.decodeInbound(headers: headers(.start), value: nil) }
        #expect(tombstone?.reason == "no value (a tombstone)")
        let binary = wireError { _ = try SagaWire.decodeInbound(headers: headers(.start), value: [0xC3, 0x28]) }
        #expect(binary?.reason == "the value is not UTF-8 text")
        let notJSON = error(.start, #"{"sagaType": "#)
        #expect(notJSON?.reason.hasPrefix("the value is not JSON: ") == true)
        #expect(notJSON?.field == nil && notJSON?.type == "saga.start.v1")
        let array = error(.start, "[1]")
        #expect(array?.reason == "expected an object, found array")
        let deep = error(.start, String(repeating: "[", count: 300) + String(repeating: "]", count: 300))
        #expect(deep?.reason.hasPrefix("the value is not JSON") == true)
    }

    @Test("an unknown type or version is refused, naming the types the orchestrator reads")
    func unknownType() {
        var future = headers(.start)
        future["ce_type"] = "saga.start.v9"
        let error = error(.start, "{}", headers: future)
        #expect(error?.type == "saga.start.v9")
        #expect(error?.description.contains("saga.start.v1") == true)
    }
}
