import SagaCore
import Testing

/// The `when` / `failWhen` expression language: parsing, evaluation and the steps it reads.
@Suite("Conditions")
struct ConditionTests {
    /// The saga data the evaluation cases read.
    static let data: JSONValue = [
        "input": [
            "total": 250,
            "price": 9.5,
            "country": "DE",
            "express": true,
            "gift": false,
            "note": nil,
            "name": "Ada Lovelace",
            "tags": ["gift-wrap", "fragile"],
            "items": [["sku": "A-1", "qty": 2], ["sku": "B-2", "qty": 1]],
            "a-b": 7,
        ],
        "steps": [
            "reserve-inventory": ["reservationId": "r-1", "count": 3]
        ],
        "signals": [
            "approval": ["approved": false, "by": "m-7"]
        ],
    ]

    /// Evaluates over the parts of ``data``, as the state machine does, instead of the document.
    static func evaluateOverSagaParts(_ condition: Condition) -> Bool {
        guard case .object(let input)? = data["input"], case .object(let steps)? = data["steps"],
            case .object(let signals)? = data["signals"]
        else { return false }
        return condition.evaluate(input: .object(input), steps: steps, signals: signals)
    }

    struct EvaluationCase: Sendable, CustomTestStringConvertible {
        var expression: String
        var expected: Bool
        init(_ expression: String, _ expected: Bool) {
            self.expression = expression
            self.expected = expected
        }
        var testDescription: String { "\(expression) → \(expected)" }
    }

    static let comparisonCases: [EvaluationCase] = [
        // Numbers, integers and doubles alike.
        .init("input.total == 250", true),
        .init("input.total == 250.0", true),
        .init("input.total != 250", false),
        .init("input.total > 100", true),
        .init("input.total >= 250", true),
        .init("input.total < 250", false),
        .init("input.total <= 250", true),
        .init("input.price < 10", true),
        .init("input.price > 9.25", true),
        .init("-1 < 0", true),
        .init("input.total > -5", true),
        // Strings.
        .init("input.country == 'DE'", true),
        .init("input.country == \"DE\"", true),
        .init("input.country != 'FR'", true),
        .init("input.country == 'de'", false),
        .init("'abc' < 'abd'", true),
        .init("input.country >= 'DE'", true),
        .init("input.country < 'DE'", false),
        .init("'it\\'s' == \"it's\"", true),
        // Booleans.
        .init("input.express == true", true),
        .init("input.express", true),
        .init("input.express == false", false),
        .init("input.gift", false),
        .init("input.gift == false", true),
        // Null, and paths that lead nowhere.
        .init("input.note == null", true),
        .init("input.note != null", false),
        .init("input.missing == null", true),
        .init("input.country != null", true),
        .init("input.missing", false),
        .init("null == false", false),
        // Values of different types are never equal.
        .init("1 == '1'", false),
        .init("true == 1", false),
        .init("input.total != '250'", true),
        // Only the Boolean true is true.
        .init("1", false),
        .init("'true'", false),
        .init("input.country", false),
    ]

    @Test("Comparisons of numbers, strings, Booleans and null", arguments: comparisonCases)
    func comparison(_ testCase: EvaluationCase) throws {
        let condition = try Condition(testCase.expression)
        #expect(condition.evaluate(Self.data) == testCase.expected)
        #expect(Self.evaluateOverSagaParts(condition) == testCase.expected)
    }

    static let membershipCases: [EvaluationCase] = [
        .init("input.country in ['DE', 'FR']", true),
        .init("input.country in ['US']", false),
        .init("input.country in []", false),
        .init("2 in [1, 2.0, 3]", true),
        .init("'gift-wrap' in input.tags", true),
        .init("'toys' in input.tags", false),
        .init("input.tags[0] in ['gift-wrap']", true),
        .init("null in [null]", true),
        .init("input.missing in [1, null]", true),
        .init("input.total in [input.total, 1]", true),
        .init("'Love' in input.name", true),
        .init("'love' in input.name", false),
        .init("1 in '123'", false),
        .init("1 in 1", false),
        .init("'x' in input.missing", false),
        .init("'A-1' in input.items", false),
    ]

    @Test("`in` looks in lists and in strings", arguments: membershipCases)
    func membership(_ testCase: EvaluationCase) throws {
        let condition = try Condition(testCase.expression)
        #expect(condition.evaluate(Self.data) == testCase.expected)
        #expect(Self.evaluateOverSagaParts(condition) == testCase.expected)
    }

