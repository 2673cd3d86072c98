/// Why a stored saga state could not be read: the path of the field and what was wrong.
public struct SagaStateDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where, e.g. `steps[2].status`.
    public var path: String
    public var message: String

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

extension SagaInstance {
    /// The deepest nesting a stored state may have: the documents it holds (input, results, signal
    /// payloads, each at most ``JSONValue/maximumParseDepth`` deep when they came in) sit up to
    /// four levels down.
    public static let maximumStateDepth = JSONValue.maximumParseDepth + 8

    /// How deeply the state's JSON form nests: its deepest document plus the levels above it,
    /// counted one level generously (the refusal errs on the safe side).
    public var jsonDepth: Int {
        var deepest = input.depth + 1
        for value in results.values { deepest = max(deepest, value.depth + 2) }
        for value in signals.values { deepest = max(deepest, value.depth + 2) }
        for signal in bufferedSignals { deepest = max(deepest, signal.payload.depth + 3) }
        return deepest + 1
    }

    /// The state as compact JSON text: the keys and values of its `Codable` form, less the members
    /// that hold their usual value (counters at zero, flags at false, empty collections), written
    /// without Foundation's encoder, which costs several times more on every transition the engine
    /// stores. Either form reads what the other wrote (Foundation reads a double without a fraction
    /// as an integer).
    public var jsonText: String {
        var writer = JSONTextWriter(capacity: 1_024)
        writer.write(self)
        return writer.text
    }

    /// Reads a state written by ``jsonText`` or by the `Codable` form.
    public init(jsonText: String) throws(SagaStateDecodingError) {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: jsonText, maximumDepth: Self.maximumStateDepth)
        } catch {
            throw SagaStateDecodingError(path: "", message: "not JSON: \(error)")
        }
        try self.init(json: Fields(value, path: ""))
    }

    init(json: Fields) throws(SagaStateDecodingError) {
        var steps: [StepState] = []
        for (index, step) in try json.array("steps").enumerated() {
            steps.append(try StepState(json: Fields(step, path: "steps[\(index)]")))
        }
        var buffered: [BufferedSignal] = []
        for (index, signal) in try json.optionalArray("bufferedSignals").enumerated() {
            let fields = try Fields(signal, path: "bufferedSignals[\(index)]")
            buffered.append(
                BufferedSignal(
                    id: try fields.string("id"), name: try fields.string("name"), payload: try fields.value("payload"),
                    receivedAt: try fields.timestamp("receivedAt")))
        }
        var timers: [SagaTimer] = []
        for (index, timer) in try json.optionalArray("timers").enumerated() {
            let fields = try Fields(timer, path: "timers[\(index)]")
            timers.append(
                SagaTimer(
                    kind: try fields.enumeration("kind"), step: try fields.optionalString("step"),
                    action: try fields.optionalEnumeration("action"), attempt: try fields.optionalInt("attempt"),
                    dueAt: try fields.timestamp("dueAt")))
        }
        var compensation: CompensationState?
        if let fields = try json.optionalObject("compensation") {
            compensation = CompensationState(
                reason: try fields.string("reason"), plan: try fields.strings("plan"),
                position: try fields.int("position"), outcome: try fields.enumeration("outcome"))
        }
        var failure: SagaFailure?
        if let fields = try json.optionalObject("failure") {
            failure = SagaFailure(
                phase: try fields.enumeration("phase"), step: try fields.string("step"),
                error: try StepError(json: try fields.object("error")))
        }
        self.init(
            id: try json.string("id"), definitionName: try json.string("definitionName"),
            definitionVersion: try json.int("definitionVersion"), status: try json.enumeration("status"),
            input: try json.value("input"), cursor: try json.int("cursor"), steps: steps,
            results: try json.optionalMembers("results"), signals: try json.optionalMembers("signals"),
            seenSignalIDs: Set(try json.optionalStrings("seenSignalIDs")), bufferedSignals: buffered, timers: timers,
            compensation: compensation, pastPivot: try json.bool("pastPivot", default: false), failure: failure,
            effectCounter: try json.int("effectCounter"), createdAt: try json.timestamp("createdAt"),
            updatedAt: try json.timestamp("updatedAt"))
    }
}

