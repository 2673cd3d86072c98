import Foundation
import SagaCore
import Yams

/// Reads saga definition files: YAML (`.yaml`, `.yml`) or JSON (`.json`), one definition per file.
///
/// A file is refused whole when anything in it is wrong; a directory is refused whole when any file
/// in it is wrong, or two files define the same name and version. Nothing is partly registered.
public enum DefinitionLoader {
    /// The largest definition file read, in bytes.
    public static let maximumFileSize = 1 << 20

    /// Reads and validates the definition in `text`.
    ///
    /// - Parameters:
    ///   - text: the file's contents.
    ///   - source: the file's name, used in every error message.
    ///   - format: how to read it; guessed from `source`'s extension when `nil` (YAML unless `.json`).
    public static func load(text: String, source: String, format: Format? = nil) throws(DefinitionError)
        -> ValidatedDefinition
    {
        guard text.utf8.count <= maximumFileSize else {
            throw DefinitionError(
                source: source,
                problems: [DefinitionProblem(step: nil, field: nil, message: "is larger than \(maximumFileSize) bytes")]
            )
        }
        let json: JSONValue
        switch format ?? Format(source: source) {
        case .json:
            do {
                json = try JSONValue(jsonData: Data(text.utf8))
            } catch {
                throw DefinitionError(
                    source: source, problems: [DefinitionProblem(step: nil, field: nil, message: "is not valid JSON")])
            }
            guard json.depth <= maximumDepth else {
                throw DefinitionError(
                    source: source,
                    problems: [
                        DefinitionProblem(step: nil, field: nil, message: "is nested deeper than \(maximumDepth)")
                    ])
            }
        case .yaml:
            json = try yamlToJSON(text, source: source)
        }
        return try SagaDefinition.decode(json, source: source)
    }