    static let logicCases: [EvaluationCase] = [
        .init("input.express && input.total > 100", true),
        .init("input.express && input.total > 1000", false),
        .init("input.total > 1000 || input.country == 'DE'", true),
        .init("input.total > 1000 || input.country == 'FR'", false),
        .init("!input.express", false),
        .init("!input.missing", true),
        .init("!input.country", true),
        .init("!(input.total > 100)", false),
        .init("!!input.express", true),
        .init("! input.gift && input.express", true),
        // && binds tighter than ||; parentheses change that.
        .init("true || false && false", true),
        .init("(true || false) && false", false),
        .init("false && false || true", true),
        .init("false && (false || true)", false),
        .init("((input.total > 100))", true),
        .init("(input.country == 'DE' || input.country == 'FR') && !input.gift", true),
        .init("true && true && true && false", false),
        .init("false || false || false || true", true),
    ]

    @Test("&&, ||, ! and parentheses", arguments: logicCases)
    func logic(_ testCase: EvaluationCase) throws {
        let condition = try Condition(testCase.expression)
        #expect(condition.evaluate(Self.data) == testCase.expected)
        #expect(Self.evaluateOverSagaParts(condition) == testCase.expected)
    }

    static let pathCases: [EvaluationCase] = [
        .init("input.items[0].sku == 'A-1'", true),
        .init("input.items[1].qty == 1", true),
        .init("input.items[1]['sku'] == 'B-2'", true),
        .init("input['a-b'] == 7", true),
        .init("input[\"a-b\"] == 7", true),
        .init("steps['reserve-inventory'].count == 3", true),
        .init("steps.reserve-inventory.reservationId == 'r-1'", true),
        .init("signals.approval.approved == false", true),
        .init("signals.approval.by == 'm-7'", true),
        // Paths that lead nowhere read as null.
        .init("input.items[5].sku == null", true),
        .init("input.items[5] == null", true),
        .init("input.total.deeper == null", true),
        .init("input.tags[0].x == null", true),
        .init("input[0] == null", true),
        .init("steps.ship.trackingId == null", true),
        .init("signals.missing.approved == false", false),
    ]

    @Test("Paths with members, indexes and quoted names", arguments: pathCases)
    func path(_ testCase: EvaluationCase) throws {
        let condition = try Condition(testCase.expression)
        #expect(condition.evaluate(Self.data) == testCase.expected)
        #expect(Self.evaluateOverSagaParts(condition) == testCase.expected)
    }

    static let mixedOrderingCases: [String] = [
        "input.country > 1",
        "input.country < 1",
        "input.country >= 1",
        "input.country <= 1",
        "input.missing < 1",
        "input.missing >= 0",
        "null <= null",
        "true > false",
        "input.tags > 1",
        "input.items[0] < input.items[1]",
        "'10' > 9",
    ]

    @Test("Ordering values of different types is false, both ways", arguments: mixedOrderingCases)
    func mixedTypeOrdering(_ expression: String) throws {
        #expect(try Condition(expression).evaluate(Self.data) == false)
        #expect(try Self.evaluateOverSagaParts(Condition(expression)) == false)
        #expect(try Condition("!(\(expression))").evaluate(Self.data) == true)
    }