extension StepState {
    init(json: Fields) throws(SagaStateDecodingError) {
        self.init(name: try json.string("name"))
        status = try json.enumeration("status")
        attempt = try json.optionalInt("attempt") ?? 0
        attemptBudgetStart = try json.optionalInt("attemptBudgetStart") ?? 0
        compensationAttempt = try json.optionalInt("compensationAttempt") ?? 0
        compensationBudgetStart = try json.optionalInt("compensationBudgetStart") ?? 0
        executeGeneration = try json.optionalInt("executeGeneration") ?? 0
        compensateGeneration = try json.optionalInt("compensateGeneration") ?? 0
        inFlight = try json.optionalInt("inFlight")
        mayHaveTakenEffect = try json.bool("mayHaveTakenEffect", default: false)
        effectOrder = try json.optionalInt("effectOrder")
        lastError = try json.optionalObject("lastError").map { fields throws(SagaStateDecodingError) in
            try StepError(json: fields)
        }
        startedAt = try json.optionalTimestamp("startedAt")
        finishedAt = try json.optionalTimestamp("finishedAt")
    }
}

extension StepError {
    init(json: Fields) throws(SagaStateDecodingError) {
        self.init(
            code: try json.string("code"), message: try json.string("message"), retryable: try json.bool("retryable"))
    }
}

/// The members of a JSON object being read into a state, with the path for error messages.
struct Fields {
    let members: [String: JSONValue]
    let path: String

    init(_ value: JSONValue, path: String) throws(SagaStateDecodingError) {
        guard case .object(let members) = value else {
            throw SagaStateDecodingError(path: path, message: "expected an object, found \(value.typeName)")
        }
        self.members = members
        self.path = path
    }

