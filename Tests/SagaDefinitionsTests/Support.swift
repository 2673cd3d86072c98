import Foundation
import SagaCore
import SagaDefinitions
import Testing

/// Where the tests find their files.
enum TestFiles {
    /// The package's root directory, found from this file's path (`Tests/SagaDefinitionsTests/Support.swift`).
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The example definitions the project ships, `examples/definitions/`.
    static let examples = packageRoot.appendingPathComponent("examples").appendingPathComponent("definitions")

    /// The test target's `Fixtures` folder, copied into the test bundle.
    static func fixtures() throws -> URL {
        try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    }
}

/// The lines of the error the loader gives for `text`, each `<source>: step '<step>': <field> <message>`;
/// `["accepted"]` when the definition is accepted, so that a test comparing lines shows what happened.
func refusal(of text: String, source: String = "order.yaml") -> [String] {
    do {
        _ = try DefinitionLoader.load(text: text, source: source)
        return ["accepted"]
    } catch {
        return error.problems.map { "\(error.source): \($0)" }
    }
}

/// A definition named `order`, version 1, whose steps are the YAML list items in `steps`.
func orderYAML(_ steps: String) -> String {
    "name: order\nversion: 1\nsteps:\n" + steps
}

/// A step that reserves stock and can be undone, to stand before the steps a test is about.
let reserveStep = """
      - name: reserve
        command: {participant: inventory, type: inventory.reserve, compensation: inventory.release, timeout: 10s}
    """

/// A short name for a step's kind.
func kindName(_ kind: StepDefinition.Kind) -> String {
    switch kind {
    case .command: "command"
    case .signal: "signal"
    case .sleep: "sleep"
    case .parallel: "parallel"
    }
}

/// One definition the loader must refuse, with the exact lines it must give.
struct RefusalCase: Sendable, CustomTestStringConvertible {
    var label: String
    var text: String
    var source: String = "order.yaml"
    var expected: [String]

    init(_ label: String, _ text: String, source: String = "order.yaml", expected: [String]) {
        self.label = label
        self.text = text
        self.source = source
        self.expected = expected
    }

    var testDescription: String { label }
}
