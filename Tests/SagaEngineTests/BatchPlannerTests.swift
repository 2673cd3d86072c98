import Foundation
import SagaCore
import SagaDefinitions
import SagaEngine
import SagaProtocol
import SagaStore
import Testing

/// The engine's pure core, without a database or a broker: what a batch writes for its inputs.
@Suite("Batch planner")
struct BatchPlannerTests {
    static let now = SagaTimestamp(millisecondsSinceEpoch: 1_796_321_964_000)
    static let definitions = DefinitionRegistry(
        try! DefinitionLoader.loadDirectory(EngineHarness.examples).map(\.definition))

    /// A planner whose ids are `id-1`, `id-2`, … in order.
    func planner(_ definitions: DefinitionRegistry = definitions) -> BatchPlanner {
        let counter = Counter()
        return BatchPlanner(definitions: definitions, settings: EngineSettings(), now: Self.now) {
            "id-\(counter.next())"
        }
    }

    final class Counter: @unchecked Sendable {
        var value = 0
        func next() -> Int {
            value += 1
            return value
        }
    }

    func input(_ request: EngineInput.Request, _ id: String) -> EngineInput {
        EngineInput(request: request, messageID: "/tests \(id)")
    }

    func start(_ key: String) -> EngineInput.Request {
        .start(StartSagaRequest(sagaType: "order-fulfillment", input: ["orderId": .string(key)], idempotencyKey: key))
    }

    func events(_ messages: [OutboxMessage]) throws -> [SagaEventMessage] {
        try messages.filter { $0.topic == "saga.events" }.map { message in
            try SagaEventMessage(json: JSONValue(parsing: message.payload))
        }
    }

    @Test("a start writes the saga, the first command to its participant, and saga.started with the key")
    func startWrites() throws {
        let plan = planner().plan(BatchContext(inputs: [input(start("o-1"), "m-1")]))
        let write = try #require(plan.writes.sagas.first)
        #expect(plan.writes.sagas.count == 1)
        #expect(write.record.id == "id-1" && write.record.startKey == "o-1")
        let command = try #require(write.outbox.first { $0.topic == "saga.participant.inventory" })
        #expect(command.key == "id-1")
        #expect(command.headers["ce_type"] == "saga.step.command.v1")
        #expect(command.headers["ce_id"] == "id-1:reserve-inventory:execute#1")
        let started = try events(write.outbox).first { $0.event == "saga.started" }
        #expect(started?.idempotencyKey == "o-1" && started?.sagaID == "id-1")
        let eventCount = try events(write.outbox).count
        #expect(write.history.count == eventCount)
        #expect(plan.started == ["order-fulfillment": 1])
    }

    @Test("the same start twice in one batch starts one saga; the second is answered as a duplicate")
    func duplicateInBatch() throws {
        let plan = planner().plan(BatchContext(inputs: [input(start("o-1"), "m-1"), input(start("o-1"), "m-2")]))
        #expect(plan.writes.sagas.count == 1)
        let names = try events(plan.writes.sagas[0].outbox).map(\.event)
        #expect(names.filter { $0 == "saga.started" }.count == 1)
        #expect(names.contains("saga.start-duplicate"))
    }

    @Test("a signal before its start in the same batch is used by the start, not kept as pending")
    func signalBeforeStartInBatch() throws {
        let signal = EngineInput.Request.signal(
            SignalRequest(
                target: .start(tenant: "", sagaType: "order-fulfillment", idempotencyKey: "o-1"), signalID: "s-1",
                name: "approval", payload: ["approved": true]))
        let plan = planner().plan(BatchContext(inputs: [input(signal, "m-1"), input(start("o-1"), "m-2")]))
        #expect(plan.writes.pendSignals.isEmpty)
        let saga = try #require(plan.writes.sagas.first?.record.instance)
        #expect(saga.bufferedSignals.map(\.id) == ["s-1"])
        let buffered = try events(plan.writes.outbox).first
        #expect(buffered?.event == "signal.buffered" && buffered?.idempotencyKey == "o-1")
    }