    func at(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func value(_ key: String) throws(SagaStateDecodingError) -> JSONValue {
        guard let value = members[key] else { throw SagaStateDecodingError(path: at(key), message: "missing") }
        return value
    }

    /// The member, or `nil` when it is missing or null (as `decodeIfPresent` reads it).
    func optional(_ key: String) -> JSONValue? {
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    func mismatch(_ key: String, _ expected: String, _ found: JSONValue) -> SagaStateDecodingError {
        SagaStateDecodingError(path: at(key), message: "expected \(expected), found \(found.typeName)")
    }

    func string(_ key: String) throws(SagaStateDecodingError) -> String {
        let value = try value(key)
        guard case .string(let string) = value else { throw mismatch(key, "a string", value) }
        return string
    }

    func optionalString(_ key: String) throws(SagaStateDecodingError) -> String? {
        guard let value = optional(key) else { return nil }
        guard case .string(let string) = value else { throw mismatch(key, "a string", value) }
        return string
    }

    func int(_ key: String) throws(SagaStateDecodingError) -> Int {
        try integer(key, try value(key))
    }

    func optionalInt(_ key: String) throws(SagaStateDecodingError) -> Int? {
        guard let value = optional(key) else { return nil }
        return try integer(key, value)
    }

    func integer(_ key: String, _ value: JSONValue) throws(SagaStateDecodingError) -> Int {
        switch value {
        case .integer(let number): return Int(number)
        case .double(let number) where number.rounded() == number && abs(number) < 9.0e15: return Int(number)
        default: throw mismatch(key, "an integer", value)
        }
    }

    func bool(_ key: String) throws(SagaStateDecodingError) -> Bool {
        let value = try value(key)
        guard case .bool(let bool) = value else { throw mismatch(key, "a Boolean", value) }
        return bool
    }

    /// The Boolean, or `fallback` when it is missing (the writer leaves out the usual value).
    func bool(_ key: String, default fallback: Bool) throws(SagaStateDecodingError) -> Bool {
        guard let value = optional(key) else { return fallback }
        guard case .bool(let bool) = value else { throw mismatch(key, "a Boolean", value) }
        return bool
    }

    func timestamp(_ key: String) throws(SagaStateDecodingError) -> SagaTimestamp {
        SagaTimestamp(millisecondsSinceEpoch: Int64(try int(key)))
    }

    func optionalTimestamp(_ key: String) throws(SagaStateDecodingError) -> SagaTimestamp? {
        try optionalInt(key).map { SagaTimestamp(millisecondsSinceEpoch: Int64($0)) }
    }

    func enumeration<T: RawRepresentable>(_ key: String) throws(SagaStateDecodingError) -> T
    where T.RawValue == String {
        let raw = try string(key)
        guard let value = T(rawValue: raw) else {
            throw SagaStateDecodingError(path: at(key), message: "unknown value '\(raw)'")
        }
        return value
    }

    func optionalEnumeration<T: RawRepresentable>(_ key: String) throws(SagaStateDecodingError) -> T?
    where T.RawValue == String {
        guard let raw = try optionalString(key) else { return nil }
        guard let value = T(rawValue: raw) else {
            throw SagaStateDecodingError(path: at(key), message: "unknown value '\(raw)'")
        }
        return value
    }

    func array(_ key: String) throws(SagaStateDecodingError) -> [JSONValue] {
        let value = try value(key)
        guard case .array(let elements) = value else { throw mismatch(key, "an array", value) }
        return elements
    }

    /// The array, or an empty one when it is missing (the writer leaves out empty ones).
    func optionalArray(_ key: String) throws(SagaStateDecodingError) -> [JSONValue] {
        optional(key) == nil ? [] : try array(key)
    }

    func optionalStrings(_ key: String) throws(SagaStateDecodingError) -> [String] {
        optional(key) == nil ? [] : try strings(key)
    }

    func optionalMembers(_ key: String) throws(SagaStateDecodingError) -> [String: JSONValue] {
        optional(key) == nil ? [:] : try members(key)
    }

    func strings(_ key: String) throws(SagaStateDecodingError) -> [String] {
        var strings: [String] = []
        for (index, element) in try array(key).enumerated() {
            guard case .string(let string) = element else { throw mismatch("\(key)[\(index)]", "a string", element) }
            strings.append(string)
        }
        return strings
    }

    func members(_ key: String) throws(SagaStateDecodingError) -> [String: JSONValue] {
        let value = try value(key)
        guard case .object(let members) = value else { throw mismatch(key, "an object", value) }
        return members
    }

    func object(_ key: String) throws(SagaStateDecodingError) -> Fields {
        try Fields(try value(key), path: at(key))
    }

    func optionalObject(_ key: String) throws(SagaStateDecodingError) -> Fields? {
        guard let value = optional(key) else { return nil }
        return try Fields(value, path: at(key))
    }
}

extension JSONTextWriter {
    /// Writes `,"name":` (without the comma for the first member).
    mutating func member(_ name: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        key(name)
    }

    mutating func write(_ timestamp: SagaTimestamp) { write(timestamp.millisecondsSinceEpoch) }

    mutating func write(_ error: StepError) {
        bytes.append(UInt8(ascii: "{"))
        member("code", first: true)
        write(error.code)
        member("message")
        write(error.message)
        member("retryable")
        append(error.retryable ? "true" : "false")
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func write(_ strings: some Sequence<String>) {
        bytes.append(UInt8(ascii: "["))
        var first = true
        for string in strings {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            write(string)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func write(_ step: StepState) {
        bytes.append(UInt8(ascii: "{"))
        member("name", first: true)
        write(step.name)
        member("status")
        write(step.status.rawValue)
        // Counters at zero and flags at false are left out: most steps of a saga have not run.
        writeUnlessZero("attempt", step.attempt)
        writeUnlessZero("attemptBudgetStart", step.attemptBudgetStart)
        writeUnlessZero("compensationAttempt", step.compensationAttempt)
        writeUnlessZero("compensationBudgetStart", step.compensationBudgetStart)
        writeUnlessZero("executeGeneration", step.executeGeneration)
        writeUnlessZero("compensateGeneration", step.compensateGeneration)
        if let inFlight = step.inFlight {
            member("inFlight")
            write(inFlight)
        }
        if step.mayHaveTakenEffect {
            member("mayHaveTakenEffect")
            append("true")
        }
        if let effectOrder = step.effectOrder {
            member("effectOrder")
            write(effectOrder)
        }
        if let lastError = step.lastError {
            member("lastError")
            write(lastError)
        }
        if let startedAt = step.startedAt {
            member("startedAt")
            write(startedAt)
        }
        if let finishedAt = step.finishedAt {
            member("finishedAt")
            write(finishedAt)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// Writes `[e1,e2,…]`, each element by `element`.
    mutating func writeArray<Element>(_ elements: [Element], _ element: (inout Self, Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        for (index, value) in elements.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            element(&self, value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func writeUnlessZero(_ name: StaticString, _ value: Int) {
        guard value != 0 else { return }
        member(name)
        write(value)
    }

    mutating func write(_ timer: SagaTimer) {
        bytes.append(UInt8(ascii: "{"))
        member("kind", first: true)
        write(timer.kind.rawValue)
        if let step = timer.step {
            member("step")
            write(step)
        }
        if let action = timer.action {
            member("action")
            write(action.rawValue)
        }
        if let attempt = timer.attempt {
            member("attempt")
            write(attempt)
        }
        member("dueAt")
        write(timer.dueAt)
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func write(_ saga: SagaInstance) {
        bytes.append(UInt8(ascii: "{"))
        member("id", first: true)
        write(saga.id)
        member("definitionName")
        write(saga.definitionName)
        member("definitionVersion")
        write(saga.definitionVersion)
        member("status")
        write(saga.status.rawValue)
        member("input")
        write(saga.input)
        member("cursor")
        write(saga.cursor)
        member("steps")
        writeArray(saga.steps) { $0.write($1) }
        // Empty collections are left out.
        if !saga.results.isEmpty {
            member("results")
            write(JSONValue.object(saga.results))
        }
        if !saga.signals.isEmpty {
            member("signals")
            write(JSONValue.object(saga.signals))
        }
        if !saga.seenSignalIDs.isEmpty {
            member("seenSignalIDs")
            write(saga.seenSignalIDs.sorted())
        }
        if !saga.bufferedSignals.isEmpty {
            member("bufferedSignals")
            writeArray(saga.bufferedSignals) { writer, signal in
                writer.bytes.append(UInt8(ascii: "{"))
                writer.member("id", first: true)
                writer.write(signal.id)
                writer.member("name")
                writer.write(signal.name)
                writer.member("payload")
                writer.write(signal.payload)
                writer.member("receivedAt")
                writer.write(signal.receivedAt)
                writer.bytes.append(UInt8(ascii: "}"))
            }
        }
        if !saga.timers.isEmpty {
            member("timers")
            writeArray(saga.timers) { $0.write($1) }
        }
        if let compensation = saga.compensation {
            member("compensation")
            bytes.append(UInt8(ascii: "{"))
            member("reason", first: true)
            write(compensation.reason)
            member("plan")
            write(compensation.plan)
            member("position")
            write(compensation.position)
            member("outcome")
            write(compensation.outcome.rawValue)
            bytes.append(UInt8(ascii: "}"))
        }
        if saga.pastPivot {
            member("pastPivot")
            append("true")
        }
        if let failure = saga.failure {
            member("failure")
            bytes.append(UInt8(ascii: "{"))
            member("phase", first: true)
            write(failure.phase.rawValue)
            member("step")
            write(failure.step)
            member("error")
            write(failure.error)
            bytes.append(UInt8(ascii: "}"))
        }
        member("effectCounter")
        write(saga.effectCounter)
        member("createdAt")
        write(saga.createdAt)
        member("updatedAt")
        write(saga.updatedAt)
        bytes.append(UInt8(ascii: "}"))
    }
}
