import SagaCore
import Testing

/// Each test is a short story: events in, commands, compensations and the final status out.
@Suite("Saga machine stories")
struct SagaMachineStoryTests {
    @Test("a saga runs its steps in order and completes")
    func completes() {
        var saga = SagaHarness(Definitions.threeSteps)
        #expect(saga.saga.status == .running)
        #expect(saga.commandLog == ["reserve/execute/1"])
        saga.succeed("reserve", result: ["reservation": "r-1"])
        saga.succeed("charge", result: ["payment": "p-1"])
        saga.succeed("ship")
        #expect(saga.commandLog == ["reserve/execute/1", "charge/execute/1", "ship/execute/1"])
        #expect(saga.saga.status == .completed)
        #expect(saga.saga.timers.isEmpty)
        #expect(saga.events.map(\.kind).first == .sagaStarted)
        #expect(saga.events.map(\.kind).last == .sagaCompleted)
        #expect(saga.saga.steps.allSatisfy { $0.status == .completed })
    }

    @Test("each command carries the input and the results of earlier steps")
    func commandPayload() throws {
        var saga = SagaHarness(Definitions.threeSteps, input: ["orderId": "o-7"])
        saga.succeed("reserve", result: ["reservation": "r-1"])
        let charge = try #require(saga.latestCommand("charge"))
        #expect(charge.payload["input"]?["orderId"] == "o-7")
        #expect(charge.payload["steps"]?["reserve"]?["reservation"] == "r-1")
        #expect(charge.participant == "payments")
        #expect(charge.commandType == "payments.do")
        #expect(charge.deadline == saga.now + .seconds(10))
    }

    @Test("idempotency keys are derived from saga, step and action, and stable across retries")
    func idempotencyKeys() throws {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.fail("reserve", retryable: true)
        saga.fire(.retryBackoff, step: "reserve")
        let attempts = saga.commands.filter { $0.step == "reserve" }
        #expect(attempts.map(\.attempt) == [1, 2])
        #expect(Set(attempts.map(\.idempotencyKey)) == ["saga-1:reserve:execute"])
        saga.succeed("reserve")
        saga.fail("charge", retryable: false)
        let undo = try #require(saga.latestCommand("reserve", .compensate))
        #expect(undo.idempotencyKey == "saga-1:reserve:compensate")
        #expect(undo.actionKey == "saga-1:reserve:execute")
    }

    @Test("a failing step compensates the completed steps in reverse order")
    func compensatesInReverse() throws {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.succeed("reserve", result: ["reservation": "r-1"])
        saga.succeed("charge", result: ["payment": "p-1"])
        saga.fail("ship", code: "NO_COURIER", retryable: false)
        #expect(saga.saga.status == .compensating)
        #expect(saga.status("ship") == .failed)
        #expect(saga.compensationOrder == ["charge"])
        let refund = try #require(saga.latestCommand("charge", .compensate))
        #expect(refund.commandType == "payments.undo")
        #expect(refund.payload["result"]?["payment"] == "p-1")
        saga.succeed("charge", .compensate)
        #expect(saga.compensationOrder == ["charge", "reserve"])
        saga.succeed("reserve", .compensate)
        #expect(saga.saga.status == .compensated)
        #expect(saga.status("charge") == .compensated)
        #expect(saga.status("reserve") == .compensated)
        #expect(saga.saga.timers.isEmpty)
        #expect(saga.events.last?.kind == .sagaCompensated)
    }

    @Test("a retryable failure is retried with exponential backoff, then succeeds")
    func retriesWithBackoff() throws {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.fail("reserve", retryable: true)
        let first = try #require(saga.timer(.retryBackoff, step: "reserve"))
        #expect(first.dueAt == saga.now + .seconds(1))
        saga.fire(.retryBackoff, step: "reserve")
        saga.fail("reserve", retryable: true)
        let second = try #require(saga.timer(.retryBackoff, step: "reserve"))
        #expect(second.dueAt == saga.now + .seconds(2))
        saga.fire(.retryBackoff, step: "reserve")
        saga.succeed("reserve")
        #expect(saga.status("reserve") == .completed)
        #expect(saga.saga.step("reserve")?.attempt == 3)
    }

    @Test("retries stop at maxAttempts and the saga compensates")
    func retriesExhausted() {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.succeed("reserve")
        for _ in 1..<3 {
            saga.fail("charge", retryable: true)
            saga.fire(.retryBackoff, step: "charge")
        }
        saga.fail("charge", retryable: true)
        #expect(saga.commandLog.filter { $0.hasPrefix("charge/execute") }.count == 3)
        #expect(saga.status("charge") == .compensating)
        // A retryable failure does not prove nothing happened (the command may be seen again), so the
        // charge is undone too, first.
        #expect(saga.compensationOrder == ["charge"])
        saga.succeed("charge", .compensate)
        #expect(saga.compensationOrder == ["charge", "reserve"])
    }

