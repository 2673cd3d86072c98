import SagaCore

/// A five-step saga: reserve → charge → approve (signal) → ship → notify.
public let definition = SagaDefinition(
    name: "order-fulfillment", version: 1, deadline: .hours(1),
    steps: [
        StepDefinition(
            name: "reserve",
            kind: .command(
                CommandStep(participant: "inventory", command: "inventory.reserve", compensation: "inventory.release"))),
        StepDefinition(
            name: "charge",
            kind: .command(
                CommandStep(participant: "payments", command: "payments.charge", compensation: "payments.refund"))),
        StepDefinition(name: "approve", kind: .signal(SignalStep(signals: ["approval"], timeout: .hours(24)))),
        StepDefinition(
            name: "ship", isPivot: true, kind: .command(CommandStep(participant: "shipping", command: "shipping.ship"))),
        StepDefinition(name: "notify", kind: .command(CommandStep(participant: "mail", command: "mail.send"))),
    ])

public let input: JSONValue = [
    "orderId": "o-1", "customer": "c-42", "amount": 12_50, "items": [["sku": "A-1", "qty": 2]],
]
public let now = SagaTimestamp(millisecondsSinceEpoch: 1_700_000_000_000)

public let sagaID = "0f8fad5b-d9cb-469f-a165-70867728950e"

public func reply(_ step: String, _ outcome: StepReply.Outcome, action: StepAction = .execute) -> SagaEvent {
    .reply(
        StepReply(
            step: step, action: action, attempt: 1,
            idempotencyKey: IdempotencyKey.make(sagaID: sagaID, step: step, action: action), outcome: outcome))
}

/// The events of a saga that completes: four replies and a signal.
public let happyEvents: [SagaEvent] = [
    reply("reserve", .success(result: ["reservation": "r-1"])),
    reply("charge", .success(result: ["payment": "p-1"])),
    .signal(SignalDelivery(id: "s-1", name: "approval", payload: ["approved": true])),
    reply("ship", .success(result: ["tracking": "t-1"])),
    reply("notify", .success(result: nil)),
]

/// The events of a saga that fails at its second step and compensates the first.
public let compensationEvents: [SagaEvent] = [
    reply("reserve", .success(result: ["reservation": "r-1"])),
    reply("charge", .failure(StepError(code: "CARD_DECLINED", retryable: false))),
    reply("reserve", .success(result: nil), action: .compensate),
]

/// Starts a saga and applies `events`: 1 + `events.count` transitions.
public func run(_ events: [SagaEvent]) -> SagaInstance {
    var saga = SagaMachine.start(id: sagaID, definition: definition, input: input, now: now).saga
    for event in events {
        _ = saga.apply(event, definition: definition, now: now)
    }
    return saga
}
