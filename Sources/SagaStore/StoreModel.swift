import Foundation
import SagaCore

/// A saga as the store keeps it: the machine's state and what the store indexes beside it.
public struct SagaRecord: Sendable, Hashable {
    /// The state machine's state: id, definition, status, steps, timers, everything.
    public var instance: SagaInstance
    /// The tenant the saga belongs to; `""` when tenants are not used.
    public var tenant: String
    /// The idempotency key the saga was started with, unique per tenant and saga type.
    public var startKey: String?
    /// Higher runs first where the engine has a choice.
    public var priority: Int
    /// How many times the saga was written (1 after its start).
    public var revision: Int64

    public init(instance: SagaInstance, tenant: String = "", startKey: String? = nil, priority: Int = 0) {
        self.instance = instance
        self.tenant = tenant
        self.startKey = startKey
        self.priority = priority
        self.revision = 0
    }

    /// The saga's id.
    public var id: String { instance.id }
}

/// Identifies a start request for idempotency: the same tenant, saga type and key start one saga.
public struct StartKey: Sendable, Hashable, CustomStringConvertible {
    public var tenant: String
    /// The saga type: its definition's name.
    public var sagaType: String
    /// The caller's idempotency key.
    public var key: String

    public init(tenant: String = "", sagaType: String, key: String) {
        self.tenant = tenant
        self.sagaType = sagaType
        self.key = key
    }

    public var description: String { "\(tenant.isEmpty ? "" : tenant + "/")\(sagaType)/\(key)" }
}

/// One input of a batch: an event for a saga, as the engine decoded it from a message. The store
/// reads only what it needs to deduplicate and to lock; the rest is the engine's.
public protocol SagaStoreInput: Sendable {
    /// The id of the message it came in, recorded in the inbox; `nil` when it did not come in a
    /// message (an operator's request through the API, for example).
    var messageID: String? { get }
    /// The saga it is for, when it names one.
    var sagaID: String? { get }
    /// For a start with an idempotency key: the key, looked up before the batch is computed.
    var startKey: StartKey? { get }
}

/// A message to publish, written to the outbox in the same transaction as the state it follows.
public struct OutboxMessage: Sendable, Hashable {
    public var topic: String
    /// The Kafka message key (the saga id, usually).
    public var key: String?
    /// Kafka headers, e.g. the CloudEvents attributes.
    public var headers: [String: String]
    /// The message value, exactly as it is to be published.
    public var payload: String

    public init(topic: String, key: String?, headers: [String: String] = [:], payload: String) {
        self.topic = topic
        self.key = key
        self.headers = headers
        self.payload = payload
    }
}

/// An outbox row waiting to be published.
public struct OutboxRow: Sendable, Hashable {
    /// Increases in the order of writing; within one saga, in the order of its transitions.
    public var id: Int64
    public var sagaID: String
    /// The relay lane: rows of one saga always share one (see ``SagaStore/outboxLane(of:)``).
    public var lane: Int
    public var message: OutboxMessage
    public var createdAt: Date
}

/// One entry of a saga's timeline, as the engine records it: when, and what (the event, its
/// effects, a note), as a JSON document.
public struct HistoryRecord: Sendable, Hashable {
    /// When it happened.
    public var at: SagaTimestamp
    /// What happened.
    public var entry: JSONValue

    public init(at: SagaTimestamp, entry: JSONValue) {
        self.at = at
        self.entry = entry
    }
}

/// A signal for a saga that does not exist yet, addressed by its start key; kept until the saga
/// starts or the signal expires.
public struct PendingSignal: Sendable, Hashable {
    /// The row id; `0` for a signal not yet written.
    public var id: Int64
    public var target: StartKey
    public var signal: SignalDelivery
    public var receivedAt: SagaTimestamp
    public var expiresAt: SagaTimestamp

    public init(target: StartKey, signal: SignalDelivery, receivedAt: SagaTimestamp, expiresAt: SagaTimestamp) {
        self.id = 0
        self.target = target
        self.signal = signal
        self.receivedAt = receivedAt
        self.expiresAt = expiresAt
    }
}

/// What a batch writes for one saga.
///
/// The saga's timers are not listed: the store keeps its timer rows equal to the state's
/// ``SagaInstance/timers``, which the machine keeps current.
public struct SagaWrite: Sendable {
    /// The saga's new state. A record the batch did not load is inserted (a start).
    public var record: SagaRecord
    /// The timeline entries, in order.
    public var history: [HistoryRecord]
    /// Messages to publish, in order.
    public var outbox: [OutboxMessage]

    public init(record: SagaRecord, history: [HistoryRecord] = [], outbox: [OutboxMessage] = []) {
        self.record = record
        self.history = history
        self.outbox = outbox
    }
}

/// Everything a batch writes.
public struct BatchWrites: Sendable {
    /// One write per saga changed or started.
    public var sagas: [SagaWrite]
    /// Signals for sagas that do not exist yet.
    public var pendSignals: [PendingSignal]
    /// Pending signals used by the sagas started in this batch (their ``PendingSignal/id``).
    public var consumedPendingSignals: [Int64]
    /// Messages to publish that belong to no saga's order (a rejection of a request for a saga
    /// that does not exist), each under the key it names.
    public var outbox: [OutboxMessage]

    public init(
        sagas: [SagaWrite] = [], pendSignals: [PendingSignal] = [], consumedPendingSignals: [Int64] = [],
        outbox: [OutboxMessage] = []
    ) {
        self.sagas = sagas
        self.pendSignals = pendSignals
        self.consumedPendingSignals = consumedPendingSignals
        self.outbox = outbox
    }
}