    @Test("A condition over an empty document reads every path as null")
    func emptyData() throws {
        #expect(try Condition("input.total == null").evaluate(.emptyObject))
        #expect(try Condition("input.total == null").evaluate(.null))
        #expect(try !Condition("input.total > 0").evaluate(.emptyObject))
        #expect(try Condition("input.total == null").evaluate(input: .null, steps: [:], signals: [:]))
        #expect(
            try Condition("signals.x.y == null && steps.x == null").evaluate(input: .null, steps: [:], signals: [:]))
        #expect(try !Condition("input.total > 0").evaluate(input: .null, steps: [:], signals: [:]))
    }

    struct ParseErrorCase: Sendable, CustomTestStringConvertible {
        var label: String
        var expression: String
        var description: String
        var position: Int
        init(_ label: String, _ expression: String, _ description: String, position: Int) {
            self.label = label
            self.expression = expression
            self.description = description
            self.position = position
        }
        var testDescription: String { label }
    }

    static let parseErrorCases: [ParseErrorCase] = [
        .init(
            "an unterminated string", "input.country == 'DE",
            "unterminated string at position 17", position: 17),
        .init(
            "an unterminated double-quoted string", "\"abc",
            "unterminated string at position 0", position: 0),
        .init(
            "an unknown root name", "order.total > 5",
            "unknown name 'order': a path starts with input, steps or signals at position 0", position: 0),
        .init(
            "an unknown root name after an operator", "input.total > limit",
            "unknown name 'limit': a path starts with input, steps or signals at position 14", position: 14),
        .init(
            "a trailing name", "input.total > 5 input",
            "unexpected 'input' at position 16", position: 16),
        .init(
            "a trailing parenthesis", "input.total > 5 )",
            "unexpected ')' at position 16", position: 16),
        .init(
            "two comparisons in a row", "1 < 2 < 3",
            "unexpected '<' at position 6", position: 6),
        .init(
            "a missing right operand", "input.total >",
            "expected a value but found 'end of expression' at position 13", position: 13),
        .init(
            "a dangling &&", "input.total > 5 &&",
            "expected a value but found 'end of expression' at position 18", position: 18),
        .init(
            "an empty expression", "",
            "expected a value but found 'end of expression' at position 0", position: 0),
        .init(
            "a missing name after a dot", "input. == 1",
            "expected a name after '.' at position 7", position: 7),
        .init(
            "an unquoted name in brackets", "input[x] == 1",
            "expected an index or a quoted name in '[ ]' at position 6", position: 6),
        .init(
            "a negative index", "input.items[-1] == 1",
            "expected an index or a quoted name in '[ ]' at position 12", position: 12),
        .init(
            "an unclosed bracket", "input.items[0 == 1",
            "expected ']' but found '==' at position 14", position: 14),
        .init(
            "an unclosed parenthesis", "(input.total > 5",
            "expected ')' but found 'end of expression' at position 16", position: 16),
        .init(
            "a single equals sign", "input.total = 5",
            "unexpected character '=' at position 12", position: 12),
        .init(
            "an unknown character", "input.total > 5 & true",
            "unexpected character '&' at position 16", position: 16),
        .init(
            "a bad number", "1.2.3 == 1",
            "bad number '1.2.3' at position 0", position: 0),
        .init(
            "parentheses nested 32 deep",
            String(repeating: "(", count: 32) + "true" + String(repeating: ")", count: 32),
            "is nested deeper than 32 at position 32", position: 32),
        .init(
            "negations nested 32 deep", String(repeating: "!", count: 32) + "true",
            "is nested deeper than 32 at position 32", position: 32),
        .init(
            "a condition longer than 2048 characters", "input.total > " + String(repeating: "1", count: 2040),
            "is longer than 2048 characters at position 0", position: 0),
    ]

    @Test("Parse errors name the position of the problem", arguments: parseErrorCases)
    func parseError(_ testCase: ParseErrorCase) throws {
        let error = try #require(throws: ConditionError.self) {
            try Condition(testCase.expression)
        }
        #expect(error.description == testCase.description)
        #expect(error.position == testCase.position)
    }

    @Test("Nesting up to the limit parses")
    func nestingAtTheLimit() throws {
        let parentheses = String(repeating: "(", count: 31) + "true" + String(repeating: ")", count: 31)
        #expect(try Condition(parentheses).evaluate(.null))
        let negations = String(repeating: "!", count: 31) + "false"
        #expect(try Condition(negations).evaluate(.null))
        let longest = "input.total > 1" + String(repeating: " ", count: 2048 - 15)
        #expect(try Condition(longest).source.count == 2048)
    }

    @Test("A trailing number is named as it was written")
    func trailingNumber() throws {
        let error = try #require(throws: ConditionError.self) { try Condition("input.total > 5 6") }
        #expect(error.description == "unexpected '6' at position 16")
        #expect(error.position == 16)
    }

    @Test("List literals count towards the nesting limit")
    func nestedLists() {
        let lists = "1 in " + String(repeating: "[", count: 40) + "1" + String(repeating: "]", count: 40)
        #expect(throws: ConditionError.self) { try Condition(lists) }
    }

    struct ReferenceCase: Sendable, CustomTestStringConvertible {
        var expression: String
        var steps: Set<String>
        init(_ expression: String, _ steps: Set<String>) {
            self.expression = expression
            self.steps = steps
        }
        var testDescription: String { expression }
    }

    static let referenceCases: [ReferenceCase] = [
        .init("steps.reserve.ok == true", ["reserve"]),
        .init("steps['charge-card'].id != null", ["charge-card"]),
        .init("steps.reserve.ok && (steps.charge.amount > 10 || !steps.ship.sent)", ["reserve", "charge", "ship"]),
        .init("input.country in [steps.lookup.country, 'DE']", ["lookup"]),
        .init("steps.reserve.a == steps.reserve.b", ["reserve"]),
        .init("steps[0] == 1", []),
        .init("steps == null", []),
        .init("input.steps.reserve == 1", []),
        .init("signals.approval.approved == false", []),
        .init("'steps.reserve' == input.x", []),
    ]

    @Test("referencedSteps lists the step names read under steps.", arguments: referenceCases)
    func referencedSteps(_ testCase: ReferenceCase) throws {
        #expect(try Condition(testCase.expression).referencedSteps == testCase.steps)
    }

    @Test("A condition keeps its source text")
    func source() throws {
        let condition = try Condition("input.total  >  100")
        #expect(condition.source == "input.total  >  100")
        #expect(condition.description == "input.total  >  100")
        #expect(try Condition("input.total > 100") == Condition("input.total > 100"))
    }
}
