import Foundation
import SagaCore
import SagaDefinitions
import Testing

/// Every refusal the definition format names, each with the exact message an author reads.
@Suite("Refused definitions")
struct DefinitionRefusalTests {
    static let durationHint = "(write e.g. 250ms, 30s, 5m, 24h, 30d or 1h30m)"
    static let nameRule =
        "must start with a letter or digit and hold only letters, digits, '.', '_' and '-' (at most 128)"

    @Test("retry.maxAttempts: 0 names the source, the step and the field")
    func zeroAttempts() throws {
        let text = orderYAML(
            """
              - name: charge
                command:
                  participant: payments
                  type: payments.charge
                  compensation: payments.refund
                  timeout: 30s
                  retry:
                    maxAttempts: 0
            """)
        #expect(refusal(of: text) == ["order.yaml: step 'charge': command.retry.maxAttempts must be at least 1"])
        let error = try #require(throws: DefinitionError.self) {
            try DefinitionLoader.load(text: text, source: "order.yaml")
        }
        #expect(error.description == "order.yaml: step 'charge': command.retry.maxAttempts must be at least 1")
        #expect(error.source == "order.yaml")
        #expect(
            error.problems == [
                DefinitionProblem(step: "charge", field: "command.retry.maxAttempts", message: "must be at least 1")
            ])
    }

    static let unknownFields: [RefusalCase] = [
        RefusalCase(
            "at the top level",
            "name: order\nversion: 1\nowner: team-checkout\nsteps:\n" + reserveStep,
            expected: ["order.yaml: owner is not a known field"]),
        RefusalCase(
            "in a step",
            orderYAML(
                """
                  - name: reserve
                    retries: 3
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s}
                """),
            expected: ["order.yaml: step 'reserve': retries is not a known field"]),
        RefusalCase(
            "in a command",
            orderYAML(
                """
                  - name: reserve
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s, topic: stock}
                """),
            expected: ["order.yaml: step 'reserve': command.topic is not a known field"]),
        RefusalCase(
            "in a retry policy",
            orderYAML(
                """
                  - name: reserve
                    command:
                      participant: inventory
                      type: inventory.reserve
                      compensation: inventory.release
                      timeout: 10s
                      retry: {attempts: 3}
                """),
            expected: ["order.yaml: step 'reserve': command.retry.attempts is not a known field"]),
        RefusalCase(
            "in a compensation retry policy",
            orderYAML(
                """
                  - name: reserve
                    command:
                      participant: inventory
                      type: inventory.reserve
                      compensation: inventory.release
                      timeout: 10s
                      compensationRetry: {maxAttempts: 5, delay: 1s}
                """),
            expected: ["order.yaml: step 'reserve': command.compensationRetry.delay is not a known field"]),
        RefusalCase(
            "in a signal wait",
            orderYAML(
                """
                \(reserveStep)
                  - name: approve
                    signal: {name: approval, timeout: 1h, escalate: true}
                """),
            expected: ["order.yaml: step 'approve': signal.escalate is not a known field"]),
        RefusalCase(
            "in a sleep",
            orderYAML(
                """
                \(reserveStep)
                  - name: pause
                    sleep: {duration: 5m, until: tomorrow}
                """),
            expected: ["order.yaml: step 'pause': sleep.until is not a known field"]),
        RefusalCase(
            "in a parallel member",
            orderYAML(
                """
                  - name: book
                    parallel:
                      - name: flight
                        retries: 2
                        command: {participant: flights, type: flights.book, compensation: flights.cancel, timeout: 10s}
                      - name: hotel
                        command: {participant: hotels, type: hotels.book, compensation: hotels.cancel, timeout: 10s}
                """),
            expected: ["order.yaml: step 'flight': retries is not a known field"]),
        RefusalCase(
            "several, in name order",
            "name: order\nversion: 1\nzone: eu\nowner: team-checkout\nsteps:\n" + reserveStep,
            expected: ["order.yaml: owner is not a known field", "order.yaml: zone is not a known field"]),
    ]

    @Test("Unknown fields are refused wherever they are", arguments: unknownFields)
    func unknownField(_ refusalCase: RefusalCase) {
        #expect(refusal(of: refusalCase.text, source: refusalCase.source) == refusalCase.expected)
    }

    @Test(
        "Bad durations are refused",
        arguments: ["30x", "", "-5s", "1.5s", "5", "1 h", "5w", "99999999999999d", "3651d"])
    func badDuration(_ text: String) {
        let yaml = orderYAML(
            """
              - name: reserve
                command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: "\(text)"}
            """)
        #expect(
            refusal(of: yaml) == [
                "order.yaml: step 'reserve': command.timeout is not a duration: '\(text)' \(Self.durationHint)"
            ])
    }

    static let durationFields: [RefusalCase] = [
        RefusalCase(
            "a zero timeout",
            orderYAML(
                """
                  - name: reserve
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 0s}
                """),
            expected: ["order.yaml: step 'reserve': command.timeout must be longer than zero"]),
        RefusalCase(
            "a zero sum",
            orderYAML(
                """
                  - name: reserve
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 0h0m}
                """),
            expected: ["order.yaml: step 'reserve': command.timeout must be longer than zero"]),
        RefusalCase(
            "a deadline",
            "name: order\nversion: 1\ndeadline: 2 days\nsteps:\n" + reserveStep,
            expected: ["order.yaml: deadline is not a duration: '2 days' \(durationHint)"]),
        RefusalCase(
            "a number of seconds without a unit",
            orderYAML(
                """
                  - name: reserve
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 30}
                """),
            expected: ["order.yaml: step 'reserve': command.timeout must be a string, not integer"]),
        RefusalCase(
            "a missing timeout",
            orderYAML(
                """
                  - name: reserve
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release}
                """),
            expected: ["order.yaml: step 'reserve': command.timeout is required"]),
        RefusalCase(
            "a compensation timeout",
            orderYAML(
                """
                  - name: reserve
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s, compensationTimeout: 1.5m}
                """),
            expected: [
                "order.yaml: step 'reserve': command.compensationTimeout is not a duration: '1.5m' \(durationHint)"
            ]),
        RefusalCase(
            "a retry delay",
            orderYAML(
                """
                  - name: reserve
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s, retry: {initial: soon}}
                """),
            expected: ["order.yaml: step 'reserve': command.retry.initial is not a duration: 'soon' \(durationHint)"]),
        RefusalCase(
            "a signal timeout",
            orderYAML(
                """
                \(reserveStep)
                  - name: approve
                    signal: {name: approval, timeout: 1d12}
                """),
            expected: ["order.yaml: step 'approve': signal.timeout is not a duration: '1d12' \(durationHint)"]),
        RefusalCase(
            "a sleep",
            orderYAML(
                """
                \(reserveStep)
                  - name: pause
                    sleep: 5 minutes
                """),
            expected: ["order.yaml: step 'pause': sleep is not a duration: '5 minutes' \(durationHint)"]),
        RefusalCase(
            "a sleep written as an object",
            orderYAML(
                """
                \(reserveStep)
                  - name: pause
                    sleep: {duration: 0ms}
                """),
            expected: ["order.yaml: step 'pause': sleep.duration must be longer than zero"]),
    ]

    @Test("Durations are checked in every field that holds one", arguments: durationFields)
    func durationField(_ refusalCase: RefusalCase) {
        #expect(refusal(of: refusalCase.text, source: refusalCase.source) == refusalCase.expected)
    }

    static let stepRules: [RefusalCase] = [
        RefusalCase(
            "duplicate step names",
            orderYAML(
                """
                \(reserveStep)
                \(reserveStep)
                """),
            expected: ["order.yaml: step 'reserve': name is used by another step"]),
        RefusalCase(
            "a parallel member named like a top-level step",
            orderYAML(
                """
                  - name: book
                    parallel:
                      - name: flight
                        command: {participant: flights, type: flights.book, compensation: flights.cancel, timeout: 10s}
                      - name: hotel
                        command: {participant: hotels, type: hotels.book, compensation: hotels.cancel, timeout: 10s}
                  - name: hotel
                    command: {participant: hotels, type: hotels.confirm, compensation: hotels.unconfirm, timeout: 10s}
                """),
            expected: ["order.yaml: step 'hotel': name is used by another step"]),
        RefusalCase(
            "two members of one group with one name",
            orderYAML(
                """
                  - name: book
                    parallel:
                      - name: flight
                        command: {participant: flights, type: flights.book, compensation: flights.cancel, timeout: 10s}
                      - name: flight
                        command: {participant: flights, type: flights.book, compensation: flights.cancel, timeout: 10s}
                """),
            expected: ["order.yaml: step 'flight': name is used by another step"]),
        RefusalCase(
            "a member named like its group",
            orderYAML(
                """
                  - name: book
                    parallel:
                      - name: book
                        command: {participant: flights, type: flights.book, compensation: flights.cancel, timeout: 10s}
                      - name: hotel
                        command: {participant: hotels, type: hotels.book, compensation: hotels.cancel, timeout: 10s}
                """),
            expected: ["order.yaml: step 'book': name is used by another step"]),
        RefusalCase(
            "a signal wait without a timeout",
            orderYAML(
                """
                \(reserveStep)
                  - name: approve
                    signal: {name: approval}
                """),
            expected: [
                "order.yaml: step 'approve': signal.timeout is required: a signal wait without a timeout could wait forever"
            ]),
        RefusalCase(
            "a signal wait without a name",
            orderYAML(
                """
                \(reserveStep)
                  - name: approve
                    signal: {timeout: 1h}
                """),
            expected: ["order.yaml: step 'approve': signal.name is required (or signal.names for several)"]),
        RefusalCase(
            "a signal wait with both name and names",
            orderYAML(
                """
                \(reserveStep)
                  - name: approve
                    signal: {name: approval, names: [approval-eu, approval-us], timeout: 1h}
                """),
            expected: ["order.yaml: step 'approve': signal has both name and names: use one"]),
        RefusalCase(
            "a signal wait with a bad onTimeout",
            orderYAML(
                """
                \(reserveStep)
                  - name: approve
                    signal: {name: approval, timeout: 1h, onTimeout: ignore}
                """),
            expected: ["order.yaml: step 'approve': signal.onTimeout must be compensate or continue, not 'ignore'"]),
        RefusalCase(
            "a compensation after the pivot",
            orderYAML(
                """
                \(reserveStep)
                  - name: ship
                    pivot: true
                    command: {participant: shipping, type: shipping.ship, timeout: 1m}
                  - name: notify
                    command: {participant: notifications, type: notifications.send, compensation: notifications.retract, timeout: 5s}
                """),
            expected: [
                "order.yaml: step 'notify': command.compensation is not allowed after the pivot: steps after it are retried forward, never compensated"
            ]),
        RefusalCase(
            "a compensating signal timeout after the pivot",
            orderYAML(
                """
                \(reserveStep)
                  - name: ship
                    pivot: true
                    command: {participant: shipping, type: shipping.ship, timeout: 1m}
                  - name: delivered
                    signal: {name: delivery-confirmed, timeout: 7d}
                """),
            expected: [
                "order.yaml: step 'delivered': signal.onTimeout must be continue after the pivot (step 'ship'): nothing is compensated after it"
            ]),
        RefusalCase(
            "a failWhen after the pivot",
            orderYAML(
                """
                \(reserveStep)
                  - name: ship
                    pivot: true
                    command: {participant: shipping, type: shipping.ship, timeout: 1m}
                  - name: delivered
                    signal: {name: delivery-confirmed, timeout: 7d, onTimeout: continue, failWhen: "signals['delivery-confirmed'].ok == false"}
                """),
            expected: [
                "order.yaml: step 'delivered': signal.failWhen is not allowed after the pivot: nothing is compensated after it"
            ]),
        RefusalCase(
            "a when that does not parse",
            orderYAML(
                """
                  - name: reserve
                    when: input.total >
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s}
                """),
            expected: [
                "order.yaml: step 'reserve': when does not parse: expected a value but found 'end of expression' at position 13"
            ]),
        RefusalCase(
            "a failWhen that does not parse",
            orderYAML(
                """
                \(reserveStep)
                  - name: approve
                    signal: {name: approval, timeout: 1h, failWhen: "approval.approved == false"}
                """),
            expected: [
                "order.yaml: step 'approve': signal.failWhen does not parse: unknown name 'approval': a path starts with input, steps or signals at position 0"
            ]),
        RefusalCase(
            "a when that reads a later step",
            orderYAML(
                """
                  - name: reserve
                    when: steps.charge.ok == true
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s}
                  - name: charge
                    command: {participant: payments, type: payments.charge, compensation: payments.refund, timeout: 30s}
                """),
            expected: [
                "order.yaml: step 'reserve': when reads steps.charge, which is not a step that runs before this one"
            ]),
        RefusalCase(
            "a when that reads its own step",
            orderYAML(
                """
                  - name: reserve
                    when: "steps.reserve == null"
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s}
                """),
            expected: [
                "order.yaml: step 'reserve': when reads steps.reserve, which is not a step that runs before this one"
            ]),
        RefusalCase(
            "a member's when that reads another member of its group",
            orderYAML(
                """
                  - name: book
                    parallel:
                      - name: flight
                        command: {participant: flights, type: flights.book, compensation: flights.cancel, timeout: 10s}
                      - name: hotel
                        when: "steps.flight.booked == true"
                        command: {participant: hotels, type: hotels.book, compensation: hotels.cancel, timeout: 10s}
                """),
            expected: [
                "order.yaml: step 'hotel': when reads steps.flight, which is not a step that runs before this one"
            ]),
        RefusalCase(
            "a failWhen that reads an unknown step",
            orderYAML(
                """
                \(reserveStep)
                  - name: approve
                    signal: {name: approval, timeout: 1h, failWhen: "steps.audit.flagged == true"}
                """),
            expected: [
                "order.yaml: step 'approve': signal.failWhen reads steps.audit, which is not a step that runs before this one"
            ]),
        RefusalCase(
            "two pivots",
            orderYAML(
                """
                  - name: reserve
                    pivot: true
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s}
                  - name: ship
                    pivot: true
                    command: {participant: shipping, type: shipping.ship, timeout: 1m}
                """),
            expected: ["order.yaml: step 'ship': pivot is already set on step 'reserve': a saga has one pivot"]),
        RefusalCase(
            "a pivot on a sleep step",
            orderYAML(
                """
                \(reserveStep)
                  - name: pause
                    pivot: true
                    sleep: 5m
                """),
            expected: ["order.yaml: step 'pause': pivot must be on a command step or a parallel group"]),
        RefusalCase(
            "a pivot on a signal wait",
            orderYAML(
                """
                \(reserveStep)
                  - name: approve
                    pivot: true
                    signal: {name: approval, timeout: 1h}
                """),
            expected: ["order.yaml: step 'approve': pivot must be on a command step or a parallel group"]),
        RefusalCase(
            "a pivot on a parallel member",
            orderYAML(
                """
                  - name: book
                    parallel:
                      - name: flight
                        pivot: true
                        command: {participant: flights, type: flights.book, compensation: flights.cancel, timeout: 10s}
                      - name: hotel
                        command: {participant: hotels, type: hotels.book, compensation: hotels.cancel, timeout: 10s}
                """),
            expected: [
                "order.yaml: step 'flight': pivot is not allowed inside a parallel group: mark the group instead"
            ]),
        RefusalCase(
            "a pivot that is not a Boolean",
            orderYAML(
                """
                  - name: ship
                    pivot: "true"
                    command: {participant: shipping, type: shipping.ship, timeout: 1m}
                """),
            expected: ["order.yaml: step 'ship': pivot must be true or false, not string"]),
        RefusalCase(
            "a step with two kinds",
            orderYAML(
                """
                  - name: reserve
                    command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s}
                    sleep: 5m
                """),
            expected: [
                "order.yaml: step 'reserve': has command and sleep: a step does exactly one of command, signal, sleep or parallel"
            ]),
        RefusalCase(
            "a step with no kind",
            orderYAML(
                """
                \(reserveStep)
                  - name: ship
                """),
            expected: ["order.yaml: step 'ship': needs one of command, signal, sleep or parallel"]),
        RefusalCase(
            "a step that is not an object",
            orderYAML(
                """
                \(reserveStep)
                  - ship
                """),
            expected: ["order.yaml: step '#2': must be an object, not string"]),
        RefusalCase(
            "a parallel group with one member",
            orderYAML(
                """
                  - name: book
                    parallel:
                      - name: flight
                        command: {participant: flights, type: flights.book, compensation: flights.cancel, timeout: 10s}
                """),
            expected: ["order.yaml: step 'book': parallel must hold at least two steps"]),
        RefusalCase(
            "a parallel group that is not a list",
            orderYAML(
                """
                  - name: book
                    parallel: {participant: flights, type: flights.book, timeout: 10s}
                """),
            expected: ["order.yaml: step 'book': parallel must be a list of command steps"]),
        RefusalCase(
            "a sleep inside a parallel group",
            orderYAML(
                """
                  - name: book
                    parallel:
                      - name: flight
                        command: {participant: flights, type: flights.book, compensation: flights.cancel, timeout: 10s}
                      - name: pause
                        sleep: 5m
                """),
            expected: [
                "order.yaml: step 'pause': sleep is not allowed inside a parallel group: only command steps run in parallel",
                "order.yaml: step 'pause': command is required",
            ]),
        RefusalCase(
            "no steps",
            "name: order\nversion: 1\nsteps: []\n",
            expected: ["order.yaml: steps must hold at least one step"]),
        RefusalCase(
            "missing steps",
            "name: order\nversion: 1\n",
            expected: ["order.yaml: steps is required"]),
        RefusalCase(
            "a compensation timeout without a compensation",
            orderYAML(
                """
                  - name: ship
                    command: {participant: shipping, type: shipping.ship, timeout: 1m, compensationTimeout: 1m}
                """),
            expected: ["order.yaml: step 'ship': command.compensationTimeout is set but the step has no compensation"]),
        RefusalCase(
            "a command without participant and type",
            orderYAML(
                """
                  - name: ship
                    command: {timeout: 1m}
                """),
            expected: [
                "order.yaml: step 'ship': command.participant is required",
                "order.yaml: step 'ship': command.type is required",
            ]),
        RefusalCase(
            "non-retryable errors that are not a list of strings",
            orderYAML(
                """
                  - name: ship
                    command: {participant: shipping, type: shipping.ship, timeout: 1m, nonRetryableErrors: [NO_ADDRESS, 404]}
                """),
            expected: ["order.yaml: step 'ship': command.nonRetryableErrors must be a list of error codes"]),
    ]

    @Test("Rules on steps, signals, pivots and conditions", arguments: stepRules)
    func stepRule(_ refusalCase: RefusalCase) {
        #expect(refusal(of: refusalCase.text, source: refusalCase.source) == refusalCase.expected)
    }

    static func retryCase(_ label: String, _ retry: String, _ expected: String...) -> RefusalCase {
        RefusalCase(
            label,
            orderYAML(
                """
                  - name: charge
                    command:
                      participant: payments
                      type: payments.charge
                      compensation: payments.refund
                      timeout: 30s
                      retry: \(retry)
                """),
            expected: expected.map { "order.yaml: step 'charge': \($0)" })
    }

    static let retryRules: [RefusalCase] = [
        retryCase("maxAttempts 0", "{maxAttempts: 0}", "command.retry.maxAttempts must be at least 1"),
        retryCase("maxAttempts 1001", "{maxAttempts: 1001}", "command.retry.maxAttempts must be at most 1000"),
        retryCase(
            "maxAttempts 2.5", "{maxAttempts: 2.5}", "command.retry.maxAttempts must be an integer, not a fraction"),
        retryCase(
            "maxAttempts as text", "{maxAttempts: three}", "command.retry.maxAttempts must be an integer, not string"),
        retryCase("jitter 1.5", "{jitter: 1.5}", "command.retry.jitter must be between 0 and 1"),
        retryCase("jitter -0.1", "{jitter: -0.1}", "command.retry.jitter must be between 0 and 1"),
        retryCase("multiplier 0.5", "{multiplier: 0.5}", "command.retry.multiplier must be between 1 and 100"),
        retryCase("multiplier 101", "{multiplier: 101}", "command.retry.multiplier must be between 1 and 100"),
        retryCase("multiplier .inf", "{multiplier: .inf}", "command.retry.multiplier must be a number, not string"),
        retryCase(
            "max shorter than initial", "{initial: 10s, max: 5s}",
            "command.retry.max must not be shorter than initial (10s)"),
        retryCase(
            "backoff random", "{backoff: random}",
            "command.retry.backoff must be fixed, linear or exponential, not 'random'"),
        retryCase("a retry policy that is not an object", "5", "command.retry must be an object, not integer"),
        retryCase(
            "several problems in one policy", "{maxAttempts: 0, backoff: random, jitter: 2}",
            "command.retry.maxAttempts must be at least 1",
            "command.retry.backoff must be fixed, linear or exponential, not 'random'",
            "command.retry.jitter must be between 0 and 1"),
        RefusalCase(
            "a compensation retry with maxAttempts 0",
            orderYAML(
                """
                  - name: charge
                    command: {participant: payments, type: payments.charge, compensation: payments.refund, timeout: 30s, compensationRetry: {maxAttempts: 0}}
                """),
            expected: ["order.yaml: step 'charge': command.compensationRetry.maxAttempts must be at least 1"]),
        RefusalCase(
            "a retry policy in a parallel member",
            orderYAML(
                """
                  - name: book
                    parallel:
                      - name: flight
                        command: {participant: flights, type: flights.book, compensation: flights.cancel, timeout: 10s, retry: {jitter: 1.5}}
                      - name: hotel
                        command: {participant: hotels, type: hotels.book, compensation: hotels.cancel, timeout: 10s}
                """),
            expected: ["order.yaml: step 'flight': command.retry.jitter must be between 0 and 1"]),
    ]

    @Test("Retry policies are checked field by field", arguments: retryRules)
    func retryRule(_ refusalCase: RefusalCase) {
        #expect(refusal(of: refusalCase.text, source: refusalCase.source) == refusalCase.expected)
    }

    static let topLevelRules: [RefusalCase] = [
        RefusalCase(
            "version 0",
            "name: order\nversion: 0\nsteps:\n" + reserveStep,
            expected: ["order.yaml: version must be at least 1"]),
        RefusalCase(
            "a version that is not a number",
            "name: order\nversion: v1\nsteps:\n" + reserveStep,
            expected: ["order.yaml: version must be an integer, not string"]),
        RefusalCase(
            "a missing version",
            "name: order\nsteps:\n" + reserveStep,
            expected: ["order.yaml: version is required"]),
        RefusalCase(
            "a missing name",
            "version: 1\nsteps:\n" + reserveStep,
            expected: ["order.yaml: name is required"]),
        RefusalCase(
            "a name with a space",
            "name: order fulfillment\nversion: 1\nsteps:\n" + reserveStep,
            expected: ["order.yaml: name \(nameRule)"]),
        RefusalCase(
            "a name with a control character",
            #"{"name": "order\u0007", "version": 1, "steps": [{"name": "ship", "command": {"participant": "shipping", "type": "shipping.ship", "timeout": "1m"}}]}"#,
            source: "order.json",
            expected: ["order.json: name \(nameRule)"]),
        RefusalCase(
            "a name with a tab, from YAML",
            "name: \"order\\tfulfillment\"\nversion: 1\nsteps:\n" + reserveStep,
            expected: ["order.yaml: name \(nameRule)"]),
        RefusalCase(
            "a name that starts with a dash",
            "name: \"-order\"\nversion: 1\nsteps:\n" + reserveStep,
            expected: ["order.yaml: name \(nameRule)"]),
        RefusalCase(
            "a name that is not ASCII",
            "name: bestellung-größe\nversion: 1\nsteps:\n" + reserveStep,
            expected: ["order.yaml: name \(nameRule)"]),
        RefusalCase(
            "a name of 129 characters",
            "name: \(String(repeating: "a", count: 129))\nversion: 1\nsteps:\n" + reserveStep,
            expected: ["order.yaml: name \(nameRule)"]),
        RefusalCase(
            "a step name with a space",
            orderYAML(
                """
                  - name: charge card
                    command: {participant: payments, type: payments.charge, compensation: payments.refund, timeout: 30s}
                """),
            expected: ["order.yaml: step 'charge card': name \(nameRule)"]),
        RefusalCase(
            "a participant name with a slash",
            orderYAML(
                """
                  - name: charge
                    command: {participant: payments/eu, type: payments.charge, compensation: payments.refund, timeout: 30s}
                """),
            expected: ["order.yaml: step 'charge': command.participant \(nameRule)"]),
        RefusalCase(
            "a document that is a list",
            "- name: order\n",
            expected: ["order.yaml: must be an object, not array"]),
        RefusalCase(
            "an empty document",
            "# nothing here\n",
            expected: ["order.yaml: is empty"]),
    ]

    @Test("Names, versions and the document's shape", arguments: topLevelRules)
    func topLevelRule(_ refusalCase: RefusalCase) {
        #expect(refusal(of: refusalCase.text, source: refusalCase.source) == refusalCase.expected)
    }

    @Test("A name of 128 characters is accepted")
    func longestName() throws {
        let name = String(repeating: "a", count: 128)
        let loaded = try DefinitionLoader.load(
            text: "name: \(name)\nversion: 1\nsteps:\n" + reserveStep, source: "x.yaml")
        #expect(loaded.definition.name == name)
    }

    // MARK: - Files that do not parse

    @Test("Invalid YAML is refused with its line and column")
    func invalidYAML() {
        let text = """
            name: order
            version: 1
            steps:
              - name: reserve
                command: {participant: inventory, type: inventory.reserve, timeout: 10s
            """
        #expect(
            refusal(of: text) == [
                "order.yaml: is not valid YAML: while parsing a flow mapping did not find expected ',' or '}' at line 6, column 1"
            ])
    }

    @Test("A tab used for indentation is refused with its line")
    func tabIndentation() {
        let text = "name: order\nversion: 1\nsteps:\n\t- name: reserve\n"
        let lines = refusal(of: text)
        #expect(
            lines == [
                "order.yaml: is not valid YAML: while scanning for the next token found character that cannot start any token at line 4, column 1"
            ])
    }

    @Test("Text that is not JSON is refused")
    func notJSON() {
        #expect(
            refusal(of: #"{"name": "order", "version": 1,"#, source: "order.json") == ["order.json: is not valid JSON"])
        #expect(refusal(of: "name: order\nversion: 1\n", source: "order.json") == ["order.json: is not valid JSON"])
    }

    @Test("Repeated YAML keys are refused")
    func repeatedKeys() {
        let text = "name: order\nversion: 1\nname: other\nsteps:\n" + reserveStep
        #expect(refusal(of: text) == ["order.yaml: is not valid YAML: repeated keys: name"])
        let quoted = "name: order\nversion: 1\n\"version\": 2\nsteps:\n" + reserveStep
        #expect(refusal(of: quoted) == ["order.yaml: is not valid YAML: repeated keys: version"])
        // YAML sees an integer key and a string key; the JSON form would hold one key "10".
        let mixed = "name: order\nversion: 1\n10: a\n\"10\": b\nsteps:\n" + reserveStep
        #expect(refusal(of: mixed) == ["order.yaml: 10 is repeated"])
    }

    @Test("Nesting deeper than 32 levels is refused")
    func deepNesting() {
        let nested = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        let text = "name: order\nversion: 1\ndescription: \(nested)\nsteps:\n" + reserveStep
        let path = "description" + String(repeating: "[0]", count: 31)
        #expect(refusal(of: text) == ["order.yaml: \(path) is nested deeper than 32"])

        let shallow = String(repeating: "[", count: 31) + String(repeating: "]", count: 31)
        let allowed = "name: order\nversion: 1\ndescription: \(shallow)\nsteps:\n" + reserveStep
        // 31 levels pass the YAML reader; the decoder then refuses the list where it wants text.
        #expect(refusal(of: allowed) == ["order.yaml: description must be a string, not array"])
    }

    @Test("A mapping key that is not a string is refused")
    func nonStringKey() {
        let text = "name: order\nversion: 1\n[a, b]: c\nsteps:\n" + reserveStep
        #expect(refusal(of: text) == ["order.yaml: has a key that is not a string"])
    }

    @Test("A YAML alias is refused")
    func yamlAlias() {
        let text = orderYAML(
            """
              - name: reserve
                command: &reserve {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s}
              - name: reserve-again
                command: *reserve
            """)
        #expect(refusal(of: text) == ["order.yaml: steps[1].command uses a YAML alias, which is not allowed"])
    }

    @Test("A file larger than 1 MiB is refused")
    func tooLarge() {
        let text = "name: order\nversion: 1\ndescription: \(String(repeating: "x", count: 1 << 20))\n"
        #expect(refusal(of: text) == ["order.yaml: is larger than 1048576 bytes"])
    }

    // MARK: - Several problems at once

    @Test("Every problem in a file is reported at once, in document order")
    func severalProblems() throws {
        let text = """
            name: order
            version: 0
            owner: team-checkout
            steps:
              - name: reserve
                command:
                  participant: inventory
                  type: inventory.reserve
                  compensation: inventory.release
                  timeout: 30x
              - name: charge
                command:
                  participant: payments
                  type: payments.charge
                  compensation: payments.refund
                  timeout: 30s
                  retry: {maxAttempts: 0, jitter: 1.5}
              - name: approve
                signal: {name: approval}
              - name: pause
                sleep: 5m
                command: {participant: clock, type: clock.wait, timeout: 5m}
            """
        let expected = [
            "order.yaml: version must be at least 1",
            "order.yaml: step 'reserve': command.timeout is not a duration: '30x' \(Self.durationHint)",
            "order.yaml: step 'charge': command.retry.maxAttempts must be at least 1",
            "order.yaml: step 'charge': command.retry.jitter must be between 0 and 1",
            "order.yaml: step 'approve': signal.timeout is required: a signal wait without a timeout could wait forever",
            "order.yaml: step 'pause': has command and sleep: a step does exactly one of command, signal, sleep or parallel",
            "order.yaml: owner is not a known field",
        ]
        let error = try #require(throws: DefinitionError.self) {
            try DefinitionLoader.load(text: text, source: "order.yaml")
        }
        #expect(error.problems.count == 7)
        #expect(error.description.split(separator: "\n").map(String.init) == expected)
    }

    @Test("Every rule across steps is reported at once")
    func severalCrossStepProblems() {
        let text = orderYAML(
            """
              - name: reserve
                when: steps.charge.ok == true
                command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s}
              - name: charge
                pivot: true
                command: {participant: payments, type: payments.charge, compensation: payments.refund, timeout: 30s}
              - name: charge
                pivot: true
                command: {participant: payments, type: payments.capture, compensation: payments.void, timeout: 30s}
              - name: pause
                sleep: 1m
            """)
        let lines = refusal(of: text)
        #expect(
            lines == [
                "order.yaml: step 'charge': name is used by another step",
                "order.yaml: step 'charge': pivot is already set on step 'charge': a saga has one pivot",
                "order.yaml: step 'reserve': when reads steps.charge, which is not a step that runs before this one",
                "order.yaml: step 'charge': command.compensation is not allowed after the pivot: steps after it are retried forward, never compensated",
            ])
        #expect(lines.count == 4)
    }
}

