import PropertyBased
import SagaCore
import Testing

/// Invariants of the saga machine over generated definitions and generated event sequences:
/// replies out of order, duplicated and late; timeouts; signals early, twice or never; cancels,
/// aborts and retries at any point.
@Suite("Saga machine properties")
struct SagaMachinePropertyTests {
    static let cases = 1_000

    static let inputs = zip(
        Gen.int(in: 0...9_999).array(of: 1...6),
        Gen.int(in: -1...5),
        Gen.bool,
        Gen.int(in: 0...9_999).array(of: 0...60)
    ).map { steps, pivot, deadline, choices in
        SimulationInput(steps: steps, pivot: pivot, deadline: deadline, choices: choices)
    }

    @Test("generated definitions are valid")
    func definitionsAreValid() async {
        await propertyCheck(count: Self.cases, input: Self.inputs) { input in
            #expect(throws: Never.self) { try input.definition.validated(source: "generated") }
        }
    }

    @Test("a terminal status never changes; failed changes only by retry or abort")
    func terminalIsFinal() async {
        await propertyCheck(count: Self.cases, input: Self.inputs) { input in
            let simulation = Simulation(input)
            for record in simulation.records {
                if record.before.status.isTerminal {
                    #expect(record.after.status == record.before.status, "\(record.event)")
                }
                if record.before.status == .failed, record.after.status != .failed {
                    switch record.event {
                    case .retry, .abort: break
                    case .start, .reply, .signal, .timerFired, .cancel:
                        Issue.record("failed saga changed by \(record.event)")
                    }
                }
            }
        }
    }

    @Test("a duplicate event changes nothing")
    func duplicatesChangeNothing() async {
        await propertyCheck(count: Self.cases, input: Self.inputs) { input in
            let simulation = Simulation(input)
            for record in simulation.records {
                let again = SagaMachine.apply(
                    record.event, to: record.after, definition: simulation.definition, now: record.now)
                #expect(again.saga == record.after, "\(record.event)")
                for effect in again.effects {
                    switch effect {
                    case .send, .schedule, .cancelTimer, .signalOutcome:
                        Issue.record("duplicate \(record.event) gave \(effect)")
                    case .publish(let event):
                        #expect(event.kind == .requestRejected, "duplicate \(record.event) published \(event.kind)")
                    case .note:
                        break
                    }
                }
            }
        }
    }

