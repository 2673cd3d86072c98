import Foundation
import SagaCore
import SagaDefinitions
import Testing

/// The example definitions in `examples/definitions/` load, and mean what they say.
@Suite("Example definitions")
struct ExampleDefinitionTests {
    @Test("order-fulfillment.yaml: reserve, charge, approval, then ship as the pivot")
    func orderFulfillment() throws {
        let loaded = try DefinitionLoader.load(
            contentsOf: TestFiles.examples.appendingPathComponent("order-fulfillment.yaml"))
        let definition = loaded.definition
        #expect(loaded.warnings.isEmpty)
        #expect(definition.name == "order-fulfillment")
        #expect(definition.version == 1)
        #expect(definition.deadline == nil)
        #expect(definition.description?.hasPrefix("Reserves the ordered items") == true)
        #expect(definition.steps.map(\.name) == ["reserve-inventory", "charge-payment", "manager-approval", "ship"])
        #expect(definition.steps.map { kindName($0.kind) } == ["command", "command", "signal", "command"])
        #expect(definition.pivotIndex == 3)
        #expect(definition.steps.map(\.isPivot) == [false, false, false, true])
        #expect(definition.steps.allSatisfy { $0.when == nil })

        let reserve = try #require(definition.commandStep(named: "reserve-inventory"))
        #expect(reserve.participant == "inventory")
        #expect(reserve.command == "inventory.reserve")
        #expect(reserve.compensation == "inventory.release")
        #expect(reserve.timeout == .seconds(10))
        #expect(reserve.compensationTimeout == nil)
        #expect(
            reserve.retry
                == RetryPolicy(
                    maxAttempts: 5, backoff: .exponential, initialDelay: .milliseconds(500), maxDelay: .seconds(30),
                    multiplier: 2, jitter: 0.2))
        #expect(reserve.compensationRetry == .defaultCompensate)
        #expect(reserve.nonRetryableErrors == ["OUT_OF_STOCK"])

