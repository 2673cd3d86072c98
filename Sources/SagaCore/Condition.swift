/// A small, safe boolean expression over a saga's data, used by a step's `when` and a signal
/// wait's `failWhen`. It is data, not code: it reads values and compares them, nothing more.
///
/// Grammar:
/// ```
/// expression := or
/// or         := and ( "||" and )*
/// and        := unary ( "&&" unary )*
/// unary      := "!" unary | comparison
/// comparison := operand ( ( "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" ) operand )?
/// operand    := path | literal | list | "(" expression ")"
/// path       := ( "input" | "steps" | "signals" ) ( "." name | "[" integer "]" )*
/// literal    := number | 'text' | "text" | true | false | null
/// list       := "[" ( operand ( "," operand )* )? "]"
/// ```
/// A path that leads nowhere reads as `null`. Ordering compares numbers with numbers and strings
/// with strings; any other pair is `false`. Only `true` is true.
///
/// The data the paths read is an object with the members `input` (the saga's input), `steps` (each
/// completed step's result by step name) and `signals` (each consumed signal's payload by name).
public struct Condition: Sendable, Hashable, CustomStringConvertible {
    /// The expression as it was written.
    public let source: String
    let root: Node

    /// The roots a path may start with.
    public static let roots: Set<String> = ["input", "steps", "signals"]

    /// The longest expression accepted, in characters.
    public static let maximumLength = 2048
    /// The deepest nesting accepted.
    public static let maximumDepth = 32

    /// Parses `source`, throwing a ``ConditionError`` that names the position of the first problem.
    public init(_ source: String) throws(ConditionError) {
        guard source.count <= Self.maximumLength else {
            throw ConditionError(message: "is longer than \(Self.maximumLength) characters", position: 0)
        }
        var parser = Parser(tokens: try Lexer.tokens(of: source))
        root = try parser.parseExpression(depth: 0)
        guard parser.atEnd else {
            throw ConditionError(message: "unexpected '\(parser.peek.text)'", position: parser.peek.position)
        }
        self.source = source
    }

    public var description: String { source }

    /// The step names this condition reads under `steps.`.
    public var referencedSteps: Set<String> {
        var names = Set<String>()
        root.collectPaths { path in
            if path.first == .member("steps"), path.count > 1, case .member(let name) = path[1] { names.insert(name) }
        }
        return names
    }

    /// Evaluates the condition over `data`; `true` only when the expression yields the Boolean `true`.
    public func evaluate(_ data: JSONValue) -> Bool {
        root.evaluate(Scope.document(data)) == .bool(true)
    }

    /// Evaluates the condition over a saga's data (``SagaInstance/data``) without building that
    /// document: a path's first member picks `input`, `steps` or `signals` directly. The result is
    /// that of ``evaluate(_:)`` over `{"input": input, "steps": steps, "signals": signals}`.
    public func evaluate(input: JSONValue, steps: [String: JSONValue], signals: [String: JSONValue]) -> Bool {
        root.evaluate(Scope.saga(input: input, steps: steps, signals: signals)) == .bool(true)
    }

    public static func == (lhs: Condition, rhs: Condition) -> Bool { lhs.source == rhs.source }
    public func hash(into hasher: inout Hasher) { hasher.combine(source) }
}

/// Why a condition did not parse.
public struct ConditionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public var message: String
    /// The character offset of the problem in the source.
    public var position: Int

    public var description: String { "\(message) at position \(position)" }
}

extension Condition {
    /// What a condition reads: a JSON document, or a saga's parts read as one.
    enum Scope {
        case document(JSONValue)
        case saga(input: JSONValue, steps: [String: JSONValue], signals: [String: JSONValue])
    }

    enum PathComponent: Hashable, Sendable {
        case member(String)
        case index(Int)
    }

    enum Comparison: String, Sendable {
        case equal = "=="
        case notEqual = "!="
        case less = "<"
        case lessOrEqual = "<="
        case greater = ">"
        case greaterOrEqual = ">="
        case contains = "in"
    }

