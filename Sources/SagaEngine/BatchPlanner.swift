import SagaCore
import SagaProtocol
import SagaStore

/// What the engine's messages say about themselves, and how long it keeps what waits.
public struct EngineSettings: Sendable, Hashable {
    /// The topics it reads and writes.
    public var topics = SagaTopics()
    /// The CloudEvents `source` of every message it sends.
    public var source = "/sagad"
    /// How long a signal for a saga that does not exist yet (addressed by its start's idempotency
    /// key) waits for the saga to start. Default 24 h.
    public var pendingSignalLifetime = SagaDuration.hours(24)

    public init() {}
}

/// Something a batch met that it does not store: the engine logs and counts it.
public struct PlanNote: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// A reply for a saga that does not exist.
        case replyForUnknownSaga = "reply-for-unknown-saga"
        /// An operator's request for a saga that does not exist.
        case requestForUnknownSaga = "request-for-unknown-saga"
        /// A saga whose definition (name and version) is not loaded: its event goes to the
        /// dead-letter topic (a timer is put off by a minute), and the saga is not changed.
        case definitionNotLoaded = "definition-not-loaded"
    }

    public var kind: Kind
    public var sagaID: String?
    public var detail: String

    public var description: String { "\(kind.rawValue)\(sagaID.map { " \($0)" } ?? ""): \(detail)" }
}

/// What a batch writes, and what it noticed.
public struct BatchPlan: Sendable {
    public var writes = BatchWrites()
    public var notes: [PlanNote] = []
    /// Sagas started, by saga type.
    public var started: [String: Int] = [:]
    /// Sagas that reached a final status (or `failed`) in this batch: type, status, and how long
    /// the saga ran in milliseconds.
    public var finished: [(sagaType: String, status: SagaStatus, milliseconds: Int64)] = []
    /// Steps whose action completed in this batch: type, step, and how long the step took from its
    /// first attempt in milliseconds.
    public var stepsCompleted: [(sagaType: String, step: String, milliseconds: Int64)] = []
    /// Inputs that could not be applied because their saga's definition (name and version) is not
    /// loaded here, with the reason: the engine sends them to the dead-letter topic, to be sent
    /// again (under a new message id) once the definition is loaded.
    public var unapplied: [(input: EngineInput, reason: String)] = []
    /// Every event the batch publishes, in order (for the engine's log).
    public var events: [SagaEventMessage] = []
}

/// The engine's pure core: turns a batch of inputs, and the sagas they concern (locked by the
/// store), into the writes of one transaction — new states, history, outbox messages, pending
/// signals — through ``SagaMachine``. Time and ids are injected; nothing here does I/O.
public struct BatchPlanner {
    public let definitions: DefinitionRegistry
    public let settings: EngineSettings
    public let now: SagaTimestamp
    /// Makes a fresh id: for new sagas and for the CloudEvents id of events.
    public var makeID: () -> String

    public init(
        definitions: DefinitionRegistry, settings: EngineSettings, now: SagaTimestamp,
        makeID: @escaping () -> String
    ) {
        self.definitions = definitions
        self.settings = settings
        self.now = now
        self.makeID = makeID
    }

    /// The writes for a batch of inputs.
    public func plan(_ context: BatchContext<EngineInput>) -> BatchPlan {
        var work = Work(planner: self, records: context.sagas)
        var started: [StartKey: String] = context.existingStarts
        var pendingByKey = context.pendingSignals
        for input in context.inputs {
            work.current = input
            switch input.request {
            case .start(let start):
                let key = input.startKey!
                if let id = started[key], work.records[id] != nil {
                    work.apply(.start(input: start.input), to: id)
                    continue
                }
                guard let definition = definitions.definition(start.sagaType, version: start.version) else {
                    let version = start.version.map { " version \($0)" } ?? ""
                    work.reject(
                        sagaID: nil, sagaType: start.sagaType, key: start.idempotencyKey,
                        reason: "no saga definition \(start.sagaType)\(version) is loaded",
                        idempotencyKey: start.idempotencyKey)
                    continue
                }
                let id = makeID()
                work.start(id: id, definition: definition, request: start)
                started[key] = id
                // Signals that came for this start before it: stored ones, then this batch's.
                for pending in pendingByKey.removeValue(forKey: key) ?? [] {
                    work.apply(.signal(pending.signal), to: id)
                    work.plan.writes.consumedPendingSignals.append(pending.id)
                }
                for pended in work.pended.removeValue(forKey: key) ?? [] {
                    work.apply(.signal(pended.signal), to: id)
                }
            case .cancel(let cancel):
                guard work.records[cancel.sagaID] != nil else {
                    work.reject(
                        sagaID: cancel.sagaID, sagaType: "", key: cancel.sagaID,
                        reason: "cancel: no saga \(cancel.sagaID)")
                    continue
                }
                work.apply(
                    .cancel(reason: cancel.reason.isEmpty ? "cancelled on request" : cancel.reason), to: cancel.sagaID)
            case .signal(let signal):
                switch signal.target {
                case .saga(let id):
                    guard work.records[id] != nil else {
                        work.signalRejected(signal, sagaID: id, key: id, reason: "no saga \(id)")
                        continue
                    }
                    work.apply(.signal(signal.delivery), to: id)
                case .start(_, _, let idempotencyKey):
                    let key = input.startKey!
                    if let id = started[key], work.records[id] != nil {
                        work.apply(.signal(signal.delivery), to: id)
                    } else {
                        work.pend(signal, key: key, idempotencyKey: idempotencyKey)
                    }
                }
            case .reply(let reply):
                guard work.records[reply.sagaID] != nil else {
                    work.plan.notes.append(
                        PlanNote(
                            kind: .replyForUnknownSaga, sagaID: reply.sagaID,
                            detail: "\(reply.reply.step) \(reply.reply.action.rawValue) attempt \(reply.reply.attempt)")
                    )
                    continue
                }
                work.apply(.reply(reply.reply), to: reply.sagaID)
            case .operatorCommand(let id, let event):
                guard work.records[id] != nil else {
                    work.plan.notes.append(PlanNote(kind: .requestForUnknownSaga, sagaID: id, detail: "\(event)"))
                    continue
                }
                work.apply(event, to: id)
            }
        }
        for key in work.pendedOrder {
            for signal in work.pended[key] ?? [] {
                work.plan.writes.pendSignals.append(
                    PendingSignal(
                        target: key, signal: signal.signal, receivedAt: now,
                        expiresAt: now + settings.pendingSignalLifetime))
            }
        }
        return work.finish()
    }