        let charge = try #require(definition.commandStep(named: "charge-payment"))
        #expect(charge.participant == "payments")
        #expect(charge.command == "payments.charge")
        #expect(charge.compensation == "payments.refund")
        #expect(charge.timeout == .seconds(30))
        #expect(charge.compensationTimeout == .minutes(1))
        // The fields left out of `retry` (multiplier, jitter) take the action defaults.
        #expect(charge.retry == .defaultExecute)
        #expect(
            charge.compensationRetry
                == RetryPolicy(
                    maxAttempts: 20, backoff: .exponential, initialDelay: .seconds(2), maxDelay: .minutes(10),
                    multiplier: 2, jitter: 0.2))
        #expect(charge.nonRetryableErrors == ["CARD_DECLINED"])

        guard case .signal(let approval) = definition.steps[2].kind else {
            Issue.record("manager-approval is not a signal wait")
            return
        }
        #expect(approval.signals == ["approval"])
        #expect(approval.timeout == .hours(24))
        #expect(approval.onTimeout == .compensate)
        let failWhen = try #require(approval.failWhen)
        #expect(failWhen.source == "signals.approval.approved == false")
        #expect(failWhen.evaluate(["signals": ["approval": ["approved": false]]]))
        #expect(!failWhen.evaluate(["signals": ["approval": ["approved": true]]]))
        #expect(!failWhen.evaluate(["signals": ["approval": ["comment": "no answer"]]]))

        let ship = try #require(definition.commandStep(named: "ship"))
        #expect(ship.participant == "shipping")
        #expect(ship.command == "shipping.ship")
        #expect(ship.compensation == nil)
        #expect(ship.timeout == .minutes(1))
        #expect(
            ship.retry
                == RetryPolicy(
                    maxAttempts: 10, backoff: .linear, initialDelay: .seconds(5), maxDelay: .minutes(5), multiplier: 2,
                    jitter: 0.2))
        #expect(ship.nonRetryableErrors.isEmpty)
    }

    @Test("trip-booking.json: a parallel group, a condition on the input, a sleep and a deadline")
    func tripBooking() throws {
        let loaded = try DefinitionLoader.load(
            contentsOf: TestFiles.examples.appendingPathComponent("trip-booking.json"))
        let definition = loaded.definition
        #expect(loaded.warnings.isEmpty)
        #expect(definition.name == "trip-booking")
        #expect(definition.version == 2)
        #expect(definition.deadline == .hours(2))
        #expect(
            definition.steps.map(\.name)
                == ["book-travel", "rent-car", "free-cancellation-window", "issue-tickets", "send-itinerary"])
        #expect(definition.steps.map { kindName($0.kind) } == ["parallel", "command", "sleep", "command", "command"])
        #expect(definition.pivotIndex == 3)
        #expect(
            definition.allStepNames
                == [
                    "book-travel", "book-flight", "book-hotel", "rent-car", "free-cancellation-window", "issue-tickets",
                    "send-itinerary",
                ])

        guard case .parallel(let group) = definition.steps[0].kind else {
            Issue.record("book-travel is not a parallel group")
            return
        }
        #expect(group.steps.map(\.name) == ["book-flight", "book-hotel"])
        #expect(group.steps.allSatisfy { $0.when == nil })
        let flight = try #require(definition.commandStep(named: "book-flight"))
        #expect(flight.participant == "flights")
        #expect(flight.compensation == "flights.cancel")
        #expect(flight.timeout == .seconds(20))
        #expect(
            flight.retry
                == RetryPolicy(
                    maxAttempts: 4, backoff: .exponential, initialDelay: .seconds(2), maxDelay: .seconds(30),
                    multiplier: 3, jitter: 0.1))
        #expect(flight.nonRetryableErrors == ["NO_SEATS", "FARE_EXPIRED"])
        let hotel = try #require(definition.commandStep(named: "book-hotel"))
        #expect(hotel.compensation == "hotels.cancel")
        #expect(hotel.timeout == .seconds(15))
        #expect(hotel.compensationTimeout == .seconds(45))
        #expect(
            hotel.retry
                == RetryPolicy(
                    maxAttempts: 3, backoff: .fixed, initialDelay: .seconds(5), maxDelay: .seconds(5), multiplier: 2,
                    jitter: 0))
        #expect(hotel.compensationRetry == .defaultCompensate)

        let rentCar = definition.steps[1]
        let when = try #require(rentCar.when)
        #expect(when.source == "input.rentalCar == true && input.travellers <= 5")
        #expect(when.evaluate(["input": ["rentalCar": true, "travellers": 2]]))
        #expect(!when.evaluate(["input": ["rentalCar": true, "travellers": 6]]))
        #expect(!when.evaluate(["input": ["travellers": 1]]))
        let car = try #require(definition.commandStep(named: "rent-car"))
        #expect(car.retry == .defaultExecute)
        #expect(car.compensationRetry == .defaultCompensate)

        guard case .sleep(let sleep) = definition.steps[2].kind else {
            Issue.record("free-cancellation-window is not a sleep")
            return
        }
        #expect(sleep.duration == .minutes(30))

        #expect(definition.steps[3].isPivot)
        let tickets = try #require(definition.commandStep(named: "issue-tickets"))
        #expect(tickets.compensation == nil)
        #expect(
            tickets.retry
                == RetryPolicy(
                    maxAttempts: 5, backoff: .exponential, initialDelay: .seconds(1), maxDelay: .minutes(2),
                    multiplier: 2, jitter: 0.2))

        let itinerary = definition.steps[4]
        #expect(itinerary.when?.referencedSteps == ["issue-tickets"])
        let notify = try #require(definition.commandStep(named: "send-itinerary"))
        #expect(notify.compensation == nil)
        #expect(notify.retry.maxAttempts == 50)
    }

    @Test("The examples directory loads as a whole, without warnings")
    func examplesDirectory() throws {
        let loaded = try DefinitionLoader.loadDirectory(TestFiles.examples)
        let names = loaded.map(\.definition.name)
        #expect(names.contains("order-fulfillment"))
        #expect(names.contains("trip-booking"))
        #expect(loaded.allSatisfy { $0.warnings.isEmpty })
    }

    @Test("The YAML and JSON forms of one definition decode equal")
    func yamlAndJSONAgree() throws {
        let fixtures = try TestFiles.fixtures()
        let yaml = try DefinitionLoader.load(contentsOf: fixtures.appendingPathComponent("equivalent.yaml"))
        let json = try DefinitionLoader.load(contentsOf: fixtures.appendingPathComponent("equivalent.json"))
        #expect(yaml == json)
        #expect(yaml.definition == json.definition)

        let definition = yaml.definition
        #expect(definition.steps.map { kindName($0.kind) } == ["command", "signal", "sleep", "parallel", "command"])
        #expect(definition.deadline == .days(7))
        #expect(definition.pivotIndex == 3)
        let lock = try #require(definition.commandStep(named: "lock-order"))
        #expect(
            lock.retry
                == RetryPolicy(
                    maxAttempts: 2, backoff: .fixed, initialDelay: .milliseconds(250), maxDelay: .milliseconds(250),
                    multiplier: 2, jitter: 0))
        // A partial policy keeps the compensation defaults for the fields it leaves out.
        #expect(
            lock.compensationRetry
                == RetryPolicy(
                    maxAttempts: 30, backoff: .exponential, initialDelay: .seconds(1), maxDelay: .minutes(15),
                    multiplier: 2, jitter: 0.2))
        guard case .signal(let decision) = definition.steps[1].kind else {
            Issue.record("clerk-decision is not a signal wait")
            return
        }
        #expect(decision.signals == ["refund-approved", "refund-rejected"])
        #expect(decision.timeout == .hours(72))
        guard case .sleep(let coolDown) = definition.steps[2].kind else {
            Issue.record("cool-down is not a sleep")
            return
        }
        #expect(coolDown.duration == SagaDuration(milliseconds: 5_400_000))
        #expect(definition.commandStep(named: "refund-card")?.nonRetryableErrors == ["CARD_CLOSED"])
    }

    @Test("A definition can be read from JSON text named .yaml: JSON is YAML")
    func jsonTextReadAsYAML() throws {
        let fixtures = try TestFiles.fixtures()
        let text = try String(contentsOf: fixtures.appendingPathComponent("equivalent.json"), encoding: .utf8)
        let asYAML = try DefinitionLoader.load(text: text, source: "equivalent.yaml")
        let asJSON = try DefinitionLoader.load(text: text, source: "equivalent.json")
        #expect(asYAML == asJSON)
        let forced = try DefinitionLoader.load(text: text, source: "equivalent.txt", format: .json)
        #expect(forced == asJSON)
    }
}

