/// One thing wrong (or worth a warning) in a saga definition, located by step and field.
public struct DefinitionProblem: Sendable, Hashable, CustomStringConvertible {
    /// The step the problem is in, when it is in one.
    public var step: String?
    /// The field's path within the step (or the definition), e.g. `retry.maxAttempts`.
    public var field: String?
    /// What is wrong, e.g. `must be at least 1`.
    public var message: String

    public init(step: String?, field: String?, message: String) {
        self.step = step
        self.field = field
        self.message = message
    }

    /// `step 'charge': retry.maxAttempts must be at least 1`.
    public var description: String {
        var text = ""
        if let step { text += "step '\(step)': " }
        if let field, !field.isEmpty { text += "\(field) " }
        return text + message
    }
}

/// A definition that was refused, with every problem found, each naming the source, the step and
/// the field: `order.yaml: step 'charge': retry.maxAttempts must be at least 1`.
public struct DefinitionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where the definition came from, usually a file name.
    public var source: String
    /// Every problem found, in document order.
    public var problems: [DefinitionProblem]

    public init(source: String, problems: [DefinitionProblem]) {
        self.source = source
        self.problems = problems
    }

    public var description: String {
        problems.map { "\(source): \($0)" }.joined(separator: "\n")
    }
}

/// A definition that was accepted, with the warnings found in it.
public struct ValidatedDefinition: Sendable, Hashable {
    /// The definition.
    public var definition: SagaDefinition
    /// Things that are allowed but probably not meant, e.g. a step before the pivot with no compensation.
    public var warnings: [DefinitionProblem]
}
