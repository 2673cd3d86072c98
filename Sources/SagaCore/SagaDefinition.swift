/// A saga type: a name, a version and the steps to run in order.
///
/// In-flight sagas keep the version they started with; a new version is a new definition.
///
/// A value type whose fields live in one shared, copy-on-write box, like ``CommandStep``: every
/// transition holds the definition, and a copy costs one reference count.
public struct SagaDefinition: Sendable, Hashable {
    private final class Storage: @unchecked Sendable {
        // Mutated only through `SagaDefinition`'s setters, after `isKnownUniquelyReferenced`
        // proved that no other value (and so no other thread) shares this box.
        var name: String
        var version: Int
        var description: String?
        var deadline: SagaDuration?
        var steps: [StepDefinition]
        var layout: StepLayout

        init(
            name: String, version: Int, description: String?, deadline: SagaDuration?, steps: [StepDefinition],
            layout: StepLayout
        ) {
            self.name = name
            self.version = version
            self.description = description
            self.deadline = deadline
            self.steps = steps
            self.layout = layout
        }

        func copy() -> Storage {
            Storage(
                name: name, version: version, description: description, deadline: deadline, steps: steps,
                layout: layout)
        }
    }

    private var storage: Storage

    private mutating func unique() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    /// The saga type's name, e.g. `order-fulfillment`.
    public var name: String {
        get { storage.name }
        set { unique().name = newValue }
    }
    /// The version, from 1.
    public var version: Int {
        get { storage.version }
        set { unique().version = newValue }
    }
    /// What the saga does, for people.
    public var description: String? {
        get { storage.description }
        set { unique().description = newValue }
    }
    /// When set, a saga still running this long after its start is compensated.
    public var deadline: SagaDuration? {
        get { storage.deadline }
        set { unique().deadline = newValue }
    }
    /// The top-level steps, run in order.
    public var steps: [StepDefinition] {
        get { storage.steps }
        set {
            let storage = unique()
            storage.steps = newValue
            storage.layout = StepLayout(newValue)
        }
    }
    /// Where each step sits, for lookups by name in constant time.
    var layout: StepLayout { storage.layout }

    public init(
        name: String, version: Int, description: String? = nil, deadline: SagaDuration? = nil,
        steps: [StepDefinition]
    ) {
        storage = Storage(
            name: name, version: version, description: description, deadline: deadline, steps: steps,
            layout: StepLayout(steps))
    }

    public static func == (lhs: SagaDefinition, rhs: SagaDefinition) -> Bool {
        if lhs.storage === rhs.storage { return true }
        return lhs.name == rhs.name && lhs.version == rhs.version && lhs.description == rhs.description
            && lhs.deadline == rhs.deadline && lhs.steps == rhs.steps
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(version)
        hasher.combine(description)
        hasher.combine(deadline)
        hasher.combine(steps)
    }

    /// The index of the pivot step among ``steps``, when there is one.
    public var pivotIndex: Int? { layout.pivotIndex }

    /// Every command step by name, the members of parallel groups included.
    public func commandStep(named name: String) -> CommandStep? {
        layout.indexByName[name].flatMap(commandStep(at:))
    }

    /// The command step at `index` in the order of ``SagaInstance/steps``.
    func commandStep(at index: Int) -> CommandStep? {
        let location = layout.locations[index]
        switch steps[location.top].kind {
        case .command(let command): return location.member == nil ? command : nil
        case .parallel(let group): return location.member.map { group.steps[$0].command }
        case .signal, .sleep: return nil
        }
    }

    /// The number of steps, members of parallel groups and the groups themselves included.
    public var stepCount: Int { layout.locations.count }

    /// The names of every step, members of parallel groups included, in definition order.
    public var allStepNames: [String] {
        steps.flatMap { step -> [String] in
            if case .parallel(let group) = step.kind { return [step.name] + group.steps.map(\.name) }
            return [step.name]
        }
    }
}

/// One top-level step of a saga definition.
public struct StepDefinition: Sendable, Hashable {
    /// What the step does.
    public enum Kind: Sendable, Hashable {
        /// Send a command to a participant and wait for its reply.
        case command(CommandStep)
        /// Wait for an external signal.
        case signal(SignalStep)
        /// Sleep on a durable timer.
        case sleep(SleepStep)
        /// Run several command steps at once; done when all are done.
        case parallel(ParallelGroup)
    }