    indirect enum Node: Hashable, Sendable {
        case literal(JSONValue)
        case path([PathComponent])
        case list([Node])
        case not(Node)
        case and(Node, Node)
        case or(Node, Node)
        case compare(Node, Comparison, Node)

        func collectPaths(_ body: ([PathComponent]) -> Void) {
            switch self {
            case .literal: break
            case .path(let components): body(components)
            case .list(let nodes): for node in nodes { node.collectPaths(body) }
            case .not(let node): node.collectPaths(body)
            case .and(let lhs, let rhs), .or(let lhs, let rhs), .compare(let lhs, _, let rhs):
                lhs.collectPaths(body)
                rhs.collectPaths(body)
            }
        }

        func evaluate(_ data: Scope) -> JSONValue {
            switch self {
            case .literal(let value):
                return value
            case .path(let components):
                var current: JSONValue
                var rest = components[...]
                switch data {
                case .document(let document):
                    current = document
                case .saga(let input, let steps, let signals):
                    guard case .member(let first)? = rest.first else { return .null }
                    rest = rest.dropFirst()
                    switch first {
                    case "input": current = input
                    case "steps": current = .object(steps)
                    case "signals": current = .object(signals)
                    default: return .null
                    }
                }
                for component in rest {
                    let next: JSONValue?
                    switch component {
                    case .member(let name): next = current[name]
                    case .index(let index): next = current[index]
                    }
                    guard let next else { return .null }
                    current = next
                }
                return current
            case .list(let nodes):
                return .array(nodes.map { $0.evaluate(data) })
            case .not(let node):
                return .bool(node.evaluate(data) != .bool(true))
            case .and(let lhs, let rhs):
                return .bool(lhs.evaluate(data) == .bool(true) && rhs.evaluate(data) == .bool(true))
            case .or(let lhs, let rhs):
                return .bool(lhs.evaluate(data) == .bool(true) || rhs.evaluate(data) == .bool(true))
            case .compare(let lhs, let comparison, let rhs):
                return .bool(Self.compare(lhs.evaluate(data), comparison, rhs.evaluate(data)))
            }
        }

        static func equal(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
            if let left = lhs.numberValue, let right = rhs.numberValue { return left == right }
            return lhs == rhs
        }

        static func compare(_ lhs: JSONValue, _ comparison: Comparison, _ rhs: JSONValue) -> Bool {
            switch comparison {
            case .equal: return equal(lhs, rhs)
            case .notEqual: return !equal(lhs, rhs)
            case .contains:
                switch rhs {
                case .array(let elements): return elements.contains { equal(lhs, $0) }
                case .string(let text): return lhs.stringValue.map { text.contains($0) } ?? false
                case .null, .bool, .integer, .double, .object: return false
                }
            case .less, .lessOrEqual, .greater, .greaterOrEqual:
                let order: Int
                if let left = lhs.numberValue, let right = rhs.numberValue {
                    order = left < right ? -1 : (left == right ? 0 : 1)
                } else if let left = lhs.stringValue, let right = rhs.stringValue {
                    order = left < right ? -1 : (left == right ? 0 : 1)
                } else {
                    return false
                }
                switch comparison {
                case .less: return order < 0
                case .lessOrEqual: return order <= 0
                case .greater: return order > 0
                case .greaterOrEqual: return order >= 0
                case .equal, .notEqual, .contains: return false
                }
            }
        }
    }

    struct Token: Sendable {
        enum Kind: Equatable, Sendable {
            case name(String)
            case number(JSONValue)
            case string(String)
            case symbol(String)
            case end
        }
        var kind: Kind
        var position: Int
        var text: String {
            switch kind {
            case .name(let name): return name
            case .number(.integer(let value)): return String(value)
            case .number(.double(let value)): return String(value)
            case .number: return "number"
            case .string(let text): return "'\(text)'"
            case .symbol(let symbol): return symbol
            case .end: return "end of expression"
            }
        }
    }

    enum Lexer {
        static let symbols = ["==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ".", ","]

        static func tokens(of source: String) throws(ConditionError) -> [Token] {
            let characters = Array(source)
            var tokens: [Token] = []
            var index = 0
            while index < characters.count {
                let character = characters[index]
                if character.isWhitespace {
                    index += 1
                } else if character.isLetter || character == "_" {
                    let start = index
                    while index < characters.count,
                        characters[index].isLetter || characters[index].isNumber || characters[index] == "_"
                            || characters[index] == "-"
                    {
                        index += 1
                    }
                    tokens.append(Token(kind: .name(String(characters[start..<index])), position: start))
                } else if character.isASCII && character.isNumber
                    || (character == "-" && index + 1 < characters.count && characters[index + 1].isNumber)
                {
                    let start = index
                    index += 1
                    while index < characters.count,
                        characters[index].isASCII && characters[index].isNumber || characters[index] == "."
                    {
                        index += 1
                    }
                    let text = String(characters[start..<index])
                    if let integer = Int64(text) {
                        tokens.append(Token(kind: .number(.integer(integer)), position: start))
                    } else if let double = Double(text), double.isFinite {
                        tokens.append(Token(kind: .number(.double(double)), position: start))
                    } else {
                        throw ConditionError(message: "bad number '\(text)'", position: start)
                    }
                } else if character == "'" || character == "\"" {
                    let start = index
                    index += 1
                    var text = ""
                    while index < characters.count, characters[index] != character {
                        if characters[index] == "\\", index + 1 < characters.count {
                            index += 1
                        }
                        text.append(characters[index])
                        index += 1
                    }
                    guard index < characters.count else {
                        throw ConditionError(message: "unterminated string", position: start)
                    }
                    index += 1
                    tokens.append(Token(kind: .string(text), position: start))
                } else if let symbol = symbols.first(where: { matches($0, characters, at: index) }) {
                    tokens.append(Token(kind: .symbol(symbol), position: index))
                    index += symbol.count
                } else {
                    throw ConditionError(message: "unexpected character '\(character)'", position: index)
                }
            }
            tokens.append(Token(kind: .end, position: characters.count))
            return tokens
        }

        static func matches(_ symbol: String, _ characters: [Character], at index: Int) -> Bool {
            let symbolCharacters = Array(symbol)
            guard index + symbolCharacters.count <= characters.count else { return false }
            return Array(characters[index..<index + symbolCharacters.count]) == symbolCharacters
        }
    }