    @Test("retryable: false short-circuits the retry policy")
    func nonRetryableReply() {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.fail("reserve", code: "OUT_OF_STOCK", retryable: false)
        #expect(saga.commandLog == ["reserve/execute/1"])
        // Nothing took effect, so nothing is compensated.
        #expect(saga.saga.status == .compensated)
        #expect(saga.compensationOrder.isEmpty)
    }

    @Test("an error code listed as non-retryable short-circuits even when the reply says retryable")
    func nonRetryableCode() {
        let definition = SagaDefinition(
            name: "pay", version: 1,
            steps: [Definitions.step("charge", Definitions.command("payments", nonRetryable: ["CARD_DECLINED"]))])
        var saga = SagaHarness(definition)
        saga.fail("charge", code: "CARD_DECLINED", retryable: true)
        #expect(saga.commandLog == ["charge/execute/1"])
        #expect(saga.saga.status == .compensated)
    }

    @Test("a timed-out attempt is retried, and a step that times out for good is compensated too")
    func timeoutCompensatesItself() {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.succeed("reserve")
        saga.fire(.attemptTimeout, step: "charge")
        #expect(saga.saga.step("charge")?.mayHaveTakenEffect == true)
        saga.fire(.retryBackoff, step: "charge")
        saga.fire(.attemptTimeout, step: "charge")
        saga.fire(.retryBackoff, step: "charge")
        saga.fire(.attemptTimeout, step: "charge")
        #expect(
            saga.commandLog.filter { $0.hasPrefix("charge/execute") } == [
                "charge/execute/1", "charge/execute/2", "charge/execute/3",
            ])
        // The charge may have happened: it is undone first, then the reservation.
        #expect(saga.compensationOrder == ["charge"])
        saga.succeed("charge", .compensate)
        saga.succeed("reserve", .compensate)
        #expect(saga.compensationOrder == ["charge", "reserve"])
        #expect(saga.saga.status == .compensated)
    }

    @Test("a late success for an earlier attempt completes the step: every attempt has the same key")
    func earlierAttemptAccepted() throws {
        var saga = SagaHarness(Definitions.threeSteps)
        let first = try #require(saga.latestCommand("reserve"))
        saga.fire(.attemptTimeout, step: "reserve")
        saga.fire(.retryBackoff, step: "reserve")
        saga.reply(first, .success(result: ["late": true]))
        #expect(saga.lastNotes.map(\.kind) == [.earlierAttemptAccepted])
        #expect(saga.status("reserve") == .completed)
        #expect(saga.timer(.attemptTimeout, step: "reserve") == nil)
        #expect(saga.latestCommand("charge") != nil)
        // The retry's own reply, when it comes, changes nothing.
        let before = saga.saga
        saga.succeed("reserve")
        #expect(saga.saga == before)
        #expect(saga.lastNotes.map(\.kind) == [.duplicateReply])
    }

    @Test("a late success while compensating is recorded; the timed-out step is compensated anyway")
    func lateSuccessWhileCompensating() throws {
        let definition = SagaDefinition(
            name: "order", version: 1,
            steps: [
                Definitions.step("reserve", Definitions.command("inventory")),
                Definitions.step("charge", Definitions.command("payments", attempts: 1)),
            ])
        var saga = SagaHarness(definition)
        saga.succeed("reserve")
        let charge = try #require(saga.latestCommand("charge"))
        saga.fire(.attemptTimeout, step: "charge")
        #expect(saga.saga.status == .compensating)
        #expect(saga.compensationOrder == ["charge"])
        saga.reply(charge, .success(result: ["payment": "p-9"]))
        #expect(saga.lastNotes.map(\.kind) == [.lateReply])
        #expect(saga.saga.results["charge"] == ["payment": "p-9"])
        saga.succeed("charge", .compensate)
        saga.succeed("reserve", .compensate)
        #expect(saga.saga.status == .compensated)
    }

    @Test("a step whose when is false is skipped and sends nothing")
    func whenSkips() {
        let definition = SagaDefinition(
            name: "order", version: 1,
            steps: [
                Definitions.step("reserve", Definitions.command("inventory")),
                Definitions.step("insure", Definitions.command("insurance"), when: "input.amount > 1000"),
                Definitions.step(
                    "gift", Definitions.command("gifts"), when: "steps.reserve.vip == true || input.gift == true"),
                Definitions.step("ship", Definitions.command("shipping")),
            ])
        var saga = SagaHarness(definition, input: ["amount": 100])
        saga.succeed("reserve", result: ["vip": true])
        #expect(saga.status("insure") == .skipped)
        #expect(saga.latestCommand("gift") != nil)
        saga.succeed("gift")
        saga.fail("ship", retryable: false)
        // The skipped step is not compensated.
        #expect(saga.compensationOrder == ["gift"])
        saga.succeed("gift", .compensate)
        #expect(saga.compensationOrder == ["gift", "reserve"])
        #expect(saga.events.contains { $0.kind == .stepSkipped && $0.step == "insure" })
    }

    @Test("a saga whose every step is skipped completes at once")
    func allSkipped() {
        let definition = SagaDefinition(
            name: "noop", version: 1,
            steps: [Definitions.step("only", Definitions.command("x"), when: "input.run == true")])
        let saga = SagaHarness(definition, input: ["run": false])
        #expect(saga.saga.status == .completed)
        #expect(saga.commands.isEmpty)
    }

    static let pivoted = SagaDefinition(
        name: "order", version: 1,
        steps: [
            Definitions.step("reserve", Definitions.command("inventory")),
            Definitions.step("charge", Definitions.command("payments", compensation: false), pivot: true),
            Definitions.step("ship", Definitions.command("shipping", compensation: false, attempts: 2)),
        ])

    @Test("after the pivot, failures are retried forward beyond maxAttempts and never compensated")
    func pivotRetriesForward() {
        var saga = SagaHarness(Self.pivoted)
        saga.succeed("reserve")
        saga.succeed("charge")
        #expect(saga.saga.pastPivot)
        for _ in 0..<5 {
            saga.fail("ship", retryable: true)
            saga.fire(.retryBackoff, step: "ship")
        }
        saga.fire(.attemptTimeout, step: "ship")
        saga.fire(.retryBackoff, step: "ship")
        #expect(saga.commandLog.filter { $0.hasPrefix("ship/") }.count == 7)
        #expect(saga.saga.status == .running)
        saga.succeed("ship")
        #expect(saga.saga.status == .completed)
        #expect(saga.compensationOrder.isEmpty)
    }

    @Test("after the pivot, a non-retryable failure fails the saga; retry resumes forward with a fresh key")
    func pivotForwardFailureAndRetry() throws {
        var saga = SagaHarness(Self.pivoted)
        saga.succeed("reserve")
        saga.succeed("charge")
        saga.fail("ship", code: "ADDRESS_INVALID", retryable: false)
        #expect(saga.saga.status == .failed)
        #expect(saga.saga.failure?.phase == .forward)
        #expect(saga.saga.timers.isEmpty)
        #expect(saga.compensationOrder.isEmpty)
        saga.apply(.retry(reason: "address fixed"))
        let retried = try #require(saga.latestCommand("ship"))
        #expect(retried.idempotencyKey == "saga-1:ship:execute:1")
        #expect(saga.saga.status == .running)
        saga.succeed("ship")
        #expect(saga.saga.status == .completed)
    }

    @Test("cancel after the pivot is refused, and the deadline after the pivot is only noted")
    func pivotRefusesCancelAndDeadline() {
        var definition = Self.pivoted
        definition.deadline = .minutes(1)
        var saga = SagaHarness(definition)
        saga.succeed("reserve")
        saga.succeed("charge")
        saga.apply(.cancel(reason: "customer asked"))
        #expect(saga.lastEvents.map(\.kind) == [.requestRejected])
        #expect(saga.saga.status == .running)
        saga.fire(.deadline)
        #expect(saga.lastNotes.map(\.kind) == [.deadlineAfterPivot])
        #expect(saga.saga.status == .running)
    }

    @Test("a failure of the pivot itself compensates the steps before it")
    func pivotFailureCompensates() {
        var saga = SagaHarness(Self.pivoted)
        saga.succeed("reserve")
        saga.fail("charge", retryable: false)
        #expect(saga.compensationOrder == ["reserve"])
        saga.succeed("reserve", .compensate)
        #expect(saga.saga.status == .compensated)
    }

    @Test("the saga deadline compensates")
    func deadlineCompensates() {
        var definition = Definitions.threeSteps
        definition.deadline = .minutes(5)
        var saga = SagaHarness(definition)
        #expect(saga.timer(.deadline)?.dueAt == SagaHarness.start + .minutes(5))
        saga.succeed("reserve")
        saga.fire(.deadline)
        #expect(saga.saga.status == .compensating)
        #expect(saga.saga.compensation?.reason == "the saga deadline passed")
        // charge was in flight: it may take effect, so it is undone first.
        #expect(saga.compensationOrder == ["charge"])
        saga.succeed("charge", .compensate)
        saga.succeed("reserve", .compensate)
        #expect(saga.saga.status == .compensated)
    }

    @Test("a completed saga drops its deadline timer")
    func deadlineCancelledOnCompletion() {
        var definition = Definitions.threeSteps
        definition.deadline = .minutes(5)
        var saga = SagaHarness(definition)
        saga.succeed("reserve")
        saga.succeed("charge")
        saga.succeed("ship")
        #expect(saga.saga.timers.isEmpty)
        #expect(
            saga.last.contains { if case .cancelTimer(let timer) = $0 { timer.id == "saga:deadline" } else { false } })
    }

    @Test("cancel compensates the completed steps and the one in flight, then ends cancelled")
    func cancelCompensates() {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.succeed("reserve")
        saga.succeed("charge")
        saga.apply(.cancel(reason: "customer asked"))
        #expect(saga.saga.status == .compensating)
        #expect(saga.compensationOrder == ["ship"])
        saga.succeed("ship", .compensate)
        saga.succeed("charge", .compensate)
        saga.succeed("reserve", .compensate)
        #expect(saga.compensationOrder == ["ship", "charge", "reserve"])
        #expect(saga.saga.status == .cancelled)
        #expect(saga.events.last?.kind == .sagaCancelled)
    }

    @Test("cancel between retries compensates the step too: a retryable failure proves nothing")
    func cancelBetweenRetries() {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.succeed("reserve")
        saga.fail("charge", retryable: true)
        saga.apply(.cancel(reason: ""))
        #expect(saga.compensationOrder == ["charge"])
        #expect(saga.status("charge") == .compensating)
        #expect(saga.timer(.retryBackoff) == nil)
        saga.succeed("charge", .compensate)
        saga.succeed("reserve", .compensate)
        #expect(saga.saga.status == .cancelled)
    }

    @Test("cancel of a finished saga, or one already compensating, is refused")
    func cancelRefused() {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.fail("reserve", retryable: false)
        #expect(saga.saga.status == .compensated)
        saga.apply(.cancel(reason: "late"))
        #expect(saga.lastEvents.map(\.kind) == [.requestRejected])
        #expect(saga.lastEvents.first?.reason == "cancel refused: the saga is compensated")

        var other = SagaHarness(Definitions.threeSteps)
        other.succeed("reserve")
        other.fail("charge", retryable: false)
        other.apply(.cancel(reason: ""))
        #expect(other.lastEvents.first?.reason == "cancel refused: the saga is already compensating")
    }

    @Test("abort stops the saga without compensating")
    func abortDoesNotCompensate() {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.succeed("reserve")
        saga.apply(.abort(reason: "operator"))
        #expect(saga.saga.status == .aborted)
        #expect(saga.compensationOrder.isEmpty)
        #expect(saga.saga.timers.isEmpty)
        saga.apply(.abort(reason: "again"))
        #expect(saga.lastEvents.map(\.kind) == [.requestRejected])
        // A reply after the abort is noted, nothing more.
        saga.succeed("charge")
        #expect(saga.saga.status == .aborted)
        #expect(saga.lastCommands.isEmpty)
    }

    @Test("a compensation that exhausts its budget fails the saga; retry resumes in reverse order")
    func compensationFailsThenRetry() {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.succeed("reserve")
        saga.succeed("charge")
        saga.fail("ship", retryable: false)
        for _ in 1..<3 {
            saga.fail("charge", .compensate, retryable: true)
            saga.fire(.retryBackoff, step: "charge")
        }
        saga.fire(.attemptTimeout, step: "charge")
        #expect(saga.saga.status == .failed)
        #expect(saga.saga.failure?.phase == .compensation)
        #expect(saga.status("charge") == .compensationFailed)
        #expect(saga.status("reserve") == .completed)
        #expect(saga.saga.timers.isEmpty)
        #expect(saga.saga.waitingFor == nil)

        saga.apply(.retry(reason: "payments back"))
        #expect(saga.saga.status == .compensating)
        // Timeouts and retryable failures keep the key: the participant stored nothing.
        #expect(saga.latestCommand("charge", .compensate)?.idempotencyKey == "saga-1:charge:compensate")
        #expect(saga.latestCommand("charge", .compensate)?.attempt == 4)
        saga.succeed("charge", .compensate)
        saga.succeed("reserve", .compensate)
        #expect(saga.compensationOrder == ["charge", "reserve"])
        #expect(saga.saga.status == .compensated)
    }

    @Test("a non-retryable compensation failure fails the saga at once; retry uses a fresh key")
    func compensationNonRetryable() {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.succeed("reserve")
        saga.fail("charge", retryable: false)
        saga.fail("reserve", .compensate, code: "LOCKED", retryable: false)
        #expect(saga.saga.status == .failed)
        saga.apply(.retry(reason: ""))
        #expect(saga.latestCommand("reserve", .compensate)?.idempotencyKey == "saga-1:reserve:compensate:1")
        saga.succeed("reserve", .compensate)
        #expect(saga.saga.status == .compensated)
    }

    @Test("retry of a saga that is not failed is refused")
    func retryRefused() {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.apply(.retry(reason: ""))
        #expect(saga.lastEvents.map(\.kind) == [.requestRejected])
        #expect(saga.saga.status == .running)
    }

    @Test("a step without a compensation is passed over with a note")
    func noCompensationDefined() {
        let definition = SagaDefinition(
            name: "notify", version: 1,
            steps: [
                Definitions.step("email", Definitions.command("mail", compensation: false)),
                Definitions.step("charge", Definitions.command("payments")),
            ])
        var saga = SagaHarness(definition)
        saga.succeed("email")
        saga.fail("charge", retryable: false)
        #expect(saga.saga.status == .compensated)
        #expect(saga.lastNotes.map(\.kind) == [.noCompensationDefined])
    }

    static let parallel = SagaDefinition(
        name: "trip", version: 1,
        steps: [
            Definitions.step("hold", Definitions.command("wallet")),
            StepDefinition(
                name: "book",
                kind: .parallel(
                    ParallelGroup(steps: [
                        .init(name: "flight", command: Definitions.command("flights")),
                        .init(name: "hotel", command: Definitions.command("hotels")),
                        .init(name: "car", command: Definitions.command("cars", attempts: 1)),
                    ]))),
            Definitions.step("confirm", Definitions.command("mail")),
        ])

    @Test("a parallel group sends every member at once and completes when all complete")
    func parallelCompletes() {
        var saga = SagaHarness(Self.parallel)
        saga.succeed("hold")
        #expect(saga.lastCommands.map(\.step) == ["flight", "hotel", "car"])
        saga.succeed("hotel")
        saga.succeed("car")
        #expect(saga.latestCommand("confirm") == nil)
        saga.succeed("flight")
        #expect(saga.status("book") == .completed)
        saga.succeed("confirm")
        #expect(saga.saga.status == .completed)
    }

    @Test("a failing member compensates its siblings in reverse order of completion, then earlier steps")
    func parallelFailureCompensates() {
        var saga = SagaHarness(Self.parallel)
        saga.succeed("hold")
        saga.succeed("hotel")
        saga.succeed("flight")
        saga.fire(.attemptTimeout, step: "car")
        #expect(saga.status("car") == .compensating)
        saga.succeed("car", .compensate)
        saga.succeed("flight", .compensate)
        saga.succeed("hotel", .compensate)
        saga.succeed("hold", .compensate)
        #expect(saga.compensationOrder == ["car", "flight", "hotel", "hold"])
        #expect(saga.saga.status == .compensated)
    }

    @Test("members still in flight when a sibling fails are compensated before the completed ones")
    func parallelInFlightSiblings() {
        var saga = SagaHarness(Self.parallel)
        saga.succeed("hold")
        saga.succeed("hotel")
        saga.fail("car", retryable: false)
        // flight was in flight: it may take effect, so it is undone first; car never took effect.
        #expect(saga.compensationOrder == ["flight"])
        saga.succeed("flight", .compensate)
        saga.succeed("hotel", .compensate)
        saga.succeed("hold", .compensate)
        #expect(saga.compensationOrder == ["flight", "hotel", "hold"])
        #expect(saga.status("car") == .failed)
    }

    static let approval = SagaDefinition(
        name: "expense", version: 1,
        steps: [
            Definitions.step("reserve", Definitions.command("budget")),
            StepDefinition(
                name: "approve",
                kind: .signal(
                    SignalStep(
                        signals: ["approval", "override"], timeout: .hours(24), onTimeout: .compensate,
                        failWhen: try! Condition("signals.approval.approved == false")))),
            Definitions.step(
                "pay", Definitions.command("payments"),
                when: "signals.approval.approved == true || signals.override != null"),
        ])

    @Test("a signal ends the wait and its payload joins the saga's data")
    func signalConsumed() throws {
        var saga = SagaHarness(Self.approval)
        saga.succeed("reserve")
        #expect(saga.saga.status == .waiting)
        #expect(saga.timer(.signalTimeout, step: "approve")?.dueAt == saga.now + .hours(24))
        #expect(saga.saga.waitingFor?.description == "signal for step 'approve'")
        saga.signal("approval", id: "sig-1", payload: ["approved": true, "by": "ann"])
        #expect(saga.lastSignalOutcomes.map(\.kind) == [.consumed])
        #expect(saga.timer(.signalTimeout) == nil)
        let pay = try #require(saga.latestCommand("pay"))
        #expect(pay.payload["signals"]?["approval"]?["by"] == "ann")
        saga.succeed("pay")
        #expect(saga.saga.status == .completed)
    }

    @Test("a signal that arrives before the wait is buffered, then used")
    func signalBufferedEarly() {
        var saga = SagaHarness(Self.approval)
        saga.signal("approval", id: "sig-1", payload: ["approved": true])
        #expect(saga.lastSignalOutcomes.map(\.kind) == [.buffered])
        #expect(saga.saga.bufferedSignals.count == 1)
        saga.succeed("reserve")
        #expect(saga.lastSignalOutcomes.map(\.kind) == [.consumed])
        #expect(saga.saga.bufferedSignals.isEmpty)
        #expect(saga.latestCommand("pay") != nil)
        #expect(saga.timer(.signalTimeout) == nil)
    }

    @Test("a wait takes the first of several signal names")
    func waitAny() {
        var saga = SagaHarness(Self.approval)
        saga.succeed("reserve")
        saga.signal("override", id: "sig-9", payload: ["by": "cfo"])
        #expect(saga.status("approve") == .completed)
        saga.signal("approval", id: "sig-10", payload: ["approved": false])
        #expect(saga.lastSignalOutcomes.first?.kind == .rejected)
        #expect(saga.latestCommand("pay") != nil)
    }

    @Test("a signal whose payload says no fails the saga and compensates")
    func signalFailWhen() {
        var saga = SagaHarness(Self.approval)
        saga.succeed("reserve")
        saga.signal("approval", id: "sig-1", payload: ["approved": false])
        #expect(saga.status("approve") == .failed)
        #expect(saga.compensationOrder == ["reserve"])
        saga.succeed("reserve", .compensate)
        #expect(saga.saga.status == .compensated)
    }

    @Test("a signal id seen before is ignored and gets no second outcome")
    func signalDeduplicated() {
        var saga = SagaHarness(Self.approval)
        saga.signal("approval", id: "sig-1", payload: ["approved": true])
        let before = saga.saga
        saga.signal("approval", id: "sig-1", payload: ["approved": true])
        #expect(saga.saga == before)
        #expect(saga.lastSignalOutcomes.isEmpty)
        #expect(saga.lastNotes.map(\.kind) == [.duplicateSignal])
    }

    @Test("signals are rejected with a reason when no step waits for them or the saga is finished")
    func signalRejected() {
        var saga = SagaHarness(Self.approval)
        saga.signal("unknown", id: "sig-1")
        #expect(saga.lastSignalOutcomes.first?.kind == .rejected)
        #expect(saga.lastSignalOutcomes.first?.reason == "no step of the saga waits for signal 'unknown' any more")
        saga.apply(.abort(reason: ""))
        saga.signal("approval", id: "sig-2")
        #expect(saga.lastSignalOutcomes.first?.reason == "the saga is aborted")
    }

    @Test("a buffered signal that no step used expires when the saga ends")
    func signalExpires() {
        var saga = SagaHarness(Self.approval)
        saga.signal("approval", id: "sig-1", payload: ["approved": true])
        saga.fail("reserve", retryable: false)
        #expect(saga.saga.status == .compensated)
        #expect(saga.signalOutcomes.map(\.kind) == [.buffered, .expired])
    }

    @Test("a signal wait that times out compensates, or goes on, as the step says")
    func signalTimeout() {
        var saga = SagaHarness(Self.approval)
        saga.succeed("reserve")
        saga.fire(.signalTimeout, step: "approve")
        #expect(saga.status("approve") == .failed)
        #expect(saga.compensationOrder == ["reserve"])

        var definition = Self.approval
        definition.steps[1].kind = .signal(SignalStep(signals: ["approval"], timeout: .hours(1), onTimeout: .continue))
        var lenient = SagaHarness(definition)
        lenient.succeed("reserve")
        lenient.fire(.signalTimeout, step: "approve")
        #expect(lenient.status("approve") == .completed)
        // pay's condition reads the approval, which never came: skipped.
        #expect(lenient.status("pay") == .skipped)
        #expect(lenient.saga.status == .completed)
    }

    @Test("a sleep step waits on a durable timer, then the saga goes on")
    func sleeps() {
        let definition = SagaDefinition(
            name: "reminder", version: 1,
            steps: [
                Definitions.step("first", Definitions.command("mail", compensation: false)),
                StepDefinition(name: "wait", kind: .sleep(SleepStep(duration: .days(1)))),
                Definitions.step("second", Definitions.command("mail2", compensation: false)),
            ])
        var saga = SagaHarness(definition)
        saga.succeed("first")
        #expect(saga.saga.status == .sleeping)
        #expect(saga.timer(.sleep)?.dueAt == saga.now + .days(1))
        saga.fire(.sleep, step: "wait")
        #expect(saga.now == SagaHarness.start + .days(1))
        #expect(saga.latestCommand("second") != nil)
        saga.succeed("second")
        #expect(saga.saga.status == .completed)
    }

    @Test("replies that do not fit are recorded and change nothing")
    func unfitReplies() throws {
        var saga = SagaHarness(Definitions.threeSteps)
        let before = saga.saga
        let reserve = try #require(saga.latestCommand("reserve"))
        saga.apply(
            .reply(
                StepReply(
                    step: "nope", action: .execute, attempt: 1, idempotencyKey: "x", outcome: .success(result: nil))))
        #expect(saga.lastNotes.map(\.kind) == [.unknownStep])
        saga.apply(
            .reply(
                StepReply(
                    step: "reserve", action: .execute, attempt: 7, idempotencyKey: reserve.idempotencyKey,
                    outcome: .success(result: nil))))
        #expect(saga.lastNotes.map(\.kind) == [.unknownAttempt])
        saga.apply(
            .reply(
                StepReply(
                    step: "reserve", action: .execute, attempt: 1, idempotencyKey: "other-saga:reserve:execute",
                    outcome: .success(result: nil))))
        #expect(saga.lastNotes.map(\.kind) == [.keyMismatch])
        saga.apply(
            .reply(
                StepReply(
                    step: "reserve", action: .compensate, attempt: 1, idempotencyKey: "saga-1:reserve:compensate",
                    outcome: .success(result: nil))))
        #expect(saga.lastNotes.map(\.kind) == [.unknownAttempt])
        #expect(saga.saga == before)
    }

    @Test("a duplicate reply changes nothing")
    func duplicateReply() throws {
        var saga = SagaHarness(Definitions.threeSteps)
        let reserve = try #require(saga.latestCommand("reserve"))
        saga.reply(reserve, .success(result: ["r": 1]))
        let after = saga.saga
        saga.reply(reserve, .success(result: ["r": 1]))
        #expect(saga.saga == after)
        #expect(saga.lastCommands.isEmpty)
        #expect(saga.lastNotes.map(\.kind) == [.duplicateReply])
    }

    @Test("a timer that is no longer set is noted and ignored")
    func staleTimer() throws {
        var saga = SagaHarness(Definitions.threeSteps)
        let timeout = try #require(saga.timer(.attemptTimeout, step: "reserve"))
        saga.succeed("reserve")
        let before = saga.saga
        saga.apply(.timerFired(timerID: timeout.id))
        #expect(saga.saga == before)
        #expect(saga.lastNotes.map(\.kind) == [.staleTimer])
    }

    @Test("a repeated start answers with the same saga, flagging a different input")
    func duplicateStart() {
        var saga = SagaHarness(Definitions.threeSteps, input: ["orderId": "o-1"])
        let before = saga.saga
        saga.apply(.start(input: ["orderId": "o-1"]))
        #expect(saga.lastEvents.map(\.kind) == [.startDuplicate])
        #expect(saga.lastEvents.first?.conflict == false)
        saga.apply(.start(input: ["orderId": "o-2"]))
        #expect(saga.lastEvents.first?.conflict == true)
        #expect(saga.saga == before)
    }

    @Test("an event for another definition version is refused")
    func definitionMismatch() {
        var saga = SagaHarness(Definitions.threeSteps)
        var other = Definitions.threeSteps
        other.version = 2
        let transition = SagaMachine.apply(.cancel(reason: ""), to: saga.saga, definition: other, now: saga.now)
        #expect(transition.saga == saga.saga)
        #expect(transition.effects.count == 1)
        saga.apply(.cancel(reason: ""))
        #expect(saga.saga.status == .compensating)
    }

    @Test("every unfinished saga says what it waits for and until when")
    func waitingFor() {
        var saga = SagaHarness(Definitions.threeSteps)
        #expect(saga.saga.waitingFor?.description == "reply from step 'reserve' attempt 1")
        #expect(saga.saga.waitingFor?.until == SagaHarness.start + .seconds(10))
        saga.fail("reserve", retryable: true)
        #expect(saga.saga.waitingFor?.description == "retry of step 'reserve' (attempt 2)")
    }

    @Test("a forward failure in a parallel group after the pivot: retry resends every unfinished member")
    func pivotParallelForwardRetry() throws {
        let definition = SagaDefinition(
            name: "fulfil", version: 1,
            steps: [
                Definitions.step("charge", Definitions.command("payments", compensation: false), pivot: true),
                StepDefinition(
                    name: "notify",
                    kind: .parallel(
                        ParallelGroup(steps: [
                            .init(name: "mail", command: Definitions.command("mail", compensation: false)),
                            .init(name: "sms", command: Definitions.command("sms", compensation: false)),
                            .init(name: "push", command: Definitions.command("push", compensation: false)),
                        ]))),
            ])
        var saga = SagaHarness(definition)
        saga.succeed("charge")
        saga.succeed("push")
        saga.fail("sms", retryable: true)
        saga.fail("mail", code: "BAD_ADDRESS", retryable: false)
        #expect(saga.saga.status == .failed)
        #expect(saga.saga.timers.isEmpty)
        #expect(saga.saga.steps.allSatisfy { $0.inFlight == nil })
        saga.apply(.retry(reason: "fixed"))
        #expect(Set(saga.lastCommands.map(\.idempotencyKey)) == ["saga-1:mail:execute:1", "saga-1:sms:execute"])
        saga.succeed("mail")
        saga.succeed("sms")
        #expect(saga.saga.status == .completed)
    }

    @Test("a success after a non-retryable failure of the same key is noted for an operator")
    func successAfterDefinitiveFailure() throws {
        var saga = SagaHarness(Definitions.threeSteps)
        let reserve = try #require(saga.latestCommand("reserve"))
        saga.fail("reserve", retryable: false)
        #expect(saga.saga.status == .compensated)
        saga.reply(reserve, .success(result: ["r": 1]))
        #expect(saga.lastNotes.map(\.kind) == [.lateSuccessAfterFinish])
        #expect(saga.saga.status == .compensated)
    }

    @Test("a success after a non-retryable failure while compensating joins the compensation")
    func successJoinsCompensation() throws {
        var saga = SagaHarness(Definitions.threeSteps)
        saga.succeed("reserve")
        let charge = try #require(saga.latestCommand("charge"))
        saga.fail("charge", retryable: false)
        #expect(saga.compensationOrder == ["reserve"])
        saga.reply(charge, .success(result: ["p": 1]))
        #expect(saga.lastNotes.map(\.kind) == [.lateSuccessJoinsCompensation])
        saga.succeed("reserve", .compensate)
        saga.succeed("charge", .compensate)
        #expect(saga.compensationOrder == ["reserve", "charge"])
        #expect(saga.saga.status == .compensated)
    }

    @Test("the saga survives a JSON round trip unchanged")
    func codable() throws {
        var saga = SagaHarness(Self.approval)
        saga.signal("approval", id: "s", payload: ["approved": true, "n": 1.5])
        let data = try JSONEncoderForTests.encode(saga.saga)
        let decoded = try JSONDecoderForTests.decode(SagaInstance.self, from: data)
        #expect(decoded == saga.saga)
    }
}