    /// Reads and validates the definition file at `url`.
    public static func load(contentsOf url: URL) throws(DefinitionError) -> ValidatedDefinition {
        let source = url.lastPathComponent
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw DefinitionError(
                source: source, problems: [DefinitionProblem(step: nil, field: nil, message: "cannot be read")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DefinitionError(
                source: source, problems: [DefinitionProblem(step: nil, field: nil, message: "is not UTF-8 text")])
        }
        return try load(text: text, source: source)
    }

    /// Reads every `.yaml`, `.yml` and `.json` file in `directory` (not its subdirectories), in name order.
    ///
    /// - Throws: ``DefinitionError`` for the first bad file, or for two files with the same name and version.
    public static func loadDirectory(_ directory: URL) throws(DefinitionError) -> [ValidatedDefinition] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        } catch {
            throw DefinitionError(
                source: directory.lastPathComponent,
                problems: [DefinitionProblem(step: nil, field: nil, message: "is not a readable directory")])
        }
        var loaded: [ValidatedDefinition] = []
        var sources: [String: String] = [:]
        for name in names where ["yaml", "yml", "json"].contains((name as NSString).pathExtension.lowercased()) {
            let definition = try load(contentsOf: directory.appendingPathComponent(name))
            let identity = "\(definition.definition.name) v\(definition.definition.version)"
            if let other = sources[identity] {
                throw DefinitionError(
                    source: name,
                    problems: [
                        DefinitionProblem(
                            step: nil, field: "name",
                            message: "and version repeat \(identity), already defined in \(other)")
                    ])
            }
            sources[identity] = name
            loaded.append(definition)
        }
        return loaded
    }

    /// A definition file's format.
    public enum Format: Sendable {
        case yaml
        case json

        /// JSON for a `.json` name, YAML for anything else.
        public init(source: String) {
            self = source.lowercased().hasSuffix(".json") ? .json : .yaml
        }
    }

    /// Reads YAML into the JSON form that ``SagaDefinition/decode(_:source:)`` takes. Plain scalars are
    /// typed by the YAML 1.2 core schema (`yes` and `on` stay strings); a quoted or `!!str` scalar is a
    /// string. Aliases are refused: they can make a small file huge.
    static func yamlToJSON(_ text: String, source: String) throws(DefinitionError) -> JSONValue {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw DefinitionError(
                source: source,
                problems: [DefinitionProblem(step: nil, field: nil, message: "is not valid YAML: \(describe(error))")])
        } catch {
            throw DefinitionError(
                source: source, problems: [DefinitionProblem(step: nil, field: nil, message: "is not valid YAML")])
        }
        guard let node else {
            throw DefinitionError(
                source: source, problems: [DefinitionProblem(step: nil, field: nil, message: "is empty")])
        }
        var problems: [DefinitionProblem] = []
        var state = ConversionState()
        let value = convert(node, path: "", depth: 0, state: &state, problems: &problems)
        guard problems.isEmpty else { throw DefinitionError(source: source, problems: problems) }
        return value
    }

    static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            return "\(context?.text ?? "") \(problem) at line \(mark.line), column \(mark.column)"
                .trimmingCharacters(in: .whitespaces)
        case .composer(let context, let problem, let mark, _):
            return "\(context?.text ?? "") \(problem) at line \(mark.line), column \(mark.column)"
                .trimmingCharacters(in: .whitespaces)
        case .duplicatedKeysInMapping(let duplicates, _):
            let keys = duplicates.sorted().joined(separator: ", ")
            return "repeated keys: \(keys)"
        default:
            return "\(error)".split(separator: "\n").first.map(String.init) ?? "unreadable"
        }
    }

    static let maximumDepth = 32
    static let maximumNodes = 20_000

    /// What the conversion has seen: Yams replaces an alias by the node it names, so an alias shows
    /// as a second visit to the same position in the file.
    struct ConversionState {
        var positions: Set<Int> = []
        var nodes = 0
    }

    static func convert(
        _ node: Node, path: String, depth: Int, state: inout ConversionState, problems: inout [DefinitionProblem]
    ) -> JSONValue {
        guard depth < maximumDepth else {
            problems.append(DefinitionProblem(step: nil, field: path, message: "is nested deeper than \(maximumDepth)"))
            return .null
        }
        state.nodes += 1
        guard state.nodes <= maximumNodes else {
            if state.nodes == maximumNodes + 1 {
                problems.append(
                    DefinitionProblem(step: nil, field: nil, message: "has more than \(maximumNodes) values"))
            }
            return .null
        }
        if let mark = node.mark, !(node.scalar?.string.isEmpty ?? false) {
            guard state.positions.insert(mark.line << 24 | mark.column).inserted else {
                problems.append(
                    DefinitionProblem(step: nil, field: path, message: "uses a YAML alias, which is not allowed"))
                return .null
            }
        }
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain && scalar.tag.rawValue != "tag:yaml.org,2002:str" {
                return coreSchemaValue(scalar.string)
            }
            return .string(scalar.string)
        case .sequence(let sequence):
            return .array(
                sequence.enumerated().map { offset, element in
                    convert(element, path: "\(path)[\(offset)]", depth: depth + 1, state: &state, problems: &problems)
                })
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard let name = key.string else {
                    problems.append(
                        DefinitionProblem(step: nil, field: path, message: "has a key that is not a string"))
                    continue
                }
                let childPath = path.isEmpty ? name : "\(path).\(name)"
                if members[name] != nil {
                    problems.append(DefinitionProblem(step: nil, field: childPath, message: "is repeated"))
                }
                members[name] = convert(value, path: childPath, depth: depth + 1, state: &state, problems: &problems)
            }
            return .object(members)
        case .alias:
            problems.append(
                DefinitionProblem(step: nil, field: path, message: "uses a YAML alias, which is not allowed"))
            return .null
        }
    }

    /// Types a plain scalar by the YAML 1.2 core schema: null, true/false, decimal integers and
    /// floating-point numbers; anything else (`yes`, `on`, `010x`, `1:30`) is a string.
    static func coreSchemaValue(_ text: String) -> JSONValue {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        let body = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
        guard let first = body.first, first.isASCII, first.isNumber || first == "." else { return .string(text) }
        if body.allSatisfy({ $0.isASCII && $0.isNumber }) {
            if let value = Int64(text.first == "+" ? String(body) : text) { return .integer(value) }
            return .string(text)
        }
        let allowed = Set("0123456789.eE+-")
        if body.allSatisfy({ allowed.contains($0) }), let value = Double(text), value.isFinite {
            return .double(value)
        }
        return .string(text)
    }
}