    /// The step's name, unique within the definition.
    public var name: String
    /// When set, the step runs only if the condition holds over the saga's data; else it is skipped.
    public var when: Condition?
    /// Marks the pivot: once it completes, later failures are retried forward, never compensated.
    public var isPivot: Bool
    /// What the step does.
    public var kind: Kind

    public init(name: String, when: Condition? = nil, isPivot: Bool = false, kind: Kind) {
        self.name = name
        self.when = when
        self.isPivot = isPivot
        self.kind = kind
    }
}

/// A step that sends a command to a participant and waits for its reply.
///
/// A value type whose fields live in one shared, copy-on-write box: the state machine reads a
/// step's definition on every transition, and a copy costs one reference count, not eight.
public struct CommandStep: Sendable, Hashable {
    private final class Storage: @unchecked Sendable {
        // Mutated only through `CommandStep`'s setters, after `isKnownUniquelyReferenced` proved
        // that no other value (and so no other thread) shares this box.
        var participant: String
        var command: String
        var compensation: String?
        var timeout: SagaDuration
        var compensationTimeout: SagaDuration?
        var retry: RetryPolicy
        var compensationRetry: RetryPolicy
        var nonRetryableErrors: Set<String>

        init(
            participant: String, command: String, compensation: String?, timeout: SagaDuration,
            compensationTimeout: SagaDuration?, retry: RetryPolicy, compensationRetry: RetryPolicy,
            nonRetryableErrors: Set<String>
        ) {
            self.participant = participant
            self.command = command
            self.compensation = compensation
            self.timeout = timeout
            self.compensationTimeout = compensationTimeout
            self.retry = retry
            self.compensationRetry = compensationRetry
            self.nonRetryableErrors = nonRetryableErrors
        }

        func copy() -> Storage {
            Storage(
                participant: participant, command: command, compensation: compensation, timeout: timeout,
                compensationTimeout: compensationTimeout, retry: retry, compensationRetry: compensationRetry,
                nonRetryableErrors: nonRetryableErrors)
        }
    }

    private var storage: Storage

    private mutating func unique() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    /// The participant that owns the step; its command topic is derived from this name.
    public var participant: String {
        get { storage.participant }
        set { unique().participant = newValue }
    }
    /// The command type the participant receives, e.g. `inventory.reserve`.
    public var command: String {
        get { storage.command }
        set { unique().command = newValue }
    }
    /// The command type that undoes it, e.g. `inventory.release`; `nil` when nothing needs undoing.
    public var compensation: String? {
        get { storage.compensation }
        set { unique().compensation = newValue }
    }
    /// How long one attempt of the action may take before it counts as timed out.
    public var timeout: SagaDuration {
        get { storage.timeout }
        set { unique().timeout = newValue }
    }
    /// How long one attempt of the compensation may take; the action's timeout when `nil`.
    public var compensationTimeout: SagaDuration? {
        get { storage.compensationTimeout }
        set { unique().compensationTimeout = newValue }
    }
    /// Retries of the action.
    public var retry: RetryPolicy {
        get { storage.retry }
        set { unique().retry = newValue }
    }
    /// Retries of the compensation: a separate budget.
    public var compensationRetry: RetryPolicy {
        get { storage.compensationRetry }
        set { unique().compensationRetry = newValue }
    }
    /// Error codes that fail the step at once, whatever the reply says about retrying.
    public var nonRetryableErrors: Set<String> {
        get { storage.nonRetryableErrors }
        set { unique().nonRetryableErrors = newValue }
    }

    public init(
        participant: String, command: String, compensation: String? = nil, timeout: SagaDuration = .seconds(30),
        compensationTimeout: SagaDuration? = nil, retry: RetryPolicy = .defaultExecute,
        compensationRetry: RetryPolicy = .defaultCompensate, nonRetryableErrors: Set<String> = []
    ) {
        storage = Storage(
            participant: participant, command: command, compensation: compensation, timeout: timeout,
            compensationTimeout: compensationTimeout, retry: retry, compensationRetry: compensationRetry,
            nonRetryableErrors: nonRetryableErrors)
    }

