import Benchmark
import SagaCore

/// A five-step saga: reserve → charge → approve (signal) → ship → notify.
let definition = SagaDefinition(
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

let input: JSONValue = ["orderId": "o-1", "customer": "c-42", "amount": 12_50, "items": [["sku": "A-1", "qty": 2]]]
let now = SagaTimestamp(millisecondsSinceEpoch: 1_700_000_000_000)

let sagaID = "0f8fad5b-d9cb-469f-a165-70867728950e"

func reply(_ step: String, _ outcome: StepReply.Outcome, action: StepAction = .execute) -> SagaEvent {
    .reply(
        StepReply(
            step: step, action: action, attempt: 1,
            idempotencyKey: IdempotencyKey.make(sagaID: sagaID, step: step, action: action), outcome: outcome))
}

/// The events of a saga that completes: four replies and a signal.
let happyEvents: [SagaEvent] = [
    reply("reserve", .success(result: ["reservation": "r-1"])),
    reply("charge", .success(result: ["payment": "p-1"])),
    .signal(SignalDelivery(id: "s-1", name: "approval", payload: ["approved": true])),
    reply("ship", .success(result: ["tracking": "t-1"])),
    reply("notify", .success(result: nil)),
]

/// The events of a saga that fails at its second step and compensates the first.
let compensationEvents: [SagaEvent] = [
    reply("reserve", .success(result: ["reservation": "r-1"])),
    reply("charge", .failure(StepError(code: "CARD_DECLINED", retryable: false))),
    reply("reserve", .success(result: nil), action: .compensate),
]

/// Starts a saga and applies `events`: 1 + `events.count` transitions.
func run(_ events: [SagaEvent]) -> SagaInstance {
    var saga = SagaMachine.start(id: sagaID, definition: definition, input: input, now: now).saga
    for event in events {
        blackHole(saga.apply(event, definition: definition, now: now))
    }
    return saga
}

let benchmarks: @Sendable () -> Void = {
    // Time is measured over 1,000 sagas per sample so the harness's own cost per sample is noise;
    // allocations are counted in a separate run, since counting them slows every allocation.
    let timed = Benchmark.Configuration(
        metrics: [.wallClock, .throughput], warmupIterations: 10, scalingFactor: .kilo, maxDuration: .seconds(3),
        maxIterations: 100_000)
    let counted = Benchmark.Configuration(
        metrics: [.mallocCountTotal], warmupIterations: 10, maxDuration: .seconds(1), maxIterations: 1_000)

    // One saga that completes: 6 transitions (start, four replies, a signal).
    Benchmark("completing saga (6 transitions) x1000", configuration: timed) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(run(happyEvents)) }
    }
    Benchmark("completing saga (6 transitions), allocations", configuration: counted) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(run(happyEvents)) }
    }

    // The fixed cost of one transition: an event that changes nothing (a timer no longer set).
    let waiting = run(Array(happyEvents.prefix(1)))
    let stale = SagaEvent.timerFired(timerID: "no-such-timer")
    Benchmark("one transition that changes nothing x1000", configuration: timed) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(SagaMachine.apply(stale, to: waiting, definition: definition, now: now))
        }
    }

    // One reply that completes a step and starts the next: the most common transition.
    let replyEvent = happyEvents[1]
    Benchmark("one reply that starts the next step x1000", configuration: timed) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(SagaMachine.apply(replyEvent, to: waiting, definition: definition, now: now))
        }
    }

    // One saga that fails at its second step and compensates the first: 4 transitions.
    Benchmark("compensating saga (4 transitions) x1000", configuration: timed) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(run(compensationEvents)) }
    }
    Benchmark("compensating saga (4 transitions), allocations", configuration: counted) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(run(compensationEvents)) }
    }
}