    @Test("compensations run once per step that may have taken effect, in reverse order, never after the pivot")
    func compensationOrder() async {
        await propertyCheck(count: Self.cases, input: Self.inputs) { input in
            let simulation = Simulation(input)
            let definition = simulation.definition
            let saga = simulation.saga
            let commands = simulation.harness.commands
            let firsts = commands.filter { $0.action == .compensate && $0.attempt == 1 }.map(\.step)
            #expect(Set(firsts).count == firsts.count, "a step compensated twice: \(firsts)")

            let joinedLate = Set(
                simulation.harness.effects.compactMap { effect -> String? in
                    if case .note(let note) = effect, note.kind == .lateSuccessJoinsCompensation { return note.step }
                    return nil
                })
            let ordered = firsts.filter { !joinedLate.contains($0) }.map { saga.step($0)?.effectOrder ?? 0 }
            #expect(ordered == ordered.sorted(by: >), "not in reverse order of taking effect: \(firsts)")

            let pivot = definition.pivotIndex
            for name in firsts {
                let state = saga.step(name)
                #expect(state?.mayHaveTakenEffect == true, "\(name) compensated but never took effect")
                #expect((state?.attempt ?? 0) >= 1, "\(name) compensated but never started")
                if let pivot,
                    let top = definition.steps.firstIndex(where: { step in
                        step.name == name
                            || {
                                if case .parallel(let g) = step.kind {
                                    g.steps.contains { $0.name == name }
                                } else {
                                    false
                                }
                            }()
                    })
                {
                    #expect(top <= pivot, "\(name) after the pivot was compensated")
                }
            }
            // A success after a non-retryable failure breaks the participant contract; the machine
            // notes it for an operator rather than reopening a finished saga.
            let contractBroken = Set(
                simulation.harness.effects.compactMap { effect -> String? in
                    if case .note(let note) = effect, note.kind == .lateSuccessAfterFinish { return note.step }
                    return nil
                })
            if saga.status == .compensated || saga.status == .cancelled {
                for state in saga.steps where state.mayHaveTakenEffect && !contractBroken.contains(state.name) {
                    guard let command = definition.commandStep(named: state.name) else { continue }
                    if command.compensation != nil {
                        #expect(
                            state.status == .compensated, "\(state.name) may have taken effect but is \(state.status)")
                    }
                }
            }
        }
    }

    @Test("every unfinished saga waits for something that will come")
    func alwaysWaitingForSomething() async {
        await propertyCheck(count: Self.cases, input: Self.inputs) { input in
            let simulation = Simulation(input)
            for saga in [simulation.harness.saga] + simulation.records.map(\.after) where !saga.status.isFinished {
                #expect(!saga.timers.isEmpty, "\(saga.status) saga with no timer")
                #expect(saga.waitingFor != nil)
                for state in saga.steps {
                    if let attempt = state.inFlight {
                        #expect(
                            saga.timers.contains {
                                $0.kind == .attemptTimeout && $0.step == state.name && $0.attempt == attempt
                            },
                            "\(state.name) attempt \(attempt) in flight with no timeout")
                    }
                }
                if saga.status == .waiting { #expect(saga.timers.contains { $0.kind == .signalTimeout }) }
                if saga.status == .sleeping { #expect(saga.timers.contains { $0.kind == .sleep }) }
            }
            // And the world eventually finishes every saga.
            #expect(simulation.saga.status.isTerminal, "ended \(simulation.saga.status)")
        }
    }

    @Test("updatedAt moves exactly when the saga changed")
    func updatedAtTracksChanges() async {
        await propertyCheck(count: Self.cases, input: Self.inputs) { input in
            let simulation = Simulation(input)
            for record in simulation.records {
                var after = record.after
                after.updatedAt = record.before.updatedAt
                if after == record.before {
                    #expect(
                        record.after.updatedAt == record.before.updatedAt, "\(record.event) touched an unchanged saga")
                } else {
                    #expect(record.after.updatedAt == record.now, "\(record.event) changed the saga without updatedAt")
                }
            }
        }
    }

    @Test("the same events always give the same result")
    func deterministic() async {
        await propertyCheck(count: Self.cases, input: Self.inputs) { input in
            let simulation = Simulation(input)
            let replayed = simulation.replay()
            #expect(replayed.map(\.saga) == simulation.records.map(\.after))
            #expect(replayed.map(\.effects) == simulation.records.map(\.effects))
        }
    }

    @Test("every signal gets exactly one final outcome")
    func signalOutcomes() async {
        await propertyCheck(count: Self.cases, input: Self.inputs) { input in
            let simulation = Simulation(input)
            var outcomes: [String: [SignalOutcome.Kind]] = [:]
            for outcome in simulation.harness.signalOutcomes {
                outcomes[outcome.signalID, default: []].append(outcome.kind)
            }
            for (id, kinds) in outcomes {
                let allowed: [[SignalOutcome.Kind]] = [
                    [.rejected], [.consumed], [.buffered, .consumed], [.buffered, .expired],
                ]
                #expect(allowed.contains(kinds), "signal \(id): \(kinds)")
            }
        }
    }

    @Test("timers in the saga match the timers its effects set")
    func timersMatchEffects() async {
        await propertyCheck(count: Self.cases, input: Self.inputs) { input in
            let simulation = Simulation(input)
            #expect(Set(simulation.harness.timerTable.keys) == Set(simulation.saga.timers.map(\.id)))
            let due = simulation.records.compactMap { record -> Bool? in
                guard case .timerFired(let id) = record.event,
                    let timer = record.before.timers.first(where: { $0.id == id })
                else { return nil }
                return timer.dueAt <= record.now
            }
            #expect(due.allSatisfy { $0 }, "a timer fired before it was due")
        }
    }
}