    /// The writes for due timers: each fires on its saga.
    public func plan(_ context: TimerBatchContext) -> BatchPlan {
        var work = Work(planner: self, records: context.sagas)
        for timer in context.timers where work.records[timer.sagaID] != nil {
            work.apply(.timerFired(timerID: timer.timerID), to: timer.sagaID)
        }
        return work.finish()
    }

    /// The working state of one batch.
    struct Work {
        let planner: BatchPlanner
        var records: [String: SagaRecord]
        var plan = BatchPlan()
        /// The sagas changed, in the order they were first changed.
        var changed: [String] = []
        var changedSet: Set<String> = []
        var history: [String: [HistoryRecord]] = [:]
        var outbox: [String: [OutboxMessage]] = [:]
        /// The input being applied.
        var current: EngineInput?
        /// Signals of this batch for starts not seen yet, by start key.
        var pended: [StartKey: [(signal: SignalDelivery, idempotencyKey: String)]] = [:]
        var pendedOrder: [StartKey] = []

        init(planner: BatchPlanner, records: [String: SagaRecord]) {
            self.planner = planner
            self.records = records
        }

        var settings: EngineSettings { planner.settings }
        var now: SagaTimestamp { planner.now }

        mutating func start(id: String, definition: SagaDefinition, request: StartSagaRequest) {
            let transition = SagaMachine.start(id: id, definition: definition, input: request.input, now: now)
            let record = SagaRecord(
                instance: transition.saga, tenant: request.tenant, startKey: request.idempotencyKey,
                priority: request.priority)
            records[id] = record
            changed.append(id)
            changedSet.insert(id)
            plan.started[definition.name, default: 0] += 1
            recordEffects(transition.effects, of: record)
        }

        mutating func apply(_ event: SagaEvent, to id: String) {
            guard var record = records[id] else { return }
            let instance = record.instance
            guard
                let definition = planner.definitions.definition(
                    instance.definitionName, version: instance.definitionVersion)
            else {
                let detail = "\(instance.definitionName) version \(instance.definitionVersion)"
                plan.notes.append(PlanNote(kind: .definitionNotLoaded, sagaID: id, detail: detail))
                if case .timerFired = event {
                    // Not fired, and not left due either (it would be claimed again at once, and
                    // hold the timer service at this saga): tried again in a minute.
                    for index in record.instance.timers.indices where record.instance.timers[index].dueAt <= now {
                        record.instance.timers[index].dueAt = now + .minutes(1)
                    }
                    records[id] = record
                    if changedSet.insert(id).inserted { changed.append(id) }
                } else if let current {
                    plan.unapplied.append(
                        (current, "the definition \(detail) of saga \(id) is not loaded by this sagad"))
                }
                return
            }
            let wasFinished = instance.status.isFinished
            let effects = record.instance.apply(event, definition: definition, now: now)
            records[id] = record
            if changedSet.insert(id).inserted { changed.append(id) }
            if !wasFinished && record.instance.status.isFinished {
                let saga = record.instance
                plan.finished.append(
                    (
                        saga.definitionName, saga.status,
                        saga.updatedAt.millisecondsSinceEpoch - saga.createdAt.millisecondsSinceEpoch
                    ))
            }
            recordEffects(effects, of: record)
        }