    struct Parser {
        var tokens: [Token]
        var index = 0

        var peek: Token { tokens[index] }
        var atEnd: Bool { peek.kind == .end }

        mutating func advance() -> Token {
            let token = tokens[index]
            if index < tokens.count - 1 { index += 1 }
            return token
        }

        mutating func take(_ symbol: String) -> Bool {
            if peek.kind == .symbol(symbol) {
                _ = advance()
                return true
            }
            return false
        }

        mutating func expect(_ symbol: String) throws(ConditionError) {
            guard take(symbol) else {
                throw ConditionError(message: "expected '\(symbol)' but found '\(peek.text)'", position: peek.position)
            }
        }

        mutating func parseExpression(depth: Int) throws(ConditionError) -> Node {
            guard depth < Condition.maximumDepth else {
                throw ConditionError(
                    message: "is nested deeper than \(Condition.maximumDepth)", position: peek.position)
            }
            var node = try parseAnd(depth: depth)
            while take("||") { node = .or(node, try parseAnd(depth: depth)) }
            return node
        }

        mutating func parseAnd(depth: Int) throws(ConditionError) -> Node {
            var node = try parseUnary(depth: depth)
            while take("&&") { node = .and(node, try parseUnary(depth: depth)) }
            return node
        }

        mutating func parseUnary(depth: Int) throws(ConditionError) -> Node {
            if take("!") {
                guard depth + 1 < Condition.maximumDepth else {
                    throw ConditionError(
                        message: "is nested deeper than \(Condition.maximumDepth)", position: peek.position)
                }
                return .not(try parseUnary(depth: depth + 1))
            }
            let lhs = try parseOperand(depth: depth)
            let comparison: Comparison?
            switch peek.kind {
            case .symbol(let symbol): comparison = Comparison(rawValue: symbol)
            case .name("in"): comparison = .contains
            case .name, .number, .string, .end: comparison = nil
            }
            guard let comparison else { return lhs }
            _ = advance()
            return .compare(lhs, comparison, try parseOperand(depth: depth))
        }

        mutating func parseOperand(depth: Int) throws(ConditionError) -> Node {
            let token = advance()
            switch token.kind {
            case .number(let value):
                return .literal(value)
            case .string(let text):
                return .literal(.string(text))
            case .name("true"):
                return .literal(.bool(true))
            case .name("false"):
                return .literal(.bool(false))
            case .name("null"):
                return .literal(.null)
            case .name(let root):
                guard Condition.roots.contains(root) else {
                    throw ConditionError(
                        message: "unknown name '\(root)': a path starts with input, steps or signals",
                        position: token.position)
                }
                var components: [PathComponent] = [.member(root)]
                while true {
                    if take(".") {
                        let member = advance()
                        guard case .name(let name) = member.kind else {
                            throw ConditionError(message: "expected a name after '.'", position: member.position)
                        }
                        components.append(.member(name))
                    } else if take("[") {
                        let subscriptToken = advance()
                        switch subscriptToken.kind {
                        case .number(.integer(let value)) where value >= 0 && value <= Int64(Int32.max):
                            components.append(.index(Int(value)))
                        case .string(let name):
                            components.append(.member(name))
                        case .number, .name, .symbol, .end:
                            throw ConditionError(
                                message: "expected an index or a quoted name in '[ ]'",
                                position: subscriptToken.position)
                        }
                        try expect("]")
                    } else {
                        break
                    }
                }
                return .path(components)
            case .symbol("("):
                let node = try parseExpression(depth: depth + 1)
                try expect(")")
                return node
            case .symbol("["):
                guard depth + 1 < Condition.maximumDepth else {
                    throw ConditionError(
                        message: "is nested deeper than \(Condition.maximumDepth)", position: token.position)
                }
                var elements: [Node] = []
                if !take("]") {
                    repeat {
                        elements.append(try parseOperand(depth: depth + 1))
                    } while take(",")
                    try expect("]")
                }
                return .list(elements)
            case .symbol, .end:
                throw ConditionError(message: "expected a value but found '\(token.text)'", position: token.position)
            }
        }
    }
}
