import SagaCore

/// The saga definitions the engine runs, by name and version. A start without a version takes the
/// latest; a running saga keeps the version it started with.
public struct DefinitionRegistry: Sendable {
    private var definitions: [String: [Int: SagaDefinition]] = [:]

    public init(_ definitions: [SagaDefinition] = []) {
        for definition in definitions { add(definition) }
    }

    /// Adds `definition`, replacing one of the same name and version.
    public mutating func add(_ definition: SagaDefinition) {
        definitions[definition.name, default: [:]][definition.version] = definition
    }

    /// The definition `name` at `version`, or its latest version when `version` is `nil`.
    public func definition(_ name: String, version: Int? = nil) -> SagaDefinition? {
        guard let versions = definitions[name] else { return nil }
        if let version { return versions[version] }
        return versions.max { $0.key < $1.key }?.value
    }

    /// Every definition, by name then version.
    public var all: [SagaDefinition] {
        definitions.keys.sorted().flatMap { name in
            definitions[name]!.keys.sorted().map { definitions[name]![$0]! }
        }
    }
}
