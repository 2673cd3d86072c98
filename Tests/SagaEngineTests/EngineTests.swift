import Foundation
import Kafka
import SagaCore
import SagaEngine
import SagaProtocol
import Synchronization
import TestSupport
import Testing

/// The engine end to end inside one process: Kafka in (librdkafka's mock cluster), PostgreSQL
/// state, Kafka out, with the example `order-fulfillment` saga and participants played by the test.
@Suite("Saga engine", .enabled(if: StoreTestEnvironment.enabled), .timeLimit(.minutes(3)))
struct EngineTests {
    func start(_ key: String, input: JSONValue = ["orderId": "o-1", "amount": 4200]) -> StartSagaRequest {
        StartSagaRequest(sagaType: "order-fulfillment", input: input, idempotencyKey: key)
    }

    func approval(_ sagaID: String, approved: Bool) -> SignalRequest {
        SignalRequest(
            target: .saga(id: sagaID), signalID: "approval-\(sagaID)", name: "approval",
            payload: ["approved": .bool(approved)])
    }

    @Test("a saga completes: each step's command in order, the approval, then saga.completed")
    func completes() async throws {
        try await EngineHarness.with { harness in
            try await harness.send(start("order-1"))
            let started = try await harness.event("saga.started", key: "order-1")
            let id = try #require(started.sagaID)
            try await harness.event("step.waiting-for-signal", key: id)
            try await harness.send(approval(id, approved: true))
            let completed = try await harness.event("saga.completed", key: id)
            #expect(completed.status == .completed)
            let commands = harness.commands(of: id)
            #expect(commands.map(\.commandType) == ["inventory.reserve", "payments.charge", "shipping.ship"])
            #expect(commands.allSatisfy { $0.action == .execute && $0.attempt == 1 && $0.replyTopic == "saga.replies" })
            #expect(commands.map(\.idempotencyKey) == commands.map { "\(id):\($0.step):execute" })
            // The charge carries the input and the reservation's result.
            let charge = try #require(commands.first { $0.step == "charge-payment" })
            #expect(charge.payload["input"] == ["orderId": "o-1", "amount": 4200])
            #expect(charge.payload["steps"]?["reserve-inventory"] == ["done": "inventory.reserve"])
        }
    }

