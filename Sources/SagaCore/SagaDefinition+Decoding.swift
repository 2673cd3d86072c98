extension SagaDefinition {
    /// The most steps a definition may have, members of parallel groups included.
    public static let maximumSteps = 200

    /// Reads and validates a definition from its JSON form (a YAML file is first read into the same
    /// form). Every problem is collected; when there is any, nothing is returned.
    ///
    /// - Parameters:
    ///   - json: the document.
    ///   - source: where it came from, named in every error message (e.g. `order.yaml`).
    /// - Throws: ``DefinitionError`` listing each problem with its step and field.
    public static func decode(_ json: JSONValue, source: String) throws(DefinitionError) -> ValidatedDefinition {
        var context = DecodingContext()
        let definition = context.decodeDefinition(json)
        if let definition { context.validate(definition) }
        guard context.problems.isEmpty, let definition else {
            throw DefinitionError(source: source, problems: context.problems)
        }
        return ValidatedDefinition(definition: definition, warnings: context.warnings)
    }

    /// Validates a definition built in code, with the same rules as ``decode(_:source:)``.
    public func validated(source: String) throws(DefinitionError) -> ValidatedDefinition {
        var context = DecodingContext()
        context.checkNames(self)
        context.validate(self)
        guard context.problems.isEmpty else { throw DefinitionError(source: source, problems: context.problems) }
        return ValidatedDefinition(definition: self, warnings: context.warnings)
    }
}

/// Names of definitions, steps, participants, commands and signals: a letter or digit, then letters,
/// digits, `.`, `_` or `-`; at most 128 characters.
enum NameRule {
    static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 128 else { return false }
        func allowed(_ scalar: Unicode.Scalar) -> Bool {
            scalar.isASCII
                && (CharacterSetASCII.isAlphanumeric(scalar) || scalar == "." || scalar == "_" || scalar == "-")
        }
        return CharacterSetASCII.isAlphanumeric(first) && name.unicodeScalars.allSatisfy(allowed)
    }

    static let message =
        "must start with a letter or digit and hold only letters, digits, '.', '_' and '-' (at most 128)"
}

enum CharacterSetASCII {
    static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }
}

/// Reads one JSON object, remembering the keys it used so unknown ones can be reported.
struct ObjectReader {
    let members: [String: JSONValue]
    let step: String?
    let path: String
    var used: Set<String> = []

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    mutating func value(_ key: String) -> JSONValue? {
        used.insert(key)
        if case .null = members[key] { return nil }
        return members[key]
    }

    func has(_ key: String) -> Bool {
        if let value = members[key], value != .null { return true }
        return false
    }
}

struct DecodingContext {
    var problems: [DefinitionProblem] = []
    var warnings: [DefinitionProblem] = []

    mutating func problem(_ step: String?, _ field: String?, _ message: String) {
        problems.append(DefinitionProblem(step: step, field: field, message: message))
    }

    mutating func object(_ json: JSONValue?, step: String?, path: String) -> ObjectReader? {
        guard let json else { return nil }
        guard case .object(let members) = json else {
            problem(step, path, "must be an object, not \(json.typeName)")
            return nil
        }
        return ObjectReader(members: members, step: step, path: path)
    }

    mutating func finish(_ reader: ObjectReader) {
        for key in reader.members.keys.sorted() where !reader.used.contains(key) {
            problem(reader.step, reader.field(key), "is not a known field")
        }
    }

    mutating func string(_ reader: inout ObjectReader, _ key: String, required: Bool = false) -> String? {
        guard let value = reader.value(key) else {
            if required { problem(reader.step, reader.field(key), "is required") }
            return nil
        }
        guard case .string(let text) = value else {
            problem(reader.step, reader.field(key), "must be a string, not \(value.typeName)")
            return nil
        }
        return text
    }

    mutating func name(_ reader: inout ObjectReader, _ key: String, required: Bool = true) -> String? {
        guard let text = string(&reader, key, required: required) else { return nil }
        guard NameRule.isValid(text) else {
            problem(reader.step, reader.field(key), NameRule.message)
            return nil
        }
        return text
    }

