import Foundation
import SagaCore
import SagaProtocol
import Synchronization
import TestSupport
import Testing

/// The order-fulfillment saga with short timeouts, so that timeouts and retries happen within a
/// test.
let orderFulfillment = """
    name: order-fulfillment
    version: 1
    steps:
      - name: reserve-inventory
        command:
          participant: inventory
          type: inventory.reserve
          compensation: inventory.release
          timeout: 10s
          retry: {maxAttempts: 3, backoff: fixed, initial: 200ms}
      - name: charge-payment
        command:
          participant: payments
          type: payments.charge
          compensation: payments.refund
          timeout: 4s
          compensationTimeout: 30s
          retry: {maxAttempts: 2, backoff: fixed, initial: 200ms}
          nonRetryableErrors: [PAYMENTS_REFUSED]
      - name: manager-approval
        signal:
          name: approval
          timeout: 5m
          onTimeout: compensate
          failWhen: signals.approval.approved == false
      - name: ship
        pivot: true
        command:
          participant: shipping
          type: shipping.ship
          timeout: 10s
          retry: {maxAttempts: 5, backoff: fixed, initial: 200ms}
    """

@Suite(
    "End to end: sagad and the participants as processes", .serialized,
    .enabled(if: StoreTestEnvironment.enabled), .timeLimit(.minutes(5)))
struct EndToEndTests {
    @Test("the order-fulfillment saga over Kafka: completion, failures, timeouts, signals, cancel, bad input")
    func scenarios() async throws {
        try await EndToEnd.with(definitions: ["order-fulfillment.yaml": orderFulfillment]) { e2e in
            try e2e.startSagad()
            // Every participant sends every reply twice: the orchestrator must not mind.
            try e2e.startParticipants([
                "inventory": ["REPLY_TWICE": "1"],
                "payments": [
                    "REPLY_TWICE": "1", "FAIL_COMMANDS": "payments.charge", "FAIL_WHEN": "orderId=declined",
                    "SLOW_MS": "15000", "SLOW_WHEN": "orderId=slow",
                ],
                "shipping": ["REPLY_TWICE": "1"],
            ])

            // sagad is ready once the engine runs and the database answers.
            try await eventually("sagad to be ready", timeout: .seconds(60)) {
                await e2e.get("/health/ready")?.status == 200
            }
            #expect(await e2e.get("/health/live")?.status == 200)

            // 1. A saga completes.
            try await e2e.start("order-ok", input: ["orderId": "ok", "amount": 1200])
            let ok = try await e2e.sagaID("order-ok")
            try await e2e.event("step.waiting-for-signal", of: ok)
            try await e2e.approve("order-ok")
            try await e2e.event("saga.completed", of: ok)
            #expect(e2e.timeline(of: ok) == ["reserve-inventory", "charge-payment", "ship"], "completed saga")

            // 2. A failing step compensates the earlier ones in reverse order.
            try await e2e.start("order-declined", input: ["orderId": "declined", "amount": 99])
            let declined = try await e2e.sagaID("order-declined")
            try await e2e.event("saga.compensated", of: declined)
            #expect(
                e2e.timeline(of: declined) == ["reserve-inventory", "charge-payment", "-reserve-inventory"],
                "declined payment")

            // 3. A step that times out is retried, then compensated, itself included.
            try await e2e.start("order-slow", input: ["orderId": "slow", "amount": 5])
            let slow = try await e2e.sagaID("order-slow")
            try await e2e.event("saga.compensated", of: slow)
            let timedOut = e2e.events(of: slow).filter { $0.event == "step.timed-out" && $0.step == "charge-payment" }
            #expect(timedOut.count == 2, "each of the charge's two attempts timed out")
            #expect(
                Array(e2e.timeline(of: slow).suffix(2)) == ["-charge-payment", "-reserve-inventory"],
                "the timed-out charge is compensated, then the reservation")

            // 4. An approval that arrives before the saga waits is kept and used.
            try await e2e.approve("order-early")
            try await e2e.start("order-early", input: ["orderId": "early", "amount": 10])
            let early = try await e2e.sagaID("order-early")
            try await e2e.event("saga.completed", of: early)

            // 5. A manager who says no: compensation.
            try await e2e.start("order-rejected", input: ["orderId": "rejected", "amount": 10])
            let rejected = try await e2e.sagaID("order-rejected")
            try await e2e.event("step.waiting-for-signal", of: rejected)
            try await e2e.approve("order-rejected", approved: false)
            try await e2e.event("saga.compensated", of: rejected)
            #expect(Array(e2e.timeline(of: rejected).suffix(2)) == ["-charge-payment", "-reserve-inventory"])

            // 6. A repeated start returns the same saga id.
            try await e2e.start("order-ok", input: ["orderId": "ok", "amount": 1200])
            let duplicate = try await e2e.event("saga.start-duplicate", of: "order-ok")
            #expect(duplicate.sagaID == ok)