    public static func == (lhs: CommandStep, rhs: CommandStep) -> Bool {
        if lhs.storage === rhs.storage { return true }
        return lhs.participant == rhs.participant && lhs.command == rhs.command
            && lhs.compensation == rhs.compensation && lhs.timeout == rhs.timeout
            && lhs.compensationTimeout == rhs.compensationTimeout && lhs.retry == rhs.retry
            && lhs.compensationRetry == rhs.compensationRetry && lhs.nonRetryableErrors == rhs.nonRetryableErrors
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(participant)
        hasher.combine(command)
        hasher.combine(compensation)
        hasher.combine(timeout)
        hasher.combine(compensationTimeout)
        hasher.combine(retry)
        hasher.combine(compensationRetry)
        hasher.combine(nonRetryableErrors)
    }
}

/// A step that waits for any one of several named signals.
public struct SignalStep: Sendable, Hashable {
    /// What happens when no signal came in time.
    public enum TimeoutAction: String, Sendable, Hashable, CaseIterable {
        /// The saga compensates.
        case compensate
        /// The saga goes on without the signal.
        case `continue`
    }

    /// The signal names that end the wait; the first to arrive wins.
    public var signals: [String]
    /// How long to wait.
    public var timeout: SagaDuration
    /// What a timeout does.
    public var onTimeout: TimeoutAction
    /// When the signal's payload makes this condition true, the saga compensates (an approval that
    /// says no). The payload is readable as `signals.<name>`.
    public var failWhen: Condition?

    public init(
        signals: [String], timeout: SagaDuration, onTimeout: TimeoutAction = .compensate, failWhen: Condition? = nil
    ) {
        self.signals = signals
        self.timeout = timeout
        self.onTimeout = onTimeout
        self.failWhen = failWhen
    }
}

/// A step that sleeps on a durable timer.
public struct SleepStep: Sendable, Hashable {
    /// How long to sleep.
    public var duration: SagaDuration

    public init(duration: SagaDuration) {
        self.duration = duration
    }
}

/// Command steps that run at the same time.
public struct ParallelGroup: Sendable, Hashable {
    /// One member of the group.
    public struct Member: Sendable, Hashable {
        /// The member's name, unique within the whole definition.
        public var name: String
        /// When set, the member runs only if the condition holds.
        public var when: Condition?
        /// What the member sends.
        public var command: CommandStep

        public init(name: String, when: Condition? = nil, command: CommandStep) {
            self.name = name
            self.when = when
            self.command = command
        }
    }

    /// The members, at least two.
    public var steps: [Member]

    public init(steps: [Member]) {
        self.steps = steps
    }
}

/// Where every step of a definition sits: the index of its state in ``SagaInstance/steps``, its
/// top-level step and, for a member of a parallel group, its place in the group.
struct StepLayout: Sendable, Hashable {
    struct Location: Sendable, Hashable {
        /// The index among the definition's top-level steps.
        var top: Int
        /// The index within the parallel group, for a member.
        var member: Int?
        /// Whether the step sends commands (a command step or a group member).
        var isCommand: Bool
        /// Whether the step is a signal wait or a sleep.
        var isWait: Bool
    }

    /// One location per step state, in the order of ``SagaInstance/steps``.
    var locations: [Location] = []
    /// The state index of each step by name.
    var indexByName: [String: Int] = [:]
    /// The state index of each top-level step.
    var topStateIndex: [Int] = []
    /// The pivot's top-level index.
    var pivotIndex: Int?

    init(_ steps: [StepDefinition]) {
        for (top, step) in steps.enumerated() {
            if step.isPivot && pivotIndex == nil { pivotIndex = top }
            topStateIndex.append(locations.count)
            indexByName[step.name] = indexByName[step.name] ?? locations.count
            switch step.kind {
            case .command:
                locations.append(Location(top: top, member: nil, isCommand: true, isWait: false))
            case .signal, .sleep:
                locations.append(Location(top: top, member: nil, isCommand: false, isWait: true))
            case .parallel(let group):
                locations.append(Location(top: top, member: nil, isCommand: false, isWait: false))
                for (member, entry) in group.steps.enumerated() {
                    indexByName[entry.name] = indexByName[entry.name] ?? locations.count
                    locations.append(Location(top: top, member: member, isCommand: true, isWait: false))
                }
            }
        }
    }
}
