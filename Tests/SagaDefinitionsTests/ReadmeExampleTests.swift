import Foundation
import SagaCore
import SagaDefinitions
import Testing

/// The README's definition example is a real, valid definition.
@Suite("README example")
struct ReadmeExampleTests {
    @Test("the YAML block under 'A saga definition' loads without problems or warnings")
    func readmeDefinitionLoads() throws {
        let readme = try String(
            contentsOf: TestFiles.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "## A saga definition"))
        let start = try #require(readme.range(of: "```yaml\n", range: section.upperBound..<readme.endIndex))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let loaded = try DefinitionLoader.load(
            text: String(readme[start.upperBound..<end.lowerBound]), source: "README.md")
        #expect(loaded.warnings.isEmpty)
        #expect(
            loaded.definition.steps.map(\.name) == ["reserve-inventory", "charge-payment", "manager-approval", "ship"])
        #expect(loaded.definition.deadline == .days(2))
        #expect(loaded.definition.pivotIndex == 3)
    }
}