    mutating func integer(_ reader: inout ObjectReader, _ key: String, required: Bool = false) -> Int? {
        guard let value = reader.value(key) else {
            if required { problem(reader.step, reader.field(key), "is required") }
            return nil
        }
        switch value {
        case .integer(let number) where number >= Int64(Int32.min) && number <= Int64(Int32.max):
            return Int(number)
        case .double(let number) where number.rounded() == number && abs(number) <= Double(Int32.max):
            return Int(number)
        case .integer, .double:
            if let number = value.numberValue, number.rounded() == number {
                problem(reader.step, reader.field(key), "must be between \(Int32.min) and \(Int32.max)")
            } else {
                problem(reader.step, reader.field(key), "must be an integer, not a fraction")
            }
            return nil
        case .null, .bool, .string, .array, .object:
            problem(reader.step, reader.field(key), "must be an integer, not \(value.typeName)")
            return nil
        }
    }

    mutating func number(_ reader: inout ObjectReader, _ key: String) -> Double? {
        guard let value = reader.value(key) else { return nil }
        guard let number = value.numberValue, number.isFinite else {
            problem(reader.step, reader.field(key), "must be a number, not \(value.typeName)")
            return nil
        }
        return number
    }

    mutating func bool(_ reader: inout ObjectReader, _ key: String) -> Bool? {
        guard let value = reader.value(key) else { return nil }
        guard case .bool(let flag) = value else {
            problem(reader.step, reader.field(key), "must be true or false, not \(value.typeName)")
            return nil
        }
        return flag
    }

    mutating func duration(_ reader: inout ObjectReader, _ key: String, required: Bool = false) -> SagaDuration? {
        guard let text = string(&reader, key, required: required) else { return nil }
        guard let duration = SagaDuration(parsing: text) else {
            problem(
                reader.step, reader.field(key),
                "is not a duration: '\(text.prefix(64))' (write e.g. 250ms, 30s, 5m, 24h, 30d or 1h30m)")
            return nil
        }
        guard duration > .zero else {
            problem(reader.step, reader.field(key), "must be longer than zero")
            return nil
        }
        return duration
    }

    mutating func condition(_ reader: inout ObjectReader, _ key: String) -> Condition? {
        guard let text = string(&reader, key) else { return nil }
        do {
            return try Condition(text)
        } catch {
            problem(reader.step, reader.field(key), "does not parse: \(error)")
            return nil
        }
    }

    mutating func decodeDefinition(_ json: JSONValue) -> SagaDefinition? {
        guard var reader = object(json, step: nil, path: "") else { return nil }
        let name = name(&reader, "name")
        let version = integer(&reader, "version", required: true)
        if let version, version < 1 { problem(nil, "version", "must be at least 1") }
        let description = string(&reader, "description")
        let deadline = duration(&reader, "deadline")
        var steps: [StepDefinition] = []
        if let value = reader.value("steps") {
            if case .array(let elements) = value {
                if elements.isEmpty { problem(nil, "steps", "must hold at least one step") }
                for (index, element) in elements.enumerated() {
                    if let step = decodeStep(element, index: index) { steps.append(step) }
                }
            } else {
                problem(nil, "steps", "must be a list, not \(value.typeName)")
            }
        } else {
            problem(nil, "steps", "is required")
        }
        finish(reader)
        guard let name, let version, problems.isEmpty else { return nil }
        return SagaDefinition(name: name, version: version, description: description, deadline: deadline, steps: steps)
    }

    mutating func decodeStep(_ json: JSONValue, index: Int) -> StepDefinition? {
        let label: String
        if case .string(let stepName) = json["name"] ?? .null { label = stepName } else { label = "#\(index + 1)" }
        guard var reader = object(json, step: label, path: "") else { return nil }
        let name = name(&reader, "name")
        let when = condition(&reader, "when")
        let isPivot = bool(&reader, "pivot") ?? false
        let kinds = ["command", "signal", "sleep", "parallel"].filter { reader.has($0) }
        for key in ["command", "signal", "sleep", "parallel"] where reader.members[key] == .null {
            _ = reader.value(key)
        }
        var kind: StepDefinition.Kind?
        if kinds.count != 1 {
            problem(
                label, nil,
                kinds.isEmpty
                    ? "needs one of command, signal, sleep or parallel"
                    : "has \(kinds.joined(separator: " and ")): a step does exactly one of command, signal, sleep or parallel"
            )
            for key in kinds { _ = reader.value(key) }
        } else {
            switch kinds[0] {
            case "command":
                kind = decodeCommand(reader.value("command"), step: label, path: "command").map { .command($0) }
            case "signal":
                kind = decodeSignal(reader.value("signal"), step: label).map { .signal($0) }
            case "sleep":
                kind = decodeSleep(&reader, step: label).map { .sleep($0) }
            default:
                kind = decodeParallel(reader.value("parallel"), step: label).map { .parallel($0) }
            }
        }
        finish(reader)
        guard let name, let kind else { return nil }
        return StepDefinition(name: name, when: when, isPivot: isPivot, kind: kind)
    }