@Suite("Definition decoding edge cases")
struct DefinitionEdgeCaseTests {
    @Test("YAML plain scalars follow the core schema: yes, on and off stay strings")
    func coreSchema() throws {
        let text = """
            name: lights
            version: 1
            steps:
              - name: wait
                signal:
                  names: [on, off, yes]
                  timeout: 1h
            """
        let loaded = try DefinitionLoader.load(text: text, source: "lights.yaml")
        guard case .signal(let wait) = loaded.definition.steps[0].kind else {
            Issue.record("not a signal step")
            return
        }
        #expect(wait.signals == ["on", "off", "yes"])
    }

    @Test("A version out of range says so")
    func versionOutOfRange() {
        #expect(throws: DefinitionError.self) {
            try DefinitionLoader.load(
                text: "name: x\nversion: 3000000000\nsteps: [{name: a, sleep: 1s}]\n", source: "x.yaml")
        }
        do {
            _ = try DefinitionLoader.load(
                text: "name: x\nversion: 3000000000\nsteps: [{name: a, sleep: 1s}]\n", source: "x.yaml")
        } catch {
            #expect(error.description == "x.yaml: version must be between -2147483648 and 2147483647")
        }
    }

    @Test("An initial delay longer than the default cap raises the cap")
    func initialAboveDefaultMax() throws {
        let text = """
            name: slow
            version: 1
            steps:
              - name: a
                command: {participant: p, type: p.do, compensation: p.undo, timeout: 1m, retry: {initial: 2m}}
            """
        let loaded = try DefinitionLoader.load(text: text, source: "slow.yaml")
        #expect(loaded.definition.commandStep(named: "a")?.retry.maxDelay == .minutes(2))
    }

    @Test("A third pivot is reported too")
    func threePivots() {
        let text = """
            name: p
            version: 1
            steps:
              - {name: a, pivot: true, command: {participant: p, type: p.a, timeout: 1s}}
              - {name: b, pivot: true, command: {participant: p, type: p.b, timeout: 1s}}
              - {name: c, pivot: true, command: {participant: p, type: p.c, timeout: 1s}}
            """
        do {
            _ = try DefinitionLoader.load(text: text, source: "p.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.problems.filter { $0.field == "pivot" }.map(\.step) == ["b", "c"])
        }
    }

    @Test("A JSON file nested too deep is refused")
    func deepJSON() {
        let text = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        do {
            _ = try DefinitionLoader.load(text: text, source: "deep.json")
            Issue.record("accepted")
        } catch {
            #expect(error.description == "deep.json: is nested deeper than 32")
        }
    }
}