        /// Turns effects into outbox messages and history.
        mutating func recordEffects(_ effects: [SagaEffect], of record: SagaRecord) {
            let id = record.id
            let instance = record.instance
            for effect in effects {
                switch effect {
                case .send(let command):
                    let message = StepCommandMessage(command, replyTopic: settings.topics.replies)
                    let wire = SagaWire.encode(
                        message, id: "\(command.idempotencyKey)#\(command.attempt)", source: settings.source,
                        time: now, subject: id, key: id)
                    outbox[id, default: []].append(
                        OutboxMessage(topic: settings.topics.commands(for: command.participant), wire))
                case .schedule, .cancelTimer:
                    // The store keeps the timer rows equal to the state's timers.
                    break
                case .publish(let lifecycle):
                    if lifecycle.kind == .stepCompleted, let name = lifecycle.step,
                        let step = instance.step(name), let started = step.startedAt
                    {
                        plan.stepsCompleted.append(
                            (
                                instance.definitionName, name,
                                (step.finishedAt ?? now).millisecondsSinceEpoch - started.millisecondsSinceEpoch
                            ))
                    }
                    let event = SagaEventMessage(
                        lifecycle, sagaID: id, sagaType: instance.definitionName, status: instance.status,
                        idempotencyKey: record.startKey)
                    publish(event, of: id)
                case .signalOutcome(let outcome):
                    let event = SagaEventMessage(
                        outcome, sagaID: id, sagaType: instance.definitionName, status: instance.status)
                    publish(event, of: id)
                case .note(let note):
                    var entry: [String: JSONValue] = ["note": .string(note.kind.rawValue)]
                    if let step = note.step { entry["step"] = .string(step) }
                    if let attempt = note.attempt { entry["attempt"] = .integer(Int64(attempt)) }
                    if let detail = note.detail { entry["detail"] = .string(detail) }
                    history[id, default: []].append(HistoryRecord(at: now, entry: .object(entry)))
                }
            }
        }

        mutating func publish(_ event: SagaEventMessage, of id: String) {
            plan.events.append(event)
            let wire = SagaWire.encode(
                event, id: planner.makeID(), source: settings.source, time: now, subject: id, key: id)
            outbox[id, default: []].append(OutboxMessage(topic: settings.topics.events, wire))
            history[id, default: []].append(HistoryRecord(at: now, entry: event.json))
        }

        /// A request that names no saga that exists: answered with `saga.request-rejected`.
        mutating func reject(
            sagaID: String?, sagaType: String, key: String, reason: String, idempotencyKey: String? = nil
        ) {
            var event = SagaEventMessage(
                sagaID: sagaID, sagaType: sagaType, event: SagaLifecycleEvent.Kind.requestRejected.rawValue)
            event.reason = reason
            event.idempotencyKey = idempotencyKey
            let wire = SagaWire.encode(
                event, id: planner.makeID(), source: settings.source, time: now, subject: sagaID, key: key)
            plan.writes.outbox.append(OutboxMessage(topic: settings.topics.events, wire))
        }

        mutating func signalRejected(_ signal: SignalRequest, sagaID: String?, key: String, reason: String) {
            let outcome = SignalOutcome(signalID: signal.signalID, name: signal.name, kind: .rejected, reason: reason)
            let event = SagaEventMessage(outcome, sagaID: sagaID, sagaType: "", status: nil)
            let wire = SagaWire.encode(
                event, id: planner.makeID(), source: settings.source, time: now, subject: sagaID, key: key)
            plan.writes.outbox.append(OutboxMessage(topic: settings.topics.events, wire))
        }

        /// A signal for a saga not started yet: kept until it starts, and answered `signal.buffered`.
        mutating func pend(_ signal: SignalRequest, key: StartKey, idempotencyKey: String) {
            if pended[key] == nil { pendedOrder.append(key) }
            pended[key, default: []].append((signal.delivery, idempotencyKey))
            let outcome = SignalOutcome(
                signalID: signal.signalID, name: signal.name, kind: .buffered,
                reason: "the saga has not started yet")
            var event = SagaEventMessage(outcome, sagaID: nil, sagaType: key.sagaType, status: nil)
            event.idempotencyKey = idempotencyKey
            let wire = SagaWire.encode(
                event, id: planner.makeID(), source: settings.source, time: now, key: idempotencyKey)
            plan.writes.outbox.append(OutboxMessage(topic: settings.topics.events, wire))
        }

        func finish() -> BatchPlan {
            var plan = self.plan
            plan.writes.sagas = changed.map { id in
                SagaWrite(record: records[id]!, history: history[id] ?? [], outbox: outbox[id] ?? [])
            }
            return plan
        }
    }
}

extension OutboxMessage {
    /// A protocol message for `topic`.
    public init(topic: String, _ message: WireMessage) {
        self.init(topic: topic, key: message.key, headers: message.headers, payload: message.value)
    }
}