    mutating func decodeCommand(_ json: JSONValue?, step: String, path: String) -> CommandStep? {
        guard var reader = object(json, step: step, path: path) else { return nil }
        let participant = name(&reader, "participant")
        let command = name(&reader, "type")
        let compensation = name(&reader, "compensation", required: false)
        let timeout = duration(&reader, "timeout", required: true)
        let compensationTimeout = duration(&reader, "compensationTimeout")
        let retry = decodeRetry(
            reader.value("retry"), step: step, path: reader.field("retry"), default: .defaultExecute)
        let compensationRetry = decodeRetry(
            reader.value("compensationRetry"), step: step, path: reader.field("compensationRetry"),
            default: .defaultCompensate)
        var nonRetryable: Set<String> = []
        if let value = reader.value("nonRetryableErrors") {
            if case .array(let codes) = value, codes.allSatisfy({ $0.stringValue != nil }) {
                nonRetryable = Set(codes.compactMap(\.stringValue))
            } else {
                problem(step, reader.field("nonRetryableErrors"), "must be a list of error codes")
            }
        }
        if compensation == nil && !reader.has("compensation") {
            for key in ["compensationTimeout", "compensationRetry"] where reader.has(key) {
                problem(step, reader.field(key), "is set but the step has no compensation")
            }
        }
        finish(reader)
        guard let participant, let command, let timeout, let retry, let compensationRetry else { return nil }
        return CommandStep(
            participant: participant, command: command, compensation: compensation, timeout: timeout,
            compensationTimeout: compensationTimeout, retry: retry, compensationRetry: compensationRetry,
            nonRetryableErrors: nonRetryable)
    }

    mutating func decodeRetry(_ json: JSONValue?, step: String, path: String, default fallback: RetryPolicy)
        -> RetryPolicy?
    {
        guard let json else { return fallback }
        guard var reader = object(json, step: step, path: path) else { return nil }
        for key in ["initial", "max"] where reader.members[key] == .null { _ = reader.value(key) }
        var policy = fallback
        var valid = true
        if let attempts = integer(&reader, "maxAttempts") {
            if attempts < 1 {
                problem(step, reader.field("maxAttempts"), "must be at least 1")
                valid = false
            } else if attempts > 1000 {
                problem(step, reader.field("maxAttempts"), "must be at most 1000")
                valid = false
            }
            policy.maxAttempts = attempts
        }
        if let text = string(&reader, "backoff") {
            if let backoff = RetryPolicy.Backoff(rawValue: text) {
                policy.backoff = backoff
            } else {
                problem(step, reader.field("backoff"), "must be fixed, linear or exponential, not '\(text.prefix(32))'")
                valid = false
            }
        }
        if reader.has("initial") {
            if let initial = duration(&reader, "initial") { policy.initialDelay = initial } else { valid = false }
        }
        if reader.has("max") {
            if let max = duration(&reader, "max") { policy.maxDelay = max } else { valid = false }
        } else if let max = policy.maxDelay, max < policy.initialDelay {
            // The default cap is shorter than the initial delay written: the cap follows it.
            policy.maxDelay = policy.initialDelay
        }
        if let multiplier = number(&reader, "multiplier") {
            if multiplier < 1 || multiplier > 100 {
                problem(step, reader.field("multiplier"), "must be between 1 and 100")
                valid = false
            }
            policy.multiplier = multiplier
        }
        if let jitter = number(&reader, "jitter") {
            if jitter < 0 || jitter > 1 {
                problem(step, reader.field("jitter"), "must be between 0 and 1")
                valid = false
            }
            policy.jitter = jitter
        }
        if let max = policy.maxDelay, max < policy.initialDelay {
            problem(step, reader.field("max"), "must not be shorter than initial (\(policy.initialDelay))")
            valid = false
        }
        finish(reader)
        return valid ? policy : nil
    }