@Suite("Idempotency keys")
struct IdempotencyKeyTests {
    @Test(arguments: [
        ("s-1", "charge", StepAction.execute, 0, "s-1:charge:execute"),
        ("s-1", "charge", StepAction.compensate, 0, "s-1:charge:compensate"),
        ("s-1", "charge", StepAction.execute, 3, "s-1:charge:execute:3"),
        ("s-1", "charge", StepAction.compensate, 12, "s-1:charge:compensate:12"),
    ])
    func makeAndMatch(saga: String, step: String, action: StepAction, generation: Int, key: String) {
        #expect(IdempotencyKey.make(sagaID: saga, step: step, action: action, generation: generation) == key)
        #expect(IdempotencyKey.matches(key, sagaID: saga, step: step, action: action, generation: generation))
    }

    @Test(arguments: [
        "s-1:charge:execute:1", "s-1:charge:compensate", "s-2:charge:execute", "s-1:charg:execute",
        "s-1:charge:execute:", "s-1:charge:executex", "", "s-1", "s-1:charge",
    ])
    func mismatches(key: String) {
        #expect(!IdempotencyKey.matches(key, sagaID: "s-1", step: "charge", action: .execute, generation: 0))
    }

    @Test(arguments: [
        "s-1:charge:execute", "s-1:charge:execute:03", "s-1:charge:execute:30", "s-1:charge:execute:3x",
        "s-1:charge:execute:-3", "s-1:charge:execute:+3", "s-1:charge:execute:99999999999999999999999",
        "s-1:charge:compensate:3", "s-1:charge:execute3",
    ])
    func mismatchesOfAGeneration(key: String) {
        #expect(!IdempotencyKey.matches(key, sagaID: "s-1", step: "charge", action: .execute, generation: 3))
    }

    @Test func multiByteNamesMatchByteForByte() {
        let key = IdempotencyKey.make(sagaID: "sága-1", step: "bezahlen-€", action: .compensate, generation: 7)
        #expect(IdempotencyKey.matches(key, sagaID: "sága-1", step: "bezahlen-€", action: .compensate, generation: 7))
        #expect(!IdempotencyKey.matches(key, sagaID: "saga-1", step: "bezahlen-€", action: .compensate, generation: 7))
    }
}