/// What the closure of ``SagaStore/applyBatch(_:now:compute:)`` sees: the batch after the inbox
/// dropped its duplicates, and the sagas it concerns, locked until the transaction ends.
public struct BatchContext<Input: SagaStoreInput>: Sendable {
    /// The inputs to apply, in their order, without those whose message was seen before.
    public var inputs: [Input]
    /// Inputs dropped because their message id was already in the inbox (or twice in the batch).
    public var duplicates: [Input]
    /// The sagas the inputs name, or that their start keys found, locked, by id.
    public var sagas: [String: SagaRecord]
    /// For each start key of the batch that already started a saga: that saga's id.
    public var existingStarts: [StartKey: String]
    /// Signals waiting for the sagas the batch's start keys would start, oldest first.
    public var pendingSignals: [StartKey: [PendingSignal]]

    public init(
        inputs: [Input], duplicates: [Input] = [], sagas: [String: SagaRecord] = [:],
        existingStarts: [StartKey: String] = [:], pendingSignals: [StartKey: [PendingSignal]] = [:]
    ) {
        self.inputs = inputs
        self.duplicates = duplicates
        self.sagas = sagas
        self.existingStarts = existingStarts
        self.pendingSignals = pendingSignals
    }
}

/// A due timer, claimed for firing.
public struct DueTimer: Sendable, Hashable {
    public var sagaID: String
    /// The timer's id within its saga (``SagaTimer/id``).
    public var timerID: String
    public var dueAt: SagaTimestamp

    public init(sagaID: String, timerID: String, dueAt: SagaTimestamp) {
        self.sagaID = sagaID
        self.timerID = timerID
        self.dueAt = dueAt
    }
}

/// What the closure of ``SagaStore/applyDueTimers(now:limit:compute:)`` sees.
public struct TimerBatchContext: Sendable {
    /// The claimed timers whose saga is locked here, earliest first. A timer whose saga is not
    /// written is deleted when its saga's state no longer holds it (a stale timer).
    public var timers: [DueTimer]
    /// Their sagas, locked, by id.
    public var sagas: [String: SagaRecord]

    public init(timers: [DueTimer], sagas: [String: SagaRecord]) {
        self.timers = timers
        self.sagas = sagas
    }
}

/// What a batch did.
public struct BatchOutcome: Sendable, Hashable {
    /// Inputs dropped as duplicates.
    public var duplicates: Int
    /// Sagas written.
    public var sagasWritten: Int
    /// Outbox rows written (the relay is notified when there are any).
    public var outboxRows: Int
    /// Timers claimed and deleted (a timer batch).
    public var timersFired: Int
}

/// A saga in a listing: its record's indexed columns, without the machine state.
public struct SagaSummary: Sendable, Hashable {
    public var id: String
    public var tenant: String
    public var sagaType: String
    public var definitionVersion: Int
    public var status: SagaStatus
    public var startKey: String?
    public var priority: Int
    /// What it waits for: `reply`, `compensation`, `retry`, `signal`, `sleep`, `deadline`, or
    /// `operator` for a failed saga; `nil` when finished.
    public var waitingFor: String?
    /// The same, for people, e.g. "signal for step 'approval'".
    public var waitingDetail: String?
    public var waitUntil: SagaTimestamp?
    public var createdAt: SagaTimestamp
    public var updatedAt: SagaTimestamp
}

/// Filters of a saga listing; every one that is set must hold.
public struct SagaQuery: Sendable, Hashable {
    public var statuses: Set<SagaStatus> = []
    public var sagaType: String?
    public var tenant: String?
    /// Created at or after.
    public var createdFrom: SagaTimestamp?
    /// Created before.
    public var createdBefore: SagaTimestamp?
    /// What the saga waits for (see ``SagaSummary/waitingFor``).
    public var waitingFor: String?
    /// Page size, 1 to 1,000.
    public var limit: Int = 100
    /// Where the previous page ended (its ``SagaPage/next``).
    public var after: SagaCursor?

    public init() {}
}

/// A position in a listing: sagas are listed by creation time, then id.
public struct SagaCursor: Sendable, Hashable, Codable {
    public var createdAt: SagaTimestamp
    public var id: String

    public init(createdAt: SagaTimestamp, id: String) {
        self.createdAt = createdAt
        self.id = id
    }
}

/// One page of a listing.
public struct SagaPage: Sendable, Hashable {
    public var sagas: [SagaSummary]
    /// The cursor for the next page; `nil` on the last.
    public var next: SagaCursor?
}

/// A saga with its whole timeline.
public struct SagaDetail: Sendable, Hashable {
    public var record: SagaRecord
    public var createdAt: SagaTimestamp
    public var updatedAt: SagaTimestamp
    /// The timeline, oldest first: sequence number and entry.
    public var history: [(sequence: Int64, entry: HistoryRecord)]

    public static func == (lhs: SagaDetail, rhs: SagaDetail) -> Bool {
        lhs.record == rhs.record && lhs.createdAt == rhs.createdAt && lhs.updatedAt == rhs.updatedAt
            && lhs.history.map(\.sequence) == rhs.history.map(\.sequence)
            && lhs.history.map(\.entry) == rhs.history.map(\.entry)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(record)
        hasher.combine(history.map(\.sequence))
    }
}