    mutating func decodeSignal(_ json: JSONValue?, step: String) -> SignalStep? {
        guard var reader = object(json, step: step, path: "signal") else { return nil }
        var names: [String] = []
        if reader.has("name") && reader.has("names") {
            problem(step, "signal", "has both name and names: use one")
        }
        if let single = name(&reader, "name", required: false) { names = [single] }
        if let value = reader.value("names") {
            if case .array(let elements) = value, !elements.isEmpty {
                for (index, element) in elements.enumerated() {
                    if let text = element.stringValue, NameRule.isValid(text) {
                        if names.contains(text) {
                            problem(step, "signal.names[\(index)]", "repeats '\(text)'")
                        }
                        names.append(text)
                    } else {
                        problem(step, "signal.names[\(index)]", NameRule.message)
                    }
                }
            } else {
                problem(step, "signal.names", "must be a non-empty list of signal names")
            }
        }
        if names.isEmpty && !reader.has("names") && !reader.has("name") {
            problem(step, "signal.name", "is required (or signal.names for several)")
        }
        let timeout = duration(&reader, "timeout")
        if !reader.has("timeout") {
            problem(step, "signal.timeout", "is required: a signal wait without a timeout could wait forever")
        }
        var onTimeout = SignalStep.TimeoutAction.compensate
        if let text = string(&reader, "onTimeout") {
            if let action = SignalStep.TimeoutAction(rawValue: text) {
                onTimeout = action
            } else {
                problem(step, "signal.onTimeout", "must be compensate or continue, not '\(text.prefix(32))'")
            }
        }
        let failWhen = condition(&reader, "failWhen")
        finish(reader)
        guard !names.isEmpty, let timeout else { return nil }
        return SignalStep(signals: names, timeout: timeout, onTimeout: onTimeout, failWhen: failWhen)
    }

    mutating func decodeSleep(_ reader: inout ObjectReader, step: String) -> SleepStep? {
        // `sleep: 5m` or `sleep: { duration: 5m }`.
        switch reader.members["sleep"] ?? .null {
        case .string:
            return duration(&reader, "sleep").map(SleepStep.init(duration:))
        case .object:
            break
        case .null, .bool, .integer, .double, .array:
            problem(step, "sleep", "must be a duration such as 5m, or an object with a duration")
            _ = reader.value("sleep")
            return nil
        }
        guard var inner = object(reader.value("sleep"), step: step, path: "sleep") else { return nil }
        let value = duration(&inner, "duration", required: true)
        finish(inner)
        return value.map(SleepStep.init(duration:))
    }

    mutating func decodeParallel(_ json: JSONValue?, step: String) -> ParallelGroup? {
        guard case .array(let elements) = json ?? .null else {
            problem(step, "parallel", "must be a list of command steps")
            return nil
        }
        if elements.count < 2 { problem(step, "parallel", "must hold at least two steps") }
        var members: [ParallelGroup.Member] = []
        for (index, element) in elements.enumerated() {
            let label: String
            if case .string(let memberName) = element["name"] ?? .null {
                label = memberName
            } else {
                label = "\(step)#\(index + 1)"
            }
            guard var reader = object(element, step: label, path: "") else { continue }
            let name = name(&reader, "name")
            let when = condition(&reader, "when")
            if reader.has("pivot") {
                _ = reader.value("pivot")
                problem(label, "pivot", "is not allowed inside a parallel group: mark the group instead")
            }
            for other in ["signal", "sleep", "parallel"] where reader.has(other) {
                _ = reader.value(other)
                problem(label, other, "is not allowed inside a parallel group: only command steps run in parallel")
            }
            let command = decodeCommand(reader.value("command"), step: label, path: "command")
            if !reader.has("command") && command == nil { problem(label, "command", "is required") }
            finish(reader)
            if let name, let command { members.append(ParallelGroup.Member(name: name, when: when, command: command)) }
        }
        return ParallelGroup(steps: members)
    }

    /// Checks of a definition built in code that decoding already does for files.
    mutating func checkNames(_ definition: SagaDefinition) {
        if !NameRule.isValid(definition.name) { problem(nil, "name", NameRule.message) }
        if definition.version < 1 { problem(nil, "version", "must be at least 1") }
        if definition.steps.isEmpty { problem(nil, "steps", "must hold at least one step") }
        for step in definition.steps {
            if !NameRule.isValid(step.name) { problem(step.name, "name", NameRule.message) }
            switch step.kind {
            case .command(let command): checkCommand(command, step: step.name)
            case .parallel(let group):
                if group.steps.count < 2 { problem(step.name, "parallel", "must hold at least two steps") }
                for member in group.steps {
                    if !NameRule.isValid(member.name) { problem(member.name, "name", NameRule.message) }
                    checkCommand(member.command, step: member.name)
                }
            case .signal(let signal):
                if signal.signals.isEmpty { problem(step.name, "signal.names", "must not be empty") }
                if signal.timeout == .zero { problem(step.name, "signal.timeout", "must be longer than zero") }
            case .sleep(let sleep):
                if sleep.duration == .zero { problem(step.name, "sleep", "must be longer than zero") }
            }
        }
    }