    @Test("a signal for a start not seen yet is kept as pending, for its time to live")
    func signalPending() throws {
        let signal = EngineInput.Request.signal(
            SignalRequest(
                target: .start(tenant: "", sagaType: "order-fulfillment", idempotencyKey: "o-9"), signalID: "s-9",
                name: "approval"))
        let plan = planner().plan(BatchContext(inputs: [input(signal, "m-1")]))
        let pending = try #require(plan.writes.pendSignals.first)
        #expect(pending.target == StartKey(sagaType: "order-fulfillment", key: "o-9"))
        #expect(pending.expiresAt == Self.now + .hours(24))
        #expect(plan.writes.sagas.isEmpty)
    }

    @Test("requests for sagas that do not exist are answered or noted, never a crash")
    func unknownSagas() throws {
        let reply = StepReplyMessage(
            sagaID: "nobody",
            reply: StepReply(
                step: "ship", action: .execute, attempt: 1, idempotencyKey: "nobody:ship:execute",
                outcome: .success(result: .emptyObject)))
        let plan = planner().plan(
            BatchContext(inputs: [
                input(.cancel(CancelSagaRequest(sagaID: "nobody")), "m-1"),
                input(.signal(SignalRequest(target: .saga(id: "nobody"), signalID: "s", name: "approval")), "m-2"),
                input(.reply(reply), "m-3"),
                input(
                    .start(StartSagaRequest(sagaType: "no-such-type", input: .emptyObject, idempotencyKey: "k")), "m-4"),
            ]))
        #expect(plan.writes.sagas.isEmpty)
        #expect(
            try events(plan.writes.outbox).map(\.event) == [
                "saga.request-rejected", "signal.rejected", "saga.request-rejected",
            ])
        #expect(plan.notes.map(\.kind) == [.replyForUnknownSaga])
    }

    @Test("a saga whose definition is not loaded: its input is handed back, its due timers put off a minute")
    func definitionNotLoaded() throws {
        let first = planner().plan(BatchContext(inputs: [input(start("o-1"), "m-1")]))
        let record = try #require(first.writes.sagas.first?.record)
        let without = planner(DefinitionRegistry())
        let reply = StepReplyMessage(
            sagaID: record.id,
            reply: StepReply(
                step: "reserve-inventory", action: .execute, attempt: 1,
                idempotencyKey: "\(record.id):reserve-inventory:execute", outcome: .success(result: .emptyObject)))
        let plan = without.plan(BatchContext(inputs: [input(.reply(reply), "m-2")], sagas: [record.id: record]))
        #expect(plan.unapplied.map(\.input.messageID) == ["/tests m-2"])
        #expect(plan.writes.sagas.isEmpty)

        let timer = try #require(record.instance.timers.first)
        let later = BatchPlanner(
            definitions: DefinitionRegistry(), settings: EngineSettings(), now: timer.dueAt, makeID: { "x" })
        let timers = later.plan(
            TimerBatchContext(
                timers: [DueTimer(sagaID: record.id, timerID: timer.id, dueAt: timer.dueAt)],
                sagas: [record.id: record]))
        let written = try #require(timers.writes.sagas.first?.record.instance.timers.first)
        #expect(written.dueAt == timer.dueAt + .minutes(1))
        #expect(written.id == timer.id)
    }

    @Test("a due timer fires through the machine: the attempt timed out, the step is retried")
    func timerFires() throws {
        let first = planner().plan(BatchContext(inputs: [input(start("o-1"), "m-1")]))
        let record = try #require(first.writes.sagas.first?.record)
        let timer = try #require(record.instance.timers.first)
        let later = BatchPlanner(definitions: Self.definitions, settings: EngineSettings(), now: timer.dueAt) { "e" }
        let plan = later.plan(
            TimerBatchContext(
                timers: [DueTimer(sagaID: record.id, timerID: timer.id, dueAt: timer.dueAt)],
                sagas: [record.id: record]))
        let names = try events(try #require(plan.writes.sagas.first).outbox).map(\.event)
        #expect(names.contains("step.timed-out"))
    }
}
