import Foundation
import SagaCore
import SagaDefinitions
import Testing

/// `DefinitionLoader.loadDirectory`: a directory is accepted whole or refused whole.
@Suite("Definition directories")
struct DefinitionDirectoryTests {
    @Test("A directory of good files loads in name order, skipping other files")
    func goodDirectory() throws {
        let loaded = try DefinitionLoader.loadDirectory(try TestFiles.fixtures().appendingPathComponent("good"))
        #expect(loaded.map(\.definition.name) == ["order", "order", "refund"])
        #expect(loaded.map(\.definition.version) == [1, 2, 1])
        #expect(loaded.map { $0.definition.steps.count } == [2, 3, 1])
        #expect(
            loaded[2].warnings.map(\.description) == [
                "step 'refund': command.compensation is not set: if a later step fails, this step's effect stays"
            ])
    }

    @Test("One bad file refuses the directory, and the error names that file")
    func badFile() throws {
        let directory = try TestFiles.fixtures().appendingPathComponent("bad")
        let error = try #require(throws: DefinitionError.self) {
            try DefinitionLoader.loadDirectory(directory)
        }
        #expect(error.source == "b-payment.yaml")
        #expect(error.description == "b-payment.yaml: step 'charge': command.retry.maxAttempts must be at least 1")
    }

    @Test("Two files with the same name and version refuse the directory")
    func duplicateIdentity() throws {
        let directory = try TestFiles.fixtures().appendingPathComponent("duplicate")
        let error = try #require(throws: DefinitionError.self) {
            try DefinitionLoader.loadDirectory(directory)
        }
        #expect(error.source == "b-order.json")
        #expect(error.description == "b-order.json: name and version repeat order v1, already defined in a-order.yaml")
    }

    @Test("A directory that does not exist is refused")
    func missingDirectory() throws {
        let directory = try TestFiles.fixtures().appendingPathComponent("no-such-directory")
        let error = try #require(throws: DefinitionError.self) {
            try DefinitionLoader.loadDirectory(directory)
        }
        #expect(error.description == "no-such-directory: is not a readable directory")
    }

    @Test("A file that does not exist is refused")
    func missingFile() throws {
        let file = try TestFiles.fixtures().appendingPathComponent("no-such-file.yaml")
        let error = try #require(throws: DefinitionError.self) {
            try DefinitionLoader.load(contentsOf: file)
        }
        #expect(error.description == "no-such-file.yaml: cannot be read")
    }

    @Test("The format follows the file's extension")
    func formatFromExtension() {
        #expect(DefinitionLoader.Format(source: "order.json") == .json)
        #expect(DefinitionLoader.Format(source: "ORDER.JSON") == .json)
        #expect(DefinitionLoader.Format(source: "order.yaml") == .yaml)
        #expect(DefinitionLoader.Format(source: "order.yml") == .yaml)
        #expect(DefinitionLoader.Format(source: "order") == .yaml)
    }
}