    mutating func checkCommand(_ command: CommandStep, step: String) {
        if command.timeout == .zero { problem(step, "command.timeout", "must be longer than zero") }
        for (field, policy) in [
            ("command.retry", command.retry), ("command.compensationRetry", command.compensationRetry),
        ] {
            if policy.maxAttempts < 1 { problem(step, "\(field).maxAttempts", "must be at least 1") }
            if policy.multiplier < 1 { problem(step, "\(field).multiplier", "must be between 1 and 100") }
            if policy.jitter < 0 || policy.jitter > 1 { problem(step, "\(field).jitter", "must be between 0 and 1") }
        }
    }

    /// Rules across steps: unique names, one pivot on a command step or group, nothing to compensate
    /// after the pivot, `when` conditions that read only earlier steps, and a size limit.
    mutating func validate(_ definition: SagaDefinition) {
        var seen: Set<String> = []
        var total = 0
        for step in definition.steps {
            for name in [step.name] + memberNames(step) {
                total += 1
                if !seen.insert(name).inserted { problem(name, "name", "is used by another step") }
            }
        }
        if total > SagaDefinition.maximumSteps {
            problem(nil, "steps", "hold \(total) steps; at most \(SagaDefinition.maximumSteps) are allowed")
        }

        let pivots = definition.steps.filter(\.isPivot)
        for extra in pivots.dropFirst() {
            problem(extra.name, "pivot", "is already set on step '\(pivots[0].name)': a saga has one pivot")
        }
        let pivotIndex = definition.pivotIndex
        var earlier: Set<String> = []
        for (index, step) in definition.steps.enumerated() {
            let afterPivot = pivotIndex.map { index > $0 } ?? false
            if let when = step.when { checkReferences(when, step: step.name, field: "when", earlier: earlier) }
            switch step.kind {
            case .command(let command):
                checkCompensation(command, step: step.name, afterPivot: afterPivot, isPivot: step.isPivot)
            case .parallel(let group):
                for member in group.steps {
                    if let when = member.when {
                        checkReferences(when, step: member.name, field: "when", earlier: earlier)
                    }
                    checkCompensation(member.command, step: member.name, afterPivot: afterPivot, isPivot: step.isPivot)
                }
            case .signal(let signal):
                if step.isPivot { problem(step.name, "pivot", "must be on a command step or a parallel group") }
                if afterPivot && signal.onTimeout == .compensate {
                    problem(
                        step.name, "signal.onTimeout",
                        "must be continue after the pivot (step '\(definition.steps[pivotIndex!].name)'): nothing is compensated after it"
                    )
                }
                if afterPivot && signal.failWhen != nil {
                    problem(
                        step.name, "signal.failWhen", "is not allowed after the pivot: nothing is compensated after it")
                }
                if let failWhen = signal.failWhen {
                    checkReferences(failWhen, step: step.name, field: "signal.failWhen", earlier: earlier)
                }
            case .sleep:
                if step.isPivot { problem(step.name, "pivot", "must be on a command step or a parallel group") }
            }
            earlier.insert(step.name)
            earlier.formUnion(memberNames(step))
        }
    }

    func memberNames(_ step: StepDefinition) -> [String] {
        if case .parallel(let group) = step.kind { return group.steps.map(\.name) }
        return []
    }

    mutating func checkReferences(_ condition: Condition, step: String, field: String, earlier: Set<String>) {
        for name in condition.referencedSteps.sorted() where !earlier.contains(name) {
            problem(step, field, "reads steps.\(name), which is not a step that runs before this one")
        }
    }

    mutating func checkCompensation(_ command: CommandStep, step: String, afterPivot: Bool, isPivot: Bool) {
        if afterPivot, command.compensation != nil {
            problem(
                step, "command.compensation",
                "is not allowed after the pivot: steps after it are retried forward, never compensated")
        } else if !afterPivot, !isPivot, command.compensation == nil {
            warnings.append(
                DefinitionProblem(
                    step: step, field: "command.compensation",
                    message: "is not set: if a later step fails, this step's effect stays"))
        }
    }
}