    @Test("a declined payment compensates the reservation; the saga ends compensated")
    func paymentDeclined() async throws {
        try await EngineHarness.with { harness in
            harness.behaviour.withLock {
                $0 = { command in
                    command.commandType == "payments.charge"
                        ? .failure(StepError(code: "CARD_DECLINED", message: "declined", retryable: false))
                        : .success(result: ["done": .string(command.commandType)])
                }
            }
            try await harness.send(start("order-2"))
            let id = try #require(try await harness.event("saga.started", key: "order-2").sagaID)
            let compensated = try await harness.event("saga.compensated", key: id)
            #expect(compensated.status == .compensated)
            let commands = harness.commands(of: id)
            #expect(
                commands.map { "\($0.commandType)/\($0.action.rawValue)" } == [
                    "inventory.reserve/execute", "payments.charge/execute", "inventory.release/compensate",
                ])
            let release = try #require(commands.last)
            #expect(release.actionKey == "\(id):reserve-inventory:execute")
            #expect(release.payload["result"] == ["done": "inventory.reserve"])
            let failed = try await harness.event("step.failed", key: id, step: "charge-payment")
            #expect(failed.error?.code == "CARD_DECLINED")
        }
    }

    @Test("a manager who says no: the payment is refunded, then the stock released, in that order")
    func approvalRejected() async throws {
        try await EngineHarness.with { harness in
            try await harness.send(start("order-3"))
            let id = try #require(try await harness.event("saga.started", key: "order-3").sagaID)
            try await harness.event("step.waiting-for-signal", key: id)
            try await harness.send(approval(id, approved: false))
            try await harness.event("saga.compensated", key: id)
            #expect(
                harness.commands(of: id).map(\.commandType) == [
                    "inventory.reserve", "payments.charge", "payments.refund", "inventory.release",
                ])
            let consumed = try await harness.event("signal.consumed", key: id)
            #expect(consumed.signalName == "approval")
        }
    }

    @Test("an approval sent before the saga started is kept, and used when the saga waits for it")
    func signalBeforeStart() async throws {
        try await EngineHarness.with { harness in
            try await harness.send(
                SignalRequest(
                    target: .start(tenant: "", sagaType: "order-fulfillment", idempotencyKey: "order-4"),
                    signalID: "early-approval", name: "approval", payload: ["approved": true]))
            try await harness.event("signal.buffered", key: "order-4")
            try await harness.send(start("order-4"))
            let id = try #require(try await harness.event("saga.started", key: "order-4").sagaID)
            try await harness.event("saga.completed", key: id)
            #expect(harness.commands(of: id).count == 3)
        }
    }

    @Test("a repeated start answers with the saga the first one started, and starts nothing")
    func duplicateStart() async throws {
        try await EngineHarness.with { harness in
            try await harness.send(start("order-5"))
            let id = try #require(try await harness.event("saga.started", key: "order-5").sagaID)
            try await harness.send(start("order-5"))
            let duplicate = try await harness.event("saga.start-duplicate", key: "order-5")
            #expect(duplicate.sagaID == id)
            #expect(duplicate.idempotencyKey == "order-5")
            try await harness.event("step.waiting-for-signal", key: id)
            #expect(
                harness.events.withLock { $0.filter { $0.event == "saga.started" && $0.idempotencyKey == "order-5" } }
                    .count == 1)
        }
    }

    @Test("replies sent twice, and a reply for a saga that does not exist, change nothing")
    func repeatedReplies() async throws {
        try await EngineHarness.with { harness in
            try await harness.send(start("order-6"))
            let id = try #require(try await harness.event("saga.started", key: "order-6").sagaID)
            try await harness.event("step.waiting-for-signal", key: id)
            // Every reply again, under a new message id (the inbox does not catch these).
            for command in harness.commands(of: id) {
                try await harness.send(command.reply(.success(result: ["again": true])))
            }
            try await harness.send(
                StepReplyMessage(
                    sagaID: "no-such-saga",
                    reply: StepReply(
                        step: "ship", action: .execute, attempt: 1, idempotencyKey: "no-such-saga:ship:execute",
                        outcome: .success(result: .emptyObject))))
            try await harness.send(approval(id, approved: true))
            try await harness.event("saga.completed", key: id)
            #expect(
                harness.commands(of: id).map(\.commandType) == [
                    "inventory.reserve", "payments.charge", "shipping.ship",
                ])
            #expect(harness.events(of: id).filter { $0.event == "step.completed" }.count == 4)
        }
    }

    @Test("a cancel compensates what was done, and the saga ends cancelled")
    func cancel() async throws {
        try await EngineHarness.with { harness in
            try await harness.send(start("order-7"))
            let id = try #require(try await harness.event("saga.started", key: "order-7").sagaID)
            try await harness.event("step.waiting-for-signal", key: id)
            try await harness.send(CancelSagaRequest(sagaID: id, reason: "customer cancelled"))
            let cancelled = try await harness.event("saga.cancelled", key: id)
            #expect(cancelled.status == .cancelled)
            #expect(harness.commands(of: id).suffix(2).map(\.commandType) == ["payments.refund", "inventory.release"])
        }
    }

    @Test("a malformed message lands on the dead-letter topic with the reason; its partition keeps flowing")
    func deadLetter() async throws {
        try await EngineHarness.with { harness in
            let topic = harness.settings.topics.requests
            // The same key as the start after it: the same partition.
            try await harness.sendRaw(topic: topic, key: "order-8", headers: [:], value: "not json at all")
            var headers = CloudEventAttributes(id: "bad-1", type: "saga.start.v1", source: "/tests").headers
            try await harness.sendRaw(
                topic: topic, key: "order-8", headers: headers, value: #"{"sagaType":"order-fulfillment"}"#)
            headers["ce_id"] = "bad-2"
            try await harness.sendRaw(
                topic: topic, key: "order-8", headers: headers,
                value: #"{"sagaType":"no-such-saga","idempotencyKey":"order-8"}"#)
            try await harness.send(start("order-8"))
            let id = try #require(try await harness.event("saga.started", key: "order-8").sagaID)
            try await harness.event("step.waiting-for-signal", key: id)
            let records = try await withDeadline(.seconds(30), "two dead-letter records") {
                while true {
                    let records = harness.deadLetters.withLock { $0 }
                    if records.count >= 2 { return records }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(records.map(\.reason).contains { $0.contains("header ce_specversion: missing") })
            let missingKey = try #require(records.first { $0.field == "idempotencyKey" })
            #expect(missingKey.reason == "saga.start.v1: field idempotencyKey: missing")
            #expect(missingKey.topic == topic && missingKey.key == "order-8")
            #expect(missingKey.value == #"{"sagaType":"order-fulfillment"}"#)
            // A start for a saga type nobody defined is answered, not dead-lettered.
            let rejected = try await harness.event("saga.request-rejected", key: "order-8")
            #expect(rejected.reason == "no saga definition no-such-saga is loaded")
        }
    }
}