/// The warning for a step before the pivot whose effect nothing undoes.
@Suite("Definition warnings")
struct DefinitionWarningTests {
    @Test("A command step before the pivot without a compensation is accepted with a warning")
    func missingCompensationBeforePivot() throws {
        let text = orderYAML(
            """
              - name: validate
                command: {participant: orders, type: orders.validate, timeout: 5s}
              - name: reserve
                command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s}
              - name: book
                parallel:
                  - name: flight
                    command: {participant: flights, type: flights.book, timeout: 10s}
                  - name: hotel
                    command: {participant: hotels, type: hotels.book, compensation: hotels.cancel, timeout: 10s}
              - name: ship
                pivot: true
                command: {participant: shipping, type: shipping.ship, timeout: 1m}
              - name: notify
                command: {participant: notifications, type: notifications.send, timeout: 5s}
            """)
        let loaded = try DefinitionLoader.load(text: text, source: "order.yaml")
        #expect(
            loaded.warnings.map(\.description) == [
                "step 'validate': command.compensation is not set: if a later step fails, this step's effect stays",
                "step 'flight': command.compensation is not set: if a later step fails, this step's effect stays",
            ])
        #expect(loaded.warnings.map(\.step) == ["validate", "flight"])
        #expect(loaded.warnings.map(\.field) == ["command.compensation", "command.compensation"])
    }

    @Test("The members of a pivot group get no warning")
    func pivotGroupMembers() throws {
        let text = orderYAML(
            """
            \(reserveStep)
              - name: deliver
                pivot: true
                parallel:
                  - name: ship
                    command: {participant: shipping, type: shipping.ship, timeout: 1m}
                  - name: invoice
                    command: {participant: billing, type: billing.invoice, timeout: 1m}
            """)
        let loaded = try DefinitionLoader.load(text: text, source: "order.yaml")
        #expect(loaded.warnings.isEmpty)
        #expect(loaded.definition.pivotIndex == 1)
    }

    @Test("Without a pivot every command step without a compensation is warned about")
    func noPivot() throws {
        let text = orderYAML(
            """
              - name: validate
                command: {participant: orders, type: orders.validate, timeout: 5s}
              - name: wait
                sleep: 5m
              - name: notify
                command: {participant: notifications, type: notifications.send, timeout: 5s}
            """)
        let loaded = try DefinitionLoader.load(text: text, source: "order.yaml")
        #expect(loaded.warnings.map(\.step) == ["validate", "notify"])
    }
}