            // 7. A cancel compensates.
            try await e2e.start("order-cancelled", input: ["orderId": "cancelled", "amount": 10])
            let cancelled = try await e2e.sagaID("order-cancelled")
            try await e2e.event("step.waiting-for-signal", of: cancelled)
            try await e2e.send(
                CancelSagaRequest(sagaID: cancelled, reason: "customer changed their mind"),
                topic: e2e.topics.requests, key: cancelled)
            try await e2e.event("saga.cancelled", of: cancelled)

            // 8. A malformed message goes to the dead-letter topic; its partition keeps flowing.
            try await e2e.sendRaw(topic: e2e.topics.requests, key: "order-after-bad", headers: [:], value: "{oops")
            try await e2e.start("order-after-bad", input: ["orderId": "after-bad", "amount": 10])
            let afterBad = try await e2e.sagaID("order-after-bad")
            try await e2e.event("step.waiting-for-signal", of: afterBad)
            let record = try await withDeadline(.seconds(30), "the dead-letter record") {
                while true {
                    if let record = e2e.deadLetters.withLock({ $0.first }) { return record }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(record.value == "{oops" && record.reason.contains("ce_specversion"))

            // Replies twice, and duplicates everywhere: each effect happened once. Shipped: ok and
            // early; charged: all but declined; refunded: slow, rejected and cancelled; released:
            // declined too.
            #expect(try await e2e.database.count("SELECT count(*) FROM shipping_shipments") == 2)
            #expect(try await e2e.database.count("SELECT count(*) FROM payments_charges") == 6)
            #expect(try await e2e.database.count("SELECT count(*) FROM payments_charges WHERE refunded") == 3)
            #expect(try await e2e.database.count("SELECT count(*) FROM inventory_reservations") == 7)
            #expect(try await e2e.database.count("SELECT count(*) FROM inventory_reservations WHERE released") == 4)

            // The metrics say what happened.
            let metrics = await e2e.get("/metrics")?.body ?? ""
            #expect(metrics.contains(#"saga_started_total{type="order-fulfillment"} 7"#), "\(metrics.prefix(2000))")
            #expect(metrics.contains(#"saga_finished_total{type="order-fulfillment",status="completed"} 2"#))
            #expect(metrics.contains("saga_dead_letters_total 1"))

            // A graceful stop exits 0.
            #expect(e2e.stopSagad() == 0)
        }
    }

    @Test("a bad definition stops sagad at start, naming the file, the step and the field")
    func badDefinition() async throws {
        let bad = orderFulfillment.replacingOccurrences(of: "timeout: 4s", with: "timeout: soon")
        try await EndToEnd.with(definitions: ["order-fulfillment.yaml": bad]) { e2e in
            try e2e.startSagad()
            #expect(try await e2e.sagadExit() == 78)
            let log = try String(contentsOf: e2e.directory.appendingPathComponent("sagad.log"), encoding: .utf8)
            #expect(log.contains("order-fulfillment.yaml"), "\(log)")
            #expect(log.contains("charge-payment"), "\(log)")
            #expect(log.contains("timeout"), "\(log)")
        }
    }

    @Test("sagad killed with SIGKILL mid-saga and restarted: every saga finishes, each effect once")
    func killedAndRestarted() async throws {
        // Attempt timeouts longer than sagad's absence: a restarted sagad gets its partitions
        // only once the group has given up on the killed member (its session timeout, 6 s, and
        // on Tansu a first assignment delayed by half of it), and an attempt whose reply waits
        // unread meanwhile times out, by design (its timer is due; the late reply is recorded
        // and the saga compensates). What this test checks is that every saga completes, each
        // effect once, not how timeouts race a restart.
        let patient = orderFulfillment.replacingOccurrences(of: "timeout: 4s", with: "timeout: 60s")
            .replacingOccurrences(of: "timeout: 10s", with: "timeout: 60s")
        try await EndToEnd.with(definitions: ["order-fulfillment.yaml": patient]) { e2e in
            try e2e.startSagad()
            try e2e.startParticipants()
            let keys = (1...20).map { "order-crash-\($0)" }
            for key in keys { try await e2e.start(key, input: ["orderId": .string(key), "amount": 100]) }
            // Some sagas are under way when sagad dies.
            try await eventually("five sagas to wait for approval", timeout: .seconds(90)) {
                e2e.events.withLock { $0.filter { $0.event == "step.waiting-for-signal" }.count >= 5 }
            }
            e2e.killSagad()
            // The approvals come while sagad is down.
            for key in keys { try await e2e.approve(key) }
            try e2e.startSagad()
            for key in keys {
                let id = try await e2e.sagaID(key, timeout: .seconds(120))
                try await e2e.event("saga.completed", of: id, timeout: .seconds(120))
            }
            #expect(try await e2e.database.count("SELECT count(*) FROM inventory_reservations") == 20)
            #expect(try await e2e.database.count("SELECT count(*) FROM payments_charges") == 20)
            #expect(try await e2e.database.count("SELECT count(*) FROM shipping_shipments") == 20)
            #expect(try await e2e.database.count("SELECT count(*) FROM sagas WHERE status = 'completed'") == 20)
            #expect(e2e.stopSagad() == 0)
        }
    }
}
